#!/usr/bin/env bash
# Runs the Ironic provider's tests: real Ironic (pinned, from PyPI) in a
# virtualenv, against a live hostsdir-broker process.
#
#   examples/ironic/run-tests.sh [pytest args...]
#
# Environment:
#   HOSTSDIR_BROKER_BIN  broker binary (default: <repo>/target/debug/hostsdir-broker;
#                        this script builds nothing: run `cargo build` first)
#   IRONIC_VENV          virtualenv to create or reuse (default: <repo>/target/ironic-venv)
#   PYTHON               interpreter that creates the virtualenv (default: python3)
#
# Exits non-zero when a test fails, when no test ran, or when the broker
# binary or Ironic is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${IRONIC_VENV:-$root/target/ironic-venv}"
broker="${HOSTSDIR_BROKER_BIN:-$root/target/debug/hostsdir-broker}"
python="${PYTHON:-python3}"

fail() {
    echo "run-tests.sh: FAIL: $*" >&2
    exit 1
}

[ -f "$broker" ] && [ -x "$broker" ] ||
    fail "hostsdir-broker binary not found or not executable at $broker (run 'cargo build' in $root, or set HOSTSDIR_BROKER_BIN)"
broker="$(cd "$(dirname "$broker")" && pwd)/$(basename "$broker")"

if [ ! -x "$venv/bin/python" ]; then
    echo "run-tests.sh: creating virtualenv $venv" >&2
    "$python" -m venv "$venv" || fail "cannot create a virtualenv with $python"
fi

# Install the pins and the provider (editable) when they changed.
stamp="$venv/.hostsdir-broker-ironic-stamp"
want="$(cat "$here/requirements-test.txt" "$here/constraints-test.txt" "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] ||
    ! "$venv/bin/python" -c 'import ironic, ironic_hostsdir_broker' 2>/dev/null; then
    echo "run-tests.sh: installing test requirements into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements-test.txt" -c "$here/constraints-test.txt" ||
        fail "pip could not install $here/requirements-test.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-build-isolation --no-deps -e "$here" ||
        fail "pip could not install the provider from $here"
    echo "$want" >"$stamp"
fi

"$venv/bin/python" - <<'EOF' || fail "Ironic or the provider is not importable in $venv"
import importlib.metadata as md
import ironic.dhcp.base, ironic.dhcp.dnsmasq, ironic.tests.unit.db.base  # noqa
import ironic_hostsdir_broker.provider  # noqa
eps = [ep.name for ep in md.entry_points(group='ironic.dhcp')]
assert 'hostsdir-broker' in eps, eps
print('run-tests.sh: ironic', md.version('ironic'), '; provider entry point present')
EOF

cd "$here"
set +e
HOSTSDIR_BROKER_BIN="$broker" "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
case "$rc" in
    0) exit 0 ;;
    5) fail "pytest collected no tests" ;;
    *) echo "run-tests.sh: pytest exited $rc" >&2; exit "$rc" ;;
esac
