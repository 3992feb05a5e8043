//! QoS through the whole datapath, in virtual time: a caller-driven switch (the test is the PMD
//! and sets the clock), frames in on one port and a recording port out. Trust and re-marking,
//! `set_queue`, the scheduler's rate and priorities, live reconfiguration, and policers.

mod common;

use std::sync::{Arc, Mutex};

use common::{mac, udp_frame};
use datapath::harness::{CallerPmd, InPort};
use datapath::packet::{Batch, PacketPool};
use datapath::port::{Port, PortStats};
use datapath::{Change, PortSettings, QosConfig, Switch, SwitchConfig};
use qos::{Action, PolicerConfig, Profile, SchedulerConfig, Shaper, Trust};

/// A port that records every frame it is sent, with the (virtual) time it was sent at.
#[derive(Default)]
struct Recorder {
    name: String,
    frames: Mutex<Vec<(u64, Vec<u8>)>>,
    now: Mutex<u64>,
}

impl Port for Recorder {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn rx_burst(&self, _: usize, _: &mut PacketPool, _: &mut Batch) -> usize {
        0
    }
    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        let now = *self.now.lock().unwrap();
        let mut f = self.frames.lock().unwrap();
        let n = pkts.len();
        for p in pkts.drain() {
            f.push((now, p.data().to_vec()));
            pool.put(p);
        }
        n
    }
    fn link_up(&self) -> bool {
        true
    }
    fn stats(&self) -> PortStats {
        PortStats::default()
    }
}

/// Virtual time starts well after the switch's real clock, so buckets made at start are full.
const T0: u64 = 1_000_000_000_000;
const MS: u64 = 1_000_000;
const US: u64 = 1_000;

struct Rig {
    sw: Switch,
    pmd: CallerPmd,
    out: Arc<Recorder>,
    now: u64,
    pool: PacketPool,
}

impl Rig {
    /// `p1` (in) and `p2` (out, recorded) on `br0`, with `rule` (or NORMAL).
    fn new(rule: &str) -> Rig {
        let sw = Switch::start(SwitchConfig {
            caller_driven: true,
            ..SwitchConfig::default()
        })
        .unwrap();
        let pmd = sw.caller_pmd().unwrap();
        sw.apply(vec![Change::AddBridge { name: "br0".into() }])
            .unwrap();
        let input = Arc::new(Recorder {
            name: "p1".into(),
            ..Recorder::default()
        });
        let out = Arc::new(Recorder {
            name: "p2".into(),
            ..Recorder::default()
        });
        sw.attach_port("br0", "p1", input, PortSettings::default())
            .unwrap();
        sw.attach_port("br0", "p2", out.clone(), PortSettings::default())
            .unwrap();
        common::add_flow(&sw, "br0", rule).unwrap();
        let mut r = Rig {
            sw,
            pmd,
            out,
            now: T0,
            pool: PacketPool::with_capacity(64),
        };
        r.pmd.set_time(T0);
        r
    }

    fn set(&self, port: &str, settings: PortSettings) {
        self.sw
            .apply(vec![Change::SetPort {
                name: port.into(),
                settings,
            }])
            .unwrap();
    }

    fn advance(&mut self, ns: u64) {
        self.now += ns;
        self.pmd.set_time(self.now);
        *self.out.now.lock().unwrap() = self.now;
    }

    /// Frames received on p1 now, then the schedulers served.
    fn inject(&mut self, frames: &[Vec<u8>]) {
        for chunk in frames.chunks(32) {
            let mut b = Batch::new();
            for f in chunk {
                let mut p = self.pool.get();
                assert!(p.set_data(f));
                b.push(p).ok().unwrap();
            }
            self.pmd.receive(&mut InPort::new("p1"), &mut b);
        }
        self.pmd.serve_schedulers();
    }

    fn serve(&mut self) {
        self.pmd.serve_schedulers();
    }

    fn sent(&self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut *self.out.frames.lock().unwrap())
    }

    fn queue(&self, port: &str, class: usize) -> datapath::QueueReport {
        self.sw.port_qos(port).unwrap().queues[class].clone()
    }
}

fn frame(tos: u8, len: usize) -> Vec<u8> {
    udp_frame(mac(2), mac(1), &[], tos, 1, 2, &vec![0u8; len - 42])
}

fn tos_of(f: &[u8]) -> u8 {
    f[15]
}

fn shaped(rate: u64) -> QosConfig {
    QosConfig {
        scheduler: SchedulerConfig {
            shaper: Some(Shaper {
                rate,
                burst: (rate / 100).max(3028),
            }),
            ..SchedulerConfig::default()
        },
        ..QosConfig::default()
    }
}

