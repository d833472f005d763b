//! JSON value helpers shared by filters, indexes, sorting and aggregates: field paths,
//! numeric-aware equality and ordering, the total order used by sorting, the canonical
//! key encodings used by maps and `groupBy`, and the JSON size walk behind
//! `max_result_bytes`.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// A stored record: field name → value, metadata fields included.
pub type Record = Map<String, Value>;

/// Reads `path` from a record; a dotted path walks into nested objects.
pub(crate) fn get_path<'a>(record: &'a Record, path: &str) -> Option<&'a Value> {
    if let Some(v) = record.get(path) {
        return Some(v);
    }
    if !path.contains('.') {
        return None;
    }
    let mut parts = path.split('.');
    let mut cur = record.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

pub(crate) use noex_model::json::json_eq;

/// Ordering between two numbers or two strings; `None` for any other pair.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Canonical text of a scalar (used by indexes and unique constraints); `None` for
/// objects and arrays, which are never indexed.
pub(crate) fn scalar_key(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("z".to_owned()),
        Value::Bool(b) => Some(format!("b:{b}")),
        Value::Number(n) => Some(format!("n:{}", n.as_f64().unwrap_or(0.0))),
        Value::String(s) => Some(format!("s:{s}")),
        _ => None,
    }
}

/// Canonical text of a record key (any JSON value). Keys are identified exactly: two
/// numbers are one key only when they are the same number (`1` and `1.0`, `0` and `-0`),
/// so integers past 2^53 or near the ends of the 64-bit range never share a record, as
/// they would if compared as floats.
pub(crate) fn key_string(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("n:{}", exact_number(n)),
        _ => scalar_key(v).unwrap_or_else(|| format!("j:{v}")),
    }
}

/// A number's exact value as text: integers (and floats holding an integer of at most
/// 64 bits' magnitude, which convert exactly) in decimal, other floats as `f64` prints
/// them (the same text [`scalar_key`] gives, so keys stored before stay the same).
fn exact_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let x = n.as_f64().unwrap_or(0.0);
    // An integral float below 2^64 in magnitude is exactly an `i128`.
    if x.fract() == 0.0 && x.abs() < 18_446_744_073_709_551_616.0 {
        return (x as i128).to_string();
    }
    x.to_string()
}

/// Whether a record with `_expiresAt` is expired at `now` (ms).
pub(crate) fn is_expired(record: &Record, now: u64) -> bool {
    record
        .get("_expiresAt")
        .and_then(Value::as_u64)
        .is_some_and(|t| t <= now)
}

/// Rank of a value's kind in the sort order: booleans, numbers, strings, arrays, objects;
/// `null` (only met inside arrays and objects) ranks after everything.
fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// A total order over JSON values, consistent with [`json_eq`] (`total_cmp(a, b)` is
/// `Equal` exactly when `json_eq(a, b)`):
///
/// - values of different kinds order by kind: boolean < number < string < array < object
///   < null;
/// - booleans: `false < true`; numbers by value (`1 == 1.0`, `-0 == 0`); strings by their
///   UTF-8 bytes; arrays element by element, a prefix first; objects as their entries
///   sorted by key, compared entry by entry (key, then value), a prefix first.
pub(crate) fn total_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            // serde_json numbers are never NaN, so `partial_cmp` always answers.
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = total_cmp(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let (xs, ys) = (sorted_entries(x), sorted_entries(y));
            for ((kx, vx), (ky, vy)) in xs.iter().zip(&ys) {
                let o = kx.cmp(ky).then_with(|| total_cmp(vx, vy));
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => kind_rank(a).cmp(&kind_rank(b)),
    }
}

/// An object's entries in key order.
fn sorted_entries(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_unstable_by(|p, q| p.0.cmp(q.0));
    entries
}

/// Appends a canonical encoding of `v` to `out`: two values get the same encoding exactly
/// when [`json_eq`] holds (numbers by value, object entries in key order). `out` is a
/// `String` (the `$in` set's keys) or a [`KeyHasher`] (group keys, hashed as they are
/// encoded, so no copy of a large key is made).
pub(crate) fn canonical_key(v: &Value, out: &mut impl std::fmt::Write) {
    match v {
        Value::Null => {
            let _ = out.write_char('z');
        }
        Value::Bool(b) => {
            let _ = out.write_char(if *b { 't' } else { 'f' });
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            // `-0.0 == 0.0`: one encoding for both.
            let x = if x == 0.0 { 0.0 } else { x };
            let _ = write!(out, "n{x:?};");
        }
        Value::String(s) => {
            let _ = write!(out, "s{}:", s.len());
            let _ = out.write_str(s);
        }
        Value::Array(items) => {
            let _ = write!(out, "a{}:", items.len());
            for item in items {
                canonical_key(item, out);
            }
        }
        Value::Object(m) => {
            let entries = sorted_entries(m);
            let _ = write!(out, "o{}:", entries.len());
            for (k, v) in entries {
                let _ = write!(out, "{}:", k.len());
                let _ = out.write_str(k);
                canonical_key(v, out);
            }
        }
    }
}

