//! Replays the fuzz targets' seed corpus (`fuzz/corpus/`, real Ironic and
//! dnsmasq files) and every saved crash (`fuzz/regressions/`) through the
//! same checks as the targets in `fuzz/fuzz_targets/`, on stable, in the
//! ordinary test run.

use std::path::Path;

use hostsdir_broker::entry::{HostSpec, OptionsSpec, MAX_LINE_BYTES};

fn host_line(data: &[u8]) {
    let Ok(spec) = HostSpec::parse_file(data) else {
        return;
    };
    let line = spec.render();
    assert!(line.len() <= MAX_LINE_BYTES + 1);
    let again = HostSpec::parse_file(line.as_bytes())
        .unwrap_or_else(|e| panic!("the rendered line {line:?} is refused: {e:?}"));
    assert_eq!(again.render(), line, "rendering is not stable");
}

fn option_lines(data: &[u8]) {
    let Ok(spec) = OptionsSpec::parse_file(data) else {
        return;
    };
    let text = spec.render();
    let again = OptionsSpec::parse_file(text.as_bytes())
        .unwrap_or_else(|e| panic!("the rendered file {text:?} is refused: {e:?}"));
    assert_eq!(again.render(), text, "rendering is not stable");
}

fn json_round_trip(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(spec) = HostSpec::from_json(&value) {
        let line = spec.render();
        let parsed = HostSpec::parse_file(line.as_bytes())
            .unwrap_or_else(|e| panic!("{value} rendered {line:?}, which is refused: {e:?}"));
        assert_eq!(parsed.render(), line);
        let view = serde_json::to_value(&spec).unwrap();
        let back = HostSpec::from_json(&view)
            .unwrap_or_else(|e| panic!("the view {view} of {value} is refused: {e:?}"));
        assert_eq!(back.render(), line);
    }
    if let Ok(spec) = OptionsSpec::from_json(&value) {
        let text = spec.render();
        let parsed = OptionsSpec::parse_file(text.as_bytes())
            .unwrap_or_else(|e| panic!("{value} rendered {text:?}, which is refused: {e:?}"));
        assert_eq!(parsed.render(), text);
        let view = serde_json::to_value(&spec).unwrap();
        let back = OptionsSpec::from_json(&view)
            .unwrap_or_else(|e| panic!("the view {view} of {value} is refused: {e:?}"));
        assert_eq!(back.render(), text);
    }
}

fn lease_file(data: &[u8]) {
    for lease in hostsdir_broker::leases::parse(&String::from_utf8_lossy(data)) {
        serde_json::to_string(&lease).unwrap();
    }
}

fn token_file(data: &[u8]) {
    if let Ok(n) = hostsdir_broker::http::auth::parse_token_text(&String::from_utf8_lossy(data)) {
        assert!(n > 0);
    }
}

/// Runs `check` on every file of `fuzz/{corpus,regressions}/<target>/`;
/// returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for file in dir {
            let path = file.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails {target}", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn seed_corpus_and_regressions_pass_every_target() {
    assert!(replay("host_line", host_line) >= 5);
    assert!(replay("option_lines", option_lines) >= 5);
    assert!(replay("json_round_trip", json_round_trip) >= 5);
    assert!(replay("lease_file", lease_file) >= 1);
    assert!(replay("token_file", token_file) >= 1);
}

/// The seed files are accepted by the parsers (not only "no panic").
#[test]
fn seed_files_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for file in std::fs::read_dir(root.join("host_line")).unwrap() {
        let path = file.unwrap().path();
        HostSpec::parse_file(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    }
    for file in std::fs::read_dir(root.join("option_lines")).unwrap() {
        let path = file.unwrap().path();
        OptionsSpec::parse_file(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    }
    assert_eq!(
        hostsdir_broker::leases::parse(
            &std::fs::read_to_string(root.join("lease_file/dnsmasq-v4-v6")).unwrap()
        )
        .len(),
        3
    );
}
