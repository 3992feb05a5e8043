//! vhost-user port: a virtio-net device for a VM (or any vhost-user front-end such as DPDK's
//! `net_virtio_user`), implementing [`port_api::Port`].
//!
//! * [`port`]: the port, its options, and the queue mapping.
//! * [`connection`]: the control thread (client mode with reconnect, server mode).
//! * [`protocol`]: the vhost-user message handler (on the `vhost` crate's `BackendReqHandler`).
//! * [`memory`]: the front-end's memory table.
//! * [`device`]: virtqueue state shared by the control thread and the PMDs.
//! * [`ring`]: the split virtqueue, every guest value checked.
//! * [`rxtx`]: frames in and out of the rings.
//! * [`virtio_net`]: feature bits, the virtio-net header, the config space.
//! * [`stats`]: per-queue counters and drop reasons.
//! * `server_socket`: the socket of a server-mode port (replaces only a stale socket).
//!
//! The PMDs poll the virtqueues (guest kicks are never read) and never wait for the control
//! thread.

pub mod connection;
pub mod device;
#[doc(hidden)]
pub mod fuzzing;
pub mod memory;
pub mod port;
pub mod protocol;
pub mod ring;
#[cfg(test)]
mod ring_offload_tests;
#[cfg(test)]
mod ring_tests;
pub mod rxtx;
mod server_socket;
pub mod stats;
pub mod virtio_net;

pub use port::{MAX_QUEUE_PAIRS, Mode, VhostUserError, VhostUserOptions, VhostUserPort};
pub use stats::DropReason;
