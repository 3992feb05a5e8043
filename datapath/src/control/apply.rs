//! Applying a list of changes as one transaction: each change is checked against the state and
//! made at once (port objects opened), with a way back; if one fails, everything made so far is
//! taken back and nothing is published. Once all are in, their effects follow: configuration
//! events for the PMDs' caches, MAC table updates, ring links.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use flowtable::{InstalledRule, MacTable, PortLimits, PortNo, RuleId, RuleTable};

use crate::bond_port::{BondPort, ctl::Owner};
use crate::bridge::{BridgeId, BridgeShared, ConfigEvent, PortId};
use crate::info::DpError;
use crate::port_qos::{Meter, QosPort};
use crate::spec::{BondSettings, Change, PortKind, PortSettings, PortSpec, Route};
use crate::tunnel::Tunnels;

use super::backends;
use super::state::{BridgeState, ControlState, PortEntry};

/// MAC table defaults, as Open vSwitch's (`mac-table-size`, `mac-aging-time`).
const MAC_TABLE_SIZE: usize = 8192;
const MAC_AGING_NS: u64 = 300_000_000_000;
/// Highest ofport (OpenFlow reserves 0xff00 and up).
const MAX_OFPORT: u32 = 0xfeff;

/// How to take back one change.
enum Undo {
    AddedBridge(BridgeId),
    RemovedBridge(usize, BridgeState),
    AddedPort {
        bridge: BridgeId,
        port: PortId,
    },
    RemovedPort {
        bridge: BridgeId,
        index: usize,
        entry: Box<PortEntry>,
    },
    Settings {
        bridge: BridgeId,
        port: PortId,
        old: Box<PortSettings>,
    },
    AddedRule {
        bridge: BridgeId,
        id: RuleId,
        replaced: Option<Arc<InstalledRule>>,
    },
    RemovedRule {
        bridge: BridgeId,
        rule: Arc<InstalledRule>,
    },
    Routes(Vec<Route>),
    Bond {
        bridge: BridgeId,
        port: PortId,
        old: BondSettings,
    },
    Meter {
        bridge: BridgeId,
        id: u32,
        old: Option<Arc<Meter>>,
    },
}

/// A change to a bridge's MAC table, made once the transaction is in.
enum MacChange {
    /// The port's VLANs changed: what it learned may be on the wrong VLAN.
    FlushPort(PortNo),
    /// The port is gone.
    ForgetPort(PortNo),
    Limits(PortNo, Option<PortLimits>),
}

/// What the PMDs may still be using after a transaction removed it.
#[derive(Default)]
pub(super) struct Removed {
    pub(super) ports: Vec<PortEntry>,
    pub(super) bridges: Vec<BridgeState>,
    /// Egress schedulers taken off ports that stay.
    pub(super) schedulers: Vec<Arc<QosPort>>,
}

impl Removed {
    pub(super) fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.bridges.is_empty() && self.schedulers.is_empty()
    }
}

pub(super) struct Txn<'a> {
    state: &'a mut ControlState,
    tunnels: &'a Arc<Tunnels>,
    undo: Vec<Undo>,
    events: Vec<(BridgeId, ConfigEvent)>,
    macs: Vec<(BridgeId, MacChange)>,
    /// Ports whose QoS objects follow their settings at commit: new ports (None), and ports
    /// with changed settings (the old ones).
    qos: Vec<(BridgeId, PortId, Option<PortSettings>)>,
    epoch: Instant,
}

impl<'a> Txn<'a> {
    pub(super) fn new(
        state: &'a mut ControlState,
        tunnels: &'a Arc<Tunnels>,
        epoch: Instant,
    ) -> Self {
        Txn {
            state,
            tunnels,
            undo: Vec::new(),
            events: Vec::new(),
            macs: Vec::new(),
            qos: Vec::new(),
            epoch,
        }
    }

