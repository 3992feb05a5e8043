//! Text rendering of command results for `vswitchctl` (styled after ovs-vsctl, ovs-ofctl and
//! ovs-appctl output).

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::results::*;

mod bond;
mod trace;

/// Renders `result` of `command` as text ("" when there is nothing to print). A result this
/// client does not understand (e.g. from a newer daemon) is printed as JSON.
pub fn render_text(command: &str, result: &Value) -> String {
    fn typed<T: DeserializeOwned>(v: &Value, f: impl FnOnce(T) -> String) -> String {
        match serde_json::from_value::<T>(v.clone()) {
            Ok(t) => f(t),
            Err(_) => json_pretty(v),
        }
    }
    match command {
        "add-br"
        | "del-br"
        | "add-port"
        | "del-port"
        | "add-flow"
        | "add-flows"
        | "del-flows"
        | "set"
        | "tnl-route-add"
        | "tnl-route-del"
        | "tnl-neigh-flush"
        | "batch"
        | "set-qos"
        | "set-queue"
        | "clear-qos"
        | "set-policer"
        | "clear-policer"
        | "add-meter"
        | "del-meter"
        | "add-bond"
        | "del-bond"
        | "bond-set-active-member" => String::new(),
        "bond-show" => typed(result, |r: Vec<BondRow>| bond::bond_show(&r)),
        "lacp-show" => typed(result, |r: Vec<BondRow>| bond::lacp_show(&r)),
        "dump-meters" => typed(result, |r: Vec<MeterRow>| dump_meters(&r)),
        "qos-show" => typed(result, |r: QosShowResult| qos_show(&r)),
        "pmd-rxq-rebalance" => typed(result, |r: RebalanceResult| {
            format!("{} receive queue(s) moved\n", r.moved)
        }),
        "pmd-rxq-show" => typed(result, |r: Vec<PmdRow>| pmd_rxq_show(&r)),
        "port-latency" => typed(result, |r: Vec<LatencyRow>| port_latency(&r)),
        "trace" => typed(result, |r: TraceResult| trace::trace(&r)),
        "tnl-route-show" => typed(result, |r: Vec<RouteRow>| tnl_routes(&r)),
        "tnl-neigh-show" => typed(result, |r: Vec<NeighRow>| tnl_neigh(&r)),
        "version" => typed(result, |v: VersionInfo| {
            format!(
                "vswitchctl {}\n{} {} (protocol version {})\n",
                crate::PACKAGE_VERSION,
                v.name,
                v.package_version,
                v.protocol_version
            )
        }),
        "show" => typed(result, |s: ShowResult| show(&s)),
        "dump-flows" => typed(result, |f: Vec<FlowEntry>| dump_flows(&f)),
        "dump-ports" => typed(result, |p: Vec<PortStatsEntry>| dump_ports(&p)),
        "fdb-show" => typed(result, |r: Vec<FdbRow>| fdb_show(&r)),
        "pmd-stats" => typed(result, |r: Vec<PmdRow>| pmd_stats(&r)),
        _ if result.is_null() => String::new(),
        _ => json_pretty(result),
    }
}

pub fn json_pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn braces<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let inner: Vec<String> = pairs.map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// `show`, after `ovs-vsctl show`.
pub fn show(s: &ShowResult) -> String {
    let mut out = String::new();
    if s.bridges.is_empty() {
        out.push_str("no bridges\n");
    }
    for b in &s.bridges {
        let _ = writeln!(out, "Bridge {}", b.name);
        if let Some(e) = &b.error {
            let _ = writeln!(out, "    error: {e}");
        }
        for p in &b.ports {
            let _ = writeln!(out, "    Port {} (ofport {})", p.name, p.ofport);
            let _ = writeln!(out, "        type: {}", p.kind);
            if !p.options.is_empty() {
                let _ = writeln!(out, "        options: {}", braces(p.options.iter()));
            }
            let _ = writeln!(
                out,
                "        link: {}",
                if p.link_up { "up" } else { "down" }
            );
            if !p.status.is_empty() {
                let _ = writeln!(out, "        status: {}", braces(p.status.iter()));
            }
            if let Some(e) = &p.error {
                let _ = writeln!(out, "        error: {e}");
            }
        }
        let _ = writeln!(out, "    rules: {}", b.n_rules);
        for f in &b.flow_errors {
            let _ = writeln!(out, "    rule not restored: {}", f.flow);
            let _ = writeln!(out, "        error: {}", f.error);
        }
    }
    out
}

