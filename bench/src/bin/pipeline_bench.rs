//! Pipeline benchmark over in-memory ports: parse → caches → (slow path) → actions → tx batch,
//! one thread, 64-byte frames. Prints Mpps per core and ns / TSC cycles per packet.
//!
//! Cases: a port-to-port rule and NORMAL with 1, 1,000 and 100,000 flows; VXLAN encapsulation
//! (bridge → tunnel port → underlay) and decapsulation (underlay VTEP → bridge) with 1 and 1,000
//! flows.
//!
//! Usage: pipeline-bench [--seconds S] [--quick] [--only TEXT]  (cases whose name contains TEXT)

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{frames, null_port::NullPort, tsc};
use datapath::bridge::{BridgePort, BridgeSnapshot, MacShared};
use datapath::packet::{Batch, MAX_BURST, PacketPool};
use datapath::pipeline::{BridgeLocal, process_batch};
use datapath::pmd::{RxScratch, RxqRef, Snapshot, receive_on_vtep};
use datapath::port::Port;
use datapath::tunnel::{
    Route, RouteTable, TunnelKey, TunnelRef, Tunnels, Vtep, VxlanConfig, VxlanPort,
};
use flowtable::{MacTable, RuleTable, parse_rule};
use vlan_vxlan::vxlan::{self, EncapParams};

#[derive(Clone, Copy)]
enum Kind {
    Rule,
    Normal,
    Encap,
    Decap,
}

struct Case {
    name: &'static str,
    kind: Kind,
    flows: u32,
}

const VTEP_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 2);
const VTEP_MAC: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];

fn port(ofport: u32, p: Arc<dyn Port>, vtep: Option<Vtep>) -> BridgePort {
    BridgePort {
        ofport,
        vlan: Default::default(),
        vtep,
        port: p,
        drops: Arc::default(),
    }
}

fn bridge(name: &str, ports: Vec<BridgePort>, rules: &[&str]) -> Arc<BridgeSnapshot> {
    let mut table = RuleTable::new();
    for r in rules {
        table.insert(
            parse_rule(r, &|n| n.strip_prefix('p').and_then(|d| d.parse().ok())).expect("rule"),
        );
    }
    let counters = table.rules().iter().map(|_| Arc::default()).collect();
    let mut macs = MacTable::new(8192, 300_000_000_000);
    // NORMAL knows the destination (learned on port 2), so it forwards instead of flooding.
    macs.learn(0, [0x02, 0, 0, 0, 0, 0x02], 2, 0);
    Arc::new(BridgeSnapshot::new(
        name.into(),
        ports,
        table,
        counters,
        Arc::new(MacShared::new(macs)),
    ))
}

/// br0 = p1 (input), p2 or the tunnel port (output); for tunnels also br-phy = u3, the VTEP.
fn snapshot(kind: Kind) -> Snapshot {
    let tunnels = Arc::new(Tunnels::default());
    let underlay: Arc<dyn Port> = Arc::new(NullPort::new("u3"));
    let vtep = Vtep {
        port_name: "u3".into(),
        port: underlay.clone(),
        ip: VTEP_IP,
        prefix_len: 24,
        mac: VTEP_MAC,
        mtu: 1500,
    };
    tunnels.routes.store(Arc::new(RouteTable {
        vteps: vec![vtep.clone()],
        routes: vec![Route {
            prefix: Ipv4Addr::new(192, 168, 50, 0),
            len: 24,
            port: "u3".into(),
            gw: None,
            user: false,
        }],
    }));
    tunnels.neigh().learn(PEER_IP, [2, 0xbb, 0, 0, 0, 2], "u3");
    let cfg = VxlanConfig {
        remote_ip: PEER_IP,
        local_ip: None,
        key: TunnelKey::Vni(5000),
        dst_port: 4789,
        ttl: 64,
    };
    let vx = Arc::new(VxlanPort::new("p2", cfg.clone(), tunnels.clone()));
    let p1: Arc<dyn Port> = Arc::new(NullPort::new("p1"));
    let mut snap = Snapshot::empty(1);
    snap.tunnels = tunnels;
    match kind {
        Kind::Rule | Kind::Normal => {
            let rules: &[&str] = if matches!(kind, Kind::Rule) {
                &["in_port=p1,actions=output:p2"]
            } else {
                &[]
            };
            snap.bridges.push(bridge(
                "br0",
                vec![
                    port(1, p1, None),
                    port(2, Arc::new(NullPort::new("p2")), None),
                ],
                rules,
            ));
        }
        Kind::Encap | Kind::Decap => {
            let rules: &[&str] = if matches!(kind, Kind::Encap) {
                &["in_port=p1,actions=output:p2"]
            } else {
                &["in_port=p2,actions=output:p1"]
            };
            snap.bridges.push(bridge(
                "br0",
                vec![port(1, p1, None), port(2, vx.clone(), None)],
                rules,
            ));
            snap.bridges.push(bridge(
                "brphy",
                vec![port(3, underlay, Some(vtep))],
                &["actions=drop"],
            ));
            snap.tunnel_ports.push(TunnelRef {
                bridge: 0,
                port: 1,
                cfg,
                vxlan: vx,
            });
        }
    }
    snap
}

