//! Reading and re-marking a frame's DSCP must never panic, whatever the bytes, and a re-marked
//! frame must read back with its new DSCP, the same PCP and an unchanged length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&dscp, frame)) = data.split_first() else {
        return;
    };
    let dscp = dscp & 63;
    let before = qos::markings(frame);
    let mut f = frame.to_vec();
    if qos::set_dscp(&mut f, dscp) {
        let after = qos::markings(&f);
        assert_eq!(after.dscp, Some(dscp));
        assert_eq!(after.pcp, before.pcp);
        assert_eq!(f.len(), frame.len());
    } else {
        assert_eq!(f, frame, "a frame that cannot be re-marked is left alone");
    }
    // Every DSCP maps to a class, whatever the trust.
    let map = qos::ClassMap::default();
    for t in [qos::Trust::Dscp, qos::Trust::Pcp, qos::Trust::Untrusted { dscp }] {
        assert!(map.classify(t, before.dscp, before.pcp).index() < qos::CLASSES);
    }
});
