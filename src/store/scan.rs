//! Reading the directories into an [`Index`]: at start-up, and whenever
//! another process changed them.
//!
//! Nothing found here is rewritten or dropped silently: files that do not
//! parse, names dnsmasq reads but the API cannot address, and address clashes
//! are all listed as problems for status and logs.

use std::fs;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::fsio;
use super::lock::Locks;
use super::nudge::Nudger;
use super::types::Dirs;
use super::FsError;
use super::{Entry, Etag, Index, Kind, Problem, Spec, Stamp, StoreConfig};
use crate::entry::Name;
use crate::sync::{LockOrRecover, RwLockOrRecover};

/// What a locked start-up scan found.
pub(crate) struct Scanned {
    /// Both directories, read.
    pub(crate) index: Index,
    /// The generation in the lock file.
    pub(crate) generation: u64,
    /// The lock file's mtime: the writer's "as I left it".
    pub(crate) lock_mtime: Option<SystemTime>,
    /// The directories' mtimes after the scan.
    pub(crate) mtimes: Dirs<Option<SystemTime>>,
}

/// Takes the locks and scans.
pub(crate) fn scan_locked(config: &StoreConfig, nudger: &Nudger) -> Result<Scanned, FsError> {
    let mut locks = Locks::acquire(config)?;
    let generation = locks.generation()?;
    let index = scan(config, true, nudger)?;
    for p in index.problems.iter().chain(&index.duplicates()) {
        tracing::warn!(kind = %p.kind, file = %p.file, "{}", p.reason);
    }
    Ok(Scanned {
        index,
        generation,
        lock_mtime: locks.modified(),
        mtimes: dir_mtimes(config),
    })
}

/// The mtimes of both directories now.
pub(crate) fn dir_mtimes(config: &StoreConfig) -> Dirs<Option<SystemTime>> {
    Dirs::from_fn(|k| fs::metadata(config.dir(k)).and_then(|m| m.modified()).ok())
}

/// What a stat pass found.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    /// Files that may differ from what the index holds.
    pub(crate) changed: Vec<(Kind, String)>,
    /// Dotfiles a broker may have left behind (stale temp files, removals
    /// and replaces interrupted), for the writer to clean under the locks.
    pub(crate) leftovers: Vec<(Kind, String)>,
    /// The directories' mtimes from before they were listed.
    pub(crate) mtimes: Dirs<Option<SystemTime>>,
}

/// Reads both directories, both at once. The caller holds the locks; with
/// `clean`, stale temp files left by a killed broker are removed.
pub(crate) fn scan(config: &StoreConfig, clean: bool, nudger: &Nudger) -> Result<Index, FsError> {
    let (hosts, options) = std::thread::scope(|s| {
        let options = s.spawn(|| scan_kind(config, Kind::Option, clean, nudger));
        let hosts = scan_kind(config, Kind::Host, clean, nudger);
        (hosts, options.join())
    });
    let mut index = hosts?;
    let options = options.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    index.absorb(options, Kind::Option);
    Ok(index)
}

/// Reads one directory into an index of its own.
fn scan_kind(
    config: &StoreConfig,
    kind: Kind,
    clean: bool,
    nudger: &Nudger,
) -> Result<Index, FsError> {
    let mut index = Index::default();
    let dir = config.dir(kind);
    let mut names = list_dir(dir, clean)?;
    for lossy in std::mem::take(&mut names.not_utf8) {
        index.problems.push(problem(kind, &lossy, NOT_UTF8));
    }
    // A parked entry restored while listing may be listed twice.
    names.sort_dedup();
    let dir_fd = fs::File::open(dir).map_err(|e| FsError::new("open", dir, e))?;
    // Files are opened relative to the directory and stat'ed through
    // the open file (one path lookup, no second stat), on every core,
    // and indexed here in name order while the workers read ahead.
    index.reserve(kind, names.spans.len());
    let mut sorted = Vec::with_capacity(names.spans.len());
    read_each(&dir_fd, kind, &names, nudger, |f| {
        index.problems.extend(f.problems);
        if let Some((name, u)) = f.unparsed {
            index.set_unparsed_quiet(kind, name, u);
        }
        if let (Some(entry), Some(digest), Some(stamp)) = (f.entry, f.digest, f.stamp) {
            index.add_sorted(&mut sorted, entry, &digest, stamp);
        }
    });
    index.fill(kind, sorted);
    Ok(index)
}

