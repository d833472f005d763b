//! Typed rules API: events, facts, event subscriptions, stats and rule management.

use noex_protocol::payloads::{
    EventPush, Fact, FactDeleted, RuleEnabled, RuleEvent, RuleList, RuleRegistered,
    RuleUnregistered, RuleUpdated, RuleValidation, RulesStats,
};
use noex_protocol::{JsonObject, Operation, RulesOp};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Client, Subscription};
use crate::ClientError;
use crate::core::SubscriptionTarget;

/// The `rules.*` namespace.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
/// let event = client.rules().emit("order.created", serde_json::Map::new()).await?;
/// println!("{}", event.id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Rules {
    client: Client,
}

impl Rules {
    pub(crate) fn new(client: Client) -> Self {
        Rules { client }
    }

    async fn call<R: DeserializeOwned>(&self, op: RulesOp) -> Result<R, ClientError> {
        self.client.call(Operation::Rules(op)).await
    }

    /// Emits an event.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let event = rules.emit("order.created", serde_json::Map::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit(&self, topic: &str, data: JsonObject) -> Result<RuleEvent, ClientError> {
        self.call(RulesOp::Emit {
            topic: topic.to_owned(),
            data,
            correlation_id: None,
            causation_id: None,
        })
        .await
    }

    /// Sets a fact.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// rules.set_fact("user:1:tier", serde_json::json!("gold")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_fact(&self, key: &str, value: Value) -> Result<Fact, ClientError> {
        self.call(RulesOp::SetFact {
            key: key.to_owned(),
            value,
        })
        .await
    }

    /// Reads a fact's value (`None` when unset).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let tier = rules.get_fact("user:1:tier").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_fact(&self, key: &str) -> Result<Option<Value>, ClientError> {
        self.call(RulesOp::GetFact {
            key: key.to_owned(),
        })
        .await
    }

    /// Deletes a fact.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// rules.delete_fact("user:1:tier").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_fact(&self, key: &str) -> Result<FactDeleted, ClientError> {
        self.call(RulesOp::DeleteFact {
            key: key.to_owned(),
        })
        .await
    }

    /// Facts whose key matches a pattern.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let tiers = rules.query_facts("user:*:tier").await?;
    /// # Ok(()) }
    /// ```
    pub async fn query_facts(&self, pattern: &str) -> Result<Vec<Fact>, ClientError> {
        self.call(RulesOp::QueryFacts {
            pattern: pattern.to_owned(),
        })
        .await
    }

    /// Every fact.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let facts = rules.all_facts().await?;
    /// # Ok(()) }
    /// ```
    pub async fn all_facts(&self) -> Result<Vec<Fact>, ClientError> {
        self.call(RulesOp::GetAllFacts).await
    }

    /// Subscribes to events whose topic matches `pattern`; each item is a push.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use futures_util::StreamExt;
    /// let mut orders = client.rules().subscribe("order.*").await?;
    /// if let Some(Ok(push)) = orders.next().await { println!("{}", push.topic); }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription<EventPush>, ClientError> {
        let target = SubscriptionTarget::Rules {
            pattern: pattern.to_owned(),
        };
        Ok(Subscription::open(&self.client, target, false).await?.0)
    }

    /// Engine statistics.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let stats = rules.stats().await?;
    /// # Ok(()) }
    /// ```
    pub async fn stats(&self) -> Result<RulesStats, ClientError> {
        self.call(RulesOp::Stats).await
    }

    /// Registers a rule.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let rule = serde_json::json!({"id": "r1"}).as_object().cloned().unwrap_or_default();
    /// rules.register_rule(rule).await?;
    /// # Ok(()) }
    /// ```
    pub async fn register_rule(&self, rule: JsonObject) -> Result<RuleRegistered, ClientError> {
        self.call(RulesOp::RegisterRule { rule }).await
    }

    /// Unregisters a rule.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// rules.unregister_rule("r1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn unregister_rule(&self, rule_id: &str) -> Result<RuleUnregistered, ClientError> {
        self.call(RulesOp::UnregisterRule {
            rule_id: rule_id.to_owned(),
        })
        .await
    }

    /// Updates a rule.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// rules.update_rule("r1", serde_json::Map::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_rule(
        &self,
        rule_id: &str,
        updates: JsonObject,
    ) -> Result<RuleUpdated, ClientError> {
        self.call(RulesOp::UpdateRule {
            rule_id: rule_id.to_owned(),
            updates,
        })
        .await
    }

    /// Enables a rule.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// rules.enable_rule("r1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn enable_rule(&self, rule_id: &str) -> Result<RuleEnabled, ClientError> {
        self.call(RulesOp::EnableRule {
            rule_id: rule_id.to_owned(),
        })
        .await
    }

    /// Disables a rule.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// rules.disable_rule("r1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn disable_rule(&self, rule_id: &str) -> Result<RuleEnabled, ClientError> {
        self.call(RulesOp::DisableRule {
            rule_id: rule_id.to_owned(),
        })
        .await
    }

    /// One rule (raw JSON).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let rule = rules.get_rule("r1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_rule(&self, rule_id: &str) -> Result<Value, ClientError> {
        self.call(RulesOp::GetRule {
            rule_id: rule_id.to_owned(),
        })
        .await
    }

    /// Every rule.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let all = rules.get_rules().await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_rules(&self) -> Result<RuleList, ClientError> {
        self.call(RulesOp::GetRules).await
    }

    /// Validates a rule without registering it.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = client.rules();
    /// let report = rules.validate_rule(serde_json::Map::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn validate_rule(&self, rule: JsonObject) -> Result<RuleValidation, ClientError> {
        self.call(RulesOp::ValidateRule { rule }).await
    }
}
