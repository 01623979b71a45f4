//! The one thread that changes the directories.
//!
//! Requests arrive over a channel. The writer takes whatever is queued (up to
//! `max_group`) as one group: one lock acquisition, one staleness check, the
//! requests applied in order, one fsync per directory touched, then every
//! request of the group is answered. Under load this turns N fsyncs of the
//! directory into one (group commit) without delaying a lone request.
//!
//! A request is all-or-nothing: every op is checked against the index (with
//! the effects of earlier ops of the same request overlaid) and every temp
//! file is written and fsynced before the first rename. Only an I/O error
//! during the renames themselves (which do not allocate) could leave part of
//! a request applied; the writer then rescans so the index tells the truth.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::fsio;
use super::index::has_set_tags;
use super::lock::{self, Locks};
use super::plan::plan;
use super::scan;
use super::FsError;
use super::{
    Applied, Entry, Kind, Op, OpError, PendingChange, Placement, ReloadSink, Shared, Status,
    StoreError,
};
use crate::entry::Name;

/// A message to the writer.
pub(crate) enum Request {
    /// Apply ops all-or-nothing.
    Apply {
        ops: Vec<Op>,
        actor: String,
        reply: oneshot::Sender<Result<Applied, OpError>>,
    },
    /// Compare the index with the directories (external changes).
    Refresh {
        /// Only these files (found off the writer thread); `None`: all.
        suspects: Option<Vec<(Kind, String)>>,
        /// The directories' mtimes from before the suspects were listed.
        listed_at: Option<[Option<std::time::SystemTime>; 2]>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Catch up with other brokers' commits (from the change journal, or a
    /// full scan if it cannot cover the gap); answers whether the
    /// generation had moved.
    CatchUp {
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// Starts the writer thread.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    generation: u64,
    reloads: Arc<dyn ReloadSink>,
) -> Sender<Request> {
    let (tx, rx) = std::sync::mpsc::channel();
    let committed_at = lock::last_commit(&shared.config);
    let writer = Writer {
        shared,
        generation,
        reloads,
        committed_at,
    };
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer.run(rx))
        // Failing to start a thread at start-up leaves nothing to serve.
        .expect("cannot start the store writer thread");
    tx
}

struct Writer {
    shared: Arc<Shared>,
    /// The generation this broker last saw in (or wrote to) the lock file.
    generation: u64,
    reloads: Arc<dyn ReloadSink>,
    /// The lock file's mtime when this writer last let go of the lock.
    /// Every broker commit rewrites the generation in it, so a different
    /// mtime at the next group means another broker committed, whatever
    /// generation was read. Both are read past this node's caches (see
    /// `fsio::Uncached`, `fsio::synced_stat`): on ceph-fuse, cached reads
    /// of either missed other brokers' commits (a MAC then written into a
    /// second file, 4 runs in 25 of the racing CephFS test; none in 75
    /// since). Changes by writers that take no lock are the watcher's to
    /// find, off this thread (see `Shared::seen_mtimes`): a full stat pass
    /// here, under the lock, would stall every write for as long.
    committed_at: Option<std::time::SystemTime>,
}

/// What one request did, before the group's fsync decides its answer.
struct Done {
    applied: Applied,
    needs_reload: bool,
    risky: bool,
}

/// Reload needs gathered over a group.
#[derive(Default)]
struct GroupReload {
    needed: bool,
    risky: bool,
    reason: &'static str,
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        let max = self.shared.config.max_group.max(1);
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < max {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        tracing::debug!("store writer stopped");
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        // Anything below may block in the filesystem (a dead node on a
        // shared one): the store reports it as stalled meanwhile.
        self.shared
            .set_busy(Some("taking the directory lock and writing"));
        self.commit_group_busy(group);
        self.shared.set_busy(None);
    }

