//! Per-PMD flow caches in front of `translate`: an exact-match cache (EMC) and a megaflow
//! cache searched tuple-space style (one hash table per distinct mask).
//!
//! The pipeline hashes and prefetches a whole batch first ([`FlowCache::hash`],
//! [`FlowCache::prefetch`]), then looks each packet up with [`FlowCache::emc_lookup`] and, on a miss,
//! [`FlowCache::lookup_past_emc`].

mod emc;
mod emc_hash;
mod megaflow;

use std::sync::Arc;

use crate::hash::KeyHasher;
use crate::key::FlowKey;
use crate::translate::Decision;
use emc::Emc;
use emc_hash::EmcHasher;
use megaflow::Megaflows;

pub const DEFAULT_EMC_SLOTS: usize = 8192;
pub const DEFAULT_MAX_MEGAFLOWS: usize = 65536;
/// A megaflow hit is copied into the EMC with probability 1/EMC_INSERT_INV_PROB (as Open
/// vSwitch's `emc-insert-inv-prob`): with more flows than EMC slots, inserting every time only
/// churns the EMC, while the heavy flows still get in quickly. A slow-path result always goes in.
pub const EMC_INSERT_INV_PROB: u32 = 64;

/// Combines the rule-table and MAC-table generations into the one value `lookup` takes.
pub fn combined_generation(rules: u64, macs: u64) -> u64 {
    rules.rotate_left(32) ^ macs
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub misses: u64,
    pub megaflows: usize,
    pub subtables: usize,
}

pub struct FlowCache {
    hasher: KeyHasher,
    emc_hasher: EmcHasher,
    emc: Emc,
    megaflows: Megaflows,
    generation: u64,
    /// xorshift32 state for the EMC insertion draw.
    draw: u32,
    stats: CacheStats,
}

impl Default for FlowCache {
    fn default() -> Self {
        FlowCache::new(DEFAULT_EMC_SLOTS, DEFAULT_MAX_MEGAFLOWS)
    }
}

impl FlowCache {
    /// `emc_slots` is rounded up to a power of two (at least 1).
    pub fn new(emc_slots: usize, max_megaflows: usize) -> Self {
        FlowCache {
            hasher: KeyHasher::random(),
            emc_hasher: EmcHasher::random(),
            emc: Emc::new(emc_slots),
            megaflows: Megaflows::new(max_megaflows),
            generation: 0,
            draw: 0x9e37_79b9,
            stats: CacheStats::default(),
        }
    }

