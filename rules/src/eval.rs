//! Evaluation context of one rule run: `${...}` interpolation, `{ref}` resolution and
//! condition operators.
//!
//! References: `event.<path>` / `trigger.<path>` (trigger event data), `fact.<key>` (a fact's
//! value; the key is everything after `fact.`), `context.<name>[.<path>]` / `var.<name>[.<path>]`
//! (context variables), `matched.<i>.<path>` (events of a temporal match).

use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

use crate::budget::{Budget, Fault, SCAN_BASE_BYTES, approx_bytes};
use crate::facts::FactStore;
use crate::model::{Condition, ConditionSource, Operator};
use crate::pattern::get_path;

/// Everything a rule run can refer to. Cloning is cheap for the trigger data (shared), so a
/// context can be handed to every candidate rule of a work item.
#[derive(Debug, Clone, Default)]
pub(crate) struct EvalContext {
    /// Data of the triggering event (or the fact change / timer payload).
    pub trigger_data: Arc<Value>,
    /// Context variables.
    pub vars: Map<String, Value>,
    /// Data of the events of a temporal match, in order.
    pub matched: Vec<Value>,
}

fn interpolation_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\$\{([^}]+)\}").unwrap_or_else(|_| unreachable!("static regex")))
}

/// Bytes charged for one JSON node a resolution builds.
const NODE_BYTES: usize = std::mem::size_of::<Value>();

/// Appends the text of `value` as interpolation shows it (null is empty, strings unquoted).
fn push_display(out: &mut String, value: &Value) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

