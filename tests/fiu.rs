//! Faults injected at run time into a running broker (libfiu: `fiu-run -x`
//! preloads wrappers around libc's I/O calls, `fiu-ctrl` turns failure
//! points on and off in the live process), while clients keep writing:
//! - no answer lies: every "nothing was written" answer (507, and the 503s
//!   that say so) leaves the entry exactly as it was; "outcome unknown"
//!   (500) is the only answer allowed when the entry may have changed;
//! - nothing acknowledged is lost;
//! - once the faults stop, writes succeed, the index agrees with the disk,
//!   and the leftovers of failed clean-ups are gone without a restart.
//!
//! Facts this rests on (probed with Debian's fiu-utils): faults are enabled
//! only after start-up; `write`, `close`, `closedir`, `readdir` and the
//! network points are never enabled (libfiu's fake `close` leaks the
//! descriptor and keeps its flock, and write faults hit tokio's eventfd
//! and stderr); `failinfo` is the errno (5 EIO, 28 ENOSPC). libfiu wraps
//! `open`, `rename` and `unlink` but none of the `*at` calls, and the
//! writer makes every entry's file operation relative to the open
//! directory (`openat`, `renameat`, `linkat`, `unlinkat`: raw system calls
//! through rustix; see `store::fsio::Dir`). So the faults reach the file
//! and directory fsyncs, the opens of the directories and lock files, the
//! lock file's reads and writes, and the clean-up's renames and unlinks; a
//! full disk at the create itself is `tests/full_disk.rs`'s (a real one).
//!
//! Needs fiu-utils (`scripts/install-test-deps.sh` installs it); fails,
//! never skips, without it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{call, BrokerProcess};
use serde_json::{json, Value};

const FIU_RUN: &str = "/usr/bin/fiu-run";
const FIU_CTRL: &str = "/usr/bin/fiu-ctrl";

/// The failure points, their errno, and how often they fail.
const FAULTS: &[(&str, i32, f64)] = &[
    ("posix/io/sync/fsync", 5, 0.04),
    ("posix/io/sync/fsync", 28, 0.04),
    ("posix/io/oc/open", 28, 0.03),
    ("posix/io/oc/open", 5, 0.02),
    ("posix/io/dir/rename", 5, 0.04),
    ("posix/io/dir/unlink", 5, 0.05),
    ("posix/io/rw/pread", 5, 0.03),
    ("posix/io/rw/pwrite", 28, 0.03),
];

struct Fiu {
    broker: BrokerProcess,
    ctl: PathBuf,
    log: PathBuf,
}

