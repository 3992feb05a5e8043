//! Prometheus metrics (`vswitchd --metrics ADDR:PORT`): what `dump-ports`, `pmd-stats`,
//! `fdb-show` and `bond-show` report, gathered from the datapath at scrape time and written in
//! the Prometheus text format by `prometheus-client` (the Prometheus project's own crate).
//! Nothing on the packet path changes: the PMDs' own counters are read when a scrape comes.
//!
//! The endpoint is its own thread ([`http`]), not an async runtime: one plain request at a time
//! from a Prometheus server needs nothing more, and it keeps the control plane free of a second
//! concurrency model.

pub mod http;
mod queues;

use std::sync::atomic::AtomicU64;

use datapath::Switch;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// A family of counters or gauges with the same label names, filled from one snapshot.
struct Metrics {
    registry: Registry,
}

impl Metrics {
    fn counter(&mut self, name: &str, help: &str, values: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, v) in values {
            family.get_or_create(&labels).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    fn seconds(&mut self, name: &str, help: &str, values: Vec<(Labels, f64)>) {
        let family = Family::<Labels, Counter<f64, AtomicU64>>::default();
        for (labels, v) in values {
            family.get_or_create(&labels).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    fn gauge(&mut self, name: &str, help: &str, values: Vec<(Labels, i64)>) {
        let family = Family::<Labels, Gauge>::default();
        for (labels, v) in values {
            family.get_or_create(&labels).set(v);
        }
        self.registry.register(name, help, family);
    }
}

/// The whole exposition, in the Prometheus text format (version 0.0.4).
pub fn render(sw: &Switch) -> String {
    let mut m = Metrics {
        registry: Registry::with_prefix("vswitch"),
    };
    m.gauge(
        "build_info",
        "vswitchd's version (the value is 1)",
        vec![(vec![("version", crate::PACKAGE_VERSION.to_string())], 1)],
    );
    ports(&mut m, sw);
    pmds(&mut m, sw);
    queues::rx_queues(&mut m, sw);
    queues::qos(&mut m, sw);
    queues::tunnels(&mut m, sw);
    bonds(&mut m, sw);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &m.registry);
    latency_summary(&mut out, sw);
    out
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

fn ports(m: &mut Metrics, sw: &Switch) {
    let bridges = sw.bridges();
    let mut c: [Vec<(Labels, u64)>; 6] = Default::default();
    let (mut drops, mut device, mut link, mut connected) = (vec![], vec![], vec![], vec![]);
    let (mut rules, mut fdb) = (vec![], vec![]);
    for b in &bridges {
        let bl = vec![("bridge", b.name.clone())];
        rules.push((bl.clone(), b.n_rules as i64));
        fdb.push((bl, sw.fdb(&b.name).map_or(0, |f| f.len()) as i64));
        for p in &b.ports {
            let l: Labels = vec![
                ("bridge", b.name.clone()),
                ("port", p.name.clone()),
                ("type", p.kind.to_string()),
            ];
            let s = &p.stats;
            let vals = [
                s.rx_packets,
                s.rx_bytes,
                s.rx_dropped,
                s.tx_packets,
                s.tx_bytes,
                s.tx_dropped,
            ];
            for (family, v) in c.iter_mut().zip(vals) {
                family.push((l.clone(), v));
            }
            for (reason, n) in &p.drops {
                let mut dl = l.clone();
                dl.push(("reason", reason.name().to_string()));
                drops.push((dl, *n));
            }
            for (name, n) in &p.device {
                let mut dl = l.clone();
                dl.push(("counter", name.clone()));
                device.push((dl, *n));
            }
            link.push((l.clone(), i64::from(p.link_up)));
            if let Some((_, v)) = p.status.iter().find(|(k, _)| *k == "connected") {
                connected.push((l, i64::from(v == "yes")));
            }
        }
    }
    let [rxp, rxb, rxd, txp, txb, txd] = c;
    m.counter("port_rx_packets", "Frames received on the port", rxp);
    m.counter("port_rx_bytes", "Bytes received on the port", rxb);
    m.counter(
        "port_rx_dropped",
        "Frames the port could not take in (ring full, no buffer, too big, device drops)",
        rxd,
    );
    m.counter("port_tx_packets", "Frames sent on the port", txp);
    m.counter("port_tx_bytes", "Bytes sent on the port", txb);
    m.counter(
        "port_tx_dropped",
        "Frames the port could not send (ring full, link down)",
        txd,
    );
    m.counter(
        "port_pipeline_drops",
        "Frames received on the port that the pipeline dropped, by reason",
        drops,
    );
    m.counter(
        "port_device",
        "The device's own counters (DPDK ports: missed, no buffer, errors, extended stats)",
        device,
    );
    m.gauge("port_link_up", "1 when the port's link is up", link);
    m.gauge(
        "port_vhost_user_connected",
        "1 when a vhost-user port's front-end (the VM) is connected",
        connected,
    );
    m.gauge("bridge_rules", "Rules in the bridge's table", rules);
    m.gauge(
        "bridge_fdb_entries",
        "MAC addresses the bridge has learned",
        fdb,
    );
}

fn pmds(m: &mut Metrics, sw: &Switch) {
    let mut c: [Vec<(Labels, u64)>; 6] = Default::default();
    let (mut busy, mut idle) = (vec![], vec![]);
    for p in sw.pmds() {
        let l: Labels = vec![
            ("pmd", p.id.to_string()),
            (
                "core",
                p.core.map_or_else(|| "none".to_string(), |c| c.to_string()),
            ),
        ];
        let vals = [
            p.packets,
            p.emc_hits,
            p.megaflow_hits,
            p.misses,
            p.invalidated,
            p.evicted,
        ];
        for (family, v) in c.iter_mut().zip(vals) {
            family.push((l.clone(), v));
        }
        busy.push((l.clone(), p.busy_ns as f64 / 1e9));
        idle.push((l, p.idle_ns as f64 / 1e9));
    }
    let [packets, emc, megaflow, misses, invalidated, evicted] = c;
    m.counter(
        "pmd_packets",
        "Frames the PMD received and processed",
        packets,
    );
    m.counter(
        "pmd_emc_hits",
        "Frames whose decision came from the exact-match cache",
        emc,
    );
    m.counter(
        "pmd_megaflow_hits",
        "Frames whose decision came from the megaflow cache",
        megaflow,
    );
    m.counter(
        "pmd_misses",
        "Frames that went to the rule tables (slow path)",
        misses,
    );
    m.counter(
        "pmd_cache_invalidated",
        "Cached decisions dropped because a rule, port or address they depend on changed",
        invalidated,
    );
    m.counter(
        "pmd_megaflows_evicted",
        "Megaflows dropped to make room for new ones",
        evicted,
    );
    m.seconds("pmd_busy_seconds", "Time in polls that found frames", busy);
    m.seconds("pmd_idle_seconds", "Time in polls that found none", idle);
}

/// Latency per port as a Prometheus summary (quantiles 0.5, 0.9, 0.99, 0.999, `_sum` and
/// `_count` in seconds and frames), over the last 5-second window and since start (`window`
/// label). Written by hand: prometheus-client has no summary type.
fn latency_summary(out: &mut String, sw: &Switch) {
    use std::fmt::Write as _;
    let latency = sw.port_latency();
    let name = "vswitch_port_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time received frames spend in the switch, receive burst to output.\n# TYPE {name} summary"
    );
    for l in &latency {
        for (window, p) in [("5s", &l.window), ("total", &l.total)] {
            let labels = format!(
                "bridge=\"{}\",port=\"{}\",window=\"{window}\"",
                escape(&l.bridge),
                escape(&l.port)
            );
            summary(out, name, &labels, p);
        }
    }
    let name = "vswitch_qos_queue_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time frames sent to a port with QoS wait in its egress scheduler, per class.\n# TYPE {name} summary"
    );
    for l in &latency {
        for c in &l.classes {
            for (window, p) in [("5s", &c.window), ("total", &c.total)] {
                let labels = format!(
                    "bridge=\"{}\",port=\"{}\",class=\"{}\",window=\"{window}\"",
                    escape(&l.bridge),
                    escape(&l.port),
                    c.class
                );
                summary(out, name, &labels, p);
            }
        }
    }
}

/// One summary series: its quantiles, `_sum` and `_count`.
fn summary(out: &mut String, name: &str, labels: &str, p: &datapath::Percentiles) {
    use std::fmt::Write as _;
    for (quantile, ns) in [
        ("0.5", p.p50_ns),
        ("0.9", p.p90_ns),
        ("0.99", p.p99_ns),
        ("0.999", p.p999_ns),
    ] {
        let _ = writeln!(
            out,
            "{name}{{{labels},quantile=\"{quantile}\"}} {}",
            ns / 1e9
        );
    }
    let sum = p.mean_ns * p.frames as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", p.frames);
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn bonds(m: &mut Metrics, sw: &Switch) {
    let Ok(reports) = sw.bonds(None) else {
        return;
    };
    let (mut enabled, mut negotiated, mut failovers) = (vec![], vec![], vec![]);
    for b in reports {
        let l: Labels = vec![("bond", b.name.clone())];
        if let Some(n) = b.lacp_negotiated {
            negotiated.push((l.clone(), i64::from(n)));
        }
        failovers.push((l, b.failovers));
        for mem in b.members {
            let ml: Labels = vec![("bond", b.name.clone()), ("member", mem.name)];
            enabled.push((ml, i64::from(mem.enabled)));
        }
    }
    m.gauge(
        "bond_member_enabled",
        "1 when the member carries traffic",
        enabled,
    );
    m.gauge(
        "bond_lacp_negotiated",
        "1 when LACP is negotiated (bonds with LACP)",
        negotiated,
    );
    m.counter("bond_failovers", "Changes of the active member", failovers);
}
