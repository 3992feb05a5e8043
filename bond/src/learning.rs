//! "Learning packets": after a failover, a RARP frame from each MAC address behind the bond
//! goes out of the new active member, so the upstream switch moves those addresses to it at
//! once instead of when each VM next speaks (as Open vSwitch and Linux bonding do).

const ETH_P_RARP: u16 = 0x8035;
const ETH_P_8021Q: u16 = 0x8100;

/// A broadcast RARP request ("reverse request", opcode 3) from `mac`, tagged with `vlan` when
/// the address lives in a VLAN carried tagged on the uplink.
pub fn rarp(mac: [u8; 6], vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(60 + 4);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    if let Some(vid) = vlan {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ETH_P_RARP.to_be_bytes());
    // Ethernet / IPv4 hardware and protocol, lengths 6 and 4, opcode 3.
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 3]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0; 4]);
    // Pad to the Ethernet minimum (60 bytes without FCS, the tag on top).
    let min = if vlan.is_some() { 64 } else { 60 };
    f.resize(min, 0);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarp_layout() {
        let mac = [2, 0, 0, 0, 0, 7];
        let f = rarp(mac, None);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x80, 0x35]);
        assert_eq!(&f[20..22], &[0, 3]);
        assert_eq!(&f[22..28], &mac);
        let t = rarp(mac, Some(10));
        assert_eq!(t.len(), 64);
        assert_eq!(&t[12..18], &[0x81, 0x00, 0, 10, 0x80, 0x35]);
    }
}
