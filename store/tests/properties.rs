//! Property tests: `where` with an index returns exactly what a full scan returns, and
//! filters agree with a straightforward reference evaluation on random records.

mod common;

use common::{define, o};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn small_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..5).prop_map(Value::from),
        (0i64..5).prop_map(|n| json!(n as f64 + 0.5)),
        prop::sample::select(vec!["a", "b", "ab", "B", "ba"]).prop_map(Value::from),
    ]
}

fn record() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::option::of(small_value()),
        prop::option::of(small_value()),
    )
        .prop_map(|(x, y)| {
            let mut m = Map::new();
            if let Some(x) = x {
                m.insert("x".into(), x);
            }
            if let Some(y) = y {
                m.insert("y".into(), y);
            }
            m
        })
}

#[derive(Debug, Clone)]
enum Cond {
    Eq(&'static str, Value),
    Op(&'static str, &'static str, Value),
    In(&'static str, Vec<Value>),
    Exists(&'static str, bool),
    Between(&'static str, Value, Value),
}

fn cond() -> impl Strategy<Value = Cond> {
    let field = prop::sample::select(vec!["x", "y"]);
    let op = prop::sample::select(vec![
        "$eq",
        "$neq",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$contains",
        "$startsWith",
        "$endsWith",
    ]);
    prop_oneof![
        (field.clone(), small_value()).prop_map(|(f, v)| Cond::Eq(f, v)),
        (field.clone(), op, small_value()).prop_map(|(f, op, v)| {
            let v = if matches!(op, "$contains" | "$startsWith" | "$endsWith") && !v.is_string() {
                json!("a")
            } else {
                v
            };
            Cond::Op(f, op, v)
        }),
        (field.clone(), prop::collection::vec(small_value(), 0..3))
            .prop_map(|(f, v)| Cond::In(f, v)),
        (field.clone(), any::<bool>()).prop_map(|(f, b)| Cond::Exists(f, b)),
        (field, small_value(), small_value()).prop_map(|(f, a, b)| Cond::Between(f, a, b)),
    ]
}

fn to_json(c: &Cond) -> (String, Value) {
    match c {
        Cond::Eq(f, v) => (f.to_string(), v.clone()),
        Cond::Op(f, op, v) => (f.to_string(), json!({ *op: v })),
        Cond::In(f, v) => (f.to_string(), json!({"$in": v})),
        Cond::Exists(f, b) => (f.to_string(), json!({"$exists": b})),
        Cond::Between(f, a, b) => (f.to_string(), json!({"$between": [a, b]})),
    }
}

fn num_or_str_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn eq(a: Option<&Value>, b: &Value) -> bool {
    match (a, b) {
        (None, Value::Null) => true,
        (None, _) => false,
        (Some(Value::Number(x)), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Some(x), y) => x == y,
    }
}

/// Reference semantics, written independently from the store's filter module.
fn reference(c: &Cond, r: &Map<String, Value>) -> bool {
    use std::cmp::Ordering::*;
    match c {
        Cond::Eq(f, v) => eq(r.get(*f), v),
        Cond::In(f, vs) => vs.iter().any(|v| eq(r.get(*f), v)),
        Cond::Exists(f, b) => r.get(*f).is_some_and(|v| !v.is_null()) == *b,
        Cond::Between(f, lo, hi) => r.get(*f).is_some_and(|v| {
            matches!(num_or_str_cmp(v, lo), Some(Greater | Equal))
                && matches!(num_or_str_cmp(v, hi), Some(Less | Equal))
        }),
        Cond::Op(f, op, v) => {
            let x = r.get(*f);
            let ord = x.and_then(|x| num_or_str_cmp(x, v));
            let s = x.and_then(Value::as_str);
            let p = v.as_str().unwrap_or("");
            match *op {
                "$eq" => eq(x, v),
                "$neq" => !eq(x, v),
                "$gt" => ord == Some(Greater),
                "$gte" => matches!(ord, Some(Greater | Equal)),
                "$lt" => ord == Some(Less),
                "$lte" => matches!(ord, Some(Less | Equal)),
                "$contains" => s.is_some_and(|s| s.to_lowercase().contains(&p.to_lowercase())),
                "$startsWith" => s.is_some_and(|s| s.starts_with(p)),
                "$endsWith" => s.is_some_and(|s| s.ends_with(p)),
                _ => unreachable!(),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn indexed_and_reference_agree(
        records in prop::collection::vec(record(), 0..40),
        conds in prop::collection::vec(cond(), 1..3),
        or in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = rt.enter();
        let s = common::store();
        define(&s, "plain", json!({"key": "id", "schema": {"id": {"type": "number"}}}));
        define(&s, "indexed", json!({"key": "id", "schema": {"id": {"type": "number"}, "x": {"type": "string"}, "y": {"type": "string"}}, "indexes": []}));
        s.update_bucket("indexed", serde_json::from_value(json!({"addIndexes": ["x", "y"]})).unwrap()).unwrap();
        let mut stored = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let mut r = r.clone();
            r.insert("id".into(), json!(i));
            s.bucket("plain").insert(r.clone()).unwrap();
            stored.push(r);
        }
        let filter: Map<String, Value> = if or {
            o(json!({"$or": conds.iter().map(|c| { let (k, v) = to_json(c); json!({k: v}) }).collect::<Vec<_>>()}))
        } else {
            let mut m = Map::new();
            for c in &conds { let (k, v) = to_json(c); m.insert(k, v); }
            m
        };
        let expected: Vec<Value> = stored
            .iter()
            .filter(|r| {
                if or {
                    conds.iter().any(|c| reference(c, r))
                } else {
                    // duplicate keys in the map keep the last condition per field
                    let mut last: std::collections::HashMap<&str, &Cond> = std::collections::HashMap::new();
                    for c in &conds {
                        let f = match c { Cond::Eq(f, _) | Cond::Op(f, _, _) | Cond::In(f, _) | Cond::Exists(f, _) | Cond::Between(f, _, _) => *f };
                        last.insert(f, c);
                    }
                    last.values().all(|c| reference(c, r))
                }
            })
            .map(|r| r["id"].clone())
            .collect();
        let got: Vec<Value> = s.bucket("plain").where_(&filter).unwrap().iter().map(|r| r["id"].clone()).collect();
        prop_assert_eq!(&got, &expected);

        // The same records in buckets with indexes on x and y ("plain" has none). Schemas
        // type the fields, so string values go to one bucket and numbers to another.
        define(&s, "numeric", json!({"key": "id", "schema": {"id": {"type": "number"}, "x": {"type": "number"}, "y": {"type": "number"}}, "indexes": ["x", "y"]}));
        for (bucket, keep) in [("indexed", Value::is_string as fn(&Value) -> bool), ("numeric", Value::is_number)] {
            for r in &stored {
                let r: Map<String, Value> = r.iter().filter(|(k, v)| *k == "id" || keep(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
                s.bucket(bucket).insert(r).unwrap();
            }
            let with_index: Vec<Value> = s.bucket(bucket).where_(&filter).unwrap().iter().map(|r| r["id"].clone()).collect();
            let scan: Vec<Value> = s.bucket(bucket).where_scan(&filter).unwrap().iter().map(|r| r["id"].clone()).collect();
            prop_assert_eq!(with_index, scan);
        }
    }
}

/// Kind rank of the documented sort order; null and absent last.
fn sort_rank(v: Option<&Value>) -> u8 {
    match v {
        Some(Value::Bool(_)) => 0,
        Some(Value::Number(_)) => 1,
        Some(Value::String(_)) => 2,
        Some(Value::Array(_)) => 3,
        Some(Value::Object(_)) => 4,
        Some(Value::Null) | None => 5,
    }
}

fn mixed_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        small_value(),
        prop::collection::vec(small_value(), 0..3).prop_map(Value::Array),
        small_value().prop_map(|v| json!({"k": v})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Sorting records whose fields hold any mix of kinds never fails, returns every
    /// record once, and orders kinds as documented (null/absent last in both directions).
    #[test]
    fn sorting_arbitrary_mixed_records_never_panics(
        values in prop::collection::vec((prop::option::of(mixed_value()), prop::option::of(mixed_value())), 0..60),
        desc in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = rt.enter();
        let s = common::store();
        define(&s, "m", json!({"key": "id", "schema": {"id": {"type": "number"}}}));
        for (i, (x, y)) in values.iter().enumerate() {
            let mut r = Map::new();
            r.insert("id".into(), json!(i));
            if let Some(x) = x { r.insert("x".into(), x.clone()); }
            if let Some(y) = y { r.insert("y".into(), y.clone()); }
            s.bucket("m").insert(r).unwrap();
        }
        let dir = if desc { "desc" } else { "asc" };
        s.define_query("sorted", serde_json::from_value(json!(
            {"bucket": "m", "sort": {"x": dir, "y": "asc"}})).unwrap()).unwrap();
        let out = s.run_query("sorted", &json!({})).unwrap();
        let out = out.as_array().unwrap();
        let mut ids: Vec<u64> = out.iter().map(|r| r["id"].as_u64().unwrap()).collect();
        for w in out.windows(2) {
            let (a, b) = (sort_rank(w[0].get("x")), sort_rank(w[1].get("x")));
            if a == 5 || b == 5 || !desc {
                prop_assert!(a <= b, "{} before {}", w[0], w[1]);
            } else {
                prop_assert!(a >= b, "{} before {}", w[0], w[1]);
            }
        }
        ids.sort_unstable();
        prop_assert_eq!(ids, (0..values.len() as u64).collect::<Vec<_>>());
    }
}
