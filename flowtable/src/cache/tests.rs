use super::*;
use crate::drop_reason::DropReason;
use crate::translate::{DpAction, Validity};

fn decision(port: u32, mask: FlowKey) -> Decision {
    Decision {
        actions: vec![DpAction::Output(port)],
        mask,
        drop: None,
        rule: None,
        learn: None,
        learn_refused: false,
        mac_deps: Vec::new(),
        floods: false,
        normal_targets: Vec::new(),
        validity: Validity::default(),
    }
}

fn in_port_mask() -> FlowKey {
    FlowKey {
        in_port: u32::MAX,
        ..FlowKey::default()
    }
}

/// A cache that copies every decision into the EMC (deterministic hit counts).
fn eager(emc: usize, megaflows: usize) -> FlowCache {
    let mut c = FlowCache::new(emc, megaflows);
    c.set_emc_insert_inv_prob(1);
    c
}

fn key(in_port: u32, tp_dst: u16) -> FlowKey {
    FlowKey {
        in_port,
        tp_dst,
        ..FlowKey::default()
    }
}

#[test]
fn emc_megaflow_miss_and_port_invalidation() {
    let mut c = eager(1000, 10);
    let calls = std::cell::Cell::new(0);
    let mut slow = |k: &FlowKey| {
        calls.set(calls.get() + 1);
        decision(k.in_port + 10, in_port_mask())
    };
    let (k1, k2) = (key(1, 1), key(1, 2));
    assert_eq!(c.lookup(&k1, &mut slow).actions, vec![DpAction::Output(11)]);
    assert_eq!(c.lookup(&k1, &mut slow).actions, vec![DpAction::Output(11)]);
    // Same in_port, different tp_dst: megaflow hit (mask ignores tp_dst).
    assert_eq!(c.lookup(&k2, &mut slow).actions, vec![DpAction::Output(11)]);
    let s = c.stats();
    assert_eq!((s.misses, s.emc_hits, s.megaflow_hits), (1, 1, 1));
    assert_eq!((s.megaflows, s.subtables), (1, 1));
    // A port the decision does not involve: nothing changes.
    c.invalidate(Invalidation::Port(5));
    c.lookup(&k1, &mut slow);
    assert_eq!(c.stats().misses, 1);
    // The output port changed: the decision and its EMC copies go.
    c.invalidate(Invalidation::Port(11));
    assert_eq!(c.stats().invalidated, 1);
    c.lookup(&k1, &mut slow);
    c.lookup(&k2, &mut slow);
    assert_eq!(c.stats().misses, 2);
    assert_eq!(calls.get(), 2);
    c.invalidate(Invalidation::All);
    c.lookup(&k1, &mut slow);
    assert_eq!(c.stats().misses, 3);
}

#[test]
fn megaflow_limit_evicts_the_oldest() {
    let mut c = eager(1, 2);
    let mut slow = |_: &FlowKey| Decision {
        drop: Some(DropReason::NoMatch),
        actions: vec![],
        ..decision(0, in_port_mask())
    };
    for p in 0..5 {
        c.lookup(&key(p, 0), &mut slow);
        assert!(c.stats().megaflows <= 2);
    }
    let s = c.stats();
    assert_eq!((s.misses, s.evicted), (5, 3));
    // The two newest are still there; the oldest is not.
    let misses = c.stats().misses;
    c.lookup(&key(3, 0), &mut slow);
    c.lookup(&key(4, 0), &mut slow);
    assert_eq!(c.stats().misses, misses);
    c.lookup(&key(0, 0), &mut slow);
    assert_eq!(c.stats().misses, misses + 1);
}

