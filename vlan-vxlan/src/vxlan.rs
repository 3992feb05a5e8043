//! VXLAN (RFC 7348) over IPv4: building the outer Ethernet/IPv4/UDP/VXLAN headers in front of
//! a frame, and validating them on the way in.

use std::fmt;

/// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8).
pub const VXLAN_OVERHEAD_V4: usize = 50;
pub const VXLAN_PORT: u16 = 4789;
const ETH: usize = 14;
const IP4: usize = 20;
const UDP: usize = 8;
const VXLAN_FLAG_I: u8 = 0x08;

/// What the outer headers carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncapParams {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub vni: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    /// Set the IPv4 don't-fragment bit.
    pub df: bool,
    /// Outer DSCP/ECN byte (copied from the inner packet by the caller if it wants).
    pub tos: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    NoHeadroom,
    BadBounds,
    /// The inner frame does not fit in an IPv4 packet.
    TooLong,
}

/// The UDP source port for an inner flow hash: within the ephemeral range, so that routers
/// and bonds on the underlay spread different inner flows (RFC 7348 §5).
pub fn flow_src_port(hash: u64) -> u16 {
    let h = (hash ^ (hash >> 32) ^ (hash >> 16)) as u16;
    49152 + (h % 16384)
}

/// Internet checksum of `data` (ones' complement of the ones' complement sum).
pub fn ip_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes the outer headers in front of the frame `buf[start..start + len]`. Returns the new
/// (start, len). The UDP checksum is left 0, as RFC 7348 allows for IPv4.
pub fn encap(
    buf: &mut [u8],
    start: usize,
    len: usize,
    p: &EncapParams,
) -> Result<(usize, usize), EncapError> {
    match start.checked_add(len) {
        Some(end) if end <= buf.len() => {}
        _ => return Err(EncapError::BadBounds),
    }
    if start < VXLAN_OVERHEAD_V4 {
        return Err(EncapError::NoHeadroom);
    }
    let ip_len = IP4 + UDP + 8 + len;
    if ip_len > usize::from(u16::MAX) {
        return Err(EncapError::TooLong);
    }
    let s = start - VXLAN_OVERHEAD_V4;
    let h = &mut buf[s..start];
    h[0..6].copy_from_slice(&p.dst_mac);
    h[6..12].copy_from_slice(&p.src_mac);
    h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut h[ETH..ETH + IP4];
    ip[0] = 0x45;
    ip[1] = p.tos;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&(if p.df { 0x4000u16 } else { 0 }).to_be_bytes());
    ip[8] = p.ttl;
    ip[9] = 17;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&p.src_ip);
    ip[16..20].copy_from_slice(&p.dst_ip);
    let c = ip_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut h[ETH + IP4..ETH + IP4 + UDP];
    udp[0..2].copy_from_slice(&p.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&p.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((UDP + 8 + len) as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let vx = &mut h[ETH + IP4 + UDP..];
    vx[0] = VXLAN_FLAG_I;
    vx[1..4].copy_from_slice(&[0, 0, 0]);
    vx[4..7].copy_from_slice(&p.vni.to_be_bytes()[1..4]);
    vx[7] = 0;
    Ok((s, len + VXLAN_OVERHEAD_V4))
}

/// A validated VXLAN packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decap {
    pub src_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    pub vni: u32,
    pub tos: u8,
    /// Offset and length of the inner Ethernet frame.
    pub inner_offset: usize,
    pub inner_len: usize,
}

/// The outer IPv4/UDP headers of a frame that may be a tunnel packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp4 {
    pub dst_ip: [u8; 4],
    pub dst_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapError {
    BadIpHeader,
    BadIpChecksum,
    Fragment,
    BadUdpLength,
    /// The VXLAN I flag is clear (no valid VNI).
    NoVni,
    /// Shorter than an Ethernet header inside.
    RuntInner,
}

impl fmt::Display for DecapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecapError::BadIpHeader => "bad outer IPv4 header",
            DecapError::BadIpChecksum => "bad outer IPv4 checksum",
            DecapError::Fragment => "fragmented outer packet",
            DecapError::BadUdpLength => "bad outer UDP length",
            DecapError::NoVni => "VXLAN I flag clear",
            DecapError::RuntInner => "inner frame too short",
        })
    }
}

/// Cheap first look: an untagged IPv4/UDP frame's destination address and port, or None. Used
/// to decide whether a frame is addressed to a local VTEP before validating it.
pub fn peek_udp4(frame: &[u8]) -> Option<Udp4> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(ETH..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if *ip.first()? >> 4 != 4 || *ip.get(9)? != 17 || ihl < IP4 {
        return None;
    }
    let dst_ip = ip.get(16..20)?.try_into().ok()?;
    let udp = ip.get(ihl..ihl + UDP)?;
    Some(Udp4 {
        dst_ip,
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
    })
}

