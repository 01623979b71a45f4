//! The operational endpoints: reload, leases, status and probes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::entries::WaitQuery;
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::{reload_answer, AppState};
use crate::entry::Mac;
use crate::store::Kind;

/// Routes of this module.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/reload", post(reload))
        .route("/v1/leases", get(leases))
        .route("/v1/status", get(status))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn reload(
    State(state): State<AppState>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<Value>> {
    let wait = q.wants_reload()?;
    let ticket = state.reloads.request(
        crate::reload::Reason::Manual,
        state.store.read(|i| i.any_set_tags()),
    );
    let reload = reload_answer(&state, Some(ticket), wait).await?;
    Ok(Json(json!({"reload": reload})))
}

#[derive(Debug, Deserialize)]
struct LeaseQuery {
    mac: Option<String>,
}

async fn leases(
    State(state): State<AppState>,
    Query(q): Query<LeaseQuery>,
) -> ApiResult<Json<Value>> {
    let Some(path) = state.lease_file.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_lease_file",
            "the broker was started without --lease-file",
        ));
    };
    let mac = match q.mac.as_deref() {
        Some(m) => Some(
            Mac::parse(m)
                .map_err(|msg| ApiError::invalid("mac", msg))?
                .to_string(),
        ),
        None => None,
    };
    let shown = path.display().to_string();
    let items = tokio::task::spawn_blocking(move || crate::leases::read(&path))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("lease reader failed: {e}"),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "lease_file_unreadable",
                format!("cannot read the lease file `{shown}`: {e}"),
            )
        })?;
    let items: Vec<_> = items
        .into_iter()
        .filter(|l| mac.is_none() || l.mac == mac)
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn status(State(state): State<AppState>) -> Json<Value> {
    let reloads = state.reloads.clone();
    let (dnsmasq, rules) = tokio::task::spawn_blocking(move || {
        (reloads.reloader().dnsmasq(), reloads.refresh_rules())
    })
    .await
    .unwrap_or_else(|_| (None, state.reloads.rules()));
    let mut dnsmasq = serde_json::to_value(dnsmasq).unwrap_or(Value::Null);
    if let Value::Object(d) = &mut dnsmasq {
        d.insert("rules".into(), json!(rules.set.name()));
    }
    let progress = state.reloads.progress();
    let model = state.reloads.model_stats();
    let stall = state.reloads.stall_stats();
    let churn = state.reloads.churn_stats();
    let (restart_mode, next_is_restart) = state.reloads.restart_plan();
    let (hosts, options, problems, duplicates) = state.store.read(|i| {
        (
            i.len(Kind::Host),
            i.len(Kind::Option),
            i.problems.clone(),
            i.duplicates(),
        )
    });
    let config = state.store.config();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "directories": {"hosts": config.hosts_dir, "options": config.opts_dir},
        "lease_file": state.lease_file,
        "entries": {"hosts": hosts, "options": options},
        "problems": problems,
        "duplicates": duplicates,
        "dnsmasq": dnsmasq,
        "reload": {
            "method": state.reloads.reloader().method(),
            "pending": progress.pending(),
            "requested": progress.requested,
            "delivered": progress.delivered,
            "ok_count": progress.ok_count,
            "failed_count": progress.failed_count,
            "last": progress.last,
            "policy": state.reloads.policy(),
            "ghosts": model.ghosts,
            "dirty_names": model.dirty_names,
            "oldest_dirty_ms": model.oldest_ms,
            "avoided": state.reloads.avoided(),
            "stall_ms_last": stall.stall_ms_last,
            "stall_ms_estimate": stall.stall_ms_estimate,
            "stall_estimate_is_prior": stall.stall_estimate_is_prior,
            "budget_percent": stall.budget_percent,
            "budget_used_percent": stall.budget_used_percent,
            "next_allowed_in_ms": stall.next_allowed_in_ms,
            "rules": rules.status(),
            "churn": {
                "names_seen": churn.names_seen,
                "live_files": churn.live_files,
                "exact": churn.exact,
                "factor": churn.factor,
                "predicted_sighup_ms": churn.predicted_sighup_ms,
                "predicted_restart_ms": churn.predicted_restart_ms,
                "restart_recommended": churn.restart_is_cheaper(),
                "restart_mode": restart_mode,
                "next_reload_is_restart": next_is_restart,
                "names_cost": churn.names_cost,
            },
        },
        "writer": state.store.stats(),
        "tls": crate::tls::status(),
    }))
}

