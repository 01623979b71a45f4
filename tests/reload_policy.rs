//! The reload policy through the HTTP API, in-process, with a fake reloader:
//! which changes are answered `not_needed` and put in place by rename, which
//! wait for a reload (and are linked in when dnsmasq would refuse them
//! now), what status and metrics report, how the stall budget defers a
//! waiting request, and how changes made behind the broker's back are
//! handled. That dnsmasq really serves each shadowing change without a
//! reload is proven with a DHCP client in `tests/shadow_e2e.rs`.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use hostsdir_broker::http::{app, AppState, Limits};
use hostsdir_broker::reload::dnsmasq::Version;
use hostsdir_broker::reload::{Policy, ReloadScheduler, Reloader, SchedulerConfig};
use hostsdir_broker::store::{Store, StoreConfig};

/// Counts reloads; each keeps "dnsmasq" busy for `busy`. Reports `version`.
struct Fake {
    count: AtomicU64,
    busy: Duration,
    version: Option<Version>,
}

impl Reloader for Fake {
    fn method(&self) -> &'static str {
        "fake"
    }
    fn reload(&self, _risky: bool) -> Result<String, String> {
        std::thread::sleep(self.busy);
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok("faked".into())
    }
    fn version(&self) -> Option<Version> {
        self.version
    }
}

struct Broker {
    dir: tempfile::TempDir,
    app: axum::Router,
    fake: Arc<Fake>,
    store: Store,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn start(policy: Policy, busy: Duration, tune: impl FnOnce(&mut SchedulerConfig)) -> Broker {
    start_version(policy, busy, None, tune)
}

fn start_version(
    policy: Policy,
    busy: Duration,
    version: Option<Version>,
    tune: impl FnOnce(&mut SchedulerConfig),
) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake {
        count: AtomicU64::new(0),
        busy,
        version,
    });
    let mut config = SchedulerConfig::new(Duration::from_millis(20), Duration::from_millis(100));
    config.policy = policy;
    tune(&mut config);
    let scheduler = ReloadScheduler::with_config(fake.clone(), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(scheduler.clone().run(async {
        let _ = stopped.await;
    }));
    let store = Store::open(
        StoreConfig::new(dir.path().join("hosts"), dir.path().join("opts")),
        scheduler.clone(),
    )
    .unwrap();
    let state = AppState {
        store: store.clone(),
        reloads: scheduler,
        lease_file: None,
        started: Instant::now(),
        tokens: None,
    };
    Broker {
        app: app(state, Limits::default()),
        dir,
        fake,
        store,
        _stop: stop,
    }
}

impl Broker {
    fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn reload_status(&self) -> Value {
        self.call("GET", "/v1/status", None).await.1["reload"].clone()
    }

    fn reloads(&self) -> u64 {
        self.fake.count.load(Ordering::SeqCst)
    }

    fn inode(&self, name: &str) -> u64 {
        std::fs::metadata(self.hosts().join(name)).unwrap().ino()
    }
}

const M1: &str = "52:54:00:00:00:01";
const M2: &str = "52:54:00:00:00:02";

/// Longer than the fake scheduler's quiet period and maximum delay.
const SETTLE: Duration = Duration::from_millis(400);

