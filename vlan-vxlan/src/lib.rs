//! VLAN tag operations (and, with the overlay issue, VXLAN encap/decap). Pure: bytes in, bytes out.

pub mod tag;

pub use tag::{TPID_8021AD, TPID_8021Q, TagError};
