//! Bonds in a running switch, over ring-port members the test holds (so it can cut links):
//! two bridges, each with a host port and a bond, the bonds joined member to member. LACP
//! negotiates between the two bonds; balance-tcp spreads flows; active-backup fails over
//! when a link goes down and sends learning packets; a silent LACP partner expires; frames on
//! a backup member are refused and counted.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use datapath::packet::{Batch, PacketPool};
use datapath::port::Port;
use datapath::ring::RingPort;
use datapath::{BondMode, BondReport, BondSettings, LacpMode, PortSettings, Switch, SwitchConfig};

struct Lab {
    sw: Switch,
    h0: Arc<RingPort>,
    h1: Arc<RingPort>,
    /// The switch's ends of h0 and h1 (how much the switch has yet to receive).
    p0: Arc<RingPort>,
    p1: Arc<RingPort>,
    /// Member i of bond0 is `m0[i]`, joined to `m1[i]` of bond1.
    m0: Vec<Arc<RingPort>>,
    m1: Vec<Arc<RingPort>>,
    pool: PacketPool,
}

impl Lab {
    /// bond0 in br0, its members joined to bond1's in br1 (same settings).
    fn new(settings: BondSettings) -> Lab {
        Lab::build(settings, true)
    }

    /// bond0 in br0, its members joined to two plain ports of br1, as to a switch that knows
    /// nothing of bonds (what active-backup is for).
    fn upstream(settings: BondSettings) -> Lab {
        Lab::build(settings, false)
    }

    fn build(settings: BondSettings, far_bond: bool) -> Lab {
        let sw = Switch::start(SwitchConfig::default()).unwrap();
        sw.apply(vec![
            datapath::Change::AddBridge { name: "br0".into() },
            datapath::Change::AddBridge { name: "br1".into() },
        ])
        .unwrap();
        let (p0, h0) = RingPort::pair("p0", "h0");
        let (p1, h1) = RingPort::pair("p1", "h1");
        let (p0, p1) = (Arc::new(p0), Arc::new(p1));
        sw.attach_port("br0", "p0", p0.clone(), PortSettings::default())
            .unwrap();
        sw.attach_port("br1", "p1", p1.clone(), PortSettings::default())
            .unwrap();
        let mut m0 = Vec::new();
        let mut m1 = Vec::new();
        for name in ["a", "b"] {
            let (x, y) = RingPort::pair(&format!("{name}0"), &format!("{name}1"));
            m0.push(Arc::new(x));
            m1.push(Arc::new(y));
        }
        let members = |v: &[Arc<RingPort>]| v.iter().map(|m| m.clone() as Arc<dyn Port>).collect();
        sw.attach_bond(
            "br0",
            "bond0",
            members(&m0),
            settings.clone(),
            PortSettings::default(),
        )
        .unwrap();
        if far_bond {
            sw.attach_bond(
                "br1",
                "bond1",
                members(&m1),
                settings,
                PortSettings::default(),
            )
            .unwrap();
        } else {
            for m in &m1 {
                sw.attach_port("br1", m.name(), m.clone(), PortSettings::default())
                    .unwrap();
            }
        }
        Lab {
            sw,
            h0: Arc::new(h0),
            h1: Arc::new(h1),
            p0,
            p1,
            m0,
            m1,
            pool: PacketPool::with_capacity(64),
        }
    }

    fn bond(&self, name: &str) -> BondReport {
        self.sw.bonds(Some(name)).unwrap().remove(0)
    }

