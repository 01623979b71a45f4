//! When a record dnsmasq reads later hides one it already holds.
//!
//! dnsmasq never forgets a record between SIGHUPs: a changed file's new
//! record is *prepended* (src/option.c: `new->next = daemon->dhcp_conf`,
//! likewise for `dhcp_opts`) and the first match wins. So a replace needs no
//! reload when the new record is chosen for every client the old one would
//! have been chosen for. These rules are deliberately narrower than what
//! dnsmasq allows; every case they accept is proven against a real dnsmasq
//! (2.90, 2.91 and 2.93) in `tests/shadow_e2e.rs`, with a DHCPv4 client
//! (busybox udhcpc) and a DHCPv6 one (ISC `dhclient -6`, the `dhcpv6_*`
//! tests). Anything else is reloaded.
//!
//! Host records (src/dhcp-common.c `find_config` → `find_config_match`:
//! two rounds, the first only over records with `tag:` filters; in each a
//! client-id pass, a MAC pass — which ignores the record's client-id — then
//! a hostname pass; `is_config_in_context` skips a record whose fixed
//! address is outside the client's subnet):
//! - the old record is matched by a MAC or a client-id (a hostname-only
//!   record takes the separate "search again with the hostname" path);
//! - the new one has every MAC of the old one (same wildcard pattern) and
//!   the same client-id, so it is found in the same pass or an earlier one;
//! - the same `tag:` match filters, so both are in the same round;
//! - the new record has no fixed IPv4 address, and either no IPv6 address
//!   or exactly the old record's while neither has an IPv4 one. A record
//!   without address is "in context" on every subnet; one with the same
//!   IPv6 address (and no IPv4 one) on exactly the same subnets as the old
//!   one, and dnsmasq does not refuse it (see "DHCPv6" below). Any other
//!   address may be on other subnets, and the broker does not know
//!   dnsmasq's ranges; reusing an IPv4 address the old record holds is
//!   refused by dnsmasq until a reload;
//! - the new record has no hostname: after each read `dhcp_update_configs`
//!   gives a named, address-less record the address its name has in
//!   /etc/hosts (with DNS on), which would confine it to that subnet.
//!
//! What a shadowed record still does until the reload (it is a *ghost*): its
//! IPv4 address stays reserved from the pool (a client renewing it is told
//! DHCPNAK "address reserved" and gets another address), and its hostname
//! still answers dnsmasq's hostname retry, which would hide a hostname-only
//! record of that name: such a record waits for the reload
//! ([`super::model`]).
//!
//! Options files (src/dhcp-common.c `option_filter`, used for DHCPv4 and
//! DHCPv6: per option number, the first record in list order whose tags
//! match is sent; tagged records win over untagged ones): every line of the
//! old file has a line in the new file for the same option number and
//! exactly the same tag set (values may differ, lines may be added), and
//! every old line is tagged (two untagged records for one number make
//! dnsmasq log "Ignoring duplicate dhcp-option" on every request). The
//! broker's grammar has no `encap:`, `vi-encap:` or `vendor:` lines, whose
//! records accumulate instead.
//!
//! The source reading behind these rules is summarised in
//! docs/reload-rules.md and, for DHCPv6, in docs/dhcpv6.md. dnsmasq 2.90 and
//! 2.91 do not differ in any of these functions.
//!
//! # DHCPv6
//!
//! Read in 2.90's, 2.91's and 2.93's `rfc3315.c`, `dhcp6.c`,
//! `dhcp-common.c` and `option.c`, and proven with `dhclient -6` on all
//! three (`tests/shadow_e2e.rs`, `dhcpv6_*`):
//! - **The same lookup.** `dhcp6_no_relay` finds the record with
//!   `find_config(daemon->dhcp_conf, state->context, <DUID>, <MAC>, …)`:
//!   the client-id pass compares the DUID with `id:`, the MAC pass uses the
//!   MAC dnsmasq learns from the neighbour table (`get_client_mac`; the
//!   DUID is never parsed for one). The record's `set:` tags are added,
//!   `ignore` (`CONFIG_DISABLE`) makes dnsmasq drop the Solicit, Request or
//!   Information-request. So the first-match rules above hold as they are.
//! - **The same option choice.** `add_options` runs `option_filter` over
//!   the `option6:` list (`daemon->dhcp_opts6`); an options line is keyed
//!   by (DHCPv6?, number, tags), so `option6:59` and DHCPv4's `59` never
//!   stand for each other.
//! - **Context is per protocol.** `is_config_in_context` with a DHCPv6
//!   range: a record without address is in context; one with an IPv6
//!   address only where a range's prefix holds it (a host part like
//!   `[::5]` in every /64 range); one with only an IPv4 address *never*. With
//!   a DHCPv4 subnet, a record with only an IPv6 address is never in
//!   context (DHCPv4 tags the client `known-othernet` and applies none of
//!   its tags). So the same IPv6 address and no IPv4 one give the same
//!   contexts on both protocols; keeping the IPv6 address while dropping
//!   the IPv4 one would leave DHCPv4 clients with the old record, and
//!   another IPv6 address may be off the client's link: then the old record
//!   stays the one in context until the reload (proven:
//!   `dhcpv6_address_change_needs_reload`).
//! - **No duplicate check.** The `dhcp-host` parser compares a new IPv4
//!   address with every loaded record's ("duplicate dhcp-host IP address");
//!   it never compares IPv6 addresses. A file keeping its IPv6 address is
//!   read at once and prepended like any other ([`refused_when_held`]; the
//!   model lets the file's own hidden versions keep the address). Another
//!   name's record holding the address still waits for the reload: two
//!   records for one address compete for it (`check_address` gives an
//!   address only to the DUID and IAID whose lease holds it).
//! - **What an IPv6 ghost still does**: its address stays out of the pool
//!   (`address6_allocate` skips any address a record holds:
//!   `config_find_by_address6`); DHCPv6 has no "address reserved" refusal.
//! - **Leases are not records.** A reload never changes which DUID holds an
//!   address: while an earlier DUID's lease holds a reserved address, the
//!   same machine under a new DUID gets a pool address (the old-DUID
//!   pitfall, `tests/dhcpv6_e2e.rs`, docs/dhcpv6.md). No reload rule can
//!   help there.
//! - **2.93's `rfc3315.c`** adds the multicast-only rule for client
//!   messages (RFC 9915 §16), bounds checks on options, options in an
//!   Advertise without addresses and Rebind-creates-a-lease only with
//!   `--dhcp-authoritative`: none touches how a record or an option is
//!   chosen. 2.90 differs from 2.91 in types and the `option_filter`
//!   signature only.
//!
//! # dnsmasq 2.93 against these rules
//!
//! 2.93's `option.c`, `dhcp-common.c`, `rfc2131.c`, `rfc3315.c` and
//! `inotify.c` (Debian sid's 2.93-3 upstream tarball) were read against
//! every rule above and in [`super::model`]. **Unchanged**, so every rule
//! holds as on 2.91 (and `tests/shadow_e2e.rs` passes on 2.93):
//! - `find_config`, `find_config_match`, `is_config_in_context`,
//!   `config_has_mac`, `option_filter`, `match_netid` and
//!   `dhcp_update_configs` (dhcp-common.c) are identical; so is the
//!   `dhcp-host` parser (option.c, `LOPT_BANK` to `'G'`): a record is still
//!   prepended (`new->next = daemon->dhcp_conf`), a line reusing an address
//!   a loaded record holds is still refused ("duplicate dhcp-host IP
//!   address"), and `parse_dhcp_opt`, `option_read_dynfile`, `one_file` and
//!   `clear_dynamic_conf` are identical;
//! - `inotify_check` still reads a new or renamed-in file at once, ignores
//!   dotfiles, `~` and `#…#` names, and applies no deletion: a deleted
//!   file's records stay until SIGHUP (the ghosts of [`super::model`]);
//! - the hostname retry and the config lookups of `dhcp_reply` (rfc2131.c)
//!   and the DHCPv6 paths (rfc3315.c) call the same functions as before.
//!
//! **Changed, none touching a rule:**
//! - `inotify.c`: only `--hostsdir` (`AH_HOSTS`) keeps the list of names
//!   `dyndir_addhosts` walks; `--dhcp-hostsdir`/`--dhcp-optsdir` keep none,
//!   so a SIGHUP no longer costs more with every name seen (the cost facts
//!   in [`super::dnsmasq`], the model in [`super::cost`]). A deletion in a
//!   DHCP directory is now ignored silently (2.91 logged "cannot read …").
//! - Watches are created after dnsmasq drops privileges: for the resolv
//!   files that is new in 2.93; the DHCP directories were already watched
//!   and listed after the drop (at `EVENT_INIT`) in 2.90 and 2.91, so a
//!   directory `nobody` cannot read is not served on any of them (measured;
//!   the broker warns at start-up, `dnsmasq::unreadable_dir_warning`).
//! - Domain names (CVE-2026-2291): `check_name` now refuses names longer
//!   than 255 bytes in wire form; the broker's hostnames (at most 253
//!   characters, labels of at most 63) stay valid. `hostname_isequal` now
//!   compares lengths first, which changes no result.
//! - `read_file` reads whole lines (`get_line_alloc`) instead of 1024-byte
//!   chunks: the line-splitting injection of older versions is gone; the
//!   broker still never writes a line over 1024 bytes, for 2.90 and 2.91.
//! - DHCPv6 REBIND without a lease creates one only with
//!   `--dhcp-authoritative` (as DHCPv4 always did): it changes what a
//!   client keeps after a failover or a lost lease file, not which record
//!   matches it. A restart keeps leases (the lease file is re-read).
//! - DHCPv4 leasequery (`--leasequery`), which then adds `vendorclass` and
//!   `agent-info` lines to the lease file (the broker's lease reader skips
//!   lines that do not start with an expiry).
//! - Option tables: DHCPv4 91 (last-transaction, a time), 92
//!   (associated-ip, addresses) and 114 (captive-portal) and DHCPv6 103
//!   (captive-portal) are typed now; 2.93 refuses values for them that
//!   2.90's untyped parsing took, which the broker's grammar (2.90's
//!   tables) still accepts — a grammar gap, not a reload rule
//!   (`src/entry/tests.rs` lists it).

