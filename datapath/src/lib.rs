//! The datapath: PMD threads and the pipeline they run, the port backends (ring, AF_XDP,
//! VXLAN; vhost-user lives in its own crate), and [`Switch`], which takes typed configuration
//! changes ([`spec::Change`]) and publishes them to the PMDs as snapshots.
//!
//! Public surface: [`Switch`] and its typed configuration ([`spec`]) and reports ([`info`]);
//! the port seam ([`port`], [`packet`], [`counter`]); the backends tests and the traffic
//! generator open directly ([`afxdp`], [`ring`]); and [`harness`], a PMD driven by the caller,
//! for benchmarks.

mod actions;
pub mod afxdp;
mod bond_port;
mod bridge;
pub mod capture;
mod control;
mod dpdk_options;
#[cfg(feature = "dpdk")]
pub mod dpdk_port;
pub mod harness;
pub mod info;
mod pipeline;
mod pmd;
mod pmd_index;
mod port_qos;
pub mod ring;
pub mod spec;
mod tunnel;
mod xsk_flags;
mod xsk_tx;

pub use port_api::{counter, packet, port};

pub use bond_port::{BondReport, MemberReport};
pub use control::{PmdCache, Switch, SwitchConfig, Trace, TraceOutput};
pub use info::*;
pub use pmd::CachedDecision;
pub use pmd::{IdlePolicy, Percentiles};
pub use port_qos::{ColorCounts, QueueReport};
pub use spec::*;
