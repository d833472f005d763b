//! Schema options, validation issue codes, generated values, defaults, metadata, unique
//! constraints, bucket definition errors and bucket management.

mod common;

use common::{define, o, store};
use noex_store::{BucketDefinition, BucketUpdate, StoreError};
use serde_json::{Value, json};

fn issues(err: StoreError) -> Vec<(String, String)> {
    match err {
        StoreError::Validation { issues, .. } => {
            issues.into_iter().map(|i| (i.field, i.code)).collect()
        }
        other => panic!("expected validation error, got {other:?}"),
    }
}

fn full_schema() -> Value {
    json!({
        "key": "id",
        "schema": {
            "id": {"type": "string", "generated": "uuid"},
            "name": {"type": "string", "required": true, "minLength": 2, "maxLength": 5},
            "code": {"type": "string", "pattern": "^[A-Z]+$"},
            "email": {"type": "string", "format": "email"},
            "site": {"type": "string", "format": "url"},
            "born": {"type": "string", "format": "iso-date"},
            "when": {"type": "date"},
            "age": {"type": "number", "min": 0, "max": 150},
            "active": {"type": "boolean", "default": true},
            "role": {"type": "string", "enum": ["admin", "user"], "default": "user"},
            "address": {"type": "object", "properties": {"city": {"type": "string", "required": true}}},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
            "ownerId": {"type": "string", "ref": "users"}
        }
    })
}

