//! Applying one client request inside a group commit, all-or-nothing as far
//! as the filesystem lets it be.
//!
//! In order: plan it against the index ([`super::plan`]); write and fsync
//! every new file as a dotfile (most were prepared for the whole group at
//! once, see [`prepare_group`]); wait out legacy writers holding a file it
//! replaces; announce the names to other brokers (the first request of a
//! group that changes anything does this for the whole group); then rename
//! or link each file into place and update the index. A failure before the
//! first file operation leaves the entry exactly as it was; one after it
//! (rare: renames do not allocate) leaves the outcome unknown, and the
//! writer rescans so the index tells the truth.

use std::collections::HashMap;
use std::sync::Arc;

use super::fsio::{self, Dir, OpenDirs, PlaceError};
use super::place::{place, risky};
use super::plan::{plan, Change};
use super::pool::Pool;
use super::types::Dirs;
use super::{
    Applied, FsError, Kind, Op, OpError, PendingChange, Placement, ReloadSink, Shared, Status,
    StoreConfig, StoreError,
};
use crate::entry::Name;
use crate::sync::{LockOrRecover, RwLockOrRecover};

/// What one request did, before the group's fsync decides its answer.
pub(super) struct Done {
    /// The answer, if the group's directories become durable.
    pub(super) applied: Applied,
    /// dnsmasq serves some change of it only after a reload.
    pub(super) needs_reload: bool,
    /// A reload may find `set:` tags loaded (see [`super::place::risky`]).
    pub(super) risky: bool,
    /// The directories it changed.
    pub(super) wrote: Dirs<bool>,
}

/// Why a request failed, and whether the directories may show part of it.
pub(super) struct Failed {
    /// The answer.
    pub(super) error: OpError,
    /// Part of the request may be in place: the index must be rebuilt from
    /// the directories.
    pub(super) rescan: bool,
}

impl From<OpError> for Failed {
    fn from(error: OpError) -> Failed {
        Failed {
            error,
            rescan: false,
        }
    }
}

/// Temp files written and fsynced for a group before its requests are
/// applied, by kind and name, with their contents.
pub(super) type Early = HashMap<(Kind, Name), (String, fsio::Prepared)>;

