//! The megaflow cache: decisions stored under the fields they depend on, searched tuple-space
//! style, one hash table per distinct mask ("subtable"), most-hit subtable first. Every valid
//! decision of a PMD's caches is here (the EMC holds copies of the same `Arc`s), so scanning
//! these slots finds every decision a change can affect.

use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use super::projection::Projections;
use crate::hash::KeyHasher;
use crate::key::{FlowKey, PortNo};
use crate::rule::Match;
use crate::translate::Decision;

/// Lookups between re-rankings of the subtables by hits.
const RESORT_INTERVAL: u32 = 1024;

/// A masked key with its hash computed once by [`KeyHasher`].
#[derive(Clone, Copy)]
pub(super) struct HashedKey {
    pub(super) hash: u64,
    pub(super) key: FlowKey,
}

impl PartialEq for HashedKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for HashedKey {}

impl Hash for HashedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Passes the precomputed hash through unchanged.
#[derive(Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by HashedKey; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0xf135_7aea_2e62_a9c5);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Values index `Megaflows::slots`.
type Table = HashMap<HashedKey, u32, BuildHasherDefault<PassThrough>>;

struct Subtable {
    mask: FlowKey,
    flows: Table,
    hits: u64,
    projections: Projections,
}

impl Subtable {
    /// One subtable's slot for `key`. Out of line: inlined into the loop over subtables, the
    /// key and hash seed words are hoisted and spilled to the stack.
    #[inline(never)]
    fn probe(&mut self, key: &FlowKey, hasher: &KeyHasher) -> Option<u32> {
        let key = key.masked(&self.mask);
        let probe = HashedKey {
            hash: hasher.hash(&key),
            key,
        };
        let d = *self.flows.get(&probe)?;
        self.hits += 1;
        Some(d)
    }
}

/// What eviction and invalidation need of a megaflow: its masked key and mask (to find it
/// again), and when it was inserted (to tell current queue entries from stale ones). Kept apart
/// from the decisions, which lookups read, so a megaflow hit touches 8 bytes of this table.
struct Slot {
    key: HashedKey,
    mask: FlowKey,
    stamp: u64,
}

pub(super) struct Megaflows {
    subtables: Vec<Subtable>,
    slots: Vec<Option<Slot>>,
    /// The decision of each slot.
    decisions: Vec<Option<Arc<Decision>>>,
    free: Vec<u32>,
    /// Occupied slots of each input port in insertion order, as (slot, stamp); entries whose
    /// stamp no longer matches the slot's were removed since and are skipped.
    by_port: HashMap<PortNo, VecDeque<(u32, u64)>>,
    /// Entries in `by_port`, stale ones included (rebuilt when they far outnumber the slots).
    queued: usize,
    next_stamp: u64,
    len: usize,
    max: usize,
    since_resort: u32,
}

impl Megaflows {
    pub(super) fn new(max: usize) -> Self {
        Megaflows {
            subtables: Vec::new(),
            slots: Vec::new(),
            decisions: Vec::new(),
            free: Vec::new(),
            by_port: HashMap::new(),
            queued: 0,
            next_stamp: 0,
            len: 0,
            max: max.max(1),
            since_resort: 0,
        }
    }

    /// The slot of a valid decision cached for `key`, for [`Megaflows::decision`].
    pub(super) fn lookup(&mut self, key: &FlowKey, hasher: &KeyHasher) -> Option<u32> {
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
        // Any valid megaflow that matches gives the right answer (each is exact on every field
        // its decision depends on), so the first hit wins. An invalidated one is skipped: the
        // slow path's new decision takes its place.
        let decisions = &self.decisions;
        self.subtables.iter_mut().find_map(|s| {
            let i = s.probe(key, hasher)?;
            match decisions.get(i as usize) {
                Some(Some(d)) if d.validity.is_valid() => Some(i),
                _ => None,
            }
        })
    }

