//! When reloads happen: which changes need one, coalescing, and a stall
//! budget.
//!
//! Every change that needs a reload takes a *ticket* (a sequence number).
//! Which changes need one is decided per change by the policy: with
//! [`Policy::Shadow`] (the default) the [`super::model`] of what dnsmasq
//! holds says whether dnsmasq already serves the change; with
//! [`Policy::Coalesce`] every replace and removal needs one (the behaviour
//! before the model existed, kept for comparison in the benchmark).
//!
//! The scheduler sends one reload once no new ticket has arrived for the
//! quiet period, or once the oldest pending ticket has waited the maximum
//! delay, whichever comes first — but never sooner than the *stall budget*
//! allows: each reload keeps dnsmasq from answering DHCP and DNS while it
//! re-reads every file (about a second at 10,000 files), so after a reload
//! the next one waits until dnsmasq has been busy at most
//! `budget` of the time (`stall × (1/budget − 1)` after the last one ended,
//! with a moving estimate of the stall). A reload covers every ticket issued
//! before it was sent. Waiters (`?wait=reload`) watch the highest ticket
//! covered, for at most the wait limit.
//!
//! Ghosts (records dnsmasq holds that no file has any more) cost dnsmasq
//! memory and keep addresses reserved; a *cleanup* reload clears them once
//! there are more than a threshold or the oldest is too old, after a quiet
//! moment.
//!
//! A failed reload (dnsmasq gone, refused on a crashing version, command
//! failed) leaves its tickets pending; it is retried with backoff.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::cost::{Churn, ChurnStats};
use super::model::{Model, ModelStats};
use super::Reloader;
use crate::store::{ChangePlan, Index, PendingChange, ReloadSink};

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
}

/// The outcome of one reload attempt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadRecord {
    /// When it finished (Unix milliseconds).
    pub at_unix_ms: u64,
    /// Whether it was delivered and dnsmasq survived.
    pub ok: bool,
    /// What was done, or why it failed.
    pub message: String,
    /// What caused it ("change", "external", "manual", "cleanup", "shutdown").
    pub reason: &'static str,
    /// How long the delivery and the survival check took: the stall.
    pub duration_ms: u64,
}

/// Progress of reloads, broadcast to waiters and status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// Highest ticket handed out.
    pub requested: u64,
    /// Highest ticket covered by a reload attempt (successful or not).
    pub attempted: u64,
    /// Highest ticket covered by a successful reload.
    pub delivered: u64,
    /// Successful reloads.
    pub ok_count: u64,
    /// Failed reloads.
    pub failed_count: u64,
    /// The last attempt.
    pub last: Option<ReloadRecord>,
}

impl Progress {
    /// True when some change still waits for a successful reload.
    pub fn pending(&self) -> bool {
        self.requested > self.delivered
    }
}

/// Why a `?wait=reload` did not see its reload delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    /// The covering reload was attempted and failed.
    #[error("the change is stored, but the reload failed: {0}")]
    Failed(String),
    /// No covering reload within the wait limit (the budget holds it back).
    #[error("{0}")]
    Deferred(String),
    /// The broker is stopping.
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// Reload cost figures for status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StallStats {
    /// The last reload's stall, in milliseconds.
    pub stall_ms_last: Option<u64>,
    /// The moving estimate used for spacing, in milliseconds.
    pub stall_ms_estimate: Option<u64>,
    /// Whether the estimate is still the start-up prediction from the file
    /// count (no reload timed yet).
    pub stall_estimate_is_prior: bool,
    /// Share of the last five minutes spent in reloads, in percent.
    pub budget_used_percent: f64,
    /// The budget, in percent.
    pub budget_percent: f64,
    /// How long until the budget allows the next reload, in milliseconds.
    pub next_allowed_in_ms: u64,
}

/// How far back the budget used is measured.
const BUDGET_WINDOW: Duration = Duration::from_secs(300);

