//! [`RuleEngine`]: the public face of the crate. Cheap to clone (an `Arc` inside) and safe to
//! call from many tokio tasks. Data operations are synchronous: `emit` and `set_fact` return
//! after the rules they trigger (and everything those cause) have run. Timers and absence waits
//! fire on background tokio tasks; [`RuleEngine::settle`] waits, without sleeping, until every
//! one that is due has run.
//!
//! Subscriber callbacks are called after the state lock is released, in emission order.
//!
//! A cascade can take a while; [`RuleEngine::run_input`] runs such a call without holding a
//! tokio runtime worker (timers fire that way), so an async server stays responsive.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::EngineConfig;
use crate::error::{Result, RuleValidationIssue, RulesError};
use crate::event::{API_SOURCE, EmitOptions, Event, TIMER_SOURCE};
use crate::facts::{Fact, value_bytes};
use crate::model::{Rule, RuleInput, RuleSummary, TemporalPattern};
use crate::pattern::{check_fact_pattern, check_topic_pattern, topic_matches};
use crate::runner::{State, Work, absence_pattern, check_fact_key, check_topic, process};
use crate::temporal::AbsenceWait;
use crate::timers::{TimerInfo, TimerTarget, off_worker};
use crate::validate::{ValidationReport, merge_update, parse_rule, timer_floor_errors};

/// A subscriber callback: receives every event whose topic matches its pattern.
pub type EventCallback = Arc<dyn Fn(&Event) + Send + Sync>;

/// Identifies a subscription made with [`RuleEngine::subscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(pub u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Engine statistics (`rules.stats`), serialized camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineStats {
    /// Registered rules.
    pub rules_count: usize,
    /// Stored facts.
    pub facts_count: usize,
    /// Active timers.
    pub timers_count: usize,
    /// Events processed (client, rule and timer events).
    pub events_processed: u64,
    /// Rule runs whose conditions held.
    pub rules_executed: u64,
    /// Rule runs stopped by a failing condition or action.
    pub action_errors: u64,
    /// Active subscriptions.
    pub subscriptions_count: usize,
    /// Mean wall time to process one input with everything it caused, in ms.
    pub avg_processing_time_ms: f64,
    /// Inputs whose cascade was cut short by a bound: work at `max_chain_depth` that
    /// triggered no rule, or `max_work_per_input` / `max_queued_bytes_per_input` /
    /// `max_scanned_bytes_per_input` reached.
    pub cascades_truncated: u64,
    /// Work items (events, fact changes) dropped unprocessed when a cascade reached
    /// `max_work_per_input`, `max_queued_bytes_per_input` or `max_scanned_bytes_per_input`.
    pub work_dropped: u64,
    /// `log` lines of rules dropped by `max_rule_logs_per_second`.
    pub logs_dropped: u64,
}

struct Subscription {
    pattern: String,
    callback: EventCallback,
}

pub(crate) struct Inner {
    pub config: EngineConfig,
    state: Mutex<State>,
    subscriptions: RwLock<BTreeMap<SubscriptionId, Subscription>>,
    next_subscription: Mutex<u64>,
    /// Serializes fact-observer calls so they happen in change order.
    observer_order: Mutex<()>,
    /// Permits to run an input's cascade through [`RuleEngine::run_input`] (and fired
    /// timers): bounds the threads that run or wait for cascades outside the runtime's
    /// workers (the cascades themselves are serialized by the state lock anyway).
    pub(crate) inputs: tokio::sync::Semaphore,
}

/// Cascades running through [`RuleEngine::run_input`] at once: one runs while the other
/// delivers its events (or waits for the state lock).
const INPUT_PERMITS: usize = 2;

impl Drop for Inner {
    /// The last engine handle is gone: stop timer tasks instead of letting them sleep on.
    fn drop(&mut self) {
        self.state.get_mut().timers.abort_all();
    }
}

/// The rule engine. See the crate documentation for an example.
#[derive(Clone)]
pub struct RuleEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleEngine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for RuleEngine {
    fn default() -> Self {
        Self::new(EngineConfig::default())
    }
}

/// Bound on the yields of [`RuleEngine::settle`] (each lets due timers run).
const MAX_SETTLE_ROUNDS: usize = 100_000;

