//! `filter`: the store's filter language and declarative queries, on records a client chose.
//!
//! Input (JSON, as in the corpus, or generated from other bytes):
//! `{"bucket"?: bucket definition, "records": [record...], "filter": filter,
//!   "query": query definition (its "bucket" is set to the fuzzed bucket), "params": value}`.
//! Without `bucket` the records go into a bucket keyed by an autoincrement `id`.
//!
//! Checks: `Filter::compile` and `Filter::matches` never panic; in a store holding the
//! records, `where` (which answers equality filters from an index) returns exactly what a
//! full scan returns, `count` and `findOne` agree with it, the aggregates run; the query is
//! defined, subscribed and run (sort, offset, limit, projection, aggregate, groupBy) without
//! a panic.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use noex_fuzz::{Gen, MAX_DEPTH, as_json, obj, runtime};
use noex_store::{BucketDefinition, Filter, ManualClock, QueryDefinition, Store, StoreConfig};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let case = match as_json(data) {
        Some(case) => case,
        None => match generate(&mut Unstructured::new(data)) {
            Ok(case) => case,
            Err(_) => return,
        },
    };
    noex_fuzz::show(&case);
    run(&case);
});

fn run(case: &Value) {
    let records: Vec<Map<String, Value>> = case
        .get("records")
        .and_then(Value::as_array)
        .map(|rs| rs.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let filter = case.get("filter").and_then(Value::as_object);

    // The filter on its own.
    if let Some(f) = filter
        && let Ok(compiled) = Filter::compile(f)
    {
        for r in &records {
            let _ = compiled.matches(r);
        }
    }

    // The same filter and a query inside a store.
    runtime().block_on(async {
        let store = Store::start(StoreConfig {
            ttl_check_interval: Duration::ZERO,
            clock: Some(Arc::new(ManualClock::new(1_000_000))),
            ..StoreConfig::default()
        })
        .expect("the store starts");
        let definition = match case.get("bucket") {
            Some(def) => match BucketDefinition::from_json(def.clone()) {
                Ok(def) => def,
                Err(_) => return,
            },
            None => default_bucket(),
        };
        if store.define_bucket("b", definition).is_err() {
            return;
        }
        let query = case.get("query").and_then(Value::as_object);
        let query = query.and_then(|q| {
            let mut q = q.clone();
            q.insert("bucket".into(), json!("b"));
            QueryDefinition::from_json(Value::Object(q)).ok()
        });
        let params = case.get("params").cloned().unwrap_or(Value::Null);
        let defined = query.is_some_and(|q| store.define_query("q", q).is_ok());
        if defined {
            // Re-evaluated by the dispatcher on every insert below.
            let _ = store.subscribe("q", params.clone(), |_| {});
        }
        let bucket = store.bucket("b");
        for r in records {
            let _ = bucket.insert(r);
        }
        store.settle().await;

        if let Some(f) = filter {
            let indexed = bucket.where_(f);
            let scanned = bucket.where_scan(f);
            match (&indexed, &scanned) {
                (Ok(i), Ok(s)) => {
                    assert_eq!(i, s, "where (index) and a full scan disagree on {f:?}")
                }
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "where and a scan disagree on whether {f:?} is valid: {indexed:?} {scanned:?}"
                ),
            }
            if let Ok(found) = &indexed {
                assert_eq!(
                    bucket.count(Some(f)).ok(),
                    Some(found.len()),
                    "count of {f:?}"
                );
                assert_eq!(
                    bucket.find_one(f).ok().flatten().as_ref(),
                    found.first(),
                    "findOne of {f:?}"
                );
                let mut fields: Vec<&str> = f.keys().map(String::as_str).collect();
                fields.extend(["a", "n"]);
                for field in fields {
                    let _ = bucket.sum(field, Some(f));
                    let _ = bucket.avg(field, Some(f));
                    let _ = bucket.min(field, Some(f));
                    let _ = bucket.max(field, Some(f));
                }
            }
        }
        if defined {
            let _ = store.run_query("q", &params);
        }
        let _ = bucket.paginate(2, None);
        store.settle().await;
    });
}

// ----- known bugs -------------------------------------------------------------------------

fn default_bucket() -> BucketDefinition {
    BucketDefinition::from_json(json!({
        "key": "id",
        "schema": {"id": {"type": "number", "generated": "autoincrement"}}
    }))
    .expect("the default bucket definition")
}

// ----- the generator ---------------------------------------------------------------------

/// Field names records, filters, sorts and groups share, so they meet.
const FIELDS: &[&str] = &["a", "b", "n", "s", "tags", "a.b", "a.b.c", "id", "_version"];
const OPERATORS: &[&str] = &[
    "$eq",
    "$neq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$contains",
    "$startsWith",
    "$endsWith",
    "$exists",
    "$between",
    "$or",
    "$and",
    "$not",
];
const STRINGS: &[&str] = &[
    "x",
    "X",
    "xy",
    "",
    "İ",
    "ß",
    "a",
    "b",
    "{{ params.p }}",
    "{{params.q}}",
    "asc",
    "desc",
];
const TYPES: &[&str] = &[
    "number", "number", "string", "string", "boolean", "object", "array", "date",
];

