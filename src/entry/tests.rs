//! Properties of the whole grammar: everything accepted renders to safe,
//! canonical lines that read back as the same entry, and (when run with
//! `--ignored` as root on a machine with dnsmasq and `unshare`) real dnsmasq
//! reads every rendered line without an error.
//!
//! Tests unwrap freely: a panic is the failure report.

use super::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

// ---------------------------------------------------------------- strategies

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,64}"
}

fn match_tag() -> impl Strategy<Value = String> {
    (any::<bool>(), tag()).prop_map(|(neg, t)| if neg { format!("!{t}") } else { t })
}

/// A MAC in any spelling the JSON input accepts.
fn mac_text(octets: [Option<u8>; 6], dash: bool, upper: bool, short: bool) -> String {
    let parts: Vec<String> = octets
        .iter()
        .map(|o| match o {
            None => "*".to_owned(),
            Some(b) if short => format!("{b:x}"),
            Some(b) => format!("{b:02x}"),
        })
        .collect();
    let s = parts.join(if dash { "-" } else { ":" });
    if upper {
        s.to_ascii_uppercase()
    } else {
        s
    }
}

fn octet() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![9 => any::<u8>().prop_map(Some), 1 => Just(None)]
}

fn macs() -> impl Strategy<Value = Vec<String>> {
    (
        prop::collection::btree_set(prop::array::uniform6(octet()), 0..4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(set, dash, upper, short)| {
            set.into_iter()
                .map(|o| mac_text(o, dash, upper, short))
                .collect()
        })
}

fn client_id() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("*".to_owned()),
        4 => prop::collection::vec(any::<u8>(), 2..12).prop_map(|v| {
            v.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
        }),
    ]
}

fn ipv6_text() -> impl Strategy<Value = String> {
    (any::<[u16; 8]>(), 0..3u8).prop_map(|(segs, style)| {
        let a = Ipv6Addr::from(segs);
        match style {
            0 => a.to_string(),
            1 => segs
                .iter()
                .map(|s| format!("{s:X}"))
                .collect::<Vec<_>>()
                .join(":"),
            _ => format!("[{a}]"),
        }
    })
}

fn hostname() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?", 1..4),
        any::<bool>(),
    )
        .prop_map(|(labels, _)| labels.join("."))
        .prop_filter("a hostname dnsmasq would read as something else", |h| {
            host::check_hostname(h).is_ok()
        })
}

fn lease() -> impl Strategy<Value = Value> {
    prop_oneof![
        (120u64..10_000_000).prop_map(|n| json!(n)),
        Just(json!("infinite")),
        (120u32..100_000).prop_map(|n| json!(format!("{n}"))),
        (120u32..100_000).prop_map(|n| json!(format!("{n}s"))),
        (2u32..1_000, "[mMhHdDwW]").prop_map(|(n, u)| json!(format!("{n}{u}"))),
    ]
}

prop_compose! {
    /// A valid HostSpec body.
    fn host_json()(
        macs in macs(),
        client_id in prop::option::of(client_id()),
        set_tags in prop::collection::btree_set(tag(), 0..4),
        match_tags in prop::collection::btree_set(match_tag(), 0..4),
        ipv4 in prop::option::of(any::<[u8; 4]>()),
        ipv6 in prop::option::of(ipv6_text()),
        hostname in prop::option::of(hostname()),
        lease in prop::option::of(lease()),
        ignore in any::<bool>(),
    ) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("macs".into(), json!(macs));
        obj.insert("set_tags".into(), json!(set_tags));
        obj.insert("match_tags".into(), json!(match_tags));
        obj.insert("ignore".into(), json!(ignore));
        if let Some(c) = &client_id { obj.insert("client_id".into(), json!(c)); }
        if let Some(a) = ipv4 { obj.insert("ipv4".into(), json!(Ipv4Addr::from(a).to_string())); }
        if let Some(a) = ipv6 { obj.insert("ipv6".into(), json!(a)); }
        if let Some(h) = hostname { obj.insert("hostname".into(), json!(h)); }
        if let Some(l) = lease { obj.insert("lease_time".into(), l); }
        // Make sure something identifies the client.
        if macs.is_empty() && client_id.as_deref().is_none_or(|c| c == "*") && !obj.contains_key("hostname") {
            obj.insert("macs".into(), json!(["52:54:00:aa:bb:cc"]));
        }
        Value::Object(obj)
    }
}

