//! [`RuleSummary`]: a registered rule as `rules.getRules` lists it; the rule engine builds it,
//! the protocol carries it.

use serde::{Deserialize, Serialize};

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
