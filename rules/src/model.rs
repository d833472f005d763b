//! Rules as serde data, in the JSON shape of the original noex-rules
//! (`trigger` / `conditions` / `actions` with `type` tags, camelCase fields).
//!
//! Raw JSON from a client is checked by [`crate::validate_rule`] first (precise path + message
//! errors); these types are what a valid rule deserializes into.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A rule as submitted for registration (no engine-managed fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleInput {
    /// Unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Higher runs first; default 0.
    #[serde(default)]
    pub priority: i64,
    /// Disabled rules never run; default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Free-form tags.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<String>,
    /// Optional group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What makes the rule run.
    pub trigger: Trigger,
    /// All must hold for the actions to run.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub conditions: Vec<Condition>,
    /// Run in order when the conditions hold.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub actions: Vec<Action>,
}

fn default_true() -> bool {
    true
}

/// `null` reads as an empty list, as `validate_rule` treats it (like an absent field).
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A registered rule: the input plus `version`, `createdAt`, `updatedAt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The rule as submitted (flattened into the same JSON object).
    #[serde(flatten)]
    pub input: RuleInput,
    /// 1 on registration, +1 on each update.
    pub version: u64,
    /// Registration time (ms since the Unix epoch).
    pub created_at: i64,
    /// Last update time (ms since the Unix epoch).
    pub updated_at: i64,
    /// Who registered it (a user id), when the caller said so
    /// ([`RuleEngine::register_rule_as`](crate::RuleEngine::register_rule_as)): temporal
    /// patterns share a full pool by owner. Not part of the rule's JSON.
    #[serde(skip)]
    pub owner: Option<String>,
}

pub use noex_model::rule::RuleSummary;

impl Rule {
    /// The list-entry view of this rule.
    pub fn summary(&self) -> RuleSummary {
        RuleSummary {
            id: self.input.id.clone(),
            name: self.input.name.clone(),
            enabled: self.input.enabled,
            priority: self.input.priority,
            version: self.version,
            tags: self.input.tags.clone(),
            group: self.input.group.clone(),
        }
    }
}

/// What makes a rule run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// An event whose topic matches the pattern.
    Event {
        /// Topic pattern.
        topic: String,
    },
    /// A fact whose key matches the pattern was set or deleted. The rule sees
    /// `event.key`, `event.value`, `event.previousValue` and `event.deleted`.
    Fact {
        /// Fact pattern.
        pattern: String,
    },
    /// A timer of this name expired (`*` matches one `:` segment of the name). The rule sees
    /// the timer's `onExpire.data` as `event.*` and the name as `context.timerName`.
    Timer {
        /// Timer name or pattern.
        name: String,
    },
    /// A complex-event pattern over time.
    Temporal {
        /// The pattern.
        pattern: Box<TemporalPattern>,
    },
}

/// Selects events for temporal patterns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMatcher {
    /// Topic pattern.
    pub topic: String,
    /// Every entry (dot path -> value) must equal the event data at that path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Map<String, Value>>,
    /// Alias (kept for compatibility with the original; not used by the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#as: Option<String>,
}

/// Threshold comparison of count and aggregate patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// `>=` (the default).
    #[default]
    Gte,
    /// `<=`.
    Lte,
    /// `==`.
    Eq,
}

impl Comparison {
    /// Applies the comparison.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gte => value >= threshold,
            Comparison::Lte => value <= threshold,
            Comparison::Eq => value == threshold,
        }
    }
}

/// Aggregation function of an aggregate pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    /// Sum of the field.
    Sum,
    /// Mean of the field.
    Avg,
    /// Minimum of the field.
    Min,
    /// Maximum of the field.
    Max,
    /// Number of events.
    Count,
}

/// Complex-event patterns. Durations are ms numbers or strings like `"5m"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemporalPattern {
    /// The events arrive in this order within `within`.
    #[serde(rename_all = "camelCase")]
    Sequence {
        /// Matchers, in order (at least 2).
        events: Vec<EventMatcher>,
        /// Window from the first event.
        within: Value,
        /// Event data field that separates independent instances.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_by: Option<String>,
        /// When true, an out-of-order event of the pattern aborts the instance.
        #[serde(default)]
        strict: bool,
    },
    /// `after` was seen and `expected` was not seen within `within`.
    #[serde(rename_all = "camelCase")]
    Absence {
        /// The event that starts the wait.
        after: EventMatcher,
        /// The event whose absence fires the rule.
        expected: EventMatcher,
        /// How long to wait.
        within: Value,
        /// Event data field that separates independent instances.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_by: Option<String>,
    },
    /// `threshold` occurrences (per `comparison`) within `window`.
    #[serde(rename_all = "camelCase")]
    Count {
        /// The events counted.
        event: EventMatcher,
        /// The threshold.
        threshold: f64,
        /// How the count is compared with the threshold.
        #[serde(default)]
        comparison: Comparison,
        /// Window length.
        window: Value,
        /// Event data field that separates independent counts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_by: Option<String>,
        /// Sliding (trailing) window instead of tumbling.
        #[serde(default)]
        sliding: bool,
    },
    /// `function(field)` over the events in `window` compared with `threshold`.
    #[serde(rename_all = "camelCase")]
    Aggregate {
        /// The events aggregated.
        event: EventMatcher,
        /// Dot path of the numeric field.
        field: String,
        /// The aggregation.
        function: AggregateFunction,
        /// The threshold.
        threshold: f64,
        /// How the aggregate is compared with the threshold.
        #[serde(default)]
        comparison: Comparison,
        /// Window length (trailing).
        window: Value,
        /// Event data field that separates independent aggregates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_by: Option<String>,
    },
}

