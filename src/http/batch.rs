//! `POST /v1/batch`: many ops, validated first, applied all-or-nothing under
//! one lock, with at most one reload.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::body::JsonBody;
use super::entries::{parse_etag, parse_spec, results_json, WaitQuery};
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::{reload_answer, Actor, AppState};
use crate::entry::Name;
use crate::store::{Kind, Op, Precondition};

/// The batch route.
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/batch", post(batch))
}

async fn batch(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<WaitQuery>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let wait = q.wants_reload()?;
    let ops = parse_ops(&body)?;
    let applied = state.store.apply(ops, &actor.0).await.map_err(|e| {
        let index = e.index;
        ApiError::from(e).within(&format!("ops[{index}]"))
    })?;
    let reload = reload_answer(&state, applied.reload_ticket, wait).await?;
    Ok(Json(
        json!({"results": results_json(&applied.outcomes), "reload": reload}),
    ))
}

/// Most ops one batch may hold.
const MAX_OPS: usize = 10_000;

fn parse_ops(body: &Value) -> ApiResult<Vec<Op>> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("ops", "the body must be {\"ops\": [...]}"))?;
    if let Some(k) = obj.keys().find(|k| *k != "ops") {
        return Err(ApiError::invalid(
            k.clone(),
            format!("unknown field `{k}`; a batch body has only `ops`"),
        ));
    }
    let list = obj
        .get("ops")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("ops", "`ops` must be an array of operations"))?;
    if list.len() > MAX_OPS {
        return Err(ApiError::invalid(
            "ops",
            format!("{} ops in one batch; at most {MAX_OPS}", list.len()),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, op)| parse_op(op).map_err(|e| e.within(&format!("ops[{i}]"))))
        .collect()
}

fn parse_op(v: &Value) -> ApiResult<Op> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("", "each op must be an object").at(""))?;
    for k in obj.keys() {
        if !["op", "kind", "name", "spec", "if_match", "if_none_match"].contains(&k.as_str()) {
            return Err(ApiError::invalid(
                k.clone(),
                format!("unknown field `{k}` in an op"),
            ));
        }
    }
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let kind = match text("kind") {
        Some("host") => Kind::Host,
        Some("option") => Kind::Option,
        other => {
            return Err(ApiError::invalid(
                "kind",
                format!(
                    "kind `{}` is not `host` or `option`",
                    other.unwrap_or("(missing)")
                ),
            ))
        }
    };
    let raw =
        text("name").ok_or_else(|| ApiError::invalid("name", "every op needs a string `name`"))?;
    let name = Name::parse(raw)?;
    let given = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let precondition = match (given("if_match"), given("if_none_match")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "if_none_match",
                "give `if_match` or `if_none_match`, not both",
            ))
        }
        (Some(Value::String(s)), None) if s == "*" => Precondition::if_exists(),
        (Some(Value::String(s)), None) => {
            Precondition::if_match(parse_etag(s).ok_or_else(|| {
                ApiError::invalid(
                    "if_match",
                    format!("if_match `{s}` is not an ETag (64 hex digits, quotes optional)"),
                )
            })?)
        }
        (None, None) => Precondition::NONE,
        (None, Some(Value::String(s))) if s == "*" => Precondition::if_absent(),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "if_match",
                "`if_match` must be an ETag string",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "if_none_match",
                "`if_none_match` can only be \"*\"",
            ))
        }
    };
    match text("op") {
        Some("put") => {
            let spec = obj
                .get("spec")
                .ok_or_else(|| ApiError::invalid("spec", "a put op needs a `spec`"))?;
            let spec = parse_spec(kind, spec).map_err(|e| e.within("spec"))?;
            Ok(Op::Put {
                name,
                spec,
                precondition,
            })
        }
        Some("delete") => {
            if obj.contains_key("spec") {
                return Err(ApiError::invalid("spec", "a delete op takes no `spec`"));
            }
            if precondition == Precondition::if_absent() {
                return Err(ApiError::invalid(
                    "if_none_match",
                    "`if_none_match` only applies to put",
                ));
            }
            Ok(Op::Delete {
                kind,
                name,
                precondition,
            })
        }
        other => Err(ApiError::invalid(
            "op",
            format!(
                "op `{}` is not `put` or `delete`",
                other.unwrap_or("(missing)")
            ),
        )),
    }
}
