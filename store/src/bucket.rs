//! One bucket's storage: records in insertion order, the key map, secondary equality
//! indexes and unique constraints. Everything here runs under the store's data lock.
//!
//! Records are shared (`Arc`): a query evaluation takes the records it needs under the
//! lock at the cost of a reference count each, and sorts, groups and serializes them
//! after releasing it.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::definition::BucketDefinition;
use crate::error::{StoreError, StoreResult};
use crate::filter::Filter;
use crate::schema::{Generators, Schema};
use crate::value::{Record, get_path, is_expired, key_string, record_bytes, scalar_key};

/// Estimated memory of one entry of a secondary index or unique map beyond its key's text:
/// the key's `String`, the hash map slot and (for an index) the record-position set. Index
/// entries count against `max_store_bytes` with the records: eight indexed text fields
/// took almost three times the memory of the records alone.
const INDEX_ENTRY_BYTES: usize = 128;

/// Where `record` is filed in the index on `field`: under what a filter on `field` reads
/// (the field itself, else the dotted path into nested objects, as [`get_path`]).
fn index_entry(record: &Record, field: &str) -> Option<String> {
    get_path(record, field).and_then(index_key)
}

/// The index key of a filter value or field value: its scalar key, except that `-0` is
/// filed under `0`, since filters compare numbers by value.
fn index_key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) if n.as_f64() == Some(0.0) => scalar_key(&Value::from(0)),
        _ => scalar_key(v),
    }
}

/// A bucket: definition, compiled schema and records.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub name: String,
    pub def: BucketDefinition,
    pub schema: Schema,
    pub ttl_ms: Option<u64>,
    pub gens: Generators,
    records: BTreeMap<u64, Arc<Record>>,
    by_key: HashMap<String, u64>,
    next_seq: u64,
    /// Whether any record ever carried `_expiresAt` (else reads skip the expiry check).
    may_expire: bool,
    /// field → scalar key → record sequence numbers.
    indexes: HashMap<String, HashMap<String, BTreeSet<u64>>>,
    /// unique field → scalar key → record key string.
    uniques: HashMap<String, HashMap<String, String>>,
    /// Bytes of JSON of all stored records (expired-but-unswept included).
    bytes: usize,
}

impl Bucket {
    /// Compiles a definition into an empty bucket.
    pub fn new(name: &str, def: BucketDefinition) -> StoreResult<Self> {
        let schema = Schema::compile(&def.schema)?;
        if schema.field(&def.key).is_none() {
            return Err(StoreError::invalid_def(format!(
                "key field \"{}\" is not in the schema",
                def.key
            )));
        }
        for idx in &def.indexes {
            if schema.field(idx).is_none() {
                return Err(StoreError::invalid_def(format!(
                    "index field \"{idx}\" is not in the schema"
                )));
            }
        }
        if def.max_size == Some(0) {
            return Err(StoreError::invalid_def("maxSize must be positive"));
        }
        let ttl_ms = def
            .ttl
            .as_ref()
            .map(crate::definition::ttl_ms)
            .transpose()?;
        let mut bucket = Bucket {
            name: name.to_owned(),
            schema,
            ttl_ms,
            gens: Generators::default(),
            records: BTreeMap::new(),
            by_key: HashMap::new(),
            next_seq: 0,
            may_expire: false,
            indexes: HashMap::new(),
            uniques: HashMap::new(),
            bytes: 0,
            def,
        };
        for idx in bucket.def.indexes.clone() {
            bucket.indexes.insert(idx, HashMap::new());
        }
        for (name, field) in &bucket.schema.fields {
            if field.def.unique {
                bucket.uniques.insert(name.clone(), HashMap::new());
            }
        }
        Ok(bucket)
    }

    /// Number of stored records (expired-but-unswept included).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Bytes the stored records (expired-but-unswept included) and their index entries
    /// count against `max_store_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of secondary indexes plus unique constraints.
    pub fn index_count(&self) -> usize {
        self.indexes.len()
            + self
                .uniques
                .keys()
                .filter(|u| !self.indexes.contains_key(*u))
                .count()
    }

    /// The key string of a record.
    pub fn key_of(&self, record: &Record) -> String {
        key_string(record.get(&self.def.key).unwrap_or(&Value::Null))
    }

