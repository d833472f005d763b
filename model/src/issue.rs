//! Validation issues: [`ValidationIssue`], one problem the store found in a record against its
//! bucket's schema (as a `VALIDATION_ERROR` lists it in its `details`), and
//! [`RuleValidationIssue`], one problem the rule engine found in a rule definition.

use serde::{Deserialize, Serialize};

/// One schema-validation issue, listed in a `VALIDATION_ERROR`'s `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ValidationIssue {
    /// Field path, e.g. `address.city` or `tags[2]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// `required`, `type`, `enum`, `minLength`, `maxLength`, `pattern`, `format`, `min`,
    /// `max` or `custom`.
    pub code: String,
}

/// How serious a [`RuleValidationIssue`] is (the original's `severity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum IssueSeverity {
    /// The rule cannot be registered.
    #[default]
    Error,
    /// Worth knowing; the rule can be registered.
    Warning,
}

/// One problem found in a rule definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RuleValidationIssue {
    /// Where, e.g. `trigger.type` or `actions[1].key`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// `error` for everything listed in `errors`, `warning` in `warnings`.
    #[serde(default)]
    pub severity: IssueSeverity,
}

impl RuleValidationIssue {
    /// An error at `path` (`""` for the rule itself).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            severity: IssueSeverity::Error,
        }
    }
}
