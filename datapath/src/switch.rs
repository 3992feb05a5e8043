//! The control side of the datapath: bridges, ports and rules, published to PMD threads as
//! immutable snapshots (an update never stops forwarding).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use flowtable::{FlowKey, MacTable, PortNo, RuleTable, format_rule, parse_match, parse_rule};

use crate::api::*;
use crate::bridge::{BridgePort, BridgeSnapshot, DropCounters, MacShared, RuleCounters};
use crate::pmd::{self, PmdHandle, RxqRef, Snapshot};
use crate::port::Port;
use crate::ports;
use crate::ring::RingPort;
use crate::tunnel::{NeighEntry, Route, RouteTable, TunnelRef, Tunnels, Vtep, VxlanPort};
use std::net::Ipv4Addr;
use vlan_vxlan::{VlanMode, VlanSet};

/// Start-up settings.
#[derive(Clone, Debug, Default)]
pub struct SwitchConfig {
    /// One PMD thread per entry, pinned to that CPU. Empty: one unpinned PMD.
    pub pmd_cores: Vec<usize>,
    /// Busy-poll without ever sleeping (lowest latency, one core always at 100 %).
    pub no_idle_backoff: bool,
}

/// MAC table defaults, as Open vSwitch's (`mac-table-size`, `mac-aging-time`).
const MAC_TABLE_SIZE: usize = 8192;
const MAC_AGING: Duration = Duration::from_secs(300);
/// How long a change waits for every PMD to switch to the new snapshot.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(2);

struct PortEntry {
    name: String,
    ofport: PortNo,
    vlan: VlanMode,
    spec: PortSpec,
    port: Arc<dyn Port>,
    ring: Option<Arc<RingPort>>,
    /// Set for `type=vxlan` ports.
    vxlan: Option<Arc<VxlanPort>>,
    drops: Arc<DropCounters>,
}

type RuleId = (u16, FlowKey, FlowKey);
/// A created port, with its ring or vxlan handle when it is one of those.
struct NewPort {
    port: Arc<dyn Port>,
    ring: Option<Arc<RingPort>>,
    vxlan: Option<Arc<VxlanPort>>,
}

impl NewPort {
    fn plain(port: Arc<dyn Port>) -> Self {
        NewPort {
            port,
            ring: None,
            vxlan: None,
        }
    }
}

struct BridgeCtl {
    name: String,
    ports: Vec<PortEntry>,
    rules: RuleTable,
    rule_counters: HashMap<RuleId, Arc<RuleCounters>>,
    macs: Arc<MacShared>,
}

impl BridgeCtl {
    fn port_by_name(&self, name: &str) -> Option<PortNo> {
        self.ports.iter().find(|p| p.name == name).map(|p| p.ofport)
    }

    fn port_name(&self, ofport: PortNo) -> Option<String> {
        self.ports
            .iter()
            .find(|p| p.ofport == ofport)
            .map(|p| p.name.clone())
    }

    fn counters_for(&self, r: &flowtable::Rule) -> Arc<RuleCounters> {
        self.rule_counters
            .get(&(r.priority, r.m.key, r.m.mask))
            .cloned()
            .unwrap_or_default()
    }
}

struct Control {
    bridges: Vec<BridgeCtl>,
    generation: u64,
    /// Operator tunnel routes (`tnl-route-add`).
    routes: Vec<Route>,
}

impl Control {
    fn bridge(&self, name: &str) -> Result<&BridgeCtl, DpError> {
        self.bridges
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| DpError(format!("no bridge named {name}")))
    }

    fn bridge_mut(&mut self, name: &str) -> Result<&mut BridgeCtl, DpError> {
        self.bridges
            .iter_mut()
            .find(|b| b.name == name)
            .ok_or_else(|| DpError(format!("no bridge named {name}")))
    }

    fn find_port(&self, name: &str) -> Option<(&BridgeCtl, &PortEntry)> {
        self.bridges
            .iter()
            .find_map(|b| b.ports.iter().find(|p| p.name == name).map(|p| (b, p)))
    }
}

