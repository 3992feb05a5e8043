//! Time-stamp counter reads for cycles-per-packet figures.

/// Reads the TSC (constant-rate on current x86; elsewhere a nanosecond clock).
#[inline]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no memory effects and exists on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}

/// TSC ticks per nanosecond, measured against the monotonic clock over `ms` milliseconds.
pub fn ticks_per_ns(ms: u64) -> f64 {
    let t0 = std::time::Instant::now();
    let c0 = now();
    std::thread::sleep(std::time::Duration::from_millis(ms));
    let c1 = now();
    (c1 - c0) as f64 / t0.elapsed().as_nanos() as f64
}
