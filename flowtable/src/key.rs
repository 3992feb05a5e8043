//! The flow key: every header field the pipeline can match on, extracted once per packet.

/// OpenFlow port number within a bridge (1-based; 0 is never a real port).
pub type PortNo = u32;

/// `vlan_tci` bit meaning "a tag is present" (the CFI/DEI bit position, as Open vSwitch uses it).
pub const VLAN_PRESENT: u16 = 0x1000;
pub const VLAN_VID_MASK: u16 = 0x0fff;
pub const VLAN_PCP_SHIFT: u16 = 13;

/// Parsed fields of one frame. Fields a frame does not have are zero. The same struct, with
/// ones in the examined bits, is used as a mask.
///
/// `repr(C)` with the fields ordered so that there is no padding: the key is exactly ten
/// 64-bit words, which hashing, comparing and masking work on directly.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct FlowKey {
    /// Tunnel metadata (VXLAN VNI and outer IPv4 source/destination); zero when not tunnelled.
    pub tun_id: u64,
    pub in_port: PortNo,
    pub tun_src: u32,
    pub tun_dst: u32,
    /// Ethertype after the tags.
    pub dl_type: u16,
    /// Outer VLAN tag: PCP << 13 | VLAN_PRESENT | VID; 0 when untagged.
    pub vlan_tci: u16,
    pub dl_dst: [u8; 6],
    /// TPID of the outer tag (0x8100 or 0x88a8); 0 when untagged.
    pub vlan_tpid: u16,
    pub dl_src: [u8; 6],
    /// Inner (customer) tag of a double-tagged frame, same layout as `vlan_tci`.
    pub cvlan_tci: u16,
    /// IPv4 (first 4 bytes, rest zero) or IPv6 source/destination; ARP sender/target IPv4.
    pub nw_src: [u8; 16],
    pub nw_dst: [u8; 16],
    /// IP protocol, or the ARP opcode (low byte).
    pub nw_proto: u8,
    /// DSCP << 2 | ECN.
    pub nw_tos: u8,
    pub nw_ttl: u8,
    /// Bit 0: IP fragment; bit 1: later fragment (no L4 header).
    pub nw_frag: u8,
    /// TCP/UDP ports; ICMP type and code.
    pub tp_src: u16,
    pub tp_dst: u16,
}

pub(crate) const KEY_WORDS: usize = 10;
// The word view below relies on this: the fields above add up to 80 bytes, so no padding.
const _: () = assert!(std::mem::size_of::<FlowKey>() == KEY_WORDS * 8);
const _: () = assert!(std::mem::align_of::<FlowKey>() == 8);

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words().hash(state);
    }
}

impl PartialEq for FlowKey {
    #[inline]
    fn eq(&self, other: &FlowKey) -> bool {
        // Branch-free over the ten words (a slice compare would call memcmp).
        let (a, b) = (self.words(), other.words());
        (0..KEY_WORDS).fold(0, |acc, i| acc | (a[i] ^ b[i])) == 0
    }
}

/// All-ones mask: every field examined (an exact match).
pub const FULL_MASK: FlowKey = FlowKey {
    in_port: u32::MAX,
    tun_id: u64::MAX,
    tun_src: u32::MAX,
    tun_dst: u32::MAX,
    dl_dst: [0xff; 6],
    dl_src: [0xff; 6],
    vlan_tci: u16::MAX,
    vlan_tpid: u16::MAX,
    cvlan_tci: u16::MAX,
    dl_type: u16::MAX,
    nw_src: [0xff; 16],
    nw_dst: [0xff; 16],
    nw_proto: u8::MAX,
    nw_tos: u8::MAX,
    nw_ttl: u8::MAX,
    nw_frag: u8::MAX,
    tp_src: u16::MAX,
    tp_dst: u16::MAX,
};

impl FlowKey {
    /// All-ones mask (same as [`FULL_MASK`]).
    pub const fn full_mask() -> FlowKey {
        FULL_MASK
    }

    /// Field-wise AND: the key as seen through `mask`.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let (a, m) = (self.words(), mask.words());
        FlowKey::from_words(std::array::from_fn(|i| a[i] & m[i]))
    }

    /// Field-wise OR, used to accumulate masks.
    #[inline]
    pub fn union(&self, other: &FlowKey) -> FlowKey {
        let (a, b) = (self.words(), other.words());
        FlowKey::from_words(std::array::from_fn(|i| a[i] | b[i]))
    }

    /// The key as ten 64-bit words (every field, no padding), for hashing and comparing.
    #[inline]
    pub(crate) fn words(&self) -> &[u64; KEY_WORDS] {
        // SAFETY: FlowKey is repr(C), 80 bytes with 8-byte alignment and no padding (asserted
        // above), and made only of integers, so its bytes are initialised and can be read as
        // ten u64 words for as long as `self` is borrowed.
        unsafe { &*(self as *const FlowKey as *const [u64; KEY_WORDS]) }
    }

    #[inline]
    pub(crate) fn from_words(w: [u64; KEY_WORDS]) -> FlowKey {
        // SAFETY: same layout as above, and every bit pattern is a valid FlowKey (integers
        // only).
        unsafe { std::mem::transmute::<[u64; KEY_WORDS], FlowKey>(w) }
    }

    /// VID of the outer tag, or None when untagged.
    pub fn vlan_vid(&self) -> Option<u16> {
        (self.vlan_tci & VLAN_PRESENT != 0).then_some(self.vlan_tci & VLAN_VID_MASK)
    }

    /// PCP of the outer tag (0 when untagged).
    pub fn vlan_pcp(&self) -> u8 {
        (self.vlan_tci >> VLAN_PCP_SHIFT) as u8
    }

    /// DSCP: the upper six bits of `nw_tos`.
    pub fn dscp(&self) -> u8 {
        self.nw_tos >> 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FlowKey {
        FlowKey {
            in_port: 3,
            dl_src: [0, 1, 2, 3, 4, 5],
            vlan_tci: VLAN_PRESENT | 5 | (6 << VLAN_PCP_SHIFT),
            nw_tos: 0xb9,
            tp_dst: 80,
            ..FlowKey::default()
        }
    }

    #[test]
    fn mask_and_union() {
        let k = sample();
        assert_eq!(k.masked(&FULL_MASK), k);
        assert_eq!(k.masked(&FlowKey::default()), FlowKey::default());
        let m = FlowKey {
            dl_src: [0xff, 0, 0, 0, 0, 0xff],
            tp_dst: 0xff00,
            ..FlowKey::default()
        };
        let km = k.masked(&m);
        assert_eq!(km.dl_src, [0, 0, 0, 0, 0, 5]);
        assert_eq!(km.tp_dst, 0);
        assert_eq!(km.in_port, 0);
        let u = m.union(&FlowKey {
            in_port: 1,
            ..FlowKey::default()
        });
        assert_eq!(u.in_port, 1);
        assert_eq!(u.dl_src, m.dl_src);
    }

    #[test]
    fn accessors() {
        let k = sample();
        assert_eq!(k.vlan_vid(), Some(5));
        assert_eq!(k.vlan_pcp(), 6);
        assert_eq!(k.dscp(), 0xb9 >> 2);
        assert_eq!(FlowKey::default().vlan_vid(), None);
    }
}