#[tokio::test]
async fn every_issue_code_is_reported_with_its_path() {
    let s = store();
    define(&s, "t", full_schema());
    let err = s
        .bucket("t")
        .insert(o(json!({
            "code": "abc", "email": "nope", "site": "ftp:x", "born": "2024-13-01", "when": "yesterday",
            "age": 200, "active": "yes", "role": "root", "address": {"city": 3}, "tags": ["ok", "toolong"]
        })))
        .unwrap_err();
    let msg = err.to_string();
    let got = issues(err);
    let expected = [
        ("name", "required"),
        ("code", "pattern"),
        ("email", "format"),
        ("site", "format"),
        ("born", "format"),
        ("when", "type"),
        ("age", "max"),
        ("active", "type"),
        ("role", "enum"),
        ("address.city", "type"),
        ("tags[1]", "maxLength"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, expected);
    assert!(
        msg.starts_with("Validation failed for bucket \"t\": name: Field is required; code: "),
        "{msg}"
    );

    let got = issues(
        s.bucket("t")
            .insert(o(json!({"name": "a", "age": -1, "address": {}})))
            .unwrap_err(),
    );
    assert_eq!(
        got,
        vec![
            ("name".to_string(), "minLength".to_string()),
            ("age".to_string(), "min".to_string()),
            ("address.city".to_string(), "required".to_string())
        ]
    );
    let got = issues(
        s.bucket("t")
            .insert(o(json!({"name": "abcdef"})))
            .unwrap_err(),
    );
    assert_eq!(got, vec![("name".to_string(), "maxLength".to_string())]);
}

#[tokio::test]
async fn valid_record_gets_generated_values_defaults_and_metadata() {
    let s = store();
    define(&s, "t", full_schema());
    let r = s
        .bucket("t")
        .insert(o(json!({"name": "Ann", "email": "a@b.co", "site": "https://x.io", "born": "2024-01-02T03:04:05Z",
            "when": "2024-01-02", "code": "AB", "tags": ["a"], "address": {"city": "Oslo"}, "_version": 99})))
        .unwrap();
    assert_eq!(r["id"].as_str().map(str::len), Some(36));
    assert_eq!(r["active"], true);
    assert_eq!(r["role"], "user");
    assert_eq!(r["_version"], 1);
    assert_eq!(r["_createdAt"], r["_updatedAt"]);
    assert!(r.get("_expiresAt").is_none());
    let got = s.bucket("t").get(&r["id"]).unwrap().unwrap();
    assert_eq!(got, r);
}

#[tokio::test]
async fn generated_cuid_autoincrement_timestamp() {
    let s = store();
    define(
        &s,
        "g",
        json!({"key": "n", "schema": {"n": {"type": "number", "generated": "autoincrement"},
            "c": {"type": "string", "generated": "cuid"}, "t": {"type": "number", "generated": "timestamp"}}}),
    );
    let b = s.bucket("g");
    let a = b.insert(o(json!({}))).unwrap();
    let c = b.insert(o(json!({}))).unwrap();
    assert_eq!((a["n"].clone(), c["n"].clone()), (json!(1), json!(2)));
    let (ca, cc) = (a["c"].as_str().unwrap(), c["c"].as_str().unwrap());
    assert!(ca.starts_with('c') && ca.len() > 10 && ca != cc);
    assert_eq!(a["t"], a["_createdAt"]);
    // an explicit value moves the counter ahead
    b.insert(o(json!({"n": 10}))).unwrap();
    assert_eq!(b.insert(o(json!({}))).unwrap()["n"], 11);
}

#[tokio::test]
async fn duplicate_key_and_unique_constraints() {
    let s = store();
    define(
        &s,
        "u",
        json!({"key": "id", "schema": {"id": {"type": "string"}, "email": {"type": "string", "unique": true}}}),
    );
    let b = s.bucket("u");
    b.insert(o(json!({"id": "1", "email": "a@x"}))).unwrap();
    let dup = b.insert(o(json!({"id": "1"}))).unwrap_err();
    assert_eq!(
        dup,
        StoreError::AlreadyExists {
            bucket: "u".into(),
            field: "id".into(),
            value: json!("1")
        }
    );
    assert_eq!(dup.code(), "ALREADY_EXISTS");
    let uniq = b.insert(o(json!({"id": "2", "email": "a@x"}))).unwrap_err();
    assert_eq!(
        uniq,
        StoreError::AlreadyExists {
            bucket: "u".into(),
            field: "email".into(),
            value: json!("a@x")
        }
    );
    // absent / null never collide
    b.insert(o(json!({"id": "3"}))).unwrap();
    b.insert(o(json!({"id": "4", "email": null}))).unwrap();
    // update is checked too, but a record keeps its own value
    assert!(b.update(&json!("3"), o(json!({"email": "a@x"}))).is_err());
    b.update(&json!("1"), o(json!({"email": "a@x"}))).unwrap();
    // after a delete the value is free again
    b.delete(&json!("1")).unwrap();
    b.insert(o(json!({"id": "5", "email": "a@x"}))).unwrap();
}

#[tokio::test]
async fn key_must_be_present() {
    let s = store();
    define(
        &s,
        "k",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    let got = issues(s.bucket("k").insert(o(json!({}))).unwrap_err());
    assert_eq!(got, vec![("id".to_string(), "required".to_string())]);
}

#[tokio::test]
async fn update_merges_keeps_key_and_metadata_and_validates() {
    let s = store();
    common::users(&s);
    let b = s.bucket("users");
    let r = b
        .insert(o(json!({"id": "a", "name": "Ann", "age": 3})))
        .unwrap();
    let u = b
        .update(
            &json!("a"),
            o(json!({"age": 4, "id": "zzz", "_version": 50, "_createdAt": 1})),
        )
        .unwrap();
    assert_eq!(u["id"], "a");
    assert_eq!(u["name"], "Ann");
    assert_eq!(u["age"], 4);
    assert_eq!(u["_version"], 2);
    assert_eq!(u["_createdAt"], r["_createdAt"]);
    let e = b.update(&json!("a"), o(json!({"name": null}))).unwrap_err();
    assert_eq!(e.code(), "VALIDATION_ERROR");
    assert_eq!(b.get(&json!("a")).unwrap().unwrap()["_version"], 2);
    let e = b.update(&json!("missing"), o(json!({}))).unwrap_err();
    assert_eq!(
        e,
        StoreError::NotFound {
            bucket: "users".into(),
            key: json!("missing")
        }
    );
}

#[tokio::test]
async fn bad_definitions_are_typed_errors() {
    let bad = [
        json!({"key": "id", "schema": {"id": {"type": "strin"}}}),
        json!({"key": "id", "schema": {"id": {"type": "string", "pattern": "("}}}),
        json!({"key": "nope", "schema": {"id": {"type": "string"}}}),
        json!({"key": "id", "schema": {"id": {"type": "string"}}, "indexes": ["x"]}),
        json!({"key": "id", "schema": {"id": {"type": "string"}}, "ttl": "5 weeks"}),
        json!({"key": "id", "schema": {"id": {"type": "string", "bogus": 1}}}),
        json!({"key": "id", "schema": {"id": {"type": "number", "min": 5, "max": 1}}}),
    ];
    let s = store();
    for (i, def) in bad.into_iter().enumerate() {
        let err = BucketDefinition::from_json(def)
            .map_err(StoreError::from)
            .and_then(|d| s.define_bucket(&format!("b{i}"), d))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidDefinition { .. }),
            "{i}: {err:?}"
        );
    }
    assert!(s.bucket_names().is_empty());
}

