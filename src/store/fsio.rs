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

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::FsError;

/// Suffix of the temp files this broker creates; only files with it (or
/// [`DELETE_MARK`]) are removed as stale at start-up.
pub(crate) const TEMP_SUFFIX: &str = ".hdb-tmp";
/// Infix of the dotfile a deleted entry is renamed to before it is unlinked.
pub(crate) const DELETE_MARK: &str = ".hdb-del-";
/// Infix of the dotfile a replaced entry is parked as until its successor
/// is linked into place.
pub(crate) const OLD_MARK: &str = ".hdb-old-";

/// A temp file that has been written, fsynced and closed but not yet renamed
/// into place. Dropping it without putting it in place removes it.
///
/// It must be closed before the rename: closing a written file raises
/// `IN_CLOSE_WRITE` under whatever name it has by then, and dnsmasq would
/// read the entry a second time and log "duplicate dhcp-host IP address".
pub(crate) struct Prepared {
    temp: tempfile::TempPath,
    target: PathBuf,
    /// The file's stamp once written: a rename or link keeps inode, size
    /// and mtime, so the index needs no second `stat` after it (on a
    /// network filesystem a path lookup, where `fstat` is answered from
    /// the caps this client holds).
    pub(crate) stamp: Option<super::Stamp>,
}

/// Writes `bytes` to a dot-prefixed temp file next to `dir/name`, sets `mode`,
/// and fsyncs it. Nothing visible to dnsmasq changes yet.
pub(crate) fn prepare(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<Prepared, FsError> {
    let target = dir.join(name);
    // Created with its mode, so a `chmod` is needed only when the umask
    // took bits away: on a network filesystem each is a metadata-server
    // round trip (one in four of a write's on CephFS).
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| FsError::new("create a temp file in", dir, e))?;
    let path = temp.path().to_path_buf();
    let file = temp.as_file_mut();
    let created = file.metadata().map(|m| m.permissions().mode() & 0o7777);
    if created.ok() != Some(mode & 0o7777) {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| FsError::new("set the mode of", &path, e))?;
    }
    file.write_all(bytes)
        .map_err(|e| FsError::new("write", &path, e))?;
    file.sync_all()
        .map_err(|e| FsError::new("fsync", &path, e))?;
    let stamp = file.metadata().ok().map(|m| super::Stamp::of(&m));
    Ok(Prepared {
        temp: temp.into_temp_path(),
        target,
        stamp,
    })
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
    pub(crate) fn create(self) -> Result<(), PlaceError> {
        let target = self.target;
        self.temp.persist(&target).map(|_| ()).map_err(|e| {
            PlaceError::before(FsError::new("rename a temp file onto", &target, e.error))
        })
    }

    /// Replaces an existing file without raising an event dnsmasq acts on,
    /// so only the coming reload reads the new contents.
    pub(crate) fn replace(self) -> Result<(), PlaceError> {
        let target = &self.target;
        let (Some(dir), Some(name)) =
            (target.parent(), target.file_name().and_then(|n| n.to_str()))
        else {
            return self.create();
        };
        let parked = dir.join(format!(".{name}{OLD_MARK}{}", std::process::id()));
        fs::rename(target, &parked)
            .map_err(|e| PlaceError::before(FsError::new("park the old version of", target, e)))?;
        if let Err(e) = fs::hard_link(&self.temp, target) {
            // Put the old version back; the request fails as a whole. If
            // even that fails, the name is empty now: say so (the parked
            // version is restored at the next clean-up).
            let restored = fs::rename(&parked, target).is_ok();
            return Err(PlaceError {
                error: FsError::new("link the new version of", target, e),
                partial: !restored,
            });
        }
        if let Err(e) = fs::remove_file(&parked) {
            // The new version is in place; the parked dotfile, which dnsmasq
            // ignores, is removed by the next clean-up.
            tracing::warn!(path = %parked.display(), "could not remove a parked old version: {e}");
        }
        Ok(())
        // `self.temp` is dropped here, unlinking the dotfile name.
    }

    /// Puts a file under a name that has none, for the next reload only:
    /// `link()` raises no event dnsmasq acts on. Fails, changing nothing, if
    /// the name exists.
    pub(crate) fn link_new(self) -> Result<(), PlaceError> {
        fs::hard_link(&self.temp, &self.target)
            .map_err(|e| PlaceError::before(FsError::new("link the new file", &self.target, e)))
        // `self.temp` is dropped here, unlinking the dotfile name.
    }
}

/// Makes dnsmasq on this node read `dir/name` again, without a reload: the
/// same bytes are written to a new temp file and renamed over it, which
/// raises `IN_MOVED_TO` (for a file another node wrote, which this node's
/// inotify never saw). Returns `Ok(false)`, touching nothing, when a legacy
/// writer holds its lock on the file or the file is no longer the one read
/// (`expect`).
pub(crate) fn reread(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
    expect: super::Stamp,
) -> Result<bool, FsError> {
    let path = dir.join(name);
    let _held = match wait_for_legacy_lock(&path, Duration::ZERO) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(false),
        Err(e) if e.source.kind() == io::ErrorKind::TimedOut => return Ok(false),
        Err(e) => return Err(e),
    };
    let prepared = prepare(dir, name, bytes, mode)?;
    let now = fs::metadata(&path).map_err(|e| FsError::new("stat", &path, e))?;
    if super::Stamp::of(&now) != expect {
        return Ok(false);
    }
    prepared.create().map_err(|e| e.error)?;
    Ok(true)
}

/// Removes `dir/name` without dnsmasq noticing: rename to a dotfile, unlink.
/// Once the rename is done the entry is gone, so a failed unlink only
/// leaves a dotfile (ignored by dnsmasq) for the next clean-up.
pub(crate) fn remove(dir: &Path, name: &str) -> Result<(), PlaceError> {
    let target = dir.join(name);
    let hidden = dir.join(format!(".{name}{DELETE_MARK}{}", std::process::id()));
    fs::rename(&target, &hidden)
        .map_err(|e| PlaceError::before(FsError::new("remove", &target, e)))?;
    if let Err(e) = fs::remove_file(&hidden) {
        tracing::warn!(path = %hidden.display(), "could not unlink a removed entry's dotfile: {e}");
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

/// Makes the directory's entries (renames, unlinks) durable, through
/// `open` (opened here the first time: on a network filesystem each open
/// is a round trip, so a caller keeps it for a while). Answers the
/// directory's mtime after the fsync (its own `fstat`, no path lookup).
pub(crate) fn sync_dir(
    dir: &Path,
    open: &mut Option<File>,
) -> Result<Option<std::time::SystemTime>, FsError> {
    if open.is_none() {
        *open = Some(File::open(dir).map_err(|e| FsError::new("open", dir, e))?);
    }
    let file = open.as_ref().expect("opened above");
    file.sync_all()
        .map_err(|e| FsError::new("fsync the directory", dir, e))?;
    Ok(file.metadata().and_then(|m| m.modified()).ok())
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
    path: &Path,
    timeout: Duration,
) -> Result<Option<File>, FsError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::new("open", path, e)),
    };
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
        let p = prepare(dir.path(), "a", b"x\n", 0o644).unwrap();
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
        prepare(dir.path(), "a", b"new\n", 0o644)
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
    fn dropped_prepare_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        drop(prepare(dir.path(), "a", b"x\n", 0o600).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn remove_leaves_no_dotfile() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "x").unwrap();
        remove(dir.path(), "a").unwrap();
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
            prepare(d.path(), name, b"x\n", mode)
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
