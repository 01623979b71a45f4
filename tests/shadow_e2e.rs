//! End-to-end tests of the reload policy (`--reload-policy shadow`, the
//! default): which changes the broker lets dnsmasq pick up through inotify
//! without a SIGHUP, and which it holds back for a reload.
//!
//! Why: a SIGHUP makes dnsmasq drop every file-loaded record and re-read
//! every file while answering nothing; with 10k Ironic host files one
//! reload per replace kept dnsmasq unresponsive 72% of the time
//! (shared/DNSMASQ-FACTS.md, "What a SIGHUP costs"). dnsmasq prepends each
//! record it reads and takes the first match, so a new record that matches
//! every client the old one matched *shadows* it at once. But whether a
//! change really is shadowed depends on details of dnsmasq's matching that
//! the broker has to get right (client IDs are matched before MACs, a
//! `tag:` filter that matches wins over a newer record without one, a
//! dropped MAC or option stays served, an IP held by any record in memory
//! makes a new line with that IP a "duplicate dhcp-host IP address", a
//! named record without an address takes the address its name has in
//! /etc/hosts), so every rule is proven here with a real dnsmasq (Debian's
//! 2.90, 2.91 and 2.93, via `for_each_version`) and a real DHCP client
//! (busybox udhcpc; ISC `dhclient -6` for the `dhcpv6_*` tests). The broker applies these rules on every version
//! (`src/reload/dnsmasq.rs`): this file is their proof on each.
//!
//! The shadow-safe steps change only what a shadowing record may change —
//! its `set:` tags, `ignore` — and are observed through the boot file an
//! options file per tag gives (`tag:<t>,67,<file>`), never through a
//! hostname: a new record with a hostname (or a fixed address) is not
//! shadow-safe (src/reload/shadow.rs).
//!
//! Each test checks what dnsmasq serves, the SIGHUPs dnsmasq saw (the
//! harness's reload marker), the `"reload"` field of the answers, and ends
//! with the harness's log check (`World::finish` → `assert_log_clean`: no
//! "duplicate dhcp-host", no "cannot read", no temp-file read, no error).
//! Broker-contract mismatches (a `"reload"` field, a reload that should or
//! should not have happened, a status field) are collected and reported
//! together at the end of the scenario (or beside the failure when a hard
//! assertion stops it first), so one run shows every rule a broker build
//! gets wrong; what dnsmasq serves and its log are asserted at once.
//!
//! Rules proven, one test each:
//! - `tag_change_is_shadowed`: `<mac>,set:t1,set:ironic` →
//!   `<mac>,set:t2,set:ironic` (and back): no reload, the new tag's boot
//!   file is served at once (also on 2.90: nothing is signalled).
//! - `ignore_and_back_are_shadowed`: tags → `ignore` (no offer) → tags
//!   again, no reload.
//! - `hostname_and_fixed_address_rules`: a hostname change without IP
//!   needs a reload (the new record has a hostname: dnsmasq would give it
//!   the address its name has in /etc/hosts); the new name is served
//!   after it (and, with the harness's DNS-less dnsmasq, before it too); an IPv4 host → `ignore` needs none; `ignore` → the
//!   same IPv4 again is placed for the reload (no duplicate line) and
//!   served after it; a record matching only by hostname is never
//!   shadow-safe.
//! - `multi_mac_tag_change_is_shadowed`: `[m1,m2]` tag change, no reload.
//! - `multi_mac_drop_needs_reload`: `[m1,m2]` → `[m1]`: reload; until it
//!   the dropped MAC still gets the old tag's boot file, after it not.
//! - `client_id_rules`: same client ID (tag change): no reload; client
//!   ID changed, then dropped (tag changed too): reload each time, and
//!   until it the client sending the old ID still gets the old record's
//!   boot file (dnsmasq matches client IDs before MACs).
//! - `match_tag_filter_change_needs_reload`: same `tag:` filter (tag
//!   change): no reload; filter dropped: reload, and until it a client
//!   carrying the tag still gets the old, filtered record's boot file
//!   (dnsmasq prefers a record whose filter matches over a newer one
//!   without filter).
//! - `options_rules`: options value change and an added line: no reload,
//!   served at once; an option dropped: reload (served until it); a line's
//!   tag set changed: reload.
//! - `ipv6_address_needs_reload` (seen by a DHCPv4 client, where an
//!   IPv6-only record shows as `known-othernet`): a host gaining an IPv6
//!   address, and one keeping it while gaining an IPv4 address and a
//!   hostname, is reloaded without a duplicate line; a create with one
//!   needs no reload.
//! - DHCPv6, with ISC `dhclient -6` (`tests/e2e/v6.rs`):
//!   - `dhcpv6_same_address_replaces_are_shadowed`: a host keeping its
//!     IPv6 address and having no IPv4 one — tags changed, `ignore`, back;
//!     by MAC, by DUID (`id:`) and as a host part (`[::e3]`) — needs no
//!     reload and is served at once (dnsmasq compares IPv4 addresses only);
//!     DHCPv4 clients of the MAC match neither version.
//!   - `dhcpv6_tags_and_ignore_without_address_are_shadowed`: `set:` tag
//!     changes pick the new tag's `option6:59` at once; an IPv6 host →
//!     `ignore` → tags without address, and a DUID record's tag change: no
//!     reload, served at once.
//!   - `dhcpv6_options_rules`: `option6:` value change and added line: no
//!     reload, served at once; dropped: reload, served until it.
//!   - `dhcpv6_address_change_needs_reload`: moved off the client's link,
//!     the old address is served until the reload (why address changes are
//!     reloaded); moved within the range, the new one is served at once and
//!     after the reload.
//! - `ghost_address_reuse_waits_for_the_reload`: delete a host with IP X,
//!   create another with X before the reload: `"scheduled"`, no duplicate
//!   line, after the reload the new MAC gets X.
//! - `cleanup_reload_after_ghost_threshold`: more shadowed records (tag
//!   changes) than `--cleanup-ghosts` → one reload with reason `cleanup`
//!   after `--cleanup-quiet-ms`; status counts ghosts and avoided reloads.
//! - `delete_under_stall_budget_is_deferred`: with a 0.2% busy budget, a
//!   `DELETE ?wait=reload` right after a reload answers 503
//!   `reload_deferred` within `--request-timeout-ms`; the old record is
//!   served until the deferred reload, then the client gets a pool address.
//! - `coalesce_policy_reloads_every_replace`: `--reload-policy coalesce`
//!   keeps the old behaviour (a shadow-safe replace still reloads).
//!
//! dnsmasq 2.90 crashes on SIGHUP once a `set:` host did a DHCP exchange
//! and the broker refuses to signal it then; scenarios that reload with
//! `set:` hosts run 2.90 supervised (the broker restarts it instead, like
//! `dhcp_e2e.rs` s8), all others use `--reload pidfile` on both versions.
//!
//! Needs root, `ip`, `udhcpc`, `dhclient`, `dhcp_release6` and the dnsmasq
//! builds (`sudo scripts/install-test-deps.sh`). Run:
//! `cargo test --test shadow_e2e -- --test-threads=4`.

mod e2e;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use e2e::v6::{for_v6_versions, Client6, Duid, Lease6};
use e2e::{for_each_version, DnsmasqBinary, Lease, Mode, Reply, World};
use serde_json::{json, Value};

/// Long enough for any reload the broker might (wrongly) send after a
/// change when its quiet period is 50 ms.
const SETTLE: Duration = Duration::from_millis(400);

/// A quiet period long enough to ask dnsmasq (one udhcpc exchange) what it
/// serves *before* a scheduled reload.
const SLOW_QUIET_MS: u64 = 3000;
/// `--reload-max-delay-ms` with [`SLOW_QUIET_MS`] (the default 2000 would cut
/// the quiet period short).
const SLOW_MAX_DELAY: &str = "6000";

/// How long a scheduled reload may take to show up in dnsmasq's log.
const RELOAD_WAIT: Duration = Duration::from_secs(15);

fn mac(n: u32) -> String {
    format!("52:54:00:5d:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff)
}

/// The reload-policy flags every scenario passes, unless `extra` sets them:
/// `--reload-policy shadow` (the default, stated) and
/// `--reload-budget-percent 100` (no stall-budget spacing).
fn policy_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = Vec::new();
    if !extra.contains(&"--reload-policy") {
        args.extend(["--reload-policy", "shadow"]);
    }
    if !extra.contains(&"--reload-budget-percent") {
        args.extend(["--reload-budget-percent", "100"]);
    }
    args.extend_from_slice(extra);
    args
}

/// A scenario's world with the policy flags, a 50 ms quiet period.
fn world(bin: &DnsmasqBinary, mode: Mode, extra: &[&str]) -> World {
    World::with_broker_args(bin, mode, 24, 50, &policy_flags(extra))
}

