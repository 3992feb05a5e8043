//! Two bonds joined member to member by in-memory wires, on a virtual clock, in the spirit of
//! Open vSwitch's `tests/lacp.at`: negotiation, expiry of a silent link, carrier loss, the
//! defaulted state and fallback to active-backup, passive ends, key mismatches, malformed
//! PDUs and Marker PDUs.

use std::time::Duration;

use bond::lacp::{RxStatus, State, SystemId, pdu};
use bond::{Bond, BondConfig, BondMode, LacpMode, MemberSpec, Policy};

const TICK: Duration = Duration::from_millis(100);

fn system(last: u8) -> SystemId {
    SystemId {
        priority: 0x8000,
        mac: [2, 0, 0, 0, 0, last],
    }
}

fn members(side: u8, n: u16) -> Vec<MemberSpec> {
    (0..n)
        .map(|i| MemberSpec {
            port: i + 1,
            mac: [2, side, 0, 0, 1, i as u8],
        })
        .collect()
}

fn fast(mode: BondMode, lacp: LacpMode, sys: u8) -> BondConfig {
    let mut c = BondConfig::new(mode, lacp, system(sys), 10 + u16::from(sys));
    c.lacp_fast = true;
    c
}

/// One wire per member pair: whether frames cross, and whether each end sees carrier.
struct Wire {
    passes: bool,
}

struct Pair {
    a: Bond,
    b: Bond,
    wires: Vec<Wire>,
    now: Duration,
    /// Frames crossing each way, per tick (for the rate limit check).
    sent: Vec<(Duration, bool, usize)>,
}

impl Pair {
    fn new(ca: BondConfig, cb: BondConfig, n: u16) -> Pair {
        let mut a = Bond::new(ca, &members(1, n)).unwrap();
        let mut b = Bond::new(cb, &members(2, n)).unwrap();
        for i in 0..usize::from(n) {
            a.set_carrier(i, true, Duration::ZERO);
            b.set_carrier(i, true, Duration::ZERO);
        }
        let wires = (0..n).map(|_| Wire { passes: true }).collect();
        Pair {
            a,
            b,
            wires,
            now: Duration::ZERO,
            sent: Vec::new(),
        }
    }

    fn step(&mut self) {
        self.a.run(self.now);
        self.b.run(self.now);
        let mut to_b = Vec::new();
        let mut to_a = Vec::new();
        self.a
            .transmit_lacp(self.now, |m, f| to_b.push((m, f.to_vec())));
        self.b
            .transmit_lacp(self.now, |m, f| to_a.push((m, f.to_vec())));
        for (m, f) in to_b {
            self.sent.push((self.now, true, m));
            if self.wires[m].passes && self.a.carrier(m) && self.b.carrier(m) {
                self.b.receive_lacp(m, &f, self.now).unwrap();
            }
        }
        for (m, f) in to_a {
            self.sent.push((self.now, false, m));
            if self.wires[m].passes && self.a.carrier(m) && self.b.carrier(m) {
                self.a.receive_lacp(m, &f, self.now).unwrap();
            }
        }
        self.a.run(self.now);
        self.b.run(self.now);
        self.now += TICK;
    }

    /// Steps until `done` holds or `limit` passes; returns the time it held.
    fn until(&mut self, limit: Duration, done: impl Fn(&Pair) -> bool) -> Option<Duration> {
        let end = self.now + limit;
        while self.now <= end {
            if done(self) {
                return Some(self.now);
            }
            self.step();
        }
        None
    }

    fn negotiated(&self) -> bool {
        let all = |b: &Bond| {
            let l = b.lacp().unwrap();
            let n = l.members().len();
            (0..n).all(|i| l.may_enable(i))
                && l.members()
                    .iter()
                    .all(|m| m.partner.state.has(State::DISTRIBUTING))
                && b.distribution().enabled.count_ones() as usize == n
        };
        all(&self.a) && all(&self.b)
    }
}

fn status(b: &Bond, i: usize) -> RxStatus {
    b.lacp().unwrap().members()[i].status
}

#[test]
fn two_active_fast_bonds_negotiate_within_five_seconds() {
    let mut p = Pair::new(
        fast(BondMode::BalanceTcp, LacpMode::Active, 1),
        fast(BondMode::BalanceTcp, LacpMode::Active, 2),
        2,
    );
    let t = p
        .until(Duration::from_secs(5), Pair::negotiated)
        .expect("negotiated within 5 s");
    assert!(t <= Duration::from_secs(1), "negotiated at {t:?}");
    assert_eq!(p.a.policy(), Policy::L4);
    let la = p.a.lacp().unwrap();
    for m in la.members() {
        assert_eq!(m.partner.system, system(2), "partner is b's system");
        assert_eq!(m.partner.key, 12);
        assert!(m.partner.state.has(State::DISTRIBUTING));
        assert!(la.actor_info(0).state.has(State::SYNCHRONIZATION));
    }
    // Both members carry buckets.
    let table = p.a.distribution().buckets;
    assert_eq!(table.iter().filter(|&&m| m == 0).count(), 128);
    // Steady state: fast periodic PDUs, about one per second per member and direction.
    p.sent.clear();
    p.until(Duration::from_secs(10), |_| false);
    let per = p
        .sent
        .iter()
        .filter(|(_, to_b, m)| *to_b && *m == 0)
        .count();
    assert!((9..=12).contains(&per), "{per} PDUs in 10 s");
}

