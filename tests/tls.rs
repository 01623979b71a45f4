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
    let mut cmd = Command::new(common::BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--hosts-dir")
        .arg(dir.join("h"))
        .arg("--opts-dir")
        .arg(dir.join("o"))
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"));
    if client_ca {
        cmd.arg("--tls-client-ca").arg(dir.join("ca.pem"));
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