use std::collections::BTreeSet;

use crate::entry::{HostSpec, OptionsSpec};
use crate::store::{Key, Spec};

/// Why a new record does not hide an old one (for logs), or `Ok`.
pub type Verdict = Result<(), &'static str>;

/// Does `new`, read after `old`, hide it from every client?
pub fn shadows(new: &Spec, old: &Spec) -> Verdict {
    match (new, old) {
        (Spec::Host(n), Spec::Host(o)) => host_shadows(n, o),
        (Spec::Options(n), Spec::Options(o)) => options_shadow(n, o),
        _ => Err("the records are of different kinds"),
    }
}

/// The host rules of the module doc.
pub fn host_shadows(new: &HostSpec, old: &HostSpec) -> Verdict {
    if old.macs().is_empty() && old.client_id().is_none() {
        return Err("the old record matches by hostname only");
    }
    if new.ipv4().is_some() {
        return Err("the new record has a fixed IPv4 address");
    }
    if let Some(a) = new.ipv6() {
        if old.ipv6() != Some(a) {
            return Err("the new record has a fixed IPv6 address the old one does not have");
        }
        if old.ipv4().is_some() {
            return Err("the new record keeps the IPv6 address but drops the IPv4 one");
        }
    }
    if new.hostname().is_some() {
        return Err(
            "the new record has a hostname (dnsmasq may give it an address from /etc/hosts)",
        );
    }
    if !old.macs().iter().all(|m| new.macs().contains(m)) {
        return Err("the new record drops a MAC of the old one");
    }
    if new.client_id() != old.client_id() {
        return Err("the client-id changes");
    }
    let set = |tags: &[String]| tags.iter().cloned().collect::<BTreeSet<_>>();
    if set(new.match_tags()) != set(old.match_tags()) {
        return Err("the tag: match filters change");
    }
    Ok(())
}

