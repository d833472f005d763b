//! [`BucketHandle`]: synchronous reads and writes on one bucket. Reads take the shared
//! lock briefly; writes take the exclusive lock, validate, apply and publish one batch.

use serde_json::{Map, Value};
use std::sync::Arc;

use crate::error::{StoreError, StoreResult};
use crate::reads::{Page, Reads};
use crate::schema::{prepare_insert, prepare_update};
use crate::store::Store;
use crate::value::{Record, key_string};

/// Reads and writes on one bucket. Every call fails with `BucketNotDefined` if the
/// bucket does not exist (any more).
#[derive(Clone)]
pub struct BucketHandle {
    store: Store,
    name: String,
}

impl BucketHandle {
    pub(crate) fn new(store: Store, name: &str) -> Self {
        BucketHandle {
            store,
            name: name.to_owned(),
        }
    }

    /// The bucket name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the records `pick` chooses under the data lock (a reference count each), then
    /// measures and copies them after releasing it: a large read holds writers (and the
    /// readers queued behind them) only while it selects.
    fn read_records(
        &self,
        pick: impl FnOnce(&crate::bucket::Bucket, u64) -> StoreResult<Vec<Arc<Record>>>,
    ) -> StoreResult<Vec<Record>> {
        let limit = self.store.inner.limits.max_result_bytes;
        let shared = {
            let data = self.store.inner.data.read();
            pick(data.bucket(&self.name)?, self.store.now())?
        };
        crate::reads::collect_within(shared.iter().map(|r| &**r), limit)
    }

    /// The live records matching `filter` (all when `None`): the candidates are taken
    /// under the data lock (index hits, else every live record, as shared handles) and
    /// filtered after it is released, so a costly filter (a long `$in`, a big bucket) never
    /// holds writers or the readers queued behind them.
    fn matching(&self, filter: Option<&Map<String, Value>>) -> StoreResult<Vec<Arc<Record>>> {
        let (f, candidates) = self.candidates(filter)?;
        let matching = crate::query::narrow(&f, candidates);
        crate::deadline::check()?;
        Ok(matching)
    }

    /// The compiled filter and the candidates it is to be tested on (see `matching`).
    fn candidates(
        &self,
        filter: Option<&Map<String, Value>>,
    ) -> StoreResult<(crate::filter::Filter, Vec<Arc<Record>>)> {
        let f = crate::filter::Filter::compile_opt(filter)?;
        let data = self.store.inner.data.read();
        let candidates = data.bucket(&self.name)?.candidates(&f, self.store.now());
        Ok((f, candidates))
    }

