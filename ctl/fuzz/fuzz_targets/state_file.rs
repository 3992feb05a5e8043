//! Feeds arbitrary bytes to the state file loader: it must never panic, and whatever it
//! accepts must write out to a text that loads back to the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = ctl::persist::from_json(text) {
        let out = ctl::persist::to_json(&cfg);
        let again = ctl::persist::from_json(&out).expect("written state loads");
        assert_eq!(ctl::persist::to_json(&again), out);
    }
});
