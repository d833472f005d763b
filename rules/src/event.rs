//! Events, stamped (like facts) by the engine clock ([`noex_model::clock::Clock`]).

use noex_model::clock::Clock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event flowing through the engine: emitted by a client, a rule, a timer or a bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique id (UUID v4).
    pub id: String,
    /// `.`-separated topic.
    pub topic: String,
    /// Payload (an object for client events).
    pub data: Value,
    /// When it was emitted (ms since the Unix epoch, from the engine clock).
    pub timestamp: i64,
    /// Correlation id shared by every event of one causal chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Id of the event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Who emitted it, as the original engine names it: `api` (a client or the embedding
    /// program), `rule` (a rule's `emit_event`), `timer` (a timer's `onExpire`); the server
    /// adds `store` (bucket changes) and `server` (connection events).
    pub source: String,
}

/// Optional metadata for [`crate::RuleEngine::emit_with`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmitOptions {
    /// Source recorded on the event (for example `"store"` for the store bridge); `None`
    /// records `"api"`.
    pub source: Option<String>,
    /// Correlation id; rule-emitted descendants carry it on.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
}

/// The source of events and facts from a client or the embedding program.
pub const API_SOURCE: &str = "api";
/// The source of events and facts a rule's actions produce.
pub const RULE_SOURCE: &str = "rule";
/// The source of a timer's `onExpire` event.
pub const TIMER_SOURCE: &str = "timer";

/// The engine's timestamps are signed ms since the Unix epoch; the clock's are unsigned.
pub(crate) fn clock_now(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.now_ms()).unwrap_or(i64::MAX)
}