fn with_qos(qos: QosConfig) -> PortSettings {
    PortSettings {
        qos: Some(qos),
        ..PortSettings::default()
    }
}

#[test]
fn a_shaped_port_sends_at_its_rate_in_virtual_time() {
    let mut r = Rig::new("in_port=p1,actions=output:p2");
    let rate = 1_250_000; // 10 Mbit/s
    let mut cfg = shaped(rate);
    cfg.scheduler.queues[0].limit_packets = 100;
    r.set("p2", with_qos(cfg));
    // 150 % of the rate in 1,000 B frames, every 100 µs, for one second.
    let per_step = rate * 3 / 2 / 10_000;
    let mut owed = 0;
    let mut sent = Vec::new();
    for _ in 0..10_000 {
        r.advance(100 * US);
        owed += per_step;
        let n = (owed / 1000) as usize;
        owed %= 1000;
        r.inject(&vec![frame(0, 1000); n]);
        sent.extend(r.sent());
    }
    let bytes: u64 = sent.iter().map(|(_, f)| f.len() as u64).sum();
    let burst = rate / 100;
    let err = (bytes as f64 - burst as f64 - rate as f64) / rate as f64;
    assert!(
        err.abs() < 0.01,
        "sent {bytes} B in 1 s at {rate} B/s ({err:+.4})"
    );
    // The excess was queued, then tail-dropped at the queue's limit and counted; every frame
    // is accounted for.
    let q = r.queue("p2", 0);
    assert_eq!(
        q.stats.enqueued_packets,
        q.stats.sent_packets + q.backlog_packets as u64
    );
    assert!(q.stats.dropped_packets > 0);
    assert_eq!(q.stats.sent_packets, sent.len() as u64);
    let port = &r.sw.bridge("br0").unwrap().ports[1];
    assert_eq!(port.stats.tx_dropped, q.stats.dropped_packets);
}

#[test]
fn ef_keeps_its_share_while_best_effort_saturates_the_port() {
    let mut r = Rig::new("in_port=p1,actions=output:p2");
    let rate = 12_500_000; // 100 Mbit/s
    r.set("p2", with_qos(shaped(rate)));
    // Each ms: 200 % of the rate in best effort, and 1 % of it in EF (DSCP 46).
    let (mut ef_in, mut ef_out, mut max_wait) = (0, 0, 0);
    let mut ef_sent_at = std::collections::VecDeque::new();
    for _ in 0..1000 {
        r.advance(MS);
        let mut frames = vec![frame(0, 1500); 16];
        // EF frames of 125 B, one per ms: 1 % of 12.5 MB/s.
        frames.insert(8, frame(46 << 2, 125));
        ef_in += 1;
        ef_sent_at.push_back(r.now);
        r.inject(&frames);
        for (t, f) in r.sent() {
            if tos_of(&f) == 46 << 2 {
                ef_out += 1;
                max_wait = max_wait.max(t - ef_sent_at.pop_front().unwrap());
            }
        }
    }
    assert_eq!(ef_out, ef_in, "no EF frame lost");
    // Strict priority: an EF frame leaves in the iteration it arrived in (or waits for the
    // shaper's next bytes, never behind the best-effort queue).
    assert!(max_wait <= MS, "EF waited {max_wait} ns");
    assert_eq!(r.queue("p2", 7).stats.dropped_packets, 0);
    // The scheduler's own account agrees: EF waited less than an iteration, best effort
    // waited the depth of its queue.
    let (ef, be) = (r.queue("p2", 7), r.queue("p2", 0));
    assert!(
        ef.wait_max_ns <= MS,
        "EF waited up to {} ns",
        ef.wait_max_ns
    );
    assert!(
        be.wait_p50_ns > 10 * MS,
        "best effort waited {} ns",
        be.wait_p50_ns
    );
    assert!(r.queue("p2", 0).stats.dropped_packets > 0);

    // port-latency's per-class view of the same waits (since start: every frame sent, in
    // virtual time; the 5 s windows turn over in real time).
    let lat = r.sw.port_latency();
    let p2 = lat.iter().find(|l| l.port == "p2").unwrap();
    let class = |c: u8| p2.classes.iter().find(|x| x.class == c).unwrap().total;
    let (ef_lat, be_lat) = (class(7), class(0));
    assert_eq!(ef_lat.frames, ef_out);
    assert_eq!(be_lat.frames, be.stats.sent_packets);
    assert!(ef_lat.p99_ns <= MS as f64, "EF P99 {} ns", ef_lat.p99_ns);
    assert!(
        be_lat.p50_ns > (10 * MS) as f64,
        "BE P50 {} ns",
        be_lat.p50_ns
    );
    assert!(be_lat.p50_ns <= be_lat.p99_ns && be_lat.p99_ns <= be_lat.max_ns);
    assert!(
        p2.classes.iter().all(|c| c.class == 0 || c.class == 7),
        "{:?}",
        p2.classes
    );
}

