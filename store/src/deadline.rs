//! A time budget for reads on the current thread: [`with_read_deadline`] runs a closure
//! during which every filter test first checks the clock (every few records); once the
//! deadline has passed, every further test fails fast, and the read that ran them answers
//! [`StoreError::ReadTimeout`] instead of a partial result (a transaction rolls back, a
//! subscription is not created). Outside [`with_read_deadline`] reads are unbounded.
//!
//! Thread-local, because a read runs on the one thread that called it: the server sets a
//! deadline around each heavy read it runs on its blocking pool, so one client's long scan
//! gives the shared heavy-read slot back after the configured time.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::error::{StoreError, StoreResult};

/// Filter tests between two clock reads: a clock read costs about as much as a cheap
/// test, and a record (at most `max_record_bytes`) takes well under a millisecond.
const CHECK_EVERY: u32 = 8;

#[derive(Clone, Copy)]
struct Budget {
    deadline: Instant,
    limit: Duration,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
    static EXPIRED: Cell<bool> = const { Cell::new(false) };
    static TICKS: Cell<u32> = const { Cell::new(0) };
}

/// Runs `read` with a time budget of `limit` from now on this thread (see the module
/// docs). Nested calls keep the earlier deadline of the two.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), noex_store::StoreError> {
/// use noex_store::{BucketDefinition, Store, StoreConfig, StoreError, with_read_deadline};
/// use serde_json::json;
/// use std::time::Duration;
/// let store = Store::start(StoreConfig::default())?;
/// store.define_bucket("notes", BucketDefinition::from_json(json!({
///     "key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}, "text": {"type": "string"}}
/// }))?)?;
/// let notes = store.bucket("notes");
/// notes.insert(json!({"text": "hello"}).as_object().unwrap().clone())?;
/// let filter = json!({"text": {"$contains": "ell"}});
/// let filter = filter.as_object().unwrap();
/// // A budget of nothing: the first filter test finds the deadline passed.
/// let late = with_read_deadline(Duration::ZERO, || notes.where_(filter));
/// assert!(matches!(late, Err(StoreError::ReadTimeout { limit_ms: 0 })));
/// // With time to spare the same read answers.
/// assert_eq!(with_read_deadline(Duration::from_secs(5), || notes.where_(filter))?.len(), 1);
/// # Ok(()) }
/// ```
pub fn with_read_deadline<T>(limit: Duration, read: impl FnOnce() -> T) -> T {
    let now = Instant::now();
    let mine = Budget {
        // A limit too far to represent is no deadline in practice: a year.
        deadline: now
            .checked_add(limit)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365)),
        limit,
    };
    let outer = BUDGET.get();
    let outer_expired = EXPIRED.get();
    let budget = match outer {
        Some(o) if o.deadline <= mine.deadline => o,
        _ => mine,
    };
    BUDGET.set(Some(budget));
    EXPIRED.set(outer_expired);
    TICKS.set(0);
    /// Restores the outer budget even if `read` unwinds (an outer deadline that passed
    /// meanwhile is noticed again at its next clock read).
    struct Restore(Option<Budget>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.set(self.0);
            EXPIRED.set(self.1);
        }
    }
    let _restore = Restore(outer, outer_expired);
    read()
}

/// Called before each filter test: `false` once the current deadline has passed (the
/// test then fails without running).
#[inline]
pub(crate) fn tick() -> bool {
    let Some(budget) = BUDGET.get() else {
        return true;
    };
    if EXPIRED.get() {
        return false;
    }
    let ticks = TICKS.get().wrapping_add(1);
    TICKS.set(ticks);
    if ticks % CHECK_EVERY == 1 && Instant::now() >= budget.deadline {
        EXPIRED.set(true);
        return false;
    }
    true
}

/// `Err(ReadTimeout)` when the current deadline has passed: called where a read has run
/// its filter tests, before it answers (or a transaction commits).
pub(crate) fn check() -> StoreResult<()> {
    match BUDGET.get() {
        Some(budget) if EXPIRED.get() => Err(StoreError::ReadTimeout {
            limit_ms: u64::try_from(budget.limit.as_millis()).unwrap_or(u64::MAX),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_deadline_nothing_expires() {
        for _ in 0..100 {
            assert!(tick());
        }
        assert!(check().is_ok());
    }

    #[test]
    fn a_passed_deadline_fails_the_tests_and_the_check() {
        let outcome = with_read_deadline(Duration::ZERO, || {
            let first = tick();
            (first, tick(), check())
        });
        assert!(!outcome.0 && !outcome.1);
        assert!(matches!(
            outcome.2,
            Err(StoreError::ReadTimeout { limit_ms: 0 })
        ));
        // The budget ends with the closure.
        assert!(tick() && check().is_ok());
    }

    #[test]
    fn a_generous_deadline_lets_reads_finish() {
        let ok = with_read_deadline(Duration::from_secs(60), || {
            (0..1000).all(|_| tick()) && check().is_ok()
        });
        assert!(ok);
    }

    #[test]
    fn nested_deadlines_keep_the_earlier() {
        let inner = with_read_deadline(Duration::ZERO, || {
            with_read_deadline(Duration::from_secs(60), || {
                tick();
                check()
            })
        });
        assert!(inner.is_err());
    }
}
