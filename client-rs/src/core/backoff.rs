//! Reconnect schedule: exponential backoff with bounded, seeded jitter.

/// How and whether to reconnect after an unexpected close.
///
/// ```
/// use noex_client::core::ReconnectPolicy;
/// let p = ReconnectPolicy::default();
/// assert_eq!(p.initial_delay_ms, 1000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Reconnect at all.
    pub enabled: bool,
    /// Delay before the first attempt.
    pub initial_delay_ms: u64,
    /// Upper bound of any delay (before jitter).
    pub max_delay_ms: u64,
    /// Growth factor between attempts.
    pub multiplier: f64,
    /// Give up after this many failed attempts; `None` retries forever.
    pub max_retries: Option<u32>,
    /// Random extra delay: a value drawn from `0..=jitter_ms` is added to every delay
    /// (as the original client does; default 500 ms).
    pub jitter_ms: u64,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            enabled: true,
            initial_delay_ms: 1000,
            max_delay_ms: 30_000,
            multiplier: 2.0,
            max_retries: None,
            jitter_ms: 500,
        }
    }
}

/// Computes attempt delays; randomness comes from a seeded generator so tests are exact.
///
/// ```
/// use noex_client::core::{Backoff, ReconnectPolicy};
/// let mut b = Backoff::new(ReconnectPolicy { jitter_ms: 0, ..Default::default() }, 1);
/// assert_eq!(b.delay_ms(1), 1000);
/// assert_eq!(b.delay_ms(2), 2000);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A schedule for `policy` with jitter drawn from a generator seeded with `seed`.
    pub fn new(policy: ReconnectPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &ReconnectPolicy {
        &self.policy
    }

    /// The base delay (no jitter) of attempt `attempt` (1-based).
    ///
    /// ```
    /// use noex_client::core::{Backoff, ReconnectPolicy};
    /// let b = Backoff::new(ReconnectPolicy { max_delay_ms: 3000, ..Default::default() }, 0);
    /// assert_eq!(b.base_delay_ms(10), 3000);
    /// ```
    pub fn base_delay_ms(&self, attempt: u32) -> u64 {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let raw = self.policy.initial_delay_ms as f64 * self.policy.multiplier.max(1.0).powi(exp);
        let capped = raw.min(self.policy.max_delay_ms as f64);
        if capped.is_finite() && capped >= 0.0 {
            capped as u64
        } else {
            self.policy.max_delay_ms
        }
    }

    /// The delay of attempt `attempt` (1-based), jitter applied.
    pub fn delay_ms(&mut self, attempt: u32) -> u64 {
        let jitter = self.rng.u64(0..=self.policy.jitter_ms);
        self.base_delay_ms(attempt).saturating_add(jitter)
    }

    /// Whether attempt `attempt` (1-based) is still allowed.
    pub fn allows(&self, attempt: u32) -> bool {
        self.policy.enabled && self.policy.max_retries.is_none_or(|max| attempt <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_and_capped() {
        let b = Backoff::new(
            ReconnectPolicy {
                initial_delay_ms: 100,
                max_delay_ms: 1000,
                multiplier: 3.0,
                jitter_ms: 0,
                ..Default::default()
            },
            7,
        );
        let delays: Vec<u64> = (1..=5).map(|a| b.base_delay_ms(a)).collect();
        assert_eq!(delays, vec![100, 300, 900, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let mut b = Backoff::new(
            ReconnectPolicy {
                jitter_ms: 300,
                ..Default::default()
            },
            42,
        );
        let mut seen = std::collections::HashSet::new();
        for attempt in 1..=6 {
            for _ in 0..200 {
                let base = b.base_delay_ms(attempt);
                let d = b.delay_ms(attempt);
                assert!(d >= base && d <= base + 300, "{d} vs {base}");
                seen.insert(d - base);
            }
        }
        assert!(seen.len() > 50, "jitter should vary delays");
    }

    #[test]
    fn same_seed_same_schedule() {
        let mut a = Backoff::new(ReconnectPolicy::default(), 9);
        let mut b = Backoff::new(ReconnectPolicy::default(), 9);
        for n in 1..10 {
            assert_eq!(a.delay_ms(n), b.delay_ms(n));
        }
    }

    #[test]
    fn max_retries_and_disabled() {
        let b = Backoff::new(
            ReconnectPolicy {
                max_retries: Some(2),
                ..Default::default()
            },
            0,
        );
        assert!(b.allows(2));
        assert!(!b.allows(3));
        let off = Backoff::new(
            ReconnectPolicy {
                enabled: false,
                ..Default::default()
            },
            0,
        );
        assert!(!off.allows(1));
    }
}