/// A world whose scheduled reloads wait [`SLOW_QUIET_MS`].
fn slow_world(bin: &DnsmasqBinary, mode: Mode) -> World {
    World::with_broker_args(
        bin,
        mode,
        24,
        SLOW_QUIET_MS,
        &policy_flags(&["--reload-max-delay-ms", SLOW_MAX_DELAY]),
    )
}

/// Reloading `set:` hosts: 2.91 and 2.93 are signalled; 2.90 would crash, so it runs
/// supervised and the broker restarts it instead.
fn tagged_reload_mode(bin: &DnsmasqBinary) -> Mode {
    if bin.crashes_on_sighup_with_tags() {
        Mode::Supervise
    } else {
        Mode::Pidfile
    }
}

/// Broker-contract mismatches of one scenario, collected so a run shows
/// all of them; [`Contract::finish`] fails the scenario if there were any.
struct Contract {
    who: String,
    misses: Mutex<Vec<String>>,
}

impl Contract {
    fn new(test: &str, bin: &DnsmasqBinary) -> Contract {
        Contract {
            who: format!("{test} dnsmasq {}", bin.version),
            misses: Mutex::new(Vec::new()),
        }
    }

    fn miss(&self, what: String) {
        self.misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }

    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.miss(what());
        }
    }

    /// The answer's `"reload"` field is `want`.
    fn reload(&self, r: &Reply, want: &str, what: &str) {
        let got = r.body["reload"].as_str().unwrap_or("<absent>");
        self.check(got == want, || {
            format!(
                "{what}: \"reload\" is {got:?}, want {want:?} (HTTP {}: {})",
                r.status, r.text
            )
        });
    }

    /// No reload reached dnsmasq since the marker count `marks`.
    fn no_reload(&self, w: &World, marks: usize, what: &str) {
        let now = w.dirs.marker_reads();
        self.check(now == marks, || {
            format!(
                "{what}: dnsmasq was reloaded {} time(s), want none",
                now - marks
            )
        });
    }

    /// `status.reload.<key>` is a number at least `min`.
    fn status_at_least(&self, status: &Value, key: &str, min: f64) {
        let v = &status["reload"][key];
        self.check(v.as_f64().is_some_and(|n| n >= min), || {
            format!("status.reload.{key} is {v}, want a number >= {min}")
        });
    }

    /// Ends the scenario: dnsmasq's log is clean (asserted), then every
    /// contract mismatch seen fails it.
    fn finish(self, w: World) {
        w.finish();
        let misses = std::mem::take(&mut *self.misses.lock().unwrap_or_else(|e| e.into_inner()));
        assert!(
            misses.is_empty(),
            "{}: broker contract not met:\n- {}",
            self.who,
            misses.join("\n- ")
        );
    }
}

impl Drop for Contract {
    /// A scenario that stopped on a hard assertion still shows the contract
    /// mismatches seen before it.
    fn drop(&mut self) {
        let misses = self.misses.get_mut().unwrap_or_else(|e| e.into_inner());
        if thread::panicking() && !misses.is_empty() {
            eprintln!(
                "--- {}: broker contract mismatches before the failure ---\n- {}",
                self.who,
                misses.join("\n- ")
            );
        }
    }
}

fn assert_status(r: &Reply, want: u16, what: &str) {
    assert_eq!(
        r.status, want,
        "{what}: expected HTTP {want}, got {}: {}",
        r.status, r.text
    );
}

fn lease(w: &World, mac: &str, why: &str) -> Lease {
    w.net
        .dhcp_request(mac)
        .unwrap_or_else(|| panic!("{why}: no lease for {mac}"))
}

fn lease_with(w: &World, mac: &str, extra: &[&str], why: &str) -> Lease {
    w.net
        .dhcp_request_with(mac, 4, extra)
        .unwrap_or_else(|| panic!("{why}: no lease for {mac} (udhcpc {extra:?})"))
}

fn assert_no_offer(w: &World, mac: &str, why: &str) {
    if let Some(l) = w.net.dhcp_expect_no_offer(mac) {
        panic!("{why}: {mac} got a lease: {l:?}");
    }
}

/// PUT a host (no wait) and check the HTTP status.
fn put_host(w: &World, name: &str, spec: Value, want: u16) -> Reply {
    let r = w.broker.put_host(name, &spec, false);
    assert_status(&r, want, &format!("PUT host {name} {spec}"));
    r
}

/// PUT an options file (no wait) and check the HTTP status.
fn put_options(w: &World, name: &str, lines: &[&str], want: u16) -> Reply {
    let r = w
        .broker
        .put_options(name, &json!({ "lines": lines }), false);
    assert_status(&r, want, &format!("PUT options {name} {lines:?}"));
    r
}

/// Times dnsmasq read `<hosts>/<name>` so far.
fn host_reads(w: &World, name: &str) -> usize {
    w.dirs.file_reads(&w.dirs.hosts, name)
}

fn opt_reads(w: &World, name: &str) -> usize {
    w.dirs.file_reads(&w.dirs.opts, name)
}

/// A shadowing replace is read by dnsmasq through inotify: waits for the
/// read (a contract miss if it never comes: the broker did not put the
/// file where inotify sees it).
fn expect_inotify_read(c: &Contract, w: &World, dir: &std::path::Path, name: &str, before: usize) {
    let read = e2e::wait_until(Duration::from_secs(5), || {
        w.dirs.file_reads(dir, name) > before
    });
    c.check(read, || {
        format!(
            "dnsmasq did not read {}/{name} through inotify within 5 s",
            dir.display()
        )
    });
}

/// Waits (hard) for a reload after marker count `marks`.
fn wait_reload(w: &World, marks: usize, what: &str) {
    assert!(
        w.dirs.marker_reads_above_within(marks, RELOAD_WAIT),
        "{what}: dnsmasq was not reloaded within {RELOAD_WAIT:?}; broker reload status: {}; log tail:\n{}",
        w.broker.status()["reload"],
        e2e::tail(&w.dirs.log_text(), 20)
    );
}

/// Runs `observe` (a DHCP exchange) and reports whether it finished before
/// any reload after `marks`: only then does it show what dnsmasq serves
/// *until* the reload. A reload that came first is a contract miss (the
/// quiet period is several seconds).
fn before_reload<T>(
    c: &Contract,
    w: &World,
    marks: usize,
    what: &str,
    observe: impl FnOnce() -> T,
) -> Option<T> {
    let out = observe();
    if w.dirs.marker_reads() == marks {
        Some(out)
    } else {
        c.miss(format!(
            "{what}: a reload came before dnsmasq's pre-reload answer could be \
             checked (quiet period or deferral not honoured)"
        ));
        None
    }
}

fn ironic_host(m: &[&str], tag: &str) -> Value {
    json!({"macs": m, "set_tags": [tag, "ironic"]})
}

/// One options file per tag, each with its own boot file.
fn put_boot_options(w: &World, tags: &[(&str, &str)]) {
    for (tag, file) in tags {
        let line = format!("tag:{tag},67,{file}");
        let r = put_options(w, tag, &[line.as_str()], 201);
        assert_eq!(r.body["reload"], "not_needed", "create: {}", r.text);
        w.dirs.wait_file_read(&w.dirs.opts, tag, 0);
    }
}

// ---------------------------------------------------------------------------

/// Ironic's tag change (a node moving between provisioning networks): the
/// new record shadows the old one, so no SIGHUP is needed — and none is
/// sent, on 2.90 too (where it could crash dnsmasq).
#[test]
fn tag_change_is_shadowed() {
    for_each_version(|bin| {
        let c = Contract::new("tag_change_is_shadowed", bin);
        let w = world(bin, Mode::Pidfile, &[]);
        put_boot_options(&w, &[("t1", "first.efi"), ("t2", "second.efi")]);
        let m = mac(0x101);
        let name = format!("ironic-{m}.conf");
        let r = put_host(&w, &name, ironic_host(&[&m], "t1"), 201);
        c.reload(&r, "not_needed", "create");
        w.dirs.wait_file_read(&w.dirs.hosts, &name, 0);
        assert_eq!(lease(&w, &m, "t1").boot_file(), Some("first.efi"));
        let marks = w.dirs.marker_reads();

        for (tag, file) in [
            ("t2", "second.efi"),
            ("t1", "first.efi"),
            ("t2", "second.efi"),
        ] {
            let before = host_reads(&w, &name);
            let r = put_host(&w, &name, ironic_host(&[&m], tag), 200);
            assert_eq!(r.body["changed"], json!(true), "{}", r.text);
            c.reload(&r, "not_needed", &format!("tag change to {tag}"));
            expect_inotify_read(&c, &w, &w.dirs.hosts, &name, before);
            let l = lease(&w, &m, &format!("after change to {tag}"));
            assert_eq!(l.boot_file(), Some(file), "tag {tag}: {l:?}");
            c.no_reload(&w, marks, &format!("tag change to {tag}, served"));
        }

        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "three tag changes");
        assert!(w.dnsmasq_alive(), "dnsmasq {} died", bin.version);
        let status = w.broker.status();
        eprintln!(
            "tag_change_is_shadowed {}: reload {}",
            bin.version, status["reload"]
        );
        c.check(status["reload"]["policy"] == "shadow", || {
            format!("status.reload.policy is {}", status["reload"]["policy"])
        });
        c.status_at_least(&status, "avoided", 3.0);
        c.status_at_least(&status, "ghosts", 3.0);
        c.check(status["reload"]["pending"] == json!(false), || {
            format!("a reload is pending: {}", status["reload"])
        });
        c.finish(w);
    });
}

