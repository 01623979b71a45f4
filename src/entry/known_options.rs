//! The DHCP option names and value types of the dnsmasq releases the broker
//! supports (2.90, 2.91 and 2.93), and where they differ.
//!
//! Names: the tables printed by `dnsmasq --help dhcp` and `dnsmasq --help
//! dhcp6` (the options marked internal in dnsmasq are not printed and
//! `option:<name>` refuses them, but their *numbers* may still be given, so
//! they are listed here with `internal: true`). dnsmasq compares names
//! case-insensitively (`T1`, `T2`); the broker writes them in lowercase.
//!
//! Value types: how dnsmasq's `parse_dhcp_opt` encodes a value for the
//! option (src/dhcp-common.c, `opttab`/`opttab6`): an address list must be
//! addresses, a time is a number with an optional unit, names are text, and
//! an untyped option is characterised from the value itself (decimal, hex
//! octets, IPv4 addresses or text).
//!
//! Releases: 2.90's and 2.91's tables are identical; 2.93's adds four typed
//! options (DHCPv4 91 `last-transaction`, a 4-byte time; 92
//! `associated-ip`, addresses; 114 `captive-portal`, text; DHCPv6 103
//! `captive-portal`, text) and renames the internal 82 (`agent-id` →
//! `agent-info`); `parse_dhcp_opt` itself is the same code in all three.
//! An entry with [`OptInfo::since`] newer than 2.90 is untyped, and its name
//! unknown, before that release: the grammar accepts its name in no release
//! (2.90 and 2.91 would refuse the line), and for its number only values
//! every release reads the same (`option.rs`, [`views`]).

/// A dnsmasq release as `(major, minor)`.
pub(crate) type Release = (u32, u32);

/// The releases the grammar must satisfy, oldest first: every accepted
/// entry is read as meant by each (the field runs 2.93; Debian bookworm
/// ships 2.90, trixie 2.91).
pub(crate) const RELEASES: [Release; 3] = [(2, 90), (2, 91), (2, 93)];

/// `2.93`.
pub(crate) fn release_text(r: Release) -> String {
    format!("{}.{}", r.0, r.1)
}

/// `dnsmasq 2.90 and 2.91`, `dnsmasq 2.93`: the supported releases in
/// `from..until` (`until` excluded; `None`: to the newest).
pub(crate) fn releases_text(from: Release, until: Option<Release>) -> String {
    let names: Vec<String> = RELEASES
        .iter()
        .filter(|r| **r >= from && until.is_none_or(|u| **r < u))
        .map(|r| release_text(*r))
        .collect();
    let list = match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    format!("dnsmasq {list}")
}

/// How dnsmasq encodes a value of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A list of IPv4 addresses (DHCPv4) or IPv6 addresses (DHCPv6).
    AddrList,
    /// A time: a number with an optional `s m h d w` unit, sent as 4 bytes.
    Time,
    /// Text, sent as given.
    Name,
    /// Domain names, sent in DNS wire format.
    Rfc1035Name,
    /// DHCPv6 strings, each sent with a 2-byte length.
    CString,
    /// Untyped, but a decimal value is sent in this many bytes.
    Fixed(u8),
    /// Untyped: characterised from the value.
    Untyped,
}

/// One option of dnsmasq's tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptInfo {
    /// The option number.
    pub(crate) code: u16,
    /// dnsmasq's name for it, as dnsmasq prints it.
    pub(crate) name: &'static str,
    /// How its values are encoded.
    pub(crate) kind: Kind,
    /// dnsmasq sets it itself: `option:<name>` is refused for it, and a
    /// decimal value given by number is mis-sized.
    pub(crate) internal: bool,
    /// The first supported release whose table has this entry; the ones
    /// before it know neither the name nor the type (the option is untyped
    /// there).
    pub(crate) since: Release,
}

impl OptInfo {
    /// Whether every supported release has this entry.
    pub(crate) fn in_every_release(&self) -> bool {
        self.since == RELEASES[0]
    }
}

