//! The token file (`<role> <token>` lines, `#` comments): never panics, and
//! an accepted file holds at least one token.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(n) = hostsdir_broker::http::auth::parse_token_text(&text) {
        assert!(n > 0);
    }
});
