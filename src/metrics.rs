//! Prometheus metrics (`GET /metrics`, text format).
//!
//! Event counters and latency histograms live in one process-wide set, like
//! Prometheus's default registry: the writer thread, the reload scheduler and
//! the HTTP layer record into it without being wired to each other. Values
//! that are state rather than events (entries, pending reload, dnsmasq up)
//! are read from the broker when a scrape comes in.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of HTTP request counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/hosts/{name}`), not the concrete path.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The status code.
    pub status: u16,
}

/// Labels of reload counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// What caused it.
    pub reason: String,
    /// `ok` or `failed`.
    pub result: String,
}

/// A label naming an entry kind or an error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    /// The value.
    pub name: String,
}

/// Every metric the broker exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to write and fsync one temp file.
    pub write_seconds: Histogram,
    /// Time to fsync a directory after a commit.
    pub fsync_seconds: Histogram,
    /// Time spent waiting for the directory locks.
    pub lock_wait_seconds: Histogram,
    /// Requests merged into one commit.
    pub group_size: Histogram,
    /// Reloads by reason and result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Entries added, changed or removed by others.
    pub external_changes: Counter,
    /// Requests refused with 409.
    pub conflicts: Counter,
    /// Requests refused as invalid, by error code.
    pub validation_failures: Family<NameLabel, Counter>,
    /// Entries on disk by kind (set at scrape time).
    pub entries: Family<NameLabel, Gauge>,
    /// 1 while a reload is pending (set at scrape time).
    pub reload_pending: Gauge,
    /// 1 while dnsmasq is known to run (set at scrape time).
    pub dnsmasq_up: Gauge,
    /// dnsmasq restarts by the broker (set at scrape time).
    pub dnsmasq_restarts: Gauge,
    /// dnsmasq deaths right after a reload signal (set at scrape time).
    pub dnsmasq_deaths_after_reload: Gauge,
    /// 1, labelled with the dnsmasq version (set at scrape time).
    pub dnsmasq_version: Family<NameLabel, Gauge>,
    /// Files in the directories that are not usable entries (set at scrape time).
    pub problem_files: Gauge,
    /// Records dnsmasq holds that are not the current version of a file.
    pub ghosts: Gauge,
    /// Changes served without a reload that the coalescing policy reloaded for.
    pub reloads_avoided: Counter,
    /// How long each reload kept dnsmasq busy.
    pub reload_stall_seconds: Histogram,
    /// The moving estimate of a reload's stall, in milliseconds.
    pub reload_stall_estimate_ms: Gauge,
    /// Share of the recent past dnsmasq spent in reloads, in percent.
    pub reload_budget_used_percent: Gauge,
    /// File names dnsmasq has seen since it started (both directories).
    pub dnsmasq_names_seen: Gauge,
    /// A SIGHUP's cost relative to one with no name churn, in percent.
    pub reload_churn_factor_percent: Gauge,
    /// 1 while a restart is predicted to cost less than a SIGHUP.
    pub restart_recommended: Gauge,
    /// 1 while the dnsmasq version is not one the reload rules were proven
    /// on, or not known (set at scrape time).
    pub dnsmasq_rules_unproven: Gauge,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hostsdir_broker");
        let m = Metrics {
            requests: Family::default(),
            write_seconds: latency(),
            fsync_seconds: latency(),
            lock_wait_seconds: latency(),
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            reloads: Family::default(),
            external_changes: Counter::default(),
            conflicts: Counter::default(),
            validation_failures: Family::default(),
            entries: Family::default(),
            reload_pending: Gauge::default(),
            dnsmasq_up: Gauge::default(),
            dnsmasq_restarts: Gauge::default(),
            dnsmasq_deaths_after_reload: Gauge::default(),
            dnsmasq_version: Family::default(),
            problem_files: Gauge::default(),
            ghosts: Gauge::default(),
            reloads_avoided: Counter::default(),
            reload_stall_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            reload_stall_estimate_ms: Gauge::default(),
            reload_budget_used_percent: Gauge::default(),
            dnsmasq_names_seen: Gauge::default(),
            reload_churn_factor_percent: Gauge::default(),
            restart_recommended: Gauge::default(),
            dnsmasq_rules_unproven: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.requests.clone(),
        );
        registry.register(
            "file_write_seconds",
            "Time to write and fsync one temp file",
            m.write_seconds.clone(),
        );
        registry.register(
            "dir_fsync_seconds",
            "Time to fsync a directory after a commit",
            m.fsync_seconds.clone(),
        );
        registry.register(
            "lock_wait_seconds",
            "Time waiting for the directory locks",
            m.lock_wait_seconds.clone(),
        );
        registry.register(
            "commit_group_size",
            "Requests merged into one commit",
            m.group_size.clone(),
        );
        registry.register(
            "reloads",
            "dnsmasq reloads by reason and result",
            m.reloads.clone(),
        );
        registry.register(
            "external_changes",
            "Entries changed by others, found by rescans",
            m.external_changes.clone(),
        );
        registry.register(
            "conflicts",
            "Requests refused because a MAC or IP belongs to another entry",
            m.conflicts.clone(),
        );
        registry.register(
            "validation_failures",
            "Requests refused as invalid, by error code",
            m.validation_failures.clone(),
        );
        registry.register("entries", "Entries on disk by kind", m.entries.clone());
        registry.register(
            "reload_pending",
            "1 while changes wait for a reload",
            m.reload_pending.clone(),
        );
        registry.register(
            "dnsmasq_ghost_records",
            "Records dnsmasq still holds that are not the current version of a file (cleared by a reload)",
            m.ghosts.clone(),
        );
        registry.register(
            "reloads_avoided",
            "Replaces and outside changes served without a reload because the new record shadows the old",
            m.reloads_avoided.clone(),
        );
        registry.register(
            "reload_stall_seconds",
            "How long each reload kept dnsmasq from answering",
            m.reload_stall_seconds.clone(),
        );
        registry.register(
            "reload_stall_estimate_ms",
            "Moving estimate of a reload's stall, in milliseconds",
            m.reload_stall_estimate_ms.clone(),
        );
        registry.register(
            "reload_budget_used_percent",
            "Share of the last five minutes dnsmasq spent in reloads, in percent",
            m.reload_budget_used_percent.clone(),
        );
        registry.register(
            "dnsmasq_names_seen",
            "File names dnsmasq has seen since it started; a SIGHUP costs files × names",
            m.dnsmasq_names_seen.clone(),
        );
        registry.register(
            "reload_churn_factor_percent",
            "A SIGHUP's cost relative to one with no name churn, in percent (100: none)",
            m.reload_churn_factor_percent.clone(),
        );
        registry.register(
            "dnsmasq_restart_recommended",
            "1 while restarting dnsmasq is predicted to cost less than a SIGHUP",
            m.restart_recommended.clone(),
        );
        registry.register(
            "dnsmasq_rules_unproven",
            "1 while the dnsmasq version is not one the reload rules were proven on (or is not known); /v1/status says which rules apply",
            m.dnsmasq_rules_unproven.clone(),
        );
        registry.register(
            "dnsmasq_up",
            "1 while dnsmasq is known to run",
            m.dnsmasq_up.clone(),
        );
        registry.register(
            "dnsmasq_restarts",
            "dnsmasq restarts by the broker",
            m.dnsmasq_restarts.clone(),
        );
        registry.register(
            "dnsmasq_deaths_after_reload",
            "dnsmasq found dead right after a reload signal",
            m.dnsmasq_deaths_after_reload.clone(),
        );
        registry.register(
            "dnsmasq_version",
            "The dnsmasq version, as a label",
            m.dnsmasq_version.clone(),
        );
        registry.register(
            "problem_files",
            "Files in the directories that are not usable entries",
            m.problem_files.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}
