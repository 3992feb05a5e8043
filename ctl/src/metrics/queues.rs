//! Metrics per receive queue, per QoS class and policer colour, and of the tunnel tables.

use datapath::Switch;

use super::{Labels, Metrics};

/// Frames each receive queue took since it was placed on its PMD (a queue moved by
/// `pmd-rxq-rebalance` starts again from 0, which Prometheus treats as a counter reset).
pub(super) fn rx_queues(m: &mut Metrics, sw: &Switch) {
    let mut packets = Vec::new();
    for p in sw.pmds() {
        for q in p.rxqs {
            let l: Labels = vec![
                ("port", q.port),
                ("queue", q.queue.to_string()),
                ("pmd", p.id.to_string()),
            ];
            packets.push((l, q.packets));
        }
    }
    m.counter(
        "rxq_packets",
        "Frames the receive queue took since it was placed on its PMD",
        packets,
    );
}

/// Every port's egress scheduler per class, and its ingress policer per colour.
pub(super) fn qos(m: &mut Metrics, sw: &Switch) {
    let mut c: [Vec<(Labels, u64)>; 6] = Default::default();
    let (mut backlog, mut colours) = (vec![], vec![]);
    for b in sw.bridges() {
        for p in &b.ports {
            let Ok(info) = sw.port_qos(&p.name) else {
                continue;
            };
            let pl: Labels = vec![("bridge", b.name.clone()), ("port", p.name.clone())];
            for q in &info.queues {
                let mut l = pl.clone();
                l.push(("class", q.class.to_string()));
                let s = &q.stats;
                let vals = [
                    s.enqueued_packets,
                    s.enqueued_bytes,
                    s.sent_packets,
                    s.sent_bytes,
                    s.dropped_packets,
                    s.dropped_bytes,
                ];
                for (family, v) in c.iter_mut().zip(vals) {
                    family.push((l.clone(), v));
                }
                backlog.push((l, q.backlog_packets as i64));
            }
            if let Some(counts) = info.policer_counts {
                for (colour, (packets, _)) in ["green", "yellow", "red"].iter().zip(counts) {
                    let mut l = pl.clone();
                    l.push(("colour", colour.to_string()));
                    colours.push((l, packets));
                }
            }
        }
    }
    let [enq, enqb, sent, sentb, dropped, droppedb] = c;
    m.counter(
        "qos_queue_enqueued_packets",
        "Frames queued in the class",
        enq,
    );
    m.counter(
        "qos_queue_enqueued_bytes",
        "Bytes queued in the class",
        enqb,
    );
    m.counter(
        "qos_queue_sent_packets",
        "Frames of the class sent (queued or let straight through)",
        sent,
    );
    m.counter("qos_queue_sent_bytes", "Bytes of the class sent", sentb);
    m.counter(
        "qos_queue_dropped_packets",
        "Frames of the class dropped (queue full)",
        dropped,
    );
    m.counter(
        "qos_queue_dropped_bytes",
        "Bytes of the class dropped",
        droppedb,
    );
    m.gauge(
        "qos_queue_backlog_packets",
        "Frames waiting in the class's queue now",
        backlog,
    );
    m.counter(
        "port_policer_packets",
        "Frames the port's ingress policer coloured, by colour",
        colours,
    );
}

/// Sizes of the tunnel tables.
pub(super) fn tunnels(m: &mut Metrics, sw: &Switch) {
    m.gauge(
        "tunnel_routes",
        "Routes to tunnel endpoints (connected and static)",
        vec![(Vec::new(), sw.tnl_routes().len() as i64)],
    );
    m.gauge(
        "tunnel_neighbours",
        "Next hops of tunnel routes with a known MAC address",
        vec![(Vec::new(), sw.tnl_neigh().len() as i64)],
    );
}
