//! The HTTP API through `app().oneshot(...)`: status, body, and the exact
//! bytes and mode of the files left on disk.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use hostsdir_broker::http::{app, AppState, Limits};
use hostsdir_broker::reload::{ReloadScheduler, Reloader};
use hostsdir_broker::store::{Store, StoreConfig};

/// Counts reloads instead of signalling anything.
struct Recorder(AtomicU64);

impl Reloader for Recorder {
    fn method(&self) -> &'static str {
        "recorder"
    }
    fn reload(&self, _risky: bool) -> Result<String, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok("recorded".into())
    }
}

struct Broker {
    dir: tempfile::TempDir,
    app: axum::Router,
    reloads: Arc<Recorder>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Broker {
    fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }
    fn opts(&self) -> PathBuf {
        self.dir.path().join("opts")
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        (status, value, etag)
    }

    async fn batch(&self, body: Value) -> (StatusCode, Value, Option<String>) {
        self.call("POST", "/v1/batch", Some(body), &[]).await
    }

    async fn put(&self, uri: &str, body: Value) -> (StatusCode, Value, Option<String>) {
        self.call("PUT", uri, Some(body), &[]).await
    }
}

fn start() -> Broker {
    start_with(false)
}

const READ_TOKEN: &str = "read-token-0123456789";
const WRITE_TOKEN: &str = "write-token-0123456789";

fn start_with(auth: bool) -> Broker {
    start_seeded(auth, |_| {})
}

/// A broker over directories that `seed` filled before it started.
fn start_seeded(auth: bool, seed: impl FnOnce(&Path)) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
    std::fs::create_dir_all(dir.path().join("opts")).unwrap();
    seed(dir.path());
    let tokens = auth.then(|| {
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            format!("# roles\nread {READ_TOKEN}\nwrite {WRITE_TOKEN}\n"),
        )
        .unwrap();
        hostsdir_broker::http::auth::Tokens::load(path).unwrap()
    });
    let reloads = Arc::new(Recorder(AtomicU64::new(0)));
    // A quiet period long enough that a burst of in-process requests on a
    // slow, shared CI disk still falls inside one.
    let scheduler = ReloadScheduler::new(
        reloads.clone(),
        Duration::from_millis(100),
        Duration::from_millis(1000),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(scheduler.clone().run(async {
        let _ = stopped.await;
    }));
    let config = StoreConfig::new(dir.path().join("hosts"), dir.path().join("opts"));
    let store = Store::open(config, scheduler.clone()).unwrap();
    let state = AppState {
        store,
        reloads: scheduler,
        lease_file: Some(dir.path().join("leases")),
        started: Instant::now(),
        tokens,
    };
    Broker {
        app: app(state, Limits::default()),
        dir,
        reloads,
        _stop: stop,
    }
}

