#!/usr/bin/env python3
"""Checks the Kubernetes examples beside this file; run by validate.sh.

Two kinds of check, each counted and printed as PASS or FAIL:

1. Every object in every *.yaml here validates against the Kubernetes JSON
   schemas shipped inside the pinned `kubernetes-validate` package (strict:
   unknown fields fail too), for each Kubernetes version asked for. Nothing
   is downloaded: the schemas are files in the package, and references
   resolve only inside them.
2. What matters for the broker, read from the manifests: its flags are ones
   the documentation lists (API.md's command line table, the flag
   table of docs/configuration.md) with values of the right form, dnsmasq reads the
   directories the broker writes, the probes point at /healthz and /readyz,
   the API needs tokens (--token-file in the mounted, required token
   Secret; no --insecure-no-auth), the claim is ReadWriteMany, the sidecar
   layout shares the process namespace, and so on.

A layout's lines that start with `#tls ` (after indentation) turn TLS on
when uncommented; each layout is checked as written and again with them
uncommented ("supervised.yaml (TLS on)"), so the commented option stays
valid too.

Exit status 0 only when everything passed. The last line is the summary,
`kubernetes manifests: N passed, M failed` (counting validate.sh's
Dockerfile lint too, when given --dockerfile-lint).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml
from kubernetes_validate import utils as kv
from kubernetes_validate.version import __version__ as KV_VERSION

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORKLOAD_KINDS = {"StatefulSet", "Deployment", "DaemonSet"}
# Every serve flag is also read from HOSTSDIR_BROKER_<FLAG IN UPPER SNAKE CASE>.
BROKER_ENV_PREFIX = "HOSTSDIR_BROKER_"
# Flags are checked against two tables: API.md's "Command line" (the
# contract) and docs/configuration.md's "Flags" (this implementation's flags).
# Where the token Secret is mounted, and its key (token-secret.yaml).
TOKEN_SECRET = "hostsdir-broker-tokens"
TOKEN_FILE = "/etc/hostsdir-broker/tokens"
# Commented-out lines that turn TLS on: `<indent>#tls <yaml>`.
TLS_MARK = re.compile(r"^(\s*)#tls ", re.M)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

@dataclass
class Results:
    passed: int = 0
    failed: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {what}")
        else:
            line = f"{what}: {why}" if why else what
            self.failed.append(line)
            print(f"FAIL {line}")
        return ok

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"NOTE {text}")


# --------------------------------------------------------------------------
# The documented command line
# --------------------------------------------------------------------------

@dataclass
class Flag:
    name: str                 # without the leading dashes
    metavar: Optional[str]    # None for a switch
    choices: Optional[List[str]]
    sources: List[str]


def _section(text: str, heading: str) -> str:
    """The body of the `## heading` section (up to the next `## `)."""
    m = re.search(r"^## " + re.escape(heading) + r"[^\n]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


def _table_rows(section: str) -> Iterable[List[str]]:
    for line in section.splitlines():
        line = line.strip()
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        # Split on `|` not escaped as `\|`.
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        yield cells


def documented_flags(doc: str, heading: str, source: str) -> Dict[str, Flag]:
    """The `--flags` in the first column of the section's table."""
    flags: Dict[str, Flag] = {}
    for cells in _table_rows(_section(doc, heading)):
        if len(cells) < 2:
            continue
        for span in re.findall(r"`([^`]+)`", cells[0]):
            m = re.fullmatch(r"--([a-z0-9][a-z0-9-]*)(?:[ =](.+))?", span.strip())
            if not m:
                continue
            name, metavar = m.group(1), m.group(2)
            choices = None
            if metavar:
                metavar = metavar.replace("\\|", "|").strip()
                if "|" in metavar:
                    choices = metavar.split("|")
                elif metavar == "METHOD":
                    choices = re.findall(r"`([a-z]+)`", cells[1])
            flags[name] = Flag(name, metavar, choices, [source])
    return flags


