//! `GET /openapi.json`: an OpenAPI 3.1 description of the API, built from
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

const W: &[u16] = &[400, 401, 403, 409, 412, 413, 415, 500, 503, 507];

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
        body: Some("HostSync"),
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
        errors: &[400, 401, 403, 404, 412, 500, 503, 507],
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
        body: Some("OptionsSync"),
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
        errors: &[400, 401, 403, 404, 412, 500, 503, 507],
        access: Access::Write,
        query: &["wait"],
    },
    Route {
        method: "post",
        path: "/v1/batch",
        summary: "Apply many ops all-or-nothing under one lock, with at most one reload",
        body: Some("BatchRequest"),
        ok: (200, Some("BatchResult")),
        errors: &[400, 401, 403, 404, 409, 412, 413, 415, 500, 503, 507],
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
        summary: "200 while the process serves and its store's writer lives (503 once it died: the process is exiting)",
        body: None,
        ok: (200, Some("Probe")),
        errors: &[503],
        access: Access::Open,
        query: &[],
    },
    Route {
        method: "get",
        path: "/livez",
        summary: "The same as /healthz (the name Kubernetes' own components use)",
        body: None,
        ok: (200, Some("Probe")),
        errors: &[503],
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

/// An entry name (API.md "Names").
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$";
/// `*` or a list of entity tags (RFC 9110 `#entity-tag`), as `If-Match` and
/// `If-None-Match` carry them.
const ETAG_LIST_PATTERN: &str =
    "^[ \\t]*(\\*|((W/)?\"[^\"\\s]*\"[ \\t]*)?(,[ \\t]*((W/)?\"[^\"\\s]*\"[ \\t]*)?)*)$";
/// A MAC: six octets of one or two hex digits or `*`, all `:` or all `-`.
const MAC_PATTERN: &str = "^((?:[0-9A-Fa-f]{1,2}|\\*)(?::(?:[0-9A-Fa-f]{1,2}|\\*)){5}|(?:[0-9A-Fa-f]{1,2}|\\*)(?:-(?:[0-9A-Fa-f]{1,2}|\\*)){5})$";

fn query_param(name: &str, required: bool) -> Value {
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
        "prefix" if required => (
            "The entries whose names start with this become exactly the body's items",
            json!({"type": "string", "minLength": 1}),
        ),
        "prefix" => ("Only names starting with this", json!({"type": "string"})),
        "mac" => (
            "Only entries holding this MAC",
            json!({"type": "string", "pattern": MAC_PATTERN}),
        ),
        "tag" => ("Only entries with this tag", json!({"type": "string"})),
        _ => ("", json!({"type": "string"})),
    };
    let mut param = json!({"name": name, "in": "query", "required": required, "description": desc, "schema": schema});
    if required {
        param["example"] = json!("ironic-");
    }
    param
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_body(schema: &str, description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema_ref(schema)}}})
}

/// Links from a single entry's PUT (for stateful testing and clients).
fn entry_links(path: &str) -> Value {
    let name = json!({"name": "$response.body#/name"});
    let with_etag =
        json!({"name": "$response.body#/name", "header.If-Match": "$response.header.ETag"});
    json!({
        "GetEntry": {"operationRef": format!("#/paths/{}/get", path.replace('/', "~1")), "parameters": name},
        "DeleteEntry": {"operationRef": format!("#/paths/{}/delete", path.replace('/', "~1")), "parameters": with_etag},
        "ReplaceEntry": {"operationRef": format!("#/paths/{}/put", path.replace('/', "~1")), "parameters": with_etag},
    })
}