/// `dump-flows`, after `ovs-ofctl dump-flows`.
pub fn dump_flows(flows: &[FlowEntry]) -> String {
    let mut out = String::new();
    for f in flows {
        let head = f.text.split("actions=").next().unwrap_or("");
        let has_prio = head
            .split([',', ' '])
            .any(|t| t.trim().starts_with("priority="));
        let _ = write!(out, " n_packets={}, n_bytes={}, ", f.n_packets, f.n_bytes);
        if !has_prio {
            let _ = write!(out, "priority={},", f.priority);
        }
        let _ = writeln!(out, "{}", f.text);
    }
    out
}

/// `dump-ports`, after `ovs-ofctl dump-ports`.
pub fn dump_ports(ports: &[PortStatsEntry]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ports", ports.len());
    for p in ports {
        let label = format!("  port {:>3} ({}): ", p.ofport, p.name);
        let pad = " ".repeat(label.chars().count());
        let _ = writeln!(
            out,
            "{label}rx pkts={}, bytes={}, drop={}",
            p.rx_packets, p.rx_bytes, p.rx_dropped
        );
        let _ = writeln!(
            out,
            "{pad}tx pkts={}, bytes={}, drop={}",
            p.tx_packets, p.tx_bytes, p.tx_dropped
        );
        if !p.drops.is_empty() {
            let reasons: Vec<String> = p.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
            let _ = writeln!(out, "{pad}pipeline drops: {}", reasons.join(", "));
        }
        if !p.device.is_empty() {
            let counters: Vec<String> = p.device.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(out, "{pad}device: {}", counters.join(", "));
        }
    }
    out
}

/// `dump-meters`, after `ovs-ofctl dump-meters`.
pub fn dump_meters(rows: &[MeterRow]) -> String {
    let mut out = String::new();
    for m in rows {
        let _ = writeln!(out, "{}", m.text);
        let _ = writeln!(
            out,
            "  packet_in_count:{} byte_in_count:{}",
            m.packets, m.bytes
        );
        for (i, b) in m.bands.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {i}: {} rate={} packet_count:{} byte_count:{}",
                b.kind, b.rate_kbps, b.packets, b.bytes
            );
        }
    }
    out
}

/// `qos-show`, after `ovs-appctl qos/show`.
pub fn qos_show(r: &QosShowResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "port {}: trust={}", r.port, r.trust);
    if r.queues.is_empty() {
        let _ = writeln!(out, "  no egress scheduler");
    } else {
        let _ = writeln!(out, "  scheduler: {}", braces(r.qos.iter()));
    }
    for q in &r.queues {
        let mut kind = if q.strict {
            "strict".to_string()
        } else {
            format!("weight={}", q.weight)
        };
        if let Some(m) = &q.min_rate {
            let _ = write!(kind, " min-rate={m}");
        }
        if let Some(m) = &q.max_rate {
            let _ = write!(kind, " max-rate={m}");
        }
        let _ = writeln!(
            out,
            "  queue {}: {kind} limit={}/{}B",
            q.class, q.limit, q.limit_bytes
        );
        let _ = writeln!(
            out,
            "    tx_packets={} tx_bytes={} dropped={} ({} bytes) backlog={} ({} bytes)",
            q.sent_packets,
            q.sent_bytes,
            q.dropped_packets,
            q.dropped_bytes,
            q.backlog_packets,
            q.backlog_bytes
        );
        if q.sent_packets > 0 {
            let _ = writeln!(
                out,
                "    waited us: P50 {:.1} P90 {:.1} P99 {:.1} max {:.1}",
                q.wait_p50_ns as f64 / 1e3,
                q.wait_p90_ns as f64 / 1e3,
                q.wait_p99_ns as f64 / 1e3,
                q.wait_max_ns as f64 / 1e3
            );
        }
    }
    if let Some(p) = &r.policer {
        let _ = writeln!(out, "  ingress policer: {}", braces(p.iter()));
        for c in r.policer_counts.iter().flatten() {
            let _ = writeln!(
                out,
                "    {}: packets={} bytes={}",
                c.color, c.packets, c.bytes
            );
        }
    }
    out
}

/// `fdb-show`, after `ovs-appctl fdb/show`.
pub fn fdb_show(rows: &[FdbRow]) -> String {
    let w = rows.iter().map(|r| r.port.len()).max().unwrap_or(0).max(5);
    let mut out = format!("{:>w$}  VLAN  MAC                Age\n", "port");
    for r in rows {
        let _ = writeln!(
            out,
            "{:>w$}  {:>4}  {}  {:>3}",
            r.port, r.vlan, r.mac, r.age
        );
    }
    out
}

/// `tnl-route-show`, after `ovs-appctl ovs/route/show`.
pub fn tnl_routes(rows: &[RouteRow]) -> String {
    let mut out = String::from("Route Table:\n");
    for r in rows {
        let _ = write!(
            out,
            "{} {} dev {}",
            if r.origin == "static" {
                "User:"
            } else {
                "Cached:"
            },
            r.prefix,
            r.port
        );
        if let Some(gw) = &r.gw {
            let _ = write!(out, " GW {gw}");
        }
        out.push('\n');
    }
    out
}

