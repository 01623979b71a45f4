//! The one thread that changes the directories.
//!
//! Requests arrive over a channel. The writer takes whatever is queued (up to
//! `max_group`) as one group and commits it in phases:
//! 1. **catch up** — take the directory locks and, if another broker
//!    committed since, bring the index up to date ([`super::lock`]);
//! 2. **prepare** — write and fsync every new file of the group as a
//!    dotfile, concurrently;
//! 3. **apply** — each request in order ([`super::apply`]), the first one
//!    that changes anything announcing the group's names to other brokers
//!    first; refreshes asked by the watcher ([`super::reconcile`]);
//! 4. **publish** — one fsync per directory written, then let go of the
//!    locks;
//! 5. **answer** — one reload request for the group, then every reply.
//!
//! Under load this turns N fsyncs of the directory into one (group commit)
//! without delaying a lone request.
//!
//! What a client is told is only what is known: a request that failed
//! before any of its files was in place is "nothing written"; one whose
//! files were in place when something failed (a rename part-way, the
//! directory fsync) is "outcome unknown". A client that stops waiting (the
//! store stalled) withdraws its request unless the writer already took it
//! ([`Claim`]).
//!
//! If the thread panics anyway, the store is marked dead: every later
//! request is refused at once and the server exits, so the supervisor
//! restarts the broker, rather than answering 503 forever.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::oneshot;

use super::apply::{self, Done, Early};
use super::fsio::OpenDirs;
use super::lock::Locks;
use super::place::ReloadNeed;
use super::pool::Pool;
use super::reconcile;
use super::request::{CaughtUp, Request};
use super::scan;
use super::types::Dirs;
use super::{Applied, FsError, Kind, Op, OpError, ReloadSink, Shared, StoreError};
use crate::sync::LockOrRecover;

/// Temp files a group writes at once, at most.
const PREPARE_THREADS: usize = 16;

