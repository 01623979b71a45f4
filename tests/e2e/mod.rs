//! Real-DHCP harness for the end-to-end tests in `tests/dhcp_e2e.rs` and
//! `tests/shadow_e2e.rs`.
//!
//! The broker's whole value is that dnsmasq then answers exactly as the
//! entries say, so these tests ask a real dnsmasq with a real DHCP client:
//!
//! - [`Net`]: two network namespaces (server, client) joined by a veth pair,
//!   named uniquely per test so tests can run in parallel threads. Only
//!   addresses inside these namespaces are used (192.168.77.1 on the server
//!   side). Dropping it kills whatever still runs in them and deletes them.
//! - [`Dirs`]: a private, world-traversable temp directory holding dnsmasq's
//!   hostsdir, optsdir, lease file, pid file, log file and a reload marker.
//! - [`Dnsmasq`]: a dnsmasq binary run inside the server namespace in
//!   `--keep-in-foreground` mode (it drops to `nobody`, so files must be
//!   0644); [`dnsmasq_command`] gives the same command line for the broker's
//!   supervise mode.
//! - [`Net::dhcp_request`]: busybox `udhcpc` in the client namespace with a
//!   chosen MAC; a generated script prints what the ACK carried.
//! - [`Broker`]: the `hostsdir-broker serve` child process and a small
//!   blocking HTTP client for its API; in supervise mode it runs inside the
//!   server namespace and is reached through a unix-socket bridge.
//! - [`v6`]: DHCPv6 — an IPv6 prefix on the same namespaces, a DHCPv6
//!   range for dnsmasq and ISC `dhclient -6` as the client
//!   (`tests/dhcpv6_e2e.rs`, the DHCPv6 rules of `tests/shadow_e2e.rs`).
//! - [`version_binaries`]: the dnsmasq builds under test (Debian's 2.90,
//!   2.91 from trixie's source, 2.93 from sid's — what understack runs);
//!   missing prerequisites panic with the fix, never skip silently.
//!   [`for_each_version`] runs a scenario on every one in parallel threads,
//!   [`for_versions`] on a chosen few.
//!
//! Reloads are counted through a marker: dnsmasq is given an extra, empty
//! `--dhcp-hostsfile` that it reads (and logs `read <marker>`) only at
//! start-up and on SIGHUP, never through inotify.

#![allow(dead_code)]

pub(crate) mod v6;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The server's address inside the server namespace.
pub(crate) const SERVER_IP: &str = "192.168.77.1";
/// First and last address of dnsmasq's dynamic pool.
pub(crate) const POOL_START: &str = "192.168.77.100";
pub(crate) const POOL_END: &str = "192.168.77.150";
/// Interface names: created directly inside the namespaces, so they need
/// not be unique across tests.
const SRV_IF: &str = "hdbsrv0";
const CLI_IF: &str = "hdbcli0";

const INSTALL_HINT: &str =
    "run `sudo scripts/install-test-deps.sh` (installs dnsmasq-base, udhcpc, \
     iproute2 and builds dnsmasq 2.91 and 2.93 into target/dnsmasq-VERSION/dnsmasq; \
     `scripts/build-dnsmasq.sh 2.93` builds one)";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion; panics with its stderr when it fails.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}; {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like [`run`], but only reports failure (used in Drop, which must not panic).
fn run_quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still answers kill(0); look at its state too.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// Simulates a dnsmasq crash (SIGSEGV, as 2.90 dies on SIGHUP).
pub(crate) fn crash(pid: u32) {
    signal(pid, Signal::SIGSEGV);
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), sig);
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; always reaps the child.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped, so a
/// panic anywhere after spawning leaves nothing running.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        stop_child(&mut self.0, Duration::from_secs(5));
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// dnsmasq binaries under test

/// One dnsmasq build the suite runs against.
#[derive(Clone, Debug)]
pub(crate) struct DnsmasqBinary {
    /// Path of the executable.
    pub(crate) path: PathBuf,
    /// "2.90", "2.91" or "2.93", as its `--version` reports.
    pub(crate) version: String,
}

impl DnsmasqBinary {
    /// dnsmasq 2.90 crashes on SIGHUP once a `set:` host did a DHCP exchange.
    pub(crate) fn crashes_on_sighup_with_tags(&self) -> bool {
        self.version == "2.90"
    }

    /// Whether a SIGHUP's cost grows with every file name the directories
    /// ever held (2.90, 2.91: `dyndir_addhosts`); 2.93 keeps no such list
    /// for `--dhcp-hostsdir`/`--dhcp-optsdir`.
    pub(crate) fn names_cost(&self) -> bool {
        self.version != "2.93"
    }
}

fn dnsmasq_version(path: &Path) -> Option<String> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    first
        .strip_prefix("Dnsmasq version ")
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// Where a built dnsmasq is: `$HOSTSDIR_BROKER_DNSMASQ_291` (`…_293`), or
/// `target/dnsmasq-VERSION/dnsmasq` (`scripts/build-dnsmasq.sh VERSION`).
fn built(version: &str) -> PathBuf {
    std::env::var_os(format!(
        "HOSTSDIR_BROKER_DNSMASQ_{}",
        version.replace('.', "")
    ))
    .map(PathBuf::from)
    .unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/dnsmasq-{version}/dnsmasq"))
    })
}