    pub(super) fn apply(&mut self, change: Change) -> Result<(), DpError> {
        match change {
            Change::AddBridge { name } => self.add_bridge(name),
            Change::DelBridge { name } => {
                let i = self
                    .state
                    .bridges
                    .iter()
                    .position(|b| b.name == name)
                    .ok_or_else(|| DpError(format!("no bridge named {name}")))?;
                let b = self.state.bridges.remove(i);
                self.undo.push(Undo::RemovedBridge(i, b));
                Ok(())
            }
            Change::AddPort { bridge, port } => self.add_port(&bridge, port),
            Change::DelPort { bridge, name } => {
                let b = self.state.bridge_mut(&bridge)?;
                let index = b
                    .ports
                    .iter()
                    .position(|p| p.name == name)
                    .ok_or_else(|| DpError(format!("bridge {bridge} has no port {name}")))?;
                let entry = b.ports.remove(index);
                b.changed();
                let id = b.id;
                self.events.push((id, ConfigEvent::Port(entry.ofport)));
                self.macs.push((id, MacChange::ForgetPort(entry.ofport)));
                self.undo.push(Undo::RemovedPort {
                    bridge: id,
                    index,
                    entry: Box::new(entry),
                });
                Ok(())
            }
            Change::SetPort { name, settings } => self.set_port(&name, settings),
            Change::SetBond { name, settings } => self.set_bond(&name, settings),
            Change::AddRule { bridge, rule } => {
                let b = self.state.bridge_mut(&bridge)?;
                let was_empty = b.rules.is_empty();
                let (priority, m) = (rule.priority, rule.m.clone());
                let ins = b.rules.insert(rule);
                b.changed();
                let id = b.id;
                if let Some(old) = &ins.replaced {
                    self.events.push((id, ConfigEvent::RuleRemoved(old.id)));
                }
                self.events
                    .push((id, ConfigEvent::RuleAdded { priority, m }));
                if was_empty {
                    // A bridge without rules behaved as NORMAL for everything.
                    self.events.push((id, ConfigEvent::All));
                }
                self.undo.push(Undo::AddedRule {
                    bridge: id,
                    id: ins.rule.id,
                    replaced: ins.replaced,
                });
                Ok(())
            }
            Change::DelRule {
                bridge,
                priority,
                m,
            } => {
                let b = self.state.bridge_mut(&bridge)?;
                let rule = b.rules.remove_exact(priority, &m).ok_or_else(|| {
                    DpError(format!(
                        "bridge {bridge} has no such rule (priority {priority})"
                    ))
                })?;
                b.changed();
                let id = b.id;
                self.events.push((id, ConfigEvent::RuleRemoved(rule.id)));
                if b.rules.is_empty() {
                    self.events.push((id, ConfigEvent::All));
                }
                self.undo.push(Undo::RemovedRule { bridge: id, rule });
                Ok(())
            }
            Change::SetMeter {
                bridge,
                id,
                policer,
            } => {
                let now = self.epoch.elapsed().as_nanos() as u64;
                let b = self.state.bridge_mut(&bridge)?;
                let old = b.meters.insert(id, Arc::new(Meter::new(&policer, now)));
                b.changed();
                self.undo.push(Undo::Meter {
                    bridge: b.id,
                    id,
                    old,
                });
                Ok(())
            }
            Change::DelMeter { bridge, id } => {
                let b = self.state.bridge_mut(&bridge)?;
                let old = b
                    .meters
                    .remove(&id)
                    .ok_or_else(|| DpError(format!("bridge {bridge} has no meter {id}")))?;
                b.changed();
                self.undo.push(Undo::Meter {
                    bridge: b.id,
                    id,
                    old: Some(old),
                });
                Ok(())
            }
            Change::SetRoutes(routes) => {
                for r in &routes {
                    if self.state.routes.contains(r) {
                        continue;
                    }
                    let Some((_, p)) = self.state.find_port(&r.port) else {
                        return Err(DpError(format!("no port named {}", r.port)));
                    };
                    if p.settings.vtep.is_none() {
                        return Err(DpError(format!(
                            "port {} has no vtep_ip: set one with \"set port {} vtep_ip=A.B.C.D/LEN\"",
                            r.port, r.port
                        )));
                    }
                }
                let old = std::mem::replace(&mut self.state.routes, routes);
                self.undo.push(Undo::Routes(old));
                Ok(())
            }
        }
    }

