//! Reload benchmark: what a SIGHUP costs a real dnsmasq, and how much of the
//! time dnsmasq is unresponsive under churn with each broker reload policy.
//!
//! A benchmark, not a timed test: it prints a Markdown table and asserts
//! nothing. Run it through `scripts/bench-reload.sh`, which builds it in
//! release mode, creates the network namespace this binary must run in, and
//! cleans up. Everything (dnsmasq, the broker, the DNS prober) runs inside
//! that namespace; DNS is served on 127.0.0.1:5353 there.
//!
//! Every dnsmasq given with `--dnsmasq` (default: the 2.91 and 2.93 builds)
//! is measured in the same run, one after the other. For each, and each size
//! N (Ironic host files `ironic-<mac>.conf` holding
//! `<mac>,set:<tag>,set:ironic`):
//!
//! - **SIGHUP stall**: dnsmasq is started on the N files; then, three times,
//!   once it is idle, it gets SIGHUP while a prober sends a DNS query every
//!   2 ms until the reload is over; the stall is the longest any of those
//!   queries waited, cross-checked with dnsmasq's CPU time for the reload
//!   (median of 3). See [`one_sighup_stall`] for why one query sent right
//!   after the signal measured the wrong SIGHUP.
//! - **churn**, for each policy, from the same starting state (directory
//!   rewritten, dnsmasq and broker restarted): changes at `--rate` per second
//!   for `--seconds`, all through the broker's HTTP API, in the same order
//!   for every policy (fixed seed): 60% replace an existing host's file,
//!   toggling `set:<tag>,set:ironic` <-> `ignore`; 20% create a new host;
//!   20% delete an existing host. Meanwhile a prober sends a DNS A query
//!   every 10 ms from its own UDP socket. A query is **unresponsive** when
//!   its reply took more than 50 ms or never came (5 s timeout); the share
//!   is unresponsive queries / queries sent during the window. SIGHUPs are
//!   the broker's `reload.ok_count` growth over the window (cross-checked
//!   against dnsmasq's log: an empty marker `--dhcp-hostsfile` is read only
//!   at start and on SIGHUP).
//!
//! - **name churn** (issue 12): 5,000 live files replaced three times under
//!   new names, the SIGHUP that first reads each round's names timed like
//!   the stall above, then a second SIGHUP, a restart and a SIGHUP after it
//!   ([`name_churn`]).
//!
//! Policies are `--policy 'LABEL=FLAGS'` (repeatable; default: the three
//! below). Flags the broker binary does not know are handled so the
//! benchmark runs against older brokers: `--reload-policy coalesce` is
//! dropped (what a broker without the flag does anyway), any other unknown
//! flag makes that policy's rows say "skipped".

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// Where dnsmasq answers DNS inside the namespace.
const DNS_ADDR: &str = "127.0.0.1:5353";
/// The name the prober asks for, and the answer dnsmasq is configured with.
const PROBE_NAME: &str = "probe.test";
const PROBE_ANSWER: &str = "10.251.0.9";
/// A query is unresponsive when its reply takes longer than this…
const SLOW: Duration = Duration::from_millis(50);
/// …or never comes within this.
const LOST: Duration = Duration::from_secs(5);
/// The prober's send interval.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Number of SIGHUPs timed per size.
const STALL_SAMPLES: usize = 3;

const DEFAULT_POLICIES: &[(&str, &str)] = &[
    (
        "SIGHUP per change",
        "--reload-policy coalesce --reload-quiet-ms 0 --reload-max-delay-ms 0",
    ),
    (
        "previous coalescing",
        "--reload-policy coalesce --reload-quiet-ms 200 --reload-max-delay-ms 2000",
    ),
    ("new policy", "--reload-policy shadow"),
];

const USAGE: &str = "\
usage: bench_reload [--dnsmasq PATH]... --broker PATH [--sizes 1000,10000,20000]
                    [--seconds 30] [--rate 2] [--seed N] [--workdir DIR]
                    [--policy 'LABEL=FLAGS']... [--keep]
                    [--churn-live 5000] [--churn-rounds 3]   (--churn-live 0: skip)
--dnsmasq (repeatable; default target/dnsmasq-2.91/dnsmasq and
target/dnsmasq-2.93/dnsmasq): every build is measured in this run.
Must run as root inside a network namespace with lo up and an interface
(--interface, default hdbbench0) holding an address in 10.251.0.0/16
(scripts/bench-reload.sh sets this up).";

type Res<T> = Result<T, String>;

#[derive(Clone, Debug)]
struct Policy {
    label: String,
    flags: Vec<String>,
}

