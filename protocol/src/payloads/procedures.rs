//! Results of `procedures.*` operations.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ts_rs::TS;

/// `procedures.register` → `{name, registered: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ProcedureRegistered {
    /// The procedure's name.
    pub name: String,
    /// Always `true`.
    pub registered: bool,
}

/// `procedures.unregister` → `{name, unregistered: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ProcedureUnregistered {
    /// The procedure's name.
    pub name: String,
    /// Always `true`.
    pub unregistered: bool,
}

/// `procedures.update` → `{name, updated: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ProcedureUpdated {
    /// The procedure's name.
    pub name: String,
    /// Always `true`.
    pub updated: bool,
}

/// One entry of `procedures.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ProcedureInfo {
    /// The procedure's name.
    pub name: String,
    /// Its description, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub description: Option<String>,
    /// Number of top-level steps.
    pub steps_count: usize,
}

/// `procedures.list` → `{procedures: [{name, description?, stepsCount}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ProcedureList {
    /// Every registered procedure, by name.
    pub procedures: Vec<ProcedureInfo>,
}

/// `procedures.call` → `{success: true, result?, results}`: the value of the `return` step
/// (absent when none ran) and every named step result (`as`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ProcedureCallResult {
    /// Always `true` (a failed call is an error frame).
    pub success: bool,
    /// What the `return` step produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub result: Option<Value>,
    /// Each step result by its `as` name.
    #[ts(as = "std::collections::BTreeMap<String, Value>")]
    pub results: Map<String, Value>,
}
