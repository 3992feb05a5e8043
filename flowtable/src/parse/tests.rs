use super::*;
use proptest::prelude::*;

const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4_hdr(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0xb8];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h.extend_from_slice(l4);
    h
}

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    u
}

fn ipv6_hdr(next: u8, payload: &[u8]) -> Vec<u8> {
    // Traffic class 0xa5 spans the first two bytes.
    let mut h = vec![0x6a, 0x50, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 33]);
    let mut src = [0u8; 16];
    src[0] = 0xfe;
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

fn ip4(a: [u8; 4]) -> [u8; 16] {
    let mut v = [0; 16];
    v[..4].copy_from_slice(&a);
    v
}

#[test]
fn untagged_l2_only() {
    let k = extract(&eth(&[], 0x1234, &[0; 46]), 7).unwrap();
    assert_eq!(k.in_port, 7);
    assert_eq!((k.dl_dst, k.dl_src, k.dl_type), (DST, SRC, 0x1234));
    assert_eq!((k.vlan_tci, k.vlan_tpid, k.cvlan_tci), (0, 0, 0));
    assert_eq!(k.nw_proto, 0);
}

#[test]
fn single_8021q_tag() {
    let k = extract(&eth(&[(0x8100, 0xa00a)], 0x0800, &[]), 1).unwrap();
    assert_eq!(k.vlan_tci, 0xa00a | VLAN_PRESENT);
    assert_eq!(k.vlan_vid(), Some(10));
    assert_eq!(k.vlan_pcp(), 5);
    assert_eq!(k.vlan_tpid, 0x8100);
    assert_eq!(k.cvlan_tci, 0);
    // Truncated IPv4: L2 kept, L3 zero.
    assert_eq!(k.dl_type, 0x0800);
    assert_eq!(k.nw_src, [0; 16]);
}

#[test]
fn qinq_8021ad_then_8021q() {
    let k = extract(&eth(&[(0x88a8, 100), (0x8100, 200)], 0x86dd, &[]), 1).unwrap();
    assert_eq!(k.vlan_tpid, 0x88a8);
    assert_eq!(k.vlan_vid(), Some(100));
    assert_eq!(k.cvlan_tci, 200 | VLAN_PRESENT);
    assert_eq!(k.dl_type, 0x86dd);
}

#[test]
fn triple_tag_is_too_deep() {
    let f = eth(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)], 0x0800, &[0; 40]);
    assert_eq!(extract(&f, 1), Err(DropReason::VlanTooDeep));
}

#[test]
fn runts() {
    assert_eq!(extract(&[], 1), Err(DropReason::Runt));
    assert_eq!(extract(&[0; 13], 1), Err(DropReason::Runt));
    assert!(extract(&[0; 14], 1).is_ok());
    // A tag cut short: TPID present but no TCI / inner ethertype.
    let f = eth(&[(0x8100, 5)], 0x0800, &[]);
    assert_eq!(extract(f.get(..16).unwrap(), 1), Err(DropReason::Runt));
    assert_eq!(extract(f.get(..17).unwrap(), 1), Err(DropReason::Runt));
}

#[test]
fn arp_request() {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&SRC);
    a.extend_from_slice(&[192, 168, 1, 1]);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&[192, 168, 1, 2]);
    let k = extract(&eth(&[], 0x0806, &a), 1).unwrap();
    assert_eq!(k.nw_proto, 1);
    assert_eq!(k.nw_src, ip4([192, 168, 1, 1]));
    assert_eq!(k.nw_dst, ip4([192, 168, 1, 2]));
    // Truncated ARP: no L3 fields.
    let k = extract(&eth(&[], 0x0806, a.get(..20).unwrap()), 1).unwrap();
    assert_eq!((k.nw_proto, k.nw_src), (0, [0; 16]));
}

