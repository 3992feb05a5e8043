//! The daemon's commands: each request is applied to the datapath first; only on success is the
//! desired configuration updated and the state file rewritten.

use std::collections::BTreeMap;
use std::path::PathBuf;

use datapath::tunnel::{NeighEntry, Route};
use datapath::{BridgeInfo, DpError, FdbEntry, FlowInfo, PmdInfo, PortSpec, Switch};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::args::{check_name, parse_port_options};
use crate::config::{self, Config, PortConfig};
use crate::protocol::{PROTOCOL_VERSION, Request, truncate};
use crate::results::*;

/// Commands and their usage, in the order `vswitchctl --help` lists them.
pub const COMMANDS: &[(&str, &str)] = &[
    ("add-br", "add-br BRIDGE"),
    ("del-br", "del-br BRIDGE"),
    ("add-port", "add-port BRIDGE PORT type=TYPE [KEY=VALUE...]"),
    ("del-port", "del-port [BRIDGE] PORT"),
    (
        "set",
        "set port PORT [tag=N] [trunks=LIST] [vlan_mode=MODE] [cvlans=LIST] (empty value clears)",
    ),
    ("show", "show"),
    ("add-flow", "add-flow BRIDGE RULE"),
    ("del-flows", "del-flows BRIDGE [MATCH]"),
    ("dump-flows", "dump-flows BRIDGE"),
    ("dump-ports", "dump-ports BRIDGE"),
    ("fdb-show", "fdb-show BRIDGE"),
    ("tnl-route-add", "tnl-route-add A.B.C.D/LEN PORT [GATEWAY]"),
    ("tnl-route-del", "tnl-route-del A.B.C.D/LEN"),
    ("tnl-route-show", "tnl-route-show"),
    ("tnl-neigh-show", "tnl-neigh-show"),
    ("tnl-neigh-flush", "tnl-neigh-flush"),
    ("pmd-stats", "pmd-stats"),
    ("version", "version"),
];

