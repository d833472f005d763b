//! Request rate limiting: a sliding-window log per key (the user id once logged in, else the
//! remote IP). Memory is bounded: keys idle for a whole window are forgotten on a periodic
//! sweep, and the number of keys is capped.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::config::RateLimitConfig;

/// Most keys tracked at once; beyond it the key idle the longest is forgotten.
const MAX_KEYS: usize = 100_000;

/// Sliding-window request counter per key.
#[derive(Debug)]
pub struct RateLimiter {
    max_requests: usize,
    window_ms: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Timestamps of the requests inside the window, oldest first.
    keys: HashMap<String, VecDeque<u64>>,
    last_sweep_ms: u64,
}

impl RateLimiter {
    /// A limiter allowing `max_requests` per `window_ms` and key.
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter {
            max_requests: config.max_requests.max(1) as usize,
            window_ms: config.window_ms.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Counts one request for `key` at `now_ms`; `Err(retry_after_ms)` when over the limit
    /// (a refused request is not counted).
    pub fn check(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        let mut state = self.state.lock();
        if now_ms.saturating_sub(state.last_sweep_ms) >= self.window_ms {
            self.sweep(&mut state, now_ms);
        }
        if !state.keys.contains_key(key) && state.keys.len() >= MAX_KEYS {
            evict_most_idle(&mut state.keys);
        }
        let window = self.window_ms;
        let log = state.keys.entry(key.to_owned()).or_default();
        // A request at `t` counts while `now < t + window`.
        while log
            .front()
            .is_some_and(|&t| t.saturating_add(window) <= now_ms)
        {
            log.pop_front();
        }
        if log.len() >= self.max_requests {
            let oldest = log.front().copied().unwrap_or(now_ms);
            return Err((oldest + self.window_ms).saturating_sub(now_ms).max(1));
        }
        log.push_back(now_ms);
        Ok(())
    }

    /// Number of keys currently remembered.
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().keys.len()
    }

    fn sweep(&self, state: &mut State, now_ms: u64) {
        let window = self.window_ms;
        state.keys.retain(|_, log| {
            log.back()
                .is_some_and(|&t| t.saturating_add(window) > now_ms)
        });
        state.last_sweep_ms = now_ms;
    }
}

fn evict_most_idle(keys: &mut HashMap<String, VecDeque<u64>>) {
    let idlest = keys
        .iter()
        .min_by_key(|(_, log)| log.back().copied().unwrap_or(0))
        .map(|(k, _)| k.clone());
    if let Some(key) = idlest {
        keys.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_requests: u32, window_ms: u64) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            max_requests,
            window_ms,
        })
    }

    #[test]
    fn allows_up_to_the_limit_then_reports_the_wait() {
        let rl = limiter(3, 1000);
        assert!(rl.check("a", 100).is_ok());
        assert!(rl.check("a", 200).is_ok());
        assert!(rl.check("a", 300).is_ok());
        // The oldest request (t=100) leaves the window at 1100.
        assert_eq!(rl.check("a", 400), Err(700));
        // Other keys are independent.
        assert!(rl.check("b", 400).is_ok());
    }

    #[test]
    fn the_window_slides() {
        let rl = limiter(2, 1000);
        assert!(rl.check("a", 0).is_ok());
        assert!(rl.check("a", 600).is_ok());
        assert!(rl.check("a", 900).is_err());
        assert!(rl.check("a", 1000).is_ok(), "t=0 left the window");
        assert_eq!(rl.check("a", 1100), Err(500), "t=600 leaves at 1600");
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let rl = limiter(5, 100);
        for i in 0..50 {
            rl.check(&format!("ip-{i}"), 10).unwrap();
        }
        assert_eq!(rl.tracked_keys(), 50);
        rl.check("late", 500).unwrap();
        assert_eq!(rl.tracked_keys(), 1);
    }
}
