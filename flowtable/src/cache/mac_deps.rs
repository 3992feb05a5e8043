//! Which cached decisions looked up which (VLAN, destination MAC) or learned which source, so a
//! learned, moved or removed address invalidates exactly those. A MAC flood then costs one hash lookup per
//! learned address, and flows that never sent to those addresses keep their cache entries.

use std::collections::HashMap;
use std::sync::Arc;

use crate::translate::Decision;

pub(super) struct MacDeps {
    by_addr: HashMap<(u16, [u8; 6]), Vec<Arc<Decision>>>,
    /// Decisions held, including ones invalidated since (pruned when this passes `limit`).
    len: usize,
    limit: usize,
}

impl MacDeps {
    pub(super) fn new(max_megaflows: usize) -> Self {
        MacDeps {
            by_addr: HashMap::new(),
            len: 0,
            limit: 2 * max_megaflows + 1024,
        }
    }

    pub(super) fn add(&mut self, addr: (u16, [u8; 6]), d: &Arc<Decision>) {
        self.by_addr.entry(addr).or_default().push(Arc::clone(d));
        self.len += 1;
        if self.len > self.limit {
            self.prune();
        }
    }

    /// Forgets decisions that are no longer valid (evicted or invalidated otherwise): every
    /// valid decision is still in the megaflow cache, so this keeps the index within twice the
    /// cache's size.
    fn prune(&mut self) {
        self.by_addr.retain(|_, v| {
            v.retain(|d| d.validity.is_valid());
            !v.is_empty()
        });
        self.len = self.by_addr.values().map(Vec::len).sum();
    }

    /// Invalidates the decisions that looked `addr` up; returns how many were still valid.
    pub(super) fn invalidate(&mut self, addr: (u16, [u8; 6])) -> usize {
        let Some(v) = self.by_addr.remove(&addr) else {
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
        self.by_addr.clear();
        self.len = 0;
    }
}
