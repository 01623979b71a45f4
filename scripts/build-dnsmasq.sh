#!/usr/bin/env bash
# Builds a dnsmasq release from a Debian source package into
# target/dnsmasq-VERSION/dnsmasq, for the real-dnsmasq suites
# (tests/dhcp_e2e.rs, tests/shadow_e2e.rs, ...):
#   scripts/build-dnsmasq.sh 2.91   # Debian trixie (stable)
#   scripts/build-dnsmasq.sh 2.93   # Debian sid, or forky: what
#                                   # rackerlabs/understack runs
# Debian bookworm ships 2.90, which crashes on SIGHUP once a `set:` host has
# done a DHCP exchange; the suites run against 2.90 (its crash cases), 2.91
# and 2.93.
#
# Why this way: the machine's own apt setup must stay untouched, so the
# deb-src source lives in a private deb822 file with private lists and cache
# directories. Authenticity: apt verifies the suite's InRelease against
# Debian's archive keyring (Signed-By), the Sources index against InRelease,
# and every downloaded file (.dsc, tarballs) against the hashes in Sources;
# `apt-get source` refuses a file whose hash differs. Only the upstream
# tarball is built (Debian's patches are packaging, not behaviour the broker
# relies on).
#
# Idempotent: does nothing when the cached binary already reports VERSION.
# Needs: apt-get, gcc, make, and (for the keyring) debian-archive-keyring.
# Run as root (or as a user who can run apt-get in private directories).
set -euo pipefail

VERSION=${1:?usage: $0 VERSION (2.91 or 2.93)}
# The Debian suites whose source package holds VERSION, tried in order: a
# suite that has moved on to a newer upstream release is skipped with a note.
case "$VERSION" in
    2.91) SUITES=(trixie) ;;
    2.93) SUITES=(sid forky) ;;
    *)
        echo "build-dnsmasq: error: no Debian suite known for dnsmasq $VERSION (2.91 or 2.93)" >&2
        exit 2
        ;;
esac
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

# Trixie's and sid's InRelease are signed by the Debian 13 keys; bookworm's
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

apt_private=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$priv/sources.list.d"
    -o "Dir::State::Lists=$priv/lists"
    -o "Dir::Cache=$priv/cache"
    -o "APT::Get::List-Cleanup=0"
)

# Downloads SUITE's dnsmasq source package into $priv/src. Fails the script
# when apt does; returns 1 when the package is not upstream release VERSION.
fetch_from() {
    local suite=$1 update_log="$priv/update.log"
    find "$priv/src" "$priv/lists" -maxdepth 1 -type f -delete
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
        "$suite" "$keyring" >"$priv/sources.list.d/src.sources"
    say "fetching $suite's Sources index (private apt lists in $priv)"
    if ! apt-get "${apt_private[@]}" update >"$update_log" 2>&1; then
        cat "$update_log" >&2
        die "apt-get update for $suite deb-src failed"
    fi
    # apt-get update can exit 0 with a warning when a signature does not
    # verify and the index is then ignored; refuse that explicitly.
    if grep -Eq '^(W|E): .*(NO_PUBKEY|not signed|signature|EXPKEYSIG|BADSIG)' "$update_log"; then
        cat "$update_log" >&2
        die "$suite's InRelease did not verify against $keyring"
    fi
    say "downloading $suite's dnsmasq source package (hashes checked by apt)"
    (cd "$priv/src" && apt-get "${apt_private[@]}" source --download-only dnsmasq) \
        >"$priv/source.log" 2>&1 || {
        cat "$priv/source.log" >&2
        die "apt-get source --download-only dnsmasq failed ($suite)"
    }
    if [ ! -f "$priv/src/dnsmasq_$VERSION.orig.tar.gz" ]; then
        say "note: $suite's dnsmasq is not $VERSION any more: $(cd "$priv/src" && ls -- *.dsc 2>/dev/null | tr '\n' ' ')"
        return 1
    fi
}

found=
for suite in "${SUITES[@]}"; do
    if fetch_from "$suite"; then
        found=$suite
        break
    fi
done
[ -n "$found" ] || die "none of ${SUITES[*]} has dnsmasq $VERSION any more (see the notes above)"

tarball="$priv/src/dnsmasq_$VERSION.orig.tar.gz"
dsc=$(ls "$priv/src"/dnsmasq_"$VERSION"-*.dsc 2>/dev/null | head -n 1)
[ -n "$dsc" ] || die "no dnsmasq_$VERSION-*.dsc downloaded"
# Belt and braces: the orig tarball's SHA-256 must be the one the .dsc lists
# (the .dsc itself was checked against the signed Sources index by apt).
want=$(awk '/^Checksums-Sha256:/{f=1;next} /^[^ ]/{f=0} f && $3 ~ /\.orig\.tar\.gz$/ {print $1}' "$dsc")
have=$(sha256sum "$tarball" | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$have" ] || die "SHA-256 of $tarball ($have) is not the one in $dsc (${want:-none})"
say "source: $found's $(basename "$dsc"), orig tarball sha256 $have"

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
# Keep the source tree's files the broker's rules are derived from, for
# reading beside the binary (src/reload/shadow.rs names them).
mkdir -p "$out_dir/src"
cp "$srcdir"/src/{option.c,dhcp-common.c,rfc2131.c,rfc3315.c,inotify.c,dnsmasq.h} "$out_dir/src/" 2>/dev/null || true

reports_version "$out" || die "$out does not report $VERSION"
say "built $out: $("$out" --version | head -n 1)"
