//! Shared by the integration tests that run the broker as a real process.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The broker binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_hostsdir-broker");

/// A running `hostsdir-broker serve`; stopped with SIGTERM (so a supervised
/// dnsmasq goes too) when dropped.
pub(crate) struct BrokerProcess {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT` (or `https://…`), from its listening line.
    pub(crate) url: String,
    /// Where its stderr goes, when kept.
    pub(crate) log: Option<tempfile::NamedTempFile>,
}

impl BrokerProcess {
    /// Starts `cmd` (a `serve` command line with `--listen 127.0.0.1:0`)
    /// and waits for its listening line.
    pub(crate) fn start(mut cmd: Command) -> BrokerProcess {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the broker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no listening line, got {line:?}"))
            .to_string();
        BrokerProcess {
            child,
            url,
            log: None,
        }
    }

    /// `serve --listen 127.0.0.1:0` plus `args`, stderr discarded.
    pub(crate) fn serve(args: &[&std::ffi::OsStr]) -> BrokerProcess {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::null());
        BrokerProcess::start(cmd)
    }

    /// Like [`BrokerProcess::serve`] with `env` set and stderr kept (see
    /// [`BrokerProcess::stderr`]).
    pub(crate) fn serve_with_env(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> BrokerProcess {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stderr(log.reopen().unwrap());
        let mut broker = BrokerProcess::start(cmd);
        broker.log = Some(log);
        broker
    }

    /// What it wrote to stderr so far (when kept).
    pub(crate) fn stderr(&self) -> String {
        self.log
            .as_ref()
            .map(|l| std::fs::read_to_string(l.path()).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits up to `limit` for the process to exit; its exit code (`None`
    /// inside: killed by a signal), or `None` outside when it still runs.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns error statuses instead of failing.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// One JSON request; the status and the parsed body (`Null` if none).
pub(crate) fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    let resp = match body {
        Some(b) => agent().run(req.body(b.to_string()).unwrap()),
        None => agent().run(req.body(()).unwrap()),
    }
    .expect("request");
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