const fn o(code: u16, name: &'static str, kind: Kind) -> OptInfo {
    OptInfo {
        code,
        name,
        kind,
        internal: false,
        since: RELEASES[0],
    }
}

const fn i(code: u16, name: &'static str, kind: Kind) -> OptInfo {
    OptInfo {
        code,
        name,
        kind,
        internal: true,
        since: RELEASES[0],
    }
}

/// An entry that only 2.93's table has.
const fn o93(code: u16, name: &'static str, kind: Kind) -> OptInfo {
    OptInfo {
        code,
        name,
        kind,
        internal: false,
        since: (2, 93),
    }
}

use Kind::{AddrList, CString, Fixed, Name, Rfc1035Name, Time, Untyped};

/// DHCPv4 options (dnsmasq 2.90 `opttab`, plus the entries 2.93 adds).
pub(crate) const DHCP4: &[OptInfo] = &[
    o(1, "netmask", AddrList),
    o(2, "time-offset", Fixed(4)),
    o(3, "router", AddrList),
    o(6, "dns-server", AddrList),
    o(7, "log-server", AddrList),
    o(9, "lpr-server", AddrList),
    i(12, "hostname", Name),
    o(13, "boot-file-size", Fixed(2)),
    o(15, "domain-name", Name),
    o(16, "swap-server", AddrList),
    o(17, "root-path", Name),
    o(18, "extension-path", Name),
    o(19, "ip-forward-enable", Fixed(1)),
    o(20, "non-local-source-routing", Fixed(1)),
    o(21, "policy-filter", AddrList),
    o(22, "max-datagram-reassembly", Fixed(2)),
    o(23, "default-ttl", Fixed(1)),
    o(26, "mtu", Fixed(2)),
    o(27, "all-subnets-local", Fixed(1)),
    i(28, "broadcast", AddrList),
    o(31, "router-discovery", Fixed(1)),
    o(32, "router-solicitation", AddrList),
    o(33, "static-route", AddrList),
    o(34, "trailer-encapsulation", Fixed(1)),
    o(35, "arp-timeout", Fixed(4)),
    o(36, "ethernet-encap", Fixed(1)),
    o(37, "tcp-ttl", Fixed(1)),
    o(38, "tcp-keepalive", Fixed(4)),
    o(40, "nis-domain", Name),
    o(41, "nis-server", AddrList),
    o(42, "ntp-server", AddrList),
    i(43, "vendor-encap", Untyped),
    o(44, "netbios-ns", AddrList),
    o(45, "netbios-dd", AddrList),
    o(46, "netbios-nodetype", Fixed(1)),
    o(47, "netbios-scope", Untyped),
    o(48, "x-windows-fs", AddrList),
    o(49, "x-windows-dm", AddrList),
    i(50, "requested-address", AddrList),
    i(51, "lease-time", Time),
    i(52, "option-overload", Untyped),
    i(53, "message-type", Untyped),
    i(54, "server-identifier", AddrList),
    i(55, "parameter-request", Untyped),
    i(56, "message", Untyped),
    i(57, "max-message-size", Untyped),
    o(58, "T1", Time),
    o(59, "T2", Time),
    o(60, "vendor-class", Untyped),
    i(61, "client-id", Untyped),
    o(64, "nis+-domain", Name),
    o(65, "nis+-server", AddrList),
    o(66, "tftp-server", Name),
    o(67, "bootfile-name", Name),
    o(68, "mobile-ip-home", AddrList),
    o(69, "smtp-server", AddrList),
    o(70, "pop3-server", AddrList),
    o(71, "nntp-server", AddrList),
    o(74, "irc-server", AddrList),
    o(77, "user-class", Untyped),
    o(80, "rapid-commit", Untyped),
    i(81, "FQDN", Untyped),
    // 2.93 calls it `agent-info`; internal under either name.
    i(82, "agent-id", Untyped),
    // A time of 4 bytes (`4 | OT_TIME`).
    o93(91, "last-transaction", Time),
    o93(92, "associated-ip", AddrList),
    o(93, "client-arch", Fixed(2)),
    o(94, "client-interface-id", Untyped),
    o(97, "client-machine-id", Untyped),
    o(100, "posix-timezone", Name),
    o(101, "tzdb-timezone", Name),
    o(108, "ipv6-only", Fixed(4)),
    o93(114, "captive-portal", Name),
    i(118, "subnet-select", Untyped),
    o(119, "domain-search", Rfc1035Name),
    o(120, "sip-server", Untyped),
    o(121, "classless-static-route", Untyped),
    o(125, "vendor-id-encap", Untyped),
    o(150, "tftp-server-address", AddrList),
    o(255, "server-ip-address", AddrList),
];

