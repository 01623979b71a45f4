//! The broker as PID 1 (understack's layout: the container's entry point
//! execs it, and it supervises dnsmasq) reaps the orphans re-parented to it
//! and still sees dnsmasq's own exits.
//!
//! Why: every process whose parent dies is re-parented to PID 1, and only
//! its parent can reap it. A PID 1 that never calls `wait` for them keeps
//! them as zombies until the container restarts (dnsmasq's forked TCP DNS
//! workers when dnsmasq dies, anything a `kubectl exec` session leaves). A
//! PID 1 that reaps carelessly (`waitpid(-1)`) takes the exit status of the
//! dnsmasq it supervises, which then never looks dead to the supervisor and
//! is never restarted (src/reload/supervise.rs).
//!
//! How: the real broker runs as PID 1 of a new PID namespace (`unshare
//! --pid --fork --mount-proc`), supervising a wrapper script that leaves an
//! orphan behind at each start (a subshell whose parent exits at once) and
//! then execs a real dnsmasq 2.93 in a network namespace of the harness
//! (`tests/e2e/mod.rs`). The orphan waits for a file this test creates, so
//! the test sees it alive and re-parented to the broker, then exits: it
//! must disappear from /proc (reaped), not stay in state `Z`. Then dnsmasq
//! is killed: the broker must report the kill (`last_exit`), restart it
//! with its backoff (`restarts`, a new pid, `running`), and reap the next
//! orphan too. Finally SIGTERM stops the broker cleanly.
//!
//! Needs root (PID and network namespaces), `unshare` (util-linux), `ip`
//! and dnsmasq 2.93 (`scripts/build-dnsmasq.sh 2.93`); a missing
//! prerequisite fails the test. Processes and namespaces are cleaned up on
//! every path: dropping [`Pid1Broker`] SIGKILLs `unshare`, whose
//! `--kill-child` then kills the broker, and the kernel every process of
//! its PID namespace; dropping the harness's `Net` deletes the network
//! namespaces and kills what still runs in them.

mod e2e;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use e2e::{dnsmasq_command, for_versions, wait_until, Dirs, Net};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long the broker and dnsmasq may take to start, or a restart to
/// happen, on a busy machine (the supervisor's first backoff is 100 ms).
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long an exited orphan may stay before it counts as never reaped:
/// the supervisor looks every 50 ms.
const REAP_LIMIT: Duration = Duration::from_secs(10);

/// One process as seen from this (the root) PID namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Proc {
    /// Pid here.
    pid: u32,
    /// Pid inside its own PID namespace (the last `NSpid` entry).
    ns_pid: u32,
    /// Parent's pid here.
    ppid: u32,
    /// State letter (`S`, `R`, `Z`, …).
    state: char,
    /// Start time in clock ticks since boot: tells a pid's reuse apart.
    start: u64,
    /// Its PID namespace (the `/proc/PID/ns/pid` link).
    pid_ns: String,
}

impl Proc {
    fn read(pid: u32) -> Option<Proc> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let ns_pid = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_whitespace()
            .last()?
            .parse()
            .ok()?;
        Some(Proc {
            pid,
            ns_pid,
            ppid: fields.get(1)?.parse().ok()?,
            state: fields.first()?.chars().next()?,
            start: fields.get(19)?.parse().ok()?,
            pid_ns: fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()?
                .display()
                .to_string(),
        })
    }

    /// Every process visible here.
    fn all() -> Vec<Proc> {
        fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .filter_map(Proc::read)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The process of `pid_ns` whose pid there is `ns_pid`.
    fn in_ns(pid_ns: &str, ns_pid: u32) -> Option<Proc> {
        Proc::all()
            .into_iter()
            .find(|p| p.pid_ns == pid_ns && p.ns_pid == ns_pid)
    }

    /// Whether this very process (not a later one with its pid) is still
    /// in /proc, and in which state.
    fn still_there(&self) -> Option<char> {
        Proc::read(self.pid)
            .filter(|p| p.start == self.start)
            .map(|p| p.state)
    }
}

/// `unshare … hostsdir-broker serve …` and the broker inside it; killed on
/// drop.
struct Pid1Broker {
    unshare: Child,
    /// The broker, as seen from here.
    broker: Proc,
    base: String,
    stderr: PathBuf,
    agent: ureq::Agent,
}

