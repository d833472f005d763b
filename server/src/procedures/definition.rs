//! A procedure definition: parsed from its wire JSON (`{name, description?, input?, steps,
//! transaction?, timeoutMs?}`) and validated at registration, with one issue per problem,
//! each naming the step by its path (`steps[1].then[0]`) and action.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::expr::{self, as_expression, reference_path, template_paths};
use crate::store_bridge::RESERVED_TOPIC_ROOT;

/// The type an input field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl InputType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => InputType::String,
            "number" => InputType::Number,
            "boolean" => InputType::Boolean,
            "object" => InputType::Object,
            "array" => InputType::Array,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
            InputType::Object => "object",
            InputType::Array => "array",
        }
    }

    pub(crate) fn matches(self, value: &Value) -> bool {
        match self {
            InputType::String => value.is_string(),
            InputType::Number => value.is_number(),
            InputType::Boolean => value.is_boolean(),
            InputType::Object => value.is_object(),
            InputType::Array => value.is_array(),
        }
    }
}

/// `input.NAME: {type, required?, default?}` (`required` defaults to `true`).
#[derive(Debug, Clone)]
pub(crate) struct InputField {
    pub(crate) name: String,
    pub(crate) kind: InputType,
    pub(crate) required: bool,
    pub(crate) default: Option<Value>,
}

/// `aggregate.op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggregateOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

/// `transform.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransformOp {
    Map,
    Filter,
    Pick,
    Pluck,
}

/// The condition of an `if` step: the original's `{ref, operator, value?}`, or an
/// expression whose truthiness decides.
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    Compare {
        reference: String,
        operator: String,
        value: Option<Value>,
    },
    Expression(Value),
}

/// One step, as the original defines them.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Get {
        bucket: String,
        key: Value,
        name: String,
    },
    Where {
        bucket: String,
        filter: Value,
        name: String,
    },
    FindOne {
        bucket: String,
        filter: Value,
        name: String,
    },
    Insert {
        bucket: String,
        data: Value,
        name: Option<String>,
    },
    Update {
        bucket: String,
        key: Value,
        data: Value,
        name: Option<String>,
    },
    Delete {
        bucket: String,
        key: Value,
    },
    Count {
        bucket: String,
        filter: Option<Value>,
        name: String,
    },
    Aggregate {
        source: String,
        field: Option<String>,
        op: AggregateOp,
        name: String,
    },
    Emit {
        topic: Value,
        data: Option<Value>,
    },
    SetFact {
        key: Value,
        value: Value,
    },
    GetFact {
        key: Value,
        name: String,
    },
    If {
        condition: Condition,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    Transform {
        source: String,
        op: TransformOp,
        args: Value,
        name: String,
    },
    Return {
        value: Value,
    },
}

impl Step {
    /// The step's `action`, for messages.
    /// The bucket a store step reads or writes.
    pub(crate) fn bucket(&self) -> Option<&str> {
        match self {
            Step::Get { bucket, .. }
            | Step::Where { bucket, .. }
            | Step::FindOne { bucket, .. }
            | Step::Insert { bucket, .. }
            | Step::Update { bucket, .. }
            | Step::Delete { bucket, .. }
            | Step::Count { bucket, .. } => Some(bucket),
            _ => None,
        }
    }

    pub(crate) fn action(&self) -> &'static str {
        match self {
            Step::Get { .. } => "store.get",
            Step::Where { .. } => "store.where",
            Step::FindOne { .. } => "store.findOne",
            Step::Insert { .. } => "store.insert",
            Step::Update { .. } => "store.update",
            Step::Delete { .. } => "store.delete",
            Step::Count { .. } => "store.count",
            Step::Aggregate { .. } => "aggregate",
            Step::Emit { .. } => "rules.emit",
            Step::SetFact { .. } => "rules.setFact",
            Step::GetFact { .. } => "rules.getFact",
            Step::If { .. } => "if",
            Step::Transform { .. } => "transform",
            Step::Return { .. } => "return",
        }
    }
}

