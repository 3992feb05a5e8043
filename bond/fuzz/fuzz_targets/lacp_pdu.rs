//! Any bytes arriving on a bond member as a Slow Protocols frame: parsing never panics, a
//! parsed PDU written back parses to the same value, and feeding the frames to a running bond
//! keeps its invariants (every bucket on an enabled member, or none when none is).
#![no_main]

use std::time::Duration;

use bond::lacp::{SlowPdu, SystemId, pdu};
use bond::{Bond, BondConfig, BondMode, LacpMode, MemberSpec, NO_MEMBER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = pdu::parse(data) {
        let again = match p {
            SlowPdu::Lacp(l) => pdu::build_lacpdu([2; 6], &l),
            SlowPdu::Marker(m) => pdu::build_marker([2; 6], &m),
        };
        assert_eq!(pdu::parse(&again), Ok(p));
    }
    // The same bytes, cut into frames, as a stream on two members of a live bond.
    let system = SystemId {
        priority: 1,
        mac: [2, 0, 0, 0, 0, 1],
    };
    let mut c = BondConfig::new(BondMode::BalanceTcp, LacpMode::Active, system, 5);
    c.lacp_fast = true;
    let members = [
        MemberSpec {
            port: 1,
            mac: [2, 1, 1, 1, 1, 1],
        },
        MemberSpec {
            port: 2,
            mac: [2, 2, 2, 2, 2, 2],
        },
    ];
    let Ok(mut b) = Bond::new(c, &members) else {
        return;
    };
    b.set_carrier(0, true, Duration::ZERO);
    b.set_carrier(1, true, Duration::ZERO);
    let mut now = Duration::ZERO;
    for (i, chunk) in data.chunks(124).enumerate() {
        let mut frame = chunk.to_vec();
        if frame.len() >= 14 {
            frame[12] = 0x88;
            frame[13] = 0x09;
        }
        let _ = b.receive_lacp(i & 1, &frame, now);
        now += Duration::from_millis(u64::from(chunk[0]) * 20);
        b.run(now);
        b.transmit_lacp(now, |_, f| assert!(pdu::parse(f).is_ok()));
        let d = b.distribution();
        for &m in d.buckets.iter() {
            assert!(m == NO_MEMBER || d.enabled & (1 << m) != 0 || d.enabled == 0);
        }
    }
});
