//! What the switch reports: bridges and ports with their live status and counters, rules with
//! their counters, learned addresses, PMDs with their receive queues, tunnel routes and
//! neighbours.

use std::sync::atomic::Ordering;

use crate::info::{
    BridgeInfo, DpError, FdbEntry, FlowInfo, MeterInfo, NeighInfo, PmdInfo, PortInfo, PortLatency,
    QosInfo, RouteInfo, RxqInfo,
};
use crate::pmd::{Percentiles, empty_latency};

use super::Switch;
use super::state::BridgeState;
use crate::port::Port;

fn bridge_info(b: &BridgeState) -> BridgeInfo {
    BridgeInfo {
        name: b.name.clone(),
        n_rules: b.rules.len(),
        ports: b
            .ports
            .iter()
            .map(|p| PortInfo {
                name: p.name.clone(),
                ofport: p.ofport,
                kind: p.port.kind(),
                link_up: p.port.link_up(),
                status: p.port.status(),
                stats: p.tx_port().stats(),
                device: p.port.device_counters(),
                drops: p.drops.snapshot(),
            })
            .collect(),
    }
}

impl Switch {
    pub fn bridges(&self) -> Vec<BridgeInfo> {
        self.lock().state.bridges.iter().map(bridge_info).collect()
    }

    pub fn bridge(&self, name: &str) -> Result<BridgeInfo, DpError> {
        Ok(bridge_info(self.lock().state.bridge(name)?))
    }

    /// The bridge's rules in table order, with their counters.
    pub fn dump_flows(&self, bridge: &str) -> Result<Vec<FlowInfo>, DpError> {
        let ctl = self.lock();
        let b = ctl.state.bridge(bridge)?;
        Ok(b.rules
            .rules()
            .iter()
            .map(|r| {
                let (n_packets, n_bytes) = r.stats.get();
                FlowInfo {
                    rule: r.rule.clone(),
                    n_packets,
                    n_bytes,
                }
            })
            .collect())
    }

    pub fn fdb(&self, bridge: &str) -> Result<Vec<FdbEntry>, DpError> {
        let ctl = self.lock();
        let b = ctl.state.bridge(bridge)?;
        let entries = b.shared.macs.lock().entries(self.rt.now_ns());
        Ok(entries
            .into_iter()
            .map(|e| FdbEntry {
                port: b
                    .port_name(e.port)
                    .map_or_else(|| e.port.to_string(), str::to_string),
                vlan: e.vlan,
                mac: e.mac,
                age_secs: e.age_ns / 1_000_000_000,
            })
            .collect())
    }

    /// Addresses learned on a port, and its learning limits.
    pub fn port_learning(&self, port: &str) -> Option<(usize, flowtable::PortLimits)> {
        let ctl = self.lock();
        let (bi, p) = ctl.state.find_port(port)?;
        let table = ctl.state.bridges[bi].shared.macs.lock();
        Some((table.port_entries(p.ofport), table.port_limits(p.ofport)))
    }

    /// The bridge's meters with their counts, by id.
    pub fn meters(&self, bridge: &str) -> Result<Vec<MeterInfo>, DpError> {
        let ctl = self.lock();
        let b = ctl.state.bridge(bridge)?;
        Ok(b.meters
            .iter()
            .map(|(id, m)| MeterInfo {
                id: *id,
                policer: m.config(),
                counts: m.counts(),
            })
            .collect())
    }

    /// A port's QoS settings and counters.
    pub fn port_qos(&self, port: &str) -> Result<QosInfo, DpError> {
        let ctl = self.lock();
        let (_, p) = ctl
            .state
            .find_port(port)
            .ok_or_else(|| DpError(format!("no port named {port}")))?;
        Ok(QosInfo {
            port: p.name.clone(),
            trust: p.settings.trust,
            qos: p.egress.as_ref().map(|q| q.config()),
            queues: p.egress.as_ref().map(|q| q.report()).unwrap_or_default(),
            policer: p.settings.policer,
            policer_counts: p.ingress.as_ref().and_then(|i| i.policer_counts()),
        })
    }