/// A validated procedure.
#[derive(Debug, Clone)]
pub(crate) struct Procedure {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) input: Vec<InputField>,
    pub(crate) steps: Vec<Step>,
    pub(crate) transaction: bool,
    pub(crate) timeout_ms: Option<u64>,
    /// The definition as registered: what `procedures.get` answers and what is persisted.
    pub(crate) raw: Map<String, Value>,
}

/// What validation needs to know of the server.
pub(crate) struct Known<'a> {
    /// Whether a bucket exists.
    pub(crate) bucket_exists: &'a dyn Fn(&str) -> bool,
    /// Whether a rule engine runs (rules steps need one).
    pub(crate) has_rules: bool,
    /// Most steps in one definition.
    pub(crate) max_steps: usize,
    /// Deepest nesting of `if` steps.
    pub(crate) max_depth: usize,
}

const ACTIONS: &str = "store.get, store.where, store.findOne, store.insert, store.update, \
                       store.delete, store.count, aggregate, rules.emit, rules.setFact, \
                       rules.getFact, if, transform, return";
const CONDITION_OPERATORS: [&str; 8] = [
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "not_exists",
];

/// Parses and validates a definition; the issues, when there are any.
pub(crate) fn parse(raw: Map<String, Value>, known: &Known<'_>) -> Result<Procedure, Vec<String>> {
    let mut issues = Vec::new();
    let name = match raw.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            issues.push("Missing or invalid \"name\": expected non-empty string".to_owned());
            String::new()
        }
    };
    let description = match raw.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            issues.push("\"description\" must be a string".to_owned());
            None
        }
    };
    let input = match raw.get("input") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => parse_input(value, &mut issues),
    };
    let transaction = match raw.get("transaction") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            issues.push("\"transaction\" must be a boolean".to_owned());
            false
        }
    };
    let timeout_ms = match raw.get("timeoutMs") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|n| *n > 0) {
            Some(n) => Some(n),
            None => {
                issues.push("\"timeoutMs\" must be a positive integer".to_owned());
                None
            }
        },
    };
    let steps = match raw.get("steps") {
        Some(Value::Array(steps)) if steps.is_empty() => {
            issues.push("\"steps\" must contain at least one step".to_owned());
            Vec::new()
        }
        Some(Value::Array(steps)) => {
            let total_steps = count_steps(steps);
            if total_steps > known.max_steps {
                issues.push(format!(
                    "Total step count ({total_steps}) exceeds maximum ({}); see limits.maxProcedureSteps",
                    known.max_steps
                ));
                Vec::new()
            } else {
                let mut scope = Names {
                    defined: BTreeSet::new(),
                    input: input.iter().map(|f| f.name.clone()).collect(),
                    has_schema: raw.get("input").is_some_and(Value::is_object),
                };
                let mut parser = Parser {
                    known,
                    issues: &mut issues,
                };
                parser.steps(steps, "steps", 0, &mut scope)
            }
        }
        _ => {
            issues.push("Missing or invalid \"steps\": expected array".to_owned());
            Vec::new()
        }
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Procedure {
        name,
        description,
        input,
        steps,
        transaction,
        timeout_ms,
        raw,
    })
}

fn parse_input(value: &Value, issues: &mut Vec<String>) -> Vec<InputField> {
    let Value::Object(fields) = value else {
        issues.push("\"input\" must be an object".to_owned());
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, def) in fields {
        let Value::Object(def) = def else {
            issues.push(format!("input.{name}: expected field definition object"));
            continue;
        };
        let Some(kind) = def
            .get("type")
            .and_then(Value::as_str)
            .and_then(InputType::parse)
        else {
            issues.push(format!(
                "input.{name}.type: expected one of: string, number, boolean, object, array"
            ));
            continue;
        };
        let required = match def.get("required") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                issues.push(format!("input.{name}.required: expected boolean"));
                true
            }
        };
        let default = def.get("default").filter(|v| !v.is_null()).cloned();
        if let Some(d) = &default {
            if !kind.matches(d) {
                issues.push(format!(
                    "input.{name}.default: expected {}, got {}",
                    kind.name(),
                    expr::kind(d)
                ));
            }
        }
        out.push(InputField {
            name: name.clone(),
            kind,
            required,
            default,
        });
    }
    out
}

