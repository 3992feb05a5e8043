//! How long frames waited in a queue: a log-linear histogram of nanoseconds (16 steps per
//! power of two, so a percentile is within 6.25 % of the true value), fixed size, no
//! allocation after creation.

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Values up to 2^40 ns (18 minutes); longer waits count in the last bucket.
const MAX_BITS: u32 = 40;
const BUCKETS: usize = ((MAX_BITS - SUB_BITS + 1) as usize + 1) * SUB as usize;

#[derive(Clone, Debug)]
pub struct Sojourn {
    counts: Box<[u64]>,
    total: u64,
    max_ns: u64,
    /// Sum of every wait (saturating), for the mean.
    sum_ns: u64,
}

impl Default for Sojourn {
    fn default() -> Self {
        Sojourn {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max_ns: 0,
            sum_ns: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = (63 - v.leading_zeros() - SUB_BITS + 1).min(MAX_BITS - SUB_BITS + 1);
    let sub = (v >> (exp - 1)) & (SUB - 1);
    ((u64::from(exp) * SUB + sub) as usize).min(BUCKETS - 1)
}

/// The largest value of bucket `b`.
fn bucket_top(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let (exp, sub) = (b / SUB, b % SUB);
    (((SUB | sub) + 1) << (exp - 1)) - 1
}

impl Sojourn {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// `n` frames that waited `ns` each.
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u64) {
        self.counts[bucket(ns)] += n;
        self.total += n;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns = self.sum_ns.saturating_add(ns.saturating_mul(n));
    }

    /// Adds what `other` recorded.
    pub fn add(&mut self, other: &Sojourn) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// Forgets everything recorded (keeps the buckets' memory).
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max_ns = 0;
        self.sum_ns = 0;
    }

    /// The mean wait (0 with no frames).
    pub fn mean_ns(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.total as f64
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// The wait `p` percent of frames did not exceed (0 with no frames).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // The last bucket holds everything longer: its top is the longest seen.
                return if b == BUCKETS - 1 {
                    self.max_ns
                } else {
                    bucket_top(b).min(self.max_ns)
                };
            }
        }
        self.max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket_of_the_truth() {
        let mut s = Sojourn::default();
        assert_eq!(s.percentile(99.0), 0);
        for v in 1..=10_000u64 {
            s.record(v * 1000);
        }
        for (p, truth) in [(50.0, 5_000_000u64), (90.0, 9_000_000), (99.0, 9_900_000)] {
            let got = s.percentile(p);
            assert!(
                got >= truth && got <= truth + truth / 16,
                "P{p}: {got} vs {truth}"
            );
        }
        assert_eq!(s.max_ns(), 10_000_000);
        s.record_n(0, 90_000);
        assert_eq!(s.percentile(90.0), 0, "nine in ten waited nothing");
        assert_eq!(s.count(), 100_000);
        let mean = 10_000.0 * 10_001.0 / 2.0 * 1000.0 / 100_000.0;
        assert!((s.mean_ns() - mean).abs() < 1e-6, "{}", s.mean_ns());
        // Merging two halves gives the whole; clearing forgets.
        let (mut a, mut b) = (Sojourn::default(), Sojourn::default());
        for v in 1..=10_000u64 {
            if v % 2 == 0 {
                a.record(v * 1000)
            } else {
                b.record(v * 1000)
            }
        }
        a.add(&b);
        assert_eq!(a.count(), 10_000);
        assert_eq!(a.max_ns(), 10_000_000);
        assert_eq!(a.percentile(99.0), {
            let mut whole = Sojourn::default();
            (1..=10_000u64).for_each(|v| whole.record(v * 1000));
            whole.percentile(99.0)
        });
        a.clear();
        assert_eq!(
            (a.count(), a.max_ns(), a.percentile(50.0), a.mean_ns()),
            (0, 0, 0, 0.0)
        );
        // Huge values land in the last bucket, never out of bounds.
        s.record(u64::MAX);
        assert_eq!(s.percentile(100.0), u64::MAX);
        for v in [
            0u64,
            1,
            15,
            16,
            17,
            1 << 20,
            (1 << 40) - 1,
            1 << 40,
            u64::MAX,
        ] {
            assert!(bucket(v) < BUCKETS);
            assert!(bucket_top(bucket(v)) >= v.min(bucket_top(BUCKETS - 1)));
        }
    }
}
