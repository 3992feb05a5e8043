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