/// Applies `ops`. `announce` tells other brokers which files the group is
/// about to change; it is called before the first file operation.
pub(super) fn apply(
    shared: &Shared,
    reloads: &dyn ReloadSink,
    ops: &[Op],
    actor: &str,
    early: &mut Early,
    dirs: &mut OpenDirs,
    announce: &mut dyn FnMut() -> Result<(), FsError>,
) -> Result<Done, Failed> {
    let config = &shared.config;
    let plan = {
        let index = shared.index.read_or_recover();
        plan(&index, ops)?
    };
    let fail = |op, error: StoreError| OpError { index: op, error };

    let prepared = {
        let _watch = shared.nudger.watch();
        prepare_changes(config, dirs, &plan.changes, early)?
    };

    // Wait out legacy writers holding a file we replace.
    let mut legacy_locks = Vec::new();
    for change in plan.changes.iter().filter(|c| c.replaces) {
        let dir = dirs
            .get(config, change.kind)
            .map_err(|e| fail(change.op, e.into()))?;
        let held =
            fsio::wait_for_legacy_lock(&dir, change.name.as_str(), config.legacy_lock_timeout)
                .map_err(|e| fail(change.op, e.into()))?;
        legacy_locks.push(held);
    }
    if !plan.changes.is_empty() {
        announce().map_err(|e| fail(plan.changes[0].op, e.into()))?;
    }

    // Renames and removals, then the index. Never while dnsmasq is
    // re-reading the directories: a file vanishing between its listing and
    // its open makes it log "cannot read". The reload policy decides, change
    // by change, whether dnsmasq may read the new version at once (rename)
    // or only at the reload (link).
    let quiet = shared.not_stalled_while(|| reloads.hold_reloads());
    let mut needs_reload = false;
    let mut risky_change = false;
    let mut wrote = Dirs::default();
    let mut stamps = Vec::with_capacity(plan.changes.len());
    {
        let index = shared.index.read_or_recover();
        for (change, p) in plan.changes.iter().zip(prepared) {
            let pending = PendingChange {
                kind: change.kind,
                name: &change.name,
                replaces: change.replaces,
                new: change.new.as_ref(),
                external: false,
            };
            // The new file's stamp, known before it is put in place.
            stamps.push(p.as_ref().and_then(|p| p.stamp));
            let placed = place(reloads, &index, &pending, |how| {
                let _watch = shared.nudger.watch();
                let dir = dirs.get(config, change.kind).map_err(|error| PlaceError {
                    error,
                    partial: false,
                })?;
                put_in_place(&dir, change, p, how.placement)
            });
            match placed {
                Ok(how) => {
                    shared.progress();
                    needs_reload |= how.needs_reload;
                    risky_change |= risky(change.kind, change.old.as_deref(), change.replaces);
                    *wrote.get_mut(change.kind) = true;
                }
                Err(e) => {
                    drop(index);
                    drop(quiet);
                    let nothing_visible = !e.partial && !wrote.any();
                    tracing::error!(
                        "a commit failed {}: {}",
                        if nothing_visible {
                            "before anything was in place"
                        } else {
                            "part-way"
                        },
                        e.error
                    );
                    let error = if nothing_visible {
                        StoreError::from(e.error)
                    } else {
                        StoreError::unknown(&e.error, "the request was applied only in part")
                    };
                    return Err(Failed {
                        error: fail(change.op, error),
                        rescan: !nothing_visible,
                    });
                }
            }
        }
    }
    drop(legacy_locks);

    let mut index = shared.index.write_or_recover();
    let (mut written, mut removed) = (0u64, 0u64);
    for (change, stamp) in plan.changes.iter().zip(stamps) {
        match &change.new {
            Some(new) => {
                index.insert(new.clone());
                if let Some(stamp) = stamp {
                    index.set_stamp(change.kind, change.name.as_str(), stamp);
                }
                written += 1;
            }
            None => {
                index.remove(change.kind, change.name.as_str());
                removed += 1;
            }
        }
    }
    risky_change |= index.any_set_tags();
    drop(index);
    drop(quiet);
    {
        let mut stats = shared.stats.lock_or_recover();
        stats.files_written += written;
        stats.files_removed += removed;
    }
    for o in plan
        .outcomes
        .iter()
        .filter(|o| o.status != Status::Unchanged)
    {
        tracing::info!(
            who = actor,
            kind = %o.kind,
            name = %o.name,
            action = ?o.status,
            old_etag = o.old_etag.map(|e| e.to_string()).unwrap_or_default(),
            new_etag = o.entry.as_ref().map(|e| e.etag.to_string()).unwrap_or_default(),
            "entry changed"
        );
    }
    Ok(Done {
        applied: Applied {
            outcomes: plan.outcomes,
            reload_ticket: None,
        },
        needs_reload,
        risky: risky_change,
        wrote,
    })
}

/// The temp file of every change that writes one: taken from the group's
/// early ones when their contents match, written now otherwise.
fn prepare_changes(
    config: &StoreConfig,
    dirs: &mut OpenDirs,
    changes: &[Change],
    early: &mut Early,
) -> Result<Vec<Option<fsio::Prepared>>, OpError> {
    let mut prepared = Vec::with_capacity(changes.len());
    for change in changes {
        let Some(new) = &change.new else {
            prepared.push(None);
            continue;
        };
        let ready = early
            .remove(&(change.kind, change.name.clone()))
            .filter(|(text, _)| **text == *new.text);
        if let Some((_, p)) = ready {
            prepared.push(Some(p));
            continue;
        }
        let started = std::time::Instant::now();
        let p = dirs
            .get(config, change.kind)
            .and_then(|dir| {
                fsio::prepare(
                    &dir,
                    new.name.as_str(),
                    new.text.as_bytes(),
                    config.file_mode,
                )
            })
            .map_err(|e| OpError {
                index: change.op,
                error: e.into(),
            })?;
        crate::metrics::get()
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        prepared.push(Some(p));
    }
    Ok(prepared)
}

