//! The bounds of one input: an emitted event, a fact change, a fired timer or an expired
//! absence wait, together with everything its rules cause (the *cascade*).
//!
//! A [`Budget`] is charged as the cascade runs:
//!
//! - **work units** ([`crate::EngineConfig::max_work_per_input`]): one per work item queued
//!   (event, fact change; the input itself is the first), one per rule whose conditions are
//!   evaluated, one per action executed and one per `for_each` iteration. Counting what is
//!   *queued* (not only what was handled) bounds the queue; counting rule runs, actions and
//!   iterations bounds the time one input takes.
//! - **bytes** ([`crate::EngineConfig::max_queued_bytes_per_input`]): the approximate size of
//!   every value rule actions produce for the input — event data, fact values (and the
//!   replaced value a fact change carries), timer data, interpolated strings, `for_each`
//!   collections. It is charged *before* a value is copied and never refunded, so it bounds
//!   both the memory the cascade holds and the copying it does, even when a rule multiplies
//!   a large value by referring to it many times.
//! - **scanned bytes** ([`crate::EngineConfig::max_scanned_bytes_per_input`]): what rule
//!   conditions look at — a fixed [`SCAN_BASE_BYTES`] per condition, plus the haystack and
//!   needle of a string `contains` / `not_contains` / `matches`, the compared values of an
//!   `eq` / `neq` / `in` / `not_in` / array `contains` over arrays and objects (measured only
//!   as far as the budget reaches), the strings an ordering compares, and the fact keys a
//!   wildcard fact lookup passes. Charged *before* the comparison, so a condition over the
//!   bound is not evaluated: the time conditions take is bounded, not only their count.
//!
//! Once a bound is reached the budget is *tripped*: every later charge fails, the action that
//! hit it does not run, and the runner drops the rest of the cascade (see `runner`).

use serde_json::Value;

/// Which bound stopped a cascade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// `max_work_per_input`.
    Work,
    /// `max_queued_bytes_per_input`.
    Bytes,
    /// `max_scanned_bytes_per_input`.
    Scan,
}

impl Bound {
    /// The name of the setting, for log messages.
    pub(crate) fn setting(self) -> &'static str {
        match self {
            Bound::Work => "max_work_per_input",
            Bound::Bytes => "max_queued_bytes_per_input",
            Bound::Scan => "max_scanned_bytes_per_input",
        }
    }
}

/// Why an action (or the evaluation it needs) did not complete.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// The action failed: counted in `action_errors`, stops the rule, `try_catch` catches it.
    Failed(String),
    /// A bound of the input was reached: nothing catches it, the cascade stops.
    Bound,
}

impl From<String> for Fault {
    fn from(message: String) -> Self {
        Fault::Failed(message)
    }
}

/// What one input may still use.
#[derive(Debug)]
pub(crate) struct Budget {
    max_work: usize,
    max_bytes: usize,
    max_scan: usize,
    work: usize,
    bytes: usize,
    scanned: usize,
    tripped: Option<Bound>,
}

impl Budget {
    /// A fresh budget of `max_work` units, `max_bytes` produced and `max_scan` scanned
    /// (an [`crate::EngineConfig`]'s bounds: `EngineConfig::budget`).
    pub(crate) fn new(max_work: usize, max_bytes: usize, max_scan: usize) -> Self {
        Self {
            max_work,
            max_bytes,
            max_scan,
            work: 0,
            bytes: 0,
            scanned: 0,
            tripped: None,
        }
    }

    /// A budget nothing exhausts (unit tests of evaluation).
    #[cfg(test)]
    pub(crate) fn unlimited() -> Self {
        Self {
            max_work: usize::MAX,
            max_bytes: usize::MAX,
            max_scan: usize::MAX,
            work: 0,
            bytes: 0,
            scanned: 0,
            tripped: None,
        }
    }

    /// The bound that was reached, if one was.
    pub(crate) fn tripped(&self) -> Option<Bound> {
        self.tripped
    }

    /// Work units used so far.
    pub(crate) fn work_used(&self) -> usize {
        self.work
    }

    /// Bytes charged so far.
    pub(crate) fn bytes_used(&self) -> usize {
        self.bytes
    }

    /// Bytes scanned by conditions so far.
    pub(crate) fn scanned(&self) -> usize {
        self.scanned
    }

    /// Scanned bytes that may still be charged.
    pub(crate) fn scan_left(&self) -> usize {
        self.max_scan.saturating_sub(self.scanned)
    }