/// The options rules of the module doc.
pub fn options_shadow(new: &OptionsSpec, old: &OptionsSpec) -> Verdict {
    let key = |o: &crate::entry::DhcpOption| {
        o.code()
            .map(|c| (c, o.tags.iter().cloned().collect::<BTreeSet<_>>()))
    };
    let mut offered = Vec::new();
    for o in new.options() {
        offered.push(key(o).ok_or("an option of the new file is not understood")?);
    }
    for o in old.options() {
        if o.tags.is_empty() {
            return Err("the old file has an untagged option");
        }
        let k = key(o).ok_or("an option of the old file is not understood")?;
        if !offered.contains(&k) {
            return Err("the new file drops an option, or changes the tags an option is sent for");
        }
    }
    Ok(())
}

/// The fixed addresses of a record (see [`refused_when_held`]).
pub fn addresses(spec: &Spec) -> Vec<Key> {
    match spec {
        Spec::Host(h) => h
            .ipv4()
            .map(Key::V4)
            .into_iter()
            .chain(h.ipv6().map(Key::V6))
            .collect(),
        Spec::Options(_) => Vec::new(),
    }
}

/// Whether dnsmasq refuses a new record with this address while a record
/// it holds has it too ("duplicate dhcp-host IP address"): IPv4 only. The
/// `dhcp-host` parser (option.c) compares a new IPv4 address with every
/// loaded record's; IPv6 addresses are never compared (see the module doc).
pub fn refused_when_held(key: &Key) -> bool {
    matches!(key, Key::V4(_))
}

