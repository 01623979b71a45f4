//! `hostsdir-broker ctl` against a live broker process, every subcommand,
//! with tokens: output for people, `--json` for scripts, the server's error
//! message and a non-zero exit on failure.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{BrokerProcess, BIN};

use serde_json::Value;

struct Broker {
    _process: BrokerProcess,
    url: String,
    dir: tempfile::TempDir,
}

fn start() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokens"),
        "read r-0123456789abcdef\nwrite w-0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("reader"), "read r-0123456789abcdef\n").unwrap();
    std::fs::write(
        dir.path().join("leases"),
        "0 52:54:00:aa:bb:01 10.0.0.5 node-1 *\n",
    )
    .unwrap();
    let d = dir.path();
    let process = BrokerProcess::serve(&[
        "--reload-quiet-ms".as_ref(),
        "10".as_ref(),
        "--hosts-dir".as_ref(),
        d.join("h").as_os_str(),
        "--opts-dir".as_ref(),
        d.join("o").as_os_str(),
        "--lease-file".as_ref(),
        d.join("leases").as_os_str(),
        "--token-file".as_ref(),
        d.join("tokens").as_os_str(),
    ]);
    let url = process.url.clone();
    Broker {
        _process: process,
        url,
        dir,
    }
}

impl Broker {
    fn ctl(&self, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(["ctl", "--url", &self.url, "--token-file"])
            .arg(self.dir.path().join(token))
            .args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl("tokens", &all, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_subcommand_against_a_live_broker() {
    let b = start();
    // hosts put (JSON and --line), get, list
    let put = b.json(&[
        "hosts",
        "put",
        "n1",
        r#"{"macs":["52:54:00:aa:bb:01"],"set_tags":["t1","ironic"]}"#,
    ]);
    assert_eq!(put["line"], "52:54:00:aa:bb:01,set:t1,set:ironic");
    let etag = put["etag"].as_str().unwrap().to_string();
    let out = b.ctl(
        "tokens",
        &[
            "hosts",
            "put",
            "n2",
            "--line",
            "52:54:00:aa:bb:02,10.0.0.9,node-2",
        ],
        None,
    );
    assert!(out.status.success());
    assert!(
        text(&out).contains("52:54:00:aa:bb:02,10.0.0.9,node-2"),
        "{}",
        text(&out)
    );
    let out = b.ctl("tokens", &["hosts", "list", "--tag", "ironic"], None);
    assert_eq!(text(&out).trim(), "n1\t52:54:00:aa:bb:01,set:t1,set:ironic");
    assert_eq!(b.json(&["hosts", "get", "n2"])["ipv4"], "10.0.0.9");
    // conditional put with the right and a stale ETag
    assert!(b
        .ctl(
            "tokens",
            &[
                "hosts",
                "put",
                "n1",
                "--line",
                "52:54:00:aa:bb:01,ignore",
                "--if-match",
                &etag
            ],
            None
        )
        .status
        .success());
    let out = b.ctl(
        "tokens",
        &[
            "hosts",
            "put",
            "n1",
            "--line",
            "52:54:00:aa:bb:01",
            "--if-match",
            &etag,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("412"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // options put from stdin, list, delete with wait
    let out = b.ctl(
        "tokens",
        &["options", "put", "o1", "-"],
        Some(r#"{"lines":["tag:t1,67,snponly.efi"]}"#),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(&b.ctl("tokens", &["options", "list"], None)).contains("tag:t1,67,snponly.efi"));
    assert!(b
        .ctl("tokens", &["options", "delete", "o1", "--wait"], None)
        .status
        .success());
    // batch and sync from files
    let batch = b.dir.path().join("batch.json");
    std::fs::write(&batch, r#"{"ops":[{"op":"put","kind":"host","name":"c-1","spec":{"macs":["52:54:00:aa:bb:10"]}},{"op":"delete","kind":"host","name":"n2"}]}"#).unwrap();
    let res = b.json(&["batch", batch.to_str().unwrap(), "--wait"]);
    assert_eq!(res["results"][1]["status"], 204, "{res}");
    let sync = b.dir.path().join("sync.json");
    std::fs::write(&sync, r#"{"items":{"c-2":{"macs":["52:54:00:aa:bb:11"]}}}"#).unwrap();
    let res = b.json(&["sync", "hosts", "c-", sync.to_str().unwrap()]);
    assert_eq!(res["results"].as_array().unwrap().len(), 2, "{res}");
    let names: Vec<String> = b.json(&["hosts", "list"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["c-2", "n1"]);
    // leases, reload, status
    assert!(
        text(&b.ctl("tokens", &["leases", "--mac", "52:54:00:AA:BB:01"], None))
            .contains("10.0.0.5")
    );
    assert_eq!(b.json(&["reload", "--wait"])["reload"], "delivered");
    assert_eq!(b.json(&["status"])["entries"]["hosts"], 2);
    // errors: the server's message, non-zero exit
    let out = b.ctl(
        "tokens",
        &[
            "hosts",
            "put",
            "bad",
            "--line",
            "52:54:00:aa:bb:20,10.250.0.300",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("10.250.0.300"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = b.ctl("reader", &["hosts", "delete", "n1"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
    let out = Command::new(BIN)
        .args(["ctl", "--url", "http://127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