fn ipv4_list() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<[u8; 4]>(), 1..5).prop_map(|v| {
        v.into_iter()
            .map(|a| Ipv4Addr::from(a).to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn ipv6_list() -> impl Strategy<Value = String> {
    prop::collection::vec((any::<[u16; 8]>(), any::<bool>()), 1..4).prop_map(|v| {
        v.into_iter()
            .map(|(s, b)| {
                let a = Ipv6Addr::from(s);
                if b {
                    format!("[{a}]")
                } else {
                    a.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9_]([a-z0-9_-]{0,8}[a-z0-9])?", 1..4).prop_map(|l| l.join("."))
}

/// Would dnsmasq take the value for a decimal (digits and `-` only) or cut
/// a final `b`/`s`/`i` off it as a length marker? (See option.rs.)
fn decimal_like(v: &str) -> bool {
    v.trim_end_matches(['b', 's', 'i'])
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-')
}

/// Text that dnsmasq keeps as text for a name-typed option.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!-~]([ -~]{0,60}[!-~])?",
        "[a-z]+://[a-z0-9.]+(:[0-9]{1,5})?/[a-zA-Z0-9._/-]{0,40}",
        "\\PC{1,20}",
    ]
    .prop_filter("not a valid value", |v| {
        !v.contains('"')
            && !v.contains(" #")
            && !v.starts_with(char::is_whitespace)
            && !v.ends_with(char::is_whitespace)
            && !v.chars().any(|c| c.is_whitespace() && c != ' ')
            && !v.ends_with(['b', 's', 'i'])
    })
}

/// An option and a value dnsmasq reads as written.
fn option_and_value() -> impl Strategy<Value = (Value, String)> {
    let name_opts = prop::sample::select(vec![
        "67",
        "option:bootfile-name",
        "66",
        "17",
        "option:Root-Path",
        "option6:59",
        "option6:bootfile-url",
        "option6:posix-timezone",
    ]);
    let addr_opts = prop::sample::select(vec!["3", "option:router", "6", "150", "255", "042"]);
    prop_oneof![
        (name_opts, text()).prop_map(|(o, v)| (json!(o), v)),
        (addr_opts, ipv4_list()).prop_map(|(o, v)| (json!(o), v)),
        (
            prop::sample::select(vec![
                "option6:23",
                "option6:dns-server",
                "option6:ntp-server"
            ]),
            ipv6_list()
        )
            .prop_map(|(o, v)| {
                // The NTP server option needs brackets (see option.rs).
                let v = if o.ends_with("ntp-server") {
                    v.split(',')
                        .map(|a| format!("[{}]", a.trim_matches(['[', ']'])))
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    v
                };
                (json!(o), v)
            }),
        (
            prop::sample::select(vec!["58", "option:T2", "option6:32"]),
            0u32..3_000,
            "[smhdwSMHDW]?"
        )
            .prop_map(|(o, n, u)| (json!(o), format!("{n}{u}"))),
        (0u32..65_536).prop_map(|n| (json!("26"), n.to_string())),
        (0u32..=i32::MAX as u32).prop_map(|n| (json!(175), n.to_string())),
        (1u16..=254, prop::collection::vec(any::<u8>(), 2..20)).prop_map(|(o, b)| {
            let o = if [1, 3, 6, 26, 58, 59, 119, 150, 66, 67, 12, 13, 15, 17, 18].contains(&o)
                || known_options::by_code(false, o).is_some()
            {
                97
            } else {
                o
            };
            (
                json!(o.to_string()),
                b.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            )
        }),
        prop::collection::vec(domain(), 1..5)
            .prop_map(|d| (json!("option:domain-search"), d.join(",")))
            .prop_filter("a length marker", |(_, v)| !decimal_like(v)),
        prop::collection::vec("[a-zA-Z0-9=/.]{1,10}", 1..4)
            .prop_map(|s| (json!("option6:bootfile-param"), s.join(",")))
            // Digits and a final b/s/i are a length marker (see option.rs).
            .prop_filter("a length marker", |(_, v)| !decimal_like(v)),
        (1u16..=255).prop_map(|o| (json!(o), String::new())),
        new_in_2_93(),
    ]
}

/// Values for the options 2.93 types and 2.90/2.91 do not, of the forms
/// every release reads the same (see `known_options`).
fn new_in_2_93() -> impl Strategy<Value = (Value, String)> {
    prop_oneof![
        (0u32..=i32::MAX as u32).prop_map(|n| (json!("91"), format!("{n}i"))),
        (65_536u32..=i32::MAX as u32).prop_map(|n| (json!("91"), n.to_string())),
        ipv4_list().prop_map(|v| (json!("92"), v)),
        "https://[a-z]{1,10}\\.example(:[0-9]{1,5})?/[a-zA-Z0-9._/-]{0,30}"
            .prop_map(|v| (json!("114"), v)),
        "https://[a-z]{1,10}\\.example(:[0-9]{1,5})?/[a-zA-Z0-9._/-]{0,30}"
            .prop_map(|v| (json!("option6:103"), v)),
        text()
            .prop_filter("not text in every release", |v| {
                OptionsSpec::parse_file(format!("114,{v}").as_bytes()).is_ok()
            })
            .prop_map(|v| (json!(114), v)),
    ]
}

prop_compose! {
    fn dhcp_option()(
        tags in prop::collection::btree_set(match_tag(), 0..3),
        (option, value) in option_and_value(),
    ) -> Value {
        json!({"tags": tags, "option": option, "value": value})
    }
}

prop_compose! {
    /// A valid options body, as objects or as lines.
    fn options_json()(
        options in prop::collection::vec(dhcp_option(), 0..6),
    ) -> Value {
        json!({ "options": options })
    }
}

// ---------------------------------------------------------------- safety

/// What every rendered line must satisfy, whatever was accepted.
fn assert_safe_line(line: &str) {
    assert!(
        line.len() < MAX_LINE_BYTES,
        "{} bytes: {line:?}",
        line.len() + 1
    );
    assert!(!line.is_empty());
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(!line.contains('"'), "{line:?}");
    assert!(!line.contains(" #"), "{line:?}");
    assert!(!line.starts_with(char::is_whitespace), "{line:?}");
    assert!(!line.ends_with(char::is_whitespace), "{line:?}");
    assert!(!line.starts_with('#'), "{line:?}");
}

fn assert_safe_host(h: &HostSpec) {
    let r = h.render();
    assert!(r.len() <= MAX_LINE_BYTES);
    let body = r.strip_suffix('\n').expect("render ends with a newline");
    assert!(!body.contains('\n'));
    assert_safe_line(body);
    assert!(!body.contains('#'));
    assert!(!body.contains(char::is_whitespace));
    // Canonical: reading it back gives the same entry and the same bytes.
    let back = HostSpec::parse_line(&r).expect("rendered line parses");
    assert_eq!(&back, h);
    assert_eq!(back.render(), r);
}

fn assert_safe_options(o: &OptionsSpec) {
    let r = o.render();
    let body = r.strip_suffix('\n').expect("render ends with a newline");
    if o.options().is_empty() {
        assert_eq!(r, "\n");
    } else {
        assert_eq!(body.split('\n').count(), o.options().len());
        for line in body.split('\n') {
            assert_safe_line(line);
        }
    }
    let back = OptionsSpec::parse_file(r.as_bytes()).expect("rendered file parses");
    assert_eq!(&back, o);
    assert_eq!(back.render(), r);
}

/// Strings made of the characters the grammar cares about.
fn grammar_soup() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F:,.\\-\\[\\]/ #\"*!_a-z\n\t]{0,60}",
        "(52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}|set:[a-z!]{0,3}|tag:[!a-z]{0,3}|id:[0-9:*]{0,6}|[0-9]{1,4}[smhdwx]?|[0-9.]{1,16}|\\[[0-9a-f:]{0,12}\\]|infinite|ignore|[a-z-]{1,8}|net:x|)(,(52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}|set:[a-z!]{0,3}|tag:[!a-z]{0,3}|id:[0-9:*]{0,6}|[0-9]{1,4}[smhdwx]?|[0-9.]{1,16}|\\[[0-9a-f:]{0,12}\\]|infinite|ignore|[a-z-]{1,8}|net:x|)){0,6}",
        "\\PC{0,80}",
        any::<String>(),
    ]
}

fn option_soup() -> impl Strategy<Value = String> {
    prop_oneof![
        "(tag:[!a-z]{0,3},){0,3}(option6?:)?[a-zA-Z0-9-]{0,12}(,[ -~]{0,40})?",
        "(tag:x,)?[0-9]{1,3},[0-9a-fA-F:.,/ \\[\\]bsi-]{0,30}",
        "[ -~\t\n]{0,80}",
        "\\PC{0,80}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_hosts_round_trip(v in host_json()) {
        let h = HostSpec::from_json(&v).unwrap_or_else(|e| panic!("{v} refused: {e}"));
        assert_safe_host(&h);
        let r = h.render();
        prop_assert_eq!(r.matches('\n').count(), 1);
        prop_assert!(r.ends_with('\n'));
        prop_assert_eq!(&HostSpec::parse_file(r.as_bytes()).unwrap(), &h);
        let j = serde_json::to_value(&h).unwrap();
        prop_assert_eq!(&HostSpec::from_json(&j).unwrap(), &h);
        prop_assert_eq!(&HostSpec::from_json(&json!({"line": r})).unwrap(), &h);
        // CRLF and comments written by others read the same.
        let crlf = format!("# by hand\r\n{}\r\n", r.trim_end());
        prop_assert_eq!(&HostSpec::parse_file(crlf.as_bytes()).unwrap(), &h);
    }

    #[test]
    fn valid_options_round_trip(v in options_json(), as_lines in any::<bool>()) {
        let o = OptionsSpec::from_json(&v).unwrap_or_else(|e| panic!("{v} refused: {e}"));
        let o = if as_lines {
            let lines: Vec<String> = o.render().lines().map(str::to_owned).collect();
            let lines = if o.options().is_empty() { Vec::new() } else { lines };
            OptionsSpec::from_json(&json!({ "lines": lines })).unwrap()
        } else {
            o
        };
        assert_safe_options(&o);
        let j = serde_json::to_value(&o).unwrap();
        prop_assert_eq!(&OptionsSpec::from_json(&j).unwrap(), &o);
        prop_assert_eq!(o.options().len(), v["options"].as_array().map_or(0, Vec::len));
    }

    #[test]
    fn arbitrary_host_lines_are_safe_or_refused(s in grammar_soup()) {
        if let Ok(h) = HostSpec::parse_line(&s) {
            assert_safe_host(&h);
        }
        if let Ok(h) = HostSpec::parse_file(s.as_bytes()) {
            assert_safe_host(&h);
        }
        if let Ok(h) = HostSpec::from_json(&json!({"line": s})) {
            assert_safe_host(&h);
        }
    }

    #[test]
    fn arbitrary_host_fields_are_safe_or_refused(
        key in prop::sample::select(vec!["macs", "client_id", "set_tags", "match_tags", "ipv4", "ipv6", "hostname", "lease_time"]),
        s in grammar_soup(),
        as_list in any::<bool>(),
    ) {
        let value = if as_list { json!([s]) } else { json!(s) };
        let mut body = json!({"macs": ["52:54:00:aa:bb:cc"]});
        body[key] = value;
        if let Ok(h) = HostSpec::from_json(&body) {
            assert_safe_host(&h);
        } else if let Err(e) = HostSpec::from_json(&body) {
            prop_assert_eq!(e.code, "invalid_value");
            prop_assert!(e.field.is_some_and(|f| f.starts_with(key)));
        }
    }

    #[test]
    fn arbitrary_option_lines_are_safe_or_refused(lines in prop::collection::vec(option_soup(), 0..4)) {
        if let Ok(o) = OptionsSpec::from_json(&json!({ "lines": lines })) {
            prop_assert_eq!(o.options().len(), lines.len());
            assert_safe_options(&o);
        }
        let file = lines.join("\n");
        if let Ok(o) = OptionsSpec::parse_file(file.as_bytes()) {
            assert_safe_options(&o);
        }
    }

    #[test]
    fn arbitrary_option_fields_are_safe_or_refused(
        tags in prop::collection::vec(option_soup(), 0..3),
        option in option_soup(),
        value in option_soup(),
    ) {
        let body = json!({"options": [{"tags": tags, "option": option, "value": value}]});
        match OptionsSpec::from_json(&body) {
            Ok(o) => assert_safe_options(&o),
            Err(e) => prop_assert!(e.field.is_some_and(|f| f.starts_with("options[0]"))),
        }
    }
}

// ---------------------------------------------------------------- limits

#[test]
fn host_line_length_limit_is_exact() {
    // "52:54:00:aa:bb:cc" + n × ",set:<tag>" + "\n"; grow the last tag to
    // hit exactly MAX_LINE_BYTES, then one byte more.
    let base = "52:54:00:aa:bb:cc".len() + 1;
    let full_tags = (MAX_LINE_BYTES - base) / 69; // ",set:" + 64
    let used = base + full_tags * 69;
    let last = MAX_LINE_BYTES - used - 5;
    let mut tags: Vec<String> = (0..full_tags).map(|i| format!("{i:0>64}")).collect();
    tags.push("x".repeat(last));
    let h = HostSpec::from_json(&json!({"macs": ["52:54:00:aa:bb:cc"], "set_tags": tags})).unwrap();
    assert_eq!(h.render().len(), MAX_LINE_BYTES);
    assert_eq!(HostSpec::parse_line(&h.render()).unwrap(), h);
    tags.pop();
    tags.push("x".repeat(last + 1));
    let e =
        HostSpec::from_json(&json!({"macs": ["52:54:00:aa:bb:cc"], "set_tags": tags})).unwrap_err();
    assert_eq!(e.field, None);
    assert!(e.message.contains("1025 bytes"), "{}", e.message);
}

#[test]
fn option_line_length_limit_is_exact() {
    let prefix = "option6:59,";
    let ok = "x".repeat(MAX_LINE_BYTES - 1 - prefix.len());
    let o = OptionsSpec::from_json(&json!({"options": [{"option": "option6:59", "value": ok}]}))
        .unwrap();
    assert_eq!(o.render().len(), MAX_LINE_BYTES);
    assert_eq!(OptionsSpec::parse_file(o.render().as_bytes()).unwrap(), o);
    let long = format!("{ok}x");
    let e = OptionsSpec::from_json(&json!({"options": [{"option": "option6:59", "value": long}]}))
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("options[0].value"));
    assert!(e.message.contains("1025 bytes"), "{}", e.message);
}

// ---------------------------------------------------------------- real dnsmasq

/// The dnsmasq builds the grammar is checked against: Debian's 2.90 and the
/// 2.91 and 2.93 built by `scripts/build-dnsmasq.sh` (panics, naming the
/// fix, when one is missing).
pub(super) fn dnsmasq_binaries() -> Vec<std::path::PathBuf> {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bins = [
        std::path::PathBuf::from("/usr/sbin/dnsmasq"),
        top.join("target/dnsmasq-2.91/dnsmasq"),
        top.join("target/dnsmasq-2.93/dnsmasq"),
    ];
    for b in &bins {
        assert!(
            b.exists(),
            "{} is missing: run scripts/install-test-deps.sh (or scripts/build-dnsmasq.sh 2.91|2.93)",
            b.display()
        );
    }
    bins.into()
}

/// Starts `dnsmasq` in a private network namespace (only a loopback
/// interface, so it serves nobody) with the given hosts and options files,
/// waits until it has read both, stops it and returns what it logged.
/// `None` when dnsmasq or `unshare` cannot be run here.
fn dnsmasq_log(dnsmasq: &std::path::Path, hosts: &str, opts: &str) -> Option<Vec<String>> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = std::env::temp_dir().join(format!("entry-dnsmasq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let hosts_file = dir.join("hosts");
    let opts_file = dir.join("opts");
    std::fs::write(&hosts_file, hosts).ok()?;
    std::fs::write(&opts_file, opts).ok()?;
    let conf_file = dir.join("dnsmasq.conf");
    std::fs::write(&conf_file, "").ok()?;
    let mut child = Command::new("unshare")
        .arg("-n")
        .arg(dnsmasq)
        .args([
            "-d",
            "--port=0",
            "--leasefile-ro",
            "--dhcp-range=10.0.0.10,10.0.0.20",
        ])
        .arg(format!("--conf-file={}", conf_file.display()))
        // Never /dev/null: dnsmasq unlinks its pid file when it exits.
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--dhcp-hostsfile={}", hosts_file.display()))
        .arg(format!("--dhcp-optsfile={}", opts_file.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let stderr = child.stderr.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let done = format!("read {}", opts_file.display());
    let mut log = Vec::new();
    let mut finished = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        let last = line.ends_with(&done);
        log.push(line);
        if last {
            finished = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if !finished {
        eprintln!("dnsmasq did not start: {log:?}");
        return None;
    }
    Some(log)
}

fn sample<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, n: usize) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .filter_map(|_| strategy.new_tree(&mut runner).ok().map(|t| t.current()))
        .collect()
}

/// Every rendered line is read by dnsmasq 2.90, 2.91 and 2.93 without an
/// error, and the lines refused for dnsmasq's own reasons are refused by
/// each too. Needs root (for `unshare -n`) and the three builds:
/// `cargo test entry::tests::real_dnsmasq -- --ignored`.
#[test]
#[ignore = "needs root for unshare -n and dnsmasq 2.90, 2.91, 2.93"]
fn real_dnsmasq_reads_rendered_lines_without_error() {
    let mut used_ips = BTreeSet::new();
    let mut hosts = String::new();
    for v in sample(host_json(), 1000) {
        let h = HostSpec::from_json(&v).unwrap();
        // dnsmasq refuses a second line for one IPv4 address.
        if h.ipv4().is_some_and(|a| !used_ips.insert(a)) {
            continue;
        }
        hosts.push_str(&h.render());
    }
    // Whatever random soup happens to be accepted, too.
    for s in sample(grammar_soup(), 10_000) {
        if let Ok(h) = HostSpec::parse_line(&s) {
            if h.ipv4().is_none_or(|a| used_ips.insert(a)) {
                hosts.push_str(&h.render());
            }
        }
    }
    hosts.push_str("52:54:00:aa:bb:cc,set:f3a1,set:ironic\n52:54:00:aa:bb:cd,ignore\n");
    let mut opts = String::new();
    for v in sample(options_json(), 1000) {
        opts.push_str(
            OptionsSpec::from_json(&v)
                .unwrap()
                .render()
                .trim_start_matches('\n'),
        );
    }
    for s in sample(option_soup(), 10_000) {
        if let Ok(o) = OptionsSpec::parse_file(s.as_bytes()) {
            opts.push_str(o.render().trim_start_matches('\n'));
        }
    }
    eprintln!(
        "feeding dnsmasq {} host lines and {} option lines",
        hosts.lines().count(),
        opts.lines().count()
    );
    for dnsmasq in dnsmasq_binaries() {
        check_dnsmasq_reads(&dnsmasq, &hosts, &opts);
    }
}

/// The checks of [`real_dnsmasq_reads_rendered_lines_without_error`] for one
/// dnsmasq build: no rendered line is refused, and each line the broker
/// refuses because dnsmasq would is refused by this build too (some only
/// by some releases: names and types that only 2.93 knows).
fn check_dnsmasq_reads(dnsmasq: &std::path::Path, hosts: &str, opts: &str) {
    let Some(log) = dnsmasq_log(dnsmasq, hosts, opts) else {
        panic!(
            "{} could not be started here (root and unshare needed)",
            dnsmasq.display()
        );
    };
    let show = |file: &str, l: &str| {
        let n: usize = l
            .rsplit(" at line ")
            .next()
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        file.lines()
            .nth(n.saturating_sub(1))
            .unwrap_or_default()
            .to_owned()
    };
    let refused: Vec<String> = log
        .iter()
        .filter(|l| l.contains(" at line "))
        .map(|l| {
            let file = if l.ends_with("hosts") { hosts } else { opts };
            format!("{l}: {:?}", show(file, l))
        })
        .collect();
    assert!(
        refused.is_empty(),
        "{} refused {} rendered lines:\n{}",
        dnsmasq.display(),
        refused.len(),
        refused.join("\n")
    );

    // Lines the broker refuses because dnsmasq would: dnsmasq logs each.
    let mut refused = vec![
        "tag:a,3,".to_owned(),
        "tag:a,3,router.lan".to_owned(),
        "tag:a,3,10.0.0.1,10.0.0.300".to_owned(),
        "tag:a,209,1.0".to_owned(),
        "tag:a,43,5".to_owned(),
        "tag:a,option6:dns-server,dns.lan".to_owned(),
        "tag:a,option:routr,10.0.0.1".to_owned(),
        "tag:a,option:hostname,x".to_owned(),
        "tag:a,option:67,x".to_owned(),
        format!("tag:a,67,{}", "x".repeat(256)),
    ];
    let release = dnsmasq
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("dnsmasq-"))
        .unwrap_or("2.90");
    if release == "2.93" {
        // Addresses only (2.90 and 2.91 send these as text).
        refused.extend(["tag:a,92,gw".to_owned(), "tag:a,92,".to_owned()]);
    } else {
        // Names only 2.93 knows.
        refused.extend([
            "tag:a,option:captive-portal,https://portal.example/".to_owned(),
            "tag:a,option:last-transaction,3600i".to_owned(),
            "tag:a,option:associated-ip,10.0.0.1".to_owned(),
            "tag:a,option6:captive-portal,https://portal.example/".to_owned(),
        ]);
    }
    for line in &refused {
        assert!(OptionsSpec::parse_file(line.as_bytes()).is_err(), "{line}");
    }
    let log = dnsmasq_log(dnsmasq, "", &(refused.join("\n") + "\n")).expect("dnsmasq ran before");
    let errors = log.iter().filter(|l| l.contains(" at line ")).count();
    assert_eq!(errors, refused.len(), "{}: {log:#?}", dnsmasq.display());
}
