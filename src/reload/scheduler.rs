//! When reloads happen: which changes need one, coalescing, and delivery.
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
//! delay, whichever comes first — but never sooner than the stall
//! [`super::budget`] allows (an operator's `POST /v1/reload` excepted). A
//! reload covers every ticket issued before it was sent. Waiters
//! (`?wait=reload`) watch the highest ticket covered, for at most the wait
//! limit. Whether a reload is a SIGHUP or a restart of a supervised dnsmasq
//! is the [`super::cost`] model's call.
//!
//! Sending is two steps: *delivery* (on a blocking thread, while the store
//! may not rename files: signal or restart, then the model and the cost
//! ledger learn that dnsmasq re-read everything) and *settling* (the
//! record, metrics, the budget, retries, and waking the waiters).
//!
//! Ghosts (records dnsmasq holds that no file has any more) cost dnsmasq
//! memory and keep addresses reserved; a *cleanup* reload clears them once
//! there are more than a threshold or the oldest is too old, after a quiet
//! moment.
//!
//! A failed reload (dnsmasq gone, refused on a crashing version, command
//! failed) leaves its tickets pending; it is retried with backoff.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::budget::{Budget, StallStats};
use super::cost::{Churn, ChurnStats, Costs};
use super::dnsmasq::Rules;
use super::model::{Model, ModelStats};
use super::progress::{Progress, Reason, ReloadRecord, WaitError};
use super::reloader::Reloader;
use super::settings::{Policy, RestartMode, SchedulerConfig};
use crate::sync::LockOrRecover;

/// The reload waiting to be sent, if any (`first` is set).
struct Pending {
    /// When the oldest ticket not yet covered was handed out.
    first: Option<Instant>,
    /// When the newest ticket was handed out (the quiet period counts from it).
    last: Instant,
    /// Whether dnsmasq holds `set:` hosts (2.90 would crash on SIGHUP).
    risky: bool,
    /// What caused the newest ticket; the reload is reported under it.
    reason: Reason,
    /// An operator asked: the stall budget does not hold this one back.
    unbudgeted: bool,
    /// Failed attempts in a row, for the retry backoff.
    failures: u32,
    /// After a failure: not before this.
    retry_at: Option<Instant>,
    /// When the store last committed a change (cleanup waits for quiet).
    last_commit: Instant,
}

