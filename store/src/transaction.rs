//! Transactions: writes are buffered in an overlay that the transaction's own reads see;
//! commit takes the exclusive lock once, checks every read/written record's `_version`
//! (else `Conflict`), applies all buckets and publishes a single batch. Any error rolls
//! back everything, so no reader or subscriber ever sees half a transaction.
//!
//! A serializable transaction ([`Store::serializable_transaction`]) also fails with
//! `Conflict` when a bucket it read through a filter (`where`, `findOne`, `count`, `all`)
//! changed between that read and the commit, even by an insert that only now matches
//! (a phantom); and its commit checks its reads even when it wrote nothing. The check is
//! per bucket: a change to any record of the bucket counts, whether it matches or not.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{StoreError, StoreResult};
use crate::filter::Filter;
use crate::schema::{prepare_insert, prepare_update};
use crate::store::{Inner, Store};
use crate::value::{Record, ResultBudget, key_string};

fn version(r: &Record) -> Option<u64> {
    r.get("_version").and_then(Value::as_u64)
}

/// A transaction in progress; see [`Store::transaction`].
pub struct Transaction<'s> {
    inner: &'s Inner,
    /// bucket → key string → buffered state (`None` = deleted).
    overlay: BTreeMap<String, HashMap<String, Option<Record>>>,
    /// Write order: (bucket, key string, key value), first touch only.
    order: Vec<(String, String, Value)>,
    /// Version seen per (bucket, key string); `None` = absent.
    reads: HashMap<(String, String), (Value, Option<u64>)>,
    /// Serializable only: bucket → the data's change counter at its first filter read.
    filter_reads: HashMap<String, u64>,
    /// Whether filter reads and read-only commits are checked.
    serializable: bool,
    /// Bytes of the records buffered so far (inserts and updates), against
    /// [`crate::StoreConfig::max_transaction_bytes`].
    written: usize,
}

/// Reads and writes on one bucket inside a transaction.
pub struct TxBucket<'t, 's> {
    tx: &'t mut Transaction<'s>,
    bucket: String,
}

impl Store {
    /// Runs `f` as one transaction: on `Ok` the buffered writes commit atomically (or the
    /// commit fails with `Conflict`); on `Err` nothing is applied.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), noex_store::StoreError> {
    /// # use noex_store::{BucketDefinition, Store, StoreConfig};
    /// # use serde_json::json;
    /// # let store = Store::start(StoreConfig::default())?;
    /// # store.define_bucket("a", BucketDefinition::from_json(json!({"key": "id", "schema": {"id": {"type": "number"}}}))?)?;
    /// let n = store.transaction(|tx| {
    ///     tx.bucket("a")?.insert(json!({"id": 1}).as_object().unwrap().clone())?;
    ///     tx.bucket("a")?.count(None)
    /// })?;
    /// assert_eq!(n, 1);
    /// # Ok(()) }
    /// ```
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.run_transaction(false, f)
    }

    /// [`Store::transaction`] that is serializable including what it read through filters:
    /// the commit fails with `Conflict` when a record read by key changed, and also when
    /// any bucket read through `where`, `findOne`, `count` or `all` changed after that
    /// read (a phantom insert included), and it checks its reads even when nothing was
    /// written. The caller retries on `Conflict`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), noex_store::StoreError> {
    /// # use noex_store::{BucketDefinition, Store, StoreConfig, StoreError};
    /// # use serde_json::json;
    /// # let store = Store::start(StoreConfig::default())?;
    /// # store.define_bucket("a", BucketDefinition::from_json(json!({"key": "id", "schema": {"id": {"type": "number"}}}))?)?;
    /// let outcome = store.serializable_transaction(|tx| {
    ///     let n = tx.bucket("a")?.count(None)?;
    ///     // Another writer inserts meanwhile: the count is stale.
    ///     store.bucket("a").insert(json!({"id": 7}).as_object().unwrap().clone())?;
    ///     tx.bucket("a")?.insert(json!({"id": n}).as_object().unwrap().clone())
    /// });
    /// assert!(matches!(outcome, Err(StoreError::Conflict { .. })));
    /// # Ok(()) }
    /// ```
    pub fn serializable_transaction<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.run_transaction(true, f)
    }

    fn run_transaction<T>(
        &self,
        serializable: bool,
        f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = Transaction {
            inner: &self.inner,
            overlay: BTreeMap::new(),
            order: Vec::new(),
            reads: HashMap::new(),
            filter_reads: HashMap::new(),
            serializable,
            written: 0,
        };
        let out = f(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }
}

