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
use tokio::sync::Notify;

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
    /// Woken when an attempt ends, for the attempts of an address waiting for one.
    ended: Notify,
}

/// One address: its failures in their window, its attempts being checked now, and when it
/// last failed.
#[derive(Debug, Default, Clone, Copy)]
struct IpEntry {
    window: FailureWindow,
    in_flight: u32,
    /// When its latest failure was counted (ms; 0: never).
    last_failure_ms: u64,
}

/// How long an address that failed a login stays suspect (its password checks wait behind
/// everybody else's), at least: longer than the failure window, so that addresses looping
/// bad logins do not all turn clean together when their windows end (50 such addresses
/// put a legitimate login at 6.9 s at a window's end: red team round 11).
const SUSPECT_FOR_MS: u64 = 15 * 60 * 1000;

/// How an attempt ended, for [`Attempt::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Logged in: the connection's count starts again.
    Succeeded,
    /// Wrong credentials: counts on the connection and the address.
    Failed,
    /// Refused before the credentials were judged (the username is locked, an internal
    /// error): counts nowhere and resets nothing (a reset let a connection interleave
    /// refused logins to clear its own failures: red team round 11).
    Refused,
}

#[derive(Debug, Default)]
struct IpTable {
    entries: HashMap<IpAddr, IpEntry>,
}

impl IpTable {
    /// The entry of the address `key` (already reduced by `client_key`), made room for.
    fn entry(&mut self, key: IpAddr, now_ms: u64, window: u64) -> &mut IpEntry {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_TRACKED_IPS {
            self.entries
                .retain(|_, e| e.in_flight > 0 || e.window.current(now_ms, window) > 0);
            if self.entries.len() >= MAX_TRACKED_IPS {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.window.start_ms)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.entry(key).or_default()
    }
}

/// A login attempt being checked, begun by [`LoginLimiter::begin`]: until it is
/// [`finish`](Attempt::finish)ed (or dropped, when its request goes away) it holds one of
/// its address's remaining failures.
#[must_use = "an attempt holds one of its address's remaining failures until finished"]
pub(crate) struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    ip: IpAddr,
    /// The address had failures in its window when the attempt began: its password checks
    /// wait behind everybody else's.
    pub(crate) suspect: bool,
    /// When it began (ms, the server's clock).
    began_ms: u64,
    finished: bool,
}

impl Attempt<'_> {
    /// Ends the attempt: a failure counts on the connection and the address; a success
    /// resets the connection's count (not the address's); a refusal does neither.
    pub(crate) fn finish(
        mut self,
        connection: &mut ConnectionFailures,
        now_ms: u64,
        outcome: Outcome,
    ) {
        let window = self.limiter.limits.window_ms;
        match outcome {
            Outcome::Succeeded => LoginLimiter::succeeded(connection),
            Outcome::Failed => connection.record(now_ms, window),
            Outcome::Refused => {}
        }
        self.end(now_ms, outcome == Outcome::Failed);
    }

    fn end(&mut self, now_ms: u64, failed: bool) {
        self.finished = true;
        let window = self.limiter.limits.window_ms;
        {
            let mut table = self.limiter.ips.lock();
            let entry = table.entry(self.ip, now_ms, window);
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if failed {
                entry.window.record(now_ms, window);
                entry.last_failure_ms = now_ms.max(1);
            }
        }
        self.limiter.ended.notify_waiters();
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // The request went away before its answer: nothing was learnt, nothing counts.
            self.end(self.began_ms, false);
        }
    }
}

