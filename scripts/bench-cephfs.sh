#!/usr/bin/env bash
# Performance on a real CephFS (the lab of scripts/cephfs-lab.sh), not a
# timed test: prints numbers, asserts nothing. Every ratio compares two
# measurements of the same run, on the same mount.
#
#   1. a lone client: the median of sequential durable PUTs through the
#      broker (on mount A) against a direct writer (temp file, write,
#      fsync, close, rename, fsync dir), and the MDS requests each costs
#      (the MDS's own `handle_client_request` counter);
#   2. 16 clients: PUTs/s against the direct writer's files/s, and against
#      what the MDS allows any writer of one file per entry (create, write,
#      fsync, rename; no directory fsync) with 16 and 64 threads;
#   3. two brokers (A and B) creating the same 40 MACs at once, one client
#      each: how long, and how many answers were 201, 409, 503;
#   4. a direct (legacy) writer on A, alone and with a broker polling the
#      directory from B every 1 s; how long B's broker takes to list all it
#      wrote, and to notice one file written behind it;
#   5. all again with mds_early_reply = false + mds_tick_interval = 1 (the
#      settings an operator could change; the broker no longer needs them).
#
# Usage: sudo scripts/bench-cephfs.sh [FILES]   (FILES per measurement, default 200)
# Brings the lab up (twice: default MDS settings, then tuned) and down.
# Takes about 4-5 minutes after the one-time package install and the
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
import glob, http.client, json, os, statistics, subprocess, sys, threading, time
label, BIN, LAB, FILES = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
A, B = f"{LAB}/mnt/a", f"{LAB}/mnt/b"
run = f"bench-{os.getpid()}"
MDS = glob.glob(f"{LAB}/run/mds.*.asok")[0]

