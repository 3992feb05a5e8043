//! What the control side of the datapath holds: bridges with their ports (and the port
//! objects), rules and MAC tables, and the operator's tunnel routes. Only the control thread
//! touches it (under the switch's lock); PMDs see snapshots built from it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use flowtable::{PortNo, RuleTable};

use crate::bond_port::BondPort;
use crate::bridge::{BridgeId, BridgeShared, BridgeSnapshot, DropCounters, PortId};
use crate::capture::Tap;
use crate::info::DpError;
use crate::port::Port;
use crate::port_qos::{Ingress, Meter, QosPort};
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
    /// The egress scheduler wrapped around `port`, when `settings.qos` asks for one.
    pub(super) egress: Option<Arc<QosPort>>,
    /// What the port does to arriving frames, when its trust or policer settings ask.
    pub(super) ingress: Option<Arc<Ingress>>,
    /// Set for bonds, with the ring ports among their members (to join them).
    pub(super) bond: Option<Arc<BondPort>>,
    pub(super) member_rings: Vec<MemberRing>,
    /// Where `vswitchctl capture` takes the port's frames.
    pub(super) tap: Arc<Tap>,
}

/// A ring port that is a bond member, and the peer it names.
pub(super) struct MemberRing {
    pub(super) name: String,
    pub(super) ring: Arc<RingPort>,
    pub(super) peer: Option<String>,
}

impl PortEntry {
    pub(super) fn new(
        id: PortId,
        name: String,
        ofport: PortNo,
        settings: PortSettings,
        port: Arc<dyn Port>,
    ) -> PortEntry {
        PortEntry {
            id,
            name,
            ofport,
            kind: None,
            settings,
            port,
            ring: None,
            vxlan: None,
            drops: Arc::default(),
            egress: None,
            ingress: None,
            bond: None,
            member_rings: Vec::new(),
            tap: Arc::default(),
        }
    }

    /// What frames to the port are sent to: its scheduler, if it has one.
    pub(super) fn tx_port(&self) -> Arc<dyn Port> {
        match &self.egress {
            Some(q) => q.clone(),
            None => self.port.clone(),
        }
    }

    /// Builds, changes or removes the port's scheduler and ingress processing after its
    /// settings changed from `old`; returns a scheduler taken off the port (its queued frames
    /// are sent once the PMDs no longer use it).
    pub(super) fn sync_qos(
        &mut self,
        old: Option<&PortSettings>,
        epoch: Instant,
    ) -> Option<Arc<QosPort>> {
        let now = epoch.elapsed().as_nanos() as u64;
        let s = &self.settings;
        let ingress_changed = old.is_none_or(|o| o.trust != s.trust || o.policer != s.policer);
        if ingress_changed {
            self.ingress = Ingress::new(s.trust, s.policer.as_ref(), now).map(Arc::new);
        }
        match (&self.egress, &s.qos) {
            (None, Some(cfg)) => {
                self.egress = Some(Arc::new(QosPort::new(self.port.clone(), cfg, epoch)));
                None
            }
            (Some(q), Some(cfg)) => {
                if old.and_then(|o| o.qos.as_ref()) != Some(cfg) {
                    q.reconfigure(cfg);
                }
                None
            }
            (Some(_), None) => self.egress.take(),
            (None, None) => None,
        }
    }
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
    pub(super) meters: BTreeMap<u32, Arc<Meter>>,
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
    /// PMD threads (bonds keep a load counter row per PMD).
    pub(super) n_pmds: usize,
    /// EAL arguments for the first DPDK port.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(super) dpdk_eal: Vec<String>,
    next_id: u64,
}

impl ControlState {
    pub(super) fn new(n_pmds: usize, dpdk_eal: Vec<String>) -> ControlState {
        ControlState {
            n_pmds,
            dpdk_eal,
            ..ControlState::default()
        }
    }

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

    /// Every bond, with its name.
    pub(super) fn bonds(&self) -> impl Iterator<Item = (&str, &Arc<BondPort>)> {
        self.bridges
            .iter()
            .flat_map(|b| &b.ports)
            .filter_map(|p| p.bond.as_ref().map(|b| (p.name.as_str(), b)))
    }

    /// Whether `name` is taken by a bridge, a port or a bond member.
    pub(super) fn name_in_use(&self, name: &str) -> Option<&'static str> {
        if self.bridges.iter().any(|b| b.name == name) {
            Some("bridge")
        } else if self.find_port(name).is_some() {
            Some("port")
        } else if self
            .bonds()
            .any(|(_, b)| b.members().iter().any(|m| m.name() == name))
        {
            Some("bond member")
        } else {
            None
        }
    }
}
