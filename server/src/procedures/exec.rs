//! Running a procedure: its steps in order against a [`StoreSteps`] (the store directly,
//! or one serializable store transaction when the procedure is transactional) and the
//! rule engine, within the call's deadline and step bound.

use std::time::Instant;

use noex_protocol::ErrorCode;
use noex_rules::{EmitOptions, RuleEngine};
use noex_store::{Record, Store, StoreResult, Transaction};
use serde_json::{Map, Value};

use super::definition::{AggregateOp, Condition, Procedure, Step, TransformOp};
use super::expr::{self, ExprError, Scope, compare, json_equal, truthy};
use crate::error::ServerError;
use crate::store_bridge::RESERVED_TOPIC_ROOT;

/// The store operations a step can make.
pub(crate) trait StoreSteps {
    fn get(&mut self, bucket: &str, key: &Value) -> StoreResult<Option<Record>>;
    fn where_(&mut self, bucket: &str, filter: &Map<String, Value>) -> StoreResult<Vec<Record>>;
    fn find_one(
        &mut self,
        bucket: &str,
        filter: &Map<String, Value>,
    ) -> StoreResult<Option<Record>>;
    fn insert(&mut self, bucket: &str, data: Map<String, Value>) -> StoreResult<Record>;
    fn update(
        &mut self,
        bucket: &str,
        key: &Value,
        data: Map<String, Value>,
    ) -> StoreResult<Record>;
    fn delete(&mut self, bucket: &str, key: &Value) -> StoreResult<bool>;
    fn count(&mut self, bucket: &str, filter: Option<&Map<String, Value>>) -> StoreResult<usize>;
}

/// Each step is its own write (a procedure without `transaction`). The records one call
/// writes are bounded together as a transaction's are (`limits.maxTransactionBytes`):
/// each write is measured once done, and a write after the bound is passed fails.
pub(crate) struct Direct<'a> {
    store: &'a Store,
    /// Bytes of JSON of the records written so far.
    written: usize,
    max_written: usize,
}

impl<'a> Direct<'a> {
    /// Steps on `store`, writing at most `max_written` bytes of records in all.
    pub(crate) fn new(store: &'a Store, max_written: usize) -> Self {
        Direct {
            store,
            written: 0,
            max_written,
        }
    }

    /// Fails once the call has written more than its bound.
    fn check_room(&self) -> StoreResult<()> {
        if self.written > self.max_written {
            return Err(noex_store::StoreError::InvalidArgument {
                message: format!(
                    "Procedure call writes more than {} bytes of records \
                     (limits.maxTransactionBytes)",
                    self.max_written
                ),
            });
        }
        Ok(())
    }

    /// Counts a written record.
    fn wrote(&mut self, record: &Record) {
        let room = self.max_written.saturating_sub(self.written);
        let size = noex_store::json_size_within(record, room).unwrap_or(room.saturating_add(1));
        self.written = self.written.saturating_add(size);
    }
}

impl StoreSteps for Direct<'_> {
    fn get(&mut self, bucket: &str, key: &Value) -> StoreResult<Option<Record>> {
        self.store.bucket(bucket).get(key)
    }
    fn where_(&mut self, bucket: &str, filter: &Map<String, Value>) -> StoreResult<Vec<Record>> {
        self.store.bucket(bucket).where_(filter)
    }
    fn find_one(
        &mut self,
        bucket: &str,
        filter: &Map<String, Value>,
    ) -> StoreResult<Option<Record>> {
        self.store.bucket(bucket).find_one(filter)
    }
    fn insert(&mut self, bucket: &str, data: Map<String, Value>) -> StoreResult<Record> {
        self.check_room()?;
        let record = self.store.bucket(bucket).insert(data)?;
        self.wrote(&record);
        Ok(record)
    }
    fn update(
        &mut self,
        bucket: &str,
        key: &Value,
        data: Map<String, Value>,
    ) -> StoreResult<Record> {
        self.check_room()?;
        let record = self.store.bucket(bucket).update(key, data)?;
        self.wrote(&record);
        Ok(record)
    }
    fn delete(&mut self, bucket: &str, key: &Value) -> StoreResult<bool> {
        self.store.bucket(bucket).delete(key)
    }
    fn count(&mut self, bucket: &str, filter: Option<&Map<String, Value>>) -> StoreResult<usize> {
        self.store.bucket(bucket).count(filter)
    }
}

/// Every step inside one serializable transaction.
pub(crate) struct InTransaction<'t, 's>(pub(crate) &'t mut Transaction<'s>);

