//! Filter operators and every read operation, including pagination edge cases.

mod common;

use common::{o, store, users};
use noex_store::{Store, StoreError};
use serde_json::{Value, json};

fn seeded() -> Store {
    let s = store();
    users(&s);
    let b = s.bucket("users");
    for r in [
        json!({"id": "a", "name": "Alice", "age": 30, "role": "admin"}),
        json!({"id": "b", "name": "bob", "age": 25, "role": "user"}),
        json!({"id": "c", "name": "Carol", "age": 35.5, "role": "user"}),
        json!({"id": "d", "name": "Dave", "role": null}),
        json!({"id": "e", "name": "Eve"}),
    ] {
        b.insert(o(r)).unwrap();
    }
    s
}

fn ids(s: &Store, filter: Value) -> Vec<String> {
    s.bucket("users")
        .where_(&o(filter))
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_operator() {
    let s = seeded();
    let cases = [
        (json!({"role": "user"}), "bc"),
        (json!({"age": 30.0}), "a"),
        (json!({"role": null}), "de"),
        (json!({"age": {"$eq": 25}}), "b"),
        (json!({"role": {"$neq": "user"}}), "ade"),
        (json!({"age": {"$gt": 30}}), "c"),
        (json!({"age": {"$gte": 30}}), "ac"),
        (json!({"age": {"$lt": 30}}), "b"),
        (json!({"age": {"$lte": 30}}), "ab"),
        (json!({"age": {"$gt": "3"}}), ""),
        (json!({"name": {"$lt": 5}}), ""),
        (json!({"role": {"$in": ["admin", "user"]}}), "abc"),
        (json!({"role": {"$nin": ["admin"]}}), "bcde"),
        (json!({"name": {"$contains": "AR"}}), "c"),
        (json!({"name": {"$startsWith": "b"}}), "b"),
        (json!({"name": {"$endsWith": "e"}}), "ade"),
        (json!({"role": {"$exists": true}}), "abc"),
        (json!({"role": {"$exists": false}}), "de"),
        (json!({"age": {"$between": [25, 30]}}), "ab"),
        (json!({"age": {"$gte": 25, "$lt": 35}}), "ab"),
        (
            json!({"$or": [{"role": "admin"}, {"age": {"$gt": 35}}]}),
            "ac",
        ),
        (
            json!({"$and": [{"role": "user"}, {"age": {"$gt": 30}}]}),
            "c",
        ),
        (
            json!({"$or": [{"$and": [{"role": "user"}, {"age": 25}]}, {"name": "Eve"}]}),
            "be",
        ),
        (json!({"role": "user", "name": {"$startsWith": "C"}}), "c"),
        (json!({}), "abcde"),
    ];
    for (filter, want) in cases {
        let got: String = ids(&s, filter.clone()).concat();
        assert_eq!(got, want, "filter {filter}");
        let scanned: String = s
            .bucket("users")
            .where_scan(&o(filter.clone()))
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(scanned, want, "scan {filter}");
    }
}

#[tokio::test]
async fn bad_filters_are_invalid_arguments() {
    let s = seeded();
    for f in [
        json!({"age": {"$foo": 1}}),
        json!({"age": {"$in": 1}}),
        json!({"age": {"$between": [1]}}),
        json!({"$or": {"a": 1}}),
        json!({"$nor": []}),
        json!({"name": {"$exists": "yes"}}),
        json!({"name": {"$contains": 1}}),
    ] {
        let e = s.bucket("users").where_(&o(f.clone())).unwrap_err();
        assert!(
            matches!(e, StoreError::InvalidArgument { .. }),
            "{f}: {e:?}"
        );
        assert_eq!(e.code(), "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn simple_reads() {
    let s = seeded();
    let b = s.bucket("users");
    assert_eq!(b.all().unwrap().len(), 5);
    assert_eq!(b.get(&json!("c")).unwrap().unwrap()["name"], "Carol");
    assert!(b.get(&json!("zz")).unwrap().is_none());
    assert_eq!(
        b.find_one(&o(json!({"role": "user"}))).unwrap().unwrap()["id"],
        "b"
    );
    assert!(b.find_one(&o(json!({"role": "ghost"}))).unwrap().is_none());
    assert_eq!(b.count(None).unwrap(), 5);
    assert_eq!(b.count(Some(&o(json!({"role": "user"})))).unwrap(), 2);
    let first: Vec<Value> = b
        .first(2)
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(first, vec![json!("a"), json!("b")]);
    let last: Vec<Value> = b.last(2).unwrap().iter().map(|r| r["id"].clone()).collect();
    assert_eq!(last, vec![json!("d"), json!("e")]);
    assert_eq!(b.first(99).unwrap().len(), 5);
    assert!(b.first(0).is_err());
    assert_eq!(b.sum("age", None).unwrap(), json!(90.5));
    assert_eq!(
        b.sum("age", Some(&o(json!({"role": "user"})))).unwrap(),
        json!(60.5)
    );
    assert_eq!(
        b.avg("age", Some(&o(json!({"role": "user"})))).unwrap(),
        json!(30.25)
    );
    assert_eq!(b.min("age", None).unwrap(), json!(25));
    assert_eq!(b.max("age", None).unwrap(), json!(35.5));
    assert_eq!(
        b.sum("age", Some(&o(json!({"role": "ghost"})))).unwrap(),
        json!(0)
    );
    assert_eq!(
        b.avg("age", Some(&o(json!({"role": "ghost"})))).unwrap(),
        json!(0)
    );
    assert_eq!(
        b.min("age", Some(&o(json!({"role": "ghost"})))).unwrap(),
        Value::Null
    );
    assert_eq!(b.max("name", None).unwrap(), Value::Null);
}

#[tokio::test]
async fn delete_and_clear() {
    let s = seeded();
    let b = s.bucket("users");
    assert!(b.delete(&json!("a")).unwrap());
    assert!(!b.delete(&json!("a")).unwrap());
    assert_eq!(b.count(None).unwrap(), 4);
    assert_eq!(b.where_(&o(json!({"role": "admin"}))).unwrap().len(), 0);
    assert_eq!(b.clear().unwrap(), 4);
    assert!(b.all().unwrap().is_empty());
    assert_eq!(b.where_(&o(json!({"role": "user"}))).unwrap().len(), 0);
}

#[tokio::test]
async fn pagination_edges() {
    let s = store();
    users(&s);
    let b = s.bucket("users");
    let empty = b.paginate(2, None).unwrap();
    assert!(empty.records.is_empty() && !empty.has_more && empty.next_cursor.is_none());
    for i in 0..4 {
        b.insert(o(json!({"id": format!("k{i}"), "name": "x"})))
            .unwrap();
    }
    let p1 = b.paginate(2, None).unwrap();
    assert_eq!(p1.records.len(), 2);
    assert!(p1.has_more);
    assert_eq!(p1.next_cursor, Some(json!("k1")));
    // exact page boundary: the second page ends at the last record, no more pages
    let p2 = b.paginate(2, p1.next_cursor.as_ref()).unwrap();
    assert_eq!(
        p2.records
            .iter()
            .map(|r| r["id"].clone())
            .collect::<Vec<_>>(),
        vec![json!("k2"), json!("k3")]
    );
    assert!(!p2.has_more);
    assert!(p2.next_cursor.is_none());
    assert_eq!(serde_json::to_value(&p2).unwrap().get("nextCursor"), None);
    let after_last = b.paginate(2, Some(&json!("k3"))).unwrap();
    assert!(after_last.records.is_empty() && !after_last.has_more);
    let unknown = b.paginate(2, Some(&json!("nope"))).unwrap();
    assert!(unknown.records.is_empty() && !unknown.has_more);
    assert!(b.paginate(0, None).is_err());
    let whole = b.paginate(4, None).unwrap();
    assert_eq!(whole.records.len(), 4);
    assert!(!whole.has_more);
}

#[tokio::test]
async fn numeric_keys_and_nested_paths() {
    let s = store();
    common::define(
        &s,
        "n",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "a": {"type": "object"}}}),
    );
    let b = s.bucket("n");
    b.insert(o(json!({"id": 1, "a": {"b": 2}}))).unwrap();
    assert!(b.get(&json!(1.0)).unwrap().is_some());
    assert!(b.get(&json!("1")).unwrap().is_none());
    assert_eq!(b.count(Some(&o(json!({"a.b": 2})))).unwrap(), 1);
    assert_eq!(b.count(Some(&o(json!({"a": {"b": 2}})))).unwrap(), 1);
}

