//! Why a request was refused or failed, and what the client may assume
//! about the directories afterwards.
//!
//! Every variant but [`StoreError::Unknown`] means the entry is exactly as it
//! was: the failure came before anything the request changes became
//! visible. A failure after that (a rename part-way through a request, a
//! directory fsync that failed after the renames, a writer that stopped
//! while applying it) is `Unknown`: the change may be in place, and may not
//! be durable, so the client reads the entry back before it retries.

use std::io;
use std::path::PathBuf;

use super::Kind;

/// Why a request was refused or failed. Nothing was written unless the
/// variant is [`StoreError::Unknown`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entry does not exist.
    #[error("no {kind} entry named `{name}`")]
    NotFound {
        /// Which directory.
        kind: Kind,
        /// The name asked for.
        name: String,
    },
    /// `If-Match` / `If-None-Match` did not hold.
    #[error("{0}")]
    Precondition(String),
    /// A MAC or IP already belongs to another entry.
    #[error("{field} `{value}` already belongs to host entry `{holder}`")]
    Conflict {
        /// The API field ("macs", "ipv4", "ipv6").
        field: &'static str,
        /// The contested value.
        value: String,
        /// The entry that holds it.
        holder: String,
    },
    /// The disk is full.
    #[error("{0}")]
    NoSpace(FsError),
    /// The directory could not be locked or written.
    #[error("{0}")]
    Unavailable(FsError),
    /// The same entry is named twice in one request.
    #[error("{kind} entry `{name}` appears more than once in one request")]
    Repeated {
        /// Which directory.
        kind: Kind,
        /// The repeated name.
        name: String,
    },
    /// The directories stopped answering: the writer has been blocked in a
    /// filesystem call for a while (a dead node on a shared filesystem).
    /// The request was refused, or withdrawn before the writer took it.
    #[error("{0}")]
    Stalled(String),
    /// The request may have been applied, in part or whole, and may not be
    /// durable: read the entry back before retrying.
    #[error("{0}")]
    Unknown(String),
    /// The store's writer has stopped (the process exits so that it is
    /// restarted); the request was not taken.
    #[error("{0}")]
    WriterDead(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    ShuttingDown,
}

impl StoreError {
    /// The answer for a request whose changes failed part-way, or whose
    /// directory could not be made durable after its renames.
    pub(crate) fn unknown(e: &FsError, what: &str) -> StoreError {
        StoreError::Unknown(format!(
            "{what}: {e}; the change may be in place but is not known to be durable: read the \
             entry back before retrying"
        ))
    }
}

impl From<FsError> for StoreError {
    fn from(e: FsError) -> Self {
        if e.is_no_space() {
            StoreError::NoSpace(e)
        } else {
            StoreError::Unavailable(e)
        }
    }
}

/// A refused request: which op (by position) and why.
#[derive(Debug)]
pub struct OpError {
    /// Position of the failing op in the request.
    pub index: usize,
    /// What went wrong.
    pub error: StoreError,
}

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

    /// True when the error is "no space left on device" (or quota
    /// exceeded), also when only its kind is known (an error a library
    /// rebuilt without the OS error code).
    pub fn is_no_space(&self) -> bool {
        matches!(self.source.raw_os_error(), Some(28) | Some(122))
            || matches!(
                self.source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            )
    }
}
