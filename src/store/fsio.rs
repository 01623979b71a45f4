//! The only code that touches entry files on disk.
//!
//! Why each step exists (see `DNSMASQ-FACTS.md`):
//! - temp files are dot-prefixed and live in the target directory, because
//!   dnsmasq's inotify reads any non-dot file the moment it is closed, and a
//!   cross-directory rename is not atomic;
//! - the temp file gets its mode set explicitly (umask and temp-file
//!   libraries default to 0600, which dnsmasq running as `nobody` cannot read);
//! - data is fsynced before the rename and the directory after it, so an
//!   acknowledged write survives a crash or power loss;
//! - a delete first renames the file to a dotfile and unlinks that: dnsmasq
//!   ignores both events, so no `cannot read` error line reaches its log;
//! - a new version dnsmasq must not read before the reload it needs anyway
//!   (the reload policy says so: its address is still held by a record
//!   dnsmasq has, and reading it now would log "duplicate dhcp-host IP
//!   address") is `link()`ed into place — dnsmasq does not watch link
//!   creation — after the old file is renamed to a dotfile; the reload then
//!   reads it. A crash in between leaves a `.NAME.hdb-old-*` dotfile, put
//!   back at start-up if NAME is missing. Every other new version is renamed
//!   into place and read at once.
//!
//! Every operation on an entry is made relative to the directory, held
//! open ([`Dir`]): on a network filesystem each path component of a call is
//! a round trip, and a group writes many files into the same directory.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, Mode, OFlags};

use super::types::Dirs;
use super::{FsError, Kind, StoreConfig};

/// Suffix of the temp files this broker creates; only files with it (or
/// [`DELETE_MARK`]) are removed as stale at start-up.
pub(crate) const TEMP_SUFFIX: &str = ".hdb-tmp";
/// Infix of the dotfile a deleted entry is renamed to before it is unlinked.
pub(crate) const DELETE_MARK: &str = ".hdb-del-";
/// Infix of the dotfile a replaced entry is parked as until its successor
/// is linked into place.
pub(crate) const OLD_MARK: &str = ".hdb-old-";

/// A directory held open while a commit group works in it. Every entry
/// operation is made relative to it (`openat`, `renameat`, `linkat`,
/// `unlinkat`), so the kernel looks up only the file's own name: on FUSE
/// (ceph-fuse keeps no dentry cache the kernel may trust) every component
/// of a path is a LOOKUP round trip to the filesystem daemon, and a write
/// by path into `…/volume/hosts` cost 9–12 of them where a relative one
/// costs 3 (counted with the kernel's `fuse:fuse_request_send` tracepoint;
/// see docs/cephfs.md).
///
/// Held for one lease of the directory lock at most (see `store::writer`),
/// so a directory replaced meanwhile is found again at the next lease.
pub(crate) struct Dir {
    file: File,
    path: PathBuf,
    /// A mode files created here were seen to get exactly (0: none yet).
    /// The umask and a default ACL are the same for every create in one
    /// directory, so one `fstat` per lease tells whether a `chmod` is
    /// needed; on a network filesystem each is a round trip.
    mode_kept: AtomicU32,
}

impl Dir {
    /// Opens `path` for the entry operations below.
    pub(crate) fn open(path: &Path) -> Result<Arc<Dir>, FsError> {
        let file = File::open(path).map_err(|e| FsError::new("open", path, e))?;
        Ok(Arc::new(Dir {
            file,
            path: path.to_path_buf(),
            mode_kept: AtomicU32::new(0),
        }))
    }

    /// The open directory (for reading files in it).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Makes the directory's entries (renames, unlinks) durable. Answers
    /// the directory's mtime after the fsync (its own `fstat`).
    pub(crate) fn sync(&self) -> Result<Option<std::time::SystemTime>, FsError> {
        self.file
            .sync_all()
            .map_err(|e| FsError::new("fsync the directory", &self.path, e))?;
        Ok(self.file.metadata().and_then(|m| m.modified()).ok())
    }