/// `ignore` and back: `<mac>,set:t1` → `<mac>,ignore` (no offer at once) →
/// `<mac>,set:t1` (served again at once); no reload.
#[test]
fn ignore_and_back_are_shadowed() {
    for_each_version(|bin| {
        let c = Contract::new("ignore_and_back_are_shadowed", bin);
        let w = world(bin, Mode::Pidfile, &[]);
        put_boot_options(&w, &[("t1", "first.efi")]);
        let m = mac(0x201);
        let name = format!("ironic-{m}.conf");
        put_host(&w, &name, ironic_host(&[&m], "t1"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, &name, 0);
        assert_eq!(lease(&w, &m, "tagged").boot_file(), Some("first.efi"));
        let marks = w.dirs.marker_reads();

        let before = host_reads(&w, &name);
        let r = put_host(&w, &name, json!({"macs": [m], "ignore": true}), 200);
        c.reload(&r, "not_needed", "tags -> ignore");
        expect_inotify_read(&c, &w, &w.dirs.hosts, &name, before);
        assert_no_offer(&w, &m, "ignored");
        assert!(
            w.dirs.log_text().contains(&format!("{m} ignored")),
            "dnsmasq did not log the ignored client"
        );
        c.no_reload(&w, marks, "tags -> ignore, no offer");

        let before = host_reads(&w, &name);
        let r = put_host(&w, &name, ironic_host(&[&m], "t1"), 200);
        c.reload(&r, "not_needed", "ignore -> tags");
        expect_inotify_read(&c, &w, &w.dirs.hosts, &name, before);
        assert_eq!(lease(&w, &m, "back to tags").boot_file(), Some("first.efi"));

        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "ignore and back");
        assert!(w.dnsmasq_alive(), "dnsmasq {} died", bin.version);
        c.status_at_least(&w.broker.status(), "avoided", 2.0);
        c.finish(w);
    });
}

/// Hosts without tags (so every version can be signalled):
/// - a hostname change without IP is not shadowed: the new record has a
///   hostname, and dnsmasq gives a named, address-less record the address
///   its name has in /etc/hosts, which would confine it to one subnet. The
///   change is `"scheduled"` and a reload follows. The file is still
///   renamed in: this harness's dnsmasq (no /etc/hosts, no DNS) reads it
///   through inotify and serves the new name at once, and after the
///   reload;
/// - an IPv4 host → `ignore` is shadowed (the old record's IP needs no new
///   record to move to);
/// - `ignore` → the same IPv4 again is not: the shadowed IPv4 record still
///   holds the address, so the broker places the line for the reload (no
///   "duplicate dhcp-host IP address") and the client gets it after;
/// - a record matching only by hostname (no MAC, no client ID) is never
///   shadow-safe.
#[test]
fn hostname_and_fixed_address_rules() {
    for_each_version(|bin| {
        let c = Contract::new("hostname_and_fixed_address_rules", bin);
        let w = slow_world(bin, Mode::Pidfile);

        // Hostname change, no IP: reloaded.
        let m = mac(0x301);
        put_host(&w, "hn", json!({"macs": [m], "hostname": "hn-a"}), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "hn", 0);
        assert_eq!(lease(&w, &m, "hn-a").hostname.as_deref(), Some("hn-a"));
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "hn");
        let r = put_host(&w, "hn", json!({"macs": [m], "hostname": "hn-b"}), 200);
        c.reload(&r, "scheduled", "hostname change without IP");
        // Renamed in, not linked: dnsmasq reads it at once. This harness's
        // dnsmasq has no /etc/hosts and no DNS, so the new record gets no
        // address from its name and already wins by MAC; the reload is what
        // a dnsmasq with the name in /etc/hosts needs.
        expect_inotify_read(&c, &w, &w.dirs.hosts, "hn", before);
        if let Some(l) = before_reload(&c, &w, marks, "hostname change", || {
            lease(&w, &m, "hostname change, before the reload")
        }) {
            assert_eq!(
                l.hostname.as_deref(),
                Some("hn-b"),
                "the new record was read through inotify and matches first: {l:?}"
            );
        }
        wait_reload(&w, marks, "hostname change without IP");
        let l = lease(&w, &m, "hn-b after the reload");
        assert_eq!(l.hostname.as_deref(), Some("hn-b"), "{l:?}");
        assert!(l.is_pool_address(), "{l:?}");

        // Fixed address -> ignore.
        let m2 = mac(0x302);
        let fixed = json!({"macs": [m2], "ipv4": "192.168.77.61", "hostname": "fx"});
        put_host(&w, "fx", fixed.clone(), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "fx", 0);
        assert_eq!(lease(&w, &m2, "fixed").ip, "192.168.77.61");
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "fx");
        let r = put_host(&w, "fx", json!({"macs": [m2], "ignore": true}), 200);
        c.reload(&r, "not_needed", "IPv4 host -> ignore");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "fx", before);
        assert_no_offer(&w, &m2, "fixed host now ignored");
        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "IPv4 -> ignore");

        // ignore -> the same IPv4: held by the shadowed record until a reload.
        let marks = w.dirs.marker_reads();
        let r = put_host(&w, "fx", fixed, 200);
        c.reload(
            &r,
            "scheduled",
            "ignore -> same IPv4 as the shadowed record",
        );
        wait_reload(&w, marks, "ignore -> same IPv4");
        let l = lease(&w, &m2, "fixed again after the reload");
        assert_eq!(l.ip, "192.168.77.61", "{l:?}");
        assert_eq!(l.hostname.as_deref(), Some("fx"));

        // Matching by hostname only: never shadow-safe.
        let m3 = mac(0x303);
        let by_name = ["-x", "hostname:byname"];
        put_host(
            &w,
            "byname",
            json!({"hostname": "byname", "lease_time": "1h"}),
            201,
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "byname", 0);
        let l = lease_with(&w, &m3, &by_name, "by hostname");
        assert_eq!(l.lease_secs, Some(3600), "{l:?}");
        let marks = w.dirs.marker_reads();
        let r = put_host(
            &w,
            "byname",
            json!({"hostname": "byname", "lease_time": "2h"}),
            200,
        );
        c.reload(&r, "scheduled", "hostname-only record replaced");
        wait_reload(&w, marks, "hostname-only record replaced");
        let l = lease_with(&w, &m3, &by_name, "by hostname, after reload");
        assert_eq!(l.lease_secs, Some(7200), "{l:?}");
        c.finish(w);
    });
}

/// Two MACs, tag changed, both MACs kept: shadowed for both.
#[test]
fn multi_mac_tag_change_is_shadowed() {
    for_each_version(|bin| {
        let c = Contract::new("multi_mac_tag_change_is_shadowed", bin);
        let w = world(bin, Mode::Pidfile, &[]);
        put_boot_options(&w, &[("a", "a.efi"), ("b", "b.efi")]);
        let (m1, m2) = (mac(0x401), mac(0x402));
        put_host(
            &w,
            "multi",
            json!({"macs": [m1, m2], "set_tags": ["a"]}),
            201,
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "multi", 0);
        for m in [&m1, &m2] {
            assert_eq!(lease(&w, m, "tag a").boot_file(), Some("a.efi"));
        }
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "multi");
        let r = put_host(
            &w,
            "multi",
            json!({"macs": [m1, m2], "set_tags": ["b"]}),
            200,
        );
        c.reload(&r, "not_needed", "[m1,m2] tag a -> b");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "multi", before);
        for m in [&m1, &m2] {
            let l = lease(&w, m, "tag b");
            assert_eq!(l.boot_file(), Some("b.efi"), "{m}: {l:?}");
        }
        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "[m1,m2] tag change");
        c.finish(w);
    });
}

