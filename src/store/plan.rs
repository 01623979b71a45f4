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

#[cfg(test)]
mod tests {
    //! The planner over an index built in memory: no filesystem.

    use super::*;
    use crate::entry::{HostSpec, OptionsSpec};

    fn host(line: &str) -> Spec {
        Spec::Host(HostSpec::parse_line(line).unwrap())
    }

    fn name(n: &str) -> Name {
        Name::parse(n).unwrap()
    }

    fn index_with(entries: &[(&str, &str)]) -> Index {
        let mut index = Index::default();
        for (n, line) in entries {
            index.insert(Arc::new(Entry::canonical(name(n), host(line))));
        }
        index
    }

    fn put(n: &str, line: &str, precondition: Precondition) -> Op {
        Op::Put {
            name: name(n),
            spec: host(line),
            precondition,
        }
    }

    fn delete(n: &str) -> Op {
        Op::Delete {
            kind: Kind::Host,
            name: name(n),
            precondition: Precondition::NONE,
        }
    }

    #[test]
    fn create_replace_and_same_bytes() {
        let index = index_with(&[("a", "52:54:00:00:00:01")]);
        let p = plan(
            &index,
            &[
                put("a", "52:54:00:00:00:01", Precondition::NONE),
                put("b", "52:54:00:00:00:02", Precondition::NONE),
            ],
        )
        .unwrap();
        assert_eq!(p.outcomes[0].status, Status::Unchanged);
        assert_eq!(p.outcomes[1].status, Status::Created);
        assert_eq!(p.changes.len(), 1, "same bytes change nothing on disk");
        assert_eq!(p.changes[0].name.as_str(), "b");
        assert!(!p.changes[0].replaces);

        let p = plan(
            &index,
            &[put("a", "52:54:00:00:00:01,set:x", Precondition::NONE)],
        )
        .unwrap();
        assert_eq!(p.outcomes[0].status, Status::Replaced);
        assert!(p.changes[0].replaces);
        assert!(p.changes[0].old.is_some());
    }

    #[test]
    fn preconditions_are_checked_against_the_current_file() {
        let index = index_with(&[("a", "52:54:00:00:00:01")]);
        let etag = index.get(Kind::Host, "a").unwrap().etag;
        let ok = plan(
            &index,
            &[put(
                "a",
                "52:54:00:00:00:01,set:y",
                Precondition::if_match(etag),
            )],
        );
        assert!(ok.is_ok());
        let other = Etag::of(b"something else");
        let err = plan(
            &index,
            &[put(
                "a",
                "52:54:00:00:00:01,set:y",
                Precondition::if_match(other),
            )],
        )
        .err()
        .unwrap();
        assert!(matches!(err.error, StoreError::Precondition(_)));
        let err = plan(
            &index,
            &[put("a", "52:54:00:00:00:01", Precondition::if_absent())],
        )
        .err()
        .unwrap();
        assert!(matches!(err.error, StoreError::Precondition(_)));
        let err = plan(
            &index,
            &[put("new", "52:54:00:00:00:09", Precondition::if_exists())],
        )
        .err()
        .unwrap();
        assert!(matches!(err.error, StoreError::Precondition(_)));
        // An empty If-Match list matches nothing.
        let never = Precondition {
            if_match: Some(crate::store::Tags::List(vec![])),
            if_none_match: None,
        };
        assert!(plan(&index, &[put("a", "52:54:00:00:00:01,set:z", never)]).is_err());
    }

    #[test]
    fn one_entry_per_mac_names_the_holder_and_the_op() {
        let index = index_with(&[("a", "52:54:00:00:00:01")]);
        let err = plan(
            &index,
            &[
                put("x", "52:54:00:00:00:05", Precondition::NONE),
                put("b", "52:54:00:00:00:01", Precondition::NONE),
            ],
        )
        .err()
        .unwrap();
        assert_eq!(err.index, 1, "the failing op is named by position");
        match err.error {
            StoreError::Conflict { field, holder, .. } => {
                assert_eq!(field, "macs");
                assert_eq!(holder, "a");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_mac_may_move_between_entries_in_one_request_removals_first() {
        let index = index_with(&[("a", "52:54:00:00:00:01")]);
        let p = plan(
            &index,
            &[
                put("b", "52:54:00:00:00:01", Precondition::NONE),
                delete("a"),
            ],
        )
        .unwrap();
        let order: Vec<_> = p
            .changes
            .iter()
            .map(|c| (c.name.as_str(), c.new.is_some()))
            .collect();
        assert_eq!(order, [("a", false), ("b", true)], "the removal goes first");
    }

    #[test]
    fn a_name_twice_in_one_request_and_deleting_nothing_are_refused() {
        let index = index_with(&[]);
        let err = plan(
            &index,
            &[
                put("a", "52:54:00:00:00:01", Precondition::NONE),
                put("a", "52:54:00:00:00:02", Precondition::NONE),
            ],
        )
        .err()
        .unwrap();
        assert!(matches!(err.error, StoreError::Repeated { .. }));
        let err = plan(&index, &[delete("nope")]).err().unwrap();
        assert!(matches!(err.error, StoreError::NotFound { .. }));
    }

    #[test]
    fn a_sync_makes_the_prefix_exactly_its_items() {
        let index = index_with(&[
            ("p-1", "52:54:00:00:00:01"),
            ("p-2", "52:54:00:00:00:02"),
            ("q-1", "52:54:00:00:00:03"),
        ]);
        let p = plan(
            &index,
            &[Op::Sync {
                kind: Kind::Host,
                prefix: "p-".into(),
                items: vec![
                    (name("p-2"), host("52:54:00:00:00:02")),
                    (name("p-3"), host("52:54:00:00:00:04")),
                ],
            }],
        )
        .unwrap();
        let mut statuses: Vec<_> = p
            .outcomes
            .iter()
            .map(|o| (o.name.as_str().to_string(), o.status))
            .collect();
        statuses.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            statuses,
            [
                ("p-1".to_string(), Status::Deleted),
                ("p-2".to_string(), Status::Unchanged),
                ("p-3".to_string(), Status::Created)
            ]
        );
        assert!(
            p.changes.iter().all(|c| c.name.as_str() != "q-1"),
            "outside the prefix: untouched"
        );
    }

    #[test]
    fn options_entries_have_no_uniqueness_rule() {
        let mut index = Index::default();
        let opts = |l: &str| Spec::Options(OptionsSpec::parse_file(l.as_bytes()).unwrap());
        index.insert(Arc::new(Entry::canonical(
            name("o1"),
            opts("tag:t,67,a.efi\n"),
        )));
        let p = plan(
            &index,
            &[Op::Put {
                name: name("o2"),
                spec: opts("tag:t,67,a.efi\n"),
                precondition: Precondition::NONE,
            }],
        )
        .unwrap();
        assert_eq!(p.outcomes[0].status, Status::Created);
    }
}
