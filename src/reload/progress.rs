//! What the scheduler reports: why a reload was asked for ([`Reason`]), the
//! outcome of each attempt ([`ReloadRecord`]), the ticket counters waiters
//! watch ([`Progress`]) and why a wait ended without its reload
//! ([`WaitError`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What caused a reload. Shown as its [`Reason::as_str`] in status, logs
/// and the `reloads_total{reason=…}` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A change made through this broker.
    Change,
    /// A change found in the directories, made elsewhere.
    External,
    /// An operator asked (`POST /v1/reload`).
    Manual,
    /// Ghosts piled up or aged.
    Cleanup,
    /// The broker is stopping with a reload pending.
    Shutdown,
    /// The directories changed since dnsmasq started (found at start-up).
    Startup,
}

impl Reason {
    /// The name used in status, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Change => "change",
            Reason::External => "external",
            Reason::Manual => "manual",
            Reason::Cleanup => "cleanup",
            Reason::Shutdown => "shutdown",
            Reason::Startup => "startup",
        }
    }

    /// The reason the store gives through `ReloadSink::reload_needed`
    /// (`"external"` for outside changes, `"change"` otherwise).
    pub fn from_store(reason: &str) -> Reason {
        match reason {
            "external" => Reason::External,
            _ => Reason::Change,
        }
    }

    /// An operator's request is sent as soon as the quiet period allows,
    /// not held back by the stall budget: someone is waiting for it.
    pub fn bypasses_budget(self) -> bool {
        self == Reason::Manual
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    /// What caused it.
    pub reason: Reason,
    /// How long the delivery and the survival check took: the stall.
    pub duration_ms: u64,
}

impl ReloadRecord {
    /// The record of an attempt that ends now and took `took`.
    pub fn finished(ok: bool, message: String, reason: Reason, took: Duration) -> ReloadRecord {
        ReloadRecord {
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            ok,
            message,
            reason,
            duration_ms: took.as_millis() as u64,
        }
    }
}

/// Progress of reloads, broadcast to waiters and status. The ticket
/// counter lives here only: a ticket is `requested` after the request.
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

    /// Notes an attempt that covered every ticket up to `target`.
    pub fn attempted(&mut self, target: u64, record: ReloadRecord) {
        self.attempted = self.attempted.max(target);
        if record.ok {
            self.delivered = self.delivered.max(target);
            self.ok_count += 1;
        } else {
            self.failed_count += 1;
        }
        self.last = Some(record);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_their_names() {
        let all = [
            Reason::Change,
            Reason::External,
            Reason::Manual,
            Reason::Cleanup,
            Reason::Shutdown,
            Reason::Startup,
        ];
        for r in all {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(Reason::from_store("external"), Reason::External);
        assert_eq!(Reason::from_store("change"), Reason::Change);
        assert!(Reason::Manual.bypasses_budget());
        assert!(!Reason::Cleanup.bypasses_budget());
    }

    #[test]
    fn an_attempt_covers_every_ticket_up_to_its_target() {
        let mut p = Progress {
            requested: 5,
            ..Progress::default()
        };
        let record = |ok| ReloadRecord::finished(ok, String::new(), Reason::Change, Duration::ZERO);
        p.attempted(3, record(false));
        assert_eq!((p.attempted, p.delivered, p.failed_count), (3, 0, 1));
        p.attempted(5, record(true));
        assert_eq!((p.attempted, p.delivered, p.ok_count), (5, 5, 1));
        assert!(!p.pending());
    }
}
