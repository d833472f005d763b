//! The filter language: compilation of a JSON filter into a [`Filter`] (errors for unknown
//! operators or malformed operands), evaluation against a record, and the equality hints
//! that let a bucket answer from an index.
//!
//! A query's filter template is compiled with its parameters bound
//! ([`Filter::compile_with_params`]): a `{{ params.x }}` placeholder becomes a value in the
//! place it stands (compared for equality, or the operand of the operator written in the
//! template, checked against the kind that operator takes), never filter syntax. The
//! text-level [`interpolate`] is kept for callers that want plain substitution.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashSet;

use crate::error::{StoreError, StoreResult};
use crate::value::{Record, canonical_key, compare, get_path, json_eq};

/// The list of `$in` / `$nin`: its distinct values as written (for index hints) and the set of
/// their canonical encodings ([`canonical_key`]: equal exactly when [`json_eq`] holds, so
/// `1` and `1.0` are one member), so testing a record is one hash lookup however long the
/// list is.
#[derive(Debug, Clone)]
struct ValueSet {
    values: Vec<Value>,
    keys: HashSet<String>,
}

impl ValueSet {
    /// Keeps each distinct member once (as `$eq` compares): an index lookup per listed
    /// value must not repeat for a list of one value written 99 000 times.
    fn new(values: Vec<Value>) -> Self {
        let mut keys = HashSet::with_capacity(values.len());
        let values = values
            .into_iter()
            .filter(|v| {
                let mut k = String::new();
                canonical_key(v, &mut k);
                keys.insert(k)
            })
            .collect();
        ValueSet { values, keys }
    }

    /// Whether a field value equals a member as `$eq` compares (an absent field equals
    /// `null`).
    fn contains(&self, v: Option<&Value>) -> bool {
        let mut k = String::new();
        canonical_key(v.unwrap_or(&Value::Null), &mut k);
        self.keys.contains(&k)
    }
}

/// One operator condition on a field.
#[derive(Debug, Clone)]
enum Op {
    Eq(Value),
    Neq(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(ValueSet),
    Nin(ValueSet),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Exists(bool),
    Between(Value, Value),
}

#[derive(Debug, Clone)]
enum Cond {
    Field(String, Vec<Op>),
    Or(Vec<Filter>),
    And(Vec<Filter>),
}

/// A compiled filter: every condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    conds: Vec<Cond>,
}

fn list(op: &str, v: &Value) -> StoreResult<Vec<Value>> {
    v.as_array()
        .cloned()
        .ok_or_else(|| StoreError::invalid_arg(format!("{op} expects an array")))
}

fn text(op: &str, v: &Value) -> StoreResult<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::invalid_arg(format!("{op} expects a string")))
}

fn compile_op(op: &str, v: &Value) -> StoreResult<Op> {
    Ok(match op {
        "$eq" => Op::Eq(v.clone()),
        "$neq" | "$ne" => Op::Neq(v.clone()),
        "$gt" => Op::Gt(v.clone()),
        "$gte" => Op::Gte(v.clone()),
        "$lt" => Op::Lt(v.clone()),
        "$lte" => Op::Lte(v.clone()),
        "$in" => Op::In(ValueSet::new(list(op, v)?)),
        "$nin" => Op::Nin(ValueSet::new(list(op, v)?)),
        "$contains" => Op::Contains(text(op, v)?.to_lowercase()),
        "$startsWith" => Op::StartsWith(text(op, v)?),
        "$endsWith" => Op::EndsWith(text(op, v)?),
        "$exists" => Op::Exists(
            v.as_bool()
                .ok_or_else(|| StoreError::invalid_arg("$exists expects a boolean"))?,
        ),
        "$between" => match v.as_array().map(Vec::as_slice) {
            Some([lo, hi]) => Op::Between(lo.clone(), hi.clone()),
            _ => return Err(StoreError::invalid_arg("$between expects [low, high]")),
        },
        other => {
            return Err(StoreError::invalid_arg(format!(
                "unknown operator \"{other}\""
            )));
        }
    })
}

/// Every operator of the filter language (an object of these at a field's place is a
/// condition; procedures use it to tell a filter from an expression).
pub const FILTER_OPERATORS: [&str; 14] = [
    "$eq",
    "$neq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$contains",
    "$startsWith",
    "$endsWith",
    "$exists",
    "$between",
];

/// Deepest `$or` / `$and` nesting accepted (filters come from clients).
const MAX_FILTER_DEPTH: usize = 32;

