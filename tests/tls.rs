//! TLS: a handshake with a generated certificate and a real client, and
//! client-certificate verification (a client without a certificate signed by
//! `--tls-client-ca` cannot connect).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::BrokerProcess;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        (
            params.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    Pki {
        server: leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(
            vec!["conductor-1".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
        ca_pem,
    }
}

fn start(dir: &Path, pki: &Pki, client_ca: bool) -> BrokerProcess {
    std::fs::write(dir.join("cert.pem"), &pki.server.0).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.server.1).unwrap();
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    let ca = dir.join("ca.pem");
    serve_tls(
        dir,
        &dir.join("cert.pem"),
        &dir.join("key.pem"),
        client_ca.then_some(ca.as_path()),
    )
}

/// `serve` over HTTPS on `dir`'s directories with these files.
fn serve_tls(dir: &Path, cert: &Path, key: &Path, client_ca: Option<&Path>) -> BrokerProcess {
    let mut cmd = Command::new(common::BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--hosts-dir")
        .arg(dir.join("h"))
        .arg("--opts-dir")
        .arg(dir.join("o"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    if let Some(ca) = client_ca {
        cmd.arg("--tls-client-ca").arg(ca);
    }
    cmd.stderr(Stdio::null());
    let b = BrokerProcess::start(cmd);
    assert!(b.url.starts_with("https://"), "{}", b.url);
    b
}

fn agent(pki: &Pki, with_client_cert: bool) -> ureq::Agent {
    let root = Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[root]));
    if with_client_cert {
        let cert = Certificate::from_pem(pki.client.0.as_bytes()).unwrap();
        let key = PrivateKey::from_pem(pki.client.1.as_bytes()).unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn https_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let b = start(dir.path(), &pki, false);
    let req = ureq::http::Request::put(format!("{}/v1/hosts/n1", b.url))
        .header("content-type", "application/json")
        .body(r#"{"macs":["52:54:00:00:00:01"]}"#.to_string())
        .unwrap();
    let resp = agent(&pki, false).run(req).expect("TLS request");
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("h/n1")).unwrap(),
        "52:54:00:00:00:01\n"
    );
    // A client that does not trust the CA is refused by its own TLS stack.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    assert!(plain.get(format!("{}/healthz", b.url)).call().is_err());
}

#[test]
fn client_certificates_are_required_with_a_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let b = start(dir.path(), &pki, true);
    let url = format!("{}/v1/status", b.url);
    assert!(
        agent(&pki, false).get(&url).call().is_err(),
        "a client without a certificate got in"
    );
    let resp = agent(&pki, true)
        .get(&url)
        .call()
        .expect("with a client certificate");
    assert_eq!(resp.status().as_u16(), 200);
}

// ---------------------------------------------------------------------------
// Rotation: the files change under a running broker the way the kubelet
// changes a mounted Secret, and new handshakes must see the new set.

use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostsdir_broker::tls::POLL;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio_rustls::rustls;

/// How long a rotation may take to show: the broker compares the files every
/// `POLL` (2 s); fifteen polls leave room for a busy machine.
fn rotation_limit() -> Duration {
    POLL * 15
}

/// A certificate authority that signs leaves.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf: PEM certificate, PEM key, DER certificate, notAfter (Unix s).
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
    not_after: i64,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, server: bool, year: i32) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names = if server {
            vec!["127.0.0.1".to_string(), "localhost".to_string()]
        } else {
            vec!["conductor-1".to_string()]
        };
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        params.not_after = rcgen::date_time_ymd(year, 6, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
            not_after: params.not_after.unix_timestamp(),
        }
    }
}

/// A directory laid out as the kubelet lays out a mounted Secret: the files
/// live in a timestamped hidden directory, `..data` links to it, and each
/// visible name links through `..data`. An update writes a new hidden
/// directory and renames a new `..data` link over the old one (atomic), then
/// removes the old directory — what `AtomicWriter` in the kubelet does.
struct SecretDir {
    dir: PathBuf,
    generation: u32,
}

impl SecretDir {
    fn new(dir: PathBuf, files: &[(&str, &str)]) -> SecretDir {
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = SecretDir { dir, generation: 0 };
        s.update(files);
        for (name, _) in files {
            symlink(format!("..data/{name}"), s.dir.join(name)).unwrap();
        }
        s
    }

