//! Rule persistence: the engine configuration the server derives from its limits, and
//! facts and rules kept in the durable store's side table (written on every change,
//! loaded at start).

use serde_json::Value;
use std::sync::Arc;

use noex_rules::{EngineConfig, Fact, FactChange, FactObserver, RuleEngine};
use noex_store::Store;

use crate::config::LimitsConfig;
use crate::store_bridge::RESERVED_TOPIC_ROOT;

/// The configuration of the engine the server creates: the rule bounds of the config's
/// `limits` section (facts, rules and their bytes, timers, and per input work, chain
/// depth, produced and scanned bytes), and a fact persister when the store is durable. An engine supplied with
/// [`crate::ServerBuilder::rule_engine`] keeps its own configuration.
pub(crate) fn engine_config(limits: &LimitsConfig, store: &Store) -> EngineConfig {
    EngineConfig {
        max_facts: limits.max_facts,
        max_fact_bytes: limits.max_fact_bytes,
        max_facts_bytes: limits.max_facts_bytes,
        max_rules: limits.max_rules,
        max_rule_bytes: limits.max_rule_bytes,
        max_rules_bytes: limits.max_rules_bytes,
        max_timers: limits.max_timers,
        min_timer_interval_ms: limits.min_timer_interval_ms,
        max_rule_logs_per_second: limits.max_rule_logs_per_second,
        max_work_per_input: limits.max_rule_work_per_input,
        max_chain_depth: limits.max_rule_chain_depth,
        max_queued_bytes_per_input: limits.max_rule_queued_bytes,
        max_scanned_bytes_per_input: limits.max_rule_scan_bytes,
        max_temporal_bytes: limits.max_rule_temporal_bytes,
        reserved_topic_root: Some(RESERVED_TOPIC_ROOT.to_string()),
        fact_observer: fact_persister(store),
        ..EngineConfig::default()
    }
}

/// Side-table namespace of persisted facts (key: fact key, value: the fact).
const FACTS: &str = "rules.facts";
/// Side-table namespace of persisted rules (key: rule id, value: the rule).
const RULES: &str = "rules.rules";
/// Fields the engine adds to a registered rule; not part of what `register_rule` takes.
const RULE_METADATA: [&str; 3] = ["version", "createdAt", "updatedAt"];
/// Where a persisted rule keeps its owner (not part of the rule's JSON on the wire).
const RULE_OWNER: &str = "_owner";

/// A fact observer that writes every fact change to the store's side table, or `None`
/// when the store is not durable.
pub(crate) fn fact_persister(store: &Store) -> Option<FactObserver> {
    store.persistence_path()?;
    let store = store.clone();
    Some(Arc::new(move |changes: &[FactChange]| {
        // One commit for the whole batch the engine reports (one fsync in sync mode).
        let entries = changes
            .iter()
            .filter_map(|change| {
                match change.fact.as_ref().map(serde_json::to_value).transpose() {
                    Ok(value) => Some((change.key.clone(), value)),
                    Err(err) => {
                        // Skipped, never written as a removal.
                        tracing::error!(%err, key = %change.key, "fact not serializable; not persisted");
                        None
                    }
                }
            })
            .collect();
        // The engine's observer cannot fail a request: the failure is logged, and a failed
        // writer makes the store refuse every later write.
        if let Err(err) = store.persist_aux_many(FACTS, entries) {
            tracing::error!(%err, "facts not persisted");
        }
    }))
}

/// Writes rule `id` as it now is (or its removal, when it is no longer registered) to the
/// store's side table; a no-op when the store is not durable. The caller reports a
/// failure: the rule change is applied in the engine but not on disk.
pub(crate) fn persist_rule(
    store: &Store,
    engine: &RuleEngine,
    id: &str,
) -> Result<(), noex_store::StoreError> {
    let value = match engine.get_rule(id) {
        Ok(rule) => {
            let mut value =
                serde_json::to_value(&rule).map_err(|e| noex_store::StoreError::Internal {
                    message: format!("rule {id:?} does not serialize: {e}"),
                })?;
            if let (Some(map), Some(owner)) = (value.as_object_mut(), &rule.owner) {
                map.insert(RULE_OWNER.to_owned(), Value::String(owner.clone()));
            }
            Some(value)
        }
        Err(_) => None,
    };
    store.persist_aux(RULES, id, value)
}

