//! The store's values: which directory ([`Kind`]), what an entry means
//! ([`Spec`]), what is on disk ([`Entry`], [`Etag`]), what is asked of the
//! store ([`Op`], [`Precondition`]) and what it did ([`Outcome`],
//! [`Applied`]). Plain data: nothing here touches the disk.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::index;
use crate::entry::{HostSpec, Name, OptionsSpec};

/// Which directory an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A `dhcp-host` line in the hosts directory.
    Host,
    /// `dhcp-option` lines in the options directory.
    Option,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Host => "host",
            Kind::Option => "option",
        })
    }
}

/// A validated entry of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A host entry.
    Host(HostSpec),
    /// An options entry.
    Options(OptionsSpec),
}

impl Spec {
    /// Which directory it belongs in.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Host(_) => Kind::Host,
            Spec::Options(_) => Kind::Option,
        }
    }

    /// The canonical file contents.
    pub fn render(&self) -> String {
        match self {
            Spec::Host(h) => h.render(),
            Spec::Options(o) => o.render(),
        }
    }

    /// Parses existing file contents as this kind.
    pub fn parse_file(kind: Kind, bytes: &[u8]) -> Result<Spec, crate::entry::EntryError> {
        match kind {
            Kind::Host => HostSpec::parse_file(bytes).map(Spec::Host),
            Kind::Option => OptionsSpec::parse_file(bytes).map(Spec::Options),
        }
    }

    /// True when the entry sets or matches `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        match self {
            Spec::Host(h) => h.set_tags().iter().chain(h.match_tags()).any(|t| t == tag),
            Spec::Options(o) => o
                .options()
                .iter()
                .any(|opt| opt.tags.iter().any(|t| t == tag)),
        }
    }
}

/// The strong validator of a file: SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Etag([u8; 32]);

impl Etag {
    /// Hashes file contents.
    pub fn of(bytes: &[u8]) -> Etag {
        Etag(Sha256::digest(bytes).into())
    }

    /// The HTTP form: the lowercase hex digest in double quotes.
    pub fn quoted(&self) -> String {
        format!("\"{self}\"")
    }

    /// Parses the HTTP form (quotes required, as for any strong ETag).
    pub fn parse_quoted(s: &str) -> Option<Etag> {
        let hex = s.trim().strip_prefix('"')?.strip_suffix('"')?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(Etag(out))
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Etag({self})")
    }
}

/// One entry as it is on disk.
///
/// Kept compact, because the index holds one per file (100,000s): the
/// file's text and its hash, not the parsed spec. [`Entry::spec`] parses
/// the text again when asked (a few microseconds: the grammar is pure, and
/// the text parsed when the entry was made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: Name,
    /// The file's exact contents (not always canonical when written by others).
    pub text: Box<str>,
    /// SHA-256 of `text`.
    pub etag: Etag,
    kind: Kind,
    /// The spec, only for the (never yet seen) case of a canonical
    /// rendering that does not parse back to its spec.
    pinned: Option<Box<Spec>>,
    /// How its file looked on disk when last read or written (the index's
    /// to note and read; see [`Index::stamp`]).
    pub(crate) stamp: index::StampCell,
}

impl Entry {
    /// An entry whose file holds the canonical rendering of `spec`.
    pub fn canonical(name: Name, spec: Spec) -> Entry {
        let text = spec.render();
        let etag = Etag::of(text.as_bytes());
        let kind = spec.kind();
        let round_trips = Spec::parse_file(kind, text.as_bytes()).is_ok_and(|p| p == spec);
        if !round_trips {
            tracing::error!(name = %name, "the canonical line does not parse back to its spec; keeping the spec");
        }
        Entry {
            name,
            text: text.into_boxed_str(),
            etag,
            kind,
            pinned: (!round_trips).then(|| Box::new(spec)),
            stamp: Default::default(),
        }
    }

    /// An entry for a file's contents `text`, which the caller parsed
    /// successfully as `kind` (its `etag` computed from the same bytes).
    pub(crate) fn read(name: Name, kind: Kind, text: String, etag: Etag) -> Entry {
        Entry {
            name,
            text: text.into_boxed_str(),
            etag,
            kind,
            pinned: None,
            stamp: Default::default(),
        }
    }

    /// Which directory it is in.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// What the file means.
    pub fn spec(&self) -> Spec {
        match &self.pinned {
            Some(spec) => (**spec).clone(),
            None => Spec::parse_file(self.kind, self.text.as_bytes())
                .expect("an entry's text parsed when the entry was made, and parsing is pure"),
        }
    }
}

/// The entity tags an `If-Match` or `If-None-Match` lists (RFC 9110).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// `*`: any current file.
    Any,
    /// These ETags. Tags of another form (weak for `If-Match`, or not this
    /// API's) can never match and are left out, so the list may be empty.
    List(Vec<Etag>),
}

impl Tags {
    fn contains(&self, etag: Etag) -> bool {
        match self {
            Tags::Any => true,
            Tags::List(v) => v.contains(&etag),
        }
    }
}

impl fmt::Display for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tags::Any => f.write_str("*"),
            Tags::List(v) if v.is_empty() => f.write_str("(no ETag of this API)"),
            Tags::List(v) => {
                let quoted: Vec<String> = v.iter().map(Etag::quoted).collect();
                f.write_str(&quoted.join(", "))
            }
        }
    }
}

