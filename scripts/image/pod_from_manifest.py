#!/usr/bin/env python3
"""Runs a layout of examples/kubernetes/ as podman would have to, read from
the YAML itself, so scripts/test-image.sh cannot drift from the manifests.

podman 4.3's `kube play` refuses a StatefulSet, and `podman pod create`
refuses a network namespace the test made (`pods presently do not support
network mode path`). So the test starts an infra container in that
namespace, as kubelet starts its "pause" container, and this script reads
the StatefulSet's pod template and translates it, field by field, into
`podman run` arguments that join the infra container's network, IPC and
UTS namespaces (and its PID namespace with `shareProcessNamespace`): the
same user and groups, `--cap-drop` / `--cap-add` exactly as the manifest
says (with Kubernetes' rule for non-root users: k8s_caps_hook.py), no_new_privs where
`allowPrivilegeEscalation: false`, a read-only root WITHOUT podman's extra
tmpfs mounts (Kubernetes adds none), the manifest's volumes and mounts
(subPath and readOnly included), environment, command, resource limits and
termination grace period. Every field of the pod spec, container and
security context is either translated or listed below as knowingly
ignored, with the reason; anything else FAILS, so a new field in a
manifest makes the test fail until it is handled here.

Stand-ins for what only a cluster has (the test's README section says so):
- hostNetwork: the pod's network is a namespace the test made, whose
  interface carries the name in dnsmasq.conf's `interface=`;
- the PersistentVolumeClaim: a host directory, group-owned by fsGroup with
  the setgid bit, as kubelet prepares a volume for fsGroup;
- ConfigMap and Secret volumes: directories holding their keys, owned by
  root, group fsGroup, mode defaultMode (0644 when unset), mounted
  read-only as kubelet does;
- emptyDir: a fresh mode-0777 directory (sizeLimit not enforced).

Usage (all output on stdout):
  pod_from_manifest.py facts LAYOUT.yaml
      shell assignments (KEY='value') describing the pod, for `eval`
  pod_from_manifest.py volumes LAYOUT.yaml ROOT TOKENS_FILE
      creates the volume directories under ROOT; TOKENS_FILE becomes the
      token Secret's key
  pod_from_manifest.py run-args LAYOUT.yaml CONTAINER ROOT IMAGE INFRA NAME NODE_IP
      the `podman run` arguments for one (init) container, NUL-separated;
      INFRA is the container whose namespaces stand for the pod's
"""

import ipaddress
import os
import re
import shlex
import sys

import yaml

# Pod spec fields that are deliberately not translated, and why.
POD_IGNORED = {
    "dnsPolicy": "the broker and dnsmasq resolve no names in the test",
    "nodeSelector": "no scheduler: the test's namespace is the node",
}
POD_HANDLED = {
    "hostNetwork",
    "shareProcessNamespace",
    "terminationGracePeriodSeconds",
    "securityContext",
    "initContainers",
    "containers",
    "volumes",
}
CONTAINER_IGNORED = {
    "imagePullPolicy": "the image is the one the test just built",
    "ports": "host network: nothing to publish",
    "livenessProbe": "kubelet's; the test calls /healthz itself",
    "readinessProbe": "kubelet's; the test calls the probe's path itself",
    "startupProbe": "kubelet's; the test waits on the probe's path itself",
}
CONTAINER_HANDLED = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "resources",
    "securityContext",
    "volumeMounts",
}
POD_SECURITY = {
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    # Only decides whether kubelet re-chowns an existing volume; the test's
    # volumes are new and prepared as kubelet would.
    "fsGroupChangePolicy",
    "seccompProfile",
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "capabilities",
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "privileged",
}


class ManifestError(Exception):
    """A manifest the test cannot run faithfully: the message names the field."""


def load(path):
    """All documents of a layout file, by kind."""
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
    except OSError as e:
        raise ManifestError(f"cannot read `{path}`: {e}") from e
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    return by_kind