/// Loads persisted facts and rules into `engine` (nothing when the store is not durable).
/// A rule that no longer registers is skipped with an error in the log rather than
/// stopping the server.
pub(crate) fn restore(store: &Store, engine: &RuleEngine) {
    let facts = store
        .load_aux(FACTS)
        .into_iter()
        .filter_map(|(key, value)| match serde_json::from_value::<Fact>(value) {
            Ok(fact) => Some(fact),
            Err(err) => {
                tracing::error!(%err, %key, "persisted fact unreadable; skipped");
                None
            }
        });
    engine.restore_facts(facts);
    for (id, mut rule) in store.load_aux(RULES) {
        let mut owner = None;
        if let Some(map) = rule.as_object_mut() {
            for field in RULE_METADATA {
                map.remove(field);
            }
            if let Some(Value::String(o)) = map.remove(RULE_OWNER) {
                owner = Some(o);
            }
        }
        // Kept even over the rule size bounds (the engine warns), like restored facts.
        if let Err(err) = engine.restore_rule_as(&rule, owner.as_deref()) {
            tracing::error!(%err, rule = %id, "persisted rule no longer registers; skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_store::{DurabilityMode, PersistenceConfig, StoreConfig};
    use serde_json::json;

    /// A rule's owner is written with it and given back at restore, so the temporal pool
    /// stays shared by owner after a restart.
    #[tokio::test]
    async fn a_rules_owner_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!(
            "noex-rule-owner-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = || StoreConfig {
            persistence: Some(PersistenceConfig::new(
                dir.join("data.redb"),
                DurabilityMode::Sync,
            )),
            ..StoreConfig::default()
        };
        let rule = json!({"id": "r", "name": "r",
            "trigger": {"type": "event", "topic": "order.x"},
            "actions": [{"type": "log", "level": "info", "message": "x"}]});
        {
            let store = Store::start(config()).expect("store");
            let engine = RuleEngine::new(engine_config(&LimitsConfig::default(), &store));
            engine
                .register_rule_as(&rule, Some("ten"))
                .expect("registers");
            persist_rule(&store, &engine, "r").expect("persisted");
        }
        let store = Store::start(config()).expect("store again");
        let engine = RuleEngine::new(engine_config(&LimitsConfig::default(), &store));
        restore(&store, &engine);
        let restored = engine.get_rule("r").expect("restored");
        assert_eq!(restored.owner.as_deref(), Some("ten"));
        // The owner is not part of the rule's JSON.
        let wire = serde_json::to_value(&restored).expect("serializes");
        assert!(
            wire.get("_owner").is_none() && wire.get("owner").is_none(),
            "{wire}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Rules restored at start are all kept, even when a lowered `maxRuleBytes` /
    /// `maxRulesBytes` no longer admits them; new registrations are then refused.
    #[tokio::test]
    async fn restored_rules_are_kept_over_the_rule_byte_bounds() {
        let dir = std::env::temp_dir().join(format!(
            "noex-rule-bytes-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = || StoreConfig {
            persistence: Some(PersistenceConfig::new(
                dir.join("data.redb"),
                DurabilityMode::Sync,
            )),
            ..StoreConfig::default()
        };
        let rule = |id: &str| {
            json!({"id": id, "name": id,
                "trigger": {"type": "event", "topic": "order.x"},
                "actions": [{"type": "log", "level": "info", "message": "x".repeat(2_000)}]})
        };
        {
            let store = Store::start(config()).expect("store");
            let engine = RuleEngine::new(engine_config(&LimitsConfig::default(), &store));
            for id in ["a", "b", "c"] {
                engine.register_rule(&rule(id)).expect("registers");
                persist_rule(&store, &engine, id).expect("persisted");
            }
        }
        let store = Store::start(config()).expect("store again");
        let limits = LimitsConfig {
            max_rule_bytes: 1_000,
            max_rules_bytes: 2_000,
            ..LimitsConfig::default()
        };
        let engine = RuleEngine::new(engine_config(&limits, &store));
        restore(&store, &engine);
        assert_eq!(engine.get_rules().len(), 3);
        assert!(matches!(
            engine.register_rule(&json!({"id": "d", "name": "d",
                "trigger": {"type": "event", "topic": "order.x"}})),
            Err(noex_rules::RulesError::LimitExceeded(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
