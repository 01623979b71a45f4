//! The command line: exit status 2 with a one-line reason for bad flags or
//! unusable directories, environment variables for flags, and a graceful
//! SIGTERM that sends the pending reload before exiting.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BrokerProcess, BIN};

fn serve_fails(args: &[&str], expect: &str) {
    let out = Command::new(BIN).arg("serve").args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(expect), "{args:?}: {err}");
}

#[test]
fn bad_flags_and_directories_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    serve_fails(
        &[
            "--listen",
            "0.0.0.0:0",
            "--hosts-dir",
            &format!("{d}/h"),
            "--opts-dir",
            &format!("{d}/o"),
        ],
        "--insecure-no-auth",
    );
    serve_fails(
        &[
            "--listen",
            "127.0.0.1:0",
            "--hosts-dir",
            &format!("{d}/same"),
            "--opts-dir",
            &format!("{d}/same"),
        ],
        "both",
    );
    serve_fails(
        &[
            "--listen",
            "127.0.0.1:0",
            "--hosts-dir",
            &format!("{}/sub", file.display()),
        ],
        "--hosts-dir",
    );
    serve_fails(&["--file-mode", "999"], "999");
    serve_fails(
        &[
            "--reload",
            "pidfile",
            "--listen",
            "127.0.0.1:0",
            "--hosts-dir",
            &format!("{d}/h"),
            "--opts-dir",
            &format!("{d}/o"),
        ],
        "--dnsmasq-pidfile",
    );
    serve_fails(&["--no-such-flag"], "--no-such-flag");
}

#[test]
fn flags_read_the_environment_and_sigterm_flushes_the_pending_reload() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("reloads");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env("HOSTSDIR_BROKER_LISTEN", "127.0.0.1:0")
        .env("HOSTSDIR_BROKER_HOSTS_DIR", dir.path().join("envhosts"))
        .env("HOSTSDIR_BROKER_OPTS_DIR", dir.path().join("envopts"))
        .env("HOSTSDIR_BROKER_RELOAD", "command")
        .env(
            "HOSTSDIR_BROKER_RELOAD_COMMAND",
            format!("echo reload >> {}", count.display()),
        )
        // long enough that only the shutdown can send it
        .env("HOSTSDIR_BROKER_RELOAD_QUIET_MS", "60000")
        .env("HOSTSDIR_BROKER_RELOAD_MAX_DELAY_MS", "60000")
        .stderr(Stdio::null());
    let mut broker = BrokerProcess::start(cmd);
    let url = broker.url.clone();
    let agent = common::agent();
    let put = |spec: &str| {
        let req = ureq::http::Request::put(format!("{url}/v1/hosts/n1"))
            .header("content-type", "application/json")
            .body(spec.to_string())
            .unwrap();
        agent.run(req).unwrap().status().as_u16()
    };
    assert_eq!(put(r#"{"macs":["52:54:00:00:00:01"]}"#), 201);
    assert_eq!(put(r#"{"macs":["52:54:00:00:00:02"]}"#), 200);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("envhosts/n1")).unwrap(),
        "52:54:00:00:00:02\n"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !count.exists(),
        "the reload went out before the quiet period"
    );
    Command::new("kill")
        .arg(broker.child.id().to_string())
        .status()
        .unwrap();
    let status = broker.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "reload\n");
}

#[test]
fn tokens_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--hosts-dir")
        .arg(dir.path().join("h"))
        .arg("--opts-dir")
        .arg(dir.path().join("o"))
        .env(
            "HOSTSDIR_BROKER_TOKENS",
            "write w-0123456789abcdef; read r-0123456789abcdef",
        )
        .stderr(Stdio::null());
    let broker = BrokerProcess::start(cmd);
    let put = |token: Option<&str>| {
        let mut req = ureq::http::Request::put(format!("{}/v1/hosts/n1", broker.url))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        common::agent()
            .run(
                req.body(r#"{"macs":["52:54:00:00:00:01"]}"#.to_string())
                    .unwrap(),
            )
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(put(None), 401);
    assert_eq!(put(Some("r-0123456789abcdef")), 403);
    assert_eq!(put(Some("w-0123456789abcdef")), 201);
}

/// Regression: without a token file or TLS nothing listened for SIGHUP,
/// so its default action ended the broker. It is logged and ignored.
#[test]
fn sighup_without_files_to_reread_does_not_stop_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("h"), dir.path().join("o"));
    let mut broker = BrokerProcess::serve_with_env(
        &[
            "--hosts-dir".as_ref(),
            hosts.as_os_str(),
            "--opts-dir".as_ref(),
            opts.as_os_str(),
        ],
        &[],
    );
    let pid = nix::unistd::Pid::from_raw(broker.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    // The signal is handled (logged) before any later request is answered
    // only by chance; wait for the log line, bounded, then check it lives.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !broker.stderr().contains("SIGHUP") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(broker.stderr().contains("SIGHUP"), "{}", broker.stderr());
    assert_eq!(
        broker.wait_exit(Duration::ZERO),
        None,
        "SIGHUP ended the broker"
    );
    let (status, _) = common::call("GET", &format!("{}/healthz", broker.url), None);
    assert_eq!(status, 200);
}