/// What the daemon needs from the datapath: [`datapath::Switch`]'s control API (a trait so the
/// command logic can be tested without PMD threads).
pub trait Datapath {
    fn add_bridge(&self, name: &str) -> Result<(), DpError>;
    fn del_bridge(&self, name: &str) -> Result<(), DpError>;
    fn add_port(
        &self,
        bridge: &str,
        name: &str,
        spec: PortSpec,
        ofport: Option<u32>,
    ) -> Result<u32, DpError>;
    fn del_port(&self, bridge: &str, name: &str) -> Result<(), DpError>;
    fn set_port(
        &self,
        name: &str,
        changes: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DpError>;
    fn add_flow(&self, bridge: &str, text: &str) -> Result<(), DpError>;
    fn del_flows(&self, bridge: &str, match_text: Option<&str>) -> Result<usize, DpError>;
    fn dump_flows(&self, bridge: &str) -> Result<Vec<FlowInfo>, DpError>;
    fn bridges(&self) -> Vec<BridgeInfo>;
    fn bridge(&self, name: &str) -> Result<BridgeInfo, DpError>;
    fn fdb(&self, bridge: &str) -> Result<Vec<FdbEntry>, DpError>;
    fn tnl_route_add(&self, prefix: &str, port: &str, gw: Option<&str>) -> Result<(), DpError>;
    fn tnl_route_del(&self, prefix: &str) -> Result<(), DpError>;
    fn tnl_routes(&self) -> Vec<Route>;
    fn tnl_neigh(&self) -> Vec<NeighEntry>;
    fn tnl_neigh_flush(&self);
    fn pmds(&self) -> Vec<PmdInfo>;
    fn shutdown(&self);
}

impl Datapath for Switch {
    fn add_bridge(&self, name: &str) -> Result<(), DpError> {
        Switch::add_bridge(self, name)
    }
    fn del_bridge(&self, name: &str) -> Result<(), DpError> {
        Switch::del_bridge(self, name)
    }
    fn add_port(
        &self,
        bridge: &str,
        name: &str,
        spec: PortSpec,
        ofport: Option<u32>,
    ) -> Result<u32, DpError> {
        Switch::add_port(self, bridge, name, spec, ofport)
    }
    fn del_port(&self, bridge: &str, name: &str) -> Result<(), DpError> {
        Switch::del_port(self, bridge, name)
    }
    fn set_port(
        &self,
        name: &str,
        changes: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DpError> {
        Switch::set_port(self, name, changes)
    }
    fn add_flow(&self, bridge: &str, text: &str) -> Result<(), DpError> {
        Switch::add_flow(self, bridge, text)
    }
    fn del_flows(&self, bridge: &str, match_text: Option<&str>) -> Result<usize, DpError> {
        Switch::del_flows(self, bridge, match_text)
    }
    fn dump_flows(&self, bridge: &str) -> Result<Vec<FlowInfo>, DpError> {
        Switch::dump_flows(self, bridge)
    }
    fn bridges(&self) -> Vec<BridgeInfo> {
        Switch::bridges(self)
    }
    fn bridge(&self, name: &str) -> Result<BridgeInfo, DpError> {
        Switch::bridge(self, name)
    }
    fn fdb(&self, bridge: &str) -> Result<Vec<FdbEntry>, DpError> {
        Switch::fdb(self, bridge)
    }
    fn tnl_route_add(&self, prefix: &str, port: &str, gw: Option<&str>) -> Result<(), DpError> {
        Switch::tnl_route_add(self, prefix, port, gw)
    }
    fn tnl_route_del(&self, prefix: &str) -> Result<(), DpError> {
        Switch::tnl_route_del(self, prefix)
    }
    fn tnl_routes(&self) -> Vec<Route> {
        Switch::tnl_routes(self)
    }
    fn tnl_neigh(&self) -> Vec<NeighEntry> {
        Switch::tnl_neigh(self)
    }
    fn tnl_neigh_flush(&self) {
        Switch::tnl_neigh_flush(self)
    }
    fn pmds(&self) -> Vec<PmdInfo> {
        Switch::pmds(self)
    }
    fn shutdown(&self) {
        Switch::shutdown(self)
    }
}

/// The daemon's state: the datapath, the desired configuration, and what failed to restore.
pub struct Daemon<D: Datapath> {
    dp: D,
    config: Config,
    state_path: PathBuf,
    /// Bridges of the configuration that could not be restored, with the reason.
    bridge_errors: BTreeMap<String, String>,
    /// Ports of the configuration that are not in the datapath (failed restore), with the reason.
    port_errors: BTreeMap<String, String>,
    /// Rules of the configuration that could not be restored, by bridge.
    flow_errors: BTreeMap<String, Vec<FlowError>>,
    stopped: bool,
}

fn dp_err(e: DpError) -> String {
    e.0
}

/// The rule text to keep in the configuration: the datapath's canonical text, with the priority
/// made explicit if the text leaves it out (so the rule restores with the same priority).
pub fn rule_text(f: &FlowInfo) -> String {
    let head = f.text.split("actions=").next().unwrap_or("");
    if head
        .split([',', ' '])
        .any(|t| t.trim().starts_with("priority="))
    {
        f.text.clone()
    } else {
        format!("priority={},{}", f.priority, f.text)
    }
}

/// Whether two `A.B.C.D/LEN` texts name the same network.
fn prefix_eq(a: &str, b: &str) -> bool {
    let norm = |p: &str| -> Option<(u32, u8)> {
        let (ip, len) = p.split_once('/').unwrap_or((p, "32"));
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
        let m = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        Some((u32::from(ip) & m, len))
    };
    match (norm(a), norm(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn usage_error(cmd: &str) -> String {
    let usage = COMMANDS
        .iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, u)| *u)
        .unwrap_or(cmd);
    format!("{cmd}: wrong number of arguments (usage: {usage})")
}

fn expect_args(cmd: &str, args: &[String], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        Err(usage_error(cmd))
    } else {
        Ok(())
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("internal error: {e}"))
}

impl<D: Datapath> Daemon<D> {
    /// Takes the started datapath and the loaded configuration and restores the configuration
    /// into the datapath: bridges, then ports (with their saved ofport), then rules. What fails
    /// is logged and kept in the configuration, flagged by `show`.
    pub fn new(dp: D, config: Config, state_path: PathBuf) -> Self {
        let mut d = Daemon {
            dp,
            config,
            state_path,
            bridge_errors: BTreeMap::new(),
            port_errors: BTreeMap::new(),
            flow_errors: BTreeMap::new(),
            stopped: false,
        };
        d.restore();
        d
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn datapath(&self) -> &D {
        &self.dp
    }

    fn restore(&mut self) {
        let cfg = self.config.clone();
        for b in &cfg.bridges {
            if let Err(e) = self.dp.add_bridge(&b.name) {
                error!(bridge = %b.name, "cannot restore bridge: {e}");
                self.bridge_errors.insert(b.name.clone(), e.0);
            }
        }
        // Ports may depend on each other (a ring port's peer), so retry failures while some
        // port got in.
        let mut pending: Vec<(&str, &PortConfig)> = cfg
            .bridges
            .iter()
            .flat_map(|b| b.ports.iter().map(move |p| (b.name.as_str(), p)))
            .collect();
        let mut restored_ports = 0;
        loop {
            let mut failed = Vec::new();
            let mut progress = false;
            for (br, p) in pending {
                let spec = PortSpec {
                    kind: p.kind.clone(),
                    options: p.options.clone(),
                };
                match self.dp.add_port(br, &p.name, spec, Some(p.ofport)) {
                    Ok(n) => {
                        progress = true;
                        restored_ports += 1;
                        if n != p.ofport {
                            warn!(bridge = br, port = %p.name, "restored with ofport {n} instead of {}", p.ofport);
                            if let Some(mp) = self.port_mut(br, &p.name) {
                                mp.ofport = n;
                            }
                        }
                    }
                    Err(e) => failed.push((br, p, e)),
                }
            }
            if failed.is_empty() || !progress {
                for (br, p, e) in failed {
                    error!(bridge = br, port = %p.name, "cannot restore port: {e}");
                    self.port_errors.insert(p.name.clone(), e.0);
                }
                break;
            }
            pending = failed.into_iter().map(|(b, p, _)| (b, p)).collect();
        }
        for r in &cfg.tnl_routes {
            if let Err(e) = self.dp.tnl_route_add(&r.prefix, &r.port, r.gw.as_deref()) {
                error!(route = %r.prefix, port = %r.port, "cannot restore tunnel route: {e}");
            }
        }
        let mut restored_flows = 0;
        for b in &cfg.bridges {
            for f in &b.flows {
                match self.dp.add_flow(&b.name, f) {
                    Ok(()) => restored_flows += 1,
                    Err(e) => {
                        error!(bridge = %b.name, flow = %f, "cannot restore rule: {e}");
                        self.flow_errors
                            .entry(b.name.clone())
                            .or_default()
                            .push(FlowError {
                                flow: f.clone(),
                                error: e.0,
                            });
                    }
                }
            }
        }
        info!(
            bridges = cfg.bridges.len() - self.bridge_errors.len(),
            ports = restored_ports,
            rules = restored_flows,
            failed = self.bridge_errors.len()
                + self.port_errors.len()
                + self.flow_errors.values().map(Vec::len).sum::<usize>(),
            "configuration restored"
        );
    }

    fn port_mut(&mut self, bridge: &str, port: &str) -> Option<&mut PortConfig> {
        self.config
            .bridge_mut(bridge)?
            .ports
            .iter_mut()
            .find(|p| p.name == port)
    }

    /// Stops the datapath; later requests get an error.
    pub fn shutdown(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.dp.shutdown();
        }
    }