def load_flag_docs(res: Results) -> Dict[str, Flag]:
    """Every flag documented in docs/configuration.md's or API.md's table."""
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    everything = documented_flags(page, "Flags", "docs/configuration.md")
    res.check(len(everything) >= 5, "docs/configuration.md's flag table lists the serve flags",
              f"found only {sorted(everything)}")
    api = None
    for candidate in (ROOT.parent / "shared" / "API.md", ROOT / "API.md"):
        if candidate.is_file():
            api = candidate
            break
    if api is None:
        res.note("API.md not found beside the repository (../shared/API.md): flags are checked against docs/configuration.md alone")
    else:
        contract = documented_flags(api.read_text(encoding="utf-8"), "Command line", "API.md")
        res.check(len(contract) >= 5, f"{api.name}'s command line table lists the serve flags",
                  f"found only {sorted(contract)}")
        for name, flag in contract.items():
            if name in everything:
                everything[name].sources.append("API.md")
            else:
                everything[name] = flag
    return everything


# --------------------------------------------------------------------------
# Parsing a broker command line the way it is documented
# --------------------------------------------------------------------------

def _value_error(flag: Flag, value: str) -> Optional[str]:
    """Why `value` is not a valid value for `flag`, or None."""
    mv = flag.metavar or ""
    if flag.choices is not None:
        return None if value in flag.choices else f"`{value}` is not one of {flag.choices}"
    if mv == "ADDR:PORT":
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            return f"`{value}` is not ADDR:PORT"
        try:
            ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        except ValueError:
            return f"`{host}` in `{value}` is not an IP address"
        return None
    if mv == "N":
        return None if value.isdigit() else f"`{value}` is not a non-negative integer"
    if mv == "OCTAL":
        return None if re.fullmatch(r"0?[0-7]{3,4}", value) else f"`{value}` is not an octal mode"
    if mv in ("DIR", "FILE"):
        return None if value.startswith("/") else f"`{value}` is not an absolute path"
    return None if value else "empty value"


@dataclass
class BrokerArgs:
    flags: Dict[str, Optional[str]]   # name -> value (None for a switch)
    dnsmasq: List[str]                # the command line after `--`


