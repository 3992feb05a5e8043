//! The configuration changes of a bridge that can make cached decisions wrong (a rule added or
//! removed, a port that came, went or changed VLANs), numbered. The control thread appends them
//! before it publishes the snapshot that contains them; each PMD, when it adopts that snapshot,
//! invalidates exactly the decisions they affect. Bounded: a PMD that fell further behind than
//! the log holds drops all of the bridge's cached decisions instead.

use std::collections::VecDeque;
use std::sync::Mutex;

use flowtable::{Match, PortNo, RuleId};

/// Events kept for PMDs that are behind.
const MAX_EVENTS: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) enum ConfigEvent {
    RuleAdded {
        priority: u16,
        m: Match,
    },
    RuleRemoved(RuleId),
    Port(PortNo),
    /// Everything changed (the rule table became empty or non-empty).
    All,
}

#[derive(Default)]
pub(crate) struct ConfigLog {
    inner: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    events: VecDeque<ConfigEvent>,
    /// Number of the newest event (0: none).
    seq: u64,
}

impl ConfigLog {
    /// Appends an event; returns its number.
    pub(crate) fn push(&self, e: ConfigEvent) -> u64 {
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if log.events.len() == MAX_EVENTS {
            log.events.pop_front();
        }
        log.events.push_back(e);
        log.seq += 1;
        log.seq
    }

    pub(crate) fn seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).seq
    }

    /// Calls `f` on every event after `seen` up to and including `upto`, oldest first; false
    /// (and no call) if some of them are no longer kept.
    pub(crate) fn replay(&self, seen: u64, upto: u64, mut f: impl FnMut(&ConfigEvent)) -> bool {
        let log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let first_kept = log.seq + 1 - log.events.len() as u64;
        if seen + 1 < first_kept || upto > log.seq {
            return false;
        }
        let skip = (seen + 1 - first_kept) as usize;
        let take = upto.saturating_sub(seen) as usize;
        for e in log.events.iter().skip(skip).take(take) {
            f(e);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_ranges_and_reports_what_was_lost() {
        let log = ConfigLog::default();
        assert!(log.replay(0, 0, |_| panic!("nothing to replay")));
        for p in 1..=3 {
            log.push(ConfigEvent::Port(p));
        }
        let mut got = Vec::new();
        assert!(log.replay(1, 2, |e| {
            if let ConfigEvent::Port(p) = e {
                got.push(*p)
            }
        }));
        assert_eq!(got, vec![2]);
        for p in 0..MAX_EVENTS as u32 {
            log.push(ConfigEvent::Port(p));
        }
        assert!(!log.replay(1, log.seq(), |_| {}));
        let mut n = 0;
        assert!(log.replay(log.seq() - 10, log.seq(), |_| n += 1));
        assert_eq!(n, 10);
    }
}