impl<'s> Transaction<'s> {
    /// Counts `size` more bytes of written records; past `max`
    /// ([`crate::StoreConfig::max_transaction_bytes`]) the write fails, before the record
    /// is buffered.
    fn charge_write(&mut self, size: usize, max: usize) -> StoreResult<()> {
        let written = self.written.saturating_add(size);
        if written > max {
            return Err(StoreError::invalid_arg(format!(
                "Transaction writes or removes more than {max} bytes of records \
                 (limits.maxTransactionBytes); split it into smaller ones"
            )));
        }
        self.written = written;
        Ok(())
    }

    /// Access to bucket `name`. Error: `BucketNotDefined`.
    pub fn bucket<'t>(&'t mut self, name: &str) -> StoreResult<TxBucket<'t, 's>> {
        self.inner.data.read().bucket(name)?;
        Ok(TxBucket {
            tx: self,
            bucket: name.to_owned(),
        })
    }

    /// Whether every read still holds in `data`: the versions of the records read by key
    /// and, when serializable, the buckets read through filters.
    fn check_reads(&self, data: &crate::data::Data, now: u64) -> StoreResult<()> {
        for ((bucket, key), (key_value, seen)) in &self.reads {
            let current = data.bucket(bucket)?.get(key, now).and_then(version);
            if current != *seen {
                return Err(StoreError::Conflict {
                    bucket: bucket.clone(),
                    key: key_value.clone(),
                });
            }
        }
        for (bucket, seen_at) in &self.filter_reads {
            if !data.buckets.contains_key(bucket) || data.bucket_changed_at(bucket) > *seen_at {
                return Err(StoreError::Conflict {
                    bucket: bucket.clone(),
                    key: Value::Null,
                });
            }
        }
        Ok(())
    }

    fn commit(self) -> StoreResult<()> {
        if self.order.is_empty() {
            if self.serializable {
                let data = self.inner.data.read();
                return self.check_reads(&data, self.inner.now());
            }
            return Ok(());
        }
        let inner = self.inner;
        let mut data = inner.data.write();
        inner.persist_check()?;
        let now = inner.now();
        self.check_reads(&data, now)?;
        let mut changes = Vec::new();
        let before = data.bytes();
        for (bucket, key, key_value) in &self.order {
            let state = self
                .overlay
                .get(bucket)
                .and_then(|o| o.get(key))
                .cloned()
                .flatten();
            let result = match state {
                Some(record) => data.apply_put(bucket, record, now, &mut changes),
                None => data
                    .apply_remove(bucket, key_value, &mut changes)
                    .map(|_| ()),
            };
            if let Err(e) = result {
                data.rollback(changes);
                return Err(e);
            }
        }
        if let Err(e) = data.check_growth(before, inner.limits.max_store_bytes) {
            data.rollback(changes);
            return Err(e);
        }
        // All of the transaction's writes become one queued commit: one engine
        // transaction, so a crash keeps all of them or none.
        let queued = inner.persist_ops(|| crate::persistence::bridge::record_ops(&data, &changes));
        let id = inner.next_tx.fetch_add(1, Ordering::Relaxed) + 1;
        inner.publish(changes, Some(id), Vec::new());
        drop(data);
        inner.persist_wait(queued)
    }
}

