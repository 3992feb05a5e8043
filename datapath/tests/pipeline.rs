//! The pipeline end to end over ring ports: real PMD thread, real caches, exact frames out.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use common::*;
use datapath::packet::MAX_FRAME;
use vlan_vxlan::VlanMode;

#[test]
fn normal_floods_unknown_then_learns() {
    let mut h = Harness::new(3);
    let a = simple(mac(2), mac(1), b"to-unknown");
    h.send(1, &[a.clone()]);
    let out = h.collect();
    assert_eq!(
        out[0],
        Vec::<Vec<u8>>::new(),
        "never back out of the ingress port"
    );
    assert_eq!(out[1], vec![a.clone()]);
    assert_eq!(out[2], vec![a]);

    // mac(2) answers from port 2: mac(1) was learned on port 1, so only port 1 gets it.
    let b = simple(mac(1), mac(2), b"reply");
    h.send(2, &[b.clone()]);
    let out = h.collect();
    assert_eq!(out, vec![vec![b], vec![], vec![]]);

    // Now both are known: unicast from 1 to 2 goes to port 2 only.
    let c = simple(mac(2), mac(1), b"again");
    h.send(1, &[c.clone(), c.clone()]);
    let out = h.collect();
    assert_eq!(out, vec![vec![], vec![c.clone(), c], vec![]]);

    let fdb = h.sw.fdb("br0").unwrap();
    let mut learned: Vec<(String, [u8; 6])> = fdb.iter().map(|e| (e.port.clone(), e.mac)).collect();
    learned.sort();
    assert_eq!(learned, vec![("p1".into(), mac(1)), ("p2".into(), mac(2))]);
}

#[test]
fn mac_move_is_followed() {
    let mut h = Harness::new(3);
    h.send(1, &[simple(BCAST, mac(1), b"hello")]);
    h.collect();
    // mac(1) moves to port 3.
    h.send(3, &[simple(BCAST, mac(1), b"moved")]);
    h.collect();
    let to1 = simple(mac(1), mac(2), b"x");
    h.send(2, &[to1.clone()]);
    assert_eq!(h.collect(), vec![vec![], vec![], vec![to1]]);
}

#[test]
fn explicit_rules_priorities_and_drop() {
    let mut h = Harness::new(3);
    add_flow(&h.sw, "br0", "priority=10,in_port=p1,actions=output:p2").unwrap();
    add_flow(
        &h.sw,
        "br0",
        "priority=20,udp,in_port=p1,tp_dst=53,actions=drop",
    )
    .unwrap();
    let f = simple(mac(9), mac(1), b"rule");
    let dns = udp_frame(mac(9), mac(1), &[], 0, 1000, 53, b"dns");
    h.send(1, &[f.clone(), dns.clone(), f.clone()]);
    assert_eq!(
        h.collect(),
        vec![vec![], vec![f.clone(), f.clone()], vec![]]
    );
    assert_eq!(h.drops("p1"), vec![("rule-drop".to_string(), 1)]);

    // Table miss on a bridge with rules: dropped and counted.
    h.send(2, &[f.clone()]);
    assert!(h.collect().iter().all(|frames| frames.is_empty()));
    assert_eq!(h.drops("p2"), vec![("no-match".to_string(), 1)]);

    let flows = h.sw.dump_flows("br0").unwrap();
    let hits: Vec<(u16, u64)> = flows
        .iter()
        .map(|f| (f.rule.priority, f.n_packets))
        .collect();
    assert_eq!(hits, vec![(20, 1), (10, 2)]);

    // Deleting the rules brings NORMAL back.
    assert_eq!(del_flows(&h.sw, "br0"), 2);
    h.send(2, &[f.clone()]);
    assert_eq!(h.collect(), vec![vec![f.clone()], vec![], vec![f]]);
}