def pod_spec(docs, path):
    """The pod template of the layout's one StatefulSet."""
    sets = docs.get("StatefulSet", [])
    if len(sets) != 1:
        raise ManifestError(f"`{path}`: expected one StatefulSet, found {len(sets)}")
    spec = sets[0]["spec"]["template"]["spec"]
    check_keys(spec, POD_HANDLED | set(POD_IGNORED), f"{path}: the pod template")
    if spec.get("hostNetwork") is not True:
        raise ManifestError(
            f"`{path}`: the test runs host-network pods only (DHCP needs the node's "
            "network), but hostNetwork is not true"
        )
    return spec


def check_keys(obj, known, where):
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ManifestError(
            f"{where} has fields this test does not translate: {', '.join(unknown)} "
            "(handle them in scripts/image/pod_from_manifest.py)"
        )


def all_containers(spec):
    """(container, is_init) in the order kubelet starts them."""
    return [(c, True) for c in spec.get("initContainers", [])] + [
        (c, False) for c in spec["containers"]
    ]


def container(spec, name, path):
    for c, init in all_containers(spec):
        if c["name"] == name:
            return c, init
    raise ManifestError(f"`{path}` has no container `{name}`")


def user_of(spec, c):
    """(uid, gid) the container runs as: its own securityContext, else the pod's."""
    pod = spec.get("securityContext", {})
    own = c.get("securityContext", {})
    uid = own.get("runAsUser", pod.get("runAsUser"))
    gid = own.get("runAsGroup", pod.get("runAsGroup"))
    if uid is None or gid is None:
        raise ManifestError(
            f"container `{c['name']}`: runAsUser and runAsGroup must be set "
            "(the test does not guess the image's user)"
        )
    if own.get("runAsNonRoot", pod.get("runAsNonRoot")) and uid == 0:
        raise ManifestError(f"container `{c['name']}`: runAsNonRoot with runAsUser 0")
    return int(uid), int(gid)


def the_image(spec, path):
    images = {c["image"] for c, _ in all_containers(spec)}
    if len(images) != 1:
        raise ManifestError(
            f"`{path}`: the containers use several images ({', '.join(sorted(images))}); "
            "the test builds one, from the Dockerfile"
        )
    return images.pop()


def api_container(spec, path):
    """The container running `hostsdir-broker serve`, and its flags."""
    for c in spec["containers"]:
        cmd = c.get("command", [])
        if cmd[:2] == ["hostsdir-broker", "serve"]:
            return c
    raise ManifestError(f"`{path}`: no container runs `hostsdir-broker serve`")


def flag(cmd, name):
    """The value of `--name=value` or `--name value` before any `--`."""
    for i, a in enumerate(cmd):
        if a == "--":
            break
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(cmd):
            return cmd[i + 1]
    return None


def probe(c, kind):
    """(path, port, limit_seconds) of an httpGet probe: limit is how long
    kubelet would wait before giving up (initialDelay + period x failures)."""
    p = c.get(kind)
    if not p or "httpGet" not in p:
        raise ManifestError(f"container `{c['name']}` has no httpGet {kind}")
    get = p["httpGet"]
    if get.get("scheme", "HTTP") != "HTTP":
        raise ManifestError(f"container `{c['name']}`: {kind} uses {get['scheme']}; the test runs without TLS")
    port = get["port"]
    if isinstance(port, str):
        named = [x["containerPort"] for x in c.get("ports", []) if x.get("name") == port]
        if not named:
            raise ManifestError(f"container `{c['name']}`: {kind} names port `{port}`, which it does not declare")
        port = named[0]
    limit = p.get("initialDelaySeconds", 0) + p.get("periodSeconds", 10) * p.get("failureThreshold", 3)
    return get["path"], int(port), int(limit)


