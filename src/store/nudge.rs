//! Nudging CephFS's metadata server when a filesystem call waits on it.
//!
//! With Ceph's default MDS settings (`mds_early_reply = true`,
//! `mds_tick_interval = 5`) the MDS answers a client before it journals,
//! and flushes its journal only on its tick, every 5 s, unless a client
//! asks for a flush. Measured here with two ceph-fuse mounts
//! (`scripts/cephfs-lab.sh`, see CEPHFS-FACTS.md): node A writes a file
//! (temp file, fsync, rename, directory fsync), and node B's first `stat`
//! or `open` of it waits 2–5 s. The MDS log says why: B's lookup "failed to
//! rdlock, waiting" on the file's `ifile excl->sync` transition — A's
//! client holds the new file's exclusive caps and a writable range, and
//! giving those up is a journaled update that waits for the next flush.
//! Meanwhile A's own next rename in the directory waits too. That is
//! every hand-over between two brokers (the second reads the files the
//! first just wrote), and every file a broker reads behind a legacy writer
//! on another node: two brokers racing 40 creates took 132 s.
//!
//! What asks for a flush: a client's `fsync` of something with a request
//! not yet journaled (ceph-fuse and the kernel client then send the MDS
//! "flush your journal"). So when one of the broker's calls has waited for
//! [`AFTER`], a thread here sets the mtime of a private directory (one
//! metadata request the MDS answers early) and fsyncs it: the MDS flushes
//! its whole journal, the pending update becomes safe, and the waiting
//! call returns. Measured: B's read of A's fresh file 2–5 s → 25–38 ms.
//! The directory must not be the one the call waits in (its locks are
//! the ones in transition: the nudge would wait as well), hence a
//! subdirectory of its own, `.hostsdir-broker.d/nudge-<host>-<device>` in
//! the hosts directory (dnsmasq reads neither dotfiles nor subdirectories,
//! and its mtime changes are not the hosts directory's). One per client of
//! the filesystem (node and mount): a directory two clients touch would
//! make the nudge itself wait for the other's caps.
//!
//! On by default where the hosts directory is on CephFS (the kernel
//! client, or ceph-fuse), off elsewhere (`--mds-nudge auto|on|off`). A
//! nudge costs about 2.5 ms of MDS work, at most one every [`EVERY`].

use crate::sync::LockOrRecover;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a call may wait before the MDS is nudged: a few times what a
/// metadata round trip costs on an idle CephFS (1–3 ms).
pub(crate) const AFTER: Duration = Duration::from_millis(15);
/// Least time between two nudges while a call keeps waiting.
pub(crate) const EVERY: Duration = Duration::from_millis(30);

/// Whether to nudge, as the command line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NudgeMode {
    /// Where the hosts directory is on CephFS.
    #[default]
    Auto,
    /// Always (harmless elsewhere: a `utimes` and an `fsync` of a small
    /// directory when a call is slow).
    On,
    /// Never.
    Off,
}

/// Watches the broker's filesystem calls and nudges the MDS when one waits.
#[derive(Clone, Default)]
pub(crate) struct Nudger {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    dir: PathBuf,
    /// The directory, kept open: a nudge by path would look the name up
    /// through the hosts directory, whose locks are the ones in transition
    /// while a call waits (seen: the nudger's own `open` waited 2 s).
    file: std::fs::File,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Calls under way, by id: when each started.
    calls: BTreeMap<u64, Instant>,
    nudges: u64,
    stop: bool,
}

/// A call under way; dropping it says it returned.
pub(crate) struct Watch<'a> {
    inner: Option<(&'a Inner, u64)>,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if let Some((inner, id)) = self.inner {
            inner.state.lock_or_recover().calls.remove(&id);
        }
    }
}

impl Nudger {
    /// A nudger for the directories under `hosts_dir`, on or off as `mode`
    /// and the filesystem say.
    pub(crate) fn new(hosts_dir: &Path, mode: NudgeMode) -> Nudger {
        let on = match mode {
            NudgeMode::On => true,
            NudgeMode::Off => false,
            NudgeMode::Auto => is_cephfs(hosts_dir),
        };
        if !on {
            return Nudger::default();
        }
        let host = rustix::system::uname()
            .nodename()
            .to_str()
            .ok()
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .unwrap_or("node")
            .to_string();
        // One directory per client of the filesystem: per node, and per
        // mount of the node (the device number of the mount), so two
        // brokers never share one (a nudge on a directory another client
        // holds caps on would wait just like the call it is meant to
        // help: seen with two mounts of one lab machine).
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(hosts_dir).map(|m| m.dev()).unwrap_or(0);
        let dir = hosts_dir
            .join(".hostsdir-broker.d")
            .join(format!("nudge-{host}-{dev:x}"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), "cannot make the directory to nudge the metadata server with, not nudging: {e}");
            return Nudger::default();
        }
        let file = match std::fs::File::open(&dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot open the directory to nudge the metadata server with, not nudging: {e}");
                return Nudger::default();
            }
        };
        tracing::info!(dir = %dir.display(), "nudging the metadata server when a filesystem call waits (CephFS)");
        let inner = Arc::new(Inner {
            dir,
            file,
            state: Mutex::default(),
            wake: Condvar::new(),
        });
        let weak = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new()
            .name("mds-nudger".into())
            .spawn(move || run(weak));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the nudging thread, not nudging: {e}");
            return Nudger::default();
        }
        Nudger { inner: Some(inner) }
    }

    /// Marks a call that may wait on the MDS, until the guard drops.
    pub(crate) fn watch(&self) -> Watch<'_> {
        let Some(inner) = &self.inner else {
            return Watch { inner: None };
        };
        let mut state = inner.state.lock_or_recover();
        let id = state.next;
        state.next += 1;
        let first = state.calls.is_empty();
        state.calls.insert(id, Instant::now());
        drop(state);
        if first {
            inner.wake.notify_one();
        }
        Watch {
            inner: Some((inner, id)),
        }
    }

    /// Nudges sent so far (`None`: not nudging).
    pub(crate) fn nudges(&self) -> Option<u64> {
        self.inner
            .as_ref()
            .map(|i| i.state.lock_or_recover().nudges)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.state.get_mut().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.wake.notify_all();
    }
}

