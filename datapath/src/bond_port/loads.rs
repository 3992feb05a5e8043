//! Bytes sent per hash bucket, for the balance modes' rebalancing. Several PMDs send to one
//! bond, so each PMD writes its own row (single writer, no atomic read-modify-write on the
//! hot path); threads that are not PMDs share one row of atomic counters. The bond's control
//! side sums the rows.

use bond::BUCKETS;
use port_api::{Counter, SharedCounter};

pub(crate) struct BucketLoads {
    per_pmd: Box<[[Counter; BUCKETS]]>,
    others: Box<[SharedCounter; BUCKETS]>,
}

/// Where one thread adds its bytes.
pub(crate) enum Row<'a> {
    Own(&'a [Counter; BUCKETS]),
    Shared(&'a [SharedCounter; BUCKETS]),
}

impl Row<'_> {
    #[inline]
    pub(crate) fn add(&self, bucket: usize, bytes: usize) {
        let bucket = bucket & (BUCKETS - 1);
        match self {
            Row::Own(r) => r[bucket].add(bytes as u64),
            Row::Shared(r) => r[bucket].add(bytes as u64),
        }
    }
}

impl BucketLoads {
    pub(crate) fn new(n_pmds: usize) -> BucketLoads {
        BucketLoads {
            per_pmd: (0..n_pmds)
                .map(|_| std::array::from_fn(|_| Counter::default()))
                .collect(),
            others: Box::new(std::array::from_fn(|_| SharedCounter::default())),
        }
    }

    /// This thread's row.
    #[inline]
    pub(crate) fn row(&self) -> Row<'_> {
        match crate::pmd_index::get().and_then(|i| self.per_pmd.get(i)) {
            Some(r) => Row::Own(r),
            None => Row::Shared(&self.others),
        }
    }

    /// Bytes per bucket since the switch started, all threads summed.
    pub(crate) fn totals(&self) -> [u64; BUCKETS] {
        let mut t: [u64; BUCKETS] = std::array::from_fn(|b| self.others[b].get());
        for row in self.per_pmd.iter() {
            for (x, c) in t.iter_mut().zip(row) {
                *x = x.wrapping_add(c.get());
            }
        }
        t
    }
}
