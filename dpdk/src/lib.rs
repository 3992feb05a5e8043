//! A small safe interface to DPDK ethdev ports: the EAL (once per process), mbuf pools, ports
//! with their queues, and receive/transmit bursts.
//!
//! Every `unsafe` call into DPDK is in this crate, next to a `// SAFETY:` comment. The switch
//! sees frames as byte slices: Rust never reads an `rte_mbuf` itself (see `burst`).

mod burst;
mod eal;
mod error;
mod ethdev;
mod mempool;

pub use burst::{BURST, RxQueue, TxQueue};
pub use eal::{Eal, EalArgs};
pub use error::Error;
pub use ethdev::{EthDev, LinkStatus, Opened, PortConfig, PortInfo, PortStats};
pub use mempool::Mempool;