/// Debian's dnsmasq 2.90 (`/usr/sbin/dnsmasq`), 2.91 built from trixie's
/// source and 2.93 built from sid's (see [`built`]), oldest first.
/// Panics, naming the fix, when a prerequisite is missing: the suite never
/// skips silently.
pub(crate) fn version_binaries() -> Vec<DnsmasqBinary> {
    let mut problems = Vec::new();
    if !is_root() {
        problems.push("the DHCP end-to-end tests need root (network namespaces)".to_owned());
    }
    for tool in ["ip", "udhcpc"] {
        if find_in_path(tool).is_none() {
            problems.push(format!("`{tool}` not found"));
        }
    }
    let stock = PathBuf::from("/usr/sbin/dnsmasq");
    let mut bins = Vec::new();
    for (path, want) in [
        (stock, "2.90"),
        (built("2.91"), "2.91"),
        (built("2.93"), "2.93"),
    ] {
        match dnsmasq_version(&path) {
            Some(v) if v == want => bins.push(DnsmasqBinary { path, version: v }),
            Some(v) => problems.push(format!(
                "{} reports version {v}, expected {want}",
                path.display()
            )),
            None => problems.push(format!("{} is missing or does not run", path.display())),
        }
    }
    assert!(
        problems.is_empty(),
        "DHCP end-to-end prerequisites missing: {}; {INSTALL_HINT}",
        problems.join("; ")
    );
    bins
}

/// Scenarios share the machine's disk and 2 cores: a heavy one (thousands
/// of fsynced files) can stall another dnsmasq long enough to lose a DHCP
/// exchange. Heavy scenarios take this lock exclusively, others shared.
static HEAVY: RwLock<()> = RwLock::new(());

/// Runs `f` for every dnsmasq version in parallel threads; a failure names
/// the version, and every version runs even when another fails.
pub(crate) fn for_each_version(f: impl Fn(&DnsmasqBinary) + Sync) {
    let _shared = HEAVY.read().unwrap_or_else(|e| e.into_inner());
    run_versions(&[], f);
}

/// Like [`for_each_version`], for the versions named only (every one of
/// them must be under test: a name that matches none panics).
pub(crate) fn for_versions(versions: &[&str], f: impl Fn(&DnsmasqBinary) + Sync) {
    let _shared = HEAVY.read().unwrap_or_else(|e| e.into_inner());
    run_versions(versions, f);
}

/// Like [`for_each_version`], while no other scenario runs.
pub(crate) fn for_each_version_exclusive(f: impl Fn(&DnsmasqBinary) + Sync) {
    let _alone = HEAVY.write().unwrap_or_else(|e| e.into_inner());
    run_versions(&[], f);
}

/// Like [`for_versions`], while no other scenario runs.
pub(crate) fn for_versions_exclusive(versions: &[&str], f: impl Fn(&DnsmasqBinary) + Sync) {
    let _alone = HEAVY.write().unwrap_or_else(|e| e.into_inner());
    run_versions(versions, f);
}

