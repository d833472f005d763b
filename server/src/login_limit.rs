//! Failed-login limits (`limits.login`), on whether or not `rateLimit` is configured: after
//! `maxFailuresPerConnection` failed `auth.login` on one connection, or
//! `maxFailuresPerIp` from one client address, inside a window of `windowMs` (a fixed
//! window starting at the first failure), `auth.login` answers `RATE_LIMITED` without
//! trying the token. A successful login resets its connection's count, not the address's.
//!
//! The per-address table is keyed by client input, so it is bounded: entries whose window
//! has passed are swept, and at [`MAX_TRACKED_IPS`] the entry with the oldest window makes
//! room.

use std::collections::HashMap;
use std::net::IpAddr;

use noex_protocol::ErrorCode;
use noex_protocol::payloads::RateLimitDetails;
use parking_lot::Mutex;

use crate::config::LoginLimits;
use crate::error::ServerError;
use crate::handshake::client_key;

/// The message of a login refused by these limits.
pub(crate) const MSG_TOO_MANY_FAILURES: &str = "Too many failed login attempts. Try again later.";

/// The `RATE_LIMITED` answer to a refused login, with `details: {retryAfterMs}`.
pub(crate) fn refusal(retry_after_ms: u64) -> ServerError {
    ServerError::new(ErrorCode::RateLimited, MSG_TOO_MANY_FAILURES)
        .with_details(serde_json::json!(RateLimitDetails { retry_after_ms }))
}

/// Most client addresses whose failures are remembered at once.
pub(crate) const MAX_TRACKED_IPS: usize = 65_536;

/// Failures inside one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FailureWindow {
    start_ms: u64,
    failures: u32,
}

impl FailureWindow {
    /// The failures that still count at `now_ms`.
    pub(crate) fn current(&self, now_ms: u64, window_ms: u64) -> u32 {
        if now_ms >= self.start_ms.saturating_add(window_ms) {
            0
        } else {
            self.failures
        }
    }

    /// `Err(retry_after_ms)` when `max` failures already count at `now_ms`.
    pub(crate) fn check(&self, max: u32, now_ms: u64, window_ms: u64) -> Result<(), u64> {
        if self.current(now_ms, window_ms) >= max {
            let ends = self.start_ms.saturating_add(window_ms);
            Err(ends.saturating_sub(now_ms).max(1))
        } else {
            Ok(())
        }
    }

    pub(crate) fn record(&mut self, now_ms: u64, window_ms: u64) {
        if self.current(now_ms, window_ms) == 0 {
            *self = FailureWindow {
                start_ms: now_ms,
                failures: 0,
            };
        }
        self.failures = self.failures.saturating_add(1);
    }
}

/// A login attempt counted by [`LoginLimiter::begin`] until it is answered.
#[derive(Debug, Clone, Copy)]
#[must_use = "an attempt stays counted as a failure unless it is finished"]
pub(crate) struct Attempt {
    ip: IpAddr,
    /// The window the attempt was counted in (a success takes it back only from that one).
    start_ms: u64,
    /// The address had failures in its window when the attempt began.
    pub(crate) suspect: bool,
}

/// One connection's failed logins (kept on the connection).
pub(crate) type ConnectionFailures = FailureWindow;

/// The server-wide limiter: the limits and the per-address table.
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    limits: LoginLimits,
    ips: Mutex<IpTable>,
}

#[derive(Debug, Default)]
struct IpTable {
    windows: HashMap<IpAddr, FailureWindow>,
}

impl IpTable {
    /// Counts one failure of the address `key` (already reduced by `client_key`); answers
    /// the start of the window it was counted in.
    fn count(&mut self, key: IpAddr, now_ms: u64, window: u64) -> u64 {
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_TRACKED_IPS {
            self.windows
                .retain(|_, entry| entry.current(now_ms, window) > 0);
            if self.windows.len() >= MAX_TRACKED_IPS {
                let oldest = self
                    .windows
                    .iter()
                    .min_by_key(|(_, entry)| entry.start_ms)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    self.windows.remove(&oldest);
                }
            }
        }
        let entry = self.windows.entry(key).or_default();
        entry.record(now_ms, window);
        entry.start_ms
    }
}

