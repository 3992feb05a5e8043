//! `set-qos`, `set-queue`, `clear-qos`, `set-policer`, `clear-policer` (edits of a port's
//! settings) and `qos-show` (its scheduler's and policer's counters).

use std::collections::BTreeMap;

use datapath::QosConfig;
use serde_json::Value;

use crate::daemon::{Daemon, to_value};
use crate::model::{Config, Port};
use crate::parse::qos;
use crate::parse::split_settings;
use crate::protocol::truncate;
use crate::results::{ColorRow, QosShowResult, QueueRow};

fn port_mut<'a>(cfg: &'a mut Config, name: &str) -> Result<&'a mut Port, String> {
    cfg.port_mut(name)
        .ok_or_else(|| format!("no port named {}", truncate(name, 64)))
}

/// `set-qos PORT max-rate=RATE [burst=BYTES] [overhead=N] [dscp-map=D:C,...] [pcp-map=P:C,...]`:
/// gives the port a scheduler (the default queues: classes 6 and 7 strict, the others
/// weighted by class) or changes the one it has.
pub(super) fn set_qos(cfg: &mut Config, name: &str, tokens: &[String]) -> Result<Value, String> {
    let options = split_settings(tokens)?;
    let p = port_mut(cfg, name)?;
    let base = p.settings.qos.clone().unwrap_or_default();
    p.settings.qos = Some(qos::parse_qos(&options, &base)?);
    tracing::info!(port = name, "qos set");
    Ok(Value::Null)
}

/// `set-queue PORT CLASS [strict] [strict=BOOL] [weight=W] [min-rate=R] [max-rate=R]
/// [limit=PACKETS] [limit-bytes=BYTES]` (a rate of `none` removes it).
pub(super) fn set_queue(
    cfg: &mut Config,
    name: &str,
    class: &str,
    tokens: &[String],
) -> Result<Value, String> {
    // `strict` alone is `strict=true`.
    let tokens: Vec<String> = tokens
        .iter()
        .map(|t| match t.as_str() {
            "strict" => "strict=true".to_string(),
            _ => t.clone(),
        })
        .collect();
    let options = split_settings(&tokens)?;
    let c = class
        .parse::<u8>()
        .ok()
        .and_then(::qos::TrafficClass::new)
        .ok_or_else(|| format!("unknown class {:?} (0-7)", truncate(class, 16)))?;
    let p = port_mut(cfg, name)?;
    let q = p.settings.qos.as_mut().ok_or_else(|| {
        format!("port {name} has no QoS: give it a rate first (set-qos {name} max-rate=RATE)")
    })?;
    let queue = &mut q.scheduler.queues[c.index()];
    *queue = qos::parse_queue(&options, queue)?;
    q.scheduler.validate()?;
    tracing::info!(port = name, class = c.value(), "queue set");
    Ok(Value::Null)
}

pub(super) fn clear_qos(cfg: &mut Config, name: &str) -> Result<Value, String> {
    port_mut(cfg, name)?.settings.qos = None;
    tracing::info!(port = name, "qos cleared");
    Ok(Value::Null)
}

/// `set-policer PORT [type=srtcm|trtcm|rfc4115] cir=RATE ...`: replaces the port's policer.
pub(super) fn set_policer(
    cfg: &mut Config,
    name: &str,
    tokens: &[String],
) -> Result<Value, String> {
    let options = split_settings(tokens)?;
    let p = port_mut(cfg, name)?;
    p.settings.policer = Some(qos::parse_policer(&options)?);
    tracing::info!(port = name, "policer set");
    Ok(Value::Null)
}

pub(super) fn clear_policer(cfg: &mut Config, name: &str) -> Result<Value, String> {
    port_mut(cfg, name)?.settings.policer = None;
    tracing::info!(port = name, "policer cleared");
    Ok(Value::Null)
}

/// `qos-show PORT`, after `ovs-appctl qos/show`: settings, then each queue's counters.
pub(super) fn show(d: &Daemon, name: &str) -> Result<Value, String> {
    let info = d.datapath().port_qos(name).map_err(|e| e.0)?;
    let default_cfg = QosConfig::default();
    let cfg = info.qos.as_ref().unwrap_or(&default_cfg);
    let queues = info
        .queues
        .iter()
        .map(|r| {
            let q = &cfg.scheduler.queues[usize::from(r.class)];
            QueueRow {
                class: r.class,
                strict: q.strict,
                weight: q.weight,
                min_rate: q.min_rate.map(qos::render_rate),
                max_rate: q.max_rate.map(qos::render_rate),
                limit: q.limit_packets,
                limit_bytes: q.limit_bytes,
                enqueued_packets: r.stats.enqueued_packets,
                enqueued_bytes: r.stats.enqueued_bytes,
                sent_packets: r.stats.sent_packets,
                sent_bytes: r.stats.sent_bytes,
                dropped_packets: r.stats.dropped_packets,
                dropped_bytes: r.stats.dropped_bytes,
                backlog_packets: r.backlog_packets,
                backlog_bytes: r.backlog_bytes,
                wait_p50_ns: r.wait_p50_ns,
                wait_p90_ns: r.wait_p90_ns,
                wait_p99_ns: r.wait_p99_ns,
                wait_max_ns: r.wait_max_ns,
            }
        })
        .collect();
    let policer_counts = info.policer_counts.map(|counts| {
        ::qos::Color::ALL
            .iter()
            .zip(counts)
            .map(|(c, (packets, bytes))| ColorRow {
                color: c.name().to_string(),
                packets,
                bytes,
            })
            .collect()
    });
    to_value(&QosShowResult {
        port: info.port,
        trust: qos::render_trust(info.trust),
        qos: info
            .qos
            .as_ref()
            .map(|q| qos::render_qos(q).0)
            .unwrap_or_else(BTreeMap::new),
        queues,
        policer: info.policer.as_ref().map(qos::render_policer),
        policer_counts,
    })
}