    /// The key's EMC hash, as [`FlowCache::emc_lookup`] wants it.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.emc_hasher.hash(key, &self.hasher)
    }

    /// Starts loading the EMC slots of `hash`, so a later lookup finds them in the CPU cache.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.emc.prefetch(hash);
    }

    /// The decision for `key`. A changed `generation` (rules or MAC table changed) flushes the
    /// cache first; a miss calls `slow` and caches its result under `decision.mask`.
    pub fn lookup(
        &mut self,
        key: &FlowKey,
        generation: u64,
        slow: &mut dyn FnMut(&FlowKey) -> Decision,
    ) -> &Decision {
        let hash = self.hash(key);
        self.sync_generation(generation);
        if self.emc_lookup(key, hash).is_none() {
            return self.lookup_past_emc(key, hash, slow);
        }
        // Looked up again: returning the first borrow would keep `self` borrowed on the miss
        // path as well, which today's borrow checker refuses.
        match self.emc.get(key, hash) {
            Some(d) => d,
            None => unreachable!("EMC lost an entry between two lookups"),
        }
    }

    /// Flushes every cached decision if `generation` (rules and MAC table) moved since the last
    /// call. The pipeline calls it once per batch and again after a lookup that went past the
    /// EMC or re-learned a MAC: both can change the MAC table.
    #[inline]
    pub fn sync_generation(&mut self, generation: u64) {
        if generation != self.generation {
            self.flush();
            self.generation = generation;
        }
    }

    /// The EMC's decision for `key`, whose hash is from [`FlowCache::hash`], counted as a hit;
    /// None on a miss, for [`FlowCache::lookup_past_emc`].
    #[inline(always)]
    pub fn emc_lookup(&mut self, key: &FlowKey, hash: u64) -> Option<&Decision> {
        let d = self.emc.get(key, hash)?;
        self.stats.emc_hits += 1;
        Some(d)
    }

    /// The megaflow cache's decision for `key`, else `slow`'s, which is cached under its mask.
    /// Not inlined: it would take registers from the EMC hit path around it.
    #[inline(never)]
    pub fn lookup_past_emc(
        &mut self,
        key: &FlowKey,
        hash: u64,
        slow: &mut dyn FnMut(&FlowKey) -> Decision,
    ) -> &Decision {
        let insert = self.draw_insert();
        if let Some(index) = self.megaflows.lookup(key, &self.hasher) {
            self.stats.megaflow_hits += 1;
            let Some(d) = self.megaflows.decision(index) else {
                unreachable!("megaflow {index} has no decision");
            };
            if insert {
                self.emc.insert(key, hash, Arc::clone(d));
            }
            return d;
        }
        self.stats.misses += 1;
        let d = Arc::new(slow(key));
        self.megaflows.insert(key, &d, &self.hasher);
        self.emc.insert(key, hash, d);
        match self.emc.get(key, hash) {
            Some(d) => d,
            // Just inserted into one of the key's two slots.
            None => unreachable!("EMC lost an entry it just stored"),
        }
    }

    /// True once in about EMC_INSERT_INV_PROB calls.
    #[inline]
    fn draw_insert(&mut self) -> bool {
        let mut x = self.draw;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.draw = x;
        x.is_multiple_of(EMC_INSERT_INV_PROB)
    }

    /// Drops every cached decision (statistics counters are kept).
    pub fn flush(&mut self) {
        self.emc.flush();
        self.megaflows.clear();
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            megaflows: self.megaflows.len(),
            subtables: self.megaflows.subtables(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drop_reason::DropReason;
    use crate::translate::DpAction;

    fn decision(port: u32, mask: FlowKey) -> Decision {
        Decision {
            actions: vec![DpAction::Output(port)],
            mask,
            drop: None,
            rule: None,
            learn: None,
        }
    }

    fn in_port_mask() -> FlowKey {
        FlowKey {
            in_port: u32::MAX,
            ..FlowKey::default()
        }
    }

    #[test]
    fn emc_megaflow_miss_and_generation() {
        let mut c = FlowCache::new(1000, 10);
        let mut calls = 0;
        let mut slow = |k: &FlowKey| {
            calls += 1;
            decision(k.in_port + 10, in_port_mask())
        };
        let k1 = FlowKey {
            in_port: 1,
            tp_dst: 1,
            ..FlowKey::default()
        };
        let k2 = FlowKey { tp_dst: 2, ..k1 };
        assert_eq!(
            c.lookup(&k1, 0, &mut slow).actions,
            vec![DpAction::Output(11)]
        );
        assert_eq!(
            c.lookup(&k1, 0, &mut slow).actions,
            vec![DpAction::Output(11)]
        );
        // Same in_port, different tp_dst: megaflow hit (mask ignores tp_dst).
        assert_eq!(
            c.lookup(&k2, 0, &mut slow).actions,
            vec![DpAction::Output(11)]
        );
        let s = c.stats();
        assert_eq!((s.misses, s.emc_hits, s.megaflow_hits), (1, 1, 1));
        assert_eq!((s.megaflows, s.subtables), (1, 1));
        // New generation: everything is recomputed.
        c.lookup(&k2, 1, &mut slow);
        assert_eq!(c.stats().misses, 2);
        assert_eq!(calls, 2);
    }

    #[test]
    fn megaflow_limit_clears() {
        let mut c = FlowCache::new(1, 2);
        let mut slow = |_: &FlowKey| Decision {
            actions: vec![],
            mask: in_port_mask(),
            drop: Some(DropReason::NoMatch),
            rule: None,
            learn: None,
        };
        for p in 0..5 {
            let k = FlowKey {
                in_port: p,
                ..FlowKey::default()
            };
            c.lookup(&k, 0, &mut slow);
            assert!(c.stats().megaflows <= 2);
        }
        assert_eq!(c.stats().misses, 5);
    }

    #[test]
    fn two_way_emc_keeps_colliding_flows() {
        // 1,000 exact-match flows in 4,096 slots: with one way, about one in nine would lose
        // its slot to another; with two ways, only a few percent (both ways taken).
        let mut c = FlowCache::new(4096, 10_000);
        let mut slow = |k: &FlowKey| decision(k.in_port, FlowKey::full_mask());
        let key = |i: u32| FlowKey {
            in_port: 1,
            nw_src: [
                10,
                0,
                (i >> 8) as u8,
                i as u8,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            ..FlowKey::default()
        };
        for i in 0..1000 {
            c.lookup(&key(i), 0, &mut slow);
        }
        for i in 0..1000 {
            c.lookup(&key(i), 0, &mut slow);
        }
        let s = c.stats();
        assert_eq!(s.misses, 1000);
        assert!(s.emc_hits >= 950, "{s:?}");
    }

    #[test]
    fn megaflow_hits_reach_the_emc() {
        // Ten flows under one megaflow: only the first is a miss (and goes to the EMC); the
        // others are copied there after about EMC_INSERT_INV_PROB megaflow hits each.
        let mut c = FlowCache::new(4096, 100);
        let mut slow = |k: &FlowKey| decision(k.in_port, in_port_mask());
        let key = |i: u16| FlowKey {
            in_port: 1,
            tp_src: i,
            ..FlowKey::default()
        };
        for round in 0..640 {
            for i in 0..10 {
                c.lookup(&key(i), 0, &mut slow);
            }
            if round == 0 {
                let s = c.stats();
                assert_eq!((s.misses, s.emc_hits, s.megaflow_hits), (1, 0, 9));
            }
        }
        let before = c.stats();
        for i in 0..10 {
            c.lookup(&key(i), 0, &mut slow);
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
            let k = FlowKey {
                in_port: 2 + i % 3,
                tp_src: i as u16,
                ..FlowKey::default()
            };
            let d = c.lookup(&k, 7, &mut slow);
            assert_eq!(d.actions, vec![DpAction::Output(k.in_port)]);
        }
        assert_eq!(c.stats().subtables, 1);
    }
}
