use super::*;
use proptest::prelude::*;

fn by_name(n: &str) -> Option<PortNo> {
    n.strip_prefix('p')?
        .parse()
        .ok()
        .filter(|p| (1..=4).contains(p))
}

fn name_of(p: PortNo) -> Option<String> {
    (1..=4).contains(&p).then(|| format!("p{p}"))
}

fn rule(text: &str) -> Result<Rule, RuleError> {
    parse_rule(text, &by_name)
}

fn err_of(text: &str) -> String {
    rule(text).unwrap_err().to_string()
}

#[test]
fn parses_port_vlan_output() {
    let r = rule("priority=100,in_port=p1,dl_vlan=10,actions=output:p2").unwrap();
    assert_eq!(r.priority, 100);
    assert_eq!((r.m.key.in_port, r.m.mask.in_port), (1, u32::MAX));
    assert_eq!(r.m.key.vlan_tci, VLAN_PRESENT | 10);
    assert_eq!(r.m.mask.vlan_tci, 0x1fff);
    assert_eq!(r.actions, vec![Action::Output(2)]);
    assert_eq!(r.cookie, 0);
}

#[test]
fn parses_tcp_prefix_drop() {
    let r = rule("tcp,nw_src=10.0.0.0/8,tp_dst=80,actions=drop").unwrap();
    assert_eq!(r.priority, DEFAULT_PRIORITY);
    assert_eq!((r.m.key.dl_type, r.m.key.nw_proto), (0x0800, 6));
    assert_eq!(&r.m.key.nw_src[..4], &[10, 0, 0, 0]);
    assert_eq!(&r.m.mask.nw_src[..5], &[0xff, 0, 0, 0, 0]);
    assert_eq!(
        (r.m.key.tp_dst, r.m.mask.tp_dst, r.m.mask.tp_src),
        (80, 0xffff, 0)
    );
    assert_eq!(r.actions, vec![Action::Drop]);
    let mut k = FlowKey {
        dl_type: 0x0800,
        nw_proto: 6,
        tp_dst: 80,
        ..FlowKey::default()
    };
    k.nw_src[..4].copy_from_slice(&[10, 9, 8, 7]);
    assert!(r.m.matches(&k));
    k.nw_src[0] = 11;
    assert!(!r.m.matches(&k));
}

#[test]
fn parses_normal_and_actions() {
    let r = rule("actions=NORMAL").unwrap();
    assert_eq!(
        (r.m.clone(), r.actions),
        (Match::catchall(), vec![Action::Normal])
    );
    assert_eq!(rule("actions=").unwrap().actions, vec![Action::Drop]);
    let r = rule(
        "cookie=0x10 priority=7 udp6 ipv6_dst=fe80::/10 udp_src=53 \
         actions=FLOOD,all,in_port,3,p4,push_vlan:0x88a8,strip_vlan,mod_vlan_vid:5,\
         set_field:6->vlan_vid,mod_vlan_pcp:1,set_field:2->vlan_pcp,mod_nw_tos:184,\
         set_field:10->ip_dscp",
    )
    .unwrap();
    assert_eq!((r.cookie, r.priority), (16, 7));
    assert_eq!(r.m.mask.nw_dst[1], 0xc0);
    assert_eq!(r.m.key.tp_src, 53);
    use Action::*;
    let want = vec![
        Flood,
        All,
        InPort,
        Output(3),
        Output(4),
        PushVlan(0x88a8),
        PopVlan,
        SetVlanVid(5),
        SetVlanVid(6),
        SetVlanPcp(1),
        SetVlanPcp(2),
        SetDscp(46),
        SetDscp(10),
    ];
    assert_eq!(r.actions, want);
}

