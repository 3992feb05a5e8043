//! The exact-match cache (EMC): the first place a packet's key is looked up. Two-way
//! set-associative, so two hot flows whose hashes collide on one slot can both stay.

use std::sync::Arc;

use crate::key::FlowKey;
use crate::translate::Decision;

struct Entry {
    hash: u64,
    /// Valid only in this epoch: flushing bumps the epoch instead of touching every slot.
    epoch: u64,
    key: FlowKey,
    decision: Arc<Decision>,
}

pub(super) struct Emc {
    slots: Vec<Option<Entry>>,
    mask: usize,
    epoch: u64,
    /// Picks which way a full set gives up.
    victim: u32,
}

impl Emc {
    /// `slots` is rounded up to a power of two (at least 1).
    pub(super) fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        Emc {
            slots: (0..n).map(|_| None).collect(),
            mask: n - 1,
            epoch: 0,
            victim: 0,
        }
    }

    /// The two slots a key with `hash` may sit in.
    #[inline]
    fn ways(&self, hash: u64) -> [usize; 2] {
        [hash as usize & self.mask, (hash >> 32) as usize & self.mask]
    }

    /// Starts loading both slots of `hash` into the CPU cache.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        for i in self.ways(hash) {
            if let Some(slot) = self.slots.get(i) {
                port_api::prefetch::read(slot);
            }
        }
    }

    /// The decision cached for `key`, if one of its two slots holds it in this epoch.
    #[inline(always)]
    pub(super) fn get(&self, key: &FlowKey, hash: u64) -> Option<&Decision> {
        let [a, b] = self.ways(hash);
        self.in_slot(a, key, hash)
            .or_else(|| self.in_slot(b, key, hash))
    }

    #[inline(always)]
    fn in_slot(&self, i: usize, key: &FlowKey, hash: u64) -> Option<&Decision> {
        match self.slots.get(i) {
            Some(Some(e))
                if e.hash == hash
                    && e.epoch == self.epoch
                    && e.key == *key
                    && e.decision.validity.is_valid() =>
            {
                Some(&e.decision)
            }
            _ => None,
        }
    }

    /// Stores a decision, in a free or stale way (flushed, or its decision invalidated) if the
    /// set has one, else in one of the two.
    pub(super) fn insert(&mut self, key: &FlowKey, hash: u64, decision: Arc<Decision>) {
        let [a, b] = self.ways(hash);
        let free = |i: usize| match self.slots.get(i) {
            Some(Some(e)) => e.epoch != self.epoch || !e.decision.validity.is_valid(),
            _ => true,
        };
        let i = if free(a) {
            a
        } else if free(b) {
            b
        } else {
            self.victim = self.victim.wrapping_add(1);
            if self.victim & 1 == 0 { a } else { b }
        };
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(Entry {
                hash,
                epoch: self.epoch,
                key: *key,
                decision,
            });
        }
    }

    pub(super) fn flush(&mut self) {
        self.epoch += 1;
    }
}
