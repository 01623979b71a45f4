//! A dhcp-optsdir file: parsing never panics, and a file the broker accepts
//! renders to lines that parse back to themselves.
#![no_main]

use hostsdir_broker::entry::OptionsSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = OptionsSpec::parse_file(data) else {
        return;
    };
    let text = spec.render();
    let again = OptionsSpec::parse_file(text.as_bytes())
        .unwrap_or_else(|e| panic!("the rendered file {text:?} is refused: {e:?}"));
    assert_eq!(again.render(), text, "rendering is not stable");
});
