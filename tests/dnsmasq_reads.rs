//! A real dnsmasq (Debian's 2.90, and 2.91 and 2.93 built by
//! `scripts/build-dnsmasq.sh`, each supervised by the broker in turn) reads
//! every kind of file the broker writes — hosts of every shape, options of
//! every shape, replacements and deletions — exactly once per write and
//! without a single error line in its log. Regression for the double read
//! caused by closing a temp file after its rename (see
//! `store::fsio::Prepared`).
//!
//! Needs the three builds (scripts/install-test-deps.sh installs them); the
//! test fails, never skips, without one. They run one after the other: each
//! serves DHCP on the host's `lo`.

mod common;

use std::process::{Command, Stdio};

use common::{call, BrokerProcess};
use serde_json::json;

#[test]
fn dnsmasq_reads_every_broker_file_without_an_error() {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for dnsmasq in [
        std::path::PathBuf::from("/usr/sbin/dnsmasq"),
        top.join("target/dnsmasq-2.91/dnsmasq"),
        top.join("target/dnsmasq-2.93/dnsmasq"),
    ] {
        assert!(
            dnsmasq.exists(),
            "{} is missing: run scripts/install-test-deps.sh (or scripts/build-dnsmasq.sh 2.91|2.93)",
            dnsmasq.display()
        );
        reads_every_broker_file(&dnsmasq);
    }
}

/// The whole check against one dnsmasq build.
fn reads_every_broker_file(dnsmasq: &std::path::Path) {
    // No dot in the path, so "/." in the log can only be a temp file.
    let dir = tempfile::Builder::new()
        .prefix("hdb-reads-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let (hosts, opts, log) = (d.join("hosts"), d.join("opts"), d.join("dnsmasq.log"));
    let mut cmd = Command::new(common::BIN);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--reload-quiet-ms",
        "20",
    ])
    .arg("--hosts-dir")
    .arg(&hosts)
    .arg("--opts-dir")
    .arg(&opts)
    .arg("--")
    .arg(dnsmasq)
    .args([
        "--port=0",
        "--bind-interfaces",
        "--interface=lo",
        "--dhcp-range=192.0.2.10,192.0.2.200,1h",
        "--dhcp-range=fd00::10,fd00::200,64,1h",
    ])
    .arg(format!("--dhcp-hostsdir={}", hosts.display()))
    .arg(format!("--dhcp-optsdir={}", opts.display()))
    .arg(format!("--dhcp-leasefile={}", d.join("leases").display()))
    .arg(format!("--pid-file={}", d.join("pid").display()))
    .arg(format!("--log-facility={}", log.display()))
    .stderr(Stdio::null());
    let broker = BrokerProcess::start(cmd);
    let url = broker.url.clone();

    let host_specs = [
        (
            "ironic-52:54:00:00:00:01.conf",
            json!({"macs": ["52:54:00:00:00:01"], "set_tags": ["3f2a9c1e-0000-4000-8000-000000000001", "ironic"]}),
        ),
        (
            "fixed",
            json!({"macs": ["52:54:00:00:00:02"], "ipv4": "192.0.2.20", "hostname": "node-2", "lease_time": "12h"}),
        ),
        (
            "v6",
            json!({"macs": ["52:54:00:00:00:03"], "ipv6": "fd00::20", "hostname": "node-3.example.org", "lease_time": "infinite"}),
        ),
        (
            "no-dhcp",
            json!({"macs": ["52:54:00:00:00:04"], "ignore": true}),
        ),
        (
            "by-id",
            json!({"client_id": "01:52:54:00:00:00:05", "ipv4": "192.0.2.21", "lease_time": 600}),
        ),
        (
            "wild",
            json!({"macs": ["52:54:01:*:*:*"], "match_tags": ["known", "!ipxe"], "set_tags": ["lab"]}),
        ),
        (
            "two-macs",
            json!({"macs": ["52:54:00:00:00:06", "52:54:00:00:00:07"], "ipv4": "192.0.2.22"}),
        ),
        ("by-name", json!({"hostname": "name-only"})),
        (
            "line-form",
            json!({"line": "52:54:00:00:00:08,set:x,192.0.2.23,node-8,2h"}),
        ),
    ];
    for (name, spec) in &host_specs {
        let (status, body) = call("PUT", &format!("{url}/v1/hosts/{name}"), Some(spec.clone()));
        assert_eq!(status, 201, "{name}: {body}");
    }
    let option_specs = [
        (
            "ironic-node-1.conf",
            json!({"lines": [
                "tag:3f2a9c1e-0000-4000-8000-000000000001,tag:!ipxe,67,snponly.efi",
                "tag:3f2a9c1e-0000-4000-8000-000000000001,tag:ipxe,67,http://192.0.2.1:8080/boot.ipxe",
                "tag:3f2a9c1e-0000-4000-8000-000000000001,66,192.0.2.1",
                "tag:3f2a9c1e-0000-4000-8000-000000000001,150,192.0.2.1",
                "tag:3f2a9c1e-0000-4000-8000-000000000001,255,192.0.2.1",
                "tag:3f2a9c1e-0000-4000-8000-000000000001,60,HTTPClient"
            ]}),
        ),
        (
            "named",
            json!({"options": [
                {"tags": ["lab"], "option": "option:router", "value": "192.0.2.1"},
                {"tags": ["lab"], "option": "option:dns-server", "value": "192.0.2.1,192.0.2.2"},
                {"tags": ["lab"], "option": "option6:bootfile-url", "value": "http://[fd00::1]/boot.ipxe"},
                {"tags": ["lab"], "option": "option6:59", "value": "http://[fd00::1]/x.efi"}
            ]}),
        ),
    ];
    for (name, spec) in &option_specs {
        let (status, body) = call(
            "PUT",
            &format!("{url}/v1/options/{name}"),
            Some(spec.clone()),
        );
        assert_eq!(status, 201, "{name}: {body}");
    }
    // Replace with other addresses, delete, all waiting for the reload.
    let (status, body) = call(
        "PUT",
        &format!("{url}/v1/hosts/fixed?wait=reload"),
        Some(json!({"macs": ["52:54:00:00:00:02"], "ipv4": "192.0.2.30"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        "DELETE",
        &format!("{url}/v1/hosts/ironic-52:54:00:00:00:01.conf?wait=reload"),
        None,
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(
        "DELETE",
        &format!("{url}/v1/options/named?wait=reload"),
        None,
    );
    assert_eq!(status, 204, "{body}");

    let (_, status) = call("GET", &format!("{url}/v1/status"), None);
    assert_eq!(status["dnsmasq"]["running"], true, "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "error",
                "bad ",
                "duplicate",
                "cannot",
                "failed",
                "unknown",
                "illegal",
                "missing",
                "ignored",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} complained:\n{}\n--- whole log ---\n{text}",
        dnsmasq.display(),
        bad.join("\n")
    );
    assert!(
        !text.contains("/."),
        "{} read a temp file:\n{text}",
        dnsmasq.display()
    );
    // Each create was read once by inotify (not twice).
    for (name, _) in host_specs
        .iter()
        .filter(|(n, _)| *n != "fixed" && !n.starts_with("ironic"))
    {
        let inotify_reads = text
            .lines()
            .filter(|l| l.contains("inotify") && l.ends_with(&format!("/{name} new or modified")))
            .count();
        assert_eq!(
            inotify_reads,
            1,
            "{}: {name} was read {inotify_reads} times by inotify:\n{text}",
            dnsmasq.display()
        );
    }
}