/// How `{{ params.x }}` placeholders are treated while compiling.
#[derive(Clone, Copy)]
enum Params<'a> {
    /// Not at all: a placeholder is a plain string (filters sent by clients).
    Literal,
    /// Checking a query template: a placeholder may stand for any operand.
    Template,
    /// Each placeholder is bound to the named parameter's value (missing: `null`).
    Bind(&'a Value),
}

/// `"null"`, `"a string"`, ... for error messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value bound to placeholder `name`. A parameter is a value, never filter syntax:
/// an object is rejected wherever it is bound.
fn param_value(name: &str, params: &Value) -> StoreResult<Value> {
    let v = params.get(name).cloned().unwrap_or(Value::Null);
    if v.is_object() {
        return Err(StoreError::InvalidParameter {
            name: name.to_owned(),
            message: "expected a value to compare (a string, number, boolean, null or array), \
                      got an object"
                .to_owned(),
        });
    }
    Ok(v)
}

/// A literal operand with every placeholder inside it (at any depth) bound.
fn bind_literal(v: &Value, params: Params<'_>) -> StoreResult<Value> {
    let Params::Bind(values) = params else {
        return Ok(v.clone());
    };
    Ok(match v {
        Value::String(s) => match placeholder(s) {
            Some(name) => param_value(name, values)?,
            None => v.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| bind_literal(i, params))
                .collect::<StoreResult<_>>()?,
        ),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, i)| Ok((k.clone(), bind_literal(i, params)?)))
                .collect::<StoreResult<_>>()?,
        ),
        _ => v.clone(),
    })
}

/// Compiles operator `op` with operand `arg`, binding placeholders. `None` when checking
/// a template and the whole operand is a placeholder (its kind is checked once bound).
fn compile_bound_op(op: &str, arg: &Value, params: Params<'_>) -> StoreResult<Option<Op>> {
    if !FILTER_OPERATORS.contains(&op) {
        return Err(StoreError::invalid_arg(format!(
            "unknown operator \"{op}\""
        )));
    }
    let name = match (params, arg.as_str().and_then(placeholder)) {
        (Params::Literal, _) | (_, None) => {
            return compile_op(op, &bind_literal(arg, params)?).map(Some);
        }
        (Params::Template, Some(_)) => return Ok(None),
        (Params::Bind(_), Some(name)) => name,
    };
    let value = bind_literal(arg, params)?;
    // The operand is the parameter itself: it must be of the kind the operator takes.
    compile_op(op, &value)
        .map(Some)
        .map_err(|e| StoreError::InvalidParameter {
            name: name.to_owned(),
            message: match e {
                StoreError::InvalidArgument { message } => {
                    format!("{message}, got {}", kind_of(&value))
                }
                other => other.to_string(),
            },
        })
}

fn compile_list(op: &str, v: &Value, depth: usize, params: Params<'_>) -> StoreResult<Vec<Filter>> {
    if depth >= MAX_FILTER_DEPTH {
        return Err(StoreError::invalid_arg(format!(
            "filter nested deeper than {MAX_FILTER_DEPTH} levels"
        )));
    }
    let items = v
        .as_array()
        .ok_or_else(|| StoreError::invalid_arg(format!("{op} expects an array of filters")))?;
    items
        .iter()
        .map(|f| match f.as_object() {
            Some(obj) => Filter::compile_at(obj, depth + 1, params),
            None => Err(StoreError::invalid_arg(format!(
                "{op} expects an array of filters"
            ))),
        })
        .collect()
}

impl Filter {
    /// Compiles a JSON filter object. Strings of the form `{{ params.x }}` are plain
    /// strings here.
    pub fn compile(filter: &Map<String, Value>) -> StoreResult<Filter> {
        Filter::compile_at(filter, 0, Params::Literal)
    }

