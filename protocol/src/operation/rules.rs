//! `rules.*` operations (docs/reference/protocol.md, "Rules operations").

use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use super::store::JsonObject;
use crate::fields::Fields;

/// Every `rules.*` operation with its fields.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum RulesOp {
    /// Emit an event; returns the event object.
    #[serde(rename = "rules.emit")]
    Emit {
        /// Event topic, `.`-separated.
        topic: String,
        /// Event data (default `{}`).
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
        /// Correlation id to carry through chained events.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        correlation_id: Option<String>,
        /// Id of the event that caused this one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        causation_id: Option<String>,
    },
    /// Set a fact.
    #[serde(rename = "rules.setFact")]
    SetFact {
        /// Fact key, `:`-separated.
        key: String,
        /// Any JSON value.
        value: Value,
    },
    /// Read a fact; `null` when absent.
    #[serde(rename = "rules.getFact")]
    GetFact {
        /// Fact key.
        key: String,
    },
    /// Delete a fact; `{deleted}` says whether it existed.
    #[serde(rename = "rules.deleteFact")]
    DeleteFact {
        /// Fact key.
        key: String,
    },
    /// Facts whose key matches a pattern (`*` = one segment).
    #[serde(rename = "rules.queryFacts")]
    QueryFacts {
        /// Key pattern.
        pattern: String,
    },
    /// Every fact.
    #[serde(rename = "rules.getAllFacts")]
    GetAllFacts,
    /// Subscribe to events whose topic matches a pattern.
    #[serde(rename = "rules.subscribe")]
    Subscribe {
        /// Topic pattern.
        pattern: String,
    },
    /// End a rules subscription.
    #[serde(rename = "rules.unsubscribe")]
    Unsubscribe {
        /// The id returned by `rules.subscribe`.
        subscription_id: String,
    },
    /// Engine statistics.
    #[serde(rename = "rules.stats")]
    Stats,
    /// Register a rule (admin).
    #[serde(rename = "rules.registerRule")]
    RegisterRule {
        /// The rule definition.
        #[ts(type = "Record<string, JsonValue>")]
        rule: JsonObject,
    },
    /// Remove a rule (admin).
    #[serde(rename = "rules.unregisterRule")]
    UnregisterRule {
        /// Rule id.
        rule_id: String,
    },
    /// Change a rule (admin).
    #[serde(rename = "rules.updateRule")]
    UpdateRule {
        /// Rule id.
        rule_id: String,
        /// Fields to replace.
        #[ts(type = "Record<string, JsonValue>")]
        updates: JsonObject,
    },
    /// Enable a rule (admin).
    #[serde(rename = "rules.enableRule")]
    EnableRule {
        /// Rule id.
        rule_id: String,
    },
    /// Disable a rule (admin).
    #[serde(rename = "rules.disableRule")]
    DisableRule {
        /// Rule id.
        rule_id: String,
    },
    /// One rule in full (admin).
    #[serde(rename = "rules.getRule")]
    GetRule {
        /// Rule id.
        rule_id: String,
    },
    /// Summaries of every rule (admin).
    #[serde(rename = "rules.getRules")]
    GetRules,
    /// Check a rule without registering it (admin).
    #[serde(rename = "rules.validateRule")]
    ValidateRule {
        /// The rule definition.
        #[ts(type = "Record<string, JsonValue>")]
        rule: JsonObject,
    },
}

impl RulesOp {
    /// Parses the fields of a `rules.*` request; `None` when `op_type` is not a rules operation.
    pub(crate) fn parse(op_type: &str, f: &Fields<'_>) -> Option<Result<RulesOp, String>> {
        let parsed = (|| {
            Ok(match op_type {
                "rules.emit" => RulesOp::Emit {
                    topic: f.string("topic")?,
                    data: f.opt_object("data")?.unwrap_or_default(),
                    correlation_id: f.opt_string("correlationId")?,
                    causation_id: f.opt_string("causationId")?,
                },
                "rules.setFact" => RulesOp::SetFact {
                    key: f.string("key")?,
                    value: f.present("value")?,
                },
                "rules.getFact" => RulesOp::GetFact {
                    key: f.string("key")?,
                },
                "rules.deleteFact" => RulesOp::DeleteFact {
                    key: f.string("key")?,
                },
                "rules.queryFacts" => RulesOp::QueryFacts {
                    pattern: f.string("pattern")?,
                },
                "rules.getAllFacts" => RulesOp::GetAllFacts,
                "rules.subscribe" => RulesOp::Subscribe {
                    pattern: f.string("pattern")?,
                },
                "rules.unsubscribe" => RulesOp::Unsubscribe {
                    subscription_id: f.string("subscriptionId")?,
                },
                "rules.stats" => RulesOp::Stats,
                "rules.registerRule" => RulesOp::RegisterRule {
                    rule: f.object("rule")?,
                },
                "rules.unregisterRule" => RulesOp::UnregisterRule {
                    rule_id: f.string("ruleId")?,
                },
                "rules.updateRule" => RulesOp::UpdateRule {
                    rule_id: f.string("ruleId")?,
                    updates: f.object("updates")?,
                },
                "rules.enableRule" => RulesOp::EnableRule {
                    rule_id: f.string("ruleId")?,
                },
                "rules.disableRule" => RulesOp::DisableRule {
                    rule_id: f.string("ruleId")?,
                },
                "rules.getRule" => RulesOp::GetRule {
                    rule_id: f.string("ruleId")?,
                },
                "rules.getRules" => RulesOp::GetRules,
                "rules.validateRule" => RulesOp::ValidateRule {
                    rule: f.object("rule")?,
                },
                _ => return Err(None),
            })
        })();
        super::known_or_none(parsed)
    }
}

impl RulesOp {
    /// The operation's wire `type`.
    pub fn op_type(&self) -> &'static str {
        match self {
            RulesOp::Emit { .. } => "rules.emit",
            RulesOp::SetFact { .. } => "rules.setFact",
            RulesOp::GetFact { .. } => "rules.getFact",
            RulesOp::DeleteFact { .. } => "rules.deleteFact",
            RulesOp::QueryFacts { .. } => "rules.queryFacts",
            RulesOp::GetAllFacts => "rules.getAllFacts",
            RulesOp::Subscribe { .. } => "rules.subscribe",
            RulesOp::Unsubscribe { .. } => "rules.unsubscribe",
            RulesOp::Stats => "rules.stats",
            RulesOp::RegisterRule { .. } => "rules.registerRule",
            RulesOp::UnregisterRule { .. } => "rules.unregisterRule",
            RulesOp::UpdateRule { .. } => "rules.updateRule",
            RulesOp::EnableRule { .. } => "rules.enableRule",
            RulesOp::DisableRule { .. } => "rules.disableRule",
            RulesOp::GetRule { .. } => "rules.getRule",
            RulesOp::GetRules => "rules.getRules",
            RulesOp::ValidateRule { .. } => "rules.validateRule",
        }
    }
}
