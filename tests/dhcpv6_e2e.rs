//! DHCPv6 end to end: entries written through the broker's API, served by a
//! real dnsmasq (2.91 and 2.93, in parallel threads) to a real DHCPv6
//! client, ISC `dhclient -6` (harness: `tests/e2e/v6.rs`).
//!
//! Why: Ironic provisions over IPv6 too, and dnsmasq's DHCPv6 code
//! (src/rfc3315.c) finds a client's record and options its own way: the
//! MAC from the neighbour table, the DUID as client-id, leases keyed by
//! DUID and IAID. The reload rules for IPv6 are proven in
//! `tests/shadow_e2e.rs` (the `dhcpv6_*` tests); this file proves what an
//! operator relies on:
//!
//! - `fixed_addresses_by_mac_and_by_duid`: `{"macs": [m], "ipv6": A}` and
//!   `{"client_id": <DUID>, "ipv6": B}` give A and B; `GET /v1/leases`
//!   lists both leases with the client's DUID as `client_id`.
//! - `boot_url_by_tag_as_ironic_writes_it`: options files
//!   `tag:<node tag>,option6:59,<url>` (the `option6:` form the Ironic
//!   provider writes for options with `ip_version` 6) and
//!   `option6:bootfile-url`, hosts `<mac>,set:<node tag>,set:ironic`: each
//!   node gets its own boot-file URL, a client without an entry none, and
//!   a host with only an IPv4 address none either (such a record is for no
//!   DHCPv6 range: dnsmasq tags the client `known-othernet`).
//! - `replace_ignore_and_delete`: a tag change keeping the address is
//!   served at once without a reload; a new address is served after the
//!   reload (`"scheduled"`); `ignore` is served at once (no answer); a
//!   deleted entry is served until the reload and gone after it.
//! - `old_duid_holds_the_reserved_address`: the old-DUID pitfall, pinned.
//!   While a lease of the client's earlier DUID holds the reserved address,
//!   the same MAC under a new DUID silently gets a pool address — and a
//!   reload does not change that (leases survive it). dhclient makes a new
//!   DUID-LLT when its lease file is deleted; `-D LL` keeps the DUID (and
//!   the address). The operator's remedy is proven too: `dhcp_release6`
//!   (dnsmasq-utils) releasing the old DUID's lease, found in dnsmasq's
//!   lease file, frees the address for the client at once. See
//!   docs/dhcpv6.md.
//!
//! Each scenario ends with the harness's log check (no error, no
//! duplicate, no temp file read). Needs root, `ip`, `udhcpc`, `dhclient`,
//! `dhcp_release6` and the dnsmasq builds (`sudo
//! scripts/install-test-deps.sh`). Run: `cargo test --test dhcpv6_e2e`.

mod e2e;

use std::time::Duration;

use e2e::v6::{for_v6_versions, lease_file6, world6, Client6, Duid, Lease6, SERVER_IP6};
use e2e::{DnsmasqBinary, Mode, Reply, World};
use serde_json::{json, Value};

/// The versions this suite runs on.
const VERSIONS: &[&str] = &["2.91", "2.93"];

/// A quiet period long enough to ask dnsmasq what it serves before a
/// scheduled reload: dhclient waits up to 1 s before its first Solicit and
/// 1 s for Advertises (RFC 8415's SOL_MAX_DELAY and SOL_TIMEOUT), so an
/// exchange takes about 1.5 s on an idle machine.
const SLOW_QUIET_MS: u64 = 5000;

/// How long a scheduled reload may take to show up in dnsmasq's log.
const RELOAD_WAIT: Duration = Duration::from_secs(15);

