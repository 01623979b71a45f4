#!/usr/bin/env bash
# Builds the container image from the repository's own Dockerfile and runs
# both Kubernetes layouts of examples/kubernetes/ from it, as their
# manifests say, each serving DHCP to a real client (busybox udhcpc).
#
#   sudo scripts/test-image.sh        (called by scripts/test-all.sh)
#
# 1. Installs podman and what it needs (Debian packages), and uses the
#    podman settings in scripts/image/containers.conf through
#    CONTAINERS_CONF; the machine's own configuration is never edited.
# 2. Makes the base images with mmdebstrap from the Debian mirror apt
#    already uses (no registry is needed): a builder (Debian trixie with
#    cargo and rustc from trixie-backports, plus this machine's CA bundle,
#    so cargo can reach crates.io through an intercepting proxy) and a
#    runtime base (Debian forky, minbase, slimmed like debian:*-slim), and
#    a bookworm one to see the Dockerfile's version gate refuse dnsmasq 2.90.
#    They are cached in $HDB_IMAGE_CACHE (default
#    /var/cache/hostsdir-broker/image-test) and in podman's store, keyed by
#    their recipe, the mirror and the CA bundle, and rebuilt after
#    $HDB_IMAGE_BASE_MAX_AGE_DAYS (default 7) days: forky moves.
# 3. Builds the image (`podman build` of ./Dockerfile, base images given as
#    --build-arg). The image localhost/hostsdir-broker:image-test and its
#    build layers stay in podman's store as the build cache.
# 4. Runs supervised.yaml and sidecar.yaml: each StatefulSet's pod template
#    is translated by scripts/image/pod_from_manifest.py into `podman run`
#    arguments (user, groups, capabilities, no_new_privs, read-only root,
#    volumes, env, command, limits, grace period), read from the YAML so the
#    test cannot drift from the manifests. The pod's network is a network
#    namespace made here, joined by a veth pair to a client namespace where
#    udhcpc asks for leases. The checks are listed in
#    examples/kubernetes/README.md ("What the image test proves").
#
# Needs root. Fails loudly (non-zero exit, a `test-image: FAIL:` line) on
# anything it cannot do; it never skips. Cleans up every container,
# namespace and temporary file it made, on any exit.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here="$top/scripts/image"
k8s="$top/examples/kubernetes"
cache="${HDB_IMAGE_CACHE:-/var/cache/hostsdir-broker/image-test}"
max_age_days="${HDB_IMAGE_BASE_MAX_AGE_DAYS:-7}"
image=localhost/hostsdir-broker:image-test
prefix="hdbimg-$$"

