#!/usr/bin/env bash
# Builds and runs the broker on ./hostsdir-broker-data/{hosts,opts} with
# reload method `none`: no dnsmasq needed to try the API on 127.0.0.1:8787.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
. scripts/ensure-rust.sh
exec cargo run --release -- serve "$@"
