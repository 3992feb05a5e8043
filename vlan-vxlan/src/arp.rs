//! ARP for IPv4 over Ethernet, as a VTEP needs it: answer requests for its own address and
//! resolve the next hop of remote VTEPs.

pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;
const ARP_LEN: usize = 28;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

/// Parses an untagged Ethernet/IPv4 ARP frame.
pub fn parse(frame: &[u8]) -> Option<Arp> {
    if frame.get(12..14)? != [0x08, 0x06] {
        return None;
    }
    let a = frame.get(14..14 + ARP_LEN)?;
    // htype Ethernet, ptype IPv4, hlen 6, plen 4.
    if a[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    Some(Arp {
        op: u16::from_be_bytes([a[6], a[7]]),
        sha: a[8..14].try_into().ok()?,
        spa: a[14..18].try_into().ok()?,
        tha: a[18..24].try_into().ok()?,
        tpa: a[24..28].try_into().ok()?,
    })
}

/// Builds an ARP frame (padded to the 60-byte Ethernet minimum).
pub fn build(eth_dst: [u8; 6], arp: &Arp) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&eth_dst);
    f[6..12].copy_from_slice(&arp.sha);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    f[20..22].copy_from_slice(&arp.op.to_be_bytes());
    f[22..28].copy_from_slice(&arp.sha);
    f[28..32].copy_from_slice(&arp.spa);
    f[32..38].copy_from_slice(&arp.tha);
    f[38..42].copy_from_slice(&arp.tpa);
    f
}

/// A broadcast request for `target` from (`mac`, `ip`).
pub fn request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> [u8; 60] {
    build(
        [0xff; 6],
        &Arp {
            op: OP_REQUEST,
            sha: mac,
            spa: ip,
            tha: [0; 6],
            tpa: target,
        },
    )
}

/// The reply to `req` from the owner of its target address.
pub fn reply(req: &Arp, mac: [u8; 6]) -> [u8; 60] {
    build(
        req.sha,
        &Arp {
            op: OP_REPLY,
            sha: mac,
            spa: req.tpa,
            tha: req.sha,
            tpa: req.spa,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reply_round_trip() {
        let me = [2, 0, 0, 0, 0, 1];
        let req = request(me, [10, 0, 0, 1], [10, 0, 0, 2]);
        let r = parse(&req).unwrap();
        assert_eq!(r.op, OP_REQUEST);
        assert_eq!(r.tpa, [10, 0, 0, 2]);
        let peer = [2, 0, 0, 0, 0, 2];
        let rep = reply(&r, peer);
        assert_eq!(&rep[0..6], &me);
        let p = parse(&rep).unwrap();
        assert_eq!(
            (p.op, p.sha, p.spa, p.tha, p.tpa),
            (OP_REPLY, peer, [10, 0, 0, 2], me, [10, 0, 0, 1])
        );
        assert_eq!(parse(&rep[..30]), None);
        let mut bad = rep;
        bad[19] = 16;
        assert_eq!(parse(&bad), None);
    }
}
