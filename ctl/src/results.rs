//! Results of the daemon's commands, as JSON. The daemon serialises them; `vswitchctl` parses
//! them back to render text (and prints the JSON as is with `--format json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub name: String,
    pub package_version: String,
    pub protocol_version: u32,
}

/// `show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowResult {
    pub bridges: Vec<ShowBridge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowBridge {
    pub name: String,
    pub ports: Vec<ShowPort>,
    pub n_rules: usize,
    /// Why the bridge could not be restored (it is kept in the configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rules of the configuration that could not be restored, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flow_errors: Vec<FlowError>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowError {
    pub flow: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowPort {
    pub name: String,
    pub ofport: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub options: BTreeMap<String, String>,
    pub link_up: bool,
    /// Facts the port reports about itself (e.g. `xdp_mode`).
    pub status: BTreeMap<String, String>,
    /// Why the port is not in the datapath (failed restore); it is kept in the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `add-port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPortResult {
    pub ofport: u32,
}

/// `del-flows`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelFlowsResult {
    pub deleted: usize,
}

/// One line of `dump-flows`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEntry {
    /// Canonical rule text, ports by name.
    pub text: String,
    pub priority: u16,
    pub n_packets: u64,
    pub n_bytes: u64,
}

/// One port of `dump-ports`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsEntry {
    pub name: String,
    pub ofport: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    /// Frames received on this port and dropped by the pipeline, by reason.
    pub drops: BTreeMap<String, u64>,
    /// The device's own counters (DPDK ports: missed, no buffer, errors, extended stats).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub device: BTreeMap<String, u64>,
}

/// One port of `port-latency`: the time its received frames spend in the switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    pub bridge: String,
    pub port: String,
    /// The last finished 5-second window.
    pub window: LatencyWindow,
    /// Since the port was added.
    pub total: LatencyWindow,
    /// Bursts not sampled (a window was being rotated at that instant).
    pub skipped: u64,
    /// For a port with QoS: per class, how long frames sent to it waited in its scheduler.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassLatencyRow>,
}

/// One QoS class of a port in `port-latency`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassLatencyRow {
    pub class: u8,
    pub window: LatencyWindow,
    pub total: LatencyWindow,
}

/// Percentiles in microseconds over `frames` frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyWindow {
    pub frames: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// One route of `tnl-route-show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRow {
    pub prefix: String,
    pub port: String,
    pub gw: Option<String>,
    /// "connected" (from a VTEP address) or "static" (tnl-route-add).
    pub origin: String,
}

/// One entry of `tnl-neigh-show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighRow {
    pub ip: String,
    pub mac: String,
    pub port: String,
    pub age: u64,
}

/// One entry of `fdb-show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbRow {
    pub port: String,
    pub vlan: u16,
    pub mac: String,
    pub age: u64,
}

/// One PMD of `pmd-stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmdRow {
    pub id: usize,
    pub core: Option<usize>,
    /// Receive queues polled.
    pub rxqs: Vec<RxqRow>,
    pub packets: u64,
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub misses: u64,
    /// Cached decisions invalidated by changes, megaflows evicted for room.
    #[serde(default)]
    pub invalidated: u64,
    #[serde(default)]
    pub evicted: u64,
    #[serde(default)]
    pub busy_ns: u64,
    #[serde(default)]
    pub idle_ns: u64,
    /// Receive bursts that returned packets.
    #[serde(default)]
    pub rx_bursts: u64,
    /// TSC ticks per second of the PMD's clock (0: unknown).
    #[serde(default)]
    pub tsc_hz: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RxqRow {
    pub port: String,
    pub queue: usize,
    /// Packets received, and TSC cycles spent on them, since the queue was placed on this PMD.
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub cycles: u64,
}

/// `pmd-rxq-rebalance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceResult {
    pub moved: usize,
}

/// `qos-show PORT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QosShowResult {
    pub port: String,
    pub trust: String,
    /// The scheduler's port settings (`set-qos` keys); empty without one.
    pub qos: BTreeMap<String, String>,
    /// Each queue's settings and counters (empty without a scheduler).
    pub queues: Vec<QueueRow>,
    /// The policer's settings (`set-policer` keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policer: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policer_counts: Option<Vec<ColorRow>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRow {
    pub class: u8,
    pub strict: bool,
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<String>,
    pub limit: usize,
    pub limit_bytes: usize,
    pub enqueued_packets: u64,
    pub enqueued_bytes: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
    /// Queued now.
    pub backlog_packets: usize,
    pub backlog_bytes: usize,
    /// How long frames waited in the queue, nanoseconds (let straight through: 0).
    #[serde(default)]
    pub wait_p50_ns: u64,
    #[serde(default)]
    pub wait_p90_ns: u64,
    #[serde(default)]
    pub wait_p99_ns: u64,
    #[serde(default)]
    pub wait_max_ns: u64,
}