/// Runs `f` on the binaries of `only` (all when empty), in parallel.
fn run_versions(only: &[&str], f: impl Fn(&DnsmasqBinary) + Sync) {
    let mut bins = version_binaries();
    if !only.is_empty() {
        for v in only {
            assert!(
                bins.iter().any(|b| b.version == *v),
                "dnsmasq {v} is not one of the versions under test"
            );
        }
        bins.retain(|b| only.contains(&b.version.as_str()));
    }
    let failures: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = bins
            .iter()
            .map(|bin| {
                let f = &f;
                let h = thread::Builder::new()
                    .name(format!("dnsmasq-{}", bin.version))
                    .spawn_scoped(s, move || f(bin))
                    .expect("spawning a test thread");
                (bin.version.clone(), h)
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(v, h)| {
                h.join()
                    .err()
                    .map(|e| format!("dnsmasq {v}: {}", panic_text(&*e)))
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "panic".to_owned()
    }
}

// ---------------------------------------------------------------------------
// Network namespaces

/// Two network namespaces joined by a veth pair; the server side holds
/// 192.168.77.1. Deleted, with everything still running in them, on Drop.
pub(crate) struct Net {
    /// Server namespace name (`hdb-<pid>-<n>-srv`).
    pub(crate) srv: String,
    /// Client namespace name (`hdb-<pid>-<n>-cli`).
    pub(crate) cli: String,
    /// Interface dnsmasq serves, inside `srv`.
    pub(crate) srv_if: String,
    /// Interface udhcpc uses, inside `cli`.
    pub(crate) cli_if: String,
    /// Holds the udhcpc script.
    scratch: tempfile::TempDir,
    /// One DHCP exchange at a time: the client interface's MAC is shared.
    dhcp: Mutex<()>,
}

impl Net {
    /// Server address 192.168.77.1/24.
    pub(crate) fn new() -> Net {
        Net::with_prefix(24)
    }

    /// Server address 192.168.77.1/`prefix_len` (a /20 gives room for
    /// thousands of fixed addresses, 192.168.64.1–192.168.79.254).
    pub(crate) fn with_prefix(prefix_len: u8) -> Net {
        remove_stale_namespaces();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("hdb-{}-{n}", std::process::id());
        let net = Net {
            srv: format!("{base}-srv"),
            cli: format!("{base}-cli"),
            srv_if: SRV_IF.to_owned(),
            cli_if: CLI_IF.to_owned(),
            scratch: tempfile::Builder::new()
                .prefix("hdb-net-")
                .tempdir()
                .expect("creating a temp dir"),
            dhcp: Mutex::new(()),
        };
        // From here on, Drop removes whatever part was created.
        run("ip", &["netns", "add", &net.srv]);
        run("ip", &["netns", "add", &net.cli]);
        run(
            "ip",
            &[
                "link", "add", SRV_IF, "netns", &net.srv, "type", "veth", "peer", "name", CLI_IF,
                "netns", &net.cli,
            ],
        );
        let addr = format!("{SERVER_IP}/{prefix_len}");
        run("ip", &["-n", &net.srv, "addr", "add", &addr, "dev", SRV_IF]);
        for (ns, dev) in [
            (&net.srv, SRV_IF),
            (&net.srv, "lo"),
            (&net.cli, CLI_IF),
            (&net.cli, "lo"),
        ] {
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        net.write_udhcpc_script();
        net
    }

    fn script_path(&self) -> PathBuf {
        self.scratch.path().join("udhcpc-script")
    }

    /// The script udhcpc runs on each event: on `bound`, print the
    /// variables that describe the ACK, one `KEY=value` per line.
    fn write_udhcpc_script(&self) {
        let script = "#!/bin/sh\n\
            [ \"$1\" = bound ] || exit 0\n\
            echo 'HDB-LEASE-BEGIN'\n\
            for v in ip subnet mask hostname bootfile boot_file siaddr sname serverid lease domain; do\n\
            \teval \"val=\\${$v-}\"\n\
            \t[ -n \"$val\" ] && printf '%s=%s\\n' \"$v\" \"$val\"\n\
            done\n\
            env | grep '^opt[0-9]*=' || true\n\
            echo 'HDB-LEASE-END'\n\
            exit 0\n";
        let path = self.script_path();
        fs::write(&path, script).expect("writing the udhcpc script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod udhcpc script");
    }

    /// Runs `cmd` inside the server namespace (`ip netns exec`).
    pub(crate) fn srv_command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.srv]).arg(program);
        cmd
    }

    /// Asks for a lease with this MAC: up to 4 DISCOVERs one second apart
    /// (a busy machine can delay dnsmasq's answer past one or two).
    /// `None` when no lease was obtained.
    pub(crate) fn dhcp_request(&self, mac: &str) -> Option<Lease> {
        // 8 DISCOVERs a second apart: a pool address is offered only after
        // dnsmasq's ping check of it (up to 3 s with nobody answering),
        // and 4 tries lost that race on a busy machine (CI runs on one).
        self.dhcp_request_tries(mac, 8)
    }

    /// For when no offer is expected: 2 DISCOVERs, gives up after ~2 s.
    pub(crate) fn dhcp_expect_no_offer(&self, mac: &str) -> Option<Lease> {
        self.dhcp_request_tries(mac, 2)
    }

    /// Runs `udhcpc -f -q -n -B -t <tries> -T 1 -O bootfile` in the client
    /// namespace after setting the client interface's MAC.
    pub(crate) fn dhcp_request_tries(&self, mac: &str, tries: u32) -> Option<Lease> {
        self.dhcp_request_with(mac, tries, &[])
    }

    /// Like [`Net::dhcp_request_tries`], with extra udhcpc arguments, e.g.
    /// `["-x", "0x3d:ff0102"]` (send this client ID instead of `01:<mac>`),
    /// `["-x", "0xaf:01"]` (option 175: dnsmasq's `--dhcp-match=set:ipxe,175`
    /// then sets tag `ipxe`) or `["-x", "hostname:NAME"]` (option 12).
    pub(crate) fn dhcp_request_with(&self, mac: &str, tries: u32, extra: &[&str]) -> Option<Lease> {
        let _one_at_a_time = self.dhcp.lock().unwrap_or_else(|e| e.into_inner());
        run(
            "ip",
            &[
                "-n",
                &self.cli,
                "link",
                "set",
                "dev",
                &self.cli_if,
                "address",
                mac,
            ],
        );
        let script = self.script_path();
        let tries = tries.to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.cli, "udhcpc"])
            .args(["-f", "-q", "-n", "-B", "-t", &tries, "-T", "1", "-A", "0"])
            .args(["-O", "bootfile", "-i", &self.cli_if, "-s"])
            .arg(&script)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run udhcpc: {e}; {INSTALL_HINT}"));
        // Backstop: udhcpc stops by itself after `tries` seconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("udhcpc for {mac} did not finish in 30 s");
                }
            }
        }
        let out = child.wait_with_output().expect("collecting udhcpc output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        Lease::parse(&stdout)
    }

    /// Pids of processes still running in one of the two namespaces.
    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for ns in [&self.srv, &self.cli] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                pids.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        pids
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Everything in these namespaces was started by this test.
        for pid in self.pids() {
            signal(pid, Signal::SIGKILL);
        }
        wait_until(Duration::from_secs(3), || self.pids().is_empty());
        for ns in [&self.srv, &self.cli] {
            if Path::new("/run/netns").join(ns).exists() && !run_quiet("ip", &["netns", "del", ns])
            {
                eprintln!("warning: could not delete network namespace {ns}");
            }
        }
    }
}

