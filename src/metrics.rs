//! Prometheus metrics (`GET /metrics`, text format).
//!
//! Event counters and latency histograms live in one process-wide set, like
//! Prometheus's default registry: the writer thread, the reload scheduler and
//! the HTTP layer record into it without being wired to each other. Values
//! that are state rather than events (entries, pending reload, dnsmasq up)
//! are read from the broker when a scrape comes in.
//!
//! Metrics whose value is only known in some set-ups (dnsmasq's state when
//! the broker tracks a dnsmasq, the certificate when it serves TLS) are
//! [`MaybeGauge`]s: absent until set, rather than a misleading 0
//! that an alert would read as "down". Counters that alerts take `increase()`
//! of start at 0 for their known label values, so the first event is an
//! increase and not the birth of a new series.
//!
//! `/metrics` is OpenMetrics when the scraper asks for it (Prometheus does)
//! and the classic text format 0.0.4 otherwise ([`Metrics::encode_text`]),
//! which is what `promtool check metrics` and plain `curl` read.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use crate::sync::LockOrRecover;
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

/// Labels of request latencies (no status: one histogram per route and
/// method keeps the series count small).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template (`/v1/hosts/{name}`), not the concrete path.
    pub route: String,
    /// The HTTP method.
    pub method: String,
}

/// A label naming the error code of a refused request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The `error.code` of the answer (`lock_timeout`, `store_stalled`…).
    pub code: String,
}

/// A gauge with no value until first set: absent from the exposition
/// (descriptor included) rather than a misleading 0.
#[derive(Debug, Clone, Default)]
pub struct MaybeGauge(std::sync::Arc<std::sync::Mutex<Option<i64>>>);

impl MaybeGauge {
    /// Sets the value (and makes the metric appear).
    pub fn set(&self, v: i64) {
        // A std mutex around a plain value: never held across an `.await`.
        *self.0.lock_or_recover() = Some(v);
    }

    fn value(&self) -> Option<i64> {
        *self.0.lock_or_recover()
    }
}

impl prometheus_client::encoding::EncodeMetric for MaybeGauge {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        match self.value() {
            Some(v) => encoder.encode_gauge(&v),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.value().is_none()
    }
}

/// A gauge holding a float (seconds, percent with decimals).
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// What caused a reload, as the scheduler names it (`ReloadRecord::reason`):
/// the reload counters start at 0 for each, with both results.
const RELOAD_REASONS: [&str; 6] = [
    "change", "external", "manual", "cleanup", "startup", "shutdown",
];

/// The 503 error codes an alert watches: they start at 0.
const UNAVAILABLE_CODES: [&str; 3] = ["lock_timeout", "store_stalled", "store_unavailable"];

