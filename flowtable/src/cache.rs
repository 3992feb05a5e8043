//! Per-PMD flow caches in front of `translate`: an exact-match cache (EMC) and a megaflow
//! cache searched tuple-space style (one hash table per distinct mask).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use crate::key::FlowKey;
use crate::translate::Decision;

pub const DEFAULT_EMC_SLOTS: usize = 8192;
pub const DEFAULT_MAX_MEGAFLOWS: usize = 65536;
/// Megaflow lookups between re-rankings of the subtables by hits.
const RESORT_INTERVAL: u32 = 1024;

/// Combines the rule-table and MAC-table generations into the one value `lookup` takes.
pub fn combined_generation(rules: u64, macs: u64) -> u64 {
    rules.rotate_left(32) ^ macs
}

/// A masked key hashed with `fast_hash` instead of SipHash over each field.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FastKey(FlowKey);

impl Hash for FastKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.fast_hash());
    }
}

/// Passes the precomputed `fast_hash` through unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by FastKey; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0xf135_7aea_2e62_a9c5);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type FastMap = HashMap<FastKey, Arc<Decision>, BuildHasherDefault<PassThrough>>;

struct Subtable {
    mask: FlowKey,
    flows: FastMap,
    hits: u64,
}

struct EmcEntry {
    key: FlowKey,
    decision: Arc<Decision>,
    /// Entry is valid only in this epoch: flushing bumps the epoch instead of touching slots.
    epoch: u64,
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
    emc: Vec<Option<EmcEntry>>,
    emc_mask: usize,
    epoch: u64,
    subtables: Vec<Subtable>,
    megaflows: usize,
    max_megaflows: usize,
    since_resort: u32,
    generation: u64,
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
        let slots = emc_slots.max(1).next_power_of_two();
        FlowCache {
            emc: (0..slots).map(|_| None).collect(),
            emc_mask: slots - 1,
            epoch: 0,
            subtables: Vec::new(),
            megaflows: 0,
            max_megaflows: max_megaflows.max(1),
            since_resort: 0,
            generation: 0,
            stats: CacheStats::default(),
        }
    }

    /// The decision for `key`. A changed `generation` (rules or MAC table changed) flushes the
    /// cache first; a miss calls `slow` and caches its result under `decision.mask`.
    pub fn lookup(
        &mut self,
        key: &FlowKey,
        generation: u64,
        slow: &mut dyn FnMut(&FlowKey) -> Decision,
    ) -> &Arc<Decision> {
        if generation != self.generation {
            self.flush();
            self.generation = generation;
        }
        let slot = (key.fast_hash() as usize) & self.emc_mask;
        let hit =
            matches!(self.emc.get(slot), Some(Some(e)) if e.epoch == self.epoch && e.key == *key);
        if hit {
            self.stats.emc_hits += 1;
        } else {
            let d = match self.megaflow_lookup(key) {
                Some(d) => {
                    self.stats.megaflow_hits += 1;
                    d
                }
                None => {
                    self.stats.misses += 1;
                    let d = Arc::new(slow(key));
                    self.megaflow_insert(key, &d);
                    d
                }
            };
            if let Some(e) = self.emc.get_mut(slot) {
                *e = Some(EmcEntry {
                    key: *key,
                    decision: d,
                    epoch: self.epoch,
                });
            }
        }
        match self.emc.get(slot) {
            Some(Some(e)) => &e.decision,
            // The slot index is masked to the EMC size and was just filled.
            _ => unreachable!("EMC slot {slot} empty after fill"),
        }
    }

    fn megaflow_lookup(&mut self, key: &FlowKey) -> Option<Arc<Decision>> {
        self.since_resort += 1;
        if self.since_resort >= RESORT_INTERVAL {
            self.since_resort = 0;
            // Most-hit masks first; unstable sort does not allocate. Halving keeps the ranking
            // following recent traffic.
            self.subtables.sort_unstable_by_key(|s| Reverse(s.hits));
            for s in &mut self.subtables {
                s.hits /= 2;
            }
        }
        // Any megaflow that matches gives the right answer (each is exact on every field its
        // decision depends on), so the first hit wins.
        for s in &mut self.subtables {
            if let Some(d) = s.flows.get(&FastKey(key.masked(&s.mask))) {
                s.hits += 1;
                return Some(Arc::clone(d));
            }
        }
        None
    }

    fn megaflow_insert(&mut self, key: &FlowKey, d: &Arc<Decision>) {
        if self.megaflows >= self.max_megaflows {
            // Crude but bounded: start over rather than track per-flow usage.
            self.subtables.clear();
            self.megaflows = 0;
        }
        let mask = d.mask;
        let i = match self.subtables.iter().position(|s| s.mask == mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable {
                    mask,
                    flows: FastMap::default(),
                    hits: 0,
                });
                self.subtables.len() - 1
            }
        };
        if let Some(s) = self.subtables.get_mut(i)
            && s.flows
                .insert(FastKey(key.masked(&mask)), Arc::clone(d))
                .is_none()
        {
            self.megaflows += 1;
        }
    }

    /// Drops every cached decision (statistics counters are kept).
    pub fn flush(&mut self) {
        self.epoch += 1;
        self.subtables.clear();
        self.megaflows = 0;
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            megaflows: self.megaflows,
            subtables: self.subtables.len(),
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
