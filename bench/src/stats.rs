//! Latency samples and percentiles. Samples are bounded: past the cap a reservoir keeps a
//! uniform subset, so memory stays fixed however long a scenario runs.

use std::time::Duration;

/// A bounded set of latency samples (nanoseconds), reservoir-sampled past `cap`.
#[derive(Debug, Clone)]
pub struct Samples {
    cap: usize,
    seen: u64,
    values: Vec<u64>,
    rng: u64,
}

impl Samples {
    /// An empty set keeping at most `cap` samples (at least 1).
    pub fn new(cap: usize) -> Self {
        Samples {
            cap: cap.max(1),
            seen: 0,
            values: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Records one latency.
    pub fn push(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.seen += 1;
        if self.values.len() < self.cap {
            self.values.push(ns);
        } else {
            // xorshift64: cheap, dependency-free, good enough for reservoir sampling.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let slot = self.rng % self.seen;
            if let Ok(i) = usize::try_from(slot)
                && i < self.cap
            {
                self.values[i] = ns;
            }
        }
    }

    /// Number of latencies recorded (not only kept).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Merges several per-connection sets into one summary.
    pub fn summarize(sets: &[Samples]) -> Summary {
        let mut all: Vec<u64> = sets.iter().flat_map(|s| s.values.iter().copied()).collect();
        all.sort_unstable();
        Summary {
            count: sets.iter().map(|s| s.seen).sum(),
            p50_us: percentile_us(&all, 0.50),
            p99_us: percentile_us(&all, 0.99),
            p999_us: percentile_us(&all, 0.999),
        }
    }
}

/// Percentiles of a latency distribution, in microseconds (0 when there were no samples).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Latencies recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

/// Nearest-rank percentile of an ascending slice of nanoseconds, in microseconds.
pub fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_bounded() {
        let mut s = Samples::new(1000);
        for i in 1..=10_000u64 {
            s.push(Duration::from_micros(i));
        }
        assert_eq!(s.seen(), 10_000);
        let sum = Samples::summarize(&[s]);
        assert!(sum.p50_us <= sum.p99_us && sum.p99_us <= sum.p999_us);
        assert!(sum.p50_us > 3000.0 && sum.p50_us < 7000.0);
    }

    #[test]
    fn exact_percentile() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_us(&v, 0.5), 50.0);
        assert_eq!(percentile_us(&v, 0.99), 99.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
    }
}