/// DHCPv6 options (dnsmasq 2.90 `opttab6`, plus the entries 2.93 adds).
pub(crate) const DHCP6: &[OptInfo] = &[
    i(1, "client-id", Untyped),
    i(2, "server-id", Untyped),
    i(3, "ia-na", Untyped),
    i(4, "ia-ta", Untyped),
    i(5, "iaaddr", Untyped),
    i(6, "oro", Untyped),
    i(7, "preference", Untyped),
    i(12, "unicast", Untyped),
    i(13, "status", Untyped),
    i(14, "rapid-commit", Untyped),
    i(15, "user-class", CString),
    i(16, "vendor-class", CString),
    i(17, "vendor-opts", Untyped),
    o(21, "sip-server-domain", Rfc1035Name),
    o(22, "sip-server", AddrList),
    o(23, "dns-server", AddrList),
    o(24, "domain-search", Rfc1035Name),
    o(27, "nis-server", AddrList),
    o(28, "nis+-server", AddrList),
    o(29, "nis-domain", Rfc1035Name),
    o(30, "nis+-domain", Rfc1035Name),
    o(31, "sntp-server", AddrList),
    o(32, "information-refresh-time", Time),
    i(39, "FQDN", Rfc1035Name),
    o(41, "posix-timezone", Name),
    o(42, "tzdb-timezone", Name),
    // Addresses or domain names, decided by the value (see option.rs).
    o(56, "ntp-server", Untyped),
    o(59, "bootfile-url", Name),
    o(60, "bootfile-param", CString),
    o93(103, "captive-portal", Name),
];

/// The table for DHCPv4 or DHCPv6.
pub(crate) fn table(v6: bool) -> &'static [OptInfo] {
    if v6 {
        DHCP6
    } else {
        DHCP4
    }
}

/// The option some supported dnsmasq would look up for `name`
/// (case-insensitively), internal ones and those of newer releases
/// included ([`OptInfo::since`] says which).
pub(crate) fn by_name(v6: bool, name: &str) -> Option<&'static OptInfo> {
    table(v6).iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// The entry for an option number, if some supported dnsmasq has one.
pub(crate) fn by_code(v6: bool, code: u16) -> Option<&'static OptInfo> {
    table(v6).iter().find(|o| o.code == code)
}

/// How a run of supported releases sees an option: with the table entry
/// `info`, or untyped (`None`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// The first release of the run.
    pub(crate) from: Release,
    /// The first release after the run (`None`: the run goes to the newest).
    pub(crate) until: Option<Release>,
    /// The entry these releases have.
    pub(crate) info: Option<&'static OptInfo>,
}

impl View {
    /// `dnsmasq 2.90 and 2.91`, `dnsmasq 2.93`.
    pub(crate) fn releases(&self) -> String {
        releases_text(self.from, self.until)
    }
}

