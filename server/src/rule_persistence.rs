//! Rule persistence: the engine configuration the server derives from its limits, and
//! facts and rules kept in the durable store's side table (written on every change,
//! loaded at start).

use std::sync::Arc;

use noex_rules::{EngineConfig, Fact, FactChange, FactObserver, RuleEngine};
use noex_store::Store;

use crate::config::LimitsConfig;
use crate::store_bridge::RESERVED_TOPIC_ROOT;

/// The configuration of the engine the server creates: the rule bounds of the config's
/// `limits` section (facts, rules, timers, and per input work, chain depth and produced
/// bytes), and a fact persister when the store is durable. An engine supplied with
/// [`crate::ServerBuilder::rule_engine`] keeps its own configuration.
pub(crate) fn engine_config(limits: &LimitsConfig, store: &Store) -> EngineConfig {
    EngineConfig {
        max_facts: limits.max_facts,
        max_fact_bytes: limits.max_fact_bytes,
        max_facts_bytes: limits.max_facts_bytes,
        max_rules: limits.max_rules,
        max_timers: limits.max_timers,
        min_timer_interval_ms: limits.min_timer_interval_ms,
        max_rule_logs_per_second: limits.max_rule_logs_per_second,
        max_work_per_input: limits.max_rule_work_per_input,
        max_chain_depth: limits.max_rule_chain_depth,
        max_queued_bytes_per_input: limits.max_rule_queued_bytes,
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
            Some(
                serde_json::to_value(rule).map_err(|e| noex_store::StoreError::Internal {
                    message: format!("rule {id:?} does not serialize: {e}"),
                })?,
            )
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
        if let Some(map) = rule.as_object_mut() {
            for field in RULE_METADATA {
                map.remove(field);
            }
        }
        if let Err(err) = engine.register_rule(&rule) {
            tracing::error!(%err, rule = %id, "persisted rule no longer registers; skipped");
        }
    }
}