#[tokio::test]
async fn definition_round_trips_through_json() {
    let def = json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"},
        "n": {"type": "number", "min": 1.5, "enum": [1.5, 2]}}, "indexes": ["n"], "ttl": "1h", "maxSize": 10, "persistent": false});
    let parsed = BucketDefinition::from_json(def.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), def);
    assert_eq!(parsed.ttl.unwrap().as_ms().unwrap(), 3_600_000);
}

#[tokio::test]
async fn bucket_management() {
    let s = store();
    common::users(&s);
    let again = s.define_bucket(
        "users",
        BucketDefinition::from_json(json!({"key": "id", "schema": {"id": {"type": "string"}}}))
            .unwrap(),
    );
    assert_eq!(
        again.unwrap_err(),
        StoreError::BucketAlreadyExists {
            bucket: "users".into()
        }
    );
    s.bucket("users")
        .insert(o(json!({"id": "1", "name": "A", "age": 1})))
        .unwrap();
    let upd: BucketUpdate = serde_json::from_value(json!({"addFields": {"nick": {"type": "string", "unique": true}}, "addIndexes": ["age"], "ttl": "30s"})).unwrap();
    s.update_bucket("users", upd).unwrap();
    let schema = serde_json::to_value(s.bucket_schema("users").unwrap()).unwrap();
    assert_eq!(schema["indexes"], json!(["role", "age"]));
    assert_eq!(schema["ttl"], "30s");
    assert_eq!(
        schema["schema"]["nick"],
        json!({"type": "string", "unique": true})
    );
    let r = s
        .bucket("users")
        .insert(o(json!({"id": "2", "name": "B", "nick": "b"})))
        .unwrap();
    assert_eq!(
        r["_expiresAt"].as_u64().unwrap(),
        r["_createdAt"].as_u64().unwrap() + 30_000
    );
    assert!(
        s.bucket("users")
            .insert(o(json!({"id": "3", "name": "C", "nick": "b"})))
            .is_err()
    );
    assert_eq!(
        s.bucket("users")
            .where_(&o(json!({"age": 1})))
            .unwrap()
            .len(),
        1
    );
    let e = s
        .update_bucket(
            "users",
            serde_json::from_value(json!({"addIndexes": ["ghost"]})).unwrap(),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument { .. }));
    let e = s
        .update_bucket(
            "users",
            serde_json::from_value(json!({"addFields": {"name": {"type": "string"}}})).unwrap(),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument { .. }));
    s.update_bucket(
        "users",
        serde_json::from_value(json!({"ttl": null})).unwrap(),
    )
    .unwrap();
    assert!(s.bucket_schema("users").unwrap().ttl.is_none());
    let r = s
        .bucket("users")
        .insert(o(json!({"id": "4", "name": "D"})))
        .unwrap();
    assert!(r.get("_expiresAt").is_none());
    s.drop_bucket("users").unwrap();
    assert_eq!(
        s.drop_bucket("users").unwrap_err().code(),
        "BUCKET_NOT_DEFINED"
    );
    assert_eq!(
        s.bucket("users").all().unwrap_err(),
        StoreError::BucketNotDefined {
            bucket: "users".into()
        }
    );
}

#[tokio::test]
async fn stats_shape() {
    let s = store();
    common::users(&s);
    s.bucket("users")
        .insert(o(json!({"id": "1", "name": "A"})))
        .unwrap();
    let v = serde_json::to_value(s.stats()).unwrap();
    assert_eq!(
        v,
        json!({"name": "noex-store", "buckets": {"count": 1, "names": ["users"]},
            "records": {"total": 1, "perBucket": {"users": 1}}, "indexes": {"total": 1, "perBucket": {"users": 1}},
            "queries": {"defined": 0, "activeSubscriptions": 0}, "persistence": {"enabled": false},
            "ttl": {"enabled": true, "checkIntervalMs": 1000}})
    );
}

