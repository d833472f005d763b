//! Processing of one input (an emitted event, a fact change, a fired timer, an expired
//! absence wait) to completion: matching rules run in priority order, their actions execute,
//! and the work they cause (events, fact changes) is queued and processed in turn, up to the
//! chaining depth bound. Runs under the engine's state lock; events to deliver to subscribers
//! are returned so callbacks run after the lock is released.
//!
//! Every input has a [`Budget`] (work units, bytes produced and bytes scanned by
//! conditions, see `budget`). When it runs out, the
//! action that hit the bound does not run, nothing more is queued, the work still queued is
//! dropped, and the input is counted in `cascades_truncated` with one warning.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::budget::{Budget, Fault};
use crate::config::EngineConfig;
use crate::eval::{EvalContext, as_ref};
use crate::event::Event;
use crate::facts::{FactStore, Refusal, value_bytes};
use crate::model::{Action, LogLevel, Rule, TemporalPattern, Trigger};
use crate::pattern::{
    check_fact_pattern, check_topic_pattern, fact_matches, parse_duration_ms, topic_matches,
};
use crate::temporal::{TemporalMatch, TemporalState};
use crate::timers::{TimerSpec, TimerTarget, Timers};

/// Mutable engine state, guarded by one lock.
#[derive(Default)]
pub(crate) struct State {
    pub facts: FactStore,
    /// Rules with their registration sequence number (ties in priority run in that order).
    /// Shared, so selecting the candidates of a work item does not copy rule definitions.
    pub rules: HashMap<String, (u64, Arc<Rule>)>,
    pub next_seq: u64,
    pub temporal: TemporalState,
    pub timers: Timers,
    pub events_processed: u64,
    pub rules_executed: u64,
    pub action_errors: u64,
    pub inputs_processed: u64,
    pub processing_nanos: u128,
    pub cascades_truncated: u64,
    pub work_dropped: u64,
    /// Per-rule rate limits of `log` actions.
    pub log_limits: LogLimits,
    /// The size of every registered rule, as `max_rule_bytes` counts it.
    pub rule_bytes: HashMap<String, usize>,
    /// The sum of `rule_bytes` (bounded by `max_rules_bytes`).
    pub rules_bytes: usize,
}

/// Token buckets bounding the `log` lines of each rule (`max_rule_logs_per_second`).
#[derive(Default)]
pub(crate) struct LogLimits {
    buckets: HashMap<String, LogBucket>,
    /// Lines dropped so far, all rules (removed ones included).
    dropped: u64,
}

struct LogBucket {
    tokens: f64,
    last_ms: i64,
    /// Lines dropped since the last one that passed.
    dropped: u64,
}

/// What to do with one `log` line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogVerdict {
    /// Write it, after a summary of `dropped` lines dropped before it when not 0.
    Write { dropped: u64 },
    /// Drop it.
    Drop,
}

impl LogLimits {
    /// Takes a token of `rule_id`'s bucket at `now_ms` (ms of the engine clock).
    pub(crate) fn admit(&mut self, rule_id: &str, now_ms: i64, per_second: u32) -> LogVerdict {
        let capacity = f64::from(per_second);
        // The key is copied only for a rule's first line.
        if !self.buckets.contains_key(rule_id) {
            let full = LogBucket {
                tokens: capacity,
                last_ms: now_ms,
                dropped: 0,
            };
            self.buckets.insert(rule_id.to_owned(), full);
        }
        let Some(bucket) = self.buckets.get_mut(rule_id) else {
            return LogVerdict::Drop;
        };
        let elapsed = now_ms.saturating_sub(bucket.last_ms).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * capacity / 1000.0).min(capacity);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            LogVerdict::Write {
                dropped: std::mem::take(&mut bucket.dropped),
            }
        } else {
            bucket.dropped += 1;
            self.dropped += 1;
            LogVerdict::Drop
        }
    }

    /// Forgets a removed rule's bucket.
    pub(crate) fn forget(&mut self, rule_id: &str) {
        self.buckets.remove(rule_id);
    }

    /// Lines dropped so far.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped
    }
}

