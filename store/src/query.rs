//! Queries: the shared [`QueryResult`], evaluation of declarative queries (filter with
//! parameters, sort, offset, limit, projection, aggregates, groupBy) and the
//! [`QueryContext`] through which programmatic queries read — recording dependencies.

use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use crate::definition::{AggregateFn, QueryDefinition};
use crate::error::{StoreError, StoreResult};
use crate::filter::{Filter, interpolate};
use crate::reads::{Page, Reads, avg_of, max_of, min_of, numbers, sum_of};
use crate::store::Data;
use crate::value::{Record, compare, get_path, json_eq, key_string};

/// One evaluation's result, shared by every subscriber of the same `(query, params)`.
/// Its JSON text is produced at most once.
#[derive(Debug)]
pub struct QueryResult {
    value: Value,
    json: OnceLock<Arc<str>>,
}

impl QueryResult {
    /// Wraps a value.
    pub fn new(value: Value) -> Self {
        QueryResult {
            value,
            json: OnceLock::new(),
        }
    }
    /// The result value.
    pub fn value(&self) -> &Value {
        &self.value
    }
    /// The result serialized as JSON text, computed once and shared.
    pub fn json(&self) -> Arc<str> {
        self.json
            .get_or_init(|| Arc::from(self.value.to_string()))
            .clone()
    }
}

impl PartialEq for QueryResult {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// What an evaluation read: whole buckets and single records.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deps {
    pub buckets: HashSet<String>,
    pub records: HashSet<(String, String)>,
}

impl Deps {
    pub fn mentions(&self, bucket: &str) -> bool {
        self.buckets.contains(bucket) || self.records.iter().any(|(b, _)| b == bucket)
    }
}

/// A programmatic query: a function of the context and the subscription's params.
pub type QueryFn = Arc<dyn Fn(&QueryContext<'_>, &Value) -> StoreResult<Value> + Send + Sync>;

/// The read-only view handed to programmatic queries; every read is a dependency.
pub struct QueryContext<'a> {
    data: &'a Data,
    now: u64,
    deps: Mutex<Deps>,
}

impl<'a> QueryContext<'a> {
    pub(crate) fn new(data: &'a Data, now: u64) -> Self {
        QueryContext {
            data,
            now,
            deps: Mutex::new(Deps::default()),
        }
    }

    pub(crate) fn into_deps(self) -> Deps {
        self.deps.into_inner()
    }

    /// A reader for `bucket`.
    pub fn bucket(&self, bucket: &str) -> StoreResult<BucketReader<'_>> {
        let b = self.data.bucket(bucket)?;
        Ok(BucketReader {
            reads: Reads {
                bucket: b,
                now: self.now,
            },
            deps: &self.deps,
        })
    }
}

/// Reads of one bucket inside a programmatic query.
pub struct BucketReader<'a> {
    reads: Reads<'a>,
    deps: &'a Mutex<Deps>,
}

impl BucketReader<'_> {
    fn whole(&self) {
        self.deps
            .lock()
            .buckets
            .insert(self.reads.bucket.name.clone());
    }
    /// The record under `key` (depends on that record only).
    pub fn get(&self, key: &Value) -> Option<Record> {
        self.deps
            .lock()
            .records
            .insert((self.reads.bucket.name.clone(), key_string(key)));
        self.reads.get(key)
    }
    /// All records in insertion order.
    pub fn all(&self) -> Vec<Record> {
        self.whole();
        self.reads.all()
    }
    /// Records matching `filter`.
    pub fn where_(&self, filter: &Map<String, Value>) -> StoreResult<Vec<Record>> {
        self.whole();
        self.reads.where_(filter)
    }
    /// First record matching `filter`.
    pub fn find_one(&self, filter: &Map<String, Value>) -> StoreResult<Option<Record>> {
        self.whole();
        self.reads.find_one(filter)
    }
    /// Number of records matching `filter` (all when `None`).
    pub fn count(&self, filter: Option<&Map<String, Value>>) -> StoreResult<usize> {
        self.whole();
        self.reads.count(filter)
    }
    /// First `n` records.
    pub fn first(&self, n: usize) -> StoreResult<Vec<Record>> {
        self.whole();
        self.reads.first(n)
    }
    /// Last `n` records.
    pub fn last(&self, n: usize) -> StoreResult<Vec<Record>> {
        self.whole();
        self.reads.last(n)
    }
    /// A page of records.
    pub fn paginate(&self, limit: usize, after: Option<&Value>) -> StoreResult<Page> {
        self.whole();
        self.reads.paginate(limit, after)
    }
    /// Sum of `field`.
    pub fn sum(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        self.whole();
        self.reads.sum(field, filter)
    }
    /// Average of `field`.
    pub fn avg(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        self.whole();
        self.reads.avg(field, filter)
    }
    /// Minimum of `field`.
    pub fn min(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        self.whole();
        self.reads.min(field, filter)
    }
    /// Maximum of `field`.
    pub fn max(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        self.whole();
        self.reads.max(field, filter)
    }
}

