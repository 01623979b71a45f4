#!/usr/bin/env bash
# The broker's own costs at scale (a benchmark, not a timed test): builds in
# release mode, writes N host files and N/2 options files per size into
# target/bench-scale, starts the broker on them and prints one Markdown table
# (see benches/scale.rs for what each row measures).
#
#   scripts/bench.sh [--sizes 10000,100000] [--seconds 3]
#
# About 3 minutes on 2 cores for the default sizes. BENCH_DIR=DIR puts the
# directories elsewhere (e.g. on the filesystem you deploy on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/ensure-rust.sh 2>/dev/null || true
cargo bench --bench scale -- "$@"
