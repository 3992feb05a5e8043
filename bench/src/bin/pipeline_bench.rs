//! Pipeline benchmark over in-memory ports: parse → caches → (slow path) → actions → tx batch,
//! one thread, 64-byte frames. Prints Mpps per core and ns / TSC cycles per packet.
//!
//! Usage: pipeline-bench [--seconds S] [--quick]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{frames, null_port::NullPort, tsc};
use datapath::bridge::{BridgePort, BridgeSnapshot, MacShared};
use datapath::packet::{Batch, MAX_BURST, PacketPool};
use datapath::pipeline::{BridgeLocal, process_batch};
use flowtable::{MacTable, RuleTable, parse_rule};

struct Case {
    name: &'static str,
    rules: &'static [&'static str],
    flows: u32,
}

fn bridge(rules: &[&str]) -> BridgeSnapshot {
    let ports: Vec<BridgePort> = (1..=2)
        .map(|i| BridgePort {
            ofport: i,
            vlan: Default::default(),
            vtep: None,
            port: Arc::new(NullPort::new(&format!("p{i}"))),
            drops: Arc::default(),
        })
        .collect();
    let mut table = RuleTable::new();
    for r in rules {
        let rule =
            parse_rule(r, &|n| n.strip_prefix('p').and_then(|d| d.parse().ok())).expect("rule");
        table.insert(rule);
    }
    let counters = table.rules().iter().map(|_| Arc::default()).collect();
    let mut macs = MacTable::new(8192, 300_000_000_000);
    // NORMAL knows the destination (learned on port 2), so it forwards instead of flooding.
    macs.learn(0, [0x02, 0, 0, 0, 0, 0x02], 2, 0);
    BridgeSnapshot::new(
        "br0".into(),
        ports,
        table,
        counters,
        Arc::new(MacShared::new(macs)),
    )
}

struct Result {
    mpps: f64,
    ns_per_pkt: f64,
    cycles_per_pkt: f64,
    emc: u64,
    mega: u64,
    miss: u64,
}

fn run(case: &Case, seconds: f64) -> Result {
    let br = bridge(case.rules);
    let mut local = BridgeLocal::new(&br);
    let mut pool = PacketPool::with_capacity(1024);
    let templates: Vec<Vec<u8>> = (0..case.flows).map(frames::udp64).collect();
    let mut batch = Batch::new();
    let mut next = 0usize;
    let mut fill = |batch: &mut Batch, pool: &mut PacketPool| {
        for _ in 0..MAX_BURST {
            let mut p = pool.get();
            p.set_data(&templates[next]);
            next += 1;
            if next == templates.len() {
                next = 0;
            }
            let _ = batch.push(p);
        }
    };
    // Warm up: every flow once through the slow path.
    for _ in 0..(case.flows as usize / MAX_BURST + 2) {
        fill(&mut batch, &mut pool);
        process_batch(&br, &mut local, 1, 0, &mut batch, &mut pool, 1);
    }
    let warm = local.cache.stats();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (t0, c0) = (Instant::now(), tsc::now());
    let mut pkts = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            fill(&mut batch, &mut pool);
            process_batch(&br, &mut local, 1, 0, &mut batch, &mut pool, 1);
        }
        pkts += 64 * MAX_BURST as u64;
    }
    let (ns, cycles) = (t0.elapsed().as_nanos() as f64, (tsc::now() - c0) as f64);
    let s = local.cache.stats();
    assert!(
        br.ports[1].port.stats().tx_packets >= pkts,
        "every packet must be forwarded"
    );
    Result {
        mpps: pkts as f64 / ns * 1e3,
        ns_per_pkt: ns / pkts as f64,
        cycles_per_pkt: cycles / pkts as f64,
        emc: s.emc_hits - warm.emc_hits,
        mega: s.megaflow_hits - warm.megaflow_hits,
        miss: s.misses - warm.misses,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(if quick { 0.2 } else { 2.0 });
    let rule = &["in_port=p1,actions=output:p2"][..];
    let normal = &[][..];
    let cases = [
        Case {
            name: "rule    1 flow",
            rules: rule,
            flows: 1,
        },
        Case {
            name: "rule    1k flows",
            rules: rule,
            flows: 1_000,
        },
        Case {
            name: "rule    100k flows",
            rules: rule,
            flows: 100_000,
        },
        Case {
            name: "NORMAL  1 flow",
            rules: normal,
            flows: 1,
        },
        Case {
            name: "NORMAL  1k flows",
            rules: normal,
            flows: 1_000,
        },
        Case {
            name: "NORMAL  100k flows",
            rules: normal,
            flows: 100_000,
        },
    ];
    let tpn = tsc::ticks_per_ns(100);
    println!(
        "pipeline-bench: 64 B UDP frames, batches of {MAX_BURST}, 1 thread, {seconds} s per case, TSC {tpn:.2} GHz"
    );
    println!(
        "(per packet: frame copy into a buffer as a port would, parse, EMC/megaflow lookup, actions, tx batch)"
    );
    println!(
        "{:<20} {:>8} {:>10} {:>12} {:>12} {:>12} {:>8}",
        "case", "Mpps", "ns/pkt", "cycles/pkt", "emc hits", "mf hits", "misses"
    );
    for c in &cases {
        let r = run(c, seconds);
        println!(
            "{:<20} {:>8.2} {:>10.1} {:>12.1} {:>12} {:>12} {:>8}",
            c.name, r.mpps, r.ns_per_pkt, r.cycles_per_pkt, r.emc, r.mega, r.miss
        );
    }
}