/// The nudging thread: sleeps until a call has waited [`AFTER`], nudges,
/// and again every [`EVERY`] while one keeps waiting. Ends with the last
/// [`Nudger`].
fn run(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let due = {
            let state = inner.state.lock_or_recover();
            if state.stop {
                return;
            }
            let oldest = state.calls.values().min().copied();
            match oldest {
                None => {
                    // Wait for a call (bounded, so a dropped nudger is
                    // noticed).
                    let _ = inner.wake.wait_timeout(state, Duration::from_secs(1));
                    continue;
                }
                Some(t) if t.elapsed() < AFTER => {
                    let _ = inner.wake.wait_timeout(state, AFTER - t.elapsed());
                    continue;
                }
                Some(_) => true,
            }
        };
        if due {
            if let Err(e) = nudge(&inner.file) {
                tracing::debug!(dir = %inner.dir.display(), "nudging the metadata server failed: {e}");
            }
            inner.state.lock_or_recover().nudges += 1;
            drop(inner);
            std::thread::sleep(EVERY);
        }
    }
}

/// One metadata request the MDS answers before journaling it (the
/// directory's mtime), then an fsync, which makes the client ask the MDS
/// to flush its journal. Both through the open directory: no path lookup.
fn nudge(dir: &std::fs::File) -> std::io::Result<()> {
    use rustix::fs::{futimens, Timespec, Timestamps};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let t = Timespec {
        tv_sec: now.as_secs() as i64,
        tv_nsec: i64::from(now.subsec_nanos()),
    };
    futimens(
        dir,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?;
    dir.sync_all()
}

/// True when `dir` is on CephFS: the kernel client (`ceph`) or ceph-fuse
/// (`fuse.ceph-fuse`), by the mount that holds it in /proc/self/mountinfo.
fn is_cephfs(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    fs_type_of(&dir, &info)
        .is_some_and(|t| t == "ceph" || t == "fuse.ceph-fuse" || t == "fuse.ceph")
}

/// The filesystem type of the deepest mount point containing `dir`, from
/// mountinfo's text (`ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - TYPE
/// SOURCE SUPEROPTS`).
fn fs_type_of(dir: &Path, mountinfo: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let mut fields = line.split(' ');
        let Some(point) = fields.nth(4) else { continue };
        let point = unescape(point);
        let Some(fs_type) = line.split(" - ").nth(1).and_then(|r| r.split(' ').next()) else {
            continue;
        };
        if dir.starts_with(&point) && best.as_ref().is_none_or(|(len, _)| point.len() >= *len) {
            best = Some((point.len(), fs_type.to_string()));
        }
    }
    best.map(|(_, t)| t)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
40 22 0:40 / /tmp/lab/mnt/a rw,nosuid - fuse.ceph-fuse ceph-fuse rw
41 22 0:41 / /mnt/with\\040space rw - ceph 10.0.0.1:/ rw
";

    #[test]
    fn finds_the_deepest_mount() {
        assert_eq!(
            fs_type_of(Path::new("/tmp/lab/mnt/a/hosts"), INFO).as_deref(),
            Some("fuse.ceph-fuse")
        );
        assert_eq!(
            fs_type_of(Path::new("/tmp/lab/mnt/b"), INFO).as_deref(),
            Some("ext4")
        );
        assert_eq!(
            fs_type_of(Path::new("/mnt/with space/x"), INFO).as_deref(),
            Some("ceph")
        );
    }

    #[test]
    fn a_slow_call_is_nudged_and_a_quick_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        let n = Nudger::new(d.path(), NudgeMode::On);
        {
            let _quick = n.watch();
        }
        std::thread::sleep(AFTER * 3);
        assert_eq!(
            n.nudges(),
            Some(0),
            "a call that returned at once was nudged"
        );
        let slow = n.watch();
        let deadline = Instant::now() + Duration::from_secs(30);
        while n.nudges() == Some(0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(slow);
        assert!(n.nudges().unwrap() >= 1, "a slow call was never nudged");
        assert!(d.path().join(".hostsdir-broker.d").is_dir());
        assert_eq!(Nudger::new(d.path(), NudgeMode::Off).nudges(), None);
        assert_eq!(
            Nudger::new(d.path(), NudgeMode::Auto).nudges(),
            None,
            "a local disk is not CephFS"
        );
    }
}
