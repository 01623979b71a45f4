//! The change journal across processes: a broker that missed many
//! generations written by another catches up from the journal (re-reading
//! only the files named there) before it checks a write, and falls back to a
//! full scan when the journal cannot cover the gap.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{call, BrokerProcess, BIN};
use serde_json::json;

/// A broker that never polls (and whose inotify ignores renames), so it
/// learns of the other broker's writes only through the generation check of
/// its own writes. Its log goes to `log`.
fn start(hosts: &Path, opts: &Path, poll_ms: &str, log: &Path) -> BrokerProcess {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--poll-interval-ms",
        poll_ms,
    ])
    .arg("--hosts-dir")
    .arg(hosts)
    .arg("--opts-dir")
    .arg(opts)
    .env("RUST_LOG", "info")
    .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    BrokerProcess::start(cmd)
}

fn mac(i: usize) -> String {
    format!("52:54:00:10:{:02x}:{:02x}", i / 256, i % 256)
}

/// Every entry of a kind as (name, etag), from one broker's index.
fn listing(url: &str, kind: &str) -> Vec<(String, String)> {
    let (status, body) = call("GET", &format!("{url}/v1/{kind}?limit=10000"), None);
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<(String, String)> = items
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e["etag"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_broker_that_missed_many_generations_catches_up_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("hosts"), dir.path().join("opts"));
    let a = start(&hosts, &opts, "0", &dir.path().join("a.log"));
    let b_log = dir.path().join("b.log");
    let b = start(&hosts, &opts, "0", &b_log);

    // B writes once, so it knows the generation it left.
    let (s, _) = call(
        "PUT",
        &format!("{}/v1/hosts/b0", b.url),
        Some(json!({"macs": ["52:54:00:20:00:00"]})),
    );
    assert_eq!(s, 201);

    // A: 300 generations (one request each) of creates, deletes, replaces.
    for i in 0..200 {
        let (s, body) = call(
            "PUT",
            &format!("{}/v1/hosts/h{i}", a.url),
            Some(json!({"macs": [mac(i)], "set_tags": ["ironic"]})),
        );
        assert_eq!(s, 201, "{body}");
    }
    for i in 0..50 {
        let (s, _) = call("DELETE", &format!("{}/v1/hosts/h{i}", a.url), None);
        assert_eq!(s, 204);
    }
    for i in 50..100 {
        let (s, _) = call(
            "PUT",
            &format!("{}/v1/hosts/h{i}", a.url),
            Some(json!({"macs": [mac(i)], "set_tags": ["moved"]})),
        );
        assert_eq!(s, 200);
    }
    let (s, _) = call(
        "PUT",
        &format!("{}/v1/options/o1", a.url),
        Some(json!({"lines": ["tag:moved,67,x.efi"]})),
    );
    assert_eq!(s, 201);

    // B has seen none of it yet (no polling).
    let (s, _) = call("GET", &format!("{}/v1/hosts/h150", b.url), None);
    assert_eq!(s, 404, "B should not have polled");

    // B's next write checks against the directory as it is: A's h150 holds
    // this MAC.
    let (s, body) = call(
        "PUT",
        &format!("{}/v1/hosts/thief", b.url),
        Some(json!({"macs": [mac(150)]})),
    );
    assert_eq!(s, 409, "{body}");
    // A MAC A released is free again.
    let (s, body) = call(
        "PUT",
        &format!("{}/v1/hosts/heir", b.url),
        Some(json!({"macs": [mac(10)]})),
    );
    assert_eq!(s, 201, "{body}");

    // B's index now matches A's (which has not seen B's `heir` yet).
    let mut seen_by_b = listing(&b.url, "hosts");
    seen_by_b.retain(|(n, _)| n != "heir");
    assert!(seen_by_b == listing(&a.url, "hosts"), "B differs from A");
    assert_eq!(listing(&b.url, "options"), listing(&a.url, "options"));
    let (_, h60) = call("GET", &format!("{}/v1/hosts/h60", b.url), None);
    assert_eq!(h60["set_tags"], json!(["moved"]), "{h60}");
    let (s, _) = call("GET", &format!("{}/v1/hosts/h10", b.url), None);
    assert_eq!(s, 404);

    // …and it got there from the journal, not by a full scan.
    let log = std::fs::read_to_string(&b_log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("catching up from the change journal")),
        "{log}"
    );

    // An older broker rewrites the lock file as just the generation: the
    // journal is gone, and B falls back to a full scan, still correct.
    let lock = hosts.join(".hostsdir-broker.lock");
    for i in 200..210 {
        let (s, _) = call(
            "PUT",
            &format!("{}/v1/hosts/h{i}", a.url),
            Some(json!({"macs": [mac(i)]})),
        );
        assert_eq!(s, 201);
    }
    let text = std::fs::read_to_string(&lock).unwrap();
    let generation: u64 = text.lines().next().unwrap().trim().parse().unwrap();
    std::fs::write(&lock, format!("{}\n", generation)).unwrap();
    let (s, body) = call(
        "PUT",
        &format!("{}/v1/hosts/thief2", b.url),
        Some(json!({"macs": [mac(205)]})),
    );
    assert_eq!(s, 409, "{body}");
    assert!(
        listing(&b.url, "hosts") == listing(&a.url, "hosts"),
        "B differs from A after the full scan"
    );
    let log = std::fs::read_to_string(&b_log).unwrap();
    assert!(
        log.lines().any(|l| l.contains("no journal covers the gap")),
        "{log}"
    );
}

