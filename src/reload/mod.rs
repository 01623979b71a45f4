//! Reloading dnsmasq: *whether* a change needs a reload ([`model`] of what
//! dnsmasq holds, [`shadow`] rules), *when* ([`scheduler`]: coalescing and
//! the stall budget) and *how* it is delivered ([`Reloader`]
//! implementations).
//!
//! dnsmasq reads new files by itself (inotify) but keeps serving deleted or
//! replaced entries until SIGHUP, and a SIGHUP re-reads everything while DHCP
//! and DNS wait — about a second at 10k files, growing with the square of
//! the file count. Most changes need none: a new record read through inotify
//! is prepended and hides the old one whenever the shadowing rules hold. The
//! rest mark a reload pending; one reload goes out after a quiet period (or
//! a maximum delay, or later when the stall budget says so), and it covers
//! everything pending when it was sent.
//!
//! dnsmasq 2.90 crashes on SIGHUP once a host with a `set:` tag has done a
//! DHCP exchange (fixed in 2.91). Reloaders know the version they signal
//! ([`dnsmasq`]) and refuse (or, when supervising, restart instead of
//! signalling) when the loaded config makes the signal fatal.

mod command;
pub mod cost;
pub mod dnsmasq;
pub mod model;
pub mod scheduler;
pub mod shadow;
mod signal;
pub mod supervise;

use serde::Serialize;

pub use command::CommandReloader;
pub use scheduler::{
    Policy, Progress, ReloadRecord, ReloadScheduler, RestartMode, SchedulerConfig, StallStats,
    WaitError,
};
pub use signal::{SignalReloader, Target};

/// What is known about the dnsmasq process being reloaded.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DnsmasqState {
    /// Its pid, when known.
    pub pid: Option<i32>,
    /// Its version (`2.90`), when known.
    pub version: Option<String>,
    /// Whether it was running when last checked.
    pub running: bool,
    /// Times it was restarted by the broker (supervise mode).
    pub restarts: u64,
    /// How it last exited, when supervised.
    pub last_exit: Option<String>,
    /// Times it was found dead right after a reload signal.
    pub deaths_after_reload: u64,
}

/// Delivers one reload. Implementations block (signals, child processes), so
/// the scheduler calls them from a blocking thread.
pub trait Reloader: Send + Sync {
    /// The method's name as given to `--reload`.
    fn method(&self) -> &'static str;

    /// Delivers a reload and checks that dnsmasq survived it. `risky` is true
    /// when dnsmasq's loaded config holds hosts with `set:` tags. Returns a
    /// short description of what was done.
    fn reload(&self, risky: bool) -> Result<String, String>;

    /// What is known about dnsmasq now (`None` when there is no dnsmasq to
    /// speak of, as with method `none`).
    fn dnsmasq(&self) -> Option<DnsmasqState> {
        None
    }

    /// Whether [`Reloader::restart`] is available (a supervised dnsmasq).
    fn can_restart(&self) -> bool {
        false
    }

    /// Restarts dnsmasq instead of signalling it (it then reads every file
    /// and forgets every name it saw), and waits until it serves again.
    fn restart(&self) -> Result<String, String> {
        Err(format!(
            "reload method `{}` cannot restart dnsmasq",
            self.method()
        ))
    }

    /// How many times dnsmasq was (re)started by this reloader, so a
    /// restart made for another reason (a crash) is noticed.
    fn starts(&self) -> u64 {
        0
    }

    /// When the dnsmasq being reloaded started, where that can be known for
    /// a dnsmasq this broker did not start (`None` otherwise).
    fn started_at(&self) -> Option<std::time::SystemTime> {
        None
    }

    /// Called once when the broker stops (a supervised dnsmasq is stopped).
    fn shutdown(&self) {}
}

/// Method `none`: nothing to signal (a broker run without dnsmasq, or where
/// something else reloads it). Reloads "succeed" as no-ops and say so.
pub struct NoReload;

impl Reloader for NoReload {
    fn method(&self) -> &'static str {
        "none"
    }

    fn reload(&self, _risky: bool) -> Result<String, String> {
        tracing::info!("a reload is due, but the reload method is `none`: dnsmasq keeps serving removed or replaced entries until it is reloaded");
        Ok("reload method `none`: nothing was signalled".into())
    }
}
