//! The audit log (`audit` config section): every answered request of an audited tier —
//! denied and failed ones included — becomes an [`AuditEntry`] kept in a bounded ring
//! buffer that `audit.query` reads, optionally appended to a durable bucket (bounded too)
//! and handed to an embedder's hook. Strings an entry takes from a request or an error are
//! cut to fixed sizes, so no client can make one entry large.

use std::collections::VecDeque;
use std::sync::Arc;

use noex_protocol::payloads::AuditEntry;
use noex_protocol::{
    AuditOp, AuditResult, ErrorCode, Operation, ProceduresOp, Resource, RulesOp, ServerOp, StoreOp,
    Tier,
};
use noex_store::{BucketDefinition, Store, StoreError};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::config::AuditConfig;
use crate::error::ServerError;

/// Longest `error`, `resource` or `userId` an entry keeps, in bytes (longer ones are cut
/// at a character boundary and end with `…`).
pub const MAX_AUDIT_TEXT_BYTES: usize = 1024;
/// Largest `details` an entry keeps, in bytes of JSON; larger ones are replaced by
/// `{"truncated": true, "bytes": N}`.
pub const MAX_AUDIT_DETAILS_BYTES: usize = 4096;

/// Called with every audit entry once it is logged (see [`crate::ServerBuilder::audit_hook`]).
pub type AuditHook = Arc<dyn Fn(&AuditEntry) + Send + Sync>;

/// The running audit log.
pub(crate) struct AuditLog {
    tiers: Vec<Tier>,
    max_entries: usize,
    /// Entries oldest first, each with its estimated JSON size (measured once, when it
    /// is added, so that a query over many large entries does not measure them again).
    ring: Mutex<VecDeque<(Arc<AuditEntry>, usize)>>,
    bucket: Option<String>,
    /// The keys (`seq`) of the bucket's records, oldest first: the ones to remove when
    /// it holds more than `max_entries` (the bucket's own order after a restart need not
    /// be the order of insertion). Its lock also serializes the bucket's writes.
    persisted: Mutex<VecDeque<u64>>,
    store: Store,
    hook: Option<AuditHook>,
}

/// What an entry says about the operation, taken from the typed operation before it runs.
pub(crate) struct AuditTarget {
    operation: String,
    resource: String,
    details: Option<Map<String, Value>>,
}

/// The sequence field (the key) of the audit bucket's records.
const SEQ: &str = "seq";
/// The field of the audit bucket's records that holds the entry.
const ENTRY: &str = "entry";
/// Records read per page when the log is loaded from its bucket at start.
const LOAD_PAGE: usize = 500;

impl AuditLog {
    /// The log of `config`; with a bucket, defines it when missing and loads the newest
    /// `maxEntries` entries it holds.
    pub(crate) fn start(
        config: &AuditConfig,
        store: &Store,
        hook: Option<AuditHook>,
    ) -> Result<AuditLog, StoreError> {
        let mut tiers: Vec<Tier> = config.tiers.iter().map(|t| t.tier()).collect();
        tiers.dedup();
        let log = AuditLog {
            tiers,
            max_entries: config.max_entries.max(1),
            ring: Mutex::new(VecDeque::new()),
            bucket: config.bucket.clone(),
            persisted: Mutex::new(VecDeque::new()),
            store: store.clone(),
            hook,
        };
        if let Some(bucket) = &log.bucket {
            if store.bucket_names().iter().any(|name| name == bucket) {
                // A bucket of another shape is someone's data, not the audit log.
                if store.bucket_schema(bucket)?.key != SEQ {
                    return Err(StoreError::InvalidDefinition {
                        message: format!(
                            "bucket \"{bucket}\" exists and is not an audit log (its key is not \"{SEQ}\")"
                        ),
                    });
                }
                log.load(bucket)?;
            } else {
                let definition = BucketDefinition::from_json(json!({
                    "key": SEQ,
                    "schema": {
                        SEQ: {"type": "number", "generated": "autoincrement"},
                        ENTRY: {"type": "object", "required": true},
                    },
                }))
                .map_err(|e| StoreError::InvalidDefinition { message: e.0 })?;
                store.define_bucket(bucket, definition)?;
            }
        }
        Ok(log)
    }