fn operation(r: &Route) -> Value {
    let sync = r.method == "put" && !r.path.contains("{name}") && r.body.is_some();
    let mut params: Vec<Value> = r
        .query
        .iter()
        .map(|q| query_param(q, sync && *q == "prefix"))
        .collect();
    let single = r.path.contains("{name}");
    if single {
        params.push(json!({"name": "name", "in": "path", "required": true, "description": "The entry's file name", "example": "ironic-52:54:00:aa:bb:cc.conf", "schema": {"type": "string", "pattern": NAME_PATTERN}}));
    }
    if matches!(r.method, "put" | "delete") && single {
        params.push(json!({"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string", "pattern": ETAG_LIST_PATTERN}, "description": "RFC 9110: apply only if the entry has one of these ETags (strong comparison: weak tags and tags of another form never match; `*`: if it exists); 412 otherwise, 400 if malformed"}));
        params.push(json!({"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string", "pattern": ETAG_LIST_PATTERN}, "description": "RFC 9110: apply only if the entry has none of these ETags (weak comparison; `*`: only if it does not exist, i.e. create only on PUT); 412 otherwise, 400 if malformed"}));
    }
    let mut responses = Map::new();
    let mut ok_body = match r.ok.1 {
        Some(s) => json_body(s, "Success"),
        None => json!({"description": "Success"}),
    };
    if r.method == "put" && single {
        let etag = json!({"ETag": {"description": "The entry's strong ETag", "schema": {"type": "string", "pattern": "^\"[0-9a-f]{64}\"$"}}});
        ok_body["headers"] = etag.clone();
        ok_body["links"] = entry_links(r.path);
        let mut created = json_body(r.ok.1.unwrap_or("Object"), "Created");
        created["headers"] = etag;
        created["links"] = entry_links(r.path);
        responses.insert("201".into(), created);
    } else if r.method == "get" && single {
        ok_body["headers"] = json!({"ETag": {"description": "The entry's strong ETag", "schema": {"type": "string", "pattern": "^\"[0-9a-f]{64}\"$"}}});
    }
    responses.insert(r.ok.0.to_string(), ok_body);
    for code in r.errors {
        responses.insert(
            code.to_string(),
            json_body("Error", error_description(*code)),
        );
    }
    // Any request can be cut off by --request-timeout-ms.
    responses.insert("408".into(), json_body("Error", "Request timeout"));
    let mut op = json!({"summary": r.summary, "operationId": operation_id(r), "parameters": params, "responses": responses});
    if let Some(b) = r.body {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema_ref(b)}}});
        if let Some(example) = body_example(b) {
            op["requestBody"]["content"]["application/json"]["example"] = example;
        }
    }
    op["security"] = match r.access {
        Access::Open => json!([]),
        Access::Read | Access::Write => json!([{"bearer": []}]),
    };
    op
}

/// What an error status means for the entry: which answers guarantee that
/// nothing was written, and which leave the outcome unknown.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid request (`field` names the bad value); nothing was written",
        401 | 403 => "No token, or a token without the role; nothing was written",
        404 => "No such entry (or route); nothing was written",
        409 => "A MAC or IP belongs to another entry (the message names it); nothing was written",
        412 => "If-Match / If-None-Match did not hold; nothing was written",
        413 | 415 => "Body too large, or not JSON; nothing was written",
        500 => "`outcome_unknown`: the change may be in place (a rename part-way through the request, a directory fsync that failed after it, a writer that stopped while applying it) and may not be durable; read the entry back before retrying",
        503 => "Nothing was written: `lock_timeout`, `store_unavailable`, `store_stalled`, `store_failed`, `shutting_down`. Except with `?wait=reload`: `reload_failed` and `reload_deferred` mean the change IS stored and will be served after a later reload",
        507 => "`no_space`: the disk is full; nothing was written",
        _ => "Error",
    }
}

/// A realistic body for each request schema (Ironic's shapes).
fn body_example(schema: &str) -> Option<Value> {
    Some(match schema {
        "HostSpec" => json!({"macs": ["52:54:00:aa:bb:cc"], "set_tags": ["node1", "ironic"]}),
        "OptionsSpec" => json!({"options": [
            {"tags": ["node1", "!ipxe"], "option": "67", "value": "snponly.efi"},
            {"tags": ["node1", "ipxe"], "option": "67", "value": "http://10.0.0.1:8080/boot.ipxe"}
        ]}),
        "HostSync" => {
            json!({"items": {"ironic-52:54:00:aa:bb:02.conf": {"macs": ["52:54:00:aa:bb:02"], "set_tags": ["ironic"]}}})
        }
        "OptionsSync" => {
            json!({"items": {"ironic-node2.conf": {"lines": ["tag:node2,67,snponly.efi"]}}})
        }
        "BatchRequest" => json!({"ops": [
            {"op": "put", "kind": "host", "name": "ironic-52:54:00:aa:bb:03.conf", "spec": {"macs": ["52:54:00:aa:bb:03"], "set_tags": ["node3", "ironic"]}},
            {"op": "put", "kind": "option", "name": "ironic-node3.conf", "spec": {"lines": ["tag:node3,tag:!ipxe,67,snponly.efi"]}}
        ]}),
        _ => return None,
    })
}

fn operation_id(r: &Route) -> String {
    let mut id = r.method.to_string();
    for part in r.path.split(['/', '.', '{', '}']).filter(|p| !p.is_empty()) {
        id.push('_');
        id.push_str(part);
    }
    id
}

