//! The fact store: `key -> JSON value` with per-key versions, queried by `:`-segment patterns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pattern::fact_matches;

/// One stored fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fact {
    /// The key, `:`-separated segments.
    pub key: String,
    /// The value.
    pub value: Value,
    /// When it was last set (ms since the Unix epoch, from the engine clock).
    pub timestamp: i64,
    /// Who set it (`api`, `rule:<id>`, ...).
    pub source: String,
    /// How many times this key was set (1 after the first set).
    pub version: u64,
}

/// `{key, value}`: the shape `queryFacts` / `getAllFacts` return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
}

/// One change of the fact store, as reported to [`crate::EngineConfig::fact_observer`]:
/// the fact as it now is, or `None` when it was deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct FactChange {
    /// The key that changed.
    pub key: String,
    /// The new fact; `None` after a deletion.
    pub fact: Option<Fact>,
}

/// In-memory facts, ordered by key so listings are deterministic.
#[derive(Debug, Default)]
pub(crate) struct FactStore {
    facts: BTreeMap<String, Fact>,
    /// Changes not yet reported to the observer (`None`: nobody observes).
    journal: Option<Vec<FactChange>>,
}

impl FactStore {
    /// Sets a fact, bumping its version; returns the new fact and the previous value.
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: Value,
        timestamp: i64,
        source: &str,
    ) -> (Fact, Option<Value>) {
        let version = self.facts.get(key).map_or(1, |old| old.version + 1);
        let fact = Fact {
            key: key.to_string(),
            value,
            timestamp,
            source: source.to_string(),
            version,
        };
        // The replaced value is moved out, not copied.
        let previous = self
            .facts
            .insert(key.to_string(), fact.clone())
            .map(|old| old.value);
        if let Some(journal) = &mut self.journal {
            journal.push(FactChange {
                key: key.to_string(),
                fact: Some(fact.clone()),
            });
        }
        (fact, previous)
    }

    /// Whether setting `key` keeps the store within `max` facts: an existing key always
    /// does, a new one only while fewer than `max` are stored.
    pub(crate) fn admits(&self, key: &str, max: usize) -> bool {
        self.facts.len() < max || self.facts.contains_key(key)
    }

    /// Starts recording changes for an observer.
    pub(crate) fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The changes recorded since the last call.
    pub(crate) fn take_journal(&mut self) -> Vec<FactChange> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Puts a fact back as it was (e.g. loaded from disk): no version bump, no journal.
    pub(crate) fn restore(&mut self, fact: Fact) {
        self.facts.insert(fact.key.clone(), fact);
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Fact> {
        self.facts.get(key)
    }

    pub(crate) fn delete(&mut self, key: &str) -> Option<Fact> {
        let removed = self.facts.remove(key);
        if let (Some(journal), Some(_)) = (&mut self.journal, &removed) {
            journal.push(FactChange {
                key: key.to_string(),
                fact: None,
            });
        }
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.facts.len()
    }

    pub(crate) fn query(&self, pattern: &str) -> Vec<FactEntry> {
        self.facts
            .values()
            .filter(|f| fact_matches(pattern, &f.key))
            .map(|f| FactEntry {
                key: f.key.clone(),
                value: f.value.clone(),
            })
            .collect()
    }

    /// The value of the first fact matching `pattern` (the fact itself when `pattern` has no `*`).
    pub(crate) fn first_value(&self, pattern: &str) -> Option<&Value> {
        if !pattern.contains('*') {
            return self.facts.get(pattern).map(|f| &f.value);
        }
        self.facts
            .values()
            .find(|f| fact_matches(pattern, &f.key))
            .map(|f| &f.value)
    }

    pub(crate) fn all(&self) -> Vec<FactEntry> {
        self.facts
            .values()
            .map(|f| FactEntry {
                key: f.key.clone(),
                value: f.value.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_count_changes_and_queries_use_patterns() {
        let mut store = FactStore::default();
        let (f1, prev) = store.set("user:1:name", json!("Ann"), 10, "api");
        assert_eq!((f1.version, prev), (1, None));
        let (f2, prev) = store.set("user:1:name", json!("Anna"), 20, "api");
        assert_eq!((f2.version, prev), (2, Some(json!("Ann"))));
        store.set("user:2:name", json!("Bob"), 30, "api");
        store.set("user:2", json!({}), 30, "api");
        let names = store.query("user:*:name");
        assert_eq!(
            names.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
            ["user:1:name", "user:2:name"]
        );
        assert_eq!(store.query("user:*").len(), 1);
        assert!(store.delete("user:2").is_some());
        assert!(store.delete("user:2").is_none());
        assert_eq!(store.len(), 2);
        assert!(store.admits("user:1:name", 2));
        assert!(!store.admits("user:3", 2));
        assert!(store.admits("user:3", 3));
    }
}