/// Deletes `hdb-<pid>-*` namespaces left by an earlier run of this suite
/// whose process no longer exists (a SIGKILLed test run cannot clean up).
fn remove_stale_namespaces() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("hdb-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(p) = p.parse::<u32>() {
                    signal(p, Signal::SIGKILL);
                }
            }
        }
        run_quiet("ip", &["netns", "del", &name]);
    }
}

/// What one DHCP exchange gave the client (from udhcpc's `bound` event).
#[derive(Clone, Debug, Default)]
pub(crate) struct Lease {
    /// The leased address (`yiaddr`).
    pub(crate) ip: String,
    /// Option 12.
    pub(crate) hostname: Option<String>,
    /// Option 67 (requested with `-O bootfile`).
    pub(crate) bootfile_option: Option<String>,
    /// The BOOTP header's `file` field.
    pub(crate) bootp_file: Option<String>,
    /// Option 51, seconds.
    pub(crate) lease_secs: Option<u64>,
    /// Every variable the script printed.
    pub(crate) vars: BTreeMap<String, String>,
}

impl Lease {
    fn parse(stdout: &str) -> Option<Lease> {
        let mut vars = BTreeMap::new();
        let mut inside = false;
        for line in stdout.lines() {
            match line {
                "HDB-LEASE-BEGIN" => inside = true,
                "HDB-LEASE-END" => inside = false,
                _ if inside => {
                    if let Some((k, v)) = line.split_once('=') {
                        vars.insert(k.to_owned(), v.to_owned());
                    }
                }
                _ => {}
            }
        }
        let ip = vars.get("ip")?.clone();
        Some(Lease {
            ip,
            hostname: vars.get("hostname").cloned(),
            bootfile_option: vars.get("bootfile").cloned(),
            bootp_file: vars.get("boot_file").cloned(),
            lease_secs: vars.get("lease").and_then(|l| l.parse().ok()),
            vars,
        })
    }

    /// The boot file the client would load: option 67, else the BOOTP field.
    pub(crate) fn boot_file(&self) -> Option<&str> {
        self.bootfile_option
            .as_deref()
            .or(self.bootp_file.as_deref())
    }

    /// Whether the address came from the dynamic pool .100–.150.
    pub(crate) fn is_pool_address(&self) -> bool {
        self.ip
            .strip_prefix("192.168.77.")
            .and_then(|last| last.parse::<u8>().ok())
            .is_some_and(|n| (100..=150).contains(&n))
    }
}

// ---------------------------------------------------------------------------
// dnsmasq's files

/// dnsmasq's directories and files in one private temp directory, made
/// world-traversable (dnsmasq runs as `nobody` after start-up).
pub(crate) struct Dirs {
    root: tempfile::TempDir,
    /// `--dhcp-hostsdir`.
    pub(crate) hosts: PathBuf,
    /// `--dhcp-optsdir`.
    pub(crate) opts: PathBuf,
    /// `--dhcp-leasefile`.
    pub(crate) leases: PathBuf,
    /// `--pid-file`.
    pub(crate) pid_file: PathBuf,
    /// `--log-facility`.
    pub(crate) log: PathBuf,
    /// An empty `--dhcp-hostsfile`, read only at start and on SIGHUP.
    pub(crate) marker: PathBuf,
}

impl Dirs {
    pub(crate) fn new() -> Dirs {
        let root = tempfile::Builder::new()
            .prefix("hdb-e2e-")
            .tempdir()
            .expect("creating a temp dir");
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        let p = root.path().to_path_buf();
        let dirs = Dirs {
            hosts: p.join("hosts"),
            opts: p.join("opts"),
            leases: p.join("dnsmasq.leases"),
            pid_file: p.join("dnsmasq.pid"),
            log: p.join("dnsmasq.log"),
            marker: p.join("reload-marker"),
            root,
        };
        for d in [&dirs.hosts, &dirs.opts] {
            fs::create_dir(d).expect("creating a dnsmasq directory");
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod dir");
        }
        fs::write(&dirs.marker, "").expect("writing the reload marker");
        fs::set_permissions(&dirs.marker, fs::Permissions::from_mode(0o644)).expect("chmod marker");
        dirs
    }

