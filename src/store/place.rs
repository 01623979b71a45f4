//! Putting one change on disk the way the reload policy wants it.
//!
//! The writer and the reload model take turns for every change, whether it
//! is a client's ([`super::apply`]) or one found in the directories
//! ([`super::reconcile`]): the policy plans it against the index as it is
//! ([`ReloadSink::plan`]), the file operation is made, and the policy is
//! told it was placed ([`ReloadSink::placed`]) — or not told, when the file
//! operation failed. [`place`] is that exchange, written once.

use super::fsio::PlaceError;
use super::index::has_set_tags;
use super::{ChangePlan, Entry, Index, Kind, PendingChange, ReloadSink};

/// Reload needs gathered over a group of changes.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ReloadNeed {
    /// Some change is served only after a reload.
    pub(super) needed: bool,
    /// dnsmasq's loaded records may hold `set:` tags (2.90 crashes on a
    /// SIGHUP then).
    pub(super) risky: bool,
    /// Why, for logs and status.
    pub(super) reason: &'static str,
}

impl ReloadNeed {
    /// Adds a change's need.
    pub(super) fn add(&mut self, needed: bool, risky: bool, reason: &'static str) {
        if needed {
            self.needed = true;
            self.reason = reason;
        }
        self.risky |= risky;
    }

    /// Adds another group's needs.
    pub(super) fn merge(&mut self, other: ReloadNeed) {
        self.add(other.needed, other.risky, other.reason);
    }
}

/// Plans `change`, lets `make` put it on disk (it may change the plan, e.g.
/// fall back to a reload), and tells the policy it was placed. The caller
/// holds the reload guard ([`ReloadSink::hold_reloads`]).
pub(super) fn place(
    reloads: &dyn ReloadSink,
    index: &Index,
    change: &PendingChange<'_>,
    make: impl FnOnce(&mut ChangePlan) -> Result<(), PlaceError>,
) -> Result<ChangePlan, PlaceError> {
    let mut how = reloads.plan(index, change);
    make(&mut how)?;
    reloads.placed(index, change, &how);
    tracing::debug!(kind = %change.kind, name = %change.name, placement = ?how.placement, needs_reload = how.needs_reload, external = change.external, "{}", how.reason);
    Ok(how)
}

/// Whether replacing or removing the file under a name may take `set:`
/// tags out of dnsmasq's loaded records: the old entry had some, or the old
/// file did not parse, so its tags are unknown (host files only: options
/// files set no tags).
pub(super) fn risky(kind: Kind, old: Option<&Entry>, replaces: bool) -> bool {
    replaces && old.map_or(kind == Kind::Host, |o| has_set_tags(&o.spec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{HostSpec, Name};
    use crate::store::Spec;

    #[test]
    fn an_unparsable_host_file_counts_as_risky() {
        assert!(risky(Kind::Host, None, true), "unknown tags: assume set:");
        assert!(!risky(Kind::Option, None, true));
        assert!(!risky(Kind::Host, None, false), "a create replaces nothing");
        let tagged = Entry::canonical(
            Name::parse("a").unwrap(),
            Spec::Host(HostSpec::parse_line("52:54:00:00:00:01,set:x").unwrap()),
        );
        let plain = Entry::canonical(
            Name::parse("b").unwrap(),
            Spec::Host(HostSpec::parse_line("52:54:00:00:00:02").unwrap()),
        );
        assert!(risky(Kind::Host, Some(&tagged), true));
        assert!(!risky(Kind::Host, Some(&plain), true));
    }
}
