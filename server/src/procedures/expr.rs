//! Values in procedure steps: `{{ ref }}` templates (the original's), `$path` references and
//! the expression language of the client's `logic` API (`{$add: [a, b]}`, `{$cond: [...]}`,
//! ...), evaluated against the call's input and step results. Every failure is an
//! [`ExprError`] with a message naming the operator, never a panic.

use serde_json::{Map, Number, Value};

/// Why a value could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExprError(pub(crate) String);

type Result<T> = std::result::Result<T, ExprError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(ExprError(message.into()))
}

/// What references resolve against: the call's input, the step results and, inside a
/// `transform`, the current item.
pub(crate) struct Scope<'a> {
    /// The validated input.
    pub(crate) input: &'a Map<String, Value>,
    /// Step results by name.
    pub(crate) results: &'a Map<String, Value>,
    /// The element a `transform` is looking at (`item`).
    pub(crate) item: Option<&'a Value>,
    /// The time `$now` gives, ms since the Unix epoch.
    pub(crate) now_ms: u64,
}

/// Most bytes (estimated in memory) the operands of one operator may take together.
pub(crate) const MAX_OPERANDS_BYTES: usize = 16 * 1024 * 1024;

/// Operators of the expression language (the client's `logic` API).
pub(crate) const OPERATORS: &[&str] = &[
    "$add",
    "$subtract",
    "$multiply",
    "$divide",
    "$mod",
    "$abs",
    "$round",
    "$floor",
    "$ceil",
    "$eq",
    "$neq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$between",
    "$in",
    "$and",
    "$or",
    "$not",
    "$cond",
    "$concat",
    "$upper",
    "$lower",
    "$length",
    "$trim",
    "$substring",
    "$now",
    "$year",
    "$month",
    "$day",
    "$daysBetween",
    "$dateAdd",
    "$sum",
    "$avg",
    "$min",
    "$max",
    "$count",
];

// Operators of store filters: an object of these at a field's place is a filter
// condition, not an expression.
use noex_store::FILTER_OPERATORS;

/// The operator and operand of `value` when it is an expression: an object with exactly
/// one key, a known operator.
pub(crate) fn as_expression(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (key, operand) = map.iter().next()?;
    OPERATORS
        .contains(&key.as_str())
        .then_some((key.as_str(), operand))
}

/// The whole-string template `{{ path }}`: its path.
fn exact_template(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

/// Every `{{ path }}` in `s`, in order.
pub(crate) fn template_paths(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        out.push(after[..close].trim());
        rest = &after[close + 2..];
    }
    out
}

/// The path of a `$path` reference string (`$input.amount`, `$from.balance`), or `None`
/// for any other string (`$$x` is the literal `$x`).
pub(crate) fn reference_path(s: &str) -> Option<&str> {
    let path = s.strip_prefix('$')?;
    let first = path.chars().next()?;
    (first.is_alphabetic() || first == '_').then_some(path)
}