/// A defined query.
#[derive(Clone)]
pub(crate) enum QueryKind {
    Declarative(Box<QueryDefinition>),
    Programmatic(QueryFn),
}

fn sort_cmp(a: &Record, b: &Record, sort: &Map<String, Value>) -> Ordering {
    for (field, dir) in sort {
        let desc = dir.as_str() == Some("desc");
        let ord = match (
            get_path(a, field).filter(|v| !v.is_null()),
            get_path(b, field).filter(|v| !v.is_null()),
        ) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let o = compare(x, y).unwrap_or(Ordering::Equal);
                if desc { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// Evaluates a declarative query; depends on the whole bucket.
pub(crate) fn eval_declarative(
    def: &QueryDefinition,
    params: &Value,
    data: &Data,
    now: u64,
) -> StoreResult<(Value, Deps)> {
    let bucket = data.bucket(&def.bucket)?;
    let filter = match &def.filter {
        Some(f) => match interpolate(&Value::Object(f.clone()), params) {
            Value::Object(obj) => Filter::compile(&obj)?,
            _ => {
                return Err(StoreError::Internal {
                    message: "filter interpolation".into(),
                });
            }
        },
        None => Filter::default(),
    };
    let mut records = if filter.is_empty() {
        bucket.live(now).collect::<Vec<_>>()
    } else {
        bucket.select(&filter, now)
    };
    let mut deps = Deps::default();
    deps.buckets.insert(def.bucket.clone());
    if let Some(sort) = &def.sort {
        records.sort_by(|a, b| sort_cmp(a, b, sort));
    }
    let offset = def.offset.unwrap_or(0);
    let records: Vec<&Record> = records
        .into_iter()
        .skip(offset)
        .take(def.limit.unwrap_or(usize::MAX))
        .collect();
    if let Some(agg) = &def.aggregate {
        let field = agg.field.as_deref().unwrap_or("");
        let apply = |rs: &[&Record]| -> Value {
            let nums = numbers(rs.iter().copied(), field);
            match agg.function {
                AggregateFn::Count => Value::from(rs.len()),
                AggregateFn::Sum => sum_of(nums),
                AggregateFn::Avg => avg_of(nums),
                AggregateFn::Min => min_of(nums),
                AggregateFn::Max => max_of(nums),
            }
        };
        let Some(group_by) = &agg.group_by else {
            return Ok((apply(&records), deps));
        };
        let fields = group_by.fields();
        let mut groups: Vec<(Map<String, Value>, Vec<&Record>)> = Vec::new();
        for r in &records {
            let key: Map<String, Value> = fields
                .iter()
                .map(|f| {
                    (
                        (*f).to_owned(),
                        get_path(r, f).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect();
            match groups.iter_mut().find(|(k, _)| {
                k.iter()
                    .all(|(f, v)| key.get(f).is_some_and(|w| json_eq(v, w)))
            }) {
                Some((_, members)) => members.push(r),
                None => groups.push((key, vec![r])),
            }
        }
        let out = groups
            .into_iter()
            .map(|(key, members)| {
                let mut m = Map::new();
                m.insert("key".into(), Value::Object(key));
                m.insert("value".into(), apply(&members));
                Value::Object(m)
            })
            .collect();
        return Ok((Value::Array(out), deps));
    }
    let out = records
        .into_iter()
        .map(|r| match &def.fields {
            Some(fields) => Value::Object(
                fields
                    .iter()
                    .filter_map(|f| r.get(f).map(|v| (f.clone(), v.clone())))
                    .collect(),
            ),
            None => Value::Object(r.clone()),
        })
        .collect();
    Ok((Value::Array(out), deps))
}

/// Evaluates any query kind.
pub(crate) fn evaluate(
    kind: &QueryKind,
    params: &Value,
    data: &Data,
    now: u64,
) -> StoreResult<(Value, Deps)> {
    match kind {
        QueryKind::Declarative(def) => eval_declarative(def, params, data, now),
        QueryKind::Programmatic(f) => {
            let ctx = QueryContext::new(data, now);
            let value = f(&ctx, params)?;
            Ok((value, ctx.into_deps()))
        }
    }
}
