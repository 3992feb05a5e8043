//! Frame → FlowKey. Hand-written and bounds-checked: every read goes through `get()`, so no
//! input can panic. Only L2 problems are errors; a bad L3/L4 header just leaves those fields
//! zero and the frame is forwarded as plain L2.

use crate::drop_reason::DropReason;
use crate::key::{FlowKey, PortNo, VLAN_PRESENT};

pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_VLAN: u16 = 0x8100;
pub const ETH_TYPE_QINQ: u16 = 0x88a8;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// `nw_frag` bit: the packet is an IP fragment.
pub const FRAG_ANY: u8 = 1;
/// `nw_frag` bit: a non-first fragment (offset != 0), so it carries no L4 header.
pub const FRAG_LATER: u8 = 2;

/// Bound on IPv6 extension headers walked, so a crafted chain cannot cost unbounded time.
const MAX_IPV6_EXT: usize = 8;

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

#[inline]
fn bytes<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// Parses `frame` received on `in_port`.
pub fn extract(frame: &[u8], in_port: PortNo) -> Result<FlowKey, DropReason> {
    let mut k = FlowKey::default();
    extract_into(frame, in_port, &mut k)?;
    Ok(k)
}

/// [`extract`] into a key the caller owns (the datapath parses a batch into an array, and an
/// 80-byte key is not worth copying twice per packet). On error `k` holds a partial parse.
#[inline]
pub fn extract_into(frame: &[u8], in_port: PortNo, k: &mut FlowKey) -> Result<(), DropReason> {
    if ipv4_tcp_udp(frame, in_port, k) {
        return Ok(());
    }
    extract_general(frame, in_port, k)
}

/// The usual frame, parsed at fixed offsets after one length check: untagged IPv4 without
/// options, not a fragment, carrying a well-formed TCP or UDP header. False (and `k`
/// untouched) for anything else, which the general parser then handles; for frames this
/// accepts, both give the same key (a property test checks it).
#[inline]
fn ipv4_tcp_udp(frame: &[u8], in_port: PortNo, k: &mut FlowKey) -> bool {
    ipv4_tcp_udp_key(frame, in_port, k).is_some()
}

#[inline(always)]
fn ipv4_tcp_udp_key(frame: &[u8], in_port: PortNo, k: &mut FlowKey) -> Option<()> {
    // Ethernet (14) + IPv4 without options (20) + the 8 bytes both L4 headers start with.
    let h: &[u8; 42] = frame.get(..42)?.try_into().ok()?;
    let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let total = usize::from(be16(16));
    let proto = h[23];
    let l4_len = total.checked_sub(20)?;
    if be16(12) != ETH_TYPE_IPV4 || h[14] != 0x45 || 14 + total > frame.len() {
        return None;
    }
    if be16(20) & 0x3fff != 0 {
        return None;
    }
    match proto {
        IPPROTO_UDP if l4_len >= 8 => {}
        IPPROTO_TCP => {
            let doff = usize::from(*frame.get(46)? >> 4) * 4;
            if doff < 20 || doff > l4_len {
                return None;
            }
        }
        _ => return None,
    }
    // Built a word at a time in the key's memory order (see `FlowKey`): ten stores instead of
    // one per field, and no zeroing first.
    let word = u64::from_ne_bytes;
    let [p0, p1, p2, p3] = in_port.to_ne_bytes();
    let [t0, t1] = ETH_TYPE_IPV4.to_ne_bytes();
    let [s0, s1] = be16(34).to_ne_bytes();
    let [d0, d1] = be16(36).to_ne_bytes();
    *k = FlowKey::from_words([
        // tun_id
        0,
        // in_port, tun_src
        word([p0, p1, p2, p3, 0, 0, 0, 0]),
        // tun_dst, dl_type, vlan_tci
        word([0, 0, 0, 0, t0, t1, 0, 0]),
        // dl_dst, vlan_tpid
        word([h[0], h[1], h[2], h[3], h[4], h[5], 0, 0]),
        // dl_src, cvlan_tci
        word([h[6], h[7], h[8], h[9], h[10], h[11], 0, 0]),
        // nw_src
        word([h[26], h[27], h[28], h[29], 0, 0, 0, 0]),
        0,
        // nw_dst
        word([h[30], h[31], h[32], h[33], 0, 0, 0, 0]),
        0,
        // nw_proto, nw_tos, nw_ttl, nw_frag, tp_src, tp_dst
        word([proto, h[15], h[22], 0, s0, s1, d0, d1]),
    ]);
    Some(())
}

/// Any frame, field by field.
fn extract_general(frame: &[u8], in_port: PortNo, k: &mut FlowKey) -> Result<(), DropReason> {
    *k = FlowKey {
        in_port,
        ..FlowKey::default()
    };
    k.dl_dst = bytes(frame, 0).ok_or(DropReason::Runt)?;
    k.dl_src = bytes(frame, 6).ok_or(DropReason::Runt)?;
    let mut type_at = 12;
    let mut dl_type = be16(frame, type_at).ok_or(DropReason::Runt)?;
    let mut tags = 0;
    while dl_type == ETH_TYPE_VLAN || dl_type == ETH_TYPE_QINQ {
        if tags == 2 {
            return Err(DropReason::VlanTooDeep);
        }
        let tci = be16(frame, type_at + 2).ok_or(DropReason::Runt)? | VLAN_PRESENT;
        if tags == 0 {
            k.vlan_tci = tci;
            k.vlan_tpid = dl_type;
        } else {
            k.cvlan_tci = tci;
        }
        type_at += 4;
        dl_type = be16(frame, type_at).ok_or(DropReason::Runt)?;
        tags += 1;
    }
    k.dl_type = dl_type;

    let l3 = frame.get(type_at + 2..).unwrap_or(&[]);
    let ok = match dl_type {
        ETH_TYPE_IPV4 => ipv4(k, l3),
        ETH_TYPE_IPV6 => ipv6(k, l3),
        ETH_TYPE_ARP => arp(k, l3),
        _ => Some(()),
    };
    if ok.is_none() {
        clear_l3(k);
    }
    Ok(())
}

