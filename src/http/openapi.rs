//! `GET /openapi.json`: an OpenAPI 3.0 description of the API, built from
//! the route table below. A test walks the table against the real router:
//! every documented operation must be served, and every other method on a
//! documented path must be refused with 405. (A wholly new path is not
//! caught: axum cannot list its routes; add it here with its module.)

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::AppState;

/// Who may call a route when tokens are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Open,
    /// A `read` or `write` token.
    Read,
    /// A `write` token.
    Write,
}

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method, lowercase.
    pub method: &'static str,
    /// Path template as axum spells it.
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Schema of the JSON body, if it takes one.
    pub body: Option<&'static str>,
    /// Success status and schema of its body (`None`: no body).
    pub ok: (u16, Option<&'static str>),
    /// Error statuses it can answer.
    pub errors: &'static [u16],
    /// Token role needed.
    pub access: Access,
    /// Query parameters it reads.
    pub query: &'static [&'static str],
}

const W: &[u16] = &[400, 401, 403, 409, 412, 413, 415, 503, 507];

/// Every route the API serves.
pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/v1/hosts",
        summary: "List host entries, sorted by name",
        body: None,
        ok: (200, Some("HostList")),
        errors: &[400, 401, 403],
        access: Access::Read,
        query: &["mac", "tag", "prefix", "limit", "after"],
    },
    Route {
        method: "put",
        path: "/v1/hosts",
        summary: "Make the host entries named PREFIX… exactly the given set",
        body: Some("SyncRequest"),
        ok: (200, Some("BatchResult")),
        errors: W,
        access: Access::Write,
        query: &["prefix", "wait"],
    },
    Route {
        method: "get",
        path: "/v1/hosts/{name}",
        summary: "Read one host entry",
        body: None,
        ok: (200, Some("Host")),
        errors: &[400, 401, 403, 404],
        access: Access::Read,
        query: &[],
    },
    Route {
        method: "put",
        path: "/v1/hosts/{name}",
        summary: "Create or replace a host entry",
        body: Some("HostSpec"),
        ok: (200, Some("Host")),
        errors: W,
        access: Access::Write,
        query: &["wait"],
    },
    Route {
        method: "delete",
        path: "/v1/hosts/{name}",
        summary: "Remove a host entry",
        body: None,
        ok: (204, None),
        errors: &[400, 401, 403, 404, 412, 503],
        access: Access::Write,
        query: &["wait"],
    },
    Route {
        method: "get",
        path: "/v1/options",
        summary: "List option entries, sorted by name",
        body: None,
        ok: (200, Some("OptionsList")),
        errors: &[400, 401, 403],
        access: Access::Read,
        query: &["tag", "prefix", "limit", "after"],
    },
    Route {
        method: "put",
        path: "/v1/options",
        summary: "Make the option entries named PREFIX… exactly the given set",
        body: Some("SyncRequest"),
        ok: (200, Some("BatchResult")),
        errors: W,
        access: Access::Write,
        query: &["prefix", "wait"],
    },
    Route {
        method: "get",
        path: "/v1/options/{name}",
        summary: "Read one option entry",
        body: None,
        ok: (200, Some("Options")),
        errors: &[400, 401, 403, 404],
        access: Access::Read,
        query: &[],
    },
    Route {
        method: "put",
        path: "/v1/options/{name}",
        summary: "Create or replace an option entry",
        body: Some("OptionsSpec"),
        ok: (200, Some("Options")),
        errors: W,
        access: Access::Write,
        query: &["wait"],
    },
    Route {
        method: "delete",
        path: "/v1/options/{name}",
        summary: "Remove an option entry",
        body: None,
        ok: (204, None),
        errors: &[400, 401, 403, 404, 412, 503],
        access: Access::Write,
        query: &["wait"],
    },
    Route {
        method: "post",
        path: "/v1/batch",
        summary: "Apply many ops all-or-nothing under one lock, with at most one reload",
        body: Some("BatchRequest"),
        ok: (200, Some("BatchResult")),
        errors: W,
        access: Access::Write,
        query: &["wait"],
    },
    Route {
        method: "post",
        path: "/v1/reload",
        summary: "Schedule a reload of dnsmasq",
        body: None,
        ok: (200, Some("ReloadAnswer")),
        errors: &[400, 401, 403, 503],
        access: Access::Write,
        query: &["wait"],
    },
    Route {
        method: "get",
        path: "/v1/leases",
        summary: "dnsmasq's lease file, parsed",
        body: None,
        ok: (200, Some("Leases")),
        errors: &[400, 401, 403, 404, 503],
        access: Access::Read,
        query: &["mac"],
    },
    Route {
        method: "get",
        path: "/v1/status",
        summary: "Entries, problems, dnsmasq and reload state",
        body: None,
        ok: (200, Some("Status")),
        errors: &[401, 403],
        access: Access::Read,
        query: &[],
    },
    Route {
        method: "get",
        path: "/healthz",
        summary: "200 while the process serves",
        body: None,
        ok: (200, Some("Probe")),
        errors: &[],
        access: Access::Open,
        query: &[],
    },
    Route {
        method: "get",
        path: "/readyz",
        summary: "200 when the directories are writable and lockable",
        body: None,
        ok: (200, Some("Probe")),
        errors: &[503],
        access: Access::Open,
        query: &[],
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (text format)",
        body: None,
        ok: (200, None),
        errors: &[],
        access: Access::Open,
        query: &[],
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        body: None,
        ok: (200, Some("Object")),
        errors: &[],
        access: Access::Open,
        query: &[],
    },
];

