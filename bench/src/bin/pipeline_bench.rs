//! Pipeline benchmark over in-memory ports: parse → caches → (slow path) → actions → tx batch,
//! one thread, 64-byte frames. Prints Mpps per core and ns / TSC cycles per packet.
//!
//! Cases: a port-to-port rule and NORMAL with 1, 1,000, 100,000 and 1,000,000 flows; the rule
//! with an egress scheduler (100 Gbit/s shaper, default queues) with 1 and 1,000 flows; the rule
//! out of a bond of two ports (active-backup, balance-slb) with 1 and 1,000 flows; VXLAN encapsulation
//! (bridge → tunnel port → underlay) and decapsulation (underlay VTEP → bridge) with 1 and 1,000
//! flows.
//!
//! Usage: pipeline-bench [--seconds S] [--rounds R] [--quick] [--only TEXT] [--packets N]
//!        [--no-latency]   (latency sampling off, as `vswitchd --no-latency`)
//!
//! Each case runs R rounds of S/R seconds and reports the median round (the machine is noisy).
//! `--only TEXT` keeps cases whose name contains TEXT. `--packets N` runs exactly N packets per
//! case instead, through `measured_loop` alone, for instruction counts under callgrind
//! (`bench/instructions.sh`).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bench::cli::Args;
use bench::rig::Rig;
use bench::{frames, tsc};
use datapath::harness::InPort;
use datapath::packet::{Batch, MAX_BURST, PacketPool};
use datapath::{
    BondMode, BondSettings, Change, PortKind, PortSettings, PortSpec, QosConfig, TunnelKey,
    VtepConfig, VxlanConfig,
};
use flowtable::EMC_INSERT_INV_PROB;
use qos::{SchedulerConfig, Shaper};
use vlan_vxlan::arp;
use vlan_vxlan::vxlan::{self, EncapParams};