#[test]
fn parses_misc_fields() {
    let r = rule(
        "arp,arp_op=2,arp_tpa=1.2.3.4,dl_src=00:11:22:33:44:55/ff:ff:ff:00:00:00,\
         dl_vlan=0xffff,tun_id=0x5/0xff,actions=1",
    )
    .unwrap();
    assert_eq!((r.m.key.nw_proto, r.m.key.nw_dst[3]), (2, 4));
    assert_eq!(r.m.key.dl_src, [0, 0x11, 0x22, 0, 0, 0]);
    assert_eq!((r.m.key.vlan_tci, r.m.mask.vlan_tci), (0, 0xffff));
    assert_eq!((r.m.key.tun_id, r.m.mask.tun_id), (5, 0xff));
    let r = rule("icmp,icmp_type=8,ip_dscp=46,ip_frag=later,actions=drop").unwrap();
    assert_eq!(
        (r.m.key.tp_src, r.m.key.nw_tos, r.m.mask.nw_tos),
        (8, 184, 0xfc)
    );
    assert_eq!((r.m.key.nw_frag, r.m.mask.nw_frag), (3, 3));
    let (m, prio) = parse_match("", &by_name).unwrap();
    assert_eq!((m, prio), (Match::catchall(), None));
    let (m, prio) = parse_match("priority=5,in_port=2", &by_name).unwrap();
    assert_eq!((m.key.in_port, prio), (2, Some(5)));
    assert!(parse_match("in_port=2,actions=drop", &by_name).is_err());
}

#[test]
fn errors_are_clear() {
    assert_eq!(err_of("foo=1,actions=drop"), "unknown field \"foo\"");
    assert_eq!(err_of("bogus,actions=drop"), "unknown field \"bogus\"");
    assert_eq!(
        err_of("ip,nw_ttl=300,actions=drop"),
        "bad value \"300\" for nw_ttl (0-255)"
    );
    assert_eq!(
        err_of("dl_vlan=4096,actions=drop"),
        "bad value \"4096\" for dl_vlan (0-4095)"
    );
    assert_eq!(
        err_of("dl_vlan_pcp=8,actions=drop"),
        "bad value \"8\" for dl_vlan_pcp (0-7)"
    );
    assert_eq!(
        err_of("priority=65536,actions=drop"),
        "bad value \"65536\" for priority (0-65535)"
    );
    assert_eq!(err_of("in_port=p9,actions=drop"), "unknown port \"p9\"");
    assert_eq!(err_of("actions=output:p9"), "unknown port \"p9\"");
    assert_eq!(
        err_of("nw_src=1.2.3.4,actions=drop"),
        "nw_src requires dl_type=0x0800 or ip"
    );
    assert_eq!(
        err_of("ip,tp_dst=80,actions=drop"),
        "tp_dst requires nw_proto=6 or 17 (tcp or udp)"
    );
    assert_eq!(
        err_of("udp,tcp_dst=80,actions=drop"),
        "tcp_dst requires tcp or tcp6"
    );
    assert_eq!(
        err_of("ipv6_src=::1,actions=drop"),
        "ipv6_src requires dl_type=0x86dd or ipv6"
    );
    assert!(
        err_of("ip,nw_src=1.2.3/8,actions=drop").starts_with("bad value \"1.2.3/8\" for nw_src")
    );
    assert!(err_of("dl_src=00:11:22,actions=drop").starts_with("bad value"));
    assert_eq!(err_of("in_port=1"), "missing \"actions=\"");
    assert_eq!(
        err_of("actions=output:2,drop"),
        "\"drop\" must be the only action"
    );
    assert_eq!(
        err_of("actions=frobnicate"),
        "unknown action \"frobnicate\""
    );
    assert!(err_of("actions=push_vlan:0x9100").contains("push_vlan"));
    assert!(err_of("actions=mod_nw_tos:3").contains("mod_nw_tos"));
    assert!(err_of("actions=set_queue:8").contains("set_queue"));
    assert!(err_of("actions=set_field:1->eth_dst").contains("eth_dst"));
    // The error is usable as a std error and prints on one line.
    let e: Box<dyn std::error::Error> = Box::new(rule("x=1,actions=drop").unwrap_err());
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn formats_canonically() {
    let r = rule("priority=100,in_port=p1,dl_vlan=10,actions=output:p2").unwrap();
    assert_eq!(
        format_rule(&r, &name_of),
        "priority=100,in_port=p1,dl_vlan=10,actions=output:p2"
    );
    let r = rule("nw_src=10.1.0.0/16,tp_dst=80,tcp,actions=").unwrap();
    assert_eq!(
        format_rule(&r, &name_of),
        "tcp,nw_src=10.1.0.0/16,tp_dst=80,actions=drop"
    );
}

/// Small deterministic generator, so one proptest seed builds a whole rule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn mac(&mut self) -> [u8; 6] {
        let b = self.next().to_be_bytes();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }
    fn prefix16(&mut self, bits: u32) -> [u8; 16] {
        let len = 1 + self.below(u64::from(bits)) as u32;
        let m = (u128::MAX << (128 - len)) >> (128 - bits);
        if bits == 32 {
            let mut a = [0; 16];
            a[..4].copy_from_slice(&(m as u32).to_be_bytes());
            a
        } else {
            m.to_be_bytes()
        }
    }
}

