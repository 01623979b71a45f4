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

mod fsio;
mod index;
mod journal;
mod scan;
mod writer;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::entry::{HostSpec, Name, OptionsSpec};
pub use fsio::FsError;
pub use index::{Index, Key, ListQuery, Problem, Stamp, Unparsed};

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

/// Which directory an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A `dhcp-host` line in the hosts directory.
    Host,
    /// `dhcp-option` lines in the options directory.
    Option,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Host => "host",
            Kind::Option => "option",
        })
    }
}

/// A validated entry of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A host entry.
    Host(HostSpec),
    /// An options entry.
    Options(OptionsSpec),
}

impl Spec {
    /// Which directory it belongs in.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Host(_) => Kind::Host,
            Spec::Options(_) => Kind::Option,
        }
    }

    /// The canonical file contents.
    pub fn render(&self) -> String {
        match self {
            Spec::Host(h) => h.render(),
            Spec::Options(o) => o.render(),
        }
    }

    /// Parses existing file contents as this kind.
    pub fn parse_file(kind: Kind, bytes: &[u8]) -> Result<Spec, crate::entry::EntryError> {
        match kind {
            Kind::Host => HostSpec::parse_file(bytes).map(Spec::Host),
            Kind::Option => OptionsSpec::parse_file(bytes).map(Spec::Options),
        }
    }

    /// True when the entry sets or matches `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        match self {
            Spec::Host(h) => h.set_tags().iter().chain(h.match_tags()).any(|t| t == tag),
            Spec::Options(o) => o
                .options()
                .iter()
                .any(|opt| opt.tags.iter().any(|t| t == tag)),
        }
    }
}

/// The strong validator of a file: SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Etag([u8; 32]);

impl Etag {
    /// Hashes file contents.
    pub fn of(bytes: &[u8]) -> Etag {
        Etag(Sha256::digest(bytes).into())
    }

    /// The HTTP form: the lowercase hex digest in double quotes.
    pub fn quoted(&self) -> String {
        format!("\"{self}\"")
    }

    /// Parses the HTTP form (quotes required, as for any strong ETag).
    pub fn parse_quoted(s: &str) -> Option<Etag> {
        let hex = s.trim().strip_prefix('"')?.strip_suffix('"')?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(Etag(out))
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Etag({self})")
    }
}

/// One entry as it is on disk.
///
/// Kept compact, because the index holds one per file (100,000s): the
/// file's text and its hash, not the parsed spec. [`Entry::spec`] parses
/// the text again when asked (a few microseconds: the grammar is pure, and
/// the text parsed when the entry was made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: Name,
    /// The file's exact contents (not always canonical when written by others).
    pub text: Box<str>,
    /// SHA-256 of `text`.
    pub etag: Etag,
    kind: Kind,
    /// The spec, only for the (never yet seen) case of a canonical
    /// rendering that does not parse back to its spec.
    pinned: Option<Box<Spec>>,
    /// How its file looked on disk when last read or written (the index's
    /// to note and read; see [`Index::stamp`]).
    pub(crate) stamp: index::StampCell,
}

impl Entry {
    /// An entry whose file holds the canonical rendering of `spec`.
    pub fn canonical(name: Name, spec: Spec) -> Entry {
        let text = spec.render();
        let etag = Etag::of(text.as_bytes());
        let kind = spec.kind();
        let round_trips = Spec::parse_file(kind, text.as_bytes()).is_ok_and(|p| p == spec);
        if !round_trips {
            tracing::error!(name = %name, "the canonical line does not parse back to its spec; keeping the spec");
        }
        Entry {
            name,
            text: text.into_boxed_str(),
            etag,
            kind,
            pinned: (!round_trips).then(|| Box::new(spec)),
            stamp: Default::default(),
        }
    }

    /// An entry for a file's contents, which `spec` was parsed from.
    pub(crate) fn read(name: Name, kind: Kind, text: String, etag: Etag) -> Entry {
        Entry {
            name,
            text: text.into_boxed_str(),
            etag,
            kind,
            pinned: None,
            stamp: Default::default(),
        }
    }

    /// Which directory it is in.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// What the file means.
    pub fn spec(&self) -> Spec {
        match &self.pinned {
            Some(spec) => (**spec).clone(),
            None => Spec::parse_file(self.kind, self.text.as_bytes())
                .expect("an entry's text parsed when the entry was made, and parsing is pure"),
        }
    }
}

