//! What a reload costs, and when a restart of dnsmasq is cheaper.
//!
//! On SIGHUP dnsmasq re-reads every file, and for each one looks its path up
//! (src/inotify.c `dyndir_addhosts`, a `strcmp` walk) in a list of the file
//! names the directory held at dnsmasq's start or at any SIGHUP since — a
//! list that never shrinks (a name enters it when a SIGHUP reads the file;
//! files read through inotify and gone before the next SIGHUP do not, as
//! `examples/bench_reload.rs` measures). So a SIGHUP costs about
//! `k × Σ (files in the directory × names in its list, this reload's new
//! names included)`, while a fresh start costs about `k × Σ files²` plus a
//! fixed overhead (exit, exec, sockets, the lease file). Ironic names host
//! files by MAC and options files by node UUID, so every enrolled node and
//! replaced NIC adds names for good: a long-lived dnsmasq's reloads get
//! slower month by month and only a restart resets the list.
//!
//! [`Churn`] keeps that list as dnsmasq does (the live names at start, and
//! at every delivered SIGHUP) and fits `k` (and the restart overhead) from
//! the stalls the scheduler measures, to predict both costs. For a dnsmasq
//! started before the broker, the list is counted from the broker's start:
//! names that came and went before are unknown, so the count is then a
//! lower bound (`exact: false`).
//!
//! [`Costs`] wraps the ledger with what the scheduler decides from it:
//! whether dnsmasq was restarted behind its back (the reloader's start
//! count), whether the next reload should be a restart, and when to warn
//! that churn has made SIGHUPs expensive.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use super::settings::RestartMode;
use crate::entry::Name;
use crate::store::Kind;

/// Below this many file × name units a reload's stall is mostly fixed
/// costs; such samples say nothing about `k`.
const MIN_UNITS: f64 = 250_000.0;

/// Seconds per file × name unit assumed before any reload was timed: dnsmasq
/// 2.91 took 1.07–1.14 s for a SIGHUP over 10,000 Ironic host files on the
/// machines this was built on (`../shared/DNSMASQ-FACTS.md`).
const PRIOR_K: f64 = 1.1e-8;

/// Restart overhead assumed until one is measured.
const DEFAULT_RESTART_OVERHEAD: Duration = Duration::from_millis(100);

/// Names seen and the fitted cost model.
#[derive(Debug)]
pub struct Churn {
    /// dnsmasq's list of names per directory (as far as known).
    seen: [HashSet<Name>; 2],
    /// Live names not in `seen` (the next SIGHUP adds them).
    fresh: [usize; 2],
    /// The files in each directory now.
    live: [HashSet<Name>; 2],
    exact: bool,
    /// Seconds per file × name unit.
    k: Option<f64>,
    /// Seconds a restart costs beyond reading the files.
    restart_overhead: Option<f64>,
}

/// What status and the decision need.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChurnStats {
    /// Names in dnsmasq's list per directory (hosts, options) by the next
    /// SIGHUP: those held at its start or at a SIGHUP, plus the live ones.
    pub names_seen: [usize; 2],
    /// Files in each directory now.
    pub live_files: [usize; 2],
    /// Whether the names are counted from dnsmasq's start (false: from the
    /// broker's, a lower bound).
    pub exact: bool,
    /// A SIGHUP's cost relative to one with no name churn:
    /// Σ files × names / Σ files².
    pub factor: f64,
    /// Predicted SIGHUP stall, once the model has a sample.
    pub predicted_sighup_ms: Option<u64>,
    /// Predicted restart unavailability, once the model has a sample.
    pub predicted_restart_ms: Option<u64>,
}

impl ChurnStats {
    /// True when a restart is predicted to cost less than a SIGHUP by a
    /// clear margin.
    pub fn restart_is_cheaper(&self) -> bool {
        matches!((self.predicted_sighup_ms, self.predicted_restart_ms),
            (Some(s), Some(r)) if s as f64 > 1.25 * r as f64 && s > 50)
    }
}

impl Churn {
    /// The ledger for a dnsmasq that holds `names` (hosts, options) now.
    pub fn new(names: [Vec<Name>; 2], exact: bool) -> Churn {
        let live: [HashSet<Name>; 2] = names.map(|n| n.into_iter().collect());
        Churn {
            seen: live.clone(),
            fresh: [0, 0],
            live,
            exact,
            k: None,
            restart_overhead: None,
        }
    }

