//! The subscription registry: what the user subscribed to (so it can be re-established
//! after a reconnect) and which server-side id currently belongs to it.

use std::collections::HashMap;

use serde_json::Value;

/// A local subscription handle; stable across reconnects (server ids change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionKey(pub u64);

/// What a subscription listens to.
///
/// ```
/// use noex_client::core::SubscriptionTarget;
/// let t = SubscriptionTarget::Rules { pattern: "order.*".into() };
/// assert!(matches!(t, SubscriptionTarget::Rules { .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionTarget {
    /// `store.subscribe` to a defined query.
    Store {
        /// Query name.
        query: String,
        /// Query parameters.
        params: Option<Value>,
    },
    /// `rules.subscribe` to a topic pattern.
    Rules {
        /// Topic pattern.
        pattern: String,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    target: SubscriptionTarget,
    server_id: Option<String>,
}

/// Local keys ↔ targets ↔ current server ids.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    next: u64,
    entries: HashMap<SubscriptionKey, Entry>,
    by_server_id: HashMap<String, SubscriptionKey>,
}

impl Registry {
    pub(crate) fn add(&mut self, target: SubscriptionTarget) -> SubscriptionKey {
        self.next += 1;
        let key = SubscriptionKey(self.next);
        self.entries.insert(
            key,
            Entry {
                target,
                server_id: None,
            },
        );
        key
    }

    pub(crate) fn target(&self, key: SubscriptionKey) -> Option<&SubscriptionTarget> {
        self.entries.get(&key).map(|e| &e.target)
    }

    pub(crate) fn set_server_id(&mut self, key: SubscriptionKey, server_id: String) -> bool {
        let Some(entry) = self.entries.get_mut(&key) else {
            return false;
        };
        if let Some(old) = entry.server_id.replace(server_id.clone()) {
            self.by_server_id.remove(&old);
        }
        self.by_server_id.insert(server_id, key);
        true
    }

    pub(crate) fn by_server_id(&self, server_id: &str) -> Option<SubscriptionKey> {
        self.by_server_id.get(server_id).copied()
    }

    /// Removes a subscription; returns its target and server id.
    pub(crate) fn remove(
        &mut self,
        key: SubscriptionKey,
    ) -> Option<(SubscriptionTarget, Option<String>)> {
        let entry = self.entries.remove(&key)?;
        if let Some(id) = &entry.server_id {
            self.by_server_id.remove(id);
        }
        Some((entry.target, entry.server_id))
    }

    /// Forgets every server id (the connection that owned them is gone).
    pub(crate) fn clear_server_ids(&mut self) {
        self.by_server_id.clear();
        for entry in self.entries.values_mut() {
            entry.server_id = None;
        }
    }

    /// Every registered subscription, in creation order.
    pub(crate) fn all(&self) -> Vec<(SubscriptionKey, SubscriptionTarget)> {
        // Sorting the bare keys shares the sort routine of the pending table.
        let mut keys: Vec<u64> = self.entries.keys().map(|k| k.0).collect();
        keys.sort_unstable();
        keys.into_iter()
            .filter_map(|k| {
                let key = SubscriptionKey(k);
                self.target(key).map(|t| (key, t.clone()))
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