/// The frames the input port receives: plain 64 B frames, or those inside VXLAN for decap.
fn templates(kind: Kind, flows: u32) -> Vec<Vec<u8>> {
    (0..flows)
        .map(|i| {
            let inner = frames::udp64(i);
            if !matches!(kind, Kind::Decap) {
                return inner;
            }
            let mut buf = vec![0u8; 64 + inner.len()];
            buf[64..].copy_from_slice(&inner);
            let p = EncapParams {
                src_mac: [2, 0xbb, 0, 0, 0, 2],
                dst_mac: VTEP_MAC,
                src_ip: PEER_IP.octets(),
                dst_ip: VTEP_IP.octets(),
                vni: 5000,
                src_port: vxlan::flow_src_port(u64::from(i)),
                dst_port: 4789,
                ttl: 64,
                df: true,
                tos: 0,
            };
            let (s, l) = vxlan::encap(&mut buf, 64, inner.len(), &p).expect("encap");
            buf[s..s + l].to_vec()
        })
        .collect()
}

struct Figures {
    mpps: f64,
    ns_per_pkt: f64,
    cycles_per_pkt: f64,
    emc: u64,
    mega: u64,
    miss: u64,
}

fn run(case: &Case, seconds: f64) -> Figures {
    let snap = snapshot(case.kind);
    let mut locals: Vec<BridgeLocal> = snap.bridges.iter().map(|b| BridgeLocal::new(b)).collect();
    let mut scratch = RxScratch::for_snapshot(&snap);
    let mut pool = PacketPool::with_capacity(1024);
    let templates = templates(case.kind, case.flows);
    let mut batch = Batch::new();
    let mut next = 0usize;
    let mut step = |batch: &mut Batch, pool: &mut PacketPool, locals: &mut Vec<BridgeLocal>| {
        for _ in 0..MAX_BURST {
            let mut p = pool.get();
            p.set_data(&templates[next]);
            next = (next + 1) % templates.len();
            let _ = batch.push(p);
        }
        match case.kind {
            Kind::Decap => {
                let q = RxqRef {
                    bridge: 1,
                    port: 0,
                    qid: 0,
                };
                receive_on_vtep(&snap, locals, &q, batch, pool, 1, &mut scratch);
            }
            _ => process_batch(&snap.bridges[0], &mut locals[0], 1, 0, batch, pool, 1),
        }
    };
    // Warm up: every flow once through the slow path.
    for _ in 0..(case.flows as usize / MAX_BURST + 2) {
        step(&mut batch, &mut pool, &mut locals);
    }
    let out_port = if matches!(case.kind, Kind::Decap) {
        0
    } else {
        1
    };
    let out_before = snap.bridges[0].ports[out_port].port.stats().tx_packets;
    let warm = locals[0].cache.stats();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (t0, c0) = (Instant::now(), tsc::now());
    let mut pkts = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            step(&mut batch, &mut pool, &mut locals);
        }
        pkts += 64 * MAX_BURST as u64;
    }
    let (ns, cycles) = (t0.elapsed().as_nanos() as f64, (tsc::now() - c0) as f64);
    let s = locals[0].cache.stats();
    let forwarded = snap.bridges[0].ports[out_port].port.stats().tx_packets - out_before;
    assert_eq!(forwarded, pkts, "every packet must be forwarded");
    Figures {
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
    let case = |name, kind, flows| Case { name, kind, flows };
    let cases = [
        case("rule    1 flow", Kind::Rule, 1),
        case("rule    1k flows", Kind::Rule, 1_000),
        case("rule    100k flows", Kind::Rule, 100_000),
        case("NORMAL  1 flow", Kind::Normal, 1),
        case("NORMAL  1k flows", Kind::Normal, 1_000),
        case("NORMAL  100k flows", Kind::Normal, 100_000),
        case("encap   1 flow", Kind::Encap, 1),
        case("encap   1k flows", Kind::Encap, 1_000),
        case("decap   1 flow", Kind::Decap, 1),
        case("decap   1k flows", Kind::Decap, 1_000),
    ];
    let tpn = tsc::ticks_per_ns(100);
    println!(
        "pipeline-bench: 64 B UDP frames, batches of {MAX_BURST}, 1 thread, {seconds} s per case, TSC {tpn:.2} GHz"
    );
    println!(
        "(per packet: frame copy into a buffer as a port would, parse, EMC/megaflow lookup, actions, tx batch;"
    );
    println!(
        " encap: + VXLAN headers, route and neighbour lookup per batch; decap: + VTEP check and outer validation)"
    );
    println!(
        "{:<20} {:>8} {:>10} {:>12} {:>12} {:>12} {:>8}",
        "case", "Mpps", "ns/pkt", "cycles/pkt", "emc hits", "mf hits", "misses"
    );
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    for c in cases
        .iter()
        .filter(|c| only.is_none_or(|o| c.name.contains(o.as_str())))
    {
        let r = run(c, seconds);
        println!(
            "{:<20} {:>8.2} {:>10.1} {:>12.1} {:>12} {:>12} {:>8}",
            c.name, r.mpps, r.ns_per_pkt, r.cycles_per_pkt, r.emc, r.mega, r.miss
        );
    }
}