    /// The stamp of `name` in this directory now.
    pub(crate) fn stamp_of(&self, name: &str) -> Result<super::Stamp, FsError> {
        use nix::fcntl::AtFlags as NixAtFlags;
        nix::sys::stat::fstatat(&self.file, name, NixAtFlags::AT_SYMLINK_NOFOLLOW)
            .map(|st| super::Stamp::from_stat(&st))
            .map_err(|e| FsError::new("stat", self.join(name), e.into()))
    }
}

/// Both directories, each opened on first use and kept for one lease of
/// the directory lock.
#[derive(Default)]
pub(crate) struct OpenDirs(Dirs<Option<Arc<Dir>>>);

impl OpenDirs {
    /// The directory of `kind`, opened now if it is not yet.
    pub(crate) fn get(&mut self, config: &StoreConfig, kind: Kind) -> Result<Arc<Dir>, FsError> {
        let slot = self.0.get_mut(kind);
        if let Some(dir) = slot {
            return Ok(dir.clone());
        }
        let dir = Dir::open(config.dir(kind))?;
        *slot = Some(dir.clone());
        Ok(dir)
    }
}

/// A temp file that has been written, fsynced and closed but not yet renamed
/// into place. Dropping it without putting it in place removes it.
///
/// It must be closed before the rename: closing a written file raises
/// `IN_CLOSE_WRITE` under whatever name it has by then, and dnsmasq would
/// read the entry a second time and log "duplicate dhcp-host IP address".
pub(crate) struct Prepared {
    dir: Arc<Dir>,
    /// The temp file's name in `dir`; `None` once renamed away.
    temp: Option<String>,
    /// The entry's name in `dir`.
    name: String,
    /// The file's stamp once written: a rename or link keeps inode, size
    /// and mtime, so the index needs no second `stat` after it (on a
    /// network filesystem a path lookup, where `fstat` is answered from
    /// the caps this client holds).
    pub(crate) stamp: Option<super::Stamp>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = rustix::fs::unlinkat(&self.dir.file, temp.as_str(), AtFlags::empty());
        }
    }
}

/// A name for a temp file next to `name`: `.NAME.XXXXXX.hdb-tmp`, the
/// six characters random (brokers on other nodes create in the same
/// directory; `O_EXCL` settles the rare clash).
fn temp_name(name: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // `RandomState` is seeded from the OS once per thread and differs on
    // every call; the counter makes two calls' inputs differ too.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let mut x = h.finish();
    let mut out = String::with_capacity(name.len() + 6 + TEMP_SUFFIX.len() + 2);
    out.push('.');
    out.push_str(name);
    out.push('.');
    for _ in 0..6 {
        out.push(CHARS[(x % CHARS.len() as u64) as usize] as char);
        x /= CHARS.len() as u64;
    }
    out.push_str(TEMP_SUFFIX);
    out
}

