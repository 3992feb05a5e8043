//! A bridge as PMD threads see it: an immutable snapshot of its ports and rules, plus what
//! outlives snapshots (the MAC table and the log of configuration changes).

mod events;
mod macs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flowtable::{DropReason, PortNo, RuleTable};
use vlan_vxlan::VlanMode;

use crate::port::Port;
use crate::port_qos::{Ingress, MeterTable};
pub(crate) use events::{ConfigEvent, ConfigLog};
pub(crate) use macs::{LazyMacs, MacShared};

/// A bridge's identity for as long as it exists (names can be reused after a delete).
pub(crate) type BridgeId = u64;
/// A port's identity for as long as it exists.
pub(crate) type PortId = u64;

/// Frames dropped by the pipeline, by reason, for one ingress port. Any PMD polling one of the
/// port's queues adds to them, so each add is atomic.
pub(crate) struct DropCounters {
    by_reason: [AtomicU64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            by_reason: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl DropCounters {
    pub(crate) fn add(&self, reason: DropReason, n: u64) {
        self.by_reason[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Non-zero counters.
    pub(crate) fn snapshot(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.by_reason[r.index()].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// What a bridge keeps across snapshots: its MAC table and its configuration change log.
pub(crate) struct BridgeShared {
    pub(crate) macs: MacShared,
    pub(crate) events: ConfigLog,
}

impl BridgeShared {
    pub(crate) fn new(macs: flowtable::MacTable) -> Self {
        BridgeShared {
            macs: MacShared::new(macs),
            events: ConfigLog::default(),
        }
    }
}

pub(crate) struct BridgePort {
    pub(crate) ofport: PortNo,
    pub(crate) vlan: VlanMode,
    /// Set when the port terminates tunnels (owns a VTEP address).
    pub(crate) vtep: Option<crate::tunnel::Vtep>,
    /// Where frames to the port go: the port, or its egress scheduler.
    pub(crate) port: Arc<dyn Port>,
    pub(crate) drops: Arc<DropCounters>,
    /// Trust and policing of arriving frames (None: nothing to do).
    pub(crate) ingress: Option<Arc<Ingress>>,
    /// Where `vswitchctl capture` takes the port's frames.
    pub(crate) tap: Arc<crate::capture::Tap>,
    /// The port takes frames whose checksum is left to compute ([`Port::takes_partial_csum`]);
    /// otherwise the pipeline completes them before handing them over.
    pub(crate) takes_partial_csum: bool,
}

pub(crate) struct BridgeSnapshot {
    pub(crate) id: BridgeId,
    pub(crate) ports: Vec<BridgePort>,
    /// ofport → index in `ports` (ofports are small, so a dense table).
    index: Vec<Option<u16>>,
    /// Every ofport of the bridge, for flooding.
    pub(crate) port_nos: Vec<PortNo>,
    /// VLAN mode of each port, aligned with `ports`.
    pub(crate) vlan_modes: Vec<VlanMode>,
    pub(crate) rules: RuleTable,
    pub(crate) meters: MeterTable,
    pub(crate) shared: Arc<BridgeShared>,
    /// The configuration events this snapshot includes: up to and including this number.
    pub(crate) config_seq: u64,
}

impl BridgeSnapshot {
    pub(crate) fn new(
        id: BridgeId,
        ports: Vec<BridgePort>,
        rules: RuleTable,
        meters: MeterTable,
        shared: Arc<BridgeShared>,
        config_seq: u64,
    ) -> Self {
        let max = ports.iter().map(|p| p.ofport as usize).max().unwrap_or(0);
        let mut index = vec![None; max + 1];
        for (i, p) in ports.iter().enumerate() {
            index[p.ofport as usize] = Some(i as u16);
        }
        let port_nos = ports.iter().map(|p| p.ofport).collect();
        let vlan_modes = ports.iter().map(|p| p.vlan.clone()).collect();
        BridgeSnapshot {
            id,
            ports,
            index,
            port_nos,
            vlan_modes,
            rules,
            meters,
            shared,
            config_seq,
        }
    }

    /// Index in `ports` of an ofport.
    #[inline]
    pub(crate) fn port_index(&self, ofport: PortNo) -> Option<usize> {
        self.index
            .get(ofport as usize)
            .copied()
            .flatten()
            .map(usize::from)
    }
}
