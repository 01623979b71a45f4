//! The store owns the hosts and options directories.
//!
//! Why it is shaped this way:
//! - **One writer.** All mutations go through a channel to one thread
//!   ([`writer`]), so requests never write concurrently, and a burst of
//!   requests shares one lock acquisition and one directory fsync (group
//!   commit) — the cost that dominates at scale.
//! - **Cross-process lock.** Every mutation holds an exclusive `flock` on a
//!   dotfile in each directory, so several brokers sharing a volume serialise;
//!   a generation counter in the lock file tells a broker when another one
//!   wrote, and it rescans before checking preconditions.
//! - **Durable before acknowledged.** See [`fsio`]: temp file, fsync, rename,
//!   directory fsync; only then does a request get its answer.
//! - **Readers never wait for disk.** Reads use the in-memory [`Index`] under
//!   a short `RwLock` read.
//!
//! The store knows nothing of HTTP or of how dnsmasq is reloaded: it reports
//! which changes need a reload through [`ReloadSink`].

mod config;
mod error;
mod fsio;
mod index;
mod lock;
mod plan;
mod scan;
mod sink;
mod types;
mod writer;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

pub use config::{StoreConfig, WriterStats, STALL_AFTER};
pub use error::{FsError, OpError, StoreError};
pub use index::{Index, Key, ListQuery, Problem, Stamp, Unparsed};
pub use sink::{ChangePlan, PendingChange, Placement, ReloadSink};
pub use types::{Applied, Entry, Etag, Kind, Op, Outcome, Precondition, Spec, Status, Tags};

/// True for the names of temp files this broker writes (dotfiles).
pub fn is_temp_name(file_name: &str) -> bool {
    fsio::is_stale_temp(file_name)
}

/// Reads directories into an index without locking or cleaning anything
/// (for the offline `check`). A missing options directory is skipped.
pub fn scan_readonly(
    hosts: &std::path::Path,
    opts: Option<&std::path::Path>,
) -> Result<Index, FsError> {
    let empty = tempfile::tempdir()
        .map_err(|e| FsError::new("create a temp dir in", std::env::temp_dir(), e))?;
    let config = StoreConfig::new(
        hosts.to_path_buf(),
        opts.map(|o| o.to_path_buf())
            .unwrap_or_else(|| empty.path().to_path_buf()),
    );
    scan::scan(&config, false)
}

struct Shared {
    config: StoreConfig,
    /// Directory mtimes right after this broker's last commit or rescan; the
    /// watcher treats any other mtime as a change made elsewhere.
    seen_mtimes: Mutex<[Option<std::time::SystemTime>; 2]>,
    index: RwLock<Index>,
    stats: Mutex<WriterStats>,
    /// What the writer is doing on the filesystem, and since when.
    busy: Mutex<Option<(std::time::Instant, &'static str)>>,
    /// When the readiness check of the directories started, while it runs.
    checking: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    /// Marks the writer busy with `what` (or idle with `None`).
    fn set_busy(&self, what: Option<&'static str>) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) =
            what.map(|w| (std::time::Instant::now(), w));
    }

    /// Why the store counts as stalled, when the writer has been busy for
    /// longer than `after`.
    fn stalled(&self, after: Duration) -> Option<String> {
        let (since, what) = (*self.busy.lock().unwrap_or_else(|p| p.into_inner()))?;
        let for_s = since.elapsed();
        (for_s > after).then(|| stall_message(what, for_s))
    }
}

/// What a client and an operator are told while the directories hang.
fn stall_message(what: &str, for_s: Duration) -> String {
    format!(
        "the directories have not answered for {} s (the writer is blocked {what}); on a shared \
         filesystem this usually means a node that held the directory lock or the files' \
         capabilities is gone, and the metadata server releases them only when it evicts that \
         client (Ceph: after mds session_timeout, 60 s by default, or session_autoclose, 300 s); \
         a change already handed to the writer may still be applied then: read the entry back \
         before retrying",
        for_s.as_secs()
    )
}

/// A cheap handle on the store; clone it freely.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    tx: std::sync::mpsc::Sender<writer::Request>,
}