fn schemas() -> Value {
    let tag = |matching: bool| {
        let pattern = if matching {
            "^!?[A-Za-z0-9_.-]{1,64}$"
        } else {
            "^[A-Za-z0-9_.-]{1,64}$"
        };
        json!({"type": ["array", "null"], "uniqueItems": true, "items": {"type": "string", "pattern": pattern}})
    };
    let hostname = json!({
        "type": ["string", "null"], "maxLength": 253,
        "pattern": "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
        "not": {"type": "string", "anyOf": [
            {"pattern": "^[0-9.]*$"},
            {"pattern": "^[0-9]+[smhdwSMHDW]$"},
            {"pattern": "^([iI][nN][fF][iI][nN][iI][tT][eE]|[iI][gG][nN][oO][rR][eE])$"}
        ]},
        "description": "RFC 1123 labels; not digits alone or digits and one of `smhdw` (a lease time), not `infinite` or `ignore`"
    });
    let lease_time = json!({
        "description": "`infinite`, or at least 120 seconds (at most 2^31-1): seconds as a number, or digits with an optional unit `s m h d w`",
        "anyOf": [
            {"type": "null"},
            {"type": "integer", "minimum": 120, "maximum": 2_147_483_647i64},
            {"type": "string", "pattern": "^(infinite|0*(1[2-9][0-9]|[2-9][0-9]{2}|[1-9][0-9]{3,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])[sS]?|0*([2-9]|[1-9][0-9]{1,6})[mM]|0*[1-9][0-9]{0,4}[hH]|0*[1-9][0-9]{0,3}[dD]|0*[1-9][0-9]{0,2}[wW])$"}
        ]
    });
    let host_fields = json!({
        "macs": {"type": ["array", "null"], "uniqueItems": true, "items": {"type": "string", "pattern": MAC_PATTERN},
                 "description": "6 octets of 1–2 hex digits or `*`, separated by colons or (all) dashes"},
        "client_id": {"type": ["string", "null"], "pattern": "^(\\*|[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){1,254})$"},
        "set_tags": tag(false), "match_tags": tag(true),
        "ipv4": {"type": ["string", "null"], "format": "ipv4"},
        "ipv6": {"type": ["string", "null"], "format": "ipv6"},
        "hostname": hostname,
        "lease_time": lease_time,
        "ignore": {"type": ["boolean", "null"]}
    });
    // At least one of macs, client_id (other than `*`), hostname.
    let identified = json!({"anyOf": [
        {"required": ["macs"], "properties": {"macs": {"type": "array", "minItems": 1}}},
        {"required": ["client_id"], "properties": {"client_id": {"type": "string", "not": {"const": "*"}}}},
        {"required": ["hostname"], "properties": {"hostname": {"type": "string"}}}
    ]});
    let mut host_spec_object = json!({"type": "object", "properties": host_fields, "additionalProperties": false,
        "description": "The rendered line must be at most 1024 bytes"});
    host_spec_object["allOf"] = json!([identified]);
    let line = |what: &str| json!({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$", "description": what});
    let mut host = host_fields.as_object().cloned().unwrap_or_default();
    // As stored: a line body may hold any lease dnsmasq accepts.
    host.insert(
        "lease_time".into(),
        json!({"type": ["string", "null"], "pattern": "^(infinite|[0-9]+[smhdwSMHDW]?)$"}),
    );
    host.insert(
        "name".into(),
        json!({"type": "string", "pattern": NAME_PATTERN}),
    );
    host.insert("line".into(), json!({"type": "string"}));
    host.insert(
        "etag".into(),
        json!({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
    );
    host.insert("changed".into(), json!({"type": "boolean"}));
    host.insert("valid".into(), json!({"type": "boolean"}));
    host.insert("problem".into(), json!({"type": "string"}));
    host.insert(
        "reload".into(),
        json!({"type": "string", "enum": ["not_needed", "scheduled", "delivered"]}),
    );
    let option = json!({"type": "object", "additionalProperties": false, "properties": {
        "tags": tag(true),
        "option": {"type": ["string", "integer"], "pattern": "^([1-9][0-9]{0,2}|option:[A-Za-z0-9-]+|option6:([0-9]+|[A-Za-z0-9-]+))$", "minimum": 1, "maximum": 255,
                   "description": "1–255, `option:<name>` or `option6:<number|name>`, a name every supported dnsmasq (2.90, 2.91, 2.93) knows: the names only 2.93 knows (`captive-portal`, `last-transaction`, `associated-ip`) are refused, give their numbers"},
        "value": {"type": ["string", "null"], "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                  "description": "Checked against the option's type as dnsmasq parses it (addresses, times, numbers, text), in every supported release: where 2.93 types an option that 2.90 and 2.91 do not (DHCPv4 91, 92, 114; DHCPv6 103), only values all send alike are accepted (91: `3600i`; 114 and option6:103: a URL)"}
    }, "required": ["option"]});
    let spec_for = |kind: &str| {
        if kind == "host" {
            schema_ref("HostSpec")
        } else {
            schema_ref("OptionsSpec")
        }
    };
    let mut op_variants = Vec::new();
    for kind in ["host", "option"] {
        op_variants.push(json!({"type": "object", "additionalProperties": false, "required": ["op", "kind", "name", "spec"], "properties": {
            "op": {"const": "put"}, "kind": {"const": kind}, "name": {"type": "string", "pattern": NAME_PATTERN},
            "spec": spec_for(kind),
            "if_match": {"type": ["string", "null"], "pattern": "^(\\*|[0-9a-fA-F]{64}|\"[0-9a-fA-F]{64}\")$"},
            "if_none_match": {"type": ["string", "null"], "enum": ["*", null]}
        }, "not": {"required": ["if_match", "if_none_match"]}}));
        op_variants.push(json!({"type": "object", "additionalProperties": false, "required": ["op", "kind", "name"], "properties": {
            "op": {"const": "delete"}, "kind": {"const": kind}, "name": {"type": "string", "pattern": NAME_PATTERN},
            "if_match": {"type": ["string", "null"], "pattern": "^(\\*|[0-9a-fA-F]{64}|\"[0-9a-fA-F]{64}\")$"},
            "if_none_match": {"type": "null"}
        }}));
    }
    let sync = |spec: &str| {
        json!({"type": "object", "additionalProperties": false, "required": ["items"], "properties": {"items": {"type": "object",
        "description": "entry name (each starting with the `prefix` parameter) → spec", "propertyNames": {"pattern": NAME_PATTERN}, "additionalProperties": schema_ref(spec)}}})
    };
    let list = |item: &str| json!({"type": "object", "required": ["items", "next"], "properties": {"items": {"type": "array", "items": schema_ref(item)}, "next": {"type": ["string", "null"]}}});
    json!({
        "HostSpec": {"oneOf": [
            host_spec_object,
            {"type": "object", "properties": {"line": line("A dhcp-host line, parsed with the same rules")}, "required": ["line"], "additionalProperties": false}
        ]},
        "Host": {"type": "object", "required": ["name", "line", "etag"], "properties": host},
        "HostList": list("Host"),
        "OptionsSpec": {"oneOf": [
            {"type": "object", "properties": {"options": {"type": "array", "items": option}}, "required": ["options"], "additionalProperties": false},
            {"type": "object", "properties": {"lines": {"type": "array", "items": line("A dhcp-option line")}}, "required": ["lines"], "additionalProperties": false}
        ]},
        "Options": {"type": "object", "required": ["name", "lines", "etag"], "properties": {"name": {"type": "string", "pattern": NAME_PATTERN}, "options": {"type": "array", "items": option}, "lines": {"type": "array", "items": {"type": "string"}}, "etag": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "changed": {"type": "boolean"}, "valid": {"type": "boolean"}, "problem": {"type": "string"}, "reload": {"type": "string", "enum": ["not_needed", "scheduled", "delivered"]}}},
        "OptionsList": list("Options"),
        "HostSync": sync("HostSpec"),
        "OptionsSync": sync("OptionsSpec"),
        "BatchRequest": {"type": "object", "additionalProperties": false, "required": ["ops"], "properties": {"ops": {"type": "array", "maxItems": 10000, "items": {"oneOf": op_variants}}}},
        "BatchResult": {"type": "object", "required": ["results", "reload"], "properties": {"results": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "kind": {"type": "string", "enum": ["host", "option"]}, "status": {"type": "integer", "enum": [200, 201, 204]},
            "changed": {"type": "boolean"}, "etag": {"type": ["string", "null"]}
        }}}, "reload": {"type": "string", "enum": ["not_needed", "scheduled", "delivered"]}}},
        "ReloadAnswer": {"type": "object", "required": ["reload"], "properties": {"reload": {"type": "string", "enum": ["scheduled", "delivered"]}}},
        "Leases": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
            "expires": {"type": "integer"}, "mac": {"type": ["string", "null"]}, "ip": {"type": "string"},
            "hostname": {"type": ["string", "null"]}, "client_id": {"type": ["string", "null"]}
        }}}}},
        "Status": {"type": "object", "additionalProperties": true},
        "Probe": {"type": "object", "additionalProperties": true},
        "Object": {"type": "object", "additionalProperties": true},
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]}
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
        "openapi": "3.1.0",
        "info": {"title": "hostsdir-broker", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Manages dnsmasq's dhcp-hostsdir and dhcp-optsdir for many Ironic conductors."},
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
    })
}