/// Validates the outer headers of an untagged IPv4/UDP/VXLAN frame.
pub fn decap(frame: &[u8]) -> Result<Decap, DecapError> {
    let ip = frame.get(ETH..).ok_or(DecapError::BadIpHeader)?;
    let ihl = usize::from(*ip.first().ok_or(DecapError::BadIpHeader)? & 0x0f) * 4;
    if ip.len() < IP4 || ip[0] >> 4 != 4 || ihl < IP4 || ip.len() < ihl || ip[9] != 17 {
        return Err(DecapError::BadIpHeader);
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < ihl + UDP + 8 || total > ip.len() {
        return Err(DecapError::BadIpHeader);
    }
    if ip_checksum(&ip[..ihl]) != 0 {
        return Err(DecapError::BadIpChecksum);
    }
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & 0x3fff != 0 {
        return Err(DecapError::Fragment);
    }
    let udp = &ip[ihl..total];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < UDP + 8 || udp_len > udp.len() {
        return Err(DecapError::BadUdpLength);
    }
    let vx = &udp[UDP..UDP + 8];
    if vx[0] & VXLAN_FLAG_I == 0 {
        return Err(DecapError::NoVni);
    }
    let inner_len = udp_len - UDP - 8;
    if inner_len < ETH {
        return Err(DecapError::RuntInner);
    }
    Ok(Decap {
        src_mac: frame[6..12].try_into().unwrap_or_default(),
        src_ip: ip[12..16].try_into().unwrap_or_default(),
        dst_ip: ip[16..20].try_into().unwrap_or_default(),
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        vni: u32::from_be_bytes([0, vx[4], vx[5], vx[6]]),
        tos: ip[1],
        inner_offset: ETH + ihl + UDP + 8,
        inner_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> EncapParams {
        EncapParams {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [192, 168, 50, 1],
            dst_ip: [192, 168, 50, 2],
            vni: 5000,
            src_port: flow_src_port(12345),
            dst_port: VXLAN_PORT,
            ttl: 64,
            df: true,
            tos: 0,
        }
    }

    #[test]
    fn encap_then_decap_round_trips() {
        let inner: Vec<u8> = (0..60u8).collect();
        let mut buf = vec![0u8; 256];
        buf[100..160].copy_from_slice(&inner);
        let (s, l) = encap(&mut buf, 100, 60, &params()).unwrap();
        assert_eq!((s, l), (50, 110));
        let frame = &buf[s..s + l];
        assert_eq!(ip_checksum(&frame[14..34]), 0);
        assert_eq!(u16::from_be_bytes([frame[16], frame[17]]), 96);
        assert_eq!(frame[20] & 0x40, 0x40, "DF");
        assert_eq!(
            peek_udp4(frame),
            Some(Udp4 {
                dst_ip: [192, 168, 50, 2],
                dst_port: 4789
            })
        );
        let d = decap(frame).unwrap();
        assert_eq!(d.vni, 5000);
        assert_eq!(d.src_ip, [192, 168, 50, 1]);
        assert_eq!(
            &frame[d.inner_offset..d.inner_offset + d.inner_len],
            &inner[..]
        );
        assert!((49152..=65535).contains(&d.src_port));
    }

    #[test]
    fn bad_outer_headers_are_rejected() {
        let mut buf = vec![0u8; 256];
        let (s, l) = encap(&mut buf, 100, 60, &params()).unwrap();
        let good = buf[s..s + l].to_vec();
        let mut f = good.clone();
        f[24] ^= 1; // checksum
        assert_eq!(decap(&f), Err(DecapError::BadIpChecksum));
        let mut f = good.clone();
        f[42] = 0; // VXLAN flags
        assert_eq!(decap(&f), Err(DecapError::NoVni));
        assert_eq!(decap(&good[..40]), Err(DecapError::BadIpHeader));
        let mut f = good.clone();
        f[38..40].copy_from_slice(&200u16.to_be_bytes()); // UDP length beyond the packet
        assert_eq!(decap(&f), Err(DecapError::BadUdpLength));
        assert_eq!(
            encap(&mut buf, 10, 60, &params()),
            Err(EncapError::NoHeadroom)
        );
        assert_eq!(
            encap(&mut buf, 200, 60, &params()),
            Err(EncapError::BadBounds)
        );
        assert_eq!(peek_udp4(&[0u8; 20]), None);
    }

    #[test]
    fn source_ports_spread() {
        let ports: std::collections::HashSet<u16> = (0..1000u64)
            .map(|h| flow_src_port(h.wrapping_mul(0x9e3779b97f4a7c15)))
            .collect();
        assert!(ports.len() > 900);
    }
}