/// Every metric the broker exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to answer a request, by route and method.
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Requests answered 503, by error code (lock timeouts, a stalled store).
    pub unavailable: Family<CodeLabel, Counter>,
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
    /// 1 while dnsmasq is known to run (set at scrape time; absent when the
    /// broker does not track a dnsmasq: `--reload none` or `command`).
    pub dnsmasq_up: MaybeGauge,
    /// dnsmasq restarts by the broker (set at scrape time; absent likewise).
    pub dnsmasq_restarts: MaybeGauge,
    /// dnsmasq deaths right after a reload signal (set at scrape time;
    /// absent likewise).
    pub dnsmasq_deaths_after_reload: MaybeGauge,
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
    /// The moving estimate of a reload's stall, in milliseconds, as the
    /// scheduler keeps it; exported in seconds (promtool refuses
    /// abbreviated units) as `reload_stall_estimate_seconds`.
    pub reload_stall_estimate_ms: Gauge,
    /// [`Metrics::reload_stall_estimate_ms`] in seconds (set at scrape time).
    pub reload_stall_estimate_seconds: FloatGauge,
    /// Share of the recent past dnsmasq spent in reloads, in percent (set
    /// after each reload and again at scrape time, as the window moves on).
    pub reload_budget_used_percent: Gauge,
    /// The stall budget, `--reload-budget-percent` (set at scrape time).
    pub reload_budget_percent: FloatGauge,
    /// 1 while the next reload will restart dnsmasq rather than SIGHUP it
    /// (set at scrape time).
    pub reload_next_is_restart: Gauge,
    /// 1 while the writer has been blocked in the filesystem for longer
    /// than the store's stall limit (set at scrape time).
    pub store_stalled: Gauge,
    /// New TLS files that could not be used (the previous ones kept serving).
    pub tls_reload_failures: Counter,
    /// 1 while the TLS files on disk are rejected and the previous
    /// certificate serves.
    pub tls_reload_failing: Gauge,
    /// When the serving certificate expires, Unix seconds (absent without TLS).
    pub tls_certificate_expiry: MaybeGauge,
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
            request_seconds: Family::new_with_constructor(latency),
            unavailable: Family::default(),
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
            dnsmasq_up: MaybeGauge::default(),
            dnsmasq_restarts: MaybeGauge::default(),
            dnsmasq_deaths_after_reload: MaybeGauge::default(),
            dnsmasq_version: Family::default(),
            problem_files: Gauge::default(),
            ghosts: Gauge::default(),
            reloads_avoided: Counter::default(),
            reload_stall_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            reload_stall_estimate_ms: Gauge::default(),
            reload_stall_estimate_seconds: FloatGauge::default(),
            reload_budget_used_percent: Gauge::default(),
            reload_budget_percent: FloatGauge::default(),
            reload_next_is_restart: Gauge::default(),
            store_stalled: Gauge::default(),
            tls_reload_failures: Counter::default(),
            tls_reload_failing: Gauge::default(),
            tls_certificate_expiry: MaybeGauge::default(),
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
            "http_request_duration_seconds",
            "Time to answer a request, by route and method",
            m.request_seconds.clone(),
        );
        registry.register(
            "service_unavailable",
            "Requests answered 503, by error code",
            m.unavailable.clone(),
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
            "reload_stall_estimate_seconds",
            "Moving estimate of a reload's stall, in seconds",
            m.reload_stall_estimate_seconds.clone(),
        );
        registry.register(
            "reload_budget_percent",
            "The stall budget: the share of time dnsmasq may spend in reloads, in percent",
            m.reload_budget_percent.clone(),
        );
        registry.register(
            "reload_next_is_restart",
            "1 while the next reload will restart dnsmasq instead of sending SIGHUP",
            m.reload_next_is_restart.clone(),
        );
        registry.register(
            "store_stalled",
            "1 while the writer has been blocked in the filesystem past the stall limit",
            m.store_stalled.clone(),
        );
        registry.register(
            "tls_reload_failures",
            "New TLS certificate, key or client CA files that could not be used",
            m.tls_reload_failures.clone(),
        );
        registry.register(
            "tls_reload_failing",
            "1 while the TLS files on disk are rejected and the previous certificate serves",
            m.tls_reload_failing.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the serving TLS certificate expires (its notAfter), in Unix seconds",
            m.tls_certificate_expiry.clone(),
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
        for reason in RELOAD_REASONS {
            for result in ["ok", "failed"] {
                let _ = m.reloads.get_or_create(&ReloadLabels {
                    reason: reason.into(),
                    result: result.into(),
                });
            }
        }
        for code in UNAVAILABLE_CODES {
            let _ = m
                .unavailable
                .get_or_create(&CodeLabel { code: code.into() });
        }
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The classic Prometheus text format (0.0.4) of every metric.
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }
}

/// Rewrites this crate's OpenMetrics exposition as text format 0.0.4. The
/// samples are the same; only the metadata differs: a counter's `HELP` and
/// `TYPE` name its `_total` sample (OpenMetrics names the family without
/// it), and there is no `# EOF` or `# UNIT`. Enough for what this registry
/// holds (counters, gauges, histograms; no exemplars, info or state sets).
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let sep = if tail.is_empty() { "" } else { " " };
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total{sep}{tail}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counters_by_their_total_sample() {
        let om =
            "# HELP x_reloads Reloads.\n# TYPE x_reloads counter\nx_reloads_total{a=\"b\"} 1\n\
                  # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP x_reloads_total Reloads.\n# TYPE x_reloads_total counter\nx_reloads_total{a=\"b\"} 1\n\
             # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }

    #[test]
    fn a_gauge_never_set_is_absent() {
        let mut registry = Registry::default();
        let g = MaybeGauge::default();
        registry.register("g", "A gauge", g.clone());
        let text = |r: &Registry| {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, r).unwrap();
            out
        };
        assert_eq!(text(&registry), "# EOF\n");
        g.set(7);
        assert_eq!(
            text(&registry),
            "# HELP g A gauge.\n# TYPE g gauge\ng 7\n# EOF\n"
        );
    }

    #[test]
    fn alerted_counters_start_at_zero() {
        let text = get().encode_text();
        for want in [
            "hostsdir_broker_reloads_total{reason=\"change\",result=\"failed\"} 0",
            "hostsdir_broker_service_unavailable_total{code=\"lock_timeout\"} 0",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
    }
}