say() { echo "test-image: $*" >&2; }
die() {
    echo "test-image: FAIL: $*" >&2
    dump_logs
    exit 1
}
checks=0
ok() {
    checks=$((checks + 1))
    say "ok: $*"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- cleanup ---------------------------------------------------------------
work=""
infras=()
netns=()
logs_ctrs=()
dump_logs() {
    local c
    for c in "${logs_ctrs[@]}"; do
        echo "----- last log lines of container $c -----" >&2
        podman logs --tail 40 "$c" >&2 2>&1 || true
    done
}
# kill_tree PID: the process and its descendants, by pid.
kill_tree() {
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done
    kill "$1" 2>/dev/null || true
}
jobs_=()
cleanup() {
    local c n j
    # Base images still being made (the script was interrupted).
    for j in "${jobs_[@]}"; do kill_tree "${j%%:*}"; done
    for c in "${infras[@]}"; do
        podman rm -f --depend "$c" >/dev/null 2>&1 || true
    done
    for n in "${netns[@]}"; do
        ip netns del "$n" 2>/dev/null || true
    done
    [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Leftovers of a run that was killed (its pid is gone).
remove_stale() {
    local name pid
    for name in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep -E '^hdbimg-[0-9]+-.*-infra$' || true); do
        pid=${name#hdbimg-}
        pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null || podman rm -f --depend "$name" >/dev/null 2>&1 || true
    done
    for name in $(ip netns list | awk '{print $1}' | grep -E '^hdbimg-[0-9]+-' || true); do
        pid=${name#hdbimg-}
        pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null || ip netns del "$name" 2>/dev/null || true
    done
}

# --- 1. packages -------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (podman as root, network namespaces); try: sudo $0"
command -v apt-get >/dev/null || die "apt-get not found: this test expects a Debian machine"
# podman and the OCI runtime its settings name; netavark/aardvark-dns and
# iptables give build steps a network; catatonit is the pod's init; uidmap
# and fuse-overlayfs are podman's storage helpers; mmdebstrap makes the bases.
wanted=(podman runc netavark aardvark-dns iptables catatonit uidmap fuse-overlayfs
    mmdebstrap debian-archive-keyring udhcpc iproute2 curl python3 python3-yaml)
missing=()
for pkg in "${wanted[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" = installed ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
        || die "apt-get install ${missing[*]} failed"
fi
for tool in podman mmdebstrap udhcpc ip curl python3; do
    command -v "$tool" >/dev/null || die "$tool is still missing after installing ${wanted[*]}"
done
python3 -c 'import yaml' || die "python3 cannot import yaml (package python3-yaml)"

export CONTAINERS_CONF="$here/containers.conf"
[ -f "$CONTAINERS_CONF" ] || die "missing $CONTAINERS_CONF"
podman info >/dev/null 2>&1 || die "podman does not work here: $(podman info 2>&1 | tail -n 3)"
remove_stale
work=$(mktemp -d /tmp/hdbimg.XXXXXX)
chmod 0755 "$work"
t_start=$(now)

# --- 2. base images ----------------------------------------------------------
# The mirror of the machine's own Debian release, as apt has it configured.
# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
# shellcheck disable=SC2016 # $(RELEASE) and $(REPO_URI) are apt's
mirror="${HDB_IMAGE_MIRROR:-$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
    | awk -v c="$codename" '$1 == c && !found { print $2; found = 1 }')}"
mirror="${mirror%/}"
[ -n "$mirror" ] || die "cannot find the Debian mirror apt uses for '$codename' (set HDB_IMAGE_MIRROR=http://...)"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle (needed by the builder base to reach crates.io)"
ca_sum=$(sha256sum "$ca_bundle" | cut -c1-64)
# Common to both bases. Check-Valid-Until is off because this machine's
# mirror may be a snapshot whose Release files (forky's are valid for a
# week) have expired; it is a property of the test's mirror, so it lives in
# the test's base images, never in the Dockerfile.
base_opts=(--variant=minbase --format=tar "--aptopt=Acquire::Check-Valid-Until \"false\"")
# shellcheck disable=SC2034 # used by ensure_base, through a nameref
slim_opts=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*')
recipe_version=1

# ensure_base NAME KEY-MATERIAL OPTIONS-ARRAY-NAME SUITE MIRROR...: prints
# the image name.
ensure_base() {
    local name=$1 material=$2 suite=$4 key tar ref old
    local -n opts=$3
    shift 4
    key=$(printf '%s\n' "$recipe_version" "$material" "${base_opts[@]}" "${opts[@]}" "$suite" "$@" \
        | sha256sum | cut -c1-16)
    tar="$cache/$name-$key.tar"
    ref="localhost/hostsdir-broker-test/$name:$key"
    mkdir -p "$cache"
    if [ -f "$tar" ] && [ -n "$(find "$tar" -mtime +"$max_age_days")" ]; then
        say "base $name: cached tarball older than $max_age_days days, rebuilding"
        rm -f "$tar"
    fi
    if [ ! -f "$tar" ]; then
        local t0 log="$cache/$name-$key.log"
        t0=$(now)
        say "base $name: mmdebstrap $suite (log: $log)"
        rm -f "$cache/.$name-$key.tar"
        nice -n 10 mmdebstrap "${base_opts[@]}" "${opts[@]}" "$suite" "$cache/.$name-$key.tar" "$@" >"$log" 2>&1 \
            || { tail -n 20 "$log" >&2; die "mmdebstrap failed for the $name base (log: $log)"; }
        mv "$cache/.$name-$key.tar" "$tar"
        podman rmi -f "$ref" >/dev/null 2>&1 || true
        say "base $name: made in $(since "$t0") s"
    fi
    if ! podman image exists "$ref"; then
        podman import -q --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' "$tar" "$ref" >/dev/null \
            || die "podman import $tar failed"
    fi
    # Drop the bases of other keys (stale recipes, mirrors or CA bundles).
    for old in "$cache/$name"-*.tar; do
        [ "$old" = "$tar" ] || rm -f "$old" "${old%.tar}.log"
    done
    rm -f "$cache/.$name"-*.tar
    for old in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/hostsdir-broker-test/$name:" || true); do
        [ "$old" = "$ref" ] || podman rmi -f "$old" >/dev/null 2>&1 || true
    done
    echo "$ref"
}

t_bases=$(now)
# $1 is mmdebstrap's, expanded by its hook shell; used through a nameref.
# shellcheck disable=SC2016,SC2034
builder_opts=(--include='ca-certificates,cargo/trixie-backports,rustc/trixie-backports'
    --customize-hook="cp '$ca_bundle' \"\$1/usr/local/share/ca-certificates/test-host-bundle.crt\""
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1')
# The three at once: mostly downloads and unpacking, so they overlap well.
# (A background job does not inherit the EXIT trap: its `die` ends only it.)
ensure_base builder "ca=$ca_sum" builder_opts trixie "deb $mirror trixie main" \
    "deb $mirror trixie-backports main" >"$work/base-builder" &
jobs_=("$!:builder")
ensure_base runtime "" slim_opts forky "deb $mirror forky main" >"$work/base-runtime" &
jobs_+=("$!:runtime")
# Only for the version gate's refusal (dnsmasq 2.90), below.
ensure_base bookworm "" slim_opts bookworm "deb $mirror bookworm main" >"$work/base-bookworm" &
jobs_+=("$!:bookworm")
failed=""
for j in "${jobs_[@]}"; do
    wait "${j%%:*}" || failed+=" ${j#*:}"
done
jobs_=()
[ -z "$failed" ] || die "making the base image(s)$failed failed (see above)"
builder=$(cat "$work/base-builder")
runtime=$(cat "$work/base-runtime")
old_runtime=$(cat "$work/base-bookworm")
bases_s=$(since "$t_bases")
say "bases ready in $bases_s s: $builder, $runtime"
# rust-version of Cargo.toml against the builder's rustc: a clear message
# instead of a cargo error deep in the build log.
need_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$top/Cargo.toml")
have_rust=$(podman run --rm --network=none "$builder" rustc --version | awk '{print $2}')
printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V -C \
    || die "the builder base has rustc $have_rust, Cargo.toml needs $need_rust (trixie-backports changed?)"

# --- 3. the image ------------------------------------------------------------
t_build=$(now)
build_log="$work/build.log"
say "building $image from $top/Dockerfile (log: $build_log while running)"
# The `build` stage first, under a tag of its own: its layers (the compiled
# dependencies above all) are then not dangling, so the prune below keeps
# them as the cache of the next run. The second build reuses them.
for target in build final; do
    tag=$image
    args=()
    [ "$target" = build ] && { tag=$image-build-stage; args=(--target build); }
    nice -n 10 podman build --pull=never "${args[@]}" \
        --build-arg "BUILDER_IMAGE=$builder" --build-arg "RUNTIME_IMAGE=$runtime" \
        -t "$tag" -f "$top/Dockerfile" "$top" >>"$build_log" 2>&1 \
        || { tail -n 40 "$build_log" >&2; die "podman build of $top/Dockerfile ($target) failed (output above)"; }
done
build_s=$(since "$t_build")
# Layers of earlier builds that no tag uses any more.
podman image prune -f >/dev/null 2>&1 || true
dnsmasq_version=$(sed -n 's/^dnsmasq \([0-9][0-9.]*\)$/\1/p' "$build_log" | tail -n 1)
if [ -z "$dnsmasq_version" ]; then
    # A build served from the layer cache prints no RUN output: ask the image.
    dnsmasq_version=$(podman run --rm --network=none --entrypoint dpkg-query "$image" -W -f '${Version}' dnsmasq-base | sed 's/-.*//')
fi
[ -n "$dnsmasq_version" ] || die "cannot tell which dnsmasq the image ships"
size=$(podman image inspect "$image" --format '{{.Size}}')
say "image built in $build_s s: $image, $((size / 1000000)) MB, dnsmasq $dnsmasq_version"
ok "the Dockerfile builds (version gate passed: dnsmasq $dnsmasq_version >= 2.91)"

# The gate refuses bookworm's dnsmasq 2.90, and it is the gate that fails
# the build (its message). The build stage comes from the cache.
t_gate=$(now)
gate_log="$work/gate.log"
if nice -n 10 podman build --pull=never \
    --build-arg "BUILDER_IMAGE=$builder" --build-arg "RUNTIME_IMAGE=$old_runtime" \
    -t "$image-gate-test" -f "$top/Dockerfile" "$top" >"$gate_log" 2>&1; then
    podman rmi -f "$image-gate-test" >/dev/null 2>&1 || true
    die "the Dockerfile built on a bookworm base (dnsmasq 2.90): the version gate let it through"
fi
grep -q '^dnsmasq >= 2.91 is required .*this base has dnsmasq 2\.90$' "$gate_log" \
    || { tail -n 20 "$gate_log" >&2; die "the build on bookworm failed, but not at the version gate (output above)"; }
gate_s=$(since "$t_gate")
ok "the version gate refuses bookworm's dnsmasq 2.90 ($gate_s s): $(grep -m1 '^dnsmasq >= 2.91 is required' "$gate_log" | cut -c1-80)..."

# The image as a whole, outside any layout.
out=$(podman run --rm --network=none "$image" 2>&1) || die "the image's default command failed: $out"
grep -q 'serve' <<<"$out" || die "the image's default command did not print serve's help: $out"
id_line=$(podman run --rm --network=none --entrypoint id "$image")
[ "$id_line" = "uid=10001(hostsdir-broker) gid=10001(hostsdir-broker) groups=10001(hostsdir-broker)" ] \
    || die "the image's user is not 10001: $id_line"
ok "the image runs as 10001 by default ($id_line)"

# --- helpers for the layouts ---------------------------------------------------
hooks="$work/hooks"
mkdir -p "$hooks"
# Kubernetes' capability semantics for non-root containers (see the hook).
cat >"$hooks/k8s-capabilities.json" <<EOF
{"version": "1.0.0",
 "hook": {"path": "$here/k8s_caps_hook.py"},
 "when": {"annotations": {"^io\\\\.hostsdir-broker\\\\.test\$": "^k8s-capabilities\$"}},
 "stages": ["precreate"]}
EOF
udhcpc_script="$work/udhcpc.sh"
cat >"$udhcpc_script" <<'EOF'
#!/bin/sh
[ "$1" = bound ] || exit 0
echo "ip=$ip"
echo "bootfile=${bootfile-}"
echo "serverid=${serverid-}"
EOF
chmod 0755 "$udhcpc_script"

# api METHOD PATH [JSON]: sets $status and $body. 60 s is far above what a
# call may take here: a `?wait=reload` waits for at most
# --reload-max-delay-ms (2 s by default) plus the reload itself.
api() {
    local method=$1 path=$2 data=${3-}
    local args=(-sS -o "$work/body" -w '%{http_code}' -X "$method" --max-time 60
        -H "Authorization: Bearer $write_token")
    [ -n "$data" ] && args+=(-H 'content-type: application/json' --data "$data")
    status=$(ip netns exec "$srv" curl "${args[@]}" "http://127.0.0.1:$API_PORT$path") \
        || die "$method $path: curl failed (is the broker listening on $API_PORT?)"
    body=$(cat "$work/body")
}
expect() {
    [ "$status" = "$1" ] || die "$2: expected HTTP $1, got $status: $body"
}
# jget FIELD.PATH: a value of $body (JSON), printed as JSON.
jget() {
    python3 -c 'import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v.get(k)
print(json.dumps(v))' "$body" "$1"
}
status_field() {
    api GET /v1/status
    expect 200 "GET /v1/status"
    jget "$1"
}

# dhcp MAC: one DHCP exchange from the client namespace; sets $lease_ip and
# $lease_bootfile (empty when no lease). udhcpc gives up by itself after
# 8 DISCOVERs one second apart; `timeout` is the backstop.
dhcp() {
    local out
    ip -n "$cli" link set dev dhcpc0 address "$1"
    out=$(timeout 30 ip netns exec "$cli" udhcpc -f -q -n -B -t 8 -T 1 -A 0 -O bootfile \
        -i dhcpc0 -s "$udhcpc_script" 2>&1) || true
    lease_ip=$(sed -n 's/^ip=//p' <<<"$out")
    lease_bootfile=$(sed -n 's/^bootfile=//p' <<<"$out")
    [ -n "$lease_ip" ] || die "no DHCP lease for $1 from the $layout layout; udhcpc said: $out"
}
in_pool() {
    python3 -c 'import ipaddress as i, sys
a, lo, hi = (i.IPv4Address(x) for x in sys.argv[1:4])
sys.exit(0 if lo <= a <= hi else 1)' "$1" "$DHCP_POOL_FIRST" "$DHCP_POOL_LAST"
}
# How often dnsmasq has read FILE: once through inotify when it appears,
# once more on every SIGHUP (its log line `read FILE`).
reads_of() {
    podman logs "$dnsmasq_ctr" 2>&1 | grep -c -F "read $1" || true
}
# host pids of a container's processes, with their comm.
procs_of() {
    local p
    for p in $(podman top "$1" hpid | tail -n +2); do
        echo "$p $(cat "/proc/$p/comm" 2>/dev/null)"
    done
}
# proc_field HPID FIELD: a line of /proc/HPID/status, e.g. CapEff.
proc_field() {
    awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"
}

# --- 4. the layouts ------------------------------------------------------------
run_layout() {
    layout=$1
    local yaml="$k8s/$layout.yaml" t0 c name args init mac node_reads before after pid
    t0=$(now)
    say "--- layout $layout ($yaml)"
    local facts
    facts=$(python3 "$here/pod_from_manifest.py" facts "$yaml") || die "cannot read the pod of $yaml"
    eval "$facts"

    # The network: the pod's "host network" and a client on a veth pair.
    srv="$prefix-$layout-srv"
    cli="$prefix-$layout-cli"
    ip netns add "$srv"
    netns+=("$srv")
    ip netns add "$cli"
    netns+=("$cli")
    ip link add "$DHCP_IFACE" netns "$srv" type veth peer name dhcpc0 netns "$cli"
    ip -n "$srv" addr add "$SERVER_IP/$DHCP_PREFIX" dev "$DHCP_IFACE"
    for n in "$srv" "$cli"; do ip -n "$n" link set lo up; done
    ip -n "$srv" link set "$DHCP_IFACE" up
    ip -n "$cli" link set dhcpc0 up

    # Volumes, with test tokens in the manifest's token file format.
    local dir="$work/$layout"
    mkdir -p "$dir"
    write_token=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    printf '# test tokens\nwrite %s\nread %s\n' "$write_token" \
        "$(python3 -c 'import secrets; print(secrets.token_hex(32))')" >"$dir/tokens"
    python3 "$here/pod_from_manifest.py" volumes "$yaml" "$dir/volumes" "$dir/tokens" \
        || die "cannot prepare the volumes of $yaml"

    # The infra container holds the pod's namespaces (kubelet's pause).
    local infra="$prefix-$layout-infra"
    podman run -d --name "$infra" --network "ns:/run/netns/$srv" --init --read-only \
        --cap-drop=ALL --security-opt=no-new-privileges --user 65535:65535 \
        --entrypoint sleep "$image" infinity >/dev/null \
        || die "cannot start the pod's infra container"
    infras+=("$infra")

    for init in $POD_INIT_CONTAINERS; do
        name="$prefix-$layout-$init"
        mapfile -d '' args < <(python3 "$here/pod_from_manifest.py" run-args "$yaml" "$init" \
            "$dir/volumes" "$image" "$infra" "$name" "$SERVER_IP") \
            || die "cannot translate init container $init"
        [ "${#args[@]}" -gt 0 ] || die "cannot translate init container $init"
        logs_ctrs+=("$name")
        podman --hooks-dir "$hooks" run --annotation io.hostsdir-broker.test=k8s-capabilities \
            "${args[@]}" >/dev/null || die "init container $init failed"
    done
    for d in hosts opts leases; do
        [ "$(stat -c %u "$dir/volumes/volume-data/$d" 2>/dev/null)" = "$POD_UID" ] \
            || die "the init container did not create /data/$d as uid $POD_UID"
    done
    ok "$layout: init container(s) $POD_INIT_CONTAINERS created hosts/, opts/, leases/ on the volume as uid $POD_UID"

    dnsmasq_ctr=""
    broker_ctr=""
    local ctrs=()
    for c in $POD_CONTAINERS; do
        name="$prefix-$layout-$c"
        mapfile -d '' args < <(python3 "$here/pod_from_manifest.py" run-args "$yaml" "$c" \
            "$dir/volumes" "$image" "$infra" "$name" "$SERVER_IP") \
            || die "cannot translate container $c"
        [ "${#args[@]}" -gt 0 ] || die "cannot translate container $c"
        logs_ctrs+=("$name")
        ctrs+=("$name")
        podman --hooks-dir "$hooks" run -d --annotation io.hostsdir-broker.test=k8s-capabilities \
            "${args[@]}" >/dev/null || die "container $c did not start"
        [ "$c" = "$API_CONTAINER" ] && broker_ctr=$name
        [ "$c" = "$DNSMASQ_CONTAINER" ] && dnsmasq_ctr=$name
    done

    # Up: the startup probe's path answers 200 within the probe's own limit.
    local deadline code
    deadline=$(($(date +%s) + STARTUP_LIMIT_S))
    while :; do
        code=$(ip netns exec "$srv" curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
            "http://127.0.0.1:$STARTUP_PORT$STARTUP_PATH" || true)
        [ "$code" = 200 ] && break
        for c in "${ctrs[@]}"; do
            [ "$(podman inspect "$c" --format '{{.State.Running}}')" = true ] \
                || die "container $c exited before the startup probe passed"
        done
        [ "$(date +%s)" -lt "$deadline" ] \
            || die "startup probe $STARTUP_PATH did not answer 200 within $STARTUP_LIMIT_S s (the manifest's limit)"
        sleep 0.2
    done
    api GET "$READY_PATH"
    expect 200 "readiness probe $READY_PATH"
    ok "$layout: startup probe $STARTUP_PATH and readiness probe $READY_PATH answer 200"

    # Who runs, as whom, with which capabilities (Kubernetes' rules: none for
    # a non-root process unless its binary has file capabilities).
    local dnsmasq_hpid="" broker_hpid=""
    while read -r pid c; do
        [ "$c" = dnsmasq ] && dnsmasq_hpid=$pid
    done < <(procs_of "$dnsmasq_ctr")
    broker_hpid=$(podman inspect "$broker_ctr" --format '{{.State.Pid}}')
    [ -n "$dnsmasq_hpid" ] || die "no dnsmasq process in container $dnsmasq_ctr"
    for pid in "$dnsmasq_hpid" "$broker_hpid"; do
        [ "$(proc_field "$pid" Uid | awk '{print $1, $2, $3}')" = "$POD_UID $POD_UID $POD_UID" ] \
            || die "process $pid ($(cat "/proc/$pid/comm")) does not run as uid $POD_UID: $(proc_field "$pid" Uid)"
    done
    [ "$(proc_field "$dnsmasq_hpid" CapEff)" = 0000000000003400 ] \
        || die "dnsmasq's effective capabilities are $(proc_field "$dnsmasq_hpid" CapEff), not NET_BIND_SERVICE+NET_ADMIN+NET_RAW (0x3400)"
    [ "$(proc_field "$broker_hpid" CapEff)" = 0000000000000000 ] \
        || die "the broker holds capabilities $(proc_field "$broker_hpid" CapEff); it needs none"
    ok "$layout: dnsmasq and the broker run as uid $POD_UID; dnsmasq holds exactly NET_BIND_SERVICE, NET_ADMIN, NET_RAW (from its file capabilities), the broker none"

    # The broker knows its dnsmasq.
    api GET /v1/status
    expect 200 "GET /v1/status"
    [ "$(jget reload.method)" = "\"$API_RELOAD\"" ] || die "reload method is $(jget reload.method), the manifest says $API_RELOAD"
    [ "$(jget dnsmasq.running)" != false ] || die "the broker reports dnsmasq not running: $(jget dnsmasq)"
    dnsmasq_pid=$(jget dnsmasq.pid)
    [ "$dnsmasq_pid" = "$(awk '$1 == "NSpid:" { print $NF }' "/proc/$dnsmasq_hpid/status")" ] \
        || die "the broker names dnsmasq pid $dnsmasq_pid; in the pod it is $(awk '$1 == "NSpid:" { print $NF }' "/proc/$dnsmasq_hpid/status")"
    ok "$layout: the broker's /v1/status names dnsmasq's pid ($dnsmasq_pid) and reload method $API_RELOAD"
    layout_checks_version

    # DHCP through the broker's API. Ironic's own shapes: a host entry
    # `<mac>,set:<node>,set:ironic` (here with a reserved address), an options
    # entry per node with its boot file.
    mac=52:54:00:5e:00:01
    local host="/v1/hosts/ironic-$mac.conf"
    api PUT /v1/options/ironic-node1.conf '{"options":[{"tags":["node1"],"option":"67","value":"first.efi"}]}'
    expect 201 "PUT options node1"
    api PUT /v1/options/ironic-node2.conf '{"options":[{"tags":["node2"],"option":"67","value":"second.efi"}]}'
    expect 201 "PUT options node2"
    api PUT "$host" "{\"macs\":[\"$mac\"],\"set_tags\":[\"node1\",\"ironic\"],\"ipv4\":\"$RESERVED_IP_1\"}"
    expect 201 "PUT host"
    [ "$(jget reload)" = '"not_needed"' ] || die "a new host entry asked for a reload: $(jget reload)"
    dhcp "$mac"
    [ "$lease_ip" = "$RESERVED_IP_1" ] || die "the client got $lease_ip, not its reserved $RESERVED_IP_1"
    [ "$lease_bootfile" = first.efi ] || die "the client got boot file '$lease_bootfile', not first.efi"
    before=$(status_field reload.delivered)
    [ "$before" = 0 ] || die "a reload was sent for new entries ($before delivered)"
    ok "$layout: a host entry created through the API is served at once, no reload: $mac got $lease_ip and boot file first.efi"

    api GET "/v1/leases?mac=$mac"
    expect 200 "GET /v1/leases"
    [ "$(jget items.0.ip)" = "\"$RESERVED_IP_1\"" ] || die "the lease file (via GET /v1/leases) does not hold the lease: $body"
    [ "$(stat -c %u "$dir/volumes/volume-data/leases/dnsmasq.leases")" = "$POD_UID" ] \
        || die "dnsmasq's lease file on the volume is not owned by $POD_UID"
    ok "$layout: dnsmasq wrote the lease to the volume (leases/dnsmasq.leases), GET /v1/leases reads it"

    # Replace, as Ironic does when a node's boot changes: new tags, no
    # address. dnsmasq reads the new file through inotify and its record
    # shadows the old one: no SIGHUP, and dnsmasq read no other file again.
    node_reads=$(reads_of /data/opts/ironic-node1.conf)
    [ "$node_reads" = 1 ] || die "dnsmasq read ironic-node1.conf $node_reads times before any reload"
    api PUT "$host" "{\"macs\":[\"$mac\"],\"set_tags\":[\"node2\",\"ironic\"]}"
    expect 200 "replace host"
    [ "$(jget reload)" = '"not_needed"' ] || die "the replace asked for a reload: $(jget reload)"
    dhcp "$mac"
    [ "$lease_bootfile" = second.efi ] || die "after the replace the client got boot file '$lease_bootfile', not second.efi"
    api GET /v1/status
    if [ "$(jget reload.requested)" != 0 ] || [ "$(jget reload.delivered)" != 0 ] || [ "$(jget reload.pending)" != false ]; then
        die "a reload was scheduled or sent for the replace: $(jget reload)"
    fi
    [ "$(jget dnsmasq.pid)" = "$dnsmasq_pid" ] || die "dnsmasq was restarted for the replace"
    [ "$(reads_of /data/opts/ironic-node1.conf)" = 1 ] || die "dnsmasq re-read its directories (a reload) during the replace"
    ok "$layout: the replaced entry is served with no reload (boot file second.efi; none requested or sent, dnsmasq re-read nothing, same pid)"

    # Delete: dnsmasq keeps a deleted file's record until a SIGHUP; with
    # ?wait=reload the answer comes after the broker delivered one.
    api DELETE "$host?wait=reload"
    expect 204 "DELETE host ?wait=reload"
    after=$(status_field reload.delivered)
    [ "$after" -ge 1 ] || die "DELETE ?wait=reload answered with no reload delivered"
    [ "$(reads_of /data/opts/ironic-node1.conf)" -ge 2 ] \
        || die "the broker says it reloaded, but dnsmasq did not re-read its directories"
    dhcp "$mac"
    in_pool "$lease_ip" || die "after the delete the client got $lease_ip, not an address of the pool $DHCP_POOL_FIRST-$DHCP_POOL_LAST"
    [ -z "$lease_bootfile" ] || die "after the delete the client still got boot file $lease_bootfile"
    ok "$layout: a delete is in effect after its reload ($after delivered, dnsmasq re-read its directories): $mac now gets pool address $lease_ip and no boot file"
    layout_checks_extra

    # SIGTERM, as kubelet stops a pod: every container at once, SIGKILL
    # after terminationGracePeriodSeconds.
    local t_stop stop_s code
    t_stop=$(now)
    podman stop -t "$POD_GRACE" "${ctrs[@]}" >/dev/null || die "podman stop failed"
    stop_s=$(since "$t_stop")
    for c in "${ctrs[@]}"; do
        code=$(podman inspect "$c" --format '{{.State.ExitCode}}')
        [ "$code" = 0 ] || die "container $c exited with status $code on SIGTERM (137 = killed after the grace period)"
    done
    awk -v s="$stop_s" -v g="$POD_GRACE" 'BEGIN { exit !(s < g) }' \
        || die "stopping took $stop_s s, not within the grace period of $POD_GRACE s"
    grep -q 'exiting on receipt of SIGTERM' <<<"$(podman logs "$dnsmasq_ctr" 2>&1)" \
        || die "dnsmasq did not log its SIGTERM exit"
    ok "$layout: SIGTERM stops the pod in $stop_s s (grace ${POD_GRACE} s): every container exited 0, dnsmasq on SIGTERM"
    layout_checks_stopped

    podman rm -f --depend "$infra" >/dev/null || die "cannot remove the $layout pod's containers"
    logs_ctrs=()
    ip netns del "$srv"
    ip netns del "$cli"
    layout_s=$(since "$t0")
    say "layout $layout passed in $layout_s s"
}

# Layout-specific checks, called by run_layout.
supervised_version() {
    [ "$(jget dnsmasq.version)" = "\"$dnsmasq_version\"" ] \
        || die "the supervising broker reports dnsmasq version $(jget dnsmasq.version), the image has $dnsmasq_version"
    ok "supervised: the broker knows dnsmasq's version ($dnsmasq_version)"
}
supervised_stopped() {
    grep -q '"stopped dnsmasq".*"status":"exit status: 0"' <<<"$(podman logs "$broker_ctr" 2>&1)" \
        || die "the broker did not log that dnsmasq stopped with status 0"
    ok "supervised: the broker stopped its dnsmasq (exit status 0) before exiting itself"
}
sidecar_version() {
    # The broker reads dnsmasq's version by running /proc/PID/exe. dnsmasq
    # gained file capabilities at exec, which makes it non-dumpable: the
    # kernel then lets only a process with CAP_SYS_PTRACE (or a superset of
    # dnsmasq's capabilities) resolve that link.
    local out
    out=$(podman exec "$broker_ctr" readlink -v "/proc/$dnsmasq_pid/exe" 2>&1) \
        && die "the broker container could read /proc/$dnsmasq_pid/exe ($out); README says the kernel denies it"
    grep -q 'Permission denied' <<<"$out" || die "reading /proc/$dnsmasq_pid/exe failed otherwise than expected: $out"
    [ "$(jget dnsmasq.version)" = null ] \
        || die "the broker reports dnsmasq version $(jget dnsmasq.version) although /proc/PID/exe is denied"
    ok "sidecar: /proc/$dnsmasq_pid/exe is denied to the broker's container ($out), so /v1/status shows no dnsmasq version, as README says"
}
sidecar_stopped() { :; }

layout_checks_version() { "${layout}_version"; }
layout_checks_extra() { :; }
layout_checks_stopped() { "${layout}_stopped"; }

declare -A layout_time
for layout_name in supervised sidecar; do
    run_layout "$layout_name"
    layout_time[$layout_name]=$layout_s
done

total_s=$(since "$t_start")
say "times: bases $bases_s s, build $build_s s, gate check $gate_s s, supervised ${layout_time[supervised]} s, sidecar ${layout_time[sidecar]} s; image step $total_s s"
say "image: $image, $((size / 1000000)) MB, dnsmasq $dnsmasq_version"
echo "image checks: $checks passed, 0 failed"
