#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests
# need (Rust if missing, dnsmasq 2.90 from Debian, 2.91 and 2.93 built from
# Debian's source, udhcpc, dhclient, fiu-utils, the Ironic and
# Kubernetes-validation virtualenvs; the CephFS lab, Prometheus and podman
# are installed by their own steps), then runs every Rust test (unit, API,
# multi-process, fault injection, real-dnsmasq end-to-end on every version),
# the CephFS suite on Ceph's default MDS settings and on tuned ones, the
# Ironic plugin's tests against the real `ironic` package (2026.1 and
# 2026.2), the Kubernetes and understack manifest validation, the alerts and
# dashboard against a real Prometheus, the container image built and run as
# each Kubernetes layout, and schemathesis against a live broker.
# Needs root (network namespaces). Stops at the first failing suite.
# Fast tests only, no root needed: see docs/contributing.md.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

if [ "$(id -u)" -ne 0 ]; then
    # The end-to-end tests create network namespaces and install packages.
    command -v sudo >/dev/null && exec sudo -E "$0" "$@"
    echo "test-all: run as root: the end-to-end tests create network namespaces" >&2
    exit 1
fi
. scripts/ensure-rust.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { "$@" 2>&1 | tee -a "$log"; }

scripts/install-test-deps.sh
cargo build --all-targets
# tests/cephfs.rs needs the CephFS lab: it runs below, as its own step.
run cargo test --all-targets -- --test-threads="${TEST_THREADS:-4}" --skip cephfs_
# The grammar fed to a real dnsmasq (needs root and dnsmasq, so not in the
# default `cargo test`).
run cargo test --lib -- --ignored
# Two brokers on one real CephFS mounted twice (scripts/cephfs-lab.sh:
# installs ceph 16.2 once, ~60 s; up ~15 s; loopback only), twice: with
# Ceph's default MDS settings (what a Rook-managed cluster runs) and with
# mds_early_reply false + mds_tick_interval 1 (what an operator may set).
# Fails loudly when the lab cannot start; taken down on any exit.
trap 'scripts/cephfs-lab.sh down || true; rm -f "$log"' EXIT
for profile in defaults tuned; do
    if [ "$profile" = tuned ]; then
        export HDB_CEPHFS_MDS_EARLY_REPLY=false HDB_CEPHFS_MDS_TICK=1
    fi
    scripts/cephfs-lab.sh up \
        || { echo "test-all: the CephFS lab ($profile MDS settings) did not start" >&2; exit 1; }
    echo "test-all: the CephFS suite, $profile MDS settings"
    run cargo test --test cephfs -- --test-threads=1
    scripts/cephfs-lab.sh down
done
unset HDB_CEPHFS_MDS_EARLY_REPLY HDB_CEPHFS_MDS_TICK
run examples/ironic/run-tests.sh
run examples/kubernetes/validate.sh
run examples/understack/validate.sh
# The alerts (promtool), the dashboard, and a real Prometheus scraping a broker.
run scripts/test-monitoring.sh
# The container image, built with podman and run as each Kubernetes layout
# says, serving DHCP to a real client.
run scripts/test-image.sh
# The API against its own OpenAPI document (schemathesis, fixed seed).
run scripts/schemathesis.sh

# Every suite passed (set -e stops at the first failure); count them.
rust=$(grep -oE 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
python=$(grep -oE '^=+ [0-9]+ passed' "$log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
k8s=$(grep -oE 'kubernetes manifests: [0-9]+ passed' "$log" | awk '{s += $3} END {print s + 0}')
# schemathesis counts as one check per API operation it tested.
api=$(grep -oE '^schemathesis: [0-9]+ operations' "$log" | awk '{s += $2} END {print s + 0}')
mon=$(grep -oE '^monitoring: [0-9]+ checks passed' "$log" | awk '{s += $2} END {print s + 0}')
img=$(grep -oE 'image checks: [0-9]+ passed' "$log" | awk '{s += $3} END {print s + 0}')
echo "test-all: Rust tests $rust, Ironic tests $python, manifest checks $k8s, monitoring checks $mon, image checks $img, schemathesis operations $api"
echo "$((rust + python + k8s + mon + img + api)) passed, 0 failed"