/// `[m1,m2]` → `[m1]`: the old record keeps serving m2 until a reload, so
/// one is needed. Proven before (m2 still gets the old tag's boot file) and
/// after (m2 is unknown: pool address, no boot file).
#[test]
fn multi_mac_drop_needs_reload() {
    for_each_version(|bin| {
        let c = Contract::new("multi_mac_drop_needs_reload", bin);
        let w = slow_world(bin, tagged_reload_mode(bin));
        put_boot_options(&w, &[("a", "a.efi"), ("b", "b.efi")]);
        let (m1, m2) = (mac(0x501), mac(0x502));
        put_host(
            &w,
            "multi",
            json!({"macs": [m1, m2], "set_tags": ["a"]}),
            201,
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "multi", 0);
        assert_eq!(lease(&w, &m2, "m2 before").boot_file(), Some("a.efi"));

        let marks = w.dirs.marker_reads();
        let r = put_host(&w, "multi", json!({"macs": [m1], "set_tags": ["b"]}), 200);
        c.reload(&r, "scheduled", "[m1,m2] -> [m1]");
        if let Some(l) = before_reload(&c, &w, marks, "m2 dropped", || {
            lease(&w, &m2, "dropped MAC before the reload")
        }) {
            assert_eq!(
                l.boot_file(),
                Some("a.efi"),
                "until the reload dnsmasq still serves the dropped MAC from the old record: {l:?}"
            );
        }
        wait_reload(&w, marks, "[m1,m2] -> [m1]");
        let l1 = lease(&w, &m1, "m1 after the reload");
        assert_eq!(l1.boot_file(), Some("b.efi"), "{l1:?}");
        let l2 = lease(&w, &m2, "m2 after the reload");
        assert_eq!(l2.boot_file(), None, "dropped MAC still tagged: {l2:?}");
        assert!(l2.is_pool_address(), "{l2:?}");
        c.finish(w);
    });
}

/// Client IDs (udhcpc `-x 0x3d:<hex>` sends one instead of `01:<mac>`).
/// dnsmasq looks for a record with the client's ID before it looks at
/// MACs, in every record it holds, so:
/// - same MAC and client ID, `set:` tag changed: shadowed;
/// - client ID changed: until a reload the old record still wins for a
///   client sending the old ID (proven before and after);
/// - client ID dropped: likewise for the remaining ID.
///
/// Every step changes only the record's tag, observed through the boot
/// file of an options file per tag: no hostname, so the client-ID rule
/// alone decides. `set:` hosts: 2.90 runs supervised (restarted, not
/// signalled).
///
/// (Adding a client ID to a record that had none is not asserted either
/// way: dnsmasq's MAC pass would still find the new record first, but the
/// broker may reload it.)
#[test]
fn client_id_rules() {
    const CID: &str = "ff:00:5d:00:06:01";
    const CID2: &str = "ff:00:5d:00:06:02";
    fn send(cid: &str) -> [String; 2] {
        ["-x".to_owned(), format!("0x3d:{}", cid.replace(':', ""))]
    }
    for_each_version(|bin| {
        let c = Contract::new("client_id_rules", bin);
        let w = slow_world(bin, tagged_reload_mode(bin));
        put_boot_options(
            &w,
            &[
                ("ca", "ca.efi"),
                ("cb", "cb.efi"),
                ("cc", "cc.efi"),
                ("cd", "cd.efi"),
            ],
        );
        let m = mac(0x601);
        let (sent, sent2) = (send(CID), send(CID2));
        let with_cid: Vec<&str> = sent.iter().map(String::as_str).collect();
        let with_cid2: Vec<&str> = sent2.iter().map(String::as_str).collect();
        let spec = |cid: Option<&str>, tag: &str| match cid {
            Some(cid) => json!({"macs": [m], "client_id": cid, "set_tags": [tag]}),
            None => json!({"macs": [m], "set_tags": [tag]}),
        };
        put_host(&w, "cid", spec(Some(CID), "ca"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "cid", 0);
        let l = lease_with(&w, &m, &with_cid, "client ID");
        assert_eq!(l.boot_file(), Some("ca.efi"), "{l:?}");

        // Same MAC and client ID, tag changed: shadowed.
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "cid");
        let r = put_host(&w, "cid", spec(Some(CID), "cb"), 200);
        c.reload(&r, "not_needed", "same client ID, tag changed");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "cid", before);
        let l = lease_with(&w, &m, &with_cid, "same client ID");
        assert_eq!(l.boot_file(), Some("cb.efi"), "{l:?}");
        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "same client ID");

        // Client ID changed.
        let marks = w.dirs.marker_reads();
        let r = put_host(&w, "cid", spec(Some(CID2), "cc"), 200);
        c.reload(&r, "scheduled", "client ID changed");
        if let Some(l) = before_reload(&c, &w, marks, "client ID changed", || {
            lease_with(&w, &m, &with_cid, "old client ID, before the reload")
        }) {
            assert_eq!(
                l.boot_file(),
                Some("cb.efi"),
                "until the reload the record with the old client ID still matches first: {l:?}"
            );
        }
        wait_reload(&w, marks, "client ID changed");
        let l = lease_with(&w, &m, &with_cid2, "new client ID, after the reload");
        assert_eq!(l.boot_file(), Some("cc.efi"), "{l:?}");
        let l = lease_with(&w, &m, &with_cid, "old client ID, after the reload");
        assert_eq!(l.boot_file(), Some("cc.efi"), "MAC match: {l:?}");

        // Client ID dropped.
        let marks = w.dirs.marker_reads();
        let r = put_host(&w, "cid", spec(None, "cd"), 200);
        c.reload(&r, "scheduled", "client ID dropped");
        if let Some(l) = before_reload(&c, &w, marks, "client ID dropped", || {
            lease_with(&w, &m, &with_cid2, "client ID dropped, before the reload")
        }) {
            assert_eq!(
                l.boot_file(),
                Some("cc.efi"),
                "until the reload the record with the client ID still matches first: {l:?}"
            );
        }
        wait_reload(&w, marks, "client ID dropped");
        let l = lease_with(&w, &m, &with_cid2, "client ID dropped, after the reload");
        assert_eq!(l.boot_file(), Some("cd.efi"), "{l:?}");
        c.finish(w);
    });
}

/// `tag:` match filters on a host (`match_tags`). The client sets tag
/// `ipxe` by sending option 175 (`--dhcp-match=set:ipxe,175` in the
/// harness's dnsmasq). dnsmasq prefers a record whose filter matches over
/// one without a filter, however new: keeping the filter (tag changed) is
/// shadowed, dropping it is not. Observed through the boot file of the
/// record's `set:` tag (no hostname, so the filter rule alone decides);
/// 2.90 runs supervised (restarted, not signalled).
#[test]
fn match_tag_filter_change_needs_reload() {
    const IPXE: [&str; 2] = ["-x", "0xaf:01"];
    for_each_version(|bin| {
        let c = Contract::new("match_tag_filter_change_needs_reload", bin);
        let w = slow_world(bin, tagged_reload_mode(bin));
        put_boot_options(&w, &[("ma", "ma.efi"), ("mb", "mb.efi"), ("mc", "mc.efi")]);
        let m = mac(0x701);
        put_host(
            &w,
            "mt",
            json!({"macs": [m], "match_tags": ["ipxe"], "set_tags": ["ma"]}),
            201,
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "mt", 0);
        let l = lease_with(&w, &m, &IPXE, "ipxe client");
        assert_eq!(l.boot_file(), Some("ma.efi"), "{l:?}");
        let l = lease(&w, &m, "client without the tag");
        assert_eq!(
            l.boot_file(),
            None,
            "filtered record served without its tag: {l:?}"
        );

        // Same filter, tag changed: shadowed.
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "mt");
        let r = put_host(
            &w,
            "mt",
            json!({"macs": [m], "match_tags": ["ipxe"], "set_tags": ["mb"]}),
            200,
        );
        c.reload(&r, "not_needed", "same match_tags, tag changed");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "mt", before);
        let l = lease_with(&w, &m, &IPXE, "ipxe client, same filter");
        assert_eq!(l.boot_file(), Some("mb.efi"), "{l:?}");
        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "same match_tags");

        // Filter dropped.
        let marks = w.dirs.marker_reads();
        let r = put_host(&w, "mt", json!({"macs": [m], "set_tags": ["mc"]}), 200);
        c.reload(&r, "scheduled", "match_tags dropped");
        if let Some(l) = before_reload(&c, &w, marks, "match_tags dropped", || {
            lease_with(&w, &m, &IPXE, "ipxe client before the reload")
        }) {
            assert_eq!(
                l.boot_file(),
                Some("mb.efi"),
                "until the reload the filtered record still wins for a tagged client: {l:?}"
            );
        }
        wait_reload(&w, marks, "match_tags dropped");
        let l = lease_with(&w, &m, &IPXE, "ipxe client after the reload");
        assert_eq!(l.boot_file(), Some("mc.efi"), "{l:?}");
        let l = lease(&w, &m, "plain client after the reload");
        assert_eq!(l.boot_file(), Some("mc.efi"), "{l:?}");
        c.finish(w);
    });
}