    fn update(&mut self, files: &[(&str, &str)]) {
        let old = format!(
            "..2025_01_01_00_00_{:02}.{}",
            self.generation, self.generation
        );
        self.generation += 1;
        let new = format!(
            "..2025_01_01_00_00_{:02}.{}",
            self.generation, self.generation
        );
        std::fs::create_dir(self.dir.join(&new)).unwrap();
        for (name, text) in files {
            std::fs::write(self.dir.join(&new).join(name), text).unwrap();
        }
        symlink(&new, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        let _ = std::fs::remove_dir_all(self.dir.join(old));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// One HTTPS request on a new connection (so a new handshake): the
/// certificate the broker presented, the status code and the body.
fn fetch(
    addr: &str,
    path: &str,
    ca_pem: &str,
    client: Option<&Leaf>,
) -> Result<(Vec<u8>, u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(leaf.der.clone())],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?
        .to_vec();
    let text = String::from_utf8(response).map_err(|e| e.to_string())?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((leaf, status, body))
}

/// Calls `probe` until it returns `Some`, for at most `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `serve` over HTTPS with the Secret's files; returns the broker and its
/// `host:port`.
fn start_rotating(dir: &Path, secret: &SecretDir, client_ca: bool) -> (BrokerProcess, String) {
    let ca = secret.path("ca.crt");
    let b = serve_tls(
        dir,
        &secret.path("tls.crt"),
        &secret.path("tls.key"),
        client_ca.then_some(ca.as_path()),
    );
    let addr = b.url.strip_prefix("https://").unwrap().to_string();
    (b, addr)
}

fn tls_status(addr: &str, ca: &str, client: Option<&Leaf>) -> Value {
    let (_, status, body) = fetch(addr, "/v1/status", ca, client).expect("status");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["tls"].clone()
}

/// The value of an unlabelled sample in a `/metrics` text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn metric(addr: &str, ca: &str, name: &str) -> Option<f64> {
    let (_, _, body) = fetch(addr, "/metrics", ca, None).expect("metrics");
    sample(&body, name)
}

#[test]
fn a_rotated_certificate_is_served_to_new_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (a, b) = (ca.leaf(true, 2031), ca.leaf(true, 2032));
    let mut secret = SecretDir::new(
        dir.path().join("secret"),
        &[("tls.crt", a.cert.as_str()), ("tls.key", a.key.as_str())],
    );
    let (_broker, addr) = start_rotating(dir.path(), &secret, false);
    let (served, _, _) = fetch(&addr, "/healthz", &ca.pem, None).unwrap();
    assert_eq!(served, a.der, "the first certificate is served");
    let status = tls_status(&addr, &ca.pem, None);
    assert_eq!(
        status["serving"]["not_after_unix_s"], a.not_after,
        "{status}"
    );
    assert_eq!(status["loads"], 1, "{status}");
    let expiry = "hostsdir_broker_tls_certificate_expiry_timestamp_seconds";
    assert_eq!(metric(&addr, &ca.pem, expiry), Some(a.not_after as f64));

    secret.update(&[("tls.crt", b.cert.as_str()), ("tls.key", b.key.as_str())]);
    wait_for(
        "new handshakes get the new certificate",
        rotation_limit(),
        || {
            let (served, _, _) = fetch(&addr, "/healthz", &ca.pem, None).unwrap();
            (served == b.der).then_some(())
        },
    );
    let status = tls_status(&addr, &ca.pem, None);
    assert_eq!(
        status["serving"]["not_after_unix_s"], b.not_after,
        "{status}"
    );
    assert_eq!(status["loads"], 2, "{status}");
    assert_eq!(status["rejected"], false, "{status}");
    assert_eq!(status["failures"], 0, "{status}");
    assert_eq!(metric(&addr, &ca.pem, expiry), Some(b.not_after as f64));
}

