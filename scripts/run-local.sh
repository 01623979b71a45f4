#!/usr/bin/env bash
# Builds and runs the broker on ./hostsdir-broker-data/{hosts,opts} with
# reload method `none`: no dnsmasq needed to try the API on 127.0.0.1:8787.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
command -v cargo >/dev/null || {
    echo "run-local: cargo not found; install Rust >= 1.88 (https://rustup.rs) first" >&2
    exit 1
}
exec cargo run --release -- serve "$@"
