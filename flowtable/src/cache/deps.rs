//! Which cached decisions depend on which thing (a (VLAN, MAC) a decision looked up or learned,
//! the rule that made it), so a change to that thing invalidates exactly those. A MAC flood
//! then costs one hash lookup per learned address, and removing a rule one lookup, whatever the
//! cache holds.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use crate::translate::Decision;

pub(super) struct Deps<K> {
    by_key: HashMap<K, Vec<Arc<Decision>>>,
    /// Decisions held, including ones invalidated since (pruned when this passes `limit`).
    len: usize,
    limit: usize,
}

impl<K: Hash + Eq> Deps<K> {
    pub(super) fn new(max_megaflows: usize) -> Self {
        Deps {
            by_key: HashMap::new(),
            len: 0,
            // Every valid decision is in the megaflow cache and names at most a few keys;
            // pruning at twice that keeps each prune's cost amortised over as many adds.
            limit: 4 * max_megaflows + 1024,
        }
    }

    pub(super) fn add(&mut self, key: K, d: &Arc<Decision>) {
        self.by_key.entry(key).or_default().push(Arc::clone(d));
        self.len += 1;
        if self.len > self.limit {
            self.prune();
        }
    }

    /// Forgets decisions that are no longer valid (evicted or invalidated otherwise): every
    /// valid decision is still in the megaflow cache, so this keeps the index within a few
    /// times the cache's size.
    fn prune(&mut self) {
        self.by_key.retain(|_, v| {
            v.retain(|d| d.validity.is_valid());
            !v.is_empty()
        });
        self.len = self.by_key.values().map(Vec::len).sum();
    }

    /// Invalidates the decisions that depend on `key`; returns how many were still valid.
    pub(super) fn invalidate(&mut self, key: &K) -> usize {
        let Some(v) = self.by_key.remove(key) else {
            return 0;
        };
        self.len -= v.len();
        let mut n = 0;
        for d in v {
            if d.validity.is_valid() {
                d.validity.invalidate();
                n += 1;
            }
        }
        n
    }

    pub(super) fn clear(&mut self) {
        self.by_key.clear();
        self.len = 0;
    }
}
