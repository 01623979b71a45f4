//! `/v1/hosts` and `/v1/options`: one file per entry. The two kinds share
//! every handler; only the spec parser and the JSON view differ.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::JsonBody;
use super::conditional;
use super::error::{ApiError, ApiResult};
use super::extract::{NamePath, Query};
use super::{reload_answer, Actor, AppState};
use crate::entry::{HostSpec, Mac, Name, OptionsSpec};
use crate::store::{Entry, Etag, Kind, ListQuery, Op, Outcome, Spec, Status};

/// Routes of both entry kinds.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts", get(list_hosts).put(sync_hosts))
        .route(
            "/v1/hosts/{name}",
            get(get_host).put(put_host).delete(delete_host),
        )
        .route("/v1/options", get(list_options).put(sync_options))
        .route(
            "/v1/options/{name}",
            get(get_option).put(put_option).delete(delete_option),
        )
}

/// Parses a PUT body of `kind`.
pub(super) fn parse_spec(kind: Kind, body: &Value) -> ApiResult<Spec> {
    Ok(match kind {
        Kind::Host => Spec::Host(HostSpec::from_json(body)?),
        Kind::Option => Spec::Options(OptionsSpec::from_json(body)?),
    })
}

/// The JSON view of an entry: the spec's fields plus name, line(s), etag.
pub fn entry_json(entry: &Entry) -> Value {
    let mut obj = match &entry.spec() {
        Spec::Host(h) => serde_json::to_value(h),
        Spec::Options(o) => serde_json::to_value(o),
    }
    .ok()
    .and_then(|v| v.as_object().cloned())
    .unwrap_or_default();
    obj.insert("name".into(), json!(entry.name.as_str()));
    let text = entry.text.strip_suffix('\n').unwrap_or(&entry.text);
    match entry.kind() {
        Kind::Host => obj.insert("line".into(), json!(text)),
        Kind::Option => obj.insert(
            "lines".into(),
            json!(text.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>()),
        ),
    };
    obj.insert("etag".into(), json!(entry.etag.to_string()));
    Value::Object(obj)
}

fn name_of(raw: &str) -> ApiResult<Name> {
    Ok(Name::parse(raw)?)
}

fn etag_header(etag: Etag) -> HeaderValue {
    // A quoted hex string is always a valid header value.
    HeaderValue::from_str(&etag.quoted()).expect("quoted hex is a valid header value")
}

/// Accepts an ETag with or without its quotes (batch bodies carry it bare).
pub(super) fn parse_etag(s: &str) -> Option<Etag> {
    let s = s.trim();
    if s.starts_with('"') {
        Etag::parse_quoted(s)
    } else {
        Etag::parse_quoted(&format!("\"{s}\""))
    }
}

/// `?wait=reload`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WaitQuery {
    /// `reload` to answer only after a covering reload.
    pub(super) wait: Option<String>,
}

impl WaitQuery {
    /// True for `?wait=reload`; any other value is refused.
    pub(super) fn wants_reload(&self) -> ApiResult<bool> {
        match self.wait.as_deref() {
            None => Ok(false),
            Some("reload") => Ok(true),
            Some(other) => Err(ApiError::invalid(
                "wait",
                format!("`wait={other}` is not understood; the only value is `reload`"),
            )),
        }
    }
}

async fn get_entry(kind: Kind, state: AppState, raw: String) -> ApiResult<Response> {
    let name = name_of(&raw)?;
    if let Some(entry) = state.store.get(kind, name.as_str()) {
        return Ok((
            [(header::ETAG, etag_header(entry.etag))],
            Json(entry_json(&entry)),
        )
            .into_response());
    }
    // A file the broker cannot parse (written by someone else) still exists:
    // show it as it is, so it can be inspected, replaced or deleted.
    let unparsed = state.store.read(|i| i.unparsed(kind, &name).cloned());
    let Some(file) = unparsed else {
        return Err(ApiError::not_found(format!(
            "no {kind} entry named `{name}`"
        )));
    };
    let text = file.text.strip_suffix('\n').unwrap_or(&file.text);
    let mut body = json!({"name": name.as_str(), "etag": file.etag.to_string(), "valid": false, "problem": file.reason});
    match kind {
        Kind::Host => body["line"] = json!(text),
        Kind::Option => body["lines"] = json!(text.lines().collect::<Vec<_>>()),
    }
    Ok(([(header::ETAG, etag_header(file.etag))], Json(body)).into_response())
}

async fn put_entry(
    kind: Kind,
    state: AppState,
    actor: Actor,
    raw: String,
    q: WaitQuery,
    headers: HeaderMap,
    body: Value,
) -> ApiResult<Response> {
    let name = name_of(&raw)?;
    let wait = q.wants_reload()?;
    let spec = parse_spec(kind, &body)?;
    let precondition = conditional::precondition(&headers)?;
    let applied = state
        .store
        .apply(
            vec![Op::Put {
                name,
                spec,
                precondition,
            }],
            &actor.0,
        )
        .await?;
    let reload = reload_answer(&state, applied.reload_ticket, wait).await?;
    let Some(Outcome {
        status,
        entry: Some(entry),
        ..
    }) = applied.outcomes.into_iter().next()
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the store answered a put without an entry",
        ));
    };
    let mut body = entry_json(&entry);
    body["changed"] = json!(status != Status::Unchanged);
    body["reload"] = reload;
    let code = if status == Status::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, [(header::ETAG, etag_header(entry.etag))], Json(body)).into_response())
}