    pub fn pmds(&self) -> Vec<PmdInfo> {
        let ctl = self.lock();
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        self.rt
            .pmds
            .iter()
            .enumerate()
            .map(|(id, (s, _))| {
                let mut rxqs = Vec::new();
                for b in &ctl.state.bridges {
                    for p in &b.ports {
                        for q in 0..p.port.n_rxq() {
                            let Some(placed) = ctl.placement.get(&(p.id, q)) else {
                                continue;
                            };
                            if placed.pmd == Some(id) {
                                rxqs.push(RxqInfo {
                                    port: p.name.clone(),
                                    queue: q,
                                    packets: placed.stats.packets.get(),
                                    cycles: placed.stats.cycles.get(),
                                });
                            }
                        }
                    }
                }
                let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                PmdInfo {
                    id,
                    core: threads.iter().find(|t| t.id == id).and_then(|t| t.core),
                    rxqs,
                    packets: load(&s.packets),
                    emc_hits: load(&s.emc_hits),
                    megaflow_hits: load(&s.megaflow_hits),
                    misses: load(&s.misses),
                    invalidated: load(&s.invalidated),
                    evicted: load(&s.evicted),
                    busy_ns: load(&s.busy_ns),
                    idle_ns: load(&s.idle_ns),
                    rx_bursts: load(&s.rx_bursts),
                    tsc_hz: load(&s.tsc_hz),
                }
            })
            .collect()
    }

    /// Each port's latency (receive burst to hand-over to the output ports) over the last
    /// finished 5-second window and since the port was added, merged over its receive queues.
    pub fn port_latency(&self) -> Vec<PortLatency> {
        let ctl = self.lock();
        let tsc_hz = self
            .rt
            .pmds
            .iter()
            .map(|(s, _)| s.tsc_hz.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let mut out = Vec::new();
        for b in &ctl.state.bridges {
            for p in &b.ports {
                let (mut last, mut total) = (empty_latency(), empty_latency());
                let mut skipped = 0;
                for q in 0..p.port.n_rxq() {
                    if let Some(placed) = ctl.placement.get(&(p.id, q)) {
                        placed.stats.latency.merge_into(&mut last, &mut total);
                        skipped += placed.stats.latency.skipped.get();
                    }
                }
                out.push(PortLatency {
                    bridge: b.name.clone(),
                    port: p.name.clone(),
                    window: Percentiles::of(&last, tsc_hz),
                    total: Percentiles::of(&total, tsc_hz),
                    skipped,
                    classes: p
                        .egress
                        .as_ref()
                        .map(|q| q.class_latency())
                        .unwrap_or_default(),
                });
            }
        }
        out
    }

    /// Every tunnel route in use: the VTEPs' connected networks, then the operator's routes.
    pub fn tnl_routes(&self) -> Vec<RouteInfo> {
        self.rt
            .tunnels
            .routes
            .load()
            .routes
            .iter()
            .map(|r| RouteInfo {
                net: r.net,
                port: r.port.clone(),
                gw: r.gw,
                connected: r.connected,
            })
            .collect()
    }

    pub fn tnl_neigh(&self) -> Vec<NeighInfo> {
        self.rt
            .tunnels
            .neigh()
            .entries()
            .into_iter()
            .map(|n| NeighInfo {
                ip: n.ip,
                mac: n.mac,
                port: n.port,
                age_secs: n.age_secs,
            })
            .collect()
    }

    pub fn tnl_neigh_flush(&self) {
        self.rt.tunnels.neigh().flush();
    }

    /// Every bond, or the one named, as `bond-show` and `lacp-show` report them.
    pub fn bonds(&self, name: Option<&str>) -> Result<Vec<crate::BondReport>, DpError> {
        let out: Vec<_> = self
            .bond_ports()
            .iter()
            .filter(|b| name.is_none_or(|n| b.name() == n))
            .map(|b| b.ctl().report(b))
            .collect();
        match name {
            Some(n) if out.is_empty() => Err(DpError(format!("no bond named {n}"))),
            _ => Ok(out),
        }
    }

    /// Makes `member` the active member of `bond` (`bond-set-active-member`); it must be
    /// enabled. Not part of the configuration: the bond may move again on a failure.
    pub fn bond_set_active_member(&self, bond: &str, member: &str) -> Result<(), DpError> {
        let bonds = self.bond_ports();
        let b = bonds
            .iter()
            .find(|b| b.name() == bond)
            .ok_or_else(|| DpError(format!("no bond named {bond}")))?;
        let idx = b
            .members()
            .iter()
            .position(|m| m.name() == member)
            .ok_or_else(|| DpError(format!("bond {bond} has no member {member}")))?;
        let now = self.rt.epoch.elapsed();
        b.ctl()
            .set_active(b, idx, now)
            .map_err(|e| DpError(format!("cannot make {member} active: {e}")))
    }

    /// The bonds as the bonds thread sees them (a copy of the list).
    fn bond_ports(&self) -> Vec<std::sync::Arc<crate::bond_port::BondPort>> {
        self.rt
            .bonds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
