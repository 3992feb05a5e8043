//! VLAN port modes and tag operations (and, with the overlay issue, VXLAN encap/decap).
//! Pure: bytes and settings in, decisions and bytes out.

pub mod arp;
pub mod mode;
pub mod tag;
pub mod vlan_set;
pub mod vxlan;

pub use mode::{Admitted, Egress, FrameTags, VlanDrop, VlanMode};
pub use tag::{TPID_8021AD, TPID_8021Q, TagError};
pub use vlan_set::VlanSet;
pub use vxlan::{EncapParams, VXLAN_OVERHEAD_V4, VXLAN_PORT};