#[tokio::test]
async fn extreme_inputs_do_not_panic() {
    let s = seeded();
    let b = s.bucket("users");
    assert_eq!(b.paginate(usize::MAX, None).unwrap().records.len(), 5);
    assert_eq!(b.first(usize::MAX).unwrap().len(), 5);
    assert_eq!(b.last(usize::MAX).unwrap().len(), 5);
    common::define(
        &s,
        "auto",
        json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}}),
    );
    s.bucket("auto").insert(o(json!({"id": u64::MAX}))).unwrap();
    // the counter is exhausted: a validation error, never a wrap to a used key or a panic
    assert!(matches!(
        s.bucket("auto").insert(o(json!({}))),
        Err(noex_store::StoreError::Validation { .. })
    ));
}

// ----- inputs found by the `filter` fuzz target (fuzz/): an index must answer `where`
// exactly as a full scan does ------------------------------------------------------------

fn index_and_scan(def: Value, records: Value, filter: Value) -> (Vec<Value>, Vec<Value>) {
    let s = store();
    common::define(&s, "b", def);
    let b = s.bucket("b");
    for r in records.as_array().unwrap() {
        b.insert(o(r.clone())).unwrap();
    }
    let ids = |rs: Vec<noex_store::Record>| rs.iter().map(|r| r["id"].clone()).collect();
    (
        ids(b.where_(&o(filter.clone())).unwrap()),
        ids(b.where_scan(&o(filter)).unwrap()),
    )
}