#[test]
fn ipv4_tcp() {
    let mut f = eth(&[], 0x0800, &ipv4_hdr(6, 0x4000, &tcp(1234, 80)));
    f.extend_from_slice(&[0; 6]); // Ethernet padding after the IP packet is ignored.
    let k = extract(&f, 1).unwrap();
    assert_eq!(k.nw_src, ip4([10, 0, 0, 1]));
    assert_eq!(k.nw_dst, ip4([10, 0, 0, 2]));
    assert_eq!(
        (k.nw_proto, k.nw_tos, k.nw_ttl, k.nw_frag),
        (6, 0xb8, 64, 0)
    );
    assert_eq!((k.tp_src, k.tp_dst), (1234, 80));
    assert_eq!(k.dscp(), 46);
}

#[test]
fn ipv4_udp_and_icmp() {
    let k = extract(&eth(&[], 0x0800, &ipv4_hdr(17, 0, &udp(53, 5353))), 1).unwrap();
    assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (17, 53, 5353));
    let k = extract(
        &eth(&[], 0x0800, &ipv4_hdr(1, 0, &[8, 0, 0, 0, 0, 1, 0, 1])),
        1,
    )
    .unwrap();
    assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (1, 8, 0));
}

#[test]
fn ipv4_fragments() {
    // First fragment (MF set, offset 0): L4 parsed.
    let k = extract(&eth(&[], 0x0800, &ipv4_hdr(17, 0x2000, &udp(1, 2))), 1).unwrap();
    assert_eq!((k.nw_frag, k.tp_src, k.tp_dst), (FRAG_ANY, 1, 2));
    // Later fragment: no L4 even though bytes are there.
    let k = extract(&eth(&[], 0x0800, &ipv4_hdr(17, 0x0010, &udp(1, 2))), 1).unwrap();
    assert_eq!(k.nw_frag, FRAG_ANY | FRAG_LATER);
    assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (17, 0, 0));
    assert_eq!(k.nw_src, ip4([10, 0, 0, 1]));
}

#[test]
fn ipv4_malformed_is_l2() {
    let mut ip = ipv4_hdr(6, 0, &tcp(1, 2));
    ip[0] = 0x44; // IHL 4 < 5
    let k = extract(&eth(&[], 0x0800, &ip), 3).unwrap();
    assert_eq!((k.dl_type, k.in_port, k.dl_src), (0x0800, 3, SRC));
    assert_eq!((k.nw_src, k.nw_proto, k.tp_dst), ([0; 16], 0, 0));
    // Total length beyond the frame.
    let mut ip = ipv4_hdr(6, 0, &tcp(1, 2));
    ip[3] = 0xff;
    assert_eq!(extract(&eth(&[], 0x0800, &ip), 3).unwrap().nw_proto, 0);
    // Wrong version.
    let mut ip = ipv4_hdr(6, 0, &tcp(1, 2));
    ip[0] = 0x65;
    assert_eq!(extract(&eth(&[], 0x0800, &ip), 3).unwrap().nw_proto, 0);
}

#[test]
fn truncated_tcp_is_l2() {
    let t = tcp(1, 2);
    let k = extract(&eth(&[], 0x0800, &ipv4_hdr(6, 0, t.get(..10).unwrap())), 1).unwrap();
    assert_eq!(
        (k.dl_type, k.nw_proto, k.tp_src, k.nw_src),
        (0x0800, 0, 0, [0; 16])
    );
}

#[test]
fn ipv6_udp_after_hop_by_hop() {
    // Hop-by-hop: next=UDP, length 0 (8 bytes), PadN filling the rest.
    let mut payload = vec![17, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&udp(546, 547));
    let k = extract(&eth(&[], 0x86dd, &ipv6_hdr(0, &payload)), 1).unwrap();
    assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (17, 546, 547));
    assert_eq!((k.nw_tos, k.nw_ttl), (0xa5, 33));
    assert_eq!(k.nw_src[0], 0xfe);
    assert_eq!(k.nw_dst[15], 2);
    // Truncated extension header chain: L3 dropped too.
    let k = extract(&eth(&[], 0x86dd, &ipv6_hdr(0, &payload[..4])), 1).unwrap();
    assert_eq!((k.nw_proto, k.nw_src), (0, [0; 16]));
}

