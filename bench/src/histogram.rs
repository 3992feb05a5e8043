//! A latency histogram with bounded relative error (log-linear buckets, like HdrHistogram):
//! 64 sub-buckets per power of two, so a percentile is within ~1.6 % of the true value.

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 * SUB) as usize],
            total: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() - SUB_BITS + 1;
    let sub = (v >> (exp - 1)) & (SUB - 1);
    (u64::from(exp) * SUB + sub) as usize
}

/// The smallest value that falls in bucket `b` (the reported value of a percentile).
fn bucket_value(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let exp = b / SUB;
    let sub = b % SUB;
    (SUB | sub) << (exp - 1)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        let b = bucket(v).min(self.counts.len() - 1);
        self.counts[b] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Adds every value `other` recorded.
    pub fn merge(&mut self, other: &Histogram) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `p` percent of the samples fall (0 when empty).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_value(b);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_precision() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (p, want) in [(50.0, 50_000u64), (90.0, 90_000), (99.0, 99_000)] {
            let got = h.percentile(p);
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.02, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.count(), 100_000);
        assert_eq!(Histogram::default().percentile(50.0), 0);
        for v in [0u64, 1, 63, 64, 65, 1000, 1 << 40] {
            assert!(bucket_value(bucket(v)) <= v);
        }
    }
}