/// Filters compare numbers by value, so `-0.0` equals `0`; the index filed `-0.0` under
/// its own text and `{"n": 0}` missed it.
#[tokio::test]
async fn an_index_finds_minus_zero_for_zero() {
    let (indexed, scanned) = index_and_scan(
        json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"},
            "n": {"type": "number"}}, "indexes": ["n"]}),
        json!([{"n": -0.0}, {"n": 0}]),
        json!({"n": 0}),
    );
    assert_eq!(scanned, [json!(1), json!(2)]);
    assert_eq!(indexed, scanned);
    let (indexed, scanned) = index_and_scan(
        json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"},
            "n": {"type": "number"}}, "indexes": ["n"]}),
        json!([{"n": -0.0}, {"n": 0}]),
        json!({"n": {"$in": [-0.0]}}),
    );
    assert_eq!(indexed, scanned);
}

/// A filter on `a.b` reads the field `a.b`, else the path `a` → `b`; the index on a field
/// named `a.b` only held records with the flat field, so nested ones were missed.
#[tokio::test]
async fn an_index_on_a_dotted_field_finds_nested_values() {
    let (indexed, scanned) = index_and_scan(
        json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"},
            "a.b": {"type": "number"}}, "indexes": ["a.b"]}),
        json!([{"a": {"b": 1}}, {"a.b": 1}, {"a": {"b": 2}}]),
        json!({"a.b": 1}),
    );
    assert_eq!(scanned, [json!(1), json!(2)]);
    assert_eq!(indexed, scanned);
}
