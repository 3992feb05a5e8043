//! The addresses whose forwarding changed (learned, moved, removed), numbered, so each PMD can
//! invalidate exactly the cached decisions that looked them up. Bounded: a reader that fell
//! further behind than the log holds is told so, and starts over from an empty cache.

use std::collections::VecDeque;

/// Changes kept for readers that are behind.
pub const MAX_CHANGES: usize = 4096;

/// A reader fell behind by more than the log holds: it must drop every cached decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflowed;

#[derive(Clone, Debug, Default)]
pub(super) struct ChangeLog {
    /// (VLAN, MAC) of changes `seq - len + 1 ..= seq`, oldest first.
    entries: VecDeque<(u16, [u8; 6])>,
    /// Number of the newest change (0: none yet).
    seq: u64,
}

impl ChangeLog {
    pub(super) fn push(&mut self, vlan: u16, mac: [u8; 6]) {
        if self.entries.len() == MAX_CHANGES {
            self.entries.pop_front();
        }
        self.entries.push_back((vlan, mac));
        self.seq += 1;
    }

    /// Every reader must start over (e.g. the aging time changed which entries are live).
    pub(super) fn reset_readers(&mut self) {
        self.entries.clear();
        self.seq += MAX_CHANGES as u64 + 1;
    }

    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// The changes after `seen`, oldest first.
    pub(super) fn since(
        &self,
        seen: u64,
    ) -> Result<impl Iterator<Item = (u16, [u8; 6])> + '_, Overflowed> {
        let behind = self.seq.saturating_sub(seen);
        if behind > self.entries.len() as u64 {
            return Err(Overflowed);
        }
        let skip = self.entries.len() - behind as usize;
        Ok(self.entries.iter().skip(skip).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_what_they_missed_or_overflow() {
        let mut log = ChangeLog::default();
        assert_eq!(log.since(0).unwrap().count(), 0);
        log.push(1, [1; 6]);
        log.push(2, [2; 6]);
        assert_eq!(log.seq(), 2);
        assert_eq!(log.since(1).unwrap().collect::<Vec<_>>(), vec![(2, [2; 6])]);
        assert_eq!(log.since(0).unwrap().count(), 2);
        for i in 0..MAX_CHANGES {
            log.push(3, [i as u8; 6]);
        }
        assert!(log.since(1).is_err());
        assert_eq!(log.since(log.seq() - 5).unwrap().count(), 5);
        let seen = log.seq();
        log.reset_readers();
        assert!(log.since(seen).is_err());
        assert_eq!(log.since(log.seq()).unwrap().count(), 0);
    }
}
