//! The lock file each managed directory holds (`.hostsdir-broker.lock`):
//! an exclusive `flock` on it is the directory lock every broker takes
//! before it changes anything, and the hosts directory's file carries the
//! shared generation (first line) and the change journal (see
//! [`super::journal`]).
//!
//! Brokers on other nodes rewrite it in place, so what decides what this
//! broker believes the others did is read past this node's caches
//! ([`Uncached`], [`synced_stat`]).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::FsError;

/// Name of the lock file kept in each managed directory.
pub(crate) const LOCK_FILE: &str = ".hostsdir-broker.lock";

/// Length of the generation line: 20 digits and a newline.
pub(crate) const HEADER: usize = 21;

/// The lock file's generation line.
pub(crate) fn header(generation: u64) -> String {
    format!("{generation:020}\n")
}

/// The lock file of `dir`.
pub(crate) fn path_in(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
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
        let path = path_in(dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| FsError::new("open the lock file", &path, e))?;
        // Readable by everyone (a dnsmasq in the same directory ignores it,
        // being a dotfile); set only when it is not, since on a network
        // filesystem each `chmod` is a metadata round trip.
        if file
            .metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o7777 != 0o644)
        {
            let _ = file.set_permissions(Permissions::from_mode(0o644));
        }
        match file.try_lock() {
            Ok(()) => return Ok(DirLock { file, path }),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(FsError::new("lock", &path, e)),
        }
        // Held: wait in the lock's own queue, which is first come, first
        // served on CephFS (the MDS grants waiting locks in order; a broker
        // that lets go and asks again queues behind the others), rather
        // than polling, which a broker that keeps writing could starve. A
        // thread blocks in `flock` and hands the file back; after the
        // timeout nobody takes it, and it lets go of the lock it got.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("flock-wait".into())
            .spawn(move || {
                let got = file.lock().map(|()| file);
                let _ = tx.send(got);
            })
            .map_err(|e| FsError::new("lock", &path, e))?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(file)) => Ok(DirLock { file, path }),
            Ok(Err(e)) => Err(FsError::new("lock", &path, e)),
            Err(_) => {
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
                Err(FsError::new("lock", &path, e))
            }
        }
    }

    /// The lock file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file, open read-write.
    pub(crate) fn file(&self) -> &File {
        &self.file
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
        let text = header(generation);
        let keep = synced_len(&self.file)
            .map(|len| len > HEADER as u64)
            .unwrap_or(false);
        let mut head = [0u8; HEADER];
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
}
