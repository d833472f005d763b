//! Procedures (`procedures.*`): named, declarative server-side operations. An admin
//! registers a definition (validated here, [`definition`]); any client allowed to call it
//! by name runs it with the server's authority ([`exec`]); values in steps may be
//! templates, references or expressions ([`expr`]). Definitions are kept in the durable
//! store's side table and may come from the config file.
//!
//! A `transaction: true` call runs all its store steps in one serializable store
//! transaction ([`noex_store::Store::serializable_transaction`]): its commit fails with a
//! conflict when a record it read by key changed, or when a bucket it read through a filter
//! (`store.where`, `store.findOne`, `store.count`) changed at all since that read. A
//! conflicting call is run again from the start, up to [`CONFLICT_ATTEMPTS`] times, then
//! answered `CONFLICT`. Rules steps of a transactional call take effect after its commit,
//! so a rolled-back call emits, sets and pushes nothing.

pub(crate) mod definition;
pub(crate) mod exec;
pub(crate) mod expr;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use noex_protocol::ErrorCode;
use noex_protocol::payloads::{ProcedureCallResult, ProcedureInfo};
use noex_rules::RuleEngine;
use noex_store::{Store, StoreError};
use parking_lot::RwLock;
use serde_json::{Map, Value, json};

use crate::config::{LimitsConfig, ProceduresSection};
use crate::error::ServerError;
use crate::heavy::{HeavySlots, Principal};
use definition::{Known, Procedure};
use exec::{Direct, InTransaction, Run};

/// How many times a transactional call is run when its commit conflicts.
pub const CONFLICT_ATTEMPTS: usize = 5;

/// Side-table namespace of persisted procedures (key: name, value: the definition).
const PERSISTED: &str = "procedures.procedures";

/// The bounds procedures are held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcedureLimits {
    /// `limits.maxProcedures`.
    pub(crate) max_procedures: usize,
    /// `limits.maxProcedureBytes`.
    pub(crate) max_bytes: usize,
    /// `limits.maxProcedureSteps`: steps in one definition and steps one call executes.
    pub(crate) max_steps: usize,
    /// `procedures.maxConditionDepth`.
    pub(crate) max_depth: usize,
    /// `procedures.defaultTimeoutMs`.
    pub(crate) default_timeout_ms: u64,
    /// `procedures.maxConcurrentCallsPerClient`.
    pub(crate) max_calls_per_client: usize,
    /// `procedures.maxConcurrentCalls`, resolved (cores − 1, at least 1, when unset).
    pub(crate) max_calls: usize,
    /// `limits.maxResultBytes`: the largest answer of one call.
    pub(crate) max_result_bytes: usize,
    /// `limits.maxTransactionBytes`: the records one call writes, transactional or not.
    pub(crate) max_written_bytes: usize,
}

impl ProcedureLimits {
    /// The bounds the config sets.
    pub(crate) fn of(limits: &LimitsConfig, section: &ProceduresSection) -> Self {
        ProcedureLimits {
            max_procedures: limits.max_procedures,
            max_bytes: limits.max_procedure_bytes,
            max_steps: limits.max_procedure_steps,
            max_depth: section.max_condition_depth,
            default_timeout_ms: section.default_timeout_ms,
            max_calls_per_client: section.max_concurrent_calls_per_client,
            max_calls: section.max_concurrent_calls.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1))
            }),
            max_result_bytes: limits.max_result_bytes,
            max_written_bytes: limits.max_transaction_bytes,
        }
    }
}

