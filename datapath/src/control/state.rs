//! What the control side of the datapath holds: bridges with their ports (and the port
//! objects), rules and MAC tables, and the operator's tunnel routes. Only the control thread
//! touches it (under the switch's lock); PMDs see snapshots built from it.

use std::sync::Arc;

use flowtable::{PortNo, RuleTable};

use crate::bridge::{BridgeId, BridgeShared, BridgeSnapshot, DropCounters, PortId};
use crate::info::DpError;
use crate::port::Port;
use crate::ring::RingPort;
use crate::spec::{PortKind, PortSettings, Route};
use crate::tunnel::VxlanPort;

pub(super) struct PortEntry {
    pub(super) id: PortId,
    pub(super) name: String,
    pub(super) ofport: PortNo,
    /// How it was made (None: a port object attached by the caller).
    pub(super) kind: Option<PortKind>,
    pub(super) settings: PortSettings,
    pub(super) port: Arc<dyn Port>,
    /// Set for ring ports (to join them) and VXLAN ports (for decapsulation).
    pub(super) ring: Option<Arc<RingPort>>,
    pub(super) vxlan: Option<Arc<VxlanPort>>,
    pub(super) drops: Arc<DropCounters>,
}

impl PortEntry {
    /// The peer a ring port names.
    pub(super) fn ring_peer(&self) -> Option<&str> {
        match &self.kind {
            Some(PortKind::Ring { peer }) => peer.as_deref(),
            _ => None,
        }
    }
}

pub(super) struct BridgeState {
    pub(super) id: BridgeId,
    pub(super) name: String,
    /// Sorted by ofport.
    pub(super) ports: Vec<PortEntry>,
    pub(super) rules: RuleTable,
    pub(super) shared: Arc<BridgeShared>,
    /// The snapshot last published for this bridge; None when it must be rebuilt.
    pub(super) snapshot: Option<Arc<BridgeSnapshot>>,
}

impl BridgeState {
    pub(super) fn port(&self, name: &str) -> Option<&PortEntry> {
        self.ports.iter().find(|p| p.name == name)
    }

    pub(super) fn port_name(&self, ofport: PortNo) -> Option<&str> {
        self.ports
            .iter()
            .find(|p| p.ofport == ofport)
            .map(|p| p.name.as_str())
    }

    pub(super) fn changed(&mut self) {
        self.snapshot = None;
    }
}

#[derive(Default)]
pub(super) struct ControlState {
    pub(super) bridges: Vec<BridgeState>,
    pub(super) routes: Vec<Route>,
    next_id: u64,
}

impl ControlState {
    /// A fresh bridge or port identity.
    pub(super) fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn bridge(&self, name: &str) -> Result<&BridgeState, DpError> {
        self.bridges
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| DpError(format!("no bridge named {name}")))
    }

    pub(super) fn bridge_mut(&mut self, name: &str) -> Result<&mut BridgeState, DpError> {
        self.bridges
            .iter_mut()
            .find(|b| b.name == name)
            .ok_or_else(|| DpError(format!("no bridge named {name}")))
    }

    /// The port named `name` anywhere, with its bridge's index.
    pub(super) fn find_port(&self, name: &str) -> Option<(usize, &PortEntry)> {
        self.bridges
            .iter()
            .enumerate()
            .find_map(|(bi, b)| b.port(name).map(|p| (bi, p)))
    }

    /// Whether `name` is taken by a bridge or a port.
    pub(super) fn name_in_use(&self, name: &str) -> Option<&'static str> {
        if self.bridges.iter().any(|b| b.name == name) {
            Some("bridge")
        } else if self.find_port(name).is_some() {
            Some("port")
        } else {
            None
        }
    }
}
