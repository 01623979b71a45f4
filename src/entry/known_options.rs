//! The DHCP option names and value types dnsmasq 2.90 knows.
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
}

const fn o(code: u16, name: &'static str, kind: Kind) -> OptInfo {
    OptInfo {
        code,
        name,
        kind,
        internal: false,
    }
}

const fn i(code: u16, name: &'static str, kind: Kind) -> OptInfo {
    OptInfo {
        code,
        name,
        kind,
        internal: true,
    }
}

use Kind::{AddrList, CString, Fixed, Name, Rfc1035Name, Time, Untyped};

/// DHCPv4 options (dnsmasq 2.90 `opttab`).
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
    i(82, "agent-id", Untyped),
    o(93, "client-arch", Fixed(2)),
    o(94, "client-interface-id", Untyped),
    o(97, "client-machine-id", Untyped),
    o(100, "posix-timezone", Name),
    o(101, "tzdb-timezone", Name),
    o(108, "ipv6-only", Fixed(4)),
    i(118, "subnet-select", Untyped),
    o(119, "domain-search", Rfc1035Name),
    o(120, "sip-server", Untyped),
    o(121, "classless-static-route", Untyped),
    o(125, "vendor-id-encap", Untyped),
    o(150, "tftp-server-address", AddrList),
    o(255, "server-ip-address", AddrList),
];

/// DHCPv6 options (dnsmasq 2.90 `opttab6`).
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
];

/// The table for DHCPv4 or DHCPv6.
pub(crate) fn table(v6: bool) -> &'static [OptInfo] {
    if v6 {
        DHCP6
    } else {
        DHCP4
    }
}

/// The option dnsmasq would look up for `name` (case-insensitively),
/// internal ones included.
pub(crate) fn by_name(v6: bool, name: &str) -> Option<&'static OptInfo> {
    table(v6).iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// The entry for an option number, if dnsmasq has one.
pub(crate) fn by_code(v6: bool, code: u16) -> Option<&'static OptInfo> {
    table(v6).iter().find(|o| o.code == code)
}

#[cfg(test)]
mod tests {
    // Tests unwrap freely: a panic is the failure report.
    use super::*;

    /// The names dnsmasq 2.90 prints with `--help dhcp`, in its order.
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

    /// The names dnsmasq 2.90 prints with `--help dhcp6`, in its order.
    const HELP_DHCP6: &str = "21 sip-server-domain 22 sip-server 23 dns-server 24 domain-search \
        27 nis-server 28 nis+-server 29 nis-domain 30 nis+-domain 31 sntp-server \
        32 information-refresh-time 41 posix-timezone 42 tzdb-timezone 56 ntp-server \
        59 bootfile-url 60 bootfile-param";

    fn listed(v6: bool) -> String {
        table(v6)
            .iter()
            .filter(|o| !o.internal)
            .map(|o| format!("{} {}", o.code, o.name))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn normalise(help: &str) -> String {
        help.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn public_names_match_dnsmasq_help() {
        assert_eq!(listed(false), normalise(HELP_DHCP));
        assert_eq!(listed(true), normalise(HELP_DHCP6));
    }

    /// When dnsmasq is installed, its own `--help` tables must agree.
    #[test]
    fn public_names_match_installed_dnsmasq() {
        for (arg, v6) in [("dhcp", false), ("dhcp6", true)] {
            let Ok(out) = std::process::Command::new("/usr/sbin/dnsmasq")
                .args(["--help", arg])
                .output()
            else {
                return; // dnsmasq is not installed here
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let body: Vec<&str> = text.lines().skip(1).collect();
            assert_eq!(listed(v6), normalise(&body.join(" ")), "--help {arg}");
        }
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
    }
}