/// Files that may differ from what `index` holds: listed with another
/// stamp than the index has, or new, or known to the index but gone.
/// Stats every file but reads none, and holds the index's read lock only
/// briefly, so it can run off the writer thread (without the directory
/// lock, `clean == false`). With `clean`, the caller holds the locks and
/// stale temp files are removed and parked entries restored, as at
/// start-up.
pub(crate) fn suspects(
    config: &StoreConfig,
    index: &RwLock<Index>,
    clean: bool,
    nudger: &Nudger,
) -> Result<Listed, FsError> {
    use nix::fcntl::AtFlags;
    let mut out = Vec::new();
    let mut leftovers = Vec::new();
    for kind in [Kind::Host, Kind::Option] {
        let dir = config.dir(kind);
        let mut listed = list_dir(dir, clean)?;
        leftovers.extend(listed.leftovers.drain(..).map(|n| (kind, n)));
        let dir_fd = fs::File::open(dir).map_err(|e| FsError::new("open", dir, e))?;
        // Stat'ed concurrently: on a network filesystem a stat of a file
        // another node just wrote waits for the metadata server, and many
        // such waits overlap. Many threads for a small directory, one per
        // core for a large one (CPU-bound on a local disk). In chunks, so
        // the writer never waits long for the index lock and only one
        // chunk's stamps are held at a time.
        let threads = if listed.spans.len() <= 4096 {
            16
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
        };
        for spans in listed.spans.chunks(4096) {
            let stamps = par_map(spans, threads, |&span| {
                let _watch = nudger.watch();
                nix::sys::stat::fstatat(&dir_fd, listed.c_name(span), AtFlags::empty())
                    .ok()
                    .map(|st| Stamp::from_stat(&st))
            });
            let index = index.read_or_recover();
            for (&span, stamp) in spans.iter().zip(stamps) {
                let name = listed.name(span);
                if stamp.is_none() || index.stamp_of(kind, name) != stamp {
                    out.push((kind, name.to_string()));
                }
            }
        }
        // Known to the index but not listed: gone. (Sorted in place and
        // searched, rather than a set of 100,000s of names built per pass.)
        listed.sort_dedup();
        let spans = &listed.spans;
        let listed_has = |name: &str| {
            spans
                .binary_search_by(|s| listed.raw(*s).cmp(name.as_bytes()))
                .is_ok()
        };
        let index = index.read_or_recover();
        out.extend(
            index
                .known_names(kind)
                .filter(|n| !listed_has(n.as_str()))
                .map(|n| (kind, n.to_string())),
        );
        // Problem files (bad names, unreadable) are re-read every time.
        out.extend(
            index
                .problems
                .iter()
                .filter(|p| p.kind == kind && p.reason != NOT_UTF8)
                .map(|p| (kind, p.file.clone())),
        );
    }
    out.sort();
    out.dedup();
    Ok(Listed {
        changed: out,
        leftovers,
        mtimes: Dirs::default(),
    })
}

/// The names in `dir` that dnsmasq would read (no dotfiles, editor backups
/// or autosaves), into one buffer: rustix's `Dir` lends each name without an
/// allocation, and a stat pass over 100,000s of files once a minute should
/// not make a string per file. (rustix closes the directory without
/// `closedir`, so a failing close cannot panic the writer: nix's `Dir` did,
/// on an `EBADF` from an injected fault.) With `clean` (the caller holds the
/// locks), an entry a killed broker left parked is put back and stale temp
/// files are removed; without, their names are kept apart for the writer to
/// clean later. Names that are not UTF-8 are kept apart (lossily).
fn list_dir(dir: &std::path::Path, clean: bool) -> Result<Listing, FsError> {
    use rustix::fs::{Dir, Mode, OFlags};
    let list_err = |e: rustix::io::Errno| FsError::new("list", dir, std::io::Error::from(e));
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(list_err)?;
    let mut entries = Dir::new(fd).map_err(list_err)?;
    let mut listed = Listing::default();
    while let Some(item) = entries.read() {
        let item = item.map_err(list_err)?;
        let Ok(file_name) = item.file_name().to_str() else {
            listed
                .not_utf8
                .push(item.file_name().to_string_lossy().into_owned());
            continue;
        };
        if file_name == "." || file_name == ".." {
            continue;
        }
        if file_name.starts_with('.') {
            if !fsio::is_stale_temp(file_name) {
                continue;
            }
            if !clean {
                listed.leftovers.push(file_name.to_string());
                continue;
            }
            if fsio::clean_leftover(dir, file_name, Duration::ZERO) == fsio::Cleaned::Restored {
                listed.push(fsio::parked_name(file_name).unwrap_or_default());
            }
            continue;
        }
        if file_name.ends_with('~') || (file_name.starts_with('#') && file_name.ends_with('#')) {
            continue;
        }
        listed.push(file_name);
    }
    Ok(listed)
}

