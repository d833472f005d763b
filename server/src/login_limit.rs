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

impl LoginLimiter {
    /// A limiter applying `limits`.
    pub(crate) fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            limits,
            ips: Mutex::new(IpTable::default()),
        }
    }

    /// `Err(retry_after_ms)` when the connection or its address is over its limit: the
    /// login must be refused without trying the token.
    pub(crate) fn check(
        &self,
        connection: &ConnectionFailures,
        ip: IpAddr,
        now_ms: u64,
    ) -> Result<(), u64> {
        let window = self.limits.window_ms;
        let own = connection.check(self.limits.max_failures_per_connection, now_ms, window);
        let from_ip = match self.ips.lock().windows.get(&client_key(ip)) {
            Some(entry) => entry.check(self.limits.max_failures_per_ip, now_ms, window),
            None => Ok(()),
        };
        match (own, from_ip) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(wait), _) | (_, Err(wait)) => Err(wait),
        }
    }

    /// Counts a failed login on `connection` and its address.
    pub(crate) fn failed(&self, connection: &mut ConnectionFailures, ip: IpAddr, now_ms: u64) {
        let window = self.limits.window_ms;
        connection.record(now_ms, window);
        let key = client_key(ip);
        let mut table = self.ips.lock();
        if !table.windows.contains_key(&key) && table.windows.len() >= MAX_TRACKED_IPS {
            table
                .windows
                .retain(|_, entry| entry.current(now_ms, window) > 0);
            if table.windows.len() >= MAX_TRACKED_IPS {
                let oldest = table
                    .windows
                    .iter()
                    .min_by_key(|(_, entry)| entry.start_ms)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    table.windows.remove(&oldest);
                }
            }
        }
        table.windows.entry(key).or_default().record(now_ms, window);
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

    #[test]
    fn a_connection_is_limited_until_its_window_ends() {
        let l = limiter(2, 100, 1_000);
        let mut c = ConnectionFailures::default();
        l.failed(&mut c, IP, 100);
        assert_eq!(l.check(&c, IP, 200), Ok(()));
        l.failed(&mut c, IP, 300);
        assert_eq!(l.check(&c, IP, 400), Err(700), "the window started at 100");
        assert_eq!(l.check(&c, IP, 1_100), Ok(()));
    }

    #[test]
    fn the_address_counts_all_its_connections_and_success_resets_only_the_connection() {
        let l = limiter(2, 3, 1_000);
        let (mut a, mut b) = (ConnectionFailures::default(), ConnectionFailures::default());
        l.failed(&mut a, IP, 0);
        l.failed(&mut a, IP, 0);
        LoginLimiter::succeeded(&mut a);
        assert_eq!(l.check(&a, IP, 0), Ok(()));
        l.failed(&mut b, IP, 10);
        assert_eq!(l.check(&b, IP, 10), Err(990), "3 failures from the address");
        assert!(l.check(&a, IP, 10).is_err());
    }

    #[test]
    fn the_address_table_is_bounded() {
        let l = limiter(5, 5, 1_000);
        let mut c = ConnectionFailures::default();
        for i in 0..(MAX_TRACKED_IPS as u32 + 100) {
            l.failed(&mut c, IpAddr::V4(i.into()), 0);
        }
        assert_eq!(l.tracked_ips(), MAX_TRACKED_IPS);
        // Expired windows are swept when room is needed.
        l.failed(&mut c, IP, 5_000);
        assert_eq!(l.tracked_ips(), 1);
    }
}