def mds_requests():
    out = subprocess.run(["ceph", "--admin-daemon", MDS, "perf", "dump"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["mds_server"]["handle_client_request"]

def mac(i, pre="52:54:00"):
    return f"{pre}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"

def write_one(dirpath, dfd, name, text, dir_fsync=True):
    tmp = os.path.join(dirpath, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, text.encode())
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, os.path.join(dirpath, name))
    if dir_fsync:
        os.fsync(dfd)

def direct(dirpath, clients, n, tag, dir_fsync=True):
    """n durable writes split over `clients` threads; files/s."""
    os.makedirs(dirpath, exist_ok=True)
    def worker(c):
        dfd = os.open(dirpath, os.O_RDONLY)
        for i in range(c, n, clients):
            write_one(dirpath, dfd, f"{tag}-{i}", f"{mac(i)},set:bench\n", dir_fsync)
        os.close(dfd)
    t = time.time()
    ths = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    [x.start() for x in ths]
    [x.join() for x in ths]
    return n / (time.time() - t)

def direct_latency(dirpath, n):
    """Median seconds of n sequential durable writes, and MDS requests each."""
    os.makedirs(dirpath, exist_ok=True)
    dfd = os.open(dirpath, os.O_RDONLY)
    times, before = [], mds_requests()
    for i in range(n):
        t = time.time()
        write_one(dirpath, dfd, f"l-{i}", f"{mac(i)},set:bench\n")
        times.append(time.time() - t)
    os.close(dfd)
    return statistics.median(times), (mds_requests() - before) / n

class Broker:
    def __init__(self, root, poll_ms=1000):
        self.p = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--hosts-dir", f"{root}/hosts",
             "--opts-dir", f"{root}/opts", "--poll-interval-ms", str(poll_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.p.stdout.readline().decode().strip()
        host, port = line.rsplit("/", 1)[-1].split(":")
        self.host, self.port = host, int(port)
    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=300)
    def get(self, path):
        c = self.conn(); c.request("GET", path)
        r = c.getresponse(); body = json.loads(r.read()); c.close()
        return body
    def nudges(self):
        return self.get("/v1/status")["writer"].get("mds_nudges")
    def stop(self):
        self.p.terminate(); self.p.wait()

def put(conn, name, spec):
    conn.request("PUT", f"/v1/hosts/{name}", json.dumps(spec), {"content-type": "application/json"})
    r = conn.getresponse(); r.read()
    return r.status

def puts(b, clients, n, tag):
    """n PUTs of new entries split over `clients` keep-alive connections; req/s."""
    errors = []
    def worker(c):
        conn = b.conn()
        for i in range(c, n, clients):
            s = put(conn, f"{tag}-{i}", {"macs": [mac(i, "52:54:01")], "set_tags": ["bench"]})
            if s not in (200, 201):
                errors.append(s)
        conn.close()
    t = time.time()
    ths = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    [x.start() for x in ths]
    [x.join() for x in ths]
    if errors:
        print(f"  ({len(errors)} PUTs failed: {sorted(set(errors))})")
    return n / (time.time() - t)

def put_latency(b, n):
    conn, times, before = b.conn(), [], mds_requests()
    for i in range(n):
        t = time.time()
        put(conn, f"l-{i}", {"macs": [mac(i, "52:54:02")], "set_tags": ["bench"]})
        times.append(time.time() - t)
    after = mds_requests()
    conn.close()
    return statistics.median(times), (after - before) / n

out = []
# 1. A lone client.
d_lat, d_req = direct_latency(f"{A}/{run}/direct-lat", FILES // 2)
b = Broker(f"{A}/{run}/broker-lat")
try:
    put_latency(b, 5)  # warm up: the first PUT takes the lock and reads the journal
    b_lat, b_req = put_latency(b, FILES // 2)
    b_nudges = b.nudges()
finally:
    b.stop()
out.append(f"  lone client: a PUT's median {b_lat * 1000:.1f} ms against a direct writer's "
           f"{d_lat * 1000:.1f} ms ({b_lat / d_lat:.2f}x); MDS requests per write: broker "
           f"{b_req:.1f}, direct writer {d_req:.1f} (broker's MDS nudges: {b_nudges})")

# 2. 16 clients, against the direct writer and the bound.
rate_direct = direct(f"{A}/{run}/direct-16", 16, FILES, "d")
b = Broker(f"{A}/{run}/broker-16")
try:
    rate_broker = puts(b, 16, FILES, "b")
finally:
    b.stop()
limits = [(c, direct(f"{A}/{run}/limit-{c}", c, FILES, "m", dir_fsync=False)) for c in (16, 64)]
bound = max(r for _, r in limits)
out.append(f"  16 clients: broker {rate_broker:.0f} PUTs/s, direct writer {rate_direct:.0f} files/s "
           f"({rate_broker / rate_direct:.2f}x); the least any writer does: "
           + ", ".join(f"{r:.0f} files/s with {c} threads" for c, r in limits)
           + f" (broker at {rate_broker / bound:.0%} of the best)")

# 3. Two brokers racing the same 40 creates.
os.makedirs(f"{A}/{run}/race/hosts"); os.makedirs(f"{A}/{run}/race/opts")
ba, bb = Broker(f"{A}/{run}/race"), Broker(f"{B}/{run}/race")
answers = []
def racer(br, who):
    conn = br.conn()
    for i in range(40):
        answers.append(put(conn, f"{who}-{i}", {"macs": [mac(i, "52:54:03")], "set_tags": [who]}))
try:
    t = time.time()
    ths = [threading.Thread(target=racer, args=(br, w)) for br, w in ((ba, "a"), (bb, "b"))]
    [x.start() for x in ths]; [x.join() for x in ths]
    race = time.time() - t
finally:
    ba.stop(); bb.stop()
count = lambda s: sum(1 for a in answers if a == s)
out.append(f"  two brokers, 40 MACs each at once: {race:.1f} s; {count(201)} created, "
           f"{count(409)} answered 409, {count(503)} answered 503, "
           f"{len(answers) - count(201) - count(409) - count(503)} other")

# 4. A legacy writer on A, alone and with a broker polling from B.
alone = direct(f"{A}/{run}/alone/hosts", 1, FILES // 2, "alone")
shared = f"{A}/{run}/polled"
os.makedirs(f"{shared}/hosts"); os.makedirs(f"{shared}/opts")
pb = Broker(f"{B}/{run}/polled", 1000)
try:
    time.sleep(1.5)
    t = time.time()
    polled = direct(f"{shared}/hosts", 1, FILES // 2, "polled")
    while True:
        n = len(pb.get("/v1/hosts?limit=10000")["items"])
        if n >= FILES // 2 or time.time() - t > 120:
            break
        time.sleep(0.1)
    seen_after = time.time() - t
    # One file at a time written behind the broker: how long until it lists it.
    notice = []
    dfd = os.open(f"{shared}/hosts", os.O_RDONLY)
    for k in range(5):
        time.sleep(1.3)
        name = f"late-{k}"
        t = time.time()
        write_one(f"{shared}/hosts", dfd, name, f"{mac(k, '52:54:04')},set:late\n")
        while time.time() - t < 60:
            c = pb.conn(); c.request("GET", f"/v1/hosts/{name}")
            r = c.getresponse(); r.read(); c.close()
            if r.status == 200:
                break
            time.sleep(0.02)
        notice.append(time.time() - t)
    os.close(dfd)
finally:
    pb.stop()
out.append(f"  legacy writer on A: alone {alone:.0f} files/s; with a broker polling from B every 1 s "
           f"{polled:.0f} files/s ({polled / alone:.0%}); B's broker listed {n} of {FILES // 2} "
           f"{seen_after:.1f} s after the writer started; one file written behind it was served "
           f"after {statistics.median(notice):.1f} s (median of 5, max {max(notice):.1f} s)")

print(f"== {label}")
print("\n".join(out))
subprocess.run(["rm", "-rf", f"{A}/{run}"])  # through A, which wrote them: fast
EOF
}

scripts/cephfs-lab.sh up
bench "CephFS, Ceph defaults (mds_early_reply = true, mds_tick_interval = 5), $files files per cell"
scripts/cephfs-lab.sh down
HDB_CEPHFS_MDS_EARLY_REPLY=false HDB_CEPHFS_MDS_TICK=1 scripts/cephfs-lab.sh up
bench "CephFS, mds_early_reply = false, mds_tick_interval = 1, $files files per cell"
scripts/cephfs-lab.sh down
