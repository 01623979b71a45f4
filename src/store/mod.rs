//! The store owns the hosts and options directories. This file is its
//! contract: the [`Store`] handle and what it re-exports; each mechanism
//! has a file of its own.
//!
//! Why it is shaped this way:
//! - **One writer.** All mutations go through a channel to one thread
//!   ([`writer`]), so requests never write concurrently, and a burst of
//!   requests shares one lock acquisition and one directory fsync (group
//!   commit) — the cost that dominates at scale. What a request does is
//!   decided before anything is written ([`plan`], pure), then made
//!   ([`apply`]); changes others made are brought in ([`reconcile`]); both
//!   go through the reload policy the same way ([`place`]).
//! - **Brokers take turns** ([`lock`]): an exclusive `flock` on a dotfile
//!   in each directory, kept while requests keep coming; a generation and a
//!   change journal in the lock file tell a broker what another one
//!   changed, so it catches up (re-reading just those files) before it
//!   checks any precondition. On CephFS with Ceph's default settings, calls
//!   that wait on the metadata server are sped up by asking it to flush
//!   its journal ([`nudge`]).
//! - **Durable before acknowledged, and no answer that lies** ([`fsio`],
//!   [`error`]): temp file, fsync, rename, directory fsync; only then does a
//!   request get its answer, and an error says whether anything changed.
//! - **Readers never wait for disk.** Reads use the in-memory [`Index`] under
//!   a short `RwLock` read.
//!
//! The store knows nothing of HTTP or of how dnsmasq is reloaded: it reports
//! which changes need a reload through [`ReloadSink`] ([`sink`]).

mod apply;
mod config;
mod error;
mod fsio;
mod index;
mod lock;
mod nudge;
mod place;
mod plan;
mod pool;
mod reconcile;
mod request;
mod scan;
mod sink;
mod types;
mod writer;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::sync::{LockOrRecover, RwLockOrRecover};
pub use config::{StoreConfig, WriterStats, STALL_AFTER};
pub use error::{FsError, OpError, StoreError};
pub use index::{Index, Key, ListQuery, Problem, Stamp, Unparsed};
pub use nudge::NudgeMode;
pub use request::CaughtUp;
pub use sink::{ChangePlan, PendingChange, Placement, ReloadSink};
use types::Dirs;
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
    scan::scan(&config, false, &nudge::Nudger::default())
}

/// What the writer thread and the store's handles share.
struct Shared {
    config: StoreConfig,
    /// Directory mtimes right after this broker's last commit or rescan; the
    /// watcher treats any other mtime as a change made elsewhere.
    seen_mtimes: Mutex<Dirs<Option<SystemTime>>>,
    index: RwLock<Index>,
    stats: Mutex<WriterStats>,
    /// What the writer is doing on the filesystem, and since when it last
    /// made progress (see [`Shared::progress`]).
    busy: Mutex<Option<(Instant, &'static str)>>,
    /// When the readiness check of the directories started, while it runs.
    checking: Mutex<Option<Instant>>,
    /// Set, with the reason, once the writer thread has died.
    dead: tokio::sync::watch::Sender<Option<String>>,
    /// Nudges CephFS's metadata server when a call waits on it.
    nudger: nudge::Nudger,
    /// The writer holds the directory lock now (between groups too).
    holding: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Marks the writer busy with `what` (or idle with `None`).
    fn set_busy(&self, what: Option<&'static str>) {
        *self.busy.lock_or_recover() = what.map(|w| (Instant::now(), w));
    }

    /// The writer finished a step of its group (a file put in place, the
    /// temp files written, the lock taken): the stall clock starts again. A
    /// group of many changes on a loaded machine may take longer than
    /// [`STALL_AFTER`] in all; a filesystem that hangs stops every step.
    fn progress(&self) {
        if let Some((since, _)) = self.busy.lock_or_recover().as_mut() {
            *since = Instant::now();
        }
    }

    /// Runs `wait`, which waits for something other than the filesystem
    /// (dnsmasq re-reading the files after a reload), without counting it
    /// toward a stall: new requests queue meanwhile rather than being
    /// refused as if the directories hung. The clock starts again after it.
    fn not_stalled_while<T>(&self, wait: impl FnOnce() -> T) -> T {
        let what = self.busy.lock_or_recover().take().map(|(_, w)| w);
        let out = wait();
        if let Some(w) = what {
            *self.busy.lock_or_recover() = Some((Instant::now(), w));
        }
        out
    }

    /// Why the store counts as stalled, when the writer has been busy
    /// without progress for longer than `after`.
    fn stalled(&self, after: Duration) -> Option<String> {
        let (since, what) = (*self.busy.lock_or_recover())?;
        let for_s = since.elapsed();
        (for_s > after).then(|| stall_message(what, for_s))
    }

    /// The writer thread died: from now on every request is refused and
    /// [`Store::writer_died`] resolves.
    fn mark_dead(&self, why: String) {
        tracing::error!("{why}");
        self.dead.send_replace(Some(why));
    }
}

/// What a client and an operator are told while the directories hang.
fn stall_message(what: &str, for_s: Duration) -> String {
    format!(
        "the directories have not answered for {} s (the writer is blocked {what}); on a shared \
         filesystem this usually means a node that held the directory lock or the files' \
         capabilities is gone, and the metadata server releases them only when it evicts that \
         client (Ceph: after mds session_timeout, 60 s by default, or session_autoclose, 300 s)",
        for_s.as_secs()
    )
}

/// A cheap handle on the store; clone it freely.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    tx: std::sync::mpsc::Sender<request::Request>,
}