/// A condition on the current file, checked under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Apply whatever is there.
    None,
    /// `If-Match`: only if the current file has this ETag.
    IfMatch(Etag),
    /// `If-None-Match: *`: only if there is no such entry (create only).
    IfAbsent,
    /// `If-Match: *`: only if the entry exists (replace only).
    IfExists,
}

/// One change requested of the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create or replace `name` with `spec`.
    Put {
        /// The entry name.
        name: Name,
        /// The new contents.
        spec: Spec,
        /// Its condition.
        precondition: Precondition,
    },
    /// Remove `name`.
    Delete {
        /// Which directory.
        kind: Kind,
        /// The entry name.
        name: Name,
        /// Its condition.
        precondition: Precondition,
    },
    /// Make the entries of `kind` whose names start with `prefix` exactly
    /// `items` (a conductor's resync), in one step.
    Sync {
        /// Which directory.
        kind: Kind,
        /// The name prefix that delimits the set.
        prefix: String,
        /// The wanted entries; all names start with `prefix`.
        items: Vec<(Name, Spec)>,
    },
}

/// What a request did to one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new file was written.
    Created,
    /// An existing file was replaced with other bytes.
    Replaced,
    /// The same bytes were already there; nothing was written.
    Unchanged,
    /// The file was removed.
    Deleted,
}

/// What happened to one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which directory.
    pub kind: Kind,
    /// The entry name.
    pub name: Name,
    /// What was done.
    pub status: Status,
    /// The entry now on disk (`None` after a delete).
    pub entry: Option<Arc<Entry>>,
    /// The ETag of the file before the request, if there was one.
    pub old_etag: Option<Etag>,
}

/// The result of a successful request.
#[derive(Debug, Clone)]
pub struct Applied {
    /// One outcome per name touched, in op order.
    pub outcomes: Vec<Outcome>,
    /// Set when the request needs a reload: waiting for this ticket waits for
    /// a reload that covers it.
    pub reload_ticket: Option<u64>,
}

/// Why a request was refused or failed. Nothing was written unless the
/// variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entry does not exist.
    #[error("no {kind} entry named `{name}`")]
    NotFound {
        /// Which directory.
        kind: Kind,
        /// The name asked for.
        name: String,
    },
    /// `If-Match` / `If-None-Match` did not hold.
    #[error("{0}")]
    Precondition(String),
    /// A MAC or IP already belongs to another entry.
    #[error("{field} `{value}` already belongs to host entry `{holder}`")]
    Conflict {
        /// The API field ("macs", "ipv4", "ipv6").
        field: &'static str,
        /// The contested value.
        value: String,
        /// The entry that holds it.
        holder: String,
    },
    /// The disk is full.
    #[error("{0}")]
    NoSpace(FsError),
    /// The directory could not be locked or written.
    #[error("{0}")]
    Unavailable(FsError),
    /// The same entry is named twice in one request.
    #[error("{kind} entry `{name}` appears more than once in one request")]
    Repeated {
        /// Which directory.
        kind: Kind,
        /// The repeated name.
        name: String,
    },
    /// The directories stopped answering: the writer has been blocked in a
    /// filesystem call for a while (a dead node on a shared filesystem).
    /// The change may still be applied once they answer.
    #[error("{0}")]
    Stalled(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    ShuttingDown,
}

impl From<FsError> for StoreError {
    fn from(e: FsError) -> Self {
        if e.is_no_space() {
            StoreError::NoSpace(e)
        } else {
            StoreError::Unavailable(e)
        }
    }
}

/// A refused request: which op (by position) and why.
#[derive(Debug)]
pub struct OpError {
    /// Position of the failing op in the request.
    pub index: usize,
    /// What went wrong.
    pub error: StoreError,
}

/// Where the writer puts a new version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Renamed over the name: dnsmasq's inotify reads it at once.
    Now,
    /// The old file parked and the new one `link()`ed into place: dnsmasq
    /// does not watch link creation, so only the next reload reads it (for
    /// records dnsmasq would refuse if read now).
    AtReload,
}

