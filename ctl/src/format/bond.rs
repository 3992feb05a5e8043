//! `bond-show` and `lacp-show`, after `ovs-appctl bond/show` and `lacp/show`.

use std::fmt::Write as _;

use crate::results::{BondRow, LacpInfoRow};

pub fn bond_show(rows: &[BondRow]) -> String {
    let mut out = String::new();
    for b in rows {
        let _ = writeln!(out, "---- {} ----", b.name);
        let running = if b.policy != b.bond_mode {
            format!(" (running as {})", b.policy)
        } else {
            String::new()
        };
        let _ = writeln!(out, "bond_mode: {}{running}", b.bond_mode);
        let lacp = match b.lacp_negotiated {
            Some(true) => format!("{} (negotiated)", b.lacp),
            Some(false) => format!("{} (not negotiated)", b.lacp),
            None => b.lacp.clone(),
        };
        let _ = writeln!(out, "lacp: {lacp}");
        for (k, v) in &b.settings {
            if k != "bond_mode" && k != "lacp" {
                let _ = writeln!(out, "{k}: {v}");
            }
        }
        let active = b
            .members
            .iter()
            .find(|m| m.active)
            .map_or("none", |m| m.name.as_str());
        let _ = writeln!(out, "active member: {active}");
        let _ = writeln!(
            out,
            "failovers: {}  learning packets: {}  buckets moved: {}  refused on inactive members: {}  slow frames dropped: {}  sent with no member: {}",
            b.failovers,
            b.learning_packets,
            b.buckets_moved,
            b.rx_not_admitted,
            b.slow_dropped,
            b.tx_no_member
        );
        for m in &b.members {
            let state = if m.enabled { "enabled" } else { "disabled" };
            let active = if m.active { " (active)" } else { "" };
            let _ = writeln!(out, "\nmember {}: {state}{active}", m.name);
            let _ = writeln!(out, "  carrier: {}", if m.carrier { "up" } else { "down" });
            if b.policy != "active-backup" {
                let _ = writeln!(
                    out,
                    "  buckets: {}  load: {} bytes",
                    m.buckets, m.load_bytes
                );
            }
            if let Some(l) = &m.lacp {
                let attached = if l.attached { "attached" } else { "detached" };
                let _ = writeln!(out, "  lacp: {} {attached}", l.status);
            }
        }
        out.push('\n');
    }
    out
}

fn info(out: &mut String, who: &str, i: &LacpInfoRow) {
    let _ = writeln!(out, "  {who} sys_id: {}", i.system_id);
    let _ = writeln!(out, "  {who} sys_priority: {}", i.system_priority);
    let _ = writeln!(out, "  {who} port_id: {}", i.port_id);
    let _ = writeln!(out, "  {who} port_priority: {}", i.port_priority);
    let _ = writeln!(out, "  {who} key: {}", i.key);
    let _ = writeln!(out, "  {who} state: {}", i.state.join(" "));
}

pub fn lacp_show(rows: &[BondRow]) -> String {
    let mut out = String::new();
    for b in rows {
        let _ = writeln!(out, "---- {} ----", b.name);
        let Some(neg) = b.lacp_negotiated else {
            let _ = writeln!(out, "  lacp: off\n");
            continue;
        };
        let status = if neg { "negotiated" } else { "not negotiated" };
        let _ = writeln!(out, "  status: {} {status}", b.lacp);
        if let Some(s) = &b.system_id {
            let _ = writeln!(out, "  sys_id: {s}");
        }
        if let Some(p) = b.system_priority {
            let _ = writeln!(out, "  sys_priority: {p}");
        }
        if let Some(k) = b.key {
            let _ = writeln!(out, "  aggregation key: {k}");
        }
        let time = b.settings.get("lacp-time").map_or("slow", String::as_str);
        let _ = writeln!(out, "  lacp_time: {time}");
        for m in &b.members {
            let Some(l) = &m.lacp else { continue };
            let attached = if l.attached { "attached" } else { "detached" };
            let _ = writeln!(out, "\nmember: {}: {} {attached}", m.name, l.status);
            info(&mut out, "actor", &l.actor);
            info(&mut out, "partner", &l.partner);
            let _ = writeln!(
                out,
                "  rx_pdus: {}  rx_bad: {}  rx_looped: {}  rx_markers: {}  rx_marker_responses: {}",
                l.rx_pdus, l.rx_bad, l.rx_looped, l.rx_markers, l.rx_marker_responses
            );
            let _ = writeln!(
                out,
                "  tx_pdus: {}  tx_marker_responses: {}  link_expired: {}  link_defaulted: {}  carrier_changes: {}",
                l.tx_pdus,
                l.tx_marker_responses,
                l.link_expired,
                l.link_defaulted,
                l.carrier_changes
            );
        }
        out.push('\n');
    }
    out
}
