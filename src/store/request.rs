//! What the store's handles send its writer ([`Request`]), and the
//! hand-over of a request between the writer and a client that may stop
//! waiting ([`Claim`]).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::scan::Listed;
use super::{Applied, Op, OpError, StoreError};

/// A message to the writer.
pub(crate) enum Request {
    /// Apply ops all-or-nothing.
    Apply {
        ops: Vec<Op>,
        actor: String,
        claim: Arc<Claim>,
        reply: oneshot::Sender<Result<Applied, OpError>>,
    },
    /// Compare the index with the directories (external changes): the
    /// files a stat pass found (`None`: every file).
    Refresh {
        listed: Option<Listed>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Catch up with other brokers' commits (from the change journal, or a
    /// full scan if it cannot cover the gap); answered after the group.
    CatchUp {
        reply: oneshot::Sender<Result<CaughtUp, StoreError>>,
    },
    /// Finish what was queued before this, then stop.
    Stop { done: oneshot::Sender<()> },
}

/// What a catch-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaughtUp {
    /// Another broker had committed; its changes are in the index now.
    Moved,
    /// No broker committed, but a directory changed since this broker
    /// last looked: a writer that takes no lock (a stat pass finds what).
    Changed,
    /// Nothing changed but this broker's own writes.
    Unchanged,
}

/// Who has a request: still queued, taken by the writer, or withdrawn by a
/// client that stopped waiting. Whoever moves it out of "queued" first
/// decides what the client is told.
#[derive(Debug, Default)]
pub(crate) struct Claim(AtomicU8);

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

impl Claim {
    /// The writer takes it; false when its client already withdrew it.
    pub(crate) fn take(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The client withdraws it; false when the writer already took it (the
    /// outcome is then unknown).
    pub(crate) fn withdraw(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// True once the writer took it.
    pub(crate) fn taken(&self) -> bool {
        self.0.load(Ordering::Acquire) == TAKEN
    }
}