    /// A path for other files of this test (broker logs, sockets).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Writes a file by hand, mode 0644 (for harness checks without the broker).
    pub(crate) fn write_file(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        fs::write(&path, text).expect("writing a dnsmasq file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    /// dnsmasq's log so far ("" before it exists).
    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Times dnsmasq read the reload marker: one per start plus one per SIGHUP.
    pub(crate) fn marker_reads(&self) -> usize {
        let needle = format!("read {}", self.marker.display());
        self.log_text()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// Times dnsmasq logged reading `<dir>/<name>`.
    pub(crate) fn file_reads(&self, dir: &Path, name: &str) -> usize {
        let needle = format!("read {}/{name}", dir.display());
        self.log_text()
            .lines()
            .filter(|l| l.ends_with(&needle) || l.contains(&format!("{needle} ")))
            .count()
    }

    /// Waits until dnsmasq has read `<dir>/<name>` more than `before` times.
    pub(crate) fn wait_file_read(&self, dir: &Path, name: &str, before: usize) {
        assert!(
            wait_until(Duration::from_secs(5), || self.file_reads(dir, name)
                > before),
            "dnsmasq did not read {}/{name} within 5 s; log tail:\n{}",
            dir.display(),
            tail(&self.log_text(), 30)
        );
    }

    /// Waits until the marker was read more than `before` times, i.e. a
    /// SIGHUP (or restart) after that point is being processed.
    pub(crate) fn wait_marker_reads_above(&self, before: usize) {
        assert!(
            wait_until(Duration::from_secs(5), || self.marker_reads() > before),
            "dnsmasq did not reload within 5 s (marker reads stayed at {before}); log tail:\n{}",
            tail(&self.log_text(), 30)
        );
    }

    /// Like [`Dirs::wait_marker_reads_above`] with a chosen timeout (a
    /// broker that delays its reload on purpose); true when it happened.
    pub(crate) fn marker_reads_above_within(&self, before: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.marker_reads() > before)
    }

    /// Lines of dnsmasq's log containing `needle`.
    pub(crate) fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// The pid in dnsmasq's pid file, when there is one.
    pub(crate) fn dnsmasq_pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// Scenario 7's check: dnsmasq never read a temp file (a dotfile in
    /// either directory) and logged no error about any file.
    pub(crate) fn assert_log_clean(&self) {
        self.assert_log_clean_except(&[]);
    }

    /// Like [`Dirs::assert_log_clean`], but lines containing one of
    /// `expected` are allowed (what a scenario causes on purpose).
    pub(crate) fn assert_log_clean_except(&self, expected: &[&str]) {
        let log = self.log_text();
        let mut bad = Vec::new();
        let temp_hosts = format!("{}/.", self.hosts.display());
        let temp_opts = format!("{}/.", self.opts.display());
        for line in log
            .lines()
            .filter(|l| !expected.iter().any(|e| l.contains(e)))
        {
            let lower = line.to_ascii_lowercase();
            let temp_read = line.contains(&temp_hosts) || line.contains(&temp_opts);
            let error = [
                "error",
                "bad ",
                "failed",
                "cannot",
                "duplicate",
                " at line ",
                "permission denied",
                "no such file",
            ]
            .iter()
            .any(|w| lower.contains(w));
            if temp_read || error {
                bad.push(line);
            }
        }
        assert!(
            bad.is_empty(),
            "dnsmasq's log ({}) shows a temp file read or an error:\n{}",
            self.log.display(),
            bad.join("\n")
        );
    }
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------
// dnsmasq

/// The dnsmasq command line (binary first) serving `net`'s server side with
/// `dirs`: foreground (`-k`), DHCP only, logging every exchange to a file.
pub(crate) fn dnsmasq_command(bin: &DnsmasqBinary, net: &Net, dirs: &Dirs) -> Vec<String> {
    vec![
        bin.path.display().to_string(),
        "--keep-in-foreground".into(),
        "--conf-file=/dev/null".into(),
        "--no-hosts".into(),
        "--no-resolv".into(),
        "--port=0".into(),
        "--bind-interfaces".into(),
        format!("--interface={}", net.srv_if),
        format!("--dhcp-range={POOL_START},{POOL_END},12h"),
        format!("--dhcp-hostsdir={}", dirs.hosts.display()),
        format!("--dhcp-optsdir={}", dirs.opts.display()),
        format!("--dhcp-hostsfile={}", dirs.marker.display()),
        format!("--dhcp-leasefile={}", dirs.leases.display()),
        format!("--pid-file={}", dirs.pid_file.display()),
        format!("--log-facility={}", dirs.log.display()),
        "--log-dhcp".into(),
        "--dhcp-match=set:ipxe,175".into(),
    ]
}

/// dnsmasq running in the server namespace; stopped on Drop.
pub(crate) struct Dnsmasq {
    child: Child,
    /// dnsmasq's pid (`ip netns exec` execs it, so also the child's pid).
    pub(crate) pid: u32,
    log: PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq and waits for its pid file and its start-up log line.
    pub(crate) fn start(bin: &DnsmasqBinary, net: &Net, dirs: &Dirs) -> Dnsmasq {
        Dnsmasq::start_with(bin, net, dirs, &[])
    }

    /// Like [`Dnsmasq::start`], with `extra` appended to the command line
    /// (`v6::dnsmasq_v6_args`).
    pub(crate) fn start_with(
        bin: &DnsmasqBinary,
        net: &Net,
        dirs: &Dirs,
        extra: &[String],
    ) -> Dnsmasq {
        let mut argv = dnsmasq_command(bin, net, dirs);
        argv.extend(extra.iter().cloned());
        let child = net
            .srv_command(Path::new(&argv[0]))
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(dirs.path("dnsmasq.stderr")).expect("creating dnsmasq.stderr"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.path.display()));
        let mut d = Dnsmasq {
            pid: child.id(),
            child,
            log: dirs.log.clone(),
        };
        // dnsmasq writes its pid file (and its banner) before it reads the
        // directories; it has finished starting once the marker was read.
        let started = wait_until(Duration::from_secs(10), || {
            dirs.dnsmasq_pid() == Some(d.pid)
                && dirs.log_text().contains("started, version")
                && dirs.marker_reads() >= 1
        });
        if !started || !d.is_alive() {
            panic!(
                "dnsmasq {} did not start: stderr: {}; log: {}",
                bin.version,
                fs::read_to_string(dirs.path("dnsmasq.stderr")).unwrap_or_default(),
                dirs.log_text()
            );
        }
        d
    }

    /// Whether the process is still running (reaps it if it exited).
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How it ended, if it did.
    pub(crate) fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGHUP, as an operator (or `--reload pidfile`) would.
    pub(crate) fn sighup(&self) {
        signal(self.pid, Signal::SIGHUP);
    }

    /// The log so far.
    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CPU time dnsmasq used so far (user + system, from `/proc/PID/stat`,
    /// in 10 ms clock ticks). Unlike wall time it does not grow when other
    /// work shares the machine.
    pub(crate) fn cpu(&self) -> Duration {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .unwrap_or_else(|e| panic!("/proc/{}/stat: {e}", self.pid));
        let after = stat.rsplit_once(')').expect("a stat line").1;
        let f: Vec<u64> = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|x| x.parse().expect("utime, stime"))
            .collect();
        Duration::from_millis((f[0] + f[1]) * 10)
    }

    /// Waits until dnsmasq sleeps in its event loop (seen sleeping three
    /// times in a row, 20 ms apart): it has no file left to read. Bounded by
    /// `limit`, a reload of thousands of files on a loaded machine.
    pub(crate) fn wait_idle(&self, limit: Duration) {
        let state = || {
            fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .ok()
                .and_then(|s| s.rsplit_once(')')?.1.trim_start().chars().next())
        };
        let mut asleep = 0;
        let idle = wait_until(limit, || {
            asleep = if state() == Some('S') { asleep + 1 } else { 0 };
            asleep >= 3
        });
        assert!(idle, "dnsmasq (pid {}) stayed busy for {limit:?}", self.pid);
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(3));
    }
}

// ---------------------------------------------------------------------------
// The broker

/// How the broker reloads dnsmasq in a test.
pub(crate) enum Reload<'a> {
    /// `--reload none`: never signals.
    None,
    /// `--reload pidfile --dnsmasq-pidfile <dirs.pid_file>`.
    Pidfile,
    /// `serve … -- <dnsmasq command>`: the broker starts dnsmasq itself, so
    /// it runs inside the server namespace.
    Supervise { net: &'a Net, dnsmasq: Vec<String> },
}

/// A status code and the parsed JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) text: String,
}