    /// Runs one request.
    pub fn handle(&mut self, req: &Request) -> Result<Value, String> {
        if self.stopped {
            return Err("vswitchd is shutting down".into());
        }
        let a = req.args.as_slice();
        let cmd = req.command.as_str();
        match cmd {
            "version" => {
                expect_args(cmd, a, 0, 0)?;
                to_value(&VersionInfo {
                    name: "vswitchd".into(),
                    package_version: crate::PACKAGE_VERSION.into(),
                    protocol_version: PROTOCOL_VERSION,
                })
            }
            "add-br" => {
                expect_args(cmd, a, 1, 1)?;
                self.mutate(|d| d.add_br(&a[0]))
            }
            "del-br" => {
                expect_args(cmd, a, 1, 1)?;
                self.mutate(|d| d.del_br(&a[0]))
            }
            "add-port" => {
                expect_args(cmd, a, 2, usize::MAX)?;
                self.mutate(|d| d.add_port(&a[0], &a[1], &a[2..]))
            }
            "del-port" => {
                expect_args(cmd, a, 1, 2)?;
                let (br, port) = if a.len() == 2 {
                    (Some(a[0].as_str()), &a[1])
                } else {
                    (None, &a[0])
                };
                self.mutate(|d| d.del_port(br, port))
            }
            "set" => {
                expect_args(cmd, a, 3, usize::MAX)?;
                if a[0] != "port" {
                    return Err(format!(
                        "set: only \"set port PORT KEY=VALUE...\" is supported, not {:?}",
                        truncate(&a[0], 32)
                    ));
                }
                self.mutate(|d| d.set_port(&a[1], &a[2..]))
            }
            "add-flow" => {
                expect_args(cmd, a, 2, 2)?;
                self.mutate(|d| d.add_flow(&a[0], &a[1]))
            }
            "del-flows" => {
                expect_args(cmd, a, 1, 2)?;
                self.mutate(|d| d.del_flows(&a[0], a.get(1).map(String::as_str)))
            }
            "show" => {
                expect_args(cmd, a, 0, 0)?;
                to_value(&self.show())
            }
            "dump-flows" => {
                expect_args(cmd, a, 1, 1)?;
                self.known_bridge(&a[0])?;
                let flows: Vec<FlowEntry> = self
                    .dp
                    .dump_flows(&a[0])
                    .map_err(dp_err)?
                    .into_iter()
                    .map(|f| FlowEntry {
                        text: f.text,
                        priority: f.priority,
                        n_packets: f.n_packets,
                        n_bytes: f.n_bytes,
                    })
                    .collect();
                to_value(&flows)
            }
            "dump-ports" => {
                expect_args(cmd, a, 1, 1)?;
                self.known_bridge(&a[0])?;
                let info = self.dp.bridge(&a[0]).map_err(dp_err)?;
                let ports: Vec<PortStatsEntry> = info
                    .ports
                    .into_iter()
                    .map(|p| PortStatsEntry {
                        name: p.name,
                        ofport: p.ofport,
                        rx_packets: p.stats.rx_packets,
                        rx_bytes: p.stats.rx_bytes,
                        rx_dropped: p.stats.rx_dropped,
                        tx_packets: p.stats.tx_packets,
                        tx_bytes: p.stats.tx_bytes,
                        tx_dropped: p.stats.tx_dropped,
                        drops: p.drops.into_iter().collect(),
                    })
                    .collect();
                to_value(&ports)
            }
            "tnl-route-add" => {
                expect_args(cmd, a, 2, 3)?;
                self.mutate(|d| d.tnl_route_add(&a[0], &a[1], a.get(2).map(String::as_str)))
            }
            "tnl-route-del" => {
                expect_args(cmd, a, 1, 1)?;
                self.mutate(|d| d.tnl_route_del(&a[0]))
            }
            "tnl-route-show" => {
                expect_args(cmd, a, 0, 0)?;
                let rows: Vec<RouteRow> = self
                    .dp
                    .tnl_routes()
                    .into_iter()
                    .map(|r| RouteRow {
                        prefix: format!("{}/{}", r.prefix, r.len),
                        port: r.port,
                        gw: r.gw.map(|g| g.to_string()),
                        origin: if r.user { "static" } else { "connected" }.into(),
                    })
                    .collect();
                to_value(&rows)
            }
            "tnl-neigh-show" => {
                expect_args(cmd, a, 0, 0)?;
                let rows: Vec<NeighRow> = self
                    .dp
                    .tnl_neigh()
                    .into_iter()
                    .map(|n| NeighRow {
                        ip: n.ip.to_string(),
                        mac: mac_string(&n.mac),
                        port: n.port,
                        age: n.age_secs,
                    })
                    .collect();
                to_value(&rows)
            }
            "tnl-neigh-flush" => {
                expect_args(cmd, a, 0, 0)?;
                self.dp.tnl_neigh_flush();
                Ok(Value::Null)
            }
            "fdb-show" => {
                expect_args(cmd, a, 1, 1)?;
                self.known_bridge(&a[0])?;
                let rows: Vec<FdbRow> = self
                    .dp
                    .fdb(&a[0])
                    .map_err(dp_err)?
                    .into_iter()
                    .map(|e| FdbRow {
                        port: e.port,
                        vlan: e.vlan,
                        mac: mac_string(&e.mac),
                        age: e.age_secs,
                    })
                    .collect();
                to_value(&rows)
            }
            "pmd-stats" => {
                expect_args(cmd, a, 0, 0)?;
                let rows: Vec<PmdRow> = self
                    .dp
                    .pmds()
                    .into_iter()
                    .map(|p| PmdRow {
                        id: p.id,
                        core: p.core,
                        rxqs: p
                            .rxqs
                            .into_iter()
                            .map(|(port, queue)| RxqRow { port, queue })
                            .collect(),
                        packets: p.packets,
                        emc_hits: p.emc_hits,
                        megaflow_hits: p.megaflow_hits,
                        misses: p.misses,
                        busy_ns: p.busy_ns,
                        idle_ns: p.idle_ns,
                        rx_bursts: p.rx_bursts,
                        tsc_hz: p.tsc_hz,
                    })
                    .collect();
                to_value(&rows)
            }
            other => Err(format!(
                "unknown command '{}' (commands: {})",
                truncate(other, 40),
                COMMANDS
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Runs a mutating command; if it changed the configuration, writes the state file.
    fn mutate(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<Value, String>,
    ) -> Result<Value, String> {
        let before = self.config.clone();
        let v = f(self)?;
        if self.config != before
            && let Err(e) = config::save(&self.state_path, &self.config)
        {
            let msg = format!(
                "change applied, but the state file {} could not be written: {e}",
                self.state_path.display()
            );
            error!("{msg}");
            return Err(msg);
        }
        Ok(v)
    }

    fn known_bridge(&self, br: &str) -> Result<(), String> {
        if self.config.bridge(br).is_none() {
            return Err(format!("no bridge named {}", truncate(br, 64)));
        }
        Ok(())
    }

    fn add_br(&mut self, br: &str) -> Result<Value, String> {
        check_name("bridge", br)?;
        if self.config.bridge(br).is_some() {
            return Err(format!("bridge {br} already exists"));
        }
        if self.config.port_bridge(br).is_some() {
            return Err(format!("{br} is already the name of a port"));
        }
        self.dp.add_bridge(br).map_err(dp_err)?;
        self.config.bridges.push(config::BridgeConfig {
            name: br.into(),
            ports: vec![],
            flows: vec![],
        });
        info!(bridge = br, "bridge added");
        Ok(Value::Null)
    }

    fn del_br(&mut self, br: &str) -> Result<Value, String> {
        self.known_bridge(br)?;
        if self.bridge_errors.contains_key(br) {
            // Not in the datapath: only forget it (best effort in case it is there after all).
            let _ = self.dp.del_bridge(br);
        } else {
            self.dp.del_bridge(br).map_err(dp_err)?;
        }
        self.bridge_errors.remove(br);
        self.flow_errors.remove(br);
        if let Some(b) = self.config.bridge(br) {
            for p in &b.ports {
                self.port_errors.remove(&p.name);
            }
        }
        self.config.bridges.retain(|b| b.name != br);
        info!(bridge = br, "bridge deleted");
        Ok(Value::Null)
    }

    fn add_port(&mut self, br: &str, port: &str, opts: &[String]) -> Result<Value, String> {
        self.known_bridge(br)?;
        check_name("port", port)?;
        if let Some(b) = self.config.port_bridge(port) {
            return Err(format!("port {port} already exists on bridge {}", b.name));
        }
        if self.config.bridge(port).is_some() {
            return Err(format!("{port} is already the name of a bridge"));
        }
        let (kind, options) = parse_port_options(opts)?;
        let bcfg = self.config.bridge(br).expect("checked above");
        // Ports that failed to restore keep their ofport reserved.
        let ofport = if bcfg
            .ports
            .iter()
            .any(|p| self.port_errors.contains_key(&p.name))
        {
            (1..).find(|n| !bcfg.ports.iter().any(|p| p.ofport == *n))
        } else {
            None
        };
        let spec = PortSpec {
            kind: kind.clone(),
            options: options.clone(),
        };
        let ofport = self.dp.add_port(br, port, spec, ofport).map_err(dp_err)?;
        let bcfg = self.config.bridge_mut(br).expect("checked above");
        bcfg.ports.push(PortConfig {
            name: port.into(),
            ofport,
            kind,
            options,
        });
        info!(bridge = br, port, ofport, "port added");
        to_value(&AddPortResult { ofport })
    }

    fn del_port(&mut self, br: Option<&str>, port: &str) -> Result<Value, String> {
        let owner = self.config.port_bridge(port).map(|b| b.name.clone());
        let br = match (br, owner) {
            (Some(br), Some(owner)) if br == owner => owner,
            (Some(br), _) => {
                self.known_bridge(br)?;
                return Err(format!("bridge {br} has no port {}", truncate(port, 64)));
            }
            (None, Some(owner)) => owner,
            (None, None) => return Err(format!("no port named {}", truncate(port, 64))),
        };
        if self.port_errors.contains_key(port) {
            let _ = self.dp.del_port(&br, port);
        } else {
            self.dp.del_port(&br, port).map_err(dp_err)?;
        }
        self.port_errors.remove(port);
        if let Some(b) = self.config.bridge_mut(&br) {
            b.ports.retain(|p| p.name != port);
        }
        self.refresh_flows(&br);
        info!(bridge = %br, port, "port deleted");
        Ok(Value::Null)
    }

    fn set_port(&mut self, port: &str, settings: &[String]) -> Result<Value, String> {
        let Some(br) = self.config.port_bridge(port).map(|b| b.name.clone()) else {
            return Err(format!("no port named {}", truncate(port, 64)));
        };
        if self.port_errors.contains_key(port) {
            return Err(format!(
                "port {port} is not running ({}); fix or delete it first",
                self.port_errors[port]
            ));
        }
        let mut changes = BTreeMap::new();
        for t in settings {
            let Some((k, v)) = t.split_once('=') else {
                return Err(format!(
                    "bad setting {:?}: expected KEY=VALUE",
                    truncate(t, 64)
                ));
            };
            if k.is_empty() || changes.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("bad or repeated key in {:?}", truncate(t, 64)));
            }
        }
        let options = self.dp.set_port(port, &changes).map_err(dp_err)?;
        if let Some(p) = self.port_mut(&br, port) {
            p.options = options;
        }
        info!(port, "port settings changed");
        Ok(Value::Null)
    }

    fn tnl_route_add(
        &mut self,
        prefix: &str,
        port: &str,
        gw: Option<&str>,
    ) -> Result<Value, String> {
        self.dp.tnl_route_add(prefix, port, gw).map_err(dp_err)?;
        // Keep the canonical form the datapath stored (network address, explicit length).
        let stored = self
            .dp
            .tnl_routes()
            .into_iter()
            .filter(|r| r.user && r.port == port)
            .map(|r| format!("{}/{}", r.prefix, r.len))
            .find(|p| prefix_eq(p, prefix))
            .unwrap_or_else(|| prefix.to_string());
        self.config
            .tnl_routes
            .retain(|r| !prefix_eq(&r.prefix, &stored));
        self.config.tnl_routes.push(config::RouteConfig {
            prefix: stored,
            port: port.to_string(),
            gw: gw.map(str::to_string),
        });
        Ok(Value::Null)
    }

    fn tnl_route_del(&mut self, prefix: &str) -> Result<Value, String> {
        self.dp.tnl_route_del(prefix).map_err(dp_err)?;
        self.config
            .tnl_routes
            .retain(|r| !prefix_eq(&r.prefix, prefix));
        Ok(Value::Null)
    }

    fn add_flow(&mut self, br: &str, rule: &str) -> Result<Value, String> {
        self.known_bridge(br)?;
        self.dp.add_flow(br, rule).map_err(dp_err)?;
        if let Some(errs) = self.flow_errors.get_mut(br) {
            errs.retain(|e| e.flow != rule);
        }
        self.refresh_flows(br);
        Ok(Value::Null)
    }

    fn del_flows(&mut self, br: &str, m: Option<&str>) -> Result<Value, String> {
        self.known_bridge(br)?;
        let m = m.filter(|m| !m.trim().is_empty());
        let deleted = self.dp.del_flows(br, m).map_err(dp_err)?;
        if m.is_none() {
            // "All rules" includes the ones that never made it into the datapath.
            self.flow_errors.remove(br);
        }
        self.refresh_flows(br);
        to_value(&DelFlowsResult { deleted })
    }

    /// Sets the bridge's rules in the configuration to the datapath's canonical texts, plus the
    /// rules that failed to restore.
    fn refresh_flows(&mut self, br: &str) {
        if self.bridge_errors.contains_key(br) {
            return;
        }
        match self.dp.dump_flows(br) {
            Ok(flows) => {
                let mut texts: Vec<String> = flows.iter().map(rule_text).collect();
                if let Some(errs) = self.flow_errors.get(br) {
                    texts.extend(errs.iter().map(|e| e.flow.clone()));
                }
                if let Some(b) = self.config.bridge_mut(br) {
                    b.flows = texts;
                }
            }
            Err(e) => warn!(bridge = br, "cannot read back rules: {e}"),
        }
    }

    /// `show`: the configuration, with live facts from the datapath and restore errors.
    pub fn show(&self) -> ShowResult {
        let live = self.dp.bridges();
        let mut bridges = Vec::new();
        for b in &self.config.bridges {
            let info = live.iter().find(|i| i.name == b.name);
            let mut ports = Vec::new();
            for p in &b.ports {
                let pi = info.and_then(|i| i.ports.iter().find(|x| x.name == p.name));
                let error = match (self.port_errors.get(&p.name), pi) {
                    (Some(e), _) => Some(e.clone()),
                    (None, None) => Some("not in the datapath".into()),
                    (None, Some(_)) => None,
                };
                ports.push(ShowPort {
                    name: p.name.clone(),
                    ofport: pi.map(|x| x.ofport).unwrap_or(p.ofport),
                    kind: p.kind.clone(),
                    options: p.options.clone(),
                    link_up: pi.is_some_and(|x| x.link_up),
                    status: pi
                        .map(|x| x.status.iter().cloned().collect())
                        .unwrap_or_default(),
                    error,
                });
            }
            // Ports the datapath has but the configuration does not (should not happen).
            for pi in info.map(|i| i.ports.as_slice()).unwrap_or_default() {
                if !b.ports.iter().any(|p| p.name == pi.name) {
                    ports.push(ShowPort {
                        name: pi.name.clone(),
                        ofport: pi.ofport,
                        kind: pi.kind.clone(),
                        options: pi.options.clone(),
                        link_up: pi.link_up,
                        status: pi.status.iter().cloned().collect(),
                        error: Some("not in the configuration".into()),
                    });
                }
            }
            let error = match (self.bridge_errors.get(&b.name), info) {
                (Some(e), _) => Some(e.clone()),
                (None, None) => Some("not in the datapath".into()),
                (None, Some(_)) => None,
            };
            bridges.push(ShowBridge {
                name: b.name.clone(),
                ports,
                n_rules: info.map(|i| i.n_rules).unwrap_or(0),
                error,
                flow_errors: self.flow_errors.get(&b.name).cloned().unwrap_or_default(),
            });
        }
        ShowResult { bridges }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::BridgeConfig;
    use datapath::port::PortStats;
    use std::sync::Mutex;

    /// An in-memory datapath: ring ports with `peer=` need the peer to exist, afxdp ports need
    /// an `iface` from `ifaces`, rules need `actions=` and existing `in_port`s.
    #[derive(Default)]
    pub(crate) struct FakeDp {
        pub(crate) state: Mutex<Vec<FakeBridge>>,
        pub(crate) ifaces: Vec<String>,
    }

    #[derive(Default, Clone)]
    pub(crate) struct FakeBridge {
        name: String,
        ports: Vec<(String, u32, PortSpec)>,
        flows: Vec<(u16, String)>,
    }

    fn e(s: impl Into<String>) -> DpError {
        DpError::new(s)
    }

    impl Datapath for FakeDp {
        fn add_bridge(&self, name: &str) -> Result<(), DpError> {
            let mut s = self.state.lock().unwrap();
            if s.iter().any(|b| b.name == name) {
                return Err(e("bridge exists"));
            }
            s.push(FakeBridge {
                name: name.into(),
                ..Default::default()
            });
            Ok(())
        }
        fn del_bridge(&self, name: &str) -> Result<(), DpError> {
            let mut s = self.state.lock().unwrap();
            let n = s.len();
            s.retain(|b| b.name != name);
            if s.len() == n {
                Err(e("no such bridge"))
            } else {
                Ok(())
            }
        }
        fn add_port(
            &self,
            bridge: &str,
            name: &str,
            spec: PortSpec,
            ofport: Option<u32>,
        ) -> Result<u32, DpError> {
            let mut s = self.state.lock().unwrap();
            if s.iter().any(|b| b.ports.iter().any(|p| p.0 == name)) {
                return Err(e(format!("port {name} exists")));
            }
            match spec.kind.as_str() {
                "ring" => {
                    if let Some(peer) = spec.options.get("peer")
                        && !s.iter().any(|b| b.ports.iter().any(|p| &p.0 == peer))
                    {
                        return Err(e(format!("peer {peer} not found")));
                    }
                }
                "afxdp" => {
                    let iface = spec
                        .options
                        .get("iface")
                        .ok_or_else(|| e("afxdp needs iface="))?;
                    if !self.ifaces.contains(iface) {
                        return Err(e(format!("interface {iface} not found")));
                    }
                }
                k => return Err(e(format!("unknown port type {k}"))),
            }
            let b = s
                .iter_mut()
                .find(|b| b.name == bridge)
                .ok_or_else(|| e("no such bridge"))?;
            let n = match ofport {
                Some(n) if b.ports.iter().any(|p| p.1 == n) => return Err(e("ofport in use")),
                Some(n) => n,
                None => b.ports.iter().map(|p| p.1).max().unwrap_or(0) + 1,
            };
            b.ports.push((name.into(), n, spec));
            Ok(n)
        }
        fn set_port(
            &self,
            name: &str,
            changes: &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, DpError> {
            let mut s = self.state.lock().unwrap();
            let p = s
                .iter_mut()
                .flat_map(|b| b.ports.iter_mut())
                .find(|p| p.0 == name)
                .ok_or_else(|| e("no such port"))?;
            for (k, v) in changes {
                if v.is_empty() {
                    p.2.options.remove(k);
                } else {
                    p.2.options.insert(k.clone(), v.clone());
                }
            }
            Ok(p.2.options.clone())
        }
        fn tnl_route_add(&self, _: &str, _: &str, _: Option<&str>) -> Result<(), DpError> {
            Err(e("no tunnels in the fake datapath"))
        }
        fn tnl_route_del(&self, _: &str) -> Result<(), DpError> {
            Err(e("no tunnels in the fake datapath"))
        }
        fn tnl_routes(&self) -> Vec<Route> {
            Vec::new()
        }
        fn tnl_neigh(&self) -> Vec<NeighEntry> {
            Vec::new()
        }
        fn tnl_neigh_flush(&self) {}
        fn del_port(&self, bridge: &str, name: &str) -> Result<(), DpError> {
            let mut s = self.state.lock().unwrap();
            let b = s
                .iter_mut()
                .find(|b| b.name == bridge)
                .ok_or_else(|| e("no such bridge"))?;
            let n = b.ports.len();
            b.ports.retain(|p| p.0 != name);
            if b.ports.len() == n {
                Err(e("no such port"))
            } else {
                Ok(())
            }
        }
        fn add_flow(&self, bridge: &str, text: &str) -> Result<(), DpError> {
            let mut s = self.state.lock().unwrap();
            let b = s
                .iter_mut()
                .find(|b| b.name == bridge)
                .ok_or_else(|| e("no such bridge"))?;
            if !text.contains("actions=") {
                return Err(e("rule has no actions="));
            }
            let mut prio = 32768;
            let mut canon = Vec::new();
            for t in text.split(',') {
                if let Some(p) = t.strip_prefix("priority=") {
                    prio = p.parse().map_err(|_| e("bad priority"))?;
                } else {
                    if let Some(p) = t.strip_prefix("in_port=")
                        && !b.ports.iter().any(|x| x.0 == p)
                    {
                        return Err(e(format!("unknown port {p}")));
                    }
                    canon.push(t);
                }
            }
            let canon = canon.join(",");
            b.flows.retain(|f| !(f.0 == prio && f.1 == canon));
            b.flows.push((prio, canon));
            Ok(())
        }
        fn del_flows(&self, bridge: &str, m: Option<&str>) -> Result<usize, DpError> {
            let mut s = self.state.lock().unwrap();
            let b = s
                .iter_mut()
                .find(|b| b.name == bridge)
                .ok_or_else(|| e("no such bridge"))?;
            let n = b.flows.len();
            b.flows.retain(|f| m.is_some_and(|m| !f.1.contains(m)));
            Ok(n - b.flows.len())
        }
        fn dump_flows(&self, bridge: &str) -> Result<Vec<FlowInfo>, DpError> {
            let s = self.state.lock().unwrap();
            let b = s
                .iter()
                .find(|b| b.name == bridge)
                .ok_or_else(|| e("no such bridge"))?;
            Ok(b.flows
                .iter()
                .map(|f| FlowInfo {
                    text: f.1.clone(),
                    priority: f.0,
                    n_packets: 0,
                    n_bytes: 0,
                })
                .collect())
        }
        fn bridges(&self) -> Vec<BridgeInfo> {
            let names: Vec<String> = self
                .state
                .lock()
                .unwrap()
                .iter()
                .map(|b| b.name.clone())
                .collect();
            names.iter().map(|n| self.bridge(n).unwrap()).collect()
        }
        fn bridge(&self, name: &str) -> Result<BridgeInfo, DpError> {
            let s = self.state.lock().unwrap();
            let b = s
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| e("no such bridge"))?;
            Ok(BridgeInfo {
                name: b.name.clone(),
                n_rules: b.flows.len(),
                ports: b
                    .ports
                    .iter()
                    .map(|p| datapath::PortInfo {
                        name: p.0.clone(),
                        ofport: p.1,
                        kind: p.2.kind.clone(),
                        options: p.2.options.clone(),
                        link_up: true,
                        status: vec![("xdp_mode".into(), "generic".into())],
                        stats: PortStats {
                            rx_packets: 5,
                            ..Default::default()
                        },
                        drops: vec![("no_match".into(), 2)],
                    })
                    .collect(),
            })
        }
        fn fdb(&self, bridge: &str) -> Result<Vec<FdbEntry>, DpError> {
            self.bridge(bridge)?;
            Ok(vec![FdbEntry {
                port: "p1".into(),
                vlan: 0,
                mac: [0x50, 0x54, 0, 0, 0, 5],
                age_secs: 3,
            }])
        }
        fn pmds(&self) -> Vec<PmdInfo> {
            vec![PmdInfo {
                id: 0,
                core: Some(1),
                rxqs: vec![("p1".into(), 0)],
                packets: 10,
                emc_hits: 7,
                megaflow_hits: 2,
                misses: 1,
                busy_ns: 3_000,
                idle_ns: 1_000,
                rx_bursts: 4,
                tsc_hz: 2_000_000_000,
            }]
        }
        fn shutdown(&self) {}
    }

    fn req(cmd: &str, args: &[&str]) -> Request {
        Request::new(cmd, args.iter().map(|s| s.to_string()).collect())
    }

    fn daemon(tag: &str, cfg: Config) -> (Daemon<FakeDp>, PathBuf, crate::config::tests::TempDir) {
        let dir = crate::config::tests::temp_dir(tag);
        let path = dir.join("state.json");
        let dp = FakeDp {
            ifaces: vec!["veth0".into()],
            ..Default::default()
        };
        (Daemon::new(dp, cfg, path.clone()), path, dir)
    }

    fn state(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn commands_update_model_and_state() {
        let (mut d, path, _dir) = daemon("cmds", Config::default());
        d.handle(&req("add-br", &["br0"])).unwrap();
        let v = d
            .handle(&req("add-port", &["br0", "p1", "type=ring"]))
            .unwrap();
        assert_eq!(v["ofport"], 1);
        d.handle(&req("add-port", &["br0", "p2", "type=ring", "peer=p1"]))
            .unwrap();
        d.handle(&req(
            "add-port",
            &["br0", "x1", "type=afxdp", "iface=veth0", "xdp-mode=native"],
        ))
        .unwrap();
        d.handle(&req(
            "add-flow",
            &["br0", "priority=100,in_port=p1,actions=output:p2"],
        ))
        .unwrap();
        d.handle(&req("add-flow", &["br0", "actions=drop"]))
            .unwrap();
        let saved = config::load(&path).unwrap();
        assert_eq!(&saved, d.config());
        let b = &saved.bridges[0];
        assert_eq!(b.ports.len(), 3);
        assert_eq!(b.ports[2].kind, "afxdp");
        assert_eq!(b.ports[2].options["xdp-mode"], "native");
        assert_eq!(
            b.flows,
            vec![
                "priority=100,in_port=p1,actions=output:p2",
                "priority=32768,actions=drop"
            ]
        );

        let before = state(&path);
        let bad: &[(&str, &[&str], &str)] = &[
            ("add-br", &["br0"], "already exists"),
            ("add-br", &["p1"], "name of a port"),
            ("add-br", &["a,b"], "invalid bridge name"),
            (
                "add-br",
                &[],
                "wrong number of arguments (usage: add-br BRIDGE)",
            ),
            (
                "add-port",
                &["br0", "p1", "type=ring"],
                "port p1 already exists on bridge br0",
            ),
            (
                "add-port",
                &["br9", "p9", "type=ring"],
                "no bridge named br9",
            ),
            ("add-port", &["br0", "p9"], "missing type="),
            (
                "add-port",
                &["br0", "p9", "type=ring", "peer=a", "peer=b"],
                "peer given twice",
            ),
            (
                "add-port",
                &["br0", "p9", "type=ring", "peer"],
                "malformed option",
            ),
            (
                "add-port",
                &["br0", "p9", "type=afxdp", "iface=nope"],
                "interface nope not found",
            ),
            (
                "add-flow",
                &["br0", "in_port=zz,actions=drop"],
                "unknown port zz",
            ),
            ("add-flow", &["br0", "garbage"], "no actions="),
            ("add-flow", &["br0", "a", "b"], "wrong number of arguments"),
            ("add-flow", &["br9", "actions=drop"], "no bridge named br9"),
            ("del-port", &["br0", "nope"], "bridge br0 has no port nope"),
            ("del-port", &["nope"], "no port named nope"),
            ("del-br", &["br9"], "no bridge named br9"),
            ("dump-flows", &["br9"], "no bridge named br9"),
            ("frobnicate", &[], "unknown command 'frobnicate'"),
            ("show", &["x"], "wrong number"),
        ];
        for (c, a, want) in bad {
            let err = d.handle(&req(c, a)).unwrap_err();
            assert!(err.contains(want), "{c} {a:?}: {err}");
        }
        assert_eq!(
            state(&path),
            before,
            "failed commands must not touch the state file"
        );

        let v = d.handle(&req("del-flows", &["br0", "in_port=p1"])).unwrap();
        assert_eq!(v["deleted"], 1);
        assert_eq!(
            config::load(&path).unwrap().bridges[0].flows,
            vec!["priority=32768,actions=drop"]
        );
        d.handle(&req("del-port", &["p2"])).unwrap();
        d.handle(&req("del-port", &["br0", "x1"])).unwrap();
        assert_eq!(config::load(&path).unwrap().bridges[0].ports.len(), 1);
        d.handle(&req("del-br", &["br0"])).unwrap();
        assert_eq!(config::load(&path).unwrap(), Config::default());
        assert!(d.datapath().bridges().is_empty());
    }

    #[test]
    fn read_commands() {
        let (mut d, _, _dir) = daemon("read", Config::default());
        d.handle(&req("add-br", &["br0"])).unwrap();
        d.handle(&req("add-port", &["br0", "p1", "type=ring"]))
            .unwrap();
        d.handle(&req("add-flow", &["br0", "priority=5,actions=drop"]))
            .unwrap();
        let show: ShowResult =
            serde_json::from_value(d.handle(&req("show", &[])).unwrap()).unwrap();
        assert_eq!(show.bridges[0].ports[0].ofport, 1);
        assert_eq!(show.bridges[0].ports[0].error, None);
        assert_eq!(show.bridges[0].n_rules, 1);
        let flows: Vec<FlowEntry> =
            serde_json::from_value(d.handle(&req("dump-flows", &["br0"])).unwrap()).unwrap();
        assert_eq!(flows[0].priority, 5);
        let ports: Vec<PortStatsEntry> =
            serde_json::from_value(d.handle(&req("dump-ports", &["br0"])).unwrap()).unwrap();
        assert_eq!(ports[0].rx_packets, 5);
        let fdb: Vec<FdbRow> =
            serde_json::from_value(d.handle(&req("fdb-show", &["br0"])).unwrap()).unwrap();
        assert_eq!(fdb[0].mac, "50:54:00:00:00:05");
        let pmds: Vec<PmdRow> =
            serde_json::from_value(d.handle(&req("pmd-stats", &[])).unwrap()).unwrap();
        assert_eq!(pmds[0].core, Some(1));
        let v: VersionInfo =
            serde_json::from_value(d.handle(&req("version", &[])).unwrap()).unwrap();
        assert_eq!(v.protocol_version, 1);
        d.shutdown();
        assert!(
            d.handle(&req("show", &[]))
                .unwrap_err()
                .contains("shutting down")
        );
    }

    #[test]
    fn restore_keeps_failures() {
        let port = |name: &str, ofport, kind: &str, opts: &[(&str, &str)]| PortConfig {
            name: name.into(),
            ofport,
            kind: kind.into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let cfg = Config {
            version: 1,
            tnl_routes: vec![],
            bridges: vec![
                BridgeConfig {
                    name: "br0".into(),
                    // p2's peer is on br1, restored later: needs a second pass.
                    ports: vec![
                        port("p2", 4, "ring", &[("peer", "q1")]),
                        port("x1", 2, "afxdp", &[("iface", "veth7")]),
                        port("p1", 1, "ring", &[]),
                    ],
                    flows: vec![
                        "priority=10,in_port=p1,actions=output:p2".into(),
                        "priority=9,in_port=x1,actions=drop".into(),
                    ],
                },
                BridgeConfig {
                    name: "br1".into(),
                    ports: vec![port("q1", 1, "ring", &[])],
                    flows: vec![],
                },
            ],
        };
        let (mut d, path, _dir) = daemon("restore", cfg.clone());
        assert_eq!(d.config(), &cfg);
        let show = d.show();
        let br0 = &show.bridges[0];
        assert_eq!(
            br0.ports
                .iter()
                .map(|p| (p.name.as_str(), p.ofport))
                .collect::<Vec<_>>(),
            [("p2", 4), ("x1", 2), ("p1", 1)]
        );
        assert_eq!(br0.ports[0].error, None);
        assert!(br0.ports[1].error.as_deref().unwrap().contains("veth7"));
        assert_eq!(br0.flow_errors.len(), 1);
        assert!(br0.flow_errors[0].error.contains("unknown port x1"));
        assert_eq!(br0.n_rules, 1);

        // The failed port keeps its name and its ofport.
        assert!(
            d.handle(&req("add-port", &["br0", "x1", "type=ring"]))
                .unwrap_err()
                .contains("already exists")
        );
        let v = d
            .handle(&req("add-port", &["br0", "p3", "type=ring"]))
            .unwrap();
        assert_eq!(v["ofport"], 3);
        // A later change keeps the failed rule in the configuration.
        d.handle(&req("add-flow", &["br0", "priority=1,actions=drop"]))
            .unwrap();
        let saved = config::load(&path).unwrap();
        assert!(
            saved.bridges[0]
                .flows
                .contains(&"priority=9,in_port=x1,actions=drop".to_string())
        );
        assert_eq!(saved.bridges[0].flows.len(), 3);
        assert!(
            saved.bridges[0]
                .ports
                .iter()
                .any(|p| p.name == "x1" && p.ofport == 2)
        );
        // The operator can remove the failed port.
        d.handle(&req("del-port", &["x1"])).unwrap();
        assert!(
            !config::load(&path).unwrap().bridges[0]
                .ports
                .iter()
                .any(|p| p.name == "x1")
        );
        // del-flows without a match clears the unrestorable rules too.
        d.handle(&req("del-flows", &["br0"])).unwrap();
        assert!(config::load(&path).unwrap().bridges[0].flows.is_empty());
        assert!(d.show().bridges[0].flow_errors.is_empty());
    }

    #[test]
    fn rule_text_keeps_priority() {
        let f = |t: &str| FlowInfo {
            text: t.into(),
            priority: 7,
            n_packets: 0,
            n_bytes: 0,
        };
        assert_eq!(
            rule_text(&f("priority=7,actions=drop")),
            "priority=7,actions=drop"
        );
        assert_eq!(
            rule_text(&f("in_port=p1,actions=drop")),
            "priority=7,in_port=p1,actions=drop"
        );
        assert_eq!(
            rule_text(&f("in_port=p1 actions=drop")),
            "priority=7,in_port=p1 actions=drop"
        );
        assert_eq!(
            rule_text(&f("priority=7 actions=drop")),
            "priority=7 actions=drop"
        );
    }
}