/// Liveness (`/healthz`, `/livez`): the process serves, and its store's
/// writer is alive. A dead writer (the process is about to exit) fails it,
/// so a supervisor that sees the failure before the exit restarts the
/// broker as well.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.writer_dead() {
        None => Json(json!({"status": "ok"})).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "reason": why})),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let stalled = state.store.stalled();
    let check = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::task::spawn_blocking(move || store.check_writable_once()),
    )
    .await;
    let last_reload = state.reloads.progress().last;
    let reloader = state.reloads.reloader().clone();
    // Reported, not judged: readiness is about accepting writes; a dnsmasq
    // being restarted must not take the API out of the Service.
    let dnsmasq = tokio::task::spawn_blocking(move || reloader.dnsmasq())
        .await
        .ok()
        .flatten();
    let dead = state.store.writer_dead();
    let (status, body) = match check {
        _ if dead.is_some() => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not_ready", "reason": dead}),
        ),
        _ if stalled.is_some() => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not_ready", "reason": stalled}),
        ),
        Ok(Ok(Err(running))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not_ready", "reason": format!(
                "the directories have not answered a check for {} s: on a shared filesystem, a node that held the lock or the files' capabilities may be gone",
                running.as_secs()
            )}),
        ),
        Ok(Ok(Ok(Ok(())))) => (StatusCode::OK, json!({"status": "ready"})),
        Ok(Ok(Ok(Err(e)))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not_ready", "reason": e.to_string()}),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not_ready", "reason": "the directories did not answer a check within 3 s: on a shared filesystem, a node that held the lock or the files' capabilities may be gone (the metadata server releases them when it evicts that client)"}),
        ),
    };
    let mut body = body;
    body["last_reload"] = json!(last_reload);
    body["dnsmasq"] = json!(dnsmasq);
    (status, Json(body)).into_response()
}

/// `GET /metrics`: event metrics plus state read now; OpenMetrics when the
/// scraper accepts it, the classic text format otherwise.
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use crate::metrics::NameLabel;
    let m = crate::metrics::get();
    let label = |name: &str| NameLabel {
        name: name.to_string(),
    };
    let (hosts, options, problems) = state.store.read(|i| {
        (
            i.len(Kind::Host),
            i.len(Kind::Option),
            i.problems.len() + i.duplicates().len(),
        )
    });
    m.entries.get_or_create(&label("host")).set(hosts as i64);
    m.entries
        .get_or_create(&label("option"))
        .set(options as i64);
    m.problem_files.set(problems as i64);
    m.store_stalled
        .set(i64::from(state.store.stalled().is_some()));
    m.reload_pending
        .set(i64::from(state.reloads.progress().pending()));
    let stall = state.reloads.stall_stats();
    // The budget's window moves on between reloads: read it now.
    m.reload_budget_used_percent
        .set(stall.budget_used_percent.round() as i64);
    m.reload_budget_percent.set(stall.budget_percent);
    m.reload_stall_estimate_seconds
        .set(m.reload_stall_estimate_ms.get() as f64 / 1000.0);
    m.ghosts.set(state.reloads.model_stats().ghosts as i64);
    m.reload_next_is_restart
        .set(i64::from(state.reloads.restart_plan().1));
    // The rules as of the last reload or status (both ask for the version).
    // With method `none` there is no dnsmasq whose version could matter.
    let unproven = state.reloads.rules().fit != crate::reload::dnsmasq::Fit::Proven
        && state.reloads.reloader().method() != "none";
    m.dnsmasq_rules_unproven.set(i64::from(unproven));
    let reloader = state.reloads.reloader().clone();
    if let Ok(Some(d)) = tokio::task::spawn_blocking(move || reloader.dnsmasq()).await {
        m.dnsmasq_up.set(i64::from(d.running));
        m.dnsmasq_restarts.set(d.restarts as i64);
        m.dnsmasq_deaths_after_reload
            .set(d.deaths_after_reload as i64);
        if let Some(v) = d.version {
            m.dnsmasq_version.get_or_create(&label(&v)).set(1);
        }
    }
    let openmetrics = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            m.encode(),
        )
    } else {
        ("text/plain; version=0.0.4; charset=utf-8", m.encode_text())
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}