#[derive(Debug)]
struct Args {
    /// The dnsmasq builds measured, one after the other in this run.
    dnsmasq: Vec<PathBuf>,
    broker: PathBuf,
    sizes: Vec<usize>,
    seconds: u64,
    rate: f64,
    seed: u64,
    workdir: Option<PathBuf>,
    interface: String,
    policies: Vec<Policy>,
    keep: bool,
    /// Name-churn scenario: live files (0: skip) and replacement rounds.
    churn_live: usize,
    churn_rounds: usize,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        dnsmasq: Vec::new(),
        broker: PathBuf::from("target/release/hostsdir-broker"),
        sizes: vec![1000, 10_000, 20_000],
        seconds: 30,
        rate: 2.0,
        seed: 0x5eed_2025,
        workdir: None,
        interface: "hdbbench0".into(),
        policies: Vec::new(),
        keep: false,
        churn_live: 5000,
        churn_rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            a.keep = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {v}: {e}");
        match flag.as_str() {
            "--dnsmasq" => a.dnsmasq.push(v.into()),
            "--broker" => a.broker = v.into(),
            "--sizes" => {
                a.sizes = v
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().map_err(|e| bad(&e)))
                    .collect::<Res<_>>()?
            }
            "--seconds" => a.seconds = v.parse().map_err(|e| bad(&e))?,
            "--rate" => a.rate = v.parse().map_err(|e| bad(&e))?,
            "--seed" => a.seed = v.parse().map_err(|e| bad(&e))?,
            "--churn-live" => a.churn_live = v.parse().map_err(|e| bad(&e))?,
            "--churn-rounds" => a.churn_rounds = v.parse().map_err(|e| bad(&e))?,
            "--workdir" => a.workdir = Some(v.into()),
            "--interface" => a.interface = v,
            "--policy" => {
                let (label, flags) = v
                    .split_once('=')
                    .ok_or_else(|| bad(&"expected LABEL=FLAGS"))?;
                a.policies.push(Policy {
                    label: label.trim().into(),
                    flags: flags.split_whitespace().map(String::from).collect(),
                });
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if a.dnsmasq.is_empty() {
        a.dnsmasq = ["2.91", "2.93"]
            .iter()
            .map(|v| PathBuf::from(format!("target/dnsmasq-{v}/dnsmasq")))
            .collect();
    }
    if a.policies.is_empty() {
        a.policies = DEFAULT_POLICIES
            .iter()
            .map(|(l, f)| Policy {
                label: (*l).into(),
                flags: f.split_whitespace().map(String::from).collect(),
            })
            .collect();
    }
    if a.sizes.is_empty() || a.sizes.iter().any(|&n| n == 0 || n > 0xff_ffff) {
        return Err("--sizes: each size must be 1..16777215".into());
    }
    if a.seconds == 0 || a.seconds * 100 > 60_000 {
        return Err("--seconds must be 1..600 (query ids are 16 bits)".into());
    }
    if !(a.rate > 0.0 && a.rate <= 1000.0) {
        return Err("--rate must be in (0, 1000]".into());
    }
    Ok(a)
}

fn log(msg: impl AsRef<str>) {
    eprintln!("bench_reload: {}", msg.as_ref());
}

// ---------------------------------------------------------------------------
// Deterministic randomness (no extra dependency)

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------
// Hosts and the change sequence

fn mac(i: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// A node-uuid-shaped tag, as Ironic's `dnsmasq_tag`.
fn tag(i: usize) -> String {
    let mut r = SplitMix(i as u64 ^ 0xa11c_e5ed);
    let (a, b) = (r.next(), r.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn host_name(i: usize) -> String {
    format!("ironic-{}.conf", mac(i))
}

/// The bytes the broker renders (and Ironic's stock provider writes).
fn host_line(i: usize, ignore: bool) -> String {
    if ignore {
        format!("{},ignore\n", mac(i))
    } else {
        format!("{},set:{},set:ironic\n", mac(i), tag(i))
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Replace { host: usize, ignore: bool },
    Create { host: usize },
    Delete { host: usize },
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Replace { .. } => "replace",
            Op::Create { .. } => "create",
            Op::Delete { .. } => "delete",
        }
    }
}

/// The change sequence for `n` initial hosts: the same for every policy.
fn changes(n: usize, count: usize, seed: u64) -> Vec<Op> {
    let mut rng = SplitMix(seed ^ n as u64);
    // live hosts and whether each is currently `ignore`
    let mut live: Vec<(usize, bool)> = (0..n).map(|i| (i, false)).collect();
    let mut next = n;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        let r = rng.unit();
        if live.is_empty() || (0.6..0.8).contains(&r) {
            ops.push(Op::Create { host: next });
            live.push((next, false));
            next += 1;
        } else if r < 0.6 {
            let k = rng.below(live.len());
            live[k].1 = !live[k].1;
            ops.push(Op::Replace {
                host: live[k].0,
                ignore: live[k].1,
            });
        } else {
            let k = rng.below(live.len());
            ops.push(Op::Delete {
                host: live.swap_remove(k).0,
            });
        }
    }
    ops
}

// ---------------------------------------------------------------------------
// DNS

fn dns_query(id: u16) -> Vec<u8> {
    dns_query_for(id, PROBE_NAME)
}

/// An A query for `name` (dnsmasq answers every name under [`PROBE_NAME`]).
fn dns_query_for(id: u16, name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(48);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, 1 question
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    p
}

/// The id of a DNS response with at least one answer, if `buf` is one.
fn dns_reply_id(buf: &[u8]) -> Option<u16> {
    if buf.len() < 12 || buf[2] & 0x80 == 0 {
        return None;
    }
    let answers = u16::from_be_bytes([buf[6], buf[7]]);
    (answers > 0).then(|| u16::from_be_bytes([buf[0], buf[1]]))
}

fn dns_socket() -> Res<UdpSocket> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp bind: {e}"))?;
    s.connect(DNS_ADDR)
        .map_err(|e| format!("udp connect {DNS_ADDR}: {e}"))?;
    Ok(s)
}

/// Sends one query and waits up to `timeout` for its answer; the latency.
fn ask(sock: &UdpSocket, id: u16, timeout: Duration) -> Option<Duration> {
    let t = Instant::now();
    sock.send(&dns_query(id)).ok()?;
    ask_sent(sock, id, t, timeout)
}

fn ask_sent(sock: &UdpSocket, id: u16, t: Instant, timeout: Duration) -> Option<Duration> {
    let mut buf = [0u8; 512];
    loop {
        let left = timeout.checked_sub(t.elapsed())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match sock.recv(&mut buf) {
            Ok(len) if dns_reply_id(&buf[..len]) == Some(id) => return Some(t.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            // ECONNREFUSED: nothing listens yet
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Waits until dnsmasq answers a query within [`SLOW`] (it is back in its
/// event loop, not reading files).
fn wait_responsive(within: Duration) -> Res<()> {
    let sock = dns_socket()?;
    let deadline = Instant::now() + within;
    let mut id = 1u16;
    while Instant::now() < deadline {
        id = id.wrapping_add(1);
        if let Some(d) = ask(&sock, id, Duration::from_millis(500)) {
            if d <= SLOW {
                return Ok(());
            }
        }
    }
    Err(format!(
        "dnsmasq did not answer DNS on {DNS_ADDR} within {within:?}"
    ))
}

#[derive(Default, Debug)]
struct ProbeStats {
    sent: usize,
    unresponsive: usize,
    lost: usize,
    longest_outage: Duration,
    p50: Duration,
    p99: Duration,
}

/// Sends a query every [`PROBE_EVERY`] until `stop` is set, then waits up to
/// [`LOST`] for outstanding replies.
fn run_prober(window: Duration) -> Res<thread::JoinHandle<ProbeStats>> {
    let capacity = (window.as_nanos() / PROBE_EVERY.as_nanos()) as usize;
    let sock = dns_socket()?;
    let rx_sock = sock.try_clone().map_err(|e| e.to_string())?;
    rx_sock
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // send and receive offsets from t0, in ns + 1 (0: not yet)
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..capacity).map(|_| AtomicU64::new(0)).collect());
    let got: Arc<Vec<AtomicU64>> = Arc::new((0..capacity).map(|_| AtomicU64::new(0)).collect());
    let sending_done = Arc::new(AtomicU64::new(0)); // count sent + 1 when done
    let receiver = {
        let (sent, got, done) = (sent.clone(), got.clone(), sending_done.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut done_at: Option<Instant> = None;
            let mut answered = 0usize;
            loop {
                let total = done.load(Ordering::Acquire);
                if total > 0 {
                    let at = *done_at.get_or_insert_with(Instant::now);
                    if answered + 1 >= total as usize || at.elapsed() > LOST {
                        return;
                    }
                }
                if let Ok(len) = rx_sock.recv(&mut buf) {
                    let now = nanos(t0.elapsed()) + 1;
                    if let Some(id) = dns_reply_id(&buf[..len]) {
                        let id = usize::from(id);
                        if id < capacity
                            && sent[id].load(Ordering::Acquire) != 0
                            && got[id].load(Ordering::Relaxed) == 0
                        {
                            got[id].store(now, Ordering::Relaxed);
                            answered += 1;
                        }
                    }
                }
            }
        })
    };
    Ok(thread::spawn(move || {
        let mut n = 0usize;
        while n < capacity {
            let due = t0 + PROBE_EVERY * n as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            let pkt = dns_query(n as u16);
            sent[n].store(nanos(t0.elapsed()) + 1, Ordering::Release);
            let _ = sock.send(&pkt);
            n += 1;
        }
        sending_done.store(n as u64 + 1, Ordering::Release);
        let _ = receiver.join();
        let mut st = ProbeStats {
            sent: n,
            ..Default::default()
        };
        let mut lat = Vec::with_capacity(n);
        // an outage: a run of unresponsive queries, from the first one's send
        // to the next responsive one's send (or one interval past the last)
        let (mut run_start, mut longest) = (None::<u64>, 0u64);
        for i in 0..n {
            let s = sent[i].load(Ordering::Relaxed);
            let g = got[i].load(Ordering::Relaxed);
            let bad = if g == 0 {
                st.lost += 1;
                true
            } else {
                let d = Duration::from_nanos(g - s);
                lat.push(d);
                d > SLOW
            };
            if bad {
                st.unresponsive += 1;
                run_start.get_or_insert(s);
            } else if let Some(r) = run_start.take() {
                longest = longest.max(s - r);
            }
        }
        if let Some(r) = run_start {
            let last = sent[n - 1].load(Ordering::Relaxed);
            longest = longest.max(last - r + nanos(PROBE_EVERY));
        }
        st.longest_outage = Duration::from_nanos(longest);
        lat.sort();
        if !lat.is_empty() {
            st.p50 = lat[lat.len() / 2];
            st.p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
        }
        st
    }))
}

// ---------------------------------------------------------------------------
// Processes

fn signal(pid: u32, sig: Signal) -> Res<()> {
    let raw = i32::try_from(pid).map_err(|e| e.to_string())?;
    kill(Pid::from_raw(raw), sig).map_err(|e| format!("kill({pid}, {sig}): {e}"))
}

/// A child stopped with SIGTERM (then SIGKILL after 10 s) when dropped.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = signal(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        log(format!("{} did not stop on SIGTERM; SIGKILL", self.what));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files of one run.
struct Dirs {
    root: PathBuf,
    hosts: PathBuf,
    opts: PathBuf,
    marker: PathBuf,
    leases: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
}

impl Dirs {
    fn new(root: &Path) -> Dirs {
        Dirs {
            root: root.to_path_buf(),
            hosts: root.join("hosts"),
            opts: root.join("opts"),
            marker: root.join("reload-marker"),
            leases: root.join("dnsmasq.leases"),
            pid_file: root.join("dnsmasq.pid"),
            log: root.join("dnsmasq.log"),
        }
    }

    /// Empties everything and writes the `n` initial host files.
    fn reset(&self, n: usize) -> Res<()> {
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        for d in [&self.hosts, &self.opts] {
            if d.exists() {
                fs::remove_dir_all(d).map_err(|e| io(d, e))?;
            }
            fs::create_dir_all(d).map_err(|e| io(d, e))?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(|e| io(d, e))?;
        }
        for f in [&self.leases, &self.pid_file, &self.log] {
            let _ = fs::remove_file(f);
        }
        fs::write(&self.marker, "").map_err(|e| io(&self.marker, e))?;
        fs::set_permissions(&self.marker, fs::Permissions::from_mode(0o644))
            .map_err(|e| io(&self.marker, e))?;
        for i in 0..n {
            let p = self.hosts.join(host_name(i));
            fs::write(&p, host_line(i, false)).map_err(|e| io(&p, e))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).map_err(|e| io(&p, e))?;
        }
        Ok(())
    }

    /// Times dnsmasq read the marker: 1 at start + 1 per SIGHUP.
    fn marker_reads(&self) -> usize {
        let needle = format!("read {}", self.marker.display());
        fs::read_to_string(&self.log)
            .map(|t| t.lines().filter(|l| l.contains(&needle)).count())
            .unwrap_or(0)
    }

    fn hosts_read_lines(&self) -> usize {
        let needle = format!("read {}/", self.hosts.display());
        fs::read_to_string(&self.log)
            .map(|t| t.lines().filter(|l| l.contains(&needle)).count())
            .unwrap_or(0)
    }
}

/// Starts dnsmasq on `dirs` without waiting for it to serve.
fn start_dnsmasq_process(bin: &Path, iface: &str, dirs: &Dirs, extra: &[&str]) -> Res<Proc> {
    let stderr = fs::File::create(dirs.root.join("dnsmasq.stderr")).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .args([
            "--keep-in-foreground".to_string(),
            "--conf-file=/dev/null".into(),
            "--no-hosts".into(),
            "--no-resolv".into(),
            "--port=5353".into(),
            "--bind-interfaces".into(),
            format!("--interface={iface}"),
            "--listen-address=127.0.0.1".into(),
            format!("--address=/{PROBE_NAME}/{PROBE_ANSWER}"),
            "--dhcp-range=10.251.1.1,10.251.255.254,12h".into(),
            format!("--dhcp-hostsdir={}", dirs.hosts.display()),
            format!("--dhcp-optsdir={}", dirs.opts.display()),
            format!("--dhcp-hostsfile={}", dirs.marker.display()),
            format!("--dhcp-leasefile={}", dirs.leases.display()),
            format!("--pid-file={}", dirs.pid_file.display()),
            format!("--log-facility={}", dirs.log.display()),
            "--dhcp-match=set:ipxe,175".into(),
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    Ok(Proc {
        child,
        what: "dnsmasq",
    })
}

fn start_dnsmasq(bin: &Path, iface: &str, dirs: &Dirs, n: usize, extra: &[&str]) -> Res<Proc> {
    let t = Instant::now();
    let mut p = start_dnsmasq_process(bin, iface, dirs, extra)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while dirs.marker_reads() == 0 || !dirs.pid_file.exists() {
        if let Some(st) = p.exited() {
            let err = fs::read_to_string(dirs.root.join("dnsmasq.stderr")).unwrap_or_default();
            return Err(format!("dnsmasq exited at start ({st}): {}", err.trim()));
        }
        if Instant::now() > deadline {
            return Err("dnsmasq did not start within 120 s".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
    wait_responsive(Duration::from_secs(120))?;
    let read = dirs.hosts_read_lines();
    if read < n {
        log(format!(
            "warning: dnsmasq logged reading {read} of {n} host files at start"
        ));
    }
    log(format!(
        "dnsmasq {} up with {n} host files after {:.2} s",
        p.pid(),
        t.elapsed().as_secs_f64()
    ));
    Ok(p)
}

struct Broker {
    process: Proc,
    url: String,
    agent: ureq::Agent,
}

impl Broker {
    fn start(bin: &Path, dirs: &Dirs, flags: &[String]) -> Res<Broker> {
        let stderr =
            fs::File::create(dirs.root.join("broker.stderr")).map_err(|e| e.to_string())?;
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--hosts-dir"])
            .arg(&dirs.hosts)
            .arg("--opts-dir")
            .arg(&dirs.opts)
            .args(["--reload", "pidfile", "--dnsmasq-pidfile"])
            .arg(&dirs.pid_file)
            .args(["--poll-interval-ms", "1000"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let process = Proc {
            child,
            what: "broker",
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // keep draining so the broker never blocks on stdout
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        let tail = || {
            let t = fs::read_to_string(dirs.root.join("broker.stderr")).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(5)..].join("\n")
        };
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("broker gave no listening line ({line:?}): {}", tail()))?
            .to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Broker {
            process,
            url,
            agent,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Res<(u16, Value)> {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        let resp = match body {
            Some(b) => self
                .agent
                .run(req.body(b.to_string()).map_err(|e| e.to_string())?),
            None => self.agent.run(req.body(()).map_err(|e| e.to_string())?),
        }
        .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    fn status(&self) -> Res<Value> {
        match self.call("GET", "/v1/status", None)? {
            (200, v) => Ok(v),
            (s, v) => Err(format!("GET /v1/status: {s} {v}")),
        }
    }

    fn apply(&self, op: Op) -> Res<u16> {
        let (method, host, body) = match op {
            Op::Replace { host, ignore: true } => (
                "PUT",
                host,
                Some(json!({"macs": [mac(host)], "ignore": true})),
            ),
            Op::Replace {
                host,
                ignore: false,
            }
            | Op::Create { host } => (
                "PUT",
                host,
                Some(json!({"macs": [mac(host)], "set_tags": [tag(host), "ironic"]})),
            ),
            Op::Delete { host } => ("DELETE", host, None),
        };
        Ok(self
            .call(method, &format!("/v1/hosts/{}", host_name(host)), body)?
            .0)
    }
}

fn ok_count(status: &Value) -> u64 {
    status["reload"]["ok_count"].as_u64().unwrap_or(0)
}

/// The first value under `key` anywhere in `v` (new status fields may be
/// nested; their exact place is not fixed yet).
fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "–".into(),
        Some(Value::Array(a)) => a.len().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// Waits until the broker has no reload pending and sends none for 1.5 s.
fn wait_settled(b: &Broker) -> Res<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = b.status()?;
    let mut since = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(250));
        let s = b.status()?;
        let pending = s["reload"]["pending"].as_u64().unwrap_or(0) > 0
            || s["reload"]["pending"].as_bool() == Some(true);
        if pending || ok_count(&s) != ok_count(&last) {
            since = Instant::now();
        }
        last = s;
        if since.elapsed() >= Duration::from_millis(1500) {
            return Ok(last);
        }
        if Instant::now() > deadline {
            return Err("the broker did not settle within 120 s".into());
        }
    }
}

// ---------------------------------------------------------------------------
// Measurements

/// One reload's cost, seen two ways.
#[derive(Debug, Clone, Copy)]
struct Stall {
    /// The longest a DNS query sent after the signal waited for its answer:
    /// what a client sees (probes every [`STALL_PROBE_EVERY`]).
    dns: Duration,
    /// dnsmasq's CPU time (user + system, 10 ms ticks) from the signal until
    /// it was idle again: the reload is one uninterrupted pass, so this is
    /// the stall too, whatever else the machine is doing.
    cpu: Duration,
}

impl Stall {
    fn cell(&self) -> String {
        format!(
            "{:.3} ({:.2})",
            self.dns.as_secs_f64(),
            self.cpu.as_secs_f64()
        )
    }
}

/// Interval of the stall probe's queries.
const STALL_PROBE_EVERY: Duration = Duration::from_millis(2);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// CPU time a process used so far (`/proc/PID/stat` utime + stime, in the
/// usual 100 Hz clock ticks).
fn proc_cpu(pid: u32) -> Res<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    match fields[..] {
        [utime, stime] => Ok(Duration::from_millis((utime + stime) * 10)),
        _ => Err(format!("{path}: no utime/stime in {stat:?}")),
    }
}

/// Waits until dnsmasq sleeps in its event loop, seen sleeping three times
/// in a row 20 ms apart: no file read, no reload in progress.
fn wait_idle(pid: u32, within: Duration) -> Res<()> {
    let deadline = Instant::now() + within;
    let mut asleep = 0;
    while asleep < 3 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("dnsmasq (pid {pid}) is gone: {e}"))?;
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next());
        asleep = if state == Some('S') { asleep + 1 } else { 0 };
        if Instant::now() > deadline {
            return Err(format!("dnsmasq (pid {pid}) stayed busy for {within:?}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Median (by DNS) of [`STALL_SAMPLES`] SIGHUP stalls of a fresh dnsmasq on
/// `n` files, and the samples.
fn sighup_stall(bin: &Path, a: &Args, dirs: &Dirs, n: usize) -> Res<(Stall, Vec<Stall>)> {
    dirs.reset(n)?;
    let d = start_dnsmasq(bin, &a.interface, dirs, n, &[])?;
    let mut samples = Vec::new();
    for _ in 0..STALL_SAMPLES {
        samples.push(one_sighup_stall(&d, dirs)?);
    }
    drop(d);
    let mid = median(samples.iter().map(|s| s.dns.as_secs_f64()).collect());
    let pick = *samples
        .iter()
        .find(|s| s.dns.as_secs_f64() == mid)
        .expect("the median is a sample");
    Ok((pick, samples))
}

/// One SIGHUP's stall, sent once dnsmasq is idle (every file it was
/// reading is read): a prober sends a DNS query every
/// [`STALL_PROBE_EVERY`] from the signal on, until dnsmasq has reloaded
/// (its marker file was read) and is idle again; the stall is the longest
/// any of those queries waited. dnsmasq's CPU time over the same span is
/// the cross-check.
///
/// Why not one query sent right after the signal: when the query reaches
/// dnsmasq before dnsmasq runs, its `poll()` returns with the DNS socket
/// ready and the signal handler (which queues the reload on a pipe) runs
/// only after, so the query is answered first, in no time, and the reload
/// follows. The previous version of this benchmark then discarded the
/// sample and signalled again — timing a second SIGHUP, which on 2.91
/// finds the names the first one had just added to its list.
fn one_sighup_stall(d: &Proc, dirs: &Dirs) -> Res<Stall> {
    let limit = Duration::from_secs(300);
    wait_idle(d.pid(), limit)?;
    wait_responsive(limit)?;
    wait_idle(d.pid(), limit)?;
    let mut reload_seen = LogWatch::new(&dirs.log, &format!("read {}", dirs.marker.display()));
    let cpu0 = proc_cpu(d.pid())?;
    let sock = dns_socket()?;
    let rx = sock.try_clone().map_err(|e| e.to_string())?;
    rx.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    // Answer time of each query id (send times are id × interval).
    let receiver = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut got = BTreeMap::new();
            let mut buf = [0u8; 512];
            let mut quiet_since = None;
            loop {
                match rx.recv(&mut buf) {
                    Ok(len) => {
                        if let Some(id) = dns_reply_id(&buf[..len]) {
                            got.entry(id).or_insert_with(|| t0.elapsed());
                        }
                        quiet_since = None;
                    }
                    Err(_) if stop.load(Ordering::Acquire) > 0 => {
                        // Sending stopped: wait for stragglers, then stop.
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_millis(200) {
                            return got;
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    signal(d.pid(), Signal::SIGHUP)?;
    let mut sent = 0u16;
    let mut reloaded_at = None;
    loop {
        let due = t0 + STALL_PROBE_EVERY * u32::from(sent);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            thread::sleep(w);
        }
        let _ = sock.send(&dns_query(sent));
        sent = sent.wrapping_add(1);
        if sent == u16::MAX {
            return Err("the reload outlasted the probe's query ids".into());
        }
        if reloaded_at.is_none() && sent.is_multiple_of(10) && reload_seen.appeared() {
            reloaded_at = Some(Instant::now());
        }
        // Reloaded, and idle again: a few more queries, then stop.
        if let Some(at) = reloaded_at {
            if at.elapsed() > Duration::from_millis(50) && proc_idle_now(d.pid()) {
                break;
            }
        }
        if t0.elapsed() > limit {
            return Err(format!("no reload within {limit:?} of the SIGHUP"));
        }
    }
    stop.store(1, Ordering::Release);
    let got = receiver.join().map_err(|_| "the probe receiver panicked")?;
    wait_idle(d.pid(), limit)?;
    let cpu = proc_cpu(d.pid())? - cpu0;
    let dns = (0..sent)
        .filter_map(|id| {
            let sent_at = STALL_PROBE_EVERY * u32::from(id);
            got.get(&id).map(|at| at.saturating_sub(sent_at))
        })
        .max()
        .ok_or("no probe query was answered")?;
    Ok(Stall { dns, cpu })
}

/// Watches a growing log for a line, reading only what was appended (a
/// reload of 20,000 files logs 20,000 lines; rereading the whole log every
/// few milliseconds would compete with dnsmasq for the CPU).
struct LogWatch {
    path: PathBuf,
    offset: u64,
    needle: String,
    /// The end of the last read, in case the needle straddles two reads.
    carry: String,
}

impl LogWatch {
    /// Watches for `needle` in what `path` gets from now on.
    fn new(path: &Path, needle: &str) -> LogWatch {
        LogWatch {
            path: path.to_path_buf(),
            offset: fs::metadata(path).map_or(0, |m| m.len()),
            needle: needle.to_string(),
            carry: String::new(),
        }
    }

    /// Whether the needle was appended since [`LogWatch::new`].
    fn appeared(&mut self) -> bool {
        use std::io::{Seek, SeekFrom};
        let Ok(mut f) = fs::File::open(&self.path) else {
            return false;
        };
        let mut new = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut new).is_err() {
            return false;
        }
        self.offset += new.len() as u64;
        let text = format!("{}{}", self.carry, String::from_utf8_lossy(&new));
        if text.contains(&self.needle) {
            return true;
        }
        let keep = text.len().saturating_sub(self.needle.len());
        self.carry = text.get(keep..).map_or_else(String::new, str::to_string);
        false
    }
}

/// Whether dnsmasq is asleep right now (one look).
fn proc_idle_now(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        == Some('S')
}

/// Issue 12's scenario, per dnsmasq: `live` host files replaced `rounds`
/// times by files under new names (dnsmasq reads each through inotify);
/// after each round, once dnsmasq is idle, the SIGHUP that first reads the
/// round's names; then a second SIGHUP (the names already read); then a
/// restart (SIGTERM, start with the same arguments, first DNS answer; its
/// CPU is the new process's until idle) and a SIGHUP after it.
struct NameChurn {
    live: usize,
    names: usize,
    fresh: Stall,
    rounds: Vec<Stall>,
    steady: Stall,
    restart: Stall,
    after: Stall,
}

fn name_churn(bin: &Path, a: &Args, dirs: &Dirs, live: usize, rounds: usize) -> Res<NameChurn> {
    dirs.reset(live)?;
    let mut d = start_dnsmasq(bin, &a.interface, dirs, live, &[])?;
    let fresh = one_sighup_stall(&d, dirs)?;
    let mut rounds_stall = Vec::new();
    let name = |round: usize, i: usize| {
        if round == 0 {
            host_name(i)
        } else {
            format!("r{round}-{}", host_name(i))
        }
    };
    for round in 1..=rounds {
        let before = dirs.hosts_read_lines();
        for i in 0..live {
            // Old name out (renamed to a dotfile first: no "cannot read"),
            // new name in by rename, as the broker does.
            let old = dirs.hosts.join(name(round - 1, i));
            let hidden = dirs.hosts.join(format!(".gone-{i}"));
            fs::rename(&old, &hidden).map_err(|e| format!("{}: {e}", old.display()))?;
            fs::remove_file(&hidden).map_err(|e| e.to_string())?;
            let tmp = dirs.hosts.join(format!(".new-{i}"));
            fs::write(&tmp, host_line(i, false)).map_err(|e| e.to_string())?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
                .map_err(|e| e.to_string())?;
            fs::rename(&tmp, dirs.hosts.join(name(round, i))).map_err(|e| e.to_string())?;
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        while dirs.hosts_read_lines() < before + live {
            if Instant::now() > deadline {
                return Err(format!("dnsmasq did not read round {round}'s files"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        // dnsmasq 2.91's list of names grows at SIGHUPs: one after every
        // round, as a broker under steady churn sends them.
        rounds_stall.push(one_sighup_stall(&d, dirs)?);
    }
    let steady = one_sighup_stall(&d, dirs)?;
    // Restart: SIGTERM, wait for the exit, start again, first DNS answer.
    let t = Instant::now();
    signal(d.pid(), Signal::SIGTERM)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.exited().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let mut restarted = start_dnsmasq_process(bin, &a.interface, dirs, &[])?;
    let sock = dns_socket()?;
    let mut probe = 0x7000u16;
    let restart_dns = loop {
        probe = probe.wrapping_add(1);
        if ask(&sock, probe, Duration::from_millis(10)).is_some() {
            break t.elapsed();
        }
        if let Some(st) = restarted.exited() {
            return Err(format!("dnsmasq exited at its restart ({st})"));
        }
        if t.elapsed() > Duration::from_secs(300) {
            return Err("dnsmasq did not answer within 300 s of its restart".into());
        }
    };
    wait_idle(restarted.pid(), Duration::from_secs(300))?;
    let restart = Stall {
        dns: restart_dns,
        cpu: proc_cpu(restarted.pid())?,
    };
    wait_responsive(Duration::from_secs(120))?;
    d = restarted;
    let after = one_sighup_stall(&d, dirs)?;
    drop(d);
    Ok(NameChurn {
        live,
        names: live * (rounds + 1),
        fresh,
        rounds: rounds_stall,
        steady,
        restart,
        after,
    })
}

struct ChurnResult {
    probe: ProbeStats,
    /// Longest time from a delete's answer until a reload covering it was
    /// delivered (`None`: no delete, or not covered within the wait).
    delete_max: Option<Duration>,
    sighups: u64,
    sighups_log: usize,
    ops_ok: usize,
    ops_total: usize,
    api_max: Duration,
    status: Value,
}

/// Longest the benchmark waits after the window for deletes to be covered.
const DELETE_WAIT: Duration = Duration::from_secs(180);

fn churn(
    bin: &Path,
    a: &Args,
    dirs: &Dirs,
    n: usize,
    ops: &[Op],
    flags: &[String],
) -> Res<ChurnResult> {
    dirs.reset(n)?;
    let mut dnsmasq = start_dnsmasq(bin, &a.interface, dirs, n, &[])?;
    let broker = Broker::start(&a.broker, dirs, flags)?;
    let s0 = wait_settled(&broker)?;
    let hosts = s0["entries"]["hosts"].as_u64().unwrap_or(0);
    if hosts != n as u64 {
        log(format!(
            "warning: broker reports {hosts} host entries, expected {n}"
        ));
    }
    wait_responsive(Duration::from_secs(120))?;
    let ok0 = ok_count(&s0);
    let log0 = dirs.marker_reads();

    let window = Duration::from_secs(a.seconds);
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let prober = run_prober(window)?;
    let t0 = Instant::now();
    // changes on their own thread, so the window's end is read on time even
    // when an API call is slow
    let deletes: std::sync::Mutex<Vec<(Instant, u64)>> = std::sync::Mutex::new(Vec::new());
    let changes_done = std::sync::atomic::AtomicBool::new(false);
    let (status, sighups_log, (ops_ok, api_max, failures), delete_max) = thread::scope(|sc| {
        // Notes when each delete is covered by a delivered reload, during
        // the window and after it (at most DELETE_WAIT after the window).
        let poller = sc.spawn(|| {
            let mut longest = Some(Duration::ZERO);
            let mut any = false;
            loop {
                let done = changes_done.load(std::sync::atomic::Ordering::SeqCst);
                if let Ok(st) = broker.status() {
                    let delivered = st["reload"]["delivered"].as_u64().unwrap_or(0);
                    let now = Instant::now();
                    let mut pending = deletes.lock().unwrap_or_else(|p| p.into_inner());
                    any |= !pending.is_empty();
                    pending.retain(|(at, ticket)| {
                        if *ticket <= delivered {
                            longest = longest.map(|m| m.max(now - *at));
                            false
                        } else {
                            true
                        }
                    });
                    if done && pending.is_empty() {
                        break;
                    }
                }
                if t0.elapsed() > window + DELETE_WAIT {
                    longest = None;
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
            longest.filter(|_| any)
        });
        let worker = sc.spawn(|| {
            let (mut ok, mut slowest, mut failures) = (0usize, Duration::ZERO, BTreeMap::new());
            for (i, op) in ops.iter().enumerate() {
                let due = t0 + interval * i as u32;
                if due >= t0 + window {
                    break;
                }
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(w);
                }
                // behind schedule (slow API calls): changes not started
                // within the window are not made
                let t = Instant::now();
                if t >= t0 + window {
                    break;
                }
                match broker.apply(*op) {
                    Ok(s) if (200..300).contains(&s) => {
                        ok += 1;
                        if let Op::Delete { .. } = op {
                            // The reload tickets handed out so far include
                            // this delete's: once `delivered` reaches it,
                            // the delete is in effect.
                            let answered = Instant::now();
                            if let Ok(st) = broker.status() {
                                let ticket = st["reload"]["requested"].as_u64().unwrap_or(0);
                                deletes
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push((answered, ticket));
                            }
                        }
                    }
                    Ok(s) => *failures.entry(format!("{} {s}", op.kind())).or_insert(0) += 1,
                    Err(e) => *failures.entry(e).or_insert(0) += 1,
                }
                slowest = slowest.max(t.elapsed());
            }
            (ok, slowest, failures)
        });
        if let Some(w) = (t0 + window).checked_duration_since(Instant::now()) {
            thread::sleep(w);
        }
        let status = broker.status();
        let sighups_log = dirs.marker_reads().saturating_sub(log0);
        let done = worker.join().unwrap_or_default();
        changes_done.store(true, std::sync::atomic::Ordering::SeqCst);
        let delete_max = poller.join().unwrap_or(None);
        (status, sighups_log, done, delete_max)
    });
    let status = status?;
    let sighups = ok_count(&status).saturating_sub(ok0);
    let probe = prober.join().map_err(|_| "prober panicked")?;
    let ops_total = ops
        .iter()
        .enumerate()
        .take_while(|(i, _)| interval * (*i as u32) < window)
        .count();
    if !failures.is_empty() {
        log(format!("failed changes: {failures:?}"));
    }
    let mut broker = broker;
    if let Some(st) = broker.process.exited() {
        log(format!("warning: the broker exited during the run ({st})"));
    }
    if let Some(st) = dnsmasq.exited() {
        log(format!("warning: dnsmasq exited during the run ({st})"));
    }
    drop(broker);
    Ok(ChurnResult {
        probe,
        delete_max,
        sighups,
        sighups_log,
        ops_ok,
        ops_total,
        api_max,
        status,
    })
}

// ---------------------------------------------------------------------------
// Setup checks and output

fn first_line(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

/// The flags to run a policy with and a note, or why it cannot run.
type Adapted = Result<(Vec<String>, Option<String>), String>;

/// Makes `policy` runnable by this broker binary, or says why not.
fn adapt(policy: &Policy, help: &str) -> Adapted {
    let mut flags = policy.flags.clone();
    let mut note = None;
    if !help.contains("--reload-policy") {
        if let Some(k) = flags.iter().position(|f| f == "--reload-policy") {
            if flags.get(k + 1).map(String::as_str) == Some("coalesce") {
                flags.drain(k..k + 2);
                note = Some("`--reload-policy coalesce` dropped: the broker predates it".into());
            }
        }
    }
    let unknown: Vec<&str> = flags
        .iter()
        .filter(|f| f.starts_with("--"))
        .map(|f| f.split('=').next().unwrap_or(f))
        .filter(|f| !help.contains(*f))
        .collect();
    if unknown.is_empty() {
        Ok((flags, note))
    } else {
        Err(format!("broker lacks {}", unknown.join(", ")))
    }
}

/// Whether this runs in a namespace of its own: one holding only `lo` and
/// the benchmark's interfaces (`/proc/1/ns/net` is often unreadable here).
fn in_own_netns(iface: &str) -> bool {
    if let (Ok(a), Ok(b)) = (
        fs::read_link("/proc/self/ns/net"),
        fs::read_link("/proc/1/ns/net"),
    ) {
        if a == b {
            return false;
        }
    }
    let prefix = iface.trim_end_matches(|c: char| c.is_ascii_digit());
    fs::read_to_string("/proc/self/net/dev")
        .map(|t| {
            t.lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(str::trim)
                .all(|name| name == "lo" || name == iface || name.starts_with(prefix))
        })
        .unwrap_or(false)
}

fn machine() -> String {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(String::new(), |kb| {
            format!(", {} GiB RAM", kb / 1024 / 1024)
        });
    format!("nproc {cpus} ({model}{mem}), kernel {}", kernel.trim())
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil-from-days (Howard Hinnant)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn run(a: &Args) -> Res<()> {
    let is_root = fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false);
    if !is_root {
        return Err("must run as root (run scripts/bench-reload.sh)".into());
    }
    if !in_own_netns(&a.interface) {
        return Err(
            "refusing to run in the host's network namespace: dnsmasq would serve DHCP/DNS \
             here (run scripts/bench-reload.sh, which creates a namespace)"
                .into(),
        );
    }
    let mut builds = Vec::new();
    for bin in &a.dnsmasq {
        let banner = first_line(bin, &["--version"]);
        let version = banner
            .strip_prefix("Dnsmasq version ")
            .and_then(|r| r.split_whitespace().next())
            .ok_or_else(|| {
                format!(
                    "{} is not a working dnsmasq ({banner:?}); run `sudo scripts/install-test-deps.sh`",
                    bin.display()
                )
            })?
            .to_string();
        builds.push((bin.clone(), version));
    }
    let help = Command::new(&a.broker)
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .map_err(|e| format!("cannot run {}: {e}", a.broker.display()))?;
    let policies: Vec<(Policy, Adapted)> = a
        .policies
        .iter()
        .map(|p| (p.clone(), adapt(p, &help)))
        .collect();
    for (p, r) in &policies {
        match r {
            Ok((f, note)) => log(format!(
                "policy {:?}: {}{}",
                p.label,
                f.join(" "),
                note.as_ref().map_or(String::new(), |n| format!(" ({n})"))
            )),
            Err(why) => log(format!("policy {:?}: skipped, {why}", p.label)),
        }
    }

    let tmp;
    let root = match &a.workdir {
        Some(d) => {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("bench-reload.")
                .tempdir()
                .map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    // dnsmasq drops to `nobody`: the tree must be traversable
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let dirs = Dirs::new(&root);
    log(format!("work directory {}", root.display()));

    let started = Instant::now();
    let load_before = load_average();
    let mut rows = Vec::new();
    // (files, version, median stall) for the version table.
    let mut stalls: Vec<(usize, String, Stall)> = Vec::new();
    let mut churns = Vec::new();
    for (bin, version) in &builds {
        for &n in &a.sizes {
            let count = (a.seconds as f64 * a.rate).ceil() as usize;
            let ops = changes(n, count, a.seed);
            log(format!(
                "dnsmasq {version}, {n} files: timing {STALL_SAMPLES} SIGHUPs"
            ));
            let (stall, samples) = sighup_stall(bin, a, &dirs, n)?;
            log(format!(
                "dnsmasq {version}, {n} files: SIGHUP stall samples (DNS s (CPU s)) {}",
                samples
                    .iter()
                    .map(Stall::cell)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            stalls.push((n, version.clone(), stall));
            for (p, adapted) in &policies {
                let cells = match adapted {
                    Err(why) => std::iter::once(format!("{} (skipped: {why})", p.label))
                        .chain(std::iter::repeat_n("–".to_string(), 9))
                        .collect(),
                    Ok((flags, _)) => {
                        log(format!(
                            "dnsmasq {version}, {n} files, {:?}: {} s of churn",
                            p.label, a.seconds
                        ));
                        let r = churn(bin, a, &dirs, n, &ops, flags)?;
                        policy_cells(p, &r, version, n)
                    }
                };
                let mut row = vec![n.to_string(), version.clone(), stall.cell()];
                row.extend(cells);
                rows.push(row);
            }
        }
        if a.churn_live > 0 {
            log(format!(
                "dnsmasq {version}, name churn: {} live files replaced {} times under new names",
                a.churn_live, a.churn_rounds
            ));
            churns.push((
                version.clone(),
                name_churn(bin, a, &dirs, a.churn_live, a.churn_rounds)?,
            ));
        }
    }

    let mut out = String::new();
    out.push_str(&format!(
        "### Reload benchmark ({})\n\n\
         - machine: {}; load average (1, 5, 15 min) before the run {}, after it {}\n\
         - dnsmasq: {}\n- broker: `{}`\n\
         - host files: `ironic-<mac>.conf` holding `<mac>,set:<tag>,set:ironic`\n\
         - SIGHUP stall, as `DNS (CPU)` seconds: SIGHUP sent once dnsmasq is idle; DNS = the \
         longest any query (one every {} ms from the signal on) waited for its answer; CPU = \
         dnsmasq's CPU time until idle again; median of {STALL_SAMPLES} by DNS, fresh dnsmasq, \
         no churn\n\
         - churn: {} changes/s for {} s through the broker's API (60% replace toggling \
         `set:<tag>` <-> `ignore`, 20% create, 20% delete; seed {}, same sequence for \
         every policy); dnsmasq and broker restarted on the same N files per policy\n\
         - unresponsive: share of DNS queries (one every 10 ms during the window) \
         answered after more than 50 ms or not within 5 s\n\
         - SIGHUPs: broker `reload.ok_count` growth over the window; longest outage: \
         longest run of unresponsive queries; changes ok: changes answered 2xx / changes due in the window (a change not started \
         by the window's end, because earlier API calls were slow, is not made); \
         last delete in effect after: longest time from a delete's answer until a reload \
         covering it was delivered (polled every 100 ms, after the window too); \
         ghosts, avoided, stall est.: from the broker's `/v1/status` at window end, \
         when it reports them\n- total time {:.0} s\n\n",
        utc_now(),
        machine(),
        load_before,
        load_average(),
        builds
            .iter()
            .map(|(b, v)| format!("{v} (`{}`)", b.display()))
            .collect::<Vec<_>>()
            .join(", "),
        a.broker.display(),
        STALL_PROBE_EVERY.as_millis(),
        a.rate,
        a.seconds,
        a.seed,
        started.elapsed().as_secs_f64(),
    ));
    out.push_str(&version_table(&stalls, &builds));
    out.push_str(&policy_table(a, &rows));
    if !churns.is_empty() {
        out.push_str(&churn_table(a, &churns));
    }
    print!("{out}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    if a.keep {
        if let Some(d) = &a.workdir {
            log(format!("kept {}", d.display()));
        } else {
            log("--keep needs --workdir to keep files");
        }
    } else if a.workdir.is_some() {
        let _ = fs::remove_dir_all(&root);
    }
    Ok(())
}

/// The cells of one policy row (after files, dnsmasq, stall), logged too.
fn policy_cells(p: &Policy, r: &ChurnResult, version: &str, n: usize) -> Vec<String> {
    let pr = &r.probe;
    let pct = 100.0 * pr.unresponsive as f64 / pr.sent.max(1) as f64;
    log(format!(
        "dnsmasq {version}, {n} files, {:?}: {} SIGHUPs (dnsmasq log {}), {}/{} queries \
         unresponsive ({} lost), p50 {:?}, p99 {:?}, longest outage {:.2} s, \
         {}/{} changes ok, slowest API call {:.2} s",
        p.label,
        r.sighups,
        r.sighups_log,
        pr.unresponsive,
        pr.sent,
        pr.lost,
        pr.p50,
        pr.p99,
        pr.longest_outage.as_secs_f64(),
        r.ops_ok,
        r.ops_total,
        r.api_max.as_secs_f64()
    ));
    let sighups = if r.sighups as usize == r.sighups_log {
        r.sighups.to_string()
    } else {
        format!("{} (dnsmasq log: {})", r.sighups, r.sighups_log)
    };
    vec![
        p.label.clone(),
        sighups,
        format!("{pct:.1}"),
        format!("{:.2}", pr.longest_outage.as_secs_f64()),
        format!("{}/{}", r.ops_ok, r.ops_total),
        format!("{:.2}", r.api_max.as_secs_f64()),
        r.delete_max.map_or("not within 180 s".into(), |d| {
            format!("{:.1}", d.as_secs_f64())
        }),
        show(find_key(&r.status["reload"], "ghosts")),
        show(find_key(&r.status["reload"], "avoided")),
        show(find_key(&r.status["reload"], "stall_ms_estimate")),
    ]
}

/// SIGHUP stall per size, one column pair per dnsmasq, and each version's
/// DNS stall as a ratio of the first one's.
fn version_table(stalls: &[(usize, String, Stall)], builds: &[(PathBuf, String)]) -> String {
    let versions: Vec<&str> = builds.iter().map(|(_, v)| v.as_str()).collect();
    let mut out = String::from("#### SIGHUP stall by dnsmasq version\n\n| files |");
    for v in &versions {
        out.push_str(&format!(" {v}: DNS (CPU) s |"));
    }
    for v in versions.iter().skip(1) {
        out.push_str(&format!(" {v} / {} |", versions[0]));
    }
    out.push_str(&format!(
        "\n|{}\n",
        "---:|".repeat(1 + 2 * versions.len() - 1)
    ));
    let mut sizes: Vec<usize> = stalls.iter().map(|(n, _, _)| *n).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for n in sizes {
        let of = |v: &str| {
            stalls
                .iter()
                .find(|(m, w, _)| *m == n && w == v)
                .map(|s| s.2)
        };
        out.push_str(&format!("| {n} |"));
        for v in &versions {
            out.push_str(&format!(" {} |", of(v).map_or("–".into(), |s| s.cell())));
        }
        for v in versions.iter().skip(1) {
            let ratio = match (of(v), of(versions[0])) {
                (Some(x), Some(base)) if base.dns > Duration::ZERO => {
                    format!("{:.2}×", x.dns.as_secs_f64() / base.dns.as_secs_f64())
                }
                _ => "–".into(),
            };
            out.push_str(&format!(" {ratio} |"));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

fn policy_table(a: &Args, rows: &[Vec<String>]) -> String {
    let header = [
        "files".to_string(),
        "dnsmasq".into(),
        "SIGHUP stall: DNS (CPU) s".into(),
        "policy".into(),
        format!("SIGHUPs in {} s", a.seconds),
        "unresponsive %".into(),
        "longest outage (s)".into(),
        "changes ok".into(),
        "slowest API call (s)".into(),
        "last delete in effect after (s)".into(),
        "ghosts".into(),
        "avoided".into(),
        "stall est. (ms)".into(),
    ];
    let mut out = String::from("#### Reload policies under churn\n\n");
    out.push_str(&format!("| {} |\n|", header.join(" | ")));
    for i in 0..header.len() {
        out.push_str(if i == 1 || i == 3 { "---|" } else { "---:|" });
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out.push('\n');
    out
}

fn churn_table(a: &Args, churns: &[(String, NameChurn)]) -> String {
    let mut out = format!(
        "#### Name churn: SIGHUP against restart\n\n\
         {} live host files replaced {} times by files under new names (read through \
         inotify); once dnsmasq is idle after each round, the SIGHUP that first reads that \
         round's names (dnsmasq 2.90/2.91 add them to the list of names every later SIGHUP \
         walks); then a second SIGHUP (the names already read); then a restart (SIGTERM, \
         start with the same arguments: DNS = until the first answer, CPU = the new \
         process's until idle) and a SIGHUP after it. Cells are `DNS (CPU)` seconds; growth \
         is the last round's DNS stall over the no-churn one.\n\n\
         | dnsmasq | live files | names seen | SIGHUP, no churn | first SIGHUP after each round | \
         growth | second SIGHUP | restart | SIGHUP after the restart |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        a.churn_live, a.churn_rounds
    );
    for (version, c) in churns {
        let last = c.rounds.last().map_or(c.fresh, |s| *s);
        out.push_str(&format!(
            "| {version} | {} | {} | {} | {} | {:.1}× | {} | {} | {} |\n",
            c.live,
            c.names,
            c.fresh.cell(),
            c.rounds
                .iter()
                .map(Stall::cell)
                .collect::<Vec<_>>()
                .join(", "),
            last.dns.as_secs_f64() / c.fresh.dns.as_secs_f64().max(0.001),
            c.steady.cell(),
            c.restart.cell(),
            c.after.cell(),
        ));
    }
    out
}

/// `/proc/loadavg`'s three averages, as noted with the results.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            log(e);
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_sequence_is_fixed_and_mixed() {
        let a = changes(1000, 600, 7);
        let b = changes(1000, 600, 7);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let count = |k: &str| a.iter().filter(|o| o.kind() == k).count();
        assert!((300..420).contains(&count("replace")));
        assert!((80..160).contains(&count("create")));
        assert!((80..160).contains(&count("delete")));
    }

    #[test]
    fn query_and_reply_ids() {
        let q = dns_query(0x1234);
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(dns_reply_id(&q), None, "a query is not a reply");
        let mut r = q.clone();
        r[2] |= 0x80;
        r[7] = 1;
        assert_eq!(dns_reply_id(&r), Some(0x1234));
    }

    #[test]
    fn old_brokers_drop_coalesce_and_skip_unknown_flags() {
        let p = |f: &str| Policy {
            label: "x".into(),
            flags: f.split_whitespace().map(String::from).collect(),
        };
        let help = "--reload-quiet-ms --reload-max-delay-ms";
        let (f, note) = adapt(&p("--reload-policy coalesce --reload-quiet-ms 0"), help).unwrap();
        assert_eq!(f, ["--reload-quiet-ms", "0"]);
        assert!(note.is_some());
        assert!(adapt(&p("--reload-policy shadow"), help).is_err());
    }
}