/// Every visible file in `dir` with its bytes, sorted; fails on a temp file.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != ".hostsdir-broker.lock")
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            assert!(!name.starts_with('.'), "temp file left behind: {name}");
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn put_host_writes_the_ironic_line_with_mode_0644() {
    let b = start();
    let (status, body, etag) = b
        .put(
            "/v1/hosts/ironic-52:54:00:aa:bb:cc.conf",
            json!({"macs": ["52-54-00-AA-BB-CC"], "set_tags": ["t1", "ironic"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["line"], "52:54:00:aa:bb:cc,set:t1,set:ironic");
    assert_eq!(body["macs"], json!(["52:54:00:aa:bb:cc"]));
    assert_eq!(body["changed"], true);
    let expected_etag = sha256_hex(b"52:54:00:aa:bb:cc,set:t1,set:ironic\n");
    assert_eq!(body["etag"], expected_etag.as_str());
    assert_eq!(etag.unwrap(), format!("\"{expected_etag}\""));
    assert_eq!(
        files(&b.hosts()),
        vec![(
            "ironic-52:54:00:aa:bb:cc.conf".to_string(),
            "52:54:00:aa:bb:cc,set:t1,set:ironic\n".to_string()
        )]
    );
    assert_eq!(
        mode(&b.hosts().join("ironic-52:54:00:aa:bb:cc.conf")),
        0o644
    );

    let (status, body, _) = b
        .call("GET", "/v1/hosts/ironic-52:54:00:aa:bb:cc.conf", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["set_tags"], json!(["t1", "ironic"]));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn same_bytes_are_unchanged_and_need_no_reload() {
    let b = start();
    let spec = json!({"macs": ["52:54:00:00:00:01"], "ipv4": "10.0.0.5", "hostname": "node-1"});
    assert_eq!(
        b.put("/v1/hosts/n1", spec.clone()).await.0,
        StatusCode::CREATED
    );
    let before = std::fs::metadata(b.hosts().join("n1")).unwrap();
    let (status, body, _) = b.put("/v1/hosts/n1", spec).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["changed"], false);
    assert_eq!(body["reload"], "not_needed");
    let after = std::fs::metadata(b.hosts().join("n1")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(before.ino(), after.ino(), "the file was rewritten");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.reloads.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn replace_and_delete_schedule_a_reload_and_wait_reload_waits_for_it() {
    let b = start();
    b.put(
        "/v1/hosts/n1",
        json!({"macs": ["52:54:00:00:00:01"], "ipv4": "10.0.0.5"}),
    )
    .await;
    assert_eq!(
        b.reloads.0.load(Ordering::SeqCst),
        0,
        "a create needs no reload"
    );
    let (status, body, _) = b
        .put(
            "/v1/hosts/n1?wait=reload",
            json!({"macs": ["52:54:00:00:00:01"], "ipv4": "10.0.0.6"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reload"], "delivered");
    assert_eq!(b.reloads.0.load(Ordering::SeqCst), 1);
    let (status, _, _) = b
        .call("DELETE", "/v1/hosts/n1?wait=reload", None, &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(b.reloads.0.load(Ordering::SeqCst), 2);
    assert!(files(&b.hosts()).is_empty());
    let (status, body, _) = b.call("DELETE", "/v1/hosts/n1", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn conditional_requests() {
    let b = start();
    let spec = json!({"macs": ["52:54:00:00:00:01"]});
    let (_, _, etag) = b.put("/v1/hosts/n1", spec.clone()).await;
    let etag = etag.unwrap();
    // create-only on an existing entry
    let (status, body, _) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(spec.clone()),
            &[("if-none-match", "*")],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    // stale If-Match
    let wrong = format!("\"{}\"", "0".repeat(64));
    let (status, body, _) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(json!({"macs": ["52:54:00:00:00:02"]})),
            &[("if-match", wrong.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&wrong),
        "{body}"
    );
    assert_eq!(files(&b.hosts())[0].1, "52:54:00:00:00:01\n");
    // matching If-Match
    let (status, _, new_etag) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(json!({"macs": ["52:54:00:00:00:02"]})),
            &[("if-match", etag.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // the old ETag no longer deletes
    let (status, _, _) = b
        .call(
            "DELETE",
            "/v1/hosts/n1",
            None,
            &[("if-match", etag.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, _, _) = b
        .call(
            "DELETE",
            "/v1/hosts/n1",
            None,
            &[("if-match", new_etag.unwrap().as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // If-Match on an absent entry
    let (status, _, _) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(spec),
            &[("if-match", etag.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(files(&b.hosts()).is_empty());
}

#[tokio::test]
async fn a_mac_or_ip_belongs_to_one_entry() {
    let b = start();
    b.put(
        "/v1/hosts/a",
        json!({"macs": ["52:54:00:00:00:01"], "ipv4": "10.0.0.5"}),
    )
    .await;
    let (status, body, _) = b
        .put("/v1/hosts/b", json!({"macs": ["52:54:00:00:00:01"]}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "conflict");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("52:54:00:00:00:01") && msg.contains("`a`"),
        "{msg}"
    );
    let (status, body, _) = b
        .put(
            "/v1/hosts/b",
            json!({"macs": ["52:54:00:00:00:02"], "ipv4": "10.0.0.5"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["field"], "ipv4");
    assert_eq!(files(&b.hosts()).len(), 1);
    // moving a MAC inside one batch is fine: delete a, create b
    let (status, body, _) = b
        .batch(json!({"ops": [
            {"op": "put", "kind": "host", "name": "b", "spec": {"macs": ["52:54:00:00:00:01"]}},
            {"op": "delete", "kind": "host", "name": "a"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        files(&b.hosts()),
        vec![("b".to_string(), "52:54:00:00:00:01\n".to_string())]
    );
}

#[tokio::test]
async fn rejected_requests_write_nothing_and_name_the_bad_value() {
    let b = start();
    b.put("/v1/hosts/keep", json!({"macs": ["52:54:00:00:00:09"]}))
        .await;
    let before = files(&b.hosts());
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/v1/hosts/bad%20name",
            json!({"macs": ["52:54:00:00:00:01"]}),
            "invalid_name",
            "bad name",
        ),
        (
            "/v1/hosts/.hidden",
            json!({"macs": ["52:54:00:00:00:01"]}),
            "invalid_name",
            ".hidden",
        ),
        (
            "/v1/hosts/x~",
            json!({"macs": ["52:54:00:00:00:01"]}),
            "invalid_name",
            "x~",
        ),
        (
            "/v1/hosts/n",
            json!({"macs": ["52:54:00:00:00:01"], "ipv4": "10.250.0.300"}),
            "invalid_value",
            "10.250.0.300",
        ),
        (
            "/v1/hosts/n",
            json!({"macs": ["52:54:00:00:00:01"], "hostname": "12345"}),
            "invalid_value",
            "12345",
        ),
        (
            "/v1/hosts/n",
            json!({"macs": ["52:54:00:00:00:01"], "lease_time": 60}),
            "invalid_value",
            "60",
        ),
        (
            "/v1/hosts/n",
            json!({"macs": ["52:54:00:00:00:01,ignore"]}),
            "invalid_value",
            "ignore",
        ),
        (
            "/v1/hosts/n",
            json!({"line": "52:54:00:00:00:01\n52:54:00:00:00:02"}),
            "invalid_value",
            "",
        ),
        (
            "/v1/hosts/n",
            json!({"ipv4": "10.0.0.1"}),
            "invalid_value",
            "",
        ),
        (
            "/v1/options/o",
            json!({"lines": ["optoin:router,10.0.0.1"]}),
            "invalid_value",
            "optoin:router",
        ),
    ];
    for (uri, body, code, named) in cases {
        let (status, answer, _) = b.put(uri, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body} -> {answer}");
        assert_eq!(answer["error"]["code"], code, "{uri} {body} -> {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(named),
            "{uri} {body} -> {answer}"
        );
    }
    let (status, answer, _) = b
        .call(
            "PUT",
            "/v1/hosts/n",
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "malformed_json");
    let resp = b
        .app
        .clone()
        .oneshot(
            Request::put("/v1/hosts/n")
                .header("content-type", "text/plain")
                .body(Body::from("x"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = "a".repeat(2 << 20);
    let resp = b
        .app
        .clone()
        .oneshot(
            Request::put("/v1/hosts/n")
                .header("content-type", "application/json")
                .body(Body::from(format!("{{\"line\":\"{big}\"}}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(files(&b.hosts()), before);
    assert!(files(&b.opts()).is_empty());
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let b = start();
    let (status, body, _) = b
        .batch(json!({"ops": [
                {"op": "put", "kind": "host", "name": "h1", "spec": {"macs": ["52:54:00:00:00:01"]}},
                {"op": "put", "kind": "option", "name": "o1", "spec": {"lines": ["tag:t1,67,boot.efi"]}},
                {"op": "put", "kind": "host", "name": "h2", "spec": {"macs": ["52:54:00:00:00:02"], "ipv4": "10.0.0.999"}}
            ]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("ops[2].spec"),
        "{body}"
    );
    assert!(files(&b.hosts()).is_empty() && files(&b.opts()).is_empty());

    // a failing precondition on the last op also writes nothing
    let (status, body, _) = b
        .batch(json!({"ops": [
            {"op": "put", "kind": "host", "name": "h1", "spec": {"macs": ["52:54:00:00:00:01"]}},
            {"op": "delete", "kind": "option", "name": "missing"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["field"], "ops[1]");
    assert!(files(&b.hosts()).is_empty());

    let (status, body, _) = b
        .batch(json!({"ops": [
                {"op": "put", "kind": "host", "name": "h1", "spec": {"macs": ["52:54:00:00:00:01"], "set_tags": ["t1", "ironic"]}},
                {"op": "put", "kind": "option", "name": "o1", "spec": {"lines": ["tag:t1,67,boot.efi", "tag:t1,tag:!ipxe,67,undionly.kpxe"]}}
            ]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], 201);
    assert_eq!(
        files(&b.opts()),
        vec![(
            "o1".to_string(),
            "tag:t1,67,boot.efi\ntag:t1,tag:!ipxe,67,undionly.kpxe\n".to_string()
        )]
    );
}

#[tokio::test]
async fn list_filters_and_pages() {
    let b = start();
    for i in 0..5 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        b.put(
            &format!("/v1/hosts/ironic-{i}"),
            json!({"macs": [format!("52:54:00:00:00:0{i}")], "set_tags": [tag]}),
        )
        .await;
    }
    b.put("/v1/hosts/other", json!({"macs": ["52:54:00:00:01:00"]}))
        .await;
    let (_, body, _) = b
        .call("GET", "/v1/hosts?prefix=ironic-&limit=2", None, &[])
        .await;
    let names: Vec<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["ironic-0", "ironic-1"]);
    assert_eq!(body["next"], "ironic-1");
    let (_, body, _) = b
        .call(
            "GET",
            "/v1/hosts?prefix=ironic-&limit=2&after=ironic-1",
            None,
            &[],
        )
        .await;
    assert_eq!(body["items"][0]["name"], "ironic-2");
    let (_, body, _) = b.call("GET", "/v1/hosts?tag=odd", None, &[]).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(body["next"], Value::Null);
    let (_, body, _) = b
        .call("GET", "/v1/hosts?mac=52-54-00-00-01-00", None, &[])
        .await;
    assert_eq!(body["items"][0]["name"], "other");
    let (status, body, _) = b.call("GET", "/v1/hosts?limit=0", None, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "limit");
}

#[tokio::test]
async fn sync_replaces_exactly_the_prefixed_set() {
    let b = start();
    b.put("/v1/hosts/c1-a", json!({"macs": ["52:54:00:00:00:01"]}))
        .await;
    b.put("/v1/hosts/c1-b", json!({"macs": ["52:54:00:00:00:02"]}))
        .await;
    b.put("/v1/hosts/c2-a", json!({"macs": ["52:54:00:00:00:03"]}))
        .await;
    let (status, body, _) = b
        .put(
            "/v1/hosts?prefix=c1-&wait=reload",
            json!({"items": {"c1-b": {"macs": ["52:54:00:00:00:02"]}, "c1-c": {"macs": ["52:54:00:00:00:01"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<_> = files(&b.hosts()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["c1-b", "c1-c", "c2-a"]);
    assert_eq!(
        b.reloads.0.load(Ordering::SeqCst),
        1,
        "one reload for the whole sync"
    );
    let (status, _, _) = b
        .put(
            "/v1/hosts?prefix=c1-",
            json!({"items": {"c2-x": {"macs": ["52:54:00:00:00:07"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn two_hundred_concurrent_deletes_make_one_reload() {
    let b = Arc::new(start());
    let ops: Vec<Value> = (0..200).map(|i| json!({"op": "put", "kind": "host", "name": format!("h{i}"), "spec": {"macs": [format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256)]}})).collect();
    let (status, _, _) = b
        .call("POST", "/v1/batch", Some(json!({"ops": ops})), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.call("DELETE", &format!("/v1/hosts/h{i}"), None, &[])
                .await
                .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::NO_CONTENT);
    }
    let (status, _, _) = b.call("POST", "/v1/reload?wait=reload", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let n = b.reloads.0.load(Ordering::SeqCst);
    // The deletes coalesce into one reload (or a few if the max delay hit);
    // the explicit /v1/reload adds at most one more.
    assert!((1..=4).contains(&n), "{n} reloads");
    assert!(files(&b.hosts()).is_empty());
}

#[tokio::test]
async fn start_up_indexes_existing_files_and_removes_stale_temps() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("ironic-52:54:00:aa:bb:cc.conf"),
        "52:54:00:aa:bb:cc,set:x,set:ironic\n",
    )
    .unwrap();
    std::fs::write(hosts.join("broken"), "52:54:00:aa:bb:dd,10.0.0.300\n").unwrap();
    std::fs::write(hosts.join(".broken.Xy12.hdb-tmp"), "half").unwrap();
    let reloads = Arc::new(Recorder(AtomicU64::new(0)));
    let scheduler = ReloadScheduler::new(
        reloads,
        Duration::from_millis(20),
        Duration::from_millis(200),
    );
    let store = Store::open(
        StoreConfig::new(hosts.clone(), dir.path().join("opts")),
        scheduler,
    )
    .unwrap();
    assert!(!hosts.join(".broken.Xy12.hdb-tmp").exists());
    assert!(store
        .get(
            hostsdir_broker::store::Kind::Host,
            "ironic-52:54:00:aa:bb:cc.conf"
        )
        .is_some());
    let problems = store.read(|i| i.problems.clone());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].file, "broken");
    assert_eq!(
        std::fs::read_to_string(hosts.join("broken")).unwrap(),
        "52:54:00:aa:bb:dd,10.0.0.300\n",
        "never rewritten"
    );
}

#[tokio::test]
async fn leases_status_and_probes() {
    let b = start();
    std::fs::write(
        b.dir.path().join("leases"),
        "1732400000 52:54:00:aa:bb:cc 10.0.0.5 node-1 *\n0 52:54:00:aa:bb:dd 10.0.0.6 * *\n",
    )
    .unwrap();
    let (status, body, _) = b
        .call("GET", "/v1/leases?mac=52:54:00:AA:BB:CC", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"items": [{"expires": 1732400000u64, "mac": "52:54:00:aa:bb:cc", "ip": "10.0.0.5", "hostname": "node-1", "client_id": null}]})
    );
    let (status, body, _) = b.call("GET", "/v1/status", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["entries"]["hosts"], 0);
    assert_eq!(body["reload"]["method"], "recorder");
    assert_eq!(b.call("GET", "/healthz", None, &[]).await.0, StatusCode::OK);
    assert_eq!(b.call("GET", "/readyz", None, &[]).await.0, StatusCode::OK);
    let (status, body, _) = b.call("GET", "/v1/nothing", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "no_route");
}

#[tokio::test]
async fn tokens_and_roles() {
    let b = start_with(true);
    let spec = json!({"macs": ["52:54:00:00:00:01"]});
    let bearer = |t: &str| format!("Bearer {t}");
    let (status, body, _) = b.put("/v1/hosts/n1", spec.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _, _) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(spec.clone()),
            &[("authorization", &bearer("wrong-token-0123456789"))],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body, _) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(spec.clone()),
            &[("authorization", &bearer(READ_TOKEN))],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(READ_TOKEN),
        "the token leaked: {body}"
    );
    assert!(files(&b.hosts()).is_empty());
    let (status, _, _) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(spec),
            &[("authorization", &bearer(WRITE_TOKEN))],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = b
        .call(
            "GET",
            "/v1/hosts/n1",
            None,
            &[("authorization", &bearer(READ_TOKEN))],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = b.call("GET", "/v1/hosts/n1", None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.call("GET", "/healthz", None, &[]).await.0, StatusCode::OK);
    assert_eq!(b.call("GET", "/readyz", None, &[]).await.0, StatusCode::OK);
}

/// The value of the first sample line starting with `prefix` (0 if absent).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_after_requests() {
    let b = start();
    let scrape = || async {
        let resp = b
            .app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    };
    let put_201 = r#"hostsdir_broker_http_requests_total{route="/v1/hosts/{name}",method="PUT",status="201"}"#;
    let conflicts = "hostsdir_broker_conflicts_total";
    let before = scrape().await;
    b.put("/v1/hosts/m1", json!({"macs": ["52:54:00:00:0a:01"]}))
        .await;
    b.put("/v1/hosts/m2", json!({"macs": ["52:54:00:00:0a:01"]}))
        .await;
    let after = scrape().await;
    // Metrics are process-wide and tests run in parallel: compare deltas.
    assert!(
        sample(&after, put_201) >= sample(&before, put_201) + 1.0,
        "{after}"
    );
    assert!(
        sample(&after, conflicts) >= sample(&before, conflicts) + 1.0,
        "{after}"
    );
    assert!(
        after.contains("hostsdir_broker_dir_fsync_seconds_count"),
        "{after}"
    );
    assert!(
        after.contains(r#"hostsdir_broker_entries{name="host"} 1"#),
        "{after}"
    );
}

#[tokio::test]
async fn a_replace_waits_for_a_legacy_writers_flock() {
    // Ironic's stock provider (and other legacy writers) lock the target
    // file itself; the broker must not replace it under them.
    let b = start();
    b.put("/v1/hosts/legacy", json!({"macs": ["52:54:00:00:0b:01"]}))
        .await;
    let path = b.hosts().join("legacy");
    let held = std::fs::File::open(&path).unwrap();
    held.lock().unwrap();
    let app = b.app.clone();
    let put = tokio::spawn(async move {
        let req = Request::put("/v1/hosts/legacy")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"macs": ["52:54:00:00:0b:02"]}).to_string(),
            ))
            .unwrap();
        app.oneshot(req).await.unwrap().status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!put.is_finished(), "the replace did not wait for the lock");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "52:54:00:00:0b:01\n"
    );
    held.unlock().unwrap();
    assert_eq!(put.await.unwrap(), StatusCode::OK);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "52:54:00:00:0b:02\n"
    );
}

#[tokio::test]
async fn openapi_document_matches_the_router() {
    let b = start();
    let (status, doc, _) = b.call("GET", "/openapi.json", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        hostsdir_broker::http::openapi::ROUTES.len()
    );
    for (path, ops) in paths {
        let uri = path.replace("{name}", "probe-entry");
        for method in ["get", "put", "post", "delete", "patch"] {
            let documented = ops.get(method).is_some();
            let body = matches!(method, "put" | "post" | "patch").then(|| json!({}));
            let (status, answer, _) = b.call(&method.to_uppercase(), &uri, body, &[]).await;
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no such route"));
            assert_eq!(
                documented, !unrouted,
                "{method} {path}: documented={documented}, answered {status} {answer}"
            );
        }
    }
    // Every schema reference resolves.
    let text = doc.to_string();
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(
            doc["components"]["schemas"].get(&name).is_some(),
            "dangling $ref {name}"
        );
    }
}

#[tokio::test]
async fn a_file_the_broker_cannot_parse_can_be_read_replaced_and_deleted() {
    // Stock Ironic writes DHCPv6 boot URLs as DHCPv4 option 59, which the
    // broker refuses; such files exist and must stay manageable.
    let stock =
        "tag:t1,tag:!ipxe,67,snponly.efi\ntag:t1,tag:!ipxe6,59,tftp://[2001:db8::10]/snponly.efi\n";
    let b = start_seeded(false, |d| {
        std::fs::write(d.join("opts/ironic-node.conf"), stock).unwrap();
        std::fs::write(d.join("opts/ironic-other.conf"), stock).unwrap();
    });
    let (status, body, etag) = b
        .call("GET", "/v1/options/ironic-node.conf", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["valid"], false);
    assert!(
        body["problem"].as_str().unwrap().contains("option6:59"),
        "{body}"
    );
    assert_eq!(
        etag.unwrap(),
        format!("\"{}\"", sha256_hex(stock.as_bytes()))
    );

    // Replacing it is a replace (200) and needs a reload.
    let (status, body, _) = b
        .call(
            "PUT",
            "/v1/options/ironic-node.conf?wait=reload",
            Some(json!({"lines": ["tag:t1,tag:!ipxe,67,snponly.efi"]})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reload"], "delivered");
    assert_eq!(
        std::fs::read_to_string(b.opts().join("ironic-node.conf")).unwrap(),
        "tag:t1,tag:!ipxe,67,snponly.efi\n"
    );

    // Deleting one works too, with If-Match on its ETag.
    let tag = format!("\"{}\"", sha256_hex(stock.as_bytes()));
    let (status, body, _) = b
        .call(
            "DELETE",
            "/v1/options/ironic-other.conf?wait=reload",
            None,
            &[("if-match", tag.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!b.opts().join("ironic-other.conf").exists());
    assert_eq!(b.reloads.0.load(Ordering::SeqCst), 2);
    let (_, status, _) = b.call("GET", "/v1/status", None, &[]).await;
    assert!(
        status["problems"].as_array().unwrap().is_empty(),
        "{status}"
    );
}

#[tokio::test]
async fn preconditions_and_queries_are_refused_with_the_error_shape() {
    let b = start();
    let spec = json!({"macs": ["52:54:00:aa:bb:71"]});
    let (s, _, etag) = b.put("/v1/hosts/p1", spec.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    let etag = etag.unwrap();
    // A bare ETag or other text is not an entity-tag list: 400 naming the
    // header (RFC 9110 section 13.1.1).
    let bare = etag.trim_matches('"').to_string();
    for bad in [bare.as_str(), "{}", "\"unterminated"] {
        let (s, body, _) = b
            .call("DELETE", "/v1/hosts/p1", None, &[("if-match", bad)])
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["field"], "If-Match");
    }
    // Well-formed tags that cannot match under strong comparison (weak, or
    // not this API's form) fail the condition: 412, nothing removed.
    let weak = format!("W/{etag}");
    for never in [weak.as_str(), "\"00\"", "\"00\", W/\"x\""] {
        let (s, body, _) = b
            .call("DELETE", "/v1/hosts/p1", None, &[("if-match", never)])
            .await;
        assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{never}: {body}");
    }
    // A list matches when any of its tags does.
    let (s, body, _) = b
        .call(
            "PUT",
            "/v1/hosts/p1",
            Some(spec.clone()),
            &[("if-match", &format!("\"00\", {etag}"))],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // If-None-Match compares weakly: W/ of the current tag excludes it; a
    // foreign tag excludes nothing.
    let (s, body, _) = b
        .call(
            "PUT",
            "/v1/hosts/p1",
            Some(spec.clone()),
            &[("if-none-match", &weak)],
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{body}");
    let (s, body, _) = b
        .call(
            "PUT",
            "/v1/hosts/p1",
            Some(spec.clone()),
            &[("if-none-match", "\"00\"")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // An empty one lists no ETag: it matches nothing.
    let (s, body, _) = b
        .call("DELETE", "/v1/hosts/p1", None, &[("if-match", "")])
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{body}");
    // A repeated query parameter: 400 invalid_query naming it.
    let (s, body, _) = b
        .call("DELETE", "/v1/hosts/p1?wait=reload&wait=reload", None, &[])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_query");
    assert_eq!(body["error"]["field"], "wait");
    assert!(
        b.hosts().join("p1").exists(),
        "a refused delete removed the file"
    );
    // In a batch, a null precondition is an absent one.
    let (s, body, _) = b
        .batch(json!({"ops": [{"op": "put", "kind": "host", "name": "p2",
            "spec": {"macs": ["52:54:00:aa:bb:72"]}, "if_match": null, "if_none_match": "*"}]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // A whole number written as a float is that number.
    let (s, body, _) = b
        .put(
            "/v1/hosts/p3",
            json!({"macs": ["52:54:00:aa:bb:73"], "lease_time": 3600.0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["line"], "52:54:00:aa:bb:73,3600");
}