def dnsmasq_conf(docs, spec, path):
    """The dnsmasq.conf of the ConfigMap mounted at /etc/dnsmasq."""
    maps = {m["metadata"]["name"]: m for m in docs.get("ConfigMap", [])}
    for v in spec.get("volumes", []):
        if "configMap" in v and "dnsmasq.conf" in maps.get(v["configMap"]["name"], {}).get("data", {}):
            return maps[v["configMap"]["name"]]["data"]["dnsmasq.conf"]
    raise ManifestError(f"`{path}`: no ConfigMap volume holds dnsmasq.conf")


def conf_value(conf, key, path):
    values = [
        line.split("=", 1)[1].strip()
        for line in conf.splitlines()
        if line.strip().startswith(key + "=")
    ]
    if len(values) != 1:
        raise ManifestError(f"`{path}`: dnsmasq.conf must have exactly one `{key}=` line, has {len(values)}")
    return values[0]


def dhcp_network(conf, path):
    """interface, the range (first, last), the subnet, and addresses for the
    test: the server's (.10) and two reservations (.50, .51), all checked to
    be inside the subnet and outside the pool and the router."""
    iface = conf_value(conf, "interface", path)
    fields = conf_value(conf, "dhcp-range", path).split(",")
    addrs = []
    for f in fields:
        try:
            addrs.append(ipaddress.IPv4Address(f))
        except ValueError:
            pass
    if len(addrs) != 3:
        raise ManifestError(f"`{path}`: dhcp-range `{','.join(fields)}` is not start,end,netmask")
    first, last, mask = addrs
    net = ipaddress.IPv4Network(f"{first}/{mask}", strict=False)
    router = None
    for line in conf.splitlines():
        m = re.search(r"option:router,([0-9.]+)", line)
        if m:
            router = ipaddress.IPv4Address(m.group(1))
    picks = [net.network_address + n for n in (10, 50, 51)]
    for a in picks:
        if a not in net or first <= a <= last or a == router:
            raise ManifestError(f"`{path}`: cannot place test address {a} in {net} outside {first}-{last}")
    return iface, first, last, net, picks


def dnsmasq_container(spec, api, path):
    """The container that runs dnsmasq: its own, or the broker's (after `--`)."""
    for c in spec["containers"]:
        if c.get("command", [None])[0] == "dnsmasq":
            return c
    cmd = api["command"]
    if "--" in cmd and cmd[cmd.index("--") + 1 :][:1] == ["dnsmasq"]:
        return api
    raise ManifestError(f"`{path}`: no container runs dnsmasq")


def facts(path):
    docs = load(path)
    spec = pod_spec(docs, path)
    api = api_container(spec, path)
    cmd = api["command"]
    uid, gid = user_of(spec, api)
    startup = probe(api, "startupProbe")
    ready = probe(api, "readinessProbe")
    iface, first, last, net, (server, res1, res2) = dhcp_network(dnsmasq_conf(docs, spec, path), path)
    listen = flag(cmd, "--listen") or ""
    out = {
        "POD_SHARE_PID": "1" if spec.get("shareProcessNamespace") else "0",
        "POD_GRACE": str(spec.get("terminationGracePeriodSeconds", 30)),
        "POD_UID": str(uid),
        "POD_GID": str(gid),
        "POD_INIT_CONTAINERS": " ".join(c["name"] for c in spec.get("initContainers", [])),
        "POD_CONTAINERS": " ".join(c["name"] for c in spec["containers"]),
        "POD_IMAGE": the_image(spec, path),
        "API_CONTAINER": api["name"],
        "DNSMASQ_CONTAINER": dnsmasq_container(spec, api, path)["name"],
        "API_PORT": listen.rsplit(":", 1)[-1],
        "API_TOKEN_FILE": flag(cmd, "--token-file") or "",
        "API_RELOAD": flag(cmd, "--reload") or ("supervise" if "--" in cmd else "none"),
        "STARTUP_PATH": startup[0],
        "STARTUP_PORT": str(startup[1]),
        "STARTUP_LIMIT_S": str(startup[2]),
        "READY_PATH": ready[0],
        "DHCP_IFACE": iface,
        "DHCP_POOL_FIRST": str(first),
        "DHCP_POOL_LAST": str(last),
        "DHCP_PREFIX": str(net.prefixlen),
        "SERVER_IP": str(server),
        "RESERVED_IP_1": str(res1),
        "RESERVED_IP_2": str(res2),
    }
    if not out["API_PORT"].isdigit() or out["API_PORT"] != str(startup[1]):
        raise ManifestError(f"`{path}`: --listen `{listen}` is not the startup probe's port {startup[1]}")
    for k, v in out.items():
        print(f"{k}={shlex.quote(v)}")