impl Store {
    /// Creates the directories if missing, scans them under the lock
    /// (removing stale temp files), and starts the writer thread.
    pub fn open(config: StoreConfig, reloads: Arc<dyn ReloadSink>) -> Result<Store, FsError> {
        for dir in [&config.hosts_dir, &config.opts_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| FsError::new("create the directory", dir.clone(), e))?;
        }
        let nudger = nudge::Nudger::new(&config.hosts_dir, config.nudge);
        let scanned = scan::scan_locked(&config, &nudger)?;
        let shared = Arc::new(Shared {
            config,
            seen_mtimes: Mutex::new(scanned.mtimes),
            index: RwLock::new(scanned.index),
            stats: Mutex::new(WriterStats::default()),
            busy: Mutex::new(None),
            checking: Mutex::new(None),
            dead: tokio::sync::watch::Sender::new(None),
            nudger,
            holding: Default::default(),
        });
        let tx = writer::spawn(
            shared.clone(),
            scanned.generation,
            scanned.lock_mtime,
            reloads,
        );
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
    /// [`STALL_AFTER`]) a request is refused at once. One that waits longer
    /// than the lock timeout plus [`STALL_AFTER`] is withdrawn and answered
    /// [`StoreError::Stalled`] if the writer has not taken it yet (it then
    /// never will), and [`StoreError::Unknown`] if it has.
    pub async fn apply(&self, ops: Vec<Op>, actor: &str) -> Result<Applied, OpError> {
        let fail = |error| OpError { index: 0, error };
        if let Some(why) = self.writer_dead() {
            return Err(fail(StoreError::WriterDead(why)));
        }
        if let Some(why) = self.shared.stalled(STALL_AFTER) {
            return Err(fail(StoreError::Stalled(format!(
                "{why}; nothing was written"
            ))));
        }
        let (reply, rx) = oneshot::channel();
        let claim = Arc::new(request::Claim::default());
        self.tx
            .send(request::Request::Apply {
                ops,
                actor: actor.to_string(),
                claim: claim.clone(),
                reply,
            })
            .map_err(|_| fail(self.gone()))?;
        let limit = self.shared.config.lock_timeout + STALL_AFTER;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(answer)) => answer,
            // The writer dropped the request unanswered: it died.
            Ok(Err(_)) if claim.taken() => Err(fail(StoreError::Unknown(format!(
                "{}; it was applying this request, which may be in place: read the entry back \
                 before retrying",
                self.writer_dead()
                    .unwrap_or_else(|| "the store's writer stopped".into())
            )))),
            Ok(Err(_)) => Err(fail(self.gone())),
            Err(_) => {
                let why = self
                    .shared
                    .stalled(Duration::ZERO)
                    .unwrap_or_else(|| stall_message("on its queue", limit));
                Err(fail(if claim.withdraw() {
                    StoreError::Stalled(format!(
                        "{why}; the request was withdrawn, nothing was written"
                    ))
                } else {
                    StoreError::Unknown(format!(
                        "{why}; the writer was applying this request, which may still be put in \
                         place: read the entry back before retrying"
                    ))
                }))
            }
        }
    }

    /// Why a request could not be handed to the writer.
    fn gone(&self) -> StoreError {
        match self.writer_dead() {
            Some(why) => StoreError::WriterDead(why),
            None => StoreError::ShuttingDown,
        }
    }

    /// Why the store counts as stalled, if it does.
    pub fn stalled(&self) -> Option<String> {
        self.shared.stalled(STALL_AFTER)
    }

    /// Why the writer thread died, if it did.
    pub fn writer_dead(&self) -> Option<String> {
        self.shared.dead.borrow().clone()
    }

    /// Resolves, with the reason, once the writer thread has died (a bug or
    /// a fault it could not survive): the process should then exit so that
    /// its supervisor restarts it.
    pub async fn writer_died(&self) -> String {
        let mut rx = self.shared.dead.subscribe();
        let why = rx
            .wait_for(Option::is_some)
            .await
            .map(|why| why.clone().unwrap_or_default());
        match why {
            Ok(why) => why,
            // The sender lives in `Shared`, as long as this handle.
            Err(_) => std::future::pending().await,
        }
    }

    /// Lets the writer finish every request queued so far, then stops it.
    /// Waits at most `limit` (a writer blocked in a hung filesystem may
    /// never finish). Answers whether it stopped in time.
    pub async fn shutdown(&self, limit: Duration) -> bool {
        let (done, rx) = oneshot::channel();
        if self.tx.send(request::Request::Stop { done }).is_err() {
            return true;
        }
        matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(())))
    }

    /// Asks the writer to compare the index with the directories now (used by
    /// the watcher); answers with the number of external changes found.
    pub async fn refresh(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(request::Request::Refresh {
                listed: None,
                reply,
            })
            .map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// Looks for changes made by others without the directory lock and off
    /// the writer thread (stats every file, reads none) and, when some file
    /// may have changed or a leftover dotfile was seen, asks the writer to
    /// re-read just those files and clean the leftovers. Answers with the
    /// number of external changes found. Blocking: call it from
    /// `spawn_blocking`.
    pub fn refresh_changed_blocking(&self) -> Result<u64, StoreError> {
        // Listing and stat'ing files another node just wrote waits on
        // CephFS's metadata server (see `nudge`).
        let _watch = self.shared.nudger.watch();
        let before = scan::dir_mtimes(&self.shared.config);
        let mut listed = scan::suspects(
            &self.shared.config,
            &self.shared.index,
            false,
            &self.shared.nudger,
        )?;
        if listed.changed.is_empty() && listed.leftovers.is_empty() {
            // Nothing to do; remember the directories as seen, so an mtime
            // moved by a temp file that came and went is not re-checked.
            *self.shared.seen_mtimes.lock_or_recover() = before;
            return Ok(0);
        }
        listed.mtimes = before;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(request::Request::Refresh {
                listed: Some(listed),
                reply,
            })
            .map_err(|_| self.gone())?;
        rx.blocking_recv().map_err(|_| self.gone())?
    }

    /// Catches up with other brokers' commits through the writer: when the
    /// generation in the lock file moved, the files the change journal
    /// names for the missed generations are re-read (a full scan when it
    /// cannot cover the gap). Then, with this broker's own writes noted,
    /// says whether the directories still differ from what the index
    /// reflects: a change by a writer that takes no lock, for a stat pass
    /// to find. Blocking: call it from `spawn_blocking`.
    pub fn catch_up_blocking(&self) -> Result<CaughtUp, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(request::Request::CatchUp { reply })
            .map_err(|_| self.gone())?;
        rx.blocking_recv().map_err(|_| self.gone())?
    }

    /// Runs `f` on the index under a read lock. Never hold it across `.await`.
    pub fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        // A poisoned lock means the writer panicked mid-update; the index may
        // be inconsistent, but reads stay best-effort and readyz reports it.
        let guard = self.shared.index.read_or_recover();
        f(&guard)
    }

    /// One entry.
    pub fn get(&self, kind: Kind, name: &str) -> Option<Arc<Entry>> {
        self.read(|i| i.get(kind, name).cloned())
    }

    /// True when a directory's mtime differs from what this broker last
    /// left it at: someone else added, renamed or removed a file — or this
    /// broker's own writer is between a rename and noting the new mtimes;
    /// [`Store::catch_up_blocking`] tells the two apart.
    pub fn dirs_changed_elsewhere(&self) -> bool {
        let _watch = self.shared.nudger.watch();
        scan::dir_mtimes(&self.shared.config) != *self.shared.seen_mtimes.lock_or_recover()
    }

    /// When a broker last changed the directories: the lock file's mtime,
    /// which every commit rewrites with the new generation (`None` while no
    /// broker ever wrote: the file is empty).
    pub fn last_commit(&self) -> Option<std::time::SystemTime> {
        lock::last_commit(&self.shared.config)
    }

    /// The writer's counters.
    pub fn stats(&self) -> WriterStats {
        let mut stats = self.shared.stats.lock_or_recover().clone();
        stats.stalled = self.stalled();
        stats.mds_nudges = self.shared.nudger.nudges();
        stats
    }

    /// [`Store::check_writable`] at most once at a time: while a check is
    /// still blocked (a hung filesystem), says so instead of starting
    /// another on one more blocked thread (`Err`: how long it has run).
    pub fn check_writable_once(&self) -> Result<Result<(), FsError>, Duration> {
        {
            let mut running = self.shared.checking.lock_or_recover();
            if let Some(since) = *running {
                return Err(since.elapsed());
            }
            *running = Some(std::time::Instant::now());
        }
        let result = self.check_writable();
        *self.shared.checking.lock_or_recover() = None;
        Ok(result)
    }

    /// Checks that both directories can be locked and written now (the
    /// lock is proven when this broker's writer holds it).
    pub fn check_writable(&self) -> Result<(), FsError> {
        let c = &self.shared.config;
        let held = self
            .shared
            .holding
            .load(std::sync::atomic::Ordering::Acquire);
        for dir in [&c.hosts_dir, &c.opts_dir] {
            if !held {
                lock::try_lock(dir, Duration::from_secs(2))?;
            }
            nix::unistd::access(dir.as_path(), nix::unistd::AccessFlags::W_OK)
                .map_err(|e| FsError::new("write to", dir.clone(), e.into()))?;
        }
        Ok(())
    }
}