struct Pending {
    requested: u64,
    first: Option<Instant>,
    last: Instant,
    risky: bool,
    reason: &'static str,
    /// An operator asked (`POST /v1/reload`): not held back by the budget.
    manual: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct Stall {
    last: Option<Duration>,
    estimate: Option<Duration>,
    /// The estimate is the start-up prediction, not a measurement yet.
    prior: bool,
    last_end: Option<Instant>,
    /// (end, stall) of recent reloads, for the budget used.
    recent: VecDeque<(Instant, Duration)>,
}

/// Coalesces reload requests and drives a [`Reloader`].
pub struct ReloadScheduler {
    reloader: Arc<dyn Reloader>,
    config: SchedulerConfig,
    /// A std mutex: never held across an `.await`.
    state: Mutex<Pending>,
    wake: Notify,
    progress: watch::Sender<Progress>,
    /// Held while a reload is delivered and dnsmasq re-reads the files; the
    /// store's writer holds it while it renames or removes files. Taken
    /// before `model`.
    reading: Arc<Mutex<()>>,
    model: Arc<Mutex<Model>>,
    stall: Mutex<Stall>,
    avoided: AtomicU64,
    /// When the store last committed a change.
    last_change: Mutex<Instant>,
    started: Instant,
    /// File names dnsmasq has seen, and the SIGHUP / restart cost model.
    churn: Mutex<Churn>,
    /// The reloader's start count last seen (a crash restart resets names).
    starts_seen: AtomicU64,
    churn_warned: std::sync::atomic::AtomicBool,
}

impl ReloadScheduler {
    /// A scheduler for `reloader` with the given quiet period and maximum
    /// delay, and the other settings at their defaults.
    pub fn new(
        reloader: Arc<dyn Reloader>,
        quiet: Duration,
        max_delay: Duration,
    ) -> Arc<ReloadScheduler> {
        Self::with_config(reloader, SchedulerConfig::new(quiet, max_delay))
    }

