//! The HTTP API of `API.md`: routing, shared state, and the pieces every
//! handler uses. Each submodule owns its routes; [`app`] merges them.
//!
//! Handlers only translate: JSON ⇄ validated specs ([`crate::entry`]), ops
//! to the store ([`crate::store`]), tickets to reload waits
//! ([`crate::reload`]). No handler touches the filesystem or signals.

pub mod auth;
mod batch;
mod body;
mod conditional;
mod entries;
pub mod error;
mod extract;
pub mod openapi;
mod ops;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};

pub use entries::entry_json;
use error::{ApiError, ApiResult};

use crate::reload::{ReloadScheduler, WaitError};
use crate::store::Store;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The directories.
    pub store: Store,
    /// Reload scheduling and waiting.
    pub reloads: Arc<ReloadScheduler>,
    /// dnsmasq's lease file, when configured.
    pub lease_file: Option<PathBuf>,
    /// When the process started, for status.
    pub started: Instant,
    /// API tokens; `None` means no authentication (loopback or
    /// `--insecure-no-auth`).
    pub tokens: Option<Arc<auth::Tokens>>,
}

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may take (including `?wait=reload`).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// The whole API as one router.
pub fn app(state: AppState, limits: Limits) -> Router {
    let mut router = Router::new()
        .merge(entries::router())
        .merge(batch::router())
        .merge(ops::router())
        .merge(openapi::router())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such route; see GET /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    if let Some(tokens) = state.tokens.clone() {
        router = router.layer(axum::middleware::from_fn_with_state(
            tokens,
            auth::require_token,
        ));
    }
    router
        .layer(axum::middleware::from_fn(count_request))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            time_limit,
        ))
        .with_state(state)
}

/// Who is asking, for audit log lines (`anonymous` without tokens).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Actor>()
            .cloned()
            .unwrap_or_else(|| Actor("anonymous".into())))
    }
}

/// The `reload` field of a mutation's answer; with `wait`, first waits for a
/// reload covering the change (503 `reload_failed` if it failed,
/// `reload_deferred` if the stall budget holds it back past the wait limit).
async fn reload_answer(state: &AppState, ticket: Option<u64>, wait: bool) -> ApiResult<Value> {
    match (ticket, wait) {
        (None, _) => Ok(json!("not_needed")),
        (Some(_), false) => Ok(json!("scheduled")),
        (Some(t), true) => match state.reloads.wait(t).await {
            Ok(_) => Ok(json!("delivered")),
            Err(e @ WaitError::Deferred(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "reload_deferred",
                e.to_string(),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "reload_failed",
                e.to_string(),
            )),
        },
    }
}

/// Cuts a request off after `--request-timeout-ms` with 408
/// `request_timeout` (a write already handed to the store still completes).
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than the broker allows ({} ms, --request-timeout-ms)",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Counts every request by route template, method and status, and times
/// it by route and method.
async fn count_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let metrics = crate::metrics::get();
    metrics
        .request_seconds
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&crate::metrics::RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}
