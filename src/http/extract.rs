//! Extractors whose rejections use the API's error shape: axum's own
//! `Query` and `Path` answer plain text, which clients cannot parse.

use axum::extract::{FromRequestParts, Path as AxumPath, Query as AxumQuery};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The backticked name after `field ` in a serde message
/// (``duplicate field `wait` `` → `wait`).
fn field_in(message: &str) -> Option<String> {
    let rest = &message[message.find("field `")? + "field `".len()..];
    Some(rest[..rest.find('`')?].to_string())
}

/// A query string deserialized into `T`; a bad one is 400 `invalid_query`
/// naming the parameter.
pub(super) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match AxumQuery::<T>::from_request_parts(parts, state).await {
            Ok(AxumQuery(v)) => Ok(Query(v)),
            Err(e) => {
                let detail = e.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail)
                    .to_string();
                let mut err = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("the query string is not understood: {detail}"),
                );
                err.field = field_in(&detail);
                Err(err)
            }
        }
    }
}

/// The `{name}` path segment; one that is not UTF-8 once percent-decoded
/// is 400 `invalid_name`.
pub(super) struct NamePath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NamePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match AxumPath::<String>::from_request_parts(parts, state).await {
            Ok(AxumPath(v)) => Ok(NamePath(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_name",
                format!(
                    "the entry name in the path is not usable: {}",
                    e.body_text()
                ),
            )
            .at("name")),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_field() {
        assert_eq!(
            super::field_in("duplicate field `wait`").as_deref(),
            Some("wait")
        );
        assert_eq!(super::field_in("invalid digit"), None);
    }
}