    fn commit_group_busy(&mut self, group: Vec<Request>) {
        let shared = self.shared.clone();
        let config = &shared.config;
        let metrics = crate::metrics::get();
        metrics.group_size.observe(group.len() as f64);
        let waited = std::time::Instant::now();
        let mut locks = match Locks::acquire(config) {
            Ok(l) => l,
            Err(e) => return self.fail_group(group, e),
        };
        metrics
            .lock_wait_seconds
            .observe(waited.elapsed().as_secs_f64());
        let mut reload = GroupReload::default();
        let mut moved = false;
        // The directories as the index will reflect them, for the dirs this
        // group does not write: from before anything was listed, so a
        // change made meanwhile by a writer that takes no lock still
        // differs at the next poll.
        let mut baseline = scan::dir_mtimes(config);
        // Changes found by the mtime check before the group's requests.
        let mut found_first = 0u64;
        match locks.generation() {
            Ok(g) if g < self.generation => {
                // Older than this broker's own last commit: stale bytes
                // (see fsio::Uncached) or a lock file rewritten by someone
                // else. Nothing it says can be trusted: check every file.
                tracing::warn!(
                    seen = g,
                    known = self.generation,
                    "the lock file's generation went backwards; rescanning"
                );
                if let Err(e) = self.rescan(&mut reload, true) {
                    return self.fail_group(group, e);
                }
                moved = true;
            }
            Ok(g) if g != self.generation => {
                // The journal names what the missed generations changed;
                // without it (or when it cannot cover the gap), scan all.
                let names = locks.changed_since(self.generation, g);
                match &names {
                    Some(n) => tracing::info!(
                        seen = g,
                        known = self.generation,
                        files = n.len(),
                        "another process changed the directories; catching up from the change journal"
                    ),
                    None => tracing::info!(
                        seen = g,
                        known = self.generation,
                        "another process changed the directories; no journal covers the gap, rescanning"
                    ),
                }
                let caught_up = match names {
                    Some(names) => self.reconcile(names, &mut reload),
                    None => self.rescan(&mut reload, true),
                };
                if let Err(e) = caught_up {
                    return self.fail_group(group, e);
                }
                self.generation = g;
                moved = true;
            }
            Ok(_) => {
                // Same generation, but the lock file's mtime moved since
                // this writer let go of the lock: another broker committed
                // (a second signal, in case one of them is ever misread):
                // check the files.
                if locks.modified() != self.committed_at {
                    match self.rescan(&mut reload, true) {
                        Ok(n) => found_first = n,
                        Err(e) => return self.fail_group(group, e),
                    }
                    moved = true;
                }
            }
            Err(e) => return self.fail_group(group, e),
        }

        let mut touched = [false; 2];
        let mut answers = Vec::with_capacity(group.len());
        let mut early = prepare_group(config, &group);
        let mut changed: Vec<(Kind, String)> = Vec::new();
        for request in group {
            match request {
                // Its client was already answered (the store stalled):
                // not applying it keeps that answer true.
                Request::Apply { reply, .. } if reply.is_closed() => {}
                Request::Apply { ops, actor, reply } => {
                    let result = self.apply(&ops, &actor, &mut touched, &mut early, &mut changed);
                    answers.push(Answer::Apply(reply, result));
                }
                Request::Refresh {
                    reply,
                    suspects,
                    listed_at,
                } => {
                    if let Some(at) = listed_at {
                        baseline = at;
                    }
                    let result = match suspects {
                        Some(s) => self.reconcile(s, &mut reload),
                        None => self.rescan(&mut reload, false),
                    }
                    // What the check above already found counts as found
                    // by this refresh (it asked because of them).
                    .map(|n| n + std::mem::take(&mut found_first))
                    .map_err(StoreError::from);
                    answers.push(Answer::Refresh(reply, result));
                }
                Request::CatchUp { reply } => {
                    let _ = reply.send(Ok(moved));
                }
            }
        }

        drop(early); // unused temp files, removed while the locks are held
        let mut fsync_error = None;
        for (i, kind) in [Kind::Host, Kind::Option].into_iter().enumerate() {
            if touched[i] {
                let started = std::time::Instant::now();
                let synced = fsio::fsync_dir(config.dir(kind));
                metrics
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                if let Err(e) = synced {
                    tracing::error!("{e}");
                    fsync_error = Some(e);
                }
            }
        }
        if touched.iter().any(|t| *t) {
            self.generation += 1;
            if let Err(e) = locks.commit(self.generation, &changed) {
                tracing::error!("{e}");
            }
        }
        // A written directory is noted as it is now: its mtime moved with
        // this group's own renames.
        self.committed_at = locks.modified();
        let now = scan::dir_mtimes(config);
        *self
            .shared
            .seen_mtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            [0, 1].map(|k| if touched[k] { now[k] } else { baseline[k] });
        drop(locks);

        for a in &answers {
            if let Answer::Apply(_, Ok(done)) = a {
                reload.needed |= done.needs_reload;
                reload.risky |= done.risky;
                if done.needs_reload {
                    reload.reason = "change";
                }
            }
        }
        let ticket = reload
            .needed
            .then(|| self.reloads.reload_needed(reload.reason, reload.risky));
        self.record(fsync_error.as_ref(), answers.len());

        for a in answers {
            match a {
                Answer::Apply(reply, result) => {
                    let result = match (result, &fsync_error) {
                        (Ok(_), Some(e)) => Err(OpError {
                            index: 0,
                            error: StoreError::from(e.duplicate()),
                        }),
                        (Ok(mut done), None) => {
                            if done.needs_reload {
                                done.applied.reload_ticket = ticket;
                            }
                            Ok(done.applied)
                        }
                        (Err(e), _) => Err(e),
                    };
                    let _ = reply.send(result);
                }
                Answer::Refresh(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn record(&self, error: Option<&FsError>, requests: usize) {
        let mut stats = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.commits += 1;
        stats.requests += requests as u64;
        stats.last_error = error.map(|e| e.to_string());
    }

    fn fail_group(&self, group: Vec<Request>, e: FsError) {
        tracing::error!("{e}");
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = Some(e.to_string());
        for request in group {
            let err = || StoreError::from(e.duplicate());
            match request {
                Request::Apply { reply, .. } => {
                    let _ = reply.send(Err(OpError {
                        index: 0,
                        error: err(),
                    }));
                }
                Request::CatchUp { reply } => {
                    let _ = reply.send(Err(err()));
                }
                Request::Refresh { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
            }
        }
    }

    /// Brings the index in line with the directories and handles what
    /// others changed. Each change goes through the reload policy like a
    /// change of our own: a file dnsmasq may read without a reload is
    /// rewritten with the same bytes (renamed over itself) so this node's
    /// inotify reads it — another node's write raises no event here;
    /// anything else schedules a reload.
    /// With `clean`, stale temp files are removed — only before the group's
    /// own temp files exist (see [`prepare_group`]).
    fn rescan(&mut self, reload: &mut GroupReload, clean: bool) -> Result<u64, FsError> {
        let suspects = scan::suspects(&self.shared.config, &self.shared.index, clean)?;
        self.reconcile(suspects, reload)
    }

    /// [`Writer::rescan`] for the files in `suspects` only (stat'ed and read
    /// again here, under the lock); the index is updated in place, so no
    /// second index is ever built.
    fn reconcile(
        &mut self,
        suspects: Vec<(Kind, String)>,
        reload: &mut GroupReload,
    ) -> Result<u64, FsError> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let mut dirs = Vec::new();
        for kind in [Kind::Host, Kind::Option] {
            let dir = config.dir(kind);
            dirs.push(std::fs::File::open(dir).map_err(|e| FsError::new("open", dir, e))?);
        }
        let mut extra = Vec::new();
        // Read concurrently (see scan::par_map), applied in order.
        let reads = scan::par_map(&suspects, 16, |(kind, file)| {
            scan::read_file(&dirs[*kind as usize], *kind, file)
        });
        let mut found: Vec<Found> = suspects
            .into_iter()
            .zip(reads)
            .map(|((kind, file), read)| {
                let new = read.entry;
                extra.push((kind, read.problems, read.unparsed));
                (kind, file, new, read.stamp)
            })
            .collect();
        let reloads = self.reloads.clone();
        let _quiet = reloads.hold_reloads();
        let mut changes = 0u64;
        let mut risky = false;
        let mut reread = 0u64;
        {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            for (kind, file, new, stamp) in &mut found {
                let kind = *kind;
                let old = index.get(kind, file);
                let changed = match (old, &*new) {
                    (Some(o), Some(n)) => o.etag != n.etag,
                    (None, None) => false,
                    _ => true,
                };
                if !changed {
                    continue;
                }
                let Some(name) = new
                    .as_ref()
                    .map(|n| n.name.clone())
                    .or_else(|| old.map(|o| o.name.clone()))
                else {
                    continue;
                };
                if let Some(o) = old {
                    risky |= has_set_tags(&o.spec());
                }
                let pending = PendingChange {
                    kind,
                    name: &name,
                    replaces: old.is_some() || index.unparsed(kind, &name).is_some(),
                    new: new.as_ref(),
                    external: true,
                };
                let mut how = reloads.plan(&index, &pending);
                if let Some(new) = new.as_ref() {
                    let dir = config.dir(kind);
                    let done = !how.needs_reload
                        && how.placement == Placement::Now
                        && stamp.is_some_and(|stamp| {
                            fsio::reread(
                                dir,
                                name.as_str(),
                                new.text.as_bytes(),
                                config.file_mode,
                                stamp,
                            )
                            .unwrap_or_else(|e| {
                                tracing::warn!("{e}");
                                false
                            })
                        });
                    if done {
                        reread += 1;
                        if let Ok(meta) = std::fs::metadata(dir.join(name.as_str())) {
                            *stamp = Some(super::Stamp::of(&meta));
                        }
                    } else {
                        // Perhaps read by dnsmasq, perhaps not: the reload tells.
                        how.placement = Placement::AtReload;
                        how.needs_reload = true;
                    }
                }
                reloads.placed(&index, &pending, &how);
                reload.needed |= how.needs_reload;
                changes += 1;
            }
        }
        {
            let mut index = self.shared.index.write().unwrap_or_else(|p| p.into_inner());
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
            risky |= index.any_set_tags();
        }
        if changes > 0 {
            tracing::info!(
                changes,
                served_without_reload = reread,
                "external changes found in the directories"
            );
            if reload.needed {
                reload.risky |= risky;
                reload.reason = "external";
            }
        }
        let mut stats = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.rescans += 1;
        stats.external_changes += changes;
        crate::metrics::get().external_changes.inc_by(changes);
        Ok(changes)
    }

    fn apply(
        &mut self,
        ops: &[Op],
        actor: &str,
        touched: &mut [bool; 2],
        early: &mut Early,
        changed: &mut Vec<(Kind, String)>,
    ) -> Result<Done, OpError> {
        let plan = {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            plan(&index, ops)?
        };
        let shared = self.shared.clone();
        let config = &shared.config;

        // Phase 1: every new file written and fsynced as a dotfile.
        let mut prepared = Vec::new();
        for change in &plan.changes {
            if let Some(new) = &change.new {
                let ready = early
                    .remove(&(change.kind, change.name.clone()))
                    .filter(|(text, _)| **text == *new.text);
                if let Some((_, p)) = ready {
                    prepared.push(Some(p));
                    continue;
                }
                let dir = config.dir(change.kind);
                let started = std::time::Instant::now();
                let p = fsio::prepare(
                    dir,
                    new.name.as_str(),
                    new.text.as_bytes(),
                    config.file_mode,
                )
                .map_err(|e| OpError {
                    index: change.op,
                    error: e.into(),
                })?;
                crate::metrics::get()
                    .write_seconds
                    .observe(started.elapsed().as_secs_f64());
                prepared.push(Some(p));
            } else {
                prepared.push(None);
            }
        }

        // Phase 2: wait out legacy writers holding a file we replace.
        let mut legacy_locks = Vec::new();
        for change in plan.changes.iter().filter(|c| c.replaces) {
            let path = config.dir(change.kind).join(change.name.as_str());
            match fsio::wait_for_legacy_lock(&path, config.legacy_lock_timeout) {
                Ok(f) => legacy_locks.push(f),
                Err(e) => {
                    return Err(OpError {
                        index: change.op,
                        error: e.into(),
                    })
                }
            }
        }

        // Phase 3: renames and removals, then the index. Never while dnsmasq
        // is re-reading the directories: a file vanishing between its
        // listing and its open makes it log "cannot read". The reload policy
        // decides, change by change, whether dnsmasq may read the new
        // version at once (rename) or only at the reload (link).
        let reloads = self.reloads.clone();
        let quiet = reloads.hold_reloads();
        let mut failed = None;
        let mut needs_reload = false;
        {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            for (change, p) in plan.changes.iter().zip(prepared) {
                let dir = config.dir(change.kind);
                let pending = PendingChange {
                    kind: change.kind,
                    name: &change.name,
                    replaces: change.replaces,
                    new: change.new.as_ref(),
                    external: false,
                };
                let how = reloads.plan(&index, &pending);
                // Named before it is tried: a part-way failure still tells
                // other brokers to look at it.
                changed.push((change.kind, change.name.to_string()));
                let result = match (p, how.placement, change.replaces) {
                    (Some(p), Placement::Now, _) => p.create(),
                    (Some(p), Placement::AtReload, true) => p.replace(),
                    (Some(p), Placement::AtReload, false) => p.link_new(),
                    (None, _, _) => fsio::remove(dir, change.name.as_str()),
                };
                if let Err(e) = result {
                    failed = Some((change.op, e));
                    break;
                }
                reloads.placed(&index, &pending, &how);
                tracing::debug!(kind = %change.kind, name = %change.name, placement = ?how.placement, needs_reload = how.needs_reload, "{}", how.reason);
                needs_reload |= how.needs_reload;
                touched[change.kind as usize] = true;
            }
        }
        drop(legacy_locks);
        if let Some((op, e)) = failed {
            drop(quiet);
            tracing::error!(
                "a commit failed part-way: {e}; rescanning so the index matches the directories"
            );
            let _ = self.rescan(&mut GroupReload::default(), false);
            return Err(OpError {
                index: op,
                error: e.into(),
            });
        }

        // Stat before taking the index's write lock: readers must never
        // wait on the filesystem.
        let stamps: Vec<Option<super::Stamp>> = plan
            .changes
            .iter()
            .map(|c| {
                c.new.as_ref().and_then(|_| {
                    std::fs::metadata(config.dir(c.kind).join(c.name.as_str()))
                        .ok()
                        .map(|m| super::Stamp::of(&m))
                })
            })
            .collect();
        let mut index = self.shared.index.write().unwrap_or_else(|p| p.into_inner());
        let mut risky = false;
        let (mut written, mut removed) = (0u64, 0u64);
        for (change, stamp) in plan.changes.iter().zip(stamps) {
            if change.replaces {
                // An unparsable host file's tags are unknown: assume the worst.
                risky |= change
                    .old
                    .as_ref()
                    .map_or(change.kind == Kind::Host, |o| has_set_tags(&o.spec()));
            }
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
        risky |= index.any_set_tags();
        drop(index);
        drop(quiet);
        {
            let mut stats = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.files_written += written;
            stats.files_removed += removed;
        }
        for o in &plan.outcomes {
            if o.status != Status::Unchanged {
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
        }
        Ok(Done {
            applied: Applied {
                outcomes: plan.outcomes,
                reload_ticket: None,
            },
            needs_reload,
            risky,
        })
    }
}

/// A file looked at again: its kind and name, the entry it holds now (if
/// any) and its stamp.
type Found = (Kind, String, Option<Arc<Entry>>, Option<super::Stamp>);

/// Temp files written and fsynced for a group before its requests are
/// applied, by kind and name, with their contents.
type Early = HashMap<(Kind, Name), (String, fsio::Prepared)>;

/// Writes and fsyncs the temp file of every entry the group's requests put,
/// concurrently (the filesystem commits concurrent fsyncs together), so the
/// requests applied one by one afterwards only rename. Called under the
/// directory locks, so no other broker's start-up or rescan removes the temp
/// files as stale. A file that cannot be prepared here, or whose contents are
/// not what its request finally writes (a name put twice in one group), is
/// prepared again by the request, which then reports any error.
fn prepare_group(config: &super::StoreConfig, group: &[Request]) -> Early {
    let mut items: Vec<(Kind, Name, String)> = Vec::new();
    for request in group {
        let Request::Apply { ops, .. } = request else {
            continue;
        };
        for op in ops {
            match op {
                Op::Put { name, spec, .. } => {
                    items.push((spec.kind(), name.clone(), spec.render()))
                }
                Op::Sync {
                    kind, items: all, ..
                } => items.extend(
                    all.iter()
                        .map(|(name, spec)| (*kind, name.clone(), spec.render())),
                ),
                Op::Delete { .. } => {}
            }
        }
    }
    if items.len() < 2 {
        return Early::new();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = items.len().min(16);
    let done: Vec<Vec<(usize, fsio::Prepared)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((kind, name, text)) = items.get(i) else {
                            break;
                        };
                        let started = std::time::Instant::now();
                        if let Ok(p) = fsio::prepare(
                            config.dir(*kind),
                            name.as_str(),
                            text.as_bytes(),
                            config.file_mode,
                        ) {
                            crate::metrics::get()
                                .write_seconds
                                .observe(started.elapsed().as_secs_f64());
                            out.push((i, p));
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut items: Vec<Option<(Kind, Name, String)>> = items.into_iter().map(Some).collect();
    let mut early = Early::new();
    for (i, p) in done.into_iter().flatten() {
        if let Some((kind, name, text)) = items[i].take() {
            // The first request putting a name gets the file.
            early.entry((kind, name)).or_insert((text, p));
        }
    }
    early
}

enum Answer {
    Apply(
        oneshot::Sender<Result<Applied, OpError>>,
        Result<Done, OpError>,
    ),
    Refresh(
        oneshot::Sender<Result<u64, StoreError>>,
        Result<u64, StoreError>,
    ),
}
