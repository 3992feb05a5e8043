//! `add-meter`, `del-meter`, `dump-meters`: OpenFlow meters as `ovs-ofctl` writes them.

use flowtable::{BandKind, format_meter, parse_meter};
use serde_json::Value;

use crate::daemon::{Daemon, to_value};
use crate::model::Config;
use crate::parse::qos::band_counts;
use crate::results::{MeterBandRow, MeterRow};

/// Adds the meter, or replaces the one with its id (its counts restart).
pub(super) fn add(cfg: &mut Config, br: &str, text: &str) -> Result<Value, String> {
    let b = super::bridge_mut(cfg, br)?;
    let m = parse_meter(text).map_err(|e| e.to_string())?;
    tracing::info!(bridge = br, meter = m.id, "meter set");
    b.meters.insert(m.id, m);
    Ok(Value::Null)
}

/// Deletes meter `meter=N` (or `N`); refused while a rule uses it.
pub(super) fn del(cfg: &mut Config, br: &str, which: &str) -> Result<Value, String> {
    let b = super::bridge_mut(cfg, br)?;
    let id: u32 = which
        .strip_prefix("meter=")
        .unwrap_or(which)
        .parse()
        .map_err(|_| format!("bad meter {which:?} (meter=N)"))?;
    if !b.meters.contains_key(&id) {
        return Err(format!("bridge {br} has no meter {id}"));
    }
    let users = b.rules_using_meter(id);
    if users > 0 {
        return Err(format!(
            "meter {id} is used by {users} rule(s): delete or change them first"
        ));
    }
    b.meters.remove(&id);
    tracing::info!(bridge = br, meter = id, "meter deleted");
    Ok(Value::Null)
}

/// Each meter with its bands' packet and byte counts (what each band's action applied to).
pub(super) fn dump(d: &Daemon, br: &str) -> Result<Value, String> {
    let b = super::bridge_of(d.config(), br)?;
    let live = d.datapath().meters(br).map_err(|e| e.0)?;
    let rows: Vec<MeterRow> = b
        .meters
        .values()
        .map(|m| {
            let counts = live
                .iter()
                .find(|l| l.id == m.id)
                .map(|l| l.counts)
                .unwrap_or_default();
            MeterRow {
                id: m.id,
                text: format_meter(m),
                packets: counts.iter().map(|c| c.0).sum(),
                bytes: counts.iter().map(|c| c.1).sum(),
                bands: m
                    .bands
                    .iter()
                    .map(|band| {
                        let (packets, bytes) = band_counts(m, &counts, band);
                        MeterBandRow {
                            kind: match band.kind {
                                BandKind::Drop => "drop".into(),
                                BandKind::DscpRemark { .. } => "dscp_remark".into(),
                            },
                            rate_kbps: band.rate,
                            packets,
                            bytes,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    to_value(&rows)
}
