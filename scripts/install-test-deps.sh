#!/usr/bin/env bash
# Installs what the end-to-end DHCP tests (tests/dhcp_e2e.rs) need on a
# Debian machine, then builds dnsmasq 2.91 and 2.93 (scripts/build-dnsmasq.sh):
#   dnsmasq-base  Debian's dnsmasq (2.90 on bookworm), /usr/sbin/dnsmasq
#   udhcpc        busybox's DHCP client, the test's client
#   isc-dhcp-client  `dhclient -6`, the DHCPv6 client (tests/dhcpv6_e2e.rs;
#                 busybox has none); run with its own script, never the
#                 default hooks (they rewrite /etc/resolv.conf)
#   dnsmasq-utils `dhcp_release6`: releases a DHCPv6 lease that holds a
#                 reserved address (the old-DUID pitfall, docs/dhcpv6.md)
#   iproute2      `ip netns` / veth for the private test network
#   python3-venv  for the project's Python-side tooling
#   build-essential, debian-archive-keyring, gnupg: to build and verify 2.91/2.93
#   fiu-utils     libfiu's fiu-run/fiu-ctrl: faults injected into a running
#                 broker (tests/fiu.rs)
# Idempotent: installs only what is missing and runs `apt-get update` only
# when something must be installed. Must run as root. Fails loudly.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "install-test-deps: error: $*" >&2
    exit 1
}
say() { echo "install-test-deps: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces and apt-get need it); try: sudo $0"
command -v apt-get >/dev/null || die "apt-get not found: these tests expect a Debian (bookworm) machine"
command -v dpkg-query >/dev/null || die "dpkg-query not found"

wanted=(dnsmasq-base udhcpc isc-dhcp-client dnsmasq-utils iproute2 python3-venv build-essential debian-archive-keyring gnupg fiu-utils)
missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when they look absent (fresh machine)
    # or when the first install attempt cannot find a package.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]; then
        apt-get update || die "apt-get update failed"
    fi
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        say "install failed; refreshing package lists and retrying"
        apt-get update || die "apt-get update failed"
        apt-get install -y --no-install-recommends "${missing[@]}" \
            || die "apt-get install ${missing[*]} failed"
    fi
else
    say "all packages present: ${wanted[*]}"
fi

# Check the tools the tests actually call, whatever installed them.
for tool in /usr/sbin/dnsmasq ip udhcpc dhclient dhcp_release6 fiu-run fiu-ctrl; do
    command -v "$tool" >/dev/null || die "$tool still missing after install"
done
/usr/sbin/dnsmasq --version | head -n 1 | grep -q '^Dnsmasq version 2\.90 ' \
    || say "note: /usr/sbin/dnsmasq is not 2.90 ($(/usr/sbin/dnsmasq --version | head -n 1)); the suite expects Debian bookworm's 2.90"

# Network namespaces need the kernel's support and CAP_SYS_ADMIN.
probe="hdb-probe-$$"
ip netns add "$probe" 2>/dev/null || die "cannot create a network namespace ('ip netns add' failed): the tests need CAP_SYS_ADMIN and netns support"
ip netns del "$probe" || true

for v in 2.91 2.93; do
    "$top/scripts/build-dnsmasq.sh" "$v" || die "building dnsmasq $v failed"
done
say "ready: /usr/sbin/dnsmasq ($(/usr/sbin/dnsmasq --version | head -n 1 | cut -d' ' -f1-3)), $top/target/dnsmasq-2.91/dnsmasq and $top/target/dnsmasq-2.93/dnsmasq"