impl Scope<'_> {
    /// Resolves a dotted path: `input.x` in the input, `item.x` in the current item (inside
    /// a transform), anything else in the step results. Missing parts give `null`.
    pub(crate) fn lookup(&self, path: &str) -> Value {
        let mut parts = path.split('.');
        let root = parts.next().unwrap_or("");
        let start = match (root, self.item) {
            ("input", _) => Some(Value::Object(self.input.clone())),
            ("item", Some(item)) => Some(item.clone()),
            _ => self.results.get(root).cloned(),
        };
        let mut current = start.unwrap_or(Value::Null);
        for part in parts {
            current = step_into(&current, part);
        }
        current
    }

    /// Resolves a step value: templates, `$path` references and expressions anywhere in
    /// it; other values as they are.
    pub(crate) fn resolve(&self, value: &Value) -> Result<Value> {
        self.resolve_at(value, 0)
    }

    fn resolve_at(&self, value: &Value, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return fail(format!("value nested deeper than {MAX_DEPTH} levels"));
        }
        match value {
            Value::String(s) => Ok(self.string(s)),
            Value::Array(items) => items
                .iter()
                .map(|v| self.resolve_at(v, depth + 1))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
            Value::Object(map) => {
                if let Some((op, operand)) = as_expression(value) {
                    return self.apply(op, operand, depth + 1);
                }
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.resolve_at(v, depth + 1)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Resolves a store filter: field conditions that are filter operators keep their
    /// operators, whose operands (and plain values) are resolved.
    pub(crate) fn resolve_filter(&self, filter: &Value) -> Result<Map<String, Value>> {
        let Value::Object(map) = filter else {
            return fail("filter must be an object");
        };
        let mut out = Map::new();
        for (key, v) in map {
            let resolved = match (key.as_str(), v) {
                ("$and" | "$or", Value::Array(items)) => Value::Array(
                    items
                        .iter()
                        .map(|f| self.resolve_filter(f).map(Value::Object))
                        .collect::<Result<Vec<_>>>()?,
                ),
                ("$not", inner @ Value::Object(_)) => Value::Object(self.resolve_filter(inner)?),
                (_, Value::Object(ops))
                    if !ops.is_empty()
                        && ops.keys().all(|k| FILTER_OPERATORS.contains(&k.as_str())) =>
                {
                    let mut cond = Map::new();
                    for (op, operand) in ops {
                        cond.insert(op.clone(), self.resolve(operand)?);
                    }
                    Value::Object(cond)
                }
                _ => self.resolve(v)?,
            };
            out.insert(key.clone(), resolved);
        }
        Ok(out)
    }

    fn string(&self, s: &str) -> Value {
        if let Some(path) = exact_template(s) {
            return self.lookup(path);
        }
        if !s.contains("{{") {
            return Value::String(s.to_owned());
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else { break };
            out.push_str(&rest[..open]);
            match self.lookup(after[..close].trim()) {
                Value::Null => {}
                Value::String(text) => out.push_str(&text),
                other => out.push_str(&other.to_string()),
            }
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        Value::String(out)
    }

    /// An operand: a `$path` reference, a template, a nested expression or a literal.
    fn operand(&self, value: &Value, depth: usize) -> Result<Value> {
        if let Value::String(s) = value {
            if let Some(path) = reference_path(s) {
                return Ok(self.lookup(path));
            }
            if let Some(literal) = s.strip_prefix("$$") {
                return Ok(Value::String(format!("${literal}")));
            }
        }
        self.resolve_at(value, depth)
    }

    fn operands(&self, op: &str, operand: &Value, depth: usize) -> Result<Vec<Value>> {
        match operand {
            Value::Array(items) => {
                // Operands are copies of what they refer to: bounded together, so one
                // `$concat` of thousands of references to a large input cannot build
                // hundreds of megabytes.
                let mut room = MAX_OPERANDS_BYTES;
                items
                    .iter()
                    .map(|v| {
                        let value = self.operand(v, depth)?;
                        let size = noex_model::json::memory_size_within(&value, room);
                        if size > room {
                            return fail(format!(
                                "{op}: operands take more than {MAX_OPERANDS_BYTES} bytes"
                            ));
                        }
                        room -= size;
                        Ok(value)
                    })
                    .collect()
            }
            _ => fail(format!("{op}: expected an array of operands")),
        }
    }

    fn exactly<const N: usize>(
        &self,
        op: &str,
        operand: &Value,
        depth: usize,
    ) -> Result<[Value; N]> {
        let values = self.operands(op, operand, depth)?;
        let n = values.len();
        values
            .try_into()
            .or_else(|_| fail(format!("{op}: expected {N} operands, got {n}")))
    }

    fn apply(&self, op: &str, operand: &Value, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return fail(format!("expression nested deeper than {MAX_DEPTH} levels"));
        }
        match op {
            "$add" | "$subtract" | "$multiply" | "$divide" | "$mod" => {
                let [a, b] = self.exactly::<2>(op, operand, depth)?;
                arithmetic(op, &a, &b)
            }
            "$abs" | "$floor" | "$ceil" => {
                let a = self.operand(operand, depth)?;
                let n = number(op, &a)?;
                match op {
                    "$abs" => int_or_float(op, n.abs()),
                    "$floor" => int_or_float(op, n.floor()),
                    _ => int_or_float(op, n.ceil()),
                }
            }
            "$round" => {
                let values = self.operands(op, operand, depth)?;
                let (a, places) = match values.as_slice() {
                    [a] => (number(op, a)?, 0.0),
                    [a, p] => (number(op, a)?, number(op, p)?),
                    _ => return fail("$round: expected [value, decimals?]"),
                };
                if !(0.0..=15.0).contains(&places) || places.fract() != 0.0 {
                    return fail("$round: decimals must be an integer from 0 to 15");
                }
                let factor = 10f64.powi(places as i32);
                int_or_float(op, (a * factor).round() / factor)
            }
            "$eq" | "$neq" => {
                let [a, b] = self.exactly::<2>(op, operand, depth)?;
                let equal = json_equal(&a, &b);
                Ok(Value::Bool(if op == "$eq" { equal } else { !equal }))
            }
            "$gt" | "$gte" | "$lt" | "$lte" => {
                let [a, b] = self.exactly::<2>(op, operand, depth)?;
                Ok(Value::Bool(compare(op, &a, &b)))
            }
            "$between" => {
                let [a, lo, hi] = self.exactly::<3>(op, operand, depth)?;
                Ok(Value::Bool(
                    compare("$gte", &a, &lo) && compare("$lte", &a, &hi),
                ))
            }
            "$in" => {
                let [a, list] = self.exactly::<2>(op, operand, depth)?;
                match list {
                    Value::Array(items) => Ok(Value::Bool(items.iter().any(|i| json_equal(&a, i)))),
                    _ => fail("$in: the second operand must be an array"),
                }
            }
            "$and" | "$or" => {
                let values = self.operands(op, operand, depth)?;
                let truths: Vec<bool> = values.iter().map(truthy).collect();
                Ok(Value::Bool(if op == "$and" {
                    truths.into_iter().all(|b| b)
                } else {
                    truths.into_iter().any(|b| b)
                }))
            }
            "$not" => {
                let value = match operand {
                    Value::Array(items) if items.len() == 1 => self.operand(&items[0], depth)?,
                    other => self.operand(other, depth)?,
                };
                Ok(Value::Bool(!truthy(&value)))
            }
            "$cond" => {
                let Value::Array(items) = operand else {
                    return fail("$cond: expected [condition, then, else]");
                };
                let [condition, then, otherwise] = items.as_slice() else {
                    return fail(format!("$cond: expected 3 operands, got {}", items.len()));
                };
                // Only the branch taken is evaluated.
                if truthy(&self.operand(condition, depth)?) {
                    self.operand(then, depth)
                } else {
                    self.operand(otherwise, depth)
                }
            }
            "$concat" => {
                let mut out = String::new();
                for part in self.operands(op, operand, depth)? {
                    match part {
                        Value::String(s) => out.push_str(&s),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                        Value::Null => {}
                        other => {
                            return fail(format!("$concat: cannot concatenate {}", kind(&other)));
                        }
                    }
                }
                Ok(Value::String(out))
            }
            "$upper" | "$lower" | "$trim" => {
                let value = self.operand(operand, depth)?;
                let Value::String(s) = value else {
                    return fail(format!("{op}: expected a string, got {}", kind(&value)));
                };
                Ok(Value::String(match op {
                    "$upper" => s.to_uppercase(),
                    "$lower" => s.to_lowercase(),
                    _ => s.trim().to_owned(),
                }))
            }
            "$length" => match self.operand(operand, depth)? {
                Value::String(s) => Ok(Value::from(s.chars().count())),
                Value::Array(items) => Ok(Value::from(items.len())),
                other => fail(format!(
                    "$length: expected a string or an array, got {}",
                    kind(&other)
                )),
            },
            "$substring" => {
                let values = self.operands(op, operand, depth)?;
                let (s, start, len) = match values.as_slice() {
                    [Value::String(s), start] => (s, index(op, start)?, None),
                    [Value::String(s), start, len] => (s, index(op, start)?, Some(index(op, len)?)),
                    _ => return fail("$substring: expected [string, start, length?]"),
                };
                let chars = s.chars().skip(start);
                Ok(Value::String(match len {
                    Some(n) => chars.take(n).collect(),
                    None => chars.collect(),
                }))
            }
            "$now" => Ok(Value::from(self.now_ms)),
            "$year" | "$month" | "$day" => {
                let ms = timestamp(op, &self.operand(operand, depth)?)?;
                let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
                Ok(Value::from(match op {
                    "$year" => y,
                    "$month" => i64::from(m),
                    _ => i64::from(d),
                }))
            }
            "$daysBetween" => {
                let [a, b] = self.exactly::<2>(op, operand, depth)?;
                let (a, b) = (timestamp(op, &a)?, timestamp(op, &b)?);
                Ok(Value::from((b - a).div_euclid(DAY_MS)))
            }
            "$dateAdd" => {
                let [date, n, unit] = self.exactly::<3>(op, operand, depth)?;
                let ms = timestamp(op, &date)?;
                let n = number(op, &n)?;
                if n.fract() != 0.0 || n.abs() > 1e6 {
                    return fail("$dateAdd: the amount must be an integer up to 1000000");
                }
                let n = n as i64;
                let day = ms.div_euclid(DAY_MS);
                let time = ms.rem_euclid(DAY_MS);
                let (y, m, d) = civil_from_days(day);
                let shifted = match unit.as_str() {
                    Some("day") => day + n,
                    Some("month") => {
                        let months = y * 12 + i64::from(m) - 1 + n;
                        days_from_civil(
                            months.div_euclid(12),
                            (months.rem_euclid(12) + 1) as u32,
                            d,
                        )
                    }
                    Some("year") => days_from_civil(y + n, m, d),
                    _ => return fail("$dateAdd: unit must be \"day\", \"month\" or \"year\""),
                };
                Ok(Value::from(shifted * DAY_MS + time))
            }
            "$sum" | "$avg" | "$min" | "$max" | "$count" => {
                let values = match self.operand(operand, depth)? {
                    Value::Array(items) => items,
                    other => {
                        return fail(format!(
                            "{op}: expected an array (e.g. \"$items.price\"), got {}",
                            kind(&other)
                        ));
                    }
                };
                if op == "$count" {
                    return Ok(Value::from(values.len()));
                }
                let numbers: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
                let all_int = values.iter().all(|v| v.is_i64() || !v.is_number());
                match op {
                    "$sum" if all_int => {
                        let mut total: i64 = 0;
                        for v in values.iter().filter_map(Value::as_i64) {
                            total = match total.checked_add(v) {
                                Some(t) => t,
                                None => return fail("$sum: integer overflow"),
                            };
                        }
                        Ok(Value::from(total))
                    }
                    "$sum" => float(op, numbers.iter().sum()),
                    "$avg" if numbers.is_empty() => Ok(Value::from(0)),
                    "$avg" => float(op, numbers.iter().sum::<f64>() / numbers.len() as f64),
                    _ => {
                        let pick = if op == "$min" { f64::min } else { f64::max };
                        match numbers.iter().copied().reduce(pick) {
                            None => Ok(Value::Null),
                            Some(n) => int_or_float(op, n),
                        }
                    }
                }
            }
            other => fail(format!("unknown operator {other}")),
        }
    }
}

/// How deep values and expressions may nest.
const MAX_DEPTH: usize = 64;
const DAY_MS: i64 = 86_400_000;

/// One path segment into a value: a field of an object; of an array, `length`, an index,
/// or that field of every element.
fn step_into(current: &Value, part: &str) -> Value {
    match current {
        Value::Object(map) => map.get(part).cloned().unwrap_or(Value::Null),
        Value::Array(items) => {
            if part == "length" {
                Value::from(items.len())
            } else if let Ok(i) = part.parse::<usize>() {
                items.get(i).cloned().unwrap_or(Value::Null)
            } else {
                Value::Array(items.iter().map(|item| step_into(item, part)).collect())
            }
        }
        Value::String(s) if part == "length" => Value::from(s.chars().count()),
        _ => Value::Null,
    }
}

/// A JSON type's name for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JavaScript truthiness.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Equality with numbers compared by value (`1` equals `1.0`): the one the store and the
/// rule engine use.
pub(crate) use noex_model::json::json_eq as json_equal;

/// An ordering comparison: numbers with numbers, strings with strings; anything else is
/// `false`.
pub(crate) fn compare(op: &str, a: &Value, b: &Value) -> bool {
    let ordering = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        "$gt" | "gt" => ordering.is_gt(),
        "$gte" | "gte" => ordering.is_ge(),
        "$lt" | "lt" => ordering.is_lt(),
        _ => ordering.is_le(),
    }
}