/// Undoes a partial L3/L4 parse.
fn clear_l3(k: &mut FlowKey) {
    k.nw_src = [0; 16];
    k.nw_dst = [0; 16];
    k.nw_proto = 0;
    k.nw_tos = 0;
    k.nw_ttl = 0;
    k.nw_frag = 0;
    k.tp_src = 0;
    k.tp_dst = 0;
}

fn arp(k: &mut FlowKey, p: &[u8]) -> Option<()> {
    // Only Ethernet/IPv4 ARP: htype 1, ptype IPv4, hlen 6, plen 4.
    if be16(p, 0)? != 1 || be16(p, 2)? != ETH_TYPE_IPV4 || p.get(4..6)? != [6, 4] {
        return None;
    }
    let op = be16(p, 6)?;
    let spa: [u8; 4] = bytes(p, 14)?;
    let tpa: [u8; 4] = bytes(p, 24)?;
    k.nw_proto = op as u8;
    set4(&mut k.nw_src, spa);
    set4(&mut k.nw_dst, tpa);
    Some(())
}

fn set4(dst: &mut [u8; 16], v: [u8; 4]) {
    let [a, b, c, d] = v;
    *dst = [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
}

fn ipv4(k: &mut FlowKey, p: &[u8]) -> Option<()> {
    let vihl = *p.first()?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(be16(p, 2)?);
    if vihl >> 4 != 4 || ihl < 20 || total < ihl || total > p.len() {
        return None;
    }
    k.nw_tos = *p.get(1)?;
    let frag = be16(p, 6)?;
    k.nw_ttl = *p.get(8)?;
    k.nw_proto = *p.get(9)?;
    set4(&mut k.nw_src, bytes(p, 12)?);
    set4(&mut k.nw_dst, bytes(p, 16)?);
    // MF flag or a non-zero offset marks a fragment; only the first one has the L4 header.
    if frag & 0x3fff != 0 {
        k.nw_frag = FRAG_ANY;
        if frag & 0x1fff != 0 {
            k.nw_frag |= FRAG_LATER;
            return Some(());
        }
    }
    // Slice to `total` so Ethernet padding is not read as L4.
    l4(k, p.get(ihl..total)?, IPPROTO_ICMP)
}

fn ipv6(k: &mut FlowKey, p: &[u8]) -> Option<()> {
    let hdr: [u8; 40] = bytes(p, 0)?;
    let [v, tc_lo, ..] = hdr;
    if v >> 4 != 6 {
        return None;
    }
    let payload = usize::from(be16(&hdr, 4)?);
    let body = p.get(40..40 + payload)?;
    k.nw_tos = (v << 4) | (tc_lo >> 4);
    k.nw_ttl = *hdr.get(7)?;
    k.nw_src = bytes(&hdr, 8)?;
    k.nw_dst = bytes(&hdr, 24)?;

    let mut next = *hdr.get(6)?;
    let mut at = 0usize;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units, minus one.
            0 | 43 | 60 => {
                let len = (usize::from(*body.get(at + 1)?) + 1) * 8;
                next = *body.get(at)?;
                at += len;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let off_flags = be16(body, at + 2)?;
                next = *body.get(at)?;
                at += 8;
                k.nw_frag = FRAG_ANY;
                if off_flags & 0xfff8 != 0 {
                    k.nw_frag |= FRAG_LATER;
                    k.nw_proto = next;
                    return Some(());
                }
            }
            _ => {
                k.nw_proto = next;
                return l4(k, body.get(at..)?, IPPROTO_ICMPV6);
            }
        }
    }
    // Too many extension headers: keep L3, no L4.
    k.nw_proto = next;
    Some(())
}

/// TCP/UDP ports or ICMP type/code; `icmp` is the ICMP protocol number of this IP version.
fn l4(k: &mut FlowKey, p: &[u8], icmp: u8) -> Option<()> {
    match k.nw_proto {
        IPPROTO_TCP => {
            let doff = usize::from(*p.get(12)? >> 4) * 4;
            if doff < 20 || doff > p.len() {
                return None;
            }
            k.tp_src = be16(p, 0)?;
            k.tp_dst = be16(p, 2)?;
        }
        IPPROTO_UDP => {
            if p.len() < 8 {
                return None;
            }
            k.tp_src = be16(p, 0)?;
            k.tp_dst = be16(p, 2)?;
        }
        proto if proto == icmp => {
            // type, code, checksum
            if p.len() < 4 {
                return None;
            }
            k.tp_src = u16::from(*p.first()?);
            k.tp_dst = u16::from(*p.get(1)?);
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests;
