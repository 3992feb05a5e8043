//! Time frames spend in the switch, per receive queue: from the moment a receive burst returns
//! to the moment the pipeline has handed the burst's frames to their output ports (frames an
//! egress scheduler holds back are counted up to the scheduler, not to the wire).
//!
//! The PMD records one sample per burst, weighted by the burst's frames, in TSC cycles
//! (`hdrhistogram`, 2 significant digits: a sample is within 1 % of the truth). It never waits:
//! if the histogram is being rotated at that instant, the sample is skipped and counted. Every
//! 5 s the housekeeping thread rotates each queue's histogram: the finished window is kept as
//! "last window" and added to "since start".

use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

use crate::counter::SharedCounter;

/// How long a latency window lasts.
pub(crate) const WINDOW_SECS: u64 = 5;
/// The largest sample kept: about 17 s of TSC cycles at 4 GHz (larger ones are clamped).
const MAX_CYCLES: u64 = 1 << 36;

pub(crate) struct Windows {
    current: Histogram<u64>,
    pub(crate) last: Histogram<u64>,
    pub(crate) total: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_CYCLES, 2).expect("valid histogram bounds")
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            current: histogram(),
            last: histogram(),
            total: histogram(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Latency {
    windows: Mutex<Windows>,
    /// Samples not recorded because a rotation held the histogram.
    pub(crate) skipped: SharedCounter,
}

impl Latency {
    /// Records `frames` frames that took `cycles` TSC cycles. Never blocks.
    #[inline]
    pub(crate) fn record(&self, cycles: u64, frames: u64) {
        match self.windows.try_lock() {
            Ok(mut w) => {
                let _ = w.current.record_n(cycles.clamp(1, MAX_CYCLES), frames);
            }
            Err(_) => self.skipped.add(1),
        }
    }

    /// Ends the current window: it becomes the last window and is added to the total.
    pub(crate) fn rotate(&self) {
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let w = &mut *w;
        let _ = w.total.add(&w.current);
        std::mem::swap(&mut w.last, &mut w.current);
        w.current.reset();
    }

    /// Adds this queue's last window and total into `last` and `total`.
    pub(crate) fn merge_into(&self, last: &mut Histogram<u64>, total: &mut Histogram<u64>) {
        let w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = last.add(&w.last);
        let _ = total.add(&w.total);
    }
}

/// An empty histogram of the kind the queues keep, to merge them into.
pub(crate) fn empty() -> Histogram<u64> {
    histogram()
}

/// Percentiles of a histogram of TSC cycles, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Frames the histogram holds.
    pub frames: u64,
    pub p50_ns: f64,
    pub p90_ns: f64,
    pub p99_ns: f64,
    pub p999_ns: f64,
    pub max_ns: f64,
    pub mean_ns: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>, tsc_hz: u64) -> Percentiles {
        if h.is_empty() || tsc_hz == 0 {
            return Percentiles {
                frames: h.len(),
                ..Percentiles::default()
            };
        }
        let ns = |cycles: u64| cycles as f64 * 1e9 / tsc_hz as f64;
        Percentiles {
            frames: h.len(),
            p50_ns: ns(h.value_at_quantile(0.50)),
            p90_ns: ns(h.value_at_quantile(0.90)),
            p99_ns: ns(h.value_at_quantile(0.99)),
            p999_ns: ns(h.value_at_quantile(0.999)),
            max_ns: ns(h.max()),
            mean_ns: h.mean() * 1e9 / tsc_hz as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known delays in, known quantiles out (within the histogram's 1 % precision), for the
    /// window and since start; a rotation starts a new window.
    #[test]
    fn known_delays_give_known_quantiles() {
        let l = Latency::default();
        // 3 GHz: 1,000 bursts of 32 frames at 3,000 cycles (1 µs), 100 at 30,000 (10 µs),
        // 10 at 300,000 (100 µs).
        for _ in 0..1000 {
            l.record(3_000, 32);
        }
        for _ in 0..100 {
            l.record(30_000, 32);
        }
        for _ in 0..10 {
            l.record(300_000, 32);
        }
        l.rotate();
        let (mut last, mut total) = (empty(), empty());
        l.merge_into(&mut last, &mut total);
        let p = Percentiles::of(&last, 3_000_000_000);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert_eq!(p.frames, 1110 * 32);
        assert!(near(p.p50_ns, 1_000.0), "{p:?}");
        // 90.09 % of frames are at 1 µs, the next 9.01 % at 10 µs.
        assert!(near(p.p90_ns, 1_000.0), "{p:?}");
        assert!(near(p.p99_ns, 10_000.0), "{p:?}");
        assert!(near(p.p999_ns, 100_000.0), "{p:?}");
        assert_eq!(Percentiles::of(&total, 3_000_000_000), p);

        // A second window of 2 µs only: the last window shows it, the total holds both.
        for _ in 0..1110 {
            l.record(6_000, 32);
        }
        l.rotate();
        let (mut last, mut total) = (empty(), empty());
        l.merge_into(&mut last, &mut total);
        let w = Percentiles::of(&last, 3_000_000_000);
        assert!(near(w.p50_ns, 2_000.0) && near(w.p99_ns, 2_000.0), "{w:?}");
        let t = Percentiles::of(&total, 3_000_000_000);
        assert_eq!(t.frames, 2 * 1110 * 32);
        assert!(near(t.p50_ns, 1_000.0) || near(t.p50_ns, 2_000.0), "{t:?}");
        assert!(near(t.p999_ns, 100_000.0), "{t:?}");
    }

    #[test]
    fn a_rotation_in_progress_skips_the_sample() {
        let l = Latency::default();
        let guard = l.windows.lock().unwrap();
        l.record(1_000, 1);
        drop(guard);
        assert_eq!(l.skipped.get(), 1);
    }
}
