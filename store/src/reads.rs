//! Read operations over one bucket at one instant: `get`, `all`, `where`, `find_one`,
//! `count`, `first`, `last`, `paginate` and the numeric aggregates. Shared by bucket
//! handles, query contexts and (through an overlay) transactions.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::bucket::Bucket;
use crate::error::{StoreError, StoreResult};
use crate::filter::Filter;
use crate::value::{Record, ResultBudget, get_path, key_string};

/// One page of `paginate`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// Records of this page, in insertion order.
    pub records: Vec<Record>,
    /// Whether more records follow.
    pub has_more: bool,
    /// Key of the last record, present only when `has_more`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Value>,
}

/// Numeric aggregates over an iterator of records.
pub(crate) fn numbers<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    field: &str,
) -> std::vec::IntoIter<f64> {
    let nums: Vec<f64> = records
        .into_iter()
        .filter_map(|r| get_path(r, field).and_then(Value::as_f64))
        .collect();
    nums.into_iter()
}

pub(crate) fn num_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

pub(crate) fn sum_of(it: impl Iterator<Item = f64>) -> Value {
    num_value(it.sum())
}

pub(crate) fn avg_of(it: impl Iterator<Item = f64>) -> Value {
    let (sum, n) = it.fold((0.0, 0u64), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        Value::from(0)
    } else {
        num_value(sum / n as f64)
    }
}

pub(crate) fn min_of(it: impl Iterator<Item = f64>) -> Value {
    it.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))))
        .map_or(Value::Null, num_value)
}

pub(crate) fn max_of(it: impl Iterator<Item = f64>) -> Value {
    it.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        .map_or(Value::Null, num_value)
}

pub(crate) fn positive(name: &str, n: usize) -> StoreResult<usize> {
    if n == 0 {
        return Err(StoreError::invalid_arg(format!(
            "{name} must be a positive integer"
        )));
    }
    Ok(n)
}

/// Clones `records` into a result, measuring each before it is cloned: fails with
/// `ResultTooLarge` as soon as the JSON would pass `limit` bytes.
pub(crate) fn collect_within<'r>(
    records: impl IntoIterator<Item = &'r Record>,
    limit: usize,
) -> StoreResult<Vec<Record>> {
    let mut budget = ResultBudget::new(limit);
    let mut out = Vec::new();
    for r in records {
        budget.add(r)?;
        out.push(r.clone());
    }
    Ok(out)
}

/// A consistent view of one bucket's live records.
pub(crate) struct Reads<'a> {
    pub bucket: &'a Bucket,
    pub now: u64,
    /// `max_result_bytes`: the largest result a read that returns records may build.
    pub limit: usize,
}

impl<'a> Reads<'a> {
    pub fn get(&self, key: &Value) -> Option<Record> {
        self.bucket.get(&key_string(key), self.now).cloned()
    }

    pub fn all(&self) -> StoreResult<Vec<Record>> {
        collect_within(self.bucket.live(self.now), self.limit)
    }

    pub fn select(&self, filter: Option<&Map<String, Value>>) -> StoreResult<Vec<&'a Record>> {
        let f = Filter::compile_opt(filter)?;
        let selected = if f.is_empty() {
            self.bucket.live(self.now).collect()
        } else {
            self.bucket.select(&f, self.now)
        };
        crate::deadline::check()?;
        Ok(selected)
    }

    pub fn where_(&self, filter: &Map<String, Value>) -> StoreResult<Vec<Record>> {
        collect_within(self.select(Some(filter))?, self.limit)
    }

    pub fn find_one(&self, filter: &Map<String, Value>) -> StoreResult<Option<Record>> {
        let f = Filter::compile(filter)?;
        let found = if f.equality_hints().is_empty() {
            self.bucket.live(self.now).find(|r| f.matches(r))
        } else {
            self.bucket.select(&f, self.now).into_iter().next()
        };
        crate::deadline::check()?;
        Ok(collect_within(found, self.limit)?.pop())
    }

    pub fn count(&self, filter: Option<&Map<String, Value>>) -> StoreResult<usize> {
        Ok(self.select(filter)?.len())
    }

    pub fn first(&self, n: usize) -> StoreResult<Vec<Record>> {
        let n = positive("n", n)?;
        collect_within(self.bucket.live(self.now).take(n), self.limit)
    }

    pub fn last(&self, n: usize) -> StoreResult<Vec<Record>> {
        let n = positive("n", n)?;
        let mut out = collect_within(self.bucket.live(self.now).rev().take(n), self.limit)?;
        out.reverse();
        Ok(out)
    }

    pub fn paginate(&self, limit: usize, after: Option<&Value>) -> StoreResult<Page> {
        let limit = positive("limit", limit)?;
        let mut window: Vec<&Record> = match after {
            None => self
                .bucket
                .live(self.now)
                .take(limit.saturating_add(1))
                .collect(),
            Some(cursor) => match self.bucket.live_after(&key_string(cursor), self.now) {
                Some(it) => it.take(limit.saturating_add(1)).collect(),
                None => Vec::new(),
            },
        };
        let has_more = window.len() > limit;
        window.truncate(limit);
        let page = collect_within(window, self.limit)?;
        let next_cursor = if has_more {
            page.last()
                .and_then(|r| r.get(&self.bucket.def.key))
                .cloned()
        } else {
            None
        };
        Ok(Page {
            records: page,
            has_more,
            next_cursor,
        })
    }

    pub fn sum(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        Ok(sum_of(numbers(self.select(filter)?, field)))
    }

    pub fn avg(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        Ok(avg_of(numbers(self.select(filter)?, field)))
    }

    pub fn min(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        Ok(min_of(numbers(self.select(filter)?, field)))
    }

    pub fn max(&self, field: &str, filter: Option<&Map<String, Value>>) -> StoreResult<Value> {
        Ok(max_of(numbers(self.select(filter)?, field)))
    }
}