    /// A scheduler with every setting given.
    pub fn with_config(
        reloader: Arc<dyn Reloader>,
        config: SchedulerConfig,
    ) -> Arc<ReloadScheduler> {
        let now = Instant::now();
        Arc::new(ReloadScheduler {
            reloader,
            config,
            state: Mutex::new(Pending {
                requested: 0,
                first: None,
                last: now,
                risky: false,
                reason: "change",
                manual: false,
                failures: 0,
                retry_at: None,
            }),
            wake: Notify::new(),
            progress: watch::channel(Progress::default()).0,
            reading: Arc::new(Mutex::new(())),
            model: Arc::new(Mutex::new(Model::default())),
            stall: Mutex::new(Stall::default()),
            avoided: AtomicU64::new(0),
            last_change: Mutex::new(now),
            started: now,
            churn: Mutex::new(Churn::new([Vec::new(), Vec::new()], false)),
            starts_seen: AtomicU64::new(0),
            churn_warned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts counting the file names dnsmasq has seen from `names` (hosts,
    /// options): the directories' contents now. `exact` when dnsmasq started
    /// with exactly these (the broker started it).
    ///
    /// The stall budget then counts from now as if a reload had just ended,
    /// with a stall predicted from the file count: dnsmasq has just read
    /// every file (supervised), or may be serving a burst of changes the
    /// broker cannot see, and a broker restart must not buy a free reload.
    pub fn start_ledger(&self, names: [Vec<crate::entry::Name>; 2], exact: bool) {
        let churn = Churn::new(names, exact);
        let prior = churn.prior_stall();
        *self.churn.lock().unwrap_or_else(|p| p.into_inner()) = churn;
        self.starts_seen
            .store(self.reloader.starts(), Ordering::Relaxed);
        let mut st = self.stall.lock().unwrap_or_else(|p| p.into_inner());
        if st.estimate.is_none() {
            st.estimate = Some(prior);
            st.prior = true;
            st.last_end = Some(Instant::now());
        }
    }

    /// Names seen, the churn factor and the predicted costs.
    pub fn churn_stats(&self) -> ChurnStats {
        self.churn.lock().unwrap_or_else(|p| p.into_inner()).stats()
    }

    /// Whether the next reload would be a restart.
    fn restart_next(&self, stats: &ChurnStats) -> bool {
        self.reloader.can_restart()
            && match self.config.restart {
                RestartMode::Always => true,
                RestartMode::Never => false,
                RestartMode::Auto => stats.restart_is_cheaper(),
            }
    }

    /// The restart mode in force, and whether the next reload would be one.
    pub fn restart_plan(&self) -> (RestartMode, bool) {
        (self.config.restart, self.restart_next(&self.churn_stats()))
    }

    /// The reloader driven.
    pub fn reloader(&self) -> &Arc<dyn Reloader> {
        &self.reloader
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.config.policy
    }

    /// A snapshot of progress.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Ghosts and dirty names in dnsmasq's memory, as modelled.
    pub fn model_stats(&self) -> ModelStats {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).stats()
    }

    /// Changes served without the reload the coalescing policy would send.
    pub fn avoided(&self) -> u64 {
        self.avoided.load(Ordering::Relaxed)
    }

    /// Reload cost and budget figures.
    pub fn stall_stats(&self) -> StallStats {
        let now = Instant::now();
        let st = self.stall.lock().unwrap_or_else(|p| p.into_inner());
        let window = BUDGET_WINDOW
            .min(now.duration_since(self.started))
            .max(Duration::from_secs(1));
        let busy: Duration = st
            .recent
            .iter()
            .filter(|(end, _)| now.duration_since(*end) <= BUDGET_WINDOW)
            .map(|(_, d)| *d)
            .sum();
        StallStats {
            stall_ms_last: st.last.map(|d| d.as_millis() as u64),
            stall_ms_estimate: st.estimate.map(|d| d.as_millis() as u64),
            stall_estimate_is_prior: st.prior,
            budget_used_percent: (busy.as_secs_f64() / window.as_secs_f64() * 1000.0).round()
                / 10.0,
            budget_percent: self.config.budget * 100.0,
            next_allowed_in_ms: self
                .next_allowed(&st)
                .map(|t| t.saturating_duration_since(now).as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// Marks a reload pending; returns the ticket that a covering reload
    /// will satisfy.
    pub fn request(&self, reason: &'static str, risky: bool) -> u64 {
        let ticket = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.requested += 1;
            let now = Instant::now();
            s.first.get_or_insert(now);
            s.last = now;
            s.risky |= risky;
            s.reason = reason;
            s.manual |= reason == "manual";
            s.requested
        };
        self.progress.send_modify(|p| p.requested = ticket);
        self.wake.notify_one();
        ticket
    }

    /// Waits until a reload covering `ticket` was attempted; Ok if it was
    /// delivered and dnsmasq survived. Gives up after the wait limit.
    pub async fn wait(&self, ticket: u64) -> Result<ReloadRecord, WaitError> {
        let mut rx = self.progress.subscribe();
        let waited = tokio::time::timeout(
            self.config.wait_limit,
            rx.wait_for(|p| p.attempted >= ticket),
        )
        .await;
        let p = match waited {
            Err(_) => {
                let due = self
                    .due()
                    .map(|d| d.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(0);
                return Err(WaitError::Deferred(format!(
                    "the change is stored and will be served after the next reload, due in about {due} ms (reloads are spaced so dnsmasq is busy re-reading at most {}% of the time)",
                    self.config.budget * 100.0
                )));
            }
            Ok(Err(_)) => return Err(WaitError::ShuttingDown),
            Ok(Ok(p)) => p.clone(),
        };
        let last = p.last.unwrap_or_else(|| ReloadRecord {
            at_unix_ms: 0,
            ok: false,
            message: "no reload was attempted".into(),
            reason: "change",
            duration_ms: 0,
        });
        if p.delivered >= ticket {
            Ok(last)
        } else {
            Err(WaitError::Failed(last.message))
        }
    }

    /// The earliest time the budget allows the next reload.
    fn next_allowed(&self, st: &Stall) -> Option<Instant> {
        if self.config.policy != Policy::Shadow || self.config.budget >= 1.0 {
            return None;
        }
        let (end, stall) = (st.last_end?, st.estimate?);
        let budget = self.config.budget.max(0.001);
        Some(end + stall.mul_f64(1.0 / budget - 1.0))
    }

    /// When the pending reload is due, if one is pending.
    fn due(&self) -> Option<Instant> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let first = s.first?;
        let mut due = (s.last + self.config.quiet).min(first + self.config.max_delay);
        if let Some(r) = s.retry_at {
            due = due.max(r);
        }
        if !s.manual {
            let st = self.stall.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(allowed) = self.next_allowed(&st) {
                due = due.max(allowed);
            }
        }
        Some(due)
    }

    /// Asks for a cleanup reload when ghosts have piled up or aged, and
    /// nothing else is pending.
    fn check_cleanup(&self) {
        let c = &self.config;
        if self.progress().pending() || self.due().is_some() {
            return;
        }
        let stats = self.model_stats();
        let too_many = stats.ghosts > c.cleanup_ghosts;
        let too_old = stats.ghosts > 0
            && stats
                .oldest_ms
                .is_some_and(|ms| Duration::from_millis(ms) >= c.cleanup_max_age);
        let quiet = self
            .last_change
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= c.cleanup_quiet;
        if (too_many || too_old) && (quiet || stats.ghosts > 2 * c.cleanup_ghosts) {
            tracing::info!(
                ghosts = stats.ghosts,
                oldest_ms = stats.oldest_ms,
                "a cleanup reload is due: dnsmasq holds records no file has any more"
            );
            self.request("cleanup", false);
        }
    }

    /// Notices restarts made for other reasons (a crash), and says when
    /// name churn has made reloads expensive and this broker cannot restart
    /// dnsmasq itself.
    fn check_churn(&self) {
        let starts = self.reloader.starts();
        if self.starts_seen.swap(starts, Ordering::Relaxed) != starts {
            self.churn
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .restarted();
        }
        let stats = self.churn_stats();
        let m = crate::metrics::get();
        m.dnsmasq_names_seen
            .set((stats.names_seen[0] + stats.names_seen[1]) as i64);
        m.reload_churn_factor_percent
            .set((stats.factor * 100.0).round() as i64);
        m.restart_recommended
            .set(i64::from(stats.restart_is_cheaper()));
        let over = stats.factor > self.config.churn_warn_factor;
        let warned = self.churn_warned.swap(over, Ordering::Relaxed);
        if over && !warned {
            let how = if self.reloader.can_restart() {
                match self.config.restart {
                    RestartMode::Never => "restarts are off (--restart-instead-of-sighup never)",
                    _ => {
                        "the broker restarts it instead of a SIGHUP once that is predicted cheaper"
                    }
                }
            } else {
                "restart dnsmasq in a quiet moment to reset it (in Kubernetes: delete the pod, or `kubectl rollout restart`)"
            };
            tracing::warn!(
                factor = stats.factor,
                names_seen = stats.names_seen[0] + stats.names_seen[1],
                live_files = stats.live_files[0] + stats.live_files[1],
                predicted_sighup_ms = stats.predicted_sighup_ms,
                "dnsmasq remembers every file name it has seen since it started, so a reload now costs {}× what it would with no name churn; {how}",
                stats.factor
            );
        }
    }

    /// Runs until `shutdown` resolves, then sends any pending reload.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self.due();
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => continue,
                _ = tick.tick() => {
                    self.check_cleanup();
                    self.check_churn();
                }
                _ = sleep_until(due) => {
                    if self.due().is_some_and(|d| d <= Instant::now()) {
                        self.clone().send_now().await;
                    }
                }
            }
        }
        if self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first
            .is_some()
        {
            tracing::info!("sending the pending reload before shutting down");
            self.state.lock().unwrap_or_else(|p| p.into_inner()).reason = "shutdown";
            self.clone().send_now().await;
        }
    }

    /// Sends one reload covering every ticket issued so far.
    async fn send_now(self: Arc<Self>) {
        let (target, risky, reason) = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.first = None;
            s.retry_at = None;
            s.manual = false;
            (s.requested, std::mem::take(&mut s.risky), s.reason)
        };
        let started = Instant::now();
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _files_still = this.reading.lock().unwrap_or_else(|p| p.into_inner());
            let restart = this.restart_next(&this.churn_stats());
            let starts = this.reloader.starts();
            let started = std::time::Instant::now();
            let result = if restart {
                this.reloader.restart()
            } else {
                this.reloader.reload(risky)
            };
            let stall = started.elapsed();
            if result.is_ok() {
                // dnsmasq re-read the directories: it holds exactly the files.
                this.model
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .reloaded();
                let mut churn = this.churn.lock().unwrap_or_else(|p| p.into_inner());
                // A restart (asked for, or instead of a SIGHUP that 2.90
                // would not survive) also forgets every name.
                if this.reloader.starts() != starts {
                    churn.observe_restart(stall);
                    churn.restarted();
                    this.starts_seen
                        .store(this.reloader.starts(), Ordering::Relaxed);
                } else {
                    churn.observe_sighup(stall);
                }
            }
            result.map(|m| (m, stall))
        })
        .await
        .unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
        let record = ReloadRecord {
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            ok: result.is_ok(),
            message: match &result {
                Ok((m, _)) | Err(m) => m.clone(),
            },
            reason,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let metrics = crate::metrics::get();
        metrics
            .reloads
            .get_or_create(&crate::metrics::ReloadLabels {
                reason: reason.to_string(),
                result: if record.ok { "ok" } else { "failed" }.to_string(),
            })
            .inc();
        if let Ok((_, stall)) = &result {
            self.note_stall(*stall);
        }
        if record.ok {
            tracing::info!(
                covered = target,
                reason,
                duration_ms = record.duration_ms,
                "reload: {}",
                record.message
            );
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failures = 0;
        } else {
            tracing::error!(
                covered = target,
                reason,
                "reload failed: {}",
                record.message
            );
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.failures += 1;
            s.risky |= risky;
            let backoff = Duration::from_millis(500) * 2u32.saturating_pow(s.failures.min(6));
            let now = Instant::now();
            s.first.get_or_insert(now);
            s.retry_at = Some(now + backoff.min(Duration::from_secs(30)));
        }
        metrics.ghosts.set(self.model_stats().ghosts as i64);
        self.progress.send_modify(|p| {
            p.attempted = p.attempted.max(target);
            if record.ok {
                p.delivered = p.delivered.max(target);
                p.ok_count += 1;
            } else {
                p.failed_count += 1;
            }
            p.last = Some(record);
        });
    }

