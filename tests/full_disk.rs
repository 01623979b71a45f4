//! A full disk: a write that cannot get its space answers 507 `no_space`,
//! writes nothing (no entry, no temp file), the old version stays, and the
//! broker works again once space is freed. Runs on a tiny tmpfs, so it needs
//! root (as the whole suite does); it fails, never skips, without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{call, BrokerProcess};
use serde_json::json;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} (this test needs root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".hostsdir-broker.lock")
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_answers_507_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let _fs = Tmpfs::mount(&mnt, "256k");
    let (hosts, opts) = (mnt.join("hosts"), mnt.join("opts"));
    let broker = BrokerProcess::serve(&[
        "--hosts-dir".as_ref(),
        hosts.as_os_str(),
        "--opts-dir".as_ref(),
        opts.as_os_str(),
    ]);
    let url = broker.url.clone();
    assert_eq!(
        call(
            "PUT",
            &format!("{url}/v1/hosts/keep"),
            Some(json!({"macs": ["52:54:00:00:00:01"]}))
        )
        .0,
        201
    );

    // Fill the filesystem to the last byte.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 512 * 1024]);
    let (status, body) = call(
        "PUT",
        &format!("{url}/v1/hosts/keep"),
        Some(json!({"macs": ["52:54:00:00:00:01"], "hostname": "h".repeat(60)})),
    );
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "no_space");
    let (status, _) = call(
        "PUT",
        &format!("{url}/v1/hosts/new"),
        Some(json!({"macs": ["52:54:00:00:00:02"]})),
    );
    assert_eq!(status, 507);
    assert_eq!(
        visible(&hosts),
        ["keep"],
        "a temp file or a partial entry was left"
    );
    assert_eq!(
        std::fs::read_to_string(hosts.join("keep")).unwrap(),
        "52:54:00:00:00:01\n"
    );

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        call(
            "PUT",
            &format!("{url}/v1/hosts/new"),
            Some(json!({"macs": ["52:54:00:00:00:02"]}))
        )
        .0,
        201
    );
}

/// Regression: ENOSPC while the temp file is created (here: no inode left)
/// was answered 503, because `tempfile` wraps the OS error with its path and
/// only the error's kind survives. It is 507 like any other full disk, and
/// nothing is written.
#[test]
fn no_inode_left_for_the_temp_file_is_507_too() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,nr_inodes=64", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cannot mount a tmpfs (this test needs root)"
    );
    let _fs = Tmpfs(mnt.clone());
    let (hosts, opts) = (mnt.join("hosts"), mnt.join("opts"));
    let broker = BrokerProcess::serve(&[
        "--hosts-dir".as_ref(),
        hosts.as_os_str(),
        "--opts-dir".as_ref(),
        opts.as_os_str(),
    ]);
    let url = broker.url.clone();
    // Use up every inode (ENOSPC on create), keeping the blocks free.
    let mut n = 0;
    while std::fs::write(mnt.join(format!("filler-{n}")), "").is_ok() {
        n += 1;
        assert!(n < 1000, "the tmpfs has more inodes than asked for");
    }
    let (status, body) = call(
        "PUT",
        &format!("{url}/v1/hosts/new"),
        Some(json!({"macs": ["52:54:00:00:00:02"]})),
    );
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "no_space");
    assert!(visible(&hosts).is_empty(), "{:?}", visible(&hosts));
    std::fs::remove_file(mnt.join("filler-0")).unwrap();
    std::fs::remove_file(mnt.join("filler-1")).unwrap();
    let (status, body) = call(
        "PUT",
        &format!("{url}/v1/hosts/new"),
        Some(json!({"macs": ["52:54:00:00:00:02"]})),
    );
    assert_eq!(status, 201, "{body}");
}