/// Starts the writer thread.
/// `generation` and `committed_at` are the lock file as the start-up scan
/// found it.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    generation: u64,
    committed_at: Option<SystemTime>,
    reloads: Arc<dyn ReloadSink>,
) -> Sender<Request> {
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = Writer {
        shared,
        held: None,
        generation,
        reloads,
        pool: Pool::new("store-prepare", PREPARE_THREADS),
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
    /// The directory lock, kept after a group while more requests come
    /// (see [`Held`]).
    held: Option<Held>,
    /// The generation this broker last saw in (or wrote to) the lock file.
    generation: u64,
    reloads: Arc<dyn ReloadSink>,
    /// Threads that write a group's temp files at once.
    pool: Pool,
    /// The lock file's mtime when this writer last let go of the lock.
    /// Every broker commit rewrites the generation in it, so a different
    /// mtime at the next group means another broker committed, whatever
    /// generation was read. Both are read past this node's caches (see
    /// `lock`): on ceph-fuse, cached reads of either missed other brokers'
    /// commits (a MAC then written into a second file, 4 runs in 25 of the
    /// racing CephFS test; none in 75 since). Changes by writers that take
    /// no lock are the watcher's to find, off this thread (see
    /// `Shared::seen_mtimes`): a full stat pass here, under the lock, would
    /// stall every write for as long.
    committed_at: Option<SystemTime>,
}

/// The directory lock, kept from one group to the next while requests keep
/// coming: a client writing one entry after another then pays the lock
/// (a `flock` and its release per directory: four metadata round trips on
/// CephFS, two thirds of a lone write's) and the catch-up check once per
/// lease instead of once per write. Let go of after `lock_linger` without
/// a request, and after `lock_max_hold` in any case, so that another
/// broker, waiting in the lock's queue, gets its turn.
struct Held {
    locks: Locks,
    /// When it was taken.
    since: std::time::Instant,
    /// A new generation was stored during this lease: later groups only
    /// add journal records under it.
    announced: bool,
    /// The directories, opened once per lease: every file operation of
    /// the lease is made relative to them (see [`super::fsio::Dir`]).
    dirs: OpenDirs,
}

/// One group commit: its requests and what became of them.
#[derive(Default)]
struct Group {
    answers: Vec<Answer>,
    /// Reload needs of the catch-up and of refreshes.
    reload: ReloadNeed,
    /// The directories the group changed.
    wrote: Dirs<bool>,
    /// Changes the catch-up found by the lock file's mtime, credited to
    /// the group's first refresh (it asked because of them).
    found_first: u64,
    /// Another broker had committed (answer to `CatchUp`).
    moved: bool,
    /// The directories' mtimes the index reflects, for the ones the group
    /// does not write: from before anything was listed, so a change made
    /// meanwhile by a writer that takes no lock still differs at the next
    /// poll.
    baseline: Dirs<Option<SystemTime>>,
    /// The directories' mtimes when the group started: other than what
    /// the previous group left, someone else changed them (`CaughtUp`).
    started: Dirs<Option<SystemTime>>,
    /// The names the group may change were announced to other brokers.
    announced: bool,
    /// A `Stop` request, answered once the group is done.
    stop: Option<oneshot::Sender<()>>,
    /// `CatchUp` requests, answered once the group's own writes are noted.
    catch_ups: Vec<oneshot::Sender<Result<CaughtUp, StoreError>>>,
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

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        let max = self.shared.config.max_group.max(1);
        while let Some(first) = self.next_request(&rx) {
            let mut requests = vec![first];
            while requests.len() < max {
                match rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            // Anything below may block in the filesystem (a dead node on a
            // shared one): the store reports it as stalled meanwhile.
            self.shared
                .set_busy(Some("taking the directory lock and writing"));
            // Every call of a group may wait on CephFS's metadata server
            // (the lock file, the directories, files other clients just
            // wrote): nudge it when the group is slow (see `store::nudge`).
            let nudger = self.shared.nudger.clone();
            let watch = nudger.watch();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.commit_group(requests)
            }));
            drop(watch);
            self.shared.set_busy(None);
            match ran {
                Ok(Some(done)) => {
                    self.release();
                    let _ = done.send(());
                    break;
                }
                Ok(None) => {
                    let config = &self.shared.config;
                    if self
                        .held
                        .as_ref()
                        .is_some_and(|h| h.since.elapsed() >= config.lock_max_hold)
                    {
                        // Another broker's turn: it waits in the lock's
                        // queue, ahead of this writer's next request.
                        self.release();
                        std::thread::yield_now();
                    }
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    self.shared.mark_dead(format!(
                        "the store's writer thread stopped ({what}); the broker exits so that it is restarted"
                    ));
                    return;
                }
            }
        }
        self.release();
        tracing::debug!("store writer stopped");
    }

    /// The next request: waited for as long as it comes, but while the
    /// directory lock is held only for the lease's linger (then the lock is
    /// let go and the wait goes on). `None` once every handle is gone.
    fn next_request(&mut self, rx: &Receiver<Request>) -> Option<Request> {
        use std::sync::mpsc::RecvTimeoutError;
        if let Some(held) = &self.held {
            let config = &self.shared.config;
            let left = config.lock_max_hold.saturating_sub(held.since.elapsed());
            match rx.recv_timeout(config.lock_linger.min(left)) {
                Ok(r) => return Some(r),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => self.release(),
            }
        }
        rx.recv().ok()
    }

    /// Lets go of the directory lock, if held, noting the lock file's
    /// mtime as this writer leaves it.
    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            self.committed_at = held.locks.modified();
            drop(held);
            self.shared
                .holding
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// Commits one group; answers the `Stop` it held, if any.
    fn commit_group(&mut self, requests: Vec<Request>) -> Option<oneshot::Sender<()>> {
        let shared = self.shared.clone();
        let metrics = crate::metrics::get();
        metrics.group_size.observe(requests.len() as f64);
        // What the directories look like as the group starts: stat'ed when
        // the lock is taken afresh or a refresh or catch-up asks (someone
        // else may have changed them); in the middle of a lease, with only
        // writes queued, what the previous group left (two `stat`s less per
        // write: on a network filesystem, round trips).
        let looks = self.held.is_none()
            || requests
                .iter()
                .any(|r| matches!(r, Request::Refresh { .. } | Request::CatchUp { .. }));
        let now = if looks {
            scan::dir_mtimes(&shared.config)
        } else {
            *shared.seen_mtimes.lock_or_recover()
        };
        let mut group = Group {
            baseline: now,
            started: now,
            ..Group::default()
        };
        let mut held = match self.held.take() {
            // Nobody else can have committed while this writer held the lock.
            Some(h) => h,
            None => match self.lock_and_catch_up(&mut group) {
                Ok(locks) => {
                    self.shared.progress();
                    self.shared
                        .holding
                        .store(true, std::sync::atomic::Ordering::Release);
                    Held {
                        locks,
                        since: std::time::Instant::now(),
                        announced: false,
                        dirs: OpenDirs::default(),
                    }
                }
                Err(e) => return fail_all(&shared, requests, &e),
            },
        };
        let ops = || {
            requests.iter().filter_map(|r| match r {
                Request::Apply { ops, .. } => Some(ops.as_slice()),
                _ => None,
            })
        };
        let mut early = apply::prepare_group(&shared, &mut held.dirs, &self.pool, ops());
        shared.progress();
        let names = apply::names_touched(&shared, ops());
        for request in requests {
            self.run_request(request, &mut held, &mut group, &mut early, &names);
        }
        drop(early); // unused temp files, removed while the locks are held
        let synced = self.publish(&mut held, &mut group);
        self.held = Some(held);
        self.answer(group, synced)
    }

    /// Phase 1: takes the locks and catches up with other brokers' commits.
    fn lock_and_catch_up(&mut self, group: &mut Group) -> Result<Locks, FsError> {
        let waited = std::time::Instant::now();
        let mut locks = Locks::acquire(&self.shared.config)?;
        crate::metrics::get()
            .lock_wait_seconds
            .observe(waited.elapsed().as_secs_f64());
        let g = locks.generation()?;
        if g < self.generation {
            // Older than this broker's own last commit: stale bytes (see
            // lock::file::Uncached) or a lock file rewritten by someone
            // else. Nothing it says can be trusted: check every file.
            tracing::warn!(
                seen = g,
                known = self.generation,
                "the lock file's generation went backwards; rescanning"
            );
            self.rescan(&mut group.reload, true)?;
            group.moved = true;
        } else if g != self.generation {
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
            match names {
                Some(names) => {
                    reconcile::reconcile(&self.shared, &*self.reloads, names, &mut group.reload)?
                }
                None => self.rescan(&mut group.reload, true)?,
            };
            self.generation = g;
            group.moved = true;
        } else if locks.modified() != self.committed_at {
            // Same generation, but the lock file's mtime moved since this
            // writer let go of the lock: another broker committed (a second
            // signal, in case one of them is ever misread).
            group.found_first = self.rescan(&mut group.reload, true)?;
            group.moved = true;
        }
        Ok(locks)
    }

    /// Phase 3, one request.
    fn run_request(
        &mut self,
        request: Request,
        held: &mut Held,
        group: &mut Group,
        early: &mut Early,
        names: &[(Kind, String)],
    ) {
        match request {
            Request::Apply {
                ops,
                actor,
                claim,
                reply,
            } => {
                // Withdrawn by its client (the store stalled): not applying
                // it keeps that client's answer true.
                if !claim.take() {
                    return;
                }
                self.kill_switch(&ops);
                // Other brokers learn the names before any of them changes:
                // the lease's first group stores a new generation, later
                // ones add journal records under it.
                let generation = &mut self.generation;
                let mut announce = || {
                    if group.announced {
                        return Ok(());
                    }
                    if held.announced {
                        held.locks.record(*generation, names);
                    } else {
                        held.locks.commit(*generation + 1, names)?;
                        *generation += 1;
                        held.announced = true;
                    }
                    group.announced = true;
                    Ok(())
                };
                let shared = self.shared.clone();
                let result = apply::apply(
                    &shared,
                    &*self.reloads,
                    &ops,
                    &actor,
                    early,
                    &mut held.dirs,
                    &mut announce,
                );
                let result = match result {
                    Ok(done) => {
                        group.wrote = group.wrote.or(done.wrote);
                        Ok(done)
                    }
                    Err(failed) => {
                        if failed.rescan {
                            // Part of it is in place: the index must say
                            // what is, and what the rescan finds needs its
                            // reload like any other change.
                            group.wrote = Dirs::from_fn(|_| true);
                            if let Err(e) = self.rescan(&mut group.reload, false) {
                                tracing::error!("rescanning after a failed commit: {e}");
                            }
                        }
                        Err(failed.error)
                    }
                };
                group.answers.push(Answer::Apply(reply, result));
            }
            Request::Refresh { listed, reply } => {
                let result = match listed {
                    Some(listed) => {
                        group.baseline = listed.mtimes;
                        reconcile::clean_leftovers(
                            &self.shared,
                            &listed.leftovers,
                            self.shared.config.lock_timeout,
                        );
                        reconcile::reconcile(
                            &self.shared,
                            &*self.reloads,
                            listed.changed,
                            &mut group.reload,
                        )
                    }
                    None => self.rescan(&mut group.reload, false),
                }
                .map(|n| n + std::mem::take(&mut group.found_first))
                .map_err(StoreError::from);
                group.answers.push(Answer::Refresh(reply, result));
            }
            Request::CatchUp { reply } => group.catch_ups.push(reply),
            Request::Stop { done } => group.stop = Some(done),
        }
    }

    /// Phase 4: one fsync per directory written; notes what the directories
    /// look like now. Answers the directories whose fsync failed. (The
    /// locks are let go of by the caller, after the lease.)
    fn publish(&mut self, held: &mut Held, group: &mut Group) -> Dirs<Option<FsError>> {
        let config = &self.shared.config;
        let metrics = crate::metrics::get();
        let _watch = self.shared.nudger.watch();
        let mut synced = Dirs::default();
        let mut now = group.baseline;
        for kind in [Kind::Host, Kind::Option] {
            if !*group.wrote.get(kind) {
                continue;
            }
            let started = std::time::Instant::now();
            let result = held.dirs.get(config, kind).and_then(|dir| dir.sync());
            metrics
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64());
            // A written directory is noted as it is now: its mtime moved
            // with this group's own renames.
            match result {
                Ok(mtime) => *now.get_mut(kind) = mtime,
                Err(e) => {
                    tracing::error!("{e}");
                    *synced.get_mut(kind) = Some(e);
                    *now.get_mut(kind) = None;
                }
            }
        }
        let before = std::mem::replace(
            &mut *self.shared.seen_mtimes.lock_or_recover(),
            Dirs::from_fn(|k| {
                if *group.wrote.get(k) {
                    *now.get(k)
                } else {
                    *group.baseline.get(k)
                }
            }),
        );
        // Between the previous group and this one, only others can have
        // changed the directories.
        let caught_up = if group.moved {
            CaughtUp::Moved
        } else if group.started != before {
            CaughtUp::Changed
        } else {
            CaughtUp::Unchanged
        };
        for reply in group.catch_ups.drain(..) {
            let _ = reply.send(Ok(caught_up));
        }
        synced
    }

    /// Phase 5: asks for the group's reload and answers every request.
    fn answer(&self, group: Group, synced: Dirs<Option<FsError>>) -> Option<oneshot::Sender<()>> {
        let mut need = group.reload;
        for a in &group.answers {
            if let Answer::Apply(_, Ok(done)) = a {
                need.add(done.needs_reload, done.risky, "change");
            }
        }
        let ticket = need
            .needed
            .then(|| self.reloads.reload_needed(need.reason, need.risky));
        {
            let mut stats = self.shared.stats.lock_or_recover();
            stats.commits += 1;
            stats.requests += group.answers.len() as u64;
            stats.last_error = [&synced.host, &synced.option]
                .into_iter()
                .flatten()
                .next()
                .map(|e| e.to_string());
        }
        for a in group.answers {
            match a {
                Answer::Apply(reply, result) => {
                    let result = result.and_then(|mut done| {
                        // Its files are in place; were they made durable?
                        let failed = [Kind::Host, Kind::Option]
                            .into_iter()
                            .filter(|k| *done.wrote.get(*k))
                            .find_map(|k| synced.get(k).as_ref());
                        if let Some(e) = failed {
                            return Err(OpError {
                                index: 0,
                                error: StoreError::unknown(
                                    e,
                                    "the directory could not be synced after the change",
                                ),
                            });
                        }
                        if done.needs_reload {
                            done.applied.reload_ticket = ticket;
                        }
                        Ok(done.applied)
                    });
                    let _ = reply.send(result);
                }
                Answer::Refresh(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
        group.stop
    }

    fn rescan(&mut self, need: &mut ReloadNeed, clean: bool) -> Result<u64, FsError> {
        reconcile::rescan(&self.shared, &*self.reloads, need, clean)
    }

    /// A test hook ([`super::StoreConfig::kill_writer_on`]): the writer
    /// panics when asked to put that name, so tests can check what happens
    /// when it dies (see `Shared::mark_dead`). Unset in production.
    fn kill_switch(&self, ops: &[Op]) {
        let Some(name) = &self.shared.config.kill_writer_on else {
            return;
        };
        if ops
            .iter()
            .any(|op| matches!(op, Op::Put { name: n, .. } if n.as_str() == name))
        {
            panic!("the writer was told to die on `{name}` (a test hook)");
        }
    }
}

/// Answers every request of a group that could not start (the locks could
/// not be taken, or catching up failed): nothing was written. Answers the
/// group's `Stop`, if any, like [`Writer::commit_group`].
fn fail_all(shared: &Shared, requests: Vec<Request>, e: &FsError) -> Option<oneshot::Sender<()>> {
    tracing::error!("{e}");
    shared.stats.lock_or_recover().last_error = Some(e.to_string());
    let mut stop = None;
    for request in requests {
        let err = || StoreError::from(e.duplicate());
        match request {
            Request::Apply { reply, claim, .. } => {
                if claim.take() {
                    let _ = reply.send(Err(OpError {
                        index: 0,
                        error: err(),
                    }));
                }
            }
            Request::CatchUp { reply } => {
                let _ = reply.send(Err(err()));
            }
            Request::Refresh { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Request::Stop { done } => stop = Some(done),
        }
    }
    stop
}
