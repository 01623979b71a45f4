//! Method `supervise`: dnsmasq runs as the broker's child.
//!
//! The simplest Kubernetes layout (one container) and the most robust: the
//! broker knows the pid exactly, sees every exit, restarts dnsmasq with
//! backoff when it dies, and forwards SIGTERM when it stops. On versions that
//! crash on SIGHUP with `set:` tags loaded (2.90), a reload is done by
//! restarting dnsmasq instead; on any version, a dnsmasq found dead after a
//! SIGHUP is restarted at once, which loads the new entries anyway.
//!
//! **As PID 1** (understack's layout: the container's entry point execs the
//! broker), every process of the container whose parent dies is
//! re-parented to the broker, and only it can reap them: dnsmasq's forked
//! TCP DNS workers when dnsmasq dies, whatever a `kubectl exec` session
//! leaves behind. Unreaped, they stay zombies until the container
//! restarts. So when its pid is 1 the monitor loop also reaps every exited
//! child that is not the supervised dnsmasq (`reap_orphans`), and never
//! dnsmasq itself: a reaper that took dnsmasq's exit status (`waitpid(-1)`)
//! would leave `Child::try_wait` with nothing to report, and a dead
//! dnsmasq would never be restarted. It peeks with `waitid(P_ALL, WEXITED
//! | WNOHANG | WNOWAIT)` and reaps by pid only what is not dnsmasq; when
//! the exited child it sees first is dnsmasq, it finds the others in
//! `/proc` (zombies whose parent is the broker). It runs holding the lock
//! under which dnsmasq is spawned and waited for, so it never sees a
//! dnsmasq whose pid is not yet recorded. The broker starts no other
//! process once the monitor runs (the `dnsmasq --version`/`--help` of
//! [`dnsmasq::build_of`] run before it); a child added later must be
//! spawned and waited for under that lock too, or this reaper may take its
//! status. With the other reload methods the broker has no children to
//! protect but does not reap either: PID 1 with `--reload pidfile|process`
//! is not a layout the project ships.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::dnsmasq::{self, Build, Rules, Version};
use super::reloader::{DnsmasqState, Reloader};
use super::signal::survived_reload;
use crate::sync::LockOrRecover;

/// How long dnsmasq must run before a crash no longer counts towards backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

struct Child_ {
    child: Child,
    started: Instant,
}

#[derive(Default)]
struct Counters {
    restarts: u64,
    last_exit: Option<String>,
    deaths_after_reload: u64,
}

struct Inner {
    /// The dnsmasq command line, with a foreground flag ensured.
    argv: Vec<String>,
    /// What `argv[0]` is (learned once: the binary does not change while
    /// the broker runs).
    build: Option<Build>,
    /// The running child. A std mutex, only ever locked on blocking threads.
    child: Mutex<Option<Child_>>,
    counters: Mutex<Counters>,
    stopping: AtomicBool,
}

/// Runs and watches a dnsmasq child.
pub struct Supervisor {
    inner: Arc<Inner>,
}

fn foreground(mut argv: Vec<String>) -> Vec<String> {
    let fg = ["-k", "--keep-in-foreground", "-d", "--no-daemon"];
    if !argv.iter().skip(1).any(|a| fg.contains(&a.as_str())) {
        argv.insert(1, "--keep-in-foreground".into());
    }
    argv
}

impl Inner {
    fn spawn(&self) -> Result<Child_, String> {
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .spawn()
            .map_err(|e| format!("cannot start dnsmasq `{}`: {e}", self.argv.join(" ")))?;
        tracing::info!(pid = child.id(), "started dnsmasq");
        Ok(Child_ {
            child,
            started: Instant::now(),
        })
    }

    fn pid(&self) -> Option<i32> {
        self.child
            .lock_or_recover()
            .as_ref()
            .map(|c| c.child.id() as i32)
    }