impl StoreSteps for InTransaction<'_, '_> {
    fn get(&mut self, bucket: &str, key: &Value) -> StoreResult<Option<Record>> {
        self.0.bucket(bucket)?.get(key)
    }
    fn where_(&mut self, bucket: &str, filter: &Map<String, Value>) -> StoreResult<Vec<Record>> {
        self.0.bucket(bucket)?.where_(filter)
    }
    fn find_one(
        &mut self,
        bucket: &str,
        filter: &Map<String, Value>,
    ) -> StoreResult<Option<Record>> {
        self.0.bucket(bucket)?.find_one(filter)
    }
    fn insert(&mut self, bucket: &str, data: Map<String, Value>) -> StoreResult<Record> {
        self.0.bucket(bucket)?.insert(data)
    }
    fn update(
        &mut self,
        bucket: &str,
        key: &Value,
        data: Map<String, Value>,
    ) -> StoreResult<Record> {
        self.0.bucket(bucket)?.update(key, data)
    }
    fn delete(&mut self, bucket: &str, key: &Value) -> StoreResult<bool> {
        self.0.bucket(bucket)?.delete(key)
    }
    fn count(&mut self, bucket: &str, filter: Option<&Map<String, Value>>) -> StoreResult<usize> {
        self.0.bucket(bucket)?.count(filter)
    }
}

/// A rules step's effect: applied at once, or after the commit in a transactional call
/// (so a rolled-back call emits and sets nothing).
pub(crate) enum Effect {
    Emit { topic: String, data: Value },
    SetFact { key: String, value: Value },
}

/// One call in progress.
pub(crate) struct Run<'a> {
    pub(crate) procedure: &'a Procedure,
    pub(crate) input: &'a Map<String, Value>,
    pub(crate) rules: Option<&'a RuleEngine>,
    /// `Some` in a transactional call: rules effects wait for the commit.
    pub(crate) deferred: Option<Vec<Effect>>,
    pub(crate) results: Map<String, Value>,
    pub(crate) returned: Option<Value>,
    pub(crate) steps_run: usize,
    pub(crate) max_steps: usize,
    /// Bytes (estimated in memory) of the step results produced so far, never refunded.
    pub(crate) held: usize,
    /// At most this many: `limits.maxResultBytes` × [`super::HELD_RESULTS_FACTOR`].
    pub(crate) max_held: usize,
    pub(crate) deadline: Instant,
    pub(crate) timeout_ms: u64,
    pub(crate) now_ms: u64,
}

/// A step's failure, before it is given its path.
enum Failure {
    Value(String),
    Store(noex_store::StoreError),
    Rules(noex_rules::RulesError),
    Server(ServerError),
}

impl From<ExprError> for Failure {
    fn from(e: ExprError) -> Self {
        Failure::Value(e.0)
    }
}

impl From<noex_store::StoreError> for Failure {
    fn from(e: noex_store::StoreError) -> Self {
        Failure::Store(e)
    }
}

/// The error a failed step answers: store and rules errors keep their codes; a value that
/// cannot be computed is a `VALIDATION_ERROR`; each message names the step.
fn located(failure: Failure, path: &str, action: &str) -> ServerError {
    let prefix = format!("{path} ({action})");
    match failure {
        Failure::Value(message) => ServerError::new(
            ErrorCode::ValidationError,
            format!("Procedure step {prefix} failed: {message}"),
        ),
        Failure::Store(e) => {
            let mut err = ServerError::from(e);
            err.message = format!("Procedure step {prefix} failed: {}", err.message);
            err
        }
        Failure::Rules(e) => {
            let mut err = ServerError::from(e);
            err.message = format!("Procedure step {prefix} failed: {}", err.message);
            err
        }
        Failure::Server(err) => err,
    }
}

fn object(value: Value, what: &str) -> Result<Map<String, Value>, Failure> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Failure::Value(format!(
            "{what} must resolve to an object, got {}",
            expr::kind(&other)
        ))),
    }
}

fn text(value: Value, what: &str) -> Result<String, Failure> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s),
        other => Err(Failure::Value(format!(
            "{what} must resolve to a non-empty string, got {}",
            expr::kind(&other)
        ))),
    }
}

impl<'a> Run<'a> {
    fn scope<'s>(&'s self, item: Option<&'s Value>) -> Scope<'s> {
        Scope {
            input: self.input,
            results: &self.results,
            item,
            now_ms: self.now_ms,
        }
    }

    fn resolve(&self, value: &Value) -> Result<Value, Failure> {
        Ok(self.scope(None).resolve(value)?)
    }

