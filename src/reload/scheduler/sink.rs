//! The scheduler as the store sees it ([`ReloadSink`]): every change the
//! writer makes is planned by the reload model, recorded once placed, and
//! turned into a ticket when it needs a reload.

use std::sync::atomic::Ordering;
use tokio::time::Instant;

use super::super::progress::Reason;
use super::super::settings::Policy;
use super::ReloadScheduler;
use crate::store::{ChangePlan, Index, PendingChange, ReloadSink};
use crate::sync::LockOrRecover;

impl ReloadSink for ReloadScheduler {
    fn reload_needed(&self, reason: &'static str, risky: bool) -> u64 {
        self.pending.lock_or_recover().last_commit = Instant::now();
        self.request(Reason::from_store(reason), risky)
    }

    fn local_reader(&self) -> bool {
        // `none`: no dnsmasq of this broker's reads the directories.
        self.reloader.method() != "none"
    }

    fn hold_reloads(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        Some(self.reading.lock_or_recover())
    }

    fn plan(&self, index: &Index, change: &PendingChange<'_>) -> ChangePlan {
        match self.config.policy {
            Policy::Coalesce => change.coalesce_plan(),
            Policy::Shadow => self.model.lock_or_recover().plan(index, change),
        }
    }

    fn placed(&self, index: &Index, change: &PendingChange<'_>, plan: &ChangePlan) {
        self.pending.lock_or_recover().last_commit = Instant::now();
        {
            let mut costs = self.costs.lock_or_recover();
            match change.new {
                Some(_) => costs.churn().saw(change.kind, change.name),
                None => costs.churn().gone(change.kind, change.name),
            }
        }
        if self.config.policy == Policy::Coalesce {
            return;
        }
        let would_have_reloaded = change.external || change.new.is_none() || change.replaces;
        if would_have_reloaded && !plan.needs_reload {
            self.avoided.fetch_add(1, Ordering::Relaxed);
            crate::metrics::get().reloads_avoided.inc();
        }
        let mut model = self.model.lock_or_recover();
        model.record(index, change, plan);
        crate::metrics::get()
            .ghosts
            .set(model.stats().ghosts as i64);
    }
}