    /// Fills the ring from the bucket, oldest first, keeping the newest `maxEntries`.
    fn load(&self, bucket: &str) -> Result<(), StoreError> {
        let handle = self.store.bucket(bucket);
        let mut loaded: Vec<(u64, AuditEntry)> = Vec::new();
        let mut seqs: Vec<u64> = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let page = handle.paginate(LOAD_PAGE, after.as_ref())?;
            for record in &page.records {
                let Some(seq) = record.get(SEQ).and_then(Value::as_u64) else {
                    continue;
                };
                seqs.push(seq);
                if let Some(entry) = record
                    .get(ENTRY)
                    .and_then(|e| serde_json::from_value::<AuditEntry>(e.clone()).ok())
                {
                    loaded.push((seq, entry));
                }
            }
            match (page.has_more, page.next_cursor) {
                (true, Some(cursor)) => after = Some(cursor),
                _ => break,
            }
        }
        loaded.sort_by_key(|(seq, _)| *seq);
        let skip = loaded.len().saturating_sub(self.max_entries);
        self.ring
            .lock()
            .extend(loaded.into_iter().skip(skip).map(|(_, e)| {
                let bytes = estimate_bytes(&e);
                (Arc::new(e), bytes)
            }));
        seqs.sort_unstable();
        let mut persisted = self.persisted.lock();
        persisted.extend(seqs);
        // A smaller maxEntries than before: the bucket shrinks to it now.
        trim(&handle, &mut persisted, self.max_entries)
    }

    /// Whether operations of `tier` are logged.
    pub(crate) fn audits(&self, tier: Option<Tier>) -> bool {
        tier.is_some_and(|tier| self.tiers.contains(&tier))
    }

    /// `FORBIDDEN` for a `store.*` operation on the audit bucket (only the server writes
    /// it; `audit.query` reads it).
    pub(crate) fn guard(&self, operation: &Operation) -> Result<(), ServerError> {
        let Some(bucket) = self.bucket.as_deref() else {
            return Ok(());
        };
        let Operation::Store(op) = operation else {
            return Ok(());
        };
        let touches = match op.resource() {
            Resource::Bucket(name) => name == bucket,
            Resource::Transaction(ops) => ops.iter().any(|o| o.bucket() == bucket),
            Resource::QueryDefinition { config, .. } => {
                config.get("bucket").and_then(Value::as_str) == Some(bucket)
            }
            _ => false,
        };
        if touches {
            return Err(ServerError::new(
                ErrorCode::Forbidden,
                format!("Bucket \"{bucket}\" is reserved for the audit log"),
            ));
        }
        Ok(())
    }

    /// Appends an entry: to the ring (dropping the oldest when full), to the bucket (trimmed
    /// to `maxEntries`), then to the hook.
    pub(crate) fn append(&self, entry: AuditEntry) {
        let entry = Arc::new(entry);
        let bytes = estimate_bytes(&entry);
        {
            let mut ring = self.ring.lock();
            while ring.len() >= self.max_entries {
                ring.pop_front();
            }
            ring.push_back((Arc::clone(&entry), bytes));
        }
        if let Some(bucket) = &self.bucket {
            if let Err(err) = self.persist(bucket, &entry) {
                tracing::warn!(%err, bucket, "could not append to the audit bucket");
            }
        }
        if let Some(hook) = &self.hook {
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&entry)));
            if called.is_err() {
                tracing::error!("the audit hook panicked");
            }
        }
    }

    fn persist(&self, bucket: &str, entry: &AuditEntry) -> Result<(), StoreError> {
        let handle = self.store.bucket(bucket);
        let value = serde_json::to_value(entry).map_err(|e| StoreError::Internal {
            message: e.to_string(),
        })?;
        let mut record = Map::new();
        record.insert(ENTRY.to_owned(), value);
        let mut persisted = self.persisted.lock();
        let inserted = handle.insert(record)?;
        if let Some(seq) = inserted.get(SEQ).and_then(Value::as_u64) {
            persisted.push_back(seq);
        }
        trim(&handle, &mut persisted, self.max_entries)
    }

    /// Number of entries held in memory.
    pub(crate) fn len(&self) -> usize {
        self.ring.lock().len()
    }

    /// `audit.query`: matching entries, newest first, within `max_result_bytes`.
    pub(crate) fn query(&self, op: AuditOp, max_result_bytes: usize) -> Result<Value, ServerError> {
        let AuditOp::Query {
            user_id,
            operation,
            result,
            from,
            to,
            limit,
        } = op;
        let limit = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        // Matched and measured first, copied only once the answer is known to fit: a query
        // without a limit over a large log is refused without copying what it matched.
        let matched: Vec<Arc<AuditEntry>> = {
            let ring = self.ring.lock();
            let mut matched = Vec::new();
            let mut bytes = 0usize;
            for (entry, size) in ring.iter().rev() {
                if matched.len() >= limit {
                    break;
                }
                let matches = user_id
                    .as_ref()
                    .is_none_or(|u| entry.user_id.as_ref() == Some(u))
                    && operation.as_ref().is_none_or(|o| &entry.operation == o)
                    && result.is_none_or(|r| entry.result == r)
                    && from.is_none_or(|f| entry.timestamp as f64 >= f)
                    && to.is_none_or(|t| entry.timestamp as f64 <= t);
                if !matches {
                    continue;
                }
                bytes = bytes.saturating_add(*size);
                if bytes > max_result_bytes {
                    return Err(StoreError::ResultTooLarge {
                        limit: max_result_bytes,
                    }
                    .into());
                }
                matched.push(Arc::clone(entry));
            }
            matched
        };
        // The shape of `noex_protocol::payloads::AuditEntries`, serialized from the shared
        // entries without copying them.
        let entries: Vec<&AuditEntry> = matched.iter().map(Arc::as_ref).collect();
        let entries = serde_json::to_value(entries).map_err(ServerError::internal)?;
        Ok(serde_json::json!({ "entries": entries }))
    }
}

