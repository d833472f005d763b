//! The change feed: one serializable [`ChangeEvent`] per committed record change, topic
//! names (`bucket.<name>.<type>`) and the handler registry, whose patterns are the
//! protocol's topic patterns ([`noex_model::pattern::topic_matches`]).

use noex_model::pattern::topic_matches;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

use crate::value::Record;

/// Kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new record.
    Inserted,
    /// A record replaced by a newer version.
    Updated,
    /// A record removed (delete, clear, TTL expiry, maxSize eviction).
    Deleted,
}

impl ChangeKind {
    /// Lowercase name used in topics.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Inserted => "inserted",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    /// Kind of change.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// Bucket name.
    pub bucket: String,
    /// Record key.
    pub key: Value,
    /// The inserted or deleted record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
    /// The record before an update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_record: Option<Record>,
    /// The record after an update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_record: Option<Record>,
    /// `_version` of the record after the change (of the removed record for deletes).
    pub version: u64,
    /// Id of the transaction that made the change, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<u64>,
}

fn version_of(r: &Record) -> u64 {
    r.get("_version").and_then(Value::as_u64).unwrap_or(0)
}

impl ChangeEvent {
    pub(crate) fn new(
        bucket: &str,
        key: Value,
        old: Option<Record>,
        new: Option<Record>,
        tx: Option<u64>,
    ) -> Option<Self> {
        // The records are moved into the event, not copied: this runs under the store's
        // write lock, and a copy of every written or removed record there cost a deleteMany
        // of 700 records of 1 MB about a second and 576 MB (red team, round 9).
        let (kind, record, old_record, new_record, version) = match (old, new) {
            (None, Some(n)) => {
                let version = version_of(&n);
                (ChangeKind::Inserted, Some(n), None, None, version)
            }
            (Some(o), Some(n)) => {
                let version = version_of(&n);
                (ChangeKind::Updated, None, Some(o), Some(n), version)
            }
            (Some(o), None) => {
                let version = version_of(&o);
                (ChangeKind::Deleted, Some(o), None, None, version)
            }
            (None, None) => return None,
        };
        Some(ChangeEvent {
            kind,
            bucket: bucket.to_owned(),
            key,
            record,
            old_record,
            new_record,
            version,
            transaction_id: tx,
        })
    }

    /// Topic of this event: `bucket.<name>.<type>`.
    pub fn topic(&self) -> String {
        format!("bucket.{}.{}", self.bucket, self.kind.as_str())
    }
}

/// A change handler.
pub type ChangeHandler = Arc<dyn Fn(&ChangeEvent) + Send + Sync>;

/// Registered handlers by id.
#[derive(Default)]
pub(crate) struct HandlerRegistry {
    next: u64,
    handlers: Vec<(u64, String, ChangeHandler)>,
}

impl HandlerRegistry {
    pub fn add(&mut self, pattern: String, handler: ChangeHandler) -> u64 {
        self.next += 1;
        self.handlers.push((self.next, pattern, handler));
        self.next
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.handlers.len();
        self.handlers.retain(|(h, _, _)| *h != id);
        before != self.handlers.len()
    }

    pub fn matching(&self, topic: &str) -> Vec<ChangeHandler> {
        self.handlers
            .iter()
            .filter(|(_, p, _)| topic_matches(p, topic))
            .map(|(_, _, h)| h.clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    /// The store's change topics under the protocol's topic grammar (a trailing `.*` matches
    /// any depth; `**` is not a wildcard).
    #[test]
    fn change_topics_follow_the_protocol_grammar() {
        let t = "bucket.users.inserted";
        assert!(topic_matches("bucket.*.*", t));
        assert!(topic_matches("bucket.users.inserted", t));
        assert!(topic_matches("bucket.users.*", t));
        assert!(topic_matches("bucket.*", t), "a trailing .* is any depth");
        assert!(topic_matches("*", t));
        assert!(topic_matches("bucket.*.inserted", t));
        assert!(!topic_matches("bucket.*.deleted", t));
        assert!(!topic_matches("bucket.users.updated", t));
        assert!(!topic_matches("bucket.*.*.*", t));
        assert!(
            !topic_matches("bucket.**", t),
            "`**` is a literal segment now"
        );
        assert!(!topic_matches("**", t));
    }
}