/// Packets and bytes a policer gave one colour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColorRow {
    pub color: String,
    pub packets: u64,
    pub bytes: u64,
}

/// One meter of `dump-meters`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterRow {
    pub id: u32,
    /// The meter in `ovs-ofctl` syntax.
    pub text: String,
    /// Packets and bytes metered.
    pub packets: u64,
    pub bytes: u64,
    pub bands: Vec<MeterBandRow>,
}

/// A band with the packets and bytes its action applied to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterBandRow {
    #[serde(rename = "type")]
    pub kind: String,
    pub rate_kbps: u32,
    pub packets: u64,
    pub bytes: u64,
}

/// `bond-show [BOND]` and `lacp-show [BOND]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondRow {
    pub name: String,
    /// The configured settings (`add-bond` keys, defaults left out).
    pub settings: BTreeMap<String, String>,
    pub bond_mode: String,
    /// What runs now: balance-tcp falls back to active-backup while LACP is not negotiated.
    pub policy: String,
    pub lacp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp_negotiated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_priority: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u16>,
    pub failovers: u64,
    pub learning_packets: u64,
    /// Buckets moved by rebalancing, in total.
    pub buckets_moved: u64,
    /// Frames refused on members that may not deliver them (backup members, floods on a
    /// non-active balance-slb member, members out of the aggregator).
    pub rx_not_admitted: u64,
    pub slow_dropped: u64,
    pub tx_no_member: u64,
    pub members: Vec<BondMemberRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondMemberRow {
    pub name: String,
    pub carrier: bool,
    pub enabled: bool,
    pub active: bool,
    pub buckets: usize,
    pub load_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp: Option<LacpMemberRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LacpMemberRow {
    /// current, expired or defaulted.
    pub status: String,
    pub attached: bool,
    pub actor: LacpInfoRow,
    pub partner: LacpInfoRow,
    pub rx_pdus: u64,
    pub rx_bad: u64,
    pub rx_looped: u64,
    pub rx_markers: u64,
    pub rx_marker_responses: u64,
    pub tx_pdus: u64,
    pub tx_marker_responses: u64,
    pub link_expired: u64,
    pub link_defaulted: u64,
    pub carrier_changes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LacpInfoRow {
    pub system_id: String,
    pub system_priority: u16,
    pub key: u16,
    pub port_id: u16,
    pub port_priority: u16,
    pub state: Vec<String>,
}

/// `trace`: every decision the bridge takes for one frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceResult {
    pub bridge: String,
    pub in_port: String,
    /// The frame's key in flow syntax (None: it could not be parsed).
    pub flow: Option<String>,
    pub frame_hex: String,
    /// What the input port does to arriving frames.
    pub ingress: Vec<String>,
    /// The slow path's decisions, in order.
    pub steps: Vec<String>,
    pub datapath_actions: Vec<String>,
    pub outputs: Vec<TraceOutputRow>,
    /// Why the frame would not be sent anywhere.
    pub drop: Option<String>,
    pub caches: Vec<TraceCacheRow>,
}

/// One port the traced frame would be sent to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutputRow {
    pub port: String,
    pub kind: String,
    /// The frame as handed to the port, in flow syntax.
    pub flow: String,
    /// What the port would do with it (QoS class, tunnel header, bond member).
    pub details: Vec<(String, String)>,
}

/// What one PMD's caches hold for the traced frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceCacheRow {
    pub pmd: usize,
    /// False: the PMD did not answer in time.
    pub answered: bool,
    /// "emc" or "megaflow"; None: not cached (the next such frame takes the slow path).
    pub cache: Option<String>,
    /// The cached decision equals the traced one.
    pub same_decision: bool,
}

/// `capture-read`: frames taken off a port's capture ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureFrames {
    pub frames: Vec<CapturedFrame>,
    /// Frames missed since the capture started (ring full, or busy with another PMD).
    pub missed: u64,
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedFrame {
    /// Wall time, nanoseconds since 1970.
    pub unix_ns: u64,
    /// "rx" (received on the port) or "tx" (sent to it).
    pub direction: String,
    /// Length on the wire (the data may be cut to the snap length).
    pub orig_len: u32,
    pub hex: String,
    /// Frames missed between this one and the one before.
    #[serde(default)]
    pub missed_before: u64,
}

/// `capture-stop`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStopped {
    pub missed: u64,
}