/// Deletes the oldest records of the audit bucket until at most `max` remain.
fn trim(
    handle: &noex_store::BucketHandle,
    persisted: &mut VecDeque<u64>,
    max: usize,
) -> Result<(), StoreError> {
    while persisted.len() > max {
        if let Some(seq) = persisted.pop_front() {
            handle.delete(&Value::from(seq))?;
        }
    }
    Ok(())
}

/// A close upper estimate of an entry's JSON size (its strings plus the field names).
fn estimate_bytes(entry: &AuditEntry) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(4, |s| s.len() + 2);
    160 + text(&entry.user_id)
        + text(&entry.session_id)
        + entry.operation.len()
        + entry.resource.len()
        + text(&entry.error)
        + entry.remote_address.len()
        + entry
            .details
            .as_ref()
            .map_or(0, |d| serde_json::to_string(d).map_or(0, |s| s.len()))
}

/// What to log about `operation` (`None` when its tier is not audited).
pub(crate) fn target(log: &AuditLog, operation: &Operation) -> Option<AuditTarget> {
    if !log.audits(operation.tier()) {
        return None;
    }
    Some(AuditTarget {
        operation: operation.op_type().to_owned(),
        resource: bounded(resource_name(operation)).into_owned(),
        details: details(operation),
    })
}

/// The entry for an answered request.
pub(crate) fn entry(
    target: AuditTarget,
    timestamp: u64,
    user_id: Option<&str>,
    session_id: Option<String>,
    outcome: Result<(), &ServerError>,
    remote_address: String,
) -> AuditEntry {
    let (result, error) = match outcome {
        Ok(()) => (AuditResult::Success, None),
        Err(err) => (AuditResult::Error, Some(bounded(&err.message).into_owned())),
    };
    AuditEntry {
        timestamp,
        user_id: user_id.map(|u| bounded(u).into_owned()),
        session_id,
        operation: target.operation,
        resource: target.resource,
        result,
        error,
        details: target.details,
        remote_address,
    }
}

/// The resource an entry names: what the operation acts on, `*` for none.
fn resource_name(operation: &Operation) -> &str {
    match operation.resource() {
        Resource::Bucket(name)
        | Resource::Query(name)
        | Resource::QueryDefinition { name, .. }
        | Resource::Topic(name)
        | Resource::TopicPattern(name)
        | Resource::Fact(name)
        | Resource::Rule(name)
        | Resource::RuleUpdate { id: name, .. }
        | Resource::Procedure(name) => name,
        Resource::RuleDefinition(rule) => rule.get("id").and_then(Value::as_str).unwrap_or("*"),
        Resource::Transaction(_) | Resource::Listing(_) | Resource::None => "*",
    }
}

/// Operation-specific details: the definition of a definition change, the filter of a
/// revocation; bounded by [`MAX_AUDIT_DETAILS_BYTES`].
fn details(operation: &Operation) -> Option<Map<String, Value>> {
    let (name, value) = match operation {
        Operation::Store(StoreOp::DefineBucket { config, .. })
        | Operation::Store(StoreOp::DefineQuery { config, .. }) => ("config", config),
        Operation::Store(StoreOp::UpdateBucket { updates, .. })
        | Operation::Rules(RulesOp::UpdateRule { updates, .. })
        | Operation::Procedures(ProceduresOp::Update { updates, .. }) => ("updates", updates),
        Operation::Procedures(ProceduresOp::Register { procedure }) => ("procedure", procedure),
        Operation::Rules(RulesOp::RegisterRule { rule }) => ("rule", rule),
        Operation::Server(ServerOp::RevokeSessions {
            user_id,
            role,
            connection_id,
        }) => {
            let mut filter = Map::new();
            for (key, value) in [
                ("userId", user_id),
                ("role", role),
                ("connectionId", connection_id),
            ] {
                if let Some(value) = value {
                    filter.insert(key.to_owned(), Value::String(bounded(value).into_owned()));
                }
            }
            return Some(filter);
        }
        _ => return None,
    };
    let size = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
    let mut details = Map::new();
    if size <= MAX_AUDIT_DETAILS_BYTES {
        details.insert(name.to_owned(), Value::Object(value.clone()));
    } else {
        details.insert(name.to_owned(), json!({"truncated": true, "bytes": size}));
    }
    Some(details)
}

/// `text` cut to [`MAX_AUDIT_TEXT_BYTES`] at a character boundary (ending with `…`).
fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_AUDIT_TEXT_BYTES {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = MAX_AUDIT_TEXT_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_AUDIT_TEXT_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_AUDIT_TEXT_BYTES);
        assert!(cut.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }
}