/// File names in one buffer, each followed by a NUL (so it can be passed to
/// `fstatat` as is).
#[derive(Default)]
struct Listing {
    bytes: Vec<u8>,
    /// Start and end (without the NUL) of each name.
    spans: Vec<(u32, u32)>,
    /// Names that are not UTF-8, lossily (not in `spans`).
    not_utf8: Vec<String>,
    /// Leftover dotfiles seen (see [`list_dir`]).
    leftovers: Vec<String>,
}

impl Listing {
    fn push(&mut self, name: &str) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name.as_bytes());
        self.spans.push((start, self.bytes.len() as u32));
        self.bytes.push(0);
    }

    /// Sorts the names and drops repeats.
    fn sort_dedup(&mut self) {
        let mut spans = std::mem::take(&mut self.spans);
        // By bytes (the order of `str`s), with no UTF-8 check per compare.
        spans.sort_unstable_by(|a, b| self.raw(*a).cmp(self.raw(*b)));
        spans.dedup_by(|a, b| self.raw(*a) == self.raw(*b));
        self.spans = spans;
    }

    fn raw(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }

    fn name(&self, (start, end): (u32, u32)) -> &str {
        // Only whole `&str`s are pushed, so a span is valid UTF-8.
        std::str::from_utf8(&self.bytes[start as usize..end as usize]).unwrap_or_default()
    }

    fn c_name(&self, (start, end): (u32, u32)) -> &std::ffi::CStr {
        std::ffi::CStr::from_bytes_with_nul(&self.bytes[start as usize..=end as usize])
            .unwrap_or_default()
    }
}

const NOT_UTF8: &str = "the name is not UTF-8";

/// `f` over `items` on up to `threads` threads, results in order. For work
/// that waits (on a network filesystem, each stat or open of a file
/// another node just changed waits for the metadata server).
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CHUNK: usize = 64;
    if items.len() < 4 {
        return items.iter().map(f).collect();
    }
    let threads = threads.clamp(1, items.len());
    let chunk = items.len().div_ceil(threads).min(CHUNK);
    let parts: Vec<&[T]> = items.chunks(chunk).collect();
    let next = AtomicUsize::new(0);
    let done: Vec<std::sync::Mutex<Vec<R>>> = parts
        .iter()
        .map(|_| std::sync::Mutex::new(Vec::new()))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(parts.len()) {
            let (next, parts, done, f) = (&next, &parts, &done, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(part) = parts.get(i) else { break };
                let out: Vec<R> = part.iter().map(f).collect();
                *done[i].lock_or_recover() = out;
            });
        }
    });
    done.into_iter()
        .flat_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

/// Reads `names` of one directory on every core (up to 8), handing each
/// file to `take` in name order on the calling thread. The workers take
/// batches in order and the caller indexes while they read ahead, so only
/// a few batches of parsed files are held at once (the start-up peak, and
/// the fragmentation it leaves, stay small).
fn read_each(
    dir: &fs::File,
    kind: Kind,
    names: &Listing,
    nudger: &Nudger,
    mut take: impl FnMut(FileRead),
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const BATCH: usize = 512;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads < 2 || names.spans.len() < 2 * BATCH {
        for &span in &names.spans {
            take(read_file(dir, kind, names.name(span), nudger));
        }
        return;
    }
    let batches: Vec<&[(u32, u32)]> = names.spans.chunks(BATCH).collect();
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<FileRead>)>(2 * threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (tx, next, batches) = (tx.clone(), &next, &batches);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(i) else { break };
                let reads = batch
                    .iter()
                    .map(|&span| read_file(dir, kind, names.name(span), nudger))
                    .collect();
                if tx.send((i, reads)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // The caller always receives, so a worker never waits on a full
        // channel for long; batches arriving early wait here.
        let mut early = std::collections::BTreeMap::new();
        let mut want = 0;
        for (i, reads) in rx {
            early.insert(i, reads);
            while let Some(reads) = early.remove(&want) {
                reads.into_iter().for_each(&mut take);
                want += 1;
            }
        }
    });
}