    /// [`Megaflows::lookup`] without counting a hit or re-ranking subtables (for traces).
    pub(super) fn peek(&self, key: &FlowKey, hasher: &KeyHasher) -> Option<u32> {
        self.subtables.iter().find_map(|s| {
            let key = key.masked(&s.mask);
            let probe = HashedKey {
                hash: hasher.hash(&key),
                key,
            };
            let i = *s.flows.get(&probe)?;
            match self.decisions.get(i as usize) {
                Some(Some(d)) if d.validity.is_valid() => Some(i),
                _ => None,
            }
        })
    }

    #[inline]
    pub(super) fn decision(&self, i: u32) -> Option<&Arc<Decision>> {
        self.decisions.get(i as usize)?.as_ref()
    }

    /// Caches `d` for every key equal to `key` under `d.mask`. When full, the oldest megaflow
    /// goes (and its decision is invalidated, so no EMC entry outlives it).
    pub(super) fn insert(&mut self, key: &FlowKey, d: &Arc<Decision>, hasher: &KeyHasher) -> u64 {
        let mask = d.mask;
        let key = key.masked(&mask);
        let entry = HashedKey {
            hash: hasher.hash(&key),
            key,
        };
        // Same masked key again (only after the caller missed it): replace its decision.
        if let Some(table) = self.subtables.iter().find(|s| s.mask == mask)
            && let Some(&i) = table.flows.get(&entry)
            && let Some(Some(old)) = self.decisions.get_mut(i as usize)
        {
            old.validity.invalidate();
            *old = Arc::clone(d);
            return 0;
        }
        let mut evicted = 0;
        while self.len >= self.max && self.evict_oldest() {
            evicted += 1;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let slot = Slot {
            key: entry,
            mask,
            stamp,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                self.decisions[i as usize] = Some(Arc::clone(d));
                i
            }
            None => {
                // `max` is far below u32::MAX, so the index fits.
                self.slots.push(Some(slot));
                self.decisions.push(Some(Arc::clone(d)));
                (self.slots.len() - 1) as u32
            }
        };
        match self.subtables.iter_mut().find(|s| s.mask == mask) {
            Some(s) => {
                s.flows.insert(entry, i);
                s.projections.insert(&entry.key, (i, stamp), hasher);
            }
            None => {
                let mut flows = Table::default();
                flows.insert(entry, i);
                self.subtables.push(Subtable {
                    mask,
                    flows,
                    hits: 0,
                    projections: Projections::default(),
                });
            }
        }
        self.by_port
            .entry(key.in_port)
            .or_default()
            .push_back((i, stamp));
        self.queued += 1;
        if self.queued > 2 * self.len + 1024 {
            self.rebuild_queues();
        }
        self.len += 1;
        evicted
    }

    /// Makes room: the oldest megaflow of the input port that has the most (so a port sending
    /// from random addresses evicts its own megaflows, not everyone else's). False if there
    /// is none.
    fn evict_oldest(&mut self) -> bool {
        loop {
            // Among ports with as many, the one whose oldest is oldest.
            let Some((&port, _)) = self
                .by_port
                .iter()
                .max_by_key(|(_, q)| (q.len(), Reverse(q.front().map(|e| e.1))))
            else {
                return false;
            };
            let queue = self.by_port.get_mut(&port);
            let Some((i, stamp)) = queue.and_then(VecDeque::pop_front) else {
                self.by_port.remove(&port);
                continue;
            };
            self.queued -= 1;
            if matches!(self.slots.get(i as usize), Some(Some(s)) if s.stamp == stamp) {
                self.remove(i);
                return true;
            }
        }
    }