    fn add_bridge(&mut self, name: String) -> Result<(), DpError> {
        if let Some(what) = self.state.name_in_use(&name) {
            return Err(DpError(format!("{name} is already the name of a {what}")));
        }
        let id = self.state.new_id();
        self.state.bridges.push(BridgeState {
            id,
            name,
            ports: Vec::new(),
            rules: RuleTable::new(),
            meters: BTreeMap::new(),
            shared: Arc::new(BridgeShared::new(MacTable::new(
                MAC_TABLE_SIZE,
                MAC_AGING_NS,
            ))),
            snapshot: None,
        });
        self.undo.push(Undo::AddedBridge(id));
        Ok(())
    }

    fn add_port(&mut self, bridge: &str, spec: PortSpec) -> Result<(), DpError> {
        let name = spec.name;
        self.state.bridge(bridge)?;
        if let Some(what) = self.state.name_in_use(&name) {
            return Err(DpError(format!("{name} is already the name of a {what}")));
        }
        let b = self.state.bridge(bridge)?;
        if !(1..=MAX_OFPORT).contains(&spec.ofport) {
            return Err(DpError(format!(
                "ofport must be 1-{MAX_OFPORT}, not {}",
                spec.ofport
            )));
        }
        if b.ports.iter().any(|p| p.ofport == spec.ofport) {
            return Err(DpError(format!(
                "ofport {} is already used on bridge {bridge}",
                spec.ofport
            )));
        }
        let (opened, bond, member_rings) = match &spec.kind {
            PortKind::Bond(b) => {
                let (bp, rings) =
                    backends::open_bond(self.state, &name, spec.ofport, b, self.tunnels)?;
                let opened = backends::Opened {
                    port: bp.clone(),
                    ring: None,
                    vxlan: None,
                };
                (opened, Some(bp), rings)
            }
            kind => (
                backends::open(self.state, &name, kind, self.tunnels)?,
                None,
                Vec::new(),
            ),
        };
        check_vtep(&name, &spec.settings, opened.port.mac())?;
        let id = self.state.new_id();
        let b = self.state.bridge_mut(bridge)?;
        if let Some(bp) = &bond {
            bp.ctl().set_owner(Owner {
                shared: b.shared.clone(),
                ofport: spec.ofport,
                vlan: spec.settings.vlan.clone(),
            });
        }
        let entry = PortEntry {
            kind: Some(spec.kind),
            ring: opened.ring,
            vxlan: opened.vxlan,
            bond,
            member_rings,
            ..PortEntry::new(id, name, spec.ofport, spec.settings, opened.port)
        };
        let (ofport, limits) = (entry.ofport, entry.settings.mac_limits);
        let at = b.ports.partition_point(|p| p.ofport < ofport);
        b.ports.insert(at, entry);
        b.changed();
        let bid = b.id;
        self.events.push((bid, ConfigEvent::Port(ofport)));
        self.macs.push((bid, MacChange::Limits(ofport, limits)));
        self.qos.push((bid, id, None));
        self.undo.push(Undo::AddedPort {
            bridge: bid,
            port: id,
        });
        Ok(())
    }

    /// Adds a port object built by the caller.
    pub(super) fn attach(&mut self, bridge: &str, entry: PortEntry) -> Result<(), DpError> {
        if let Some(what) = self.state.name_in_use(&entry.name) {
            return Err(DpError(format!(
                "{} is already the name of a {what}",
                entry.name
            )));
        }
        check_vtep(&entry.name, &entry.settings, entry.port.mac())?;
        let b = self.state.bridge_mut(bridge)?;
        if let Some(bp) = &entry.bond {
            bp.ctl().set_owner(Owner {
                shared: b.shared.clone(),
                ofport: entry.ofport,
                vlan: entry.settings.vlan.clone(),
            });
        }
        let (ofport, port) = (entry.ofport, entry.id);
        let at = b.ports.partition_point(|p| p.ofport < ofport);
        b.ports.insert(at, entry);
        b.changed();
        self.events.push((b.id, ConfigEvent::Port(ofport)));
        self.qos.push((b.id, port, None));
        self.undo.push(Undo::AddedPort { bridge: b.id, port });
        Ok(())
    }