    /// Runs `steps` (a branch or the whole procedure) until the end or a `return`.
    pub(crate) fn steps(
        &mut self,
        steps: &[Step],
        prefix: &str,
        store: &mut dyn StoreSteps,
    ) -> Result<(), ServerError> {
        for (i, step) in steps.iter().enumerate() {
            if self.returned.is_some() {
                break;
            }
            let path = format!("{prefix}[{i}]");
            self.steps_run += 1;
            if self.steps_run > self.max_steps {
                return Err(ServerError::new(
                    ErrorCode::ValidationError,
                    format!(
                        "Procedure \"{}\" exceeded {} executed steps at {path}; see limits.maxProcedureSteps",
                        self.procedure.name, self.max_steps
                    ),
                ));
            }
            self.check_deadline()?;
            match step {
                Step::If {
                    condition,
                    then,
                    otherwise,
                } => {
                    let taken = self
                        .condition(condition)
                        .map_err(|f| located(f, &path, "if"))?;
                    if taken {
                        self.steps(then, &format!("{path}.then"), store)?;
                    } else {
                        self.steps(otherwise, &format!("{path}.else"), store)?;
                    }
                }
                other => self
                    .step(other, store)
                    .map_err(|f| located(f, &path, other.action()))?,
            }
        }
        Ok(())
    }

    /// The original's timeout error: `INTERNAL_ERROR`, naming the procedure.
    pub(crate) fn check_deadline(&self) -> Result<(), ServerError> {
        if Instant::now() >= self.deadline {
            return Err(timed_out(&self.procedure.name, self.timeout_ms));
        }
        Ok(())
    }

    fn condition(&self, condition: &Condition) -> Result<bool, Failure> {
        Ok(match condition {
            Condition::Expression(e) => truthy(&self.resolve(e)?),
            Condition::Compare {
                reference,
                operator,
                value,
            } => {
                let actual = self.scope(None).lookup(reference);
                let expected = match value {
                    Some(v) => self.resolve(v)?,
                    None => Value::Null,
                };
                match operator.as_str() {
                    "eq" => json_equal(&actual, &expected),
                    "neq" => !json_equal(&actual, &expected),
                    "exists" => !actual.is_null(),
                    "not_exists" => actual.is_null(),
                    op => compare(op, &actual, &expected),
                }
            }
        })
    }

    /// Keeps a step's result, its size charged to the call's bound first.
    fn set(&mut self, name: &str, value: Value) -> Result<(), Failure> {
        let room = self.max_held.saturating_sub(self.held);
        let size = noex_model::json::memory_size_within(&value, room);
        if size > room {
            return Err(self.too_much());
        }
        self.held += size;
        self.results.insert(name.to_owned(), value);
        Ok(())
    }

    /// The failure of a call whose step results pass `max_held` (a transform that doubles
    /// its input step after step held 3 GB in the eighth red-team run).
    fn too_much(&self) -> Failure {
        Failure::Value(format!(
            "the results of this call's steps take more than {} bytes ({} times limits.maxResultBytes)",
            self.max_held,
            super::HELD_RESULTS_FACTOR
        ))
    }

