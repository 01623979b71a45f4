#!/usr/bin/env bash
# Performance on a real CephFS (the lab of scripts/cephfs-lab.sh), not a
# timed test: prints numbers, asserts nothing.
#
#   1. durable PUT throughput through the broker (on mount A) against a
#      direct writer (temp file, write, fsync, close, rename, fsync dir) on
#      the same mount in the same run, with 1 and 16 clients;
#   2. the effect of a broker polling on mount B (--poll-interval-ms 1000)
#      on a direct writer on mount A in the same directory;
#   3. what the MDS allows any writer of one file per entry: create, write,
#      fsync and rename with 16 and 64 threads (no directory fsync), the
#      bound on anyone's throughput, the broker's included;
#   4. all again with mds_early_reply = false + mds_tick_interval = 1.
#
# Usage: sudo scripts/bench-cephfs.sh [FILES]   (FILES per measurement, default 200)
# Brings the lab up (twice: default MDS settings, then tuned) and down.
# Takes about 3-4 minutes after the one-time package install and the
# release build.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
files=${1:-200}
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"
. scripts/ensure-rust.sh
cargo build --release --bin hostsdir-broker >&2
bin=$top/target/release/hostsdir-broker
lab=${HDB_CEPHFS_LAB:-/tmp/hdb-cephfs-lab}
trap 'scripts/cephfs-lab.sh down || true' EXIT

bench() { # bench LABEL: one round of measurements on the running lab
    python3 - "$1" "$bin" "$lab" "$files" <<'EOF'
import http.client, json, os, subprocess, sys, threading, time
label, BIN, LAB, FILES = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
A, B = f"{LAB}/mnt/a", f"{LAB}/mnt/b"
run = f"bench-{os.getpid()}"

def direct(dirpath, clients, n, tag, dir_fsync=True):
    """n durable writes split over `clients` threads; files/s. Without
    `dir_fsync`: only what any writer of one file per entry must do (create,
    write, fsync, rename), the most the MDS allows with `clients` at once."""
    os.makedirs(dirpath, exist_ok=True)
    def worker(c):
        dfd = os.open(dirpath, os.O_RDONLY)
        for i in range(c, n, clients):
            name = f"{tag}-{i}"
            tmp = os.path.join(dirpath, f".{name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x},set:bench\n".encode())
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, os.path.join(dirpath, name))
            if dir_fsync:
                os.fsync(dfd)
        os.close(dfd)
    t = time.time()
    ths = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    [x.start() for x in ths]
    [x.join() for x in ths]
    return n / (time.time() - t)

def broker(root, poll_ms=1000):
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0",
                          "--hosts-dir", f"{root}/hosts", "--opts-dir", f"{root}/opts",
                          "--poll-interval-ms", str(poll_ms)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode().strip()
    host, port = line.rsplit("/", 1)[-1].split(":")
    return p, host, int(port)

def puts(host, port, clients, n, tag):
    """n PUTs of new entries split over `clients` keep-alive connections; req/s."""
    errors = []
    def worker(c):
        conn = http.client.HTTPConnection(host, port, timeout=120)
        for i in range(c, n, clients):
            body = json.dumps({"macs": [f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"],
                               "set_tags": ["bench"]})
            conn.request("PUT", f"/v1/hosts/{tag}-{i}", body, {"content-type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status not in (200, 201):
                errors.append(r.status)
        conn.close()
    t = time.time()
    ths = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    [x.start() for x in ths]
    [x.join() for x in ths]
    rate = n / (time.time() - t)
    if errors:
        print(f"  ({len(errors)} PUTs failed: {sorted(set(errors))})")
    return rate

rows = []
for clients in (1, 16):
    d = f"{A}/{run}/direct-{clients}"
    rate_direct = direct(d, clients, FILES, "d")
    root = f"{A}/{run}/broker-{clients}"
    p, host, port = broker(root)
    try:
        rate_broker = puts(host, port, clients, FILES, "b")
    finally:
        p.terminate(); p.wait()
    rows.append((clients, rate_direct, rate_broker))

# A writer on A, alone and with a broker polling the same directory from B
# (started first, on the empty directory: a broker starting on B reads every
# file A just wrote, and with mds_early_reply = true each open waits for an
# MDS tick, 5 s per file).
alone = direct(f"{A}/{run}/alone/hosts", 1, FILES // 2, "alone")
shared = f"{A}/{run}/polled"
os.makedirs(f"{shared}/hosts", exist_ok=True)
os.makedirs(f"{shared}/opts", exist_ok=True)
p, host, port = broker(f"{B}/{run}/polled", 1000)
try:
    time.sleep(1.5)
    t = time.time()
    polled = direct(f"{shared}/hosts", 1, FILES // 2, "polled")
    # How long B's broker takes to list everything A wrote.
    while True:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.request("GET", "/v1/hosts?limit=10000")
        n = len(json.loads(conn.getresponse().read())["items"])
        conn.close()
        if n >= FILES // 2 or time.time() - t > 120:
            break
        time.sleep(0.2)
    seen_after = time.time() - t
finally:
    p.terminate(); p.wait()

limits = [(c, direct(f"{A}/{run}/limit-{c}", c, FILES, "m", dir_fsync=False)) for c in (16, 64)]

print(f"== {label}")
print("  the least any writer of one file per entry does (create, write, fsync, rename; "
      "no directory fsync): " + ", ".join(f"{r:.0f} files/s with {c} threads" for c, r in limits))
print(f"  {'clients':>7}  {'direct writer files/s':>22}  {'broker PUTs/s':>14}  {'broker/direct':>13}")
for c, d, b in rows:
    print(f"  {c:>7}  {d:>22.1f}  {b:>14.1f}  {b / d:>12.0%}")
print(f"  writer on A alone: {alone:.1f} files/s; with a broker polling from B every 1 s: "
      f"{polled:.1f} files/s ({polled / alone:.0%}); B's broker listed {n} of {FILES // 2} "
      f"{seen_after:.1f} s after the writer started")
subprocess.run(["rm", "-rf", f"{A}/{run}"])  # through A, which wrote them: fast
EOF
}

scripts/cephfs-lab.sh up
bench "CephFS, Ceph defaults (mds_early_reply = true, mds_tick_interval = 5), $files files per cell"
scripts/cephfs-lab.sh down
HDB_CEPHFS_MDS_EARLY_REPLY=false HDB_CEPHFS_MDS_TICK=1 scripts/cephfs-lab.sh up
bench "CephFS, mds_early_reply = false, mds_tick_interval = 1, $files files per cell"
scripts/cephfs-lab.sh down