impl TxBucket<'_, '_> {
    fn buffered(&self, key: &str) -> Option<&Option<Record>> {
        self.tx.overlay.get(&self.bucket).and_then(|o| o.get(key))
    }

    fn note_read(&mut self, key: &str, key_value: &Value, seen: Option<u64>) {
        self.tx
            .reads
            .entry((self.bucket.clone(), key.to_owned()))
            .or_insert_with(|| (key_value.clone(), seen));
    }

    fn buffer(&mut self, key: String, key_value: Value, state: Option<Record>) {
        let overlay = self.tx.overlay.entry(self.bucket.clone()).or_default();
        if !overlay.contains_key(&key) {
            self.tx
                .order
                .push((self.bucket.clone(), key.clone(), key_value));
        }
        overlay.insert(key, state);
    }

    /// The record under `key` as this transaction sees it.
    pub fn get(&mut self, key: &Value) -> StoreResult<Option<Record>> {
        let k = key_string(key);
        if let Some(state) = self.buffered(&k) {
            return Ok(state.clone());
        }
        let committed = {
            let data = self.tx.inner.data.read();
            data.bucket(&self.bucket)?
                .get(&k, self.tx.inner.now())
                .cloned()
        };
        self.note_read(&k, key, committed.as_ref().and_then(version));
        Ok(committed)
    }

    /// Buffers an insert. Errors: `Validation`, `AlreadyExists`.
    pub fn insert(&mut self, data: Map<String, Value>) -> StoreResult<Record> {
        let (record, key_field) = {
            let d = self.tx.inner.data.read();
            let b = d.bucket(&self.bucket)?;
            let now = self.tx.inner.now();
            let record = prepare_insert(
                &self.bucket,
                &b.schema,
                &b.def.key,
                &b.gens,
                &data,
                now,
                b.ttl_ms,
            )?;
            // Checked again at commit; here too, so that the error comes from the
            // operation that wrote the record (a bulk write names its position).
            let size = crate::data::check_record_size(&record, d.max_record_bytes)?;
            self.tx.charge_write(size, d.max_transaction_bytes)?;
            (record, b.def.key.clone())
        };
        let key_value = record.get(&key_field).cloned().unwrap_or(Value::Null);
        if self.get(&key_value)?.is_some() {
            return Err(StoreError::AlreadyExists {
                bucket: self.bucket.clone(),
                field: key_field,
                value: key_value,
            });
        }
        self.check_unique(&record, &key_string(&key_value))?;
        self.buffer(key_string(&key_value), key_value, Some(record.clone()));
        Ok(record)
    }

    /// Buffers an update. Errors: `NotFound`, `Validation`, `AlreadyExists`.
    pub fn update(&mut self, key: &Value, patch: Map<String, Value>) -> StoreResult<Record> {
        let existing = self.get(key)?.ok_or_else(|| StoreError::NotFound {
            bucket: self.bucket.clone(),
            key: key.clone(),
        })?;
        let record = {
            let d = self.tx.inner.data.read();
            let b = d.bucket(&self.bucket)?;
            let record = prepare_update(
                &self.bucket,
                &b.schema,
                &b.def.key,
                &existing,
                &patch,
                self.tx.inner.now(),
            )?;
            let size = crate::data::check_record_size(&record, d.max_record_bytes)?;
            self.tx.charge_write(size, d.max_transaction_bytes)?;
            record
        };
        self.check_unique(&record, &key_string(key))?;
        self.buffer(key_string(key), key.clone(), Some(record.clone()));
        Ok(record)
    }

