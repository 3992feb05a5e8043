//! Types of the datapath's control API (what `Switch` takes and returns). Plain data, so the
//! control crate can serialise them as it likes.

use std::collections::BTreeMap;

/// How to create a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// `ring` or `afxdp` (later `vhost-user`, `vxlan`, `dpdk`).
    pub kind: String,
    /// Type options as given by the operator (`iface=veth0`, `xdp-mode=generic`, `peer=p2`).
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub ofport: u32,
    pub kind: String,
    pub options: BTreeMap<String, String>,
    pub link_up: bool,
    /// Facts the port reports about itself (e.g. `xdp_mode=generic`).
    pub status: Vec<(String, String)>,
    pub stats: crate::port::PortStats,
    /// Frames received on this port and dropped by the pipeline, by reason name.
    pub drops: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeInfo {
    pub name: String,
    pub ports: Vec<PortInfo>,
    pub n_rules: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// Canonical ovs-ofctl text of the rule (ports by name).
    pub text: String,
    pub priority: u16,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmdInfo {
    pub id: usize,
    pub core: Option<usize>,
    pub rxqs: Vec<(String, usize)>,
    pub packets: u64,
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub misses: u64,
    /// Time spent in polls that found packets (processing them included), and in empty polls.
    pub busy_ns: u64,
    pub idle_ns: u64,
    /// Receive bursts that returned packets.
    pub rx_bursts: u64,
    /// TSC ticks per second (0: unknown).
    pub tsc_hz: u64,
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