/// Writes `bytes` to a dot-prefixed temp file next to `dir/name`, sets `mode`,
/// and fsyncs it. Nothing visible to dnsmasq changes yet.
pub(crate) fn prepare(
    dir: &Arc<Dir>,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<Prepared, FsError> {
    let mode = mode & 0o7777;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let mut tries = 0;
    let (fd, temp) = loop {
        let temp = temp_name(name);
        match rustix::fs::openat(&dir.file, temp.as_str(), flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => break (fd, temp),
            Err(rustix::io::Errno::EXIST) if tries < 8 => tries += 1,
            Err(e) => return Err(FsError::new("create a temp file in", &dir.path, e.into())),
        }
    };
    let mut file = File::from(fd);
    let mut prepared = Prepared {
        dir: dir.clone(),
        temp: Some(temp),
        name: name.to_string(),
        stamp: None,
    };
    let path = || dir.join(prepared.temp.as_deref().unwrap_or(name));
    // Created with its mode, so a `chmod` is needed only when the umask or
    // a default ACL took bits away: checked once per directory and lease.
    if dir.mode_kept.load(Ordering::Relaxed) != mode {
        let created = file.metadata().map(|m| m.permissions().mode() & 0o7777);
        match created {
            Ok(got) if got == mode => dir.mode_kept.store(mode, Ordering::Relaxed),
            _ => file
                .set_permissions(Permissions::from_mode(mode))
                .map_err(|e| FsError::new("set the mode of", path(), e))?,
        }
    }
    file.write_all(bytes)
        .map_err(|e| FsError::new("write", path(), e))?;
    file.sync_all()
        .map_err(|e| FsError::new("fsync", path(), e))?;
    prepared.stamp = file.metadata().ok().map(|m| super::Stamp::of(&m));
    Ok(prepared)
}

/// A file operation that failed, and whether the directory already shows
/// part of the change (so the client cannot be told "nothing was written").
#[derive(Debug)]
pub(crate) struct PlaceError {
    /// What failed.
    pub(crate) error: FsError,
    /// The name no longer holds what it held before the operation.
    pub(crate) partial: bool,
}

impl PlaceError {
    fn before(error: FsError) -> PlaceError {
        PlaceError {
            error,
            partial: false,
        }
    }
}

impl Prepared {
    /// Puts a new file in place: renamed (dnsmasq reads it at once through
    /// inotify, which is what a create wants). A failed rename changed
    /// nothing.
    pub(crate) fn create(mut self) -> Result<(), PlaceError> {
        let dir = self.dir.clone();
        let temp = self.temp.take().expect("a prepared file has its temp name");
        match rustix::fs::renameat(&dir.file, temp.as_str(), &dir.file, self.name.as_str()) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.temp = Some(temp); // removed by drop
                Err(PlaceError::before(FsError::new(
                    "rename a temp file onto",
                    dir.join(&self.name),
                    e.into(),
                )))
            }
        }
    }

    /// Replaces an existing file without raising an event dnsmasq acts on,
    /// so only the coming reload reads the new contents.
    pub(crate) fn replace(self) -> Result<(), PlaceError> {
        let dir = &*self.dir;
        let name = self.name.as_str();
        let parked = format!(".{name}{OLD_MARK}{}", std::process::id());
        rustix::fs::renameat(&dir.file, name, &dir.file, parked.as_str()).map_err(|e| {
            PlaceError::before(FsError::new(
                "park the old version of",
                dir.join(name),
                e.into(),
            ))
        })?;
        if let Err(e) = self.link_temp() {
            // Put the old version back; the request fails as a whole. If
            // even that fails, the name is empty now: say so (the parked
            // version is restored at the next clean-up).
            let restored =
                rustix::fs::renameat(&dir.file, parked.as_str(), &dir.file, name).is_ok();
            return Err(PlaceError {
                error: FsError::new("link the new version of", dir.join(name), e),
                partial: !restored,
            });
        }
        if let Err(e) = rustix::fs::unlinkat(&dir.file, parked.as_str(), AtFlags::empty()) {
            // The new version is in place; the parked dotfile, which dnsmasq
            // ignores, is removed by the next clean-up.
            tracing::warn!(path = %dir.join(&parked).display(), "could not remove a parked old version: {e}");
        }
        Ok(())
        // `self` is dropped here, unlinking the temp name.
    }

    /// Puts a file under a name that has none, for the next reload only:
    /// `link()` raises no event dnsmasq acts on. Fails, changing nothing, if
    /// the name exists.
    pub(crate) fn link_new(self) -> Result<(), PlaceError> {
        self.link_temp().map_err(|e| {
            PlaceError::before(FsError::new(
                "link the new file",
                self.dir.join(&self.name),
                e,
            ))
        })
        // `self` is dropped here, unlinking the temp name.
    }

    fn link_temp(&self) -> io::Result<()> {
        let temp = self
            .temp
            .as_deref()
            .expect("a prepared file has its temp name");
        let file = &self.dir.file;
        rustix::fs::linkat(file, temp, file, self.name.as_str(), AtFlags::empty())
            .map_err(io::Error::from)
    }
}

