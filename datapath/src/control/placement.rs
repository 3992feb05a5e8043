//! Which PMD polls which receive queue. Stable: a queue stays on its PMD until it goes away or
//! the operator asks for a rebalance (`pmd-rxq-rebalance`), so adding or deleting a port never
//! moves another port's queues (Open vSwitch's `pmd-rxq-assign` thinking). A new queue goes to
//! the PMD polling the fewest queues; a rebalance spreads queues by the cycles they used.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::bridge::PortId;
use crate::pmd::RxqStats;

/// A receive queue: its port and queue number.
pub(super) type RxqKey = (PortId, usize);

pub(super) struct Placed {
    /// The PMD polling it; None while it moves (no PMD polls it).
    pub(super) pmd: Option<usize>,
    pub(super) stats: Arc<RxqStats>,
}

pub(super) struct Placement {
    n_pmds: usize,
    queues: BTreeMap<RxqKey, Placed>,
}

impl Placement {
    pub(super) fn new(n_pmds: usize) -> Self {
        Placement {
            n_pmds: n_pmds.max(1),
            queues: BTreeMap::new(),
        }
    }

    pub(super) fn get(&self, key: &RxqKey) -> Option<&Placed> {
        self.queues.get(key)
    }

    /// Forgets queues not in `present`, places the new ones; others stay where they are.
    pub(super) fn update(&mut self, present: &[RxqKey]) {
        self.queues.retain(|k, _| present.binary_search(k).is_ok());
        for k in present {
            if !self.queues.contains_key(k) {
                let pmd = self.least_busy();
                self.queues.insert(
                    *k,
                    Placed {
                        pmd: Some(pmd),
                        stats: Arc::default(),
                    },
                );
            }
        }
    }

    /// The PMD polling the fewest queues (the lowest-numbered among equals).
    fn least_busy(&self) -> usize {
        let mut counts = vec![0usize; self.n_pmds];
        for p in self.queues.values() {
            if let Some(pmd) = p.pmd.filter(|p| *p < self.n_pmds) {
                counts[pmd] += 1;
            }
        }
        (0..self.n_pmds).min_by_key(|i| counts[*i]).unwrap_or(0)
    }

    /// A new assignment spreading the queues by the TSC cycles each used since it was placed
    /// (largest first onto the PMD with the least so far; idle queues by count). Returns the
    /// queues whose PMD changes, with their new PMD.
    pub(super) fn rebalanced(&self) -> Vec<(RxqKey, usize)> {
        let mut by_load: Vec<(RxqKey, u64)> = self
            .queues
            .iter()
            .map(|(k, p)| (*k, p.stats.cycles.get()))
            .collect();
        by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut load = vec![(0u64, 0usize); self.n_pmds];
        let mut moves = Vec::new();
        for (k, cycles) in by_load {
            // Among equally loaded PMDs, the queue's own: nothing moves without a reason.
            let current = self.queues.get(&k).and_then(|p| p.pmd);
            let pmd = (0..self.n_pmds)
                .min_by_key(|i| (load[*i], current != Some(*i)))
                .unwrap_or(0);
            load[pmd].0 += cycles;
            load[pmd].1 += 1;
            if self.queues.get(&k).and_then(|p| p.pmd) != Some(pmd) {
                moves.push((k, pmd));
            }
        }
        moves
    }

    /// Takes the queues off their PMDs (first step of a move: no PMD polls them).
    pub(super) fn park(&mut self, keys: &[RxqKey]) {
        for k in keys {
            if let Some(p) = self.queues.get_mut(k) {
                p.pmd = None;
            }
        }
    }

    /// Puts queues on their new PMDs, with fresh counters (second step of a move).
    pub(super) fn place(&mut self, moves: &[(RxqKey, usize)]) {
        for (k, pmd) in moves {
            if let Some(p) = self.queues.get_mut(k) {
                p.pmd = Some(*pmd);
                p.stats = Arc::default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(p: &Placement, k: RxqKey) -> Option<usize> {
        p.get(&k).and_then(|q| q.pmd)
    }

    #[test]
    fn queues_stay_put_when_others_come_and_go() {
        let mut p = Placement::new(2);
        let mut present = vec![(1, 0), (1, 1), (2, 0)];
        p.update(&present);
        assert_eq!(
            [on(&p, (1, 0)), on(&p, (1, 1)), on(&p, (2, 0))],
            [Some(0), Some(1), Some(0)]
        );
        // Port 1 goes, port 3 comes: port 2's queue does not move.
        for round in 0..100 {
            present = vec![(2, 0), (3 + round, 0), (3 + round, 1)];
            present.sort();
            p.update(&present);
            assert_eq!(on(&p, (2, 0)), Some(0));
            assert!(on(&p, (1, 0)).is_none());
        }
        // Two queues per PMD at most with four queues in all.
        p.update(&[(2, 0), (5, 0), (5, 1), (6, 0)]);
        let on_0 = [(2, 0), (5, 0), (5, 1), (6, 0)]
            .iter()
            .filter(|k| on(&p, **k) == Some(0))
            .count();
        assert_eq!(on_0, 2);
    }

    #[test]
    fn rebalance_spreads_by_load() {
        let mut p = Placement::new(2);
        p.update(&[(1, 0), (2, 0), (3, 0), (4, 0)]);
        // Both busy queues ended up on PMD 0.
        p.queues.get_mut(&(1, 0)).unwrap().pmd = Some(0);
        p.queues.get_mut(&(2, 0)).unwrap().pmd = Some(0);
        p.queues.get_mut(&(3, 0)).unwrap().pmd = Some(1);
        p.queues.get_mut(&(4, 0)).unwrap().pmd = Some(1);
        p.get(&(1, 0)).unwrap().stats.cycles.add(1000);
        p.get(&(2, 0)).unwrap().stats.cycles.add(900);
        let moves = p.rebalanced();
        let keys: Vec<RxqKey> = moves.iter().map(|(k, _)| *k).collect();
        p.park(&keys);
        assert!(keys.iter().all(|k| on(&p, *k).is_none()));
        p.place(&moves);
        assert_ne!(on(&p, (1, 0)), on(&p, (2, 0)), "{moves:?}");
        assert_eq!(p.get(&(2, 0)).unwrap().stats.cycles.get(), 0);
        // Balanced already: nothing moves.
        let mut b = Placement::new(2);
        b.update(&[(1, 0), (2, 0)]);
        b.get(&(1, 0)).unwrap().stats.cycles.add(500);
        b.get(&(2, 0)).unwrap().stats.cycles.add(500);
        assert!(b.rebalanced().is_empty());
    }
}