/// What one file turned out to be.
#[derive(Default)]
pub(crate) struct FileRead {
    /// A usable entry (made here, on the reading thread).
    pub(crate) entry: Option<Arc<Entry>>,
    /// What the index needs of the entry's spec (so indexing it needs no
    /// second parse).
    pub(crate) digest: Option<super::index::Digest>,
    /// A file under an entry name that does not parse.
    pub(crate) unparsed: Option<(Name, super::Unparsed)>,
    /// Why the file is a problem (several reasons possible).
    pub(crate) problems: Vec<Problem>,
    /// The file's stamp, when it could be opened.
    pub(crate) stamp: Option<Stamp>,
    /// The file does not exist.
    pub(crate) missing: bool,
}

/// Reads one file of the directory `dir` as an entry, or says why it is not
/// one. No entry for files dnsmasq ignores too (dotfiles, `~`, `#…#`,
/// subdirectories).
pub(crate) fn read_file(dir: &fs::File, kind: Kind, file_name: &str, nudger: &Nudger) -> FileRead {
    use nix::fcntl::OFlag;
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt;
    let mut out = FileRead::default();
    if file_name.starts_with('.')
        || file_name.ends_with('~')
        || (file_name.starts_with('#') && file_name.ends_with('#'))
    {
        return out;
    }
    // A file another node just wrote waits for the metadata server.
    let _watch = nudger.watch();
    // Non-blocking, so a FIFO planted in the directory cannot hang the scan.
    let opened = nix::fcntl::openat(
        dir,
        file_name,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    );
    let mut file = match opened {
        Ok(fd) => fs::File::from(fd),
        Err(nix::errno::Errno::ENOENT) => {
            out.missing = true;
            return out;
        }
        Err(nix::errno::Errno::EACCES) => {
            // Unreadable by the broker; say so as the old scan did.
            out.problems.push(problem(
                kind,
                file_name,
                &format!(
                    "cannot read: {}",
                    std::io::Error::from(nix::errno::Errno::EACCES)
                ),
            ));
            return out;
        }
        Err(e) => {
            out.problems
                .push(problem(kind, file_name, &format!("cannot open: {e}")));
            return out;
        }
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            out.problems
                .push(problem(kind, file_name, &format!("cannot stat: {e}")));
            return out;
        }
    };
    if !meta.is_file() {
        return out;
    }
    out.stamp = Some(Stamp::of(&meta));
    let name = match Name::parse(file_name) {
        Ok(n) => n,
        Err(e) => {
            out.problems.push(problem(
                kind,
                file_name,
                &format!(
                    "dnsmasq reads it but the API cannot manage it: {}",
                    e.message
                ),
            ));
            return out;
        }
    };
    // One read for a file that is as long as its stat said (the common
    // case: no std::fs read_to_end, which stats and seeks again).
    let len = meta.len() as usize;
    let mut bytes = vec![0u8; len + 1];
    let first = match file.read(&mut bytes) {
        Ok(n) => n,
        Err(e) => {
            out.problems
                .push(problem(kind, file_name, &format!("cannot read: {e}")));
            return out;
        }
    };
    bytes.truncate(first);
    let rest = if first > len {
        file.read_to_end(&mut bytes).map(|_| ())
    } else {
        Ok(())
    };
    if let Err(e) = rest {
        out.problems
            .push(problem(kind, file_name, &format!("cannot read: {e}")));
        return out;
    }
    if meta.permissions().mode() & 0o004 == 0 {
        out.problems.push(problem(
            kind,
            file_name,
            "not world-readable: dnsmasq running as `nobody` cannot read it",
        ));
    }
    match Spec::parse_file(kind, &bytes) {
        Ok(spec) => {
            // parse_file succeeded, so the bytes are UTF-8.
            let etag = Etag::of(&bytes);
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            out.digest = Some(super::index::Digest::of(&spec));
            out.entry = Some(Arc::new(Entry::read(name, kind, text, etag)));
        }
        Err(e) => {
            let reason = e.message;
            out.problems.push(problem(kind, file_name, &reason));
            out.unparsed = Some((
                name,
                super::Unparsed {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    etag: Etag::of(&bytes),
                    reason,
                },
            ));
        }
    }
    out
}

fn problem(kind: Kind, file: &str, reason: &str) -> Problem {
    Problem {
        kind,
        file: file.to_string(),
        reason: reason.to_string(),
    }
}
