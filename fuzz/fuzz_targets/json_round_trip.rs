//! The API's JSON spec → line → parse round trip, for both kinds: a spec the
//! broker accepts renders to a file that parses back to the same file, and
//! its JSON view (what GET answers) is accepted again as a PUT body with
//! the same result.
#![no_main]

use hostsdir_broker::entry::{HostSpec, OptionsSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(spec) = HostSpec::from_json(&value) {
        let line = spec.render();
        let parsed = HostSpec::parse_file(line.as_bytes())
            .unwrap_or_else(|e| panic!("{value} rendered {line:?}, which is refused: {e:?}"));
        assert_eq!(parsed.render(), line);
        let view = serde_json::to_value(&spec).expect("a spec serializes");
        let back = HostSpec::from_json(&view)
            .unwrap_or_else(|e| panic!("the view {view} of {value} is refused: {e:?}"));
        assert_eq!(
            back.render(),
            line,
            "the JSON view of {value} renders differently"
        );
    }
    if let Ok(spec) = OptionsSpec::from_json(&value) {
        let text = spec.render();
        let parsed = OptionsSpec::parse_file(text.as_bytes())
            .unwrap_or_else(|e| panic!("{value} rendered {text:?}, which is refused: {e:?}"));
        assert_eq!(parsed.render(), text);
        let view = serde_json::to_value(&spec).expect("a spec serializes");
        let back = OptionsSpec::from_json(&view)
            .unwrap_or_else(|e| panic!("the view {view} of {value} is refused: {e:?}"));
        assert_eq!(
            back.render(),
            text,
            "the JSON view of {value} renders differently"
        );
    }
});
