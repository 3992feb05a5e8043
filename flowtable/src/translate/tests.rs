use super::*;
use crate::rule::{Match, Rule};
use crate::{FULL_MASK, parse_rule};

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const PORTS: &[PortNo] = &[1, 2, 3];

fn pkt(in_port: PortNo, src: [u8; 6], dst: [u8; 6]) -> FlowKey {
    FlowKey {
        in_port,
        dl_src: src,
        dl_dst: dst,
        dl_type: 0x0800,
        ..FlowKey::default()
    }
}

fn table(lines: &[&str]) -> RuleTable {
    let mut t = RuleTable::new();
    for l in lines {
        let by_name = |n: &str| n.strip_prefix('p').and_then(|d| d.parse().ok());
        t.insert(parse_rule(l, &by_name).unwrap());
    }
    t
}

fn run(t: &RuleTable, macs: &mut MacTable, k: FlowKey) -> Decision {
    translate(
        &k,
        &BridgeView {
            ports: PORTS,
            vlan_modes: &[],
            rules: t,
        },
        macs,
        0,
    )
}

fn outputs(ports: &[PortNo]) -> Vec<DpAction> {
    ports.iter().map(|&p| DpAction::Output(p)).collect()
}

#[test]
fn normal_floods_then_unicasts_after_learning() {
    let t = RuleTable::new();
    let mut macs = MacTable::default();
    let d = run(&t, &mut macs, pkt(1, A, B));
    assert_eq!(d.actions, outputs(&[2, 3]));
    assert_eq!(d.drop, None);
    assert!(d.rule.is_none());
    assert!(d.floods && d.normal_targets.is_empty());
    assert_eq!(d.mac_deps, vec![(0, A), (0, B)]);
    assert_eq!(d.learn, Some((0, A)));
    assert_eq!(d.mask.dl_dst, [0xff; 6]);
    assert_eq!(d.mask.dl_src, [0xff; 6]);
    assert_eq!(d.mask.in_port, u32::MAX);
    assert_eq!(d.mask.vlan_tci, u16::MAX);
    assert_eq!(d.mask.nw_src, [0; 16], "NORMAL does not look at L3");
    // B answers: A is known on port 1.
    let d = run(&t, &mut macs, pkt(2, B, A));
    assert_eq!(d.actions, outputs(&[1]));
    assert!(!d.floods);
    assert_eq!(d.normal_targets, vec![1]);
    assert_eq!(d.mac_deps, vec![(0, B), (0, A)]);
    assert!(d.involves_port(2, 1) && d.involves_port(2, 2) && !d.involves_port(2, 3));
    // And now B is known on port 2.
    let d = run(&t, &mut macs, pkt(1, A, B));
    assert_eq!(d.actions, outputs(&[2]));
    // Broadcast always floods.
    let d = run(&t, &mut macs, pkt(3, [2, 0, 0, 0, 0, 0xc], [0xff; 6]));
    assert_eq!(d.actions, outputs(&[1, 2]));
    assert!(d.floods);
    assert_eq!(d.mac_deps, vec![(0, [2, 0, 0, 0, 0, 0xc])]);
}

#[test]
fn normal_detects_moves_and_ingress_is_egress() {
    let t = RuleTable::new();
    let mut macs = MacTable::default();
    run(&t, &mut macs, pkt(1, A, B));
    let seen = macs.change_seq();
    run(&t, &mut macs, pkt(3, A, B)); // A moved to port 3
    let changed: Vec<_> = macs.changes_since(seen).unwrap().collect();
    assert_eq!(changed, vec![(0, A)]);
    assert_eq!(run(&t, &mut macs, pkt(2, B, A)).actions, outputs(&[3]));
    // A sends to B, but B was learned on A's own port.
    run(&t, &mut macs, pkt(3, B, A));
    let d = run(&t, &mut macs, pkt(3, A, B));
    assert!(d.actions.is_empty());
    assert_eq!(d.drop, Some(DropReason::IngressIsEgress));
}

#[test]
fn vlans_are_learned_separately() {
    let t = RuleTable::new();
    let mut macs = MacTable::default();
    let mut k = pkt(1, A, B);
    k.vlan_tci = VLAN_PRESENT | 10;
    run(&t, &mut macs, k);
    assert_eq!(macs.lookup(10, A, 0), Some(1));
    assert_eq!(macs.lookup(0, A, 0), None);
    // Untagged traffic to A still floods.
    assert_eq!(run(&t, &mut macs, pkt(2, B, A)).actions, outputs(&[1, 3]));
}