/// A whole case: maybe a bucket definition, records, a filter, a query and params.
fn generate(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut g = Gen::new(u, FIELDS, STRINGS);
    let mut case = Map::new();
    g.fill_pool(4)?;
    if g.chance(128)? {
        case.insert("bucket".into(), bucket(&mut g)?);
    }
    case.insert("filter".into(), Value::Object(filter(&mut g, 0)?));
    case.insert("query".into(), query(&mut g)?);
    let params = obj([("p", g.scalar()?), ("q", g.value(2)?)]);
    case.insert("params".into(), params);
    // Records last: they take whatever input is left. Up to 40 of them, because the
    // standard sort only checks its comparator's consistency on more than 20 elements.
    let records = g.list(40, |g| record(g, 0))?;
    case.insert("records".into(), Value::Array(records));
    Ok(Value::Object(case))
}

/// A bucket keyed by an autoincrement `id` with some typed, indexed or unique fields.
fn bucket(g: &mut Gen<'_, '_>) -> Result<Value> {
    let mut schema = Map::new();
    schema.insert(
        "id".into(),
        json!({"type": "number", "generated": "autoincrement"}),
    );
    let mut indexes = Vec::new();
    for name in ["a", "b", "n", "s", "a.b"] {
        if g.chance(64)? {
            let mut field = Map::new();
            field.insert("type".into(), g.word(TYPES)?);
            if g.chance(32)? {
                field.insert("unique".into(), json!(true));
            }
            schema.insert(name.into(), Value::Object(field));
            if g.chance(160)? {
                indexes.push(json!(name));
            }
        }
    }
    Ok(json!({"key": "id", "schema": schema, "indexes": indexes}))
}

/// A record over the shared field names, values of any kind (mixed types on purpose).
fn record(g: &mut Gen<'_, '_>, depth: usize) -> Result<Value> {
    let mut r = Map::new();
    for name in ["a", "b", "n", "s", "tags"] {
        if g.chance(160)? {
            r.insert(name.into(), field_value(g, depth)?);
        }
    }
    if g.chance(24)? {
        let k = g.key()?;
        let v = g.value(depth + 1)?;
        r.insert(k, v);
    }
    Ok(Value::Object(r))
}

fn field_value(g: &mut Gen<'_, '_>, depth: usize) -> Result<Value> {
    Ok(match g.u.int_in_range(0..=9u8)? {
        0..=6 => g.scalar()?,
        7 => Value::Array(g.list(4, |g| g.scalar())?),
        _ if depth < 2 => record(g, depth + 1)?,
        _ => g.scalar()?,
    })
}

/// A filter: field conditions (plain equality or operator objects) and `$or` / `$and`.
fn filter(g: &mut Gen<'_, '_>, depth: usize) -> Result<Map<String, Value>> {
    let mut f = Map::new();
    let n = g.len(3)?;
    for _ in 0..n {
        if depth < MAX_DEPTH && g.chance(40)? {
            let op = if g.chance(128)? { "$or" } else { "$and" };
            let list = g.list(3, |g| Ok(Value::Object(filter(g, depth + 1)?)))?;
            f.insert(op.into(), Value::Array(list));
            continue;
        }
        let field = g.key()?;
        let cond = if g.chance(96)? {
            field_value(g, 1)?
        } else {
            let mut ops = Map::new();
            for _ in 0..g.len(2)?.max(1) {
                let op = g.word(OPERATORS)?;
                let op = op.as_str().unwrap_or_default().to_owned();
                let arg = g.or_any(|g| operand(g, &op))?;
                ops.insert(op, arg);
            }
            Value::Object(ops)
        };
        f.insert(field, cond);
    }
    Ok(f)
}

fn operand(g: &mut Gen<'_, '_>, op: &str) -> Result<Value> {
    Ok(match op {
        "$in" | "$nin" => Value::Array(g.list(4, |g| g.scalar())?),
        "$between" => Value::Array(vec![g.scalar()?, g.scalar()?]),
        "$exists" => Value::Bool(g.u.arbitrary()?),
        "$contains" | "$startsWith" | "$endsWith" => Value::String(g.string()?),
        _ => g.scalar()?,
    })
}

/// A declarative query: filter, sort, limit, offset, fields, aggregate with groupBy.
fn query(g: &mut Gen<'_, '_>) -> Result<Value> {
    let mut q = Map::new();
    g.opt_field(&mut q, "filter", |g| Ok(Value::Object(filter(g, 0)?)))?;
    g.opt_field(&mut q, "sort", |g| {
        let mut sort = Map::new();
        for _ in 0..g.len(3)?.max(1) {
            let k = g.key()?;
            sort.insert(k, g.word(&["asc", "desc"])?);
        }
        Ok(Value::Object(sort))
    })?;
    g.opt_field(&mut q, "limit", |g| g.number())?;
    g.opt_field(&mut q, "offset", |g| g.number())?;
    g.opt_field(&mut q, "fields", |g| {
        Ok(Value::Array(g.list(3, |g| Ok(Value::String(g.key()?)))?))
    })?;
    g.opt_field(&mut q, "aggregate", |g| {
        let mut a = Map::new();
        g.field(&mut a, "function", |g| {
            g.word(&["count", "sum", "avg", "min", "max"])
        })?;
        g.opt_field(&mut a, "field", |g| Ok(Value::String(g.key()?)))?;
        g.opt_field(&mut a, "groupBy", |g| {
            Ok(if g.chance(128)? {
                Value::String(g.key()?)
            } else {
                Value::Array(g.list(3, |g| Ok(Value::String(g.key()?)))?)
            })
        })?;
        Ok(Value::Object(a))
    })?;
    Ok(Value::Object(q))
}