    /// The record stored under `key` (even if expired).
    pub fn get_raw(&self, key: &str) -> Option<&Record> {
        self.by_key
            .get(key)
            .and_then(|seq| self.records.get(seq))
            .map(|r| &**r)
    }

    /// The record under `key` (even if expired) with its insertion position.
    pub fn get_with_seq(&self, key: &str) -> Option<(u64, &Record)> {
        let seq = *self.by_key.get(key)?;
        self.records.get(&seq).map(|r| (seq, &**r))
    }

    /// Installs a record read from persistence at its original insertion position.
    pub fn load_record(&mut self, seq: u64, record: Record) {
        let key = self.key_of(&record);
        self.gens.observe(&self.schema, &record);
        self.restore_at(seq, key, record);
        self.next_seq = self.next_seq.max(seq);
    }

    /// The live record under `key`.
    pub fn get(&self, key: &str, now: u64) -> Option<&Record> {
        self.get_raw(key).filter(|r| !self.expired(r, now))
    }

    fn expired(&self, record: &Record, now: u64) -> bool {
        self.may_expire && is_expired(record, now)
    }

    /// Live records in insertion order.
    pub fn live(&self, now: u64) -> impl DoubleEndedIterator<Item = &Record> + '_ {
        self.live_shared(now).map(|r| &**r)
    }

    /// Live records in insertion order, as shared handles.
    pub fn live_shared(&self, now: u64) -> impl DoubleEndedIterator<Item = &Arc<Record>> + '_ {
        self.records.values().filter(move |r| !self.expired(r, now))
    }

    /// Live records after the record with key `after` (exclusive), in insertion order;
    /// `None` when `after` is unknown.
    pub fn live_after(&self, after: &str, now: u64) -> Option<impl Iterator<Item = &Record> + '_> {
        let seq = *self.by_key.get(after)?;
        Some(
            self.records
                .range(seq.saturating_add(1)..)
                .map(|(_, r)| &**r)
                .filter(move |r| !self.expired(r, now)),
        )
    }

    /// Live records matching `filter`, answered from an index when one applies.
    pub fn select<'a>(&'a self, filter: &Filter, now: u64) -> Vec<&'a Record> {
        self.select_shared(filter, now)
            .into_iter()
            .map(|r| &**r)
            .collect()
    }

    /// [`Bucket::select`] as shared handles.
    pub fn select_shared<'a>(&'a self, filter: &Filter, now: u64) -> Vec<&'a Arc<Record>> {
        if let Some(seqs) = self.index_candidates(filter) {
            return seqs
                .into_iter()
                .filter_map(|s| self.records.get(&s))
                .filter(|r| !self.expired(r, now) && filter.matches(r))
                .collect();
        }
        self.live_shared(now)
            .filter(|r| filter.matches(r))
            .collect()
    }

    /// The records `filter` may match, as shared handles, taken cheaply under the data
    /// lock: the index candidates when an index applies, else every live record. The
    /// caller tests them with [`Filter::matches`] after releasing the lock, so a costly
    /// filter never holds writers (and the readers queued behind them).
    pub fn candidates(&self, filter: &Filter, now: u64) -> Vec<Arc<Record>> {
        if let Some(seqs) = self.index_candidates(filter) {
            return seqs
                .into_iter()
                .filter_map(|s| self.records.get(&s))
                .filter(|r| !self.expired(r, now))
                .cloned()
                .collect();
        }
        self.live_shared(now).cloned().collect()
    }

    /// Like [`Bucket::select`] but always scans (for tests and benchmarks).
    pub fn select_scan<'a>(&'a self, filter: &Filter, now: u64) -> Vec<&'a Record> {
        self.live(now).filter(|r| filter.matches(r)).collect()
    }

    fn index_candidates(&self, filter: &Filter) -> Option<BTreeSet<u64>> {
        let mut best: Option<BTreeSet<u64>> = None;
        for (field, values) in filter.equality_hints() {
            let Some(index) = self.indexes.get(field) else {
                continue;
            };
            let mut set = BTreeSet::new();
            for v in values {
                if let Some(seqs) = index_key(v).and_then(|k| index.get(&k)) {
                    set.extend(seqs.iter().copied());
                }
            }
            if best.as_ref().is_none_or(|b| set.len() < b.len()) {
                best = Some(set);
            }
        }
        best
    }

    /// Errors if a unique field of `record` collides with another record.
    /// The key of the record holding `value` in unique field `field`, from the unique
    /// index: `None` when nobody holds it; `Some(None)` when the field has no unique index
    /// or the value is not a scalar (the caller then compares record by record).
    pub fn unique_holder(&self, field: &str, value: &Value) -> Option<Option<&str>> {
        let (Some(map), Some(k)) = (self.uniques.get(field), scalar_key(value)) else {
            return Some(None);
        };
        map.get(&k).map(|owner| Some(owner.as_str()))
    }

    pub fn check_unique(&self, record: &Record, own_key: &str) -> StoreResult<()> {
        for (field, map) in &self.uniques {
            let Some(v) = record.get(field).filter(|v| !v.is_null()) else {
                continue;
            };
            let Some(k) = scalar_key(v) else { continue };
            if map.get(&k).is_some_and(|owner| owner != own_key) {
                return Err(StoreError::AlreadyExists {
                    bucket: self.name.clone(),
                    field: field.clone(),
                    value: v.clone(),
                });
            }
        }
        Ok(())
    }

    /// Stores `record` of `size` bytes ([`record_bytes`]), new or replacing the same key,
    /// checking unique constraints. Returns the previous record under that key.
    pub fn put(&mut self, record: Record, size: usize) -> StoreResult<Option<Record>> {
        let key = self.key_of(&record);
        self.check_unique(&record, &key)?;
        Ok(self.put_sized(key, record, size))
    }

    /// Stores without checks (used to restore state on rollback).
    pub fn put_unchecked(&mut self, key: String, record: Record) -> Option<Record> {
        let size = record_bytes(&record);
        self.put_sized(key, record, size)
    }

    /// [`Bucket::put_unchecked`] of a record whose size ([`record_bytes`]) is known.
    pub fn put_sized(&mut self, key: String, record: Record, size: usize) -> Option<Record> {
        self.bytes = self.bytes.saturating_add(size);
        let old = self.remove_indexed(&key);
        let seq = match &old {
            Some((seq, _)) => *seq,
            None => {
                self.next_seq += 1;
                self.next_seq
            }
        };
        self.add_indexes(seq, &key, &record);
        self.may_expire |= record.contains_key("_expiresAt");
        self.by_key.insert(key, seq);
        self.records.insert(seq, Arc::new(record));
        old.map(|(_, r)| r)
    }

    /// Removes the record under `key`, returning it.
    pub fn remove(&mut self, key: &str) -> Option<Record> {
        self.remove_seq(key).map(|(_, r)| r)
    }

    /// Removes the record under `key`, returning its position and the record.
    pub fn remove_seq(&mut self, key: &str) -> Option<(u64, Record)> {
        let (seq, rec) = self.remove_indexed(key)?;
        self.by_key.remove(key);
        Some((seq, rec))
    }

    /// Puts a removed record back at its old position (rollback).
    pub fn restore_at(&mut self, seq: u64, key: String, record: Record) {
        self.remove(&key);
        self.bytes = self.bytes.saturating_add(record_bytes(&record));
        self.add_indexes(seq, &key, &record);
        self.may_expire |= record.contains_key("_expiresAt");
        self.by_key.insert(key, seq);
        self.records.insert(seq, Arc::new(record));
    }

    /// Takes the record under `key` out of the records and the indexes (not the key map).
    fn remove_indexed(&mut self, key: &str) -> Option<(u64, Record)> {
        let seq = *self.by_key.get(key)?;
        let rec = self.records.remove(&seq)?;
        // Shared with an evaluation still running only in a rare race: then copied.
        let rec = Arc::try_unwrap(rec).unwrap_or_else(|shared| (*shared).clone());
        let mut charge = record_bytes(&rec);
        for (field, index) in &mut self.indexes {
            if let Some(k) = index_entry(&rec, field) {
                charge = charge.saturating_add(k.len() + INDEX_ENTRY_BYTES);
                if let Some(set) = index.get_mut(&k) {
                    set.remove(&seq);
                    if set.is_empty() {
                        index.remove(&k);
                    }
                }
            }
        }
        for (field, map) in &mut self.uniques {
            if let Some(k) = rec.get(field).filter(|v| !v.is_null()).and_then(scalar_key) {
                charge = charge.saturating_add(k.len() + key.len() + INDEX_ENTRY_BYTES);
                if map.get(&k).is_some_and(|o| o == key) {
                    map.remove(&k);
                }
            }
        }
        self.bytes = self.bytes.saturating_sub(charge);
        Some((seq, rec))
    }

    fn add_indexes(&mut self, seq: u64, key: &str, record: &Record) {
        let mut charge = 0usize;
        for (field, index) in &mut self.indexes {
            if let Some(k) = index_entry(record, field) {
                charge = charge.saturating_add(k.len() + INDEX_ENTRY_BYTES);
                index.entry(k).or_default().insert(seq);
            }
        }
        for (field, map) in &mut self.uniques {
            if let Some(k) = record
                .get(field)
                .filter(|v| !v.is_null())
                .and_then(scalar_key)
            {
                charge = charge.saturating_add(k.len() + key.len() + INDEX_ENTRY_BYTES);
                map.insert(k, key.to_owned());
            }
        }
        self.bytes = self.bytes.saturating_add(charge);
    }

    /// Removes every record, returning them in insertion order.
    pub fn clear(&mut self) -> Vec<Record> {
        let out: Vec<Record> = std::mem::take(&mut self.records)
            .into_values()
            .map(|r| Arc::try_unwrap(r).unwrap_or_else(|shared| (*shared).clone()))
            .collect();
        self.by_key.clear();
        self.bytes = 0;
        for index in self.indexes.values_mut() {
            index.clear();
        }
        for map in self.uniques.values_mut() {
            map.clear();
        }
        out
    }

    /// Key of the oldest record.
    pub fn oldest_key(&self) -> Option<String> {
        // Insertion order is creation order: updates keep a record's position.
        self.records.values().next().map(|r| self.key_of(r))
    }

    /// Keys of expired records.
    pub fn expired_keys(&self, now: u64) -> Vec<String> {
        if !self.may_expire {
            return Vec::new();
        }
        self.records
            .values()
            .filter(|r| is_expired(r, now))
            .map(|r| self.key_of(r))
            .collect()
    }

    /// Adds an index on an existing field and fills it.
    pub fn add_index(&mut self, field: &str) -> StoreResult<()> {
        if self.schema.field(field).is_none() {
            return Err(StoreError::invalid_arg(format!(
                "cannot index \"{field}\": field is not in the schema of bucket \"{}\"",
                self.name
            )));
        }
        if self.indexes.contains_key(field) {
            return Ok(());
        }
        let mut index: HashMap<String, BTreeSet<u64>> = HashMap::new();
        let mut charge = 0usize;
        for (seq, rec) in &self.records {
            if let Some(k) = index_entry(rec, field) {
                charge = charge.saturating_add(k.len() + INDEX_ENTRY_BYTES);
                index.entry(k).or_default().insert(*seq);
            }
        }
        self.bytes = self.bytes.saturating_add(charge);
        self.indexes.insert(field.to_owned(), index);
        self.def.indexes.push(field.to_owned());
        Ok(())
    }

    /// Adds new fields to the schema.
    pub fn add_fields(&mut self, fields: &serde_json::Map<String, Value>) -> StoreResult<()> {
        let mut raw = self.def.schema.clone();
        for (name, def) in fields {
            if raw.contains_key(name) {
                return Err(StoreError::invalid_arg(format!(
                    "field \"{name}\" already exists in bucket \"{}\"",
                    self.name
                )));
            }
            raw.insert(name.clone(), def.clone());
        }
        let schema = Schema::compile(&raw)?;
        for (name, field) in &schema.fields {
            if field.def.unique && !self.uniques.contains_key(name) {
                let mut map = HashMap::new();
                let mut charge = 0usize;
                for rec in self.records.values() {
                    if let Some(k) = rec.get(name).filter(|v| !v.is_null()).and_then(scalar_key) {
                        let key = self.key_of(rec);
                        charge = charge.saturating_add(k.len() + key.len() + INDEX_ENTRY_BYTES);
                        map.insert(k, key);
                    }
                }
                self.bytes = self.bytes.saturating_add(charge);
                self.uniques.insert(name.clone(), map);
            }
        }
        self.schema = schema;
        self.def.schema = raw;
        Ok(())
    }
}
