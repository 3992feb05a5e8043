//! `add-br`, `del-br`.

use serde_json::Value;

use crate::model::{Bridge, Config};
use crate::parse::check_name;

pub(super) fn add(cfg: &mut Config, name: &str) -> Result<Value, String> {
    check_name("bridge", name)?;
    if let Some(what) = cfg.name_in_use(name) {
        return Err(if what == "bridge" {
            format!("bridge {name} already exists")
        } else {
            format!("{name} is already the name of a port")
        });
    }
    cfg.bridges.push(Bridge::new(name));
    tracing::info!(bridge = name, "bridge added");
    Ok(Value::Null)
}

pub(super) fn del(cfg: &mut Config, name: &str) -> Result<Value, String> {
    super::bridge_of(cfg, name)?;
    cfg.bridges.retain(|b| b.name != name);
    // Tunnel routes through its ports go with it.
    let gone: Vec<_> = cfg
        .routes
        .iter()
        .filter(|r| cfg.port(&r.port).is_none())
        .map(|r| r.net)
        .collect();
    cfg.routes.retain(|r| !gone.contains(&r.net));
    tracing::info!(bridge = name, "bridge deleted");
    Ok(Value::Null)
}