/// The route serving the document.
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

fn query_param(name: &str) -> Value {
    let (desc, schema) = match name {
        "wait" => (
            "`reload`: answer only after a reload covering the change was delivered",
            json!({"type": "string", "enum": ["reload"]}),
        ),
        "limit" => (
            "Most items per page (1–10000, default 1000)",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
        ),
        "after" => (
            "Cursor: only names after this (the previous page's `next`)",
            json!({"type": "string"}),
        ),
        "prefix" => ("Only names starting with this", json!({"type": "string"})),
        "mac" => ("Only this MAC", json!({"type": "string"})),
        "tag" => ("Only entries with this tag", json!({"type": "string"})),
        _ => ("", json!({"type": "string"})),
    };
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn operation(r: &Route) -> Value {
    let mut params: Vec<Value> = r.query.iter().map(|q| query_param(q)).collect();
    if r.path.contains("{name}") {
        params.push(json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$"}}));
    }
    if matches!(r.method, "put" | "delete") && r.path.contains("{name}") {
        params.push(json!({"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"}, "description": "Apply only if the entry has this ETag (`*`: if it exists)"}));
    }
    if r.method == "put" && r.path.contains("{name}") {
        params.push(json!({"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string", "enum": ["*"]}, "description": "Create only"}));
    }
    let mut responses = Map::new();
    let ok_body = match r.ok.1 {
        Some(s) => {
            json!({"description": "Success", "content": {"application/json": {"schema": schema_ref(s)}}})
        }
        None => json!({"description": "Success"}),
    };
    responses.insert(r.ok.0.to_string(), ok_body);
    if r.method == "put" && r.path.contains("{name}") {
        responses.insert("201".into(), json!({"description": "Created", "content": {"application/json": {"schema": schema_ref(r.ok.1.unwrap_or("Object"))}}}));
    }
    for code in r.errors {
        responses.insert(code.to_string(), json!({"description": "Error", "content": {"application/json": {"schema": schema_ref("Error")}}}));
    }
    let mut op = json!({"summary": r.summary, "parameters": params, "responses": responses});
    if let Some(b) = r.body {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema_ref(b)}}});
    }
    op["security"] = match r.access {
        Access::Open => json!([]),
        Access::Read | Access::Write => json!([{"bearer": []}]),
    };
    op
}

