#!/usr/bin/env bash
# Builds dnsmasq 2.91 from Debian trixie's source package into
# target/dnsmasq-2.91/dnsmasq, for the end-to-end DHCP tests
# (tests/dhcp_e2e.rs). Debian bookworm ships 2.90, which crashes on SIGHUP
# once a `set:` host has done a DHCP exchange; the suite runs against both.
#
# Why this way: the machine's own apt setup must stay untouched, so the
# trixie deb-src source lives in a private deb822 file with private lists
# and cache directories. Authenticity: apt verifies trixie's InRelease
# against Debian's archive keyring (Signed-By), the Sources index against
# InRelease, and every downloaded file (.dsc, tarballs) against the hashes
# in Sources; `apt-get source` refuses a file whose hash differs.
#
# Idempotent: does nothing when the cached binary already reports 2.91.
# Needs: apt-get, gcc, make, and (for the keyring) debian-archive-keyring.
# Run as root (or as a user who can run apt-get in private directories).
set -euo pipefail

VERSION=2.91
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out_dir="$top/target/dnsmasq-$VERSION"
out="$out_dir/dnsmasq"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
    echo "build-dnsmasq-$VERSION: error: $*" >&2
    exit 1
}
say() { echo "build-dnsmasq-$VERSION: $*" >&2; }

reports_version() {
    [ -x "$1" ] && "$1" --version 2>/dev/null | head -n 1 | grep -q "^Dnsmasq version $VERSION "
}

if reports_version "$out"; then
    say "already built: $out ($("$out" --version | head -n 1))"
    exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found (this recipe needs Debian's apt)"
command -v make >/dev/null || die "make not found: apt-get install -y build-essential"
command -v cc >/dev/null || command -v gcc >/dev/null || die "no C compiler: apt-get install -y build-essential"

# Trixie's InRelease is signed by the Debian 13 keys; bookworm's
# debian-archive-keyring (2023.3+deb12u1 and later) already carries them.
[ -r "$keyring" ] || die "$keyring missing: apt-get install -y debian-archive-keyring"
if command -v gpg >/dev/null; then
    if ! gpg --show-keys "$keyring" 2>/dev/null | grep -q '(13/trixie)'; then
        die "$keyring has no Debian 13/trixie keys: apt-get install -y debian-archive-keyring (a newer one)"
    fi
fi

priv=$(mktemp -d "${TMPDIR:-/tmp}/dnsmasq-$VERSION-build.XXXXXX")
trap 'rm -rf "$priv"' EXIT
mkdir -p "$priv/sources.list.d" "$priv/lists/partial" "$priv/cache/archives/partial" "$priv/src"
# apt drops to the _apt user for downloads when it can; let it write here.
chmod 755 "$priv"
if id _apt >/dev/null 2>&1; then
    chown -R _apt "$priv/lists/partial" "$priv/cache/archives/partial" "$priv/src" 2>/dev/null || true
fi

cat >"$priv/sources.list.d/trixie-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: $keyring
EOF

apt_private=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$priv/sources.list.d"
    -o "Dir::State::Lists=$priv/lists"
    -o "Dir::Cache=$priv/cache"
    -o "APT::Get::List-Cleanup=0"
)

say "fetching trixie's Sources index (private apt lists in $priv)"
update_log="$priv/update.log"
if ! apt-get "${apt_private[@]}" update >"$update_log" 2>&1; then
    cat "$update_log" >&2
    die "apt-get update for trixie deb-src failed"
fi
# apt-get update can exit 0 with a warning when a signature does not verify
# and the index is then ignored; refuse that explicitly.
if grep -Eq '^(W|E): .*(NO_PUBKEY|not signed|signature|EXPKEYSIG|BADSIG)' "$update_log"; then
    cat "$update_log" >&2
    die "trixie's InRelease did not verify against $keyring"
fi

say "downloading the dnsmasq source package (hashes checked by apt)"
(
    cd "$priv/src"
    apt-get "${apt_private[@]}" source --download-only dnsmasq
) >"$priv/source.log" 2>&1 || {
    cat "$priv/source.log" >&2
    die "apt-get source --download-only dnsmasq failed"
}

tarball="$priv/src/dnsmasq_$VERSION.orig.tar.gz"
if [ ! -f "$tarball" ]; then
    ls -l "$priv/src" >&2
    die "expected $tarball; trixie's dnsmasq source is not $VERSION any more (see the listing above)"
fi
dsc=$(ls "$priv/src"/dnsmasq_"$VERSION"-*.dsc 2>/dev/null | head -n 1)
[ -n "$dsc" ] || die "no dnsmasq_$VERSION-*.dsc downloaded"
# Belt and braces: the orig tarball's SHA-256 must be the one the .dsc lists
# (the .dsc itself was checked against the signed Sources index by apt).
want=$(awk '/^Checksums-Sha256:/{f=1;next} /^[^ ]/{f=0} f && $3 ~ /\.orig\.tar\.gz$/ {print $1}' "$dsc")
have=$(sha256sum "$tarball" | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$have" ] || die "SHA-256 of $tarball ($have) is not the one in $dsc (${want:-none})"
say "source: $(basename "$dsc"), orig tarball sha256 $have"

tar -xzf "$tarball" -C "$priv"
srcdir="$priv/dnsmasq-$VERSION"
[ -f "$srcdir/Makefile" ] || die "unpacked tarball has no $srcdir/Makefile"

say "building (make -j$(nproc 2>/dev/null || echo 2))"
if ! make -C "$srcdir" -j"$(nproc 2>/dev/null || echo 2)" >"$priv/make.log" 2>&1; then
    tail -n 40 "$priv/make.log" >&2
    die "make failed in $srcdir"
fi
[ -x "$srcdir/src/dnsmasq" ] || die "make produced no $srcdir/src/dnsmasq"
reports_version "$srcdir/src/dnsmasq" || die "built binary does not report $VERSION: $("$srcdir/src/dnsmasq" --version | head -n 1)"

mkdir -p "$out_dir"
install -m 0755 "$srcdir/src/dnsmasq" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
cp "$dsc" "$out_dir/" 2>/dev/null || true

reports_version "$out" || die "$out does not report $VERSION"
say "built $out: $("$out" --version | head -n 1)"