def fs_group(spec):
    return spec.get("securityContext", {}).get("fsGroup")


def volumes(path, root, tokens_file):
    """Creates each pod volume under ROOT as kubelet would hand it over."""
    docs = load(path)
    spec = pod_spec(docs, path)
    group = fs_group(spec)
    maps = {m["metadata"]["name"]: m for m in docs.get("ConfigMap", [])}
    claims = {c["metadata"]["name"] for c in docs.get("PersistentVolumeClaim", [])}
    for v in spec.get("volumes", []):
        d = volume_dir(root, v)
        os.makedirs(d, exist_ok=False)
        if "persistentVolumeClaim" in v:
            name = v["persistentVolumeClaim"]["claimName"]
            if name not in claims:
                raise ManifestError(f"`{path}`: volume `{v['name']}` claims `{name}`, which the file does not define")
            # fsGroup: group-owned, setgid, group-writable (kubelet's
            # SetVolumeOwnership).
            os.chown(d, 0, group if group is not None else 0)
            os.chmod(d, 0o2775 if group is not None else 0o755)
        elif "configMap" in v:
            name = v["configMap"]["name"]
            if name not in maps:
                raise ManifestError(f"`{path}`: volume `{v['name']}` uses ConfigMap `{name}`, which the file does not define")
            mode = v["configMap"].get("defaultMode", 0o644)
            for key, text in maps[name].get("data", {}).items():
                write_key(d, key, text.encode(), mode, group)
        elif "secret" in v:
            name = v["secret"]["secretName"]
            if name != "hostsdir-broker-tokens":
                raise ManifestError(f"`{path}`: volume `{v['name']}` uses Secret `{name}`; the test provides only hostsdir-broker-tokens")
            with open(tokens_file, "rb") as f:
                write_key(d, "tokens", f.read(), v["secret"].get("defaultMode", 0o644), group)
        elif "emptyDir" in v:
            if v["emptyDir"].get("medium"):
                raise ManifestError(f"`{path}`: emptyDir `{v['name']}` has a medium; the test makes disk emptyDirs only")
            os.chmod(d, 0o777)
        else:
            raise ManifestError(f"`{path}`: volume `{v['name']}` is of a type this test does not provide")


def write_key(d, key, data, mode, group):
    p = os.path.join(d, key)
    with open(p, "wb") as f:
        f.write(data)
    os.chown(p, 0, group if group is not None else 0)
    os.chmod(p, mode)
    os.chown(d, 0, group if group is not None else 0)
    os.chmod(d, 0o755)


def volume_dir(root, v):
    return os.path.join(root, "volume-" + v["name"])


def quantity_bytes(q, where):
    m = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi)?", str(q))
    if not m:
        raise ManifestError(f"{where}: memory `{q}` is not a quantity this test understands")
    return int(m.group(1)) * {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}[m.group(2)]


def quantity_cpus(q, where):
    m = re.fullmatch(r"([0-9]+)(m)?", str(q))
    if not m:
        raise ManifestError(f"{where}: cpu `{q}` is not a quantity this test understands")
    return int(m.group(1)) / (1000 if m.group(2) else 1)


