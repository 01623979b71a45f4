#!/usr/bin/env bash
# Runs the Ironic provider's tests against every Ironic series the provider
# supports (pyproject.toml, [tool.ironic-hostsdir-broker.ironic-series]):
# for each, the real Ironic release from PyPI in a virtualenv of its own,
# with the library versions frozen in constraints-<series>.txt, against a
# live hostsdir-broker process. tests/test_understack_e2e.py also runs a
# real dnsmasq 2.93 and a DHCP client in network namespaces: it needs root,
# udhcpc and `scripts/build-dnsmasq.sh 2.93`, and FAILS without them (set
# IRONIC_E2E_ALLOW_SKIP=1 to skip it instead).
#
#   examples/ironic/run-tests.sh [pytest args...]
#
# Environment:
#   HOSTSDIR_BROKER_BIN  broker binary (default: <repo>/target/debug/hostsdir-broker;
#                        this script builds nothing: run `cargo build` first)
#   IRONIC_SERIES        series to run, space-separated (default: every
#                        supported one, e.g. "2026.1 2026.2")
#   IRONIC_VENV_DIR      where the virtualenvs live, one per series
#                        (default: <repo>/target; <dir>/ironic-venv-<series>)
#   PYTHON               interpreter that creates the virtualenvs (default: python3)
#
# A virtualenv is reused while its series' constraints, requirements-test.txt
# and pyproject.toml are unchanged. To regenerate a constraints file (e.g. for
# a new series): create a fresh virtualenv, `pip install -r
# requirements-test.txt ironic==<release> -c <that OpenStack release's
# upper-constraints.txt>`, then `pip freeze --all --exclude-editable`
# (without pip itself), and add the header the existing files have.
#
# Exits non-zero when a test fails in any series, when a series ran no test,
# or when the broker binary or Ironic is missing. Every series runs even if
# an earlier one failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv_dir="${IRONIC_VENV_DIR:-$root/target}"
broker="${HOSTSDIR_BROKER_BIN:-$root/target/debug/hostsdir-broker}"
python="${PYTHON:-python3}"

fail() {
    echo "run-tests.sh: FAIL: $*" >&2
    exit 1
}

[ -f "$broker" ] && [ -x "$broker" ] ||
    fail "hostsdir-broker binary not found or not executable at $broker (run 'cargo build' in $root, or set HOSTSDIR_BROKER_BIN)"
broker="$(cd "$(dirname "$broker")" && pwd)/$(basename "$broker")"

# "<series> <ironic release>" lines, from the provider's own metadata.
supported="$("$python" - "$here/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], 'rb') as f:
    series = tomllib.load(f)['tool']['ironic-hostsdir-broker']['ironic-series']
for name, release in series.items():
    print(name, release)
EOF
)" || fail "cannot read the supported Ironic series from $here/pyproject.toml (needs Python >= 3.11 as $python)"
[ -n "$supported" ] || fail "pyproject.toml names no Ironic series"
wanted="${IRONIC_SERIES:-$(echo "$supported" | cut -d' ' -f1 | tr '\n' ' ')}"

# Creates or reuses the virtualenv of one series; prints nothing on success.
prepare() {
    local series="$1" release="$2" venv="$3"
    local constraints="$here/constraints-$series.txt"
    [ -f "$constraints" ] || fail "no constraints file for Ironic $series: $constraints"
    grep -qx "ironic==$release" "$constraints" ||
        fail "$constraints does not pin ironic==$release (pyproject.toml's release for $series)"
    if [ ! -x "$venv/bin/python" ]; then
        echo "run-tests.sh: creating virtualenv $venv" >&2
        mkdir -p "$(dirname "$venv")"
        "$python" -m venv "$venv" || fail "cannot create a virtualenv with $python"
    fi
    local stamp="$venv/.hostsdir-broker-ironic-stamp" want
    want="$(cat "$here/requirements-test.txt" "$constraints" "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] ||
        ! "$venv/bin/python" -c 'import ironic, ironic_hostsdir_broker' 2>/dev/null; then
        echo "run-tests.sh: installing Ironic $series ($release) and the test requirements into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$here/requirements-test.txt" -c "$constraints" ||
            fail "pip could not install $here/requirements-test.txt within $constraints"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-build-isolation --no-deps -e "$here" ||
            fail "pip could not install the provider from $here"
        echo "$want" >"$stamp"
    fi
    "$venv/bin/python" - "$release" <<'EOF' || fail "Ironic $release or the provider is not importable in $venv"
import importlib.metadata as md, sys
import ironic.dhcp.base, ironic.dhcp.dnsmasq, ironic.tests.unit.db.base  # noqa
import ironic_hostsdir_broker.provider  # noqa
assert md.version('ironic') == sys.argv[1], (md.version('ironic'), sys.argv[1])
eps = [ep.name for ep in md.entry_points(group='ironic.dhcp')]
assert 'hostsdir-broker' in eps, eps
print('run-tests.sh: ironic', md.version('ironic'), '; provider entry point present')
EOF
}

cd "$here"
failed=()
for series in $wanted; do
    release="$(echo "$supported" | awk -v s="$series" '$1 == s {print $2}')"
    [ -n "$release" ] || fail "Ironic series $series is not one pyproject.toml supports ($(echo "$supported" | cut -d' ' -f1 | tr '\n' ' '))"
    venv="$venv_dir/ironic-venv-$series"
    prepare "$series" "$release" "$venv"
    echo "run-tests.sh: Ironic $series ($release)" >&2
    start=$SECONDS
    set +e
    HOSTSDIR_BROKER_BIN="$broker" IRONIC_SERIES_UNDER_TEST="$series" \
        "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
    rc=$?
    set -e
    echo "run-tests.sh: Ironic $series ($release): pytest exited $rc after $((SECONDS - start)) s" >&2
    case "$rc" in
        0) ;;
        5) echo "run-tests.sh: FAIL: pytest collected no tests for Ironic $series" >&2; failed+=("$series") ;;
        *) failed+=("$series") ;;
    esac
done
if [ "${#failed[@]}" -gt 0 ]; then
    fail "tests failed for Ironic ${failed[*]}"
fi
