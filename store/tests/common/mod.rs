//! Shared helpers for the integration tests.
#![allow(dead_code)]

use noex_store::{BucketDefinition, Record, Store, StoreConfig};
use serde_json::{Map, Value};

/// A JSON object literal as a map.
pub fn o(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A started store with default config.
pub fn store() -> Store {
    Store::start(StoreConfig::default()).expect("runtime")
}

/// Defines a bucket from JSON.
pub fn define(store: &Store, name: &str, def: Value) {
    store
        .define_bucket(name, BucketDefinition::from_json(def).expect("definition"))
        .expect("define");
}

/// Strips metadata fields for comparisons.
pub fn plain(r: &Record) -> Value {
    Value::Object(
        r.iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// A `users` bucket: id (string key), name (required), age (number), role (indexed).
pub fn users(store: &Store) {
    define(
        store,
        "users",
        serde_json::json!({
            "key": "id",
            "schema": {
                "id": {"type": "string"},
                "name": {"type": "string", "required": true},
                "age": {"type": "number"},
                "role": {"type": "string"}
            },
            "indexes": ["role"]
        }),
    );
}
