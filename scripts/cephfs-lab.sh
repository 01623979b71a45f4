#!/usr/bin/env bash
# A real CephFS on this one machine, mounted twice: two ceph-fuse mounts of
# one filesystem stand for two Kubernetes nodes sharing one RWX volume.
# Used by tests/cephfs.rs and scripts/bench-cephfs.sh.
#
#   scripts/cephfs-lab.sh install      Debian's ceph 16.2 packages (~60 s once)
#   scripts/cephfs-lab.sh up           install, then one mon, one memstore OSD,
#                                      one MDS, the filesystem, mounts A and B (~15 s)
#   scripts/cephfs-lab.sh down         stop only the lab's own pids, unmount,
#                                      remove the work dir (idempotent)
#   scripts/cephfs-lab.sh status       what runs, the mounts, the MDS sessions
#   scripts/cephfs-lab.sh remount a|b  a fresh ceph-fuse for one mount (after
#                                      a test killed it: "node death")
#   scripts/cephfs-lab.sh evict a|b    evict a mount's client now, as an
#                                      operator would for a dead node
#
# Everything lives under one work dir, $HDB_CEPHFS_LAB (default
# /tmp/hdb-cephfs-lab): ceph.conf, daemon data, logs, admin sockets, pid
# files (pids/*.pid, the only processes `down` stops) and the mounts
# mnt/a and mnt/b. Every daemon binds 127.0.0.1 only (msgr2, no IPv6); no
# cephx. The OSD keeps its data in RAM (memstore).
#
# Settings, from the environment at `up`:
#   HDB_CEPHFS_SESSION_TIMEOUT    s without a client's renewals before the MDS
#                                 marks it stale (Ceph default 60; lab 10)
#   HDB_CEPHFS_SESSION_AUTOCLOSE  s stale before the MDS evicts it and
#                                 drops its caps and locks (default 300; lab 15)
#   HDB_CEPHFS_MDS_EARLY_REPLY    mds_early_reply (default true)
#   HDB_CEPHFS_MDS_TICK           mds_tick_interval in s (default 5)
#   HDB_CEPHFS_MON_PORT           the mon's msgr2 port (default 3300)
# Must run as root (FUSE mounts, daemons). Fails loudly; a failed `up`
# takes down whatever it started.
set -Eeuo pipefail

LAB=${HDB_CEPHFS_LAB:-/tmp/hdb-cephfs-lab}
CONF=$LAB/ceph.conf
PORT=${HDB_CEPHFS_MON_PORT:-3300}
SESSION_TIMEOUT=${HDB_CEPHFS_SESSION_TIMEOUT:-30}
SESSION_AUTOCLOSE=${HDB_CEPHFS_SESSION_AUTOCLOSE:-30}
EARLY_REPLY=${HDB_CEPHFS_MDS_EARLY_REPLY:-true}
MDS_TICK=${HDB_CEPHFS_MDS_TICK:-5}
PACKAGES=(ceph-mon ceph-osd ceph-mds ceph-fuse ceph-common fuse3)

die() {
    echo "cephfs-lab: error: $*" >&2
    exit 1
}
say() { echo "cephfs-lab: $*" >&2; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (FUSE mounts, ceph daemons); try: sudo $0 $*"
}

ceph_() { timeout 30 ceph -c "$CONF" "$@"; }

install() {
    need_root install
    local missing=() pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    say "installing ${missing[*]} (about 60 s)"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' postinst scripts try systemd ("Failed to connect to
    # bus"): harmless, no daemon is started for us.
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update || die "apt-get update failed"
        apt-get install -y --no-install-recommends "${missing[@]}" \
            || die "apt-get install ${missing[*]} failed"
    fi
    for tool in ceph ceph-mon ceph-osd ceph-mds ceph-fuse monmaptool fusermount3; do
        command -v "$tool" >/dev/null || die "$tool missing after installing ${PACKAGES[*]}"
    done
}

# pid_of NAME: the recorded pid, if that process still runs and is ours
# (its command line names our ceph.conf).
pid_of() {
    local f=$LAB/pids/$1.pid pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
    grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
    echo "$pid"
}

# start NAME CMD...: runs CMD in the background (own session, output to
# log/NAME.out) and records its pid.
start() {
    local name=$1
    shift
    setsid "$@" </dev/null >"$LAB/log/$name.out" 2>&1 &
    echo $! >"$LAB/pids/$name.pid"
}

