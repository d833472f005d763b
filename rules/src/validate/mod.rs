//! Validation of rules as raw JSON, so a wire client gets every problem with a path
//! (`trigger.type`, `conditions[0].operator`, `actions[1].timer.duration`) and a message,
//! instead of the first serde error.

use serde_json::{Map, Value};

use crate::error::{Result, RuleValidationIssue, RulesError};
use crate::model::RuleInput;
use crate::pattern::{check_fact_pattern, check_topic_pattern, parse_duration_ms};

mod actions;
#[cfg(test)]
mod tests;

/// Result of [`validate_rule`]: `{valid, errors, warnings}` (the `rules.validateRule`
/// result, the original's shape).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValidationReport {
    /// True when `errors` is empty.
    pub valid: bool,
    /// Every problem that stops the rule from being registered.
    pub errors: Vec<RuleValidationIssue>,
    /// Problems that do not (none are reported yet; always present, as in the original).
    #[serde(default)]
    pub warnings: Vec<RuleValidationIssue>,
}

const TRIGGER_TYPES: &str = "event, fact, timer, temporal";
const OPERATORS: [&str; 13] = [
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "matches",
    "exists",
    "not_exists",
];
pub(super) const ACTION_TYPES: &str = "set_fact, delete_fact, emit_event, set_timer, cancel_timer, log, conditional, for_each, try_catch";
/// Nesting bound for actions inside conditional / for_each / try_catch.
pub(super) const MAX_ACTION_NESTING: usize = 16;

/// The `set_timer` actions of a valid rule whose literal `duration` or `repeat.interval` is
/// below `min_ms` (computed ones are checked when the timer is set), with their paths.
pub fn timer_floor_errors(rule: &RuleInput, min_ms: u64) -> Vec<RuleValidationIssue> {
    let mut errors = Vec::new();
    timer_floor(&rule.actions, "actions", min_ms, &mut errors);
    errors
}

