//! `hostsdir-broker check`: each kind of problem seeded in a directory is
//! reported, and a clean directory exits 0.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

fn check(hosts: &std::path::Path, opts: &std::path::Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_hostsdir-broker"))
        .arg("check")
        .arg("--hosts-dir")
        .arg(hosts)
        .arg("--opts-dir")
        .arg(opts)
        .arg("--json")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), json)
}

#[test]
fn clean_directories_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("h"), dir.path().join("o"));
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::create_dir_all(&opts).unwrap();
    std::fs::write(
        hosts.join("ironic-52:54:00:aa:bb:cc.conf"),
        "52:54:00:aa:bb:cc,set:t1,set:ironic\n",
    )
    .unwrap();
    std::fs::write(
        opts.join("ironic-node.conf"),
        "tag:t1,tag:!ipxe,67,snponly.efi\n",
    )
    .unwrap();
    let (code, json) = check(&hosts, &opts);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["clean"], true);
}

#[test]
fn every_kind_of_problem_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, opts) = (dir.path().join("h"), dir.path().join("o"));
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::create_dir_all(&opts).unwrap();
    let w = |d: &std::path::Path, n: &str, t: &str| std::fs::write(d.join(n), t).unwrap();
    w(&hosts, "dup-a", "52:54:00:00:00:01,10.0.0.5\n");
    w(&hosts, "dup-b", "52:54:00:00:00:01\n");
    w(&hosts, "bad-ip", "52:54:00:00:00:02,10.250.0.300\n");
    w(&hosts, "dash-mac", "02-00-00-00-01-02\n");
    w(&hosts, "short-lease", "52:54:00:00:00:03,60\n");
    w(&hosts, ".tmpXYZ", "half");
    w(&hosts, "backup~", "52:54:00:00:00:04\n");
    w(
        &hosts,
        "long",
        &format!("52:54:00:00:00:05,{}\n", "a".repeat(1100)),
    );
    w(&hosts, "private", "52:54:00:00:00:06\n");
    std::fs::set_permissions(
        hosts.join("private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    w(&opts, "typo", "optoin:router,10.0.0.1\n");
    let (code, json) = check(&hosts, &opts);
    assert_eq!(code, 1, "{json}");
    let problems = json["problems"].as_array().unwrap();
    let about = |file: &str| -> Vec<String> {
        problems
            .iter()
            .filter(|p| p["file"] == file)
            .map(|p| p["reason"].as_str().unwrap().to_string())
            .collect()
    };
    for file in [
        "dup-b",
        "bad-ip",
        "dash-mac",
        "short-lease",
        ".tmpXYZ",
        "backup~",
        "long",
        "private",
        "typo",
    ] {
        assert!(!about(file).is_empty(), "{file} not reported: {json}");
    }
    assert!(
        about("dup-b")
            .iter()
            .any(|r| r.contains("52:54:00:00:00:01") && r.contains("dup-a")),
        "{json}"
    );
    assert!(
        about("private")
            .iter()
            .any(|r| r.contains("world-readable")),
        "{json}"
    );
    assert!(
        about("long")
            .iter()
            .any(|r| r.contains("1024") || r.contains("1023")),
        "{json}"
    );
}