    fn read<T>(&self, f: impl FnOnce(&Reads<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let data = self.store.inner.data.read();
        let reads = Reads {
            bucket: data.bucket(&self.name)?,
            now: self.store.now(),
            limit: self.store.inner.limits.max_result_bytes,
        };
        f(&reads)
    }

    /// Inserts a record: generated values, defaults, validation, unique checks, metadata.
    /// Errors: `Validation`, `AlreadyExists` (duplicate key or unique value).
    pub fn insert(&self, data: Map<String, Value>) -> StoreResult<Record> {
        let name = &self.name;
        self.store.inner.write(|d, now, changes| {
            let b = d.bucket(name)?;
            let record =
                prepare_insert(name, &b.schema, &b.def.key, &b.gens, &data, now, b.ttl_ms)?;
            let key = record.get(&b.def.key).cloned().unwrap_or(Value::Null);
            if b.get(&key_string(&key), now).is_some() {
                return Err(StoreError::AlreadyExists {
                    bucket: name.clone(),
                    field: b.def.key.clone(),
                    value: key,
                });
            }
            d.apply_put(name, record.clone(), now, changes)?;
            Ok(record)
        })
    }

    /// Merges `patch` into the record under `key`. Errors: `NotFound`, `Validation`,
    /// `AlreadyExists` (unique value).
    pub fn update(&self, key: &Value, patch: Map<String, Value>) -> StoreResult<Record> {
        let name = &self.name;
        self.store.inner.write(|d, now, changes| {
            let b = d.bucket(name)?;
            let existing = b
                .get(&key_string(key), now)
                .ok_or_else(|| StoreError::NotFound {
                    bucket: name.clone(),
                    key: key.clone(),
                })?;
            let record = prepare_update(name, &b.schema, &b.def.key, existing, &patch, now)?;
            d.apply_put(name, record.clone(), now, changes)?;
            Ok(record)
        })
    }

    /// Deletes the record under `key`; returns whether a live record was removed.
    pub fn delete(&self, key: &Value) -> StoreResult<bool> {
        let name = &self.name;
        self.store.inner.write(|d, now, changes| {
            let live = d.bucket(name)?.get(&key_string(key), now).is_some();
            d.apply_remove(name, key, changes)?;
            Ok(live)
        })
    }

    /// Removes every record (each removal is a `deleted` event).
    pub fn clear(&self) -> StoreResult<usize> {
        let name = &self.name;
        self.store.inner.write(|d, _now, changes| {
            d.touch(name);
            let b = d.bucket_mut(name)?;
            let key_field = b.def.key.clone();
            let removed = b.clear();
            let n = removed.len();
            for old in removed {
                let key = old.get(&key_field).cloned().unwrap_or(Value::Null);
                changes.push(crate::data::Change {
                    bucket: name.clone(),
                    key,
                    old: Some(old),
                    new: None,
                    seq: None,
                });
            }
            Ok(n)
        })
    }

    /// The record under `key`, or `None`.
    pub fn get(&self, key: &Value) -> StoreResult<Option<Record>> {
        self.read(|r| Ok(r.get(key)))
    }

    /// All live records in insertion order. Error: `ResultTooLarge` past
    /// [`StoreConfig::max_result_bytes`](crate::StoreConfig::max_result_bytes) (as for
    /// every read that returns records; [`BucketHandle::paginate`] reads in pages).
    pub fn all(&self) -> StoreResult<Vec<Record>> {
        self.read_records(|b, now| Ok(b.live_shared(now).cloned().collect()))
    }

    /// Records matching `filter`, in insertion order (uses an index for equality filters).
    pub fn where_(&self, filter: &Map<String, Value>) -> StoreResult<Vec<Record>> {
        let matching = self.matching(Some(filter))?;
        let limit = self.store.inner.limits.max_result_bytes;
        crate::reads::collect_within(matching.iter().map(|r| &**r), limit)
    }

    /// Like [`BucketHandle::where_`] but never uses an index (reference for tests/benches).
    pub fn where_scan(&self, filter: &Map<String, Value>) -> StoreResult<Vec<Record>> {
        self.read(|r| {
            let f = crate::filter::Filter::compile(filter)?;
            let matching = r.bucket.select_scan(&f, r.now);
            crate::deadline::check()?;
            crate::reads::collect_within(matching, r.limit)
        })
    }

    /// The first record matching `filter`.
    pub fn find_one(&self, filter: &Map<String, Value>) -> StoreResult<Option<Record>> {
        let limit = self.store.inner.limits.max_result_bytes;
        // Tested in order, stopping at the first match.
        let (f, candidates) = self.candidates(Some(filter))?;
        let first = candidates.into_iter().find(|r| f.matches(r));
        crate::deadline::check()?;
        Ok(crate::reads::collect_within(first.as_deref(), limit)?.pop())
    }

    /// Number of records matching `filter` (all when `None`).
    pub fn count(&self, filter: Option<&Map<String, Value>>) -> StoreResult<usize> {
        Ok(self.matching(filter)?.len())
    }

    /// The first `n` records (`n` ≥ 1).
    pub fn first(&self, n: usize) -> StoreResult<Vec<Record>> {
        let n = crate::reads::positive("n", n)?;
        self.read_records(|b, now| Ok(b.live_shared(now).take(n).cloned().collect()))
    }

    /// The last `n` records (`n` ≥ 1), in insertion order.
    pub fn last(&self, n: usize) -> StoreResult<Vec<Record>> {
        let n = crate::reads::positive("n", n)?;
        self.read_records(|b, now| {
            let mut out: Vec<_> = b.live_shared(now).rev().take(n).cloned().collect();
            out.reverse();
            Ok(out)
        })
    }

    /// A page of up to `limit` records after the record with key `after`. An unknown
    /// cursor yields an empty page.
    pub fn paginate(&self, limit: usize, after: Option<&Value>) -> StoreResult<Page> {
        self.read(|r| r.paginate(limit, after))
    }

    /// Sum of the numeric values of `field` (0 when none).
    pub fn sum(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        let records = self.matching(filter)?;
        Ok(crate::reads::sum_of(crate::reads::numbers(
            records.iter().map(|r| &**r),
            field,
        )))
    }

    /// Average of the numeric values of `field` (0 when none).
    pub fn avg(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        let records = self.matching(filter)?;
        Ok(crate::reads::avg_of(crate::reads::numbers(
            records.iter().map(|r| &**r),
            field,
        )))
    }

    /// Smallest numeric value of `field`, `null` when none.
    pub fn min(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        let records = self.matching(filter)?;
        Ok(crate::reads::min_of(crate::reads::numbers(
            records.iter().map(|r| &**r),
            field,
        )))
    }

    /// One aggregate per group of the records matching `filter` with equal values of the
    /// `group_by` fields, as a declarative query's grouped aggregate computes it:
    /// `[{key: {field: value, ...}, value}]`, groups in order of their first record. At most
    /// 32 grouping fields, each named once, and a field for every function but `count`
    /// (else `InvalidDefinition`); the result may not pass
    /// [`StoreConfig::max_result_bytes`](crate::StoreConfig::max_result_bytes)
    /// (`ResultTooLarge`), and it stops at a read deadline (`ReadTimeout`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), noex_store::StoreError> {
    /// # use noex_store::{AggregateFunction, BucketDefinition, GroupBy, Store, StoreConfig};
    /// # use serde_json::json;
    /// # let store = Store::start(StoreConfig::default())?;
    /// # store.define_bucket("o", BucketDefinition::from_json(json!({"key": "id", "schema": {"id": {"type": "number"}, "c": {"type": "string"}, "n": {"type": "number"}}}))?)?;
    /// for (id, c, n) in [(1, "a", 2), (2, "b", 5), (3, "a", 3)] {
    ///     store.bucket("o").insert(json!({"id": id, "c": c, "n": n}).as_object().unwrap().clone())?;
    /// }
    /// let groups = store.bucket("o").group_by(GroupBy::One("c".into()), AggregateFunction::Sum, Some("n"), None)?;
    /// assert_eq!(groups, json!([{"key": {"c": "a"}, "value": 5}, {"key": {"c": "b"}, "value": 5}]));
    /// # Ok(()) }
    /// ```
    pub fn group_by(
        &self,
        group_by: crate::definition::GroupBy,
        function: crate::definition::AggregateFunction,
        field: Option<&str>,
        filter: Option<&Map<String, Value>>,
    ) -> StoreResult<Value> {
        let def = crate::definition::QueryDefinition {
            bucket: self.name.clone(),
            filter: None,
            sort: None,
            limit: None,
            offset: None,
            fields: None,
            aggregate: Some(crate::definition::Aggregate {
                function,
                field: field.map(str::to_owned),
                group_by: Some(group_by),
            }),
        };
        crate::definition::check_query(&def)?;
        let records = self.matching(filter)?;
        let limit = self.store.inner.limits.max_result_bytes;
        let (value, _) = crate::query::finish_declarative(&def, &records, limit)?;
        // Past a read deadline the grouping stopped early: the result is partial.
        crate::deadline::check()?;
        Ok(value)
    }

    /// Largest numeric value of `field`, `null` when none.
    pub fn max(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        let records = self.matching(filter)?;
        Ok(crate::reads::max_of(crate::reads::numbers(
            records.iter().map(|r| &**r),
            field,
        )))
    }
}

impl Store {
    /// A handle for reads and writes on bucket `name` (checked on each call).
    pub fn bucket(&self, name: &str) -> BucketHandle {
        BucketHandle::new(self.clone(), name)
    }
}