    /// Buffers a delete; returns whether the record existed.
    ///
    /// A committed record it removes counts against
    /// [`crate::StoreConfig::max_transaction_bytes`] at its size, as a written one does:
    /// removing it costs time in proportion (its index entries, its change event), and a
    /// `deleteMany` over hundreds of large records held every other client's reads for a
    /// second (red team, round 9). It is not copied to find out whether it exists.
    pub fn delete(&mut self, key: &Value) -> StoreResult<bool> {
        let k = key_string(key);
        let existed = match self.buffered(&k) {
            Some(state) => state.is_some(),
            None => {
                let (seen, size, max) = {
                    let data = self.tx.inner.data.read();
                    let committed = data.bucket(&self.bucket)?.get(&k, self.tx.inner.now());
                    (
                        committed.map(version),
                        committed.map_or(0, crate::value::record_bytes),
                        data.max_transaction_bytes,
                    )
                };
                self.note_read(&k, key, seen.flatten());
                if seen.is_some() {
                    self.tx.charge_write(size, max)?;
                }
                seen.is_some()
            }
        };
        if existed {
            self.buffer(k, key.clone(), None);
        }
        Ok(existed)
    }

    fn check_unique(&self, record: &Record, own_key: &str) -> StoreResult<()> {
        // Against committed records not overwritten here, then against buffered ones.
        let d = self.tx.inner.data.read();
        let b = d.bucket(&self.bucket)?;
        let overlay = self.tx.overlay.get(&self.bucket);
        for (name, field) in &b.schema.fields {
            if !field.def.unique {
                continue;
            }
            let Some(v) = record.get(name).filter(|v| !v.is_null()) else {
                continue;
            };
            let clash = |r: &Record| r.get(name).is_some_and(|w| crate::value::json_eq(v, w));
            let now = self.tx.inner.now();
            let kept = |k: &str| k != own_key && overlay.is_none_or(|o| !o.contains_key(k));
            // One lookup in the unique index (a transaction of 1 000 inserts scanned the
            // whole bucket for each, 15 s on 20 000 records: red team, round 5); a value the
            // index cannot hold is compared record by record.
            let committed = match b.unique_holder(name, v) {
                None => false,
                Some(Some(k)) => kept(k) && b.get(k, now).is_some(),
                Some(None) => b.live(now).any(|r| kept(&b.key_of(r)) && clash(r)),
            };
            let buffered = overlay.is_some_and(|o| {
                o.iter()
                    .any(|(k, s)| k != own_key && s.as_ref().is_some_and(&clash))
            });
            if committed || buffered {
                return Err(StoreError::AlreadyExists {
                    bucket: self.bucket.clone(),
                    field: name.clone(),
                    value: v.clone(),
                });
            }
        }
        Ok(())
    }

    /// Hands `visit` the bucket's records matching `filter` as this transaction sees them,
    /// in insertion order.
    fn view(
        &mut self,
        filter: &Filter,
        mut visit: impl FnMut(&Record) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let inner = self.tx.inner;
        let now = inner.now();
        let overlay = self.tx.overlay.get(&self.bucket);
        // Under the data lock only what is cheap to take: the candidates (shared handles,
        // with their keys) and which of this transaction's own keys are new. The filter
        // runs after the lock is released, so a long filter never holds writers, nor the
        // readers queued behind a waiting writer (red team, round 5: 930 ms for everyone).
        let (committed, key_field, new_keys) = {
            let d = inner.data.read();
            let b = d.bucket(&self.bucket)?;
            if self.tx.serializable && !self.tx.filter_reads.contains_key(&self.bucket) {
                self.tx
                    .filter_reads
                    .insert(self.bucket.clone(), d.change_seq);
            }
            let candidates: Vec<Arc<Record>> = match overlay {
                None => b.candidates(filter, now),
                Some(_) => b.live_shared(now).cloned().collect(),
            };
            let committed: Vec<(String, Arc<Record>)> =
                candidates.into_iter().map(|r| (b.key_of(&r), r)).collect();
            let new_keys: Vec<String> = match overlay {
                None => Vec::new(),
                Some(_) => self
                    .tx
                    .order
                    .iter()
                    .filter(|(bucket, k, _)| bucket == &self.bucket && b.get(k, now).is_none())
                    .map(|(_, k, _)| k.clone())
                    .collect(),
            };
            (committed, b.def.key.clone(), new_keys)
        };
        let mut seen = Vec::new();
        for (k, r) in &committed {
            match overlay.and_then(|o| o.get(k)) {
                Some(Some(n)) if filter.matches(n) => visit(n)?,
                Some(_) => {}
                None if filter.matches(r) => {
                    seen.push((
                        k.clone(),
                        r.get(&key_field).cloned().unwrap_or(Value::Null),
                        version(r),
                    ));
                    visit(r)?;
                }
                None => {}
            }
        }
        if let Some(o) = overlay {
            for k in &new_keys {
                if let Some(Some(n)) = o.get(k) {
                    if filter.matches(n) {
                        visit(n)?;
                    }
                }
            }
        }
        // Past a read deadline the filter tests failed fast: what was visited is partial,
        // and the transaction must not act on it.
        crate::deadline::check()?;
        for (k, kv, v) in seen {
            self.note_read(&k, &kv, v);
        }
        Ok(())
    }

