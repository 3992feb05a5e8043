//! Counters any thread may read.
//!
//! [`Counter`] is for the hot path: its single writer (the thread that owns it, or whoever holds
//! the lock that guards it) bumps it with a plain load and store, no locked instruction. Where
//! two threads can write the same counter and no lock orders them (e.g. every PMD that
//! decapsulates into one tunnel port), use [`SharedCounter`], a real atomic add, and bump it
//! once per batch, not per packet.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only one thread may write a given counter at a time (its owner, or whoever holds
    /// the lock that guards it): two unordered writers lose counts.
    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter several threads add to: each add is one atomic read-modify-write.
#[derive(Default, Debug)]
pub struct SharedCounter(AtomicU64);

impl SharedCounter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four threads adding to one shared counter lose nothing.
    #[test]
    fn shared_counter_adds_from_many_threads() {
        let c = SharedCounter::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100_000 {
                        c.add(1);
                    }
                });
            }
        });
        assert_eq!(c.get(), 400_000);
    }
}