/// The hostname a hostname-only record (no MAC, no client-id) is found by,
/// as dnsmasq compares it: lowercase, up to the first dot.
pub fn name_only_key(spec: &Spec) -> Option<String> {
    match spec {
        Spec::Host(h) if h.macs().is_empty() && h.client_id().is_none() => {
            h.hostname().map(short_name)
        }
        _ => None,
    }
}

/// A record's hostname as dnsmasq's hostname retry compares it.
pub fn hostname_key(spec: &Spec) -> Option<String> {
    match spec {
        Spec::Host(h) => h.hostname().map(short_name),
        Spec::Options(_) => None,
    }
}

fn short_name(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_ascii_lowercase()
}

/// What identifies a client to a host record: its MACs (client-ids are
/// compared record by record).
pub fn macs(spec: &Spec) -> Vec<Key> {
    match spec {
        Spec::Host(h) => h.macs().iter().map(|m| Key::Mac(*m)).collect(),
        Spec::Options(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(line: &str) -> Spec {
        Spec::Host(HostSpec::parse_line(line).expect(line))
    }

    fn opts(text: &str) -> Spec {
        Spec::Options(OptionsSpec::parse_file(text.as_bytes()).expect(text))
    }

    const M1: &str = "52:54:00:00:00:01";
    const M2: &str = "52:54:00:00:00:02";

    #[test]
    fn ironic_tag_changes_and_ignore_shadow() {
        let a = host(&format!("{M1},set:t1,set:ironic"));
        let b = host(&format!("{M1},set:t2,set:ironic"));
        let ignore = host(&format!("{M1},ignore"));
        assert_eq!(shadows(&b, &a), Ok(()));
        assert_eq!(shadows(&ignore, &a), Ok(()));
        assert_eq!(shadows(&a, &ignore), Ok(()));
    }

    #[test]
    fn dropping_a_mac_or_changing_the_client_id_does_not() {
        let both = host(&format!("{M1},{M2},set:a"));
        assert_eq!(shadows(&host(&format!("{M1},{M2},set:b")), &both), Ok(()));
        assert!(shadows(&host(&format!("{M1},set:a")), &both).is_err());
        // Adding a MAC is fine: the new record is found for the old one's.
        assert_eq!(shadows(&both, &host(&format!("{M1},set:a"))), Ok(()));
        let with_id = host(&format!("{M1},id:01:02:03,set:a"));
        assert!(shadows(&host(&format!("{M1},set:a")), &with_id).is_err());
        assert!(shadows(&with_id, &host(&format!("{M1},set:a"))).is_err());
    }

    #[test]
    fn filters_and_addresses() {
        let plain = host(&format!("{M1},set:a"));
        assert!(shadows(&host(&format!("{M1},tag:x,set:a")), &plain).is_err());
        assert!(shadows(&host(&format!("{M1},10.0.0.5")), &plain).is_err());
        assert!(shadows(&host(&format!("{M1},[fd00::5]")), &plain).is_err());
        // The same IPv4 address is refused by dnsmasq as a duplicate.
        let v4 = host(&format!("{M1},10.0.0.5,set:a"));
        assert!(shadows(&host(&format!("{M1},10.0.0.5,set:b")), &v4).is_err());
        // Dropping an address (or a name): the new record is in context
        // everywhere.
        assert_eq!(
            shadows(&plain, &host(&format!("{M1},10.0.0.5,node-1"))),
            Ok(())
        );
        // A name could get an address from /etc/hosts.
        assert!(shadows(&host(&format!("{M1},node-1")), &plain).is_err());
        assert!(shadows(&plain, &host("10.0.0.5,node-1")).is_err());
    }

    #[test]
    fn the_same_ipv6_address_shadows_without_ipv4() {
        let a = host(&format!("{M1},[fd00::5],set:t1"));
        assert_eq!(
            shadows(&host(&format!("{M1},[fd00::5],set:t2")), &a),
            Ok(())
        );
        assert_eq!(
            shadows(&host(&format!("{M1},[fd00::5],ignore")), &a),
            Ok(())
        );
        let by_id = host("id:00:03:00:01:52:54:00:00:00:01,[fd00::6],set:t1");
        let by_id2 = host("id:00:03:00:01:52:54:00:00:00:01,[fd00::6],set:t2");
        assert_eq!(shadows(&by_id2, &by_id), Ok(()));
        // Another address may be on another subnet: not in context where
        // the old one is.
        assert!(shadows(&host(&format!("{M1},[fd00::7],set:t2")), &a).is_err());
        // Gaining an address: the old, address-less record matches on every
        // subnet, the new one on its own only.
        let plain = host(&format!("{M1},set:t1"));
        assert!(shadows(&host(&format!("{M1},[fd00::5],set:t2")), &plain).is_err());
        // Dropping the IPv4 address: the old record still matches DHCPv4
        // clients on its IPv4 subnet, the new one matches none.
        let dual = host(&format!("{M1},10.0.0.5,[fd00::5],set:t1"));
        assert!(shadows(&host(&format!("{M1},[fd00::5],set:t2")), &dual).is_err());
        // Keeping both: the IPv4 address is refused as a duplicate.
        assert!(shadows(&host(&format!("{M1},10.0.0.5,[fd00::5],set:t2")), &dual).is_err());
        // The other rules still apply.
        assert!(shadows(&host(&format!("{M2},[fd00::5],set:t2")), &a).is_err());
        assert!(shadows(&host(&format!("{M1},[fd00::5],node-1")), &a).is_err());
        assert!(refused_when_held(&Key::V4("10.0.0.5".parse().unwrap())));
        assert!(!refused_when_held(&Key::V6("fd00::5".parse().unwrap())));
    }

    #[test]
    fn options_keep_every_number_and_tag_set() {
        let old = opts("tag:n1,tag:!ipxe,67,a.efi\ntag:n1,tag:ipxe,67,http://x/a\n");
        let new = opts("tag:!ipxe,tag:n1,option:bootfile-name,b.efi\ntag:n1,tag:ipxe,67,http://x/b\ntag:n1,66,10.0.0.1\n");
        assert_eq!(shadows(&new, &old), Ok(()));
        assert!(shadows(&opts("tag:n1,tag:ipxe,67,http://x/b\n"), &old).is_err());
        assert!(shadows(
            &opts("tag:n2,tag:!ipxe,67,a.efi\ntag:n1,tag:ipxe,67,http://x/a\n"),
            &old
        )
        .is_err());
        // Untagged ghosts would make dnsmasq log a duplicate on every request.
        assert!(shadows(&opts("67,b.efi\n"), &opts("67,a.efi\n")).is_err());
    }
}
