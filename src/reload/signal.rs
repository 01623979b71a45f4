//! Methods `pidfile` and `process`: send SIGHUP to a dnsmasq this broker did
//! not start (a sidecar with `shareProcessNamespace`, or a dnsmasq on the
//! same host), then check that it survived.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::dnsmasq::{self, Build, Rules, Version};
use super::reloader::{DnsmasqState, Reloader};
use crate::sync::LockOrRecover;

/// How the dnsmasq process is found.
#[derive(Debug, Clone)]
pub enum Target {
    /// The pid in this file (`dnsmasq -k --pid-file=…`).
    Pidfile(PathBuf),
    /// Every process whose `/proc/PID/comm` is this name.
    Process(String),
}

impl Target {
    /// The pids to signal now.
    pub fn pids(&self) -> Result<Vec<i32>, String> {
        match self {
            Target::Pidfile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read dnsmasq pid file `{}`: {e}", path.display())
                })?;
                let pid: i32 = text.trim().parse().map_err(|_| {
                    format!(
                        "dnsmasq pid file `{}` holds `{}`, not a pid",
                        path.display(),
                        text.trim()
                    )
                })?;
                if !is_running(pid) {
                    return Err(format!(
                        "dnsmasq pid {pid} from `{}` is not running",
                        path.display()
                    ));
                }
                Ok(vec![pid])
            }
            Target::Process(name) => {
                let pids = find_by_comm(name);
                if pids.is_empty() {
                    Err(format!("no process named `{name}` is visible in /proc (in Kubernetes, set shareProcessNamespace: true)"))
                } else {
                    Ok(pids)
                }
            }
        }
    }
}

/// Pids whose `comm` equals `name`.
pub(crate) fn find_by_comm(name: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
                && is_running(*pid)
        })
        .collect();
    pids.sort();
    pids
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z`, …).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name, which may hold spaces.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// When a process started: field 22 of `/proc/PID/stat` (clock ticks since
/// boot) plus the boot time from `/proc/stat`. Assumes the usual 100 ticks
/// per second (`getconf CLK_TCK`), which the result only needs to within a
/// second.
pub(crate) fn process_start(pid: i32) -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(ticks * 10))
}

/// True when the process exists and is not a zombie.
pub(crate) fn is_running(pid: i32) -> bool {
    !matches!(proc_state(pid), None | Some('Z') | Some('X') | Some('x'))
}

/// After a SIGHUP, waits until dnsmasq is back to sleeping in its event loop
/// (it re-reads every file while runnable) or dead. Returns false if it died.
///
/// The kernel makes the signalled process runnable before `kill()` returns,
/// so polling can start at once: dnsmasq counts as back once it is seen
/// sleeping twice in a row 10 ms apart. The caller times this call as the
/// reload's stall, so the polling is kept fine-grained.
pub(crate) fn survived_reload(pid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    let mut sleeping_seen = 0;
    while start.elapsed() < limit {
        match proc_state(pid) {
            None | Some('Z') | Some('X') | Some('x') => return false,
            Some('S') => {
                sleeping_seen += 1;
                if sleeping_seen >= 2 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Some(_) => sleeping_seen = 0,
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    is_running(pid)
}

/// Signals an external dnsmasq.
pub struct SignalReloader {
    target: Target,
    /// The build per pid, learned once per pid (pids change on restart).
    builds: Mutex<Vec<(i32, Option<Build>)>>,
    deaths: AtomicU64,
}

impl SignalReloader {
    /// A reloader for `target`.
    pub fn new(target: Target) -> SignalReloader {
        SignalReloader {
            target,
            builds: Mutex::new(Vec::new()),
            deaths: AtomicU64::new(0),
        }
    }

    /// The version of `pid`, cached.
    pub fn version(&self, pid: i32) -> Option<Version> {
        self.build(pid).map(|b| b.version)
    }

    /// The build of `pid` (version, `--conf-poll`), cached.
    pub fn build(&self, pid: i32) -> Option<Build> {
        // No lock is held across an await: this runs on blocking threads only.
        let mut cache = self.builds.lock_or_recover();
        if let Some((_, b)) = cache.iter().find(|(p, _)| *p == pid) {
            return *b;
        }
        let b = dnsmasq::build_of_pid(pid);
        if let Some(b) = b.filter(|b| Rules::for_build(Some(*b)).crashes_on_tagged_sighup()) {
            tracing::warn!(pid, "{}", dnsmasq::crash_warning(b.version, false));
        }
        cache.push((pid, b));
        b
    }
}

impl Reloader for SignalReloader {
    fn method(&self) -> &'static str {
        match self.target {
            Target::Pidfile(_) => "pidfile",
            Target::Process(_) => "process",
        }
    }

    fn reload(&self, risky: bool) -> Result<String, String> {
        let pids = self.target.pids()?;
        for &pid in &pids {
            let version = self.version(pid);
            if risky && Rules::for_version(version).crashes_on_tagged_sighup() {
                let v = version.map_or("of an unknown version".into(), |v| v.to_string());
                return Err(format!(
                    "refused to send SIGHUP to dnsmasq {v} (pid {pid}): hosts with `set:` tags are loaded and this version crashes on SIGHUP; upgrade dnsmasq to 2.91 or later"
                ));
            }
        }
        for &pid in &pids {
            kill(Pid::from_raw(pid), Signal::SIGHUP)
                .map_err(|e| format!("cannot send SIGHUP to dnsmasq pid {pid}: {e}"))?;
        }
        for &pid in &pids {
            if !survived_reload(pid, Duration::from_secs(30)) {
                self.deaths.fetch_add(1, Ordering::Relaxed);
                tracing::error!(pid, "dnsmasq died after SIGHUP");
                return Err(format!("dnsmasq (pid {pid}) died after SIGHUP"));
            }
        }
        Ok(format!(
            "SIGHUP sent to pid {}",
            pids.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    fn version(&self) -> Option<Version> {
        let pid = *self.target.pids().ok()?.first()?;
        SignalReloader::version(self, pid)
    }

    fn build(&self) -> Option<Build> {
        let pid = *self.target.pids().ok()?.first()?;
        SignalReloader::build(self, pid)
    }

    fn started_at(&self) -> Option<std::time::SystemTime> {
        let pid = *self.target.pids().ok()?.first()?;
        process_start(pid)
    }

    fn dnsmasq(&self) -> Option<DnsmasqState> {
        let pid = self.target.pids().ok().and_then(|p| p.first().copied());
        Some(DnsmasqState {
            pid,
            version: pid.and_then(|p| self.version(p)).map(|v| v.to_string()),
            running: pid.is_some(),
            deaths_after_reload: self.deaths.load(Ordering::Relaxed),
            ..DnsmasqState::default()
        })
    }
}