impl LoginLimiter {
    /// A limiter applying `limits`.
    pub(crate) fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            limits,
            ips: Mutex::new(IpTable::default()),
            ended: Notify::new(),
        }
    }

    /// Begins a login attempt whose check may take a while (a validator, a password
    /// hash). `Err(retry_after_ms)` when the connection or its address is over its limit:
    /// the login must be refused without trying the credentials. An address has at most
    /// as many attempts being checked at once as it has failures left in its window;
    /// further ones wait for one to end (and are refused if it failed the last one).
    /// Counted only once answered, 60 guesses sent at once from one address were all
    /// checked against a limit of 30 (red team round 10); counted as failures while being
    /// checked, 50 users behind one address logging in at once were refused.
    pub(crate) async fn begin(
        &self,
        connection: &ConnectionFailures,
        ip: IpAddr,
        now_ms: u64,
    ) -> Result<Attempt<'_>, u64> {
        let window = self.limits.window_ms;
        let max = self.limits.max_failures_per_ip;
        connection.check(self.limits.max_failures_per_connection, now_ms, window)?;
        let key = client_key(ip);
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            {
                let mut table = self.ips.lock();
                let entry = table.entry(key, now_ms, window);
                entry.window.check(max, now_ms, window)?;
                let failures = entry.window.current(now_ms, window);
                if failures.saturating_add(entry.in_flight) < max {
                    // Suspect: failed lately, or another attempt of the address is being
                    // checked (a burst from a fresh address was all clean before its first
                    // failure was counted: red team round 11), so an address has at most one
                    // clean check at a time.
                    let failed_lately = entry.last_failure_ms > 0
                        && now_ms
                            < entry
                                .last_failure_ms
                                .saturating_add(SUSPECT_FOR_MS.max(window));
                    let suspect = failures > 0 || entry.in_flight > 0 || failed_lately;
                    entry.in_flight += 1;
                    return Ok(Attempt {
                        limiter: self,
                        ip: key,
                        suspect,
                        began_ms: now_ms,
                        finished: false,
                    });
                }
                // Registered before the lock is released: an attempt ending meanwhile
                // wakes this one.
                ended.as_mut().enable();
            }
            ended.await;
        }
    }

    /// A successful login: the connection starts again from zero (its address does not).
    pub(crate) fn succeeded(connection: &mut ConnectionFailures) {
        *connection = ConnectionFailures::default();
    }

    /// Addresses currently remembered.
    #[cfg(test)]
    fn tracked_ips(&self) -> usize {
        self.ips.lock().entries.len()
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

    /// Polls `f` once (its waker does nothing: the test polls again itself).
    fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::Pin::new(f).poll(&mut cx)
    }

    /// One attempt that fails at `now`.
    async fn fail(l: &LoginLimiter, c: &mut ConnectionFailures, ip: IpAddr, now: u64) {
        let attempt = l.begin(c, ip, now).await.expect("not limited");
        attempt.finish(c, now, Outcome::Failed);
    }

    /// Whether an attempt at `now` would be refused (without counting one).
    async fn check(
        l: &LoginLimiter,
        c: &ConnectionFailures,
        ip: IpAddr,
        now: u64,
    ) -> Result<(), u64> {
        let mut probe = *c;
        l.begin(&probe, ip, now)
            .await?
            .finish(&mut probe, now, Outcome::Succeeded);
        Ok(())
    }

    #[tokio::test]
    async fn a_connection_is_limited_until_its_window_ends() {
        let l = limiter(2, 100, 1_000);
        let mut c = ConnectionFailures::default();
        fail(&l, &mut c, IP, 100).await;
        assert_eq!(check(&l, &c, IP, 200).await, Ok(()));
        fail(&l, &mut c, IP, 300).await;
        assert_eq!(
            check(&l, &c, IP, 400).await,
            Err(700),
            "the window started at 100"
        );
        assert_eq!(check(&l, &c, IP, 1_100).await, Ok(()));
    }

    #[tokio::test]
    async fn the_address_counts_all_its_connections_and_success_resets_only_the_connection() {
        let l = limiter(2, 3, 1_000);
        let (mut a, mut b) = (ConnectionFailures::default(), ConnectionFailures::default());
        fail(&l, &mut a, IP, 0).await;
        fail(&l, &mut a, IP, 0).await;
        LoginLimiter::succeeded(&mut a);
        assert_eq!(check(&l, &a, IP, 0).await, Ok(()));
        fail(&l, &mut b, IP, 10).await;
        assert_eq!(
            check(&l, &b, IP, 10).await,
            Err(990),
            "3 failures from the address"
        );
        assert!(check(&l, &a, IP, 10).await.is_err());
    }

    #[tokio::test]
    async fn an_address_checks_at_most_its_remaining_failures_at_once() {
        let l = limiter(100, 3, 1_000);
        let conns = [ConnectionFailures::default(); 5];
        let first = l.begin(&conns[0], IP, 0).await.expect("first");
        let second = l.begin(&conns[1], IP, 0).await.expect("second");
        let third = l.begin(&conns[2], IP, 0).await.expect("third");
        assert!(!first.suspect, "no failure, nothing in flight");
        assert!(
            second.suspect && third.suspect,
            "one is being checked already"
        );
        let mut fourth = Box::pin(l.begin(&conns[3], IP, 0));
        assert!(poll_once(&mut fourth).is_pending(), "3 are being checked");
        let mut c = conns[0];
        first.finish(&mut c, 5, Outcome::Failed);
        assert!(
            poll_once(&mut fourth).is_pending(),
            "1 failure + 2 being checked"
        );
        second.finish(&mut c, 5, Outcome::Succeeded);
        let fourth = match poll_once(&mut fourth) {
            std::task::Poll::Ready(attempt) => attempt.expect("a failure left"),
            std::task::Poll::Pending => panic!("a success gave its place back"),
        };
        assert!(fourth.suspect, "the address has a failure");
        let mut fifth = Box::pin(l.begin(&conns[4], IP, 5));
        assert!(poll_once(&mut fifth).is_pending());
        third.finish(&mut c, 6, Outcome::Failed);
        fourth.finish(&mut c, 7, Outcome::Failed);
        match poll_once(&mut fifth) {
            std::task::Poll::Ready(refused) => {
                assert_eq!(refused.map(drop), Err(1_000), "the window began at 5")
            }
            std::task::Poll::Pending => panic!("the waiting attempt is refused at the limit"),
        }
    }

    #[tokio::test]
    async fn an_address_stays_suspect_past_its_window_after_a_failure() {
        let l = limiter(100, 100, 1_000);
        let mut c = ConnectionFailures::default();
        fail(&l, &mut c, IP, 0).await;
        let later = l.begin(&c, IP, 2_000).await.expect("the window is over");
        assert!(later.suspect, "failed 2 s ago");
        later.finish(&mut c, 2_000, Outcome::Succeeded);
        let much_later = l.begin(&c, IP, SUSPECT_FOR_MS + 1).await.expect("allowed");
        assert!(!much_later.suspect, "the last failure is old");
        much_later.finish(&mut c, SUSPECT_FOR_MS + 1, Outcome::Succeeded);
    }

    #[tokio::test]
    async fn an_attempt_whose_request_went_away_counts_nothing() {
        let l = limiter(100, 1, 1_000);
        let c = ConnectionFailures::default();
        drop(l.begin(&c, IP, 0).await.expect("first"));
        assert_eq!(check(&l, &c, IP, 0).await, Ok(()));
    }

    #[tokio::test]
    async fn the_address_table_is_bounded() {
        let l = limiter(5, 5, 1_000);
        let mut c = ConnectionFailures::default();
        for i in 0..(MAX_TRACKED_IPS as u32 + 100) {
            fail(&l, &mut c, IpAddr::V4(i.into()), 0).await;
            c = ConnectionFailures::default();
        }
        assert_eq!(l.tracked_ips(), MAX_TRACKED_IPS);
        // Expired windows are swept when room is needed.
        fail(&l, &mut c, IP, 5_000).await;
        assert_eq!(l.tracked_ips(), 1);
    }
}