    /// Charges `n` scanned bytes (before the scan is made).
    pub(crate) fn scan(&mut self, n: usize) -> Result<(), Fault> {
        if self.tripped.is_some() || n > self.scan_left() {
            return Err(self.trip(Bound::Scan));
        }
        self.scanned += n;
        Ok(())
    }

    fn trip(&mut self, bound: Bound) -> Fault {
        self.tripped.get_or_insert(bound);
        Fault::Bound
    }

    /// Charges one work unit.
    pub(crate) fn unit(&mut self) -> Result<(), Fault> {
        if self.tripped.is_some() || self.work >= self.max_work {
            return Err(self.trip(Bound::Work));
        }
        self.work += 1;
        Ok(())
    }

    /// Bytes that may still be charged.
    pub(crate) fn bytes_left(&self) -> usize {
        self.max_bytes.saturating_sub(self.bytes)
    }

    /// Charges `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<(), Fault> {
        if self.tripped.is_some() || n > self.bytes_left() {
            return Err(self.trip(Bound::Bytes));
        }
        self.bytes += n;
        Ok(())
    }

    /// Charges the approximate size of `value`, measured only as far as the budget reaches
    /// (so a value far too large costs no more time to refuse than the budget itself).
    pub(crate) fn value(&mut self, value: &Value) -> Result<(), Fault> {
        if self.tripped.is_some() {
            return Err(Fault::Bound);
        }
        let left = self.bytes_left();
        let size = approx_bytes(value, left);
        self.bytes(size)
    }
}

/// Scanned bytes every evaluated condition costs on top of what it compares (resolving its
/// operands, the comparison itself): thousands of cheap conditions count too.
pub(crate) const SCAN_BASE_BYTES: usize = 64;

/// The approximate heap and inline size of `value` in bytes, counted until it exceeds `cap`
/// (the result is then some number above `cap`): the one estimate the store uses too.
pub(crate) use noex_model::json::memory_size_within as approx_bytes;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_grow_with_content_and_stop_at_the_cap() {
        let small = approx_bytes(&json!({"a": 1}), usize::MAX);
        let big = approx_bytes(&json!({"a": "x".repeat(1000)}), usize::MAX);
        assert!(big >= small + 1000, "{small} {big}");
        let items: Vec<u32> = (0..10_000).collect();
        let full = approx_bytes(&json!(items), usize::MAX);
        assert!(full >= 10_000 * std::mem::size_of::<Value>());
        let capped = approx_bytes(&json!(items), 100);
        assert!(capped > 100);
        assert_eq!(approx_bytes(&Value::Null, 0), std::mem::size_of::<Value>());
    }

    #[test]
    fn deep_nesting_is_measured_without_recursion() {
        let mut v = json!(0);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert!(approx_bytes(&v, usize::MAX) > 100_000);
        // Dropping a value this deep recurses in serde_json; unnest it by hand.
        let mut v = v;
        while let Value::Array(mut items) = v {
            v = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn a_tripped_budget_refuses_everything() {
        let fresh = || Budget::new(2, 100, usize::MAX);
        let mut budget = fresh();
        assert_eq!(budget.unit(), Ok(()));
        assert_eq!(budget.unit(), Ok(()));
        assert_eq!(budget.unit(), Err(Fault::Bound));
        assert_eq!(budget.tripped(), Some(Bound::Work));
        assert_eq!(budget.bytes(1), Err(Fault::Bound));
        assert_eq!(budget.tripped(), Some(Bound::Work));

        let mut budget = fresh();
        assert_eq!(budget.bytes(60), Ok(()));
        assert_eq!(budget.value(&json!("x".repeat(100))), Err(Fault::Bound));
        assert_eq!(budget.tripped(), Some(Bound::Bytes));
        assert_eq!(budget.unit(), Err(Fault::Bound));

        let mut budget = Budget::new(usize::MAX, usize::MAX, 100);
        assert_eq!(budget.scan(100), Ok(()));
        assert_eq!(budget.scan_left(), 0);
        assert_eq!(budget.scan(1), Err(Fault::Bound));
        assert_eq!(budget.tripped(), Some(Bound::Scan));
        assert_eq!(Bound::Scan.setting(), "max_scanned_bytes_per_input");
        assert_eq!(budget.unit(), Err(Fault::Bound));
    }
}