impl LoginLimiter {
    /// A limiter applying `limits`.
    pub(crate) fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            limits,
            ips: Mutex::new(IpTable::default()),
        }
    }

    /// Starts a login attempt whose check may wait (a validator, a password hash): refused
    /// with `Err(retry_after_ms)` when the connection or its address is over its
    /// limit (the login must then be refused without trying the credentials), otherwise counted against
    /// the address *now*, as a failure until [`finish`](Self::finish) says it succeeded.
    /// Attempts sent at once over many connections of one address therefore see each
    /// other: counted only once answered, 60 concurrent guesses from one address all got
    /// an answer against a limit of 30 (red team round 10). `Ok` tells whether the address
    /// already had failures in its window (a suspect address, whose password checks wait
    /// behind everybody else's).
    pub(crate) fn begin(
        &self,
        connection: &ConnectionFailures,
        ip: IpAddr,
        now_ms: u64,
    ) -> Result<Attempt, u64> {
        let window = self.limits.window_ms;
        let own = connection.check(self.limits.max_failures_per_connection, now_ms, window);
        let key = client_key(ip);
        // Checked and counted under one lock: two attempts cannot both pass the check.
        let mut table = self.ips.lock();
        let from_ip = match table.windows.get(&key) {
            Some(entry) => entry.check(self.limits.max_failures_per_ip, now_ms, window),
            None => Ok(()),
        };
        match (own, from_ip) {
            (Ok(()), Ok(())) => {}
            (Err(a), Err(b)) => return Err(a.max(b)),
            (Err(wait), _) | (_, Err(wait)) => return Err(wait),
        }
        let suspect = table
            .windows
            .get(&key)
            .is_some_and(|entry| entry.current(now_ms, window) > 0);
        let start_ms = table.count(key, now_ms, window);
        Ok(Attempt {
            ip: key,
            start_ms,
            suspect,
        })
    }

    /// Ends an attempt [`begin`](Self::begin) counted: a success takes it back from the
    /// address and resets the connection; a failure counts on the connection too.
    pub(crate) fn finish(
        &self,
        attempt: Attempt,
        connection: &mut ConnectionFailures,
        now_ms: u64,
        succeeded: bool,
    ) {
        if succeeded {
            Self::succeeded(connection);
            if let Some(entry) = self.ips.lock().windows.get_mut(&attempt.ip)
                && entry.start_ms == attempt.start_ms
            {
                entry.failures = entry.failures.saturating_sub(1);
            }
        } else {
            connection.record(now_ms, self.limits.window_ms);
        }
    }

    /// A successful login: the connection starts again from zero (its address does not).
    pub(crate) fn succeeded(connection: &mut ConnectionFailures) {
        *connection = ConnectionFailures::default();
    }

    /// Addresses currently remembered.
    #[cfg(test)]
    fn tracked_ips(&self) -> usize {
        self.ips.lock().windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_connection: u32, per_ip: u32, window_ms: u64) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            max_failures_per_connection: per_connection,
            max_failures_per_ip: per_ip,
            window_ms,
        })
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    /// One attempt that fails at `now`.
    fn fail(l: &LoginLimiter, c: &mut ConnectionFailures, ip: IpAddr, now: u64) {
        let attempt = l.begin(c, ip, now).expect("not limited");
        l.finish(attempt, c, now, false);
    }

    /// Whether an attempt at `now` would be refused (without counting one).
    fn check(l: &LoginLimiter, c: &ConnectionFailures, ip: IpAddr, now: u64) -> Result<(), u64> {
        let mut probe = *c;
        let attempt = l.begin(&probe, ip, now)?;
        l.finish(attempt, &mut probe, now, true);
        Ok(())
    }

    #[test]
    fn a_connection_is_limited_until_its_window_ends() {
        let l = limiter(2, 100, 1_000);
        let mut c = ConnectionFailures::default();
        fail(&l, &mut c, IP, 100);
        assert_eq!(check(&l, &c, IP, 200), Ok(()));
        fail(&l, &mut c, IP, 300);
        assert_eq!(
            check(&l, &c, IP, 400),
            Err(700),
            "the window started at 100"
        );
        assert_eq!(check(&l, &c, IP, 1_100), Ok(()));
    }

    #[test]
    fn the_address_counts_all_its_connections_and_success_resets_only_the_connection() {
        let l = limiter(2, 3, 1_000);
        let (mut a, mut b) = (ConnectionFailures::default(), ConnectionFailures::default());
        fail(&l, &mut a, IP, 0);
        fail(&l, &mut a, IP, 0);
        LoginLimiter::succeeded(&mut a);
        assert_eq!(check(&l, &a, IP, 0), Ok(()));
        fail(&l, &mut b, IP, 10);
        assert_eq!(
            check(&l, &b, IP, 10),
            Err(990),
            "3 failures from the address"
        );
        assert!(check(&l, &a, IP, 10).is_err());
    }

    #[test]
    fn attempts_in_flight_count_against_the_address_until_they_succeed() {
        let l = limiter(100, 3, 1_000);
        let conns = [ConnectionFailures::default(); 4];
        let first = l.begin(&conns[0], IP, 0).expect("first");
        assert!(!first.suspect, "no failure yet");
        let second = l.begin(&conns[1], IP, 0).expect("second");
        assert!(second.suspect, "an attempt is in flight");
        let third = l.begin(&conns[2], IP, 0).expect("third");
        assert_eq!(
            l.begin(&conns[3], IP, 0).map(drop),
            Err(1_000),
            "3 in flight"
        );
        let mut c = conns[0];
        l.finish(first, &mut c, 5, true);
        l.finish(second, &mut c, 5, true);
        assert!(l.begin(&conns[3], IP, 5).is_ok(), "two succeeded");
        l.finish(third, &mut c, 5, false);
    }

    #[test]
    fn the_address_table_is_bounded() {
        let l = limiter(5, 5, 1_000);
        let mut c = ConnectionFailures::default();
        for i in 0..(MAX_TRACKED_IPS as u32 + 100) {
            fail(&l, &mut c, IpAddr::V4(i.into()), 0);
            c = ConnectionFailures::default();
        }
        assert_eq!(l.tracked_ips(), MAX_TRACKED_IPS);
        // Expired windows are swept when room is needed.
        fail(&l, &mut c, IP, 5_000);
        assert_eq!(l.tracked_ips(), 1);
    }
}
