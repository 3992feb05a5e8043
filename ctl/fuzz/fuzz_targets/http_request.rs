//! Feeds arbitrary bytes to the metrics endpoint's request parser: it must never panic, and a
//! request it accepts has a path that starts with '/' and holds no control character.

#![no_main]

use ctl::metrics::http::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_request(data) {
        assert!(r.path.starts_with('/'));
        assert!(!r.path.bytes().any(|b| b.is_ascii_control()));
    }
});