/// Options files: shadow-safe while every old line's (option, tag set) is
/// still there. Value change and an added line: no reload, served at once.
/// An option dropped: reload, served until it. A line's tag set changed:
/// reload.
#[test]
fn options_rules() {
    const IPXE: [&str; 2] = ["-x", "0xaf:01"];
    for_each_version(|bin| {
        let c = Contract::new("options_rules", bin);
        let w = slow_world(bin, tagged_reload_mode(bin));
        put_boot_options(&w, &[("t2", "second.efi")]);
        let m = mac(0x801);
        put_host(&w, "node", ironic_host(&[&m], "t2"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "node", 0);
        assert_eq!(lease(&w, &m, "second").boot_file(), Some("second.efi"));

        // Value change.
        let marks = w.dirs.marker_reads();
        let before = opt_reads(&w, "t2");
        let r = put_options(&w, "t2", &["tag:t2,67,third.efi"], 200);
        c.reload(&r, "not_needed", "option value change");
        expect_inotify_read(&c, &w, &w.dirs.opts, "t2", before);
        assert_eq!(lease(&w, &m, "third").boot_file(), Some("third.efi"));

        // A line added (domain name, option 15: udhcpc asks for it).
        let before = opt_reads(&w, "t2");
        let r = put_options(
            &w,
            "t2",
            &["tag:t2,67,third.efi", "tag:t2,15,t2.example"],
            200,
        );
        c.reload(&r, "not_needed", "option line added");
        expect_inotify_read(&c, &w, &w.dirs.opts, "t2", before);
        let l = lease(&w, &m, "line added");
        assert_eq!(l.boot_file(), Some("third.efi"), "{l:?}");
        assert_eq!(
            l.vars.get("domain").map(String::as_str),
            Some("t2.example"),
            "{l:?}"
        );
        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "value change and added line");

        // Option 67 dropped.
        let marks = w.dirs.marker_reads();
        let r = put_options(&w, "t2", &["tag:t2,15,t2.example"], 200);
        c.reload(&r, "scheduled", "option dropped");
        if let Some(l) = before_reload(&c, &w, marks, "option dropped", || {
            lease(&w, &m, "option dropped, before the reload")
        }) {
            assert_eq!(
                l.boot_file(),
                Some("third.efi"),
                "until the reload the dropped option is still served: {l:?}"
            );
        }
        wait_reload(&w, marks, "option dropped");
        let l = lease(&w, &m, "option dropped, after the reload");
        assert_eq!(l.boot_file(), None, "{l:?}");
        assert_eq!(
            l.vars.get("domain").map(String::as_str),
            Some("t2.example"),
            "{l:?}"
        );

        // Tag set of a line changed: {t2} -> {t2, !ipxe}.
        let marks = w.dirs.marker_reads();
        let r = put_options(&w, "t2", &["tag:t2,tag:!ipxe,15,plain.example"], 200);
        c.reload(&r, "scheduled", "tag set of a line changed");
        wait_reload(&w, marks, "tag set changed");
        let l = lease(&w, &m, "plain client after the tag-set change");
        assert_eq!(
            l.vars.get("domain").map(String::as_str),
            Some("plain.example"),
            "{l:?}"
        );
        let l = lease_with(&w, &m, &IPXE, "ipxe client after the tag-set change");
        assert_eq!(
            l.vars.get("domain"),
            None,
            "the old line ({{t2}}, 15) is still served after the reload: {l:?}"
        );
        c.finish(w);
    });
}

/// A dhcp-host with an IPv6 address: a replace gaining one, and one keeping
/// it while gaining an IPv4 address and a hostname (neither shadows: the
/// new record matches on fewer subnets, or has a name), need a reload and
/// leave no "duplicate dhcp-host IP address" in the log; a create with one
/// needs none. (Keeping the IPv6 address without an IPv4 one shadows:
/// `dhcpv6_same_address_replaces_are_shadowed`.)
///
/// What DHCPv4 shows: a record whose only address is IPv6 is not for the
/// IPv4 network (dnsmasq tags the client `known-othernet` and sends none of
/// the record's options, not even its hostname), so the step that keeps
/// the IPv6 address also adds an IPv4 one to make the new record visible.
/// The DHCPv6 side is proven with `dhclient -6` in the `dhcpv6_*` tests
/// below.
#[test]
fn ipv6_address_needs_reload() {
    for_each_version(|bin| {
        let c = Contract::new("ipv6_address_needs_reload", bin);
        let w = world(bin, Mode::Pidfile, &[]);
        let m = mac(0x901);
        let v6 = "fd00:5d::10";
        put_host(&w, "v6", json!({"macs": [m], "hostname": "v6-a"}), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "v6", 0);
        assert_eq!(lease(&w, &m, "v6-a").hostname.as_deref(), Some("v6-a"));

        // Gaining an IPv6 address.
        let marks = w.dirs.marker_reads();
        let r = put_host(
            &w,
            "v6",
            json!({"macs": [m], "ipv6": v6, "hostname": "v6-b"}),
            200,
        );
        c.reload(&r, "scheduled", "replace gaining an IPv6 address");
        wait_reload(&w, marks, "IPv6 gained");
        let othernet = w.dirs.log_lines_with("known-othernet").len();
        let l = lease(&w, &m, "IPv6-only record");
        assert_eq!(
            l.hostname, None,
            "the v6-a record survived the reload: {l:?}"
        );
        assert!(
            w.dirs.log_lines_with("known-othernet").len() > othernet,
            "dnsmasq did not see the IPv6-only record for {m}"
        );

        // Keeping the same IPv6 address (and adding an IPv4 one).
        let marks = w.dirs.marker_reads();
        let spec = json!({"macs": [m], "ipv4": "192.168.77.65", "ipv6": v6, "hostname": "v6-c"});
        let r = put_host(&w, "v6", spec, 200);
        c.reload(&r, "scheduled", "replace keeping the IPv6 address");
        wait_reload(&w, marks, "same IPv6");
        let l = lease(&w, &m, "v6-c");
        assert_eq!(l.ip, "192.168.77.65", "{l:?}");
        assert_eq!(l.hostname.as_deref(), Some("v6-c"), "{l:?}");

        // A create with an IPv6 address: inotify, no reload.
        let m2 = mac(0x902);
        let marks = w.dirs.marker_reads();
        let spec = json!({"macs": [m2], "ipv6": "fd00:5d::20", "hostname": "v6-new"});
        let r = put_host(&w, "v6-new", spec, 201);
        c.reload(&r, "not_needed", "create with an IPv6 address");
        w.dirs.wait_file_read(&w.dirs.hosts, "v6-new", 0);
        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "create with IPv6");
        let dup = w.dirs.log_lines_with("duplicate");
        assert!(dup.is_empty(), "duplicate lines: {dup:?}");
        c.finish(w);
    });
}

/// A deleted host's record stays in dnsmasq until a reload and keeps its
/// IP: a create reusing that IP before the reload must be placed for the
/// reload (`"scheduled"`), not read through inotify (where dnsmasq would
/// refuse it as a duplicate). After the reload the new MAC gets the IP.
#[test]
fn ghost_address_reuse_waits_for_the_reload() {
    for_each_version(|bin| {
        let c = Contract::new("ghost_address_reuse_waits_for_the_reload", bin);
        let w = slow_world(bin, Mode::Pidfile);
        let (m1, m2) = (mac(0xa01), mac(0xa02));
        let ip = "192.168.77.70";
        put_host(
            &w,
            "ghost-a",
            json!({"macs": [m1], "ipv4": ip, "hostname": "ghost-a"}),
            201,
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "ghost-a", 0);
        assert_eq!(lease(&w, &m1, "ghost-a").ip, ip);

        let marks = w.dirs.marker_reads();
        let r = w.broker.delete_host("ghost-a", false);
        assert_status(&r, 204, "DELETE ghost-a");
        let r = put_host(
            &w,
            "ghost-b",
            json!({"macs": [m2], "ipv4": ip, "hostname": "ghost-b"}),
            201,
        );
        c.reload(&r, "scheduled", "create reusing a deleted record's IP");
        if let Some(l) = before_reload(&c, &w, marks, "IP reuse", || {
            lease(&w, &m1, "deleted host before the reload")
        }) {
            assert_eq!(
                l.ip, ip,
                "until the reload the deleted record is served: {l:?}"
            );
        }
        let dup = w.dirs.log_lines_with("duplicate");
        assert!(
            dup.is_empty(),
            "dnsmasq read the new line while the ghost held {ip}: {dup:?}"
        );
        wait_reload(&w, marks, "IP reuse");
        // m1 first: its lease on .70 is moved to a pool address (dnsmasq
        // would not hand m2 an address still leased to m1).
        let l1 = lease(&w, &m1, "deleted host after the reload");
        assert!(l1.is_pool_address(), "{l1:?}");
        let l2 = lease(&w, &m2, "new host after the reload");
        assert_eq!(l2.ip, ip, "{l2:?}");
        assert_eq!(l2.hostname.as_deref(), Some("ghost-b"));
        c.finish(w);
    });
}

