//! hostsdir-broker: one HTTP service that owns dnsmasq's `--dhcp-hostsdir`
//! and `--dhcp-optsdir`, so many Ironic conductors on many nodes can manage
//! DHCP entries safely.
//!
//! Writing the files directly breaks once conductors are scaled out over a
//! shared volume: dnsmasq's inotify never sees other nodes' writes, removed
//! entries stay live until SIGHUP, unlocked writers race, and bad lines are
//! skipped silently. The broker validates, writes atomically and durably
//! under a cross-process lock, and reloads dnsmasq only when needed.
//!
//! # Layout
//! - [`entry`]: the dnsmasq grammar — `HostSpec`, `OptionsSpec`, entry names;
//!   parse from JSON or a line, render the canonical line. Nothing else
//!   knows dnsmasq's syntax.
//! - [`store`]: the directories — the index, the single writer thread with
//!   group commit, atomic durable file writes, the cross-process lock.
//! - [`reload`]: delivering reloads (pidfile, process, command, supervised
//!   child) and coalescing them; what is known about dnsmasq versions.
//! - [`http`]: the API of `API.md` — routes, JSON, errors.
//! - [`leases`]: reading dnsmasq's lease file.
//! - [`config`]: the command line; [`ctl`]: the client subcommand;
//!   [`check`]: the offline lint; [`watch`]: noticing others' changes;
//!   [`metrics`]: Prometheus metrics.
//! - [`server`]: wiring it together; `serve` takes a bound listener and a
//!   shutdown future so tests can run it in-process.

pub mod check;
pub mod config;
pub mod ctl;
pub mod entry;
pub mod http;
pub mod leases;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod store;
mod sync;
pub mod tls;
pub mod watch;