impl Pid1Broker {
    fn start(dirs: &Dirs, dnsmasq: &[String]) -> Pid1Broker {
        let stderr = dirs.path("broker.stderr");
        let mut unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(e2e::broker_binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--reload-quiet-ms",
                "50",
            ])
            .arg("--hosts-dir")
            .arg(&dirs.hosts)
            .arg("--opts-dir")
            .arg(&dirs.opts)
            .arg("--lease-file")
            .arg(&dirs.leases)
            .arg("--")
            .args(dnsmasq)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                fs::File::create(&stderr).expect("creating the broker's stderr file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
        let stdout = unshare.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let unshare_pid = unshare.id();
        // From here on, dropping `b` cleans up (the broker is found below).
        let mut b = Pid1Broker {
            unshare,
            broker: Proc::default(),
            base: String::new(),
            stderr,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into(),
        };
        let first = rx
            .recv_timeout(START_LIMIT)
            .unwrap_or_else(|_| panic!("the broker did not start; stderr:\n{}", b.stderr()));
        let port = first
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the broker: {first:?}"));
        b.base = format!("http://127.0.0.1:{port}");
        b.broker = Proc::all()
            .into_iter()
            .find(|p| p.ppid == unshare_pid)
            .expect("unshare's child, the broker");
        assert_eq!(
            b.broker.ns_pid, 1,
            "the broker is not PID 1: {:?}",
            b.broker
        );
        b
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn status(&self) -> Value {
        let mut r = self
            .agent
            .get(format!("{}/v1/status", self.base))
            .call()
            .unwrap_or_else(|e| panic!("GET /v1/status: {e}; stderr:\n{}", self.stderr()));
        assert_eq!(r.status().as_u16(), 200);
        serde_json::from_str(&r.body_mut().read_to_string().expect("a body")).expect("JSON")
    }

    /// Exited children of the broker it has not reaped.
    fn zombies(&self) -> Vec<Proc> {
        Proc::all()
            .into_iter()
            .filter(|p| p.ppid == self.broker.pid && p.state == 'Z')
            .collect()
    }
}

impl Drop for Pid1Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- broker stderr ---\n{}", e2e::tail(&self.stderr(), 60));
        }
        // --kill-child: unshare's death SIGKILLs the broker; PID 1's death
        // SIGKILLs its whole namespace.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The wrapper the broker supervises: answers `--version`/`--help` as
