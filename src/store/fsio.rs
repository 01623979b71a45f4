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

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Suffix of the temp files this broker creates; only files with it (or
/// [`DELETE_MARK`]) are removed as stale at start-up.
pub(crate) const TEMP_SUFFIX: &str = ".hdb-tmp";
/// Infix of the dotfile a deleted entry is renamed to before it is unlinked.
pub(crate) const DELETE_MARK: &str = ".hdb-del-";
/// Infix of the dotfile a replaced entry is parked as until its successor
/// is linked into place.
pub(crate) const OLD_MARK: &str = ".hdb-old-";
/// Name of the lock file kept in each managed directory.
pub(crate) const LOCK_FILE: &str = ".hostsdir-broker.lock";

/// An I/O error together with the path it concerns, so every message names
/// the file ("failed to write `…`").
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{}`: {source}", path.display())]
pub struct FsError {
    /// What was being attempted ("write", "rename", "fsync", …).
    pub action: &'static str,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub(crate) fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FsError {
            action,
            path: path.into(),
            source,
        }
    }

    /// A copy to hand to each of several waiting requests (`io::Error` is
    /// not `Clone`; the kind, OS error code and message are kept).
    pub(crate) fn duplicate(&self) -> FsError {
        let source = match self.source.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.source.kind(), self.source.to_string()),
        };
        FsError::new(self.action, self.path.clone(), source)
    }

    /// True when the error is "no space left on device" (or quota exceeded).
    pub fn is_no_space(&self) -> bool {
        matches!(self.source.raw_os_error(), Some(28) | Some(122))
    }
}

/// A temp file that has been written, fsynced and closed but not yet renamed
/// into place. Dropping it without [`Prepared::commit`] removes it.
///
/// It must be closed before the rename: closing a written file raises
/// `IN_CLOSE_WRITE` under whatever name it has by then, and dnsmasq would
/// read the entry a second time and log "duplicate dhcp-host IP address".
pub(crate) struct Prepared {
    temp: tempfile::TempPath,
    target: PathBuf,
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
    Ok(Prepared {
        temp: temp.into_temp_path(),
        target,
    })
}

impl Prepared {
    /// Puts a new file in place: renamed (dnsmasq reads it at once through
    /// inotify, which is what a create wants).
    pub(crate) fn create(self) -> Result<(), FsError> {
        let target = self.target;
        self.temp
            .persist(&target)
            .map(|_| ())
            .map_err(|e| FsError::new("rename a temp file onto", &target, e.error))
    }

    /// Replaces an existing file without raising an event dnsmasq acts on,
    /// so only the coming reload reads the new contents.
    pub(crate) fn replace(self) -> Result<(), FsError> {
        let target = &self.target;
        let (Some(dir), Some(name)) =
            (target.parent(), target.file_name().and_then(|n| n.to_str()))
        else {
            return self.create();
        };
        let parked = dir.join(format!(".{name}{OLD_MARK}{}", std::process::id()));
        fs::rename(target, &parked)
            .map_err(|e| FsError::new("park the old version of", target, e))?;
        if let Err(e) = fs::hard_link(&self.temp, target) {
            // Put the old version back; the request fails as a whole.
            let _ = fs::rename(&parked, target);
            return Err(FsError::new("link the new version of", target, e));
        }
        let _ = fs::remove_file(&parked);
        Ok(())
        // `self.temp` is dropped here, unlinking the dotfile name.
    }
}

impl Prepared {
    /// Puts a file under a name that has none, for the next reload only:
    /// `link()` raises no event dnsmasq acts on. Fails if the name exists.
    pub(crate) fn link_new(self) -> Result<(), FsError> {
        fs::hard_link(&self.temp, &self.target)
            .map_err(|e| FsError::new("link the new file", &self.target, e))
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
    prepared.create()?;
    Ok(true)
}

/// Removes `dir/name` without dnsmasq noticing: rename to a dotfile, unlink.
pub(crate) fn remove(dir: &Path, name: &str) -> Result<(), FsError> {
    let target = dir.join(name);
    let hidden = dir.join(format!(".{name}{DELETE_MARK}{}", std::process::id()));
    fs::rename(&target, &hidden).map_err(|e| FsError::new("remove", &target, e))?;
    fs::remove_file(&hidden).map_err(|e| FsError::new("unlink", &hidden, e))
}

/// Makes the directory's entries (renames, unlinks) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::new("fsync the directory", dir, e))
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

/// An exclusive `flock` on a directory's lock file, held until dropped.
///
/// The lock file also stores a generation counter that every mutation bumps:
/// a broker that finds a generation other than the one it last wrote knows
/// another process changed the directory and rescans before it checks
/// preconditions.
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock, polling until `timeout` has passed.
    pub(crate) fn acquire(dir: &Path, timeout: Duration) -> Result<DirLock, FsError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| FsError::new("open the lock file", &path, e))?;
        let _ = file.set_permissions(Permissions::from_mode(0o644));
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { file, path }),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let e = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "still held by another process after {timeout:?} (another broker \
                             or a legacy writer, on this node or another node; if the holder's \
                             node is gone, a shared filesystem releases its lock only when the \
                             metadata server evicts that client: on Ceph after mds \
                             session_timeout)"
                        ),
                    );
                    return Err(FsError::new("lock", &path, e));
                }
                Err(fs::TryLockError::Error(e)) => return Err(FsError::new("lock", &path, e)),
            }
        }
    }

    /// When the lock file was last written (every broker commit rewrites
    /// the generation in it).
    pub(crate) fn modified(&self) -> Option<std::time::SystemTime> {
        synced_stat(&self.file).ok().map(|(_, mtime)| mtime)
    }

    /// The generation stored in the lock file (0 when empty or unreadable).
    pub(crate) fn generation(&mut self) -> Result<u64, FsError> {
        // Only the first line: the change journal follows it.
        let mut head = [0u8; 64];
        let n = Uncached::open(&self.path)
            .and_then(|f| f.read_at(&mut head, 0))
            .map_err(|e| FsError::new("read the lock file", &self.path, e))?;
        let text = String::from_utf8_lossy(&head[..n]);
        Ok(text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Stores a new generation: the fixed-width first line is rewritten in
    /// place, keeping the change journal after it.
    pub(crate) fn set_generation(&mut self, generation: u64) -> Result<(), FsError> {
        use std::os::unix::fs::FileExt;
        let text = super::journal::header(generation);
        let keep = synced_len(&self.file)
            .map(|len| len > super::journal::HEADER as u64)
            .unwrap_or(false);
        let mut head = [0u8; super::journal::HEADER];
        let fixed = keep
            && self.file.read_at(&mut head, 0).ok() == Some(head.len())
            && head[..head.len() - 1].iter().all(u8::is_ascii_digit)
            && head[head.len() - 1] == b'\n';
        if fixed {
            return self
                .file
                .write_all_at(text.as_bytes(), 0)
                .map_err(|e| FsError::new("write the lock file", &self.path, e));
        }
        self.file
            .set_len(0)
            .and_then(|_| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .map_err(|e| FsError::new("write the lock file", &self.path, e))
    }
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

/// The size and mtime of an open file as the filesystem's server has them
/// now (`statx` with `AT_STATX_FORCE_SYNC`: FUSE and NFS ask the server
/// instead of answering from this node's attribute cache; local
/// filesystems ignore the flag).
pub(crate) fn synced_stat(file: &File) -> io::Result<(u64, std::time::SystemTime)> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    let st = statx(
        file,
        "",
        AtFlags::EMPTY_PATH | AtFlags::STATX_FORCE_SYNC,
        StatxFlags::SIZE | StatxFlags::MTIME,
    )?;
    let since_epoch = Duration::new(st.stx_mtime.tv_sec.unsigned_abs(), st.stx_mtime.tv_nsec);
    let mtime = if st.stx_mtime.tv_sec >= 0 {
        std::time::UNIX_EPOCH + since_epoch
    } else {
        std::time::UNIX_EPOCH - since_epoch
    };
    Ok((st.stx_size, mtime))
}

/// A file's length as the server has it now (see [`synced_stat`]), or as
/// `fstat` says where `statx` is missing. Another broker may have appended
/// since this node last looked: an append at a stale length would
/// overwrite its records.
pub(crate) fn synced_len(file: &File) -> io::Result<u64> {
    synced_stat(file)
        .map(|(len, _)| len)
        .or_else(|_| file.metadata().map(|m| m.len()))
}

/// The lock file (generation and change journal) read past this node's
/// page cache, where the filesystem allows it (`O_DIRECT`).
///
/// Other brokers rewrite it in place. Measured on ceph-fuse (see
/// CEPHFS-FACTS.md): bytes rewritten in place by another client can be
/// read stale from the page cache even under the `flock`; a broker read
/// a generation older than its own commit, "caught up" from a journal
/// that named nothing, and then wrote a MAC another broker held (one run
/// in six of the racing CephFS test). `O_DIRECT` reads ask ceph-fuse,
/// which keeps its data coherent with the other clients' through the
/// MDS's capabilities. Where `O_DIRECT` is refused or wants aligned
/// buffers (tmpfs, ext4: `EINVAL`), the page cache is coherent anyway
/// and the plain file is used.
///
/// Only for what decides what this broker believes the others did.
/// Writes go through a plain file (FUSE writes through to ceph-fuse, whose
/// cache the MDS keeps coherent; on ceph-fuse an `O_DIRECT` read or write
/// waits for the OSD, a round trip), and a writer's own reads only check
/// the file's format, which a stale read cannot make unsafe (see
/// journal.rs).
pub(crate) struct Uncached {
    path: PathBuf,
    direct: Option<File>,
    /// Opened when first needed: on a network filesystem an open can be a
    /// round trip, and reads go through `direct` where it works.
    plain: std::cell::OnceCell<File>,
}

impl Uncached {
    pub(crate) fn open(path: &Path) -> io::Result<Uncached> {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(path)
            .ok();
        let file = Uncached {
            path: path.to_path_buf(),
            direct,
            plain: std::cell::OnceCell::new(),
        };
        if file.direct.is_none() {
            file.plain()?;
        }
        Ok(file)
    }

    fn plain(&self) -> io::Result<&File> {
        if let Some(f) = self.plain.get() {
            return Ok(f);
        }
        let f = File::open(&self.path)?;
        Ok(self.plain.get_or_init(|| f))
    }

    /// Reads at `offset` through the `O_DIRECT` file, or through the plain
    /// one where that is refused (`EINVAL`).
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if let Some(direct) = &self.direct {
            match direct.read_at(buf, offset) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {}
                other => return other,
            }
        }
        self.plain()?.read_at(buf, offset)
    }

    /// The whole file, as text (lossy).
    pub(crate) fn read_to_string(&self) -> io::Result<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.read_at(&mut buf, out.len() as u64)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
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
    fn lock_excludes_a_second_holder_and_keeps_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = DirLock::acquire(dir.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(a.generation().unwrap(), 0);
        a.set_generation(41).unwrap();
        let err = DirLock::acquire(dir.path(), Duration::from_millis(30))
            .err()
            .unwrap();
        assert!(err.to_string().contains(LOCK_FILE), "{err}");
        drop(a);
        let mut b = DirLock::acquire(dir.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(b.generation().unwrap(), 41);
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
    fn uncached_reads_see_what_another_handle_wrote_in_place() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(LOCK_FILE);
        fs::write(&path, "00000000000000000001\nfrom 0\n").unwrap();
        use std::os::unix::fs::FileExt;
        let writer = OpenOptions::new().write(true).open(&path).unwrap();
        let reader = Uncached::open(&path).unwrap();
        let mut head = [0u8; 21];
        assert_eq!(reader.read_at(&mut head, 0).unwrap(), 21);
        writer.write_all_at(b"00000000000000000002\n", 0).unwrap();
        writer.write_all_at(b"2 h a.conf x\n", 28).unwrap();
        assert_eq!(reader.read_at(&mut head, 0).unwrap(), 21);
        assert_eq!(&head, b"00000000000000000002\n");
        assert_eq!(synced_len(&writer).unwrap(), 41);
        assert_eq!(
            reader.read_to_string().unwrap(),
            "00000000000000000002\nfrom 0\n2 h a.conf x\n"
        );
        let (len, mtime) = synced_stat(reader.plain().unwrap()).unwrap();
        assert_eq!(len, 41);
        assert_eq!(mtime, fs::metadata(&path).unwrap().modified().unwrap());
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
