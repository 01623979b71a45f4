//! Reloading dnsmasq: *whether* a change needs a reload ([`model`] of what
//! dnsmasq holds, [`shadow`] rules), *when* ([`scheduler`]: coalescing, with
//! the stall [`budget`] and the SIGHUP/restart [`cost`] model) and *how* it
//! is delivered ([`Reloader`] implementations).
//!
//! dnsmasq reads new files by itself (inotify) but keeps serving deleted or
//! replaced entries until SIGHUP, and a SIGHUP re-reads everything while DHCP
//! and DNS wait — about a second at 10k files, growing with the square of
//! the file count. Most changes need none: a new record read through inotify
//! is prepended and hides the old one whenever the shadowing rules hold. The
//! rest mark a reload pending; one reload goes out after a quiet period (or
//! a maximum delay, or later when the stall budget says so), and it covers
//! everything pending when it was sent.
//!
//! dnsmasq 2.90 crashes on SIGHUP once a host with a `set:` tag has done a
//! DHCP exchange (fixed in 2.91). Reloaders know the version they signal
//! ([`dnsmasq`]) and refuse (or, when supervising, restart instead of
//! signalling) when the loaded config makes the signal fatal.
//!
//! Layout (no file imports one that imports it back; this one only declares
//! and re-exports):
//! - [`reloader`]: the [`Reloader`] trait, [`DnsmasqState`], [`NoReload`];
//!   [`signal`](SignalReloader), [`supervise`], [`command`](CommandReloader)
//!   implement it;
//! - [`dnsmasq`] knows versions;
//! - [`model`] and [`shadow`]: what dnsmasq holds, and when a new record
//!   hides an old one;
//! - [`settings`]: the scheduler's configuration; [`progress`]: reasons,
//!   records and tickets;
//! - [`budget`]: the stall budget; [`cost`]: names seen, the SIGHUP and
//!   restart cost model;
//! - [`scheduler`]: coalescing, delivery, cleanup, and the store's
//!   `ReloadSink`.

pub mod budget;
mod command;
pub mod cost;
pub mod dnsmasq;
pub mod model;
pub mod progress;
pub mod reloader;
pub mod scheduler;
pub mod settings;
pub mod shadow;
mod signal;
pub mod supervise;

pub use budget::StallStats;
pub use command::CommandReloader;
pub use progress::{Progress, Reason, ReloadRecord, WaitError};
pub use reloader::{DnsmasqState, NoReload, Reloader};
pub use scheduler::ReloadScheduler;
pub use settings::{Policy, RestartMode, SchedulerConfig};
pub use signal::{SignalReloader, Target};
