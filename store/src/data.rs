//! The store's records in memory: every bucket behind the one data lock, the record
//! changes a commit makes (its undo log and what the change feed and the disk layer are
//! given) and the write primitives that produce them.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

use crate::bucket::Bucket;
use crate::error::{StoreError, StoreResult};
use crate::value::{Record, key_string, record_bytes};

/// All buckets; guarded by one lock so commits are atomic across buckets.
pub(crate) struct Data {
    pub buckets: BTreeMap<String, Bucket>,
    /// [`StoreConfig::max_record_bytes`](crate::StoreConfig::max_record_bytes), checked by
    /// every write of a record.
    pub max_record_bytes: usize,
    /// [`StoreConfig::max_transaction_bytes`](crate::StoreConfig::max_transaction_bytes),
    /// checked by every record a transaction buffers.
    pub max_transaction_bytes: usize,
    /// Counts every change of a bucket's records or definition, over all buckets.
    pub change_seq: u64,
    /// The value of `change_seq` at each bucket's last change: what a serializable
    /// transaction compares with the moment it read the bucket through a filter.
    pub bucket_changed: HashMap<String, u64>,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            buckets: BTreeMap::new(),
            max_record_bytes: usize::MAX,
            max_transaction_bytes: usize::MAX,
            change_seq: 0,
            bucket_changed: HashMap::new(),
        }
    }
}

/// One record change inside a commit; also the undo log of a transaction.
pub(crate) struct Change {
    pub bucket: String,
    pub key: Value,
    pub old: Option<Record>,
    pub new: Option<Record>,
    /// Position of a removed record, so a rollback restores insertion order.
    pub seq: Option<u64>,
}

impl Data {
    /// Bytes of JSON of every stored record, all buckets together.
    pub fn bytes(&self) -> usize {
        self.buckets
            .values()
            .fold(0usize, |n, b| n.saturating_add(b.bytes()))
    }

    /// Fails a commit that grew the records from `before` bytes to past `max` (a commit
    /// that shrinks them always passes, so deletes work on a full store).
    pub fn check_growth(&self, before: usize, max: usize) -> StoreResult<()> {
        let after = self.bytes();
        if after > before && after > max {
            return Err(StoreError::LimitExceeded {
                message: format!(
                    "Store is full: records may take at most {max} bytes; delete records to \
                     make room"
                ),
            });
        }
        Ok(())
    }

    /// Notes that bucket `name` changed (its records, or the bucket itself).
    pub fn touch(&mut self, name: &str) {
        self.change_seq += 1;
        match self.bucket_changed.get_mut(name) {
            Some(at) => *at = self.change_seq,
            None => {
                self.bucket_changed.insert(name.to_owned(), self.change_seq);
            }
        }
    }

    /// `change_seq` at the last change of bucket `name` (0: never changed).
    pub fn bucket_changed_at(&self, name: &str) -> u64 {
        self.bucket_changed.get(name).copied().unwrap_or(0)
    }

    pub fn bucket(&self, name: &str) -> StoreResult<&Bucket> {
        self.buckets
            .get(name)
            .ok_or_else(|| StoreError::BucketNotDefined {
                bucket: name.to_owned(),
            })
    }

    pub fn bucket_mut(&mut self, name: &str) -> StoreResult<&mut Bucket> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| StoreError::BucketNotDefined {
                bucket: name.to_owned(),
            })
    }

    /// Stores a prepared record: replaces a live record with the same key (update) or
    /// inserts it (dropping an expired leftover, then evicting past `maxSize`).
    pub fn apply_put(
        &mut self,
        bucket: &str,
        record: Record,
        now: u64,
        changes: &mut Vec<Change>,
    ) -> StoreResult<()> {
        let size = check_record_size(&record, self.max_record_bytes)?;
        self.bucket(bucket)?;
        self.touch(bucket);
        let b = self.bucket_mut(bucket)?;
        let key_value = record.get(&b.def.key).cloned().unwrap_or(Value::Null);
        let key = key_string(&key_value);
        let live = b.get(&key, now).is_some();
        if !live && b.get_raw(&key).is_some() {
            b.check_unique(&record, &key)?;
            let (seq, old) = b.remove_seq(&key).unzip();
            changes.push(Change {
                bucket: bucket.to_owned(),
                key: key_value.clone(),
                old,
                new: None,
                seq,
            });
        }
        let old = b.put(record.clone(), size)?;
        changes.push(Change {
            bucket: bucket.to_owned(),
            key: key_value,
            old,
            new: Some(record),
            seq: None,
        });
        if !live {
            if let Some(max) = b.def.max_size {
                while b.len() > max {
                    let Some(oldest) = b.oldest_key() else { break };
                    if oldest == key {
                        break;
                    }
                    if let Some((seq, old)) = b.remove_seq(&oldest) {
                        let k = old.get(&b.def.key).cloned().unwrap_or(Value::Null);
                        changes.push(Change {
                            bucket: bucket.to_owned(),
                            key: k,
                            old: Some(old),
                            new: None,
                            seq: Some(seq),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes a record (live or expired).
    pub fn apply_remove(
        &mut self,
        bucket: &str,
        key: &Value,
        changes: &mut Vec<Change>,
    ) -> StoreResult<bool> {
        self.bucket(bucket)?;
        self.touch(bucket);
        let b = self.bucket_mut(bucket)?;
        let (seq, old) = b.remove_seq(&key_string(key)).unzip();
        let removed = old.is_some();
        if removed {
            changes.push(Change {
                bucket: bucket.to_owned(),
                key: key.clone(),
                old,
                new: None,
                seq,
            });
        }
        Ok(removed)
    }

    /// Undoes `changes` (newest first).
    pub fn rollback(&mut self, changes: Vec<Change>) {
        for c in changes.into_iter().rev() {
            if self.buckets.contains_key(&c.bucket) {
                self.touch(&c.bucket);
            }
            let Some(b) = self.buckets.get_mut(&c.bucket) else {
                continue;
            };
            let key = key_string(&c.key);
            match (c.old, c.seq) {
                (Some(old), Some(seq)) => b.restore_at(seq, key, old),
                (Some(old), None) => {
                    b.put_unchecked(key, old);
                }
                (None, _) => {
                    b.remove(&key);
                }
            }
        }
    }
}

/// The size of `record` ([`record_bytes`]), or `InvalidArgument` when it passes `max`.
pub(crate) fn check_record_size(record: &Record, max: usize) -> StoreResult<usize> {
    let size = record_bytes(record);
    if size > max {
        return Err(StoreError::invalid_arg(format!(
            "Record exceeds {max} bytes (it has {size})"
        )));
    }
    Ok(size)
}