impl EvalContext {
    /// The value a reference string points at, borrowed (`None` when it points at nothing).
    pub(crate) fn lookup<'s>(
        &'s self,
        reference: &str,
        facts: &'s FactStore,
    ) -> Result<Option<&'s Value>, String> {
        let reference = reference.trim();
        let (root, rest) = reference.split_once('.').unwrap_or((reference, ""));
        match root {
            "event" | "trigger" => Ok(get_path(&self.trigger_data, rest)),
            "fact" => Ok(facts.get(rest).map(|f| &f.value)),
            "context" | "var" => {
                let (name, path) = rest.split_once('.').unwrap_or((rest, ""));
                Ok(self.vars.get(name).and_then(|v| get_path(v, path)))
            }
            "matched" => {
                let (index, path) = rest.split_once('.').unwrap_or((rest, ""));
                let index: usize = index
                    .parse()
                    .map_err(|_| format!("invalid matched index in {reference:?}"))?;
                Ok(self.matched.get(index).and_then(|v| get_path(v, path)))
            }
            _ => Err(format!(
                "unknown reference source {root:?} in {reference:?} (expected event, fact, context, var, matched)"
            )),
        }
    }

    /// A copy of the referenced value, its size charged to `budget` before it is made.
    pub(crate) fn resolve_ref(
        &self,
        reference: &str,
        facts: &FactStore,
        budget: &mut Budget,
    ) -> Result<Option<Value>, Fault> {
        match self.lookup(reference, facts)? {
            None => Ok(None),
            Some(v) => {
                budget.value(v)?;
                Ok(Some(v.clone()))
            }
        }
    }

    /// Replaces every `${ref}` in `template` by the referenced value's text (missing = empty).
    /// The template and every inserted value are charged to `budget` before they are copied.
    pub(crate) fn interpolate(
        &self,
        template: &str,
        facts: &FactStore,
        budget: &mut Budget,
    ) -> Result<String, Fault> {
        budget.bytes(template.len())?;
        if !template.contains("${") {
            return Ok(template.to_string());
        }
        let mut out = String::with_capacity(template.len());
        let mut last = 0;
        for caps in interpolation_regex().captures_iter(template) {
            let (Some(whole), Some(inner)) = (caps.get(0), caps.get(1)) else {
                continue;
            };
            out.push_str(&template[last..whole.start()]);
            if let Some(v) = self.lookup(inner.as_str(), facts)? {
                budget.value(v)?;
                push_display(&mut out, v);
            }
            last = whole.end();
        }
        out.push_str(&template[last..]);
        Ok(out)
    }

    /// Resolves a value deeply: `{ref}` objects are replaced by the referenced value (type
    /// preserved, missing = null) and strings are interpolated. Everything built is charged
    /// to `budget` first.
    pub(crate) fn resolve_value(
        &self,
        value: &Value,
        facts: &FactStore,
        budget: &mut Budget,
    ) -> Result<Value, Fault> {
        if let Some(r) = as_ref(value) {
            return Ok(self.resolve_ref(r, facts, budget)?.unwrap_or(Value::Null));
        }
        budget.bytes(NODE_BYTES)?;
        Ok(match value {
            Value::String(s) => Value::String(self.interpolate(s, facts, budget)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_value(v, facts, budget))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    budget.bytes(k.len() + NODE_BYTES)?;
                    out.insert(k.clone(), self.resolve_value(v, facts, budget)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Evaluates one condition. Values are compared where they are, not copied. What the
    /// comparison looks at is charged to `budget`'s scanned bytes first (see
    /// [`scan_cost`]), so a condition over the bound is not evaluated.
    pub(crate) fn condition_holds(
        &self,
        condition: &Condition,
        facts: &FactStore,
        budget: &mut Budget,
    ) -> Result<bool, Fault> {
        budget.scan(SCAN_BASE_BYTES)?;
        let left = match &condition.source {
            ConditionSource::Event { field } => get_path(&self.trigger_data, field),
            ConditionSource::Fact { pattern } => {
                let key = self.interpolate(pattern, facts, budget)?;
                facts.first_value_scanned(&key, budget)?
            }
            ConditionSource::Context { key } => {
                let (name, path) = key.split_once('.').unwrap_or((key.as_str(), ""));
                self.vars.get(name).and_then(|v| get_path(v, path))
            }
        };
        let right = match as_ref(&condition.value) {
            Some(r) => self.lookup(r, facts)?,
            None => Some(&condition.value),
        };
        let cost = scan_cost(condition.operator, left, right, budget.scan_left());
        budget.scan(cost)?;
        // A pattern not compiled yet (taken from event data, say) costs its compile too.
        if condition.operator == Operator::Matches
            && let (Some(Value::String(_)), Some(Value::String(pattern))) = (left, right)
            && !regex_is_cached(pattern)
        {
            budget.scan(REGEX_COMPILE_SCAN_BYTES)?;
        }
        Ok(apply_operator(condition.operator, left, right)?)
    }

    /// Whether all conditions hold (stops at the first that does not).
    pub(crate) fn all_hold(
        &self,
        conditions: &[Condition],
        facts: &FactStore,
        budget: &mut Budget,
    ) -> Result<bool, Fault> {
        for c in conditions {
            if !self.condition_holds(c, facts, budget)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The reference string when `value` is `{ref: "..."}` (a one-key object).
pub(crate) fn as_ref(value: &Value) -> Option<&str> {
    match value {
        Value::Object(m) if m.len() == 1 => m.get("ref").and_then(Value::as_str),
        _ => None,
    }
}

pub(crate) use noex_model::json::json_eq;

fn ordering(a: Option<&Value>, b: Option<&Value>) -> Option<std::cmp::Ordering> {
    match (a?, b?) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Bound on the compiled size of a `matches` regex (rule data is client input). At it a
/// compile takes a few milliseconds; at the regex crate's default (10 MiB), or even 1 MiB,
/// tens of milliseconds, and the cache below could hold a gigabyte. Literal patterns over
/// it are refused when the rule is registered.
pub(crate) const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Most compiled regexes kept; the cache is emptied when full. With [`REGEX_SIZE_LIMIT`]
/// it holds at most 64 MiB.
const REGEX_CACHE_SIZE: usize = 256;
/// Scanned bytes a `matches` condition is charged when its pattern is not compiled yet
/// (a pattern taken from event data, a cache emptied by many patterns): a quarter of the
/// default `max_scanned_bytes_per_input`, so one input compiles at most four patterns,
/// while patterns already compiled cost nothing extra.
pub(crate) const REGEX_COMPILE_SCAN_BYTES: usize = 4 * 1024 * 1024;

fn regex_cache() -> &'static parking_lot::Mutex<std::collections::HashMap<String, Regex>> {
    static CACHE: OnceLock<parking_lot::Mutex<std::collections::HashMap<String, Regex>>> =
        OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Whether `pattern` is compiled already (a `matches` on it costs no compile).
pub(crate) fn regex_is_cached(pattern: &str) -> bool {
    regex_cache().lock().contains_key(pattern)
}

/// Compiles `pattern` within [`REGEX_SIZE_LIMIT`] (what registration checks too).
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Compiles a `matches` pattern once and reuses it (rules evaluate the same pattern per event).
fn cached_regex(pattern: &str) -> Result<Regex, String> {
    let cache = regex_cache();
    if let Some(re) = cache.lock().get(pattern) {
        return Ok(re.clone());
    }
    let re = compile_regex(pattern)
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))?;
    let mut cache = cache.lock();
    if cache.len() >= REGEX_CACHE_SIZE {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

/// The scanned bytes `op` looks at to compare `left` with `right` (beyond the base every
/// condition costs), measured only as far as `cap` (a result over `cap` means "too much").
/// Strings count their bytes where they are searched or compared; arrays and objects their
/// approximate size in memory, the needle of an array `contains` or an `in` list included.
pub(crate) fn scan_cost(
    op: Operator,
    left: Option<&Value>,
    right: Option<&Value>,
    cap: usize,
) -> usize {
    let null = Value::Null;
    let l = left.unwrap_or(&null);
    let r = right.unwrap_or(&null);
    // Arrays and objects walked (strings and scalars compared at once count nothing here).
    let nested = |v: &Value| match v {
        Value::Array(_) | Value::Object(_) => approx_bytes(v, cap),
        _ => 0,
    };
    let both = |a: usize, b: usize| a.saturating_add(b);
    match op {
        Operator::Exists | Operator::NotExists => 0,
        Operator::Contains | Operator::NotContains | Operator::Matches => match (l, r) {
            (Value::String(s), Value::String(n)) => both(s.len(), n.len()),
            (Value::Array(_), n) if op != Operator::Matches => {
                both(approx_bytes(l, cap), approx_bytes(n, cap))
            }
            _ => 0,
        },
        Operator::Eq | Operator::Neq | Operator::In | Operator::NotIn => match (l, r) {
            // Equal lengths are compared byte by byte.
            (Value::String(a), Value::String(b)) if a.len() == b.len() => a.len(),
            _ if matches!(op, Operator::In | Operator::NotIn) && r.is_array() => {
                both(approx_bytes(l, cap), approx_bytes(r, cap))
            }
            _ => both(nested(l), nested(r)),
        },
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => match (l, r) {
            (Value::String(a), Value::String(b)) => a.len().min(b.len()),
            _ => 0,
        },
    }
}

/// Applies an operator; a missing left value is `None`.
pub(crate) fn apply_operator(
    op: Operator,
    left: Option<&Value>,
    right: Option<&Value>,
) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    let null = Value::Null;
    let l = left.unwrap_or(&null);
    let r = right.unwrap_or(&null);
    Ok(match op {
        Operator::Eq => left.is_some() && json_eq(l, r),
        Operator::Neq => !(left.is_some() && json_eq(l, r)),
        Operator::Gt => ordering(left, right) == Some(Greater),
        Operator::Gte => matches!(ordering(left, right), Some(Greater | Equal)),
        Operator::Lt => ordering(left, right) == Some(Less),
        Operator::Lte => matches!(ordering(left, right), Some(Less | Equal)),
        Operator::In => {
            left.is_some()
                && r.as_array()
                    .is_some_and(|items| items.iter().any(|v| json_eq(v, l)))
        }
        Operator::NotIn => r
            .as_array()
            .is_some_and(|items| !items.iter().any(|v| json_eq(v, l))),
        Operator::Contains => contains(l, r),
        Operator::NotContains => !contains(l, r),
        Operator::Matches => match (l, r) {
            (Value::String(s), Value::String(pattern)) => cached_regex(pattern)?.is_match(s),
            _ => false,
        },
        Operator::Exists => !l.is_null(),
        Operator::NotExists => l.is_null(),
    })
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::String(s), Value::String(n)) => s.contains(n.as_str()),
        (Value::Array(items), n) => items.iter().any(|v| json_eq(v, n)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(op: Operator, l: Value, r: Value) -> bool {
        apply_operator(op, Some(&l), Some(&r)).unwrap_or(false)
    }

    #[test]
    fn every_operator() {
        assert!(op(Operator::Eq, json!(1), json!(1.0)));
        assert!(!op(Operator::Eq, json!("1"), json!(1)));
        assert!(op(Operator::Neq, json!("a"), json!("b")));
        assert!(!op(Operator::Neq, json!({"a": [1]}), json!({"a": [1]})));
        assert!(op(Operator::Gt, json!(5), json!(3)) && !op(Operator::Gt, json!(3), json!(3)));
        assert!(op(Operator::Gte, json!(3), json!(3)) && !op(Operator::Gte, json!(2), json!(3)));
        assert!(op(Operator::Lt, json!(2), json!(3)) && !op(Operator::Lt, json!("2"), json!(3)));
        assert!(op(Operator::Lte, json!(3), json!(3)) && !op(Operator::Lte, json!(4), json!(3)));
        assert!(op(Operator::Gt, json!("b"), json!("a")));
        assert!(
            op(Operator::In, json!("vip"), json!(["vip", "gold"]))
                && !op(Operator::In, json!("x"), json!(["vip"]))
        );
        assert!(
            op(Operator::NotIn, json!("x"), json!(["vip"]))
                && !op(Operator::NotIn, json!("vip"), json!(["vip"]))
        );
        assert!(op(Operator::Contains, json!("hello world"), json!("world")));
        assert!(op(Operator::Contains, json!([1, 2, 3]), json!(2)));
        assert!(!op(Operator::Contains, json!([1, 2, 3]), json!(4)));
        assert!(op(Operator::NotContains, json!("hello"), json!("x")));
        assert!(!op(Operator::NotContains, json!(["a"]), json!("a")));
        assert!(op(Operator::Matches, json!("ORD-123"), json!(r"^ORD-\d+$")));
        assert!(!op(Operator::Matches, json!("X-1"), json!(r"^ORD-\d+$")));
        assert!(apply_operator(Operator::Matches, Some(&json!("a")), Some(&json!("(("))).is_err());
        assert!(op(Operator::Exists, json!(0), Value::Null));
        assert!(!apply_operator(Operator::Exists, None, None).unwrap_or(true));
        assert!(apply_operator(Operator::NotExists, None, None).unwrap_or(false));
        assert!(op(Operator::NotExists, Value::Null, Value::Null));
        assert!(!op(Operator::NotExists, json!(false), Value::Null));
    }

    #[test]
    fn interpolation_and_refs() {
        let mut facts = FactStore::default();
        facts.set("customer:42:tier", json!("gold"), 6, 0, "t");
        let mut ctx = EvalContext {
            trigger_data: Arc::new(json!({"orderId": 7, "amount": 12.5, "items": [1, 2]})),
            ..Default::default()
        };
        let budget = &mut Budget::unlimited();
        ctx.vars.insert("item".into(), json!({"id": "x"}));
        assert_eq!(
            ctx.interpolate("order:${event.orderId}:status", &facts, budget),
            Ok("order:7:status".into())
        );
        assert_eq!(
            ctx.interpolate(
                "${fact.customer:42:tier}/${context.item.id}/${var.item.id}",
                &facts,
                budget
            ),
            Ok("gold/x/x".into())
        );
        assert_eq!(
            ctx.interpolate("[${event.missing}]", &facts, budget),
            Ok("[]".into())
        );
        assert!(ctx.interpolate("${nope.x}", &facts, budget).is_err());
        let resolved = ctx.resolve_value(&json!({"a": {"ref": "event.amount"}, "b": ["${event.orderId}"], "c": {"ref": "event.items"}}), &facts, budget);
        assert_eq!(resolved, Ok(json!({"a": 12.5, "b": ["7"], "c": [1, 2]})));
    }
}
