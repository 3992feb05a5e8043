//! Configuration changes under a steady stream, with two PMD threads: adding and deleting an
//! unrelated port 100 times, and rules that do not match the stream, loses none of its frames
//! and never moves its receive queue to the other PMD.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use datapath::packet::{Batch, PacketPool};
use datapath::port::Port;
use datapath::ring::RingPort;
use datapath::{Change, PortKind, PortSettings, PortSpec, Switch, SwitchConfig};

const FRAMES: u64 = 100_000;

fn placement(sw: &Switch, port: &str) -> Vec<usize> {
    sw.pmds()
        .iter()
        .filter(|p| p.rxqs.iter().any(|q| q.port == port))
        .map(|p| p.id)
        .collect()
}

#[test]
fn port_and_rule_churn_lose_nothing_and_move_no_queue() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("SKIP: needs two CPUs for two PMDs");
        return;
    }
    let sw = Switch::start(SwitchConfig {
        pmd_cores: vec![0, 1],
        ..SwitchConfig::default()
    })
    .unwrap();
    sw.apply(vec![Change::AddBridge { name: "br0".into() }])
        .unwrap();
    let (p1, h1) = RingPort::pair("p1", "h1");
    let (p2, h2) = RingPort::pair("p2", "h2");
    let p1 = Arc::new(p1);
    let (h1, h2) = (Arc::new(h1), Arc::new(h2));
    sw.attach_port("br0", "p1", p1.clone(), PortSettings::default())
        .unwrap();
    sw.attach_port("br0", "p2", Arc::new(p2), PortSettings::default())
        .unwrap();
    add_flow(&sw, "br0", "priority=100,in_port=p1,actions=output:p2").unwrap();
    let (on1, on2) = (placement(&sw, "p1"), placement(&sw, "p2"));
    assert_eq!((on1.len(), on2.len()), (1, 1));
    assert_ne!(on1, on2, "the two queues are spread over the two PMDs");

    let churned = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let total = AtomicU64::new(u64::MAX);
    std::thread::scope(|s| {
        // The stream: FRAMES frames into p1, never more in flight than a ring holds (so a
        // slow test thread on a busy machine cannot overflow a ring: a loss is the switch's).
        s.spawn(|| {
            let mut pool = PacketPool::with_capacity(64);
            let f = simple(mac(2), mac(1), b"steady");
            let mut sent = 0;
            // At least FRAMES, and for as long as the churn lasts.
            while sent < FRAMES || !churned.load(Ordering::Relaxed) {
                if sent - received.load(Ordering::Relaxed) > 512 {
                    std::thread::yield_now();
                    continue;
                }
                let mut b = Batch::new();
                for _ in 0..32 {
                    let mut p = pool.get();
                    p.set_data(&f);
                    b.push(p).ok().unwrap();
                }
                assert_eq!(h1.tx_burst(&mut b, &mut pool), 32);
                sent += 32;
            }
            total.store(sent, Ordering::Relaxed);
        });
        // What comes out of p2.
        s.spawn(|| {
            let mut pool = PacketPool::with_capacity(64);
            let deadline = Instant::now() + Duration::from_secs(120);
            while received.load(Ordering::Relaxed) < total.load(Ordering::Relaxed)
                && Instant::now() < deadline
            {
                let mut b = Batch::new();
                let n = h2.rx_burst(0, &mut pool, &mut b);
                b.recycle(&mut pool);
                if n == 0 {
                    std::thread::yield_now();
                }
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        // The churn: an unrelated port in and out, and rules the stream does not match.
        let mut changes = 0;
        for i in 0..100u32 {
            sw.apply(vec![Change::AddPort {
                bridge: "br0".into(),
                port: PortSpec {
                    name: "churn".into(),
                    ofport: 9,
                    kind: PortKind::Ring { peer: None },
                    settings: PortSettings::default(),
                },
            }])
            .unwrap();
            add_flow(
                &sw,
                "br0",
                &format!("priority=200,tcp,tp_dst={},actions=drop", 1000 + i),
            )
            .unwrap();
            assert_eq!(placement(&sw, "p1"), on1, "p1's queue stays on its PMD");
            sw.apply(vec![Change::DelPort {
                bridge: "br0".into(),
                name: "churn".into(),
            }])
            .unwrap();
            changes += 3;
        }
        churned.store(true, Ordering::Relaxed);
        println!("{changes} changes under the stream");
    });
    let stats = sw.bridge("br0").unwrap();
    let p2_stats = stats.ports.iter().find(|p| p.name == "p2").unwrap();
    let (sent, got) = (
        total.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    println!("stream: {sent} frames sent, {got} received");
    assert!(sent >= FRAMES);
    assert_eq!(got, sent, "{stats:?}");
    assert_eq!(p2_stats.stats.tx_dropped, 0);
    assert_eq!((placement(&sw, "p1"), placement(&sw, "p2")), (on1, on2));
}

#[test]
fn rebalance_spreads_busy_queues_and_traffic_keeps_flowing() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("SKIP: needs two CPUs for two PMDs");
        return;
    }
    let sw = Switch::start(SwitchConfig {
        pmd_cores: vec![0, 1],
        ..SwitchConfig::default()
    })
    .unwrap();
    sw.apply(vec![Change::AddBridge { name: "br0".into() }])
        .unwrap();
    let mut hosts = Vec::new();
    for i in 1..=4 {
        let (p, h) = RingPort::pair(&format!("p{i}"), &format!("h{i}"));
        sw.attach_port(
            "br0",
            &format!("p{i}"),
            Arc::new(p),
            PortSettings::default(),
        )
        .unwrap();
        hosts.push(h);
    }
    // p1 and p3 carry traffic (to p2 and p4); new queues alternate PMDs, so both are on one.
    add_flow(&sw, "br0", "in_port=p1,actions=output:p2").unwrap();
    add_flow(&sw, "br0", "in_port=p3,actions=output:p4").unwrap();
    assert_eq!(placement(&sw, "p1"), placement(&sw, "p3"));
    let mut pool = PacketPool::with_capacity(64);
    let mut pump = |rounds: usize| {
        let f = simple(mac(9), mac(1), b"load");
        let mut got = 0;
        for _ in 0..rounds {
            for src in [0, 2] {
                let mut b = Batch::new();
                for _ in 0..32 {
                    let mut p = pool.get();
                    p.set_data(&f);
                    b.push(p).ok().unwrap();
                }
                hosts[src].tx_burst(&mut b, &mut pool);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut want = 64;
            while want > 0 && Instant::now() < deadline {
                for dst in [1, 3] {
                    let mut b = Batch::new();
                    let n = hosts[dst].rx_burst(0, &mut pool, &mut b);
                    b.recycle(&mut pool);
                    want -= n.min(want);
                    got += n;
                }
            }
        }
        got
    };
    assert_eq!(pump(200), 200 * 64);
    assert!(sw.rebalance_rxqs() > 0);
    assert_ne!(
        placement(&sw, "p1"),
        placement(&sw, "p3"),
        "{:?}",
        sw.pmds()
    );
    // Moved without a loss.
    assert_eq!(pump(200), 200 * 64);
    let shown: u64 = sw
        .pmds()
        .iter()
        .flat_map(|p| p.rxqs.iter())
        .filter(|q| q.port == "p1" || q.port == "p3")
        .map(|q| q.packets)
        .sum();
    assert!(
        shown > 0,
        "queue counters restart on their new PMD and count"
    );
}