    /// A file of `kind` named `name` was put in place (dnsmasq reads it now
    /// or at the next reload, and remembers the name from then on).
    pub fn saw(&mut self, kind: Kind, name: &Name) {
        let d = kind as usize;
        if !self.live[d].contains(name) {
            self.live[d].insert(name.clone());
            if !self.seen[d].contains(name) {
                self.fresh[d] += 1;
            }
        }
    }

    /// The file `name` of `kind` was removed (dnsmasq keeps its name, if
    /// a SIGHUP or its start read the file).
    pub fn gone(&mut self, kind: Kind, name: &Name) {
        let d = kind as usize;
        if self.live[d].remove(name) && !self.seen[d].contains(name) {
            self.fresh[d] -= 1;
        }
    }

    /// dnsmasq was (re)started: it remembers only the files there now.
    pub fn restarted(&mut self) {
        self.seen = self.live.clone();
        self.fresh = [0, 0];
        self.exact = true;
    }

    /// A SIGHUP read every live file: their names join dnsmasq's list.
    fn reloaded(&mut self) {
        for d in 0..2 {
            if self.fresh[d] > 0 {
                let new: Vec<Name> = self.live[d]
                    .iter()
                    .filter(|n| !self.seen[d].contains(*n))
                    .cloned()
                    .collect();
                self.seen[d].extend(new);
            }
            self.fresh[d] = 0;
        }
    }

    fn units(&self) -> (f64, f64) {
        let mut sighup = 0.0;
        let mut fresh = 0.0;
        for d in 0..2 {
            let f = self.live[d].len() as f64;
            let n = (self.seen[d].len() + self.fresh[d]) as f64;
            sighup += f * n;
            fresh += f * f;
        }
        (sighup, fresh)
    }

    /// A SIGHUP took `stall`.
    pub fn observe_sighup(&mut self, stall: Duration) {
        let (units, _) = self.units();
        self.reloaded();
        if units < MIN_UNITS {
            return;
        }
        let sample = stall.as_secs_f64() / units;
        self.k = Some(match self.k {
            None => sample,
            Some(k) => 0.7 * k + 0.3 * sample,
        });
    }

    /// A restart (stop, start, read every file) took `took`. Call before
    /// [`Churn::restarted`]... or after: the fresh cost is the same.
    pub fn observe_restart(&mut self, took: Duration) {
        let (_, fresh) = self.units();
        let reading = self.k.map_or(0.0, |k| k * fresh);
        let sample = (took.as_secs_f64() - reading).max(0.0);
        self.restart_overhead = Some(match self.restart_overhead {
            None => sample,
            Some(o) => 0.7 * o + 0.3 * sample,
        });
    }

    /// A SIGHUP's stall as predicted before any was timed (from the file
    /// and name counts and [`PRIOR_K`]), for the stall budget's first step.
    pub fn prior_stall(&self) -> Duration {
        let (units, _) = self.units();
        Duration::from_secs_f64(self.k.unwrap_or(PRIOR_K) * units)
    }

    /// Counts, factor and predictions.
    pub fn stats(&self) -> ChurnStats {
        let (sighup, fresh) = self.units();
        let ms = |s: f64| (s * 1000.0).round() as u64;
        let overhead = self
            .restart_overhead
            .unwrap_or(DEFAULT_RESTART_OVERHEAD.as_secs_f64());
        ChurnStats {
            names_seen: [
                self.seen[0].len() + self.fresh[0],
                self.seen[1].len() + self.fresh[1],
            ],
            live_files: [self.live[0].len(), self.live[1].len()],
            exact: self.exact,
            factor: if fresh > 0.0 {
                (sighup / fresh * 100.0).round() / 100.0
            } else {
                1.0
            },
            predicted_sighup_ms: self.k.map(|k| ms(k * sighup)),
            predicted_restart_ms: self.k.map(|k| ms(k * fresh + overhead)),
        }
    }
}

/// The ledger, and the decisions the scheduler makes from it.
#[derive(Debug)]
pub struct Costs {
    /// Names seen and the fitted cost model.
    churn: Churn,
    /// The reloader's start count last seen: a change means dnsmasq was
    /// (re)started and forgot every name.
    starts_seen: u64,
    /// Whether the churn warning was given (it is given once per crossing).
    warned: bool,
}

