//! What the rule engine answers and the protocol carries: [`RuleSummary`], a registered rule
//! as `rules.getRules` lists it, and [`Fact`], a fact as the engine stores it and
//! `rules.setFact`, `rules.queryFacts` and `rules.getAllFacts` answer it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of `rules.getRules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RuleSummary {
    /// Rule id.
    pub id: String,
    /// Rule name.
    pub name: String,
    /// Whether it runs.
    pub enabled: bool,
    /// Higher runs first.
    pub priority: i64,
    /// Current version.
    pub version: u64,
    /// Tags.
    pub tags: Vec<String>,
    /// Group, if any (absent rather than `null` without one, as the original sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub group: Option<String>,
}

/// A fact as the rule engine stores it and the protocol carries it: the result of
/// `rules.setFact` and each entry of `rules.queryFacts` / `rules.getAllFacts` (the
/// original's `Fact`, `{key, value, timestamp, source, version}`). The same shape is what
/// a durable server persists for each fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Fact {
    /// Fact key, `:`-separated segments.
    pub key: String,
    /// Fact value.
    pub value: Value,
    /// When it was last set, ms since the Unix epoch (from the engine clock).
    pub timestamp: i64,
    /// Who set it last: `api` (a client's `rules.setFact`), `rule` (a rule's `set_fact`
    /// action), or what an embedding program passed.
    pub source: String,
    /// How many times this key has been set (1 after the first set).
    pub version: u64,
}
