//! Per-PMD flow caches in front of `translate`: an exact-match cache (EMC) and a megaflow
//! cache searched tuple-space style (one hash table per distinct mask). A change to rules,
//! ports or learned addresses invalidates only the decisions that depend on it
//! ([`FlowCache::invalidate`]); nothing is flushed wholesale in normal operation.
//!
//! The pipeline hashes and prefetches a whole batch first ([`FlowCache::hash`],
//! [`FlowCache::prefetch`]), then looks each packet up with [`FlowCache::emc_lookup`] and, on a miss,
//! [`FlowCache::lookup_past_emc`].

mod deps;
mod emc;
mod emc_hash;
mod megaflow;
mod projection;

use std::sync::Arc;

use crate::hash::KeyHasher;
use crate::key::{FlowKey, PortNo};
use crate::rule::{Match, RuleId};
use crate::translate::Decision;
use deps::Deps;
use emc::Emc;
use emc_hash::EmcHasher;
use megaflow::Megaflows;

pub const DEFAULT_EMC_SLOTS: usize = 8192;
pub const DEFAULT_MAX_MEGAFLOWS: usize = 65536;
/// A decision is copied into the EMC with probability 1/EMC_INSERT_INV_PROB (as Open vSwitch's
/// `emc-insert-inv-prob`, also for fresh slow-path results): with more flows than EMC slots
/// (or a guest sending from random addresses), inserting every time only churns the EMC,
/// while the heavy flows still get in quickly.
pub const EMC_INSERT_INV_PROB: u32 = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub misses: u64,
    pub megaflows: usize,
    pub subtables: usize,
    /// Cached decisions dropped because something they depended on changed.
    pub invalidated: u64,
    /// Megaflows dropped to make room for new ones.
    pub evicted: u64,
}

/// Which of the caches answered a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLevel {
    Emc,
    Megaflow,
}

/// Something that changed which may make cached decisions wrong. Each invalidates only the
/// decisions that depend on it.
#[derive(Clone, Copy, Debug)]
pub enum Invalidation<'a> {
    /// A rule was added: decisions for packets it matches, made by a rule of lower priority
    /// (or by no rule), may now go to it. (A replaced rule is also removed.)
    RuleAdded { priority: u16, m: &'a Match },
    /// A rule was removed (or replaced): the decisions it made.
    RuleRemoved(RuleId),
    /// A port came, went, or changed its VLAN settings: decisions made for its packets, sending
    /// to it, or sending everywhere.
    Port(PortNo),
    /// An address was learned, moved or removed: decisions that looked it up, or learned it.
    Mac { vlan: u16, mac: [u8; 6] },
    /// Anything broader (the rule table became empty or non-empty, MAC aging changed, a change
    /// log overflowed): every decision.
    All,
}

pub struct FlowCache {
    hasher: KeyHasher,
    emc_hasher: EmcHasher,
    emc: Emc,
    megaflows: Megaflows,
    /// Decisions by the (VLAN, MAC)s they looked up or learned, and by the rule that made them.
    mac_deps: Deps<(u16, [u8; 6])>,
    rule_deps: Deps<RuleId>,
    /// xorshift32 state for the EMC insertion draw.
    draw: u32,
    /// `EMC_INSERT_INV_PROB - 1` (a power of two: a mask, not a division, per draw).
    emc_insert_mask: u32,
    /// The slow path's latest decision (what a miss returns).
    fresh: Arc<Decision>,
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
            mac_deps: Deps::new(max_megaflows),
            rule_deps: Deps::new(max_megaflows),
            draw: 0x9e37_79b9,
            emc_insert_mask: EMC_INSERT_INV_PROB - 1,
            fresh: Arc::new(Decision::dropped(crate::drop_reason::DropReason::NoMatch)),
            stats: CacheStats::default(),
        }
    }

    /// Copies a decision into the EMC once in `n` lookups that miss it (1: always; rounded up
    /// to a power of two).
    pub fn set_emc_insert_inv_prob(&mut self, n: u32) {
        self.emc_insert_mask = n.max(1).next_power_of_two() - 1;
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

    /// The decision for `key`: from the EMC, the megaflow cache, or `slow` (whose result is
    /// cached under `decision.mask`).
    pub fn lookup(
        &mut self,
        key: &FlowKey,
        slow: &mut dyn FnMut(&FlowKey) -> Decision,
    ) -> Decision {
        let hash = self.hash(key);
        if let Some(d) = self.emc_lookup(key, hash) {
            return d.clone();
        }
        self.lookup_past_emc(key, hash, slow).clone()
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
        if let Some(i) = self.megaflows.lookup(key, &self.hasher) {
            self.stats.megaflow_hits += 1;
            let Some(d) = self.megaflows.decision(i) else {
                unreachable!("megaflow lookup returned an empty slot {i}");
            };
            if insert {
                self.emc.insert(key, hash, Arc::clone(d));
            }
            return d;
        }
        self.stats.misses += 1;
        let d = Arc::new(slow(key));
        self.stats.evicted += self.megaflows.insert(key, &d, &self.hasher);
        for &addr in &d.mac_deps {
            self.mac_deps.add(addr, &d);
        }
        if let Some(id) = d.rule_id() {
            self.rule_deps.add(id, &d);
        }
        if insert {
            self.emc.insert(key, hash, Arc::clone(&d));
        }
        self.fresh = d;
        &self.fresh
    }

    /// True once in about EMC_INSERT_INV_PROB calls.
    #[inline]
    fn draw_insert(&mut self) -> bool {
        let mut x = self.draw;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.draw = x;
        x & self.emc_insert_mask == 0
    }

    /// Which cache holds a valid decision for `key`, and the decision, without counting a hit
    /// or changing anything (for traces).
    pub fn holds(&self, key: &FlowKey) -> Option<(CacheLevel, &Decision)> {
        if let Some(d) = self.emc.get(key, self.hash(key)) {
            return Some((CacheLevel::Emc, d));
        }
        let i = self.megaflows.peek(key, &self.hasher)?;
        let d = self.megaflows.decision(i)?;
        Some((CacheLevel::Megaflow, d))
    }

    /// Drops the cached decisions that `change` can make wrong (and only those).
    pub fn invalidate(&mut self, change: Invalidation<'_>) {
        let n = match change {
            Invalidation::RuleAdded { priority, m } => {
                // Megaflows with a packet the rule also matches, decided by a rule of lower
                // priority (or none).
                self.megaflows.remove_overlapping(m, &self.hasher, |d| {
                    d.rule_priority().is_none_or(|p| p < priority)
                })
            }
            Invalidation::RuleRemoved(id) => self.rule_deps.invalidate(&id),
            Invalidation::Port(p) => self
                .megaflows
                .remove_where(|key, _, d| d.involves_port(key.in_port, p)),
            Invalidation::Mac { vlan, mac } => self.mac_deps.invalidate(&(vlan, mac)),
            Invalidation::All => {
                let n = self.megaflows.len();
                self.flush();
                n
            }
        };
        self.stats.invalidated += n as u64;
    }

    /// Drops every cached decision (statistics counters are kept).
    pub fn flush(&mut self) {
        self.emc.flush();
        self.megaflows.clear();
        self.mac_deps.clear();
        self.rule_deps.clear();
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
mod tests;
