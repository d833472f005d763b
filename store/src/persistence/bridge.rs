//! The bridge between the store's in-memory structures and persistence: *capture* turns a
//! commit (record changes, a bucket or query definition) into [`Op`]s, *restore* installs
//! a loaded [`Snapshot`]'s buckets into fresh store data and gives back its queries.
//!
//! Capture writes the **final** state of every record a commit touched (read back from the
//! bucket after the commit), not the individual changes: an insert that evicted an older
//! record under `maxSize`, or a transaction that wrote a key twice, still becomes exactly
//! the right puts and deletes.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{Op, Snapshot, file_error};
use crate::bucket::Bucket;
use crate::data::{Change, Data};
use crate::definition::{BucketDefinition, Generated, QueryDefinition};
use crate::error::{StoreError, StoreResult};
use crate::value::key_string;

/// Whether a bucket is written to persistence (`persistent: false` opts out).
pub(crate) fn is_persistent(def: &BucketDefinition) -> bool {
    def.persistent != Some(false)
}

fn to_json(value: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal {
        message: format!("cannot serialize for persistence: {e}"),
    })
}

/// The op storing a bucket's current definition, or `None` for a non-persistent bucket.
pub(crate) fn bucket_op(bucket: &Bucket) -> StoreResult<Option<Op>> {
    if !is_persistent(&bucket.def) {
        return Ok(None);
    }
    Ok(Some(Op::PutBucket {
        name: bucket.name.clone(),
        def: to_json(&bucket.def)?,
    }))
}

/// The op storing a declarative query.
pub(crate) fn query_op(name: &str, def: &QueryDefinition) -> StoreResult<Op> {
    Ok(Op::PutQuery {
        name: name.to_owned(),
        def: to_json(def)?,
    })
}

fn has_autoincrement(bucket: &Bucket) -> bool {
    bucket
        .schema
        .fields
        .iter()
        .any(|(_, f)| f.def.generated == Some(Generated::Autoincrement))
}

/// The ops of one commit of record changes: for every touched record of a persistent
/// bucket its final state (put with position, or delete), then the autoincrement counter
/// of every touched bucket that has one.
pub(crate) fn record_ops(data: &Data, changes: &[Change]) -> StoreResult<Vec<Op>> {
    let mut ops = Vec::with_capacity(changes.len());
    let mut seen: HashSet<(&str, String)> = HashSet::with_capacity(changes.len());
    let mut buckets: Vec<&str> = Vec::new();
    for change in changes {
        let Some(bucket) = data.buckets.get(&change.bucket) else {
            continue;
        };
        if !is_persistent(&bucket.def) {
            continue;
        }
        let key = key_string(&change.key);
        if !seen.insert((change.bucket.as_str(), key.clone())) {
            continue;
        }
        if !buckets.contains(&change.bucket.as_str()) {
            buckets.push(&change.bucket);
        }
        ops.push(match bucket.get_with_seq(&key) {
            Some((seq, record)) => Op::PutRecord {
                bucket: change.bucket.clone(),
                key,
                seq,
                record: to_json(record)?,
            },
            None => Op::DeleteRecord {
                bucket: change.bucket.clone(),
                key,
            },
        });
    }
    for name in buckets {
        if let Some(b) = data.buckets.get(name).filter(|b| has_autoincrement(b)) {
            ops.push(Op::Counter {
                bucket: name.to_owned(),
                value: b.gens.autoincrement.load(Ordering::SeqCst),
            });
        }
    }
    Ok(ops)
}

/// Installs a loaded snapshot's buckets and records into empty store data and returns its
/// declarative queries, for the caller to register. A definition the store no longer
/// accepts is an error naming the file.
pub(crate) fn restore(
    snapshot: Snapshot,
    path: &Path,
    data: &mut Data,
) -> StoreResult<Vec<(String, QueryDefinition)>> {
    let buckets = snapshot.buckets.len();
    let records: usize = snapshot.buckets.iter().map(|b| b.records.len()).sum();
    let queries = snapshot.queries.len();
    for loaded in snapshot.buckets {
        let mut bucket = Bucket::new(&loaded.name, loaded.def).map_err(|e| {
            file_error(
                path,
                format!("bucket \"{}\" cannot be restored: {e}", loaded.name),
            )
        })?;
        for (seq, record) in loaded.records {
            bucket.load_record(seq, record);
        }
        bucket
            .gens
            .autoincrement
            .fetch_max(loaded.counter, Ordering::SeqCst);
        data.buckets.insert(loaded.name, bucket);
    }
    tracing::info!(
        path = %path.display(),
        buckets,
        records,
        queries,
        expired = snapshot.expired,
        "store loaded from disk"
    );
    Ok(snapshot.queries)
}
