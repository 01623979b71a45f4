//! The one error type of the API and its JSON shape:
//! `{"error": {"code", "message", "field"}}` with the status API.md gives.
//! Internal details (paths, OS errors) appear only in logs, never in a 5xx
//! body beyond a sentence an operator can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::entry::EntryError;
use crate::store::{OpError, StoreError};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Machine-readable code (`invalid_value`, `conflict`, …).
    pub code: &'static str,
    /// A sentence naming the bad value.
    pub message: String,
    /// JSON path of the bad value, if there is one.
    pub field: Option<String>,
}

/// Handlers' result type.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Sets the field.
    pub fn at(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// Prefixes the field with `prefix` (`ops[2]`), for batch errors.
    pub fn within(mut self, prefix: &str) -> ApiError {
        self.field = Some(match self.field {
            Some(f) if f.starts_with('[') => format!("{prefix}{f}"),
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_string(),
        });
        self
    }

    /// 400 `invalid_value`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_value", message).at(field)
    }

    /// 404 for an entry.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<EntryError> for ApiError {
    fn from(e: EntryError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let message = e.to_string();
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(message),
            StoreError::Precondition(_) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                message,
            ),
            StoreError::Conflict { field, .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message).at(field)
            }
            StoreError::Repeated { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "repeated_entry", message)
            }
            StoreError::NoSpace(e) => {
                tracing::error!("{e}");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "no_space",
                    "no space left on the device holding the directories; nothing was written",
                )
            }
            StoreError::Unavailable(e) => {
                tracing::error!("{e}");
                let what = if e.action == "lock" {
                    "lock_timeout"
                } else {
                    "store_unavailable"
                };
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    what,
                    format!("the store cannot be written now, nothing was written: {e}"),
                )
            }
            StoreError::Stalled(_) => {
                tracing::warn!("{message}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_stalled", message)
            }
            StoreError::Unknown(_) => {
                tracing::error!("{message}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "outcome_unknown",
                    message,
                )
            }
            StoreError::WriterDead(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_failed", message)
            }
            StoreError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        ApiError::from(e.error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let metrics = crate::metrics::get();
        if self.status == StatusCode::CONFLICT {
            metrics.conflicts.inc();
        } else if self.status == StatusCode::BAD_REQUEST {
            metrics
                .validation_failures
                .get_or_create(&crate::metrics::NameLabel {
                    name: self.code.to_string(),
                })
                .inc();
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            metrics
                .unavailable
                .get_or_create(&crate::metrics::CodeLabel {
                    code: self.code.to_string(),
                })
                .inc();
        }
        let body =
            json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        (self.status, Json(body)).into_response()
    }
}