/// Hashes the text written to it: [`canonical_key`] into a [`KeyHasher`] gives equal
/// hashes for [`json_eq`]-equal values without building the text.
pub(crate) struct KeyHasher<H>(pub H);

impl<H: std::hash::Hasher> std::fmt::Write for KeyHasher<H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

pub use noex_model::json::json_size_within;

/// Estimated bytes of memory `v` takes: the `Value` plus its heap data (the one estimate
/// shared with the rule engine, `noex_model::json::memory_size_within`). Approximate
/// (allocator overhead and the map's spare slots are not counted), but of the right order
/// for any shape, unlike the size of its JSON.
pub fn memory_size(v: &Value) -> usize {
    noex_model::json::memory_size_within(v, usize::MAX)
}

/// [`memory_size`] of a record (an object).
pub(crate) fn record_memory_size(record: &Record) -> usize {
    noex_model::json::object_memory_size_within(record, usize::MAX)
}

/// The running size of a result being collected, against the store's
/// `max_result_bytes`: every item is measured before it is cloned into the result.
pub(crate) struct ResultBudget {
    limit: usize,
    used: usize,
}

impl ResultBudget {
    /// An empty result allowed `limit` bytes of JSON.
    pub fn new(limit: usize) -> Self {
        ResultBudget { limit, used: 0 }
    }

    /// Errors with `ResultTooLarge` unless `values` together fit in what is left, measuring
    /// each only as far as the room reaches: checked before large values are copied into
    /// a result item.
    pub fn check_fits<'a>(
        &self,
        values: impl IntoIterator<Item = &'a Value>,
    ) -> crate::error::StoreResult<()> {
        let mut room = self.limit.saturating_sub(self.used);
        for v in values {
            match json_size_within(v, room) {
                Some(n) => room = room.saturating_sub(n),
                None => return Err(crate::error::StoreError::ResultTooLarge { limit: self.limit }),
            }
        }
        Ok(())
    }

    /// Adds one item of a JSON array (its text plus a separator); errors with
    /// `ResultTooLarge` once the total passes the limit.
    pub fn add(&mut self, item: &impl serde::Serialize) -> crate::error::StoreResult<()> {
        let room = self.limit.saturating_sub(self.used);
        let size = json_size_within(item, room);
        self.used = size.map_or(usize::MAX, |n| self.used.saturating_add(n + 1));
        if self.used > self.limit {
            return Err(crate::error::StoreError::ResultTooLarge { limit: self.limit });
        }
        Ok(())
    }
}

