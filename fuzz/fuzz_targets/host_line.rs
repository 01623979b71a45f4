//! A dhcp-host file as dnsmasq would read it: parsing never panics, and a
//! file the broker accepts renders to a line that parses back to itself.
#![no_main]

use hostsdir_broker::entry::HostSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = HostSpec::parse_file(data) else {
        return;
    };
    let line = spec.render();
    assert!(line.len() <= hostsdir_broker::entry::MAX_LINE_BYTES + 1);
    let again = HostSpec::parse_file(line.as_bytes())
        .unwrap_or_else(|e| panic!("the rendered line {line:?} is refused: {e:?}"));
    assert_eq!(again.render(), line, "rendering is not stable");
});
