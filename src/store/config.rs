//! The store's settings and the counters it keeps.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::Kind;

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The dhcp-hostsdir.
    pub hosts_dir: PathBuf,
    /// The dhcp-optsdir.
    pub opts_dir: PathBuf,
    /// Mode of written files.
    pub file_mode: u32,
    /// How long to wait for the directory lock before answering 503.
    pub lock_timeout: Duration,
    /// How long to wait for a legacy writer's lock on a file being replaced.
    pub legacy_lock_timeout: Duration,
    /// Most requests merged into one commit.
    pub max_group: usize,
    /// How long the writer keeps the directory lock after a group, waiting
    /// for the next request (a client writing entry after entry).
    pub lock_linger: Duration,
    /// Longest the writer keeps the directory lock over several groups
    /// before it lets another broker have a turn.
    pub lock_max_hold: Duration,
    /// Whether to nudge CephFS's metadata server when a call waits on it
    /// (see `store::nudge`).
    pub nudge: super::NudgeMode,
    /// Tests only: the writer panics when asked to put an entry of this
    /// name, to show what happens when it dies (the server reads it from
    /// `HOSTSDIR_BROKER_TEST_KILL_WRITER_ON`). `None` in production.
    pub kill_writer_on: Option<String>,
}

impl StoreConfig {
    /// Defaults for the two directories.
    pub fn new(hosts_dir: PathBuf, opts_dir: PathBuf) -> StoreConfig {
        StoreConfig {
            hosts_dir,
            opts_dir,
            file_mode: 0o644,
            lock_timeout: Duration::from_secs(10),
            legacy_lock_timeout: Duration::from_secs(5),
            max_group: 256,
            lock_linger: Duration::from_millis(20),
            lock_max_hold: Duration::from_millis(250),
            nudge: super::NudgeMode::Auto,
            kill_writer_on: None,
        }
    }

    /// The directory of a kind.
    pub fn dir(&self, kind: Kind) -> &std::path::Path {
        match kind {
            Kind::Host => &self.hosts_dir,
            Kind::Option => &self.opts_dir,
        }
    }
}

/// Counters the writer keeps for status and metrics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WriterStats {
    /// Group commits: each took the directory locks once for the requests
    /// queued together (whether or not they wrote anything).
    pub commits: u64,
    /// Requests answered.
    pub requests: u64,
    /// Files written.
    pub files_written: u64,
    /// Files removed.
    pub files_removed: u64,
    /// Times files were compared with the index again because another
    /// process changed the directories (the changed files only, or every
    /// file when nothing narrower was known).
    pub rescans: u64,
    /// Entries added, changed or removed by others, seen by rescans.
    pub external_changes: u64,
    /// Leftover dotfiles (a broker killed mid-write, or a fault while
    /// cleaning up after another) removed or put back while running.
    pub leftovers_removed: u64,
    /// The last error met by the writer, if the last commit failed.
    pub last_error: Option<String>,
    /// Times the metadata server was asked to flush its journal because a
    /// call waited on it (`None`: not nudging; see `store::nudge`).
    pub mds_nudges: Option<u64>,
    /// Set while the writer has been blocked in the filesystem for over
    /// [`STALL_AFTER`]: what it is doing and for how long.
    pub stalled: Option<String>,
}

/// How long the writer may be busy on one group before the store counts as
/// stalled: writes are then refused at once, and readiness fails.
pub const STALL_AFTER: Duration = Duration::from_secs(2);