#[test]
fn vlan_push_pop_and_dscp_rewrite_exact_bytes() {
    let mut h = Harness::new(3);
    add_flow(
        &h.sw,
        "br0",
        "in_port=p1,actions=mod_vlan_vid:10,mod_vlan_pcp:5,output:p2",
    )
    .unwrap();
    add_flow(
        &h.sw,
        "br0",
        "in_port=p2,dl_vlan=10,actions=strip_vlan,output:p1",
    )
    .unwrap();
    add_flow(
        &h.sw,
        "br0",
        "in_port=p3,ip,actions=set_field:46->ip_dscp,output:p1",
    )
    .unwrap();

    let plain = udp_frame(mac(2), mac(1), &[], 0, 1, 2, b"payload");
    let tagged = udp_frame(
        mac(2),
        mac(1),
        &[(0x8100, (5 << 13) | 10)],
        0,
        1,
        2,
        b"payload",
    );
    h.send(1, &[plain.clone()]);
    assert_eq!(h.collect(), vec![vec![], vec![tagged.clone()], vec![]]);

    h.send(2, &[tagged]);
    assert_eq!(h.collect(), vec![vec![plain], vec![], vec![]]);

    let ef = udp_frame(mac(2), mac(1), &[], 46 << 2, 1, 2, b"voice");
    h.send(3, &[udp_frame(mac(2), mac(1), &[], 0, 1, 2, b"voice")]);
    assert_eq!(h.collect(), vec![vec![ef], vec![], vec![]]);
}

#[test]
fn bad_frames_are_counted_never_forwarded_wrongly() {
    let mut h = Harness::new(2);
    let runt = vec![0u8; 10];
    let mut triple = simple(BCAST, mac(1), b"deep");
    triple.splice(12..12, [0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3]);
    // An IPv4 header that lies about its length is still a valid L2 frame: forwarded as L2.
    let mut bad_ip = simple(BCAST, mac(1), b"bad-ip");
    bad_ip[14] = 0x4f;
    bad_ip[16] = 0xff;
    h.send(1, &[runt, triple, bad_ip.clone()]);
    assert_eq!(h.collect(), vec![vec![], vec![bad_ip]]);
    let mut drops = h.drops("p1");
    drops.sort();
    assert_eq!(
        drops,
        vec![("runt".to_string(), 1), ("vlan-too-deep".to_string(), 1)]
    );
}

#[test]
fn flood_of_many_flows_through_caches_is_lossless() {
    let mut h = Harness::new(2);
    add_flow(&h.sw, "br0", "in_port=p1,actions=output:p2").unwrap();
    let frames: Vec<Vec<u8>> = (0..600u16)
        .map(|i| udp_frame(mac(2), mac(1), &[], 0, i, 80, b"f"))
        .collect();
    for chunk in frames.chunks(300) {
        h.send(1, chunk);
        let out = h.collect();
        assert_eq!(out[1], chunk.to_vec());
    }
    let pmd = &h.sw.pmds()[0];
    assert_eq!(pmd.packets, 600);
    assert!(
        pmd.misses >= 1 && pmd.misses <= 2,
        "one megaflow serves all 600 flows: {pmd:?}"
    );
}

fn trunks(vids: &[u16]) -> VlanMode {
    let mut set = vlan_vxlan::VlanSet::new();
    for v in vids {
        set.insert(*v);
    }
    VlanMode::Trunk(set)
}

/// Jumbo frames (9,000 bytes of IP) are tagged and untagged between an access port and a
/// trunk, and flooded as whole copies; the largest frame a packet holds passes too.
#[test]
fn jumbo_frames_through_vlan_push_pop_and_flooding() {
    let mut h = Harness::new(3);
    set_vlan(&h.sw, "p1", VlanMode::Access(10)).unwrap();
    set_vlan(&h.sw, "p2", VlanMode::Access(10)).unwrap();
    set_vlan(&h.sw, "p3", trunks(&[10])).unwrap();
    let payload = vec![0xa5; 9000 - 28];
    let from1 = udp_frame(BCAST, mac(1), &[], 0, 1000, 2000, &payload);
    h.send(1, &[from1.clone()]);
    let tagged = udp_frame(BCAST, mac(1), &[(0x8100, 10)], 0, 1000, 2000, &payload);
    assert_eq!(
        h.collect(),
        vec![vec![], vec![from1.clone()], vec![tagged.clone()]]
    );

    let from3 = udp_frame(mac(1), mac(3), &[(0x8100, 10)], 0, 1000, 2000, &payload);
    h.send(3, &[from3]);
    let untagged = udp_frame(mac(1), mac(3), &[], 0, 1000, 2000, &payload);
    assert_eq!(h.collect(), vec![vec![untagged], vec![], vec![]]);

    let largest = udp_frame(
        BCAST,
        mac(3),
        &[(0x8100, 10)],
        0,
        1,
        2,
        &vec![1; MAX_FRAME - 46],
    );
    assert_eq!(largest.len(), MAX_FRAME);
    h.send(3, &[largest]);
    let out = h.collect();
    assert_eq!((out[0].len(), out[1].len()), (1, 1));
    assert_eq!(out[0][0].len(), MAX_FRAME - 4);
}

