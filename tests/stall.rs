//! A store whose writer is stuck stays honest: reads keep working, writes
//! are refused at once with `store_stalled` naming the likely cause, and
//! `/readyz` and `/v1/status` say so; it recovers by itself.
//!
//! Here the writer is held by a directory lock another process keeps (as a
//! dead CephFS client's lock is kept until the MDS evicts it); the real
//! node-death case, a killed ceph-fuse, is in `tests/cephfs.rs`.

mod common;

use std::fs::OpenOptions;
use std::thread;
use std::time::{Duration, Instant};

use common::{call, BrokerProcess};
use serde_json::json;

#[test]
fn a_writer_stuck_on_the_directory_lock_is_reported_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("hosts"), dir.path().join("opts"));
    let b = BrokerProcess::serve(&[
        "--hosts-dir".as_ref(),
        hosts.as_os_str(),
        "--opts-dir".as_ref(),
        opts.as_os_str(),
        "--lock-timeout-ms".as_ref(),
        "30000".as_ref(),
    ]);
    let url = |p: &str| format!("{}{p}", b.url);
    let (s, _) = call(
        "PUT",
        &url("/v1/hosts/a"),
        Some(json!({"macs": ["52:54:00:00:00:01"]})),
    );
    assert_eq!(s, 201);

    // Someone else holds the hosts directory's lock and never lets go.
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .open(hosts.join(".hostsdir-broker.lock"))
        .unwrap();
    lock.lock().unwrap();
    let stuck_url = url("/v1/hosts/b");
    let stuck = thread::spawn(move || {
        call(
            "PUT",
            &stuck_url,
            Some(json!({"macs": ["52:54:00:00:00:02"]})),
        )
    });
    thread::sleep(Duration::from_secs(6));

    let started = Instant::now();
    let (s, body) = call(
        "PUT",
        &url("/v1/hosts/c"),
        Some(json!({"macs": ["52:54:00:00:00:03"]})),
    );
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_stalled", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("node"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not after a wait"
    );
    let (s, body) = call("GET", &url("/v1/hosts/a"), None);
    assert_eq!(s, 200, "reads keep working: {body}");
    let (s, body) = call("GET", &url("/readyz"), None);
    assert_eq!(s, 503, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("have not answered"),
        "{body}"
    );
    let (s, body) = call("GET", &url("/v1/status"), None);
    assert_eq!(s, 200);
    assert!(body["writer"]["stalled"].is_string(), "{body}");

    // The lock is released (the dead client evicted): all by itself, the
    // waiting write lands and new ones are accepted.
    lock.unlock().unwrap();
    let (s, body) = stuck.join().unwrap();
    assert_eq!(s, 201, "{body}");
    let (s, body) = call(
        "PUT",
        &url("/v1/hosts/c"),
        Some(json!({"macs": ["52:54:00:00:00:03"]})),
    );
    assert_eq!(s, 201, "{body}");
    let (s, body) = call("GET", &url("/readyz"), None);
    assert_eq!(s, 200, "{body}");
    let (_, body) = call("GET", &url("/v1/status"), None);
    assert!(body["writer"]["stalled"].is_null(), "{body}");
}