/// dnsmasq, and otherwise leaves an orphan (its ns pid appended to
/// `orphans`; it exits once `release` exists) and execs dnsmasq in the
/// server namespace.
fn write_wrapper(dirs: &Dirs, net: &Net, dnsmasq: &Path) -> PathBuf {
    let path = dirs.path("dnsmasq-wrapper");
    let (orphans, release) = (dirs.path("orphans"), dirs.path("release"));
    let script = format!(
        "#!/bin/sh\n\
         case \"$1\" in --version|--help) exec '{dnsmasq}' \"$@\" ;; esac\n\
         sh -c '( while [ ! -e \"{release}\" ]; do sleep 0.02; done ) </dev/null >/dev/null 2>&1 & echo $! >> \"{orphans}\"'\n\
         exec ip netns exec '{ns}' '{dnsmasq}' \"$@\"\n",
        dnsmasq = dnsmasq.display(),
        release = release.display(),
        orphans = orphans.display(),
        ns = net.srv,
    );
    fs::write(&path, script).expect("writing the wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    path
}

/// The ns pids the wrapper's orphans were given, in order.
fn orphan_ns_pids(dirs: &Dirs) -> Vec<u32> {
    fs::read_to_string(dirs.path("orphans"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits for the `n`th orphan (1-based), checks that it was re-parented to
/// the broker, releases it and checks that the broker reaped it.
fn orphan_is_reaped(b: &Pid1Broker, dirs: &Dirs, n: usize) {
    assert!(
        wait_until(START_LIMIT, || orphan_ns_pids(dirs).len() >= n),
        "the wrapper left no orphan #{n}; broker stderr:\n{}",
        b.stderr()
    );
    let ns_pid = orphan_ns_pids(dirs)[n - 1];
    let mut orphan = None;
    let adopted = wait_until(START_LIMIT, || {
        orphan = Proc::in_ns(&b.broker.pid_ns, ns_pid);
        orphan.as_ref().is_some_and(|o| o.ppid == b.broker.pid)
    });
    let orphan = orphan.unwrap_or_else(|| panic!("orphan #{n} (ns pid {ns_pid}) not found"));
    assert!(
        adopted,
        "orphan #{n} was not re-parented to the broker: {orphan:?}"
    );
    assert_ne!(orphan.state, 'Z', "orphan #{n} exited before its release");
    fs::write(dirs.path("release"), "").expect("writing the release file");
    let mut last = None;
    let reaped = wait_until(REAP_LIMIT, || {
        last = orphan.still_there();
        last.is_none()
    });
    assert!(
        reaped,
        "orphan #{n} (pid {}, ns pid {ns_pid}) is still in /proc in state {last:?} {REAP_LIMIT:?} \
         after its release: PID 1 did not reap it",
        orphan.pid
    );
    fs::remove_file(dirs.path("release")).expect("removing the release file");
}

#[test]
fn pid1_reaps_orphans_and_still_supervises_dnsmasq() {
    for_versions(&["2.93"], |bin| {
        let net = Net::new();
        let dirs = Dirs::new();
        let mut argv = dnsmasq_command(bin, &net, &dirs);
        argv[0] = write_wrapper(&dirs, &net, &bin.path).display().to_string();
        let b = Pid1Broker::start(&dirs, &argv);

        // dnsmasq runs, and the broker knows it as 2.93.
        assert!(
            wait_until(START_LIMIT, || dirs.log_text().contains("started, version")
                && dirs.marker_reads() >= 1),
            "supervised dnsmasq did not start; broker stderr:\n{}",
            b.stderr()
        );
        let s = b.status();
        assert_eq!(s["dnsmasq"]["version"], "2.93", "{s}");
        assert_eq!(s["dnsmasq"]["restarts"], 0, "{s}");
        let first_pid = s["dnsmasq"]["pid"].as_u64().expect("dnsmasq pid") as u32;
        assert_eq!(dirs.dnsmasq_pid(), Some(first_pid), "the pid file's ns pid");

        // The first start's orphan is reaped.
        orphan_is_reaped(&b, &dirs, 1);

        // dnsmasq dies: the supervisor gets its exit status, not the reaper.
        let dnsmasq = Proc::in_ns(&b.broker.pid_ns, first_pid).expect("dnsmasq's process");
        assert_eq!(dnsmasq.ppid, b.broker.pid, "dnsmasq is the broker's child");
        kill(Pid::from_raw(dnsmasq.pid as i32), Signal::SIGKILL).expect("killing dnsmasq");
        let mut s = Value::Null;
        let restarted = wait_until(START_LIMIT, || {
            s = b.status();
            s["dnsmasq"]["restarts"] == 1
                && s["dnsmasq"]["running"] == true
                && s["dnsmasq"]["pid"]
                    .as_u64()
                    .is_some_and(|p| p as u32 != first_pid)
        });
        assert!(
            restarted,
            "dnsmasq was not restarted after it was killed: {s}; broker stderr:\n{}",
            b.stderr()
        );
        let last_exit = s["dnsmasq"]["last_exit"].as_str().unwrap_or_default();
        assert!(
            last_exit.contains("SIGKILL"),
            "the supervisor did not see dnsmasq's own exit status: {s}"
        );
        assert!(
            b.stderr()
                .contains("dnsmasq exited unexpectedly; restarting in 100ms"),
            "no restart with the first backoff step in the log:\n{}",
            b.stderr()
        );
        assert!(dnsmasq.still_there().is_none(), "killed dnsmasq not reaped");

        // The restart's orphan too; then nothing of the broker's is a zombie.
        orphan_is_reaped(&b, &dirs, 2);
        let mut zombies = Vec::new();
        assert!(
            wait_until(REAP_LIMIT, || {
                zombies = b.zombies();
                zombies.is_empty()
            }),
            "the broker keeps zombies: {zombies:?}"
        );
        assert!(
            b.stderr().contains("reaped an orphaned process"),
            "the reaping is not logged:\n{}",
            b.stderr()
        );

        // SIGTERM stops the broker (and its dnsmasq) cleanly.
        let mut b = b;
        kill(Pid::from_raw(b.broker.pid as i32), Signal::SIGTERM).expect("SIGTERM to the broker");
        let mut status = None;
        assert!(
            wait_until(START_LIMIT, || {
                status = b.unshare.try_wait().ok().flatten();
                status.is_some()
            }),
            "the broker did not stop on SIGTERM; stderr:\n{}",
            b.stderr()
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "the broker exited with {status:?}; stderr:\n{}",
            b.stderr()
        );
        let left: Vec<Proc> = Proc::all()
            .into_iter()
            .filter(|p| p.pid_ns == b.broker.pid_ns)
            .collect();
        assert!(left.is_empty(), "processes left in the namespace: {left:?}");
    });
}