/// `hostsdir-broker serve` as a child process, with an HTTP client for it.
pub(crate) struct Broker {
    /// Dropped first: SIGTERM (forwarded to a supervised dnsmasq), then SIGKILL.
    child: Guarded,
    /// `http://127.0.0.1:PORT` as seen from this process.
    pub(crate) base: String,
    agent: ureq::Agent,
    stderr_path: PathBuf,
    /// Supervise mode only: carries HTTP from here into the server namespace.
    bridge: Option<Bridge>,
}

/// The broker binary built by cargo for this test run.
pub(crate) fn broker_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hostsdir-broker"))
}

/// Whether `serve --help` mentions supervise mode.
pub(crate) fn broker_has_supervise() -> bool {
    Command::new(broker_binary())
        .args(["serve", "--help"])
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.to_ascii_lowercase().contains("supervise")
        })
        .unwrap_or(false)
}

impl Broker {
    /// Starts `serve` on 127.0.0.1:0 for `dirs` and reads the port from its
    /// `listening on http://127.0.0.1:PORT` line.
    pub(crate) fn start(dirs: &Dirs, reload: Reload<'_>, extra: &[&str]) -> Broker {
        Broker::start_with_quiet(dirs, reload, 50, extra)
    }

    /// Like [`Broker::start`] with `--reload-quiet-ms quiet_ms` instead of
    /// 50 (a long quiet period leaves time to watch dnsmasq before a
    /// scheduled reload; `extra` must not repeat the flag).
    pub(crate) fn start_with_quiet(
        dirs: &Dirs,
        reload: Reload<'_>,
        quiet_ms: u64,
        extra: &[&str],
    ) -> Broker {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--hosts-dir".into(),
            dirs.hosts.display().to_string(),
            "--opts-dir".into(),
            dirs.opts.display().to_string(),
            "--lease-file".into(),
            dirs.leases.display().to_string(),
            "--reload-quiet-ms".into(),
            quiet_ms.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let bin = broker_binary();
        let (mut cmd, net) = match &reload {
            Reload::None => {
                args.extend(["--reload".into(), "none".into()]);
                (Command::new(&bin), None)
            }
            Reload::Pidfile => {
                args.extend([
                    "--reload".into(),
                    "pidfile".into(),
                    "--dnsmasq-pidfile".into(),
                    dirs.pid_file.display().to_string(),
                ]);
                (Command::new(&bin), None)
            }
            Reload::Supervise { net, dnsmasq } => {
                args.push("--".into());
                args.extend(dnsmasq.iter().cloned());
                (net.srv_command(&bin), Some(*net))
            }
        };
        let stderr_path = dirs.path(&format!(
            "broker-{}.stderr",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let child = cmd
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                fs::File::create(&stderr_path).expect("creating broker stderr file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut child = Guarded(child);
        let stdout = child.0.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the broker never blocks on a full pipe.
            for _ in lines {}
        });
        let first = rx.recv_timeout(Duration::from_secs(30));
        let stderr_now = || fs::read_to_string(&stderr_path).unwrap_or_default();
        let Ok(first) = first else {
            stop_child(&mut child.0, Duration::from_secs(2));
            panic!(
                "broker printed no `listening on` line within 30 s (args {args:?}); stderr:\n{}",
                stderr_now()
            );
        };
        let port: u16 = first
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("unexpected first stdout line from the broker: {first:?}"));
        let (base, bridge) = match net {
            None => (format!("http://127.0.0.1:{port}"), None),
            Some(net) => {
                let bridge = Bridge::start(net, dirs, port);
                (format!("http://127.0.0.1:{}", bridge.port), Some(bridge))
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let broker = Broker {
            child,
            base,
            agent,
            stderr_path,
            bridge,
        };
        let ok = wait_until(Duration::from_secs(10), || {
            broker.get("/healthz").status == 200
        });
        assert!(
            ok,
            "broker's /healthz never answered 200; stderr:\n{}",
            broker.stderr()
        );
        broker
    }

    /// Everything the broker wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The broker's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn reply(&self, what: &str, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut resp = r.unwrap_or_else(|e| {
            panic!("{what}: {e}; broker stderr:\n{}", tail(&self.stderr(), 40))
        });
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        let r = self.agent.get(&self.url(path)).call();
        self.reply(&format!("GET {path}"), r)
    }

    pub(crate) fn put(&self, path: &str, body: &Value) -> Reply {
        let r = self.agent.put(&self.url(path)).send_json(body);
        self.reply(&format!("PUT {path}"), r)
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Reply {
        let r = self.agent.post(&self.url(path)).send_json(body);
        self.reply(&format!("POST {path}"), r)
    }

    pub(crate) fn delete(&self, path: &str) -> Reply {
        let r = self.agent.delete(&self.url(path)).call();
        self.reply(&format!("DELETE {path}"), r)
    }

    /// `PUT /v1/hosts/{name}`, optionally `?wait=reload`.
    pub(crate) fn put_host(&self, name: &str, spec: &Value, wait_reload: bool) -> Reply {
        self.put(
            &format!("/v1/hosts/{name}{}", wait_query(wait_reload)),
            spec,
        )
    }

    /// `DELETE /v1/hosts/{name}`, optionally `?wait=reload`.
    pub(crate) fn delete_host(&self, name: &str, wait_reload: bool) -> Reply {
        self.delete(&format!("/v1/hosts/{name}{}", wait_query(wait_reload)))
    }

    /// `PUT /v1/options/{name}`, optionally `?wait=reload`.
    pub(crate) fn put_options(&self, name: &str, body: &Value, wait_reload: bool) -> Reply {
        self.put(
            &format!("/v1/options/{name}{}", wait_query(wait_reload)),
            body,
        )
    }

    /// `GET /v1/status`, asserted 200.
    pub(crate) fn status(&self) -> Value {
        let r = self.get("/v1/status");
        assert_eq!(r.status, 200, "GET /v1/status: {}", r.text);
        r.body
    }

    /// Whether the broker process is still running.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}

fn wait_query(wait_reload: bool) -> &'static str {
    if wait_reload {
        "?wait=reload"
    } else {
        ""
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- broker stderr (tail) ---\n{}", tail(&self.stderr(), 40));
        }
        // Then the fields drop: the broker process (SIGTERM, forwarded to a
        // supervised dnsmasq), then the bridge.
    }
}

