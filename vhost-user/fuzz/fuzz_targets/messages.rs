//! A front-end that sends arbitrary bytes as vhost-user messages (no fds attached).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vhost_user::fuzzing::messages(data);
});