/// Shadowed records pile up in dnsmasq's memory: past `--cleanup-ghosts`
/// (here 2) the broker sends one reload with reason `cleanup` once
/// `--cleanup-quiet-ms` passed without changes. The ghosts come from three
/// `set:` tag changes, each served at once (boot file of the new tag); 2.90
/// runs supervised, so its cleanup reload is a restart.
#[test]
fn cleanup_reload_after_ghost_threshold() {
    for_each_version(|bin| {
        let c = Contract::new("cleanup_reload_after_ghost_threshold", bin);
        let w = world(
            bin,
            tagged_reload_mode(bin),
            &["--cleanup-ghosts", "2", "--cleanup-quiet-ms", "200"],
        );
        put_boot_options(
            &w,
            &[
                ("c0", "c0.efi"),
                ("c1", "c1.efi"),
                ("c2", "c2.efi"),
                ("c3", "c3.efi"),
            ],
        );
        let m = mac(0xb01);
        let spec = |i: u32| json!({"macs": [m], "set_tags": [format!("c{i}")]});
        put_host(&w, "cl", spec(0), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "cl", 0);
        assert_eq!(lease(&w, &m, "c0").boot_file(), Some("c0.efi"));
        let marks = w.dirs.marker_reads();
        for i in 1..=2 {
            let before = host_reads(&w, "cl");
            let r = put_host(&w, "cl", spec(i), 200);
            c.reload(&r, "not_needed", &format!("tag change {i}"));
            expect_inotify_read(&c, &w, &w.dirs.hosts, "cl", before);
            let l = lease(&w, &m, &format!("after tag change {i}"));
            let want = format!("c{i}.efi");
            assert_eq!(l.boot_file(), Some(want.as_str()), "{l:?}");
        }
        thread::sleep(Duration::from_millis(800));
        c.no_reload(&w, marks, "two ghosts (not above --cleanup-ghosts 2)");
        let status = w.broker.status();
        c.check(status["reload"]["ghosts"] == json!(2), || {
            format!(
                "status.reload.ghosts after 2 shadowing replaces: {}",
                status["reload"]
            )
        });

        let t = Instant::now();
        let r = put_host(&w, "cl", spec(3), 200);
        c.reload(&r, "not_needed", "tag change 3");
        let cleaned = w
            .dirs
            .marker_reads_above_within(marks, Duration::from_secs(10));
        c.check(cleaned, || {
            "no cleanup reload within 10 s of the third ghost".to_owned()
        });
        if cleaned {
            eprintln!(
                "cleanup {}: reload {:?} after the third ghost",
                bin.version,
                t.elapsed()
            );
            c.check(t.elapsed() >= Duration::from_millis(150), || {
                format!(
                    "cleanup reload after {:?}, before --cleanup-quiet-ms 200",
                    t.elapsed()
                )
            });
            let settled = e2e::wait_until(Duration::from_secs(5), || {
                w.broker.status()["reload"]["last"]["reason"] == "cleanup"
            });
            let status = w.broker.status();
            c.check(settled, || {
                format!("status.reload.last is not a cleanup: {}", status["reload"])
            });
            c.check(status["reload"]["ghosts"] == json!(0), || {
                format!(
                    "status.reload.ghosts after the cleanup: {}",
                    status["reload"]
                )
            });
            c.status_at_least(&status, "avoided", 3.0);
            c.status_at_least(&status, "stall_ms_last", 0.0);
            c.status_at_least(&status, "stall_ms_estimate", 0.0);
            eprintln!(
                "cleanup {}: status reload {}",
                bin.version, status["reload"]
            );
        }
        let l = lease(&w, &m, "after the cleanup");
        assert_eq!(l.boot_file(), Some("c3.efi"), "{l:?}");
        thread::sleep(Duration::from_millis(600));
        let after = w.dirs.marker_reads();
        c.check(after <= marks + 1, || {
            format!("{} reloads, want one cleanup", after - marks)
        });
        c.finish(w);
    });
}

/// With `--reload-budget-percent P` a reload of stall S spaces the next by
/// S·(100/P − 1): a `DELETE ?wait=reload` right after a reload cannot be
/// covered within `--request-timeout-ms 1500` and answers 503
/// `reload_deferred` (the delete itself is stored). The deleted record is
/// served until the deferred reload, then the client gets a pool address.
///
/// P is 0.2%, not 1%: with a handful of files S is only ~15 ms here, so 1%
/// spaces reloads by ~1.4 s — too close to the 1.5 s timeout to tell a
/// deferral from a slow reload. At 0.2% the spacing is ~500·S (~7 s).
#[test]
fn delete_under_stall_budget_is_deferred() {
    const BUDGET_PERCENT: &str = "0.2";
    for_each_version(|bin| {
        let c = Contract::new("delete_under_stall_budget_is_deferred", bin);
        let w = world(
            bin,
            Mode::Pidfile,
            &[
                "--reload-budget-percent",
                BUDGET_PERCENT,
                "--request-timeout-ms",
                "1500",
            ],
        );
        let m = mac(0xc01);
        let ip = "192.168.77.80";
        put_host(
            &w,
            "bud",
            json!({"macs": [m], "ipv4": ip, "hostname": "bud"}),
            201,
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "bud", 0);
        assert_eq!(lease(&w, &m, "before").ip, ip);

        // One reload, so the budget has a measured stall.
        let marks = w.dirs.marker_reads();
        let r = w.broker.post("/v1/reload?wait=reload", &json!({}));
        assert_status(&r, 200, "POST /v1/reload?wait=reload");
        wait_reload(&w, marks, "manual reload");
        let status = w.broker.status();
        eprintln!(
            "budget {}: after the first reload: {}",
            bin.version, status["reload"]
        );
        c.status_at_least(&status, "stall_ms_last", 0.0);
        c.status_at_least(&status, "budget_used_percent", 0.0);
        let budget = status["reload"]["budget_percent"].as_f64();
        c.check(budget.is_some_and(|b| (b - 0.2).abs() < 1e-6), || {
            format!("status.reload.budget_percent: {}", status["reload"])
        });

        let marks = w.dirs.marker_reads();
        let t = Instant::now();
        let r = w.broker.delete_host("bud", true);
        let took = t.elapsed();
        eprintln!(
            "budget {}: DELETE ?wait=reload answered {} after {took:?}",
            bin.version, r.status
        );
        c.check(
            r.status == 503 && r.body["error"]["code"] == "reload_deferred",
            || {
                format!(
                "DELETE ?wait=reload under budget: want 503 reload_deferred, got {} {} (status {})",
                r.status,
                r.text,
                w.broker.status()["reload"]
            )
            },
        );
        assert!(
            took < Duration::from_millis(4000),
            "DELETE ?wait=reload took {took:?} with --request-timeout-ms 1500"
        );
        assert!(
            !w.dirs.hosts.join("bud").exists(),
            "the delete itself must be stored"
        );
        assert_status(&w.broker.get("/v1/hosts/bud"), 404, "GET deleted host");

        if let Some(l) = before_reload(&c, &w, marks, "deferred delete", || {
            lease(&w, &m, "deleted, reload deferred")
        }) {
            assert_eq!(
                l.ip, ip,
                "the deleted record is served until the reload: {l:?}"
            );
        }
        let status = w.broker.status();
        eprintln!("budget {}: deferred: {}", bin.version, status["reload"]);
        c.check(status["reload"]["pending"] == json!(true), || {
            format!(
                "no reload pending after a deferred delete: {}",
                status["reload"]
            )
        });
        c.status_at_least(&status, "budget_used_percent", 0.0);
        c.status_at_least(&status, "stall_ms_estimate", 0.0);

        // The deferred reload comes after ~100 x the measured stall.
        let t = Instant::now();
        assert!(
            w.dirs
                .marker_reads_above_within(marks, Duration::from_secs(60)),
            "the deferred reload never came; status {}",
            w.broker.status()["reload"]
        );
        eprintln!(
            "budget {}: deferred reload after {:?}",
            bin.version,
            t.elapsed()
        );
        let l = lease(&w, &m, "after the deferred reload");
        assert!(l.is_pool_address(), "deleted host still served: {l:?}");
        c.finish(w);
    });
}

/// `--reload-policy coalesce`: the old behaviour, every replace reloads,
/// even one the shadow policy would not.
#[test]
fn coalesce_policy_reloads_every_replace() {
    for_each_version(|bin| {
        let c = Contract::new("coalesce_policy_reloads_every_replace", bin);
        let w = world(bin, Mode::Pidfile, &["--reload-policy", "coalesce"]);
        let m = mac(0xd01);
        put_host(&w, "co", json!({"macs": [m], "hostname": "co-a"}), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "co", 0);
        assert_eq!(lease(&w, &m, "co-a").hostname.as_deref(), Some("co-a"));
        let marks = w.dirs.marker_reads();
        let r = put_host(&w, "co", json!({"macs": [m], "hostname": "co-b"}), 200);
        c.reload(&r, "scheduled", "coalesce: shadow-safe replace");
        wait_reload(&w, marks, "coalesce replace");
        assert_eq!(lease(&w, &m, "co-b").hostname.as_deref(), Some("co-b"));
        let status = w.broker.status();
        c.check(status["reload"]["policy"] == "coalesce", || {
            format!("status.reload.policy: {}", status["reload"])
        });
        c.finish(w);
    });
}

