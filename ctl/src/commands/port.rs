//! `add-port`, `del-port`, `set port`.

use serde_json::Value;

use crate::daemon::to_value;
use crate::model::Config;
use crate::parse::{bond, check_name, port, split_port_options, split_settings};
use crate::protocol::truncate;
use crate::results::AddPortResult;
use datapath::PortKind;

pub(super) fn add(
    cfg: &mut Config,
    br: &str,
    name: &str,
    opts: &[String],
) -> Result<Value, String> {
    super::bridge_of(cfg, br)?;
    check_name("port", name)?;
    if let Some((b, _)) = cfg.port(name) {
        return Err(format!("port {name} already exists on bridge {}", b.name));
    }
    if cfg.bridge(name).is_some() {
        return Err(format!("{name} is already the name of a bridge"));
    }
    let (kind, options) = split_port_options(opts)?;
    let (kind, settings) = port::parse_port(&kind, &options)?;
    let ofport = super::bridge_mut(cfg, br)?.add_port(name, kind, settings)?;
    tracing::info!(bridge = br, port = name, ofport, "port added");
    to_value(&AddPortResult { ofport })
}

pub(super) fn del(cfg: &mut Config, br: Option<&String>, name: &str) -> Result<Value, String> {
    let owner = cfg.port(name).map(|(b, _)| b.name.clone());
    let br = match (br, owner) {
        (Some(br), Some(owner)) if *br == owner => owner,
        (Some(br), _) => {
            super::bridge_of(cfg, br)?;
            return Err(format!("bridge {br} has no port {}", truncate(name, 64)));
        }
        (None, Some(owner)) => owner,
        (None, None) => return Err(format!("no port named {}", truncate(name, 64))),
    };
    let b = super::bridge_mut(cfg, &br)?;
    b.ports.retain(|p| p.name != name);
    cfg.routes.retain(|r| r.port != name);
    tracing::info!(bridge = %br, port = name, "port deleted");
    Ok(Value::Null)
}

pub(super) fn set(cfg: &mut Config, name: &str, tokens: &[String]) -> Result<Value, String> {
    let (bond_changes, changes): (Vec<_>, Vec<_>) = split_settings(tokens)?
        .into_iter()
        .partition(|(k, _)| bond::BOND_KEYS.contains(&k.as_str()));
    let p = cfg
        .port_mut(name)
        .ok_or_else(|| format!("no port named {}", truncate(name, 64)))?;
    if !bond_changes.is_empty() {
        let PortKind::Bond(spec) = &mut p.kind else {
            return Err(format!(
                "{} is not a bond: {} are bond settings",
                truncate(name, 64),
                bond_changes
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let mut o = bond::render_bond_settings(&spec.settings);
        for (k, v) in bond_changes {
            if v.is_empty() {
                o.remove(&k);
            } else {
                o.insert(k, v);
            }
        }
        let new = bond::parse_bond_settings(&o)?;
        if let Some(pr) = &new.primary
            && !spec.members.iter().any(|m| &m.name == pr)
        {
            return Err(format!("bond-primary={pr} is not a member of the bond"));
        }
        spec.settings = new;
    }
    let mut settings = port::render_settings(&p.settings);
    for (k, v) in changes {
        if v.is_empty() {
            settings.remove(&k);
        } else {
            settings.insert(k, v);
        }
    }
    let mut new = port::parse_settings(&settings)?;
    new.qos = p.settings.qos.take();
    new.policer = p.settings.policer.take();
    p.settings = new;
    tracing::info!(port = name, "port settings changed");
    Ok(Value::Null)
}