#[derive(Clone, Copy)]
enum Kind {
    Rule,
    /// The port rule, with an egress scheduler on the output port (shaper far above what the
    /// pipeline can send, default queues, classes from the frames' DSCP).
    RuleQos,
    /// The port rule, out of a bond of two null ports: active-backup (one member takes all),
    /// and balance-slb (each frame hashed to a bucket, buckets over both members).
    RuleBondAb,
    RuleBondSlb,
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
const PEER_MAC: [u8; 6] = [2, 0xbb, 0, 0, 0, 2];

fn bridge(name: &str) -> Change {
    Change::AddBridge { name: name.into() }
}

/// br0 = p1 (input, ofport 1), p2 or the tunnel port (output, ofport 2); for tunnels also
/// br-phy = u3, the VTEP. Returns the rig, the input port and the port whose transmissions
/// count as forwarded.
fn rig(kind: Kind) -> (Rig, &'static str, &'static str) {
    let mut r = Rig::new();
    // A fixed time (a scheduler's advances by a microsecond a batch: see `Bench::step`).
    r.pmd.set_time(1);
    r.apply(vec![bridge("br0")]);
    r.null_port("br0", "p1", PortSettings::default());
    match kind {
        Kind::RuleBondAb | Kind::RuleBondSlb => {
            let mode = if matches!(kind, Kind::RuleBondAb) {
                BondMode::ActiveBackup
            } else {
                BondMode::BalanceSlb
            };
            let bond = BondSettings {
                mode,
                ..BondSettings::default()
            };
            r.null_bond("br0", "p2", 2, bond, PortSettings::default());
            r.rule("br0", "in_port=1,actions=output:2");
            (r, "p1", "p2")
        }
        Kind::Rule | Kind::RuleQos | Kind::Normal => {
            let qos = matches!(kind, Kind::RuleQos).then(|| QosConfig {
                scheduler: SchedulerConfig {
                    shaper: Some(Shaper {
                        rate: 100_000_000_000 / 8,
                        burst: 1 << 20,
                    }),
                    ..SchedulerConfig::default()
                },
                ..QosConfig::default()
            });
            r.null_port(
                "br0",
                "p2",
                PortSettings {
                    qos,
                    ..PortSettings::default()
                },
            );
            if !matches!(kind, Kind::Normal) {
                r.rule("br0", "in_port=1,actions=output:2");
            } else {
                // NORMAL knows the destination (learned on port 2), so it forwards instead of
                // flooding.
                let mut hello = frames::udp64(0);
                hello[0..6].copy_from_slice(&[0xff; 6]);
                hello[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
                r.inject("p2", &hello);
            }
            (r, "p1", "p2")
        }
        Kind::Encap | Kind::Decap => {
            r.apply(vec![
                Change::AddPort {
                    bridge: "br0".into(),
                    port: PortSpec {
                        name: "vx0".into(),
                        ofport: 2,
                        kind: PortKind::Vxlan(VxlanConfig {
                            remote_ip: PEER_IP,
                            local_ip: None,
                            key: TunnelKey::Vni(5000),
                            dst_port: 4789,
                            ttl: 64,
                        }),
                        settings: PortSettings::default(),
                    },
                },
                bridge("brphy"),
            ]);
            let vtep = PortSettings {
                vtep: Some(VtepConfig {
                    ip: VTEP_IP,
                    prefix_len: 24,
                    mac: Some(VTEP_MAC),
                }),
                ..PortSettings::default()
            };
            r.null_port("brphy", "u3", vtep);
            r.rule("brphy", "actions=drop");
            // The peer's ARP reply resolves its MAC.
            let ask = arp::request(VTEP_MAC, VTEP_IP.octets(), PEER_IP.octets());
            let req = arp::parse(&ask).expect("ARP request");
            r.inject("u3", &arp::reply(&req, PEER_MAC));
            if matches!(kind, Kind::Encap) {
                r.rule("br0", "in_port=1,actions=output:2");
                (r, "p1", "u3")
            } else {
                r.rule("br0", "in_port=2,actions=output:1");
                (r, "u3", "p1")
            }
        }
    }
}

/// The frames the input port receives, one after the other in one buffer (as in a port's
/// receive ring): a pointer chase per frame would add a cache miss that is the benchmark's,
/// not the pipeline's. Every frame of a case has the same length.
struct Templates {
    bytes: Vec<u8>,
    len: usize,
}

impl Templates {
    /// The frame at byte offset `at` (a multiple of the frame length).
    #[inline]
    fn frame(&self, at: usize) -> &[u8] {
        self.bytes.get(at..at + self.len).unwrap_or(&[])
    }

    /// The offset of the frame after the one at `at`, back to the first after the last.
    #[inline]
    fn next(&self, at: usize) -> usize {
        let n = at + self.len;
        if n == self.bytes.len() { 0 } else { n }
    }
}

/// Plain 64 B frames, or those inside VXLAN for decap.
fn templates(kind: Kind, flows: u32) -> Templates {
    let frames: Vec<Vec<u8>> = (0..flows)
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
        .collect();
    let len = frames[0].len();
    assert!(
        frames.iter().all(|f| f.len() == len),
        "frames of one length"
    );
    Templates {
        bytes: frames.concat(),
        len,
    }
}

struct Figures {
    mpps: f64,
    ns_per_pkt: f64,
    cycles_per_pkt: f64,
    emc: u64,
    mega: u64,
    miss: u64,
}

/// How long a case runs: a wall-clock time, or an exact packet count.
#[derive(Clone, Copy)]
enum Length {
    Seconds(f64),
    Packets(u64),
}

/// The case's input and output state, warmed up.
struct Bench {
    rig: Rig,
    input: InPort,
    output: &'static str,
    batch: Batch,
    templates: Templates,
    next: usize,
    /// For a scheduler: virtual time, a microsecond per batch (32 frames of 64 B per µs, far
    /// below the shaper's 100 Gbit/s), so no clock read is measured that the PMD loop would
    /// not make anyway (it reads its clock once per iteration, QoS or not).
    clock: Option<u64>,
}

impl Bench {
    fn new(case: &Case) -> Self {
        let (rig, input, output) = rig(case.kind);
        let mut b = Bench {
            rig,
            input: InPort::new(input),
            output,
            batch: Batch::new(),
            templates: templates(case.kind, case.flows),
            next: 0,
            // Well past the switch's real clock at start (when the scheduler was made).
            clock: matches!(case.kind, Kind::RuleQos).then_some(1_000_000_000_000),
        };
        // Warm up to the steady state: every flow through the slow path, then long enough for
        // megaflow hits to reach the EMC (one in EMC_INSERT_INV_PROB is copied there).
        let packets = (case.flows as usize * 2 * EMC_INSERT_INV_PROB as usize).min(2_000_000);
        for _ in 0..(packets / MAX_BURST + 2) {
            b.step();
        }
        b
    }

    /// One batch: copy frames in as a port would, then run the pipeline over it.
    #[inline(always)]
    fn step(&mut self) {
        let pool: &mut PacketPool = self.rig.pmd.pool();
        for _ in 0..MAX_BURST {
            let mut p = pool.get();
            p.set_data(self.templates.frame(self.next));
            self.next = self.templates.next(self.next);
            let _ = self.batch.push(p);
        }
        if let Some(t) = &mut self.clock {
            *t += 1000;
            self.rig.pmd.set_time(*t);
        }
        self.rig.pmd.receive(&mut self.input, &mut self.batch);
    }

    fn out_packets(&self) -> u64 {
        self.rig.sent(self.output)
    }
}

/// The measured part: `batches` batches and nothing else (callgrind counts only this function).
#[inline(never)]
fn measured_loop(b: &mut Bench, batches: u64) {
    for _ in 0..batches {
        b.step();
    }
}

fn run(case: &Case, length: Length) -> Figures {
    let mut b = Bench::new(case);
    let out_before = b.out_packets();
    let warm = b.rig.pmd.cache_stats();
    let (t0, c0) = (Instant::now(), tsc::now());
    let mut pkts = 0u64;
    match length {
        Length::Packets(n) => {
            let batches = n.div_ceil(MAX_BURST as u64);
            measured_loop(&mut b, batches);
            pkts = batches * MAX_BURST as u64;
        }
        Length::Seconds(s) => {
            let deadline = Instant::now() + Duration::from_secs_f64(s);
            while Instant::now() < deadline {
                measured_loop(&mut b, 64);
                pkts += 64 * MAX_BURST as u64;
            }
        }
    }
    let (ns, cycles) = (t0.elapsed().as_nanos() as f64, (tsc::now() - c0) as f64);
    let s = b.rig.pmd.cache_stats();
    let forwarded = b.out_packets() - out_before;
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

/// The round with the median cycles per packet.
fn median(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|a, b| a.cycles_per_pkt.total_cmp(&b.cycles_per_pkt));
    let mid = rounds.len() / 2;
    rounds.swap_remove(mid)
}

fn main() {
    let args = Args::from_env();
    let quick = args.flag("--quick");
    bench::rig::set_latency(!args.flag("--no-latency"));
    let seconds = args
        .value::<f64>("--seconds")
        .unwrap_or(if quick { 0.2 } else { 3.0 });
    let rounds = args
        .value::<usize>("--rounds")
        .unwrap_or(if quick { 1 } else { 5 })
        .max(1);
    let packets = args.value::<u64>("--packets");
    let case = |name, kind, flows| Case { name, kind, flows };
    let cases = [
        case("rule    1 flow", Kind::Rule, 1),
        case("rule    1k flows", Kind::Rule, 1_000),
        case("rule    100k flows", Kind::Rule, 100_000),
        case("rule    1M flows", Kind::Rule, 1_000_000),
        case("rule+qos 1 flow", Kind::RuleQos, 1),
        case("rule+qos 1k flows", Kind::RuleQos, 1_000),
        case("rule+bond-ab 1 flow", Kind::RuleBondAb, 1),
        case("rule+bond-ab 1k flows", Kind::RuleBondAb, 1_000),
        case("rule+bond-slb 1 flow", Kind::RuleBondSlb, 1),
        case("rule+bond-slb 1k flows", Kind::RuleBondSlb, 1_000),
        case("NORMAL  1 flow", Kind::Normal, 1),
        case("NORMAL  1k flows", Kind::Normal, 1_000),
        case("NORMAL  100k flows", Kind::Normal, 100_000),
        case("NORMAL  1M flows", Kind::Normal, 1_000_000),
        case("encap   1 flow", Kind::Encap, 1),
        case("encap   1k flows", Kind::Encap, 1_000),
        case("decap   1 flow", Kind::Decap, 1),
        case("decap   1k flows", Kind::Decap, 1_000),
    ];
    let tpn = tsc::ticks_per_ns(100);
    match packets {
        Some(n) => println!(
            "pipeline-bench: 64 B UDP frames, batches of {MAX_BURST}, 1 thread, {n} packets per case, TSC {tpn:.2} GHz"
        ),
        None => println!(
            "pipeline-bench: 64 B UDP frames, batches of {MAX_BURST}, 1 thread, {seconds} s per case \
             in {rounds} rounds interleaved across cases (median round shown), TSC {tpn:.2} GHz"
        ),
    }
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
    let only = args.text("--only");
    let chosen: Vec<&Case> = cases
        .iter()
        .filter(|c| only.is_none_or(|o| c.name.contains(o)))
        .collect();
    // Rounds go over all cases in turn (case 1, case 2, ..., then again), so that a slow spell
    // of this machine lands on one round of several cases, not on every round of one case: the
    // cases' medians stay comparable with each other.
    let results: Vec<Figures> = match packets {
        Some(n) => chosen.iter().map(|c| run(c, Length::Packets(n))).collect(),
        None => {
            let mut per_case: Vec<Vec<Figures>> = chosen.iter().map(|_| Vec::new()).collect();
            for _ in 0..rounds {
                for (c, figures) in chosen.iter().zip(per_case.iter_mut()) {
                    figures.push(run(c, Length::Seconds(seconds / rounds as f64)));
                }
            }
            per_case.into_iter().map(median).collect()
        }
    };
    for (c, r) in chosen.iter().zip(results) {
        println!(
            "{:<20} {:>8.2} {:>10.1} {:>12.1} {:>12} {:>12} {:>8}",
            c.name, r.mpps, r.ns_per_pkt, r.cycles_per_pkt, r.emc, r.mega, r.miss
        );
    }
}
