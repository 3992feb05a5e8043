//! The configuration: the one source of truth for what the switch should be. Commands edit a
//! copy, [`Config::validate`] checks it, [`diff`] turns old → new into datapath changes, and
//! `persist` writes it to the state file as it is.

mod diff;

pub use diff::diff;

use std::collections::{BTreeMap, BTreeSet};

use datapath::{PortKind, PortSettings, Route};
use flowtable::{Action, MeterSpec, PortNo, RuleTable};

#[derive(Clone, Debug, Default)]
pub struct Config {
    pub bridges: Vec<Bridge>,
    /// Operator tunnel routes (`tnl-route-add`), in the order they were added.
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug)]
pub struct Bridge {
    pub name: String,
    /// Sorted by ofport.
    pub ports: Vec<Port>,
    /// In table order (priority, then insertion), OpenFlow add/delete semantics.
    pub rules: RuleTable,
    /// Meters (`add-meter`) by id, for rules' `meter:N` actions.
    pub meters: BTreeMap<u32, MeterSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub ofport: u32,
    pub kind: PortKind,
    pub settings: PortSettings,
}

/// Highest ofport (OpenFlow reserves 0xff00 and up).
pub const MAX_OFPORT: u32 = 0xfeff;

impl Bridge {
    pub fn new(name: &str) -> Bridge {
        Bridge {
            name: name.to_string(),
            ports: Vec::new(),
            rules: RuleTable::new(),
            meters: BTreeMap::new(),
        }
    }

    /// How many rules use meter `id`.
    pub fn rules_using_meter(&self, id: u32) -> usize {
        self.rules
            .rules()
            .iter()
            .filter(|r| r.rule.actions.contains(&Action::Meter(id)))
            .count()
    }

    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The ofport of a port named in rule text.
    pub fn ofport_of(&self, name: &str) -> Option<PortNo> {
        self.port(name).map(|p| p.ofport)
    }

    /// The name of a port, for rule text.
    pub fn name_of(&self, ofport: PortNo) -> Option<String> {
        self.ports
            .iter()
            .find(|p| p.ofport == ofport)
            .map(|p| p.name.clone())
    }

    /// The lowest ofport not in use.
    pub fn free_ofport(&self) -> u32 {
        (1..=MAX_OFPORT)
            .find(|n| !self.ports.iter().any(|p| p.ofport == *n))
            .unwrap_or(MAX_OFPORT + 1)
    }

    /// Adds a port with the lowest free ofport; returns the ofport.
    pub fn add_port(
        &mut self,
        name: &str,
        kind: PortKind,
        settings: PortSettings,
    ) -> Result<u32, String> {
        let ofport = self.free_ofport();
        if ofport > MAX_OFPORT {
            return Err(format!("bridge {} has no free ofport", self.name));
        }
        self.insert_port(Port {
            name: name.to_string(),
            ofport,
            kind,
            settings,
        });
        Ok(ofport)
    }

    /// Adds a port, keeping the ports sorted by ofport.
    pub fn insert_port(&mut self, p: Port) {
        let at = self.ports.partition_point(|q| q.ofport < p.ofport);
        self.ports.insert(at, p);
    }
}

impl Config {
    pub fn bridge(&self, name: &str) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.name == name)
    }

    pub fn bridge_mut(&mut self, name: &str) -> Option<&mut Bridge> {
        self.bridges.iter_mut().find(|b| b.name == name)
    }

    /// The port named `name`, with its bridge (port names are unique across the switch).
    pub fn port(&self, name: &str) -> Option<(&Bridge, &Port)> {
        self.bridges
            .iter()
            .find_map(|b| b.port(name).map(|p| (b, p)))
    }

    pub fn port_mut(&mut self, name: &str) -> Option<&mut Port> {
        self.bridges
            .iter_mut()
            .find_map(|b| b.ports.iter_mut().find(|p| p.name == name))
    }

    /// The bond that has a member named `name`.
    pub fn bond_of_member(&self, name: &str) -> Option<&Port> {
        self.bridges
            .iter()
            .flat_map(|b| &b.ports)
            .find(|p| match &p.kind {
                PortKind::Bond(b) => b.members.iter().any(|m| m.name == name),
                _ => false,
            })
    }

    /// What `name` already names, if anything.
    pub fn name_in_use(&self, name: &str) -> Option<&'static str> {
        if self.bridge(name).is_some() {
            Some("bridge")
        } else if self.port(name).is_some() {
            Some("port")
        } else if self.bond_of_member(name).is_some() {
            Some("bond member")
        } else {
            None
        }
    }

    /// Checks what the types cannot: unique names (bridges and ports share one namespace),
    /// ofports unique per bridge and in range, meters that rules use exist, routes through
    /// ports that exist.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        for b in &self.bridges {
            if !names.insert(b.name.as_str()) {
                return Err(format!("the name {} is used twice", b.name));
            }
        }
        for b in &self.bridges {
            let mut ofports = BTreeSet::new();
            for p in &b.ports {
                if !names.insert(p.name.as_str()) {
                    return Err(format!("the name {} is used twice", p.name));
                }
                if let PortKind::Bond(bond) = &p.kind {
                    for m in &bond.members {
                        if !names.insert(m.name.as_str()) {
                            return Err(format!("the name {} is used twice", m.name));
                        }
                    }
                }
                if !(1..=MAX_OFPORT).contains(&p.ofport) {
                    return Err(format!(
                        "port {}: ofport must be 1-{MAX_OFPORT}, not {}",
                        p.name, p.ofport
                    ));
                }
                if !ofports.insert(p.ofport) {
                    return Err(format!(
                        "ofport {} is used twice on bridge {}",
                        p.ofport, b.name
                    ));
                }
            }
            if !b.ports.is_sorted_by_key(|p| p.ofport) {
                return Err(format!("bridge {}: ports out of order", b.name));
            }
            for r in b.rules.rules() {
                for a in &r.rule.actions {
                    if let Action::Meter(id) = a
                        && !b.meters.contains_key(id)
                    {
                        return Err(format!(
                            "bridge {}: a rule uses meter {id}, which does not exist (add-meter first)",
                            b.name
                        ));
                    }
                }
            }
        }
        for r in &self.routes {
            if self.port(&r.port).is_none() {
                return Err(format!("tunnel route {} names no port {}", r.net, r.port));
            }
        }
        Ok(())
    }
}