    /// The records `view` visits, cloned within the store's `max_result_bytes`.
    fn collect(&mut self, filter: &Filter) -> StoreResult<Vec<Record>> {
        let mut budget = ResultBudget::new(self.tx.inner.limits.max_result_bytes);
        let mut out = Vec::new();
        self.view(filter, |r| {
            budget.add(r)?;
            out.push(r.clone());
            Ok(())
        })?;
        Ok(out)
    }

    /// Records matching `filter` as this transaction sees them. Error: `ResultTooLarge`
    /// past the store's `max_result_bytes`.
    pub fn where_(&mut self, filter: &Map<String, Value>) -> StoreResult<Vec<Record>> {
        let f = Filter::compile(filter)?;
        self.collect(&f)
    }

    /// First record matching `filter`.
    pub fn find_one(&mut self, filter: &Map<String, Value>) -> StoreResult<Option<Record>> {
        let f = Filter::compile(filter)?;
        let limit = self.tx.inner.limits.max_result_bytes;
        let mut first = None;
        // Every match is still noted as read (a conflict on any of them fails the commit).
        self.view(&f, |r| {
            if first.is_none() {
                ResultBudget::new(limit).add(r)?;
                first = Some(r.clone());
            }
            Ok(())
        })?;
        Ok(first)
    }

    /// Number of records matching `filter` (all when `None`).
    pub fn count(&mut self, filter: Option<&Map<String, Value>>) -> StoreResult<usize> {
        let f = Filter::compile_opt(filter)?;
        let mut n = 0;
        self.view(&f, |_| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Keys of the records matching `filter` as this transaction sees them, in insertion
    /// order: at most `max + 1` of them, so that a caller bounding a bulk write to `max`
    /// records sees that more match without holding every key. Every match is noted as read
    /// (a conflict on any of them fails the commit).
    pub fn keys_where(
        &mut self,
        filter: &Map<String, Value>,
        max: usize,
    ) -> StoreResult<Vec<Value>> {
        let f = Filter::compile(filter)?;
        let key_field = {
            let d = self.tx.inner.data.read();
            d.bucket(&self.bucket)?.def.key.clone()
        };
        let mut keys = Vec::new();
        self.view(&f, |r| {
            if keys.len() <= max {
                keys.push(r.get(&key_field).cloned().unwrap_or(Value::Null));
            }
            Ok(())
        })?;
        Ok(keys)
    }

    /// The bucket's key field.
    pub fn key_field(&self) -> StoreResult<String> {
        let d = self.tx.inner.data.read();
        Ok(d.bucket(&self.bucket)?.def.key.clone())
    }

    /// All records as this transaction sees them. Error: `ResultTooLarge` past the
    /// store's `max_result_bytes`.
    pub fn all(&mut self) -> StoreResult<Vec<Record>> {
        self.collect(&Filter::default())
    }
}