/// One condition: `source operator value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Where the left-hand value comes from.
    pub source: ConditionSource,
    /// The comparison.
    pub operator: Operator,
    /// Literal, or `{ref: "event.x" | "fact.key" | "context.x"}`. Ignored by `exists` / `not_exists`.
    #[serde(default)]
    pub value: Value,
}

/// Left-hand side of a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConditionSource {
    /// A dot path into the trigger event's data.
    Event {
        /// Dot path.
        field: String,
    },
    /// The value of a fact (the first match when the pattern has `*`); the key may interpolate.
    Fact {
        /// Fact key or pattern.
        pattern: String,
    },
    /// A context variable (for_each items, caught errors, temporal match info).
    Context {
        /// Variable name, optionally followed by a dot path.
        key: String,
    },
}

/// Condition operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal (JSON equality; numbers compare by value).
    Eq,
    /// Not equal.
    Neq,
    /// Greater than (numbers, or strings lexicographically).
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// Left value is an element of the right array.
    In,
    /// Left value is not an element of the right array.
    NotIn,
    /// Left string contains right string, or left array contains right value.
    Contains,
    /// Negation of `contains`.
    NotContains,
    /// Left string matches the right regex.
    Matches,
    /// Left value is present and not null.
    Exists,
    /// Left value is absent or null.
    NotExists,
}

/// Timer settings of `set_timer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerConfig {
    /// Name (interpolated); a timer of the same name is replaced.
    pub name: String,
    /// Ms number or string like `"15m"`.
    pub duration: Value,
    /// The event emitted on expiry.
    pub on_expire: OnExpire,
    /// Repeat after the first expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<TimerRepeat>,
}

/// The event a timer emits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnExpire {
    /// Topic (interpolated).
    pub topic: String,
    /// Data (refs and interpolation resolved when the timer is set).
    #[serde(default = "empty_object")]
    pub data: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Repetition of a timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerRepeat {
    /// Interval between expiries (ms or `"30s"`).
    pub interval: Value,
    /// Total number of expiries (including the first); unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
}

/// The catch branch of `try_catch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatchBlock {
    /// Context variable receiving `{message}` of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#as: Option<String>,
    /// Recovery actions.
    pub actions: Vec<Action>,
}

/// Log levels of the `log` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

/// Actions, executed in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Sets a fact (key interpolated, value resolved).
    SetFact {
        /// Fact key.
        key: String,
        /// Value (literal, `{ref}`, or with `${}` strings).
        value: Value,
    },
    /// Deletes a fact.
    DeleteFact {
        /// Fact key.
        key: String,
    },
    /// Emits an event (correlated with the trigger).
    EmitEvent {
        /// Topic (interpolated).
        topic: String,
        /// Data (resolved).
        #[serde(default = "empty_object")]
        data: Value,
    },
    /// Starts (or replaces) a named timer.
    SetTimer {
        /// Timer settings.
        timer: TimerConfig,
    },
    /// Cancels a named timer.
    CancelTimer {
        /// Timer name (interpolated).
        name: String,
    },
    /// Logs a message through `tracing` and the engine's log hook.
    Log {
        /// Level.
        level: LogLevel,
        /// Message (interpolated).
        message: String,
    },
    /// Runs `then` when all conditions hold, else `else`.
    Conditional {
        /// Conditions.
        conditions: Vec<Condition>,
        /// Actions when they hold.
        then: Vec<Action>,
        /// Actions otherwise.
        #[serde(default, rename = "else", skip_serializing_if = "Option::is_none")]
        else_: Option<Vec<Action>>,
    },
    /// Runs `actions` for each element of `collection` bound as context variable `as`
    /// (and `<as>_index`).
    #[serde(rename_all = "camelCase")]
    ForEach {
        /// Array literal or `{ref}`.
        collection: Value,
        /// Variable name of the item.
        r#as: String,
        /// Body.
        actions: Vec<Action>,
        /// Iteration bound (default 1000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_iterations: Option<u64>,
    },
    /// Runs `try`; on the first failure runs `catch`; always runs `finally`.
    TryCatch {
        /// Actions attempted.
        r#try: Vec<Action>,
        /// Recovery.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catch: Option<CatchBlock>,
        /// Always run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finally: Option<Vec<Action>>,
    },
}
