//! Old configuration → new configuration as the datapath changes that make one the other, in
//! an order the datapath accepts as one transaction: removals first (rules, ports, bridges),
//! then additions and changes, routes last.

use std::collections::HashMap;

use datapath::{Change, PortKind, PortSpec};
use flowtable::{Match, Rule};

use super::{Bridge, Config, Port};

pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    for ob in &old.bridges {
        let Some(nb) = new.bridge(&ob.name) else {
            removals.push(Change::DelBridge {
                name: ob.name.clone(),
            });
            continue;
        };
        bridge_diff(ob, nb, &mut removals, &mut additions);
    }
    for nb in &new.bridges {
        if old.bridge(&nb.name).is_none() {
            additions.push(Change::AddBridge {
                name: nb.name.clone(),
            });
            bridge_diff(&Bridge::new(&nb.name), nb, &mut removals, &mut additions);
        }
    }
    removals.extend(additions);
    if old.routes != new.routes {
        removals.push(Change::SetRoutes(new.routes.clone()));
    }
    removals
}

fn add_port(bridge: &str, p: &Port) -> Change {
    Change::AddPort {
        bridge: bridge.to_string(),
        port: PortSpec {
            name: p.name.clone(),
            ofport: p.ofport,
            kind: p.kind.clone(),
            settings: p.settings.clone(),
        },
    }
}

/// Two bonds with the same members that differ only in their bond settings (changed live).
fn bond_settings_only(old: &PortKind, new: &PortKind) -> bool {
    match (old, new) {
        (PortKind::Bond(o), PortKind::Bond(n)) => {
            o.members == n.members && o.settings != n.settings
        }
        _ => false,
    }
}

fn bridge_diff(
    old: &Bridge,
    new: &Bridge,
    removals: &mut Vec<Change>,
    additions: &mut Vec<Change>,
) {
    let br = &new.name;
    // Rules by identity (priority and match), so a large table diffs in linear time.
    let by_id = |b: &Bridge| -> HashMap<(u16, Match), Rule> {
        b.rules
            .rules()
            .iter()
            .map(|r| ((r.rule.priority, r.rule.m.clone()), r.rule.clone()))
            .collect()
    };
    let (old_rules, new_rules) = (by_id(old), by_id(new));
    // Rules first out (they may name ports going away), last in.
    for o in old.rules.rules() {
        if !new_rules.contains_key(&(o.rule.priority, o.rule.m.clone())) {
            removals.push(Change::DelRule {
                bridge: br.clone(),
                priority: o.rule.priority,
                m: o.rule.m.clone(),
            });
        }
    }
    for op in &old.ports {
        match new.port(&op.name) {
            Some(np) if np.ofport == op.ofport && bond_settings_only(&op.kind, &np.kind) => {
                if let PortKind::Bond(b) = &np.kind {
                    additions.push(Change::SetBond {
                        name: np.name.clone(),
                        settings: b.settings.clone(),
                    });
                }
                if np.settings != op.settings {
                    additions.push(Change::SetPort {
                        name: np.name.clone(),
                        settings: np.settings.clone(),
                    });
                }
            }
            Some(np) if np.kind == op.kind && np.ofport == op.ofport => {
                if np.settings != op.settings {
                    additions.push(Change::SetPort {
                        name: np.name.clone(),
                        settings: np.settings.clone(),
                    });
                }
            }
            Some(np) => {
                // A new type or ofport: a new port object.
                removals.push(Change::DelPort {
                    bridge: br.clone(),
                    name: op.name.clone(),
                });
                additions.push(add_port(br, np));
            }
            None => removals.push(Change::DelPort {
                bridge: br.clone(),
                name: op.name.clone(),
            }),
        }
    }
    for np in &new.ports {
        if old.port(&np.name).is_none() {
            additions.push(add_port(br, np));
        }
    }
    // Meters out after the rules that used them, in before the rules that use them.
    for id in old.meters.keys() {
        if !new.meters.contains_key(id) {
            removals.push(Change::DelMeter {
                bridge: br.clone(),
                id: *id,
            });
        }
    }
    for (id, m) in &new.meters {
        if old.meters.get(id) != Some(m) {
            additions.push(Change::SetMeter {
                bridge: br.clone(),
                id: *id,
                policer: crate::parse::qos::meter_policer(m),
            });
        }
    }
    for n in new.rules.rules() {
        let unchanged = old_rules.get(&(n.rule.priority, n.rule.m.clone())) == Some(&n.rule);
        if !unchanged {
            additions.push(Change::AddRule {
                bridge: br.clone(),
                rule: n.rule.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::{PortKind, PortSettings};
    use flowtable::parse_rule;
    use vlan_vxlan::VlanMode;

    fn ring(name: &str, ofport: u32) -> Port {
        Port {
            name: name.into(),
            ofport,
            kind: PortKind::Ring { peer: None },
            settings: PortSettings::default(),
        }
    }

    fn rule(b: &Bridge, text: &str) -> Rule {
        parse_rule(text, &|n| b.ofport_of(n)).unwrap()
    }

    fn names(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::AddBridge { name } => format!("+br {name}"),
                Change::DelBridge { name } => format!("-br {name}"),
                Change::AddPort { port, .. } => format!("+port {}", port.name),
                Change::DelPort { name, .. } => format!("-port {name}"),
                Change::SetPort { name, .. } => format!("set {name}"),
                Change::AddRule { rule, .. } => format!("+rule {}", rule.priority),
                Change::DelRule { priority, .. } => format!("-rule {priority}"),
                Change::SetRoutes(r) => format!("routes {}", r.len()),
                Change::SetMeter { id, .. } => format!("+meter {id}"),
                Change::DelMeter { id, .. } => format!("-meter {id}"),
                Change::SetBond { name, .. } => format!("bond {name}"),
            })
            .collect()
    }

    #[test]
    fn only_what_changed() {
        let mut old = Config::default();
        let mut b = Bridge::new("br0");
        b.insert_port(ring("p1", 1));
        b.insert_port(ring("p2", 2));
        let r = rule(&b, "priority=5,in_port=p1,actions=output:p2");
        b.rules.insert(r);
        old.bridges.push(b);
        assert!(diff(&old, &old.clone()).is_empty());

        let mut new = old.clone();
        let b = new.bridge_mut("br0").unwrap();
        b.insert_port(ring("p3", 3));
        b.ports[0].settings.vlan = VlanMode::Access(10);
        let r = rule(b, "priority=7,in_port=p3,actions=drop");
        b.rules.insert(r);
        new.bridges.push(Bridge::new("br1"));
        assert_eq!(
            names(&diff(&old, &new)),
            vec!["set p1", "+port p3", "+rule 7", "+br br1"]
        );
        // Back again: removals first.
        assert_eq!(
            names(&diff(&new, &old)),
            vec!["-rule 7", "-port p3", "-br br1", "set p1"]
        );
    }

    #[test]
    fn a_new_type_recreates_the_port_and_actions_replace_the_rule() {
        let mut old = Config::default();
        let mut b = Bridge::new("br0");
        b.insert_port(ring("p1", 1));
        let r = rule(&b, "priority=5,in_port=p1,actions=drop");
        b.rules.insert(r);
        old.bridges.push(b);
        let mut new = old.clone();
        let b = new.bridge_mut("br0").unwrap();
        b.ports[0].kind = PortKind::Ring {
            peer: Some("x".into()),
        };
        let r = rule(b, "priority=5,in_port=p1,actions=output:9");
        b.rules.insert(r);
        assert_eq!(
            names(&diff(&old, &new)),
            vec!["-port p1", "+port p1", "+rule 5"]
        );
    }
}