fn invalid(pattern: &str, message: String) -> RulesError {
    RulesError::InvalidPattern {
        pattern: pattern.to_string(),
        message,
    }
}

impl RuleEngine {
    /// The engine as timers see it: what they fire into.
    fn timer_target(&self) -> Arc<dyn TimerTarget> {
        Arc::clone(&self.inner) as Arc<dyn TimerTarget>
    }

    /// A new engine with `config`.
    pub fn new(config: EngineConfig) -> Self {
        let mut state = State::default();
        if config.fact_observer.is_some() {
            state.facts.enable_journal();
        }
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                subscriptions: RwLock::new(BTreeMap::new()),
                next_subscription: Mutex::new(0),
                observer_order: Mutex::new(()),
                inputs: tokio::sync::Semaphore::new(INPUT_PERMITS),
            }),
        }
    }

    /// Puts facts back as they were (e.g. loaded from disk at start): versions and
    /// timestamps are kept, no rule runs and the fact observer is not called. Every fact is
    /// restored even beyond [`EngineConfig::max_facts`] (data is never dropped at start);
    /// a warning is logged then, and new keys are refused until facts are deleted.
    pub fn restore_facts(&self, facts: impl IntoIterator<Item = Fact>) {
        let mut state = self.inner.state.lock();
        for fact in facts {
            state.facts.restore(fact);
        }
        let max_bytes = self.inner.config.max_facts_bytes;
        if state.facts.bytes() > max_bytes {
            tracing::warn!(
                bytes = state.facts.bytes(),
                max_facts_bytes = max_bytes,
                "restored facts exceed the fact storage limit; growing facts is refused until some are deleted"
            );
        }
        let max = self.inner.config.max_facts;
        if state.facts.len() > max {
            tracing::warn!(
                facts = state.facts.len(),
                max_facts = max,
                "restored facts exceed the fact limit; new fact keys are refused until some are deleted"
            );
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    fn now(&self) -> i64 {
        crate::event::clock_now(&*self.inner.config.clock)
    }

    /// Runs `work` to completion and delivers the resulting events.
    fn run(&self, work: Work) {
        let delivered = {
            let mut state = self.inner.state.lock();
            process(&self.inner.config, &self.timer_target(), &mut state, work)
        };
        deliver(&self.inner, &delivered);
    }

    /// Runs `f` — a call that may run a cascade, such as [`Self::emit`], [`Self::set_fact`]
    /// or [`Self::delete_fact`], or one that copies many facts — without holding a tokio
    /// runtime worker, so a long cascade does not delay the other tasks of the runtime (a
    /// server's other connections). Waits (asynchronously) for one of the engine's input
    /// permits, which fired timers use too, so that a crowd of callers does not occupy a
    /// crowd of threads; then, on a multi-thread runtime, the worker's other tasks move to
    /// another thread while `f` runs. On a current-thread runtime `f` simply runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
    /// use noex_rules::RuleEngine;
    /// use serde_json::json;
    /// let engine = RuleEngine::default();
    /// let event = engine.run_input(|e| e.emit("order.created", json!({"id": 1}))).await.unwrap();
    /// assert_eq!(event.topic, "order.created");
    /// # }
    /// ```
    pub async fn run_input<R>(&self, f: impl FnOnce(&RuleEngine) -> R) -> R {
        // The semaphore is never closed; without a permit the call still runs.
        let _permit = self.inner.inputs.acquire().await.ok();
        off_worker(|| f(self))
    }

    /// [`Self::run_input`] for synchronous callers (no permit is taken): `f` runs without
    /// holding a tokio runtime worker.
    pub fn run_input_blocking<R>(&self, f: impl FnOnce(&RuleEngine) -> R) -> R {
        off_worker(|| f(self))
    }

    // ----- events -------------------------------------------------------------------------

    /// Emits an event with source `"api"`; returns it after every rule it triggered has run.
    pub fn emit(&self, topic: &str, data: Value) -> Result<Event> {
        self.emit_with(
            topic,
            data,
            EmitOptions {
                source: Some(API_SOURCE.into()),
                ..Default::default()
            },
        )
    }

    /// Emits an event with explicit source / correlation / causation ids (the store bridge uses
    /// `source: Some("store")`). The topic must be concrete (no `*`).
    pub fn emit_with(&self, topic: &str, data: Value, options: EmitOptions) -> Result<Event> {
        check_topic(topic).map_err(|m| invalid(topic, m))?;
        let event = Event {
            id: uuid::Uuid::new_v4().to_string(),
            topic: topic.to_string(),
            data,
            timestamp: self.now(),
            correlation_id: options.correlation_id,
            causation_id: options.causation_id,
            source: options.source.unwrap_or_else(|| API_SOURCE.into()),
        };
        self.run(Work::Event {
            event: event.clone(),
            depth: 0,
        });
        Ok(event)
    }

    /// Calls `callback` for every event (client, rule or timer emitted) whose topic matches
    /// `pattern`. Callbacks run without engine locks held, so they may call the engine.
    pub fn subscribe(
        &self,
        pattern: &str,
        callback: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<SubscriptionId> {
        check_topic_pattern(pattern).map_err(|m| invalid(pattern, m))?;
        let mut subs = self.inner.subscriptions.write();
        if subs.len() >= self.inner.config.max_subscriptions {
            return Err(RulesError::LimitExceeded(format!(
                "subscription limit ({}) reached",
                self.inner.config.max_subscriptions
            )));
        }
        let id = {
            let mut next = self.inner.next_subscription.lock();
            *next += 1;
            SubscriptionId(*next)
        };
        subs.insert(
            id,
            Subscription {
                pattern: pattern.to_string(),
                callback: Arc::new(callback),
            },
        );
        Ok(id)
    }

    /// Removes a subscription; whether it existed.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.inner.subscriptions.write().remove(&id).is_some()
    }

    // ----- facts --------------------------------------------------------------------------

    /// Sets a fact (source `"api"`) and runs the fact rules it triggers. A new key beyond
    /// [`EngineConfig::max_facts`] fails with [`RulesError::LimitExceeded`].
    pub fn set_fact(&self, key: &str, value: Value) -> Result<Fact> {
        self.set_fact_with_source(key, value, API_SOURCE)
    }

    /// Sets a fact recording `source`, and runs the fact rules it triggers. A new key beyond
    /// [`EngineConfig::max_facts`] fails with [`RulesError::LimitExceeded`].
    pub fn set_fact_with_source(&self, key: &str, value: Value, source: &str) -> Result<Fact> {
        check_fact_key(key).map_err(|m| invalid(key, m))?;
        let now = self.now();
        let limits = self.inner.config.fact_limits();
        let bytes = value_bytes(&value);
        if bytes > limits.max_fact_bytes {
            // Refused before taking the lock.
            return Err(crate::facts::Refusal::Value {
                bytes,
                max: limits.max_fact_bytes,
            }
            .error(key));
        }
        let (delivered, fact) = {
            let mut state = self.inner.state.lock();
            state
                .facts
                .check_set(key, bytes, &limits)
                .map_err(|refusal| refusal.error(key))?;
            let (fact, previous) = state.facts.set(key, value.clone(), bytes, now, source);
            let work = Work::Fact {
                key: key.to_string(),
                value: Some(value),
                previous,
                cause: None,
                depth: 0,
            };
            (
                process(&self.inner.config, &self.timer_target(), &mut state, work),
                fact,
            )
        };
        deliver(&self.inner, &delivered);
        Ok(fact)
    }

    /// The value of a fact.
    pub fn get_fact(&self, key: &str) -> Option<Value> {
        self.inner
            .state
            .lock()
            .facts
            .get(key)
            .map(|f| f.value.clone())
    }

    /// The full record of a fact (timestamp, source, version).
    pub fn get_fact_record(&self, key: &str) -> Option<Fact> {
        self.inner.state.lock().facts.get(key).cloned()
    }

    /// Deletes a fact; whether it existed. A deletion triggers fact rules too.
    pub fn delete_fact(&self, key: &str) -> bool {
        let (delivered, existed) = {
            let mut state = self.inner.state.lock();
            match state.facts.delete(key) {
                None => return false,
                Some(old) => {
                    let work = Work::Fact {
                        key: key.to_string(),
                        value: None,
                        previous: Some(old.value),
                        cause: None,
                        depth: 0,
                    };
                    (
                        process(&self.inner.config, &self.timer_target(), &mut state, work),
                        true,
                    )
                }
            }
        };
        deliver(&self.inner, &delivered);
        existed
    }

    /// Facts whose key matches `pattern` (`*` = one segment), ordered by key, each with its
    /// timestamp, source and version.
    pub fn query_facts(&self, pattern: &str) -> Result<Vec<Fact>> {
        check_fact_pattern(pattern).map_err(|m| invalid(pattern, m))?;
        Ok(self.inner.state.lock().facts.query(pattern))
    }

    /// Every fact, ordered by key.
    pub fn get_all_facts(&self) -> Vec<Fact> {
        self.inner.state.lock().facts.all()
    }

    // ----- rules --------------------------------------------------------------------------

    /// Validates a rule given as JSON (`rules.validateRule`):
    /// [`validate_rule`](crate::validate_rule), plus the engine's bounds a rule can break
    /// when registered (a literal timer duration or repeat interval below
    /// [`EngineConfig::min_timer_interval_ms`]).
    pub fn validate_rule(&self, rule: &Value) -> ValidationReport {
        match self.parse_checked(rule) {
            Ok(_) => ValidationReport {
                valid: true,
                errors: Vec::new(),
                warnings: Vec::new(),
            },
            Err(RulesError::Validation(errors)) => ValidationReport {
                valid: false,
                errors,
                warnings: Vec::new(),
            },
            Err(other) => ValidationReport {
                valid: false,
                errors: vec![RuleValidationIssue::new("", other.to_string())],
                warnings: Vec::new(),
            },
        }
    }

    /// `parse_rule` plus the engine's bounds on rule definitions.
    fn parse_checked(&self, rule: &Value) -> Result<RuleInput> {
        let input = parse_rule(rule)?;
        let mut errors = timer_floor_errors(&input, self.inner.config.min_timer_interval_ms);
        if let Some(root) = &self.inner.config.reserved_topic_root {
            let footprint = crate::footprint::RuleFootprint::of(&input, rule);
            for topic in &footprint.writes_topics {
                if topic
                    .parts()
                    .is_some_and(|(segments, _)| segments.first() == Some(&Some(root.as_str())))
                {
                    errors.push(RuleValidationIssue::new(
                        "actions",
                        format!(
                            "topics under \"{root}.\" are reserved and cannot be emitted by rules"
                        ),
                    ));
                    break;
                }
            }
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(RulesError::Validation(errors))
        }
    }

    /// Registers a rule given as JSON (`rules.registerRule`): `Validation` with every problem,
    /// `AlreadyExists` for a duplicate id.
    pub fn register_rule(&self, rule: &Value) -> Result<Rule> {
        self.register_rule_as(rule, None)
    }

    /// [`RuleEngine::register_rule`] on behalf of `owner` (a user id): when the temporal
    /// patterns' byte pool is full, owners give way in turn (the one holding the most
    /// first), so one owner's many rules cannot starve another owner's
    /// ([`crate::EngineConfig::max_temporal_bytes`]). Updates keep the owner.
    ///
    /// A rule over [`EngineConfig::max_rule_bytes`] fails with [`RulesError::TooLarge`]
    /// (before it is validated), one that would take all rules past
    /// [`EngineConfig::max_rules_bytes`] with [`RulesError::LimitExceeded`].
    pub fn register_rule_as(&self, rule: &Value, owner: Option<&str>) -> Result<Rule> {
        self.add_rule(rule, owner, false)
    }

    /// Registers a rule restored from storage at start, like
    /// [`RuleEngine::register_rule_as`] but kept even when it is over
    /// [`EngineConfig::max_rule_bytes`] or takes all rules past
    /// [`EngineConfig::max_rules_bytes`] (a warning is logged; until rules are removed,
    /// registrations and growing updates are refused), as restored facts are.
    pub fn restore_rule_as(&self, rule: &Value, owner: Option<&str>) -> Result<Rule> {
        self.add_rule(rule, owner, true)
    }

    fn add_rule(&self, rule: &Value, owner: Option<&str>, restoring: bool) -> Result<Rule> {
        let bytes = value_bytes(rule);
        let config = &self.inner.config;
        if bytes > config.max_rule_bytes {
            let id = rule.get("id").and_then(Value::as_str).unwrap_or("");
            let message = rule_too_large(id, bytes, config.max_rule_bytes);
            if !restoring {
                return Err(RulesError::TooLarge(message));
            }
            tracing::warn!(%message, "restored rule kept over the rule size limit");
        }
        let input = self.parse_checked(rule)?;
        let now = self.now();
        let mut state = self.inner.state.lock();
        if state.rules.contains_key(&input.id) {
            return Err(RulesError::AlreadyExists(input.id));
        }
        if state.rules.len() >= config.max_rules {
            return Err(RulesError::LimitExceeded(format!(
                "rule limit ({}) reached",
                config.max_rules
            )));
        }
        let total = state.rules_bytes.saturating_add(bytes);
        if total > config.max_rules_bytes {
            let message = rules_full(&input.id, config.max_rules_bytes, "registered");
            if !restoring {
                return Err(RulesError::LimitExceeded(message));
            }
            if state.rules_bytes <= config.max_rules_bytes {
                tracing::warn!(
                    bytes = total,
                    max_rules_bytes = config.max_rules_bytes,
                    "restored rules exceed the rule storage limit; registering rules is refused until some are removed"
                );
            }
        }
        let rule = Rule {
            input,
            version: 1,
            created_at: now,
            updated_at: now,
            owner: owner.map(str::to_owned),
        };
        state.next_seq += 1;
        let seq = state.next_seq;
        state.rules_bytes = total;
        state.rule_bytes.insert(rule.input.id.clone(), bytes);
        state
            .rules
            .insert(rule.input.id.clone(), (seq, Arc::new(rule.clone())));
        Ok(rule)
    }

    /// Registers a rule built in Rust (validated like JSON input).
    pub fn register(&self, input: RuleInput) -> Result<Rule> {
        let json = serde_json::to_value(&input).map_err(|e| {
            RulesError::Validation(vec![RuleValidationIssue::new("", e.to_string())])
        })?;
        self.register_rule(&json)
    }

    /// Removes a rule and its temporal state.
    pub fn unregister_rule(&self, id: &str) -> Result<()> {
        let mut state = self.inner.state.lock();
        state.rules.remove(id).ok_or_else(|| not_found(id))?;
        let bytes = state.rule_bytes.remove(id).unwrap_or(0);
        state.rules_bytes = state.rules_bytes.saturating_sub(bytes);
        state.temporal.clear_rule(id);
        state.log_limits.forget(id);
        Ok(())
    }

    /// Applies `updates` (a partial rule object; `id`, `version`, `createdAt`, `updatedAt` are
    /// ignored) to a rule, re-validates it and bumps its version. Temporal state restarts.
    /// The updated rule is bounded like a new one ([`EngineConfig::max_rule_bytes`],
    /// [`EngineConfig::max_rules_bytes`]; an update that does not grow the rule always
    /// passes the second).
    pub fn update_rule(&self, id: &str, updates: &Value) -> Result<Rule> {
        let config = &self.inner.config;
        let mut state = self.inner.state.lock();
        let (_, current) = state.rules.get(id).ok_or_else(|| not_found(id))?;
        let merged = merge_update(&current.input, updates)?;
        let bytes = value_bytes(&merged);
        if bytes > config.max_rule_bytes {
            return Err(RulesError::TooLarge(rule_too_large(
                id,
                bytes,
                config.max_rule_bytes,
            )));
        }
        let old = state.rule_bytes.get(id).copied().unwrap_or(0);
        let total = state.rules_bytes.saturating_sub(old).saturating_add(bytes);
        if bytes > old && total > config.max_rules_bytes {
            return Err(RulesError::LimitExceeded(rules_full(
                id,
                config.max_rules_bytes,
                "updated",
            )));
        }
        let input = self.parse_checked(&merged)?;
        let now = self.now();
        state.rules_bytes = total;
        state.rule_bytes.insert(id.to_owned(), bytes);
        let entry = state.rules.get_mut(id).ok_or_else(|| not_found(id))?;
        let rule = Rule {
            input,
            version: entry.1.version + 1,
            created_at: entry.1.created_at,
            updated_at: now,
            owner: entry.1.owner.clone(),
        };
        entry.1 = Arc::new(rule.clone());
        state.temporal.clear_rule(id);
        Ok(rule)
    }

    /// Enables a rule.
    pub fn enable_rule(&self, id: &str) -> Result<Rule> {
        self.set_enabled(id, true)
    }

    /// Disables a rule (its temporal state is dropped).
    pub fn disable_rule(&self, id: &str) -> Result<Rule> {
        self.set_enabled(id, false)
    }

    fn set_enabled(&self, id: &str, enabled: bool) -> Result<Rule> {
        let now = self.now();
        let mut state = self.inner.state.lock();
        let entry = state.rules.get_mut(id).ok_or_else(|| not_found(id))?;
        if entry.1.input.enabled != enabled {
            let rule = Arc::make_mut(&mut entry.1);
            rule.input.enabled = enabled;
            rule.updated_at = now;
        }
        let rule = Rule::clone(&entry.1);
        if !enabled {
            state.temporal.clear_rule(id);
        }
        Ok(rule)
    }

    /// One rule.
    pub fn get_rule(&self, id: &str) -> Result<Rule> {
        self.inner
            .state
            .lock()
            .rules
            .get(id)
            .map(|(_, r)| Rule::clone(r))
            .ok_or_else(|| not_found(id))
    }

    /// All rules, highest priority first (ties in registration order).
    pub fn rules(&self) -> Vec<Rule> {
        let state = self.inner.state.lock();
        let mut rules: Vec<&(u64, Arc<Rule>)> = state.rules.values().collect();
        rules.sort_by(|(sa, a), (sb, b)| b.input.priority.cmp(&a.input.priority).then(sa.cmp(sb)));
        rules.into_iter().map(|(_, r)| Rule::clone(r)).collect()
    }

    /// The `getRules` list: `{id, name, enabled, priority, version, tags, group}` per rule.
    pub fn get_rules(&self) -> Vec<RuleSummary> {
        // Summarized in place: the definitions themselves are not copied.
        let state = self.inner.state.lock();
        let mut rules: Vec<&(u64, Arc<Rule>)> = state.rules.values().collect();
        rules.sort_by(|(sa, a), (sb, b)| b.input.priority.cmp(&a.input.priority).then(sa.cmp(sb)));
        rules.into_iter().map(|(_, r)| r.summary()).collect()
    }

    // ----- timers, stats, lifecycle --------------------------------------------------------

    /// Active timers, by name.
    pub fn timers(&self) -> Vec<TimerInfo> {
        self.inner
            .state
            .lock()
            .timers
            .list(self.inner.config.clock.now_ms())
    }

    /// Cancels a timer by name; whether it existed.
    pub fn cancel_timer(&self, name: &str) -> bool {
        self.inner.state.lock().timers.cancel(name)
    }

    /// Current statistics.
    pub fn stats(&self) -> EngineStats {
        let subscriptions_count = self.inner.subscriptions.read().len();
        let s = self.inner.state.lock();
        EngineStats {
            rules_count: s.rules.len(),
            facts_count: s.facts.len(),
            timers_count: s.timers.len(),
            events_processed: s.events_processed,
            rules_executed: s.rules_executed,
            action_errors: s.action_errors,
            subscriptions_count,
            avg_processing_time_ms: if s.inputs_processed == 0 {
                0.0
            } else {
                s.processing_nanos as f64 / s.inputs_processed as f64 / 1e6
            },
            cascades_truncated: s.cascades_truncated,
            work_dropped: s.work_dropped,
            logs_dropped: s.log_limits.dropped_total(),
        }
    }

    /// Resolves once no timer or absence wait is due without having run (deterministic under
    /// paused tokio time: `advance(..)` then `settle().await`; with a manual clock:
    /// `clock.advance(..)` then `settle().await`). Never sleeps.
    pub async fn settle(&self) {
        for _ in 0..MAX_SETTLE_ROUNDS {
            let due = self
                .inner
                .state
                .lock()
                .timers
                .any_due(self.inner.config.clock.now_ms());
            if !due {
                return;
            }
            tokio::task::yield_now().await;
        }
        tracing::warn!("settle gave up after {MAX_SETTLE_ROUNDS} rounds");
    }

    /// Cancels every timer and absence wait (rules and facts stay).
    pub fn shutdown(&self) {
        let mut state = self.inner.state.lock();
        state.timers.abort_all();
        let ids: Vec<String> = state.rules.keys().cloned().collect();
        for id in ids {
            state.temporal.clear_rule(&id);
        }
    }
}

/// The message of a rule over `max_rule_bytes` (the id cut, it may be long).
fn rule_too_large(id: &str, bytes: usize, max: usize) -> String {
    format!(
        "rule {:?}: definition of {bytes} bytes exceeds the rule size limit ({max} bytes)",
        crate::runner::truncated(id)
    )
}

/// The message of a rule refused by `max_rules_bytes`.
fn rules_full(id: &str, max: usize, what: &str) -> String {
    format!(
        "rule storage limit ({max} bytes of all rules) reached; rule {:?} not {what}",
        crate::runner::truncated(id)
    )
}

fn not_found(id: &str) -> RulesError {
    RulesError::NotFound {
        kind: "rule",
        id: id.to_string(),
    }
}

fn deliver(inner: &Inner, events: &[Event]) {
    if let Some(observer) = &inner.config.fact_observer {
        // Draining and reporting under one lock keeps reports in change order even when
        // several threads finish work at once.
        let _order = inner.observer_order.lock();
        let changes = inner.state.lock().facts.take_journal();
        if !changes.is_empty() {
            observer(&changes);
        }
    }
    if events.is_empty() {
        return;
    }
    for event in events {
        let targets: Vec<EventCallback> = inner
            .subscriptions
            .read()
            .values()
            .filter(|s| topic_matches(&s.pattern, &event.topic))
            .map(|s| s.callback.clone())
            .collect();
        for callback in targets {
            callback(event);
        }
    }
}

/// A timer task reached its deadline. Returns false when the timer was replaced or cancelled.
fn fire_timer(inner: &Arc<Inner>, name: &str, id: u64, next: Option<u64>) -> bool {
    let delivered = {
        let mut state = inner.state.lock();
        let Some(spec) = state.timers.on_fire(name, id, next) else {
            return false;
        };
        let event = Event {
            id: uuid::Uuid::new_v4().to_string(),
            topic: spec.topic.clone(),
            data: spec.data.clone(),
            timestamp: crate::event::clock_now(&*inner.config.clock),
            correlation_id: spec.correlation_id.clone(),
            causation_id: None,
            source: TIMER_SOURCE.into(),
        };
        process(
            &inner.config,
            &(Arc::clone(inner) as Arc<dyn TimerTarget>),
            &mut state,
            Work::Timer {
                name: name.to_string(),
                event,
                depth: 0,
            },
        )
    };
    deliver(inner, &delivered);
    true
}

/// An absence wait ran out.
fn fire_absence(inner: &Arc<Inner>, wait: AbsenceWait) {
    let delivered = {
        let mut state = inner.state.lock();
        state.timers.absence_done(wait.instance);
        let pattern: Option<TemporalPattern> = state
            .rules
            .get(&wait.rule_id)
            .filter(|(_, r)| r.input.enabled)
            .and_then(|(_, r)| absence_pattern(r).cloned());
        let Some(pattern) = pattern else { return };
        let Some(matched) =
            state
                .temporal
                .absence_expired(&wait.rule_id, &pattern, &wait.group, wait.instance)
        else {
            return;
        };
        process(
            &inner.config,
            &(Arc::clone(inner) as Arc<dyn TimerTarget>),
            &mut state,
            Work::Temporal { matched, depth: 0 },
        )
    };
    deliver(inner, &delivered);
}

/// Timers and absence waits fire into the engine through its shared state.
impl TimerTarget for Inner {
    fn clock(&self) -> Arc<dyn noex_model::clock::Clock> {
        Arc::clone(&self.config.clock)
    }

    fn inputs(&self) -> &tokio::sync::Semaphore {
        &self.inputs
    }

    fn fire_timer(self: Arc<Self>, name: &str, id: u64, next: Option<u64>) -> bool {
        fire_timer(&self, name, id, next)
    }

    fn fire_absence(self: Arc<Self>, wait: AbsenceWait) {
        fire_absence(&self, wait);
    }
}
