//! noex-rules: the rule engine (see `docs/reference/rules.md` in the repository).
//!
//! Keeps **facts** (`key -> JSON`, `:`-segment keys), receives **events** (`.`-segment topics)
//! and runs **rules** — JSON data in the shape of the original noex-rules — that react to them
//! by forward chaining, with timers and temporal patterns on tokio time.
//!
//! ```
//! use noex_rules::RuleEngine;
//! use serde_json::json;
//!
//! let engine = RuleEngine::default();
//! engine.register_rule(&json!({
//!     "id": "vip", "name": "VIP orders",
//!     "trigger": {"type": "event", "topic": "order.created"},
//!     "conditions": [{"source": {"type": "event", "field": "total"}, "operator": "gte", "value": 100}],
//!     "actions": [{"type": "set_fact", "key": "order:${event.id}:vip", "value": true}]
//! })).unwrap();
//! engine.emit("order.created", json!({"id": 7, "total": 250})).unwrap();
//! assert_eq!(engine.get_fact("order:7:vip"), Some(json!(true)));
//! ```
//!
//! Modules: [`pattern`] (durations, paths; the topic / fact patterns of `noex-model`),
//! `facts`, `event` (events; the clock is `noex-model`'s [`Clock`]),
//! `model` (rule serde types), [`validate`] (raw JSON validation), `eval` (conditions,
//! interpolation), `temporal`, `timers`, `budget` (the bounds of one input), `runner` (rule
//! execution) and `engine` (the API).

mod budget;
mod config;
mod engine;
mod error;
mod eval;
mod event;
mod facts;
mod footprint;
mod model;
pub mod pattern;
mod runner;
mod temporal;
mod timers;
pub mod validate;

pub use config::{EngineConfig, FactObserver, LogHook};
pub use engine::{EngineStats, EventCallback, RuleEngine, SubscriptionId};
pub use error::{Result, RuleValidationIssue, RulesError};
pub use event::{API_SOURCE, EmitOptions, Event, RULE_SOURCE, TIMER_SOURCE};
pub use facts::{Fact, FactChange};
pub use footprint::{RuleFootprint, rule_footprint, updated_rule_footprint};
pub use model::{
    Action, AggregateFunction, CatchBlock, Comparison, Condition, ConditionSource, EventMatcher,
    LogLevel, OnExpire, Operator, Rule, RuleInput, RuleSummary, TemporalPattern, TimerConfig,
    TimerRepeat, Trigger,
};
pub use noex_model::clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use temporal::{MAX_GROUPS_PER_RULE, MAX_HISTORY};
pub use timers::TimerInfo;
pub use validate::{ValidationReport, validate_rule};