#[test]
fn a_silent_link_expires_in_three_to_four_seconds_and_the_bond_moves_to_the_other_member() {
    let mut p = Pair::new(
        fast(BondMode::ActiveBackup, LacpMode::Active, 1),
        fast(BondMode::ActiveBackup, LacpMode::Active, 2),
        2,
    );
    p.until(Duration::from_secs(5), Pair::negotiated).unwrap();
    let active = p.a.distribution().active as usize;
    // Cut the active member's wire, carrier stays up (a silent partner).
    p.wires[active].passes = false;
    let cut = p.now;
    let expired = p
        .until(Duration::from_secs(5), |p| {
            status(&p.a, active) == RxStatus::Expired
        })
        .expect("expired");
    let after = expired - cut;
    assert!(
        after >= Duration::from_secs(2) && after <= Duration::from_secs(4),
        "expired {after:?} after the cut"
    );
    // At expiry, the member leaves the aggregator and the other one is active.
    assert_eq!(p.a.distribution().enabled, 1 << (1 - active));
    assert_eq!(usize::from(p.a.distribution().active), 1 - active);
    assert_eq!(
        p.a.lacp().unwrap().members()[active].counters.link_expired,
        1
    );
    // Three more seconds and it is defaulted, partner cleared.
    let defaulted = p
        .until(Duration::from_secs(4), |p| {
            status(&p.a, active) == RxStatus::Defaulted
        })
        .expect("defaulted");
    assert!(defaulted - expired <= Duration::from_millis(3100));
    assert_eq!(
        p.a.lacp().unwrap().members()[active].partner.system,
        SystemId::default()
    );
    // Repaired: back within a few seconds.
    p.wires[active].passes = true;
    p.until(Duration::from_secs(5), Pair::negotiated)
        .expect("renegotiated");
}

#[test]
fn carrier_loss_fails_over_at_once_and_the_bond_follows_downdelay() {
    let mut ca = fast(BondMode::ActiveBackup, LacpMode::Active, 1);
    ca.downdelay = Duration::from_millis(200);
    let mut p = Pair::new(ca, fast(BondMode::ActiveBackup, LacpMode::Active, 2), 2);
    p.until(Duration::from_secs(5), Pair::negotiated).unwrap();
    let active = usize::from(p.a.distribution().active);
    p.a.set_carrier(active, false, p.now);
    p.b.set_carrier(active, false, p.now);
    let t0 = p.now;
    let moved = p
        .until(Duration::from_secs(1), |p| {
            usize::from(p.a.distribution().active) != active
        })
        .unwrap();
    assert!(moved - t0 >= Duration::from_millis(200) && moved - t0 <= Duration::from_millis(300));
    // b has no downdelay: it moved in the first step.
    assert_eq!(usize::from(p.b.distribution().active), 1 - active);
}

