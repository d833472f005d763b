//! Engine configuration: every bound in one place, plus the injectable clock and log hook.

use std::sync::Arc;

use crate::model::LogLevel;
use noex_model::clock::{Clock, TokioClock};

/// Receives every `log` action: level, interpolated message, rule id.
pub type LogHook = Arc<dyn Fn(LogLevel, &str, &str) + Send + Sync>;

/// Receives every change of the fact store (by clients, rules and timers alike), in order,
/// after the change; called without engine locks held. Used to persist facts.
pub type FactObserver = Arc<dyn Fn(&[crate::facts::FactChange]) + Send + Sync>;

/// Settings of a [`crate::RuleEngine`]. `EngineConfig::default()` suits most uses.
///
/// # Bounds of one input
///
/// Each input — an emitted event, a fact set or deleted through the API, a fired timer, an
/// expired absence wait — runs to completion together with everything its rules cause (its
/// *cascade*). Four settings bound a cascade, so that a rule which feeds itself (say a
/// `for_each` that re-emits its own trigger for every item) cannot exhaust memory or hold
/// the engine for long:
///
/// - [`max_chain_depth`](Self::max_chain_depth): generations of rule-caused work;
/// - [`max_work_per_input`](Self::max_work_per_input): work units — work queued, rules
///   evaluated, actions and `for_each` iterations executed;
/// - [`max_queued_bytes_per_input`](Self::max_queued_bytes_per_input): approximate bytes of
///   the values rule actions produce;
/// - [`max_scanned_bytes_per_input`](Self::max_scanned_bytes_per_input): approximate bytes
///   rule conditions look at.
///
/// When the work, bytes or scanned-bytes bound is reached, the action that would exceed it does not run,
/// the rest of the cascade (work still queued, remaining rules and actions) is dropped, one
/// warning is logged for the input and [`crate::EngineStats::cascades_truncated`] /
/// [`crate::EngineStats::work_dropped`] count it. What ran before stays: facts already set,
/// events already processed (they are delivered to subscribers). The input itself still
/// succeeds — `emit` returns the event, `set_fact` the fact — so a client cannot tell from
/// the answer whether the cascade was cut; the statistics and the log tell the operator.
///
/// ```
/// use noex_rules::{EngineConfig, RuleEngine};
/// use serde_json::json;
///
/// let engine = RuleEngine::new(EngineConfig { max_work_per_input: 1_000, ..Default::default() });
/// engine.register_rule(&json!({
///     "id": "echo", "name": "re-emits its trigger once per item",
///     "trigger": {"type": "event", "topic": "t"},
///     "actions": [{"type": "for_each", "collection": {"ref": "event.items"}, "as": "x",
///         "actions": [{"type": "emit_event", "topic": "t", "data": {"items": {"ref": "event.items"}}}]}]
/// })).unwrap();
/// let items: Vec<u32> = (0..100).collect();
/// engine.emit("t", json!({"items": items})).unwrap(); // returns at once
/// let stats = engine.stats();
/// assert_eq!(stats.cascades_truncated, 1);
/// assert!(stats.work_dropped > 0);
/// ```
#[derive(Clone)]
pub struct EngineConfig {
    /// How many generations of rule-caused events / fact changes may trigger further rules.
    /// Work at this depth is still applied and delivered but triggers no rule (counted in
    /// `cascades_truncated`). Default 10.
    pub max_chain_depth: usize,
    /// Most work units one input may use: one per work item queued (events and fact changes,
    /// the input itself included), one per rule whose conditions are evaluated, one per
    /// action executed and one per `for_each` iteration. At the bound the rest of the
    /// cascade is dropped (see the type's documentation). Default 10 000.
    pub max_work_per_input: usize,
    /// Most bytes (approximate, as held in memory) of values rule actions may produce for one
    /// input: data of emitted events, values of set facts and the replaced values fact changes
    /// carry, timer data, interpolated strings (keys, topics, log messages) and `for_each`
    /// collections. Charged before a value is copied and never refunded, so it bounds both
    /// the memory a cascade holds and the copying it does. At the bound the rest of the
    /// cascade is dropped. The input's own data is not counted. Default 16 MiB.
    pub max_queued_bytes_per_input: usize,
    /// Most bytes rule conditions may look at for one input, its whole cascade included
    /// (conditions of rules and of `conditional` actions, in `for_each` iterations too).
    /// Every evaluated condition costs 64 bytes, plus what it compares: the haystack and
    /// needle of a string `contains` / `not_contains` / `matches`; the strings an ordering
    /// or string equality compares; the approximate size (as held in memory, measured only
    /// as far as this bound reaches) of arrays and objects an `eq` / `neq` / `in` /
    /// `not_in` / `contains` compares; the fact keys a wildcard fact condition passes; and
    /// 4 MiB for a `matches` whose pattern is not compiled yet (one taken from event data,
    /// say: a compile takes milliseconds, so one input compiles at most four). It is
    /// charged *before* the comparison, so a condition that would pass the bound is not
    /// evaluated, and at the bound the rest of the cascade is dropped like at the other
    /// bounds. Without it one rule of thousands of `not_contains` over a 900 KB event field
    /// took ~250 ms per event while counting as one work unit.
    ///
    /// Default 16 MiB: substring search and comparison run at a few GB/s, so the bound
    /// holds the conditions of one input to a few milliseconds (~16 ms even at 1 GB/s),
    /// while ordinary rule sets — tens of rules with a few conditions each over fields of
    /// kilobytes — use well under 1 MiB, and 262 144 cheap (scalar) conditions still fit.
    /// A field of 900 KB can be scanned ~18 times per input.
    pub max_scanned_bytes_per_input: usize,
    /// Most stored facts. Setting a *new* key beyond it fails: `set_fact` with
    /// [`crate::RulesError::LimitExceeded`], a rule's `set_fact` action as an action error
    /// (counted in `action_errors`). Changing or deleting existing facts always works, and
    /// [`crate::RuleEngine::restore_facts`] restores every fact given (warning when that
    /// exceeds the bound). Default 100 000.
    pub max_facts: usize,
    /// Largest value of one fact, in bytes: the larger of its JSON and an estimate of its
    /// size in memory (a node per JSON value, string and key bytes, entry overheads; an
    /// array of small numbers takes ~16x its JSON). Also the largest data of one timer
    /// (`onExpire.data`, a rule's `set_timer` over it is an action error). Setting a larger value fails:
    /// `set_fact` with [`crate::RulesError::TooLarge`], a rule's `set_fact` action as an
    /// action error. Default 64 KiB.
    pub max_fact_bytes: usize,
    /// Most bytes of all facts together (every value counted as for
    /// [`Self::max_fact_bytes`], plus every key). A set that
    /// would grow the facts past it fails: `set_fact` with
    /// [`crate::RulesError::LimitExceeded`], a rule's `set_fact` action as an action error.
    /// Replacing a value by one no larger and deleting always work; facts restored at start
    /// are all kept. The data of all active timers together may take as much again (a
    /// `set_timer` past it is an action error). Default 64 MiB.
    pub max_facts_bytes: usize,
    /// Default `maxIterations` of `for_each` (also the upper bound of explicit values). Default 1000.
    pub max_for_each_iterations: u64,
    /// Most registered rules; registering one more fails with
    /// [`crate::RulesError::LimitExceeded`]. Default 10 000.
    pub max_rules: usize,
    /// Largest definition of one rule, in bytes: the larger of its JSON and an estimate of
    /// its size in memory, counted as for [`Self::max_fact_bytes`] (the rule as given to
    /// `register_rule`, or as merged by `update_rule`). A larger one is refused with
    /// [`crate::RulesError::TooLarge`]. Rules are cloned for listings and their conditions
    /// walked for every matching input, so one rule's size is time as well as memory.
    /// Default 64 KiB (hundreds of conditions and actions; real rules take a few KB).
    pub max_rule_bytes: usize,
    /// Most bytes of all registered rules together (each counted as for
    /// [`Self::max_rule_bytes`]). A registration or update that would grow them past it
    /// fails with [`crate::RulesError::LimitExceeded`]; unregistering frees room, and rules
    /// restored at start ([`crate::RuleEngine::restore_rules`]) are all kept. Default
    /// 32 MiB (512 rules at the one-rule bound).
    pub max_rules_bytes: usize,
    /// Most active timers; a `set_timer` action for a new name beyond it is an action error
    /// (re-arming an existing timer always works). Default 10 000.
    pub max_timers: usize,
    /// Most event subscriptions. Default 100 000.
    pub max_subscriptions: usize,
    /// Shortest timer duration and repeat interval, in ms. A rule whose `set_timer` gives a
    /// literal `duration` or `repeat.interval` below it is refused at registration (a
    /// validation error); a computed one (`{ref}` or `${...}`) below it is raised to it when
    /// the timer is set. Each expiry is an input of its own, so without a floor a rule
    /// re-arming a 0 ms timer on its own expiry, or a 1 ms repeat, fires without end.
    /// Default 100: at most 10 expiries per second per timer, while timeouts, reminders and
    /// heartbeats (seconds to hours) are unaffected.
    pub min_timer_interval_ms: u64,
    /// Most `log` lines one rule may write per second (a token bucket per rule, refilled
    /// continuously by [`Self::clock`], holding at most one second's worth). Lines over it
    /// are dropped and counted ([`crate::EngineStats::logs_dropped`]); the rule's next line
    /// that passes is preceded by one warning saying how many were dropped. The warnings
    /// about a rule (failed condition or action, truncated `for_each`) take tokens from the
    /// same bucket and quote at most 256 characters of the error. Default 20.
    pub max_rule_logs_per_second: u32,
    /// Most bytes (approximate, as held in memory, see [`Self::max_fact_bytes`]) of event
    /// data all temporal patterns together keep (sequence steps, absence waits, count and
    /// aggregate windows). When an event of rule R (of owner O, see
    /// [`crate::RuleEngine::register_rule_as`]; rules without one share the owner `""`) does
    /// not fit, the owner holding the most gives way while it holds more than O would with
    /// the event, its largest rule first (oldest window events of its largest group first,
    /// then that group's sequence / absence wait); then, within O, its largest rule while it
    /// holds more than R would. So an owner holding, with the event, at most
    /// `max_temporal_bytes / n` (n: owners holding temporal data, O included) always gets
    /// room, however many rules the others registered, and so does a rule within its share
    /// of its owner's part. Only when nobody holds more is the event not buffered: it does not start or advance a sequence, open an absence wait or enter a
    /// window (it is not counted), and a warning is logged; events leaving windows free room.
    /// The data of one timer (`onExpire.data`) is bounded by [`Self::max_fact_bytes`].
    /// Default 64 MiB.
    pub max_temporal_bytes: usize,
    /// A first topic segment only the embedding application may emit (the server sets
    /// `bucket` for its store change events): a rule whose `emit_event` or timer `onExpire`
    /// topic starts with it (literally) is refused at registration with a validation error,
    /// and a computed topic under it is an action error. `None` (default): no such root.
    pub reserved_topic_root: Option<String>,
    /// Source of timestamps, and what timers and absence waits wait on (advancing a
    /// [`noex_model::clock::ManualClock`] fires what is due). Default: a [`TokioClock`].
    pub clock: Arc<dyn Clock>,
    /// Optional receiver of `log` actions (they always go to `tracing` as well).
    pub log_hook: Option<LogHook>,
    /// Optional receiver of every fact change.
    pub fact_observer: Option<FactObserver>,
}