#[tokio::test]
async fn issue_messages_are_exact() {
    let s = store();
    define(&s, "t", full_schema());
    let err = s
        .bucket("t")
        .insert(o(
            json!({"name": 5, "role": "root", "code": "x1", "age": 1.5e3, "tags": [null, "abcd"]}),
        ))
        .unwrap_err();
    let StoreError::Validation { issues, .. } = err else {
        panic!("validation expected")
    };
    let msgs: Vec<(String, String)> = issues.into_iter().map(|i| (i.field, i.message)).collect();
    let want = [
        ("name", "Expected type \"string\", got number"),
        ("code", "Value must match pattern \"^[A-Z]+$\""),
        ("age", "Maximum value is 150"),
        ("role", "Value must be one of: admin, user"),
        ("tags[1]", "Maximum length is 3"),
    ];
    assert_eq!(
        msgs,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn update_ignores_generated_fields_and_deep_schemas_are_rejected() {
    let s = store();
    define(&s, "t", full_schema());
    let r = s.bucket("t").insert(o(json!({"name": "Ann"}))).unwrap();
    let u = s
        .bucket("t")
        .update(&r["id"], o(json!({"id": "other", "name": "Bo"})))
        .unwrap();
    assert_eq!(u["id"], r["id"]);
    let mut nested = json!({"type": "string"});
    for _ in 0..12 {
        nested = json!({"type": "object", "properties": {"x": nested}});
    }
    let def = BucketDefinition::from_json(
        json!({"key": "id", "schema": {"id": {"type": "string"}, "deep": nested}}),
    )
    .unwrap();
    assert!(matches!(
        s.define_bucket("deep", def),
        Err(StoreError::InvalidDefinition { .. })
    ));
    let mut filter = json!({"a": 1});
    for _ in 0..40 {
        filter = json!({"$or": [filter]});
    }
    let e = s.bucket("t").where_(&o(filter)).unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument { .. }));
}

/// Integer keys are compared exactly: near 2^53 and near the ends of the integer range,
/// distinct keys never share a record.
#[tokio::test]
async fn distinct_big_integer_keys_never_collide() {
    let s = store();
    define(
        &s,
        "k",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "v": {"type": "string"}}}),
    );
    let b = s.bucket("k");
    let keys = [
        json!(9_007_199_254_740_992u64),
        json!(9_007_199_254_740_993u64),
        json!(u64::MAX),
        json!(u64::MAX - 1),
        json!(i64::MIN),
        json!(i64::MIN + 1),
        json!(i64::MAX),
        json!(i64::MAX - 1),
    ];
    for (i, key) in keys.iter().enumerate() {
        b.insert(o(json!({"id": key, "v": format!("r{i}")})))
            .unwrap_or_else(|e| panic!("insert {key}: {e}"));
    }
    assert_eq!(b.count(None).unwrap(), keys.len());
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(b.get(key).unwrap().unwrap()["v"], format!("r{i}"), "{key}");
    }
    // A number is one key whatever its spelling: 2^53 written as a float is 2^53.
    assert!(matches!(
        b.insert(o(json!({"id": 9_007_199_254_740_992.0f64}))),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(
        b.get(&json!(9_007_199_254_740_992.0f64)).unwrap().unwrap()["v"],
        "r0"
    );
    b.delete(&json!(9_007_199_254_740_993u64)).unwrap();
    assert_eq!(
        b.get(&json!(9_007_199_254_740_992u64)).unwrap().unwrap()["v"],
        "r0"
    );
    assert_eq!(b.count(None).unwrap(), keys.len() - 1);
}

/// The autoincrement counter never wraps: at the end of its range an insert fails with a
/// validation error naming the field, and no record is overwritten.
#[tokio::test]
async fn autoincrement_is_checked_at_the_end_of_its_range() {
    let s = store();
    define(
        &s,
        "a",
        json!({"key": "n", "schema": {"n": {"type": "number", "generated": "autoincrement"}, "v": {"type": "string"}}}),
    );
    let b = s.bucket("a");
    let first = b.insert(o(json!({"v": "first"}))).unwrap();
    assert_eq!(first["n"], 1);
    b.insert(o(json!({"n": u64::MAX - 1, "v": "near"})))
        .unwrap();
    let last = b.insert(o(json!({"v": "last"}))).unwrap();
    assert_eq!(last["n"], json!(u64::MAX));
    for _ in 0..2 {
        match b.insert(o(json!({"v": "over"}))) {
            Err(StoreError::Validation { issues, .. }) => {
                assert_eq!(issues[0].field, "n");
                assert!(issues[0].message.contains("exhausted"), "{issues:?}");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    // Nothing was overwritten or lost.
    assert_eq!(b.count(None).unwrap(), 3);
    assert_eq!(b.get(&json!(1)).unwrap().unwrap()["v"], "first");
    assert_eq!(b.get(&json!(u64::MAX)).unwrap().unwrap()["v"], "last");
    // Same inside a transaction.
    let r = s.transaction(|tx| tx.bucket("a")?.insert(o(json!({"v": "tx"}))));
    assert!(matches!(r, Err(StoreError::Validation { .. })), "{r:?}");
    assert_eq!(b.count(None).unwrap(), 3);
}