    /// Stops the child (SIGTERM, then SIGKILL after 5 s) and reaps it.
    fn stop(c: &mut Child_) -> String {
        let pid = Pid::from_raw(c.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match c.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.child.kill();
                    return c
                        .child
                        .wait()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| e.to_string());
                }
            }
        }
    }

    /// Replaces the child with a fresh one (reads every file anew).
    fn restart(&self, why: &str) -> Result<i32, String> {
        let mut guard = self.child.lock_or_recover();
        if let Some(mut old) = guard.take() {
            let status = Inner::stop(&mut old);
            self.counters.lock_or_recover().last_exit = Some(status);
        }
        let new = self.spawn()?;
        let pid = new.child.id() as i32;
        *guard = Some(new);
        self.counters.lock_or_recover().restarts += 1;
        tracing::warn!(pid, "restarted dnsmasq: {why}");
        Ok(pid)
    }

    /// The monitor loop: restarts dnsmasq when it exits on its own, and
    /// (as PID 1) reaps orphans.
    fn monitor(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        let pid1 = std::process::id() == 1;
        if pid1 {
            tracing::info!(
                "the broker is PID 1: it reaps the orphaned processes re-parented to it"
            );
        }
        while !self.stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            let exited = {
                let mut guard = self.child.lock_or_recover();
                let exited = match guard.as_mut().map(|c| (c.child.try_wait(), c.started)) {
                    Some((Ok(Some(status)), started)) => {
                        *guard = None;
                        Some((status.to_string(), started.elapsed()))
                    }
                    // Only if something else reaped it (ECHILD): it is gone
                    // all the same, and must be restarted.
                    Some((Err(e), started)) => {
                        *guard = None;
                        Some((format!("exit status lost ({e})"), started.elapsed()))
                    }
                    _ => None,
                };
                if pid1 {
                    let own = guard.as_ref().map(|c| c.child.id() as i32);
                    for (pid, status) in reap_orphans(own) {
                        tracing::info!(pid, %status, "reaped an orphaned process");
                    }
                }
                exited
            };
            let Some((status, uptime)) = exited else {
                continue;
            };
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            tracing::error!(%status, "dnsmasq exited unexpectedly; restarting in {backoff:?}");
            self.counters.lock_or_recover().last_exit = Some(status);
            if uptime > STABLE_AFTER {
                backoff = Duration::from_millis(100);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(10));
            if let Err(e) = self.restart("it had exited") {
                tracing::error!("{e}");
            }
        }
    }
}

/// Reaps the exited children of this process other than `own` (the
/// supervised dnsmasq's pid, which `Child::try_wait` reaps) and returns
/// their pids and how they ended. For PID 1, whose exited children other
/// than dnsmasq are orphans it inherited. Call it holding the child lock
/// (see the module docs: no child of the broker's own may exit unrecorded
/// meanwhile).
fn reap_orphans(own: Option<i32>) -> Vec<(i32, String)> {
    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    let mut reaped = Vec::new();
    // The first exited child, left waitable; nothing exited (`StillAlive`)
    // or no children at all (ECHILD): done.
    while let Some(pid) = waitid(Id::All, peek).ok().and_then(|s| s.pid()) {
        if Some(pid.as_raw()) == own {
            // dnsmasq exited: its status is the monitor's. waitid shows
            // only the first exited child, so the others are looked up.
            for z in zombie_children().into_iter().filter(|z| Some(*z) != own) {
                reaped.extend(reap(z).map(|status| (z, status)));
            }
            break;
        }
        match reap(pid.as_raw()) {
            Some(status) => reaped.push((pid.as_raw(), status)),
            None => break,
        }
    }
    reaped
}

/// Reaps the exited child `pid`; how it ended (`None`: nothing reaped).
fn reap(pid: i32) -> Option<String> {
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status: {code}")),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("signal: {} ({sig})", sig as i32)),
        _ => None,
    }
}

/// The pids of this process's children that exited and were not reaped
/// (state `Z` in `/proc/PID/stat`, parent this process).
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // After the parenthesised command name: state, then ppid.
                let mut f = stat
                    .rsplit_once(')')
                    .map_or("", |(_, r)| r)
                    .split_whitespace();
                f.next() == Some("Z") && f.next() == Some(me.as_str())
            })
        })
        .collect()
}

impl Supervisor {
    /// Starts dnsmasq and its monitor; fails if it exits within 300 ms.
    pub fn start(argv: Vec<String>) -> Result<Arc<dyn Reloader>, String> {
        let argv = foreground(argv);
        let build = dnsmasq::build_of(std::path::Path::new(&argv[0]), &argv);
        match build {
            Some(b) if Rules::for_build(Some(b)).crashes_on_tagged_sighup() => {
                tracing::warn!("{}", dnsmasq::crash_warning(b.version, true))
            }
            Some(b) => tracing::info!(
                version = %b.version,
                conf_poll = b.conf_poll,
                "supervising dnsmasq {b}"
            ),
            None => tracing::warn!(
                "could not learn the version of `{}` (`{0} --version` gave no banner)",
                argv[0]
            ),
        }
        let inner = Arc::new(Inner {
            argv,
            build,
            child: Mutex::new(None),
            counters: Mutex::new(Counters::default()),
            stopping: AtomicBool::new(false),
        });
        let mut first = inner.spawn()?;
        std::thread::sleep(Duration::from_millis(300));
        if let Ok(Some(status)) = first.child.try_wait() {
            return Err(format!(
                "dnsmasq exited at start-up ({status}); its messages are above"
            ));
        }
        *inner.child.lock_or_recover() = Some(first);
        let monitor = inner.clone();
        std::thread::Builder::new()
            .name("dnsmasq-monitor".into())
            .spawn(move || monitor.monitor())
            .map_err(|e| format!("cannot start the dnsmasq monitor thread: {e}"))?;
        Ok(Arc::new(Supervisor { inner }))
    }
}

