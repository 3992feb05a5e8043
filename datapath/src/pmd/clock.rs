//! The PMD loop's clock, read from the TSC.

use std::time::Instant;

/// The PMD loop's clock: nanoseconds since `epoch` (the switch's clock), read from the TSC
/// where there is one (a few cycles, instead of a `clock_gettime` per poll) and re-anchored to
/// the monotonic clock about every millisecond. Each re-anchoring also re-measures the TSC rate
/// over the interval just ended, so the clock calibrates itself, follows rate changes, and
/// stays within a fraction of a microsecond of `epoch.elapsed()`. Never goes backwards.
pub(crate) struct PmdClock {
    epoch: Instant,
    /// Nanoseconds per TSC tick, fixed point (32 fractional bits); 0 until measured.
    ns_per_tick: u64,
    /// Re-anchor after this many ticks (about 1 ms).
    period: u64,
    anchor_tsc: u64,
    anchor_ns: u64,
    last_ns: u64,
    /// The first anchor, for the long-term rate.
    start_tsc: u64,
    start_ns: u64,
    /// TSC ticks per second from the first anchor to the latest one (0 until 10 ms have passed).
    pub(crate) tsc_hz: u64,
}

impl PmdClock {
    const REANCHOR_NS: u64 = 1_000_000;

    pub(crate) fn new(epoch: Instant) -> PmdClock {
        let mut c = PmdClock {
            epoch,
            ns_per_tick: 0,
            period: 0,
            anchor_tsc: 0,
            anchor_ns: 0,
            last_ns: 0,
            start_tsc: 0,
            start_ns: 0,
            tsc_hz: 0,
        };
        if let Some(t) = tsc() {
            c.anchor_tsc = t;
            c.anchor_ns = c.monotonic_ns();
            c.start_tsc = t;
            c.start_ns = c.anchor_ns;
        }
        c
    }

    fn monotonic_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    #[inline]
    pub(crate) fn now_ns(&mut self) -> u64 {
        let ns = match tsc() {
            Some(t) => {
                let dt = t.wrapping_sub(self.anchor_tsc);
                if dt < self.period {
                    let delta = (u128::from(dt) * u128::from(self.ns_per_tick)) >> 32;
                    self.anchor_ns + delta as u64
                } else {
                    self.reanchor(t, dt)
                }
            }
            None => self.monotonic_ns(),
        };
        let ns = ns.max(self.last_ns);
        self.last_ns = ns;
        ns
    }

    #[cold]
    fn reanchor(&mut self, t: u64, dt: u64) -> u64 {
        let ns = self.monotonic_ns();
        let dns = ns.saturating_sub(self.anchor_ns);
        // A TSC that went backwards (dt wrapped) or an interval too short to measure keeps the
        // old rate; without a rate yet, every read re-anchors (and measures).
        if dt > 0 && dt < 1 << 40 && dns > 0 && dns < 1 << 30 {
            let rate = (u128::from(dns) << 32) / u128::from(dt);
            if rate > 0 && rate < 1 << 40 {
                self.ns_per_tick = rate as u64;
                self.period = (u128::from(Self::REANCHOR_NS) << 32) as u64 / self.ns_per_tick;
            }
        }
        self.anchor_tsc = t;
        self.anchor_ns = ns;
        let (ticks, elapsed) = (t.wrapping_sub(self.start_tsc), ns - self.start_ns);
        if elapsed >= 10_000_000 && ticks < 1 << 62 {
            self.tsc_hz = (u128::from(ticks) * 1_000_000_000 / u128::from(elapsed)) as u64;
        }
        ns
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn tsc() -> Option<u64> {
    // SAFETY: RDTSC has no preconditions on x86_64 and only reads the time-stamp counter.
    Some(unsafe { core::arch::x86_64::_rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(crate) fn tsc() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The TSC clock never goes backwards and stays with the monotonic clock.
    #[test]
    fn pmd_clock_follows_the_monotonic_clock() {
        let epoch = Instant::now();
        let mut clock = PmdClock::new(epoch);
        let mut last = clock.now_ns();
        let end = Instant::now() + Duration::from_millis(30);
        while Instant::now() < end {
            let before = epoch.elapsed().as_nanos() as u64;
            let now = clock.now_ns();
            let after = epoch.elapsed().as_nanos() as u64;
            assert!(now >= last, "clock went backwards");
            // Interpolation error is bounded by the re-anchoring period (1 ms); allow slack for
            // a descheduled test thread.
            assert!(now + 5_000_000 >= before && now <= after + 5_000_000);
            last = now;
        }
    }
}