#[test]
fn two_way_emc_keeps_colliding_flows() {
    // 1,000 exact-match flows in 4,096 slots: with one way, about one in nine would lose
    // its slot to another; with two ways, only a few percent (both ways taken).
    let mut c = eager(4096, 10_000);
    let mut slow = |k: &FlowKey| decision(k.in_port, FlowKey::full_mask());
    let key = |i: u32| {
        let mut nw_src = [0; 16];
        nw_src[..4].copy_from_slice(&[10, 0, (i >> 8) as u8, i as u8]);
        FlowKey {
            in_port: 1,
            nw_src,
            ..FlowKey::default()
        }
    };
    for i in 0..1000 {
        c.lookup(&key(i), &mut slow);
    }
    for i in 0..1000 {
        c.lookup(&key(i), &mut slow);
    }
    let s = c.stats();
    assert_eq!(s.misses, 1000);
    assert!(s.emc_hits >= 950, "{s:?}");
}

#[test]
fn hits_reach_the_emc_at_the_insertion_rate() {
    // Ten flows under one megaflow: only the first is a miss; each reaches the EMC after
    // about EMC_INSERT_INV_PROB lookups that missed it.
    let mut c = FlowCache::new(4096, 100);
    let mut slow = |k: &FlowKey| decision(k.in_port, in_port_mask());
    for round in 0..640 {
        for i in 0..10 {
            c.lookup(&key(1, i), &mut slow);
        }
        if round == 0 {
            let s = c.stats();
            assert_eq!((s.misses, s.megaflow_hits + s.emc_hits), (1, 9));
        }
    }
    let before = c.stats();
    for i in 0..10 {
        c.lookup(&key(1, i), &mut slow);
    }
    assert_eq!(c.stats().emc_hits - before.emc_hits, 10, "{before:?}");
}

#[test]
fn subtables_resort_keeps_answers() {
    let mut c = FlowCache::new(1, 1000);
    let wide = FlowKey::default();
    let mut slow = |k: &FlowKey| {
        if k.in_port == 1 {
            decision(1, wide)
        } else {
            decision(k.in_port, in_port_mask())
        }
    };
    for i in 0..3000u32 {
        let k = key(2 + i % 3, i as u16);
        let d = c.lookup(&k, &mut slow);
        assert_eq!(d.actions, vec![DpAction::Output(k.in_port)]);
    }
    assert_eq!(c.stats().subtables, 1);
}

#[test]
fn rule_changes_invalidate_only_what_they_can_change() {
    use crate::rule::{Action, Match, Rule, RuleTable};
    let mut rules = RuleTable::new();
    let on_port = |p: u32| Match::new(key(p, 0), in_port_mask());
    let low = rules.insert(Rule {
        priority: 10,
        m: on_port(1),
        actions: vec![Action::Output(9)],
        cookie: 0,
    });
    let high = rules.insert(Rule {
        priority: 100,
        m: on_port(2),
        actions: vec![Action::Output(8)],
        cookie: 0,
    });
    let mut c = eager(64, 64);
    let mut slow = |k: &FlowKey| {
        let (r, mask) = rules.lookup(k);
        Decision {
            rule: r.cloned(),
            ..decision(k.in_port + 100, mask.union(&in_port_mask()))
        }
    };
    c.lookup(&key(1, 0), &mut slow);
    c.lookup(&key(2, 0), &mut slow);
    c.lookup(&key(3, 0), &mut slow);
    assert_eq!(c.stats().misses, 3);
    let tp_mask = FlowKey {
        tp_dst: u16::MAX,
        ..FlowKey::default()
    };
    // A priority-50 rule on tp_dst=0 overlaps all three flows: it can take over port 1's
    // (priority 10) and port 3's (no rule), not port 2's (priority 100).
    let m = Match::new(key(0, 0), tp_mask);
    c.invalidate(Invalidation::RuleAdded {
        priority: 50,
        m: &m,
    });
    assert_eq!(c.stats().invalidated, 2);
    // A rule on tp_dst=7 overlaps none of them.
    let m = Match::new(key(0, 7), tp_mask);
    c.invalidate(Invalidation::RuleAdded {
        priority: 50,
        m: &m,
    });
    assert_eq!(c.stats().invalidated, 2);
    c.lookup(&key(2, 0), &mut slow);
    assert_eq!(c.stats().misses, 3, "port 2's decision survived");
    // Removing the high rule takes exactly its decision.
    c.lookup(&key(1, 0), &mut slow);
    c.invalidate(Invalidation::RuleRemoved(high.rule.id));
    assert_eq!(c.stats().invalidated, 3);
    c.invalidate(Invalidation::RuleRemoved(low.rule.id));
    assert_eq!(c.stats().invalidated, 4);
}

