//! `version`, `show`, `dump-ports`, `fdb-show`, `pmd-stats` / `pmd-rxq-show`,
//! `pmd-rxq-rebalance`.

use datapath::format_mac;
use serde_json::Value;

use crate::daemon::{Daemon, to_value};
use crate::parse::port;
use crate::protocol::PROTOCOL_VERSION;
use crate::results::*;

pub(super) fn version() -> Result<Value, String> {
    to_value(&VersionInfo {
        name: "vswitchd".into(),
        package_version: crate::PACKAGE_VERSION.into(),
        protocol_version: PROTOCOL_VERSION,
    })
}

/// The configuration, with live facts from the datapath and what failed to come up.
pub(super) fn show(d: &Daemon) -> Result<Value, String> {
    let live = d.datapath().bridges();
    let mut bridges = Vec::new();
    for b in &d.config().bridges {
        let info = live.iter().find(|i| i.name == b.name);
        let ports = b
            .ports
            .iter()
            .map(|p| {
                let pi = info.and_then(|i| i.ports.iter().find(|x| x.name == p.name));
                let error = match (d.unapplied(&p.name), pi) {
                    (Some(e), _) => Some(e.to_string()),
                    (None, None) => Some("not in the datapath".into()),
                    (None, Some(_)) => None,
                };
                let mut status: std::collections::BTreeMap<String, String> = pi
                    .map(|x| {
                        x.status
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some((entries, limits)) = d.datapath().port_learning(&p.name) {
                    status.insert(
                        "mac_learned".into(),
                        format!("{entries}/{}", limits.max_entries),
                    );
                    status.insert("mac_learn_rate".into(), format!("{}/s", limits.learn_rate));
                }
                ShowPort {
                    name: p.name.clone(),
                    ofport: p.ofport,
                    kind: p.kind.name().to_string(),
                    options: port::render(&p.kind, &p.settings),
                    link_up: pi.is_some_and(|x| x.link_up),
                    status,
                    error,
                }
            })
            .collect();
        bridges.push(ShowBridge {
            name: b.name.clone(),
            ports,
            n_rules: info.map(|i| i.n_rules).unwrap_or(0),
            error: info.is_none().then(|| "not in the datapath".to_string()),
            flow_errors: Vec::new(),
        });
    }
    to_value(&ShowResult { bridges })
}

pub(super) fn dump_ports(d: &Daemon, br: &str) -> Result<Value, String> {
    super::bridge_of(d.config(), br)?;
    let info = d.datapath().bridge(br).map_err(|e| e.0)?;
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
            drops: p
                .drops
                .into_iter()
                .map(|(r, n)| (r.name().to_string(), n))
                .collect(),
            device: p.device.into_iter().collect(),
        })
        .collect();
    to_value(&ports)
}

pub(super) fn latency(d: &Daemon, port: Option<&str>) -> Result<Value, String> {
    let all = d.datapath().port_latency();
    if let Some(p) = port
        && !all.iter().any(|l| l.port == p)
    {
        return Err(format!("no port named {p}"));
    }
    let us = |ns: f64| ns / 1000.0;
    let row = |p: &datapath::Percentiles| LatencyWindow {
        frames: p.frames,
        p50_us: us(p.p50_ns),
        p90_us: us(p.p90_ns),
        p99_us: us(p.p99_ns),
        p999_us: us(p.p999_ns),
        max_us: us(p.max_ns),
    };
    let rows: Vec<LatencyRow> = all
        .iter()
        .filter(|l| port.is_none_or(|p| l.port == p))
        .map(|l| LatencyRow {
            bridge: l.bridge.clone(),
            port: l.port.clone(),
            window: row(&l.window),
            total: row(&l.total),
            skipped: l.skipped,
            classes: l
                .classes
                .iter()
                .map(|c| ClassLatencyRow {
                    class: c.class,
                    window: row(&c.window),
                    total: row(&c.total),
                })
                .collect(),
        })
        .collect();
    to_value(&rows)
}

pub(super) fn fdb(d: &Daemon, br: &str) -> Result<Value, String> {
    super::bridge_of(d.config(), br)?;
    let rows: Vec<FdbRow> = d
        .datapath()
        .fdb(br)
        .map_err(|e| e.0)?
        .into_iter()
        .map(|e| FdbRow {
            port: e.port,
            vlan: e.vlan,
            mac: format_mac(&e.mac),
            age: e.age_secs,
        })
        .collect();
    to_value(&rows)
}

pub(super) fn pmds(d: &Daemon) -> Result<Value, String> {
    let rows: Vec<PmdRow> = d
        .datapath()
        .pmds()
        .into_iter()
        .map(|p| PmdRow {
            id: p.id,
            core: p.core,
            rxqs: p
                .rxqs
                .into_iter()
                .map(|q| RxqRow {
                    port: q.port,
                    queue: q.queue,
                    packets: q.packets,
                    cycles: q.cycles,
                })
                .collect(),
            packets: p.packets,
            emc_hits: p.emc_hits,
            megaflow_hits: p.megaflow_hits,
            misses: p.misses,
            invalidated: p.invalidated,
            evicted: p.evicted,
            busy_ns: p.busy_ns,
            idle_ns: p.idle_ns,
            rx_bursts: p.rx_bursts,
            tsc_hz: p.tsc_hz,
        })
        .collect();
    to_value(&rows)
}

pub(super) fn rebalance(d: &Daemon) -> Result<Value, String> {
    let moved = d.datapath().rebalance_rxqs();
    tracing::info!(moved, "receive queues rebalanced");
    to_value(&RebalanceResult { moved })
}
