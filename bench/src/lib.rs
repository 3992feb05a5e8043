//! Benchmarks and traffic generation for vswitch.

pub mod cli;
pub mod frames;
pub mod histogram;
pub mod null_port;
pub mod testpmd;
pub mod tsc;