/// One unit of work.
pub(crate) enum Work {
    /// An event: delivered to subscribers, matched against event and temporal rules.
    Event { event: Event, depth: usize },
    /// A fact was set (`value` Some) or deleted (`value` None).
    Fact {
        key: String,
        value: Option<Value>,
        previous: Option<Value>,
        cause: Option<Cause>,
        depth: usize,
    },
    /// A timer expired: its event is delivered and matched like any event, plus timer rules.
    Timer {
        name: String,
        event: Event,
        depth: usize,
    },
    /// A temporal pattern completed outside an event (absence deadline).
    Temporal {
        matched: TemporalMatch,
        depth: usize,
    },
}

/// What work caused by a rule needs of the event that caused it: ids only, so a queued
/// fact change does not carry a copy of a (possibly large) event.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    id: String,
    correlation_id: Option<String>,
}

impl Cause {
    fn of(event: &Event) -> Self {
        Cause {
            id: event.id.clone(),
            correlation_id: event.correlation_id.clone(),
        }
    }
}

impl State {
    /// Enabled rules whose trigger satisfies `select`, highest priority first.
    fn candidates(&self, select: impl Fn(&Trigger) -> bool) -> Vec<Arc<Rule>> {
        let mut found: Vec<&(u64, Arc<Rule>)> = self
            .rules
            .values()
            .filter(|(_, r)| r.input.enabled && select(&r.input.trigger))
            .collect();
        found.sort_by(|(sa, a), (sb, b)| b.input.priority.cmp(&a.input.priority).then(sa.cmp(sb)));
        found.into_iter().map(|(_, r)| Arc::clone(r)).collect()
    }
}

/// Fixed cost, in bytes, charged for each queued work item on top of its values (the queue
/// slot, event id, topic and source strings, the delivery copy of an event).
const WORK_ITEM_BYTES: usize = std::mem::size_of::<Work>() + 160;

/// Work items between two chances for other callers to take the engine's lock.
const YIELD_EVERY: usize = 64;

