//! Deciding what a request does, before anything is written: every op is
//! checked against the index (with the effects of the request's earlier ops
//! overlaid), its precondition evaluated, the one-entry-per-MAC/IP rule
//! applied to the state the whole request leaves behind, and the file
//! changes listed. Pure: it reads an [`Index`] and returns a [`Plan`], so
//! it is tested without a filesystem.

use std::collections::HashMap;
use std::sync::Arc;

use super::index::keys_of;
use super::{
    Entry, Etag, Index, Key, Kind, Op, OpError, Outcome, Precondition, Spec, Status, StoreError,
};
use crate::entry::Name;

/// One file to write or remove.
pub(super) struct Change {
    /// The op that asked for it (for error positions).
    pub(super) op: usize,
    pub(super) kind: Kind,
    pub(super) name: Name,
    /// What is on disk now (`None` also for an unparsable file).
    pub(super) old: Option<Arc<Entry>>,
    /// A file exists under the name now (parsed or not): the change is a
    /// replace or a removal, which dnsmasq only sees after a reload.
    pub(super) replaces: bool,
    /// What will be (`None`: remove).
    pub(super) new: Option<Arc<Entry>>,
}

/// What a request does: its answer per name, and the files to change.
pub(super) struct Plan {
    /// One outcome per name the request touches, in op order.
    pub(super) outcomes: Vec<Outcome>,
    /// The files to write or remove: removals first.
    pub(super) changes: Vec<Change>,
}

/// Per name touched by a request: the op that last touched it, and the
/// entry it will have (`None`: removed).
type Touched = HashMap<(Kind, Name), (usize, Option<Arc<Entry>>)>;

/// The index as it will be after the ops checked so far.
struct Overlay<'a> {
    index: &'a Index,
    entries: Touched,
}

impl<'a> Overlay<'a> {
    fn current(&self, kind: Kind, name: &Name) -> Option<Arc<Entry>> {
        match self.entries.get(&(kind, name.clone())) {
            Some((_, e)) => e.clone(),
            None => self.index.get(kind, name.as_str()).cloned(),
        }
    }

    /// The ETag of whatever file is under `name`, parsed or not.
    fn current_etag(&self, kind: Kind, name: &Name) -> Option<Etag> {
        match self.entries.get(&(kind, name.clone())) {
            Some((_, e)) => e.as_ref().map(|e| e.etag),
            None => self
                .index
                .get(kind, name.as_str())
                .map(|e| e.etag)
                .or_else(|| self.index.unparsed(kind, name).map(|u| u.etag)),
        }
    }

    fn set(&mut self, op: usize, kind: Kind, name: Name, new: Option<Arc<Entry>>) {
        self.entries.insert((kind, name), (op, new));
    }

    /// One entry per MAC / IP, checked on the state the whole request leaves
    /// behind, so a request may move an address from one entry to another.
    fn check_unique(&self) -> Result<(), OpError> {
        let mut claims: HashMap<Key, &Name> = HashMap::new();
        let mut touched: Vec<_> = self
            .entries
            .iter()
            .filter(|((k, _), _)| *k == Kind::Host)
            .collect();
        touched.sort_by_key(|(_, (op, _))| *op);
        for ((_, name), (op, entry)) in touched {
            let Some(entry) = entry else { continue };
            // An entry left as it is on disk is not re-judged (files written
            // by others may already clash; status lists that).
            let unchanged = self
                .index
                .get(Kind::Host, name.as_str())
                .is_some_and(|e| e.text == entry.text);
            for key in keys_of(&entry.spec()) {
                if unchanged {
                    claims.entry(key).or_insert(name);
                    continue;
                }
                let holder = match claims.get(&key) {
                    Some(n) => Some(*n),
                    None => self
                        .index
                        .holder(&key)
                        .filter(|h| !self.entries.contains_key(&(Kind::Host, (*h).clone()))),
                };
                if let Some(holder) = holder.filter(|h| *h != name) {
                    return Err(OpError {
                        index: *op,
                        error: StoreError::Conflict {
                            field: key.field(),
                            value: key.to_string(),
                            holder: holder.to_string(),
                        },
                    });
                }
                claims.insert(key, name);
            }
        }
        Ok(())
    }
}

fn precondition_holds(
    pre: &Precondition,
    kind: Kind,
    name: &Name,
    current: Option<Etag>,
) -> Result<(), StoreError> {
    match pre.violated_by(current) {
        None => Ok(()),
        Some(why) => Err(StoreError::Precondition(format!(
            "{kind} entry `{name}`: {why}"
        ))),
    }
}