/// A random rule that the parser can express (valid prerequisites, expressible masks).
fn random_rule(seed: u64) -> Rule {
    let mut g = Rng(seed);
    let mut k = FlowKey::default();
    let mut m = FlowKey::default();
    let dl = [0, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP, 0x88cc][g.below(5) as usize];
    if dl != 0 {
        (k.dl_type, m.dl_type) = (dl, 0xffff);
    }
    let ip = dl == ETH_TYPE_IPV4 || dl == ETH_TYPE_IPV6;
    if ip || dl == ETH_TYPE_ARP {
        if g.coin() {
            (k.nw_proto, m.nw_proto) = ([6, 17, 1, 58, 47][g.below(5) as usize], 0xff);
        }
        let bits = if dl == ETH_TYPE_IPV6 { 128 } else { 32 };
        if g.coin() {
            m.nw_src = g.prefix16(bits);
            k.nw_src = g.next().to_be_bytes().repeat(2).try_into().unwrap();
        }
        if g.coin() {
            m.nw_dst = g.prefix16(bits);
            k.nw_dst = g.next().to_le_bytes().repeat(2).try_into().unwrap();
        }
    }
    if ip {
        if g.coin() {
            (k.nw_tos, m.nw_tos) = (g.next() as u8, [0xfc, 0x03, 0xff][g.below(3) as usize]);
        }
        if g.coin() {
            (k.nw_ttl, m.nw_ttl) = (g.next() as u8, 0xff);
        }
        if g.coin() {
            let (_, v, msk) = FRAG_NAMES[g.below(5) as usize];
            (k.nw_frag, m.nw_frag) = (v, msk);
        }
        let proto = (m.nw_proto == 0xff).then_some(k.nw_proto);
        let icmp = proto == Some(if dl == ETH_TYPE_IPV4 { 1 } else { 58 });
        if matches!(proto, Some(6 | 17)) {
            if g.coin() {
                (k.tp_src, m.tp_src) = (g.next() as u16, g.next() as u16 | 1);
            }
            if g.coin() {
                (k.tp_dst, m.tp_dst) = (g.next() as u16, 0xffff);
            }
        } else if icmp && g.coin() {
            (k.tp_src, m.tp_src) = (g.below(256) as u16, 0xffff);
            (k.tp_dst, m.tp_dst) = (g.below(256) as u16, 0xffff);
        }
    }
    if g.coin() {
        (k.in_port, m.in_port) = (1 + g.below(6) as u32, u32::MAX);
    }
    match g.below(6) {
        0 => (k.vlan_tci, m.vlan_tci) = (VLAN_PRESENT | g.below(4096) as u16, 0x1fff),
        1 => (k.vlan_tci, m.vlan_tci) = (0, 0xffff),
        2 => (k.vlan_tci, m.vlan_tci) = (g.next() as u16 | VLAN_PRESENT, 0xffff),
        3 => (k.vlan_tci, m.vlan_tci) = (g.next() as u16, g.next() as u16),
        _ => {}
    }
    if g.coin() {
        (k.dl_src, m.dl_src) = (g.mac(), if g.coin() { [0xff; 6] } else { g.mac() });
    }
    if g.coin() {
        (k.dl_dst, m.dl_dst) = (g.mac(), [0xff; 6]);
    }
    if g.coin() {
        (k.tun_id, m.tun_id) = (g.next(), if g.coin() { u64::MAX } else { g.next() });
    }
    if g.coin() {
        let bits = g.prefix16(32);
        (k.tun_src, m.tun_src) = (
            g.next() as u32,
            u32::from_be_bytes(bits[..4].try_into().unwrap()),
        );
    }
    let actions = if g.below(5) == 0 {
        vec![Action::Drop]
    } else {
        (0..1 + g.below(4))
            .map(|_| match g.below(13) {
                0 => Action::Output(1 + g.below(8) as u32),
                1 => Action::InPort,
                2 => Action::Flood,
                3 => Action::All,
                4 => Action::Normal,
                5 => Action::PushVlan(if g.coin() { 0x8100 } else { 0x88a8 }),
                6 => Action::PopVlan,
                7 => Action::SetVlanVid(g.below(4096) as u16),
                8 => Action::SetVlanPcp(g.below(8) as u8),
                9 => Action::SetQueue(g.below(8) as u8),
                10 => Action::Meter(1 + g.below(100) as u32),
                _ => Action::SetDscp(g.below(64) as u8),
            })
            .collect()
    };
    Rule {
        priority: g.next() as u16,
        m: Match::new(k, m),
        actions,
        cookie: if g.coin() { g.next() } else { 0 },
    }
}