/// Steps of a definition, nested `then`/`else` included.
pub(crate) fn count_steps(steps: &[Value]) -> usize {
    steps
        .iter()
        .map(|step| {
            let nested = |key: &str| {
                step.get(key)
                    .and_then(Value::as_array)
                    .map_or(0, |s| count_steps(s))
            };
            if step.get("action").and_then(Value::as_str) == Some("if") {
                1 + nested("then") + nested("else")
            } else {
                1
            }
        })
        .sum()
}

/// The names a step may refer to: results of earlier steps (`as`) and the input.
#[derive(Clone)]
struct Names {
    defined: BTreeSet<String>,
    input: BTreeSet<String>,
    /// Whether the procedure declares its input (then `input.x` must be declared).
    has_schema: bool,
}

struct Parser<'k, 'i> {
    known: &'k Known<'k>,
    issues: &'i mut Vec<String>,
}

impl Parser<'_, '_> {
    fn steps(
        &mut self,
        steps: &[Value],
        prefix: &str,
        depth: usize,
        names: &mut Names,
    ) -> Vec<Step> {
        let mut out = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let path = format!("{prefix}[{i}]");
            let Value::Object(s) = step else {
                self.issues.push(format!("{path}: expected step object"));
                continue;
            };
            let action = s.get("action").and_then(Value::as_str).unwrap_or("");
            if let Some(parsed) = self.step(s, action, &path, depth, names) {
                out.push(parsed);
            }
        }
        out
    }

    fn issue(&mut self, path: &str, action: &str, message: impl std::fmt::Display) {
        if action.is_empty() {
            self.issues.push(format!("{path}: {message}"));
        } else {
            self.issues.push(format!("{path} ({action}): {message}"));
        }
    }

    fn string(&mut self, s: &Map<String, Value>, field: &str, path: &str, action: &str) -> String {
        match s.get(field) {
            Some(Value::String(v)) if !v.is_empty() => v.clone(),
            _ => {
                self.issue(
                    path,
                    action,
                    format!("\"{field}\": expected non-empty string"),
                );
                String::new()
            }
        }
    }

    fn opt_string(
        &mut self,
        s: &Map<String, Value>,
        field: &str,
        path: &str,
        action: &str,
    ) -> Option<String> {
        match s.get(field) {
            None | Some(Value::Null) => None,
            Some(_) => Some(self.string(s, field, path, action)),
        }
    }

    fn object(&mut self, s: &Map<String, Value>, field: &str, path: &str, action: &str) -> Value {
        match s.get(field) {
            Some(v @ Value::Object(_)) => v.clone(),
            _ => {
                self.issue(path, action, format!("\"{field}\": expected object"));
                Value::Null
            }
        }
    }

    fn present(&mut self, s: &Map<String, Value>, field: &str, path: &str, action: &str) -> Value {
        match s.get(field) {
            Some(v) => v.clone(),
            None => {
                self.issue(path, action, format!("\"{field}\": required"));
                Value::Null
            }
        }
    }

    fn bucket(&mut self, s: &Map<String, Value>, path: &str, action: &str) -> String {
        let bucket = self.string(s, "bucket", path, action);
        if !bucket.is_empty() && !(self.known.bucket_exists)(&bucket) {
            self.issue(path, action, format!("bucket \"{bucket}\" does not exist"));
        }
        bucket
    }

    /// A reference `path` (`name`, `name.field`, `input.x`) must name the input or an
    /// earlier step's result.
    fn reference(&mut self, reference: &str, names: &Names, item: bool, path: &str, action: &str) {
        let root = reference.split('.').next().unwrap_or("");
        let field = reference.split('.').nth(1);
        let ok = match root {
            "input" => !names.has_schema || field.is_none_or(|f| names.input.contains(f)),
            "item" if item => true,
            _ => names.defined.contains(root),
        };
        if !ok {
            let message = if root == "input" {
                format!("reference \"{reference}\" names an input the procedure does not declare")
            } else {
                format!(
                    "reference \"{reference}\" names no earlier step result (results are named by \"as\" and usable only after their step)"
                )
            };
            self.issue(path, action, message);
        }
    }

    /// Every reference inside a value: templates, `$path` operands of expressions; and that
    /// every expression's operator is known.
    fn references(&mut self, value: &Value, names: &Names, item: bool, path: &str, action: &str) {
        match value {
            Value::String(s) => {
                for reference in template_paths(s) {
                    self.reference(reference, names, item, path, action);
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.references(v, names, item, path, action);
                }
            }
            Value::Object(map) => {
                if let Some((_, operand)) = as_expression(value) {
                    self.operand_references(operand, names, item, path, action);
                    return;
                }
                for v in map.values() {
                    self.references(v, names, item, path, action);
                }
            }
            _ => {}
        }
    }

    fn operand_references(
        &mut self,
        operand: &Value,
        names: &Names,
        item: bool,
        path: &str,
        action: &str,
    ) {
        match operand {
            Value::String(s) => match reference_path(s) {
                Some(reference) => self.reference(reference, names, item, path, action),
                None => self.references(operand, names, item, path, action),
            },
            Value::Array(items) => {
                for v in items {
                    self.operand_references(v, names, item, path, action);
                }
            }
            other => self.references(other, names, item, path, action),
        }
    }

    fn define(&mut self, names: &mut Names, name: &str) {
        if !name.is_empty() {
            names.defined.insert(name.to_owned());
        }
    }

    fn needs_rules(&mut self, path: &str, action: &str) {
        if !self.known.has_rules {
            self.issue(
                path,
                action,
                "needs the rule engine, which this server does not run",
            );
        }
    }

    fn step(
        &mut self,
        s: &Map<String, Value>,
        action: &str,
        path: &str,
        depth: usize,
        names: &mut Names,
    ) -> Option<Step> {
        let step = match action {
            "store.get" | "store.delete" => {
                let bucket = self.bucket(s, path, action);
                let key = self.present(s, "key", path, action);
                self.references(&key, names, false, path, action);
                if action == "store.delete" {
                    Step::Delete { bucket, key }
                } else {
                    let name = self.string(s, "as", path, action);
                    self.define(names, &name);
                    Step::Get { bucket, key, name }
                }
            }
            "store.where" | "store.findOne" => {
                let bucket = self.bucket(s, path, action);
                let filter = self.object(s, "filter", path, action);
                self.references(&filter, names, false, path, action);
                let name = self.string(s, "as", path, action);
                self.define(names, &name);
                if action == "store.where" {
                    Step::Where {
                        bucket,
                        filter,
                        name,
                    }
                } else {
                    Step::FindOne {
                        bucket,
                        filter,
                        name,
                    }
                }
            }
            "store.insert" => {
                let bucket = self.bucket(s, path, action);
                let data = self.object(s, "data", path, action);
                self.references(&data, names, false, path, action);
                let name = self.opt_string(s, "as", path, action);
                if let Some(n) = &name {
                    self.define(names, n);
                }
                Step::Insert { bucket, data, name }
            }
            "store.update" => {
                let bucket = self.bucket(s, path, action);
                let key = self.present(s, "key", path, action);
                let data = self.object(s, "data", path, action);
                self.references(&key, names, false, path, action);
                self.references(&data, names, false, path, action);
                let name = self.opt_string(s, "as", path, action);
                if let Some(n) = &name {
                    self.define(names, n);
                }
                Step::Update {
                    bucket,
                    key,
                    data,
                    name,
                }
            }
            "store.count" => {
                let bucket = self.bucket(s, path, action);
                let filter = match s.get("filter") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(self.object(s, "filter", path, action)),
                };
                if let Some(f) = &filter {
                    self.references(f, names, false, path, action);
                }
                let name = self.string(s, "as", path, action);
                self.define(names, &name);
                Step::Count {
                    bucket,
                    filter,
                    name,
                }
            }
            "aggregate" => {
                let source = self.string(s, "source", path, action);
                if !source.is_empty() {
                    self.reference(&source, names, false, path, action);
                }
                let op = match s.get("op").and_then(Value::as_str) {
                    Some("sum") => AggregateOp::Sum,
                    Some("avg") => AggregateOp::Avg,
                    Some("min") => AggregateOp::Min,
                    Some("max") => AggregateOp::Max,
                    Some("count") => AggregateOp::Count,
                    _ => {
                        self.issue(
                            path,
                            action,
                            "\"op\": expected one of: sum, avg, min, max, count",
                        );
                        AggregateOp::Count
                    }
                };
                let field = if op == AggregateOp::Count {
                    self.opt_string(s, "field", path, action)
                } else {
                    Some(self.string(s, "field", path, action))
                };
                let name = self.string(s, "as", path, action);
                self.define(names, &name);
                Step::Aggregate {
                    source,
                    field,
                    op,
                    name,
                }
            }
            "rules.emit" => {
                self.needs_rules(path, action);
                let topic = self.present(s, "topic", path, action);
                match &topic {
                    Value::String(t) if t.is_empty() => {
                        self.issue(path, action, "\"topic\": expected non-empty string")
                    }
                    Value::String(t)
                        if !t.contains("{{")
                            && t.split('.').next() == Some(RESERVED_TOPIC_ROOT) =>
                    {
                        self.issue(
                            path,
                            action,
                            format!("topics under \"{RESERVED_TOPIC_ROOT}.\" are reserved for store change events"),
                        )
                    }
                    Value::String(_) => {}
                    v if as_expression(v).is_some() => {}
                    _ => self.issue(path, action, "\"topic\": expected non-empty string"),
                }
                self.references(&topic, names, false, path, action);
                let data = match s.get("data") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(self.object(s, "data", path, action)),
                };
                if let Some(d) = &data {
                    self.references(d, names, false, path, action);
                }
                Step::Emit { topic, data }
            }
            "rules.setFact" => {
                self.needs_rules(path, action);
                let key = self.present(s, "key", path, action);
                let value = self.present(s, "value", path, action);
                self.references(&key, names, false, path, action);
                self.references(&value, names, false, path, action);
                Step::SetFact { key, value }
            }
            "rules.getFact" => {
                self.needs_rules(path, action);
                let key = self.present(s, "key", path, action);
                self.references(&key, names, false, path, action);
                let name = self.string(s, "as", path, action);
                self.define(names, &name);
                Step::GetFact { key, name }
            }
            "if" => {
                if depth >= self.known.max_depth {
                    self.issue(
                        path,
                        action,
                        format!(
                            "condition nesting depth exceeds maximum ({})",
                            self.known.max_depth
                        ),
                    );
                    return None;
                }
                let condition = match s.get("condition") {
                    Some(Value::Object(map)) if map.contains_key("ref") => {
                        let reference = match map.get("ref") {
                            Some(Value::String(r)) if !r.is_empty() => r.clone(),
                            _ => {
                                self.issue(
                                    path,
                                    action,
                                    "\"condition.ref\": expected non-empty string",
                                );
                                String::new()
                            }
                        };
                        if !reference.is_empty() {
                            self.reference(&reference, names, false, path, action);
                        }
                        let operator = map.get("operator").and_then(Value::as_str).unwrap_or("");
                        if !CONDITION_OPERATORS.contains(&operator) {
                            self.issue(
                                path,
                                action,
                                format!(
                                    "\"condition.operator\": expected one of: {}",
                                    CONDITION_OPERATORS.join(", ")
                                ),
                            );
                        }
                        let value = map.get("value").cloned();
                        if let Some(v) = &value {
                            self.references(v, names, false, path, action);
                        }
                        Condition::Compare {
                            reference,
                            operator: operator.to_owned(),
                            value,
                        }
                    }
                    Some(c) if as_expression(c).is_some() => {
                        self.references(c, names, false, path, action);
                        Condition::Expression(c.clone())
                    }
                    _ => {
                        self.issue(
                            path,
                            action,
                            "\"condition\": expected {ref, operator, value?} or an expression",
                        );
                        Condition::Expression(Value::Null)
                    }
                };
                let branch = |key: &str, required: bool, names: &Names, parser: &mut Self| {
                    let mut inner = names.clone();
                    match s.get(key) {
                        Some(Value::Array(steps)) if !steps.is_empty() => {
                            let parsed = parser.steps(
                                steps,
                                &format!("{path}.{key}"),
                                depth + 1,
                                &mut inner,
                            );
                            (parsed, inner.defined)
                        }
                        None | Some(Value::Null) if !required => (Vec::new(), BTreeSet::new()),
                        _ => {
                            parser.issue(
                                path,
                                action,
                                format!("\"{key}\": expected non-empty array of steps"),
                            );
                            (Vec::new(), BTreeSet::new())
                        }
                    }
                };
                let (then, then_names) = branch("then", true, names, self);
                let (otherwise, else_names) = branch("else", false, names, self);
                // A result named in either branch may be referred to after the `if` (it is
                // `null` when the other branch ran, as in the original).
                names.defined.extend(then_names);
                names.defined.extend(else_names);
                Step::If {
                    condition,
                    then,
                    otherwise,
                }
            }
            "transform" => {
                let source = self.string(s, "source", path, action);
                if !source.is_empty() {
                    self.reference(&source, names, false, path, action);
                }
                let op = match s.get("operation").and_then(Value::as_str) {
                    Some("map") => TransformOp::Map,
                    Some("filter") => TransformOp::Filter,
                    Some("pick") => TransformOp::Pick,
                    Some("pluck") => TransformOp::Pluck,
                    _ => {
                        self.issue(
                            path,
                            action,
                            "\"operation\": expected one of: map, filter, pick, pluck",
                        );
                        TransformOp::Map
                    }
                };
                let args = self.present(s, "args", path, action);
                match op {
                    TransformOp::Pluck if !args.is_string() => {
                        self.issue(path, action, "\"args\": pluck expects a field name")
                    }
                    TransformOp::Pick
                        if !args
                            .as_array()
                            .is_some_and(|a| a.iter().all(Value::is_string)) =>
                    {
                        self.issue(
                            path,
                            action,
                            "\"args\": pick expects an array of field names",
                        )
                    }
                    TransformOp::Map | TransformOp::Filter if !args.is_object() => {
                        self.issue(path, action, "\"args\": expected an object")
                    }
                    _ => {}
                }
                self.references(&args, names, true, path, action);
                let name = self.string(s, "as", path, action);
                self.define(names, &name);
                Step::Transform {
                    source,
                    op,
                    args,
                    name,
                }
            }
            "return" => {
                let value = self.present(s, "value", path, action);
                self.references(&value, names, false, path, action);
                Step::Return { value }
            }
            _ => {
                self.issue(path, "", format!("\"action\": expected one of: {ACTIONS}"));
                return None;
            }
        };
        Some(step)
    }
}
