#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests
# need (dnsmasq 2.90 from Debian, dnsmasq 2.91 built from Debian's source,
# udhcpc, the Ironic virtualenv), then runs every Rust test (unit, API,
# multi-process, real-dnsmasq end-to-end) and the Ironic plugin's tests.
# Needs root (network namespaces); installs Rust with rustup if missing.
# Fast tests only, no root needed: `cargo test --lib --test api`.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

. scripts/ensure-rust.sh
[ "$(id -u)" -eq 0 ] || {
    echo "test-all: run as root: the end-to-end tests create network namespaces" >&2
    exit 1
}

scripts/install-test-deps.sh
cargo build --all-targets
cargo test --all-targets -- --test-threads="${TEST_THREADS:-4}"
# The grammar fed to a real dnsmasq (needs root and dnsmasq, so not in the
# default `cargo test`).
cargo test --lib -- --ignored
examples/ironic/run-tests.sh
examples/kubernetes/validate.sh
echo "test-all: every suite passed"