    fn step(&mut self, step: &Step, store: &mut dyn StoreSteps) -> Result<(), Failure> {
        match step {
            Step::Get { bucket, key, name } => {
                let key = self.resolve(key)?;
                let record = store.get(bucket, &key)?;
                self.set(name, record.map_or(Value::Null, Value::Object))?;
            }
            Step::Where {
                bucket,
                filter,
                name,
            } => {
                let filter = self.scope(None).resolve_filter(filter)?;
                let records = store.where_(bucket, &filter)?;
                self.set(
                    name,
                    Value::Array(records.into_iter().map(Value::Object).collect()),
                )?;
            }
            Step::FindOne {
                bucket,
                filter,
                name,
            } => {
                let filter = self.scope(None).resolve_filter(filter)?;
                let record = store.find_one(bucket, &filter)?;
                self.set(name, record.map_or(Value::Null, Value::Object))?;
            }
            Step::Insert { bucket, data, name } => {
                let data = object(self.resolve(data)?, "data")?;
                let record = store.insert(bucket, data)?;
                if let Some(name) = name {
                    self.set(name, Value::Object(record))?;
                }
            }
            Step::Update {
                bucket,
                key,
                data,
                name,
            } => {
                let key = self.resolve(key)?;
                let data = object(self.resolve(data)?, "data")?;
                let record = store.update(bucket, &key, data)?;
                if let Some(name) = name {
                    self.set(name, Value::Object(record))?;
                }
            }
            Step::Delete { bucket, key } => {
                let key = self.resolve(key)?;
                store.delete(bucket, &key)?;
            }
            Step::Count {
                bucket,
                filter,
                name,
            } => {
                let filter = match filter {
                    Some(f) => Some(self.scope(None).resolve_filter(f)?),
                    None => None,
                };
                let n = store.count(bucket, filter.as_ref())?;
                self.set(name, Value::from(n))?;
            }
            Step::Aggregate {
                source,
                field,
                op,
                name,
            } => {
                let value = aggregate(
                    &self.scope(None).lookup(source),
                    source,
                    field.as_deref(),
                    *op,
                )?;
                self.set(name, value)?;
            }
            Step::Emit { topic, data } => {
                let topic = text(self.resolve(topic)?, "topic")?;
                if topic.split('.').next() == Some(RESERVED_TOPIC_ROOT) {
                    return Err(Failure::Value(format!(
                        "topics under \"{RESERVED_TOPIC_ROOT}.\" are reserved for store change events"
                    )));
                }
                let data = match data {
                    Some(d) => Value::Object(object(self.resolve(d)?, "data")?),
                    None => Value::Object(Map::new()),
                };
                self.effect(Effect::Emit { topic, data })?;
            }
            Step::SetFact { key, value } => {
                let key = text(self.resolve(key)?, "key")?;
                let value = self.resolve(value)?;
                self.effect(Effect::SetFact { key, value })?;
            }
            Step::GetFact { key, name } => {
                let key = text(self.resolve(key)?, "key")?;
                // A fact this call set but has not applied yet (transactional) reads as set.
                let pending = self.deferred.as_ref().and_then(|effects| {
                    effects.iter().rev().find_map(|e| match e {
                        Effect::SetFact { key: k, value } if *k == key => Some(value.clone()),
                        _ => None,
                    })
                });
                let value = match pending {
                    Some(v) => v,
                    None => self.engine()?.get_fact(&key).unwrap_or(Value::Null),
                };
                self.set(name, value)?;
            }
            Step::Transform {
                source,
                op,
                args,
                name,
            } => {
                let value = self.transform(source, *op, args)?;
                self.set(name, value)?;
            }
            Step::Return { value } => {
                self.returned = Some(self.resolve(value)?);
            }
            Step::If { .. } => {}
        }
        Ok(())
    }

    fn engine(&self) -> Result<&'a RuleEngine, Failure> {
        self.rules.ok_or_else(|| {
            Failure::Server(ServerError::new(
                ErrorCode::RulesNotAvailable,
                "Rule engine is not configured",
            ))
        })
    }

    fn effect(&mut self, effect: Effect) -> Result<(), Failure> {
        let engine = self.engine()?;
        match &mut self.deferred {
            Some(effects) => {
                effects.push(effect);
                Ok(())
            }
            None => apply(engine, effect, &self.procedure.name).map_err(Failure::Rules),
        }
    }

    fn transform(&self, source: &str, op: TransformOp, args: &Value) -> Result<Value, Failure> {
        let value = self.scope(None).lookup(source);
        let not = |what: &str| Failure::Value(format!("source \"{source}\" is not {what}"));
        Ok(match op {
            TransformOp::Pluck => {
                let Value::Array(items) = value else {
                    return Err(not("an array"));
                };
                let field = args.as_str().unwrap_or("");
                Value::Array(
                    items
                        .iter()
                        .map(|i| i.get(field).cloned().unwrap_or(Value::Null))
                        .collect(),
                )
            }
            TransformOp::Pick => {
                let Value::Object(map) = value else {
                    return Err(not("an object"));
                };
                let mut picked = Map::new();
                for field in args
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if let Some(v) = map.get(field) {
                        picked.insert(field.to_owned(), v.clone());
                    }
                }
                Value::Object(picked)
            }
            TransformOp::Filter => {
                let Value::Array(items) = value else {
                    return Err(not("an array"));
                };
                let mut kept = Vec::new();
                for (n, item) in items.into_iter().enumerate() {
                    if n % 256 == 0 {
                        self.check_deadline().map_err(Failure::Server)?;
                    }
                    let scope = self.scope(Some(&item));
                    let keep = if expr::as_expression(args).is_some() {
                        truthy(&scope.resolve(args)?)
                    } else {
                        let wanted = object(scope.resolve(args)?, "args")?;
                        item.as_object().is_some_and(|record| {
                            wanted
                                .iter()
                                .all(|(k, v)| json_equal(record.get(k).unwrap_or(&Value::Null), v))
                        })
                    };
                    if keep {
                        kept.push(item);
                    }
                }
                Value::Array(kept)
            }
            TransformOp::Map => {
                let Value::Array(items) = value else {
                    return Err(not("an array"));
                };
                let mut out = Vec::with_capacity(items.len());
                // What the output may grow to before it is kept (`set` charges it then):
                // checked item by item, so a map that multiplies its input stops early.
                let mut room = self.max_held.saturating_sub(self.held);
                for (n, item) in items.into_iter().enumerate() {
                    if n % 256 == 0 {
                        self.check_deadline().map_err(Failure::Server)?;
                    }
                    let Value::Object(mut record) = item else {
                        out.push(item);
                        continue;
                    };
                    let added = {
                        let current = Value::Object(record.clone());
                        object(self.scope(Some(&current)).resolve(args)?, "args")?
                    };
                    record.extend(added);
                    let size = noex_model::json::object_memory_size_within(&record, room);
                    if size > room {
                        return Err(self.too_much());
                    }
                    room -= size;
                    out.push(Value::Object(record));
                }
                Value::Array(out)
            }
        })
    }
}

