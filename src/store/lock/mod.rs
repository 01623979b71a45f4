//! How brokers sharing the directories take turns.
//!
//! Several brokers (one per node) may serve the same directories on a
//! shared volume, and legacy writers (Ironic's stock provider) may write
//! into them too. The protocol between brokers, all of it here:
//!
//! - **The directory lock.** Before it changes anything, a broker takes an
//!   exclusive `flock` on `.hostsdir-broker.lock` in the hosts directory,
//!   then in the options directory — always in that order, so two brokers
//!   never deadlock ([`Locks::acquire`]). `flock` is enforced across the
//!   nodes of CephFS and NFSv4, and released by the kernel when a broker
//!   dies (on CephFS: when the metadata server evicts a dead node).
//! - **The generation.** The first line of the hosts directory's lock file
//!   counts commits. Every commit stores a new one ([`Locks::commit`]); a
//!   broker that finds another number than the one it last wrote knows
//!   another broker committed, and catches up before it checks any
//!   precondition ([`Locks::generation`]).
//! - **The change journal** ([`journal`]), after the generation line,
//!   names the files each generation changed, so catching up re-reads
//!   only those ([`Locks::changed_since`]); when it cannot cover the gap,
//!   the broker reads every file.
//! - **The lock file's mtime** moves with every commit; a broker compares
//!   it with what it saw when it let go ([`Locks::modified`]), a second
//!   signal in case a generation is ever misread.
//!
//! Everything that decides what this broker believes the others did is read
//! past this node's caches ([`file::Uncached`], [`file::synced_stat`]): on
//! ceph-fuse, cached reads of the lock file missed other brokers' commits.
//! A caller that holds a [`Locks`] is the only one that may read or write
//! the generation and the journal: both take `&Locks` / `&mut Locks`.

mod file;
mod journal;

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{FsError, Kind, StoreConfig};
use file::{path_in, DirLock};

/// Both directories' locks, held until dropped.
pub(crate) struct Locks {
    /// The hosts directory's lock; its file holds the shared generation and
    /// the change journal.
    hosts: DirLock,
    /// The options directory's lock.
    _opts: DirLock,
}

impl Locks {
    /// Takes both locks, hosts first, waiting up to the configured lock
    /// timeout for each.
    pub(crate) fn acquire(config: &StoreConfig) -> Result<Locks, FsError> {
        let hosts = DirLock::acquire(&config.hosts_dir, config.lock_timeout)?;
        let opts = DirLock::acquire(&config.opts_dir, config.lock_timeout)?;
        Ok(Locks { hosts, _opts: opts })
    }

    /// The generation stored by the last commit (0 before any).
    pub(crate) fn generation(&mut self) -> Result<u64, FsError> {
        self.hosts.generation()
    }

    /// When the lock file was last written: every commit moves it.
    pub(crate) fn modified(&self) -> Option<SystemTime> {
        self.hosts.modified()
    }

    /// The files changed by generations `known + 1 ..= current`, from the
    /// change journal, or `None` when it cannot tell (read every file).
    pub(crate) fn changed_since(&self, known: u64, current: u64) -> Option<Vec<(Kind, String)>> {
        journal::since(self.hosts.path(), known, current)
    }

    /// Adds `names` to the journal records of `generation`, which this
    /// holder already stored (a later group of the same lease). A journal
    /// that cannot be written is only logged, as in [`Locks::commit`].
    pub(crate) fn record(&mut self, generation: u64, names: &[(Kind, String)]) {
        if let Err(e) = journal::append(self.hosts.file(), self.hosts.path(), generation, names) {
            tracing::warn!("could not append to the change journal: {e}");
        }
    }

    /// Records commit `generation`, which changes `names`: journal first,
    /// then the generation (a reader that sees the new generation finds its
    /// records). A journal that cannot be written is only logged: other
    /// brokers then find a gap and read every file.
    pub(crate) fn commit(
        &mut self,
        generation: u64,
        names: &[(Kind, String)],
    ) -> Result<(), FsError> {
        if let Err(e) = journal::append(self.hosts.file(), self.hosts.path(), generation, names) {
            tracing::warn!("could not append to the change journal: {e}");
        }
        self.hosts.set_generation(generation)
    }
}

/// When a broker last committed: the hosts lock file's mtime (`None` while
/// no broker ever wrote: the file is empty).
pub(crate) fn last_commit(config: &StoreConfig) -> Option<SystemTime> {
    let meta = std::fs::metadata(path_in(&config.hosts_dir)).ok()?;
    (meta.len() > 0).then(|| meta.modified().ok()).flatten()
}

/// Takes and lets go of one directory's lock (a readiness check).
pub(crate) fn try_lock(dir: &Path, timeout: Duration) -> Result<(), FsError> {
    DirLock::acquire(dir, timeout).map(drop)
}
