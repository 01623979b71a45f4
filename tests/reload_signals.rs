//! Reload coalescing against a real process that counts the SIGHUPs it
//! receives (a shell standing in for dnsmasq, signalled through its pid
//! file): 200 concurrent deletes make one signal (or a few, bounded by the
//! maximum delay), creates make none, and `?wait=reload` answers only after
//! the signal was delivered.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{call, BrokerProcess};
use serde_json::json;

/// A process that appends a line to `count` for every SIGHUP.
struct HupCounter {
    child: Child,
    count: PathBuf,
}

impl HupCounter {
    fn start(dir: &Path) -> HupCounter {
        let (pid, count) = (dir.join("pid"), dir.join("hups"));
        std::fs::write(&count, "").unwrap();
        // Python, not a shell: a shell runs its trap only once the
        // `sleep` it forks every few ms has ended, and on a busy machine
        // forking and exec'ing those can hold the count back for long.
        // Python's handler runs as soon as the process is scheduled.
        let script = r#"
import os, signal, sys, time
count, pid = sys.argv[1], sys.argv[2]
def hup(_sig, _frame):
    with open(count, "a") as f:
        f.write("hup\n")
signal.signal(signal.SIGHUP, hup)
with open(pid + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pid + ".tmp", pid)
while True:
    time.sleep(3600)
"#;
        let child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&count)
            .arg(&pid)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pid.exists() {
            assert!(
                Instant::now() < deadline,
                "the counter never wrote its pid file"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        HupCounter { child, count }
    }

    fn hups(&self) -> usize {
        std::fs::read_to_string(&self.count)
            .unwrap()
            .lines()
            .count()
    }
}

impl Drop for HupCounter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_hundred_concurrent_deletes_make_one_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let counter = HupCounter::start(dir.path());
    let d = dir.path();
    let broker = BrokerProcess::serve(&[
        "--hosts-dir".as_ref(),
        d.join("h").as_os_str(),
        "--opts-dir".as_ref(),
        d.join("o").as_os_str(),
        "--reload".as_ref(),
        "pidfile".as_ref(),
        "--dnsmasq-pidfile".as_ref(),
        d.join("pid").as_os_str(),
        // Quiet and maximum delays long enough that 201 deletes from 20
        // threads fall in one quiet period on a busy machine too (a 300 ms
        // quiet and 3 s maximum split the burst under load).
        "--reload-quiet-ms".as_ref(),
        "2000".as_ref(),
        "--reload-max-delay-ms".as_ref(),
        "60000".as_ref(),
    ]);
    let url = broker.url.clone();

    // 200 creates in one batch and one more single create: no signal.
    let ops: Vec<_> = (0..200).map(|i| json!({"op": "put", "kind": "host", "name": format!("h{i}"), "spec": {"macs": [format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256)]}})).collect();
    assert_eq!(
        call(
            "POST",
            &format!("{url}/v1/batch"),
            Some(json!({"ops": ops}))
        )
        .0,
        200
    );
    assert_eq!(
        call(
            "PUT",
            &format!("{url}/v1/hosts/extra"),
            Some(json!({"macs": ["52:54:00:01:00:00"]}))
        )
        .0,
        201
    );
    // Creates need no reload: none was even asked for (the status says so
    // at once; no waiting for a signal that should not come).
    let (_, status) = call("GET", &format!("{url}/v1/status"), None);
    assert_eq!(
        status["reload"]["requested"], 0,
        "a create asked for a reload: {status}"
    );
    assert_eq!(counter.hups(), 0, "a create caused a SIGHUP");

    // 200 deletes from 20 threads, all inside one quiet period.
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                for i in (t..200).step_by(20) {
                    assert_eq!(call("DELETE", &format!("{url}/v1/hosts/h{i}"), None).0, 204);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The last delete waits for the reload covering everything before it.
    let before = counter.hups();
    let (status, body) = call("DELETE", &format!("{url}/v1/hosts/extra?wait=reload"), None);
    assert_eq!(status, 204, "{body}");
    // The signal was sent before the answer; give the counter (scheduled
    // on a busy machine) a moment to count it. This bounds the test's
    // stand-in for dnsmasq, not anything the broker promises.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.hups() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = counter.hups();
    if after == before {
        let (_, status) = call("GET", &format!("{url}/v1/status"), None);
        panic!(
            "no SIGHUP arrived for the change ?wait=reload waited for ({before} counted before it); status: {}",
            status["reload"]
        );
    }
    // One signal for the burst (a second only if a thread paused for over
    // the 2 s quiet period on a busy machine).
    assert!((1..=2).contains(&after), "{after} SIGHUPs for 201 deletes");
    let (_, status) = call("GET", &format!("{url}/v1/status"), None);
    assert_eq!(
        status["reload"]["ok_count"].as_u64().unwrap() as usize,
        after,
        "{status}"
    );
}
