//! Bringing the index in line with changes others made to the directories:
//! other brokers (found through the generation and change journal), legacy
//! writers and other nodes (found by the watcher's polls and stat passes).
//!
//! Each change goes through the reload policy like a change of the
//! broker's own ([`super::place`]): one that dnsmasq may read without a
//! reload is rewritten with the same bytes (renamed over itself), so this
//! node's inotify reads it — another node's write raises no event here;
//! anything else needs a reload. Runs on the writer thread, under the
//! directory locks.

use std::sync::Arc;
use std::time::Duration;

use super::fsio;
use super::place::{place, risky, ReloadNeed};
use super::scan;
use super::{Entry, FsError, Kind, PendingChange, Placement, ReloadSink, Shared, Stamp};
use crate::sync::{LockOrRecover, RwLockOrRecover};

/// Compares every file with the index and handles what changed. With
/// `clean`, stale temp files are removed (only before the group's own temp
/// files exist).
pub(super) fn rescan(
    shared: &Shared,
    reloads: &dyn ReloadSink,
    need: &mut ReloadNeed,
    clean: bool,
) -> Result<u64, FsError> {
    let suspects = scan::suspects(&shared.config, &shared.index, clean, &shared.nudger)?;
    reconcile(shared, reloads, suspects.changed, need)
}

/// A file looked at again: its kind and name, the entry it holds now (if
/// any) and its stamp.
type Found = (Kind, String, Option<Arc<Entry>>, Option<Stamp>);

/// [`rescan`] for the files in `suspects` only (stat'ed and read again
/// here); the index is updated in place, so no second index is built.
/// Answers the number of changes found.
pub(super) fn reconcile(
    shared: &Shared,
    reloads: &dyn ReloadSink,
    suspects: Vec<(Kind, String)>,
    need: &mut ReloadNeed,
) -> Result<u64, FsError> {
    let config = &shared.config;
    let dirs = [
        fsio::Dir::open(config.dir(Kind::Host))?,
        fsio::Dir::open(config.dir(Kind::Option))?,
    ];
    let mut extra = Vec::new();
    // Read concurrently (see scan::par_map), applied in order.
    let reads = scan::par_map(&suspects, 16, |(kind, file)| {
        scan::read_file(dirs[*kind as usize].file(), *kind, file, &shared.nudger)
    });
    let mut found: Vec<Found> = suspects
        .into_iter()
        .zip(reads)
        .map(|((kind, file), read)| {
            extra.push((kind, read.problems, read.unparsed));
            (kind, file, read.entry, read.stamp)
        })
        .collect();
    let _quiet = shared.not_stalled_while(|| reloads.hold_reloads());
    let mut changes = 0u64;
    let mut reread = 0u64;
    let mut found_need = ReloadNeed::default();
    {
        let index = shared.index.read_or_recover();
        for (kind, file, new, stamp) in &mut found {
            let kind = *kind;
            let old = index.get(kind, file);
            let changed = match (old, &*new) {
                (Some(o), Some(n)) => o.etag != n.etag,
                (None, None) => false,
                _ => true,
            };
            let Some(name) = changed
                .then(|| new.as_ref().map(|n| &n.name).or(old.map(|o| &o.name)))
                .flatten()
                .cloned()
            else {
                continue;
            };
            let replaces = old.is_some() || index.unparsed(kind, &name).is_some();
            let pending = PendingChange {
                kind,
                name: &name,
                replaces,
                new: new.as_ref(),
                external: true,
            };
            // The file is already in place (someone else put it there): all
            // that can be done is to make this node's dnsmasq read it now,
            // when the policy says that serves it. Never fails.
            let how = place(reloads, &index, &pending, |how| {
                let Some(new) = new.as_ref() else {
                    return Ok(());
                };
                let _watch = shared.nudger.watch();
                let served = (reloads.local_reader()
                    && !how.needs_reload
                    && how.placement == Placement::Now)
                    .then_some(*stamp)
                    .flatten()
                    .and_then(|expect| {
                        fsio::reread(
                            &dirs[kind as usize],
                            name.as_str(),
                            new.text.as_bytes(),
                            config.file_mode,
                            expect,
                        )
                        .unwrap_or_else(|e| {
                            tracing::warn!("{e}");
                            None
                        })
                    });
                if let Some(now) = served {
                    reread += 1;
                    *stamp = Some(now);
                } else {
                    // Perhaps read by dnsmasq, perhaps not: the reload tells.
                    how.placement = Placement::AtReload;
                    how.needs_reload = true;
                }
                Ok(())
            })
            .unwrap_or_else(|e| unreachable!("the closure never fails: {}", e.error));
            found_need.add(
                how.needs_reload,
                risky(kind, old.map(|o| &**o), replaces),
                "external",
            );
            changes += 1;
        }
    }
    {
        let mut index = shared.index.write_or_recover();
        for (kind, file, new, stamp) in found {
            index.forget_problems(kind, &file);
            match new {
                Some(entry) => {
                    let name = entry.name.clone();
                    index.insert(entry);
                    if let Some(stamp) = stamp {
                        index.set_stamp(kind, name.as_str(), stamp);
                    }
                }
                None => {
                    index.remove(kind, &file);
                }
            }
        }
        for (kind, problems, unparsed) in extra {
            index.problems.extend(problems);
            if let Some((name, u)) = unparsed {
                index.set_unparsed_quiet(kind, name, u);
            }
        }
        if found_need.needed {
            found_need.risky |= index.any_set_tags();
        }
    }
    if changes > 0 {
        tracing::info!(
            changes,
            served_without_reload = reread,
            "external changes found in the directories"
        );
        need.merge(found_need);
    }
    let mut stats = shared.stats.lock_or_recover();
    stats.rescans += 1;
    stats.external_changes += changes;
    crate::metrics::get().external_changes.inc_by(changes);
    Ok(changes)
}

/// Removes the leftovers a stat pass saw (stale temp and removal dotfiles,
/// entries parked by an interrupted replace), under the directory locks,
/// once older than `min_age`. Answers how many were dealt with.
pub(super) fn clean_leftovers(
    shared: &Shared,
    leftovers: &[(Kind, String)],
    min_age: Duration,
) -> u64 {
    let mut cleaned = 0;
    for (kind, file) in leftovers {
        if fsio::clean_leftover(shared.config.dir(*kind), file, min_age) != fsio::Cleaned::Kept {
            cleaned += 1;
        }
    }
    if cleaned > 0 {
        shared.stats.lock_or_recover().leftovers_removed += cleaned;
    }
    cleaned
}
