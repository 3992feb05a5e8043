//! What other traffic and configuration changes cost a steady stream: one thread runs the real
//! pipeline, caches and control plane (no I/O) for a 1,000-flow stream p1 → p2 on port rules,
//! while, between its batches, a third port p3 (NORMAL) receives frames from random source
//! MACs, or rules that do not match the stream are added and deleted, or a port is added and
//! deleted. Only the stream's own batches are timed: their cycles include what the others make
//! the PMD do for them (cache invalidations, snapshot pick-up), not the others' own processing.
//!
//! The interference rates are given per steady packet; the equivalent per second is at the
//! live vhost-user loop's rate of about 9 Mpps (e.g. 1 flood frame per 90 steady ones ≈ 100k
//! frames/s). Figures: steady cycles per packet (median round), its EMC hit share, steady
//! packets lost (must be 0), what the interference did.
//!
//! Usage: interference-bench [--seconds S] [--rounds R] [--quick] [--only TEXT]
//! (`--only` keeps the cases whose name contains TEXT, and the stream alone.)

use std::time::{Duration, Instant};

use bench::cli::Args;
use bench::rig::Rig;
use bench::{frames, tsc};
use datapath::harness::InPort;
use datapath::packet::{Batch, MAX_BURST};
use datapath::{Change, PortKind, PortSettings, PortSpec};
use flowtable::parse_rule;

const STEADY_FLOWS: u32 = 1000;
/// The live loop's rate, to turn "per steady packet" into "per second".
const LIVE_PPS: f64 = 9e6;

#[derive(Clone, Copy)]
enum Kind {
    Steady,
    /// One frame with a random source MAC per `n` steady packets.
    Flood(u64),
    /// One rule added or deleted per `n` steady packets.
    RuleChurn(u64),
    /// One port added or deleted per `n` steady packets.
    PortChurn(u64),
}

struct Case {
    name: &'static str,
    kind: Kind,
}

#[derive(Default, Clone, Copy)]
struct Round {
    steady_pkts: u64,
    steady_cycles: u64,
    steady_emc: u64,
    lost: u64,
    interfering: u64,
    invalidated: u64,
    learn_refused: u64,
    /// TSC cycles spent on the interfering frames' own batches (floods only).
    interfering_cycles: u64,
}

struct Bench {
    rig: Rig,
    steady_in: InPort,
    flood_in: InPort,
    steady: Vec<Vec<u8>>,
    next: usize,
    rng: u64,
    rules: u64,
    ports: u64,
}

impl Bench {
    fn new() -> Bench {
        let mut rig = Rig::new();
        rig.apply(vec![Change::AddBridge { name: "br0".into() }]);
        for p in ["p1", "p2", "p3"] {
            rig.null_port("br0", p, PortSettings::default());
        }
        rig.rule("br0", "priority=100,in_port=1,actions=output:2");
        rig.rule("br0", "priority=0,actions=NORMAL");
        let mut b = Bench {
            rig,
            steady_in: InPort::new("p1"),
            flood_in: InPort::new("p3"),
            steady: (0..STEADY_FLOWS).map(frames::udp64).collect(),
            next: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            rules: 0,
            ports: 0,
        };
        // Warm up: every flow in the caches and copied to the EMC.
        for _ in 0..(STEADY_FLOWS as usize * 2 * 64 / MAX_BURST) {
            b.steady_batch();
        }
        b
    }