// ---------------------------------------------------------------------------
// Bridge into the server namespace (supervise mode)

/// In supervise mode the broker listens on the server namespace's loopback,
/// which this process cannot reach. A tiny Python relay inside that
/// namespace accepts on a unix socket (filesystem sockets cross network
/// namespaces) and connects to the broker; here, a TCP listener on
/// 127.0.0.1:0 relays each connection to that socket.
struct Bridge {
    port: u16,
    relay: Child,
    stop: Arc<AtomicBool>,
}

const RELAY_PY: &str = r#"
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(128)
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(c):
    try:
        t = socket.create_connection(("127.0.0.1", port))
    except OSError:
        c.close()
        return
    up = threading.Thread(target=pump, args=(c, t), daemon=True)
    up.start()
    pump(t, c)
    up.join()
    c.close()
    t.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

impl Bridge {
    fn start(net: &Net, dirs: &Dirs, broker_port: u16) -> Bridge {
        let sock = dirs.path(&format!(
            "bridge-{}.sock",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let python =
            find_in_path("python3").unwrap_or_else(|| panic!("python3 not found; {INSTALL_HINT}"));
        let relay = net
            .srv_command(&python)
            .args(["-c", RELAY_PY])
            .arg(&sock)
            .arg(broker_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting the python relay");
        // The socket file appears at bind(), before listen(): wait until a
        // connection is accepted (a connect in between is refused, and
        // the test's first request then saw "connection reset" on a busy
        // machine).
        assert!(
            wait_until(Duration::from_secs(10), || UnixStream::connect(&sock)
                .is_ok()),
            "the relay into the server namespace did not listen on {}",
            sock.display()
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the bridge listener");
        let port = listener.local_addr().expect("bridge address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let sock = sock.clone();
                thread::spawn(move || relay_connection(conn, &sock));
            }
        });
        Bridge { port, relay, stop }
    }
}

fn relay_connection(tcp: TcpStream, sock: &Path) {
    let Ok(unix) = UnixStream::connect(sock) else {
        return;
    };
    let (Ok(mut tcp_r), Ok(mut unix_w)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut tcp_r, &mut unix_w);
        let _ = unix_w.shutdown(Shutdown::Write);
    });
    let (mut unix_r, mut tcp_w) = (unix, tcp);
    let _ = std::io::copy(&mut unix_r, &mut tcp_w);
    let _ = tcp_w.shutdown(Shutdown::Write);
    let _ = up.join();
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port)).map(|mut s| s.write_all(b""));
        let _ = self.relay.kill();
        let _ = self.relay.wait();
    }
}

