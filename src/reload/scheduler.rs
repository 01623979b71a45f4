//! When reloads happen: coalescing many changes into one signal.
//!
//! Every change that needs a reload takes a *ticket* (a sequence number). The
//! scheduler sends one reload once no new ticket has arrived for the quiet
//! period, or once the oldest pending ticket has waited the maximum delay,
//! whichever comes first. That reload covers every ticket issued before it
//! was sent. Waiters (`?wait=reload`) watch the highest ticket covered.
//!
//! A failed reload (dnsmasq gone, refused on a crashing version, command
//! failed) leaves its tickets pending; it is retried with backoff.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::Reloader;
use crate::store::ReloadSink;

/// The outcome of one reload attempt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadRecord {
    /// When it finished (Unix milliseconds).
    pub at_unix_ms: u64,
    /// Whether it was delivered and dnsmasq survived.
    pub ok: bool,
    /// What was done, or why it failed.
    pub message: String,
    /// What caused it ("change", "external", "manual", "shutdown").
    pub reason: &'static str,
    /// How long the delivery and the survival check took.
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
#[error("{0}")]
pub struct WaitError(pub String);

struct Pending {
    requested: u64,
    first: Option<Instant>,
    last: Instant,
    risky: bool,
    reason: &'static str,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Coalesces reload requests and drives a [`Reloader`].
pub struct ReloadScheduler {
    reloader: Arc<dyn Reloader>,
    quiet: Duration,
    max_delay: Duration,
    /// A std mutex: never held across an `.await`.
    state: Mutex<Pending>,
    wake: Notify,
    progress: watch::Sender<Progress>,
    /// Held while a reload is delivered and dnsmasq re-reads the files; the
    /// store's writer holds it while it renames or removes files.
    reading: Arc<Mutex<()>>,
}

impl ReloadScheduler {
    /// A scheduler for `reloader` with the given quiet period and maximum delay.
    pub fn new(
        reloader: Arc<dyn Reloader>,
        quiet: Duration,
        max_delay: Duration,
    ) -> Arc<ReloadScheduler> {
        Arc::new(ReloadScheduler {
            reloader,
            quiet,
            max_delay: max_delay.max(quiet),
            state: Mutex::new(Pending {
                requested: 0,
                first: None,
                last: Instant::now(),
                risky: false,
                reason: "change",
                failures: 0,
                retry_at: None,
            }),
            wake: Notify::new(),
            progress: watch::channel(Progress::default()).0,
            reading: Arc::new(Mutex::new(())),
        })
    }

    /// The reloader driven.
    pub fn reloader(&self) -> &Arc<dyn Reloader> {
        &self.reloader
    }

    /// A snapshot of progress.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
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
            s.requested
        };
        self.progress.send_modify(|p| p.requested = ticket);
        self.wake.notify_one();
        ticket
    }

    /// Waits until a reload covering `ticket` was attempted; Ok if it was
    /// delivered and dnsmasq survived.
    pub async fn wait(&self, ticket: u64) -> Result<ReloadRecord, WaitError> {
        let mut rx = self.progress.subscribe();
        let p = rx
            .wait_for(|p| p.attempted >= ticket)
            .await
            .map_err(|_| WaitError("the broker is shutting down".into()))?
            .clone();
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
            Err(WaitError(format!(
                "the change is stored, but the reload failed: {}",
                last.message
            )))
        }
    }

    /// When the pending reload is due, if one is pending.
    fn due(&self) -> Option<Instant> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let first = s.first?;
        let due = (s.last + self.quiet).min(first + self.max_delay);
        Some(match s.retry_at {
            Some(r) => due.max(r),
            None => due,
        })
    }

    /// Runs until `shutdown` resolves, then sends any pending reload.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let due = self.due();
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => continue,
                _ = sleep_until(due) => {
                    if self.due().is_some_and(|d| d <= Instant::now()) {
                        self.clone().send_now().await;
                    }
                }
            }
        }
        if self.due().is_some() {
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
            (s.requested, std::mem::take(&mut s.risky), s.reason)
        };
        let started = Instant::now();
        let reloader = self.reloader.clone();
        let reading = self.reading.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _files_still = reading.lock().unwrap_or_else(|p| p.into_inner());
            reloader.reload(risky)
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
                Ok(m) | Err(m) => m.clone(),
            },
            reason,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        crate::metrics::get()
            .reloads
            .get_or_create(&crate::metrics::ReloadLabels {
                reason: reason.to_string(),
                result: if record.ok { "ok" } else { "failed" }.to_string(),
            })
            .inc();
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
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl ReloadSink for ReloadScheduler {
    fn reload_needed(&self, reason: &'static str, risky: bool) -> u64 {
        self.request(reason, risky)
    }

    fn hold_reloads(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        Some(self.reading.lock().unwrap_or_else(|p| p.into_inner()))
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