impl Store {
    /// Creates the directories if missing, scans them under the lock
    /// (removing stale temp files), and starts the writer thread.
    pub fn open(config: StoreConfig, reloads: Arc<dyn ReloadSink>) -> Result<Store, FsError> {
        for dir in [&config.hosts_dir, &config.opts_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| FsError::new("create the directory", dir.clone(), e))?;
        }
        let (index, generation, mtimes) = scan::scan_locked(&config)?;
        let shared = Arc::new(Shared {
            config,
            seen_mtimes: Mutex::new(mtimes),
            index: RwLock::new(index),
            stats: Mutex::new(WriterStats::default()),
            busy: Mutex::new(None),
            checking: Mutex::new(None),
        });
        let tx = writer::spawn(shared.clone(), generation, reloads);
        Ok(Store { shared, tx })
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// Applies `ops` all-or-nothing, durably, and answers once done.
    /// `actor` names who asked, for the audit log line of each change.
    ///
    /// While the writer is stalled (blocked in the filesystem for over
    /// [`STALL_AFTER`]) a request is refused at once, and one that waits
    /// longer than the lock timeout plus [`STALL_AFTER`] is answered
    /// [`StoreError::Stalled`]; the writer then skips it if it has not
    /// started it yet.
    pub async fn apply(&self, ops: Vec<Op>, actor: &str) -> Result<Applied, OpError> {
        let fail = |error| OpError { index: 0, error };
        if let Some(why) = self.shared.stalled(STALL_AFTER) {
            return Err(fail(StoreError::Stalled(why)));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(writer::Request::Apply {
                ops,
                actor: actor.to_string(),
                reply,
            })
            .map_err(|_| fail(StoreError::ShuttingDown))?;
        let limit = self.shared.config.lock_timeout + STALL_AFTER;
        match tokio::time::timeout(limit, rx).await {
            Ok(answer) => answer.map_err(|_| fail(StoreError::ShuttingDown))?,
            Err(_) => Err(fail(StoreError::Stalled(
                self.shared
                    .stalled(Duration::ZERO)
                    .unwrap_or_else(|| stall_message("on its queue", limit)),
            ))),
        }
    }

    /// Why the store counts as stalled, if it does.
    pub fn stalled(&self) -> Option<String> {
        self.shared.stalled(STALL_AFTER)
    }

    /// Asks the writer to compare the index with the directories now (used by
    /// the watcher); answers with the number of external changes found.
    pub async fn refresh(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(writer::Request::Refresh {
                suspects: None,
                listed_at: None,
                reply,
            })
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Looks for changes made by others without the directory lock and off
    /// the writer thread (stats every file, reads none) and, when some file
    /// may have changed, asks the writer to re-read just those. Answers with
    /// the number of external changes found. Blocking: call it from
    /// `spawn_blocking`.
    pub fn refresh_changed_blocking(&self) -> Result<u64, StoreError> {
        let before = scan::dir_mtimes(&self.shared.config);
        let suspects = scan::suspects(&self.shared.config, &self.shared.index, false)?;
        if suspects.is_empty() {
            // Nothing to do; remember the directories as seen, so an mtime
            // moved by a temp file that came and went is not re-checked.
            *self
                .shared
                .seen_mtimes
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = before;
            return Ok(0);
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(writer::Request::Refresh {
                suspects: Some(suspects),
                listed_at: Some(before),
                reply,
            })
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.blocking_recv().map_err(|_| StoreError::ShuttingDown)?
    }

    /// Catches up with other brokers' commits through the writer: when the
    /// generation in the lock file moved, the files the change journal
    /// names for the missed generations are re-read (a full scan when it
    /// cannot cover the gap). Answers whether the generation had moved —
    /// if not, a directory change was made by someone else than a broker.
    /// Blocking: call it from `spawn_blocking`.
    pub fn catch_up_blocking(&self) -> Result<bool, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(writer::Request::CatchUp { reply })
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.blocking_recv().map_err(|_| StoreError::ShuttingDown)?
    }

    /// Runs `f` on the index under a read lock. Never hold it across `.await`.
    pub fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        // A poisoned lock means the writer panicked mid-update; the index may
        // be inconsistent, but reads stay best-effort and readyz reports it.
        let guard = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// One entry.
    pub fn get(&self, kind: Kind, name: &str) -> Option<Arc<Entry>> {
        self.read(|i| i.get(kind, name).cloned())
    }

    /// True when a directory's mtime differs from what this broker last
    /// left it at: someone else added, renamed or removed a file.
    pub fn dirs_changed_elsewhere(&self) -> bool {
        let seen = || {
            *self
                .shared
                .seen_mtimes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if scan::dir_mtimes(&self.shared.config) == seen() {
            return false;
        }
        // Perhaps our own writer is between a rename and noting the new
        // mtimes: look again while holding the directory locks (the writer
        // notes them before it lets go), so a busy broker does not mistake
        // its own writes for someone else's.
        match lock::Locks::acquire(&self.shared.config) {
            Ok(_locks) => scan::dir_mtimes(&self.shared.config) != seen(),
            Err(_) => true,
        }
    }

    /// When a broker last changed the directories: the lock file's mtime,
    /// which every commit rewrites with the new generation (`None` while no
    /// broker ever wrote: the file is empty).
    pub fn last_commit(&self) -> Option<std::time::SystemTime> {
        lock::last_commit(&self.shared.config)
    }

    /// The writer's counters.
    pub fn stats(&self) -> WriterStats {
        let mut stats = self
            .shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        stats.stalled = self.stalled();
        stats
    }

    /// [`Store::check_writable`] at most once at a time: while a check is
    /// still blocked (a hung filesystem), says so instead of starting
    /// another on one more blocked thread (`Err`: how long it has run).
    pub fn check_writable_once(&self) -> Result<Result<(), FsError>, Duration> {
        {
            let mut running = self
                .shared
                .checking
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(since) = *running {
                return Err(since.elapsed());
            }
            *running = Some(std::time::Instant::now());
        }
        let result = self.check_writable();
        *self
            .shared
            .checking
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        Ok(result)
    }

    /// Checks that both directories can be locked and written now.
    pub fn check_writable(&self) -> Result<(), FsError> {
        let c = &self.shared.config;
        for dir in [&c.hosts_dir, &c.opts_dir] {
            lock::try_lock(dir, Duration::from_secs(2))?;
            nix::unistd::access(dir.as_path(), nix::unistd::AccessFlags::W_OK)
                .map_err(|e| FsError::new("write to", dir.clone(), e.into()))?;
        }
        Ok(())
    }
}