#[test]
fn no_partner_means_defaulted_and_fallback_ab_runs_active_backup() {
    for fallback in [false, true] {
        let mut c = fast(BondMode::BalanceTcp, LacpMode::Active, 1);
        c.fallback_ab = fallback;
        let mut a = Bond::new(c, &members(1, 2)).unwrap();
        a.set_carrier(0, true, Duration::ZERO);
        a.set_carrier(1, true, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut sent = 0;
        while now < Duration::from_secs(10) {
            a.run(now);
            a.transmit_lacp(now, |_, _| sent += 1);
            now += TICK;
        }
        // Nobody answers: the members stay defaulted, and we keep asking every second.
        assert!(
            (18..=24).contains(&sent),
            "{sent} PDUs in 10 s on 2 members"
        );
        let l = a.lacp().unwrap();
        assert!(l.members().iter().all(|m| m.status == RxStatus::Defaulted));
        assert!(l.actor_info(0).state.has(State::DEFAULTED));
        let d = a.distribution();
        if fallback {
            assert_eq!(d.policy, Policy::Active);
            assert_eq!(d.enabled, 0b11);
            assert_eq!(d.active, 0);
        } else {
            assert_eq!(d.enabled, 0, "without fallback no member carries traffic");
            assert_eq!(d.tx_member(&[0u8; 64]), None);
        }
    }
}

#[test]
fn passive_answers_an_active_partner_and_two_passive_ends_stay_silent() {
    let mut p = Pair::new(
        fast(BondMode::BalanceTcp, LacpMode::Passive, 1),
        fast(BondMode::BalanceTcp, LacpMode::Active, 2),
        2,
    );
    assert!(p.until(Duration::from_secs(5), Pair::negotiated).is_some());
    let mut q = Pair::new(
        fast(BondMode::BalanceTcp, LacpMode::Passive, 1),
        fast(BondMode::BalanceTcp, LacpMode::Passive, 2),
        2,
    );
    assert!(q.until(Duration::from_secs(10), Pair::negotiated).is_none());
    assert!(q.sent.is_empty(), "passive ends never speak first");
}

#[test]
fn slow_lacp_expires_after_ninety_seconds() {
    let mut ca = fast(BondMode::ActiveBackup, LacpMode::Active, 1);
    ca.lacp_fast = false;
    let mut cb = fast(BondMode::ActiveBackup, LacpMode::Active, 2);
    cb.lacp_fast = false;
    let mut p = Pair::new(ca, cb, 1);
    p.until(Duration::from_secs(5), Pair::negotiated).unwrap();
    p.wires[0].passes = false;
    let cut = p.now;
    let t = p
        .until(Duration::from_secs(100), |p| {
            status(&p.a, 0) == RxStatus::Expired
        })
        .unwrap();
    assert!(
        t - cut >= Duration::from_secs(60) && t - cut <= Duration::from_secs(90),
        "{:?}",
        t - cut
    );
}

/// A member whose partner is another system (or another key) does not join the aggregator.
#[test]
fn a_member_facing_a_different_partner_stays_out() {
    let mut p = Pair::new(
        fast(BondMode::BalanceTcp, LacpMode::Active, 1),
        fast(BondMode::BalanceTcp, LacpMode::Active, 2),
        2,
    );
    p.until(Duration::from_secs(5), Pair::negotiated).unwrap();
    // Member 1 of a now hears a third system with another key.
    let stranger = pdu::Lacpdu {
        actor: pdu::PortInfo {
            system: system(9),
            key: 99,
            port_priority: 1,
            port: 1,
            state: State(
                State::ACTIVITY | State::TIMEOUT | State::AGGREGATION | State::SYNCHRONIZATION,
            ),
        },
        ..Default::default()
    };
    p.wires[1].passes = false;
    let frame = pdu::build_lacpdu([2, 9, 9, 9, 9, 9], &stranger);
    for _ in 0..20 {
        let now = p.now;
        p.a.receive_lacp(1, &frame, now).unwrap();
        p.step();
    }
    let la = p.a.lacp().unwrap();
    assert!(la.members()[0].attached && !la.members()[1].attached);
    assert!(!la.actor_info(1).state.has(State::SYNCHRONIZATION));
    assert_eq!(p.a.distribution().enabled, 0b01);
}

#[test]
fn malformed_pdus_are_counted_and_change_nothing_and_markers_are_answered() {
    let mut p = Pair::new(
        fast(BondMode::BalanceTcp, LacpMode::Active, 1),
        fast(BondMode::BalanceTcp, LacpMode::Active, 2),
        1,
    );
    p.until(Duration::from_secs(5), Pair::negotiated).unwrap();
    let before = p.a.lacp().unwrap().members()[0].partner;
    let good = pdu::build_lacpdu([2; 6], &pdu::Lacpdu::default());
    let now = p.now;
    assert!(p.a.receive_lacp(0, &good[..50], now).is_err());
    let mut big = good.to_vec();
    big.resize(600, 0);
    assert!(p.a.receive_lacp(0, &big, now).is_err());
    let m = &p.a.lacp().unwrap().members()[0];
    assert_eq!(m.counters.rx_bad, 2);
    assert_eq!(m.partner, before);
    // A marker request gets a response carrying the same requester and transaction.
    let req = pdu::MarkerPdu {
        response: false,
        requester_port: 1,
        requester_system: [2, 0, 0, 0, 0, 2],
        transaction_id: 77,
    };
    p.a.receive_lacp(0, &pdu::build_marker([2; 6], &req), now)
        .unwrap();
    let mut replies = Vec::new();
    p.a.transmit_lacp(now, |_, f| replies.push(pdu::parse(f).unwrap()));
    assert!(replies.contains(&pdu::SlowPdu::Marker(pdu::MarkerPdu {
        response: true,
        ..req
    })));
    // Our own PDU looped back is ignored.
    let mut own = Vec::new();
    p.a.transmit_lacp(now + Duration::from_secs(2), |_, f| own.push(f.to_vec()));
    p.a.receive_lacp(0, &own[0], now).unwrap();
    assert_eq!(p.a.lacp().unwrap().members()[0].counters.rx_looped, 1);
    assert_eq!(p.a.lacp().unwrap().members()[0].partner, before);
}
