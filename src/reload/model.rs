//! What dnsmasq holds in memory, and what each change therefore needs.
//!
//! Between two SIGHUPs dnsmasq only ever *adds* records: every file it reads
//! through inotify is parsed and prepended, a deleted file's records stay,
//! and a replaced file's old records stay behind the new one. The broker
//! keeps that picture so it can tell, change by change, whether dnsmasq
//! already serves the directory as it is (no reload), or not yet (reload):
//!
//! - a name is *clean* when dnsmasq holds exactly one record for it, the
//!   file's current version. That is the store's [`Index`] itself, so clean
//!   names cost nothing here;
//! - a name is *dirty* when dnsmasq holds other records for it: older
//!   versions (shadowed or not), a deleted file's records, or when the file
//!   on disk was placed for the reload and not read yet. Only dirty names
//!   are kept, with the records dnsmasq read from them since the last
//!   reload, oldest first;
//! - a *ghost* is a record dnsmasq holds that is not the current version of
//!   its file. Ghosts cost dnsmasq memory, keep their addresses reserved,
//!   and (when not shadowed) keep serving stale answers.
//!
//! A delivered reload (or a dnsmasq restart) makes every name clean again.
//! At start-up the broker assumes dnsmasq holds the directory as it is (a
//! supervised dnsmasq is started by the broker; for one started earlier,
//! changes made behind its back before the broker started are unknown
//! until the first reload — see docs/reload-rules.md).
//!
//! The decision per change (the table in docs/reload-rules.md) is [`Model::plan`]; the
//! shadowing rules themselves are in [`super::shadow`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::shadow;
use crate::entry::Name;
use crate::store::{ChangePlan, Entry, Index, Key, Kind, PendingChange, Placement};

/// Records dnsmasq holds for one dirty name.
#[derive(Debug)]
struct Dirty {
    /// Records read from this name since the last reload, oldest first.
    loaded: Vec<Arc<Entry>>,
    /// Whether the version on disk now (if any) is the last of `loaded`.
    current_read: bool,
    /// When the name first became dirty.
    since: Instant,
}

impl Dirty {
    fn ghosts(&self) -> usize {
        self.loaded.len() - usize::from(self.current_read && !self.loaded.is_empty())
    }
}

/// The MACs and addresses a loaded record holds.
fn held_keys(e: &Entry) -> impl Iterator<Item = Key> {
    let spec = e.spec();
    shadow::macs(&spec)
        .into_iter()
        .chain(shadow::addresses(&spec))
}

/// The picture of dnsmasq's memory (see the module doc).
#[derive(Debug, Default)]
pub struct Model {
    dirty: HashMap<(Kind, Name), Dirty>,
    /// MACs and addresses held by the loaded records of dirty names.
    keys: HashMap<Key, Vec<(Kind, Name)>>,
    ghosts: usize,
}

/// Counters shown in status and metrics.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ModelStats {
    /// Records dnsmasq holds that are not the current version of their file.
    pub ghosts: usize,
    /// Names whose records in dnsmasq differ from the file.
    pub dirty_names: usize,
    /// Age of the oldest dirty name, in milliseconds.
    pub oldest_ms: Option<u64>,
}

impl ModelStats {
    /// Whether a cleanup reload is due: more than `max_ghosts` ghosts, or
    /// one older than `max_age`, once the directories were `quiet` for a
    /// while — at once past twice the threshold.
    pub fn cleanup_due(
        &self,
        max_ghosts: usize,
        max_age: std::time::Duration,
        quiet: bool,
    ) -> bool {
        let too_many = self.ghosts > max_ghosts;
        let too_old = self.ghosts > 0
            && self
                .oldest_ms
                .is_some_and(|ms| u128::from(ms) >= max_age.as_millis());
        (too_many || too_old) && (quiet || self.ghosts > 2 * max_ghosts)
    }
}

