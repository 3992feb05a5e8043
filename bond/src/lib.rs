//! Bonds of uplink ports, pure (no I/O, no clock of its own: time is passed in):
//!
//! - [`lacp`]: IEEE 802.1AX link aggregation control (PDUs, partner state, aggregator);
//! - [`links`]: which members carry traffic (up/down delays, the active member);
//! - [`buckets`]: hash buckets of the balance modes and their rebalancing by load;
//! - [`hash`]: the balance-slb and balance-tcp hashes of a frame;
//! - [`learning`]: RARP frames that move MACs upstream after a failover;
//! - [`bond`]: one bond put together, and the [`Distribution`] PMDs read per frame.

pub mod bond;
pub mod buckets;
pub mod hash;
pub mod lacp;
pub mod learning;
pub mod links;

pub use bond::{
    Bond, BondConfig, BondError, BondEvents, BondMode, DEFAULT_REBALANCE_INTERVAL, Distribution,
    LacpMode, MAX_MEMBERS, MemberSpec, Policy,
};
pub use buckets::{BUCKETS, NO_MEMBER};
