//! The scheduler against fake reloaders: coalescing, the maximum delay,
//! the stall budget's spacing, and the flush at shutdown.

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
        last = s.request(Reason::Change, false);
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
        s.request(Reason::Change, false);
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
        s.request(Reason::Change, false);
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
    s.request(Reason::Change, false);
    s.clone().run(async {}).await;
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(!s.progress().pending());
}