    /// Compiles a query's filter template with its parameters bound. A placeholder
    /// `"{{ params.x }}"` stands for a value, never for filter syntax:
    ///
    /// - as a field's value it is compared for equality;
    /// - as an operator's operand it is that operand, of the kind the operator takes
    ///   (`$in`/`$nin`: array; `$contains`/`$startsWith`/`$endsWith`: string; `$exists`:
    ///   boolean; `$between`: `[low, high]`);
    /// - inside a literal list or object it is one element.
    ///
    /// A parameter that is an object, or not of the operator's kind, fails with
    /// [`StoreError::InvalidParameter`] naming it; a missing parameter is `null`.
    ///
    /// ```
    /// use noex_store::{Filter, StoreError};
    /// use serde_json::json;
    /// let template = json!({"owner": "{{ params.owner }}"});
    /// let template = template.as_object().unwrap();
    /// assert!(Filter::compile_with_params(template, &json!({"owner": "ann"})).is_ok());
    /// let err = Filter::compile_with_params(template, &json!({"owner": {"$ne": null}}));
    /// assert!(matches!(err, Err(StoreError::InvalidParameter { name, .. }) if name == "owner"));
    /// ```
    pub fn compile_with_params(filter: &Map<String, Value>, params: &Value) -> StoreResult<Filter> {
        Filter::compile_at(filter, 0, Params::Bind(params))
    }

    /// Checks a query's filter template: what is not a placeholder must compile, and a
    /// placeholder may stand for any operand.
    pub(crate) fn check_template(filter: &Map<String, Value>) -> StoreResult<()> {
        Filter::compile_at(filter, 0, Params::Template).map(|_| ())
    }

    fn compile_at(
        filter: &Map<String, Value>,
        depth: usize,
        params: Params<'_>,
    ) -> StoreResult<Filter> {
        let mut conds = Vec::with_capacity(filter.len());
        for (key, v) in filter {
            match key.as_str() {
                "$or" => conds.push(Cond::Or(compile_list(key, v, depth, params)?)),
                "$and" => conds.push(Cond::And(compile_list(key, v, depth, params)?)),
                k if k.starts_with('$') => {
                    return Err(StoreError::invalid_arg(format!("unknown operator \"{k}\"")));
                }
                _ => {
                    let ops = match v {
                        Value::Object(obj)
                            if !obj.is_empty() && obj.keys().all(|k| k.starts_with('$')) =>
                        {
                            let mut ops = Vec::with_capacity(obj.len());
                            for (op, arg) in obj {
                                ops.extend(compile_bound_op(op, arg, params)?);
                            }
                            ops
                        }
                        _ => vec![Op::Eq(bind_literal(v, params)?)],
                    };
                    conds.push(Cond::Field(key.clone(), ops));
                }
            }
        }
        Ok(Filter { conds })
    }

    /// Compiles an optional filter; `None` matches everything.
    pub fn compile_opt(filter: Option<&Map<String, Value>>) -> StoreResult<Filter> {
        filter.map_or_else(|| Ok(Filter::default()), Filter::compile)
    }