    fn set_port(&mut self, name: &str, settings: PortSettings) -> Result<(), DpError> {
        let (mut b, bid, p) = port_mut(self.state, name)?;
        check_vtep(name, &settings, p.port.mac())?;
        let old = std::mem::replace(&mut p.settings, settings);
        let new = &p.settings;
        if old.vlan != new.vlan {
            self.events.push((bid, ConfigEvent::Port(p.ofport)));
            self.macs.push((bid, MacChange::FlushPort(p.ofport)));
        }
        if old.mac_limits != new.mac_limits {
            self.macs
                .push((bid, MacChange::Limits(p.ofport, new.mac_limits)));
        }
        let port = p.id;
        b.changed();
        self.qos.push((bid, port, Some(old.clone())));
        self.undo.push(Undo::Settings {
            bridge: bid,
            port,
            old: Box::new(old),
        });
        Ok(())
    }

    fn set_bond(&mut self, name: &str, settings: BondSettings) -> Result<(), DpError> {
        let (_, bid, p) = port_mut(self.state, name)?;
        let old = reconfigure_bond(p, settings)?;
        self.undo.push(Undo::Bond {
            bridge: bid,
            port: p.id,
            old,
        });
        Ok(())
    }

    /// Takes back every change, newest first.
    pub(super) fn rollback(self) {
        let state = self.state;
        for u in self.undo.into_iter().rev() {
            match u {
                Undo::AddedBridge(id) => state.bridges.retain(|b| b.id != id),
                Undo::RemovedBridge(i, b) => state.bridges.insert(i.min(state.bridges.len()), b),
                Undo::AddedPort { bridge, port } => {
                    if let Some(b) = by_id(state, bridge) {
                        b.ports.retain(|p| p.id != port);
                        b.changed();
                    }
                }
                Undo::RemovedPort {
                    bridge,
                    index,
                    entry,
                } => {
                    if let Some(b) = by_id(state, bridge) {
                        b.ports.insert(index.min(b.ports.len()), *entry);
                        b.changed();
                    }
                }
                Undo::Settings { bridge, port, old } => {
                    if let Some(b) = by_id(state, bridge) {
                        if let Some(p) = b.ports.iter_mut().find(|p| p.id == port) {
                            p.settings = *old;
                        }
                        b.changed();
                    }
                }
                Undo::AddedRule {
                    bridge,
                    id,
                    replaced,
                } => {
                    if let Some(b) = by_id(state, bridge) {
                        b.rules.remove_id(id);
                        if let Some(r) = replaced {
                            b.rules.restore(r);
                        }
                        b.changed();
                    }
                }
                Undo::RemovedRule { bridge, rule } => {
                    if let Some(b) = by_id(state, bridge) {
                        b.rules.restore(rule);
                        b.changed();
                    }
                }
                Undo::Routes(old) => state.routes = old,
                Undo::Bond { bridge, port, old } => {
                    let entry = by_id(state, bridge)
                        .and_then(|b| b.ports.iter_mut().find(|p| p.id == port));
                    if let Some(p) = entry
                        && let Err(e) = reconfigure_bond(p, old)
                    {
                        tracing::warn!("bond settings could not be restored: {e}");
                    }
                }
                Undo::Meter { bridge, id, old } => {
                    if let Some(b) = by_id(state, bridge) {
                        match old {
                            Some(m) => b.meters.insert(id, m),
                            None => b.meters.remove(&id),
                        };
                        b.changed();
                    }
                }
            }
        }
    }

