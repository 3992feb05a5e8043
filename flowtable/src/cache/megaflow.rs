//! The megaflow cache: decisions stored under the fields they depend on, searched tuple-space
//! style, one hash table per distinct mask ("subtable"), most-hit subtable first. Every valid
//! decision of a PMD's caches is here (the EMC holds copies of the same `Arc`s), so scanning
//! these slots finds every decision a change can affect.

use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use crate::hash::KeyHasher;
use crate::key::FlowKey;
use crate::translate::Decision;

/// Lookups between re-rankings of the subtables by hits.
const RESORT_INTERVAL: u32 = 1024;

/// A masked key with its hash computed once by [`KeyHasher`].
#[derive(Clone, Copy)]
struct HashedKey {
    hash: u64,
    key: FlowKey,
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
struct PassThrough(u64);

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

/// One megaflow: its masked key and mask (to find it again), the decision, and when it was
/// inserted (to tell current eviction-queue entries from stale ones).
struct Slot {
    key: HashedKey,
    mask: FlowKey,
    decision: Arc<Decision>,
    stamp: u64,
}

pub(super) struct Megaflows {
    subtables: Vec<Subtable>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Occupied slots in insertion order, as (slot, stamp); entries whose stamp no longer
    /// matches the slot's were removed since and are skipped.
    order: VecDeque<(u32, u64)>,
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
            free: Vec::new(),
            order: VecDeque::new(),
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
        let slots = &self.slots;
        self.subtables.iter_mut().find_map(|s| {
            let i = s.probe(key, hasher)?;
            match slots.get(i as usize) {
                Some(Some(slot)) if slot.decision.validity.is_valid() => Some(i),
                _ => None,
            }
        })
    }

    #[inline]
    pub(super) fn decision(&self, i: u32) -> Option<&Arc<Decision>> {
        Some(&self.slots.get(i as usize)?.as_ref()?.decision)
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
            && let Some(Some(slot)) = self.slots.get_mut(i as usize)
        {
            slot.decision.validity.invalidate();
            slot.decision = Arc::clone(d);
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
            decision: Arc::clone(d),
            stamp,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                // `max` is far below u32::MAX, so the index fits.
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        match self.subtables.iter_mut().find(|s| s.mask == mask) {
            Some(s) => {
                s.flows.insert(entry, i);
            }
            None => {
                let mut flows = Table::default();
                flows.insert(entry, i);
                self.subtables.push(Subtable {
                    mask,
                    flows,
                    hits: 0,
                });
            }
        }
        self.order.push_back((i, stamp));
        self.len += 1;
        evicted
    }

    /// Removes the oldest megaflow; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((i, stamp)) = self.order.pop_front() {
            if matches!(self.slots.get(i as usize), Some(Some(s)) if s.stamp == stamp) {
                self.remove(i);
                return true;
            }
        }
        false
    }

    /// Removes slot `i`, invalidating its decision.
    fn remove(&mut self, i: u32) {
        let Some(slot) = self.slots.get_mut(i as usize).and_then(Option::take) else {
            return;
        };
        slot.decision.validity.invalidate();
        if let Some(ti) = self.subtables.iter().position(|s| s.mask == slot.mask) {
            self.subtables[ti].flows.remove(&slot.key);
            if self.subtables[ti].flows.is_empty() {
                self.subtables.swap_remove(ti);
            }
        }
        self.free.push(i);
        self.len -= 1;
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
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                (!s.decision.validity.is_valid() || affected(&s.key.key, &s.mask, &s.decision))
                    .then_some(i as u32)
            })
            .collect();
        for &i in &hits {
            self.remove(i);
        }
        hits.len()
    }

    pub(super) fn clear(&mut self) {
        for s in self.slots.iter().flatten() {
            s.decision.validity.invalidate();
        }
        self.subtables.clear();
        self.slots.clear();
        self.free.clear();
        self.order.clear();
        self.len = 0;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn subtables(&self) -> usize {
        self.subtables.len()
    }
}
