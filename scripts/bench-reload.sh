#!/usr/bin/env bash
# Reload benchmark (a benchmark, not a timed test): prints Markdown tables
# of what a SIGHUP costs real dnsmasq builds and how much of the time dnsmasq
# is unresponsive under churn with each broker reload policy.
#
#   scripts/bench-reload.sh [--dnsmasq PATH]... (as root)
#                           [--sizes 1000,10000,20000] [--seconds 30]
#                           [--rate 2] [--seed N] [--keep DIR]
#                           [--policy 'LABEL=BROKER FLAGS']...
#                           [--churn-live 5000] [--churn-rounds 3]
#
# --dnsmasq (repeatable): the builds measured, one after the other in this
# run; default target/dnsmasq-2.91/dnsmasq and target/dnsmasq-2.93/dnsmasq.
# For each build and size N: N Ironic host files `ironic-<mac>.conf` holding
# `<mac>,set:<tag>,set:ironic`.
# - SIGHUP stall: dnsmasq started on the N files gets SIGHUP once idle; the
#   longest a DNS query (one every 2 ms from the signal on) waited for its
#   answer, and dnsmasq's CPU time for the reload; median of 3.
# - Per policy, from the same state (directory rewritten, dnsmasq and broker
#   restarted): 2 changes/s for 30 s through the broker's HTTP API, the same
#   seeded sequence for every policy (60% replace toggling `set:<tag>` <->
#   `ignore`, 20% create, 20% delete), while a DNS A query goes to dnsmasq
#   every 10 ms. Unresponsive % = queries answered after more than 50 ms or
#   not within 5 s, divided by the queries sent during the window.
#   SIGHUPs = growth of the broker's `reload.ok_count` over the window.
#   Last delete in effect after = longest time from a delete's answer until a
#   reload covering it was delivered.
# - Name churn (issue 12): 5,000 live files replaced 3 times under new names
#   (20,000 names seen): the SIGHUP that first reads each round's names, a
#   second SIGHUP, and a restart's unavailability (SIGTERM, start, first DNS
#   answer), in the same run.
# Default policies: "SIGHUP per change" (--reload-policy coalesce
# --reload-quiet-ms 0 --reload-max-delay-ms 0), "previous coalescing"
# (--reload-policy coalesce --reload-quiet-ms 200 --reload-max-delay-ms
# 2000), "new policy" (--reload-policy shadow). Against a broker without
# --reload-policy, `--reload-policy coalesce` is dropped and policies needing
# flags the broker lacks are shown as skipped.
#
# Runs as root: creates a network namespace (hdb-bench-<pid>) with lo and a
# veth pair holding 10.251.0.1/16 (addresses only inside that namespace),
# runs target/release/examples/bench_reload in it (it starts dnsmasq with DNS
# on 127.0.0.1:5353 there, and the broker on 127.0.0.1), and removes the
# namespace and everything still running in it on exit. About 10 minutes for
# the default sizes per build. Needs the dnsmasq builds and iproute2:
# `sudo scripts/install-test-deps.sh` installs them.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

sizes=1000,10000,20000
seconds=30
extra=()
dnsmasqs=()
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
        --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
        --rate|--seed|--churn-live|--churn-rounds) extra+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
        --policy) extra+=(--policy "${2:?--policy needs a value}"); shift 2 ;;
        --dnsmasq) dnsmasqs+=("${2:?--dnsmasq needs a path}"); shift 2 ;;
        --keep) keep=${2:?--keep needs a directory}; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "bench-reload: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "bench-reload: $*" >&2; exit 1; }
hint="run \`sudo scripts/install-test-deps.sh\` first"

[ "$(id -u)" -eq 0 ] || die "must run as root (it creates a network namespace): sudo $0 $*"
command -v ip >/dev/null || die "iproute2 (\`ip\`) is missing; $hint"
[ ${#dnsmasqs[@]} -gt 0 ] || dnsmasqs=("$top/target/dnsmasq-2.91/dnsmasq" "$top/target/dnsmasq-2.93/dnsmasq")
dnsmasq_args=()
for d in "${dnsmasqs[@]}"; do
    d=$(realpath -m -- "$d")
    [ -x "$d" ] || die "$d is missing; $hint (or scripts/build-dnsmasq.sh 2.91|2.93)"
    "$d" --version 2>/dev/null | grep -q '^Dnsmasq version ' || die "$d is not a dnsmasq"
    dnsmasq_args+=(--dnsmasq "$d")
done

. "$top/scripts/ensure-rust.sh"
echo "bench-reload: building (release)" >&2
cargo build --release --quiet --bin hostsdir-broker --example bench_reload

ns="hdb-bench-$$"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
        # only what runs inside our own namespace
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
        sleep 1
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    fi
    [ -n "${work:-}" ] && [ -z "$keep" ] && rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add hdbbench0 type veth peer name hdbbench1
ip -n "$ns" addr add 10.251.0.1/16 dev hdbbench0
ip -n "$ns" link set hdbbench1 up
ip -n "$ns" link set hdbbench0 up

if [ -n "$keep" ]; then
    work=$keep
    mkdir -p "$work"
    extra+=(--keep)
else
    work=$(mktemp -d /tmp/bench-reload.XXXXXX)
fi
chmod 755 "$work"

ip netns exec "$ns" "$top/target/release/examples/bench_reload" \
    "${dnsmasq_args[@]}" --broker "$top/target/release/hostsdir-broker" \
    --interface hdbbench0 --workdir "$work" \
    --sizes "$sizes" --seconds "$seconds" "${extra[@]}"
