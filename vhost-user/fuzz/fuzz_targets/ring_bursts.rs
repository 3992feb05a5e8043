//! A guest that controls the whole ring memory: descriptor table, available ring, indirect
//! tables and buffers come from the input; transmit and receive bursts run over it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vhost_user::fuzzing::ring_bursts(data);
});
