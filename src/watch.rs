//! Noticing changes others make to the directories.
//!
//! Two sources, because neither is enough alone:
//! - inotify (`notify`) sees changes made through this kernel at once —
//!   a legacy writer on this node rewriting a file in place, say;
//! - polling sees changes made by other nodes of a network filesystem
//!   (CephFS, NFS), which never raise an event here. Each tick compares the
//!   directories' mtimes with what this broker last left them at (one
//!   `stat` per directory): a create, rename or unlink changes a directory's
//!   mtime, and CephFS shows it to other clients within milliseconds (NFS
//!   once its attribute cache for the directory expires, 30–60 s by
//!   default). An
//!   in-place rewrite (a legacy writer's `open(O_TRUNC)` + `write`) changes
//!   only the file's mtime, never the directory's, so every
//!   `--full-pass-every`th tick (60 by default) stats every file anyway.
//!
//! When the directories' mtimes moved because another broker committed
//! (the generation in the lock file moved), the writer re-reads just the
//! files the change journal names for the missed generations: O(changes).
//! A change made by a non-broker writer in the same interval is then found
//! by the next full pass rather than at once.
//!
//! Otherwise a suspected change is looked for off the writer thread and without the
//! directory lock: every file is stat'ed and compared with the stamp
//! (inode, size, mtime) the index holds; only when some differ does the
//! writer, under the lock, read just those files again, update the index in
//! place and schedule a reload for what dnsmasq cannot have seen. An idle
//! broker therefore costs two `stat`s per tick plus a stat pass per minute.

use std::path::Path;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::store::{CaughtUp, Kind, Store};

/// Starts watching; `None` when `interval` is zero (polling off) and the
/// inotify watch could not be set up either.
/// Every `full_pass_every`th poll tick (0: never) stats every file even if
/// the directories' mtimes did not move (in-place rewrites); a minute at
/// the default poll and `--full-pass-every 60`.
pub fn spawn(
    store: Store,
    interval: Duration,
    full_pass_every: u32,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let (tx, mut events) = mpsc::unbounded_channel::<()>();
    let watcher = inotify_watcher(&store, tx);
    if interval.is_zero() && watcher.is_none() {
        return None;
    }
    Some(tokio::spawn(async move {
        let _watcher = watcher; // dropping it stops the inotify thread
        let mut tick = 0u32;
        let poll = if interval.is_zero() {
            Duration::from_secs(3600)
        } else {
            interval
        };
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let full = tokio::select! {
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
                _ = ticker.tick() => {
                    tick = tick.wrapping_add(1);
                    !interval.is_zero()
                        && full_pass_every != 0
                        && tick.is_multiple_of(full_pass_every)
                }
                Some(()) = events.recv() => {
                    // Let a burst of events settle, then handle them once.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    while events.try_recv().is_ok() {}
                    true
                }
            };
            {
                let s = store.clone();
                let found = tokio::task::spawn_blocking(move || {
                    if full {
                        s.refresh_changed_blocking()
                    } else if !s.dirs_changed_elsewhere() {
                        Ok(0)
                    } else {
                        match s.catch_up_blocking()? {
                            // Another broker's commits, read from the
                            // journal; or only this broker's own.
                            CaughtUp::Moved | CaughtUp::Unchanged => Ok(0),
                            CaughtUp::Changed => s.refresh_changed_blocking(),
                        }
                    }
                })
                .await
                .unwrap_or(Ok(0));
                match found {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(changes = n, "picked up changes made outside the broker")
                    }
                    Err(e) => {
                        tracing::warn!("could not check the directories for outside changes: {e}")
                    }
                }
            }
        }
    }))
}

/// An inotify watch on both directories that signals content writes to
/// non-dot files (this broker only ever renames into place, so such an
/// event is always someone else's write).
fn inotify_watcher(
    store: &Store,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        let foreign = matches!(
            event.kind,
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write
            )) | EventKind::Modify(notify::event::ModifyKind::Data(_))
                | EventKind::Remove(_)
        );
        let visible = event.paths.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        });
        if foreign && visible {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("inotify is unavailable, relying on polling: {e}");
            return None;
        }
    };
    for kind in [Kind::Host, Kind::Option] {
        let dir: &Path = store.config().dir(kind);
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), "cannot watch the directory, relying on polling: {e}");
        }
    }
    Some(watcher)
}