pub struct Switch {
    ctl: Mutex<Control>,
    tunnels: Arc<Tunnels>,
    config: Arc<ArcSwap<Snapshot>>,
    pmds: Mutex<Vec<PmdHandle>>,
    n_pmds: usize,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    housekeeping: Mutex<Option<JoinHandle<()>>>,
}

impl Switch {
    pub fn start(cfg: SwitchConfig) -> Result<Switch, DpError> {
        let cores: Vec<Option<usize>> = if cfg.pmd_cores.is_empty() {
            vec![None]
        } else {
            cfg.pmd_cores.iter().map(|c| Some(*c)).collect()
        };
        let n_cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if let Some(bad) = cfg.pmd_cores.iter().find(|c| **c >= n_cpus) {
            return Err(DpError(format!(
                "PMD core {bad} does not exist (this machine has {n_cpus} CPUs)"
            )));
        }
        let epoch = Instant::now();
        let config = Arc::new(ArcSwap::from_pointee(Snapshot::empty(cores.len())));
        let mut pmds = Vec::new();
        for (id, core) in cores.iter().enumerate() {
            let h = pmd::spawn(id, *core, config.clone(), !cfg.no_idle_backoff, epoch)
                .map_err(|e| DpError(format!("cannot start PMD thread: {e}")))?;
            pmds.push(h);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let hk = spawn_housekeeping(config.clone(), stop.clone(), epoch)
            .map_err(|e| DpError(format!("cannot start housekeeping thread: {e}")))?;
        Ok(Switch {
            ctl: Mutex::new(Control {
                bridges: Vec::new(),
                generation: 0,
                routes: Vec::new(),
            }),
            tunnels: Arc::default(),
            config,
            n_pmds: pmds.len(),
            pmds: Mutex::new(pmds),
            epoch,
            stop,
            housekeeping: Mutex::new(Some(hk)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn add_bridge(&self, name: &str) -> Result<(), DpError> {
        check_name("bridge", name)?;
        let mut ctl = self.lock();
        if ctl.bridges.iter().any(|b| b.name == name) {
            return Err(DpError(format!("bridge {name} already exists")));
        }
        if ctl.find_port(name).is_some() {
            return Err(DpError(format!("{name} is already the name of a port")));
        }
        ctl.bridges.push(BridgeCtl {
            name: name.to_string(),
            ports: Vec::new(),
            rules: RuleTable::new(),
            rule_counters: HashMap::new(),
            macs: Arc::new(MacShared::new(MacTable::new(
                MAC_TABLE_SIZE,
                MAC_AGING.as_nanos() as u64,
            ))),
        });
        self.publish(&mut ctl);
        Ok(())
    }

    pub fn del_bridge(&self, name: &str) -> Result<(), DpError> {
        let mut ctl = self.lock();
        let i = ctl
            .bridges
            .iter()
            .position(|b| b.name == name)
            .ok_or_else(|| DpError(format!("no bridge named {name}")))?;
        let removed = ctl.bridges.remove(i);
        unjoin_rings(&ctl, &removed.ports);
        self.publish(&mut ctl);
        drop(ctl);
        drop(removed);
        Ok(())
    }

    /// Adds a port; `ofport` requests a number (restore), else the next free one. Returns it.
    pub fn add_port(
        &self,
        bridge: &str,
        name: &str,
        spec: PortSpec,
        ofport: Option<u32>,
    ) -> Result<u32, DpError> {
        check_name("port", name)?;
        let mut ctl = self.lock();
        ctl.bridge(bridge)?;
        if ctl.find_port(name).is_some() {
            return Err(DpError(format!("port {name} already exists")));
        }
        if ctl.bridges.iter().any(|b| b.name == name) {
            return Err(DpError(format!("{name} is already the name of a bridge")));
        }
        let br = ctl.bridge(bridge)?;
        let ofport = match ofport {
            Some(0) | Some(0xff00..) => {
                return Err(DpError(format!(
                    "ofport must be 1-65279, not {}",
                    ofport.unwrap_or(0)
                )));
            }
            Some(n) if br.ports.iter().any(|p| p.ofport == n) => {
                return Err(DpError(format!(
                    "ofport {n} is already used on bridge {bridge}"
                )));
            }
            Some(n) => n,
            None => (1..)
                .find(|n| !br.ports.iter().any(|p| p.ofport == *n))
                .unwrap_or(1),
        };
        let vlan = vlan_mode(&spec.options)?;
        vtep_setting(&spec.options)?;
        let backend = PortSpec {
            kind: spec.kind.clone(),
            options: spec
                .options
                .iter()
                .filter(|(k, _)| !SWITCH_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let created = self.create_port(&ctl, name, &backend);
        release_freed_memory();
        let NewPort { port, ring, vxlan } = created?;
        let br = ctl.bridge_mut(bridge)?;
        br.ports.push(PortEntry {
            name: name.to_string(),
            ofport,
            vlan,
            spec,
            port,
            ring,
            vxlan,
            drops: Arc::default(),
        });
        br.ports.sort_by_key(|p| p.ofport);
        self.publish(&mut ctl);
        Ok(ofport)
    }

    /// Attaches a port object built by the caller (tests, benchmarks, embedders). It is shown
    /// with `kind()` as its type and is not persisted by the control plane.
    pub fn attach_port(
        &self,
        bridge: &str,
        name: &str,
        port: Arc<dyn Port>,
    ) -> Result<u32, DpError> {
        check_name("port", name)?;
        let mut ctl = self.lock();
        if ctl.find_port(name).is_some() {
            return Err(DpError(format!("port {name} already exists")));
        }
        let br = ctl.bridge_mut(bridge)?;
        let ofport = (1..)
            .find(|n| !br.ports.iter().any(|p| p.ofport == *n))
            .unwrap_or(1);
        let spec = PortSpec {
            kind: port.kind().to_string(),
            options: BTreeMap::new(),
        };
        br.ports.push(PortEntry {
            name: name.to_string(),
            ofport,
            vlan: VlanMode::TrunkAll,
            spec,
            port,
            ring: None,
            vxlan: None,
            drops: Arc::default(),
        });
        br.ports.sort_by_key(|p| p.ofport);
        self.publish(&mut ctl);
        Ok(ofport)
    }

    fn create_port(&self, ctl: &Control, name: &str, spec: &PortSpec) -> Result<NewPort, DpError> {
        match spec.kind.as_str() {
            "ring" => {
                check_options(spec, &["peer"])?;
                let ring = Arc::new(RingPort::new(name, crate::ring::RING_CAPACITY));
                if let Some(peer) = spec.options.get("peer") {
                    if peer == name {
                        return Err(DpError(format!("port {name} cannot be its own peer")));
                    }
                    if let Some((_, p)) = ctl.find_port(peer) {
                        let other = p
                            .ring
                            .as_ref()
                            .ok_or_else(|| DpError(format!("peer {peer} is not a ring port")))?;
                        match p.spec.options.get("peer") {
                            Some(pp) if pp != name => {
                                return Err(DpError(format!(
                                    "peer {peer} is already joined to {pp}"
                                )));
                            }
                            _ => ring.join(other),
                        }
                    }
                }
                Ok(NewPort {
                    port: ring.clone(),
                    ring: Some(ring),
                    vxlan: None,
                })
            }
            "afxdp" => Ok(NewPort::plain(ports::open_afxdp(name, spec)?)),
            "vhost-user" => Ok(NewPort::plain(ports::open_vhost_user(name, spec)?)),
            "vxlan" => {
                let cfg = ports::vxlan_config(spec)?;
                let vx = Arc::new(VxlanPort::new(name, cfg, self.tunnels.clone()));
                Ok(NewPort {
                    port: vx.clone(),
                    ring: None,
                    vxlan: Some(vx),
                })
            }
            other => Err(DpError(format!(
                "unknown port type {other:?} (known: afxdp, ring, vhost-user, vxlan)"
            ))),
        }
    }

    /// Changes a port's VLAN settings (`tag`, `trunks`, `vlan_mode`, `cvlans`; an empty value
    /// clears one) while traffic flows. Returns the port's options after the change.
    pub fn set_port(
        &self,
        name: &str,
        changes: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DpError> {
        let mut ctl = self.lock();
        for k in changes.keys() {
            if !SWITCH_KEYS.contains(&k.as_str()) {
                return Err(DpError(format!(
                    "cannot set {k:?} on a port (settable: {}); delete and re-add the port to change its type options",
                    SWITCH_KEYS.join(", ")
                )));
            }
        }
        let (bi, pi) = ctl
            .bridges
            .iter()
            .enumerate()
            .find_map(|(bi, b)| {
                b.ports
                    .iter()
                    .position(|p| p.name == name)
                    .map(|pi| (bi, pi))
            })
            .ok_or_else(|| DpError(format!("no port named {name}")))?;
        let mut options = ctl.bridges[bi].ports[pi].spec.options.clone();
        for (k, v) in changes {
            if v.is_empty() {
                options.remove(k);
            } else {
                options.insert(k.clone(), v.clone());
            }
        }
        let vlan = vlan_mode(&options)?;
        vtep_setting(&options)?;
        let br = &mut ctl.bridges[bi];
        let entry = &mut br.ports[pi];
        entry.vlan = vlan;
        entry.spec.options = options.clone();
        let ofport = entry.ofport;
        {
            // Its VLANs changed: what was learned on it may be on the wrong VLAN now.
            let mut macs = br.macs.lock();
            macs.flush_port(ofport);
            br.macs.sync_generation(&macs);
        }
        self.publish(&mut ctl);
        Ok(options)
    }

    pub fn del_port(&self, bridge: &str, name: &str) -> Result<(), DpError> {
        let mut ctl = self.lock();
        let br = ctl.bridge_mut(bridge)?;
        let i = br
            .ports
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| DpError(format!("bridge {bridge} has no port {name}")))?;
        let entry = br.ports.remove(i);
        {
            let mut macs = br.macs.lock();
            macs.flush_port(entry.ofport);
            br.macs.sync_generation(&macs);
        }
        unjoin_rings(&ctl, std::slice::from_ref(&entry));
        self.publish(&mut ctl);
        drop(ctl);
        // The PMDs have let go of the old snapshot: this releases the device (XDP detach etc.).
        drop(entry);
        Ok(())
    }

    /// Adds (or replaces, same priority and match) a rule in ovs-ofctl syntax.
    pub fn add_flow(&self, bridge: &str, text: &str) -> Result<(), DpError> {
        let mut ctl = self.lock();
        let br = ctl.bridge_mut(bridge)?;
        let rule = parse_rule(text, &|n| br.port_by_name(n)).map_err(|e| DpError(e.to_string()))?;
        br.rule_counters
            .insert((rule.priority, rule.m.key, rule.m.mask), Arc::default());
        br.rules.insert(rule);
        self.publish(&mut ctl);
        Ok(())
    }

    /// Deletes rules covered by `match_text` (all when None or empty). Returns how many.
    pub fn del_flows(&self, bridge: &str, match_text: Option<&str>) -> Result<usize, DpError> {
        let mut ctl = self.lock();
        let br = ctl.bridge_mut(bridge)?;
        let (m, _) = parse_match(match_text.unwrap_or(""), &|n| br.port_by_name(n))
            .map_err(|e| DpError(e.to_string()))?;
        let n = br.rules.remove_matching(&m, None);
        let live: std::collections::HashSet<RuleId> = br
            .rules
            .rules()
            .iter()
            .map(|r| (r.priority, r.m.key, r.m.mask))
            .collect();
        br.rule_counters.retain(|k, _| live.contains(k));
        if n > 0 {
            self.publish(&mut ctl);
        }
        Ok(n)
    }

    pub fn dump_flows(&self, bridge: &str) -> Result<Vec<FlowInfo>, DpError> {
        let ctl = self.lock();
        let br = ctl.bridge(bridge)?;
        Ok(br
            .rules
            .rules()
            .iter()
            .map(|r| {
                let c = br.counters_for(r);
                FlowInfo {
                    text: format_rule(r, &|p| br.port_name(p)),
                    priority: r.priority,
                    n_packets: c.packets.load(Ordering::Relaxed),
                    n_bytes: c.bytes.load(Ordering::Relaxed),
                }
            })
            .collect())
    }

    pub fn bridges(&self) -> Vec<BridgeInfo> {
        let ctl = self.lock();
        ctl.bridges.iter().map(bridge_info).collect()
    }

    pub fn bridge(&self, name: &str) -> Result<BridgeInfo, DpError> {
        let ctl = self.lock();
        Ok(bridge_info(ctl.bridge(name)?))
    }

    pub fn fdb(&self, bridge: &str) -> Result<Vec<FdbEntry>, DpError> {
        let ctl = self.lock();
        let br = ctl.bridge(bridge)?;
        let now = self.now_ns();
        let entries = br.macs.lock().entries(now);
        Ok(entries
            .into_iter()
            .map(|e| FdbEntry {
                port: br.port_name(e.port).unwrap_or_else(|| e.port.to_string()),
                vlan: e.vlan,
                mac: e.mac,
                age_secs: e.age_ns / 1_000_000_000,
            })
            .collect())
    }

    pub fn pmds(&self) -> Vec<PmdInfo> {
        let snap = self.config.load();
        let pmds = self.pmds.lock().unwrap_or_else(|e| e.into_inner());
        pmds.iter()
            .map(|h| {
                let s = &h.shared;
                let rxqs = snap
                    .assignment
                    .get(h.id)
                    .map(|qs| {
                        qs.iter()
                            .filter_map(|q| {
                                let bp = snap.bridges.get(q.bridge)?.ports.get(q.port)?;
                                Some((bp.port.name().to_string(), q.qid))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                PmdInfo {
                    id: h.id,
                    core: h.core,
                    rxqs,
                    packets: s.packets.load(Ordering::Relaxed),
                    emc_hits: s.emc_hits.load(Ordering::Relaxed),
                    megaflow_hits: s.megaflow_hits.load(Ordering::Relaxed),
                    misses: s.misses.load(Ordering::Relaxed),
                    busy_ns: s.busy_ns.load(Ordering::Relaxed),
                    idle_ns: s.idle_ns.load(Ordering::Relaxed),
                    rx_bursts: s.rx_bursts.load(Ordering::Relaxed),
                    tsc_hz: s.tsc_hz.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Adds (or replaces) a tunnel route: remote VTEPs in `prefix` are reached through the
    /// VTEP port `port`, via `gw` when given.
    pub fn tnl_route_add(&self, prefix: &str, port: &str, gw: Option<&str>) -> Result<(), DpError> {
        let (ip, len) = ports::parse_prefix(prefix)?;
        let gw = match gw {
            Some(g) => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| DpError(format!("bad gateway address {g:?}")))?,
            ),
            None => None,
        };
        let mut ctl = self.lock();
        let (_, entry) = ctl
            .find_port(port)
            .ok_or_else(|| DpError(format!("no port named {port}")))?;
        if vtep_setting(&entry.spec.options)?.is_none() {
            return Err(DpError(format!(
                "port {port} has no vtep_ip: set one with \"set port {port} vtep_ip=A.B.C.D/LEN\""
            )));
        }
        let net = Ipv4Addr::from(
            u32::from(ip)
                & if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len))
                },
        );
        ctl.routes.retain(|r| !(r.prefix == net && r.len == len));
        ctl.routes.push(Route {
            prefix: net,
            len,
            port: port.to_string(),
            gw,
            user: true,
        });
        self.publish(&mut ctl);
        Ok(())
    }

    pub fn tnl_route_del(&self, prefix: &str) -> Result<(), DpError> {
        let (ip, len) = ports::parse_prefix(prefix)?;
        let net = Ipv4Addr::from(
            u32::from(ip)
                & if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len))
                },
        );
        let mut ctl = self.lock();
        let before = ctl.routes.len();
        ctl.routes.retain(|r| !(r.prefix == net && r.len == len));
        if ctl.routes.len() == before {
            return Err(DpError(format!("no tunnel route {net}/{len}")));
        }
        self.publish(&mut ctl);
        Ok(())
    }

    /// Every tunnel route in use: the VTEPs' connected networks, then the operator's routes.
    pub fn tnl_routes(&self) -> Vec<Route> {
        self.tunnels.routes.load().all_routes()
    }

    /// Operator routes only (what the control plane persists).
    pub fn tnl_user_routes(&self) -> Vec<Route> {
        self.lock().routes.clone()
    }

    pub fn tnl_neigh(&self) -> Vec<NeighEntry> {
        self.tunnels.neigh().entries()
    }

    pub fn tnl_neigh_flush(&self) {
        self.tunnels.neigh().flush();
    }

    /// Stops PMD threads and releases every port.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut pmds = self.pmds.lock().unwrap_or_else(|e| e.into_inner());
        for h in pmds.iter() {
            h.shared.stop.store(true, Ordering::Relaxed);
        }
        for h in pmds.iter_mut() {
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(t) = self
            .housekeeping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
        self.config.store(Arc::new(Snapshot::empty(self.n_pmds)));
        self.lock().bridges.clear();
    }

    /// Builds and publishes a new snapshot, then waits until every PMD uses it, so that
    /// resources removed from the configuration are no longer touched when this returns.
    fn publish(&self, ctl: &mut Control) {
        ctl.generation += 1;
        let mut bridges = Vec::new();
        let mut assignment = vec![Vec::new(); self.n_pmds];
        let mut next = 0;
        for (bi, b) in ctl.bridges.iter().enumerate() {
            let ports: Vec<BridgePort> = b
                .ports
                .iter()
                .map(|p| BridgePort {
                    ofport: p.ofport,
                    vlan: p.vlan.clone(),
                    vtep: make_vtep(p),
                    port: p.port.clone(),
                    drops: p.drops.clone(),
                })
                .collect();
            for (pi, p) in b.ports.iter().enumerate() {
                for qid in 0..p.port.n_rxq() {
                    assignment[next % self.n_pmds].push(RxqRef {
                        bridge: bi,
                        port: pi,
                        qid,
                    });
                    next += 1;
                }
            }
            let counters = b.rules.rules().iter().map(|r| b.counters_for(r)).collect();
            bridges.push(Arc::new(BridgeSnapshot::new(
                b.name.clone(),
                ports,
                b.rules.clone(),
                counters,
                b.macs.clone(),
            )));
        }
        let generation = ctl.generation;
        // Tunnels: VTEPs with their connected routes, then the operator's routes.
        let mut table = RouteTable::default();
        let mut tunnel_ports = Vec::new();
        for (bi, b) in ctl.bridges.iter().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                if let Some(v) = make_vtep(p) {
                    table.routes.push(Route {
                        prefix: v.ip,
                        len: v.prefix_len,
                        port: v.port_name.clone(),
                        gw: None,
                        user: false,
                    });
                    table.vteps.push(v);
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
        table.routes.extend(ctl.routes.iter().cloned());
        self.tunnels.routes.store(Arc::new(table));
        self.config.store(Arc::new(Snapshot {
            generation,
            bridges,
            assignment,
            tunnel_ports,
            tunnels: self.tunnels.clone(),
        }));
        let deadline = Instant::now() + QUIESCE_TIMEOUT;
        let pmds = self.pmds.lock().unwrap_or_else(|e| e.into_inner());
        for h in pmds.iter() {
            while h.shared.seen_generation.load(Ordering::Acquire) < generation
                && h.thread.as_ref().is_some_and(|t| !t.is_finished())
            {
                if Instant::now() > deadline {
                    tracing::warn!(
                        pmd = h.id,
                        "PMD did not pick up configuration {generation} in time"
                    );
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn bridge_info(b: &BridgeCtl) -> BridgeInfo {
    BridgeInfo {
        name: b.name.clone(),
        n_rules: b.rules.len(),
        ports: b
            .ports
            .iter()
            .map(|p| PortInfo {
                name: p.name.clone(),
                ofport: p.ofport,
                kind: p.spec.kind.clone(),
                options: p.spec.options.clone(),
                link_up: p.port.link_up(),
                status: p.port.status(),
                stats: p.port.stats(),
                drops: p.drops.snapshot(),
            })
            .collect(),
    }
}

/// Cuts ring links to ports that are going away.
fn unjoin_rings(ctl: &Control, removed: &[PortEntry]) {
    for e in removed {
        let Some(ring) = &e.ring else { continue };
        ring.unjoin();
        if let Some(peer) = e.spec.options.get("peer")
            && let Some((_, p)) = ctl.find_port(peer)
            && let Some(r) = &p.ring
        {
            r.unjoin();
        }
        // A peer that named us but was not named back.
        for b in &ctl.bridges {
            for p in &b.ports {
                if p.spec.options.get("peer").map(String::as_str) == Some(e.name.as_str())
                    && let Some(r) = &p.ring
                {
                    r.unjoin();
                }
            }
        }
    }
}

/// Gives memory freed by port set-up back to the system: loading an XDP program parses the
/// kernel's BTF (megabytes), which the allocator would otherwise keep.
fn release_freed_memory() {
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Port settings that are VLAN configuration (handled by the bridge, not the port backend).
pub const VLAN_KEYS: &[&str] = &["tag", "trunks", "vlan_mode", "cvlans"];
/// Every port setting the switch handles itself: VLANs, and the VTEP address of an underlay
/// port (`vtep_ip=A.B.C.D/LEN`, with `vtep_mac=` for ports without a MAC of their own).
pub const SWITCH_KEYS: &[&str] = &[
    "tag",
    "trunks",
    "vlan_mode",
    "cvlans",
    "vtep_ip",
    "vtep_mac",
];

type VtepSetting = Option<(Ipv4Addr, u8, Option<[u8; 6]>)>;

fn vtep_setting(options: &BTreeMap<String, String>) -> Result<VtepSetting, DpError> {
    let mac = match options.get("vtep_mac") {
        Some(m) => Some(ports::parse_mac(m).ok_or_else(|| DpError(format!("bad vtep_mac {m:?}")))?),
        None => None,
    };
    let Some(v) = options.get("vtep_ip") else {
        if mac.is_some() {
            return Err(DpError::new("vtep_mac= needs vtep_ip="));
        }
        return Ok(None);
    };
    let (ip, len) = ports::parse_prefix(v)?;
    Ok(Some((ip, len, mac)))
}

/// The VTEP a port is, if it has a `vtep_ip`.
fn make_vtep(p: &PortEntry) -> Option<Vtep> {
    let (ip, prefix_len, mac) = vtep_setting(&p.spec.options).ok().flatten()?;
    let mac = mac.or_else(|| p.port.mac())?;
    Some(Vtep {
        port_name: p.name.clone(),
        port: p.port.clone(),
        ip,
        prefix_len,
        mac,
        mtu: p.port.mtu().unwrap_or(1500),
    })
}

fn vlan_mode(options: &BTreeMap<String, String>) -> Result<VlanMode, DpError> {
    let tag = match options.get("tag") {
        Some(t) => Some(
            t.parse::<u16>()
                .map_err(|_| DpError(format!("bad tag {t:?} (1-4094)")))?,
        ),
        None => None,
    };
    let set = |key: &str| -> Result<Option<VlanSet>, DpError> {
        options
            .get(key)
            .map(|v| VlanSet::parse(v).map_err(|e| DpError(format!("{key}: {e}"))))
            .transpose()
    };
    let trunks = set("trunks")?;
    let cvlans = set("cvlans")?;
    VlanMode::from_settings(
        options.get("vlan_mode").map(String::as_str),
        tag,
        trunks.as_ref(),
        cvlans.as_ref(),
    )
    .map_err(DpError)
}

fn check_name(what: &str, name: &str) -> Result<(), DpError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DpError(format!(
            "bad {what} name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn check_options(spec: &PortSpec, known: &[&str]) -> Result<(), DpError> {
    for k in spec.options.keys() {
        if !known.contains(&k.as_str()) {
            return Err(DpError(format!(
                "unknown option {k:?} for type={} (known: {})",
                spec.kind,
                known.join(", ")
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_port_options(spec: &PortSpec, known: &[&str]) -> Result<(), DpError> {
    check_options(spec, known)
}

/// Ages out MAC entries once a second.
fn spawn_housekeeping(
    config: Arc<ArcSwap<Snapshot>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                last = Instant::now();
                let now = epoch.elapsed().as_nanos() as u64;
                for b in config.load().bridges.iter() {
                    let mut macs = b.macs.lock();
                    if macs.expire(now) > 0 {
                        b.macs.sync_generation(&macs);
                    }
                }
            }
        })
}
