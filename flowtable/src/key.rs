//! The flow key: every header field the pipeline can match on, extracted once per packet.

/// OpenFlow port number within a bridge (1-based; 0 is never a real port).
pub type PortNo = u32;

/// `vlan_tci` bit meaning "a tag is present" (the CFI/DEI bit position, as Open vSwitch uses it).
pub const VLAN_PRESENT: u16 = 0x1000;
pub const VLAN_VID_MASK: u16 = 0x0fff;
pub const VLAN_PCP_SHIFT: u16 = 13;

/// Parsed fields of one frame. Fields a frame does not have are zero. The same struct, with
/// ones in the examined bits, is used as a mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub in_port: PortNo,
    /// Tunnel metadata (VXLAN VNI and outer IPv4 source/destination); zero when not tunnelled.
    pub tun_id: u64,
    pub tun_src: u32,
    pub tun_dst: u32,
    pub dl_dst: [u8; 6],
    pub dl_src: [u8; 6],
    /// Outer VLAN tag: PCP << 13 | VLAN_PRESENT | VID; 0 when untagged.
    pub vlan_tci: u16,
    /// TPID of the outer tag (0x8100 or 0x88a8); 0 when untagged.
    pub vlan_tpid: u16,
    /// Inner (customer) tag of a double-tagged frame, same layout as `vlan_tci`.
    pub cvlan_tci: u16,
    /// Ethertype after the tags.
    pub dl_type: u16,
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

// FxHash constant (from Firefox / rustc-hash): odd, with well-spread bits.
const FX_K: u64 = 0xf135_7aea_2e62_a9c5;

fn and_bytes<const N: usize>(a: [u8; N], b: [u8; N]) -> [u8; N] {
    std::array::from_fn(|i| a[i] & b[i])
}

fn or_bytes<const N: usize>(a: [u8; N], b: [u8; N]) -> [u8; N] {
    std::array::from_fn(|i| a[i] | b[i])
}

/// Zero-extends up to 8 bytes into a little-endian word.
fn word(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Builds a key from two keys, combining each field (scalars with `$op`, byte arrays with `$arr`).
macro_rules! fieldwise {
    ($a:expr, $b:expr, $op:tt, $arr:ident) => {
        FlowKey {
            in_port: $a.in_port $op $b.in_port,
            tun_id: $a.tun_id $op $b.tun_id,
            tun_src: $a.tun_src $op $b.tun_src,
            tun_dst: $a.tun_dst $op $b.tun_dst,
            dl_dst: $arr($a.dl_dst, $b.dl_dst),
            dl_src: $arr($a.dl_src, $b.dl_src),
            vlan_tci: $a.vlan_tci $op $b.vlan_tci,
            vlan_tpid: $a.vlan_tpid $op $b.vlan_tpid,
            cvlan_tci: $a.cvlan_tci $op $b.cvlan_tci,
            dl_type: $a.dl_type $op $b.dl_type,
            nw_src: $arr($a.nw_src, $b.nw_src),
            nw_dst: $arr($a.nw_dst, $b.nw_dst),
            nw_proto: $a.nw_proto $op $b.nw_proto,
            nw_tos: $a.nw_tos $op $b.nw_tos,
            nw_ttl: $a.nw_ttl $op $b.nw_ttl,
            nw_frag: $a.nw_frag $op $b.nw_frag,
            tp_src: $a.tp_src $op $b.tp_src,
            tp_dst: $a.tp_dst $op $b.tp_dst,
        }
    };
}

impl FlowKey {
    /// All-ones mask (same as [`FULL_MASK`]).
    pub const fn full_mask() -> FlowKey {
        FULL_MASK
    }

    /// Field-wise AND: the key as seen through `mask`.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        fieldwise!(self, mask, &, and_bytes)
    }

    /// Field-wise OR, used to accumulate masks.
    #[inline]
    pub fn union(&self, other: &FlowKey) -> FlowKey {
        fieldwise!(self, other, |, or_bytes)
    }

    /// The key packed into ten 64-bit words (every field, no padding), the input of `fast_hash`.
    #[inline]
    fn words(&self) -> [u64; 10] {
        let w16 = |v: u16| u64::from(v);
        let src = u128::from_le_bytes(self.nw_src);
        let dst = u128::from_le_bytes(self.nw_dst);
        [
            self.tun_id,
            u64::from(self.in_port) | u64::from(self.tun_src) << 32,
            u64::from(self.tun_dst) | w16(self.dl_type) << 32 | w16(self.vlan_tci) << 48,
            word(&self.dl_dst) | w16(self.vlan_tpid) << 48,
            word(&self.dl_src) | w16(self.cvlan_tci) << 48,
            src as u64,
            (src >> 64) as u64,
            dst as u64,
            (dst >> 64) as u64,
            u64::from(self.nw_proto)
                | u64::from(self.nw_tos) << 8
                | u64::from(self.nw_ttl) << 16
                | u64::from(self.nw_frag) << 24
                | w16(self.tp_src) << 32
                | w16(self.tp_dst) << 48,
        ]
    }

    /// Fast, deterministic, non-cryptographic hash of every field (FxHash-style rotate/xor/
    /// multiply per word). A multiply only carries changes upwards, so a field in the high bits
    /// of the last word (e.g. tp_dst) would never reach the low bits that the EMC and hash
    /// tables index with: a final avalanche step folds them down.
    #[inline]
    pub fn fast_hash(&self) -> u64 {
        let h = self
            .words()
            .iter()
            .fold(0u64, |h, &w| (h.rotate_left(5) ^ w).wrapping_mul(FX_K));
        // MurmurHash3's fmix64 finalizer.
        let h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
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

    #[test]
    fn hash_sees_every_field() {
        let base = FlowKey::default().fast_hash();
        assert_eq!(base, FlowKey::default().fast_hash());
        let mut changed = [FlowKey::default(); 6];
        changed[0].nw_dst[15] = 1;
        changed[1].tp_dst = 1;
        changed[2].dl_src[5] = 1;
        changed[3].cvlan_tci = 1;
        changed[4].tun_dst = 1;
        changed[5].nw_frag = 1;
        for k in changed {
            assert_ne!(k.fast_hash(), base, "{k:?}");
        }
    }

    #[test]
    fn low_bits_spread() {
        // Keys differing only in one high-placed field must land in different small-table slots.
        let mut slots: Vec<u64> = (0..64u16)
            .map(|p| {
                let k = FlowKey {
                    tp_dst: p,
                    ..FlowKey::default()
                };
                k.fast_hash() & 1023
            })
            .collect();
        slots.sort();
        slots.dedup();
        assert!(slots.len() > 50, "only {} distinct slots", slots.len());
    }
}
