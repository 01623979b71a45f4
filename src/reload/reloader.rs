//! What the scheduler drives: the [`Reloader`] trait (one per `--reload`
//! method), what is known about the dnsmasq behind it ([`DnsmasqState`]),
//! and [`NoReload`] for a broker without one.

use serde::Serialize;

use super::dnsmasq::{Build, Version};

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

    /// The version of the dnsmasq reloaded, when it can be learned (it
    /// picks the row of `dnsmasq::RULE_SETS` in force). May block briefly
    /// (it can run `dnsmasq --version`).
    fn version(&self) -> Option<Version> {
        None
    }

    /// The build of the dnsmasq reloaded: its version and the patches the
    /// rules know of (understack's `--conf-poll`). By default a stock build
    /// of [`Reloader::version`]. May block briefly (it can run `dnsmasq
    /// --help`).
    fn build(&self) -> Option<Build> {
        self.version().map(Build::stock)
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