// ---------------------------------------------------------------------------
// One scenario's world

/// A scenario's whole setup: network, files, dnsmasq (started here in
/// pidfile/none mode, by the broker in supervise mode) and the broker.
/// Fields drop in order: broker, dnsmasq, dirs, net.
pub(crate) struct World {
    pub(crate) broker: Broker,
    pub(crate) dnsmasq: Option<Dnsmasq>,
    pub(crate) dirs: Dirs,
    pub(crate) net: Net,
    pub(crate) bin: DnsmasqBinary,
}

/// Which reload method a [`World`]'s broker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    None,
    Pidfile,
    Supervise,
}

impl World {
    /// Server address 192.168.77.1/24.
    pub(crate) fn new(bin: &DnsmasqBinary, mode: Mode) -> World {
        World::with_prefix(bin, mode, 24)
    }

    pub(crate) fn with_prefix(bin: &DnsmasqBinary, mode: Mode, prefix_len: u8) -> World {
        World::with_broker_args(bin, mode, prefix_len, 50, &[])
    }

    /// Like [`World::with_prefix`], starting the broker with
    /// `--reload-quiet-ms quiet_ms` and the extra `serve` flags `extra`.
    pub(crate) fn with_broker_args(
        bin: &DnsmasqBinary,
        mode: Mode,
        prefix_len: u8,
        quiet_ms: u64,
        extra: &[&str],
    ) -> World {
        World::on_net(
            Net::with_prefix(prefix_len),
            bin,
            mode,
            quiet_ms,
            extra,
            &[],
        )
    }

    /// Like [`World::with_broker_args`] on a network prepared by the caller
    /// (`v6::world6` adds IPv6 first), with `dnsmasq_extra` appended to
    /// dnsmasq's command line.
    pub(crate) fn on_net(
        net: Net,
        bin: &DnsmasqBinary,
        mode: Mode,
        quiet_ms: u64,
        extra: &[&str],
        dnsmasq_extra: &[String],
    ) -> World {
        let dirs = Dirs::new();
        let (dnsmasq, broker) = match mode {
            Mode::None | Mode::Pidfile => {
                let d = Dnsmasq::start_with(bin, &net, &dirs, dnsmasq_extra);
                let reload = if mode == Mode::None {
                    Reload::None
                } else {
                    Reload::Pidfile
                };
                (
                    Some(d),
                    Broker::start_with_quiet(&dirs, reload, quiet_ms, extra),
                )
            }
            Mode::Supervise => {
                assert!(
                    broker_has_supervise(),
                    "`hostsdir-broker serve --help` does not mention supervise mode yet"
                );
                let mut cmd = dnsmasq_command(bin, &net, &dirs);
                cmd.extend(dnsmasq_extra.iter().cloned());
                let b = Broker::start_with_quiet(
                    &dirs,
                    Reload::Supervise {
                        net: &net,
                        dnsmasq: cmd,
                    },
                    quiet_ms,
                    extra,
                );
                let started = wait_until(Duration::from_secs(10), || {
                    dirs.dnsmasq_pid().is_some_and(pid_alive)
                        && dirs.log_text().contains("started, version")
                        && dirs.marker_reads() >= 1
                });
                assert!(
                    started,
                    "supervised dnsmasq did not start; broker stderr:\n{}",
                    b.stderr()
                );
                (None, b)
            }
        };
        World {
            broker,
            dnsmasq,
            dirs,
            net,
            bin: bin.clone(),
        }
    }

    /// dnsmasq's current pid, from its pid file.
    pub(crate) fn dnsmasq_pid(&self) -> u32 {
        self.dirs.dnsmasq_pid().expect("dnsmasq pid file")
    }

    /// Whether the dnsmasq named by the pid file is running.
    pub(crate) fn dnsmasq_alive(&self) -> bool {
        self.dirs.dnsmasq_pid().is_some_and(pid_alive)
    }

    /// End of every scenario: dnsmasq's log is clean (scenario 7).
    pub(crate) fn finish(self) {
        self.dirs.assert_log_clean();
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- dnsmasq {} log (tail) {} ---\n{}",
                self.bin.version,
                self.dirs.log.display(),
                tail(&self.dirs.log_text(), 40)
            );
        }
    }
}