#[test]
fn rule_priorities_and_no_match() {
    let t = table(&[
        "priority=10,in_port=p1,actions=output:p2",
        "priority=20,in_port=p1,tcp,tp_dst=80,actions=drop",
        "priority=5,in_port=p3,actions=in_port",
    ]);
    let mut macs = MacTable::default();
    let k = pkt(1, A, B);
    let d = run(&t, &mut macs, k);
    assert_eq!(d.actions, outputs(&[2]));
    assert_eq!(d.rule.as_ref().map(|r| r.rule.priority), Some(10));
    // The priority-20 rule was examined first, so its fields are in the mask.
    assert_eq!(
        (d.mask.dl_type, d.mask.nw_proto, d.mask.tp_dst),
        (u16::MAX, 0xff, u16::MAX)
    );

    let mut web = k;
    web.nw_proto = 6;
    web.tp_dst = 80;
    let d = run(&t, &mut macs, web);
    assert_eq!(
        (d.actions.len(), d.drop, d.rule_priority()),
        (0, Some(DropReason::RuleDrop), Some(20))
    );

    let d = run(&t, &mut macs, pkt(2, A, B));
    assert_eq!((d.drop, d.rule_id()), (Some(DropReason::NoMatch), None));
    assert_eq!(run(&t, &mut macs, pkt(3, A, B)).actions, outputs(&[3]));
    assert!(macs.is_empty(), "rules without NORMAL do not learn");
}

#[test]
fn mod_vlan_vid_then_output_and_normal() {
    let t = table(&[
        "in_port=p1,actions=mod_vlan_vid:42,output:p2",
        "in_port=p2,actions=mod_vlan_vid:7,normal",
        "in_port=p3,dl_vlan=5,actions=mod_vlan_vid:6,output:p1,pop_vlan,output:p2,mod_vlan_pcp:3",
    ]);
    let mut macs = MacTable::default();
    let d = run(&t, &mut macs, pkt(1, A, B));
    let push = DpAction::PushVlan {
        tpid: 0x8100,
        tci: 42,
    };
    assert_eq!(d.actions, vec![push, DpAction::Output(2)]);
    assert_eq!(d.mask.vlan_tci, u16::MAX);

    // NORMAL sees the new VLAN: learning happens on VID 7.
    run(&t, &mut macs, pkt(2, A, B));
    assert_eq!(macs.lookup(7, A, 0), Some(2));

    let mut k = pkt(3, A, B);
    k.vlan_tci = VLAN_PRESENT | 5;
    let d = run(&t, &mut macs, k);
    // The trailing mod_vlan_pcp is dropped: nothing outputs after it.
    let want = vec![
        DpAction::SetVlanVid(6),
        DpAction::Output(1),
        DpAction::PopVlan,
        DpAction::Output(2),
    ];
    assert_eq!(d.actions, want);
}

#[test]
fn flood_output_to_in_port_and_no_ports() {
    let t = table(&[
        "in_port=p1,actions=flood",
        "in_port=p2,actions=output:p2",
        "actions=all",
    ]);
    let mut macs = MacTable::default();
    assert_eq!(run(&t, &mut macs, pkt(1, A, B)).actions, outputs(&[2, 3]));
    let d = run(&t, &mut macs, pkt(2, A, B));
    assert_eq!(d.drop, Some(DropReason::IngressIsEgress));
    assert_eq!(run(&t, &mut macs, pkt(3, A, B)).actions, outputs(&[1, 2]));
    let lonely = BridgeView {
        ports: &[1],
        vlan_modes: &[],
        rules: &t,
    };
    let d = translate(&pkt(1, A, B), &lonely, &mut macs, 0);
    assert_eq!(d.drop, Some(DropReason::NoPorts));
}

#[test]
fn set_dscp_only_on_ip() {
    let mut t = RuleTable::new();
    t.insert(Rule {
        priority: 1,
        m: Match::new(FlowKey::default(), FlowKey::default()),
        actions: vec![Action::SetDscp(46), Action::Output(2)],
        cookie: 0,
    });
    let mut macs = MacTable::default();
    let d = run(&t, &mut macs, pkt(1, A, B));
    assert_eq!(d.actions, vec![DpAction::SetDscp(46), DpAction::Output(2)]);
    let mut arp = pkt(1, A, B);
    arp.dl_type = 0x0806;
    assert_eq!(run(&t, &mut macs, arp).actions, outputs(&[2]));
    assert_eq!(d.mask.masked(&FULL_MASK), d.mask);
}

mod vlans {
    use super::*;
    use vlan_vxlan::{VlanMode, VlanSet};

    const Q: u16 = 0x8100;
    const AD: u16 = 0x88a8;

    fn tagged(mut k: FlowKey, tpid: u16, tci: u16) -> FlowKey {
        k.vlan_tpid = tpid;
        k.vlan_tci = tci | VLAN_PRESENT;
        k
    }

    fn run_modes(modes: &[VlanMode], macs: &mut MacTable, k: FlowKey) -> Decision {
        let ports: Vec<PortNo> = (1..=modes.len() as u32).collect();
        let t = RuleTable::new();
        translate(
            &k,
            &BridgeView {
                ports: &ports,
                vlan_modes: modes,
                rules: &t,
            },
            macs,
            0,
        )
    }