def parse_broker_argv(argv: List[str], docs: Dict[str, Flag], where: str, res: Results) -> BrokerArgs:
    """Parses `serve ARGS [-- DNSMASQ...]` (argv without the program name)."""
    res.check(argv[:1] == ["serve"], f"{where}: the broker runs `serve`", f"argv starts {argv[:1]}")
    flags: Dict[str, Optional[str]] = {}
    dnsmasq: List[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            dnsmasq = argv[i + 1:]
            break
        if not arg.startswith("--"):
            res.check(False, f"{where}: argument `{arg}`", "the broker takes no positional argument before `--`")
            i += 1
            continue
        name, eq, inline = arg[2:].partition("=")
        flag = docs.get(name)
        if flag is None:
            res.check(False, f"{where}: flag --{name}", "not listed in API.md's command line table nor docs/configuration.md's flag table")
            i += 1
            continue
        if flag.metavar is None:
            res.check(not eq, f"{where}: --{name} is documented", "a switch takes no value")
            value = None
        else:
            if eq:
                value = inline
            elif i + 1 < len(argv) and argv[i + 1] != "--":
                i += 1
                value = argv[i]
            else:
                res.check(False, f"{where}: --{name}", f"needs a value ({flag.metavar})")
                i += 1
                continue
            err = _value_error(flag, value)
            res.check(err is None, f"{where}: --{name} {value} is documented ({' and '.join(flag.sources)}) and well-formed", err or "")
        res.check(name not in flags, f"{where}: --{name} is given once", "given twice")
        flags[name] = value
        i += 1
    return BrokerArgs(flags, dnsmasq)


def dnsmasq_options(argv: List[str]) -> Dict[str, str]:
    """`--name=value` / `--name value` / `-k` options of a dnsmasq argv."""
    out: Dict[str, str] = {}
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            out[name] = value if eq else ""
        elif arg.startswith("-") and len(arg) == 2:
            out[arg[1]] = ""
    return out


# --------------------------------------------------------------------------
# Kubernetes helpers
# --------------------------------------------------------------------------

def load_documents(path: pathlib.Path) -> List[Dict[str, Any]]:
    return parse_documents(path.read_text(encoding="utf-8"))


def parse_documents(text: str) -> List[Dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def tls_variant(text: str) -> Optional[str]:
    """The manifest with its `#tls ` lines uncommented, or None without any."""
    return TLS_MARK.sub(r"\1", text) if TLS_MARK.search(text) else None


def argv_of(container: Dict[str, Any]) -> List[str]:
    """command + args (a missing command means the image's entrypoint, which
    for the broker's image is `hostsdir-broker`)."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if not command and args[:1] == ["serve"]:
        command = ["hostsdir-broker"]
    return command + args


def is_broker(container: Dict[str, Any]) -> bool:
    argv = argv_of(container)
    return bool(argv) and os.path.basename(argv[0]) == "hostsdir-broker"


def resolve_path(container: Dict[str, Any], path: str) -> Optional[Tuple[str, str, bool]]:
    """(volume name, path inside the volume, read-only) for a path in the
    container, through its deepest matching volumeMount."""
    best = None
    for m in container.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    if best is None:
        return None
    rel = path[len(best["mountPath"].rstrip("/")):].lstrip("/")
    inner = "/".join(p for p in (best.get("subPath", "").strip("/"), rel) if p)
    return best["name"], inner, bool(best.get("readOnly", False))


def port_number(container: Dict[str, Any], port: Any) -> Optional[int]:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def labels_match(selector: Dict[str, str], labels: Dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------

def check_schemas(manifests: List[Tuple[str, List[Dict[str, Any]]]], versions: List[str], res: Results) -> None:
    for label, docs in manifests:
        for doc in docs:
            name = f"{label}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            for version in versions:
                what = f"{name} validates against Kubernetes {version} (strict)"
                try:
                    got = kv.validate(doc, version, strict=True)
                    res.check(kv.major_minor(got) == kv.major_minor(version), what,
                              f"validated against {got} instead")
                except kv.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    res.check(False, what, f"{where}: {e.message}")
                except kv.SchemaNotFoundError as e:
                    res.check(False, what, f"no schema: {e.message}")
                except kv.VersionNotSupportedError:
                    res.check(False, what, f"kubernetes-validate {KV_VERSION} has no schemas for {version}")
                except Exception as e:  # noqa: BLE001 - any other failure is a failure
                    res.check(False, what, f"{type(e).__name__}: {e}")


def check_workload(f: str, layout: str, docs: List[Dict[str, Any]], flag_docs: Dict[str, Flag],
                   secrets: Dict[str, List[str]], res: Results, dnsmasq_bin: Optional[str]) -> None:
    """Checks one layout; `f` names it in the output, `layout` is its kind
    (supervised, sidecar), `secrets` the keys of the Secrets defined in the
    manifests checked (name -> keys)."""
    by_kind: Dict[str, List[Dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    workloads = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    if not res.check(len(workloads) == 1, f"{f}: holds one workload", f"found {len(workloads)}"):
        return
    wl = workloads[0]
    spec = wl["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels") or {}
    annotations = spec["template"]["metadata"].get("annotations") or {}
    containers = pod["containers"]
    init_containers = pod.get("initContainers") or []
    volumes = {v["name"]: v for v in pod.get("volumes") or []}

    res.check(spec.get("replicas") == 1, f"{f}: one replica (one DHCP server)", f"replicas {spec.get('replicas')}")
    res.check(pod.get("hostNetwork") is True, f"{f}: hostNetwork (DHCP needs the provisioning network)")
    res.check(labels_match(spec["selector"].get("matchLabels") or {}, pod_labels), f"{f}: the selector matches the pod labels")

    brokers = [c for c in containers if is_broker(c)]
    if not res.check(len(brokers) == 1, f"{f}: one container runs hostsdir-broker", f"found {len(brokers)}"):
        return
    broker = brokers[0]
    argv = argv_of(broker)
    args = parse_broker_argv(argv[1:], flag_docs, f"{f} broker", res)

    # The environment form of the flags.
    env_flags: Dict[str, Optional[str]] = {}
    for e in broker.get("env") or []:
        if e["name"].startswith(BROKER_ENV_PREFIX):
            name = e["name"][len(BROKER_ENV_PREFIX):].lower().replace("_", "-")
            flag = flag_docs.get(name)
            if res.check(flag is not None, f"{f} broker: env {e['name']} is a documented flag (--{name})", "no such flag"):
                value = e.get("value")
                if flag.metavar is not None and value is not None:
                    err = _value_error(flag, value)
                    res.check(err is None, f"{f} broker: env {e['name']}={value} is well-formed", err or "")
                res.check(name not in args.flags, f"{f} broker: --{name} is not also on the command line", "given both ways")
                env_flags[name] = value
    given = {**env_flags, **args.flags}

    # Tokens: required, from the mounted Secret; never --insecure-no-auth.
    res.check("insecure-no-auth" not in given, f"{f} broker: no --insecure-no-auth (or HOSTSDIR_BROKER_INSECURE_NO_AUTH)",
              "it lets the broker listen without tokens")
    token_file = given.get("token-file")
    if res.check(token_file == TOKEN_FILE, f"{f} broker: --token-file is {TOKEN_FILE}", f"got {token_file!r}"):
        check_secret_file(f, broker, volumes, token_file, TOKEN_SECRET, "tokens", "token-file", secrets, res)
    tls = check_tls(f, broker, volumes, given, secrets, res)

    # Listening address, and exposure without tokens.
    listen = given.get("listen") or "127.0.0.1:8787"
    host, _, port_s = listen.rpartition(":")
    listen_port = int(port_s) if port_s.isdigit() else None
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        res.check("insecure-no-auth" in given or "token-file" in given,
                  f"{f} broker: a non-loopback --listen has --token-file or --insecure-no-auth",
                  "the broker refuses to start otherwise")
    res.check(listen_port == 8787, f"{f} broker: listens on port 8787", f"--listen {listen}")

    hosts_dir, opts_dir = given.get("hosts-dir"), given.get("opts-dir")
    lease_file = given.get("lease-file")
    res.check(bool(hosts_dir) and bool(opts_dir) and hosts_dir != opts_dir,
              f"{f} broker: --hosts-dir and --opts-dir are given and differ", f"{hosts_dir!r} {opts_dir!r}")

    # Where the directories live: the ReadWriteMany claim, writable by the broker.
    pvcs = {p["metadata"]["name"]: p for p in by_kind.get("PersistentVolumeClaim", [])}
    for flag_name, p in (("hosts-dir", hosts_dir), ("opts-dir", opts_dir)):
        if not p:
            continue
        r = resolve_path(broker, p)
        ok = r is not None and "persistentVolumeClaim" in volumes.get(r[0], {})
        if res.check(ok, f"{f} broker: --{flag_name} {p} is on a PersistentVolumeClaim", "not under a mounted claim"):
            claim = volumes[r[0]]["persistentVolumeClaim"]["claimName"]
            res.check(not r[2], f"{f} broker: --{flag_name} {p} is mounted read-write")
            res.check(claim in pvcs, f"{f}: claim {claim} is defined in the file")
    for name, pvc in pvcs.items():
        res.check(pvc["spec"].get("accessModes") == ["ReadWriteMany"], f"{f}: PersistentVolumeClaim {name} is ReadWriteMany",
                  f"accessModes {pvc['spec'].get('accessModes')}")
        res.check(bool(pvc["spec"].get("storageClassName")), f"{f}: PersistentVolumeClaim {name} names a storage class")

    # Reload method and where dnsmasq runs.
    method = given.get("reload") or ("supervise" if args.dnsmasq else "none")
    dnsmasq_container = broker
    dnsmasq_argv = args.dnsmasq
    if layout == "supervised":
        res.check(len(containers) == 1, f"{f}: one container (the broker supervises dnsmasq)", f"{len(containers)} containers")
        res.check(method == "supervise" and bool(args.dnsmasq), f"{f}: the broker supervises a dnsmasq command line after `--`",
                  f"reload {method}, {len(args.dnsmasq)} words after --")
    elif layout == "sidecar":
        others = [c for c in containers if c is not broker]
        res.check(len(containers) == 2, f"{f}: two containers (dnsmasq and the broker)", f"{len(containers)} containers")
        res.check(pod.get("shareProcessNamespace") is True, f"{f}: shareProcessNamespace: true (the broker must see dnsmasq)")
        res.check(method == "process", f"{f}: the broker uses --reload process", f"reload {method}")
        res.check(not args.dnsmasq, f"{f}: no dnsmasq command line after `--` (dnsmasq is its own container)")
        process_name = given.get("dnsmasq-process") or "dnsmasq"
        named = [c for c in others if argv_of(c) and os.path.basename(argv_of(c)[0]) == process_name]
        if res.check(len(named) == 1, f"{f}: one container runs `{process_name}` (what --reload process signals)", f"found {len(named)}"):
            dnsmasq_container = named[0]
            dnsmasq_argv = argv_of(dnsmasq_container)
            uid = lambda c: (c.get("securityContext") or {}).get("runAsUser", (pod.get("securityContext") or {}).get("runAsUser"))
            res.check(uid(dnsmasq_container) == uid(broker) and uid(broker) is not None,
                      f"{f}: dnsmasq and the broker run as the same user (so it may signal dnsmasq)",
                      f"{uid(dnsmasq_container)} vs {uid(broker)}")
    else:
        res.note(f"{f}: layout `{layout}` has no layout-specific checks")

    # dnsmasq reads what the broker writes.
    if dnsmasq_argv:
        opts = dnsmasq_options(dnsmasq_argv)
        res.check(os.path.basename(dnsmasq_argv[0]) == "dnsmasq", f"{f}: dnsmasq is the command", f"{dnsmasq_argv[0]}")
        res.check("k" in opts or "keep-in-foreground" in opts or "d" in opts or "no-daemon" in opts,
                  f"{f}: dnsmasq stays in the foreground (-k)")
        for dflag, bflag, value in (("dhcp-hostsdir", "hosts-dir", hosts_dir), ("dhcp-optsdir", "opts-dir", opts_dir),
                                    ("dhcp-leasefile", "lease-file", lease_file)):
            res.check(opts.get(dflag) == value, f"{f}: dnsmasq --{dflag} is the broker's --{bflag}", f"{opts.get(dflag)!r} vs {value!r}")
            if value and opts.get(dflag) == value:
                b, d = resolve_path(broker, value), resolve_path(dnsmasq_container, value)
                res.check(b is not None and d is not None and b[:2] == d[:2],
                          f"{f}: {value} is the same place for the broker and dnsmasq", f"{b} vs {d}")
        caps = set(dnsmasq_container.get("securityContext", {}).get("capabilities", {}).get("add") or [])
        res.check({"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"} <= caps, f"{f}: dnsmasq's container adds NET_ADMIN, NET_RAW, NET_BIND_SERVICE",
                  f"adds {sorted(caps)}")
        check_dnsmasq_conf(f, dnsmasq_container, dnsmasq_argv, opts, volumes, by_kind, res, dnsmasq_bin)

    # Probes: GET /healthz and /readyz on the listen port, over HTTPS when
    # TLS is on. With --tls-client-ca the broker refuses connections that
    # bring no client certificate, as kubelet's do: TCP probes then.
    mtls = "tls-client-ca" in given
    for probe, expected in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        p = broker.get(probe)
        if p is None and probe == "startupProbe":
            continue
        if mtls:
            tcp = (p or {}).get("tcpSocket") or {}
            res.check(bool(tcp) and port_number(broker, tcp.get("port")) == listen_port,
                      f"{f}: the broker's {probe} is a TCP probe of the listen port (--tls-client-ca)",
                      "kubelet presents no client certificate, so the broker refuses its HTTP probes")
            continue
        http = (p or {}).get("httpGet") or {}
        res.check(http.get("path") == expected, f"{f}: the broker's {probe} is GET {expected}", f"got {http.get('path')!r}")
        res.check(port_number(broker, http.get("port")) == listen_port, f"{f}: the broker's {probe} uses the listen port",
                  f"port {http.get('port')!r}")
        scheme = "HTTPS" if tls else "HTTP"
        res.check(http.get("scheme", "HTTP") == scheme, f"{f}: the broker's {probe} uses {scheme}",
                  f"scheme {http.get('scheme', 'HTTP')}")

    # Prometheus.
    res.check(annotations.get("prometheus.io/scrape") == "true", f"{f}: prometheus.io/scrape is \"true\"")
    res.check(annotations.get("prometheus.io/port") == str(listen_port), f"{f}: prometheus.io/port is the listen port")
    res.check(annotations.get("prometheus.io/path") == "/metrics", f"{f}: prometheus.io/path is /metrics")
    res.check(annotations.get("prometheus.io/scheme", "http") == ("https" if tls else "http"),
              f"{f}: prometheus.io/scheme is {'https' if tls else 'http'}", f"got {annotations.get('prometheus.io/scheme')!r}")

    # Service for the conductors.
    services = [s for s in by_kind.get("Service", []) if labels_match(s["spec"].get("selector") or {}, pod_labels)]
    if res.check(len(services) == 1, f"{f}: one Service selects the pod", f"found {len(services)}"):
        ports = services[0]["spec"]["ports"]
        res.check(any(p["port"] == 8787 and port_number(broker, p.get("targetPort", p["port"])) == listen_port for p in ports),
                  f"{f}: the Service's port 8787 reaches the broker")
        res.check(wl["spec"].get("serviceName") in (None, services[0]["metadata"]["name"]) or wl["kind"] != "StatefulSet",
                  f"{f}: the StatefulSet's serviceName is the Service")

    # NetworkPolicy: the API only for selected peers.
    policies = [p for p in by_kind.get("NetworkPolicy", []) if labels_match(p["spec"]["podSelector"].get("matchLabels") or {}, pod_labels)]
    if res.check(len(policies) == 1, f"{f}: one NetworkPolicy selects the pod", f"found {len(policies)}"):
        pol = policies[0]["spec"]
        res.check("Ingress" in (pol.get("policyTypes") or []), f"{f}: the NetworkPolicy restricts ingress")
        api_rules = [r for r in pol.get("ingress") or []
                     if not r.get("ports") or any(p.get("port") in (listen_port, "api") and p.get("protocol", "TCP") == "TCP" for p in r["ports"])]
        res.check(bool(api_rules) and all(r.get("from") for r in api_rules),
                  f"{f}: every NetworkPolicy rule that opens the API port names its peers")

    # Resources and security contexts on every container.
    pod_sc = pod.get("securityContext") or {}
    res.check(pod_sc.get("runAsNonRoot") is True and isinstance(pod_sc.get("runAsUser"), int) and pod_sc["runAsUser"] != 0,
              f"{f}: the pod runs as a non-root user")
    for c in init_containers + containers:
        res.check(all(k in (c.get("resources") or {}).get(kind, {}) for kind in ("requests", "limits") for k in ("cpu", "memory")),
                  f"{f}: container {c['name']} has cpu and memory requests and limits")
        sc = c.get("securityContext") or {}
        res.check(sc.get("readOnlyRootFilesystem") is True, f"{f}: container {c['name']} has a read-only root filesystem")
        res.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{f}: container {c['name']} drops ALL capabilities")
        res.check("allowPrivilegeEscalation" in sc, f"{f}: container {c['name']} sets allowPrivilegeEscalation explicitly")
        if c is not dnsmasq_container:
            res.check(not (sc.get("capabilities") or {}).get("add"), f"{f}: container {c['name']} adds no capability")

    # subPaths of the claim are created by an init container as the pod's user.
    made = {a for c in init_containers for a in argv_of(c)}
    for c in containers:
        for m in c.get("volumeMounts") or []:
            if m.get("subPath") and "persistentVolumeClaim" in volumes.get(m["name"], {}):
                want = [v["mountPath"].rstrip("/") + "/" + m["subPath"] for v in (init_containers[0].get("volumeMounts") or [])
                        if v["name"] == m["name"]] if init_containers else []
                res.check(any(w in made for w in want), f"{f}: subPath {m['subPath']} of {c['name']} is created by an init container",
                          "kubelet would create it owned by root")


def check_secret_file(f: str, container: Dict[str, Any], volumes: Dict[str, Any], path: str, secret_name: str,
                      key: str, flag: str, secrets: Dict[str, List[str]], res: Results) -> None:
    """`path` (given to --`flag`) is key `key` of Secret `secret_name`,
    mounted read-only from a volume that is not optional."""
    r = resolve_path(container, path)
    vol = volumes.get(r[0], {}) if r else {}
    sec = vol.get("secret")
    if not res.check(sec is not None, f"{f} broker: --{flag} {path} is in a mounted Secret", f"resolves to {r}"):
        return
    res.check(sec.get("secretName") == secret_name, f"{f}: the Secret behind --{flag} is {secret_name}",
              f"got {sec.get('secretName')!r}")
    res.check(sec.get("optional") in (None, False), f"{f}: the Secret volume {r[0]} is not optional (--{flag} is required)",
              "optional: true would start the pod without the file")
    res.check(r[2], f"{f} broker: the Secret volume {r[0]} is mounted read-only")
    items = {i["path"]: i["key"] for i in sec.get("items") or []}
    got = items.get(r[1], r[1]) if items else r[1]
    res.check(got == key, f"{f}: --{flag} {path} is the Secret's key {key}", f"it is key {got!r}")
    if secret_name in secrets:
        res.check(key in secrets[secret_name], f"{f}: the Secret {secret_name} defined here has the key {key}",
                  f"its keys: {secrets[secret_name]}")
    elif secret_name == TOKEN_SECRET:
        res.note(f"{f}: Secret {secret_name} is not among the manifests checked (token-secret.yaml)")


def check_tls(f: str, broker: Dict[str, Any], volumes: Dict[str, Any], given: Dict[str, Optional[str]],
              secrets: Dict[str, List[str]], res: Results) -> bool:
    """The --tls-* flags, when given, name the keys of a mounted
    kubernetes.io/tls Secret; True when TLS is on."""
    cert, key, ca = given.get("tls-cert"), given.get("tls-key"), given.get("tls-client-ca")
    if not (cert or key or ca):
        return False
    res.check(bool(cert) and bool(key), f"{f} broker: --tls-cert and --tls-key are given together",
              "the broker refuses one without the other")
    for flag, value, k in (("tls-cert", cert, "tls.crt"), ("tls-key", key, "tls.key"), ("tls-client-ca", ca, "ca.crt")):
        if value:
            check_secret_file(f, broker, volumes, value, "hostsdir-broker-tls", k, flag, secrets, res)
    return True


def check_dnsmasq_conf(f: str, container: Dict[str, Any], argv: List[str], opts: Dict[str, str],
                       volumes: Dict[str, Any], by_kind: Dict[str, List[Dict[str, Any]]], res: Results,
                       dnsmasq_bin: Optional[str]) -> None:
    conf_path = opts.get("conf-file")
    if not res.check(bool(conf_path), f"{f}: dnsmasq is given --conf-file"):
        return
    r = resolve_path(container, conf_path)
    vol = volumes.get(r[0], {}) if r else {}
    cm_name = (vol.get("configMap") or {}).get("name")
    cms = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    if not res.check(r is not None and cm_name in cms and r[1] in cms[cm_name].get("data", {}),
                     f"{f}: --conf-file {conf_path} is a key of a ConfigMap in the file", f"{r}"):
        return
    conf = cms[cm_name]["data"][r[1]]
    keys = [ln.split("=", 1)[0].strip() for ln in conf.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    res.check("dhcp-range" in keys, f"{f}: dnsmasq.conf has a dhcp-range")
    clash = sorted({"dhcp-hostsdir", "dhcp-optsdir", "dhcp-leasefile", "port"} & set(keys))
    res.check(not clash, f"{f}: dnsmasq.conf leaves the directories, lease file and port to the command line", f"sets {clash}")
    res.check("log-facility" in keys, f"{f}: dnsmasq.conf logs to the container log (log-facility=-)")
    if (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        res.check("pid-file=" in [ln.strip() for ln in conf.splitlines()], f"{f}: dnsmasq.conf disables the pid file (read-only root filesystem)")
    if dnsmasq_bin is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        conf_file = pathlib.Path(tmp) / "dnsmasq.conf"
        conf_file.write_text(conf, encoding="utf-8")
        cmd = [dnsmasq_bin, "--test"] + [a if not a.startswith("--conf-file") else f"--conf-file={conf_file}" for a in argv[1:]]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        res.check(p.returncode == 0, f"{f}: `dnsmasq --test` accepts the command line and dnsmasq.conf",
                  (p.stderr or p.stdout).strip())


def check_token_secret(path: pathlib.Path, docs: List[Dict[str, Any]], res: Results) -> None:
    f = path.name
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if not res.check(len(secrets) == 1, f"{f}: one Secret", f"found {len(secrets)}"):
        return
    s = secrets[0]
    res.check(s["metadata"]["name"] == "hostsdir-broker-tokens", f"{f}: the Secret is hostsdir-broker-tokens")
    text = (s.get("stringData") or {}).get("tokens")
    if not res.check(isinstance(text, str), f"{f}: the Secret has a `tokens` key"):
        return
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    ok = res.check(bool(lines) and all(len(ln.split()) == 2 and ln.split()[0] in ("read", "write") for ln in lines),
                   f"{f}: every token line is `<role> <token>` with role read or write", f"{lines}")
    if not ok:
        return
    tokens = [ln.split()[1] for ln in lines]
    res.check(all(len(tok) >= 16 for tok in tokens), f"{f}: every token has at least 16 characters (the broker's minimum)",
              f"lengths {[len(tok) for tok in tokens]}")
    res.check(len(set(tokens)) == len(tokens), f"{f}: the tokens differ from each other")
    res.check(any(ln.split()[0] == "write" for ln in lines), f"{f}: there is a `write` token (what conductors need)")
    res.check(all("REPLACE-ME" in tok for tok in tokens), f"{f}: the tokens are obvious placeholders (REPLACE-ME)",
              "real tokens do not belong in the repository")
    raw = path.read_text(encoding="utf-8")
    res.check("openssl rand" in raw and "token_file" in raw,
              f"{f}: says how to make real tokens (openssl rand) and how conductors get theirs ([hostsdir_broker] token_file)")


def find_dnsmasq() -> Optional[str]:
    explicit = os.environ.get("DNSMASQ")
    if explicit:
        return explicit
    return shutil.which("dnsmasq") or next((p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.access(p, os.X_OK)), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubernetes-version", action="append", required=True,
                    help="Kubernetes version to validate against (repeatable)")
    ap.add_argument("--dockerfile-lint", choices=("passed", "failed", "skipped"),
                    help="the outcome of validate.sh's hadolint run, counted in the summary")
    ap.add_argument("files", nargs="*", type=pathlib.Path, help="manifests (default: every *.yaml beside this script)")
    a = ap.parse_args()
    files = a.files or sorted(HERE.glob("*.yaml"))
    res = Results()
    print(f"kubernetes-validate {KV_VERSION}, schemas from {pathlib.Path(kv.__file__).parent / 'kubernetes-json-schema'}")
    res.check(bool(files), "there are manifests to check", f"none in {HERE}")

    # Each file as written, and each layout again with TLS turned on.
    manifests: List[Tuple[str, str, List[Dict[str, Any]]]] = []   # (label, layout, docs)
    for path in files:
        text = path.read_text(encoding="utf-8")
        docs = parse_documents(text)
        manifests.append((path.name, path.stem, docs))
        if any(d["kind"] in WORKLOAD_KINDS for d in docs):
            variant = tls_variant(text)
            if res.check(variant is not None, f"{path.name}: offers TLS as commented-out `#tls ` lines"):
                manifests.append((f"{path.name} (TLS on)", path.stem, parse_documents(variant)))
    check_schemas([(label, docs) for label, _, docs in manifests], a.kubernetes_version, res)

    flag_docs = load_flag_docs(res)
    secrets = {d["metadata"]["name"]: sorted({*(d.get("stringData") or {}), *(d.get("data") or {})})
               for _, _, docs in manifests for d in docs if d["kind"] == "Secret"}
    dnsmasq_bin = find_dnsmasq()
    if dnsmasq_bin is None:
        res.note("dnsmasq not found: the `dnsmasq --test` syntax check of the command line and dnsmasq.conf is not run")
    seen_layouts = set()
    for label, layout, docs in manifests:
        if any(d["kind"] in WORKLOAD_KINDS for d in docs):
            seen_layouts.add(layout)
            check_workload(label, layout, docs, flag_docs, secrets, res, dnsmasq_bin)
    for path in files:
        docs = load_documents(path)
        if not any(d["kind"] in WORKLOAD_KINDS for d in docs) and any(d["kind"] == "Secret" for d in docs):
            check_token_secret(path, docs, res)
    # The layouts differ only in their workload.
    layouts = {p.stem: p for p in files if p.stem in ("supervised", "sidecar")}
    if len(layouts) == 2:
        objs = {stem: {(d["kind"], d["metadata"]["name"]): d for d in load_documents(p) if d["kind"] not in WORKLOAD_KINDS}
                for stem, p in layouts.items()}
        res.check(objs["supervised"] == objs["sidecar"], "supervised.yaml and sidecar.yaml hold the same objects besides the workload",
                  f"differ in {sorted(k for k in set(objs['supervised']) | set(objs['sidecar']) if objs['supervised'].get(k) != objs['sidecar'].get(k))}")
    if not a.files:
        res.check({"supervised", "sidecar"} <= seen_layouts, "both layouts (supervised.yaml, sidecar.yaml) were checked",
                  f"checked {sorted(seen_layouts)}")

    if a.dockerfile_lint == "skipped":
        res.note("Dockerfile: hadolint could not be installed, not linted")
    elif a.dockerfile_lint:
        res.check(a.dockerfile_lint == "passed", "Dockerfile: hadolint finds nothing at warning level or above", "see its output above")

    print()
    for line in res.failed:
        print(f"FAILED: {line}")
    print(f"kubernetes manifests: {res.passed} passed, {len(res.failed)} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
