#!/usr/bin/env bash
# Runs schemathesis (property-based API testing from the broker's own
# /openapi.json) against a live broker with a write token: every phase
# (examples, coverage, fuzzing, stateful through the document's links),
# every check, the fixed seed and example count of scripts/schemathesis.toml.
# Installs schemathesis into a virtualenv on first use. Exit 0 only with no
# failure; the last line is `schemathesis: N operations, M test cases, 0 failures`.
#   SCHEMATHESIS_VENV   virtualenv to create or reuse (default: <repo>/target/schemathesis-venv)
#   SCHEMATHESIS_ARGS   extra arguments for `schemathesis run` (e.g. `--seed 7`)
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
version=4.32.5
venv="${SCHEMATHESIS_VENV:-$top/target/schemathesis-venv}"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    echo "schemathesis.sh: installing schemathesis $version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi
cargo build --quiet --bin hostsdir-broker

work=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'write %s\nread %s-read\n' "$token" "$token" > "$work/tokens"
printf '%s\n' \
    "1732400000 52:54:00:aa:bb:cc 10.0.0.5 node-1 01:52:54:00:aa:bb:cc" \
    "0 52:54:00:aa:bb:dd 10.0.0.6 * *" > "$work/leases"
mkfifo "$work/out"
target/debug/hostsdir-broker serve --listen 127.0.0.1:0 \
    --hosts-dir "$work/hosts" --opts-dir "$work/opts" --lease-file "$work/leases" \
    --token-file "$work/tokens" --reload-quiet-ms 10 --reload-max-delay-ms 50 \
    > "$work/out" 2> "$work/broker.log" &
broker_pid=$!
read -r line < "$work/out"
url=${line#listening on }
echo "schemathesis.sh: broker at $url" >&2

set +e
cd "$work" # schemathesis keeps its replay cache (.schemathesis/) in the current directory
# shellcheck disable=SC2086
"$venv/bin/schemathesis" --no-color --config-file "$top/scripts/schemathesis.toml" run \
    "$url/openapi.json" -H "Authorization: Bearer $token" --checks all \
    --phases examples,coverage,fuzzing,stateful ${SCHEMATHESIS_ARGS:-} | tee "$work/report" |
    sed 's/^/  /' # indented, so test-all's pytest summary count ignores it
status=${PIPESTATUS[0]}
set -e
ops=$(grep -oE 'Tested: +[0-9]+' "$work/report" | grep -oE '[0-9]+' || echo 0)
cases=$(grep -oE '[0-9]+ generated' "$work/report" | grep -oE '[0-9]+' || echo 0)
if [ "$status" -ne 0 ]; then
    echo "schemathesis: $ops operations, $cases test cases, FAILED (exit $status)"
    exit 1
fi
echo "schemathesis: $ops operations, $cases test cases, 0 failures"