    fn trunks(s: &str) -> VlanMode {
        VlanMode::Trunk(VlanSet::parse(s).unwrap())
    }

    #[test]
    fn access_ports_only_reach_their_vlan_untagged_and_trunks_get_tags() {
        // 1: access 10, 2: access 20, 3: access 10, 4: trunk 10,20
        let modes = [
            VlanMode::Access(10),
            VlanMode::Access(20),
            VlanMode::Access(10),
            trunks("10,20"),
        ];
        let mut macs = MacTable::default();
        let d = run_modes(&modes, &mut macs, pkt(1, A, B));
        assert_eq!(
            d.actions,
            vec![
                DpAction::Output(3),
                DpAction::PushVlan { tpid: Q, tci: 10 },
                DpAction::Output(4)
            ],
            "flood stays in VLAN 10: never port 2"
        );
        assert_eq!(d.learn, Some((10, A)));
        // Tagged frame into an access port: dropped with a reason.
        let d = run_modes(&modes, &mut macs, tagged(pkt(1, A, B), Q, 20));
        assert_eq!(d.drop, Some(DropReason::VlanTaggedOnAccess));
        // Priority-tagged frame into an access port: accepted, PCP kept on the trunk.
        let d = run_modes(&modes, &mut macs, tagged(pkt(3, B, A), Q, 5 << 13));
        assert_eq!(
            d.actions,
            vec![DpAction::PopVlan, DpAction::Output(1)],
            "A is known on port 1"
        );
        // From the trunk on VLAN 20 to an unknown MAC: port 2 only, untagged.
        let d = run_modes(
            &modes,
            &mut macs,
            tagged(pkt(4, B, [2, 0, 0, 0, 0, 0x99]), Q, 20),
        );
        assert_eq!(d.actions, vec![DpAction::PopVlan, DpAction::Output(2)]);
        // VLAN 30 is not carried by the trunk.
        let d = run_modes(&modes, &mut macs, tagged(pkt(4, B, A), Q, 30));
        assert_eq!(d.drop, Some(DropReason::VlanNotAllowed));
        // Same MAC on two VLANs: learned separately.
        assert_eq!(macs.lookup(20, B, 0), Some(4));
        assert_eq!(macs.lookup(10, B, 0), Some(3));
    }

    #[test]
    fn trunk_to_trunk_keeps_the_tag_and_native_untagged_strips() {
        let modes = [
            VlanMode::TrunkAll,
            VlanMode::TrunkAll,
            VlanMode::NativeUntagged {
                tag: 7,
                trunks: VlanSet::new(),
            },
            VlanMode::NativeTagged {
                tag: 7,
                trunks: VlanSet::new(),
            },
        ];
        let mut macs = MacTable::default();
        let d = run_modes(&modes, &mut macs, tagged(pkt(1, A, B), Q, (3 << 13) | 7));
        assert_eq!(
            d.actions,
            vec![
                DpAction::Output(2),
                DpAction::Output(4),
                DpAction::PopVlan,
                DpAction::Output(3)
            ]
        );
        // Untagged from the native port: VLAN 7, tagged towards trunks.
        let d = run_modes(&modes, &mut macs, pkt(3, B, [0xff; 6]));
        assert_eq!(
            d.actions,
            vec![
                DpAction::PushVlan { tpid: Q, tci: 7 },
                DpAction::Output(1),
                DpAction::Output(2),
                DpAction::Output(4)
            ]
        );
    }

    #[test]
    fn dot1q_tunnel_keeps_customer_tags_under_a_service_tag() {
        let modes = [
            VlanMode::Dot1qTunnel {
                tag: 100,
                cvlans: Some(VlanSet::parse("10").unwrap()),
            },
            VlanMode::Trunk(VlanSet::parse("100").unwrap()),
            VlanMode::Dot1qTunnel {
                tag: 100,
                cvlans: None,
            },
        ];
        let mut macs = MacTable::default();
        let d = run_modes(&modes, &mut macs, tagged(pkt(1, A, B), Q, 10));
        assert_eq!(
            d.actions,
            vec![
                DpAction::Output(3),
                DpAction::PushVlan { tpid: AD, tci: 100 },
                DpAction::Output(2),
            ],
            "customer tag kept: as is to the other tunnel port, under an 802.1ad tag on the trunk"
        );
        // From the trunk, service VLAN 100 (802.1ad outer over customer tag 10): the service
        // tag is removed towards the tunnel ports.
        let mut k = tagged(pkt(2, B, [0xff; 6]), AD, 100);
        k.cvlan_tci = 10 | VLAN_PRESENT;
        let d = run_modes(&modes, &mut macs, k);
        assert_eq!(
            d.actions,
            vec![DpAction::PopVlan, DpAction::Output(1), DpAction::Output(3)]
        );
        let d = run_modes(&modes, &mut macs, tagged(pkt(1, A, B), Q, 11));
        assert_eq!(d.drop, Some(DropReason::CvlanNotAllowed));
    }
}