impl Fiu {
    fn start(dir: &Path) -> Fiu {
        for tool in [FIU_RUN, FIU_CTRL] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install fiu-utils (scripts/install-test-deps.sh does)"
            );
        }
        let ctl = dir.join("fiu-ctrl");
        let log = dir.join("broker.log");
        let mut cmd = Command::new(FIU_RUN);
        cmd.arg("-x")
            .arg("-f")
            .arg(&ctl)
            .arg(common::BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--poll-interval-ms",
                "50",
            ])
            .args(["--lock-timeout-ms", "1000"])
            .arg("--hosts-dir")
            .arg(dir.join("hosts"))
            .arg("--opts-dir")
            .arg(dir.join("opts"))
            // Set, so the broker does not re-execute itself with it (the
            // preload's control pipes are made per process image).
            .env("MALLOC_ARENA_MAX", "2")
            .stderr(std::fs::File::create(&log).unwrap());
        Fiu {
            broker: BrokerProcess::start(cmd),
            ctl,
            log,
        }
    }

    fn url(&self) -> &str {
        &self.broker.url
    }

    fn ctrl(&self, command: &str) {
        let out = Command::new(FIU_CTRL)
            .arg("-f")
            .arg(&self.ctl)
            .args(["-c", command])
            .arg(self.broker.child.id().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fiu-ctrl {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Fiu {
    fn drop(&mut self) {
        let _ = self.broker.child.kill();
        let _ = self.broker.child.wait();
    }
}

/// What a client was told, as far as the entry is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Done,
    NothingWritten,
    Unknown,
}

fn told(status: u16, body: &Value) -> Result<Told, String> {
    let code = body["error"]["code"].as_str().unwrap_or("");
    match (status, code) {
        (200..=299, _) => Ok(Told::Done),
        (507, "no_space") => Ok(Told::NothingWritten),
        (
            503,
            "store_unavailable" | "lock_timeout" | "store_stalled" | "shutting_down"
            | "store_failed",
        ) => Ok(Told::NothingWritten),
        (500, "outcome_unknown") => Ok(Told::Unknown),
        _ => Err(format!("unexpected answer {status} {body}")),
    }
}

/// The file's text now (`None`: no file).
fn on_disk(hosts: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(hosts.join(name)).ok()
}

#[test]
fn under_injected_io_faults_no_answer_lies_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let broker = Fiu::start(dir.path());
    // Start-up is over (it answered its listening line); now the faults.
    for (point, errno, p) in FAULTS {
        broker.ctrl(&format!(
            "enable_random name={point},probability={p},failinfo={errno}"
        ));
    }
    let tally: Mutex<BTreeMap<String, u32>> = Mutex::default();
    let lies: Mutex<Vec<String>> = Mutex::default();
    let model: Mutex<BTreeMap<String, Option<String>>> = Mutex::default();
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let (url, hosts, tally, lies, model) = (broker.url(), &hosts, &tally, &lies, &model);
            s.spawn(move || {
                // Each thread owns its names: the disk then tells what its
                // own requests did.
                let mut state: BTreeMap<String, Option<String>> = BTreeMap::new();
                for step in 0..45u32 {
                    let i = step % 5;
                    let name = format!("t{t}-n{i}");
                    let mac = format!("52:54:00:{t:02x}:{i:02x}:01");
                    let before = state.get(&name).cloned().flatten();
                    let (method, body, want) = match (step / 5) % 3 {
                        0 | 1 => {
                            let tag = format!("s{step}");
                            (
                                "PUT",
                                Some(json!({"macs": [mac], "set_tags": [tag]})),
                                Some(format!("{mac},set:{tag}\n")),
                            )
                        }
                        _ => ("DELETE", None, None),
                    };
                    let (status, answer) = call(method, &format!("{url}/v1/hosts/{name}"), body);
                    let now = on_disk(hosts, &name);
                    let outcome = match (method, status) {
                        // Deleting what is not there is a plain 404.
                        ("DELETE", 404) if before.is_none() => Told::NothingWritten,
                        _ => match told(status, &answer) {
                            Ok(t) => t,
                            Err(e) => {
                                lies.lock().unwrap().push(format!("{name}: {e}"));
                                continue;
                            }
                        },
                    };
                    *tally
                        .lock()
                        .unwrap()
                        .entry(format!("{status} {}", answer["error"]["code"].as_str().unwrap_or("")))
                        .or_default() += 1;
                    match outcome {
                        Told::Done if now != want => lies.lock().unwrap().push(format!(
                            "{name}: {method} answered {status} but the file is {now:?}, not {want:?}"
                        )),
                        Told::NothingWritten if now != before => lies.lock().unwrap().push(format!(
                            "{name}: {method} answered {status} {} (nothing written) but the file went from {before:?} to {now:?}",
                            answer["error"]["code"]
                        )),
                        Told::Unknown if now != before && now != want => lies.lock().unwrap().push(
                            format!("{name}: {method} outcome unknown, but the file is {now:?}: neither before nor after"),
                        ),
                        _ => {}
                    }
                    state.insert(name, now);
                }
                model.lock().unwrap().extend(state);
            });
        }
    });
    for (point, _, _) in FAULTS {
        broker.ctrl(&format!("disable name={point}"));
    }
    let tally = tally.into_inner().unwrap();
    let lies = lies.into_inner().unwrap();
    let log = || std::fs::read_to_string(&broker.log).unwrap_or_default();
    assert!(
        lies.is_empty(),
        "answers that lie: {lies:#?}\nanswers: {tally:?}"
    );
    let failed: u32 = tally
        .iter()
        .filter(|(k, _)| !k.starts_with('2') && !k.starts_with("404"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        failed >= 5,
        "the faults hardly hit anything ({tally:?}): the test would prove nothing"
    );

    // Nothing acknowledged was lost, and the index agrees with the disk.
    let model = model.into_inner().unwrap();
    let (s, listed) = call(
        "GET",
        &format!("{}/v1/hosts?limit=1000", broker.url()),
        None,
    );
    assert_eq!(s, 200, "{listed}\n{}", log());
    let index: BTreeMap<String, String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                format!("{}\n", e["line"].as_str().unwrap()),
            )
        })
        .collect();
    let disk: BTreeMap<String, String> = model
        .keys()
        .filter_map(|n| on_disk(&hosts, n).map(|t| (n.clone(), t)))
        .collect();
    let expected: BTreeMap<String, String> = model
        .iter()
        .filter_map(|(n, t)| t.clone().map(|t| (n.clone(), t)))
        .collect();
    assert_eq!(disk, expected, "the disk is not what the clients were told");
    assert_eq!(index, disk, "the index disagrees with the disk");

    // Writes succeed again, at the first attempt.
    for (k, name) in model.keys().enumerate() {
        let (s, body) = call(
            "PUT",
            &format!("{}/v1/hosts/{name}", broker.url()),
            Some(json!({"macs": [format!("52:54:00:ff:00:{k:02x}")], "hostname": "after"})),
        );
        assert!(s == 200 || s == 201, "{name}: {s} {body}\n{}", log());
    }

    // Leftovers of failed clean-ups (dotfiles a second fault left behind)
    // are removed by the periodic pass while the broker runs: a stat pass
    // every 60 polls (3 s here) removes those older than the lock timeout
    // (1 s here).
    let deadline = Instant::now() + Duration::from_secs(60);
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&hosts)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.') && n.contains(".hdb-"))
            .collect()
    };
    while !leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    eprintln!("answers under faults: {tally:?}");
}