#[tokio::test]
async fn ironic_tag_changes_shadow_and_leave_ghosts_until_a_reload() {
    let b = start(Policy::Shadow, Duration::ZERO, |_| {});
    let (s, body) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(json!({"macs": [M1], "set_tags": ["t1", "ironic"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    for (tags, ignore) in [(json!(["t2", "ironic"]), false), (json!([]), true)] {
        let (s, body) = b
            .call(
                "PUT",
                "/v1/hosts/n1?wait=reload",
                Some(json!({"macs": [M1], "set_tags": tags, "ignore": ignore})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["reload"], "not_needed", "{body}");
    }
    assert_eq!(
        std::fs::read_to_string(b.hosts().join("n1")).unwrap(),
        format!("{M1},ignore\n")
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(b.reloads(), 0, "no reload for shadowing replaces");
    let r = b.reload_status().await;
    assert_eq!(r["policy"], "shadow");
    assert_eq!(r["ghosts"], 2, "{r}");
    assert_eq!(r["avoided"], 2, "{r}");

    let (_, metrics) = b.call("GET", "/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("hostsdir_broker_dnsmasq_ghost_records"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hostsdir_broker_reloads_avoided_total"),
        "{metrics}"
    );

    let (s, _) = b.call("POST", "/v1/reload?wait=reload", None).await;
    assert_eq!(s, StatusCode::OK);
    let r = b.reload_status().await;
    assert_eq!(r["ghosts"], 0, "a reload clears the ghosts: {r}");
    assert!(r["stall_ms_estimate"].is_u64(), "{r}");
}

#[tokio::test]
async fn what_does_not_shadow_waits_for_a_reload() {
    let b = start(Policy::Shadow, Duration::ZERO, |_| {});
    b.call(
        "PUT",
        "/v1/hosts/n1",
        Some(json!({"macs": [M1, M2], "set_tags": ["a"]})),
    )
    .await;
    // Dropping a MAC: the old record keeps serving M2 until a reload.
    let (s, body) = b
        .call(
            "PUT",
            "/v1/hosts/n1",
            Some(json!({"macs": [M1], "set_tags": ["a"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["reload"], "scheduled", "{body}");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(b.reloads(), 1);

    // The same address again: dnsmasq would refuse it now, so it is linked
    // in (same inode as the dotfile it was written to: no rename event) and
    // read by the reload.
    b.call(
        "PUT",
        "/v1/hosts/n2",
        Some(json!({"macs": [M2], "ipv4": "10.0.0.5"})),
    )
    .await;
    let (_, body) = b
        .call(
            "PUT",
            "/v1/hosts/n2?wait=reload",
            Some(json!({"macs": [M2], "ipv4": "10.0.0.5", "hostname": "n-2"})),
        )
        .await;
    assert_eq!(body["reload"], "delivered", "{body}");
    assert_eq!(
        std::fs::read_to_string(b.hosts().join("n2")).unwrap(),
        format!("{M2},10.0.0.5,n-2\n")
    );

    // Options: a new value for the same option and tags shadows; dropping
    // an option does not.
    let opts = |lines: Value| Some(json!({ "lines": lines }));
    b.call(
        "PUT",
        "/v1/options/o1",
        opts(json!(["tag:t,67,a.efi", "tag:t,66,10.0.0.1"])),
    )
    .await;
    let (_, body) = b
        .call(
            "PUT",
            "/v1/options/o1",
            opts(json!(["tag:t,67,b.efi", "tag:t,66,10.0.0.1"])),
        )
        .await;
    assert_eq!(body["reload"], "not_needed", "{body}");
    let (_, body) = b
        .call("PUT", "/v1/options/o1", opts(json!(["tag:t,67,b.efi"])))
        .await;
    assert_eq!(body["reload"], "scheduled", "{body}");
    let (s, _) = b.call("DELETE", "/v1/options/o1", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_address_held_by_a_ghost_waits_for_the_reload() {
    // No reload before the test looks: a long quiet period.
    let b = start(Policy::Shadow, Duration::ZERO, |c| {
        c.quiet = Duration::from_secs(60);
        c.max_delay = Duration::from_secs(60);
    });
    b.call(
        "PUT",
        "/v1/hosts/n1",
        Some(json!({"macs": [M1], "ipv4": "10.0.0.5"})),
    )
    .await;
    let (_, body) = b.call("DELETE", "/v1/hosts/n1", None).await;
    assert_eq!(body, Value::String(String::new()));
    let (s, body) = b
        .call(
            "PUT",
            "/v1/hosts/n2",
            Some(json!({"macs": [M2], "ipv4": "10.0.0.5"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["reload"], "scheduled",
        "dnsmasq still holds 10.0.0.5: {body}"
    );
    let r = b.reload_status().await;
    assert_eq!(r["ghosts"], 1, "{r}");
    assert_eq!(r["dirty_names"], 2, "n1's ghost and n2 waiting: {r}");
}

#[tokio::test]
async fn the_budget_defers_a_waiting_delete_with_a_clear_code() {
    // Each reload keeps dnsmasq busy 100 ms; 1% budget: 9.9 s apart.
    let b = start(Policy::Shadow, Duration::from_millis(100), |c| {
        c.budget = 0.01;
        c.wait_limit = Duration::from_millis(500);
    });
    b.call("PUT", "/v1/hosts/n1", Some(json!({"macs": [M1]})))
        .await;
    b.call("PUT", "/v1/hosts/n2", Some(json!({"macs": [M2]})))
        .await;
    let (s, body) = b.call("DELETE", "/v1/hosts/n1?wait=reload", None).await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "the first reload is not held back: {body}"
    );
    let started = Instant::now();
    let (s, body) = b.call("DELETE", "/v1/hosts/n2?wait=reload", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "reload_deferred", "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!b.hosts().join("n2").exists(), "the delete is stored");
    let r = b.reload_status().await;
    assert!(r["next_allowed_in_ms"].as_u64().unwrap() > 1000, "{r}");
    assert_eq!(r["budget_percent"], 1.0, "{r}");
    assert_eq!(b.reloads(), 1);
}

#[tokio::test]
async fn outside_changes_that_shadow_are_reread_and_others_reloaded() {
    let b = start(Policy::Shadow, Duration::ZERO, |_| {});
    b.call(
        "PUT",
        "/v1/hosts/n1",
        Some(json!({"macs": [M1], "set_tags": ["a"]})),
    )
    .await;
    // Another node replaces it by rename: this node's dnsmasq saw nothing.
    let path = b.hosts().join("n1");
    std::fs::write(b.hosts().join(".n1.tmp"), format!("{M1},set:b\n")).unwrap();
    std::fs::rename(b.hosts().join(".n1.tmp"), &path).unwrap();
    let written = b.inode("n1");
    assert_eq!(b.store.refresh().await.unwrap(), 1);
    assert_ne!(
        b.inode("n1"),
        written,
        "the same bytes are renamed over it, so the local inotify reads it"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{M1},set:b\n")
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(b.reloads(), 0);
    assert_eq!(b.reload_status().await["avoided"], 1);

    // Another node deletes it: only a reload removes the record.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(b.store.refresh().await.unwrap(), 1);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(b.reloads(), 1);
}

#[tokio::test]
async fn the_coalesce_policy_reloads_every_replace() {
    let b = start(Policy::Coalesce, Duration::ZERO, |_| {});
    b.call(
        "PUT",
        "/v1/hosts/n1",
        Some(json!({"macs": [M1], "set_tags": ["a"]})),
    )
    .await;
    let (_, body) = b
        .call(
            "PUT",
            "/v1/hosts/n1?wait=reload",
            Some(json!({"macs": [M1], "set_tags": ["b"]})),
        )
        .await;
    assert_eq!(body["reload"], "delivered", "{body}");
    assert_eq!(b.reloads(), 1);
    assert_eq!(b.reload_status().await["ghosts"], 0);
}

/// `/v1/status` names the rule set in force (`reload.rules`) and warns
/// about an unproven or unknown version; the table itself is unit-tested in
/// `src/reload/dnsmasq.rs`, the metric (process-wide, so not checked here
/// beside other tests) in `tests/dhcp_e2e.rs`.
#[tokio::test]
async fn status_names_the_rule_set_in_force() {
    for (version, set, fit, crashes, cost, warns) in [
        (
            Some(Version(2, 90)),
            "2.90",
            "proven",
            "crashes",
            "files_times_names_seen",
            false,
        ),
        (
            Some(Version(2, 91)),
            "2.91",
            "proven",
            "survives",
            "files_times_names_seen",
            false,
        ),
        (
            Some(Version(2, 93)),
            "2.93",
            "proven",
            "survives",
            "files",
            false,
        ),
        (
            Some(Version(2, 94)),
            "2.93",
            "newer",
            "survives",
            "files",
            true,
        ),
        (
            Some(Version(2, 92)),
            "2.91",
            "unproven",
            "survives",
            "files_times_names_seen",
            true,
        ),
        (
            None,
            "2.91",
            "unknown",
            "survives",
            "files_times_names_seen",
            true,
        ),
    ] {
        let b = start_version(Policy::Shadow, Duration::ZERO, version, |_| {});
        let r = b.reload_status().await;
        let rules = &r["rules"];
        assert_eq!(rules["set"], set, "{version:?}: {r}");
        assert_eq!(rules["fit"], fit, "{version:?}: {r}");
        assert_eq!(rules["sighup_with_set_tags"], crashes, "{version:?}: {r}");
        assert_eq!(rules["sighup_cost"], cost, "{version:?}: {r}");
        assert_eq!(rules["restart_can_pay_off"], cost != "files", "{r}");
        assert_eq!(r["churn"]["names_cost"], cost != "files", "{r}");
        assert_eq!(rules["warning"].is_string(), warns, "{version:?}: {r}");
    }
}