    /// The eviction queues again from the live slots (dropping stale entries).
    fn rebuild_queues(&mut self) {
        let mut live: Vec<(u64, PortNo, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.stamp, s.key.key.in_port, i as u32)))
            .collect();
        live.sort_unstable();
        self.by_port.clear();
        for &(stamp, port, i) in &live {
            self.by_port.entry(port).or_default().push_back((i, stamp));
        }
        self.queued = live.len();
    }

    /// Removes slot `i`, invalidating its decision.
    fn remove(&mut self, i: u32) {
        let Some(slot) = self.slots.get_mut(i as usize).and_then(Option::take) else {
            return;
        };
        if let Some(d) = self.decisions.get_mut(i as usize).and_then(Option::take) {
            d.validity.invalidate();
        }
        if let Some(ti) = self.subtables.iter().position(|s| s.mask == slot.mask) {
            self.subtables[ti].flows.remove(&slot.key);
            if self.subtables[ti].flows.is_empty() {
                self.subtables.swap_remove(ti);
            }
        }
        self.free.push(i);
        self.len -= 1;
    }

    /// Removes (and invalidates) the megaflows that share a packet with `m` and whose decision
    /// `affected` says the rule can change; returns how many. Per subtable, only the megaflows
    /// agreeing with the rule on the bits both constrain are looked at ([`Projections`]).
    pub(super) fn remove_overlapping(
        &mut self,
        m: &Match,
        hasher: &KeyHasher,
        mut affected: impl FnMut(&Decision) -> bool,
    ) -> usize {
        let mut hits = Vec::new();
        for st in &mut self.subtables {
            let both = st.mask.masked(&m.mask);
            let target = m.key.masked(&both);
            let Subtable {
                flows, projections, ..
            } = st;
            let slots = &self.slots;
            let all = || {
                flows
                    .iter()
                    .filter_map(|(k, &i)| {
                        let s = slots.get(i as usize)?.as_ref()?;
                        Some((k.key, (i, s.stamp)))
                    })
                    .collect()
            };
            for &(i, stamp) in projections.candidates(&both, &target, hasher, flows.len(), all) {
                if let Some(Some(s)) = self.slots.get(i as usize)
                    && s.stamp == stamp
                    && let Some(Some(d)) = self.decisions.get(i as usize)
                    && d.validity.is_valid()
                    && affected(d)
                {
                    hits.push(i);
                }
            }
        }
        for &i in &hits {
            self.remove(i);
        }
        self.compact();
        hits.len()
    }

    /// Removes (and invalidates) every megaflow for which `affected(masked key, mask,
    /// decision)` is true; returns how many.
    pub(super) fn remove_where(
        &mut self,
        mut affected: impl FnMut(&FlowKey, &FlowKey, &Decision) -> bool,
    ) -> usize {
        let hits: Vec<u32> = self
            .slots
            .iter()
            .zip(&self.decisions)
            .enumerate()
            .filter_map(|(i, (s, d))| {
                let (s, d) = (s.as_ref()?, d.as_ref()?);
                (!d.validity.is_valid() || affected(&s.key.key, &s.mask, d)).then_some(i as u32)
            })
            .collect();
        for &i in &hits {
            self.remove(i);
        }
        self.compact();
        hits.len()
    }

    /// Packs the slots when most are empty (after a flood's megaflows were invalidated), so
    /// scans over them cost what the cache holds, not what it once held.
    fn compact(&mut self) {
        if self.slots.len() <= 1024 || self.len * 4 > self.slots.len() {
            return;
        }
        let mut new_index = vec![u32::MAX; self.slots.len()];
        let mut slots = Vec::with_capacity(self.len * 2);
        let mut decisions = Vec::with_capacity(self.len * 2);
        let old = std::mem::take(&mut self.slots)
            .into_iter()
            .zip(std::mem::take(&mut self.decisions));
        for (i, (s, d)) in old.enumerate() {
            if let Some(s) = s {
                new_index[i] = slots.len() as u32;
                slots.push(Some(s));
                decisions.push(d);
            }
        }
        self.slots = slots;
        self.decisions = decisions;
        self.free.clear();
        for t in &mut self.subtables {
            for v in t.flows.values_mut() {
                *v = new_index[*v as usize];
            }
            // Slot numbers changed: the projections are rebuilt when next used.
            t.projections = Projections::default();
        }
        self.rebuild_queues();
    }

    pub(super) fn clear(&mut self) {
        for d in self.decisions.iter().flatten() {
            d.validity.invalidate();
        }
        self.subtables.clear();
        self.slots.clear();
        self.decisions.clear();
        self.free.clear();
        self.by_port.clear();
        self.queued = 0;
        self.len = 0;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn subtables(&self) -> usize {
        self.subtables.len()
    }
}
