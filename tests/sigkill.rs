//! SIGKILL mid-write: every write the broker acknowledged is on disk after a
//! restart with exactly the acknowledged bytes, every file is a complete
//! valid entry, and the temp files the killed broker left are removed at
//! start-up. (A process kill keeps the page cache; power loss is what the
//! fsyncs are for and is not simulated here.)

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{call, BrokerProcess};
use serde_json::json;

fn serve(hosts: &Path, opts: &Path) -> BrokerProcess {
    BrokerProcess::serve(&[
        "--hosts-dir".as_ref(),
        hosts.as_os_str(),
        "--opts-dir".as_ref(),
        opts.as_os_str(),
    ])
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("hosts"), dir.path().join("opts"));
    let mut broker = serve(&hosts, &opts);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..6u32 {
        let (url, stop) = (broker.url.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            // name -> the last hostname the broker acknowledged for it
            let mut acked = BTreeMap::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("t{t}-{}", i % 40);
                let host = format!("h{t}-{i}");
                let mac = format!(
                    "52:54:{:02x}:00:{:02x}:{:02x}",
                    t,
                    (i % 40) / 256,
                    (i % 40) % 256
                );
                let agent = common::agent();
                let req = ureq::http::Request::put(format!("{url}/v1/hosts/{name}"))
                    .header("content-type", "application/json")
                    .body(json!({"macs": [mac], "hostname": host}).to_string())
                    .unwrap();
                match agent.run(req) {
                    Ok(r) if [200, 201].contains(&r.status().as_u16()) => {
                        acked.insert(name, format!("{mac},{host}\n"));
                    }
                    // The broker was killed: an unacknowledged write may or
                    // may not have landed; it is not checked.
                    _ => {
                        acked.remove(&name);
                        break;
                    }
                }
                i += 1;
            }
            acked
        }));
    }
    std::thread::sleep(Duration::from_millis(700));
    broker.child.kill().unwrap(); // SIGKILL
    broker.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.join().unwrap());
    }
    assert!(
        acked.len() > 20,
        "too few writes before the kill: {}",
        acked.len()
    );

    // What a kill at the worst moments leaves, planted so it is there for
    // sure: a half-written temp file, and a replace killed between parking
    // the old version and linking the new one.
    std::fs::write(hosts.join(".t0-0.Ab12Cd.hdb-tmp"), "52:54:00:00").unwrap();
    std::fs::write(hosts.join(".parked-1.hdb-old-4242"), "52:54:99:00:00:01\n").unwrap();

    let restarted = serve(&hosts, &opts);
    assert_eq!(
        std::fs::read_to_string(hosts.join("parked-1"))
            .expect("the parked old version was not restored"),
        "52:54:99:00:00:01\n"
    );
    for (name, line) in &acked {
        let on_disk = std::fs::read_to_string(hosts.join(name))
            .unwrap_or_else(|e| panic!("acknowledged {name} is gone: {e}"));
        // A later, unacknowledged write to the same name may have landed too;
        // it must then be a complete entry of the same writer.
        if &on_disk != line {
            assert!(
                on_disk.starts_with(line.split(',').next().unwrap()),
                "{name}: {on_disk:?} vs acknowledged {line:?}"
            );
        }
    }
    for e in std::fs::read_dir(&hosts).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name == ".hostsdir-broker.lock" {
            continue;
        }
        assert!(
            !name.starts_with('.'),
            "temp file survived the restart: {name}"
        );
        let text = std::fs::read_to_string(hosts.join(&name)).unwrap();
        hostsdir_broker::entry::HostSpec::parse_file(text.as_bytes())
            .unwrap_or_else(|e| panic!("torn file {name}: {text:?}: {e}"));
    }
    let (status, body) = call("GET", &format!("{}/v1/status", restarted.url), None);
    assert_eq!(status, 200);
    assert!(body["problems"].as_array().unwrap().is_empty(), "{body}");
}
