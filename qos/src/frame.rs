//! Reading a frame's QoS markings: the 802.1p priority (PCP) of its outer VLAN tag and the DSCP
//! of its IPv4/IPv6 header. The bytes come from guests and the wire: every read is checked.

const ETH_TYPE_VLAN: u16 = 0x8100;
const ETH_TYPE_QINQ: u16 = 0x88a8;
pub(crate) const ETH_TYPE_IPV4: u16 = 0x0800;
pub(crate) const ETH_TYPE_IPV6: u16 = 0x86dd;

/// Offset and ethertype of the L3 header after up to two VLAN tags; None for a frame too short
/// to say, or with more than two tags.
pub(crate) fn l3(frame: &[u8]) -> Option<(usize, u16)> {
    let mut off = 12;
    for _ in 0..3 {
        let t = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        if t == ETH_TYPE_VLAN || t == ETH_TYPE_QINQ {
            off += 4;
            continue;
        }
        return Some((off + 2, t));
    }
    None
}

/// The markings a frame carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Markings {
    /// DSCP of an IPv4 or IPv6 frame.
    pub dscp: Option<u8>,
    /// PCP of the outer VLAN tag.
    pub pcp: Option<u8>,
}

/// Reads the markings of `frame` (an Ethernet frame, possibly tagged).
#[inline]
pub fn markings(frame: &[u8]) -> Markings {
    // The common case first: an untagged IPv4 frame (ethertype, version and TOS in one
    // word, one bounds check).
    if frame.len() >= 34
        && let Some(&word) = frame.get(12..16).and_then(|b| <&[u8; 4]>::try_from(b).ok())
    {
        let w = u32::from_be_bytes(word);
        if w & 0xffff_f000 == 0x0800_4000 {
            return Markings {
                dscp: Some((w as u8) >> 2),
                pcp: None,
            };
        }
    }
    markings_slow(frame)
}

fn markings_slow(frame: &[u8]) -> Markings {
    let pcp = match frame.get(12..15) {
        Some(&[a, b, tci_hi]) => {
            let t = u16::from_be_bytes([a, b]);
            (t == ETH_TYPE_VLAN || t == ETH_TYPE_QINQ).then_some(tci_hi >> 5)
        }
        _ => None,
    };
    let dscp = l3(frame).and_then(|(off, t)| {
        let b0 = *frame.get(off)?;
        match t {
            ETH_TYPE_IPV4 if b0 >> 4 == 4 && frame.len() >= off + 20 => {
                Some(*frame.get(off + 1)? >> 2)
            }
            ETH_TYPE_IPV6 if b0 >> 4 == 6 && frame.len() >= off + 40 => {
                let tc = ((b0 & 0x0f) << 4) | (*frame.get(off + 1)? >> 4);
                Some(tc >> 2)
            }
            _ => None,
        }
    });
    Markings { dscp, pcp }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(tos: u8) -> Vec<u8> {
        let mut f = vec![0u8; 34];
        f[12] = 0x08;
        f[14] = 0x45;
        f[15] = tos;
        f
    }

    #[test]
    fn dscp_and_pcp_of_plain_tagged_and_double_tagged_frames() {
        assert_eq!(
            markings(&ipv4(46 << 2 | 1)),
            Markings {
                dscp: Some(46),
                pcp: None
            }
        );
        let mut tagged = ipv4(10 << 2);
        tagged.splice(12..12, [0x81, 0x00, 0xa0, 0x0a]); // PCP 5, VID 10
        assert_eq!(
            markings(&tagged),
            Markings {
                dscp: Some(10),
                pcp: Some(5)
            }
        );
        let mut qinq = tagged.clone();
        qinq.splice(12..12, [0x88, 0xa8, 0xe0, 0x64]); // outer PCP 7
        assert_eq!(markings(&qinq).pcp, Some(7));
        assert_eq!(markings(&qinq).dscp, Some(10));
        let mut v6 = vec![0u8; 54];
        v6[12] = 0x86;
        v6[13] = 0xdd;
        v6[14] = 0x60 | (46 << 2) >> 4;
        v6[15] = ((46u8 << 2) & 0x0f) << 4;
        assert_eq!(markings(&v6).dscp, Some(46));
    }

    #[test]
    fn short_or_foreign_frames_have_no_dscp() {
        assert_eq!(markings(&[]), Markings::default());
        assert_eq!(
            markings(&ipv4(0xb8)[..33]).dscp,
            None,
            "IPv4 header cut short"
        );
        let mut arp = ipv4(0xb8);
        arp[13] = 0x06;
        assert_eq!(markings(&arp).dscp, None);
        let mut bad_version = ipv4(0xb8);
        bad_version[14] = 0x65;
        assert_eq!(markings(&bad_version).dscp, None);
        // Three tags: not looked into.
        let mut deep = ipv4(0xb8);
        for _ in 0..3 {
            deep.splice(12..12, [0x81, 0x00, 0x00, 0x01]);
        }
        assert_eq!(markings(&deep).dscp, None);
    }
}
