//! The hash buckets of a balancing bond: 256 buckets, each sent out of one member, moved when
//! members come and go, and rebalanced by load (the bytes each bucket carried since the last
//! rebalance), as Open vSwitch's balance-slb and balance-tcp do. Moving a bucket reorders at
//! most the flows in it, so moves are few: only what a member change or an imbalance needs.

/// Buckets per bond; the low byte of the frame's hash picks one.
pub const BUCKETS: usize = 256;
/// "No member" in a bucket table (no member is enabled).
pub const NO_MEMBER: u8 = u8::MAX;
/// Imbalances below this many bytes per rebalance interval are not worth reordering flows.
pub const MIN_IMBALANCE_BYTES: u64 = 100_000;

/// Which member each bucket goes out of, and how much each carried.
#[derive(Clone, Debug)]
pub struct Buckets {
    member: [u8; BUCKETS],
    load: [u64; BUCKETS],
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            member: [NO_MEMBER; BUCKETS],
            load: [0; BUCKETS],
        }
    }
}

impl Buckets {
    pub fn table(&self) -> &[u8; BUCKETS] {
        &self.member
    }

    pub fn loads(&self) -> &[u64; BUCKETS] {
        &self.load
    }

    /// Adds what the datapath counted per bucket since the last call.
    pub fn add_loads(&mut self, bytes: &[u64; BUCKETS]) {
        for (l, b) in self.load.iter_mut().zip(bytes) {
            *l = l.saturating_add(*b);
        }
    }

    /// Bytes and buckets per member (indexes below `n`).
    pub fn per_member(&self, n: usize) -> Vec<(u64, usize)> {
        let mut out = vec![(0u64, 0usize); n];
        for (m, l) in self.member.iter().zip(&self.load) {
            if let Some(o) = out.get_mut(usize::from(*m)) {
                o.0 += l;
                o.1 += 1;
            }
        }
        out
    }

    /// Follows a change of the enabled members: buckets of disabled members (or of none) go
    /// to the least loaded enabled members; a member with no bucket takes its share from the
    /// members above their share, lightest buckets first. Returns how many buckets moved.
    pub fn assign(&mut self, enabled: &[bool]) -> usize {
        let n = enabled.len().min(usize::from(NO_MEMBER));
        let live: Vec<usize> = (0..n).filter(|&i| enabled[i]).collect();
        if live.is_empty() {
            let moved = self.member.iter().filter(|&&m| m != NO_MEMBER).count();
            self.member = [NO_MEMBER; BUCKETS];
            return moved;
        }
        let mut moved = 0;
        let mut per = self.per_member(n);
        for b in 0..BUCKETS {
            let m = usize::from(self.member[b]);
            if m < n && enabled[m] {
                continue;
            }
            let to = *live
                .iter()
                .min_by_key(|&&i| (per[i].0, per[i].1))
                .unwrap_or(&live[0]);
            if m < n {
                per[m].0 -= self.load[b];
                per[m].1 -= 1;
            }
            self.member[b] = to as u8;
            per[to].0 += self.load[b];
            per[to].1 += 1;
            moved += 1;
        }
        // Fair share by count for members that have nothing (a member that just came up).
        let share = BUCKETS / live.len();
        let newcomers: Vec<usize> = live.iter().copied().filter(|&i| per[i].1 == 0).collect();
        for newcomer in newcomers {
            while per[newcomer].1 < share {
                let above = live.iter().copied().filter(|&i| per[i].1 > share);
                let Some(from) = above.max_by_key(|&i| per[i].1) else {
                    break;
                };
                let Some(b) = (0..BUCKETS)
                    .filter(|&b| usize::from(self.member[b]) == from)
                    .min_by_key(|&b| self.load[b])
                else {
                    break;
                };
                self.member[b] = newcomer as u8;
                per[from].0 -= self.load[b];
                per[from].1 -= 1;
                per[newcomer].0 += self.load[b];
                per[newcomer].1 += 1;
                moved += 1;
            }
        }
        moved
    }

