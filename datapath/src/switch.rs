//! The control side of the datapath: bridges, ports and rules, published to PMD threads as
//! immutable snapshots.

use crate::api::*;

/// Start-up settings.
#[derive(Clone, Debug, Default)]
pub struct SwitchConfig {
    /// One PMD thread per entry, pinned to that CPU. Empty: one unpinned PMD.
    pub pmd_cores: Vec<usize>,
    /// Busy-poll without ever sleeping (lowest latency, one core always at 100 %).
    pub no_idle_backoff: bool,
}

pub struct Switch {}

impl Switch {
    pub fn start(cfg: SwitchConfig) -> Result<Switch, DpError> {
        todo!()
    }
    pub fn add_bridge(&self, name: &str) -> Result<(), DpError> {
        todo!()
    }
    pub fn del_bridge(&self, name: &str) -> Result<(), DpError> {
        todo!()
    }
    /// Adds a port; `ofport` requests a number (restore), else the next free one. Returns it.
    pub fn add_port(&self, bridge: &str, name: &str, spec: PortSpec, ofport: Option<u32>) -> Result<u32, DpError> {
        todo!()
    }
    pub fn del_port(&self, bridge: &str, name: &str) -> Result<(), DpError> {
        todo!()
    }
    /// Adds (or replaces, same priority and match) a rule in ovs-ofctl syntax.
    pub fn add_flow(&self, bridge: &str, text: &str) -> Result<(), DpError> {
        todo!()
    }
    /// Deletes rules covered by `match_text` (all when None or empty). Returns how many.
    pub fn del_flows(&self, bridge: &str, match_text: Option<&str>) -> Result<usize, DpError> {
        todo!()
    }
    pub fn dump_flows(&self, bridge: &str) -> Result<Vec<FlowInfo>, DpError> {
        todo!()
    }
    pub fn bridges(&self) -> Vec<BridgeInfo> {
        todo!()
    }
    pub fn bridge(&self, name: &str) -> Result<BridgeInfo, DpError> {
        todo!()
    }
    pub fn fdb(&self, bridge: &str) -> Result<Vec<FdbEntry>, DpError> {
        todo!()
    }
    pub fn pmds(&self) -> Vec<PmdInfo> {
        todo!()
    }
    /// Stops PMD threads and releases every port.
    pub fn shutdown(&self) {
        todo!()
    }
}