/// `tnl-neigh-show`, after `ovs-appctl tnl/neigh/show`.
pub fn tnl_neigh(rows: &[NeighRow]) -> String {
    let mut out = format!("{:<16} {:<18} {:<8} {}\n", "IP", "MAC", "Bridge", "Age");
    for r in rows {
        let _ = writeln!(out, "{:<16} {:<18} {:<8} {}", r.ip, r.mac, r.port, r.age);
    }
    out
}

/// `pmd-stats`, after `ovs-appctl dpif-netdev/pmd-stats-show`.
pub fn pmd_stats(rows: &[PmdRow]) -> String {
    let mut out = String::new();
    for p in rows {
        match p.core {
            Some(c) => {
                let _ = writeln!(out, "pmd thread {} core_id {c}:", p.id);
            }
            None => {
                let _ = writeln!(out, "pmd thread {} (unpinned):", p.id);
            }
        }
        let rxqs: Vec<String> = p
            .rxqs
            .iter()
            .map(|r| format!("{} queue {}", r.port, r.queue))
            .collect();
        let _ = writeln!(
            out,
            "  rx queues: {}",
            if rxqs.is_empty() {
                "none".into()
            } else {
                rxqs.join(", ")
            }
        );
        let _ = writeln!(out, "  packets received: {}", p.packets);
        let looked_up = p.emc_hits + p.megaflow_hits + p.misses;
        let share = |n: u64| {
            if looked_up == 0 {
                String::new()
            } else {
                format!(" ({:.1} %)", n as f64 * 100.0 / looked_up as f64)
            }
        };
        let _ = writeln!(out, "  emc hits: {}{}", p.emc_hits, share(p.emc_hits));
        let _ = writeln!(
            out,
            "  megaflow hits: {}{}",
            p.megaflow_hits,
            share(p.megaflow_hits)
        );
        let _ = writeln!(out, "  misses: {}{}", p.misses, share(p.misses));
        if p.invalidated + p.evicted > 0 {
            let _ = writeln!(
                out,
                "  cache entries invalidated: {}, evicted: {}",
                p.invalidated, p.evicted
            );
        }
        let total = p.busy_ns + p.idle_ns;
        if total > 0 {
            let _ = writeln!(
                out,
                "  busy: {:.1} % of {:.1} s polled",
                p.busy_ns as f64 * 100.0 / total as f64,
                total as f64 / 1e9
            );
            if p.packets > 0 {
                let _ = writeln!(
                    out,
                    "  busy ns/packet: {:.1}",
                    p.busy_ns as f64 / p.packets as f64
                );
                if p.tsc_hz > 0 {
                    let _ = writeln!(
                        out,
                        "  busy cycles/packet: {:.0} (TSC {:.2} GHz)",
                        p.busy_ns as f64 * p.tsc_hz as f64 / 1e9 / p.packets as f64,
                        p.tsc_hz as f64 / 1e9
                    );
                }
            }
            if p.rx_bursts > 0 {
                let _ = writeln!(
                    out,
                    "  avg packets per rx burst: {:.1}",
                    p.packets as f64 / p.rx_bursts as f64
                );
            }
        }
    }
    out
}

/// `port-latency`: per port, percentiles of the time received frames spend in the switch;
/// for a port with QoS, per class, of the time frames sent to it wait in its scheduler.
pub fn port_latency(rows: &[LatencyRow]) -> String {
    let mut out = String::from(
        "port             window    frames       P50 us    P90 us    P99 us  P99.9 us    max us\n",
    );
    let line = |out: &mut String, what: &str, name: &str, w: &LatencyWindow| {
        let _ = writeln!(
            out,
            "{what:<16} {name:<8} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            w.frames, w.p50_us, w.p90_us, w.p99_us, w.p999_us, w.max_us
        );
    };
    for r in rows {
        for (name, w) in [("last 5 s", &r.window), ("total", &r.total)] {
            line(&mut out, &r.port, name, w);
        }
    }
    let with_qos: Vec<&LatencyRow> = rows.iter().filter(|r| !r.classes.is_empty()).collect();
    if !with_qos.is_empty() {
        out.push_str("\nwaiting in the egress scheduler, per class:\n");
    }
    for r in with_qos {
        for c in &r.classes {
            let what = format!("{} class {}", r.port, c.class);
            for (name, w) in [("last 5 s", &c.window), ("total", &c.total)] {
                line(&mut out, &what, name, w);
            }
        }
    }
    out
}