#[test]
fn a_bad_new_set_keeps_the_old_certificate_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (a, b) = (ca.leaf(true, 2031), ca.leaf(true, 2032));
    let mut secret = SecretDir::new(
        dir.path().join("secret"),
        &[("tls.crt", a.cert.as_str()), ("tls.key", a.key.as_str())],
    );
    let (_broker, addr) = start_rotating(dir.path(), &secret, false);
    let failing = "hostsdir_broker_tls_reload_failing";
    let failures = "hostsdir_broker_tls_reload_failures_total";
    assert_eq!(metric(&addr, &ca.pem, failing), Some(0.0));

    // Each bad set: reported once, with its reason, while `a` keeps serving.
    let half = &b.cert[..b.cert.len() / 2];
    type Files<'a> = Vec<(&'a str, &'a str)>;
    let bad: [(&str, Files, &str); 3] = [
        (
            "a key that does not fit the certificate",
            vec![("tls.crt", b.cert.as_str()), ("tls.key", a.key.as_str())],
            "does not fit",
        ),
        (
            "a half-written certificate",
            vec![("tls.crt", half), ("tls.key", b.key.as_str())],
            "tls.crt",
        ),
        (
            "no key file (unreadable)",
            vec![("tls.crt", b.cert.as_str())],
            "cannot read the TLS key",
        ),
    ];
    for (n, (what, files, reason)) in bad.iter().enumerate() {
        secret.update(files);
        let status = wait_for(&format!("{what} is reported"), rotation_limit(), || {
            let s = tls_status(&addr, &ca.pem, None);
            (s["failures"] == n + 1).then_some(s)
        });
        assert_eq!(status["rejected"], true, "{what}: {status}");
        let error = status["last_error"].as_str().unwrap();
        assert!(error.contains(reason), "{what}: {error}");
        assert_eq!(status["loads"], 1, "{what}: {status}");
        let (served, code, _) = fetch(&addr, "/healthz", &ca.pem, None).unwrap();
        assert_eq!(
            (served == a.der, code),
            (true, 200),
            "{what}: the old one serves"
        );
        assert_eq!(metric(&addr, &ca.pem, failing), Some(1.0), "{what}");
        assert_eq!(metric(&addr, &ca.pem, failures), Some((n + 1) as f64));
    }

    // A good set again: served, and the failure cleared.
    secret.update(&[("tls.crt", b.cert.as_str()), ("tls.key", b.key.as_str())]);
    wait_for("the good set is served", rotation_limit(), || {
        let (served, _, _) = fetch(&addr, "/healthz", &ca.pem, None).unwrap();
        (served == b.der).then_some(())
    });
    let status = tls_status(&addr, &ca.pem, None);
    assert_eq!(status["rejected"], false, "{status}");
    assert_eq!(status["failures"], 3, "each bad set counted once: {status}");
    assert_eq!(metric(&addr, &ca.pem, failing), Some(0.0));
}

#[test]
fn a_rotated_client_ca_decides_new_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, ca2) = (Ca::new(), Ca::new());
    let server = ca1.leaf(true, 2031);
    let (client1, client2) = (ca1.leaf(false, 2031), ca2.leaf(false, 2031));
    let mut secret = SecretDir::new(
        dir.path().join("secret"),
        &[
            ("tls.crt", server.cert.as_str()),
            ("tls.key", server.key.as_str()),
            ("ca.crt", ca1.pem.as_str()),
        ],
    );
    let (_broker, addr) = start_rotating(dir.path(), &secret, true);
    let admitted = |client: &Leaf| {
        matches!(
            fetch(&addr, "/v1/status", &ca1.pem, Some(client)),
            Ok((_, 200, _))
        )
    };
    assert!(admitted(&client1), "a client of the first CA gets in");
    assert!(!admitted(&client2), "a client of another CA is refused");

    secret.update(&[
        ("tls.crt", server.cert.as_str()),
        ("tls.key", server.key.as_str()),
        ("ca.crt", ca2.pem.as_str()),
    ]);
    wait_for(
        "the new client CA admits its client",
        rotation_limit(),
        || admitted(&client2).then_some(()),
    );
    assert!(!admitted(&client1), "the old CA's client is refused now");
    let status = tls_status(&addr, &ca1.pem, Some(&client2));
    assert_eq!(status["loads"], 2, "{status}");
}

#[test]
fn sighup_reloads_the_files_even_when_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let a = ca.leaf(true, 2031);
    let secret = SecretDir::new(
        dir.path().join("secret"),
        &[("tls.crt", a.cert.as_str()), ("tls.key", a.key.as_str())],
    );
    let (broker, addr) = start_rotating(dir.path(), &secret, false);
    assert_eq!(tls_status(&addr, &ca.pem, None)["loads"], 1);
    // Unchanged files are never reloaded by the poll: only SIGHUP can.
    let hup = Command::new("kill")
        .args(["-HUP", &broker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("SIGHUP reloads the set", rotation_limit(), || {
        (tls_status(&addr, &ca.pem, None)["loads"] == 2).then_some(())
    });
    let (served, code, _) = fetch(&addr, "/healthz", &ca.pem, None).unwrap();
    assert_eq!((served == a.der, code), (true, 200));
}