/// The file operation for one change.
fn put_in_place(
    dir: &Dir,
    change: &Change,
    prepared: Option<fsio::Prepared>,
    placement: Placement,
) -> Result<(), PlaceError> {
    match (prepared, placement, change.replaces) {
        (Some(p), Placement::Now, _) => p.create(),
        (Some(p), Placement::AtReload, true) => p.replace(),
        (Some(p), Placement::AtReload, false) => p.link_new(),
        (None, _, _) => fsio::remove(dir, change.name.as_str()),
    }
}

/// The names a group may change, for the announcement to other brokers:
/// every name a request puts or deletes, and for a sync every name it
/// lists plus the present names under its prefix. Extra names only cost
/// other brokers a re-read.
pub(super) fn names_touched<'a>(
    shared: &Shared,
    requests: impl Iterator<Item = &'a [Op]>,
) -> Vec<(Kind, String)> {
    let mut names = Vec::new();
    let index = shared.index.read_or_recover();
    for op in requests.flatten() {
        match op {
            Op::Put { name, spec, .. } => names.push((spec.kind(), name.to_string())),
            Op::Delete { kind, name, .. } => names.push((*kind, name.to_string())),
            Op::Sync {
                kind,
                prefix,
                items,
            } => {
                names.extend(items.iter().map(|(n, _)| (*kind, n.to_string())));
                names.extend(
                    index
                        .names_with_prefix(*kind, prefix)
                        .into_iter()
                        .map(|n| (*kind, n.to_string())),
                );
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Writes and fsyncs the temp file of every entry the group's requests put,
/// concurrently (the filesystem commits concurrent fsyncs together), so the
/// requests applied one by one afterwards only rename. Called under the
/// directory locks, so no other broker's clean-up removes the temp files as
/// stale. A file that cannot be prepared here, or whose contents are not
/// what its request finally writes (a name put twice in one group), is
/// prepared again by the request, which then reports any error.
pub(super) fn prepare_group<'a>(
    shared: &Shared,
    dirs: &mut OpenDirs,
    pool: &Pool,
    requests: impl Iterator<Item = &'a [Op]>,
) -> Early {
    let config = &shared.config;
    let mut items: Vec<(Kind, Name, String)> = Vec::new();
    for op in requests.flatten() {
        match op {
            Op::Put { name, spec, .. } => items.push((spec.kind(), name.clone(), spec.render())),
            Op::Sync {
                kind, items: all, ..
            } => items.extend(
                all.iter()
                    .map(|(name, spec)| (*kind, name.clone(), spec.render())),
            ),
            Op::Delete { .. } => {}
        }
    }
    if items.len() < 2 {
        return Early::new();
    }
    // Opened here, before the threads share them; one that cannot be is
    // left to the requests, which report why.
    let open = Dirs::from_fn(|kind| {
        items
            .iter()
            .any(|(k, _, _)| *k == kind)
            .then(|| dirs.get(config, kind).ok())
            .flatten()
    });
    let (nudger, mode) = (shared.nudger.clone(), config.file_mode);
    let jobs: Vec<_> = items
        .iter()
        .map(|(kind, name, text)| (open.get(*kind).clone(), name.clone(), text.clone()))
        .collect();
    let done = pool.map(
        jobs,
        Arc::new(move |(dir, name, text): (Option<Arc<Dir>>, Name, String)| {
            let _watch = nudger.watch();
            let started = std::time::Instant::now();
            let p = fsio::prepare(&dir?, name.as_str(), text.as_bytes(), mode).ok()?;
            crate::metrics::get()
                .write_seconds
                .observe(started.elapsed().as_secs_f64());
            Some(p)
        }),
    );
    let mut early = Early::new();
    for ((kind, name, text), p) in items.into_iter().zip(done) {
        if let Some(p) = p.flatten() {
            // The first request putting a name gets the file.
            early.entry((kind, name)).or_insert((text, p));
        }
    }
    early
}
