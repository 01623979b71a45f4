//! The stall budget: how soon after one reload the next may go out.
//!
//! Each reload keeps dnsmasq from answering DHCP and DNS while it re-reads
//! every file. After a reload the next one waits until dnsmasq has been busy
//! at most `share` of the time: `S × (1/share − 1)` after the previous one
//! ended, where `S` is a moving estimate of the stall that follows growth
//! quickly and decay slowly (underestimating would overspend the budget).
//! Before any reload was timed, `S` is a prediction from the file count
//! ([`Budget::assume`]) and the broker's start counts as the last reload: a
//! restarted broker must not buy itself a free reload.
//!
//! Pure: every method takes the current time, so the arithmetic is tested
//! without a clock and the scheduler decides when "now" is.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How far back the share of time spent in reloads is measured.
pub const WINDOW: Duration = Duration::from_secs(300);

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

/// Measured stalls and the spacing they ask for.
#[derive(Debug)]
pub struct Budget {
    /// Largest share of time dnsmasq may spend in reloads.
    share: f64,
    /// False when reloads are not spaced (coalesce policy, or share 1).
    enabled: bool,
    /// When counting started (the window is shorter before [`WINDOW`]).
    started: Instant,
    /// The last measured stall.
    last: Option<Duration>,
    /// The moving estimate that spaces reloads.
    estimate: Option<Duration>,
    /// The estimate is the start-up prediction, not a measurement yet.
    prior: bool,
    /// When the last reload ended (or the assumed one, at start-up).
    last_end: Option<Instant>,
    /// (end, stall) of the reloads within [`WINDOW`].
    recent: VecDeque<(Instant, Duration)>,
}

impl Budget {
    /// A budget of `share` (0–1], spacing reloads only when `enabled`.
    pub fn new(share: f64, enabled: bool, now: Instant) -> Budget {
        Budget {
            share,
            enabled,
            started: now,
            last: None,
            estimate: None,
            prior: false,
            last_end: None,
            recent: VecDeque::new(),
        }
    }

    /// Counts from `now` as if a reload of the `predicted` stall had just
    /// ended, unless a stall was measured already.
    pub fn assume(&mut self, predicted: Duration, now: Instant) {
        if self.estimate.is_none() {
            self.estimate = Some(predicted);
            self.prior = true;
            self.last_end = Some(now);
        }
    }

    /// Folds a reload that ended at `now` after `stall` into the estimate.
    pub fn note(&mut self, stall: Duration, now: Instant) {
        self.last = Some(stall);
        self.estimate = Some(match self.estimate {
            Some(e) if !self.prior && stall > e => e.mul_f64(0.3) + stall.mul_f64(0.7),
            Some(e) if !self.prior => e.mul_f64(0.8) + stall.mul_f64(0.2),
            _ => stall,
        });
        self.prior = false;
        self.last_end = Some(now);
        self.recent.push_back((now, stall));
        while self
            .recent
            .front()
            .is_some_and(|(end, _)| now.duration_since(*end) > WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// The moving estimate of a reload's stall.
    pub fn estimate(&self) -> Option<Duration> {
        self.estimate
    }

    /// The earliest time the budget allows the next reload (`None`: any
    /// time).
    pub fn next_allowed(&self) -> Option<Instant> {
        if !self.enabled {
            return None;
        }
        let (end, stall) = (self.last_end?, self.estimate?);
        Some(end + stall.mul_f64(1.0 / self.share.max(0.001) - 1.0))
    }

    /// Share of the window up to `now` spent in reloads, in percent (one
    /// decimal).
    pub fn used_percent(&self, now: Instant) -> f64 {
        let window = WINDOW
            .min(now.duration_since(self.started))
            .max(Duration::from_secs(1));
        let busy: Duration = self
            .recent
            .iter()
            .filter(|(end, _)| now.duration_since(*end) <= WINDOW)
            .map(|(_, d)| *d)
            .sum();
        (busy.as_secs_f64() / window.as_secs_f64() * 1000.0).round() / 10.0
    }

    /// The figures status shows, as of `now`.
    pub fn stats(&self, now: Instant) -> StallStats {
        let ms = |d: Duration| d.as_millis() as u64;
        StallStats {
            stall_ms_last: self.last.map(ms),
            stall_ms_estimate: self.estimate.map(ms),
            stall_estimate_is_prior: self.prior,
            budget_used_percent: self.used_percent(now),
            budget_percent: self.share * 100.0,
            next_allowed_in_ms: self
                .next_allowed()
                .map_or(0, |t| ms(t.saturating_duration_since(now))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn reloads_are_spaced_by_the_estimate() {
        let t0 = Instant::now();
        let mut b = Budget::new(0.25, true, t0);
        assert_eq!(b.next_allowed(), None, "nothing to space yet");
        b.note(100 * MS, t0 + 1000 * MS);
        // Busy 25% of the time: 100 ms busy, then 300 ms idle.
        assert_eq!(b.next_allowed(), Some(t0 + 1300 * MS));
        let s = b.stats(t0 + 1100 * MS);
        assert_eq!(s.next_allowed_in_ms, 200);
        assert_eq!(
            (s.stall_ms_last, s.stall_ms_estimate),
            (Some(100), Some(100))
        );
        assert_eq!(s.budget_percent, 25.0);
        let mut off = Budget::new(0.25, false, t0);
        off.note(100 * MS, t0);
        assert_eq!(off.next_allowed(), None, "disabled budgets never hold back");
    }

    #[test]
    fn the_estimate_follows_growth_fast_and_decay_slowly() {
        let t0 = Instant::now();
        let mut b = Budget::new(0.05, true, t0);
        b.note(100 * MS, t0);
        b.note(200 * MS, t0);
        assert_eq!(b.estimate(), Some(170 * MS), "0.3 × 100 + 0.7 × 200");
        b.note(70 * MS, t0);
        assert_eq!(b.estimate(), Some(150 * MS), "0.8 × 170 + 0.2 × 70");
    }

    #[test]
    fn the_start_up_prior_counts_as_a_reload_until_one_is_measured() {
        let t0 = Instant::now();
        let mut b = Budget::new(0.5, true, t0);
        b.assume(400 * MS, t0);
        assert!(b.stats(t0).stall_estimate_is_prior);
        assert_eq!(b.next_allowed(), Some(t0 + 400 * MS));
        // The first measurement replaces the prior outright.
        b.note(10 * MS, t0 + 500 * MS);
        assert_eq!(b.estimate(), Some(10 * MS));
        assert!(!b.stats(t0).stall_estimate_is_prior);
        // A later prediction does not override a measurement.
        b.assume(900 * MS, t0 + 600 * MS);
        assert_eq!(b.estimate(), Some(10 * MS));
    }

    #[test]
    fn the_share_used_counts_the_recent_window_only() {
        let t0 = Instant::now();
        let mut b = Budget::new(0.05, true, t0);
        b.note(Duration::from_secs(3), t0 + Duration::from_secs(10));
        // 3 s busy in the first 100 s.
        assert_eq!(b.used_percent(t0 + Duration::from_secs(100)), 3.0);
        // 3 s in the last 300 s, until it falls out of the window.
        assert_eq!(b.used_percent(t0 + Duration::from_secs(310)), 1.0);
        assert_eq!(b.used_percent(t0 + Duration::from_secs(311)), 0.0);
        b.note(Duration::from_secs(1), t0 + Duration::from_secs(400));
        assert_eq!(b.recent.len(), 1, "older stalls are dropped");
    }
}
