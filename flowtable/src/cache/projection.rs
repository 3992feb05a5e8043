//! Secondary indexes of a megaflow subtable: its megaflows by their key projected onto a
//! sub-mask (the bits a rule and the subtable both constrain). A new rule can only change the
//! megaflows whose projection equals the rule's own, so finding them is a hash lookup, not a
//! scan of the whole cache: 10,000 rule changes a second stay cheap with 65,536 megaflows
//! cached. Built on first use of a sub-mask, kept up to date on insert; removals are lazy
//! (entries carry the slot's stamp and stale ones are skipped, then dropped by a rebuild).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::megaflow::{HashedKey, PassThrough};
use crate::hash::KeyHasher;
use crate::key::FlowKey;

/// Sub-masks indexed per subtable; the least recently used goes beyond this.
const MAX_PROJECTIONS: usize = 4;

/// (slot, stamp) of a megaflow.
pub(super) type SlotRef = (u32, u64);

struct Projection {
    mask: FlowKey,
    by_key: HashMap<HashedKey, Vec<SlotRef>, BuildHasherDefault<PassThrough>>,
    /// Entries held, stale ones included.
    entries: usize,
    last_used: u64,
}

impl Projection {
    fn add(&mut self, key: &FlowKey, slot: SlotRef, hasher: &KeyHasher) {
        let key = key.masked(&self.mask);
        let hk = HashedKey {
            hash: hasher.hash(&key),
            key,
        };
        self.by_key.entry(hk).or_default().push(slot);
        self.entries += 1;
    }
}

#[derive(Default)]
pub(super) struct Projections {
    list: Vec<Projection>,
    clock: u64,
}

impl Projections {
    /// Records a new megaflow (its masked key) in every projection.
    pub(super) fn insert(&mut self, key: &FlowKey, slot: SlotRef, hasher: &KeyHasher) {
        for p in &mut self.list {
            p.add(key, slot, hasher);
        }
    }

    /// The megaflows (possibly stale) whose key projected onto `mask` equals `target` (already
    /// projected). `all` lists the subtable's live megaflows, to build the projection the
    /// first time `mask` is asked for, or to rebuild it when stale entries dominate.
    pub(super) fn candidates(
        &mut self,
        mask: &FlowKey,
        target: &FlowKey,
        hasher: &KeyHasher,
        live: usize,
        all: impl FnOnce() -> Vec<(FlowKey, SlotRef)>,
    ) -> &[SlotRef] {
        self.clock += 1;
        let i = match self.list.iter().position(|p| p.mask == *mask) {
            Some(i) if self.list[i].entries <= 2 * live + 64 => i,
            found => {
                let mut p = Projection {
                    mask: *mask,
                    by_key: HashMap::default(),
                    entries: 0,
                    last_used: 0,
                };
                for (key, slot) in all() {
                    p.add(&key, slot, hasher);
                }
                match found {
                    Some(i) => {
                        self.list[i] = p;
                        i
                    }
                    None if self.list.len() < MAX_PROJECTIONS => {
                        self.list.push(p);
                        self.list.len() - 1
                    }
                    None => {
                        let lru = (0..self.list.len())
                            .min_by_key(|&i| self.list[i].last_used)
                            .unwrap_or(0);
                        self.list[lru] = p;
                        lru
                    }
                }
            }
        };
        let p = &mut self.list[i];
        p.last_used = self.clock;
        let probe = HashedKey {
            hash: hasher.hash(target),
            key: *target,
        };
        p.by_key.get(&probe).map_or(&[], Vec::as_slice)
    }
}