impl Model {
    /// The records dnsmasq holds for a name. `None` when unknown (a file
    /// the broker cannot parse).
    fn loaded<'a>(
        &'a self,
        index: &'a Index,
        kind: Kind,
        name: &Name,
    ) -> Option<Vec<&'a Arc<Entry>>> {
        match self.dirty.get(&(kind, name.clone())) {
            Some(d) => Some(d.loaded.iter().collect()),
            None if index.unparsed(kind, name).is_some() => None,
            None => Some(index.get(kind, name.as_str()).into_iter().collect()),
        }
    }

    /// Does any record dnsmasq holds have `key` (a MAC or an address)?
    /// Returns the names holding it.
    fn holders<'a>(&'a self, index: &'a Index, key: &Key) -> Vec<(Kind, &'a Name)> {
        let mut out: Vec<(Kind, &Name)> = self
            .keys
            .get(key)
            .map(|v| v.iter().map(|(k, n)| (*k, n)).collect())
            .unwrap_or_default();
        if let Some(n) = index.holder(key) {
            if !self.dirty.contains_key(&(Kind::Host, n.clone())) {
                out.push((Kind::Host, n));
            }
        }
        out
    }

    /// Decides how a change is placed and whether it needs a reload.
    pub fn plan(&self, index: &Index, c: &PendingChange<'_>) -> ChangePlan {
        let Some(own) = self.loaded(index, c.kind, c.name) else {
            // What dnsmasq made of a file the broker cannot parse is unknown.
            return ChangePlan {
                placement: Placement::AtReload,
                needs_reload: true,
                reason: "the file it replaces does not parse",
            };
        };
        let Some(new) = c.new else {
            return ChangePlan {
                placement: Placement::Now,
                needs_reload: !own.is_empty(),
                reason: if own.is_empty() {
                    "dnsmasq never read the removed file"
                } else {
                    "a removal"
                },
            };
        };
        let new_spec = new.spec();
        // Does the new record hide every record dnsmasq holds for this name?
        let hides_own = own
            .iter()
            .try_for_each(|old| shadow::shadows(&new_spec, &old.spec()));
        // dnsmasq refuses a record whose IPv4 address a record it holds has.
        // It never compares IPv6 addresses: the file's own older versions
        // may keep one when the new record hides them (the same address
        // then puts both in the same subnets). Any other holder waits for
        // the reload: two live records with one address compete for it.
        let blocked = |a: &Key| {
            self.holders(index, a).into_iter().any(|(kind, name)| {
                let own_hidden = kind == c.kind && name == c.name && hides_own.is_ok();
                shadow::refused_when_held(a) || !own_hidden
            })
        };
        if shadow::addresses(&new_spec).iter().any(blocked) {
            return ChangePlan {
                placement: Placement::AtReload,
                needs_reload: true,
                reason: "an address of the new record is held by a record dnsmasq still has",
            };
        }
        // A hostname-only record is found by dnsmasq's hostname retry only
        // if the first record with that name has no MAC and no client-id: a
        // ghost with the name hides it until the reload.
        if let Some(name) = shadow::name_only_key(&new_spec) {
            let ghost_named = self.dirty.values().flat_map(|d| &d.loaded).any(|e| {
                !Arc::ptr_eq(e, new) && shadow::hostname_key(&e.spec()).as_deref() == Some(&name)
            });
            if ghost_named {
                return ChangePlan {
                    placement: Placement::Now,
                    needs_reload: true,
                    reason:
                        "a record dnsmasq still holds has the hostname of this hostname-only record",
                };
            }
        }
        // Every record dnsmasq holds for this name, or for one of the new
        // record's MACs under another name, must be hidden by the new one.
        if let Err(why) = hides_own {
            return ChangePlan {
                placement: Placement::Now,
                needs_reload: true,
                reason: why,
            };
        }
        for mac in shadow::macs(&new_spec) {
            for (kind, holder) in self.holders(index, &mac) {
                if holder == c.name {
                    continue;
                }
                let others = self.loaded(index, kind, holder).unwrap_or_default();
                for old in others {
                    if let Err(why) = shadow::shadows(&new_spec, &old.spec()) {
                        return ChangePlan {
                            placement: Placement::Now,
                            needs_reload: true,
                            reason: why,
                        };
                    }
                }
            }
        }
        ChangePlan {
            placement: Placement::Now,
            needs_reload: false,
            reason: if own.is_empty() {
                "a new record"
            } else {
                "the new record shadows the old one"
            },
        }
    }

    /// Records a change that was made as `plan` said. `index` is the index
    /// as it was before the change.
    pub fn record(&mut self, index: &Index, c: &PendingChange<'_>, plan: &ChangePlan) {
        let key = (c.kind, c.name.clone());
        let mut d = match self.dirty.remove(&key) {
            Some(d) => {
                self.forget_keys(&key, &d);
                self.ghosts -= d.ghosts();
                d
            }
            None => Dirty {
                loaded: index
                    .get(c.kind, c.name.as_str())
                    .cloned()
                    .into_iter()
                    .collect(),
                current_read: true,
                since: Instant::now(),
            },
        };
        match (c.new, plan.placement) {
            (Some(new), Placement::Now) => {
                d.loaded.push(new.clone());
                d.current_read = true;
            }
            _ => d.current_read = false,
        }
        let clean = d.current_read && d.loaded.len() == 1;
        let gone = !d.current_read && d.loaded.is_empty() && c.new.is_none();
        if clean || gone {
            return;
        }
        self.ghosts += d.ghosts();
        for e in &d.loaded {
            for k in held_keys(e) {
                let v = self.keys.entry(k).or_default();
                if !v.contains(&key) {
                    v.push(key.clone());
                }
            }
        }
        self.dirty.insert(key, d);
    }

    fn forget_keys(&mut self, key: &(Kind, Name), d: &Dirty) {
        for e in &d.loaded {
            for k in held_keys(e) {
                if let Some(v) = self.keys.get_mut(&k) {
                    v.retain(|x| x != key);
                    if v.is_empty() {
                        self.keys.remove(&k);
                    }
                }
            }
        }
    }

    /// dnsmasq re-read the directories: it holds exactly the files now.
    pub fn reloaded(&mut self) {
        self.dirty.clear();
        self.keys.clear();
        self.ghosts = 0;
    }

    /// Ghosts, dirty names and the oldest one's age.
    pub fn stats(&self) -> ModelStats {
        ModelStats {
            ghosts: self.ghosts,
            dirty_names: self.dirty.len(),
            oldest_ms: self
                .dirty
                .values()
                .map(|d| d.since)
                .min()
                .map(|t| t.elapsed().as_millis() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::HostSpec;
    use crate::store::Spec;

    fn entry(name: &str, line: &str) -> Arc<Entry> {
        Arc::new(Entry::canonical(
            Name::parse(name).unwrap(),
            Spec::Host(HostSpec::parse_line(line).unwrap()),
        ))
    }

    /// Plans and records one change, updating `index` like the writer does.
    fn change(model: &mut Model, index: &mut Index, name: &str, line: Option<&str>) -> ChangePlan {
        let n = Name::parse(name).unwrap();
        let new = line.map(|l| entry(name, l));
        let c = PendingChange {
            kind: Kind::Host,
            name: &n,
            replaces: index.get(Kind::Host, name).is_some(),
            new: new.as_ref(),
            external: false,
        };
        let plan = model.plan(index, &c);
        model.record(index, &c, &plan);
        match new {
            Some(e) => {
                index.insert(e);
            }
            None => {
                index.remove(Kind::Host, name);
            }
        }
        plan
    }

    const M1: &str = "52:54:00:00:00:01";
    const M2: &str = "52:54:00:00:00:02";

    #[test]
    fn shadowing_replaces_make_ghosts_without_reloads() {
        let (mut m, mut i) = (Model::default(), Index::default());
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},set:t1")));
        assert_eq!((p.placement, p.needs_reload), (Placement::Now, false));
        assert_eq!(m.stats().ghosts, 0);
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},set:t2")));
        assert_eq!((p.placement, p.needs_reload), (Placement::Now, false));
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},ignore")));
        assert!(!p.needs_reload);
        assert_eq!(m.stats().ghosts, 2);
        m.reloaded();
        assert_eq!(m.stats().ghosts, 0);
    }

    #[test]
    fn a_replace_must_hide_every_version_dnsmasq_holds() {
        let (mut m, mut i) = (Model::default(), Index::default());
        change(&mut m, &mut i, "a", Some(&format!("{M1},{M2},set:t1")));
        // Drops M2: read at once, but M2 keeps the old record until a reload.
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},set:t2")));
        assert_eq!((p.placement, p.needs_reload), (Placement::Now, true));
        // M2 back: this version hides every version dnsmasq holds again, so
        // it needs nothing itself (the previous change's reload is still due).
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},{M2},set:t3")));
        assert!(!p.needs_reload);
    }

    #[test]
    fn addresses_held_by_ghosts_wait_for_the_reload() {
        let (mut m, mut i) = (Model::default(), Index::default());
        change(&mut m, &mut i, "a", Some(&format!("{M1},10.0.0.5")));
        // Same address again: dnsmasq would refuse it until a reload.
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},10.0.0.5,h1")));
        assert_eq!((p.placement, p.needs_reload), (Placement::AtReload, true));
        let p = change(&mut m, &mut i, "a", None);
        assert!(p.needs_reload);
        let p = change(&mut m, &mut i, "b", Some(&format!("{M2},10.0.0.5")));
        assert_eq!((p.placement, p.needs_reload), (Placement::AtReload, true));
        m.reloaded();
        let p = change(&mut m, &mut i, "c", Some("52:54:00:00:00:03,10.0.0.6"));
        assert_eq!((p.placement, p.needs_reload), (Placement::Now, false));
    }

    #[test]
    fn the_same_ipv6_address_needs_no_reload_when_hidden() {
        let (mut m, mut i) = (Model::default(), Index::default());
        change(&mut m, &mut i, "a", Some(&format!("{M1},[fd00::5],set:t1")));
        // dnsmasq does not compare IPv6 addresses: read at once, hides the
        // old version.
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},[fd00::5],set:t2")));
        assert_eq!(
            (p.placement, p.needs_reload),
            (Placement::Now, false),
            "{}",
            p.reason
        );
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},[fd00::5],ignore")));
        assert_eq!(
            (p.placement, p.needs_reload),
            (Placement::Now, false),
            "{}",
            p.reason
        );
        assert_eq!(m.stats().ghosts, 2);
        // Not hidden (M1 dropped): the address waits for the reload.
        let p = change(&mut m, &mut i, "a", Some(&format!("{M2},[fd00::5],set:t3")));
        assert_eq!((p.placement, p.needs_reload), (Placement::AtReload, true));
        m.reloaded();
        // Another name's record holding the address: waits for the reload.
        change(&mut m, &mut i, "a", None);
        let p = change(&mut m, &mut i, "b", Some(&format!("{M1},[fd00::5],set:t1")));
        assert_eq!((p.placement, p.needs_reload), (Placement::AtReload, true));
        // IPv4: the same address is refused by dnsmasq, hidden or not.
        m.reloaded();
        change(
            &mut m,
            &mut i,
            "c",
            Some("52:54:00:00:00:03,10.0.0.7,set:t1"),
        );
        let p = change(
            &mut m,
            &mut i,
            "c",
            Some("52:54:00:00:00:03,10.0.0.7,set:t2"),
        );
        assert_eq!((p.placement, p.needs_reload), (Placement::AtReload, true));
    }

    #[test]
    fn a_hostname_only_record_named_like_a_ghost_waits_for_the_reload() {
        let (mut m, mut i) = (Model::default(), Index::default());
        change(&mut m, &mut i, "a", Some(&format!("{M1},set:x,h1")));
        let p = change(&mut m, &mut i, "a", Some(&format!("{M1},ignore")));
        assert!(!p.needs_reload, "{}", p.reason);
        // The ghost `M1,set:x,h1` answers dnsmasq's hostname retry for h1.
        let p = change(&mut m, &mut i, "x", Some("h1"));
        assert!(p.needs_reload, "{}", p.reason);
        let p = change(&mut m, &mut i, "y", Some("h2"));
        assert!(!p.needs_reload, "{}", p.reason);
    }

    #[test]
    fn a_mac_moved_from_a_deleted_entry_must_hide_its_ghost() {
        let (mut m, mut i) = (Model::default(), Index::default());
        change(&mut m, &mut i, "a", Some(&format!("{M1},id:01:02,set:x")));
        change(&mut m, &mut i, "a", None);
        // The ghost matches clients sending id 01:02 first: not hidden.
        let p = change(&mut m, &mut i, "b", Some(&format!("{M1},set:y")));
        assert!(p.needs_reload);
        m.reloaded();
        change(&mut m, &mut i, "c", Some(&format!("{M2},set:x")));
        change(&mut m, &mut i, "c", None);
        let p = change(&mut m, &mut i, "d", Some(&format!("{M2},set:y")));
        assert!(!p.needs_reload, "{}", p.reason);
    }

    #[test]
    fn cleanup_waits_for_quiet_unless_ghosts_pile_up() {
        let hour = std::time::Duration::from_secs(3600);
        let stats = |ghosts, oldest_ms| ModelStats {
            ghosts,
            dirty_names: ghosts,
            oldest_ms,
        };
        assert!(!stats(0, None).cleanup_due(10, hour, true));
        assert!(!stats(10, Some(0)).cleanup_due(10, hour, true));
        assert!(stats(11, Some(0)).cleanup_due(10, hour, true));
        assert!(
            !stats(11, Some(0)).cleanup_due(10, hour, false),
            "not while busy"
        );
        assert!(
            stats(21, Some(0)).cleanup_due(10, hour, false),
            "past twice the threshold"
        );
        assert!(
            stats(1, Some(3_600_000)).cleanup_due(10, hour, true),
            "too old"
        );
        assert!(!stats(1, Some(3_599_999)).cleanup_due(10, hour, true));
    }

    #[test]
    fn removing_a_file_dnsmasq_never_read_needs_nothing() {
        let (mut m, mut i) = (Model::default(), Index::default());
        change(&mut m, &mut i, "a", Some(&format!("{M1},10.0.0.5")));
        change(&mut m, &mut i, "a", None);
        // Placed for the reload (its address is a ghost's), then removed
        // before the reload: dnsmasq never read it.
        let p = change(&mut m, &mut i, "b", Some(&format!("{M2},10.0.0.5")));
        assert_eq!(p.placement, Placement::AtReload);
        let p = change(&mut m, &mut i, "b", None);
        assert!(!p.needs_reload, "{}", p.reason);
        assert_eq!(m.stats().dirty_names, 1, "only a's ghost is left");
    }
}
