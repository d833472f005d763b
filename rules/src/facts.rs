//! The fact store: `key -> JSON value` with per-key versions, queried by `:`-segment patterns.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::budget::{Budget, Fault};
use crate::pattern::fact_matches;

/// One stored fact: the model's [`noex_model::rule::Fact`], the shape the protocol carries
/// and the server persists (`{key, value, timestamp, source, version}`).
pub use noex_model::rule::Fact;

/// One change of the fact store, as reported to [`crate::EngineConfig::fact_observer`]:
/// the fact as it now is, or `None` when it was deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct FactChange {
    /// The key that changed.
    pub key: String,
    /// The new fact; `None` after a deletion.
    pub fact: Option<Fact>,
}

/// Scanned bytes charged per fact a wildcard fact condition passes, on top of its key.
const SCANNED_ENTRY_BYTES: usize = 16;

/// In-memory facts, ordered by key so listings are deterministic.
#[derive(Debug, Default)]
pub(crate) struct FactStore {
    /// Each fact with its size as [`FactStore::bytes`] counts it.
    facts: BTreeMap<String, (Fact, usize)>,
    /// Changes not yet reported to the observer (`None`: nobody observes).
    journal: Option<Vec<FactChange>>,
    /// [`value_bytes`] of every value plus the bytes of every key.
    bytes: usize,
}

/// The size counted against the fact bounds: the larger of the bytes of `value`
/// serialized as JSON (counted, not built) and its approximate size in memory
/// ([`noex_model::json::memory_size_within`]: a node per value, string and key bytes, entry
/// overheads), since a parsed value takes up to ~35x its JSON (an array of small numbers).
pub(crate) fn value_bytes(value: &Value) -> usize {
    json_bytes(value).max(noex_model::json::memory_size_within(value, usize::MAX))
}

/// The bytes of `value` serialized as JSON (counted, not built).
fn json_bytes(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Why [`FactStore::check_set`] refuses a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A new key beyond `max_facts`.
    Count { max: usize },
    /// The value alone is over `max_fact_bytes`.
    Value { bytes: usize, max: usize },
    /// All facts together would pass `max_facts_bytes`.
    Total { max: usize },
}

impl Refusal {
    /// The message of the refusal.
    pub(crate) fn message(&self, key: &str) -> String {
        match self {
            Refusal::Count { max } => format!("fact limit ({max}) reached; {key:?} not set"),
            Refusal::Value { bytes, max } => format!(
                "fact {key:?}: value of {bytes} bytes exceeds the fact size limit ({max} bytes)"
            ),
            Refusal::Total { max } => {
                format!("fact storage limit ({max} bytes of all facts) reached; {key:?} not set")
            }
        }
    }

    /// The engine error of the refusal.
    pub(crate) fn error(&self, key: &str) -> crate::error::RulesError {
        match self {
            Refusal::Value { .. } => crate::error::RulesError::TooLarge(self.message(key)),
            _ => crate::error::RulesError::LimitExceeded(self.message(key)),
        }
    }
}

/// The bounds of the fact store (from [`crate::EngineConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FactLimits {
    pub max_facts: usize,
    pub max_fact_bytes: usize,
    pub max_facts_bytes: usize,
}

impl FactStore {
    /// Whether `key` may be set to a value of `bytes` (see [`value_bytes`]) within
    /// `limits`: a value over `max_fact_bytes` never; a new key only below `max_facts`; a
    /// value that grows the store only while all facts stay within `max_facts_bytes`
    /// (replacing a value by one no larger always works).
    pub(crate) fn check_set(
        &self,
        key: &str,
        bytes: usize,
        limits: &FactLimits,
    ) -> Result<(), Refusal> {
        if bytes > limits.max_fact_bytes {
            return Err(Refusal::Value {
                bytes,
                max: limits.max_fact_bytes,
            });
        }
        if !self.admits(key, limits.max_facts) {
            return Err(Refusal::Count {
                max: limits.max_facts,
            });
        }
        let old = self.facts.get(key).map(|(_, size)| *size);
        let new = bytes + key.len();
        let grows = old.is_none_or(|old| new > old);
        if grows && self.bytes - old.unwrap_or(0) + new > limits.max_facts_bytes {
            return Err(Refusal::Total {
                max: limits.max_facts_bytes,
            });
        }
        Ok(())
    }