impl EngineConfig {
    /// The bounds of the fact store.
    /// A fresh budget for one input, with this configuration's bounds.
    pub(crate) fn budget(&self) -> crate::budget::Budget {
        crate::budget::Budget::new(
            self.max_work_per_input,
            self.max_queued_bytes_per_input,
            self.max_scanned_bytes_per_input,
        )
    }

    pub(crate) fn fact_limits(&self) -> crate::facts::FactLimits {
        crate::facts::FactLimits {
            max_facts: self.max_facts,
            max_fact_bytes: self.max_fact_bytes,
            max_facts_bytes: self.max_facts_bytes,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_chain_depth: 10,
            max_work_per_input: 10_000,
            max_queued_bytes_per_input: 16 * 1024 * 1024,
            max_scanned_bytes_per_input: 16 * 1024 * 1024,
            max_facts: 100_000,
            max_fact_bytes: 64 * 1024,
            max_facts_bytes: 64 * 1024 * 1024,
            max_for_each_iterations: 1000,
            max_rules: 10_000,
            max_rule_bytes: 64 * 1024,
            max_rules_bytes: 32 * 1024 * 1024,
            max_timers: 10_000,
            max_subscriptions: 100_000,
            min_timer_interval_ms: 100,
            max_rule_logs_per_second: 20,
            max_temporal_bytes: 64 * 1024 * 1024,
            reserved_topic_root: None,
            clock: Arc::new(TokioClock::new()),
            log_hook: None,
            fact_observer: None,
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("max_chain_depth", &self.max_chain_depth)
            .field("max_work_per_input", &self.max_work_per_input)
            .field(
                "max_queued_bytes_per_input",
                &self.max_queued_bytes_per_input,
            )
            .field(
                "max_scanned_bytes_per_input",
                &self.max_scanned_bytes_per_input,
            )
            .field("max_facts", &self.max_facts)
            .field("max_fact_bytes", &self.max_fact_bytes)
            .field("max_facts_bytes", &self.max_facts_bytes)
            .field("max_for_each_iterations", &self.max_for_each_iterations)
            .field("max_rules", &self.max_rules)
            .field("max_rule_bytes", &self.max_rule_bytes)
            .field("max_rules_bytes", &self.max_rules_bytes)
            .field("max_timers", &self.max_timers)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("min_timer_interval_ms", &self.min_timer_interval_ms)
            .field("max_rule_logs_per_second", &self.max_rule_logs_per_second)
            .field("max_temporal_bytes", &self.max_temporal_bytes)
            .field("reserved_topic_root", &self.reserved_topic_root)
            .field("clock", &self.clock)
            .field("log_hook", &self.log_hook.is_some())
            .field("fact_observer", &self.fact_observer.is_some())
            .finish()
    }
}
