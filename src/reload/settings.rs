//! The scheduler's settings: which changes need a reload ([`Policy`]), when a
//! supervised dnsmasq is restarted instead of signalled ([`RestartMode`]),
//! and the timing knobs ([`SchedulerConfig`]). Plain values, set once from
//! the command line (`src/config.rs`).

use std::time::Duration;

use serde::Serialize;

/// Which changes need a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Only what dnsmasq does not already serve (see `reload::model`), within
    /// the stall budget.
    Shadow,
    /// Every replace and removal, coalesced, no budget (the old policy).
    Coalesce,
}

/// When a supervised dnsmasq is restarted instead of signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RestartMode {
    /// When the cost model predicts a restart costs clearly less than a SIGHUP.
    Auto,
    /// Never (only to survive dnsmasq 2.90's SIGHUP crash).
    Never,
    /// Every reload is a restart.
    Always,
}

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// A pending reload is sent once no new change came for this long…
    pub quiet: Duration,
    /// …or at the latest this long after the first change it covers.
    pub max_delay: Duration,
    /// Which changes need a reload.
    pub policy: Policy,
    /// Largest share of time dnsmasq may spend in reloads (0–1]; 1 turns
    /// spacing off. Only with [`Policy::Shadow`].
    pub budget: f64,
    /// A cleanup reload is due once this many ghosts are held…
    pub cleanup_ghosts: usize,
    /// …or once the oldest is this old…
    pub cleanup_max_age: Duration,
    /// …and no change came for this long (or twice the ghost threshold).
    pub cleanup_quiet: Duration,
    /// Longest a `?wait=reload` waits before answering that the change is
    /// stored and will be served later.
    pub wait_limit: Duration,
    /// When a supervised dnsmasq is restarted instead of signalled.
    pub restart: RestartMode,
    /// Warn once a SIGHUP costs this many times its no-churn cost.
    pub churn_warn_factor: f64,
}

impl SchedulerConfig {
    /// The defaults of `serve`, with the given coalescing periods.
    pub fn new(quiet: Duration, max_delay: Duration) -> SchedulerConfig {
        SchedulerConfig {
            quiet,
            max_delay: max_delay.max(quiet),
            policy: Policy::Shadow,
            budget: 0.05,
            cleanup_ghosts: 1000,
            cleanup_max_age: Duration::from_secs(1800),
            cleanup_quiet: Duration::from_secs(5),
            wait_limit: Duration::from_secs(59),
            restart: RestartMode::Auto,
            churn_warn_factor: 2.0,
        }
    }

    /// Whether the stall budget spaces reloads at all.
    pub fn budgeted(&self) -> bool {
        self.policy == Policy::Shadow && self.budget < 1.0
    }
}