    /// Folds a measured stall into the estimate that spaces reloads.
    fn note_stall(&self, stall: Duration) {
        let now = Instant::now();
        let mut st = self.stall.lock().unwrap_or_else(|p| p.into_inner());
        st.last = Some(stall);
        // A moving estimate that follows growth quickly and decay slowly:
        // underestimating the stall would overspend the budget.
        st.estimate = Some(match st.estimate {
            _ if st.prior => stall,
            None => stall,
            Some(e) if stall > e => e.mul_f64(0.3) + stall.mul_f64(0.7),
            Some(e) => e.mul_f64(0.8) + stall.mul_f64(0.2),
        });
        st.prior = false;
        st.last_end = Some(now);
        st.recent.push_back((now, stall));
        while st
            .recent
            .front()
            .is_some_and(|(end, _)| now.duration_since(*end) > BUDGET_WINDOW)
        {
            st.recent.pop_front();
        }
        let metrics = crate::metrics::get();
        metrics.reload_stall_seconds.observe(stall.as_secs_f64());
        metrics
            .reload_stall_estimate_ms
            .set(st.estimate.map_or(0, |d| d.as_millis() as i64));
        drop(st);
        metrics
            .reload_budget_used_percent
            .set(self.stall_stats().budget_used_percent.round() as i64);
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl ReloadSink for ReloadScheduler {
    fn reload_needed(&self, reason: &'static str, risky: bool) -> u64 {
        *self.last_change.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.request(reason, risky)
    }

    fn local_reader(&self) -> bool {
        // `none`: no dnsmasq of this broker's reads the directories.
        self.reloader.method() != "none"
    }

    fn hold_reloads(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        Some(self.reading.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn plan(&self, index: &Index, change: &PendingChange<'_>) -> ChangePlan {
        match self.config.policy {
            Policy::Coalesce => change.coalesce_plan(),
            Policy::Shadow => self
                .model
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .plan(index, change),
        }
    }

    fn placed(&self, index: &Index, change: &PendingChange<'_>, plan: &ChangePlan) {
        *self.last_change.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        {
            let mut churn = self.churn.lock().unwrap_or_else(|p| p.into_inner());
            match change.new {
                Some(_) => churn.saw(change.kind, change.name),
                None => churn.gone(change.kind, change.name),
            }
        }
        if self.config.policy == Policy::Coalesce {
            return;
        }
        let would_have_reloaded = change.external || change.new.is_none() || change.replaces;
        if would_have_reloaded && !plan.needs_reload {
            self.avoided.fetch_add(1, Ordering::Relaxed);
            crate::metrics::get().reloads_avoided.inc();
        }
        let mut model = self.model.lock().unwrap_or_else(|p| p.into_inner());
        model.record(index, change, plan);
        crate::metrics::get()
            .ghosts
            .set(model.stats().ghosts as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counter(AtomicU64);
    impl Reloader for Counter {
        fn method(&self) -> &'static str {
            "test"
        }
        fn reload(&self, _risky: bool) -> Result<String, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok("counted".into())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn many_requests_in_the_quiet_period_make_one_reload() {
        let counter = Arc::new(Counter(AtomicU64::new(0)));
        let s = ReloadScheduler::new(
            counter.clone(),
            Duration::from_millis(100),
            Duration::from_secs(1),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(s.clone().run(async {
            let _ = stopped.await;
        }));
        let mut last = 0;
        for _ in 0..50 {
            last = s.request("change", false);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.wait(last).await.unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        let _ = stop.send(());
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn max_delay_bounds_a_steady_stream() {
        let counter = Arc::new(Counter(AtomicU64::new(0)));
        let s = ReloadScheduler::new(
            counter.clone(),
            Duration::from_millis(100),
            Duration::from_millis(500),
        );
        tokio::spawn(s.clone().run(std::future::pending()));
        // A request every 50 ms for 2 s never leaves a quiet period.
        for _ in 0..40 {
            s.request("change", false);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let n = counter.0.load(Ordering::SeqCst);
        assert!(
            (3..=5).contains(&n),
            "{n} reloads in 2 s with a 500 ms max delay"
        );
    }

    /// A reloader whose reload keeps "dnsmasq" busy for a known time, and
    /// which records when each reload started and ended.
    struct Slow {
        busy: Duration,
        spans: Mutex<Vec<(std::time::Instant, std::time::Instant)>>,
    }
    impl Reloader for Slow {
        fn method(&self) -> &'static str {
            "test"
        }
        fn reload(&self, _risky: bool) -> Result<String, String> {
            let start = std::time::Instant::now();
            std::thread::sleep(self.busy);
            self.spans
                .lock()
                .unwrap()
                .push((start, std::time::Instant::now()));
            Ok("slept".into())
        }
    }

    /// Drives a steady stream of changes needing a reload for `run` and
    /// returns the reloads' spans.
    async fn stream(
        policy: Policy,
        budget: f64,
        run: Duration,
    ) -> Vec<(std::time::Instant, std::time::Instant)> {
        let slow = Arc::new(Slow {
            busy: Duration::from_millis(30),
            spans: Mutex::new(Vec::new()),
        });
        let mut config = SchedulerConfig::new(Duration::from_millis(5), Duration::from_millis(10));
        config.policy = policy;
        config.budget = budget;
        let s = ReloadScheduler::with_config(slow.clone(), config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(s.clone().run(async {
            let _ = stopped.await;
        }));
        let end = Instant::now() + run;
        while Instant::now() < end {
            s.request("change", false);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop.send(());
        task.await.unwrap();
        let spans = slow.spans.lock().unwrap().clone();
        spans
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_budget_spaces_reloads_by_their_measured_stall() {
        // Budget 25%: after a reload busy for S, the next one waits 3 S.
        let spans = stream(Policy::Shadow, 0.25, Duration::from_millis(1500)).await;
        assert!(spans.len() >= 3, "only {} reloads", spans.len());
        let shortest = spans.iter().map(|(a, b)| *b - *a).min().unwrap();
        // The last one is the flush at shutdown, which waits for nothing.
        for pair in spans[..spans.len() - 1].windows(2) {
            let gap = pair[1].0 - pair[0].1;
            assert!(
                gap >= shortest.mul_f64(3.0 * 0.95),
                "a reload started {gap:?} after the previous one ended; the budget asks for at least 3 × {shortest:?}"
            );
        }
        // Without a budget the same stream reloads back to back: the
        // spacing above is the budget's doing.
        let unspaced = stream(Policy::Coalesce, 0.25, Duration::from_millis(1500)).await;
        assert!(
            unspaced.len() > spans.len() * 2,
            "{} reloads without a budget, {} with",
            unspaced.len(),
            spans.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pending_reload_is_sent_at_shutdown() {
        let counter = Arc::new(Counter(AtomicU64::new(0)));
        let s = ReloadScheduler::new(
            counter.clone(),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        s.request("change", false);
        s.clone().run(async {}).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(!s.progress().pending());
    }
}
