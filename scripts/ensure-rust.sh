#!/usr/bin/env bash
# Makes sure a Rust toolchain new enough for this crate (rust-version in
# Cargo.toml) is on PATH; installs one with rustup when it is not.
# Sourced by run-local.sh and test-all.sh: `. scripts/ensure-rust.sh`.
# (The rustup download path cannot be exercised on the project's own
# machines, which already have Rust and no general network access.)
need=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.toml")
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
have=$(rustc --version 2>/dev/null | awk '{print $2}')
if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" = "$need" ]; then
    return 0 2>/dev/null || exit 0
fi
echo "ensure-rust: need Rust >= $need (found: ${have:-none}); installing it with rustup" >&2
if ! command -v rustup >/dev/null; then
    if ! command -v curl >/dev/null; then
        sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
        $sudo_ apt-get update && $sudo_ apt-get install -y curl ca-certificates build-essential
    fi
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    . "$HOME/.cargo/env"
fi
rustup toolchain install stable --profile minimal && rustup default stable
