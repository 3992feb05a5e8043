//! When an idle PMD naps. A PMD that naps while traffic comes in bursts loses frames (a ring
//! fills during the nap) and cycles (the wake-up), so the PMD naps only once it has had
//! nothing to do for `nap_after` (by default 10 ms: far longer than the gap between bursts of
//! any stream), then in naps of `nap` (by default 200 µs, the latency the first frame after an
//! idle spell can see). Like Open vSwitch's `pmd-sleep-max`, traded against power.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Nothing received or sent for this long before the first nap.
    pub nap_after: Duration,
    /// The length of each nap.
    pub nap: Duration,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        IdlePolicy {
            nap_after: Duration::from_millis(10),
            nap: Duration::from_micros(200),
        }
    }
}

/// What the PMD does after an empty poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    Spin,
    Nap(Duration),
}

impl IdlePolicy {
    /// After an empty poll, `idle_ns` since the PMD last had work.
    #[inline]
    pub(crate) fn wait(&self, idle_ns: u64) -> Wait {
        if idle_ns < self.nap_after.as_nanos() as u64 || self.nap.is_zero() {
            Wait::Spin
        } else {
            Wait::Nap(self.nap)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pmd_naps_only_after_the_idle_time() {
        let p = IdlePolicy::default();
        assert_eq!(p.wait(0), Wait::Spin);
        // Gaps between bursts of a busy stream, even long ones, are spun through.
        assert_eq!(p.wait(1_000_000), Wait::Spin);
        assert_eq!(p.wait(9_999_999), Wait::Spin);
        assert_eq!(p.wait(10_000_000), Wait::Nap(Duration::from_micros(200)));
        let never = IdlePolicy {
            nap: Duration::ZERO,
            ..p
        };
        assert_eq!(never.wait(u64::MAX), Wait::Spin);
    }
}