/// The registered procedures of one server.
pub(crate) struct Procedures {
    registered: RwLock<BTreeMap<String, Arc<Procedure>>>,
    limits: ProcedureLimits,
    store: Store,
    rules: Option<RuleEngine>,
    /// Buckets no step may touch, each with what it is reserved for: the audit log's and
    /// the identity system's.
    reserved: Vec<(String, &'static str)>,
    /// The running calls: each client's (`procedures.maxConcurrentCallsPerClient`) and
    /// all of them (`procedures.maxConcurrentCalls`).
    calls: HeavySlots,
}

/// Whether a store step of `steps` (in `if` branches too) acts on `bucket`.
fn touches(steps: &[definition::Step], bucket: &str) -> bool {
    steps.iter().any(|step| match step {
        definition::Step::If {
            then, otherwise, ..
        } => touches(then, bucket) || touches(otherwise, bucket),
        other => other.bucket() == Some(bucket),
    })
}

fn not_found(name: &str) -> ServerError {
    ServerError::new(
        ErrorCode::NotFound,
        format!("Procedure \"{name}\" not found"),
    )
}

fn invalid(issues: Vec<String>) -> ServerError {
    ServerError::new(
        ErrorCode::ValidationError,
        format!("Procedure validation failed: {}", issues.join("; ")),
    )
    .with_details(json!({ "issues": issues }))
}

impl Procedures {
    /// No procedures yet.
    /// The procedures of a server; `reserved` lists buckets no step may touch, with what
    /// each is reserved for (the audit log's and the identity system's, which `store.*`
    /// refuses to everyone too).
    pub(crate) fn new(
        store: Store,
        rules: Option<RuleEngine>,
        limits: ProcedureLimits,
        reserved: Vec<(String, &'static str)>,
    ) -> Self {
        Procedures {
            registered: RwLock::new(BTreeMap::new()),
            calls: HeavySlots::per_client(limits.max_calls, limits.max_calls_per_client),
            limits,
            store,
            rules,
            reserved,
        }
    }

    fn parse(&self, raw: Map<String, Value>) -> Result<Procedure, ServerError> {
        // The larger of its JSON and its size in memory (a list of small numbers takes ~70
        // times its JSON: 679 definitions of 64 KB of JSON held 3 GB in the eighth red-team
        // run), as rule definitions are measured.
        let in_memory = noex_model::json::object_memory_size_within(&raw, self.limits.max_bytes);
        let size = noex_store::json_size_within(&raw, self.limits.max_bytes);
        if size.is_none() || in_memory > self.limits.max_bytes {
            return Err(ServerError::new(
                ErrorCode::ValidationError,
                format!(
                    "Procedure definition exceeds {} bytes; see limits.maxProcedureBytes",
                    self.limits.max_bytes
                ),
            ));
        }
        let store = &self.store;
        let reserved = &self.reserved;
        // The audit log's bucket is not there for procedures (a procedure rewrote and
        // deleted audit entries in the eighth red-team run), nor are the identity's.
        let exists = |bucket: &str| {
            !reserved.iter().any(|(r, _)| r == bucket) && store.bucket_len(bucket).is_some()
        };
        let known = Known {
            bucket_exists: &exists,
            has_rules: self.rules.is_some(),
            max_steps: self.limits.max_steps,
            max_depth: self.limits.max_depth,
        };
        definition::parse(raw, &known).map_err(invalid)
    }

    fn persist(&self, name: &str, raw: Option<&Map<String, Value>>) -> Result<(), ServerError> {
        self.store
            .persist_aux(PERSISTED, name, raw.map(|r| Value::Object(r.clone())))
            .map_err(ServerError::from)
    }

    /// `procedures.register`.
    pub(crate) fn register(&self, raw: Map<String, Value>) -> Result<String, ServerError> {
        let procedure = self.parse(raw)?;
        let mut registered = self.registered.write();
        if registered.contains_key(&procedure.name) {
            return Err(ServerError::new(
                ErrorCode::AlreadyExists,
                format!("Procedure \"{}\" already exists", procedure.name),
            ));
        }
        if registered.len() >= self.limits.max_procedures {
            return Err(ServerError::new(
                ErrorCode::RateLimited,
                format!(
                    "Procedure limit reached (max {}); see limits.maxProcedures",
                    self.limits.max_procedures
                ),
            ));
        }
        self.persist(&procedure.name, Some(&procedure.raw))?;
        let name = procedure.name.clone();
        registered.insert(name.clone(), Arc::new(procedure));
        Ok(name)
    }

    /// `procedures.unregister`.
    pub(crate) fn unregister(&self, name: &str) -> Result<(), ServerError> {
        let mut registered = self.registered.write();
        if !registered.contains_key(name) {
            return Err(not_found(name));
        }
        self.persist(name, None)?;
        registered.remove(name);
        Ok(())
    }

    /// `procedures.update`: the definition with `updates`' fields replaced (the name
    /// stays), validated as a new one.
    pub(crate) fn update(
        &self,
        name: &str,
        updates: Map<String, Value>,
    ) -> Result<(), ServerError> {
        let mut registered = self.registered.write();
        let Some(existing) = registered.get(name) else {
            return Err(not_found(name));
        };
        let mut raw = existing.raw.clone();
        raw.extend(updates);
        raw.insert("name".to_owned(), Value::String(name.to_owned()));
        let procedure = self.parse(raw)?;
        self.persist(name, Some(&procedure.raw))?;
        registered.insert(name.to_owned(), Arc::new(procedure));
        Ok(())
    }

    /// `procedures.get`: the definition as registered.
    pub(crate) fn get(&self, name: &str) -> Result<Map<String, Value>, ServerError> {
        self.registered
            .read()
            .get(name)
            .map(|p| p.raw.clone())
            .ok_or_else(|| not_found(name))
    }

    /// `procedures.list`, by name.
    pub(crate) fn list(&self) -> Vec<ProcedureInfo> {
        self.registered
            .read()
            .values()
            .map(|p| ProcedureInfo {
                name: p.name.clone(),
                description: p.description.clone(),
                steps_count: p.steps.len(),
            })
            .collect()
    }

    /// `procedures.call`: runs the procedure off the runtime's workers, once `principal`
    /// has fewer than `procedures.maxConcurrentCallsPerClient` calls running and one of
    /// the `procedures.maxConcurrentCalls` slots is free.
    pub(crate) async fn call(
        &self,
        name: &str,
        input: Map<String, Value>,
        principal: Principal,
    ) -> Result<ProcedureCallResult, ServerError> {
        let procedure = self
            .registered
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        // Registered before the audit log took the bucket (a restart with a new config):
        // refused at the call too.
        if let Some((reserved, why)) = self
            .reserved
            .iter()
            .find(|(bucket, _)| touches(&procedure.steps, bucket))
        {
            return Err(ServerError::new(
                ErrorCode::Forbidden,
                format!(
                    "Procedure \"{name}\" uses bucket \"{reserved}\", which is reserved for {why}"
                ),
            ));
        }
        let input = exec::validate_input(&procedure, input)?;
        // The client's turn; the call's time starts once it has it.
        let permit = self.calls.acquire(principal).await;
        let store = self.store.clone();
        let rules = self.rules.clone();
        let limits = self.limits;
        let timeout_ms = procedure.timeout_ms.unwrap_or(limits.default_timeout_ms);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(timeout_ms);
        let run = move || {
            let _permit = permit;
            // The blocking thread goes back to the pool without waiting for the fsync of
            // the call's writes (sync durability); the answer still waits for it below.
            noex_store::defer_durability(|| {
                // Store reads check the same deadline, so one long scan cannot outlive it.
                noex_store::with_read_deadline(Duration::from_millis(timeout_ms), || {
                    run_call(
                        &procedure,
                        &input,
                        &store,
                        rules.as_ref(),
                        limits,
                        deadline,
                        timeout_ms,
                    )
                })
            })
        };
        let (outcome, durability) = tokio::task::spawn_blocking(run)
            .await
            .map_err(ServerError::internal)?;
        if durability.is_pending() {
            durability.wait().await?;
        }
        if let Ok(answer) = &outcome {
            if noex_store::json_size_within(answer, limits.max_result_bytes).is_none() {
                return Err(ServerError::new(
                    ErrorCode::ValidationError,
                    format!(
                        "Result exceeds {} bytes; return less from procedure \"{name}\"",
                        limits.max_result_bytes
                    ),
                )
                .with_details(json!({ "limit": limits.max_result_bytes })));
            }
        }
        outcome.map_err(|e| {
            // A store read stopped by the deadline is the call's timeout: any failure past
            // the deadline is reported as the timeout.
            if Instant::now() >= deadline {
                exec::timed_out(name, timeout_ms)
            } else {
                e
            }
        })
    }

    /// Loads the persisted procedures (nothing when the store is not durable); one that no
    /// longer validates (its bucket was dropped, say) is skipped with an error in the log.
    pub(crate) fn restore(&self) {
        for (name, raw) in self.store.load_aux(PERSISTED) {
            let Value::Object(raw) = raw else { continue };
            match self.parse(raw) {
                Ok(procedure) => {
                    self.registered
                        .write()
                        .insert(procedure.name.clone(), Arc::new(procedure));
                }
                Err(err) => {
                    tracing::error!(procedure = %name, error = %err.message, "persisted procedure no longer registers; skipped");
                }
            }
        }
    }

    /// Registers the config file's procedures: the config is the source of truth, so one
    /// with the name of a persisted procedure replaces it.
    pub(crate) fn apply_config(&self, definitions: &[Value]) -> Result<(), (usize, String)> {
        for (index, definition) in definitions.iter().enumerate() {
            let Value::Object(raw) = definition else {
                return Err((index, "a procedure definition must be an object".to_owned()));
            };
            if let Some(name) = raw.get("name").and_then(Value::as_str) {
                self.registered.write().remove(name);
            }
            self.register(raw.clone()).map_err(|e| (index, e.message))?;
        }
        Ok(())
    }
}

/// The step results one call may hold, as a multiple of `limits.maxResultBytes`: a call's
/// answer carries them, and an answer is at most that; the factor leaves room for
/// intermediate results that a `return` or a `transform` then narrows.
pub(crate) const HELD_RESULTS_FACTOR: usize = 4;

/// One call: directly, or as a serializable transaction run again on conflict.
fn run_call(
    procedure: &Procedure,
    input: &Map<String, Value>,
    store: &Store,
    rules: Option<&RuleEngine>,
    limits: ProcedureLimits,
    deadline: Instant,
    timeout_ms: u64,
) -> Result<ProcedureCallResult, ServerError> {
    let new_run = |deferred| Run {
        procedure,
        input,
        rules,
        deferred,
        results: Map::new(),
        returned: None,
        steps_run: 0,
        max_steps: limits.max_steps,
        held: 0,
        max_held: limits.max_result_bytes.saturating_mul(HELD_RESULTS_FACTOR),
        deadline,
        timeout_ms,
        now_ms: store.now(),
    };
    let finish = |run: Run<'_>| ProcedureCallResult {
        success: true,
        result: run.returned,
        results: run.results,
    };
    if !procedure.transaction {
        let mut run = new_run(None);
        let mut direct = Direct::new(store, limits.max_written_bytes);
        run.steps(&procedure.steps, "steps", &mut direct)?;
        return Ok(finish(run));
    }
    let mut last_conflict = None;
    for _ in 0..CONFLICT_ATTEMPTS {
        let mut run = new_run(Some(Vec::new()));
        let mut failure = None;
        let committed = store.serializable_transaction(|tx| {
            match run.steps(&procedure.steps, "steps", &mut InTransaction(tx)) {
                Ok(()) => Ok(()),
                Err(e) => {
                    failure = Some(e);
                    // Any error rolls the transaction back.
                    Err(StoreError::Internal {
                        message: "procedure step failed".to_owned(),
                    })
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        match committed {
            Ok(()) => {
                if let Some(engine) = rules {
                    for effect in run.deferred.take().unwrap_or_default() {
                        exec::apply(engine, effect, &procedure.name).map_err(|e| {
                            let mut err = ServerError::from(e);
                            err.message = format!(
                                "Procedure \"{}\" committed its store steps, but a rules step failed: {}",
                                procedure.name, err.message
                            );
                            err
                        })?;
                    }
                }
                return Ok(finish(run));
            }
            Err(e @ StoreError::Conflict { .. }) => {
                last_conflict = Some(e);
                if Instant::now() >= deadline {
                    return Err(exec::timed_out(&procedure.name, timeout_ms));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut err = ServerError::from(last_conflict.unwrap_or(StoreError::Conflict {
        bucket: String::new(),
        key: Value::Null,
    }));
    err.message = format!(
        "Procedure \"{}\" conflicted with concurrent writes {CONFLICT_ATTEMPTS} times: {}",
        procedure.name, err.message
    );
    Err(err)
}
