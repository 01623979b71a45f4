//! Hardening against clients, on a real process: stalled connections are
//! closed by the header read timeout, the connection cap makes new clients
//! wait without failing the open ones, SIGTERM with stalled clients exits
//! within `--shutdown-timeout-ms` and still sends the pending reload, and
//! every rejection — query, path, method, route — is the API's JSON error.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent, BrokerProcess, BIN};
use serde_json::Value;

fn addr(url: &str) -> String {
    url.strip_prefix("http://").unwrap().to_string()
}

/// A connection that sent a request line and one header, never the end.
fn stalled(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s
}

/// True once the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before closing is fine
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn dirs(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    vec![
        "--hosts-dir".into(),
        dir.join("hosts").into(),
        "--opts-dir".into(),
        dir.join("opts").into(),
    ]
}

#[test]
fn stalled_connections_are_closed_by_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = dirs(dir.path());
    args.extend(["--header-read-timeout-ms".into(), "500".into()]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let broker = BrokerProcess::serve(&args);
    let a = addr(&broker.url);
    let mut conns: Vec<TcpStream> = (0..50).map(|_| stalled(&a)).collect();
    // An idle keep-alive connection (nothing sent at all) goes too.
    conns.push(TcpStream::connect(&a).unwrap());
    let started = Instant::now();
    for c in &mut conns {
        assert!(
            closed_within(c, Duration::from_secs(5)),
            "a stalled connection was still open after {:?}",
            started.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // …while complete requests are still served.
    let resp = agent()
        .get(format!("{}/healthz", broker.url))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[test]
fn at_the_connection_cap_new_clients_wait_and_open_ones_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = dirs(dir.path());
    args.extend([
        "--max-connections".into(),
        "3".into(),
        "--header-read-timeout-ms".into(),
        "1500".into(),
    ]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let broker = BrokerProcess::serve(&args);
    let a = addr(&broker.url);
    // One keep-alive connection in use, two stalled: the cap is reached.
    let mut live = TcpStream::connect(&a).unwrap();
    let _s1 = stalled(&a);
    let _s2 = stalled(&a);
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let waiting = {
        let url = broker.url.clone();
        std::thread::spawn(move || {
            let r = agent().get(format!("{url}/healthz")).call().unwrap();
            (r.status().as_u16(), Instant::now())
        })
    };
    // The open connection is still served at the cap.
    live.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    live.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 256];
    let n = live.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The new client is accepted once the stalled ones are timed out.
    let (status, done) = waiting.join().unwrap();
    assert_eq!(status, 200);
    let waited = done - started;
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(6),
        "the new client waited {waited:?}"
    );
}

#[test]
fn sigterm_with_stalled_clients_exits_within_the_bound_and_sends_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("reloads");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(dirs(dir.path()))
        .args(["--reload", "command", "--reload-command"])
        .arg(format!("echo reload >> {}", count.display()))
        .args([
            "--reload-policy",
            "coalesce",
            "--reload-budget-percent",
            "100",
            "--reload-quiet-ms",
            "60000",
            "--reload-max-delay-ms",
            "60000",
            "--header-read-timeout-ms",
            "60000",
            "--shutdown-timeout-ms",
            "1000",
        ])
        .stderr(Stdio::null());
    let mut broker = BrokerProcess::start(cmd);
    let put = |spec: &str| {
        let req = ureq::http::Request::put(format!("{}/v1/hosts/n1", broker.url))
            .header("content-type", "application/json")
            .body(spec.to_string())
            .unwrap();
        let resp = agent().run(req).unwrap();
        let status = resp.status().as_u16();
        let body: Value =
            serde_json::from_str(&resp.into_body().read_to_string().unwrap()).unwrap();
        (status, body)
    };
    assert_eq!(put(r#"{"macs":["52:54:00:00:00:01"]}"#).0, 201);
    let (status, body) = put(r#"{"macs":["52:54:00:00:00:02"]}"#);
    assert_eq!((status, body["reload"].as_str()), (200, Some("scheduled")));
    let a = addr(&broker.url);
    let _stalled: Vec<TcpStream> = (0..51).map(|_| stalled(&a)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!count.exists(), "the reload went out before the shutdown");
    let started = Instant::now();
    Command::new("kill")
        .arg(broker.child.id().to_string())
        .status()
        .unwrap();
    let exited = loop {
        if let Some(status) = broker.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "SIGTERM did not finish with stalled clients connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exited.success(), "{exited}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?} with --shutdown-timeout-ms 1000",
        started.elapsed()
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "reload\n");
}

/// Sends `request` raw and returns the status and the parsed JSON body.
fn raw(addr: &str, request: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

#[test]
fn every_rejection_is_the_json_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let args = dirs(dir.path());
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let broker = BrokerProcess::serve(&args);
    let a = addr(&broker.url);
    let get = |target: &str| {
        raw(
            &a,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    };
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        (
            "/v1/hosts?limit=a&limit=b",
            400,
            "invalid_query",
            Some("limit"),
        ),
        ("/v1/hosts?limit=null", 400, "invalid_value", Some("limit")),
        ("/v1/hosts/%FF%FE", 400, "invalid_name", Some("name")),
        ("/v1/hosts/..", 400, "invalid_name", None),
        ("/v1/nothing", 404, "no_route", None),
        ("/v1/leases?mac=nope", 404, "no_lease_file", None),
    ];
    for (target, status, code, field) in cases {
        let (s, body) = get(target);
        assert_eq!(s, *status, "{target}: {body}");
        assert_eq!(body["error"]["code"], *code, "{target}: {body}");
        if let Some(f) = field {
            assert_eq!(body["error"]["field"], *f, "{target}: {body}");
        }
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (s, body) = raw(
        &a,
        "POST /v1/hosts?wait=null&wait=null HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (s, body) = raw(
        &a,
        "DELETE /v1/hosts/n1?wait=null&wait=null HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    assert_eq!(body["error"]["field"], "wait");
    let (s, body) = raw(
        &a,
        "PUT /v1/hosts/n1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
}
