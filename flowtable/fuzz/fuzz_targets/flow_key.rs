//! The frame parser must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = flowtable::extract(data, 1) {
        // A key that parsed is self-consistent: masking with all ones is the identity.
        assert_eq!(k.masked(&flowtable::FULL_MASK), k);
    }
});