    /// Serialized bytes of all values plus all keys.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sets a fact, bumping its version; returns the new fact and the previous value.
    /// `bytes` is [`value_bytes`] of `value`.
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: Value,
        bytes: usize,
        timestamp: i64,
        source: &str,
    ) -> (Fact, Option<Value>) {
        let version = self.facts.get(key).map_or(1, |(old, _)| old.version + 1);
        let fact = Fact {
            key: key.to_string(),
            value,
            timestamp,
            source: source.to_string(),
            version,
        };
        // The replaced value is moved out, not copied.
        let size = bytes + key.len();
        self.bytes += size;
        let previous = self
            .facts
            .insert(key.to_string(), (fact.clone(), size))
            .map(|(old, old_size)| {
                self.bytes -= old_size;
                old.value
            });
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
        let size = value_bytes(&fact.value) + fact.key.len();
        self.bytes += size;
        if let Some((_, old)) = self.facts.insert(fact.key.clone(), (fact, size)) {
            self.bytes -= old;
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Fact> {
        self.facts.get(key).map(|(fact, _)| fact)
    }

    pub(crate) fn delete(&mut self, key: &str) -> Option<Fact> {
        let removed = self.facts.remove(key).map(|(fact, size)| {
            self.bytes -= size;
            fact
        });
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

    pub(crate) fn query(&self, pattern: &str) -> Vec<Fact> {
        self.facts
            .values()
            .filter(|(f, _)| fact_matches(pattern, &f.key))
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// The value of the first fact matching `pattern` (the fact itself when `pattern` has no
    /// `*`), charging `budget`'s scanned bytes for every key a wildcard pattern passes (its
    /// length plus a per-entry cost) before it is compared: a wildcard fact condition walks
    /// the facts in key order until one matches.
    pub(crate) fn first_value_scanned(
        &self,
        pattern: &str,
        budget: &mut Budget,
    ) -> Result<Option<&Value>, Fault> {
        if !pattern.contains('*') {
            return Ok(self.facts.get(pattern).map(|(f, _)| &f.value));
        }
        for (f, _) in self.facts.values() {
            budget.scan(f.key.len() + SCANNED_ENTRY_BYTES)?;
            if fact_matches(pattern, &f.key) {
                return Ok(Some(&f.value));
            }
        }
        Ok(None)
    }

    pub(crate) fn all(&self) -> Vec<Fact> {
        self.facts.values().map(|(f, _)| f.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_count_changes_and_queries_use_patterns() {
        let mut store = FactStore::default();
        let (f1, prev) = store.set("user:1:name", json!("Ann"), 5, 10, "api");
        assert_eq!((f1.version, prev), (1, None));
        let (f2, prev) = store.set("user:1:name", json!("Anna"), 6, 20, "api");
        assert_eq!((f2.version, prev), (2, Some(json!("Ann"))));
        store.set("user:2:name", json!("Bob"), 5, 30, "api");
        store.set("user:2", json!({}), 2, 30, "api");
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
        // Bytes: values as JSON plus keys, replaced and deleted ones no longer counted.
        // A value counts as the larger of its JSON and its size in memory.
        let node = std::mem::size_of::<Value>();
        assert_eq!(value_bytes(&json!("Anna")), (node + 4).max(6));
        assert_eq!(
            value_bytes(&json!("x".repeat(1000))),
            (node + 1000).max(1002)
        );
        // An array of small numbers: ~2 bytes of JSON each, a whole node each in memory.
        let zeros: Value = serde_json::from_str(&format!("[{}0]", "0,".repeat(32_699))).unwrap();
        assert!(
            value_bytes(&zeros) >= 32_700 * node,
            "{}",
            value_bytes(&zeros)
        );
        assert_eq!(store.bytes(), (6 + 11) + (5 + 11));
        let limits = FactLimits {
            max_facts: 10,
            max_fact_bytes: 10,
            max_facts_bytes: 40,
        };
        assert_eq!(
            store.check_set("x", 11, &limits),
            Err(Refusal::Value { bytes: 11, max: 10 })
        );
        assert_eq!(
            store.check_set("x", 7, &limits),
            Err(Refusal::Total { max: 40 })
        );
        assert_eq!(store.check_set("x", 6, &limits), Ok(()));
        // Replacing counts the difference: 33 - 17 + (10 + 11) = 37.
        assert_eq!(store.check_set("user:1:name", 10, &limits), Ok(()));
    }
}