/// Processes `first` and everything it causes; returns the events to deliver, in order.
/// `config` bounds the run; `engine` is what timers and absence waits it starts fire into.
pub(crate) fn process(
    config: &EngineConfig,
    engine: &Arc<dyn TimerTarget>,
    state: &mut parking_lot::MutexGuard<'_, State>,
    first: Work,
) -> Vec<Event> {
    let started = std::time::Instant::now();
    let mut budget = config.budget();
    let mut queue = VecDeque::new();
    // The input itself is the first work item: one unit (it runs even if that is over the
    // bound, which then stops its rules); its data is the caller's and not charged.
    let _ = budget.unit();
    queue.push_back(first);
    let mut delivered = Vec::new();
    let mut depth_reached = false;
    let mut since_yield = 0usize;
    while let Some(work) = queue.pop_front() {
        // A long cascade lets other callers of the engine (a client's `rules.getFact`, a
        // timer) in between its work items, so one input never holds them for its whole
        // run. Each work item still sees and leaves a consistent state.
        since_yield += 1;
        if since_yield == YIELD_EVERY {
            since_yield = 0;
            parking_lot::MutexGuard::bump(state);
        }
        let mut run = Runner {
            engine,
            config,
            queue: &mut queue,
            budget: &mut budget,
            depth_reached: &mut depth_reached,
        };
        match work {
            Work::Event { event, depth } => {
                state.events_processed += 1;
                if run.may_trigger(depth) {
                    run.on_event(state, &event, depth);
                }
                delivered.push(event);
            }
            Work::Fact {
                key,
                value,
                previous,
                cause,
                depth,
            } => {
                if run.may_trigger(depth) {
                    let deleted = value.is_none();
                    let mut data = Map::new();
                    data.insert("key".into(), json!(key));
                    data.insert("value".into(), value.unwrap_or(Value::Null));
                    data.insert("previousValue".into(), previous.unwrap_or(Value::Null));
                    data.insert("deleted".into(), json!(deleted));
                    let ctx = EvalContext {
                        trigger_data: Arc::new(Value::Object(data)),
                        ..Default::default()
                    };
                    for rule in state.candidates(
                        |t| matches!(t, Trigger::Fact { pattern } if fact_matches(pattern, &key)),
                    ) {
                        if run
                            .run_rule(state, &rule, &ctx, cause.as_ref(), depth)
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            Work::Timer { name, event, depth } => {
                state.events_processed += 1;
                if run.may_trigger(depth) {
                    let mut ctx = EvalContext {
                        trigger_data: Arc::new(event.data.clone()),
                        ..Default::default()
                    };
                    ctx.vars.insert("timerName".into(), json!(name));
                    let cause = Cause::of(&event);
                    let mut stopped = false;
                    for rule in state.candidates(
                        |t| matches!(t, Trigger::Timer { name: n } if fact_matches(n, &name)),
                    ) {
                        if run
                            .run_rule(state, &rule, &ctx, Some(&cause), depth)
                            .is_err()
                        {
                            stopped = true;
                            break;
                        }
                    }
                    if !stopped {
                        run.on_event(state, &event, depth);
                    }
                }
                delivered.push(event);
            }
            Work::Temporal { matched, depth } => {
                if run.may_trigger(depth)
                    && let Some((_, rule)) = state
                        .rules
                        .get(&matched.rule_id)
                        .filter(|(_, r)| r.input.enabled)
                {
                    let rule = Arc::clone(rule);
                    // A bound reached here ends the loop below like anywhere else.
                    let _ = run.run_temporal(state, &rule, matched, depth);
                }
            }
        }
        if let Some(bound) = budget.tripped() {
            let dropped = queue.len();
            state.cascades_truncated += 1;
            state.work_dropped += dropped as u64;
            tracing::warn!(
                bound = bound.setting(),
                work_used = budget.work_used(),
                bytes_used = budget.bytes_used(),
                scanned = budget.scanned(),
                dropped,
                "rule engine bound reached for one input; the rest of its cascade is dropped"
            );
            queue.clear();
            break;
        }
    }
    if depth_reached && budget.tripped().is_none() {
        state.cascades_truncated += 1;
        tracing::warn!(
            max_chain_depth = config.max_chain_depth,
            "rule chaining depth bound reached for one input; deeper work triggered no rule"
        );
    }
    state.inputs_processed += 1;
    state.processing_nanos += started.elapsed().as_nanos();
    delivered
}

/// A bound of the input was reached: stop everything.
struct Stopped;

struct Runner<'a> {
    /// What timers and absence waits started by the input fire into.
    engine: &'a Arc<dyn TimerTarget>,
    config: &'a EngineConfig,
    queue: &'a mut VecDeque<Work>,
    budget: &'a mut Budget,
    /// Whether work at the depth bound was seen (warned about once, after the input).
    depth_reached: &'a mut bool,
}

impl Runner<'_> {
    fn may_trigger(&mut self, depth: usize) -> bool {
        if depth >= self.config.max_chain_depth {
            *self.depth_reached = true;
            return false;
        }
        true
    }

    /// Queues work caused by a rule, charging a unit and its fixed size (its values were
    /// charged as they were built).
    fn enqueue(&mut self, work: Work) -> Result<(), Fault> {
        self.budget.unit()?;
        self.budget.bytes(WORK_ITEM_BYTES)?;
        self.queue.push_back(work);
        Ok(())
    }

    fn on_event(&mut self, state: &mut State, event: &Event, depth: usize) {
        let now = crate::event::clock_now(&*self.config.clock);
        // Temporal patterns see every event, in priority order like other rules.
        for rule in state.candidates(|t| matches!(t, Trigger::Temporal { .. })) {
            let Trigger::Temporal { pattern } = &rule.input.trigger else {
                continue;
            };
            let (matches, waits) = state.temporal.process_owned(
                &rule.input.id,
                rule.owner.as_deref().unwrap_or(""),
                pattern,
                event,
                now,
                self.config.max_temporal_bytes,
            );
            for wait in waits {
                state.timers.schedule_absence(self.engine, wait);
            }
            for m in matches {
                if self.run_temporal(state, &rule, m, depth).is_err() {
                    return;
                }
            }
        }
        let ctx = EvalContext {
            trigger_data: Arc::new(event.data.clone()),
            ..Default::default()
        };
        let cause = Cause::of(event);
        for rule in state.candidates(
            |t| matches!(t, Trigger::Event { topic } if topic_matches(topic, &event.topic)),
        ) {
            if self
                .run_rule(state, &rule, &ctx, Some(&cause), depth)
                .is_err()
            {
                return;
            }
        }
    }

    fn run_temporal(
        &mut self,
        state: &mut State,
        rule: &Rule,
        m: TemporalMatch,
        depth: usize,
    ) -> Result<(), Stopped> {
        let mut vars = m.info;
        vars.insert("matchedEvents".into(), Value::Array(m.matched.clone()));
        let ctx = EvalContext {
            trigger_data: Arc::new(m.trigger_data),
            vars,
            matched: m.matched,
        };
        let cause = m.last_event.as_ref().map(Cause::of);
        self.run_rule(state, rule, &ctx, cause.as_ref(), depth)
    }

    /// Runs one rule: conditions, then actions in order. A failure stops this rule only;
    /// a bound reached stops the whole input (`Err`).
    fn run_rule(
        &mut self,
        state: &mut State,
        rule: &Rule,
        ctx: &EvalContext,
        cause: Option<&Cause>,
        depth: usize,
    ) -> Result<(), Stopped> {
        let id = rule.input.id.as_str();
        self.budget.unit().map_err(|_| Stopped)?;
        match ctx.all_hold(&rule.input.conditions, &state.facts, self.budget) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(Fault::Bound) => return Err(Stopped),
            Err(Fault::Failed(e)) => {
                state.action_errors += 1;
                warn_for_rule(self.config, state, id, "rule condition failed", &e);
                return Ok(());
            }
        }
        state.rules_executed += 1;
        let mut ctx = ctx.clone();
        let mut exec = Exec {
            runner: self,
            rule_id: id,
            cause,
            depth,
        };
        match exec.actions(state, &rule.input.actions, &mut ctx) {
            Ok(()) => Ok(()),
            Err(Fault::Bound) => Err(Stopped),
            Err(Fault::Failed(e)) => {
                state.action_errors += 1;
                warn_for_rule(
                    self.config,
                    state,
                    id,
                    "rule action failed; remaining actions of this rule skipped",
                    &e,
                );
                Ok(())
            }
        }
    }
}

