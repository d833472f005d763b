//! What the rule engine answers and the protocol carries: [`RuleSummary`], a registered rule
//! as `rules.getRules` lists it, and [`FactEntry`], a fact as `rules.queryFacts` and
//! `rules.getAllFacts` list it.

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
    /// Group, if any.
    pub group: Option<String>,
}

/// One entry of `rules.queryFacts` / `rules.getAllFacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FactEntry {
    /// Fact key.
    pub key: String,
    /// Fact value.
    pub value: Value,
}
