//! The megaflow cache: decisions stored under the fields they depend on, searched tuple-space
//! style, one hash table per distinct mask ("subtable"), most-hit subtable first.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

/// Values index `Megaflows::decisions`.
type Table = HashMap<HashedKey, u32, BuildHasherDefault<PassThrough>>;

struct Subtable {
    mask: FlowKey,
    flows: Table,
    hits: u64,
}

impl Subtable {
    /// One subtable's decision index for `key`. Out of line: inlined into the loop over
    /// subtables, the key and hash seed words are hoisted and spilled to the stack.
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

pub(super) struct Megaflows {
    subtables: Vec<Subtable>,
    /// Every cached decision, in insertion order; one per megaflow.
    decisions: Vec<Arc<Decision>>,
    max: usize,
    since_resort: u32,
}

impl Megaflows {
    pub(super) fn new(max: usize) -> Self {
        Megaflows {
            subtables: Vec::new(),
            decisions: Vec::new(),
            max: max.max(1),
            since_resort: 0,
        }
    }

    /// The index of the decision cached for `key`, for [`Megaflows::decision`].
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
        // Any megaflow that matches gives the right answer (each is exact on every field its
        // decision depends on), so the first hit wins.
        self.subtables.iter_mut().find_map(|s| s.probe(key, hasher))
    }

    pub(super) fn insert(&mut self, key: &FlowKey, d: &Arc<Decision>, hasher: &KeyHasher) {
        if self.decisions.len() >= self.max {
            // Crude but bounded: start over rather than track per-flow usage.
            self.clear();
        }
        let mask = d.mask;
        let i = match self.subtables.iter().position(|s| s.mask == mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable {
                    mask,
                    flows: Table::default(),
                    hits: 0,
                });
                self.subtables.len() - 1
            }
        };
        let key = key.masked(&mask);
        let entry = HashedKey {
            hash: hasher.hash(&key),
            key,
        };
        let Some(s) = self.subtables.get_mut(i) else {
            return;
        };
        match s.flows.entry(entry) {
            // Same masked key again (only after the caller missed it): replace its decision.
            Entry::Occupied(e) => {
                if let Some(slot) = self.decisions.get_mut(*e.get() as usize) {
                    *slot = Arc::clone(d);
                }
            }
            Entry::Vacant(e) => {
                // `max` is far below u32::MAX, so the index fits.
                e.insert(self.decisions.len() as u32);
                self.decisions.push(Arc::clone(d));
            }
        }
    }

    #[inline]
    pub(super) fn decision(&self, index: u32) -> Option<&Arc<Decision>> {
        self.decisions.get(index as usize)
    }

    pub(super) fn clear(&mut self) {
        self.subtables.clear();
        self.decisions.clear();
    }

    pub(super) fn len(&self) -> usize {
        self.decisions.len()
    }

    pub(super) fn subtables(&self) -> usize {
        self.subtables.len()
    }
}
