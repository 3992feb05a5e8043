//! `add-bond`, `del-bond`, `bond-show`, `lacp-show`, `bond-set-active-member`. Live changes of
//! a bond's settings go through `set port BOND KEY=VALUE` (see `port::set`).

use std::collections::BTreeMap;

use datapath::{BondReport, PortKind, format_mac};
use serde_json::Value;

use crate::daemon::{Daemon, to_value};
use crate::model::Config;
use crate::parse::{bond, check_name};
use crate::protocol::truncate;
use crate::results::{AddPortResult, BondMemberRow, BondRow, LacpInfoRow, LacpMemberRow};

/// `add-bond BRIDGE BOND MEMBER... [KEY=VALUE...]`.
pub(super) fn add(
    cfg: &mut Config,
    br: &str,
    name: &str,
    tokens: &[String],
) -> Result<Value, String> {
    super::bridge_of(cfg, br)?;
    check_name("bond", name)?;
    let (members, options) = split(tokens)?;
    for n in std::iter::once(name).chain(members.iter().map(String::as_str)) {
        if let Some(what) = cfg.name_in_use(n) {
            return Err(format!(
                "{} is already the name of a {what}",
                truncate(n, 64)
            ));
        }
    }
    if members.iter().any(|m| m == name) {
        return Err(format!("bond {name} cannot be its own member"));
    }
    let (spec, settings) = bond::parse_bond(&members, &options)?;
    let ofport = super::bridge_mut(cfg, br)?.add_port(name, PortKind::Bond(spec), settings)?;
    tracing::info!(bridge = br, bond = name, ofport, "bond added");
    to_value(&AddPortResult { ofport })
}

/// Member names (tokens without `=`) and options (`KEY=VALUE`, keys may name a member:
/// `eth1.xdp-mode=native`).
fn split(tokens: &[String]) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let mut members = Vec::new();
    let mut options = BTreeMap::new();
    for t in tokens {
        match t.split_once('=') {
            None => members.push(t.clone()),
            Some((k, v)) => {
                if k.is_empty() || v.is_empty() || v.chars().any(char::is_control) {
                    return Err(format!("malformed option '{}'", truncate(t, 64)));
                }
                if options.insert(k.to_string(), v.to_string()).is_some() {
                    return Err(format!("option {} given twice", truncate(k, 64)));
                }
            }
        }
    }
    if members.is_empty() {
        return Err("add-bond needs at least one member".into());
    }
    Ok((members, options))
}

/// `del-bond [BRIDGE] BOND`.
pub(super) fn del(cfg: &mut Config, br: Option<&String>, name: &str) -> Result<Value, String> {
    match cfg.port(name) {
        Some((_, p)) if !matches!(p.kind, PortKind::Bond(_)) => {
            return Err(format!(
                "{} is not a bond (use del-port)",
                truncate(name, 64)
            ));
        }
        _ => {}
    }
    super::port::del(cfg, br, name)
}

/// `bond-show [BOND]` and `lacp-show [BOND]` (the same rows; the text differs).
pub(super) fn show(d: &Daemon, name: Option<&str>) -> Result<Value, String> {
    let reports = d.datapath().bonds(name).map_err(|e| e.to_string())?;
    to_value(&reports.iter().map(row).collect::<Vec<_>>())
}

pub(super) fn set_active(d: &Daemon, bond: &str, member: &str) -> Result<Value, String> {
    d.datapath()
        .bond_set_active_member(bond, member)
        .map_err(|e| e.to_string())?;
    Ok(Value::Null)
}

fn info(i: &::bond::lacp::PortInfo) -> LacpInfoRow {
    LacpInfoRow {
        system_id: format_mac(&i.system.mac),
        system_priority: i.system.priority,
        key: i.key,
        port_id: i.port,
        port_priority: i.port_priority,
        state: i.state.names().into_iter().map(str::to_string).collect(),
    }
}

fn row(r: &BondReport) -> BondRow {
    BondRow {
        name: r.name.clone(),
        settings: bond::render_bond_settings(&r.settings),
        bond_mode: r.settings.mode.name().into(),
        policy: r.policy.name().into(),
        lacp: r.settings.lacp.name().into(),
        lacp_negotiated: r.lacp_negotiated,
        system_id: r.lacp_system.map(|s| format_mac(&s.mac)),
        system_priority: r.lacp_system.map(|s| s.priority),
        key: r.lacp_key,
        failovers: r.failovers,
        learning_packets: r.learning_packets,
        buckets_moved: r.buckets_moved,
        rx_not_admitted: r.rx_not_admitted,
        slow_dropped: r.slow_dropped,
        tx_no_member: r.tx_no_member,
        members: r
            .members
            .iter()
            .map(|m| BondMemberRow {
                name: m.name.clone(),
                carrier: m.carrier,
                enabled: m.enabled,
                active: m.active,
                buckets: m.buckets,
                load_bytes: m.load_bytes,
                lacp: m
                    .lacp
                    .map(|(status, attached, actor, partner, c)| LacpMemberRow {
                        status: status.name().into(),
                        attached,
                        actor: info(&actor),
                        partner: info(&partner),
                        rx_pdus: c.rx_pdus,
                        rx_bad: c.rx_bad,
                        rx_looped: c.rx_looped,
                        rx_markers: c.rx_markers,
                        rx_marker_responses: c.rx_marker_responses,
                        tx_pdus: c.tx_pdus,
                        tx_marker_responses: c.tx_marker_responses,
                        link_expired: c.link_expired,
                        link_defaulted: c.link_defaulted,
                        carrier_changes: c.carrier_changes,
                    }),
            })
            .collect(),
    }
}