/// Makes dnsmasq on this node read `dir/name` again, without a reload: the
/// same bytes are written to a new temp file and renamed over it, which
/// raises `IN_MOVED_TO` (for a file another node wrote, which this node's
/// inotify never saw), and answers the new file's stamp. Returns
/// `Ok(None)`, touching nothing, when a legacy writer holds its lock on the
/// file or the file is no longer the one read (`expect`).
pub(crate) fn reread(
    dir: &Arc<Dir>,
    name: &str,
    bytes: &[u8],
    mode: u32,
    expect: super::Stamp,
) -> Result<Option<super::Stamp>, FsError> {
    let _held = match wait_for_legacy_lock(dir, name, Duration::ZERO) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) if e.source.kind() == io::ErrorKind::TimedOut => return Ok(None),
        Err(e) => return Err(e),
    };
    let prepared = prepare(dir, name, bytes, mode)?;
    if dir.stamp_of(name)? != expect {
        return Ok(None);
    }
    let written = prepared.stamp;
    prepared.create().map_err(|e| e.error)?;
    // A rename keeps the stamp: no second `stat` (a round trip on a
    // network filesystem) unless the prepare could not take it.
    Ok(Some(
        written.unwrap_or_else(|| dir.stamp_of(name).unwrap_or(expect)),
    ))
}

/// Removes `dir/name` without dnsmasq noticing: rename to a dotfile, unlink.
/// Once the rename is done the entry is gone, so a failed unlink only
/// leaves a dotfile (ignored by dnsmasq) for the next clean-up.
pub(crate) fn remove(dir: &Dir, name: &str) -> Result<(), PlaceError> {
    let hidden = format!(".{name}{DELETE_MARK}{}", std::process::id());
    rustix::fs::renameat(&dir.file, name, &dir.file, hidden.as_str())
        .map_err(|e| PlaceError::before(FsError::new("remove", dir.join(name), e.into())))?;
    if let Err(e) = rustix::fs::unlinkat(&dir.file, hidden.as_str(), AtFlags::empty()) {
        tracing::warn!(path = %dir.join(&hidden).display(), "could not unlink a removed entry's dotfile: {e}");
    }
    Ok(())
}

/// What [`clean_leftover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cleaned {
    /// Not a leftover of this broker's, or too young, or gone: untouched.
    Kept,
    /// A stale temp or removal dotfile, removed.
    Removed,
    /// An entry parked by an interrupted replace, put back under its name
    /// (which was empty): the replace was never acknowledged.
    Restored,
}

/// Deals with one dotfile a broker may have left behind (killed mid-write,
/// or a second fault while cleaning up after a first), if it is older than
/// `min_age`. The caller holds the directory locks, so no broker is writing
/// it now; `min_age` guards against one that lost its lock unawares.
pub(crate) fn clean_leftover(dir: &Path, file_name: &str, min_age: Duration) -> Cleaned {
    if !is_stale_temp(file_name) {
        return Cleaned::Kept;
    }
    let path = dir.join(file_name);
    let young = fs::symlink_metadata(&path)
        .and_then(|m| m.modified())
        .map(|m| m.elapsed().unwrap_or_default() < min_age);
    if young.unwrap_or(true) {
        return Cleaned::Kept;
    }
    if let Some(original) = parked_name(file_name) {
        let target = dir.join(original);
        if !target.exists() && fs::rename(&path, &target).is_ok() {
            tracing::warn!(file = %target.display(), "restored an entry left parked by an interrupted replace");
            return Cleaned::Restored;
        }
    }
    match fs::remove_file(&path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed a stale temp file");
            Cleaned::Removed
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), "could not remove a stale temp file: {e}");
            Cleaned::Kept
        }
    }
}