fn number(op: &str, value: &Value) -> Result<f64> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| fail(format!("{op}: number out of range")), Ok),
        other => fail(format!("{op}: expected a number, got {}", kind(other))),
    }
}

fn index(op: &str, value: &Value) -> Result<usize> {
    match value.as_u64() {
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None => fail(format!("{op}: expected a non-negative integer")),
    }
}

fn timestamp(op: &str, value: &Value) -> Result<i64> {
    match value.as_i64() {
        Some(ms) if ms.abs() < 8_640_000_000_000_000 => Ok(ms),
        _ => fail(format!(
            "{op}: expected a timestamp in ms since the Unix epoch, got {}",
            kind(value)
        )),
    }
}

fn float(op: &str, n: f64) -> Result<Value> {
    match Number::from_f64(n) {
        Some(n) => Ok(Value::Number(n)),
        None => fail(format!("{op}: the result is not a finite number")),
    }
}

/// `n` as an integer when it is one (so `100 - 30` stays `70`, not `70.0`).
fn int_or_float(op: &str, n: f64) -> Result<Value> {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Ok(Value::from(n as i64))
    } else {
        float(op, n)
    }
}

fn arithmetic(op: &str, a: &Value, b: &Value) -> Result<Value> {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return fail(format!(
            "{op}: expected two numbers, got {} and {}",
            kind(a),
            kind(b)
        ));
    };
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
        let exact = match op {
            "$add" => x.checked_add(y),
            "$subtract" => x.checked_sub(y),
            "$multiply" => x.checked_mul(y),
            "$divide" if y == 0 => return fail("$divide: division by zero"),
            "$mod" if y == 0 => return fail("$mod: division by zero"),
            // `checked_*`: i64::MIN / -1 overflows (it panicked in the eighth red-team run).
            "$divide" => x
                .checked_rem(y)
                .filter(|r| *r == 0)
                .and_then(|_| x.checked_div(y)),
            _ => x.checked_rem(y),
        };
        if let Some(n) = exact {
            return Ok(Value::from(n));
        }
    }
    let (x, y) = (number(op, a)?, number(op, b)?);
    let n = match op {
        "$add" => x + y,
        "$subtract" => x - y,
        "$multiply" => x * y,
        "$divide" if y == 0.0 => return fail("$divide: division by zero"),
        "$mod" if y == 0.0 => return fail("$mod: division by zero"),
        "$divide" => x / y,
        _ => x % y,
    };
    float(op, n)
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01; a day past the month's end is clamped.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let d = d.min(month_days[(m.clamp(1, 12) - 1) as usize]);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(value: Value) -> Result<Value> {
        let input = json!({"amount": 30, "name": "Ann"});
        let results = json!({"from": {"balance": 100}, "items": [{"p": 2}, {"p": 5}]});
        let scope = Scope {
            input: input.as_object().unwrap(),
            results: results.as_object().unwrap(),
            item: None,
            now_ms: 0,
        };
        scope.resolve(&value)
    }

    #[test]
    fn arithmetic_keeps_integers_and_refuses_bad_operands() {
        assert_eq!(
            eval(json!({"$subtract": ["$from.balance", "$input.amount"]})),
            Ok(json!(70))
        );
        assert_eq!(eval(json!({"$divide": [7, 2]})), Ok(json!(3.5)));
        assert_eq!(
            eval(json!({"$divide": [1, 0]})),
            Err(ExprError("$divide: division by zero".into()))
        );
        assert_eq!(
            eval(json!({"$add": ["$input.name", 1]})),
            Err(ExprError(
                "$add: expected two numbers, got string and number".into()
            ))
        );
        assert_eq!(eval(json!({"$sum": "$items.p"})), Ok(json!(7)));
    }

    #[test]
    fn conditions_strings_and_dates() {
        assert_eq!(
            eval(json!({"$cond": [{"$gte": ["$from.balance", 50]}, "rich", "poor"]})),
            Ok(json!("rich"))
        );
        assert_eq!(
            eval(json!({"$concat": ["Hi ", "{{ input.name }}", "!"]})),
            Ok(json!("Hi Ann!"))
        );
        assert_eq!(eval(json!("id-{{ input.amount }}")), Ok(json!("id-30")));
        // 2024-02-29 + 1 year = 2025-02-28.
        let leap = days_from_civil(2024, 2, 29) * DAY_MS;
        let next = eval(json!({"$dateAdd": [leap, 1, "year"]})).unwrap();
        assert_eq!(
            civil_from_days(next.as_i64().unwrap() / DAY_MS),
            (2025, 2, 28)
        );
    }
}