    /// Whether the filter matches everything.
    pub fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }

    /// Evaluates the filter against a record. Within a
    /// [`with_read_deadline`](crate::with_read_deadline) whose time has run out, `false`
    /// without evaluating (the read then answers `ReadTimeout`).
    pub fn matches(&self, record: &Record) -> bool {
        self.test(record)
    }

    /// Each condition first ticks the read deadline: one record's conditions can cost
    /// milliseconds (text searches over a large field), so the budget is checked within
    /// a record, not only between records.
    fn test(&self, record: &Record) -> bool {
        self.conds.iter().all(|c| {
            crate::deadline::tick()
                && match c {
                    Cond::Field(field, ops) => {
                        let v = get_path(record, field);
                        ops.iter().all(|op| op_matches(op, v))
                    }
                    Cond::Or(fs) => fs.iter().any(|f| f.test(record)),
                    Cond::And(fs) => fs.iter().all(|f| f.test(record)),
                }
        })
    }

    /// Top-level equality constraints usable by an index: `(field, candidate values)`.
    pub(crate) fn equality_hints(&self) -> Vec<(&str, Vec<&Value>)> {
        let mut out = Vec::new();
        for c in &self.conds {
            if let Cond::Field(field, ops) = c {
                for op in ops {
                    match op {
                        Op::Eq(v) if is_scalar(v) => out.push((field.as_str(), vec![v])),
                        Op::In(vs) if vs.values.iter().all(is_scalar) => {
                            out.push((field.as_str(), vs.values.iter().collect()))
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }
}

fn is_scalar(v: &Value) -> bool {
    // Null is excluded: `field: null` also matches absent fields, which no index holds.
    matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_))
}

fn cmp_is(v: Option<&Value>, arg: &Value, pred: fn(Ordering) -> bool) -> bool {
    v.and_then(|v| compare(v, arg)).is_some_and(pred)
}

fn eq_opt(v: Option<&Value>, arg: &Value) -> bool {
    match v {
        Some(v) => json_eq(v, arg),
        None => arg.is_null(),
    }
}

fn op_matches(op: &Op, v: Option<&Value>) -> bool {
    match op {
        Op::Eq(a) => eq_opt(v, a),
        Op::Neq(a) => !eq_opt(v, a),
        Op::Gt(a) => cmp_is(v, a, Ordering::is_gt),
        Op::Gte(a) => cmp_is(v, a, Ordering::is_ge),
        Op::Lt(a) => cmp_is(v, a, Ordering::is_lt),
        Op::Lte(a) => cmp_is(v, a, Ordering::is_le),
        Op::In(set) => set.contains(v),
        Op::Nin(set) => !set.contains(v),
        Op::Contains(needle) => match v {
            Some(Value::String(s)) => s.to_lowercase().contains(needle.as_str()),
            Some(Value::Array(items)) => items.iter().any(|i| match i {
                Value::String(s) => s.to_lowercase() == *needle,
                _ => false,
            }),
            _ => false,
        },
        Op::StartsWith(p) => v
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(p.as_str())),
        Op::EndsWith(p) => v
            .and_then(Value::as_str)
            .is_some_and(|s| s.ends_with(p.as_str())),
        Op::Exists(want) => v.is_some_and(|v| !v.is_null()) == *want,
        Op::Between(lo, hi) => cmp_is(v, lo, Ordering::is_ge) && cmp_is(v, hi, Ordering::is_le),
    }
}

/// Replaces every string of the exact form `{{ params.x }}` by the parameter `x`
/// (recursively through objects and arrays). A missing parameter becomes `null`.
///
/// This is plain text substitution: an object parameter becomes filter syntax in the
/// result. Queries do not use it; they bind parameters as values with
/// [`Filter::compile_with_params`].
pub fn interpolate(value: &Value, params: &Value) -> Value {
    match value {
        Value::String(s) => match placeholder(s) {
            Some(name) => params.get(name).cloned().unwrap_or(Value::Null),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| interpolate(v, params)).collect()),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| (k.clone(), interpolate(v, params)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

fn placeholder(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let name = inner.strip_prefix("params.")?;
    (!name.is_empty() && !name.contains(char::is_whitespace)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interpolation_is_exact_and_recursive() {
        let params = json!({"x": 5, "s": "hi"});
        let f = json!({"a": "{{ params.x }}", "b": {"$in": ["{{params.s}}", 1]}, "c": "x {{ params.x }}",
            "$or": [{"d": "{{ params.missing }}"}]});
        assert_eq!(
            interpolate(&f, &params),
            json!({"a": 5, "b": {"$in": ["hi", 1]}, "c": "x {{ params.x }}", "$or": [{"d": null}]})
        );
    }

    /// `$in` / `$nin` by hash agree with `$eq` on every member: numbers by value, deep
    /// values, `null` matching an absent field.
    #[test]
    fn in_and_nin_compare_as_eq_does() {
        let list = json!([1, "a", null, {"x": [2.0]}, -0.0, false]);
        let records = [
            json!({"v": 1.0}),
            json!({"v": 1}),
            json!({"v": 2}),
            json!({"v": "a"}),
            json!({"v": "A"}),
            json!({}),
            json!({"v": null}),
            json!({"v": {"x": [2]}}),
            json!({"v": {"x": [2, 3]}}),
            json!({"v": 0}),
            json!({"v": false}),
            json!({"v": 0.5}),
        ];
        let in_f = Filter::compile(json!({"v": {"$in": list}}).as_object().unwrap()).unwrap();
        let nin_f = Filter::compile(json!({"v": {"$nin": list}}).as_object().unwrap()).unwrap();
        for r in &records {
            let r = r.as_object().unwrap();
            let by_eq = list.as_array().unwrap().iter().any(|a| {
                Filter::compile(json!({"v": {"$eq": a}}).as_object().unwrap())
                    .unwrap()
                    .matches(r)
            });
            assert_eq!(in_f.matches(r), by_eq, "{r:?}");
            assert_eq!(nin_f.matches(r), !by_eq, "{r:?}");
        }
    }

    #[test]
    fn equality_hints_skip_null_and_objects() {
        let f = Filter::compile(
            json!({"a": 1, "b": null, "c": {"x": 1}, "d": {"$in": ["p", "q"]}})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let hints: Vec<&str> = f.equality_hints().into_iter().map(|(k, _)| k).collect();
        assert_eq!(hints, ["a", "d"]);
    }
}