impl Reloader for Supervisor {
    fn method(&self) -> &'static str {
        "supervise"
    }

    fn reload(&self, risky: bool) -> Result<String, String> {
        let inner = &self.inner;
        if risky && Rules::for_build(inner.build).crashes_on_tagged_sighup() {
            let v = inner
                .build
                .map_or("of an unknown version".into(), |b| b.version.to_string());
            let pid = inner.restart(&format!(
                "dnsmasq {v} would crash on SIGHUP with `set:` tags loaded"
            ))?;
            return Ok(format!(
                "restarted dnsmasq {v} instead of SIGHUP (new pid {pid})"
            ));
        }
        let pid = match inner.pid() {
            Some(p) => p,
            None => {
                let pid = inner.restart("it was not running when a reload was due")?;
                return Ok(format!("dnsmasq was not running; started it (pid {pid})"));
            }
        };
        kill(Pid::from_raw(pid), Signal::SIGHUP)
            .map_err(|e| format!("cannot send SIGHUP to dnsmasq pid {pid}: {e}"))?;
        if survived_reload(pid, Duration::from_secs(30)) {
            return Ok(format!("SIGHUP sent to pid {pid}"));
        }
        inner.counters.lock_or_recover().deaths_after_reload += 1;
        tracing::error!(pid, "dnsmasq died after SIGHUP; restarting it now");
        let new = inner.restart("it died after SIGHUP")?;
        Ok(format!("dnsmasq (pid {pid}) died after SIGHUP and was restarted (pid {new}), which loads every entry"))
    }

    fn version(&self) -> Option<Version> {
        self.inner.build.map(|b| b.version)
    }

    fn build(&self) -> Option<Build> {
        self.inner.build
    }

    fn can_restart(&self) -> bool {
        true
    }

    fn restart(&self) -> Result<String, String> {
        let pid = self.inner.restart(
            "a restart costs less than a SIGHUP: dnsmasq remembers every file name it has seen",
        )?;
        // Until it sleeps in its event loop it is reading files, not serving.
        if survived_reload(pid, Duration::from_secs(120)) {
            Ok(format!(
                "restarted dnsmasq (new pid {pid}) instead of SIGHUP, which cost more with this many file names seen"
            ))
        } else {
            Err(format!(
                "dnsmasq (pid {pid}) exited right after its restart"
            ))
        }
    }

    fn starts(&self) -> u64 {
        self.inner.counters.lock_or_recover().restarts
    }

    fn dnsmasq(&self) -> Option<DnsmasqState> {
        let pid = self.inner.pid();
        let c = self.inner.counters.lock_or_recover();
        Some(DnsmasqState {
            pid,
            version: self.inner.build.map(|b| b.version.to_string()),
            running: pid.is_some_and(super::signal::is_running),
            restarts: c.restarts,
            last_exit: c.last_exit.clone(),
            deaths_after_reload: c.deaths_after_reload,
        })
    }

    fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let mut guard = self.inner.child.lock_or_recover();
        if let Some(mut c) = guard.take() {
            let status = Inner::stop(&mut c);
            tracing::info!(%status, "stopped dnsmasq");
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for dnsmasq: `--version` prints a 2.93 banner, `--help`
    /// the option list (with `--conf-poll` when `patched`), anything else
    /// runs until killed, as `dnsmasq --keep-in-foreground` does.
    fn fake_dnsmasq(dir: &std::path::Path, patched: bool) -> String {
        let path = dir.join(if patched {
            "dnsmasq-patched"
        } else {
            "dnsmasq"
        });
        let extra = if patched {
            "    --conf-poll                   Poll the dynamic directories.\n"
        } else {
            ""
        };
        let help = dir.join(format!("help-{patched}"));
        std::fs::write(
            &help,
            format!(
                "Usage: dnsmasq [options]\n\nValid options are:\n\
                 -7, --conf-dir=<path>          Read configuration from a directory.\n{extra}"
            ),
        )
        .unwrap();
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in\n\
             --version) echo 'Dnsmasq version 2.93  Copyright (c) 2000-2025 Simon Kelley'; exit 0 ;;\n\
             --help) exec cat '{}' ;;\nesac\nexec sleep 600\n",
            help.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    /// Set in the process that [`reaping_never_takes_the_supervised_status`]
    /// runs itself in.
    const ALONE: &str = "HOSTSDIR_BROKER_REAP_TEST_ALONE";

    /// Waits (up to 10 s: a `sh -c exit` on a loaded machine) until every
    /// child in `pids` has exited unreaped.
    fn wait_zombies(pids: &[i32]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids.iter().all(|p| zombie_children().contains(p)) {
            assert!(Instant::now() < deadline, "{pids:?} did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sh(script: &str) -> Child {
        Command::new("sh").args(["-c", script]).spawn().unwrap()
    }

    /// The reaper takes every exited child but the supervised one, whose
    /// status stays for `Child::try_wait`, whether it exited first (the
    /// others are then found in /proc) or last.
    ///
    /// `reap_orphans` waits for *any* child, and other tests of this binary
    /// spawn children of their own: so the test runs itself again, alone,
    /// in a process of its own.
    #[test]
    fn reaping_never_takes_the_supervised_status() {
        if std::env::var_os(ALONE).is_none() {
            let name = "reload::supervise::tests::reaping_never_takes_the_supervised_status";
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        // The supervised child exits first: it is what waitid shows.
        let mut own = sh("exit 7");
        let own_pid = own.id() as i32;
        wait_zombies(&[own_pid]);
        // Their `Child`s are dropped unwaited: reaping them is the point.
        let other_pids: Vec<i32> = [sh("exit 3"), sh("kill -9 $$")]
            .iter()
            .map(|c| c.id() as i32)
            .collect();
        wait_zombies(&other_pids);
        let mut reaped = reap_orphans(Some(own_pid));
        reaped.sort();
        assert_eq!(
            reaped,
            vec![
                (other_pids[0], "exit status: 3".to_owned()),
                (other_pids[1], "signal: 9 (SIGKILL)".to_owned()),
            ]
        );
        assert_eq!(zombie_children(), vec![own_pid]);
        assert_eq!(own.try_wait().unwrap().map(|s| s.code()), Some(Some(7)));

        // The supervised child exits last.
        let other_pid = sh("exit 4").id() as i32;
        let mut own = sh("exit 5");
        let own_pid = own.id() as i32;
        wait_zombies(&[other_pid, own_pid]);
        assert_eq!(
            reap_orphans(Some(own_pid)),
            vec![(other_pid, "exit status: 4".to_owned())]
        );
        assert_eq!(own.try_wait().unwrap().map(|s| s.code()), Some(Some(5)));
        // Nothing left: no children at all.
        assert_eq!(reap_orphans(None), vec![]);
        assert!(zombie_children().is_empty());
    }

    /// The supervisor learns the build of the binary it runs, from its
    /// `--help` or from its command line, and the rules follow it.
    #[test]
    fn the_supervised_build_is_learned_with_its_patch() {
        let dir = tempfile::tempdir().unwrap();
        for (bin, flag, conf_poll, set) in [
            (fake_dnsmasq(dir.path(), true), None, true, "2.93+conf-poll"),
            (fake_dnsmasq(dir.path(), false), None, false, "2.93"),
            (
                fake_dnsmasq(dir.path(), false),
                Some("--conf-poll"),
                true,
                "2.93+conf-poll",
            ),
        ] {
            let mut argv = vec![bin.clone(), "--no-hosts".to_owned()];
            argv.extend(flag.map(str::to_owned));
            let s = Supervisor::start(argv).unwrap();
            let build = s.build();
            let state = s.dnsmasq().unwrap();
            s.shutdown();
            assert_eq!(
                build,
                Some(Build {
                    version: Version(2, 93),
                    conf_poll
                }),
                "{bin} {flag:?}"
            );
            assert_eq!(s.version(), Some(Version(2, 93)));
            assert_eq!(Rules::for_build(build).set.name(), set);
            assert_eq!(state.version.as_deref(), Some("2.93"));
            assert!(state.running, "{state:?}");
        }
    }
}