async fn delete_entry(
    kind: Kind,
    state: AppState,
    actor: Actor,
    raw: String,
    q: WaitQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let name = name_of(&raw)?;
    let wait = q.wants_reload()?;
    let precondition = conditional::precondition(&headers)?;
    let applied = state
        .store
        .apply(
            vec![Op::Delete {
                kind,
                name,
                precondition,
            }],
            &actor.0,
        )
        .await?;
    reload_answer(&state, applied.reload_ticket, wait).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query of the list endpoints.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListParams {
    mac: Option<String>,
    tag: Option<String>,
    prefix: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// Most entries one list page may hold.
const MAX_LIMIT: usize = 10_000;

async fn list_entries(kind: Kind, state: AppState, p: ListParams) -> ApiResult<Json<Value>> {
    let limit = match p.limit.as_deref() {
        None => 1000,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("limit `{l}` is not a whole number from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let mac = match p.mac.as_deref() {
        Some(m) => Some(Mac::parse(m).map_err(|msg| ApiError::invalid("mac", msg))?),
        None => None,
    };
    let query = ListQuery {
        mac,
        tag: p.tag,
        prefix: p.prefix,
        after: p.after,
        limit,
    };
    let (items, more) = state.store.read(|i| i.list(kind, &query));
    let next = if more {
        items.last().map(|e| json!(e.name.as_str()))
    } else {
        None
    };
    let items: Vec<Value> = items.iter().map(|e| entry_json(e)).collect();
    Ok(Json(
        json!({"items": items, "next": next.unwrap_or(Value::Null)}),
    ))
}

/// Query of the sync endpoints.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SyncParams {
    prefix: Option<String>,
    wait: Option<String>,
}

/// `PUT /v1/hosts?prefix=P`: the entries named `P…` become exactly `items`.
async fn sync_entries(
    kind: Kind,
    state: AppState,
    actor: Actor,
    p: SyncParams,
    body: Value,
) -> ApiResult<Json<Value>> {
    let wait = WaitQuery { wait: p.wait }.wants_reload()?;
    let prefix = match p.prefix {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(ApiError::invalid(
                "prefix",
                "replacing a set needs a non-empty `?prefix=`: the entries whose names start with it become exactly the body's items",
            ))
        }
    };
    let items = body
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("items"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::invalid(
                "items",
                "the body must be {\"items\": {\"<name>\": <spec>, …}}",
            )
            .at("")
        })?;
    let items = parse_items(kind, &prefix, items)?;
    let applied = state
        .store
        .apply(
            vec![Op::Sync {
                kind,
                prefix,
                items,
            }],
            &actor.0,
        )
        .await?;
    let reload = reload_answer(&state, applied.reload_ticket, wait).await?;
    Ok(Json(
        json!({"results": results_json(&applied.outcomes), "reload": reload}),
    ))
}

fn parse_items(
    kind: Kind,
    prefix: &str,
    items: &Map<String, Value>,
) -> ApiResult<Vec<(Name, Spec)>> {
    let mut out = Vec::with_capacity(items.len());
    for (raw, spec) in items {
        let field = format!("items.{raw}");
        let name = Name::parse(raw).map_err(|e| ApiError::from(e).at(field.clone()))?;
        if !raw.starts_with(prefix) {
            return Err(ApiError::invalid(
                field,
                format!("item `{raw}` does not start with the prefix `{prefix}`"),
            ));
        }
        out.push((name, parse_spec(kind, spec).map_err(|e| e.within(&field))?));
    }
    Ok(out)
}

macro_rules! kind_handlers {
    ($kind:expr, $get:ident, $put:ident, $delete:ident, $list:ident, $sync:ident) => {
        async fn $get(State(s): State<AppState>, NamePath(name): NamePath) -> ApiResult<Response> {
            get_entry($kind, s, name).await
        }
        async fn $put(
            State(s): State<AppState>,
            actor: Actor,
            NamePath(name): NamePath,
            Query(q): Query<WaitQuery>,
            headers: HeaderMap,
            JsonBody(body): JsonBody,
        ) -> ApiResult<Response> {
            put_entry($kind, s, actor, name, q, headers, body).await
        }
        async fn $delete(
            State(s): State<AppState>,
            actor: Actor,
            NamePath(name): NamePath,
            Query(q): Query<WaitQuery>,
            headers: HeaderMap,
        ) -> ApiResult<Response> {
            delete_entry($kind, s, actor, name, q, headers).await
        }
        async fn $list(
            State(s): State<AppState>,
            Query(p): Query<ListParams>,
        ) -> ApiResult<Json<Value>> {
            list_entries($kind, s, p).await
        }
        async fn $sync(
            State(s): State<AppState>,
            actor: Actor,
            Query(p): Query<SyncParams>,
            JsonBody(body): JsonBody,
        ) -> ApiResult<Json<Value>> {
            sync_entries($kind, s, actor, p, body).await
        }
    };
}

kind_handlers!(
    Kind::Host,
    get_host,
    put_host,
    delete_host,
    list_hosts,
    sync_hosts
);
kind_handlers!(
    Kind::Option,
    get_option,
    put_option,
    delete_option,
    list_options,
    sync_options
);

/// The `results` array of batch and sync answers.
pub(super) fn results_json(outcomes: &[Outcome]) -> Vec<Value> {
    outcomes
        .iter()
        .map(|o| {
            let status = match o.status {
                Status::Created => 201,
                Status::Replaced | Status::Unchanged => 200,
                Status::Deleted => 204,
            };
            json!({
                "name": o.name.as_str(),
                "kind": o.kind,
                "status": status,
                "changed": o.status != Status::Unchanged,
                "etag": o.entry.as_ref().map(|e| e.etag.to_string()),
            })
        })
        .collect()
}
