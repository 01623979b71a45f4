//! dnsmasq's lease file as `GET /v1/leases` reads it: never panics, and
//! every lease it reports serializes to JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for lease in hostsdir_broker::leases::parse(&text) {
        serde_json::to_string(&lease).expect("a lease serializes");
    }
});
