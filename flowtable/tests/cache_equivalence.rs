//! The caches must be invisible: for any rule set and packet stream, `FlowCache::lookup` (slow
//! path = translate on MAC table A) gives the same actions and drop reason as calling
//! `translate` directly on an identical MAC table B, including after rule and port VLAN changes
//! mid-stream, with the cache told of each change exactly as the datapath tells it (the rule
//! added or removed, the port, each learned/moved/removed address), never flushed wholesale
//! except when the rule table becomes empty or non-empty.

use flowtable::*;
use proptest::prelude::*;
use vlan_vxlan::VlanMode;

const PORTS: &[PortNo] = &[1, 2, 3, 4];
const MACS: [[u8; 6]; 4] = [
    [2, 0, 0, 0, 0, 1],
    [2, 0, 0, 0, 0, 2],
    [2, 0, 0, 0, 0, 3],
    [0xff; 6],
];
const VLANS: [Option<u16>; 3] = [None, Some(10), Some(20)];
const NETS: [[u8; 4]; 3] = [[10, 0, 0, 1], [10, 0, 1, 1], [192, 168, 0, 1]];
const TP_DSTS: [u16; 3] = [22, 80, 443];

fn ip4(a: [u8; 4]) -> [u8; 16] {
    let mut v = [0; 16];
    v[..4].copy_from_slice(&a);
    v
}

/// Indices into the small value space above.
#[derive(Clone, Copy, Debug)]
struct Pkt {
    in_port: u32,
    src: usize,
    dst: usize,
    vlan: usize,
    ip: bool,
    net: usize,
    udp: bool,
    tp: usize,
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        1u32..=4,
        0usize..3,
        0usize..4,
        0usize..3,
        any::<bool>(),
        0usize..3,
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(in_port, src, dst, vlan, ip, net, udp, tp)| Pkt {
            in_port,
            src,
            dst,
            vlan,
            ip,
            net,
            udp,
            tp,
        })
}

fn key(p: &Pkt) -> FlowKey {
    let mut k = FlowKey {
        in_port: p.in_port,
        dl_src: MACS[p.src],
        dl_dst: MACS[p.dst],
        ..FlowKey::default()
    };
    if let Some(vid) = VLANS[p.vlan] {
        k.vlan_tci = VLAN_PRESENT | vid;
        k.vlan_tpid = 0x8100;
    }
    if p.ip {
        k.dl_type = 0x0800;
        k.nw_src = ip4(NETS[p.net]);
        k.nw_dst = ip4(NETS[(p.net + 1) % 3]);
        k.nw_proto = if p.udp { 17 } else { 6 };
        k.nw_ttl = 64;
        k.tp_src = 1000;
        k.tp_dst = TP_DSTS[p.tp];
    } else {
        k.dl_type = 0x0806;
        k.nw_proto = 1;
        k.nw_src = ip4(NETS[p.net]);
    }
    k
}

/// Which fields a rule constrains (bitmask of the choices below) plus the values, taken from a
/// packet so rules overlap with the stream.
fn rule() -> impl Strategy<Value = Rule> {
    let action = prop_oneof![
        (1u32..=4).prop_map(Action::Output),
        Just(Action::Drop),
        Just(Action::Normal),
        Just(Action::Flood),
        Just(Action::InPort),
        Just(Action::PopVlan),
        prop_oneof![Just(10u16), Just(20), Just(30)].prop_map(Action::SetVlanVid),
    ];
    (
        any::<u16>(),
        0u16..4,
        pkt(),
        0u8..8,
        proptest::collection::vec(action, 0..4),
    )
        .prop_map(|(fields, prio, p, prefix, actions)| {
            let k = key(&p);
            let mut m = FlowKey::default();
            let on = |bit: u16| fields & (1 << bit) != 0;
            if on(0) {
                m.in_port = u32::MAX;
            }
            if on(1) {
                m.dl_src = [0xff; 6];
            }
            if on(2) {
                m.dl_dst = [0xff; 6];
            }
            if on(3) {
                // Present bit only ("tagged or not"), or the whole TCI.
                m.vlan_tci = if on(4) { VLAN_PRESENT } else { 0xffff };
            }
            if on(5) {
                m.dl_type = 0xffff;
            }
            if k.dl_type == 0x0800 && on(6) {
                // Prerequisites, as the ofctl parser would demand.
                m.dl_type = 0xffff;
                m.nw_src[..4].copy_from_slice(&[0xff, 0xff, 0xff, 0xffu8 << prefix]);
                if on(7) {
                    m.nw_proto = 0xff;
                    if on(8) {
                        m.tp_dst = 0xffff;
                    }
                }
            }
            let actions = if actions.contains(&Action::Drop) {
                vec![Action::Drop]
            } else {
                actions
            };
            Rule {
                priority: prio * 100,
                m: Match::new(k, m),
                actions,
                cookie: 0,
            }
        })
}

#[derive(Clone, Debug)]
enum Change {
    Add(Rule),
    Delete(Rule),
    /// Port `PORTS[i]` gets VLAN mode `MODES[j]`.
    Vlan(usize, usize),
}

fn modes() -> [VlanMode; 3] {
    let mut trunks = vlan_vxlan::VlanSet::new();
    trunks.insert(10);
    trunks.insert(20);
    [
        VlanMode::TrunkAll,
        VlanMode::Access(10),
        VlanMode::Trunk(trunks),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        rule().prop_map(Change::Add),
        rule().prop_map(Change::Delete),
        (0usize..4, 0usize..3).prop_map(|(p, m)| Change::Vlan(p, m)),
    ]
}