#[test]
fn vlan_access_and_trunk_ports_isolate_and_retag() {
    let mut h = Harness::new(3);
    set_vlan(&h.sw, "p1", VlanMode::Access(10)).unwrap();
    set_vlan(&h.sw, "p2", VlanMode::Access(20)).unwrap();
    set_vlan(&h.sw, "p3", trunks(&[10, 20])).unwrap();

    let from1 = simple(BCAST, mac(1), b"vlan10");
    h.send(1, &[from1.clone()]);
    let as_tagged10 = udp_frame(BCAST, mac(1), &[(0x8100, 10)], 0, 1000, 2000, b"vlan10");
    assert_eq!(
        h.collect(),
        vec![vec![], vec![], vec![as_tagged10]],
        "VLAN 10 never reaches the VLAN 20 port"
    );

    let from3 = udp_frame(
        BCAST,
        mac(3),
        &[(0x8100, (6 << 13) | 20)],
        0,
        1000,
        2000,
        b"vlan20",
    );
    h.send(3, &[from3]);
    assert_eq!(
        h.collect(),
        vec![vec![], vec![simple(BCAST, mac(3), b"vlan20")], vec![]]
    );

    // A tagged frame on an access port is dropped and counted; a trunk drops VLANs it lacks.
    h.send(
        1,
        &[udp_frame(
            BCAST,
            mac(1),
            &[(0x8100, 20)],
            0,
            1000,
            2000,
            b"x",
        )],
    );
    h.send(
        3,
        &[udp_frame(
            BCAST,
            mac(3),
            &[(0x8100, 30)],
            0,
            1000,
            2000,
            b"x",
        )],
    );
    assert!(h.collect().iter().all(|f| f.is_empty()));
    assert_eq!(
        h.drops("p1"),
        vec![("vlan-tagged-on-access".to_string(), 1)]
    );
    assert_eq!(h.drops("p3"), vec![("vlan-not-allowed".to_string(), 1)]);

    // Moving p2 to VLAN 10 applies to traffic at once.
    set_vlan(&h.sw, "p2", VlanMode::Access(10)).unwrap();
    h.send(1, &[from1.clone()]);
    let out = h.collect();
    assert_eq!(out[1], vec![from1]);
    assert_eq!(out[2].len(), 1);

    // A port that does not exist is refused.
    assert!(set_vlan(&h.sw, "nope", VlanMode::Access(1)).is_err());
}

#[test]
fn learning_past_a_ports_limit_is_refused_once_per_frame_and_still_forwarded() {
    let mut h = Harness::new(2);
    h.sw.apply(vec![datapath::Change::SetPort {
        name: "p1".into(),
        settings: datapath::PortSettings {
            mac_limits: Some(flowtable::PortLimits {
                max_entries: 1,
                learn_rate: 0,
            }),
            ..datapath::PortSettings::default()
        },
    }])
    .unwrap();
    let frames: Vec<Vec<u8>> = (1..=5).map(|i| simple(BCAST, mac(i), b"flood")).collect();
    h.send(1, &frames);
    let out = h.collect();
    assert_eq!(out[1].len(), 5, "forwarded all the same");
    assert_eq!(h.drops("p1"), vec![("mac-learn-limited".to_string(), 4)]);
    assert_eq!(h.sw.fdb("br0").unwrap().len(), 1);
}
