//! How long each class's frames waited in a port's egress scheduler, in 5-second windows
//! (the housekeeping thread ends one every 5 s) and since start, for `port-latency` and the
//! metrics. Frames the scheduler let straight through count as having waited nothing.

use qos::{CLASSES, Sojourn};

use crate::Percentiles;

/// A class's waits as the percentiles `port-latency` reports.
pub(crate) fn percentiles(s: &Sojourn) -> Percentiles {
    Percentiles {
        frames: s.count(),
        p50_ns: s.percentile(50.0) as f64,
        p90_ns: s.percentile(90.0) as f64,
        p99_ns: s.percentile(99.0) as f64,
        p999_ns: s.percentile(99.9) as f64,
        max_ns: s.max_ns() as f64,
        mean_ns: s.mean_ns(),
    }
}

pub(crate) struct ClassWaits {
    /// The window being recorded.
    current: [Sojourn; CLASSES],
    /// The last finished window.
    last: [Sojourn; CLASSES],
    /// Every finished window, merged.
    finished: [Sojourn; CLASSES],
}

impl Default for ClassWaits {
    fn default() -> Self {
        ClassWaits {
            current: std::array::from_fn(|_| Sojourn::default()),
            last: std::array::from_fn(|_| Sojourn::default()),
            finished: std::array::from_fn(|_| Sojourn::default()),
        }
    }
}

impl ClassWaits {
    /// `n` frames of class index `class` that waited `ns` each.
    #[inline]
    pub(crate) fn record(&mut self, class: usize, ns: u64, n: u64) {
        if let Some(s) = self.current.get_mut(class) {
            s.record_n(ns, n);
        }
    }

    /// Ends the current window.
    pub(crate) fn rotate(&mut self) {
        for ((cur, last), fin) in self
            .current
            .iter_mut()
            .zip(self.last.iter_mut())
            .zip(self.finished.iter_mut())
        {
            fin.add(cur);
            std::mem::swap(cur, last);
            cur.clear();
        }
    }

    /// The last finished window of class index `class`.
    pub(crate) fn last_window(&self, class: usize) -> Sojourn {
        self.last.get(class).cloned().unwrap_or_default()
    }

    /// Everything class index `class` recorded since start, the current window included.
    pub(crate) fn since_start(&self, class: usize) -> Sojourn {
        let mut s = self.finished.get(class).cloned().unwrap_or_default();
        if let Some(cur) = self.current.get(class) {
            s.add(cur);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_rotate_and_merge_into_the_total() {
        let mut w = ClassWaits::default();
        w.record(5, 1000, 10);
        assert_eq!(w.last_window(5).count(), 0, "no window finished yet");
        assert_eq!(w.since_start(5).count(), 10);
        w.rotate();
        w.record(5, 3000, 5);
        w.record(0, 0, 7);
        assert_eq!(w.last_window(5).count(), 10);
        assert_eq!(w.last_window(5).max_ns(), 1000);
        assert_eq!(w.since_start(5).count(), 15);
        assert_eq!(w.since_start(5).max_ns(), 3000);
        w.rotate();
        assert_eq!(w.last_window(5).count(), 5);
        assert_eq!(w.last_window(0).count(), 7);
        assert_eq!(w.since_start(5).count(), 15);
        w.rotate();
        assert_eq!(w.last_window(5).count(), 0, "an idle window is empty");
        w.record(9, 1, 1); // no such class: ignored
        assert_eq!(w.since_start(0).count(), 7);
    }
}
