//! The port seam: packet buffers and batches, and the `Port` trait every backend implements
//! (ring, afxdp, vhost-user, dpdk, bonds). Kept apart from the datapath so backends in their
//! own crates depend on this and not on PMD internals.

pub mod copy;
pub mod counter;
pub mod offload;
pub mod packet;
pub mod port;
pub mod prefetch;

pub use copy::copy_frame;
pub use counter::{Counter, SharedCounter};
pub use packet::{
    Batch, ClassHint, HEADROOM, MAX_BURST, MAX_FRAME, Packet, PacketPool, SMALL_FRAME,
};
pub use port::{Port, PortCounters, PortStats};
