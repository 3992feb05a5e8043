//! Token buckets in integers. A bucket filled at `rate` bytes per second gains one token (a
//! byte) at each instant k·10⁹/rate ns after time 0, so between two times it gains
//! ⌊rate·t₁/10⁹⌋ − ⌊rate·t₀/10⁹⌋: exact, however often it is read, with no drift.

/// Tokens a bucket filled at `rate` gains between `from_ns` and `to_ns`.
pub fn increments(rate: u64, from_ns: u64, to_ns: u64) -> u64 {
    if to_ns <= from_ns {
        return 0;
    }
    let at = |t: u64| u128::from(rate) * u128::from(t) / 1_000_000_000;
    u64::try_from(at(to_ns) - at(from_ns)).unwrap_or(u64::MAX)
}

/// A bucket of `size` tokens filled at `rate` per second, starting full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub rate: u64,
    pub size: u64,
    pub tokens: u64,
    pub last_ns: u64,
}

impl Bucket {
    pub fn new(rate: u64, size: u64, now_ns: u64) -> Bucket {
        Bucket {
            rate,
            size,
            tokens: size,
            last_ns: now_ns,
        }
    }

    /// Brings the bucket up to `now_ns`.
    pub fn fill(&mut self, now_ns: u64) {
        let n = increments(self.rate, self.last_ns, now_ns);
        self.tokens = self.tokens.saturating_add(n).min(self.size);
        self.last_ns = self.last_ns.max(now_ns);
    }

    /// Whether `n` tokens are there (after [`Bucket::fill`]).
    pub fn has(&self, n: u64) -> bool {
        self.tokens >= n
    }

    pub fn take(&mut self, n: u64) {
        self.tokens = self.tokens.saturating_sub(n);
    }

    /// A new rate and size, keeping the tokens (up to the new size).
    pub fn reshape(&mut self, rate: u64, size: u64, now_ns: u64) {
        self.fill(now_ns);
        self.rate = rate;
        self.size = size;
        self.tokens = self.tokens.min(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_over_any_split() {
        assert_eq!(increments(1_000, 0, 1_000_000_000), 1000);
        assert_eq!(increments(3, 0, 1), 0);
        assert_eq!(increments(1_000, 5, 1), 0, "time going back adds nothing");
        // However the second is cut, the bucket gains the same.
        let mut t = 0;
        let mut sum = 0;
        for step in [1u64, 7, 333_333, 12_345_678, 999] {
            sum += increments(12_345, t, t + step);
            t += step;
        }
        sum += increments(12_345, t, 1_000_000_000);
        assert_eq!(sum, 12_345);
        let mut b = Bucket::new(1000, 100, 0);
        b.take(100);
        b.fill(50_000_000);
        assert_eq!(b.tokens, 50);
        b.fill(10_000_000_000);
        assert_eq!(b.tokens, 100, "capped at the size");
    }
}