// ---------------------------------------------------------------------------
// DHCPv6 (harness: tests/e2e/v6.rs, ISC `dhclient -6`). dnsmasq's DHCPv6
// path (src/rfc3315.c `dhcp6_no_relay`) finds the record with the same
// `find_config` as DHCPv4 and picks options with the same `option_filter`
// (over the `option6:` list), so the rules above hold for it; what differs
// is `is_config_in_context` (an IPv6 record matches only where a DHCPv6
// range holds its address, and no DHCPv4 client) and the duplicate check
// (IPv4 addresses only). Every version: the rules apply to all of them.

/// A world with IPv6 and a DHCPv6 range, the policy flags, a 50 ms quiet
/// period.
fn world6(bin: &DnsmasqBinary, mode: Mode, extra: &[&str]) -> World {
    e2e::v6::world6(bin, mode, 50, &policy_flags(extra))
}

/// A quiet period long enough for one DHCPv6 exchange before a scheduled
/// reload: dhclient waits up to 1 s before its first Solicit and 1 s for
/// Advertises (RFC 8415's SOL_MAX_DELAY and SOL_TIMEOUT), so an exchange
/// takes about 1.5 s on an idle machine.
const SLOW_QUIET6_MS: u64 = 5000;

/// Like [`world6`], with scheduled reloads waiting [`SLOW_QUIET6_MS`].
fn slow_world6(bin: &DnsmasqBinary, mode: Mode) -> World {
    e2e::v6::world6(
        bin,
        mode,
        SLOW_QUIET6_MS,
        &policy_flags(&["--reload-max-delay-ms", "10000"]),
    )
}

fn url6(tag: &str) -> String {
    format!("http://[{}]/{tag}.efi", e2e::v6::SERVER_IP6)
}

/// One options file per tag with its boot-file URL (`option6:59`, as the
/// Ironic provider writes it) and a DHCPv4 boot file.
fn put_boot6_options(w: &World, tags: &[&str]) {
    for tag in tags {
        let v6 = format!("tag:{tag},option6:59,{}", url6(tag));
        let v4 = format!("tag:{tag},67,{tag}.efi");
        let r = put_options(w, tag, &[v6.as_str(), v4.as_str()], 201);
        assert_eq!(r.body["reload"], "not_needed", "create: {}", r.text);
        w.dirs.wait_file_read(&w.dirs.opts, tag, 0);
    }
}

fn lease6(w: &World, c: &Client6, why: &str) -> Lease6 {
    w.net
        .dhcp6_request(c)
        .unwrap_or_else(|| panic!("{why}: no DHCPv6 lease for {}", c.mac))
}

fn assert_ignored6(w: &World, c: &Client6, why: &str) {
    if let Some(l) = w.net.dhcp6_expect_ignored(c, &w.dirs) {
        panic!("{why}: {} got a DHCPv6 lease: {l:?}", c.mac);
    }
}

/// The new rule: a host keeping its IPv6 address (and having no IPv4 one)
/// shadows its old version — tags changed, `ignore`, back — by MAC, by
/// DUID, and with a host part only (`[::e3]`). dnsmasq does not compare IPv6 addresses ("duplicate dhcp-host IP
/// address" is IPv4 only), and the same address puts both records in the
/// same DHCPv6 ranges. DHCPv4 clients of the MAC match neither record (an
/// IPv6-only record is for no IPv4 subnet: `known-othernet`).
#[test]
fn dhcpv6_same_address_replaces_are_shadowed() {
    for_v6_versions(&[], |bin| {
        let c = Contract::new("dhcpv6_same_address_replaces_are_shadowed", bin);
        let w = world6(bin, Mode::Pidfile, &[]);
        put_boot6_options(&w, &["s1", "s2"]);
        let m = mac(0xe01);
        let a = "fd00:5d::e1";
        let cl = Client6::new(&w.net, &m, Duid::Ll);
        let spec = |tag: &str| json!({"macs": [m], "ipv6": a, "set_tags": [tag, "ironic"]});
        let r = put_host(&w, "same", spec("s1"), 201);
        c.reload(&r, "not_needed", "create");
        w.dirs.wait_file_read(&w.dirs.hosts, "same", 0);
        let l = lease6(&w, &cl, "s1");
        assert_eq!((l.address(), l.bootfile_url.clone()), (a, Some(url6("s1"))));
        let marks = w.dirs.marker_reads();

        for (step, body) in [
            ("s2", spec("s2")),
            ("ignore", json!({"macs": [m], "ipv6": a, "ignore": true})),
            ("s1", spec("s1")),
        ] {
            let before = host_reads(&w, "same");
            let r = put_host(&w, "same", body, 200);
            c.reload(&r, "not_needed", &format!("same IPv6 address, {step}"));
            expect_inotify_read(&c, &w, &w.dirs.hosts, "same", before);
            if step == "ignore" {
                assert_ignored6(&w, &cl, "same address, ignore");
            } else {
                let l = lease6(&w, &cl, step);
                assert_eq!(
                    (l.address(), l.bootfile_url.clone()),
                    (a, Some(url6(step))),
                    "after the change to {step}"
                );
            }
            c.no_reload(&w, marks, &format!("same IPv6 address, {step}, served"));
        }

        // By DUID.
        let m2 = mac(0xe02);
        let a2 = "fd00:5d::e2";
        let cl2 = Client6::new(&w.net, &m2, Duid::Ll);
        let spec2 = |tag: &str| json!({"client_id": cl2.ll_duid(), "ipv6": a2, "set_tags": [tag]});
        put_host(&w, "same-id", spec2("s1"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "same-id", 0);
        let l = lease6(&w, &cl2, "by DUID, s1");
        assert_eq!(
            (l.address(), l.bootfile_url.clone()),
            (a2, Some(url6("s1")))
        );
        let before = host_reads(&w, "same-id");
        let r = put_host(&w, "same-id", spec2("s2"), 200);
        c.reload(&r, "not_needed", "same DUID and IPv6 address, tag changed");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "same-id", before);
        let l = lease6(&w, &cl2, "by DUID, s2");
        assert_eq!(
            (l.address(), l.bootfile_url.clone()),
            (a2, Some(url6("s2")))
        );

        // A host part only (`[::e3]`: dnsmasq completes it with each /64
        // range's prefix), kept.
        let m3 = mac(0xe03);
        let cl3 = Client6::new(&w.net, &m3, Duid::Ll);
        let spec3 = |tag: &str| json!({"macs": [m3], "ipv6": "::e3", "set_tags": [tag]});
        put_host(&w, "same-part", spec3("s1"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "same-part", 0);
        let l = lease6(&w, &cl3, "host part, s1");
        let a3 = "fd00:5d::e3";
        assert_eq!(
            (l.address(), l.bootfile_url.clone()),
            (a3, Some(url6("s1")))
        );
        let before = host_reads(&w, "same-part");
        let r = put_host(&w, "same-part", spec3("s2"), 200);
        c.reload(&r, "not_needed", "same IPv6 host part, tag changed");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "same-part", before);
        let l = lease6(&w, &cl3, "host part, s2");
        assert_eq!(
            (l.address(), l.bootfile_url.clone()),
            (a3, Some(url6("s2")))
        );

        // DHCPv4: the IPv6-only records are for no IPv4 subnet, old or new.
        let othernet = w.dirs.log_lines_with("known-othernet").len();
        let l4 = lease(&w, &m, "DHCPv4 of an IPv6-only host");
        assert!(l4.is_pool_address(), "{l4:?}");
        assert_eq!(l4.boot_file(), None, "the s1 tag reached DHCPv4: {l4:?}");
        assert!(
            w.dirs.log_lines_with("known-othernet").len() > othernet,
            "dnsmasq did not tag {m} known-othernet"
        );

        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "same-address replaces");
        let dup = w.dirs.log_lines_with("duplicate");
        assert!(dup.is_empty(), "duplicate lines: {dup:?}");
        let status = w.broker.status();
        c.status_at_least(&status, "avoided", 5.0);
        c.status_at_least(&status, "ghosts", 5.0);
        c.finish(w);
    });
}

