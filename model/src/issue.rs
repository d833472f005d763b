//! [`ValidationIssue`]: one problem the store found in a record against its bucket's schema,
//! as a `VALIDATION_ERROR` lists it in its `details`.

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
