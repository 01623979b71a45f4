#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests
# need (Rust if missing, dnsmasq 2.90 from Debian, dnsmasq 2.91 built from
# Debian's source, udhcpc, the Ironic and Kubernetes-validation
# virtualenvs), then runs every Rust test (unit, API, multi-process, fault,
# real-dnsmasq end-to-end), the Ironic plugin's tests against the real
# `ironic` package, and the Kubernetes manifest validation.
# Needs root (network namespaces). Stops at the first failing suite.
# Fast tests only, no root needed: `cargo test --lib --test api`.
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
run cargo test --all-targets -- --test-threads="${TEST_THREADS:-4}"
# The grammar fed to a real dnsmasq (needs root and dnsmasq, so not in the
# default `cargo test`).
run cargo test --lib -- --ignored
run examples/ironic/run-tests.sh
run examples/kubernetes/validate.sh

# Every suite passed (set -e stops at the first failure); count them.
rust=$(grep -oE 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
python=$(grep -oE '^=+ [0-9]+ passed' "$log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
k8s=$(grep -oE 'kubernetes manifests: [0-9]+ passed' "$log" | awk '{s += $3} END {print s + 0}')
echo "test-all: Rust tests $rust, Ironic tests $python, manifest checks $k8s"
echo "$((rust + python + k8s)) passed, 0 failed"