/// How one change is made, as the reload policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangePlan {
    /// Where the new version goes (ignored for a removal).
    pub placement: Placement,
    /// Whether dnsmasq serves the change only after a reload.
    pub needs_reload: bool,
    /// Why, for logs.
    pub reason: &'static str,
}

/// One change the writer is about to make, as the reload policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct PendingChange<'a> {
    /// Which directory.
    pub kind: Kind,
    /// The entry name.
    pub name: &'a Name,
    /// A file (parsed or not) is under the name now.
    pub replaces: bool,
    /// The new version (`None`: removal).
    pub new: Option<&'a Arc<Entry>>,
    /// Made by someone else and found by a rescan: dnsmasq on this node may
    /// not have read it (another node's write raises no inotify event here).
    pub external: bool,
}

impl PendingChange<'_> {
    /// The policy before reloads were planned per change: a create is read
    /// by inotify, every replace and removal waits for a reload.
    pub fn coalesce_plan(&self) -> ChangePlan {
        if self.external {
            return ChangePlan {
                placement: Placement::AtReload,
                needs_reload: true,
                reason: "a change made elsewhere",
            };
        }
        match (self.new, self.replaces) {
            (Some(_), false) => ChangePlan {
                placement: Placement::Now,
                needs_reload: false,
                reason: "a new file",
            },
            (Some(_), true) => ChangePlan {
                placement: Placement::AtReload,
                needs_reload: true,
                reason: "a replace",
            },
            (None, _) => ChangePlan {
                placement: Placement::Now,
                needs_reload: true,
                reason: "a removal",
            },
        }
    }
}

/// Receives the store's reload needs. Called on the writer thread after the
/// change is durable and before the request is answered; returns a ticket.
pub trait ReloadSink: Send + Sync {
    /// A change that dnsmasq only sees after a reload was committed.
    /// `risky` is true when dnsmasq's loaded config holds `set:` tags.
    fn reload_needed(&self, reason: &'static str, risky: bool) -> u64;

    /// How to make `change`, given the index as it is before it. Called
    /// while reloads are held (see [`ReloadSink::hold_reloads`]).
    fn plan(&self, _index: &Index, change: &PendingChange<'_>) -> ChangePlan {
        change.coalesce_plan()
    }

    /// `change` was made as planned. `index` is the index as it was before
    /// the change.
    fn placed(&self, _index: &Index, _change: &PendingChange<'_>, _plan: &ChangePlan) {}

    /// Keeps reloads from starting while the guard lives (and waits for one
    /// in progress to finish), so files never change under a re-reading
    /// dnsmasq.
    fn hold_reloads(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        None
    }
}

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
    /// Commits (lock acquisitions that wrote something).
    pub commits: u64,
    /// Requests answered.
    pub requests: u64,
    /// Files written.
    pub files_written: u64,
    /// Files removed.
    pub files_removed: u64,
    /// Full rescans because another process changed the directories.
    pub rescans: u64,
    /// Entries added, changed or removed by others, seen by rescans.
    pub external_changes: u64,
    /// The last error met by the writer, if the last commit failed.
    pub last_error: Option<String>,
    /// Set while the writer has been blocked in the filesystem for over
    /// [`STALL_AFTER`]: what it is doing and for how long.
    pub stalled: Option<String>,
}

/// How long the writer may be busy on one group before the store counts as
/// stalled: writes are then refused at once, and readiness fails.
pub const STALL_AFTER: Duration = Duration::from_secs(2);

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
        match scan::Locks::acquire(&self.shared.config) {
            Ok(_locks) => scan::dir_mtimes(&self.shared.config) != seen(),
            Err(_) => true,
        }
    }

    /// When a broker last changed the directories: the lock file's mtime,
    /// which every commit rewrites with the new generation (`None` while no
    /// broker ever wrote: the file is empty).
    pub fn last_commit(&self) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(self.shared.config.hosts_dir.join(fsio::LOCK_FILE)).ok()?;
        (meta.len() > 0).then(|| meta.modified().ok()).flatten()
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
            let _lock = fsio::DirLock::acquire(dir, Duration::from_secs(2))?;
            nix::unistd::access(dir.as_path(), nix::unistd::AccessFlags::W_OK)
                .map_err(|e| FsError::new("write to", dir.clone(), e.into()))?;
        }
        Ok(())
    }
}