/// Size of a record: the larger of its bytes of JSON and its estimated size in memory
/// ([`memory_size`]); what `max_record_bytes` and `max_store_bytes` count.
/// A record of small numbers takes about 30 times its JSON in memory, so JSON alone
/// would let a store hold far more memory than its limit says.
pub(crate) fn record_bytes(record: &Record) -> usize {
    let json = json_size_within(record, usize::MAX).unwrap_or(usize::MAX);
    json.max(record_memory_size(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Any JSON value, small: every kind, equal numbers written as integers and floats.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            (-3i64..3).prop_map(|n| json!(n as f64)),
            (-3i64..3).prop_map(|n| json!(n as f64 + 0.5)),
            prop::sample::select(vec!["", "a", "ab", "B", "é"]).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), inner), 0..3)
                    .prop_map(|entries| {
                        Value::Object(
                            entries
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v))
                                .collect(),
                        )
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn total_cmp_is_antisymmetric_and_agrees_with_equality(a in value(), b in value()) {
            prop_assert_eq!(total_cmp(&a, &b), total_cmp(&b, &a).reverse());
            prop_assert_eq!(total_cmp(&a, &b) == Ordering::Equal, json_eq(&a, &b));
            let (mut ka, mut kb) = (String::new(), String::new());
            canonical_key(&a, &mut ka);
            canonical_key(&b, &mut kb);
            prop_assert_eq!(ka == kb, json_eq(&a, &b));
        }

        #[test]
        fn total_cmp_is_transitive(a in value(), b in value(), c in value()) {
            let mut v = [a, b, c];
            v.sort_by(total_cmp);
            prop_assert_ne!(total_cmp(&v[0], &v[1]), Ordering::Greater);
            prop_assert_ne!(total_cmp(&v[1], &v[2]), Ordering::Greater);
            prop_assert_ne!(total_cmp(&v[0], &v[2]), Ordering::Greater);
        }

        #[test]
        fn sorting_mixed_values_never_panics(mut vs in prop::collection::vec(value(), 0..64)) {
            vs.sort_by(total_cmp);
            for w in vs.windows(2) {
                prop_assert_ne!(total_cmp(&w[0], &w[1]), Ordering::Greater);
            }
        }

        #[test]
        fn size_walk_is_the_json_length(v in value()) {
            let n = v.to_string().len();
            prop_assert_eq!(json_size_within(&v, n), Some(n));
            if n > 0 {
                prop_assert_eq!(json_size_within(&v, n - 1), None);
            }
        }
    }

    #[test]
    fn kinds_order_as_documented() {
        let sorted = [
            json!(false),
            json!(true),
            json!(-1),
            json!(1),
            json!(1.5),
            json!("B"),
            json!("a"),
            json!([]),
            json!([1]),
            json!([1, 2]),
            json!([2]),
            json!({}),
            json!({"a": 1}),
            json!({"b": 0}),
            Value::Null,
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(total_cmp(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert_eq!(total_cmp(&json!(1), &json!(1.0)), Ordering::Equal);
        assert_eq!(total_cmp(&json!(-0.0), &json!(0)), Ordering::Equal);
        assert_eq!(
            total_cmp(&json!({"a": 1, "b": 2}), &json!({"b": 2.0, "a": 1})),
            Ordering::Equal
        );
    }

    #[test]
    fn record_keys_are_exact_numbers() {
        let same = [
            (json!(1), json!(1.0)),
            (json!(0), json!(-0.0)),
            (
                json!(9_007_199_254_740_992u64),
                json!(9_007_199_254_740_992.0),
            ),
            (json!(-5), json!(-5.0)),
        ];
        for (a, b) in same {
            assert_eq!(key_string(&a), key_string(&b), "{a} {b}");
        }
        let distinct = [
            (
                json!(9_007_199_254_740_992u64),
                json!(9_007_199_254_740_993u64),
            ),
            (json!(u64::MAX), json!(u64::MAX - 1)),
            (json!(i64::MIN), json!(i64::MIN + 1)),
            (json!(1), json!("1")),
            (json!(1.5), json!(1)),
        ];
        for (a, b) in distinct {
            assert_ne!(key_string(&a), key_string(&b), "{a} {b}");
        }
        // Keys of ordinary numbers read as before.
        assert_eq!(key_string(&json!(42)), "n:42");
        assert_eq!(key_string(&json!(1.5)), "n:1.5");
    }

    #[test]
    fn memory_size_counts_small_numbers_by_their_value_size() {
        // The red team's record: 99 000 zeros are 198 KB of JSON but one `Value` each.
        let zeros = Value::Array(vec![json!(0); 99_000]);
        let record = json!({"id": 1, "z": zeros});
        let json_len = serde_json::to_string(&record).map(|s| s.len()).unwrap_or(0);
        let mem = memory_size(&record);
        assert!(mem >= 99_000 * std::mem::size_of::<Value>(), "{mem}");
        assert!(mem > 10 * json_len, "{mem} vs {json_len}");
        let Value::Object(map) = &record else {
            unreachable!()
        };
        assert_eq!(record_memory_size(map), mem);
        assert!(super::record_bytes(map) == mem);
        // A long string costs about its length either way.
        let text = json!({"s": "x".repeat(100_000)});
        assert!(memory_size(&text) < 100_000 + 1_000);
        assert!(memory_size(&text) >= 100_000);
    }

    #[test]
    fn a_budget_stops_at_the_limit() {
        let r = json!({"x": "0123456789"}); // 16 bytes
        let mut budget = ResultBudget::new(40);
        assert!(budget.add(&r).is_ok());
        assert!(budget.add(&r).is_ok());
        assert_eq!(
            budget.add(&r),
            Err(crate::error::StoreError::ResultTooLarge { limit: 40 })
        );
    }
}