    fn wait(&self, what: &str, limit: Duration, done: impl Fn(&Lab) -> bool) -> Duration {
        let t0 = Instant::now();
        while !done(self) {
            assert!(
                t0.elapsed() < limit,
                "{what}: not within {limit:?}: {:#?}",
                self.sw.bonds(None)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        t0.elapsed()
    }

    fn enabled(&self, bond: &str) -> Vec<bool> {
        self.bond(bond).members.iter().map(|m| m.enabled).collect()
    }

    /// Sends frames into `port` (the host end), in bursts the rings hold.
    fn send(&mut self, port: &RingPort, frames: &[Vec<u8>]) {
        for chunk in frames.chunks(32) {
            let mut b = Batch::new();
            for f in chunk {
                let mut p = self.pool.get();
                assert!(p.set_data(f));
                b.push(p).ok().unwrap();
            }
            assert_eq!(port.tx_burst(&mut b, &mut self.pool), chunk.len());
            // Let the PMD take them in before the next burst (a ring holds 1,024 frames).
            let switch_end = if std::ptr::eq(port, &*self.h0) {
                &self.p0
            } else {
                &self.p1
            };
            while switch_end.pending() > 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// Frames waiting at `port` (a host end), until `n` arrived or a second passed quietly.
    fn receive(&mut self, port: &RingPort, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut quiet = Instant::now();
        while got.len() < n && quiet.elapsed() < Duration::from_secs(1) {
            let mut b = Batch::new();
            if port.rx_burst(0, &mut self.pool, &mut b) > 0 {
                quiet = Instant::now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
            got.extend(b.iter().map(|p| p.data().to_vec()));
            b.recycle(&mut self.pool);
        }
        got
    }
}

fn lacp(mode: BondMode) -> BondSettings {
    BondSettings {
        mode,
        lacp: LacpMode::Active,
        lacp_fast: true,
        ..BondSettings::default()
    }
}

/// Data frames a member sent (its ring's count less the LACP frames the bond sent on it).
fn data_sent(lab: &Lab, member: usize) -> u64 {
    let lacp = lab.bond("bond0").members[member]
        .lacp
        .map_or(0, |l| l.4.tx_pdus + l.4.tx_marker_responses);
    lab.m0[member].stats().tx_packets - lacp
}

fn flows(n: u16, sport0: u16) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| udp_frame(mac(2), mac(1), &[], 0, sport0 + i, 53, &[0; 18]))
        .collect()
}

fn negotiated(l: &Lab) -> bool {
    ["bond0", "bond1"].iter().all(|b| {
        let r = l.bond(b);
        r.lacp_negotiated == Some(true) && r.members.iter().all(|m| m.enabled)
    })
}

#[test]
fn lacp_bonds_negotiate_and_balance_tcp_spreads_a_thousand_flows() {
    let mut lab = Lab::new(lacp(BondMode::BalanceTcp));
    lab.wait("negotiation", Duration::from_secs(5), negotiated);
    let r = lab.bond("bond0");
    let partner = r.members[0].lacp.unwrap().3;
    assert_eq!(
        Some(partner.system),
        lab.bond("bond1").lacp_system,
        "bond0's partner is bond1"
    );
    assert_eq!(r.policy, bond::Policy::L4);

    let (h0, h1) = (lab.h0.clone(), lab.h1.clone());
    lab.send(&h0, &flows(1000, 10_000));
    let got = lab.receive(&h1, 1000);
    assert_eq!(got.len(), 1000, "every flow crossed once");
    let (a, b) = (data_sent(&lab, 0), data_sent(&lab, 1));
    assert_eq!(a + b, 1000);
    println!("balance-tcp, 1,000 flows: member a carried {a}, member b {b}");
    assert!(
        (350..=650).contains(&a),
        "member a carried {a} of 1000 flows, b {b}"
    );
}

#[test]
fn a_silent_lacp_partner_expires_and_its_member_stops_carrying() {
    let mut lab = Lab::new(lacp(BondMode::BalanceTcp));
    lab.wait("negotiation", Duration::from_secs(5), negotiated);
    // Member a keeps its link but hears nothing any more (both ways).
    let (sink0, sink1) = (RingPort::new("sink0", 64), RingPort::new("sink1", 64));
    lab.m0[0].join_to(&sink0);
    lab.m1[0].join_to(&sink1);
    let took = lab.wait("expiry", Duration::from_secs(5), |l| {
        l.enabled("bond0") == [false, true]
    });
    assert!(
        took >= Duration::from_secs(2),
        "expired after {took:?}, before LACP's 3 s"
    );
    let m = &lab.bond("bond0").members[0];
    assert!(m.carrier);
    assert_eq!(m.lacp.unwrap().0, bond::lacp::RxStatus::Expired);
    lab.wait("bond1 too", Duration::from_secs(5), |l| {
        l.enabled("bond1") == [false, true]
    });
    let before = data_sent(&lab, 0);
    let (h0, h1) = (lab.h0.clone(), lab.h1.clone());
    lab.send(&h0, &flows(500, 20_000));
    assert_eq!(lab.receive(&h1, 500).len(), 500);
    assert_eq!(
        data_sent(&lab, 0),
        before,
        "nothing leaves by the expired member"
    );
}

#[test]
fn active_backup_fails_over_on_link_loss_sends_learning_packets_and_no_duplicates() {
    let mut lab = Lab::upstream(BondSettings::default());
    lab.wait("a member up", Duration::from_secs(2), |l| {
        l.bond("bond0").members.iter().any(|m| m.active)
    });
    let active = lab
        .bond("bond0")
        .members
        .iter()
        .position(|m| m.active)
        .unwrap();
    assert!(lab.bond("bond0").members.iter().all(|m| m.enabled));
    let (h0, h1) = (lab.h0.clone(), lab.h1.clone());
    // mac(1) is learned on p0, behind the bond as seen from the upstream.
    lab.send(&h0, &flows(100, 1000));
    assert_eq!(lab.receive(&h1, 100).len(), 100);
    assert_eq!(data_sent(&lab, active), 100, "only the active member sends");
    assert_eq!(data_sent(&lab, 1 - active), 0);

    // br1 floods the unknown destination back through its other port: the backup member
    // refuses all 100 copies (no loop).
    lab.wait("reflections refused", Duration::from_secs(2), |l| {
        l.bond("bond0").rx_not_admitted == 100
    });
    // A frame arriving on the backup member is refused and counted.
    let mut b = Batch::new();
    let mut p = lab.pool.get();
    p.set_data(&flows(1, 7)[0]);
    b.push(p).ok().unwrap();
    lab.m1[1 - active].tx_burst(&mut b, &mut lab.pool);
    lab.wait("refusal counted", Duration::from_secs(2), |l| {
        l.bond("bond0").rx_not_admitted == 101
    });
    assert!(
        lab.receive(&h0, 1).is_empty(),
        "the backup member's frame did not enter br0"
    );

    // The active link goes down on both ends.
    lab.m0[active].unjoin();
    lab.m1[active].unjoin();
    lab.wait("failover", Duration::from_secs(2), |l| {
        l.bond("bond0").members[1 - active].active
    });
    let r = lab.bond("bond0");
    assert_eq!(r.failovers, 2, "up, then over");
    assert!(r.learning_packets >= 1, "a RARP for mac(1)");
    // The RARP crossed to br1 and was flooded to h1.
    let rarp = lab.receive(&h1, 1);
    assert!(
        rarp.iter()
            .any(|f| f[6..12] == mac(1) && f[12..14] == [0x80, 0x35]),
        "learning packet from mac(1) at the far side: {rarp:?}"
    );
    lab.send(&h0, &flows(100, 2000));
    let got = lab.receive(&h1, 100);
    assert_eq!(
        got.len(),
        100,
        "no frame lost or doubled after the failover"
    );
    let ports: Vec<u16> = got
        .iter()
        .map(|f| u16::from_be_bytes([f[34], f[35]]))
        .collect();
    assert_eq!(
        ports,
        (2000..2100).collect::<Vec<_>>(),
        "in order, each once"
    );
}

#[test]
fn balance_slb_floods_leave_by_one_member_and_settings_change_live() {
    let settings = BondSettings {
        mode: BondMode::BalanceSlb,
        ..BondSettings::default()
    };
    let mut lab = Lab::new(settings);
    lab.wait("members up on both bonds", Duration::from_secs(2), |l| {
        l.enabled("bond0") == [true, true] && l.enabled("bond1") == [true, true]
    });
    let active = lab
        .bond("bond0")
        .members
        .iter()
        .position(|m| m.active)
        .unwrap();
    // Broadcasts from 50 different MACs: all leave by the active member.
    let frames: Vec<Vec<u8>> = (0..50u8)
        .map(|i| udp_frame(BCAST, [2, 0, 0, 1, 0, i], &[], 0, 1, 2, &[0; 18]))
        .collect();
    let (h0, h1) = (lab.h0.clone(), lab.h1.clone());
    lab.send(&h0, &frames);
    assert_eq!(lab.receive(&h1, 50).len(), 50);
    assert_eq!(data_sent(&lab, active), 50);
    assert_eq!(data_sent(&lab, 1 - active), 0);
    // Unicast to a known MAC spreads by source MAC (buckets over both members).
    let (before_a, before_b) = (data_sent(&lab, 0), data_sent(&lab, 1));
    let uni: Vec<Vec<u8>> = (0..200u8)
        .map(|i| udp_frame(mac(9), [2, 0, 0, 2, 0, i], &[], 0, 1, 2, &[0; 18]))
        .collect();
    lab.send(&h0, &uni);
    assert_eq!(lab.receive(&h1, 200).len(), 200);
    let (a, b) = (data_sent(&lab, 0) - before_a, data_sent(&lab, 1) - before_b);
    assert!(
        a > 40 && b > 40,
        "200 source MACs over two members: {a} / {b}"
    );
    // Live change to active-backup.
    lab.sw
        .apply(vec![datapath::Change::SetBond {
            name: "bond0".into(),
            settings: BondSettings::default(),
        }])
        .unwrap();
    lab.wait("active-backup", Duration::from_secs(2), |l| {
        l.bond("bond0").policy == bond::Policy::Active
    });
    assert_eq!(lab.bond("bond0").settings.mode, BondMode::ActiveBackup);
}

/// Which member of bond0 a frame from `src` leaves by (sent alone, counted on the members).
fn member_for(lab: &mut Lab, src: [u8; 6]) -> usize {
    let before: Vec<u64> = (0..2).map(|m| data_sent(lab, m)).collect();
    let h0 = lab.h0.clone();
    let h1 = lab.h1.clone();
    lab.send(&h0, &[udp_frame(mac(9), src, &[], 0, 1, 2, &[0; 18])]);
    assert_eq!(lab.receive(&h1, 1).len(), 1);
    (0..2)
        .find(|&m| data_sent(lab, m) > before[m])
        .expect("sent by a member")
}

#[test]
fn balance_slb_moves_a_bucket_when_two_heavy_senders_share_a_member() {
    let settings = BondSettings {
        mode: BondMode::BalanceSlb,
        rebalance_interval_ms: 300,
        ..BondSettings::default()
    };
    let mut lab = Lab::new(settings);
    lab.wait("members up on both bonds", Duration::from_secs(2), |l| {
        l.enabled("bond0") == [true, true] && l.enabled("bond1") == [true, true]
    });
    // Two source MACs that hash to buckets on the same member.
    let srcs: Vec<[u8; 6]> = (1..=40u8).map(|i| [2, 0, 0, 3, 0, i]).collect();
    let mut on: Vec<(usize, [u8; 6])> = Vec::new();
    for s in &srcs {
        on.push((member_for(&mut lab, *s), *s));
    }
    // ... and different buckets (a bucket moves whole).
    let bucket = |s: [u8; 6]| {
        bond::hash::bucket_of(bond::hash::slb_hash(&udp_frame(
            mac(9),
            s,
            &[],
            0,
            1,
            2,
            &[],
        )))
    };
    let same: Vec<[u8; 6]> = on
        .iter()
        .filter(|(m, _)| *m == on[0].0)
        .map(|(_, s)| *s)
        .collect();
    let second = same
        .iter()
        .find(|s| bucket(**s) != bucket(same[0]))
        .expect("two buckets on a member");
    let pair = [same[0], *second];
    // Both send heavily (1 MB each) while nothing else does: one member carries it all.
    let heavy: Vec<Vec<u8>> = (0..2000)
        .map(|i| udp_frame(mac(9), pair[i % 2], &[], 0, 1, 2, &[0; 500]))
        .collect();
    let (h0, h1) = (lab.h0.clone(), lab.h1.clone());
    for part in heavy.chunks(500) {
        lab.send(&h0, part);
        assert_eq!(lab.receive(&h1, 500).len(), 500);
    }
    // The next rebalance moves one of the two buckets to the idle member.
    lab.wait("a rebalance", Duration::from_secs(3), |l| {
        l.bond("bond0").buckets_moved > 0
    });
    let now: Vec<usize> = pair.iter().map(|s| member_for(&mut lab, *s)).collect();
    assert_ne!(
        now[0], now[1],
        "the two heavy senders now leave by different members"
    );
}