    /// Moves buckets from the most to the least loaded enabled member while that narrows the
    /// gap by more than [`MIN_IMBALANCE_BYTES`], then halves every load so the next interval
    /// weighs recent traffic most. Returns how many buckets moved.
    pub fn rebalance(&mut self, enabled: &[bool]) -> usize {
        let n = enabled.len().min(usize::from(NO_MEMBER));
        let live: Vec<usize> = (0..n).filter(|&i| enabled[i]).collect();
        let mut moved = 0;
        if live.len() >= 2 {
            let mut per = self.per_member(n);
            // Each move strictly narrows the gap between two members; the bound is a safety net.
            for _ in 0..BUCKETS {
                let from = *live.iter().max_by_key(|&&i| per[i].0).unwrap_or(&live[0]);
                let to = *live.iter().min_by_key(|&&i| per[i].0).unwrap_or(&live[0]);
                let gap = per[from].0 - per[to].0;
                if gap < MIN_IMBALANCE_BYTES || per[from].1 < 2 {
                    break;
                }
                // The heaviest bucket that still narrows the gap (moving load < gap does).
                let Some(b) = (0..BUCKETS)
                    .filter(|&b| usize::from(self.member[b]) == from)
                    .filter(|&b| self.load[b] > 0 && self.load[b] < gap)
                    .max_by_key(|&b| self.load[b])
                else {
                    break;
                };
                let l = self.load[b];
                let new_gap = (per[from].0 - l).abs_diff(per[to].0 + l);
                if gap - new_gap < MIN_IMBALANCE_BYTES / 2 {
                    break;
                }
                self.member[b] = to as u8;
                per[from].0 -= l;
                per[from].1 -= 1;
                per[to].0 += l;
                per[to].1 += 1;
                moved += 1;
            }
        }
        for l in &mut self.load {
            *l /= 2;
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counts(b: &Buckets, n: usize) -> Vec<usize> {
        b.per_member(n).iter().map(|p| p.1).collect()
    }

    #[test]
    fn members_coming_and_going_move_only_what_they_must() {
        let mut b = Buckets::default();
        assert_eq!(b.assign(&[true, true]), 256);
        assert_eq!(counts(&b, 2), [128, 128]);
        let before = *b.table();
        // Member 1 fails: its 128 buckets move, member 0's stay.
        assert_eq!(b.assign(&[true, false]), 128);
        assert_eq!(counts(&b, 2), [256, 0]);
        for (was, now) in before.iter().zip(b.table()) {
            if *was == 0 {
                assert_eq!(*now, 0);
            }
        }
        // It returns and takes half back.
        assert_eq!(b.assign(&[true, true]), 128);
        assert_eq!(counts(&b, 2), [128, 128]);
        assert_eq!(b.assign(&[false, false]), 256);
        assert!(b.table().iter().all(|&m| m == NO_MEMBER));
    }

    #[test]
    fn rebalance_evens_out_an_imbalance() {
        let mut b = Buckets::default();
        b.assign(&[true, true]);
        // Member 0's buckets carry 1 MB each, member 1's nothing.
        let mut loads = [0u64; BUCKETS];
        for (i, (l, m)) in loads.iter_mut().zip(b.table()).enumerate() {
            if *m == 0 && i % 4 == 0 {
                *l = 1_000_000;
            }
        }
        b.add_loads(&loads);
        let per = b.per_member(2);
        assert!(per[0].0 > 0 && per[1].0 == 0);
        let moved = b.rebalance(&[true, true]);
        assert!(moved > 0);
        let per = b.per_member(2);
        // Loads are halved after a rebalance; compare the shares.
        let total = per[0].0 + per[1].0;
        let share0 = per[0].0 as f64 / total as f64;
        assert!((0.45..=0.55).contains(&share0), "member 0 share {share0}");
        // Balanced already: nothing moves.
        assert_eq!(b.rebalance(&[true, true]), 0);
    }

    proptest! {
        #[test]
        fn every_bucket_has_an_enabled_member_when_one_exists(
            steps in proptest::collection::vec((proptest::collection::vec(any::<bool>(), 1..6),
                proptest::collection::vec(0u64..2_000_000, BUCKETS)), 1..8)
        ) {
            let mut b = Buckets::default();
            for (enabled, loads) in steps {
                let mut l = [0u64; BUCKETS];
                l.copy_from_slice(&loads);
                b.add_loads(&l);
                b.assign(&enabled);
                b.rebalance(&enabled);
                let any = enabled.iter().any(|&e| e);
                for &m in b.table() {
                    if any {
                        prop_assert!(usize::from(m) < enabled.len() && enabled[usize::from(m)]);
                    } else {
                        prop_assert_eq!(m, NO_MEMBER);
                    }
                }
            }
        }
    }
}