struct Exec<'r, 'a> {
    runner: &'r mut Runner<'a>,
    rule_id: &'r str,
    cause: Option<&'r Cause>,
    depth: usize,
}

impl Exec<'_, '_> {
    fn actions(
        &mut self,
        state: &mut State,
        actions: &[Action],
        ctx: &mut EvalContext,
    ) -> Result<(), Fault> {
        for a in actions {
            self.action(state, a, ctx)?;
        }
        Ok(())
    }

    fn new_event(&self, topic: String, data: Value) -> Event {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            topic,
            data,
            timestamp: crate::event::clock_now(&*self.runner.config.clock),
            correlation_id: self.cause.and_then(|c| c.correlation_id.clone()),
            causation_id: self.cause.map(|c| c.id.clone()),
            source: crate::event::RULE_SOURCE.into(),
        }
    }

    fn action(
        &mut self,
        state: &mut State,
        action: &Action,
        ctx: &mut EvalContext,
    ) -> Result<(), Fault> {
        self.runner.budget.unit()?;
        let budget = &mut *self.runner.budget;
        let next = self.depth + 1;
        match action {
            Action::SetFact { key, value } => {
                let key = ctx.interpolate(key, &state.facts, budget)?;
                check_fact_key(&key)?;
                let limits = self.runner.config.fact_limits();
                if !state.facts.admits(&key, limits.max_facts) {
                    return Err(Fault::Failed(
                        Refusal::Count {
                            max: limits.max_facts,
                        }
                        .message(&key),
                    ));
                }
                let value = ctx.resolve_value(value, &state.facts, budget)?;
                let bytes = value_bytes(&value);
                state
                    .facts
                    .check_set(&key, bytes, &limits)
                    .map_err(|refusal| Fault::Failed(refusal.message(&key)))?;
                // The fact change carries the replaced value to fact rules: charge it too.
                if let Some(old) = state.facts.get(&key) {
                    budget.value(&old.value)?;
                }
                // Queueing must succeed before the fact changes: a refused change is not made.
                self.runner.budget.unit()?;
                self.runner.budget.bytes(WORK_ITEM_BYTES)?;
                let now = crate::event::clock_now(&*self.runner.config.clock);
                let source = crate::event::RULE_SOURCE;
                let (_, previous) = state.facts.set(&key, value.clone(), bytes, now, source);
                let cause = self.cause.cloned();
                self.runner.queue.push_back(Work::Fact {
                    key,
                    value: Some(value),
                    previous,
                    cause,
                    depth: next,
                });
            }
            Action::DeleteFact { key } => {
                let key = ctx.interpolate(key, &state.facts, budget)?;
                if let Some(old) = state.facts.get(&key) {
                    budget.value(&old.value)?;
                    self.runner.budget.unit()?;
                    self.runner.budget.bytes(WORK_ITEM_BYTES)?;
                    if let Some(old) = state.facts.delete(&key) {
                        let cause = self.cause.cloned();
                        self.runner.queue.push_back(Work::Fact {
                            key,
                            value: None,
                            previous: Some(old.value),
                            cause,
                            depth: next,
                        });
                    }
                }
            }
            Action::EmitEvent { topic, data } => {
                let topic = ctx.interpolate(topic, &state.facts, budget)?;
                check_topic(&topic)?;
                check_reserved(self.runner.config.reserved_topic_root.as_deref(), &topic)?;
                let data = ctx.resolve_value(data, &state.facts, budget)?;
                let event = self.new_event(topic, data);
                self.runner.enqueue(Work::Event { event, depth: next })?;
            }
            Action::SetTimer { timer } => {
                let name = ctx.interpolate(&timer.name, &state.facts, budget)?;
                let duration = ctx.resolve_value(&timer.duration, &state.facts, budget)?;
                // A computed duration or interval below the floor is raised to it (literal
                // ones were refused at registration): each expiry is an input of its own.
                let floor = self.runner.config.min_timer_interval_ms;
                let duration_ms = parse_duration_ms(&duration)
                    .map_err(|e| format!("timer {name:?}: duration {e}"))?
                    .max(floor);
                let topic = ctx.interpolate(&timer.on_expire.topic, &state.facts, budget)?;
                check_topic(&topic)?;
                check_reserved(self.runner.config.reserved_topic_root.as_deref(), &topic)?;
                let data = ctx.resolve_value(&timer.on_expire.data, &state.facts, budget)?;
                let repeat = match &timer.repeat {
                    None => None,
                    Some(r) => {
                        let interval = parse_duration_ms(&ctx.resolve_value(
                            &r.interval,
                            &state.facts,
                            budget,
                        )?)
                        .map_err(|e| format!("timer {name:?}: repeat interval {e}"))?;
                        if interval == 0 {
                            return Err(Fault::Failed(format!(
                                "timer {name:?}: repeat interval must be greater than 0"
                            )));
                        }
                        Some((interval.max(floor), r.max_count))
                    }
                };
                let spec = TimerSpec {
                    name,
                    duration_ms,
                    topic,
                    data,
                    repeat,
                    correlation_id: self
                        .cause
                        .and_then(|c| c.correlation_id.clone().or_else(|| Some(c.id.clone()))),
                };
                // One timer (data, name, topic) is bounded like one fact.
                let max = self.runner.config.max_fact_bytes;
                if crate::timers::footprint(&spec, max) > max {
                    let mut shown: String = spec.name.chars().take(64).collect();
                    if shown.len() < spec.name.len() {
                        shown.push('…');
                    }
                    return Err(Fault::Failed(format!(
                        "timer {shown:?}: over the size limit ({max} bytes with its name and topic)"
                    )));
                }
                state.timers.set(
                    self.runner.engine,
                    spec,
                    self.runner.config.max_timers,
                    self.runner.config.max_facts_bytes,
                )?;
            }
            Action::CancelTimer { name } => {
                let name = ctx.interpolate(name, &state.facts, budget)?;
                state.timers.cancel(&name);
            }
            Action::Log { level, message } => {
                let rule_id = self.rule_id;
                let now = crate::event::clock_now(&*self.runner.config.clock);
                let per_second = self.runner.config.max_rule_logs_per_second;
                let dropped = match state.log_limits.admit(rule_id, now, per_second) {
                    // Not even interpolated: a dropped line costs no copying.
                    LogVerdict::Drop => return Ok(()),
                    LogVerdict::Write { dropped } => dropped,
                };
                if dropped > 0 {
                    tracing::warn!(
                        rule_id,
                        dropped,
                        per_second,
                        "rule log lines dropped (over the per-rule log rate)"
                    );
                    if let Some(hook) = &self.runner.config.log_hook {
                        let summary =
                            format!("{dropped} log lines dropped (over {per_second} per second)");
                        hook(LogLevel::Warn, &summary, rule_id);
                    }
                }
                let message = ctx.interpolate(message, &state.facts, budget)?;
                match level {
                    LogLevel::Debug => tracing::debug!(rule_id, "{message}"),
                    LogLevel::Info => tracing::info!(rule_id, "{message}"),
                    LogLevel::Warn => tracing::warn!(rule_id, "{message}"),
                    LogLevel::Error => tracing::error!(rule_id, "{message}"),
                }
                if let Some(hook) = &self.runner.config.log_hook {
                    hook(*level, &message, rule_id);
                }
            }
            Action::Conditional {
                conditions,
                then,
                else_,
            } => {
                if ctx.all_hold(conditions, &state.facts, budget)? {
                    self.actions(state, then, ctx)?;
                } else if let Some(els) = else_ {
                    self.actions(state, els, ctx)?;
                }
            }
            Action::ForEach {
                collection,
                r#as,
                actions,
                max_iterations,
            } => {
                let items = match as_ref(collection) {
                    Some(r) => ctx
                        .resolve_ref(r, &state.facts, budget)?
                        .unwrap_or(Value::Null),
                    None => ctx.resolve_value(collection, &state.facts, budget)?,
                };
                let Value::Array(items) = items else {
                    return Err(Fault::Failed(format!(
                        "for_each: collection is not an array (got {items})"
                    )));
                };
                let limit = max_iterations
                    .unwrap_or(self.runner.config.max_for_each_iterations)
                    .min(self.runner.config.max_for_each_iterations)
                    as usize;
                if items.len() > limit {
                    warn_for_rule(
                        self.runner.config,
                        state,
                        self.rule_id,
                        "for_each truncated at maxIterations",
                        &format!("{} items, limit {limit}", items.len()),
                    );
                }
                let index_name = format!("{}_index", r#as);
                let saved = (
                    ctx.vars.get(r#as).cloned(),
                    ctx.vars.get(&index_name).cloned(),
                );
                let mut result = Ok(());
                for (i, item) in items.into_iter().take(limit).enumerate() {
                    result = self.runner.budget.unit();
                    if result.is_err() {
                        break;
                    }
                    ctx.vars.insert(r#as.clone(), item);
                    ctx.vars.insert(index_name.clone(), json!(i));
                    result = self.actions(state, actions, ctx);
                    if result.is_err() {
                        break;
                    }
                }
                restore(&mut ctx.vars, r#as, saved.0);
                restore(&mut ctx.vars, &index_name, saved.1);
                result?;
            }
            Action::TryCatch {
                r#try,
                catch,
                finally,
            } => {
                let mut result = self.actions(state, r#try, ctx);
                if let (Err(Fault::Failed(e)), Some(catch)) = (&result, catch) {
                    let message = e.clone();
                    let saved = catch
                        .r#as
                        .as_ref()
                        .map(|n| (n.clone(), ctx.vars.get(n).cloned()));
                    if let Some(n) = &catch.r#as {
                        ctx.vars.insert(n.clone(), json!({ "message": message }));
                    }
                    result = self.actions(state, &catch.actions, ctx);
                    if let Some((n, old)) = saved {
                        restore(&mut ctx.vars, &n, old);
                    }
                }
                // A bound reached is not an error to handle: nothing more runs.
                if result == Err(Fault::Bound) {
                    return result;
                }
                if let Some(fin) = finally {
                    self.actions(state, fin, ctx)?;
                }
                result?;
            }
        }
        Ok(())
    }
}

fn restore(vars: &mut Map<String, Value>, name: &str, old: Option<Value>) {
    match old {
        Some(v) => vars.insert(name.to_string(), v),
        None => vars.remove(name),
    };
}

/// A concrete fact key: a valid pattern without wildcards.
pub(crate) fn check_fact_key(key: &str) -> Result<(), String> {
    check_fact_pattern(key)?;
    if key.contains('*') {
        return Err(format!("fact key {key:?} must not contain `*`"));
    }
    Ok(())
}

/// Longest part of an error message quoted in a warning (values in messages can be large).
pub(crate) const MAX_WARNING_CHARS: usize = 256;

/// `text`, cut to at most [`MAX_WARNING_CHARS`] characters (marked with `…`).
pub(crate) fn truncated(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_WARNING_CHARS) {
        None => std::borrow::Cow::Borrowed(text),
        Some((end, _)) => {
            std::borrow::Cow::Owned(format!("{}… ({} bytes in all)", &text[..end], text.len()))
        }
    }
}

/// Logs a warning about one rule (a failed condition or action, a truncated `for_each`)
/// under the same per-rule rate as its `log` lines (`max_rule_logs_per_second`, dropped
/// ones counted in `logs_dropped` and summarized before the next that passes), with
/// `error` cut to [`MAX_WARNING_CHARS`].
fn warn_for_rule(config: &EngineConfig, state: &mut State, rule_id: &str, what: &str, error: &str) {
    let per_second = config.max_rule_logs_per_second;
    let now = crate::event::clock_now(&*config.clock);
    let LogVerdict::Write { dropped } = state.log_limits.admit(rule_id, now, per_second) else {
        return;
    };
    if dropped > 0 {
        tracing::warn!(
            rule_id,
            dropped,
            per_second,
            "rule log lines and warnings dropped (over the per-rule log rate)"
        );
    }
    tracing::warn!(rule_id, error = %truncated(error), "{what}");
}

/// Refuses a topic under the reserved root (`bucket` in the server), if there is one.
fn check_reserved(root: Option<&str>, topic: &str) -> Result<(), String> {
    match root {
        Some(root) if topic.split('.').next() == Some(root) => Err(format!(
            "topics under \"{root}.\" are reserved and cannot be emitted by rules"
        )),
        _ => Ok(()),
    }
}

/// A concrete topic: a valid pattern without wildcards.
pub(crate) fn check_topic(topic: &str) -> Result<(), String> {
    check_topic_pattern(topic)?;
    if topic.contains('*') {
        return Err(format!("topic {topic:?} must not contain `*`"));
    }
    Ok(())
}

/// The pattern of a rule when it is an absence pattern (for expired waits).
pub(crate) fn absence_pattern(rule: &Rule) -> Option<&TemporalPattern> {
    match &rule.input.trigger {
        Trigger::Temporal { pattern } if matches!(**pattern, TemporalPattern::Absence { .. }) => {
            Some(pattern)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_quote_at_most_256_characters() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(1000);
        let cut = truncated(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_WARNING_CHARS)));
        assert!(cut.ends_with("… (2000 bytes in all)"), "{cut}");
        assert!(cut.chars().count() < MAX_WARNING_CHARS + 30);
    }
}