/// The rules DHCPv4 proved, with a DHCPv6 client: `set:` tag changes pick
/// the new tag's `option6:` boot URL at once; a host with an IPv6 address
/// → `ignore` is ignored at once, and → tags without an address gets a
/// pool address (the shadowed record's address is not given); a DUID
/// record's tag change is served at once. No reload.
#[test]
fn dhcpv6_tags_and_ignore_without_address_are_shadowed() {
    for_v6_versions(&[], |bin| {
        let c = Contract::new("dhcpv6_tags_and_ignore_without_address_are_shadowed", bin);
        let w = world6(bin, Mode::Pidfile, &[]);
        put_boot6_options(&w, &["u1", "u2"]);
        let marks = w.dirs.marker_reads();
        let step = |name: &str, body: Value, what: &str| {
            let before = host_reads(&w, name);
            let r = put_host(&w, name, body, 200);
            c.reload(&r, "not_needed", what);
            expect_inotify_read(&c, &w, &w.dirs.hosts, name, before);
        };

        // Tag change.
        let m1 = mac(0xe11);
        let c1 = Client6::new(&w.net, &m1, Duid::Ll);
        put_host(&w, "tags", ironic_host(&[&m1], "u1"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "tags", 0);
        let l = lease6(&w, &c1, "u1");
        assert_eq!(l.bootfile_url, Some(url6("u1")), "{l:?}");
        step("tags", ironic_host(&[&m1], "u2"), "tag change");
        let l = lease6(&w, &c1, "u2");
        assert_eq!(l.bootfile_url, Some(url6("u2")), "{l:?}");
        assert!(l.only_pool(), "{l:?}");

        // Fixed address -> ignore -> tags without an address.
        let m2 = mac(0xe12);
        let a = "fd00:5d::e12";
        let c2 = Client6::new(&w.net, &m2, Duid::Ll);
        put_host(&w, "fixed", json!({"macs": [m2], "ipv6": a}), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "fixed", 0);
        assert_eq!(lease6(&w, &c2, "fixed").address(), a);
        step(
            "fixed",
            json!({"macs": [m2], "ignore": true}),
            "IPv6 host -> ignore",
        );
        assert_ignored6(&w, &c2, "IPv6 host -> ignore");
        step("fixed", ironic_host(&[&m2], "u1"), "ignore -> tags");
        let l = lease6(&w, &c2, "ignore -> tags");
        assert_eq!(l.bootfile_url, Some(url6("u1")), "{l:?}");
        assert!(l.only_pool() && !l.has(a), "{l:?}");

        // By DUID.
        let m3 = mac(0xe13);
        let c3 = Client6::new(&w.net, &m3, Duid::Ll);
        let by_id = |tag: &str| json!({"client_id": c3.ll_duid(), "set_tags": [tag]});
        put_host(&w, "duid", by_id("u1"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "duid", 0);
        let l = lease6(&w, &c3, "DUID u1");
        assert_eq!(l.bootfile_url, Some(url6("u1")), "{l:?}");
        step("duid", by_id("u2"), "DUID record, tag change");
        let l = lease6(&w, &c3, "DUID u2");
        assert_eq!(l.bootfile_url, Some(url6("u2")), "{l:?}");

        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "DHCPv6 tag changes and ignore");
        c.finish(w);
    });
}

/// Options files with `option6:` lines follow the options rules: a value
/// change and an added line are served at once without a reload; a
/// dropped option is served until the reload and gone after it.
#[test]
fn dhcpv6_options_rules() {
    for_v6_versions(&[], |bin| {
        let c = Contract::new("dhcpv6_options_rules", bin);
        let w = slow_world6(bin, tagged_reload_mode(bin));
        let m = mac(0xe21);
        let cl = Client6::new(&w.net, &m, Duid::Ll);
        put_host(&w, "node", ironic_host(&[&m], "o6"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "node", 0);
        let (ua, ub) = (url6("o6-a"), url6("o6-b"));
        let boot = |u: &str| format!("tag:o6,option6:59,{u}");
        let search = "tag:o6,option6:domain-search,o6.example";
        put_options(&w, "o6", &[boot(&ua).as_str()], 201);
        w.dirs.wait_file_read(&w.dirs.opts, "o6", 0);
        assert_eq!(lease6(&w, &cl, "a").bootfile_url, Some(ua));

        // Value change, then a line added.
        let marks = w.dirs.marker_reads();
        let before = opt_reads(&w, "o6");
        let r = put_options(&w, "o6", &[boot(&ub).as_str()], 200);
        c.reload(&r, "not_needed", "option6 value change");
        expect_inotify_read(&c, &w, &w.dirs.opts, "o6", before);
        assert_eq!(lease6(&w, &cl, "b").bootfile_url, Some(ub.clone()));
        let before = opt_reads(&w, "o6");
        let r = put_options(&w, "o6", &[boot(&ub).as_str(), search], 200);
        c.reload(&r, "not_needed", "option6 line added");
        expect_inotify_read(&c, &w, &w.dirs.opts, "o6", before);
        let l = lease6(&w, &cl, "line added");
        assert_eq!(l.bootfile_url, Some(ub.clone()), "{l:?}");
        let domains = |l: &Lease6| l.events[0].get("new_dhcp6_domain_search").cloned();
        assert!(
            domains(&l).is_some_and(|d| d.contains("o6.example")),
            "domain-search not served: {l:?}"
        );
        thread::sleep(SETTLE);
        c.no_reload(&w, marks, "option6 value change and added line");

        // The boot URL dropped.
        let marks = w.dirs.marker_reads();
        let r = put_options(&w, "o6", &[search], 200);
        c.reload(&r, "scheduled", "option6 dropped");
        if let Some(l) = before_reload(&c, &w, marks, "option6 dropped", || {
            lease6(&w, &cl, "dropped, before the reload")
        }) {
            assert_eq!(
                l.bootfile_url,
                Some(ub.clone()),
                "until the reload the dropped option is still served: {l:?}"
            );
        }
        wait_reload(&w, marks, "option6 dropped");
        let l = lease6(&w, &cl, "dropped, after the reload");
        assert_eq!(l.bootfile_url, None, "{l:?}");
        assert!(domains(&l).is_some(), "{l:?}");
        c.finish(w);
    });
}

/// Why an IPv6 address change is reloaded: a record with a fixed address
/// matches only where a DHCPv6 range holds it (`is_config_in_context`),
/// and the broker does not know dnsmasq's ranges. Moved off the client's
/// link, the old record keeps serving the old address until the reload
/// (then the client is unknown: pool address, no boot URL). Moved within
/// the range, dnsmasq already serves the new record before the reload.
#[test]
fn dhcpv6_address_change_needs_reload() {
    for_v6_versions(&[], |bin| {
        let c = Contract::new("dhcpv6_address_change_needs_reload", bin);
        let w = slow_world6(bin, tagged_reload_mode(bin));
        put_boot6_options(&w, &["d1", "d2"]);
        let m = mac(0xe31);
        let cl = Client6::new(&w.net, &m, Duid::Ll);
        let (a, off_link, b) = ("fd00:5d::e31", "fd00:99::e31", "fd00:5d::e32");
        let spec = |addr: &str, tag: &str| json!({"macs": [m], "ipv6": addr, "set_tags": [tag]});
        put_host(&w, "mv", spec(a, "d1"), 201);
        w.dirs.wait_file_read(&w.dirs.hosts, "mv", 0);
        assert_eq!(lease6(&w, &cl, "a").address(), a);

        // Off the link.
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "mv");
        let r = put_host(&w, "mv", spec(off_link, "d2"), 200);
        c.reload(&r, "scheduled", "IPv6 address moved off the link");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "mv", before);
        if let Some(l) = before_reload(&c, &w, marks, "moved off the link", || {
            lease6(&w, &cl, "off the link, before the reload")
        }) {
            assert_eq!(
                (l.address(), l.bootfile_url.clone()),
                (a, Some(url6("d1"))),
                "until the reload the old record is the only one in context"
            );
        }
        wait_reload(&w, marks, "moved off the link");
        let l = lease6(&w, &cl, "off the link, after the reload");
        assert!(l.only_pool(), "{l:?}");
        assert_eq!(l.bootfile_url, None, "{l:?}");

        // Within the range.
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "mv");
        let r = put_host(&w, "mv", spec(b, "d2"), 200);
        c.reload(&r, "scheduled", "IPv6 address changed within the range");
        expect_inotify_read(&c, &w, &w.dirs.hosts, "mv", before);
        if let Some(l) = before_reload(&c, &w, marks, "within the range", || {
            lease6(&w, &cl, "within the range, before the reload")
        }) {
            assert!(l.has(b), "{l:?}");
            assert_eq!(l.bootfile_url, Some(url6("d2")), "{l:?}");
        }
        wait_reload(&w, marks, "within the range");
        let l = lease6(&w, &cl, "within the range, after the reload");
        assert!(l.has(b), "{l:?}");
        assert_eq!(l.bootfile_url, Some(url6("d2")), "{l:?}");
        c.finish(w);
    });
}
