//! `tnl-route-add`, `tnl-route-del`, `tnl-route-show`, `tnl-neigh-show`.

use datapath::{Ipv4Net, Route, format_mac};
use serde_json::Value;

use crate::daemon::{Daemon, to_value};
use crate::model::Config;
use crate::results::{NeighRow, RouteRow};

/// Adds (or replaces, same network) a route: remote VTEPs in PREFIX are reached through the
/// VTEP port PORT, via GATEWAY when given.
pub(super) fn route_add(
    cfg: &mut Config,
    prefix: &str,
    port: &str,
    gw: Option<&str>,
) -> Result<Value, String> {
    let net: Ipv4Net = prefix.parse()?;
    let gw = gw
        .map(|g| g.parse().map_err(|_| format!("bad gateway address {g:?}")))
        .transpose()?;
    let Some((_, p)) = cfg.port(port) else {
        return Err(format!("no port named {port}"));
    };
    if p.settings.vtep.is_none() {
        return Err(format!(
            "port {port} has no vtep_ip: set one with \"set port {port} vtep_ip=A.B.C.D/LEN\""
        ));
    }
    cfg.routes.retain(|r| r.net != net);
    cfg.routes.push(Route {
        net,
        port: port.to_string(),
        gw,
    });
    Ok(Value::Null)
}

pub(super) fn route_del(cfg: &mut Config, prefix: &str) -> Result<Value, String> {
    let net: Ipv4Net = prefix.parse()?;
    let before = cfg.routes.len();
    cfg.routes.retain(|r| r.net != net);
    if cfg.routes.len() == before {
        return Err(format!("no tunnel route {net}"));
    }
    Ok(Value::Null)
}

pub(super) fn routes(d: &Daemon) -> Result<Value, String> {
    let rows: Vec<RouteRow> = d
        .datapath()
        .tnl_routes()
        .into_iter()
        .map(|r| RouteRow {
            prefix: r.net.to_string(),
            port: r.port,
            gw: r.gw.map(|g| g.to_string()),
            origin: if r.connected { "connected" } else { "static" }.into(),
        })
        .collect();
    to_value(&rows)
}

pub(super) fn neighbours(d: &Daemon) -> Result<Value, String> {
    let rows: Vec<NeighRow> = d
        .datapath()
        .tnl_neigh()
        .into_iter()
        .map(|n| NeighRow {
            ip: n.ip.to_string(),
            mac: format_mac(&n.mac),
            port: n.port,
            age: n.age_secs,
        })
        .collect();
    to_value(&rows)
}