/// `pmd-rxq-show`, after `ovs-appctl dpif-netdev/pmd-rxq-show`: each PMD's queues with the
/// share of the PMD's receive-and-process cycles each used since it was placed there.
pub fn pmd_rxq_show(rows: &[PmdRow]) -> String {
    let mut out = String::new();
    for p in rows {
        match p.core {
            Some(c) => {
                let _ = writeln!(out, "pmd thread {} core_id {c}:", p.id);
            }
            None => {
                let _ = writeln!(out, "pmd thread {} (unpinned):", p.id);
            }
        }
        let total: u64 = p.rxqs.iter().map(|r| r.cycles).sum();
        if p.rxqs.is_empty() {
            out.push_str("  no receive queues\n");
        }
        for r in &p.rxqs {
            let usage = if total == 0 {
                0.0
            } else {
                r.cycles as f64 * 100.0 / total as f64
            };
            let _ = writeln!(
                out,
                "  port: {:<16} queue-id: {:>2}  usage: {:5.1} %  packets: {}",
                r.port, r.queue, usage, r.packets
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders() {
        assert_eq!(render_text("add-br", &Value::Null), "");
        assert_eq!(render_text("del-flows", &json!({"deleted": 3})), "");
        let flows = json!([{"text": "priority=100,in_port=p1,actions=output:p2", "priority": 100, "n_packets": 3, "n_bytes": 180},
                           {"text": "actions=drop", "priority": 0, "n_packets": 0, "n_bytes": 0}]);
        assert_eq!(
            render_text("dump-flows", &flows),
            " n_packets=3, n_bytes=180, priority=100,in_port=p1,actions=output:p2\n n_packets=0, n_bytes=0, priority=0,actions=drop\n"
        );
        let fdb = json!([{"port": "p1", "vlan": 0, "mac": "50:54:00:00:00:05", "age": 3}]);
        assert_eq!(
            render_text("fdb-show", &fdb),
            " port  VLAN  MAC                Age\n   p1     0  50:54:00:00:00:05    3\n"
        );
        let show = json!({"bridges": [{"name": "br0", "n_rules": 1, "ports": [
            {"name": "p1", "ofport": 1, "type": "afxdp", "options": {"iface": "veth0"}, "link_up": false,
             "status": {"xdp_mode": "generic"}, "error": "interface veth0 not found"}]}]});
        let text = render_text("show", &show);
        assert!(text.contains("Port p1 (ofport 1)"), "{text}");
        assert!(text.contains("options: {iface=veth0}"));
        assert!(text.contains("status: {xdp_mode=generic}"));
        assert!(text.contains("error: interface veth0 not found"));
        assert!(text.contains("link: down"));
        let ports = json!([{"name": "p1", "ofport": 1, "rx_packets": 1, "rx_bytes": 2, "rx_dropped": 3, "tx_packets": 4,
            "tx_bytes": 5, "tx_dropped": 6, "drops": {"no_match": 2}}]);
        let text = render_text("dump-ports", &ports);
        assert!(text.contains("rx pkts=1, bytes=2, drop=3"), "{text}");
        assert!(text.contains("pipeline drops: no_match=2"));
        let pmds = json!([{"id": 0, "core": null, "rxqs": [{"port": "p1", "queue": 0}], "packets": 9, "emc_hits": 1, "megaflow_hits": 2, "misses": 3}]);
        assert!(render_text("pmd-stats", &pmds).contains("(unpinned)"));
        let pmds = json!([{"id": 0, "core": 1, "rxqs": [], "packets": 100, "emc_hits": 90, "megaflow_hits": 8,
            "misses": 2, "busy_ns": 10_000, "idle_ns": 10_000, "rx_bursts": 4, "tsc_hz": 2_000_000_000u64}]);
        let text = render_text("pmd-stats", &pmds);
        assert!(text.contains("emc hits: 90 (90.0 %)"), "{text}");
        assert!(text.contains("busy: 50.0 %"), "{text}");
        assert!(
            text.contains("busy cycles/packet: 200 (TSC 2.00 GHz)"),
            "{text}"
        );
        assert!(text.contains("avg packets per rx burst: 25.0"), "{text}");
        let pmds = json!([{"id": 0, "core": 1, "rxqs": [{"port": "p1", "queue": 0, "packets": 5, "cycles": 300},
            {"port": "p2", "queue": 1, "packets": 1, "cycles": 100}], "packets": 6, "emc_hits": 0, "megaflow_hits": 0, "misses": 0}]);
        let text = render_text("pmd-rxq-show", &pmds);
        assert!(
            text.contains("port: p1               queue-id:  0  usage:  75.0 %  packets: 5"),
            "{text}"
        );
        assert_eq!(
            render_text("pmd-rxq-rebalance", &json!({"moved": 2})),
            "2 receive queue(s) moved\n"
        );
        // Unknown shapes fall back to JSON.
        assert!(render_text("show", &json!({"x": 1})).contains("\"x\": 1"));
        assert!(render_text("new-command", &json!([1])).contains('1'));
    }
}