/// Tells the cache about every address change of `macs` since `seen`, as the datapath does.
fn sync_macs(cache: &mut FlowCache, macs: &MacTable, seen: &mut u64) {
    match macs.changes_since(*seen) {
        Ok(changes) => {
            for (vlan, mac) in changes {
                cache.invalidate(Invalidation::Mac { vlan, mac });
            }
        }
        Err(Overflowed) => cache.invalidate(Invalidation::All),
    }
    *seen = macs.change_seq();
}

/// Applies a rule change to the table and tells the cache, as the datapath does.
fn change_rules(rules: &mut RuleTable, cache: &mut FlowCache, c: &Change) {
    let was_empty = rules.is_empty();
    match c {
        Change::Add(r) => {
            let ins = rules.insert(r.clone());
            if let Some(old) = ins.replaced {
                cache.invalidate(Invalidation::RuleRemoved(old.id));
            }
            cache.invalidate(Invalidation::RuleAdded {
                priority: r.priority,
                m: &ins.rule.rule.m,
            });
        }
        Change::Delete(r) => {
            for gone in rules.remove_matching(&r.m, None) {
                cache.invalidate(Invalidation::RuleRemoved(gone.id));
            }
        }
        Change::Vlan(..) => {}
    }
    if was_empty != rules.is_empty() {
        // NORMAL-only bridge <-> rule table: every decision changes.
        cache.invalidate(Invalidation::All);
    }
}

fn run(
    rules_in: Vec<Rule>,
    stream: Vec<Pkt>,
    changes: Vec<(usize, Change)>,
    emc: usize,
    max_mf: usize,
) {
    let mut rules = RuleTable::new();
    for r in rules_in {
        rules.insert(r);
    }
    let mut vlan_modes = vec![VlanMode::TrunkAll; PORTS.len()];
    let mut macs_a = MacTable::default();
    let mut macs_b = MacTable::default();
    let mut seen = macs_a.change_seq();
    let mut cache = FlowCache::new(emc, max_mf);
    for (i, p) in stream.iter().enumerate() {
        for (_, c) in changes.iter().filter(|(at, _)| *at == i) {
            if let Change::Vlan(port, mode) = *c {
                // As the datapath: the port's addresses go, and decisions involving it.
                vlan_modes[port] = modes()[mode].clone();
                macs_a.flush_port(PORTS[port]);
                macs_b.flush_port(PORTS[port]);
                cache.invalidate(Invalidation::Port(PORTS[port]));
            }
            change_rules(&mut rules, &mut cache, c);
        }
        sync_macs(&mut cache, &macs_a, &mut seen);
        let k = key(p);
        let view = BridgeView {
            ports: PORTS,
            vlan_modes: &vlan_modes,
            rules: &rules,
        };
        let cached = cache.lookup(&k, &mut |k| translate(k, &view, &mut macs_a, 0));
        let direct = translate(&k, &view, &mut macs_b, 0);
        assert_eq!(cached.actions, direct.actions, "packet {i}: {k:?}");
        assert_eq!(cached.drop, direct.drop, "packet {i}: {k:?}");
        assert_eq!(cached.rule_id(), direct.rule_id(), "packet {i}");
    }
    assert_eq!(macs_a.entries(0), macs_b.entries(0));
    let s = cache.stats();
    assert_eq!(s.emc_hits + s.megaflow_hits + s.misses, stream.len() as u64);
}

proptest! {
    // 200 cases in CI; PROPTEST_CASES=N runs a longer campaign.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
    ))]

    #[test]
    fn cached_equals_uncached(
        rules in proptest::collection::vec(rule(), 0..10),
        stream in proptest::collection::vec(pkt(), 1..300),
        changes in proptest::collection::vec((0usize..300, change()), 0..6),
        small in any::<bool>(),
    ) {
        // Small caches exercise EMC collisions and the megaflow limit too.
        let (emc, max_mf) = if small { (4, 3) } else { (8192, 65536) };
        run(rules, stream, changes, emc, max_mf);
    }
}

#[test]
fn caches_actually_hit() {
    // A fixed stream: the property above would pass trivially if nothing was ever cached.
    let stream: Vec<Pkt> = (0..200)
        .map(|i| Pkt {
            in_port: 1 + i % 2,
            src: (i % 2) as usize,
            dst: 1 - (i % 2) as usize,
            vlan: 0,
            ip: true,
            net: 0,
            udp: false,
            tp: (i % 3) as usize,
        })
        .collect();
    let mut rules = RuleTable::new();
    let mut macs = MacTable::default();
    let mut seen = macs.change_seq();
    let mut cache = FlowCache::new(8192, 65536);
    cache.set_emc_insert_inv_prob(1);
    for p in &stream {
        sync_macs(&mut cache, &macs, &mut seen);
        let view = BridgeView {
            ports: PORTS,
            vlan_modes: &[],
            rules: &rules,
        };
        cache.lookup(&key(p), &mut |k| translate(k, &view, &mut macs, 0));
    }
    let s = cache.stats();
    // 6 distinct keys in a few megaflows (the first packets of each direction flood, until
    // the other side is learned, and each learning invalidates what depended on it).
    assert!(s.misses <= 12, "{s:?}");
    assert!(s.emc_hits > 50, "{s:?}");
    assert!(s.megaflow_hits > 0, "{s:?}");
    let drop_all = Change::Add(Rule {
        priority: 1,
        m: Match::catchall(),
        actions: vec![Action::Drop],
        cookie: 0,
    });
    change_rules(&mut rules, &mut cache, &drop_all);
    let view = BridgeView {
        ports: PORTS,
        vlan_modes: &[],
        rules: &rules,
    };
    let d = cache.lookup(&key(&stream[0]), &mut |k| translate(k, &view, &mut macs, 0));
    assert_eq!(d.drop, Some(DropReason::RuleDrop));
}