    /// Makes the transaction's effects: configuration events into the bridges' logs, MAC
    /// table updates. Returns what it removed (the PMDs may still be using it).
    pub(super) fn commit(self) -> Removed {
        let state = self.state;
        for (id, e) in self.events {
            if let Some(b) = by_id(state, id) {
                b.shared.events.push(e);
                b.changed();
            }
        }
        for (id, m) in self.macs {
            let Some(b) = by_id(state, id) else { continue };
            let mut table = b.shared.macs.lock();
            match m {
                MacChange::FlushPort(p) => {
                    table.flush_port(p);
                }
                MacChange::ForgetPort(p) => table.forget_port(p),
                MacChange::Limits(p, l) => table.set_port_limits(p, l),
            }
        }
        let mut removed = Removed::default();
        for (bid, port, old) in self.qos {
            let Some(b) = by_id(state, bid) else { continue };
            if let Some(p) = b.ports.iter_mut().find(|p| p.id == port) {
                if let Some(bp) = &p.bond {
                    bp.ctl().set_vlan(p.settings.vlan.clone());
                }
                removed
                    .schedulers
                    .extend(p.sync_qos(old.as_ref(), self.epoch));
                b.changed();
            }
        }
        for u in self.undo {
            match u {
                Undo::RemovedPort { entry, .. } => removed.ports.push(*entry),
                Undo::RemovedBridge(_, b) => removed.bridges.push(b),
                _ => {}
            }
        }
        removed
    }
}

/// The port named `name`: its bridge's snapshot flag (for `changed`), id, and the port.
fn port_mut<'s>(
    state: &'s mut ControlState,
    name: &str,
) -> Result<(BridgeChanged<'s>, BridgeId, &'s mut PortEntry), DpError> {
    let no_port = || DpError(format!("no port named {name}"));
    let bi = state
        .find_port(name)
        .map(|(bi, _)| bi)
        .ok_or_else(no_port)?;
    let b = &mut state.bridges[bi];
    let p = b
        .ports
        .iter_mut()
        .find(|p| p.name == name)
        .ok_or_else(no_port)?;
    Ok((BridgeChanged(&mut b.snapshot), b.id, p))
}

/// Marks a bridge's published snapshot out of date (what `BridgeState::changed` does), for a
/// caller that holds one of its ports mutably.
struct BridgeChanged<'s>(&'s mut Option<Arc<crate::bridge::BridgeSnapshot>>);

impl BridgeChanged<'_> {
    fn changed(&mut self) {
        *self.0 = None;
    }
}

/// Gives a bond new settings; returns the old ones.
fn reconfigure_bond(p: &mut PortEntry, settings: BondSettings) -> Result<BondSettings, DpError> {
    let bp: Arc<BondPort> = p
        .bond
        .clone()
        .ok_or_else(|| DpError(format!("port {} is not a bond", p.name)))?;
    let names: Vec<&str> = bp.members().iter().map(|m| m.name()).collect();
    let first_mac = bp.members()[0]
        .mac()
        .unwrap_or_else(|| backends::derived_mac(names[0]));
    let config = settings
        .to_config(&names, first_mac, p.ofport)
        .map_err(|e| DpError(format!("bond {}: {e}", p.name)))?;
    let old = bp.ctl().settings().clone();
    bp.ctl()
        .reconfigure(config, settings.clone())
        .map_err(|e| DpError(format!("bond {}: {e}", p.name)))?;
    if let Some(PortKind::Bond(spec)) = &mut p.kind {
        spec.settings = settings;
    }
    Ok(old)
}

fn by_id(state: &mut ControlState, id: BridgeId) -> Option<&mut BridgeState> {
    state.bridges.iter_mut().find(|b| b.id == id)
}

/// A VTEP needs a MAC: the port's own, or `vtep_mac=`.
fn check_vtep(name: &str, s: &PortSettings, own_mac: Option<[u8; 6]>) -> Result<(), DpError> {
    match s.vtep {
        Some(v) if v.mac.is_none() && own_mac.is_none() => Err(DpError(format!(
            "port {name} has no MAC address of its own: give the VTEP one with vtep_mac="
        ))),
        _ => Ok(()),
    }
}