fn mac(n: u32) -> String {
    format!("52:54:00:6d:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff)
}

fn url(tag: &str) -> String {
    format!("http://[{SERVER_IP6}]/{tag}.efi")
}

/// A world with `--reload pidfile`, the shadow policy and no stall-budget
/// spacing; `quiet_ms` is the reload quiet period.
fn world(bin: &DnsmasqBinary, quiet_ms: u64) -> World {
    world6(
        bin,
        Mode::Pidfile,
        quiet_ms,
        &[
            "--reload-policy",
            "shadow",
            "--reload-budget-percent",
            "100",
            "--reload-max-delay-ms",
            "10000",
        ],
    )
}

fn assert_status(r: &Reply, want: u16, what: &str) {
    assert_eq!(
        r.status, want,
        "{what}: expected HTTP {want}, got {}: {}",
        r.status, r.text
    );
}

/// PUT a host, check the status and the `"reload"` field.
fn put_host(w: &World, name: &str, spec: Value, want: u16, reload: &str) {
    let r = w.broker.put_host(name, &spec, false);
    assert_status(&r, want, &format!("PUT host {name} {spec}"));
    assert_eq!(
        r.body["reload"], reload,
        "PUT host {name} {spec}: {}",
        r.text
    );
}

/// PUT an options file (a create: read through inotify).
fn create_options(w: &World, name: &str, lines: &[&str]) {
    let r = w
        .broker
        .put_options(name, &json!({ "lines": lines }), false);
    assert_status(&r, 201, &format!("PUT options {name} {lines:?}"));
    assert_eq!(r.body["reload"], "not_needed", "{}", r.text);
    w.dirs.wait_file_read(&w.dirs.opts, name, 0);
}

fn host_reads(w: &World, name: &str) -> usize {
    w.dirs.file_reads(&w.dirs.hosts, name)
}

fn lease6(w: &World, c: &Client6, why: &str) -> Lease6 {
    w.net
        .dhcp6_request(c)
        .unwrap_or_else(|| panic!("{why}: no DHCPv6 lease for {}", c.mac))
}

/// Waits for a reload after marker count `marks`.
fn wait_reload(w: &World, marks: usize, what: &str) {
    assert!(
        w.dirs.marker_reads_above_within(marks, RELOAD_WAIT),
        "{what}: dnsmasq was not reloaded within {RELOAD_WAIT:?}; broker reload status: {}",
        w.broker.status()["reload"]
    );
}

/// `GET /v1/leases` items for `ip`.
fn api_leases_for(w: &World, ip: &str) -> Vec<Value> {
    let r = w.broker.get("/v1/leases");
    assert_status(&r, 200, "GET /v1/leases");
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /v1/leases: no items: {}", r.text))
        .iter()
        .filter(|l| l["ip"] == ip)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------

/// A fixed IPv6 address by MAC (dnsmasq learns the MAC from the link, not
/// from the DUID) and by DUID (`id:`), and the broker's view of the leases.
#[test]
fn fixed_addresses_by_mac_and_by_duid() {
    for_v6_versions(VERSIONS, |bin| {
        let w = world(bin, 50);
        let (m1, m2) = (mac(0x101), mac(0x102));
        let (a1, a2) = ("fd00:5d::10", "fd00:5d::20");

        // By MAC, the client with dhclient's default DUID-LLT.
        put_host(
            &w,
            "by-mac",
            json!({"macs": [m1], "ipv6": a1}),
            201,
            "not_needed",
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "by-mac", 0);
        let c1 = Client6::new(&w.net, &m1, Duid::Llt);
        let l1 = lease6(&w, &c1, "by MAC");
        assert_eq!(l1.address(), a1, "{l1:?}");
        assert!(l1.duid.starts_with("00:01:00:01:"), "DUID-LLT: {l1:?}");
        assert!(
            !w.dirs
                .log_lines_with(&format!("client MAC address: {m1}"))
                .is_empty(),
            "dnsmasq did not log the client's MAC {m1}"
        );

        // By DUID.
        let c2 = Client6::new(&w.net, &m2, Duid::Ll);
        let spec = json!({"client_id": c2.ll_duid(), "ipv6": a2});
        put_host(&w, "by-duid", spec, 201, "not_needed");
        w.dirs.wait_file_read(&w.dirs.hosts, "by-duid", 0);
        let l2 = lease6(&w, &c2, "by DUID");
        assert_eq!(l2.address(), a2, "{l2:?}");
        assert_eq!(l2.duid, c2.ll_duid());

        // The broker's lease view names each lease's DUID.
        for (ip, duid) in [(a1, &l1.duid), (a2, &l2.duid)] {
            let items = api_leases_for(&w, ip);
            assert_eq!(items.len(), 1, "GET /v1/leases for {ip}: {items:?}");
            assert_eq!(items[0]["client_id"], duid.as_str(), "{items:?}");
            assert_eq!(items[0]["mac"], Value::Null, "{items:?}");
        }
        w.finish();
    });
}

/// Boot-file URLs by tag, as Ironic writes them: one options file per node
/// (`tag:<node tag>,option6:59,<url>`), one host file per MAC
/// (`<mac>,set:<node tag>,set:ironic`).
#[test]
fn boot_url_by_tag_as_ironic_writes_it() {
    for_v6_versions(VERSIONS, |bin| {
        let w = world(bin, 50);
        let (t1, t2) = ("8c1ed5b3-node-one", "3f0a9e21-node-two");
        let line1 = format!("tag:{t1},option6:59,{}", url(t1));
        let line2 = format!("tag:{t2},option6:bootfile-url,{}", url(t2));
        create_options(&w, &format!("ironic-{t1}.conf"), &[&line1]);
        create_options(&w, &format!("ironic-{t2}.conf"), &[&line2]);
        let (m1, m2, m3) = (mac(0x201), mac(0x202), mac(0x203));
        for (m, t) in [(&m1, t1), (&m2, t2)] {
            let name = format!("ironic-{m}.conf");
            let spec = json!({"macs": [m], "set_tags": [t, "ironic"]});
            put_host(&w, &name, spec, 201, "not_needed");
            w.dirs.wait_file_read(&w.dirs.hosts, &name, 0);
        }
        for (m, t) in [(&m1, t1), (&m2, t2)] {
            let l = lease6(&w, &Client6::new(&w.net, m, Duid::Ll), t);
            assert_eq!(l.bootfile_url.as_deref(), Some(url(t).as_str()), "{l:?}");
            assert!(l.only_pool(), "no fixed address was given: {l:?}");
        }
        let l = lease6(&w, &Client6::new(&w.net, &m3, Duid::Ll), "no entry");
        assert_eq!(l.bootfile_url, None, "a client without an entry: {l:?}");

        // A host with only an IPv4 address is for no DHCPv6 range: its tags
        // do not reach DHCPv6 (dnsmasq tags the client known-othernet).
        let m4 = mac(0x204);
        let spec = json!({"macs": [m4], "ipv4": "192.168.77.60", "set_tags": [t1, "ironic"]});
        put_host(&w, "v4-only", spec, 201, "not_needed");
        w.dirs.wait_file_read(&w.dirs.hosts, "v4-only", 0);
        let l4 = w
            .net
            .dhcp_request(&m4)
            .expect("a DHCPv4 lease for the IPv4 host");
        assert_eq!(l4.ip, "192.168.77.60", "{l4:?}");
        let othernet = w.dirs.log_lines_with("known-othernet").len();
        let l = lease6(&w, &Client6::new(&w.net, &m4, Duid::Ll), "IPv4-only host");
        assert_eq!(
            l.bootfile_url, None,
            "an IPv4-only host's tag reached DHCPv6: {l:?}"
        );
        assert!(l.only_pool(), "{l:?}");
        assert!(
            w.dirs.log_lines_with("known-othernet").len() > othernet,
            "dnsmasq did not tag {m4} known-othernet"
        );
        w.finish();
    });
}

/// Replace, `ignore` and delete through the API, with a quiet period long
/// enough to see what dnsmasq serves before a scheduled reload.
#[test]
fn replace_ignore_and_delete() {
    for_v6_versions(VERSIONS, |bin| {
        let w = world(bin, SLOW_QUIET_MS);
        let (t1, t2) = ("n1", "n2");
        create_options(
            &w,
            "boot",
            &[
                &format!("tag:{t1},option6:59,{}", url(t1)),
                &format!("tag:{t2},option6:59,{}", url(t2)),
            ],
        );
        let m = mac(0x301);
        let c = Client6::new(&w.net, &m, Duid::Ll);
        let (a, b) = ("fd00:5d::30", "fd00:5d::31");
        let spec =
            |addr: &str, tag: &str| json!({"macs": [m], "ipv6": addr, "set_tags": [tag, "ironic"]});
        put_host(&w, "node", spec(a, t1), 201, "not_needed");
        w.dirs.wait_file_read(&w.dirs.hosts, "node", 0);
        let l = lease6(&w, &c, "created");
        assert_eq!((l.address(), l.bootfile_url.clone()), (a, Some(url(t1))));

        // New tag, same address: shadowed, no reload.
        let marks = w.dirs.marker_reads();
        let before = host_reads(&w, "node");
        put_host(&w, "node", spec(a, t2), 200, "not_needed");
        w.dirs.wait_file_read(&w.dirs.hosts, "node", before);
        let l = lease6(&w, &c, "new tag");
        assert_eq!((l.address(), l.bootfile_url.clone()), (a, Some(url(t2))));

        // New address (and tag): reloaded; served after the reload.
        put_host(&w, "node", spec(b, t1), 200, "scheduled");
        wait_reload(&w, marks, "new address");
        let l = lease6(&w, &c, "new address");
        assert_eq!((l.address(), l.bootfile_url.clone()), (b, Some(url(t1))));

        // ignore: shadowed, no answer at once.
        let marks = w.dirs.marker_reads();
        put_host(
            &w,
            "node",
            json!({"macs": [m], "ignore": true}),
            200,
            "not_needed",
        );
        if let Some(l) = w.net.dhcp6_expect_ignored(&c, &w.dirs) {
            panic!("an ignored client got {l:?}");
        }
        assert_eq!(w.dirs.marker_reads(), marks, "ignore was reloaded");

        // Back to a fixed address (reloaded), then deleted: served until
        // the reload, gone after it.
        put_host(&w, "node", spec(b, t2), 200, "scheduled");
        wait_reload(&w, marks, "fixed again");
        let l = lease6(&w, &c, "fixed again");
        assert_eq!((l.address(), l.bootfile_url.clone()), (b, Some(url(t2))));
        let marks = w.dirs.marker_reads();
        let r = w.broker.delete_host("node", false);
        assert_status(&r, 204, "DELETE node");
        let l = lease6(&w, &c, "deleted, before the reload");
        assert_eq!(
            w.dirs.marker_reads(),
            marks,
            "the reload came before the exchange; raise SLOW_QUIET_MS"
        );
        assert_eq!(
            (l.address(), l.bootfile_url.clone()),
            (b, Some(url(t2))),
            "until the reload the deleted entry is served"
        );
        wait_reload(&w, marks, "delete");
        let l = lease6(&w, &c, "deleted, after the reload");
        assert!(l.only_pool(), "{l:?}");
        assert_eq!(l.bootfile_url, None, "{l:?}");
        w.finish();
    });
}

/// The old-DUID pitfall (see the module doc and docs/dhcpv6.md).
#[test]
fn old_duid_holds_the_reserved_address() {
    for_v6_versions(VERSIONS, |bin| {
        let w = world(bin, 50);
        let (m_ll, m) = (mac(0x401), mac(0x402));
        let (a_ll, a) = ("fd00:5d::40", "fd00:5d::41");

        // -D LL: the DUID survives a deleted lease file, and so does the
        // reserved address.
        put_host(
            &w,
            "stable",
            json!({"macs": [m_ll], "ipv6": a_ll}),
            201,
            "not_needed",
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "stable", 0);
        let c = Client6::new(&w.net, &m_ll, Duid::Ll);
        let first = lease6(&w, &c, "-D LL");
        c.delete_lease_file();
        let again = lease6(&w, &c, "-D LL, lease file deleted");
        assert_eq!(first.duid, again.duid);
        assert_eq!((first.address(), again.address()), (a_ll, a_ll));

        // dhclient's default DUID-LLT: a new DUID once the lease file is
        // gone, and the new DUID gets a pool address.
        put_host(
            &w,
            "pit",
            json!({"macs": [m], "ipv6": a}),
            201,
            "not_needed",
        );
        w.dirs.wait_file_read(&w.dirs.hosts, "pit", 0);
        let c = Client6::new(&w.net, &m, Duid::Llt);
        let old = lease6(&w, &c, "DUID-LLT");
        assert_eq!(old.address(), a, "{old:?}");
        c.delete_lease_file();
        let new = lease6(&w, &c, "DUID-LLT, lease file deleted");
        assert_ne!(new.duid, old.duid, "dhclient kept its DUID-LLT");
        assert!(
            new.only_pool() && !new.has(a),
            "the pitfall: the new DUID should get a pool address while the old DUID's \
             lease holds {a}: {new:?}"
        );
        let (server_duid, leases) = lease_file6(&w.dirs);
        let held = leases
            .iter()
            .find(|l| l.address == a)
            .unwrap_or_else(|| panic!("no lease for {a} in dnsmasq's lease file: {leases:?}"));
        assert_eq!(held.duid, old.duid, "{leases:?}");
        // What an operator sees: the reserved address leased to the old
        // DUID, the client's current DUID on a pool address.
        let items = api_leases_for(&w, a);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["client_id"], old.duid.as_str(), "{items:?}");
        let items = api_leases_for(&w, &new.addresses[0]);
        assert_eq!(items[0]["client_id"], new.duid.as_str(), "{items:?}");

        // A reload changes nothing: leases are not records.
        let marks = w.dirs.marker_reads();
        let r = w.broker.post("/v1/reload?wait=reload", &json!({}));
        assert_status(&r, 200, "POST /v1/reload?wait=reload");
        wait_reload(&w, marks, "manual reload");
        let l = lease6(&w, &c, "after a reload");
        assert!(l.only_pool() && !l.has(a), "{l:?}");

        // The remedy: release the old DUID's lease (dnsmasq-utils'
        // dhcp_release6, with the IAID and DUIDs from the lease file).
        let server_duid = server_duid.expect("a `duid` line in dnsmasq's lease file");
        w.net
            .dhcp_release6(&server_duid, &old.duid, &held.iaid, &held.address);
        let released = e2e::wait_until(Duration::from_secs(5), || {
            !lease_file6(&w.dirs).1.iter().any(|l| l.address == a)
        });
        assert!(
            released,
            "dnsmasq kept the lease for {a} after dhcp_release6: {:?}",
            lease_file6(&w.dirs).1
        );
        let l = lease6(&w, &c, "after the release");
        assert!(l.has(a), "the reserved address after the release: {l:?}");
        // dhcp_release6 sends from the server itself, whose MAC dnsmasq
        // does not look up (transaction id 0).
        w.dirs
            .assert_log_clean_except(&[": 0 cannot determine client MAC address"]);
    });
}