proptest! {
    #[test]
    fn format_parse_round_trip(seed in any::<u64>()) {
        let r = random_rule(seed);
        let text = format_rule(&r, &name_of);
        let back = parse_rule(&text, &by_name);
        prop_assert_eq!(back.as_ref().ok(), Some(&r), "text: {} -> {:?}", text, back);
    }

    #[test]
    fn parse_rule_never_panics(text in "[a-z_0-9=,:./>-]{0,60}") {
        let _ = parse_rule(&text, &by_name);
    }
}

/// Pieces of rule text, valid and not, for the text-level property below.
const FRAGMENTS: &[&str] = &[
    "ip",
    "ipv6",
    "arp",
    "tcp",
    "udp6",
    "icmp",
    "icmp6",
    "in_port=p2",
    "in_port=7",
    "dl_vlan=5",
    "dl_vlan=0xffff",
    "dl_vlan_pcp=3",
    "vlan_tci=0x1000/0x1000",
    "dl_src=02:00:00:00:00:01",
    "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00",
    "nw_src=10.0.0.0/8",
    "nw_dst=1.2.3.4/255.0.255.0",
    "arp_tpa=1.2.3.4",
    "arp_op=1",
    "ipv6_src=fe80::1/64",
    "nw_proto=47",
    "nw_tos=184",
    "ip_dscp=10",
    "nw_ecn=1",
    "nw_ttl=9",
    "ip_frag=first",
    "ip_frag=not_later",
    "tp_src=0x100/0xff00",
    "tp_dst=80",
    "tcp_dst=22",
    "icmp_type=8",
    "icmp_code=0",
    "tun_id=0x10/0xf0",
    "tun_src=1.1.0.0/16",
    "priority=5",
    "cookie=0x7",
    "bogus",
    "dl_vlan=9999",
];

const ACTIONS: &[&str] = &[
    "output:p1",
    "3",
    "p4",
    "in_port",
    "FLOOD",
    "all",
    "NORMAL",
    "push_vlan:0x8100",
    "pop_vlan",
    "strip_vlan",
    "mod_vlan_vid:7",
    "mod_vlan_pcp:2",
    "mod_nw_tos:8",
    "set_field:5->vlan_vid",
    "set_field:1->vlan_pcp",
    "set_field:3->ip_dscp",
    "set_queue:7",
    "set_queue:8",
    "meter:3",
    "meter:0",
    "drop",
];

proptest! {
    #[test]
    fn accepted_text_round_trips(
        fields in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..6),
        actions in proptest::collection::vec(proptest::sample::select(ACTIONS), 0..4),
    ) {
        let text = format!("{},actions={}", fields.join(","), actions.join(","));
        if let Ok(r) = parse_rule(&text, &by_name) {
            let again = format_rule(&r, &name_of);
            prop_assert_eq!(parse_rule(&again, &by_name).ok(), Some(r), "{} -> {}", text, again);
        }
    }
}