fn schemas() -> Value {
    let tags = json!({"type": "array", "items": {"type": "string", "pattern": "^!?[A-Za-z0-9_.-]{1,64}$"}});
    let host_fields = json!({
        "macs": {"type": "array", "items": {"type": "string"}, "description": "6 hex octets (`*` wildcards), colons or dashes"},
        "client_id": {"type": "string", "nullable": true},
        "set_tags": tags, "match_tags": tags,
        "ipv4": {"type": "string", "nullable": true}, "ipv6": {"type": "string", "nullable": true},
        "hostname": {"type": "string", "nullable": true},
        "lease_time": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 120}], "nullable": true},
        "ignore": {"type": "boolean"}
    });
    let mut host = host_fields.as_object().cloned().unwrap_or_default();
    host.insert("name".into(), json!({"type": "string"}));
    host.insert("line".into(), json!({"type": "string"}));
    host.insert("etag".into(), json!({"type": "string"}));
    host.insert("changed".into(), json!({"type": "boolean"}));
    host.insert(
        "reload".into(),
        json!({"type": "string", "enum": ["not_needed", "scheduled", "delivered"]}),
    );
    let option = json!({"type": "object", "properties": {"tags": tags, "option": {"type": "string"}, "value": {"type": "string"}}, "required": ["option"]});
    json!({
        "HostSpec": {"oneOf": [
            {"type": "object", "properties": host_fields, "additionalProperties": false},
            {"type": "object", "properties": {"line": {"type": "string"}}, "required": ["line"], "additionalProperties": false}
        ]},
        "Host": {"type": "object", "properties": host},
        "HostList": {"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("Host")}, "next": {"type": "string", "nullable": true}}},
        "OptionsSpec": {"oneOf": [
            {"type": "object", "properties": {"options": {"type": "array", "items": option}}, "required": ["options"], "additionalProperties": false},
            {"type": "object", "properties": {"lines": {"type": "array", "items": {"type": "string"}}}, "required": ["lines"], "additionalProperties": false}
        ]},
        "Options": {"type": "object", "properties": {"name": {"type": "string"}, "options": {"type": "array", "items": option}, "lines": {"type": "array", "items": {"type": "string"}}, "etag": {"type": "string"}, "changed": {"type": "boolean"}}},
        "OptionsList": {"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("Options")}, "next": {"type": "string", "nullable": true}}},
        "SyncRequest": {"type": "object", "properties": {"items": {"type": "object", "additionalProperties": {"type": "object"}}}, "required": ["items"]},
        "BatchRequest": {"type": "object", "properties": {"ops": {"type": "array", "items": {"type": "object", "properties": {
            "op": {"type": "string", "enum": ["put", "delete"]}, "kind": {"type": "string", "enum": ["host", "option"]},
            "name": {"type": "string"}, "spec": {"type": "object"}, "if_match": {"type": "string"}, "if_none_match": {"type": "string", "enum": ["*"]}
        }, "required": ["op", "kind", "name"]}}}, "required": ["ops"]},
        "BatchResult": {"type": "object", "properties": {"results": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "kind": {"type": "string"}, "status": {"type": "integer", "enum": [200, 201, 204]},
            "changed": {"type": "boolean"}, "etag": {"type": "string", "nullable": true}
        }}}, "reload": {"type": "string"}}},
        "ReloadAnswer": {"type": "object", "properties": {"reload": {"type": "string"}}},
        "Leases": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
            "expires": {"type": "integer"}, "mac": {"type": "string", "nullable": true}, "ip": {"type": "string"},
            "hostname": {"type": "string", "nullable": true}, "client_id": {"type": "string", "nullable": true}
        }}}}},
        "Status": {"type": "object", "additionalProperties": true},
        "Probe": {"type": "object", "additionalProperties": true},
        "Object": {"type": "object", "additionalProperties": true},
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string", "nullable": true}
        }, "required": ["code", "message", "field"]}}, "required": ["error"]}
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = operation(r);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "hostsdir-broker", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Manages dnsmasq's dhcp-hostsdir and dhcp-optsdir for many Ironic conductors."},
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
    })
}