/// The `INTERNAL_ERROR` the original answers for a call past its `timeoutMs`.
pub(crate) fn timed_out(name: &str, timeout_ms: u64) -> ServerError {
    ServerError::new(
        ErrorCode::InternalError,
        format!("Procedure \"{name}\" timed out after {timeout_ms}ms"),
    )
}

/// Applies one rules effect (source `procedure:NAME`).
pub(crate) fn apply(
    engine: &RuleEngine,
    effect: Effect,
    procedure: &str,
) -> noex_rules::Result<()> {
    let source = format!("procedure:{procedure}");
    match effect {
        Effect::Emit { topic, data } => engine
            .emit_with(
                &topic,
                data,
                EmitOptions {
                    source: Some(source),
                    ..EmitOptions::default()
                },
            )
            .map(|_| ()),
        Effect::SetFact { key, value } => engine
            .set_fact_with_source(&key, value, &source)
            .map(|_| ()),
    }
}

fn aggregate(
    source: &Value,
    name: &str,
    field: Option<&str>,
    op: AggregateOp,
) -> Result<Value, Failure> {
    let Value::Array(items) = source else {
        return Err(Failure::Value(format!("source \"{name}\" is not an array")));
    };
    if op == AggregateOp::Count {
        return Ok(Value::from(items.len()));
    }
    let field = field.unwrap_or("");
    let numbers: Vec<&serde_json::Number> = items
        .iter()
        .filter_map(|i| match i.get(field) {
            Some(Value::Number(n)) => Some(n),
            _ => None,
        })
        .collect();
    let floats = numbers.iter().filter_map(|n| n.as_f64());
    let as_value = |n: f64| {
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            Ok(Value::from(n as i64))
        } else {
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| Failure::Value("the result is not a finite number".to_owned()))
        }
    };
    match op {
        AggregateOp::Sum => as_value(floats.sum()),
        AggregateOp::Avg if items.is_empty() => Ok(Value::from(0)),
        AggregateOp::Avg => as_value(floats.sum::<f64>() / items.len() as f64),
        AggregateOp::Min => floats.reduce(f64::min).map_or(Ok(Value::from(0)), as_value),
        AggregateOp::Max => floats.reduce(f64::max).map_or(Ok(Value::from(0)), as_value),
        AggregateOp::Count => Ok(Value::from(items.len())),
    }
}

/// Checks `input` against the procedure's input schema, filling defaults; the original's
/// messages (`Missing required input "x"`, `Input "x": expected number, got string`).
pub(crate) fn validate_input(
    procedure: &Procedure,
    mut input: Map<String, Value>,
) -> Result<Map<String, Value>, ServerError> {
    let mut issues = Vec::new();
    for field in &procedure.input {
        match input.get(&field.name) {
            None | Some(Value::Null) => match &field.default {
                Some(d) => {
                    input.insert(field.name.clone(), d.clone());
                }
                None if field.required => {
                    issues.push(format!("Missing required input \"{}\"", field.name))
                }
                None => {}
            },
            Some(v) if !field.kind.matches(v) => issues.push(format!(
                "Input \"{}\": expected {}, got {}",
                field.name,
                field.kind.name(),
                expr::kind(v)
            )),
            Some(_) => {}
        }
    }
    if issues.is_empty() {
        return Ok(input);
    }
    Err(ServerError::new(
        ErrorCode::ValidationError,
        format!("Invalid procedure input: {}", issues.join("; ")),
    )
    .with_details(serde_json::json!({ "issues": issues })))
}
