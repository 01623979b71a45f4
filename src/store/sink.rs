//! The store's side of reloading: how a change is placed on disk
//! ([`Placement`], [`ChangePlan`]) and the [`ReloadSink`] the writer tells
//! about every change. The store knows nothing of dnsmasq; the reload
//! module implements the sink.

use std::sync::Arc;

use super::{Entry, Index, Kind};
use crate::entry::Name;

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

    /// Whether a dnsmasq on this node reads the directories, so that a file
    /// another node wrote is worth renaming over itself for its inotify
    /// (see `reconcile`). `false` spares the other node's writer the
    /// contention (on CephFS each such rename takes the file's caps from
    /// the client that just wrote it).
    fn local_reader(&self) -> bool {
        true
    }

    /// Keeps reloads from starting while the guard lives (and waits for one
    /// in progress to finish), so files never change under a re-reading
    /// dnsmasq.
    fn hold_reloads(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        None
    }
}
