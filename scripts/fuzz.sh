#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the parsers that read
# what others wrote: dhcp-host lines, dhcp-option files, the JSON spec →
# line → parse round trip, dnsmasq's lease file and the token file.
# Not part of CI: each target runs for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, every target)
#
# Works on the stable toolchain: cargo-fuzz (installed here with `cargo
# install cargo-fuzz` if missing) builds with `-s none`, which keeps
# libFuzzer's coverage instrumentation (sancov) and leaves out the
# sanitizers, which need nightly's -Z flags (and the broker forbids `unsafe`,
# so AddressSanitizer has little to find). FUZZ_TOOLCHAIN=nightly runs with
# AddressSanitizer instead. The committed seed corpus
# (fuzz/corpus/<target>/, real Ironic and dnsmasq files) is only read; new
# inputs go to fuzz/target/corpus/<target>/. A crash is saved under
# fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ so
# `cargo test --test fuzz_regressions` replays it, then fix the bug.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top/fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(host_line option_lines json_round_trip lease_file token_file)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
toolchain=${FUZZ_TOOLCHAIN:-stable}
sanitizer=(-s none)
if [ "$toolchain" != stable ]; then
    rustup run "$toolchain" true 2>/dev/null || rustup toolchain install "$toolchain" --profile minimal
    sanitizer=()
fi
failed=()
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t"
    echo "fuzz.sh: $t for ${seconds}s" >&2
    if ! cargo "+$toolchain" fuzz run "${sanitizer[@]}" "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each, no crash"