#[test]
fn mac_changes_invalidate_the_decisions_that_looked_them_up() {
    let mut c = eager(64, 64);
    let full = FlowKey::full_mask();
    let mut slow = |k: &FlowKey| Decision {
        mac_deps: vec![(0, k.dl_dst)],
        ..decision(2, full)
    };
    let to = |dst: u8| FlowKey {
        in_port: 1,
        dl_dst: [2, 0, 0, 0, 0, dst],
        ..FlowKey::default()
    };
    for d in 1..=3 {
        c.lookup(&to(d), &mut slow);
    }
    c.invalidate(Invalidation::Mac {
        vlan: 0,
        mac: [2, 0, 0, 0, 0, 2],
    });
    c.invalidate(Invalidation::Mac {
        vlan: 7,
        mac: [2, 0, 0, 0, 0, 1],
    });
    assert_eq!(c.stats().invalidated, 1);
    for d in 1..=3 {
        c.lookup(&to(d), &mut slow);
    }
    let s = c.stats();
    assert_eq!((s.misses, s.emc_hits), (4, 2), "{s:?}");
}

#[test]
fn a_port_flooding_the_megaflow_cache_evicts_its_own() {
    let mut c = eager(1 << 16, 100);
    let mut slow = |_: &FlowKey| decision(9, FlowKey::full_mask());
    // Port 1 has two flows; port 3 sends 1,000 distinct ones.
    c.lookup(&key(1, 1), &mut slow);
    c.lookup(&key(1, 2), &mut slow);
    for i in 0..1000 {
        c.lookup(&key(3, i), &mut slow);
    }
    let s = c.stats();
    assert_eq!((s.megaflows, s.evicted), (100, 902));
    // Port 1's flows are still cached (and valid in the EMC).
    let misses = c.stats().misses;
    c.lookup(&key(1, 1), &mut slow);
    c.lookup(&key(1, 2), &mut slow);
    assert_eq!(c.stats().misses, misses);
}

#[test]
fn rule_additions_find_their_megaflows_after_compaction() {
    use crate::rule::Match;
    let mut c = eager(1 << 14, 5000);
    let mut slow = |_: &FlowKey| decision(9, FlowKey::full_mask());
    for i in 0..3000 {
        c.lookup(&key(3, i), &mut slow);
    }
    c.lookup(&key(1, 7), &mut slow);
    let tp = FlowKey {
        tp_dst: u16::MAX,
        ..FlowKey::default()
    };
    // A rule on tp_dst=9999 overlaps nothing (and builds the projection on tp_dst).
    let none = Match::new(key(0, 9999), tp);
    c.invalidate(Invalidation::RuleAdded {
        priority: 10,
        m: &none,
    });
    assert_eq!(c.stats().invalidated, 0);
    // Port 3's megaflows go; the slots are packed (slot numbers change).
    c.invalidate(Invalidation::Port(3));
    assert_eq!(c.stats().invalidated, 3000);
    assert_eq!(c.stats().megaflows, 1);
    // A rule on tp_dst=7 overlaps port 1's megaflow: found, though it moved.
    let seven = Match::new(key(0, 7), tp);
    c.invalidate(Invalidation::RuleAdded {
        priority: 10,
        m: &seven,
    });
    assert_eq!(c.stats().invalidated, 3001);
    let misses = c.stats().misses;
    c.lookup(&key(1, 7), &mut slow);
    assert_eq!(c.stats().misses, misses + 1);
}