#[test]
fn a_polling_broker_catches_up_from_the_journal_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("hosts"), dir.path().join("opts"));
    let a = start(&hosts, &opts, "0", &dir.path().join("a.log"));
    let b_log = dir.path().join("b.log");
    let b = start(&hosts, &opts, "100", &b_log);
    for i in 0..50 {
        let (s, _) = call(
            "PUT",
            &format!("{}/v1/hosts/p{i}", a.url),
            Some(json!({"macs": [mac(i)]})),
        );
        assert_eq!(s, 201);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while listing(&b.url, "hosts") != listing(&a.url, "hosts") {
        assert!(
            std::time::Instant::now() < deadline,
            "B never caught up by polling"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(&b_log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("catching up from the change journal")),
        "{log}"
    );
}

/// A generation read older than the broker's own last commit (stale bytes,
/// as a ceph-fuse client can read another client's in-place rewrite, or a
/// lock file rewritten by someone else) tells nothing about what changed:
/// the broker rescans. (It once "caught up" from a journal range that
/// named nothing, then wrote a MAC another broker's file held.)
#[test]
fn a_generation_that_went_backwards_makes_the_broker_rescan() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("hosts"), dir.path().join("opts"));
    let log = dir.path().join("a.log");
    let a = start(&hosts, &opts, "0", &log);
    for i in 0..3 {
        let (s, body) = call(
            "PUT",
            &format!("{}/v1/hosts/h{i}", a.url),
            Some(json!({"macs": [mac(i)]})),
        );
        assert_eq!(s, 201, "{body}");
    }
    let lock = hosts.join(".hostsdir-broker.lock");
    // The broker keeps the directory lock a moment after its last write
    // (its lease), and reads the generation only when it takes the lock
    // again: wait until it let go.
    let probe = std::fs::File::open(&lock).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while probe.try_lock().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker kept the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    probe.unlock().unwrap();
    let text = std::fs::read_to_string(&lock).unwrap();
    let generation: u64 = text[..20].parse().unwrap();
    assert!(generation >= 1, "{text}");

    // Another writer's file holding a MAC, renamed in behind the broker
    // (it neither polls nor acts on renames), and the generation as a
    // stale read would show it: older than the broker's own.
    let tmp = hosts.join(".other.tmp");
    std::fs::write(&tmp, format!("{},set:other\n", mac(100))).unwrap();
    std::fs::rename(&tmp, hosts.join("other")).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
    f.write_all_at(format!("{:020}\n", generation - 1).as_bytes(), 0)
        .unwrap();

    let (s, body) = call(
        "PUT",
        &format!("{}/v1/hosts/thief", a.url),
        Some(json!({"macs": [mac(100)]})),
    );
    assert_eq!(s, 409, "the MAC held by `other` was given again: {body}");
    assert!(body.to_string().contains("other"), "{body}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("generation went backwards"),
        "no rescan logged:\n{logged}"
    );
    assert!(!hosts.join("thief").exists());
}