#[test]
fn trust_settings_class_and_remark_frames() {
    // Untrusted: a guest's EF marking is re-marked on the way in, and the frame is best effort.
    let mut r = Rig::new("in_port=p1,actions=output:p2");
    r.set("p2", with_qos(shaped(1_250_000)));
    r.set(
        "p1",
        PortSettings {
            trust: Trust::Untrusted { dscp: 10 },
            ..PortSettings::default()
        },
    );
    r.advance(MS);
    r.inject(&[frame(46 << 2 | 1, 100)]);
    let out = r.sent();
    assert_eq!(tos_of(&out[0].1), 10 << 2 | 1, "DSCP re-marked, ECN kept");
    // The IPv4 checksum still holds.
    let ip = &out[0].1[14..34];
    let sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
    assert_eq!(r.queue("p2", 1).stats.sent_packets, 1, "AF11 is class 1");
    assert_eq!(r.queue("p2", 7).stats.enqueued_packets, 0);

    // Trust PCP: the class comes from the tag the frame arrived with, even once it is popped.
    let mut r = Rig::new("in_port=p1,actions=pop_vlan,output:p2");
    r.set("p2", with_qos(shaped(1_250_000)));
    r.set(
        "p1",
        PortSettings {
            trust: Trust::Pcp,
            ..PortSettings::default()
        },
    );
    r.advance(MS);
    let tagged = udp_frame(mac(2), mac(1), &[(0x8100, 5 << 13 | 10)], 0, 1, 2, &[0; 60]);
    r.inject(&[tagged]);
    assert_eq!(r.sent().len(), 1);
    assert_eq!(r.queue("p2", 5).stats.sent_packets, 1);

    // By default the egress port classes by DSCP.
    let mut r = Rig::new("in_port=p1,actions=output:p2");
    r.set("p2", with_qos(shaped(1_250_000)));
    r.advance(MS);
    r.inject(&[frame(46 << 2, 100), frame(26 << 2, 100), frame(0, 100)]);
    assert_eq!(r.sent().len(), 3);
    for c in [7, 3, 0] {
        assert_eq!(r.queue("p2", c).stats.sent_packets, 1, "class {c}");
    }
}

#[test]
fn set_queue_chooses_the_class() {
    let mut r = Rig::new("in_port=p1,actions=set_queue:6,output:p2");
    r.set("p2", with_qos(shaped(1_250_000)));
    r.advance(MS);
    r.inject(&[frame(0, 100)]);
    assert_eq!(r.sent().len(), 1);
    assert_eq!(r.queue("p2", 6).stats.sent_packets, 1);
}

#[test]
fn changing_qos_live_keeps_queued_frames_and_clearing_it_sends_them() {
    let mut r = Rig::new("in_port=p1,actions=output:p2");
    let rate = 125_000; // 1 Mbit/s: 100 frames of 1,000 B take 0.8 s
    r.set("p2", with_qos(shaped(rate)));
    r.advance(MS);
    let mut frames = vec![frame(0, 1000); 50];
    frames.extend(vec![frame(26 << 2, 1000); 50]);
    r.inject(&frames);
    let first = r.sent().len();
    assert!(first < 10, "the burst lets a few through: {first}");
    let held = |r: &Rig| -> usize {
        (0..8)
            .map(|c| r.queue("p2", c).backlog_packets)
            .sum::<usize>()
    };
    assert_eq!(held(&r), 100 - first);
    // A new rate and a new weight: nothing queued is lost.
    let mut faster = shaped(rate * 10);
    faster.scheduler.queues[3].weight = 9;
    r.set("p2", with_qos(faster));
    assert_eq!(held(&r), 100 - first);
    r.advance(10 * MS);
    r.serve();
    let second = r.sent().len();
    assert!(second > 0);
    // Clearing the scheduler sends what it holds: nothing is lost.
    r.set("p2", PortSettings::default());
    assert_eq!(first + second + r.sent().len(), 100);
    assert!(r.sw.port_qos("p2").unwrap().queues.is_empty());
}

