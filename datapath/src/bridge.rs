//! A bridge as PMD threads see it: an immutable snapshot of its ports and rules, plus the
//! MAC-learning table they share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flowtable::{DropReason, MacTable, PortNo, RuleTable};

use crate::port::Port;
use vlan_vxlan::VlanMode;

/// Frames dropped by the pipeline, by reason, for one ingress port.
pub struct DropCounters {
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
    pub fn add(&self, reason: DropReason, n: u64) {
        self.by_reason[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Non-zero counters, by reason name.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| {
                (
                    r.name().to_string(),
                    self.by_reason[r.index()].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Packet and byte counts of one rule.
#[derive(Default)]
pub struct RuleCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

/// The MAC table of a bridge, shared by the PMDs' slow paths and the control thread.
pub struct MacShared {
    pub table: Mutex<MacTable>,
    /// Copy of the table's generation, readable without the lock.
    pub generation: AtomicU64,
}

impl MacShared {
    pub fn new(table: MacTable) -> Self {
        let generation = AtomicU64::new(table.generation());
        MacShared {
            table: Mutex::new(table),
            generation,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MacTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the table's generation after a change made under the lock.
    pub fn sync_generation(&self, table: &MacTable) {
        self.generation.store(table.generation(), Ordering::Release);
    }
}

pub struct BridgePort {
    pub ofport: PortNo,
    pub vlan: VlanMode,
    /// Set when the port terminates tunnels (owns a VTEP address).
    pub vtep: Option<crate::tunnel::Vtep>,
    pub port: Arc<dyn Port>,
    pub drops: Arc<DropCounters>,
}

pub struct BridgeSnapshot {
    pub name: String,
    pub ports: Vec<BridgePort>,
    /// ofport → index in `ports` (ofports are small, so a dense table).
    index: Vec<Option<u16>>,
    /// Every ofport of the bridge, for flooding.
    pub port_nos: Vec<PortNo>,
    /// VLAN mode of each port, aligned with `ports`.
    pub vlan_modes: Vec<VlanMode>,
    pub rules: RuleTable,
    /// Counters aligned with `rules.rules()`.
    pub rule_counters: Vec<Arc<RuleCounters>>,
    pub macs: Arc<MacShared>,
}

impl BridgeSnapshot {
    pub fn new(
        name: String,
        ports: Vec<BridgePort>,
        rules: RuleTable,
        rule_counters: Vec<Arc<RuleCounters>>,
        macs: Arc<MacShared>,
    ) -> Self {
        let max = ports.iter().map(|p| p.ofport as usize).max().unwrap_or(0);
        let mut index = vec![None; max + 1];
        for (i, p) in ports.iter().enumerate() {
            index[p.ofport as usize] = Some(i as u16);
        }
        let port_nos = ports.iter().map(|p| p.ofport).collect();
        let vlan_modes = ports.iter().map(|p| p.vlan.clone()).collect();
        BridgeSnapshot {
            name,
            ports,
            index,
            port_nos,
            vlan_modes,
            rules,
            rule_counters,
            macs,
        }
    }

    /// Index in `ports` of an ofport.
    #[inline]
    pub fn port_index(&self, ofport: PortNo) -> Option<usize> {
        self.index
            .get(ofport as usize)
            .copied()
            .flatten()
            .map(usize::from)
    }
}