/// Checks every op against the index and decides the file changes.
pub(super) fn plan(index: &Index, ops: &[Op]) -> Result<Plan, OpError> {
    let mut overlay = Overlay {
        index,
        entries: HashMap::new(),
    };
    let mut outcomes = Vec::new();
    let at = |index: usize| move |error: StoreError| OpError { index, error };
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Put {
                name,
                spec,
                precondition,
            } => {
                let o = put(&mut overlay, i, name, spec, precondition).map_err(at(i))?;
                outcomes.push(o);
            }
            Op::Delete {
                kind,
                name,
                precondition,
            } => {
                let o = delete(&mut overlay, i, *kind, name, precondition).map_err(at(i))?;
                outcomes.push(o);
            }
            Op::Sync {
                kind,
                prefix,
                items,
            } => {
                let wanted: HashMap<&Name, &Spec> = items.iter().map(|(n, s)| (n, s)).collect();
                for name in index.names_with_prefix(*kind, prefix) {
                    if !wanted.contains_key(&name) {
                        outcomes.push(
                            delete(&mut overlay, i, *kind, &name, &Precondition::NONE)
                                .map_err(at(i))?,
                        );
                    }
                }
                for (name, spec) in items {
                    outcomes.push(
                        put(&mut overlay, i, name, spec, &Precondition::NONE).map_err(at(i))?,
                    );
                }
            }
        }
    }
    overlay.check_unique()?;
    let mut changes: Vec<Change> = overlay
        .entries
        .into_iter()
        .filter_map(|((kind, name), (op, new))| {
            let old = index.get(kind, name.as_str()).cloned();
            let replaces = old.is_some() || index.unparsed(kind, &name).is_some();
            let same = match (&old, &new) {
                (Some(o), Some(n)) => o.text == n.text,
                (None, None) => !replaces,
                _ => false,
            };
            (!same).then_some(Change {
                op,
                kind,
                name,
                old,
                replaces,
                new,
            })
        })
        .collect();
    // Removals first, so a MAC moving between entries is never on disk twice.
    changes.sort_by_key(|c| (c.new.is_some(), c.op));
    Ok(Plan { outcomes, changes })
}

fn put(
    overlay: &mut Overlay<'_>,
    op: usize,
    name: &Name,
    spec: &Spec,
    pre: &Precondition,
) -> Result<Outcome, StoreError> {
    let kind = spec.kind();
    if overlay.entries.contains_key(&(kind, name.clone())) {
        return Err(StoreError::Repeated {
            kind,
            name: name.to_string(),
        });
    }
    let current = overlay.current(kind, name);
    let current_etag = overlay.current_etag(kind, name);
    precondition_holds(pre, kind, name, current_etag)?;
    let new = Arc::new(Entry::canonical(name.clone(), spec.clone()));
    if let Some(cur) = &current {
        if cur.text == new.text {
            overlay.set(op, kind, name.clone(), Some(cur.clone()));
            return Ok(Outcome {
                kind,
                name: name.clone(),
                status: Status::Unchanged,
                entry: Some(cur.clone()),
                old_etag: Some(cur.etag),
            });
        }
    }
    overlay.set(op, kind, name.clone(), Some(new.clone()));
    Ok(Outcome {
        kind,
        name: name.clone(),
        status: if current_etag.is_some() {
            Status::Replaced
        } else {
            Status::Created
        },
        entry: Some(new),
        old_etag: current_etag,
    })
}

fn delete(
    overlay: &mut Overlay<'_>,
    op: usize,
    kind: Kind,
    name: &Name,
    pre: &Precondition,
) -> Result<Outcome, StoreError> {
    if overlay.entries.contains_key(&(kind, name.clone())) {
        return Err(StoreError::Repeated {
            kind,
            name: name.to_string(),
        });
    }
    let current = overlay.current_etag(kind, name);
    precondition_holds(pre, kind, name, current)?;
    let Some(etag) = current else {
        return Err(StoreError::NotFound {
            kind,
            name: name.to_string(),
        });
    };
    overlay.set(op, kind, name.clone(), None);
    Ok(Outcome {
        kind,
        name: name.clone(),
        status: Status::Deleted,
        entry: None,
        old_etag: Some(etag),
    })
}
