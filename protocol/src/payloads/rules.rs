//! Results of `rules.*` operations and the `{topic, event}` push on channel `event`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

/// An event as the engine records it: `rules.emit`'s result and the `event` of a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RuleEvent {
    /// Unique event id.
    pub id: String,
    /// `.`-separated topic.
    pub topic: String,
    /// Event data.
    pub data: Value,
    /// When it was emitted, ms since the Unix epoch.
    pub timestamp: u64,
    /// Correlation id carried through chained events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub correlation_id: Option<String>,
    /// Id of the event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub causation_id: Option<String>,
    /// Who emitted it: `api` (a client's `rules.emit`), `rule` (a rule's `emit_event`),
    /// `timer` (a timer's `onExpire`), `store` (a bucket change), `server` (a connection
    /// event).
    pub source: String,
}

/// `data` of a push on channel `event`: `{topic, event}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct EventPush {
    /// The event's topic.
    pub topic: String,
    /// The full event.
    pub event: RuleEvent,
}

/// A fact, `{key, value, timestamp, source, version}`: `rules.setFact`'s result and each
/// entry of `rules.queryFacts` / `rules.getAllFacts` (defined in `noex-model`, the very type
/// the rule engine stores).
pub use noex_model::rule::Fact;

/// `rules.deleteFact` → `{deleted}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct FactDeleted {
    /// Whether the fact existed.
    pub deleted: bool,
}

/// `rules.subscribe` → `{subscriptionId}` (no initial data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RulesSubscribeResult {
    /// Server-assigned id, echoed in every push.
    pub subscription_id: String,
}

/// `rules.stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RulesStats {
    /// Registered rules.
    pub rules_count: u64,
    /// Stored facts.
    pub facts_count: u64,
    /// Pending timers.
    pub timers_count: u64,
    /// Events processed since start.
    pub events_processed: u64,
    /// Rule executions since start.
    pub rules_executed: u64,
    /// Rule runs stopped by a failing condition or action.
    pub action_errors: u64,
    /// Active event subscriptions (`rules.subscribe`).
    pub subscriptions_count: u64,
    /// Mean processing time per event.
    pub avg_processing_time_ms: f64,
}

/// `rules.registerRule` → `{id, name, version, createdAt, updatedAt}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RuleRegistered {
    /// Rule id.
    pub id: String,
    /// Rule name.
    pub name: String,
    /// Starts at 1, +1 per update.
    pub version: u64,
    /// ms since the Unix epoch.
    pub created_at: u64,
    /// ms since the Unix epoch.
    pub updated_at: u64,
}

/// `rules.unregisterRule` → `{ruleId, unregistered: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RuleUnregistered {
    /// Rule id.
    pub rule_id: String,
    /// Always `true`.
    pub unregistered: bool,
}

/// `rules.updateRule` → `{id, version, updatedAt}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RuleUpdated {
    /// Rule id.
    pub id: String,
    /// The new version.
    pub version: u64,
    /// ms since the Unix epoch.
    pub updated_at: u64,
}

/// `rules.enableRule` / `rules.disableRule` → `{ruleId, enabled}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RuleEnabled {
    /// Rule id.
    pub rule_id: String,
    /// The new state.
    pub enabled: bool,
}

/// One entry of `rules.getRules` (defined in `noex-model`, shared with the rule engine).
pub use noex_model::rule::RuleSummary;

/// `rules.getRules` → `{rules}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RuleList {
    /// Every rule.
    pub rules: Vec<RuleSummary>,
}

/// One problem found in a rule definition (defined in `noex-model`, shared with the rule engine).
pub use noex_model::issue::RuleValidationIssue;

/// `rules.validateRule` → `{valid, errors, warnings}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RuleValidation {
    /// Whether the rule can be registered.
    pub valid: bool,
    /// Every problem that stops the rule from being registered (`severity: "error"`).
    pub errors: Vec<RuleValidationIssue>,
    /// Problems that do not (`severity: "warning"`).
    #[serde(default)]
    pub warnings: Vec<RuleValidationIssue>,
}