/// True for file names this broker leaves behind when killed mid-write.
pub(crate) fn is_stale_temp(file_name: &str) -> bool {
    file_name.starts_with('.')
        && (file_name.ends_with(TEMP_SUFFIX)
            || file_name.contains(DELETE_MARK)
            || file_name.contains(OLD_MARK))
}

/// For a parked old version (`.NAME.hdb-old-PID`), the entry name it belongs to.
pub(crate) fn parked_name(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_prefix('.')?;
    let at = rest.rfind(OLD_MARK)?;
    Some(&rest[..at])
}

/// Waits (bounded) for an exclusive `flock` on an existing entry file, the
/// protocol of legacy writers such as Ironic's stock provider, so a replace
/// never interleaves with one of them. Returns the held file; a missing file
/// needs no wait.
pub(crate) fn wait_for_legacy_lock(
    dir: &Dir,
    name: &str,
    timeout: Duration,
) -> Result<Option<File>, FsError> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let file = match rustix::fs::openat(&dir.file, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(FsError::new("open", dir.join(name), e.into())),
    };
    let path = dir.join(name);
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => {
                let e = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("another writer held its lock for over {timeout:?}"),
                );
                return Err(FsError::new("lock", path, e));
            }
            Err(fs::TryLockError::Error(e)) => return Err(FsError::new("lock", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_file_has_mode_and_is_invisible_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = prepare(&Dir::open(dir.path()).unwrap(), "a", b"x\n", 0o644).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(
            names[0].starts_with(".a.") && names[0].ends_with(TEMP_SUFFIX),
            "{names:?}"
        );
        p.create().unwrap();
        let meta = fs::metadata(dir.path().join("a")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"x\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replace_links_the_new_version_and_leaves_no_dotfile() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "old\n").unwrap();
        prepare(&Dir::open(dir.path()).unwrap(), "a", b"new\n", 0o644)
            .unwrap()
            .replace()
            .unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"new\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            fs::metadata(dir.path().join("a"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o644
        );
    }

    #[test]
    fn a_prepared_files_stamp_is_the_placed_files_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let open = Dir::open(dir.path()).unwrap();
        let p = prepare(&open, "a", b"x\n", 0o644).unwrap();
        let stamp = p.stamp.expect("a stamp");
        p.create().unwrap();
        let meta = fs::metadata(dir.path().join("a")).unwrap();
        assert_eq!(stamp, crate::store::Stamp::of(&meta));
        assert_eq!(open.stamp_of("a").unwrap(), stamp);
        assert!(open.stamp_of("missing").is_err());
    }

    #[test]
    fn dropped_prepare_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        drop(prepare(&Dir::open(dir.path()).unwrap(), "a", b"x\n", 0o600).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn remove_leaves_no_dotfile() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "x").unwrap();
        remove(&Dir::open(dir.path()).unwrap(), "a").unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_temp_names() {
        assert!(is_stale_temp(".ironic-x.conf.Ab12Cd.hdb-tmp"));
        assert!(is_stale_temp(".x.hdb-del-123"));
        assert!(is_stale_temp(".x.hdb-old-123"));
        assert_eq!(
            parked_name(".ironic-a.conf.hdb-old-77"),
            Some("ironic-a.conf")
        );
        assert_eq!(parked_name(".x.hdb-tmp"), None);
        assert!(!is_stale_temp(".hostsdir-broker.lock"));
        assert!(!is_stale_temp("x.hdb-tmp"));
    }

    #[test]
    fn a_written_file_has_the_configured_mode_whatever_the_umask_took() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        // 0o644 survives the usual umask 022; 0o666 does not, and is set
        // after the create.
        for (name, mode) in [("a", 0o644), ("b", 0o666), ("c", 0o600)] {
            prepare(&Dir::open(d.path()).unwrap(), name, b"x\n", mode)
                .unwrap()
                .create()
                .unwrap();
            let got = fs::metadata(d.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777;
            assert_eq!(got, mode, "mode of {name}");
        }
    }
}