# stop NAME: SIGTERM, up to 15 s (the MDS takes ~6 s), then SIGKILL.
stop() {
    local pid i
    pid=$(pid_of "$1") || { rm -f "$LAB/pids/$1.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do
        pid_of "$1" >/dev/null || break
        sleep 0.1
    done
    if pid_of "$1" >/dev/null; then
        say "$1 ($pid) ignored SIGTERM for 15 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$LAB/pids/$1.pid"
}

is_mounted() { grep -qF " $1 fuse.ceph-fuse " /proc/mounts; }

unmount() {
    local dir=$LAB/mnt/$1
    if grep -qF " $dir " /proc/mounts; then
        fusermount3 -u "$dir" 2>/dev/null || fusermount3 -uz "$dir" 2>/dev/null \
            || umount -l "$dir" 2>/dev/null || say "could not unmount $dir"
    fi
}

write_conf() {
    local fsid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat >"$CONF" <<EOF
# Written by scripts/cephfs-lab.sh: a one-machine CephFS lab, loopback only.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$PORT/0
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 4294967296
run dir = $LAB/run
pid file =
log file = $LAB/log/\$name.\$pid.log
admin socket = $LAB/run/\$name.\$pid.asok
mon data = $LAB/data/mon-\$id
osd data = $LAB/data/osd-\$id
mds data = $LAB/data/mds-\$id
keyring = $LAB/keyring
mon cluster log file = $LAB/log/cluster.log
mds early reply = $EARLY_REPLY
mds tick interval = $MDS_TICK
[client]
# The ceph CLI: no log file or admin socket per call. ceph-fuse gets its
# own on its command line (two clients as client.admin must not share them).
log file = /dev/null
admin socket =
EOF
}

wait_for() { # wait_for SECONDS WHAT CMD...
    local what=$2 end=$((SECONDS + $1))
    shift 2
    while [ "$SECONDS" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "timed out after ${secs}s waiting for $what (logs in $LAB/log)"
}

mds_active() { ceph_ mds stat 2>/dev/null | grep -q 'up:active'; }

mount_one() {
    local m=$1 dir=$LAB/mnt/$1
    unmount "$m"
    mkdir -p "$dir"
    start "fuse-$m" ceph-fuse -c "$CONF" -n client.admin -f \
        --client_fs=cephfs --client_mountpoint=/ \
        --log-file="$LAB/log/fuse-$m.log" --admin-socket="$LAB/run/fuse-$m.asok" "$dir"
    wait_for 30 "mount $m" is_mounted "$dir"
    wait_for 30 "mount $m to answer" stat "$dir/."
}

up() {
    need_root up
    install
    down quiet
    mkdir -p "$LAB"/{log,run,pids,data,mnt/a,mnt/b}
    chmod 755 "$LAB" "$LAB/mnt"
    # From here on a failure takes down whatever was started.
    trap 'rc=$?; [ "$rc" -eq 0 ] || { say "up failed; taking the lab down"; down quiet; }' EXIT
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "127.0.0.1:$PORT is taken (another mon?); set HDB_CEPHFS_MON_PORT"
    fi
    write_conf
    touch "$LAB/keyring"

    monmaptool --create --addv a "[v2:127.0.0.1:$PORT]" \
        --fsid "$(sed -n 's/^fsid = //p' "$CONF")" "$LAB/monmap" >/dev/null
    mkdir -p "$LAB/data/mon-a"
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$LAB/monmap" >"$LAB/log/mon-mkfs.out" 2>&1 \
        || die "ceph-mon --mkfs failed: $(tail -n 5 "$LAB/log/mon-mkfs.out")"
    start mon ceph-mon -c "$CONF" -i a -f
    wait_for 30 "the mon" ceph_ mon stat

    local uuid osd
    uuid=$(cat /proc/sys/kernel/random/uuid)
    osd=$(ceph_ osd new "$uuid")
    mkdir -p "$LAB/data/osd-$osd"
    ceph-osd -c "$CONF" -i "$osd" --mkfs --osd-uuid "$uuid" >"$LAB/log/osd-mkfs.out" 2>&1 \
        || die "ceph-osd --mkfs failed: $(tail -n 5 "$LAB/log/osd-mkfs.out")"
    start osd ceph-osd -c "$CONF" -i "$osd" -f
    wait_for 30 "the OSD to be up" sh -c "timeout 10 ceph -c '$CONF' osd stat | grep -q '1 up'"

    local pool
    for pool in cephfs_metadata cephfs_data; do
        ceph_ osd pool create "$pool" 8 >/dev/null 2>&1
        ceph_ osd pool set "$pool" size 1 --yes-i-really-mean-it >/dev/null 2>&1
    done
    ceph_ fs new cephfs cephfs_metadata cephfs_data >/dev/null 2>&1
    ceph_ fs set cephfs session_timeout "$SESSION_TIMEOUT" >/dev/null || die "cannot set session_timeout $SESSION_TIMEOUT (minimum 30)"
    ceph_ fs set cephfs session_autoclose "$SESSION_AUTOCLOSE" >/dev/null || die "cannot set session_autoclose $SESSION_AUTOCLOSE (minimum 30)"

    mkdir -p "$LAB/data/mds-a"
    start mds ceph-mds -c "$CONF" -i a -f
    wait_for 60 "the MDS to be active" mds_active

    mount_one a
    mount_one b
    chmod 755 "$LAB/mnt/a" "$LAB/mnt/b"
    trap - EXIT
    say "up: $LAB/mnt/a and $LAB/mnt/b (session_timeout ${SESSION_TIMEOUT}s, session_autoclose ${SESSION_AUTOCLOSE}s, mds_early_reply $EARLY_REPLY, mds_tick_interval ${MDS_TICK}s)"
}

down() {
    local quiet=${1:-} m name f
    [ -d "$LAB" ] || { [ -n "$quiet" ] || say "down: nothing to do"; return 0; }
    for m in a b; do
        stop "fuse-$m"
        unmount "$m"
    done
    for name in mds osd mon; do stop "$name"; done
    # Anything else recorded (e.g. an extra client started by a test).
    for f in "$LAB"/pids/*.pid; do
        [ -e "$f" ] || continue
        stop "$(basename "$f" .pid)"
    done
    for m in a b; do
        if grep -qF " $LAB/mnt/$m " /proc/mounts; then
            die "down: $LAB/mnt/$m is still mounted; not removing $LAB"
        fi
    done
    rm -rf "$LAB"
    [ -n "$quiet" ] || say "down: stopped and removed $LAB"
}

status() {
    [ -f "$CONF" ] || { echo "cephfs-lab: not up ($LAB)"; return 3; }
    local name pid ok=0
    for name in mon osd mds fuse-a fuse-b; do
        if pid=$(pid_of "$name"); then
            echo "$name: running, pid $pid"
        else
            echo "$name: NOT running"
            ok=3
        fi
    done
    for m in a b; do
        if is_mounted "$LAB/mnt/$m" && timeout 5 stat "$LAB/mnt/$m/." >/dev/null 2>&1; then
            echo "mount $m: $LAB/mnt/$m"
        else
            echo "mount $m: NOT usable"
            ok=3
        fi
    done
    ceph_ mds stat 2>/dev/null || true
    ceph_ fs get cephfs 2>/dev/null | grep -E 'session_(timeout|autoclose)' || true
    return $ok
}

# client_id a|b: the MDS session id of that mount's ceph-fuse.
client_id() {
    local pid
    pid=$(cat "$LAB/pids/fuse-$1.pid")
    ceph_ tell mds.a session ls 2>/dev/null | python3 -c '
import json, sys
pid = sys.argv[1]
for s in json.load(sys.stdin):
    if str(s.get("client_metadata", {}).get("pid")) == pid:
        print(s["id"])
' "$pid"
}

evict() {
    local id
    id=$(client_id "$1")
    [ -n "$id" ] || die "no MDS session for mount $1"
    ceph_ tell mds.a client evict "id=$id" >/dev/null
    say "evicted mount $1's client (session $id)"
}

cmd=${1:-}
case "$cmd" in
install) install ;;
up) up ;;
down) down ;;
status) status ;;
remount)
    need_root remount
    case "${2:-}" in a | b) ;; *) die "usage: $0 remount a|b" ;; esac
    stop "fuse-$2"
    mount_one "$2"
    ;;
evict)
    case "${2:-}" in a | b) ;; *) die "usage: $0 evict a|b" ;; esac
    evict "$2"
    ;;
*) die "usage: $0 install|up|down|status|remount a|b|evict a|b" ;;
esac
