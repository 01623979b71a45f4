//! Request bodies: content type, size and JSON syntax checked here so every
//! failure gets the API's error shape (axum's own rejections would not).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde_json::Value;

use super::error::ApiError;

/// A JSON request body, parsed but not yet validated.
pub(super) struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" {
            let shown = if ct.is_empty() {
                "no Content-Type".to_string()
            } else {
                format!("Content-Type `{ct}`")
            };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the body must be JSON with Content-Type `application/json`, got {shown}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than the broker accepts (--max-body-bytes)",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("cannot read the request body: {e}"),
                )
            }
        })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        let mut value = value;
        integral_floats_to_integers(&mut value);
        Ok(JsonBody(value))
    }
}

/// JSON has one number type: `120.0` is the integer 120 (as JSON Schema
/// says), so whole floats become integers before validation.
fn integral_floats_to_integers(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
                    *v = Value::from(f as u64);
                } else if f.fract() == 0.0 && f < 0.0 && f >= i64::MIN as f64 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_floats_become_integers() {
        let mut v = serde_json::json!({"a": [120.0, 1.5, -3.0], "b": 7});
        super::integral_floats_to_integers(&mut v);
        assert_eq!(v, serde_json::json!({"a": [120, 1.5, -3], "b": 7}));
    }
}
