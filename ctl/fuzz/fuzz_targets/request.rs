//! Feeds arbitrary bytes to the management request decoder: it must never panic, and whatever
//! it accepts must re-encode to a line it decodes the same way.

#![no_main]

use ctl::protocol::{MAX_REQUEST_BYTES, decode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_request(data) {
        Ok(req) => {
            assert!(data.len() <= MAX_REQUEST_BYTES + 2);
            let again = decode_request(req.to_line().as_bytes()).expect("re-encoded request decodes");
            assert_eq!(again, req);
        }
        Err(e) => assert!(!e.contains('\n')),
    }
});
