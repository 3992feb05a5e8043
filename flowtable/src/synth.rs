//! FlowKey → frame: the frame a flow describes, for `vswitchctl trace` given a flow in rule
//! syntax. Parsing the result with [`crate::extract`] gives the key back (fields the key does
//! not set take defaults: TTL 64, no fragment).

use crate::key::{FlowKey, VLAN_PRESENT};
use crate::parse::{
    ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_VLAN, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_TCP, IPPROTO_UDP,
};

/// Shortest Ethernet frame without its FCS.
const MIN_FRAME: usize = 60;
const DEFAULT_TTL: u8 = 64;

/// The frame `key` describes, its tags, L3 and L4 headers with zero payload, padded to the
/// Ethernet minimum.
pub fn frame_of(key: &FlowKey) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&key.dl_dst);
    f.extend_from_slice(&key.dl_src);
    if key.vlan_tci & VLAN_PRESENT != 0 {
        let tpid = if key.vlan_tpid == 0 {
            ETH_TYPE_VLAN
        } else {
            key.vlan_tpid
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(key.vlan_tci & !VLAN_PRESENT).to_be_bytes());
        if key.cvlan_tci & VLAN_PRESENT != 0 {
            f.extend_from_slice(&ETH_TYPE_VLAN.to_be_bytes());
            f.extend_from_slice(&(key.cvlan_tci & !VLAN_PRESENT).to_be_bytes());
        }
    }
    f.extend_from_slice(&key.dl_type.to_be_bytes());
    match key.dl_type {
        ETH_TYPE_IPV4 => ipv4(&mut f, key),
        ETH_TYPE_IPV6 => ipv6(&mut f, key),
        ETH_TYPE_ARP => arp(&mut f, key),
        _ => {}
    }
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

fn ttl(key: &FlowKey) -> u8 {
    if key.nw_ttl == 0 {
        DEFAULT_TTL
    } else {
        key.nw_ttl
    }
}

/// The L4 header of the key's protocol (TCP, UDP, ICMP of this IP version), empty otherwise.
fn l4(key: &FlowKey, icmp: u8) -> Vec<u8> {
    let (s, d) = (key.tp_src.to_be_bytes(), key.tp_dst.to_be_bytes());
    match key.nw_proto {
        IPPROTO_TCP => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&s);
            h[2..4].copy_from_slice(&d);
            h[12] = 5 << 4; // data offset: 20 bytes
            h[13] = 0x02; // SYN
            h[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
            h
        }
        IPPROTO_UDP => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&s);
            h[2..4].copy_from_slice(&d);
            h[4..6].copy_from_slice(&8u16.to_be_bytes());
            h
        }
        p if p == icmp => {
            // type, code, checksum, rest of header
            vec![key.tp_src as u8, key.tp_dst as u8, 0, 0, 0, 0, 0, 0]
        }
        _ => Vec::new(),
    }
}

fn ipv4(f: &mut Vec<u8>, key: &FlowKey) {
    let l4 = l4(key, IPPROTO_ICMP);
    let total = (20 + l4.len()) as u16;
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[1] = key.nw_tos;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[8] = ttl(key);
    h[9] = key.nw_proto;
    h[12..16].copy_from_slice(&key.nw_src[..4]);
    h[16..20].copy_from_slice(&key.nw_dst[..4]);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(&l4);
}

fn ipv6(f: &mut Vec<u8>, key: &FlowKey) {
    let l4 = l4(key, IPPROTO_ICMPV6);
    let mut h = [0u8; 40];
    h[0] = 0x60 | (key.nw_tos >> 4);
    h[1] = key.nw_tos << 4;
    h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    h[6] = key.nw_proto;
    h[7] = ttl(key);
    h[8..24].copy_from_slice(&key.nw_src);
    h[24..40].copy_from_slice(&key.nw_dst);
    f.extend_from_slice(&h);
    f.extend_from_slice(&l4);
}

fn arp(f: &mut Vec<u8>, key: &FlowKey) {
    let op = if key.nw_proto == 0 {
        1
    } else {
        u16::from(key.nw_proto)
    };
    f.extend_from_slice(&1u16.to_be_bytes());
    f.extend_from_slice(&ETH_TYPE_IPV4.to_be_bytes());
    f.extend_from_slice(&[6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&key.dl_src);
    f.extend_from_slice(&key.nw_src[..4]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&key.nw_dst[..4]);
}

/// The IPv4 header checksum (RFC 1071).
fn checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{ETH_TYPE_QINQ, extract};

    fn key(f: impl FnOnce(&mut FlowKey)) -> FlowKey {
        let mut k = FlowKey {
            in_port: 3,
            dl_src: [0x02, 0, 0, 0, 0, 1],
            dl_dst: [0x02, 0, 0, 0, 0, 2],
            nw_ttl: 64,
            ..FlowKey::default()
        };
        f(&mut k);
        k
    }

    fn ip4(a: [u8; 4]) -> [u8; 16] {
        let mut v = [0; 16];
        v[..4].copy_from_slice(&a);
        v
    }

    #[test]
    fn parsing_the_frame_gives_the_key_back() {
        let cases = [
            key(|k| {
                k.dl_type = 0x88b5;
                k.nw_ttl = 0;
            }),
            key(|k| {
                k.dl_type = ETH_TYPE_IPV4;
                k.nw_src = ip4([10, 0, 0, 1]);
                k.nw_dst = ip4([10, 0, 0, 2]);
                k.nw_proto = IPPROTO_TCP;
                k.nw_tos = 46 << 2;
                k.tp_src = 1234;
                k.tp_dst = 80;
            }),
            key(|k| {
                k.dl_type = ETH_TYPE_IPV4;
                k.vlan_tci = VLAN_PRESENT | 5 << 13 | 100;
                k.vlan_tpid = ETH_TYPE_VLAN;
                k.nw_proto = IPPROTO_UDP;
                k.tp_src = 5;
                k.tp_dst = 4789;
            }),
            key(|k| {
                k.dl_type = ETH_TYPE_IPV4;
                k.vlan_tci = VLAN_PRESENT | 200;
                k.vlan_tpid = ETH_TYPE_QINQ;
                k.cvlan_tci = VLAN_PRESENT | 7;
                k.nw_proto = IPPROTO_ICMP;
                k.tp_src = 8;
            }),
            key(|k| {
                k.dl_type = ETH_TYPE_IPV6;
                k.nw_src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                k.nw_dst = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
                k.nw_proto = IPPROTO_UDP;
                k.nw_tos = 0xb8;
                k.tp_src = 546;
                k.tp_dst = 547;
            }),
            key(|k| {
                k.dl_type = ETH_TYPE_ARP;
                k.nw_ttl = 0;
                k.nw_proto = 2;
                k.nw_src = ip4([10, 0, 0, 1]);
                k.nw_dst = ip4([10, 0, 0, 2]);
            }),
        ];
        for k in cases {
            let frame = frame_of(&k);
            assert!(frame.len() >= MIN_FRAME);
            assert_eq!(extract(&frame, k.in_port), Ok(k), "{frame:02x?}");
        }
    }

    #[test]
    fn the_ipv4_checksum_verifies() {
        let k = key(|k| {
            k.dl_type = ETH_TYPE_IPV4;
            k.nw_src = ip4([192, 168, 1, 1]);
            k.nw_dst = ip4([192, 168, 1, 2]);
            k.nw_proto = IPPROTO_UDP;
        });
        let f = frame_of(&k);
        assert_eq!(checksum(&f[14..34]), 0);
    }
}