#[test]
fn ipv6_icmp_and_fragment() {
    let k = extract(
        &eth(&[], 0x86dd, &ipv6_hdr(58, &[135, 0, 0, 0, 0, 0, 0, 0])),
        1,
    )
    .unwrap();
    assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (58, 135, 0));
    // Later fragment (offset 1 × 8): no L4.
    let mut payload = vec![17, 0, 0, 8, 0, 0, 0, 1];
    payload.extend_from_slice(&udp(1, 2));
    let k = extract(&eth(&[], 0x86dd, &ipv6_hdr(44, &payload)), 1).unwrap();
    assert_eq!(
        (k.nw_proto, k.nw_frag, k.tp_src),
        (17, FRAG_ANY | FRAG_LATER, 0)
    );
}

fn valid_frames() -> Vec<Vec<u8>> {
    let mut hbh = vec![6, 0, 1, 4, 0, 0, 0, 0];
    hbh.extend_from_slice(&tcp(5, 6));
    vec![
        eth(&[(0x8100, 10)], 0x0800, &ipv4_hdr(6, 0, &tcp(1234, 80))),
        eth(
            &[(0x88a8, 1), (0x8100, 2)],
            0x0800,
            &ipv4_hdr(17, 0, &udp(1, 2)),
        ),
        eth(&[], 0x86dd, &ipv6_hdr(0, &hbh)),
        eth(&[], 0x0800, &ipv4_hdr(6, 0, &tcp(1234, 80))),
        eth(&[], 0x0800, &ipv4_hdr(17, 0, &udp(53, 9))),
    ]
}

fn fast(frame: &[u8], in_port: u32) -> Option<FlowKey> {
    let mut k = FlowKey::default();
    ipv4_tcp_udp(frame, in_port, &mut k).then_some(k)
}

fn general(frame: &[u8], in_port: u32) -> Result<FlowKey, DropReason> {
    let mut k = FlowKey::default();
    extract_general(frame, in_port, &mut k)?;
    Ok(k)
}

#[test]
fn fast_path_takes_the_usual_frames() {
    for f in &valid_frames()[3..] {
        let k = fast(f, 7).expect("fast path");
        assert_eq!(Ok(k), general(f, 7));
    }
    // Not for it: tagged, IPv6, options, fragments, ICMP.
    for f in &valid_frames()[..3] {
        assert_eq!(fast(f, 7), None);
    }
    let mut opts = eth(&[], 0x0800, &ipv4_hdr(17, 0, &udp(1, 2)));
    opts[14] = 0x46;
    assert_eq!(fast(&opts, 7), None);
    let frag = eth(&[], 0x0800, &ipv4_hdr(17, 0x2000, &udp(1, 2)));
    assert_eq!(fast(&frag, 7), None);
    let icmp = eth(&[], 0x0800, &ipv4_hdr(1, 0, &[8, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(fast(&icmp, 7), None);
}

proptest! {
    #[test]
    fn never_panics_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..200), port in any::<u32>()) {
        let _ = extract(&data, port);
    }

    #[test]
    fn never_panics_on_mutated_frames(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut f = valid_frames().swap_remove(which);
        for (at, b) in edits {
            let i = at % f.len();
            f[i] = b;
        }
        let len = cut % (f.len() + 1);
        if let Ok(k) = extract(&f[..len], 1) {
            prop_assert_eq!(k.in_port, 1);
        }
    }

    /// The fast path agrees with the general parser on every frame it accepts: mutated
    /// untagged IPv4 TCP/UDP frames (mostly headers, where it looks) and random bytes.
    #[test]
    fn fast_path_equals_general(
        which in 3usize..5,
        edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
        cut in 30usize..80,
        noise in proptest::collection::vec(any::<u8>(), 42..80),
    ) {
        let mut f = valid_frames().swap_remove(which);
        for (at, b) in edits {
            let i = at % f.len();
            f[i] = b;
        }
        f.truncate(cut.min(f.len()));
        for frame in [&f[..], &noise[..]] {
            if let Some(k) = fast(frame, 3) {
                prop_assert_eq!(Ok(k), general(frame, 3));
            }
        }
    }
}
