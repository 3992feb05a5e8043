//! DSCP re-marking of IPv4/IPv6 frames (the IPv4 header checksum is updated incrementally).

use crate::frame::{ETH_TYPE_IPV4, ETH_TYPE_IPV6, l3};

const ETH_HLEN: usize = 14;

/// Sets the DSCP of an IP frame, keeping ECN. Returns false (frame untouched) when the frame is
/// not IPv4/IPv6 or is too short.
pub fn set_dscp(frame: &mut [u8], dscp: u8) -> bool {
    let Some((off, ethertype)) = l3(frame) else {
        return false;
    };
    debug_assert!(off >= ETH_HLEN);
    match ethertype {
        ETH_TYPE_IPV4 => {
            if frame.len() < off + 20 || frame[off] >> 4 != 4 {
                return false;
            }
            let old = frame[off + 1];
            let new = (dscp << 2) | (old & 3);
            frame[off + 1] = new;
            // RFC 1624: HC' = ~(~HC + ~m + m'), on the 16-bit word holding version/IHL and TOS.
            let old_word = u16::from_be_bytes([frame[off], old]);
            let new_word = u16::from_be_bytes([frame[off], new]);
            let hc = u16::from_be_bytes([frame[off + 10], frame[off + 11]]);
            let mut sum = u32::from(!hc) + u32::from(!old_word) + u32::from(new_word);
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            frame[off + 10..off + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            true
        }
        ETH_TYPE_IPV6 => {
            if frame.len() < off + 40 || frame[off] >> 4 != 6 {
                return false;
            }
            // Traffic class straddles bytes 0 and 1: 4 bits each.
            let tc = ((frame[off] & 0x0f) << 4) | (frame[off + 1] >> 4);
            let new = (dscp << 2) | (tc & 3);
            frame[off] = (frame[off] & 0xf0) | (new >> 4);
            frame[off + 1] = (frame[off + 1] & 0x0f) | (new << 4);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(h: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in h.chunks(2) {
            s += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn ipv4_frame(tos: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20];
        f[12] = 0x08;
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[1] = tos;
        ip[3] = 20;
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let c = checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn ipv4_dscp_and_checksum() {
        for tos in [0u8, 1, 2, 3, 0xb8, 0xff] {
            for dscp in [0u8, 10, 46, 63] {
                let mut f = ipv4_frame(tos);
                assert!(set_dscp(&mut f, dscp));
                assert_eq!(f[15], (dscp << 2) | (tos & 3));
                assert_eq!(checksum(&f[14..34]), 0, "tos {tos} dscp {dscp}");
            }
        }
    }

    #[test]
    fn ipv6_traffic_class() {
        let mut f = vec![0u8; 14 + 40];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[14] = 0x60 | 0x0a; // tc high nibble 0xa
        f[15] = 0x3f; // tc low nibble 0x3, flow label bits 0xf
        assert!(set_dscp(&mut f, 46));
        let tc = ((f[14] & 0x0f) << 4) | (f[15] >> 4);
        assert_eq!(tc, (46 << 2) | 3);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(f[15] & 0x0f, 0x0f);
    }

    #[test]
    fn tagged_and_non_ip() {
        let mut f = ipv4_frame(0);
        f.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        assert!(set_dscp(&mut f, 8));
        assert_eq!(f[19], 8 << 2);
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(!set_dscp(&mut arp, 8));
        assert!(!set_dscp(&mut [0u8; 5], 8));
    }
}