    fn steady_batch(&mut self) {
        let mut batch = Batch::new();
        let pool = self.rig.pmd.pool();
        for _ in 0..MAX_BURST {
            let mut p = pool.get();
            p.set_data(&self.steady[self.next]);
            self.next = (self.next + 1) % self.steady.len();
            let _ = batch.push(p);
        }
        self.rig.pmd.receive(&mut self.steady_in, &mut batch);
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// `n` broadcast frames from random (unicast) source MACs into p3.
    fn flood(&mut self, n: usize) {
        let mut batch = Batch::new();
        let mut f = frames::udp64(0);
        f[0..6].copy_from_slice(&[0xff; 6]);
        for _ in 0..n {
            let r = self.random().to_le_bytes();
            f[6..12].copy_from_slice(&[(r[0] & 0xfe) | 0x02, r[1], r[2], r[3], r[4], r[5]]);
            let mut p = self.rig.pmd.pool().get();
            p.set_data(&f);
            let _ = batch.push(p);
        }
        self.rig.pmd.receive(&mut self.flood_in, &mut batch);
    }

    /// Adds a TCP rule (the stream is UDP), or deletes the one added 100 changes ago.
    fn rule_change(&mut self) {
        let i = self.rules;
        self.rules += 1;
        let text = |i: u64| {
            format!(
                "priority=200,tcp,nw_dst=10.99.{}.{},tp_dst=80,actions=drop",
                (i / 256) % 256,
                i % 256
            )
        };
        let change = if i.is_multiple_of(2) || i < 200 {
            Change::AddRule {
                bridge: "br0".into(),
                rule: parse_rule(&text(i), &|_| None).expect("rule"),
            }
        } else {
            let r = parse_rule(&text(i - 199), &|_| None).expect("rule");
            Change::DelRule {
                bridge: "br0".into(),
                priority: r.priority,
                m: r.m,
            }
        };
        // A rule already gone (deleted twice over the run) is fine to skip.
        let _ = self.rig.sw.apply(vec![change]);
    }

    /// Adds the port `churn`, or deletes it.
    fn port_change(&mut self) {
        let add = self.ports.is_multiple_of(2);
        self.ports += 1;
        let change = if add {
            Change::AddPort {
                bridge: "br0".into(),
                port: PortSpec {
                    name: "churn".into(),
                    ofport: 9,
                    kind: PortKind::Ring { peer: None },
                    settings: PortSettings::default(),
                },
            }
        } else {
            Change::DelPort {
                bridge: "br0".into(),
                name: "churn".into(),
            }
        };
        self.rig.apply(vec![change]);
    }

    fn run(&mut self, kind: Kind, seconds: f64) -> Round {
        let mut r = Round::default();
        let sent0 = self.rig.sent("p2");
        let stats0 = self.rig.pmd.cache_stats();
        let refused0 = self.learn_refused();
        let mut owed = 0u64;
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        while Instant::now() < deadline {
            for _ in 0..64 {
                let before = self.rig.pmd.cache_stats().emc_hits;
                let c0 = tsc::now();
                self.steady_batch();
                r.steady_cycles += tsc::now() - c0;
                r.steady_emc += self.rig.pmd.cache_stats().emc_hits - before;
                r.steady_pkts += MAX_BURST as u64;
                match kind {
                    Kind::Steady => {}
                    Kind::Flood(n) => {
                        owed += MAX_BURST as u64;
                        let frames = (owed / n) as usize;
                        if frames > 0 {
                            owed -= frames as u64 * n;
                            for chunk in (0..frames).collect::<Vec<_>>().chunks(MAX_BURST) {
                                let c0 = tsc::now();
                                self.flood(chunk.len());
                                r.interfering_cycles += tsc::now() - c0;
                                r.interfering += chunk.len() as u64;
                            }
                        }
                    }
                    Kind::RuleChurn(n) | Kind::PortChurn(n) => {
                        owed += MAX_BURST as u64;
                        while owed >= n {
                            owed -= n;
                            if matches!(kind, Kind::RuleChurn(_)) {
                                self.rule_change();
                            } else {
                                self.port_change();
                            }
                            r.interfering += 1;
                        }
                    }
                }
            }
        }
        // Each flood frame leaves one copy by p2: the rest of p2's frames are the stream's.
        let flood_copies = if matches!(kind, Kind::Flood(_)) {
            r.interfering
        } else {
            0
        };
        let delivered = self.rig.sent("p2") - sent0 - flood_copies;
        r.lost = r.steady_pkts.saturating_sub(delivered);
        r.invalidated = self.rig.pmd.cache_stats().invalidated - stats0.invalidated;
        r.learn_refused = self.learn_refused() - refused0;
        r
    }

    fn learn_refused(&self) -> u64 {
        self.rig
            .sw
            .bridge("br0")
            .ok()
            .and_then(|b| b.ports.into_iter().find(|p| p.name == "p3"))
            .and_then(|p| {
                p.drops
                    .iter()
                    .find(|(r, _)| *r == flowtable::DropReason::MacLearnLimited)
                    .map(|(_, n)| *n)
            })
            .unwrap_or(0)
    }
}

fn main() {
    let args = Args::from_env();
    let quick = args.flag("--quick");
    let seconds = args
        .value::<f64>("--seconds")
        .unwrap_or(if quick { 0.5 } else { 10.0 });
    let rounds = args
        .value::<usize>("--rounds")
        .unwrap_or(if quick { 1 } else { 5 })
        .max(1);
    let cases = [
        Case {
            name: "steady stream alone",
            kind: Kind::Steady,
        },
        Case {
            name: "+ MAC flood 1:900 (~10k/s)",
            kind: Kind::Flood(900),
        },
        Case {
            name: "+ MAC flood 1:90 (~100k/s)",
            kind: Kind::Flood(90),
        },
        Case {
            name: "+ rule churn 1:900 (~10k/s)",
            kind: Kind::RuleChurn(900),
        },
        Case {
            name: "+ port churn 1:90000 (~100/s)",
            kind: Kind::PortChurn(90_000),
        },
    ];
    if let Some(n) = args.value::<usize>("--flood-only") {
        // Profiling aid: n flood batches alone.
        let mut b = Bench::new();
        let c0 = tsc::now();
        for _ in 0..n {
            b.flood(MAX_BURST);
        }
        let cyc = (tsc::now() - c0) as f64 / (n * MAX_BURST) as f64;
        println!("{} flood frames: {cyc:.0} cycles each", n * MAX_BURST);
        return;
    }
    println!(
        "interference-bench: {STEADY_FLOWS}-flow 64 B stream p1 -> p2 on port rules, {seconds} s per case in {rounds} \
         rounds interleaved (median round), TSC {:.2} GHz; per second = at {:.0} Mpps",
        tsc::ticks_per_ns(100),
        LIVE_PPS / 1e6
    );
    println!(
        "{:<32} {:>11} {:>9} {:>9} {:>13} {:>12} {:>14}",
        "case", "cycles/pkt", "vs alone", "EMC hit", "steady lost", "interfering", "invalidated"
    );
    let only = args.text("--only");
    let cases: Vec<&Case> = cases
        .iter()
        .enumerate()
        .filter(|(i, c)| *i == 0 || only.is_none_or(|o| c.name.contains(o)))
        .map(|(_, c)| c)
        .collect();
    let mut bench = Bench::new();
    let mut per_case: Vec<Vec<Round>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (c, rs) in cases.iter().zip(per_case.iter_mut()) {
            rs.push(bench.run(c.kind, seconds / rounds as f64));
        }
    }
    let cyc = |r: &Round| r.steady_cycles as f64 / r.steady_pkts.max(1) as f64;
    let medians: Vec<Round> = per_case
        .into_iter()
        .map(|mut rs| {
            rs.sort_by(|a, b| cyc(a).total_cmp(&cyc(b)));
            let lost: u64 = rs.iter().map(|r| r.lost).sum();
            let mut m = rs[rs.len() / 2];
            m.lost = lost;
            m
        })
        .collect();
    let alone = cyc(&medians[0]);
    for (c, m) in cases.iter().zip(&medians) {
        let interfering = match c.kind {
            Kind::Steady => "-".to_string(),
            Kind::Flood(_) => format!("{} frames", m.interfering),
            Kind::RuleChurn(_) | Kind::PortChurn(_) => format!("{} changes", m.interfering),
        };
        println!(
            "{:<32} {:>11.1} {:>8.1}% {:>8.2}% {:>13} {:>12} {:>14}",
            c.name,
            cyc(m),
            (cyc(m) / alone - 1.0) * 100.0,
            m.steady_emc as f64 * 100.0 / m.steady_pkts.max(1) as f64,
            m.lost,
            interfering,
            m.invalidated
        );
        if let Kind::Flood(_) = c.kind {
            println!(
                "{:<32} learning refused (mac-learn-limited on p3): {}; {:.0} cycles per flood frame",
                "",
                m.learn_refused,
                m.interfering_cycles as f64 / m.interfering.max(1) as f64
            );
        }
    }
    let lost: u64 = medians.iter().map(|m| m.lost).sum();
    assert_eq!(lost, 0, "the steady stream must lose nothing");
}