def expand(s, env):
    """Kubernetes' $(VAR) expansion of command and args; $$ escapes."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        s,
    )


def run_args(path, name, root, image, infra, ctr_name, node_ip):
    docs = load(path)
    spec = pod_spec(docs, path)
    c, _ = container(spec, name, path)
    where = f"{path}: container `{name}`"
    check_keys(c, CONTAINER_HANDLED | set(CONTAINER_IGNORED), where)
    pod_sec = spec.get("securityContext", {})
    check_keys(pod_sec, POD_SECURITY, f"{path}: the pod securityContext")
    sec = c.get("securityContext", {})
    check_keys(sec, CONTAINER_SECURITY, f"{where}: securityContext")
    if sec.get("privileged"):
        raise ManifestError(f"{where}: privileged")
    uid, gid = user_of(spec, c)
    # The pod: its namespaces are those of the infra container (kubelet's
    # "pause"), which the test starts in its network namespace.
    shared = ["network", "ipc", "uts"] + (["pid"] if spec.get("shareProcessNamespace") else [])
    args = [f"--{ns}=container:{infra}" for ns in shared]
    args += ["--name", ctr_name, "--pull=never", f"--user={uid}:{gid}"]
    if fs_group(spec) is not None:
        args.append(f"--group-add={fs_group(spec)}")
    seccomp = pod_sec.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp != "RuntimeDefault":
        raise ManifestError(f"{path}: seccompProfile `{seccomp}`: the test knows only RuntimeDefault (podman's default)")
    caps = sec.get("capabilities", {})
    check_keys(caps, {"add", "drop"}, f"{where}: capabilities")
    args += [f"--cap-drop={x}" for x in caps.get("drop", [])]
    args += [f"--cap-add={x}" for x in caps.get("add", [])]
    if sec.get("allowPrivilegeEscalation", True) is False:
        args.append("--security-opt=no-new-privileges")
    if sec.get("readOnlyRootFilesystem"):
        # podman would add tmpfs on /tmp, /var/tmp and /run; kubelet does not.
        args += ["--read-only", "--read-only-tmpfs=false"]
    args.append(f"--stop-timeout={spec.get('terminationGracePeriodSeconds', 30)}")
    limits = c.get("resources", {}).get("limits", {})
    check_keys(limits, {"cpu", "memory"}, f"{where}: resources.limits")
    if "memory" in limits:
        args.append(f"--memory={quantity_bytes(limits['memory'], where)}")
    if "cpu" in limits:
        args.append(f"--cpus={quantity_cpus(limits['cpu'], where)}")
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.hostIP":
            env[e["name"]] = node_ip
        else:
            raise ManifestError(f"{where}: env `{e['name']}` comes from a source the test does not provide")
    args += [f"--env={k}={v}" for k, v in env.items()]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        check_keys(m, {"name", "mountPath", "subPath", "readOnly"}, f"{where}: volumeMount `{m.get('name')}`")
        v = vols.get(m["name"])
        if v is None:
            raise ManifestError(f"{where}: mounts volume `{m['name']}`, which the pod does not define")
        src = volume_dir(root, v)
        if "subPath" in m:
            src = os.path.join(src, m["subPath"])
            if not os.path.isdir(src):
                # kubelet creates a missing subPath itself, as root.
                os.makedirs(src, mode=0o755)
        # kubelet mounts ConfigMap and Secret volumes read-only, always.
        ro = m.get("readOnly", False) or "configMap" in v or "secret" in v
        args.append(f"--volume={src}:{m['mountPath']}:{'ro' if ro else 'rw'}")
    cmd = [expand(x, env) for x in c.get("command", [])]
    rest = [expand(x, env) for x in c.get("args", [])]
    if not cmd:
        raise ManifestError(f"{where}: no command; the test runs what the manifest says, not the image's default")
    args += [f"--entrypoint={cmd[0]}", image] + cmd[1:] + rest
    sys.stdout.write("\0".join(args) + "\0")


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "facts":
            facts(argv[2])
        elif len(argv) == 5 and argv[1] == "volumes":
            volumes(argv[2], argv[3], argv[4])
        elif len(argv) == 9 and argv[1] == "run-args":
            run_args(*argv[2:])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ManifestError as e:
        print(f"pod_from_manifest: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
