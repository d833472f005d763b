//! The one clock of noex: "now" in milliseconds since the Unix epoch, and a way to wait until
//! a given time, so that everything time-driven (record timestamps, TTL expiry, rule timers,
//! sessions, rate limits) follows the same injected clock.
//!
//! - [`SystemClock`]: wall time; waits on tokio's timer (the server's default).
//! - [`TokioClock`]: wall time at creation plus elapsed *tokio* time, so paused-time tests
//!   (`tokio::time::advance`) move it (the store's and the rule engine's default).
//! - [`ManualClock`]: moves only when told to; advancing it wakes every wait that is due.
//!
//! The tokio-backed clocks need the `tokio` feature; the trait and [`ManualClock`] do not.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A boxed future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of "now" (ms since the Unix epoch) that can also wait until a given time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time in ms since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Resolves once the clock reaches `ms` (at once if it already has). For a
    /// [`ManualClock`] that is when it is advanced or set to `ms` or later; for the
    /// tokio-backed clocks it is a tokio sleep of the time remaining.
    fn sleep_until(&self, ms: u64) -> Sleep;
}

/// Wall time ([`std::time::SystemTime`]); waits are tokio sleeps of the remaining time, taken
/// once (a wall-clock step during a wait does not shorten or lengthen it).
#[cfg(feature = "tokio")]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[cfg(feature = "tokio")]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, ms: u64) -> Sleep {
        let left = ms.saturating_sub(self.now_ms());
        Box::pin(async move {
            if left > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(left)).await;
            }
        })
    }
}

/// Wall time read once at creation, then advancing with `tokio::time::Instant`: under paused
/// tokio time (tests) it moves exactly with `tokio::time::advance`.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base_ms: u64,
    start: tokio::time::Instant,
}

#[cfg(feature = "tokio")]
impl TokioClock {
    /// A clock starting at the current wall time.
    pub fn new() -> Self {
        TokioClock {
            base_ms: SystemClock.now_ms(),
            start: tokio::time::Instant::now(),
        }
    }
}

#[cfg(feature = "tokio")]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(elapsed)
    }

    fn sleep_until(&self, ms: u64) -> Sleep {
        // `now_ms` truncates to whole ms, so the instant `ms` is reached is the start plus
        // `ms - base_ms` exactly.
        let at = self.start
            + std::time::Duration::from_millis(ms.saturating_sub(self.base_ms).min(MAX_WAIT_MS));
        Box::pin(tokio::time::sleep_until(at))
    }
}

/// Waits further than this (about 100 years) are capped, so instant arithmetic cannot overflow.
#[cfg(feature = "tokio")]
const MAX_WAIT_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A clock that only moves when told to, for tests and simulations. Clones share the same
/// time; [`ManualClock::advance`] and [`ManualClock::set`] wake every
/// [`Clock::sleep_until`] that is then due.
///
/// ```
/// use noex_model::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    now: AtomicU64,
    /// Wakers of pending sleeps, by sleep id.
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    next_id: u64,
    wakers: HashMap<u64, Waker>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            shared: Arc::new(Shared {
                now: AtomicU64::new(start_ms),
                waiters: Mutex::default(),
            }),
        }
    }

    /// Moves the clock forward by `ms` and wakes the sleeps that are now due.
    pub fn advance(&self, ms: u64) {
        let _ = self
            .shared
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
        self.wake_all();
    }

    /// Sets the clock to `ms` and wakes the sleeps that are now due.
    pub fn set(&self, ms: u64) {
        self.shared.now.store(ms, Ordering::SeqCst);
        self.wake_all();
    }

    /// Every pending sleep re-checks the time (those not yet due register again).
    fn wake_all(&self) {
        let wakers: Vec<Waker> = {
            let mut waiters = self.shared.lock();
            waiters.wakers.drain().map(|(_, w)| w).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.shared.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, ms: u64) -> Sleep {
        Box::pin(ManualSleep {
            shared: Arc::clone(&self.shared),
            until: ms,
            id: None,
        })
    }
}

/// A pending [`ManualClock`] sleep.
struct ManualSleep {
    shared: Arc<Shared>,
    until: u64,
    /// Its key among the waiters once registered.
    id: Option<u64>,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shared.now.load(Ordering::SeqCst) >= this.until {
            return Poll::Ready(());
        }
        {
            let mut waiters = this.shared.lock();
            let id = *this.id.get_or_insert_with(|| {
                waiters.next_id += 1;
                waiters.next_id
            });
            waiters.wakers.insert(id, cx.waker().clone());
        }
        // The clock may have moved between the first check and the registration (its
        // wake-up then found no waker of ours): check again.
        if this.shared.now.load(Ordering::SeqCst) >= this.until {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.lock().wakers.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waker that counts its wake-ups.
    struct Counter(AtomicU64);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(sleep: &mut Sleep, counter: &Arc<Counter>) -> Poll<()> {
        let waker = Waker::from(Arc::clone(counter));
        sleep.as_mut().poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_manual_sleep_wakes_only_once_the_clock_reaches_its_time() {
        let clock = ManualClock::new(1_000);
        let counter = Arc::new(Counter(AtomicU64::new(0)));
        let mut sleep = clock.sleep_until(1_500);
        assert!(poll(&mut sleep, &counter).is_pending());
        clock.advance(499);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken to re-check");
        assert!(poll(&mut sleep, &counter).is_pending(), "not due at 1499");
        clock.advance(1);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert!(poll(&mut sleep, &counter).is_ready());
    }

    #[test]
    fn a_past_time_is_ready_at_once_and_set_wakes_too() {
        let clock = ManualClock::new(5_000);
        let counter = Arc::new(Counter(AtomicU64::new(0)));
        assert!(poll(&mut clock.sleep_until(5_000), &counter).is_ready());
        let mut later = clock.clone().sleep_until(9_000);
        assert!(poll(&mut later, &counter).is_pending());
        clock.set(10_000);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut later, &counter).is_ready());
    }

    #[test]
    fn a_dropped_sleep_leaves_no_waker_behind() {
        let clock = ManualClock::new(0);
        let counter = Arc::new(Counter(AtomicU64::new(0)));
        let mut sleep = clock.sleep_until(10);
        assert!(poll(&mut sleep, &counter).is_pending());
        assert!(poll(&mut sleep, &counter).is_pending());
        assert_eq!(clock.shared.lock().wakers.len(), 1, "re-polling replaces");
        drop(sleep);
        assert!(clock.shared.lock().wakers.is_empty());
        clock.advance(10);
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn a_manual_clock_wakes_a_sleeping_task() {
        let clock = ManualClock::new(1_000);
        let sleeper = tokio::spawn(clock.sleep_until(2_000));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(999);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "one ms short");
        clock.advance(1);
        sleeper
            .await
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(clock.now_ms(), 2_000);
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let clock = TokioClock::new();
        let start = clock.now_ms();
        let sleeper = tokio::spawn(clock.sleep_until(start + 1_500));
        tokio::time::advance(std::time::Duration::from_millis(1_499)).await;
        assert!(!sleeper.is_finished());
        assert_eq!(clock.now_ms(), start + 1_499);
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        sleeper
            .await
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(clock.now_ms(), start + 1_500);
    }
}