/// A condition on the current file, checked under the lock: RFC 9110's
/// `If-Match` (strong comparison) and `If-None-Match` (weak comparison,
/// which for this API's strong ETags is the same), evaluated in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    /// Apply only if the current file has one of these ETags (`*`: if there
    /// is one).
    pub if_match: Option<Tags>,
    /// Apply only if the current file has none of these ETags (`*`: only if
    /// there is none, i.e. create only).
    pub if_none_match: Option<Tags>,
}

impl Precondition {
    /// Apply whatever is there.
    pub const NONE: Precondition = Precondition {
        if_match: None,
        if_none_match: None,
    };

    /// `If-Match: "<etag>"`.
    pub fn if_match(etag: Etag) -> Precondition {
        Precondition {
            if_match: Some(Tags::List(vec![etag])),
            if_none_match: None,
        }
    }

    /// `If-None-Match: *`: create only.
    pub fn if_absent() -> Precondition {
        Precondition {
            if_match: None,
            if_none_match: Some(Tags::Any),
        }
    }

    /// `If-Match: *`: replace only.
    pub fn if_exists() -> Precondition {
        Precondition {
            if_match: Some(Tags::Any),
            if_none_match: None,
        }
    }

    /// Why the condition fails for a file whose ETag is `current` (`None`:
    /// no file), or `None` when it holds.
    pub fn violated_by(&self, current: Option<Etag>) -> Option<String> {
        if let Some(tags) = &self.if_match {
            match current {
                None => {
                    return Some(format!(
                        "it does not exist, so it cannot match If-Match {tags}"
                    ))
                }
                Some(e) if !tags.contains(e) => {
                    return Some(format!(
                        "it has ETag {}, which is not among the If-Match values {tags}",
                        e.quoted()
                    ))
                }
                Some(_) => {}
            }
        }
        if let (Some(tags), Some(e)) = (&self.if_none_match, current) {
            if tags.contains(e) {
                return Some(match tags {
                    Tags::Any => format!(
                        "it already exists (ETag {}) and If-None-Match: * asks to create only",
                        e.quoted()
                    ),
                    Tags::List(_) => format!(
                        "it has ETag {}, which If-None-Match {tags} excludes",
                        e.quoted()
                    ),
                });
            }
        }
        None
    }
}

/// One change requested of the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create or replace `name` with `spec`.
    Put {
        /// The entry name.
        name: Name,
        /// The new contents.
        spec: Spec,
        /// Its condition.
        precondition: Precondition,
    },
    /// Remove `name`.
    Delete {
        /// Which directory.
        kind: Kind,
        /// The entry name.
        name: Name,
        /// Its condition.
        precondition: Precondition,
    },
    /// Make the entries of `kind` whose names start with `prefix` exactly
    /// `items` (a conductor's resync), in one step.
    Sync {
        /// Which directory.
        kind: Kind,
        /// The name prefix that delimits the set.
        prefix: String,
        /// The wanted entries; all names start with `prefix`.
        items: Vec<(Name, Spec)>,
    },
}

/// What a request did to one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new file was written.
    Created,
    /// An existing file was replaced with other bytes.
    Replaced,
    /// The same bytes were already there; nothing was written.
    Unchanged,
    /// The file was removed.
    Deleted,
}

/// What happened to one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which directory.
    pub kind: Kind,
    /// The entry name.
    pub name: Name,
    /// What was done.
    pub status: Status,
    /// The entry now on disk (`None` after a delete).
    pub entry: Option<Arc<Entry>>,
    /// The ETag of the file before the request, if there was one.
    pub old_etag: Option<Etag>,
}

/// The result of a successful request.
#[derive(Debug, Clone)]
pub struct Applied {
    /// One outcome per name touched, in op order.
    pub outcomes: Vec<Outcome>,
    /// Set when the request needs a reload: waiting for this ticket waits for
    /// a reload that covers it.
    pub reload_ticket: Option<u64>,
}

/// One value per directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dirs<T> {
    /// For the hosts directory.
    pub(crate) host: T,
    /// For the options directory.
    pub(crate) option: T,
}

impl<T> Dirs<T> {
    /// Both values made by `f`.
    pub(crate) fn from_fn(mut f: impl FnMut(Kind) -> T) -> Dirs<T> {
        Dirs {
            host: f(Kind::Host),
            option: f(Kind::Option),
        }
    }

    /// The value for `kind`.
    pub(crate) fn get(&self, kind: Kind) -> &T {
        match kind {
            Kind::Host => &self.host,
            Kind::Option => &self.option,
        }
    }

    /// The value for `kind`, to change.
    pub(crate) fn get_mut(&mut self, kind: Kind) -> &mut T {
        match kind {
            Kind::Host => &mut self.host,
            Kind::Option => &mut self.option,
        }
    }
}

impl Dirs<bool> {
    /// True for either directory.
    pub(crate) fn any(&self) -> bool {
        self.host || self.option
    }

    /// Or'ed with `other`, per directory.
    pub(crate) fn or(self, other: Dirs<bool>) -> Dirs<bool> {
        Dirs {
            host: self.host || other.host,
            option: self.option || other.option,
        }
    }
}
