//! VLAN port modes and tag operations (and, with the overlay issue, VXLAN encap/decap).
//! Pure: bytes and settings in, decisions and bytes out.

pub mod mode;
pub mod tag;
pub mod vlan_set;

pub use mode::{Admitted, Egress, FrameTags, VlanDrop, VlanMode};
pub use tag::{TPID_8021AD, TPID_8021Q, TagError};
pub use vlan_set::VlanSet;
