//! The options dnsmasq 2.93 types and 2.90/2.91 leave untyped (DHCPv4 91
//! `last-transaction`, 92 `associated-ip`, 114 `captive-portal`) reach a
//! real DHCP client as the same bytes from every supported release when the
//! broker's grammar accepts the value, and as different bytes for the
//! values it refuses for that reason.
//!
//! Why: the grammar (`src/entry/option.rs`, `known_options.rs`) promises
//! that an accepted entry means the same to 2.90, 2.91 and 2.93. The
//! ignored grammar test (`cargo test --lib -- --ignored`) shows that no
//! release *refuses* an accepted line; only the bytes on the wire show that
//! none *misreads* one. Each release serves the same files to busybox
//! `udhcpc`, which requests the three options and prints what it got as
//! hex (`optNN=…`).
//!
//! DHCPv6 option 103 is not sent here (the harness's client is DHCPv4
//! only); its readings are the same code paths as 114's (`OT_NAME` in 2.93,
//! characterised from the value before), unit-tested in option.rs.
//!
//! Needs root (network namespaces), udhcpc and the three dnsmasq builds
//! (see `tests/e2e/mod.rs`); a missing prerequisite fails the test.

mod e2e;

use std::collections::BTreeMap;
use std::sync::Mutex;

use e2e::{for_each_version, Dirs, Dnsmasq, Net};
use hostsdir_broker::entry::OptionsSpec;

/// Gets the accepted values (tag `same`).
const MAC_ACCEPTED: &str = "52:54:00:00:91:01";
/// Gets values the broker refuses (tag `differs`).
const MAC_REFUSED: &str = "52:54:00:00:91:02";

/// Lines the broker accepts, and the bytes each must reach the client as.
const ACCEPTED: [(&str, &str, &str); 4] = [
    ("tag:same,91,3600i", "opt91", "00000e10"),
    ("tag:same,92,10.0.0.5,10.0.0.6", "opt92", "0a0000050a000006"),
    (
        "tag:same,114,https://portal.example/cp",
        "opt114",
        // "https://portal.example/cp"
        "68747470733a2f2f706f7274616c2e6578616d706c652f6370",
    ),
    // A line every release types alike, as a control.
    ("tag:same,67,same.efi", "bootfile", "same.efi"),
];

/// Lines the broker refuses because releases send them differently.
const REFUSED: [&str; 2] = ["tag:differs,91,3600", "tag:differs,114,10.0.0.1"];

/// The options udhcpc asks for.
const REQUEST: [&str; 6] = ["-O", "91", "-O", "92", "-O", "114"];

#[test]
fn typed_only_by_2_93_yet_sent_alike_by_every_release() {
    for (line, _, _) in ACCEPTED {
        OptionsSpec::parse_file(line.as_bytes())
            .unwrap_or_else(|e| panic!("the broker refuses {line}: {e}"));
    }
    for line in REFUSED {
        let e = OptionsSpec::parse_file(line.as_bytes()).expect_err(line);
        assert!(
            e.message.contains("dnsmasq 2.90 and 2.91") && e.message.contains("dnsmasq 2.93"),
            "{line}: {}",
            e.message
        );
    }

    // What each release's client got: version → (accepted vars, refused vars).
    type Got = (BTreeMap<String, String>, BTreeMap<String, String>);
    let got: Mutex<BTreeMap<String, Got>> = Mutex::new(BTreeMap::new());
    for_each_version(|bin| {
        let net = Net::new();
        let dirs = Dirs::new();
        Dirs::write_file(
            &dirs.hosts,
            "nodes",
            &format!("{MAC_ACCEPTED},set:same\n{MAC_REFUSED},set:differs\n"),
        );
        let opts: Vec<&str> = ACCEPTED.iter().map(|(l, _, _)| *l).chain(REFUSED).collect();
        Dirs::write_file(&dirs.opts, "options", &(opts.join("\n") + "\n"));
        let _dnsmasq = Dnsmasq::start(bin, &net, &dirs);
        let ask = |mac: &str| {
            net.dhcp_request_with(mac, 4, &REQUEST)
                .unwrap_or_else(|| {
                    panic!(
                        "dnsmasq {}: no lease for {mac}; log:\n{}",
                        bin.version,
                        e2e::tail(&dirs.log_text(), 30)
                    )
                })
                .vars
        };
        let accepted = ask(MAC_ACCEPTED);
        let refused = ask(MAC_REFUSED);
        // No release refused a line of the file.
        let log = dirs.log_text();
        assert!(
            !log.contains(" at line "),
            "dnsmasq {} refused a line:\n{log}",
            bin.version
        );
        got.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(bin.version.clone(), (accepted, refused));
    });
    let got = got.into_inner().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        ["2.90", "2.91", "2.93"]
    );

    // Accepted values: the same bytes from every release, the ones meant.
    for (version, (accepted, _)) in &got {
        for (line, var, bytes) in ACCEPTED {
            assert_eq!(
                accepted.get(var).map(|v| v.to_ascii_lowercase()).as_deref(),
                Some(bytes),
                "dnsmasq {version} sent {line} as {:?} (client saw {accepted:?})",
                accepted.get(var)
            );
        }
    }

    // Refused values: 2.90 and 2.91 agree with each other and not with
    // 2.93, which is why the broker refuses them.
    let refused = |v: &str, var: &str| {
        got[v]
            .1
            .get(var)
            .map(|x| x.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("dnsmasq {v} sent no {var}: {:?}", got[v].1))
    };
    for (var, old, new) in [
        // 3600 in 2 bytes (untyped decimal), in 4 (a time).
        ("opt91", "0e10", "00000e10"),
        // An IPv4 address (untyped), the text "10.0.0.1".
        ("opt114", "0a000001", "31302e302e302e31"),
    ] {
        assert_eq!(refused("2.90", var), old, "2.90 {var}");
        assert_eq!(refused("2.91", var), old, "2.91 {var}");
        assert_eq!(refused("2.93", var), new, "2.93 {var}");
    }
}