impl Costs {
    /// Costs for a dnsmasq holding `churn`'s names, whose reloader has
    /// started it `starts` times.
    pub fn new(churn: Churn, starts: u64) -> Costs {
        Costs {
            churn,
            starts_seen: starts,
            warned: false,
        }
    }

    /// The ledger.
    pub fn churn(&mut self) -> &mut Churn {
        &mut self.churn
    }

    /// Counts, factor and predictions.
    pub fn stats(&self) -> ChurnStats {
        self.churn.stats()
    }

    /// Whether dnsmasq was (re)started since the start count was last seen;
    /// notes `starts` as seen. The one place restarts are detected.
    fn restarted_since(&mut self, starts: u64) -> bool {
        std::mem::replace(&mut self.starts_seen, starts) != starts
    }

    /// Notices a restart made for another reason (a crash): dnsmasq then
    /// remembers only the files there now.
    pub fn sync_starts(&mut self, starts: u64) {
        if self.restarted_since(starts) {
            self.churn.restarted();
        }
    }

    /// A delivered reload took `stall`; `starts` is the reloader's start
    /// count after it. A restart (asked for, or instead of a SIGHUP that
    /// 2.90 would not survive) also forgets every name.
    pub fn delivered(&mut self, stall: Duration, starts: u64) {
        if self.restarted_since(starts) {
            self.churn.observe_restart(stall);
            self.churn.restarted();
        } else {
            self.churn.observe_sighup(stall);
        }
    }

    /// Whether the next reload should be a restart.
    pub fn restart_next(&self, mode: RestartMode, can_restart: bool) -> bool {
        can_restart
            && match mode {
                RestartMode::Always => true,
                RestartMode::Never => false,
                RestartMode::Auto => self.stats().restart_is_cheaper(),
            }
    }