fn timer_floor(
    actions: &[crate::model::Action],
    path: &str,
    min_ms: u64,
    out: &mut Vec<RuleValidationIssue>,
) {
    use crate::model::Action;
    let literal_below = |value: &Value| {
        let computed =
            value.get("ref").is_some() || value.as_str().is_some_and(|s| s.contains("${"));
        !computed && parse_duration_ms(value).is_ok_and(|ms| ms < min_ms)
    };
    for (i, action) in actions.iter().enumerate() {
        let here = format!("{path}[{i}]");
        match action {
            Action::SetTimer { timer } => {
                let mut check = |value: &Value, field: String, name: &str| {
                    if literal_below(value) {
                        out.push(RuleValidationIssue::new(
                            field,
                            format!("Field \"{name}\" must be at least {min_ms} ms (the engine's minimum timer interval)"),
                        ));
                    }
                };
                check(
                    &timer.duration,
                    format!("{here}.timer.duration"),
                    "duration",
                );
                if let Some(repeat) = &timer.repeat {
                    check(
                        &repeat.interval,
                        format!("{here}.timer.repeat.interval"),
                        "interval",
                    );
                }
            }
            Action::Conditional { then, else_, .. } => {
                timer_floor(then, &format!("{here}.then"), min_ms, out);
                if let Some(els) = else_ {
                    timer_floor(els, &format!("{here}.else"), min_ms, out);
                }
            }
            Action::ForEach { actions, .. } => {
                timer_floor(actions, &format!("{here}.actions"), min_ms, out);
            }
            Action::TryCatch {
                r#try,
                catch,
                finally,
            } => {
                timer_floor(r#try, &format!("{here}.try"), min_ms, out);
                if let Some(catch) = catch {
                    timer_floor(
                        &catch.actions,
                        &format!("{here}.catch.actions"),
                        min_ms,
                        out,
                    );
                }
                if let Some(fin) = finally {
                    timer_floor(fin, &format!("{here}.finally"), min_ms, out);
                }
            }
            _ => {}
        }
    }
}

/// Validates a full rule input (`{id, name, trigger, ...}`) given as JSON.
pub fn validate_rule(rule: &Value) -> ValidationReport {
    let mut v = Validator::default();
    v.rule(rule);
    ValidationReport {
        valid: v.errors.is_empty(),
        errors: v.errors,
        warnings: Vec::new(),
    }
}

#[derive(Default)]
pub(super) struct Validator {
    /// Problems found so far.
    pub(super) errors: Vec<RuleValidationIssue>,
}

pub(super) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

pub(super) use noex_model::json::type_name;

impl Validator {
    pub(super) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(RuleValidationIssue::new(path, message));
    }

    pub(super) fn object<'a>(
        &mut self,
        v: &'a Value,
        path: &str,
        what: &str,
    ) -> Option<&'a Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.err(
                    path,
                    format!("{what} must be an object, got {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A required non-empty string field.
    pub(super) fn string<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        path: &str,
        field: &str,
    ) -> Option<&'a str> {
        let p = join(path, field);
        match o.get(field) {
            None | Some(Value::Null) => {
                self.err(p, format!("Required field \"{field}\" is missing"));
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.err(p, format!("Field \"{field}\" cannot be empty"));
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.err(
                    p,
                    format!(
                        "Field \"{field}\" must be a string, got {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn opt_string(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        if let Some(v) = o.get(field)
            && !v.is_null()
            && !v.is_string()
        {
            self.err(
                join(path, field),
                format!("Field \"{field}\" must be a string, got {}", type_name(v)),
            );
        }
    }

    pub(super) fn opt_bool(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        if let Some(v) = o.get(field)
            && !v.is_boolean()
        {
            self.err(
                join(path, field),
                format!("Field \"{field}\" must be a boolean, got {}", type_name(v)),
            );
        }
    }

    fn number(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        match o.get(field) {
            None | Some(Value::Null) => self.err(
                join(path, field),
                format!("Required field \"{field}\" is missing"),
            ),
            Some(v) if !v.is_number() => self.err(
                join(path, field),
                format!("Field \"{field}\" must be a number, got {}", type_name(v)),
            ),
            _ => {}
        }
    }

    /// A duration that may also be computed at run time (`{ref}` or a `${...}` string).
    pub(super) fn action_duration(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        match o.get(field) {
            Some(Value::String(s)) if s.contains("${") => {}
            Some(v) if v.get("ref").is_some_and(Value::is_string) => {}
            _ => self.duration(o, path, field),
        }
    }

    pub(super) fn duration(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        match o.get(field) {
            None | Some(Value::Null) => self.err(
                join(path, field),
                format!("Required field \"{field}\" is missing"),
            ),
            Some(v) => {
                if let Err(m) = parse_duration_ms(v) {
                    self.err(join(path, field), format!("Field \"{field}\" {m}"));
                }
            }
        }
    }

    pub(super) fn array<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        path: &str,
        field: &str,
        required: bool,
    ) -> &'a [Value] {
        match o.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.err(
                        join(path, field),
                        format!("Required field \"{field}\" is missing"),
                    );
                }
                &[]
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.err(
                    join(path, field),
                    format!(
                        "Field \"{field}\" must be an array, got {}",
                        type_name(other)
                    ),
                );
                &[]
            }
        }
    }

    fn rule(&mut self, rule: &Value) {
        let Some(o) = self.object(rule, "", "Rule") else {
            return;
        };
        self.string(o, "", "id");
        self.string(o, "", "name");
        self.opt_string(o, "", "description");
        self.opt_string(o, "", "group");
        if let Some(p) = o.get("priority")
            && !p.is_i64()
        {
            self.err("priority", "Field \"priority\" must be an integer");
        }
        self.opt_bool(o, "", "enabled");
        for (i, tag) in self.array(o, "", "tags", false).iter().enumerate() {
            if !tag.is_string() {
                self.err(format!("tags[{i}]"), "Tag must be a string");
            }
        }
        match o.get("trigger") {
            None | Some(Value::Null) => {
                self.err("trigger", "Required field \"trigger\" is missing")
            }
            Some(t) => self.trigger(t, "trigger"),
        }
        for (i, c) in self.array(o, "", "conditions", false).iter().enumerate() {
            self.condition(c, &format!("conditions[{i}]"));
        }
        let actions = self.array(o, "", "actions", false);
        self.actions(actions, "actions", 0);
    }

    fn trigger(&mut self, t: &Value, path: &str) {
        let Some(o) = self.object(t, path, "Trigger") else {
            return;
        };
        let Some(kind) = self.string(o, path, "type") else {
            return;
        };
        match kind {
            "event" => self.topic(o, path, "topic"),
            "fact" => self.fact_pattern(o, path, "pattern"),
            "timer" => {
                self.string(o, path, "name");
            }
            "temporal" => match o.get("pattern") {
                None | Some(Value::Null) => self.err(
                    join(path, "pattern"),
                    "Required field \"pattern\" is missing",
                ),
                Some(p) => self.temporal(p, &join(path, "pattern")),
            },
            other => self.err(
                join(path, "type"),
                format!("Invalid trigger type \"{other}\". Expected: {TRIGGER_TYPES}"),
            ),
        }
    }

    fn topic(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        if let Some(t) = self.string(o, path, field)
            && let Err(m) = check_topic_pattern(t)
        {
            self.err(join(path, field), m);
        }
    }

    fn fact_pattern(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        if let Some(t) = self.string(o, path, field)
            && !t.contains("${")
            && let Err(m) = check_fact_pattern(t)
        {
            self.err(join(path, field), m);
        }
    }

    fn matcher(&mut self, o: &Map<String, Value>, path: &str, field: &str) {
        let p = join(path, field);
        match o.get(field) {
            None | Some(Value::Null) => {
                self.err(p, format!("Required field \"{field}\" is missing"))
            }
            Some(m) => self.matcher_value(m, &p),
        }
    }

    fn matcher_value(&mut self, m: &Value, p: &str) {
        let Some(mo) = self.object(m, p, "Event matcher") else {
            return;
        };
        self.topic(mo, p, "topic");
        if let Some(f) = mo.get("filter")
            && !f.is_object()
        {
            self.err(
                join(p, "filter"),
                format!("Field \"filter\" must be an object, got {}", type_name(f)),
            );
        }
        self.opt_string(mo, p, "as");
    }

    fn comparison(&mut self, o: &Map<String, Value>, path: &str) {
        match o.get("comparison") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if ["gte", "lte", "eq"].contains(&s.as_str()) => {}
            Some(other) => self.err(
                join(path, "comparison"),
                format!("Invalid comparison {other}. Expected: gte, lte, eq"),
            ),
        }
    }

    fn temporal(&mut self, p: &Value, path: &str) {
        let Some(o) = self.object(p, path, "Temporal pattern") else {
            return;
        };
        let Some(kind) = self.string(o, path, "type") else {
            return;
        };
        self.opt_string(o, path, "groupBy");
        match kind {
            "sequence" => {
                let events = self.array(o, path, "events", true);
                if o.get("events").is_some_and(Value::is_array) && events.len() < 2 {
                    self.err(join(path, "events"), "Sequence must have at least 2 events");
                }
                for (i, e) in events.iter().enumerate() {
                    self.matcher_value(e, &format!("{}[{i}]", join(path, "events")));
                }
                self.duration(o, path, "within");
                self.opt_bool(o, path, "strict");
            }
            "absence" => {
                self.matcher(o, path, "after");
                self.matcher(o, path, "expected");
                self.duration(o, path, "within");
            }
            "count" => {
                self.matcher(o, path, "event");
                self.number(o, path, "threshold");
                self.comparison(o, path);
                self.duration(o, path, "window");
                self.opt_bool(o, path, "sliding");
            }
            "aggregate" => {
                self.matcher(o, path, "event");
                self.string(o, path, "field");
                match o.get("function") {
                    None | Some(Value::Null) => {
                        self.err(join(path, "function"), "Required field \"function\" is missing")
                    }
                    Some(Value::String(f)) if ["sum", "avg", "min", "max", "count"].contains(&f.as_str()) => {}
                    Some(other) => self.err(
                        join(path, "function"),
                        format!("Invalid aggregate function {other}. Expected: sum, avg, min, max, count"),
                    ),
                }
                self.number(o, path, "threshold");
                self.comparison(o, path);
                self.duration(o, path, "window");
            }
            other => self.err(
                join(path, "type"),
                format!("Invalid temporal pattern type \"{other}\". Expected: sequence, absence, count, aggregate"),
            ),
        }
    }

    pub(super) fn condition(&mut self, c: &Value, path: &str) {
        let Some(o) = self.object(c, path, "Condition") else {
            return;
        };
        match o.get("source") {
            None | Some(Value::Null) => {
                self.err(join(path, "source"), "Required field \"source\" is missing")
            }
            Some(s) => {
                let sp = join(path, "source");
                if let Some(so) = self.object(s, &sp, "Condition source")
                    && let Some(kind) = self.string(so, &sp, "type")
                {
                    match kind {
                        "event" => {
                            self.string(so, &sp, "field");
                        }
                        "fact" => self.fact_pattern(so, &sp, "pattern"),
                        "context" => {
                            self.string(so, &sp, "key");
                        }
                        other => self.err(
                            join(&sp, "type"),
                            format!("Invalid condition source type \"{other}\". Expected: event, fact, context"),
                        ),
                    }
                }
            }
        }
        let op = match o.get("operator") {
            None | Some(Value::Null) => {
                self.err(
                    join(path, "operator"),
                    "Required field \"operator\" is missing",
                );
                return;
            }
            Some(Value::String(op)) if OPERATORS.contains(&op.as_str()) => op.as_str(),
            Some(other) => {
                self.err(
                    join(path, "operator"),
                    format!(
                        "Invalid operator {other}. Expected: {}",
                        OPERATORS.join(", ")
                    ),
                );
                return;
            }
        };
        let value = o.get("value");
        if !matches!(op, "exists" | "not_exists") && value.is_none() {
            self.err(join(path, "value"), "Required field \"value\" is missing");
        }
        let is_ref = value.and_then(|v| v.get("ref")).is_some();
        if let Some(v) = value
            && !is_ref
        {
            if matches!(op, "in" | "not_in") && !v.is_array() {
                self.err(
                    join(path, "value"),
                    format!("Operator \"{op}\" needs an array value"),
                );
            }
            if op == "matches" {
                match v.as_str().map(crate::eval::compile_regex) {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => self.err(
                        join(path, "value"),
                        format!("Invalid regular expression: {e}"),
                    ),
                    None => self.err(
                        join(path, "value"),
                        "Operator \"matches\" needs a string value",
                    ),
                }
            }
        }
        if let Some(r) = value.and_then(|v| v.get("ref"))
            && !r.is_string()
        {
            self.err(join(path, "value.ref"), "Field \"ref\" must be a string");
        }
    }
}

/// A rule's input with `updates` (a partial rule object) applied, as `update_rule` applies
/// them: `id`, `version`, `createdAt` and `updatedAt` are ignored. Not validated.
pub(crate) fn merge_update(current: &RuleInput, updates: &Value) -> Result<Value> {
    let Value::Object(updates) = updates else {
        return Err(RulesError::Validation(vec![RuleValidationIssue::new(
            "updates",
            "Updates must be an object",
        )]));
    };
    let mut merged = match serde_json::to_value(current) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(RulesError::Validation(vec![RuleValidationIssue::new(
                "",
                "rule is not serializable",
            )]));
        }
    };
    for (k, v) in updates {
        if !matches!(k.as_str(), "id" | "version" | "createdAt" | "updatedAt") {
            merged.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(merged))
}

/// A rule's input from its JSON, after [`validate_rule`]: every issue found, or the typed rule.
pub(crate) fn parse_rule(rule: &Value) -> Result<RuleInput> {
    let report = validate_rule(rule);
    if !report.valid {
        return Err(RulesError::Validation(report.errors));
    }
    serde_json::from_value(rule.clone())
        .map_err(|e| RulesError::Validation(vec![RuleValidationIssue::new("", e.to_string())]))
}
