//! Per-port learning limits: how many addresses a port may hold in the table, and how fast it
//! may add new ones (a token bucket in integer nanoseconds). A port over either limit still
//! forwards (its frames flood), but what it would have learned is refused and counted, so one
//! guest sending random source MACs cannot push everyone else's addresses out of the table.

/// Default most entries one port may hold: half the default table, so no single port can take
/// it over (Open vSwitch has no per-port limit, only `mac-table-size`, 8192 per bridge).
pub const DEFAULT_PORT_MAC_LIMIT: usize = 4096;
/// Default most new or moved addresses a port may learn per second, and in one burst.
pub const DEFAULT_LEARN_RATE: u32 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortLimits {
    /// Most entries this port may hold (0: learn nothing from it).
    pub max_entries: usize,
    /// New or moved addresses per second, also the burst (0: no rate limit).
    pub learn_rate: u32,
}

impl Default for PortLimits {
    fn default() -> Self {
        PortLimits {
            max_entries: DEFAULT_PORT_MAC_LIMIT,
            learn_rate: DEFAULT_LEARN_RATE,
        }
    }
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// A token bucket counted in nanoseconds of credit: learning costs `1 s / rate`, credit grows
/// with time up to one second's worth (the burst is `rate` learns).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LearnBucket {
    credit_ns: u64,
    last_ns: u64,
    started: bool,
}

impl LearnBucket {
    /// Takes one learn's worth of credit if there is one.
    pub(super) fn take(&mut self, rate: u32, now_ns: u64) -> bool {
        if rate == 0 {
            return true;
        }
        if !self.started {
            // A new port starts with a full bucket.
            self.started = true;
            self.credit_ns = NS_PER_SEC;
            self.last_ns = now_ns;
        }
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.credit_ns = self.credit_ns.saturating_add(elapsed).min(NS_PER_SEC);
        let cost = NS_PER_SEC / u64::from(rate);
        if self.credit_ns >= cost {
            self.credit_ns -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_rate_and_burst() {
        let mut b = LearnBucket::default();
        // A burst of `rate` at once, then nothing until credit returns.
        assert_eq!((0..20).filter(|_| b.take(10, 0)).count(), 10);
        assert!(!b.take(10, 50_000_000), "half a learn's worth of credit");
        assert!(b.take(10, 100_000_000));
        // Over 10 s at 10/s: 100 more, never a burst beyond 10.
        let mut n = 0;
        for ms in (101..=10_100u64).step_by(1) {
            if b.take(10, ms * 1_000_000) {
                n += 1;
            }
        }
        assert_eq!(n, 100);
        // Rate 0 is unlimited.
        assert!((0..1000).all(|_| b.take(0, 0)));
        // Time going backwards never adds credit.
        let mut c = LearnBucket::default();
        assert!((0..5).all(|_| c.take(5, 1_000_000_000)));
        assert!(!c.take(5, 0));
    }
}