/// The distinct ways the supported releases see the option `info` (the
/// entry of `by_code`, `None` for a number no release types): one view
/// when they all agree, else the untyped releases first.
pub(crate) fn views(info: Option<&'static OptInfo>) -> Vec<View> {
    match info {
        Some(i) if !i.in_every_release() => vec![
            View {
                from: RELEASES[0],
                until: Some(i.since),
                info: None,
            },
            View {
                from: i.since,
                until: None,
                info: Some(i),
            },
        ],
        _ => vec![View {
            from: RELEASES[0],
            until: None,
            info,
        }],
    }
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;

    /// The names dnsmasq 2.90 (and 2.91) prints with `--help dhcp`, in its
    /// order.
    const HELP_DHCP: &str =
        "1 netmask 2 time-offset 3 router 6 dns-server 7 log-server 9 lpr-server \
        13 boot-file-size 15 domain-name 16 swap-server 17 root-path 18 extension-path \
        19 ip-forward-enable 20 non-local-source-routing 21 policy-filter \
        22 max-datagram-reassembly 23 default-ttl 26 mtu 27 all-subnets-local \
        31 router-discovery 32 router-solicitation 33 static-route 34 trailer-encapsulation \
        35 arp-timeout 36 ethernet-encap 37 tcp-ttl 38 tcp-keepalive 40 nis-domain \
        41 nis-server 42 ntp-server 44 netbios-ns 45 netbios-dd 46 netbios-nodetype \
        47 netbios-scope 48 x-windows-fs 49 x-windows-dm 58 T1 59 T2 60 vendor-class \
        64 nis+-domain 65 nis+-server 66 tftp-server 67 bootfile-name 68 mobile-ip-home \
        69 smtp-server 70 pop3-server 71 nntp-server 74 irc-server 77 user-class \
        80 rapid-commit 93 client-arch 94 client-interface-id 97 client-machine-id \
        100 posix-timezone 101 tzdb-timezone 108 ipv6-only 119 domain-search 120 sip-server \
        121 classless-static-route 125 vendor-id-encap 150 tftp-server-address \
        255 server-ip-address";

    /// The names dnsmasq 2.90 (and 2.91) prints with `--help dhcp6`, in its
    /// order.
    const HELP_DHCP6: &str = "21 sip-server-domain 22 sip-server 23 dns-server 24 domain-search \
        27 nis-server 28 nis+-server 29 nis-domain 30 nis+-domain 31 sntp-server \
        32 information-refresh-time 41 posix-timezone 42 tzdb-timezone 56 ntp-server \
        59 bootfile-url 60 bootfile-param";

    /// The names dnsmasq 2.93 prints with `--help dhcp`, in its order.
    const HELP_DHCP_2_93: &str =
        "1 netmask 2 time-offset 3 router 6 dns-server 7 log-server 9 lpr-server \
        13 boot-file-size 15 domain-name 16 swap-server 17 root-path 18 extension-path \
        19 ip-forward-enable 20 non-local-source-routing 21 policy-filter \
        22 max-datagram-reassembly 23 default-ttl 26 mtu 27 all-subnets-local \
        31 router-discovery 32 router-solicitation 33 static-route 34 trailer-encapsulation \
        35 arp-timeout 36 ethernet-encap 37 tcp-ttl 38 tcp-keepalive 40 nis-domain \
        41 nis-server 42 ntp-server 44 netbios-ns 45 netbios-dd 46 netbios-nodetype \
        47 netbios-scope 48 x-windows-fs 49 x-windows-dm 58 T1 59 T2 60 vendor-class \
        64 nis+-domain 65 nis+-server 66 tftp-server 67 bootfile-name 68 mobile-ip-home \
        69 smtp-server 70 pop3-server 71 nntp-server 74 irc-server 77 user-class \
        80 rapid-commit 91 last-transaction 92 associated-ip 93 client-arch \
        94 client-interface-id 97 client-machine-id 100 posix-timezone 101 tzdb-timezone \
        108 ipv6-only 114 captive-portal 119 domain-search 120 sip-server \
        121 classless-static-route 125 vendor-id-encap 150 tftp-server-address \
        255 server-ip-address";

    /// The names dnsmasq 2.93 prints with `--help dhcp6`, in its order.
    const HELP_DHCP6_2_93: &str = "21 sip-server-domain 22 sip-server 23 dns-server \
        24 domain-search 27 nis-server 28 nis+-server 29 nis-domain 30 nis+-domain \
        31 sntp-server 32 information-refresh-time 41 posix-timezone 42 tzdb-timezone \
        56 ntp-server 59 bootfile-url 60 bootfile-param 103 captive-portal";

    /// The names release `r` prints, in table order.
    fn listed(v6: bool, r: Release) -> String {
        table(v6)
            .iter()
            .filter(|o| !o.internal && o.since <= r)
            .map(|o| format!("{} {}", o.code, o.name))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn normalise(help: &str) -> String {
        help.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn public_names_match_dnsmasq_help() {
        for r in [(2, 90), (2, 91)] {
            assert_eq!(listed(false, r), normalise(HELP_DHCP), "{r:?}");
            assert_eq!(listed(true, r), normalise(HELP_DHCP6), "{r:?}");
        }
        assert_eq!(listed(false, (2, 93)), normalise(HELP_DHCP_2_93));
        assert_eq!(listed(true, (2, 93)), normalise(HELP_DHCP6_2_93));
    }

    /// Every supported dnsmasq's own `--help` tables agree with the table
    /// for its release. Needs the three builds (as the real-dnsmasq grammar
    /// test does): `cargo test --lib -- --ignored`.
    #[test]
    #[ignore = "needs dnsmasq 2.90, 2.91 and 2.93 (scripts/install-test-deps.sh)"]
    fn public_names_match_installed_dnsmasq() {
        let bins = crate::entry::tests::dnsmasq_binaries();
        assert_eq!(bins.len(), RELEASES.len());
        for (bin, r) in bins.iter().zip(RELEASES) {
            let out = std::process::Command::new(bin)
                .arg("--version")
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
            let banner = String::from_utf8_lossy(&out.stdout);
            assert!(
                banner.starts_with(&format!("Dnsmasq version {} ", release_text(r))),
                "{} is not dnsmasq {}: {banner}",
                bin.display(),
                release_text(r)
            );
            for (arg, v6) in [("dhcp", false), ("dhcp6", true)] {
                let out = std::process::Command::new(bin)
                    .args(["--help", arg])
                    .output()
                    .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
                let text = String::from_utf8_lossy(&out.stdout);
                let body: Vec<&str> = text.lines().skip(1).collect();
                assert_eq!(
                    listed(v6, r),
                    normalise(&body.join(" ")),
                    "{} --help {arg}",
                    bin.display()
                );
            }
        }
    }

    #[test]
    fn releases_are_named_in_messages() {
        assert_eq!(
            releases_text((2, 90), Some((2, 93))),
            "dnsmasq 2.90 and 2.91"
        );
        assert_eq!(releases_text((2, 93), None), "dnsmasq 2.93");
        assert_eq!(releases_text((2, 90), None), "dnsmasq 2.90, 2.91 and 2.93");
        let v = views(by_code(false, 114));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].releases(), "dnsmasq 2.90 and 2.91");
        assert!(v[0].info.is_none());
        assert_eq!(v[1].info.map(|i| i.kind), Some(Kind::Name));
        assert_eq!(views(by_code(false, 67)).len(), 1);
        assert_eq!(views(None).len(), 1);
        assert_eq!(views(by_code(true, 103))[1].releases(), "dnsmasq 2.93");
    }

    #[test]
    fn lookups() {
        assert_eq!(by_name(false, "router").map(|o| o.code), Some(3));
        assert_eq!(by_name(false, "t1").map(|o| o.code), Some(58));
        assert_eq!(by_name(true, "BOOTFILE-URL").map(|o| o.code), Some(59));
        assert!(by_name(true, "router").is_none());
        assert_eq!(by_code(false, 59).map(|o| o.kind), Some(Kind::Time));
        assert_eq!(by_code(true, 59).map(|o| o.kind), Some(Kind::Name));
        assert!(by_code(false, 175).is_none());
        let cp = by_name(false, "Captive-Portal").unwrap();
        assert_eq!((cp.code, cp.since), (114, (2, 93)));
        assert!(!cp.in_every_release());
        assert_eq!(by_code(true, 103).map(|o| o.kind), Some(Kind::Name));
        assert_eq!(by_code(false, 91).map(|o| o.kind), Some(Kind::Time));
        assert_eq!(by_code(false, 92).map(|o| o.kind), Some(Kind::AddrList));
    }
}