    /// When a SIGHUP first costs more than `warn_factor` times its no-churn
    /// cost: what the operator can do about it (once per crossing).
    pub fn warning(
        &mut self,
        warn_factor: f64,
        can_restart: bool,
        mode: RestartMode,
    ) -> Option<&'static str> {
        let over = self.stats().factor > warn_factor;
        let warned = std::mem::replace(&mut self.warned, over);
        if !over || warned {
            return None;
        }
        Some(match (can_restart, mode) {
            (true, RestartMode::Never) => "restarts are off (--restart-instead-of-sighup never)",
            (true, _) => "the broker restarts it instead of a SIGHUP once that is predicted cheaper",
            (false, _) => "restart dnsmasq in a quiet moment to reset it (in Kubernetes: delete the pod, or `kubectl rollout restart`)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<Name> {
        (0..n)
            .map(|i| Name::parse(&format!("{prefix}{i}")).unwrap())
            .collect()
    }

    #[test]
    fn churn_makes_a_restart_cheaper_than_a_sighup() {
        // 5,000 live files, no churn yet: SIGHUP ≈ restart.
        let mut c = Churn::new([names("a", 5000), vec![]], true);
        c.observe_sighup(Duration::from_millis(340));
        let s = c.stats();
        assert_eq!(s.factor, 1.0);
        assert_eq!(s.predicted_sighup_ms, Some(340));
        assert!(!s.restart_is_cheaper(), "{s:?}");
        // Three rounds of replacing every file under new names, a SIGHUP
        // after each: 20,000 names in dnsmasq's list, 5,000 live (as in
        // DNSMASQ-FACTS.md).
        let mut previous = "a";
        for round in ["b", "c", "d"] {
            for (old, new) in names(previous, 5000).iter().zip(names(round, 5000)) {
                c.gone(Kind::Host, old);
                c.saw(Kind::Host, &new);
            }
            previous = round;
            c.reloaded();
        }
        let s = c.stats();
        assert_eq!(s.names_seen, [20000, 0]);
        assert_eq!(s.factor, 4.0);
        assert_eq!(s.predicted_sighup_ms, Some(1360));
        assert!(s.restart_is_cheaper(), "{s:?}");
        // A restart resets the names.
        assert_eq!(c.stats().live_files, [5000, 0]);
        c.observe_restart(Duration::from_millis(400));
        c.restarted();
        let s = c.stats();
        assert_eq!(s.factor, 1.0);
        assert_eq!(s.predicted_restart_ms, Some(400));
        assert!(!s.restart_is_cheaper(), "{s:?}");
    }

    #[test]
    fn names_enter_the_list_only_when_a_sighup_reads_them() {
        let mut c = Churn::new([names("a", 100), vec![]], true);
        // Created and removed between two SIGHUPs: never in the list.
        for n in names("b", 50) {
            c.saw(Kind::Host, &n);
        }
        for n in names("b", 50) {
            c.gone(Kind::Host, &n);
        }
        assert_eq!(c.stats().names_seen, [100, 0]);
        // Created and still there at the SIGHUP: in it for good.
        for n in names("c", 50) {
            c.saw(Kind::Host, &n);
        }
        assert_eq!(c.stats().names_seen, [150, 0]);
        c.reloaded();
        for n in names("c", 50) {
            c.gone(Kind::Host, &n);
        }
        let s = c.stats();
        assert_eq!((s.names_seen, s.live_files), ([150, 0], [100, 0]));
        assert_eq!(s.factor, 1.5);
    }

    #[test]
    fn small_directories_teach_nothing() {
        let mut c = Churn::new([names("a", 100), vec![]], false);
        c.observe_sighup(Duration::from_millis(20));
        assert_eq!(c.stats().predicted_sighup_ms, None);
        assert!(!c.stats().exact);
    }
    #[test]
    fn a_changed_start_count_means_a_restart_and_resets_the_names() {
        let mut c = Costs::new(Churn::new([names("a", 100), vec![]], false), 3);
        for n in names("b", 100) {
            c.churn().saw(Kind::Host, &n);
        }
        c.delivered(Duration::from_millis(5), 3);
        assert_eq!(c.stats().names_seen, [200, 0], "a SIGHUP keeps every name");
        for n in names("b", 100) {
            c.churn().gone(Kind::Host, &n);
        }
        c.sync_starts(3);
        assert_eq!(
            c.stats().names_seen,
            [200, 0],
            "same start count: no restart"
        );
        // A crash restart between two reloads, seen by the tick...
        c.sync_starts(4);
        let s = c.stats();
        assert_eq!((s.names_seen, s.exact), ([100, 0], true));
        // ...and a restart made by the delivery itself.
        for n in names("c", 100) {
            c.churn().saw(Kind::Host, &n);
        }
        c.delivered(Duration::from_millis(5), 5);
        assert_eq!(
            c.stats().names_seen,
            [200, 0],
            "a restart reads what is there"
        );
        c.churn().gone(Kind::Host, &names("c", 1)[0]);
        assert_eq!(c.stats().names_seen, [200, 0]);
    }

    #[test]
    fn the_restart_mode_decides_before_the_model() {
        let c = Costs::new(Churn::new([names("a", 10), vec![]], true), 0);
        assert!(!c.stats().restart_is_cheaper());
        assert!(c.restart_next(RestartMode::Always, true));
        assert!(
            !c.restart_next(RestartMode::Always, false),
            "not supervised"
        );
        assert!(!c.restart_next(RestartMode::Never, true));
        assert!(!c.restart_next(RestartMode::Auto, true));
    }

    #[test]
    fn the_churn_warning_is_given_once_per_crossing() {
        let mut c = Costs::new(Churn::new([names("a", 10), vec![]], true), 0);
        assert_eq!(c.warning(2.0, false, RestartMode::Auto), None);
        for (old, new) in names("a", 10).iter().zip(names("b", 10)) {
            c.churn().gone(Kind::Host, old);
            c.churn().saw(Kind::Host, &new);
        }
        c.delivered(Duration::ZERO, 0);
        for (old, new) in names("b", 10).iter().zip(names("c", 10)) {
            c.churn().gone(Kind::Host, old);
            c.churn().saw(Kind::Host, &new);
        }
        assert_eq!(c.stats().factor, 3.0);
        let how = c.warning(2.0, false, RestartMode::Auto).unwrap();
        assert!(how.contains("restart dnsmasq"), "{how}");
        assert_eq!(c.warning(2.0, false, RestartMode::Auto), None, "once");
        c.sync_starts(1);
        assert_eq!(c.warning(2.0, true, RestartMode::Auto), None, "below again");
    }
}