#[test]
fn an_ingress_policer_drops_what_exceeds_its_rate_and_counts_colours() {
    let mut r = Rig::new("in_port=p1,actions=output:p2");
    let cir = 125_000; // 1 Mbit/s
    r.set(
        "p1",
        PortSettings {
            policer: Some(PolicerConfig {
                profile: Profile::TrTcm {
                    cir,
                    cbs: 10_000,
                    pir: 2 * cir,
                    pbs: 10_000,
                },
                actions: [Action::Pass, Action::RemarkDscp(12), Action::Drop],
                color_aware: false,
            }),
            ..PortSettings::default()
        },
    );
    // 4 × CIR offered for one second, in 1,000 B frames every 2 ms.
    let mut out = Vec::new();
    for _ in 0..500 {
        r.advance(2 * MS);
        r.inject(&[frame(0, 1000)]);
        out.extend(r.sent());
    }
    let q = r.sw.port_qos("p1").unwrap();
    let [g, y, red] = q.policer_counts.unwrap();
    assert_eq!(g.0 + y.0 + red.0, 500);
    // Green at CIR, yellow up to PIR (plus the initial buckets), the rest red and dropped.
    assert!((125..=136).contains(&g.0), "green {g:?}");
    assert!((125..=136).contains(&y.0), "yellow {y:?}");
    assert_eq!(out.len() as u64, g.0 + y.0);
    let remarked = out.iter().filter(|(_, f)| tos_of(f) == 12 << 2).count();
    assert_eq!(remarked as u64, y.0, "yellow frames leave as AF12");
    let drops = common::drops_of(&r.sw, "br0", "p1");
    assert_eq!(drops, vec![("policed".to_string(), red.0)]);
}

#[test]
fn a_meter_polices_the_rules_that_use_it() {
    let mut r = Rig::new("in_port=p1,actions=meter:1,output:p2");
    let cir = 125_000; // 1 Mbit/s
    r.sw.apply(vec![Change::SetMeter {
        bridge: "br0".into(),
        id: 1,
        policer: PolicerConfig {
            profile: Profile::SrTcm {
                cir,
                cbs: 5_000,
                ebs: 0,
            },
            actions: [Action::Pass, Action::Pass, Action::Drop],
            color_aware: false,
        },
    }])
    .unwrap();
    // Twice the rate for one second: about half gets through (plus the bucket).
    let mut out = 0;
    for _ in 0..250 {
        r.advance(4 * MS);
        r.inject(&[frame(0, 1000)]);
        out += r.sent().len();
    }
    assert!((125..=131).contains(&out), "passed {out}");
    let info = r.sw.meters("br0").unwrap();
    let [g, y, red] = info[0].counts;
    assert_eq!((g.0 as usize, y.0), (out, 0));
    assert_eq!(g.0 + red.0, 250);
    assert_eq!(
        common::drops_of(&r.sw, "br0", "p1"),
        vec![("policed".to_string(), red.0)]
    );
    // Gone with its last user: the rule without it sends everything.
    common::del_flows(&r.sw, "br0");
    r.sw.apply(vec![Change::DelMeter {
        bridge: "br0".into(),
        id: 1,
    }])
    .unwrap();
    common::add_flow(&r.sw, "br0", "in_port=p1,actions=output:p2").unwrap();
    r.advance(MS);
    r.inject(&vec![frame(0, 1000); 10]);
    assert_eq!(r.sent().len(), 10);
}

#[test]
fn a_pushed_tag_carries_the_priority_of_the_frames_class() {
    let mut r = Rig::new("in_port=p1,actions=mod_vlan_vid:10,output:p2");
    r.advance(MS);
    r.inject(&[frame(46 << 2, 100), frame(26 << 2, 100), frame(0, 100)]);
    let pcps: Vec<u8> = r.sent().iter().map(|(_, f)| f[14] >> 5).collect();
    // EF is class 7, AF31 class 3, best effort 0 (no tag priority, as before).
    assert_eq!(pcps, vec![7, 3, 0]);
    // A priority the rule sets is kept; set_queue's class is used as it is.
    let mut r = Rig::new("in_port=p1,actions=mod_vlan_vid:10,mod_vlan_pcp:2,output:p2");
    r.advance(MS);
    r.inject(&[frame(46 << 2, 100)]);
    assert_eq!(r.sent()[0].1[14] >> 5, 2);
    let mut r = Rig::new("in_port=p1,actions=set_queue:4,mod_vlan_vid:10,output:p2");
    r.advance(MS);
    r.inject(&[frame(0, 100)]);
    assert_eq!(r.sent()[0].1[14] >> 5, 4);
}
