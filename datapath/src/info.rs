//! What the datapath reports: bridges, ports, rules with their counters, learned addresses,
//! PMD threads and their receive queues. Plain data for the control plane to render.

use std::net::Ipv4Addr;

use flowtable::{DropReason, Rule};

use crate::port::PortStats;
use crate::spec::Ipv4Net;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeInfo {
    pub name: String,
    pub ports: Vec<PortInfo>,
    pub n_rules: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub ofport: u32,
    /// The port type (`afxdp`, `vhost-user`, ...; `kind()` of an attached port object).
    pub kind: &'static str,
    pub link_up: bool,
    /// Facts the port reports about itself (e.g. `xdp_mode`), in the port's order.
    pub status: Vec<(&'static str, String)>,
    pub stats: PortStats,
    /// The device's own counters (DPDK ports), by name.
    pub device: Vec<(String, u64)>,
    /// Frames received on this port that the pipeline dropped (or, for `mac-learn-limited`,
    /// forwarded without learning their source), by reason; only non-zero ones.
    pub drops: Vec<(DropReason, u64)>,
}

/// A rule with its counters.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowInfo {
    pub rule: Rule,
    pub n_packets: u64,
    pub n_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub port: String,
    pub vlan: u16,
    pub mac: [u8; 6],
    pub age_secs: u64,
}

/// A receive queue as a PMD polls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxqInfo {
    pub port: String,
    pub queue: usize,
    /// Packets received on it, and TSC cycles spent receiving and processing them, since it was
    /// placed on this PMD.
    pub packets: u64,
    pub cycles: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmdInfo {
    pub id: usize,
    pub core: Option<usize>,
    pub rxqs: Vec<RxqInfo>,
    pub packets: u64,
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub misses: u64,
    /// Cached decisions invalidated by changes, and megaflows evicted for room.
    pub invalidated: u64,
    pub evicted: u64,
    /// Time spent in polls that found packets (processing them included), and in empty polls.
    pub busy_ns: u64,
    pub idle_ns: u64,
    /// Receive bursts that returned packets.
    pub rx_bursts: u64,
    /// TSC ticks per second (0: unknown).
    pub tsc_hz: u64,
}

/// A port's QoS: its settings, and what its scheduler and policer counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QosInfo {
    pub port: String,
    pub trust: qos::Trust,
    pub qos: Option<crate::spec::QosConfig>,
    /// Each queue's counters and backlog (empty without a scheduler).
    pub queues: Vec<crate::port_qos::QueueReport>,
    pub policer: Option<qos::PolicerConfig>,
    /// Packets and bytes the policer coloured green, yellow and red.
    pub policer_counts: Option<crate::port_qos::ColorCounts>,
}

/// A meter with what it counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterInfo {
    pub id: u32,
    pub policer: qos::PolicerConfig,
    /// Packets and bytes coloured green, yellow and red.
    pub counts: crate::port_qos::ColorCounts,
}

/// A tunnel route in use: connected (a VTEP's own network) or the operator's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub net: Ipv4Net,
    pub port: String,
    pub gw: Option<Ipv4Addr>,
    pub connected: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighInfo {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub port: String,
    pub age_secs: u64,
}

/// Every control error is a one-line message for the operator.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct DpError(pub String);

impl DpError {
    pub fn new(msg: impl Into<String>) -> Self {
        DpError(msg.into())
    }
}

/// A port's latency: the time its received frames spend in the switch.
#[derive(Clone, Debug, PartialEq)]
pub struct PortLatency {
    pub bridge: String,
    pub port: String,
    /// Over the last finished 5-second window.
    pub window: crate::Percentiles,
    /// Since the port was added (or vswitchd started).
    pub total: crate::Percentiles,
    /// Bursts not sampled because a window was being rotated at that instant.
    pub skipped: u64,
    /// For a port with an egress scheduler: per class, the time frames sent to the port waited
    /// in it (frames let straight through waited 0), last window and since start.
    pub classes: Vec<ClassLatency>,
}

/// How long one QoS class's frames waited in a port's egress scheduler.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassLatency {
    pub class: u8,
    pub window: crate::Percentiles,
    pub total: crate::Percentiles,
}