/// Coalesces reload requests and drives a [`Reloader`].
pub struct ReloadScheduler {
    /// How reloads are delivered.
    reloader: Arc<dyn Reloader>,
    config: SchedulerConfig,
    /// The reload waiting to be sent. Std mutexes throughout: none is held
    /// across an `.await`.
    pending: Mutex<Pending>,
    /// Wakes the run loop when a ticket is handed out.
    wake: Notify,
    /// Ticket counters, broadcast to waiters.
    progress: watch::Sender<Progress>,
    /// Held while a reload is delivered and dnsmasq re-reads the files; the
    /// store's writer holds it while it renames or removes files. Taken
    /// before `model` and `costs`.
    reading: Mutex<()>,
    /// What dnsmasq holds.
    model: Mutex<Model>,
    /// Measured stalls and the spacing they ask for.
    budget: Mutex<Budget>,
    /// File names dnsmasq has seen, and the SIGHUP / restart cost model.
    costs: Mutex<Costs>,
    /// The row of `dnsmasq::RULE_SETS` in force (the version last seen;
    /// `None` until first asked).
    rules: Mutex<Option<Rules>>,
    /// Changes served without the reload the coalescing policy would send.
    avoided: AtomicU64,
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
        let rules = Rules::for_version(None);
        let costs = Costs::new(
            Churn::new([Vec::new(), Vec::new()], false, rules.set.cost),
            0,
        );
        Arc::new(ReloadScheduler {
            reloader,
            pending: Mutex::new(Pending {
                first: None,
                last: now,
                risky: false,
                reason: Reason::Change,
                unbudgeted: false,
                failures: 0,
                retry_at: None,
                last_commit: now,
            }),
            wake: Notify::new(),
            progress: watch::channel(Progress::default()).0,
            reading: Mutex::new(()),
            model: Mutex::new(Model::default()),
            budget: Mutex::new(Budget::new(config.budget, config.budgeted(), now)),
            costs: Mutex::new(costs),
            rules: Mutex::new(None),
            avoided: AtomicU64::new(0),
            config,
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
    ///
    /// Learns dnsmasq's version first (which may run `dnsmasq --version`):
    /// the prediction depends on it.
    pub fn start_ledger(&self, names: [Vec<crate::entry::Name>; 2], exact: bool) {
        let rules = self.refresh_rules();
        let churn = Churn::new(names, exact, rules.set.cost);
        let prior = churn.prior_stall();
        *self.costs.lock_or_recover() = Costs::new(churn, self.reloader.starts());
        self.budget.lock_or_recover().assume(prior, Instant::now());
    }

    /// The rules in force, as of the version last seen.
    pub fn rules(&self) -> Rules {
        self.rules
            .lock_or_recover()
            .unwrap_or_else(|| Rules::for_version(None))
    }

    /// Asks the reloader for dnsmasq's build (version and known patches;
    /// blocking: it may run `dnsmasq --version` and `--help`) and puts that
    /// build's rules in force, saying so in the log when they change.
    pub fn refresh_rules(&self) -> Rules {
        let new = Rules::for_build(self.reloader.build());
        let old = self.rules.lock_or_recover().replace(new);
        if old != Some(new) {
            self.costs.lock_or_recover().churn().set_facts(new.set.cost);
            match new.warning() {
                // Nothing is reloaded with method `none`: no version to know.
                _ if self.reloader.method() == "none" => {}
                Some(w) => tracing::warn!(rules = %new.set.name(), "{w}"),
                None => tracing::info!(
                    rules = %new.set.name(),
                    "dnsmasq {}: the reload rules proven on it are in force",
                    new.set.version
                ),
            }
            if let Some(note) = new.note() {
                tracing::info!(rules = %new.set.name(), "{note}");
            }
        }
        new
    }

    /// Names seen, the churn factor and the predicted costs.
    pub fn churn_stats(&self) -> ChurnStats {
        self.costs.lock_or_recover().stats()
    }

    /// Whether the next reload would be a restart.
    fn restart_next(&self) -> bool {
        self.costs
            .lock_or_recover()
            .restart_next(self.config.restart, self.reloader.can_restart())
    }

    /// The restart mode in force, and whether the next reload would be one.
    pub fn restart_plan(&self) -> (RestartMode, bool) {
        (self.config.restart, self.restart_next())
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
        self.model.lock_or_recover().stats()
    }

    /// Changes served without the reload the coalescing policy would send.
    pub fn avoided(&self) -> u64 {
        self.avoided.load(Ordering::Relaxed)
    }

    /// Reload cost and budget figures.
    pub fn stall_stats(&self) -> StallStats {
        self.budget.lock_or_recover().stats(Instant::now())
    }

    /// Marks a reload pending; returns the ticket that a covering reload
    /// will satisfy.
    pub fn request(&self, reason: Reason, risky: bool) -> u64 {
        let now = Instant::now();
        let mut ticket = 0;
        {
            let mut s = self.pending.lock_or_recover();
            // Handed out under the pending lock, so a reload taking the
            // pending state covers exactly the tickets issued before it.
            self.progress.send_modify(|p| {
                p.requested += 1;
                ticket = p.requested;
            });
            s.first.get_or_insert(now);
            s.last = now;
            s.risky |= risky;
            s.reason = reason;
            s.unbudgeted |= reason.bypasses_budget();
        }
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
        let last = p.last.unwrap_or_else(|| {
            ReloadRecord::finished(
                false,
                "no reload was attempted".into(),
                Reason::Change,
                Duration::ZERO,
            )
        });
        if p.delivered >= ticket {
            Ok(last)
        } else {
            Err(WaitError::Failed(last.message))
        }
    }

    /// When the pending reload is due, if one is pending.
    fn due(&self) -> Option<Instant> {
        let s = self.pending.lock_or_recover();
        let first = s.first?;
        let mut due = (s.last + self.config.quiet).min(first + self.config.max_delay);
        if let Some(r) = s.retry_at {
            due = due.max(r);
        }
        if !s.unbudgeted {
            if let Some(allowed) = self.budget.lock_or_recover().next_allowed() {
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
        let quiet = self.pending.lock_or_recover().last_commit.elapsed() >= c.cleanup_quiet;
        if stats.cleanup_due(c.cleanup_ghosts, c.cleanup_max_age, quiet) {
            tracing::info!(
                ghosts = stats.ghosts,
                oldest_ms = stats.oldest_ms,
                "a cleanup reload is due: dnsmasq holds records no file has any more"
            );
            self.request(Reason::Cleanup, false);
        }
    }

    /// Notices restarts made for other reasons (a crash), and says when
    /// name churn has made reloads expensive.
    fn check_churn(&self) {
        let mut costs = self.costs.lock_or_recover();
        costs.sync_starts(self.reloader.starts());
        let stats = costs.stats();
        let m = crate::metrics::get();
        m.dnsmasq_names_seen
            .set((stats.names_seen[0] + stats.names_seen[1]) as i64);
        m.reload_churn_factor_percent
            .set((stats.factor * 100.0).round() as i64);
        m.restart_recommended
            .set(i64::from(stats.restart_is_cheaper()));
        let how = costs.warning(
            self.config.churn_warn_factor,
            self.reloader.can_restart(),
            self.config.restart,
        );
        if let Some(how) = how {
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
        let flush = {
            let mut s = self.pending.lock_or_recover();
            if s.first.is_some() {
                s.reason = Reason::Shutdown;
            }
            s.first.is_some()
        };
        if flush {
            tracing::info!("sending the pending reload before shutting down");
            self.clone().send_now().await;
        }
    }

    /// Sends one reload covering every ticket issued so far.
    async fn send_now(self: Arc<Self>) {
        let (target, risky, reason) = {
            let mut s = self.pending.lock_or_recover();
            s.first = None;
            s.retry_at = None;
            s.unbudgeted = false;
            let target = self.progress.borrow().requested;
            (target, std::mem::take(&mut s.risky), s.reason)
        };
        let started = Instant::now();
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || this.deliver(risky))
            .await
            .unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
        self.settle(target, risky, reason, result, started.elapsed());
    }

    /// Delivery, on a blocking thread: a SIGHUP or a restart, with the
    /// store's renames held off until dnsmasq has re-read the files. On
    /// success dnsmasq holds exactly the files, and the cost ledger learns
    /// what the reload cost. Returns the reloader's message and the stall.
    fn deliver(&self, risky: bool) -> Result<(String, Duration), String> {
        let _files_still = self.reading.lock_or_recover();
        self.refresh_rules();
        let restart = self.restart_next();
        self.costs
            .lock_or_recover()
            .sync_starts(self.reloader.starts());
        let started = std::time::Instant::now();
        let result = if restart {
            self.reloader.restart()
        } else {
            self.reloader.reload(risky)
        };
        let stall = started.elapsed();
        if result.is_ok() {
            self.model.lock_or_recover().reloaded();
            self.costs
                .lock_or_recover()
                .delivered(stall, self.reloader.starts());
        }
        result.map(|m| (m, stall))
    }

    /// Settling: records the attempt, feeds the budget, schedules a retry
    /// after a failure, and tells the waiters.
    fn settle(
        &self,
        target: u64,
        risky: bool,
        reason: Reason,
        result: Result<(String, Duration), String>,
        took: Duration,
    ) {
        let message = match &result {
            Ok((m, _)) | Err(m) => m.clone(),
        };
        let record = ReloadRecord::finished(result.is_ok(), message, reason, took);
        let metrics = crate::metrics::get();
        metrics
            .reloads
            .get_or_create(&crate::metrics::ReloadLabels {
                reason: reason.to_string(),
                result: if record.ok { "ok" } else { "failed" }.to_string(),
            })
            .inc();
        match &result {
            Ok((_, stall)) => {
                self.note_stall(*stall);
                tracing::info!(
                    covered = target,
                    reason = reason.as_str(),
                    duration_ms = record.duration_ms,
                    "reload: {}",
                    record.message
                );
                self.pending.lock_or_recover().failures = 0;
            }
            Err(_) => {
                tracing::error!(
                    covered = target,
                    reason = reason.as_str(),
                    "reload failed: {}",
                    record.message
                );
                let mut s = self.pending.lock_or_recover();
                s.failures += 1;
                s.risky |= risky;
                let backoff = Duration::from_millis(500) * 2u32.saturating_pow(s.failures.min(6));
                let now = Instant::now();
                s.first.get_or_insert(now);
                s.retry_at = Some(now + backoff.min(Duration::from_secs(30)));
            }
        }
        metrics.ghosts.set(self.model_stats().ghosts as i64);
        self.progress.send_modify(|p| p.attempted(target, record));
    }

    /// Folds a measured stall into the budget, and the metrics.
    fn note_stall(&self, stall: Duration) {
        let now = Instant::now();
        let mut budget = self.budget.lock_or_recover();
        budget.note(stall, now);
        let metrics = crate::metrics::get();
        metrics.reload_stall_seconds.observe(stall.as_secs_f64());
        metrics
            .reload_stall_estimate_ms
            .set(budget.estimate().map_or(0, |d| d.as_millis() as i64));
        metrics
            .reload_budget_used_percent
            .set(budget.used_percent(now).round() as i64);
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

mod sink;
#[cfg(test)]
mod tests;
