//! Benchmarks and traffic generation for vswitch.

pub mod cli;
pub mod frames;
pub mod histogram;
pub mod null_port;
pub mod rig;
/// The dpdk-testpmd driver (its own crate, so vhost-user's tests use it too).
pub use testpmd;
pub mod tsc;
