//! Building the PMDs' snapshot from the control state and publishing it. Only bridges that
//! changed are rebuilt; receive queues keep their PMDs ([`super::placement`]); per-bridge PMD
//! state for a new bridge is allocated here and handed over before the snapshot that needs it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::bridge::{BridgeId, BridgePort, BridgeSnapshot};
use crate::pipeline::BridgeLocal;
use crate::pmd::{RxqRef, Snapshot};
use crate::port_qos::MeterTable;
use crate::tunnel::{RouteTable, TunnelRef, TunnelRoute, Vtep};

use super::placement::{Placement, RxqKey};
use super::runtime::Runtime;
use super::state::{BridgeState, ControlState, PortEntry};

pub(super) struct Control {
    pub(super) state: ControlState,
    pub(super) placement: Placement,
    pub(super) generation: u64,
    /// Bridges whose per-PMD state the PMDs have been given.
    announced: HashSet<BridgeId>,
}

impl Control {
    pub(super) fn new(n_pmds: usize, dpdk_eal: Vec<String>) -> Self {
        Control {
            state: ControlState::new(n_pmds, dpdk_eal),
            placement: Placement::new(n_pmds),
            generation: 0,
            announced: HashSet::new(),
        }
    }

    /// Builds and publishes a snapshot of the current state; returns its generation. Does not
    /// wait for the PMDs: the previous snapshot is retired until they have all moved on.
    pub(super) fn publish(&mut self, rt: &Runtime) -> u64 {
        self.generation += 1;
        let generation = self.generation;
        let mut bridges = Vec::with_capacity(self.state.bridges.len());
        for b in &mut self.state.bridges {
            let snap = match &b.snapshot {
                Some(s) => s.clone(),
                None => build_bridge(b),
            };
            b.snapshot = Some(snap.clone());
            bridges.push(snap);
        }
        self.announce(rt, &bridges);

        let mut present: Vec<RxqKey> = Vec::new();
        for b in &self.state.bridges {
            for p in &b.ports {
                present.extend((0..p.port.n_rxq()).map(|q| (p.id, q)));
            }
        }
        present.sort_unstable();
        self.placement.update(&present);

        let mut rxqs = vec![Vec::new(); rt.pmds.len()];
        // Schedulers holding frames back are served by one PMD each, in turn.
        let mut schedulers = vec![Vec::new(); rt.pmds.len()];
        for (i, q) in self
            .state
            .bridges
            .iter()
            .flat_map(|b| &b.ports)
            .filter_map(|p| p.egress.clone())
            .enumerate()
        {
            if let Some(list) = schedulers.get_mut(i % rt.pmds.len().max(1)) {
                list.push(q);
            }
        }
        let mut tunnel_ports = Vec::new();
        for (bi, b) in self.state.bridges.iter().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                for qid in 0..p.port.n_rxq() {
                    let Some(placed) = self.placement.get(&(p.id, qid)) else {
                        continue;
                    };
                    if let Some(list) = placed.pmd.and_then(|pmd| rxqs.get_mut(pmd)) {
                        list.push(RxqRef {
                            bridge: bi,
                            port: pi,
                            qid,
                            stats: placed.stats.clone(),
                        });
                    }
                }
                if let Some(vx) = &p.vxlan {
                    tunnel_ports.push(TunnelRef {
                        bridge: bi,
                        port: pi,
                        cfg: vx.cfg.clone(),
                        vxlan: vx.clone(),
                    });
                }
            }
        }
        rt.tunnels.routes.store(Arc::new(route_table(&self.state)));
        let old = rt.config.swap(Arc::new(Snapshot {
            generation,
            bridges,
            rxqs,
            schedulers,
            tunnel_ports,
            tunnels: rt.tunnels.clone(),
        }));
        rt.retire(generation, Box::new(old));
        generation
    }

    /// Gives every PMD its state for bridges it has not seen (the EMC alone is most of a
    /// megabyte: allocated here, not on the PMD).
    fn announce(&mut self, rt: &Runtime, bridges: &[Arc<BridgeSnapshot>]) {
        let ids: HashSet<BridgeId> = bridges.iter().map(|b| b.id).collect();
        self.announced.retain(|id| ids.contains(id));
        // State for a bridge deleted before a PMD picked it up is freed here.
        for (pmd, _) in &rt.pmds {
            let stale: Vec<BridgeLocal> = {
                let mut inbox = pmd.inbox.lock().unwrap_or_else(|e| e.into_inner());
                let (keep, stale) = inbox.drain(..).partition(|l| ids.contains(&l.id));
                *inbox = keep;
                stale
            };
            drop(stale);
        }
        for b in bridges {
            if self.announced.insert(b.id) {
                for (pmd, _) in &rt.pmds {
                    let local = BridgeLocal::new(b);
                    pmd.inbox
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(local);
                }
            }
        }
    }
}

fn build_bridge(b: &BridgeState) -> Arc<BridgeSnapshot> {
    let ports = b
        .ports
        .iter()
        .map(|p| BridgePort {
            ofport: p.ofport,
            vlan: p.settings.vlan.clone(),
            vtep: vtep_of(p),
            port: p.tx_port(),
            drops: p.drops.clone(),
            ingress: p.ingress.clone(),
            tap: p.tap.clone(),
            takes_partial_csum: p.tx_port().takes_partial_csum(),
        })
        .collect();
    Arc::new(BridgeSnapshot::new(
        b.id,
        ports,
        b.rules.clone(),
        MeterTable::new(b.meters.iter().map(|(id, m)| (*id, m.clone()))),
        b.shared.clone(),
        b.shared.events.seq(),
    ))
}

/// The VTEP a port is, if it has a `vtep_ip` and a MAC (its own or `vtep_mac`).
pub(super) fn vtep_of(p: &PortEntry) -> Option<Vtep> {
    let v = p.settings.vtep?;
    let mac = v.mac.or_else(|| p.port.mac())?;
    Some(Vtep {
        port_name: p.name.clone(),
        port: p.tx_port(),
        ip: v.ip,
        prefix_len: v.prefix_len,
        mac,
        mtu: p.port.mtu().unwrap_or(1500),
    })
}

/// VTEPs with their connected routes, then the operator's routes.
fn route_table(state: &ControlState) -> RouteTable {
    let mut table = RouteTable::default();
    for p in state.bridges.iter().flat_map(|b| &b.ports) {
        if let Some(v) = vtep_of(p) {
            if let Some(net) = crate::spec::Ipv4Net::new(v.ip, v.prefix_len) {
                table.routes.push(TunnelRoute {
                    net,
                    port: v.port_name.clone(),
                    gw: None,
                    connected: true,
                });
            }
            table.vteps.push(v);
        }
    }
    table
        .routes
        .extend(state.routes.iter().map(|r| TunnelRoute {
            net: r.net,
            port: r.port.clone(),
            gw: r.gw,
            connected: false,
        }));
    table
}
