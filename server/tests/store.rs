//! `store.*` over a real WebSocket: every operation with its result shape and documented
//! errors, the admin operations, and the config file's `store` section.

mod common;

use common::{Client, local_config, start};
use noex_server::{Server, ServerConfig, ServerHandle, StartError};
use serde_json::{Value, json};

/// A server with a `users` bucket (generated uuid key, validation, unique email, index)
/// and a `products` bucket with a client-given key.
fn config() -> ServerConfig {
    let mut config = local_config();
    config.store = serde_json::from_value(json!({
        "buckets": {
            "users": {
                "key": "id",
                "schema": {
                    "id": {"type": "string", "generated": "uuid"},
                    "name": {"type": "string", "required": true, "minLength": 1},
                    "email": {"type": "string", "format": "email", "unique": true},
                    "age": {"type": "number", "min": 0},
                    "role": {"type": "string", "enum": ["user", "admin"], "default": "user"}
                },
                "indexes": ["role"]
            },
            "products": {
                "key": "sku",
                "schema": {
                    "sku": {"type": "string", "required": true},
                    "price": {"type": "number"}
                }
            }
        },
        "queries": {
            "admins": {"bucket": "users", "filter": {"role": "admin"}}
        }
    }))
    .expect("store section");
    config
}

async fn server_and_client() -> (ServerHandle, Client) {
    let server = start(config()).await;
    let (client, _) = Client::connect(&server).await;
    (server, client)
}

fn without_times(mut record: Value) -> Value {
    if let Some(map) = record.as_object_mut() {
        map.remove("_createdAt");
        map.remove("_updatedAt");
    }
    record
}

#[tokio::test]
async fn insert_get_update_delete() {
    let (_server, mut c) = server_and_client().await;
    let alice = c
        .ok(
            "store.insert",
            json!({"bucket": "users", "data": {"name": "Alice", "email": "a@x.io", "age": 30}}),
        )
        .await;
    let id = alice["id"].as_str().expect("generated id").to_owned();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    assert_eq!(alice["role"], "user", "default applied");
    assert_eq!(alice["_version"], 1);
    let created = alice["_createdAt"].as_u64().expect("_createdAt");
    assert_eq!(alice["_updatedAt"].as_u64(), Some(created));

    let got = c
        .ok("store.get", json!({"bucket": "users", "key": id}))
        .await;
    assert_eq!(got, alice);

    let updated = c
        .ok(
            "store.update",
            json!({"bucket": "users", "key": id, "data": {"age": 31, "id": "forged", "_version": 99}}),
        )
        .await;
    assert_eq!(updated["age"], 31);
    assert_eq!(updated["name"], "Alice", "merged, not replaced");
    assert_eq!(updated["id"], json!(id), "the key cannot be changed");
    assert_eq!(updated["_version"], 2);
    assert_eq!(updated["_createdAt"].as_u64(), Some(created));

    assert_eq!(
        c.ok("store.delete", json!({"bucket": "users", "key": id}))
            .await,
        json!({"deleted": true})
    );
    assert_eq!(
        c.ok("store.delete", json!({"bucket": "users", "key": id}))
            .await,
        json!({"deleted": true}),
        "deleting a missing key also answers deleted: true"
    );
    assert_eq!(
        c.ok("store.get", json!({"bucket": "users", "key": id}))
            .await,
        Value::Null
    );
    let (code, message, _) = c
        .fail(
            "store.update",
            json!({"bucket": "users", "key": id, "data": {"age": 1}}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    assert!(message.contains(&id), "{message}");
}

async fn seed_products(c: &mut Client) {
    for (sku, price) in [("a", 10), ("b", 25), ("c", 5), ("d", 40), ("e", 20)] {
        c.ok(
            "store.insert",
            json!({"bucket": "products", "data": {"sku": sku, "price": price}}),
        )
        .await;
    }
    c.ok(
        "store.insert",
        json!({"bucket": "products", "data": {"sku": "free"}}),
    )
    .await;
}

fn skus(records: &Value) -> Vec<&str> {
    records
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["sku"].as_str().expect("sku"))
        .collect()
}

#[tokio::test]
async fn reads_and_aggregates() {
    let (_server, mut c) = server_and_client().await;
    seed_products(&mut c).await;
    let p = |fields: Value| {
        let mut base = json!({"bucket": "products"});
        if let (Some(b), Value::Object(f)) = (base.as_object_mut(), fields) {
            b.extend(f);
        }
        base
    };

    let all = c.ok("store.all", p(json!({}))).await;
    assert_eq!(skus(&all), ["a", "b", "c", "d", "e", "free"]);
    let cheap = c
        .ok("store.where", p(json!({"filter": {"price": {"$lt": 20}}})))
        .await;
    assert_eq!(skus(&cheap), ["a", "c"]);
    let either = c
        .ok(
            "store.where",
            p(json!({"filter": {"$or": [{"sku": "a"}, {"price": {"$gte": 40}}]}})),
        )
        .await;
    assert_eq!(skus(&either), ["a", "d"]);
    assert_eq!(
        c.ok(
            "store.findOne",
            p(json!({"filter": {"price": {"$gt": 20}}}))
        )
        .await["sku"],
        "b"
    );
    assert_eq!(
        c.ok("store.findOne", p(json!({"filter": {"price": 1000}})))
            .await,
        Value::Null
    );
    assert_eq!(c.ok("store.count", p(json!({}))).await, 6);
    assert_eq!(
        c.ok(
            "store.count",
            p(json!({"filter": {"price": {"$exists": true}}}))
        )
        .await,
        5
    );
    assert_eq!(
        skus(&c.ok("store.first", p(json!({"n": 2}))).await),
        ["a", "b"]
    );
    assert_eq!(
        skus(&c.ok("store.last", p(json!({"n": 2}))).await),
        ["e", "free"]
    );

    let page1 = c.ok("store.paginate", p(json!({"limit": 4}))).await;
    assert_eq!(skus(&page1["records"]), ["a", "b", "c", "d"]);
    assert_eq!(page1["hasMore"], true);
    assert_eq!(page1["nextCursor"], "d");
    let page2 = c
        .ok("store.paginate", p(json!({"limit": 4, "after": "d"})))
        .await;
    assert_eq!(skus(&page2["records"]), ["e", "free"]);
    assert_eq!(page2["hasMore"], false);
    assert!(page2.get("nextCursor").is_none(), "{page2}");

    assert_eq!(c.ok("store.sum", p(json!({"field": "price"}))).await, 100.0);
    assert_eq!(c.ok("store.avg", p(json!({"field": "price"}))).await, 20.0);
    assert_eq!(c.ok("store.min", p(json!({"field": "price"}))).await, 5.0);
    assert_eq!(c.ok("store.max", p(json!({"field": "price"}))).await, 40.0);
    let none = json!({"field": "price", "filter": {"sku": "zzz"}});
    assert_eq!(c.ok("store.sum", p(none.clone())).await, 0.0);
    assert_eq!(c.ok("store.avg", p(none.clone())).await, 0.0);
    assert_eq!(c.ok("store.min", p(none.clone())).await, Value::Null);
    assert_eq!(c.ok("store.max", p(none)).await, Value::Null);
    assert_eq!(
        c.ok(
            "store.sum",
            p(json!({"field": "price", "filter": {"price": {"$between": [10, 25]}}}))
        )
        .await,
        55.0
    );

    assert_eq!(
        c.ok("store.clear", p(json!({}))).await,
        json!({"cleared": true})
    );
    assert_eq!(c.ok("store.count", p(json!({}))).await, 0);
}

#[tokio::test]
async fn buckets_and_stats() {
    let (_server, mut c) = server_and_client().await;
    seed_products(&mut c).await;
    assert_eq!(
        c.ok("store.buckets", json!({})).await,
        json!({"count": 2, "names": ["products", "users"]})
    );
    let stats = c.ok("store.stats", json!({})).await;
    assert_eq!(stats["buckets"]["count"], 2);
    assert_eq!(stats["records"]["total"], 6);
    assert_eq!(stats["records"]["perBucket"]["products"], 6);
    assert_eq!(stats["records"]["perBucket"]["users"], 0);
    assert_eq!(stats["queries"]["defined"], 1);
    assert_eq!(stats["queries"]["activeSubscriptions"], 0);
    assert!(stats["indexes"]["total"].as_u64().expect("indexes") >= 1);
    assert_eq!(stats["persistence"]["enabled"], false);
}

#[tokio::test]
async fn documented_store_errors() {
    let (_server, mut c) = server_and_client().await;

    for (op, fields) in [
        ("store.insert", json!({"bucket": "nope", "data": {}})),
        ("store.get", json!({"bucket": "nope", "key": 1})),
        ("store.all", json!({"bucket": "nope"})),
        ("store.count", json!({"bucket": "nope"})),
        ("store.sum", json!({"bucket": "nope", "field": "x"})),
        ("store.clear", json!({"bucket": "nope"})),
    ] {
        let (code, message, _) = c.fail(op, fields).await;
        assert_eq!(code, "BUCKET_NOT_DEFINED", "{op}");
        assert_eq!(message, "Bucket \"nope\" is not defined");
    }

    let (code, message, details) = c
        .fail(
            "store.insert",
            json!({"bucket": "users", "data": {"email": "not-an-email", "age": -1, "role": "boss"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.starts_with("Validation failed for bucket \"users\": "),
        "{message}"
    );
    let issues = details.as_array().expect("issue list in details");
    let fields: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| {
            (
                i["field"].as_str().unwrap_or_default(),
                i["code"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for expected in [
        ("name", "required"),
        ("email", "format"),
        ("age", "min"),
        ("role", "enum"),
    ] {
        assert!(fields.contains(&expected), "{expected:?} in {fields:?}");
    }

    c.ok(
        "store.insert",
        json!({"bucket": "users", "data": {"name": "A", "email": "a@x.io"}}),
    )
    .await;
    let (code, _, details) = c
        .fail(
            "store.insert",
            json!({"bucket": "users", "data": {"name": "B", "email": "a@x.io"}}),
        )
        .await;
    assert_eq!(code, "ALREADY_EXISTS");
    assert_eq!(
        details,
        json!({"bucket": "users", "field": "email", "value": "a@x.io"})
    );
    c.ok(
        "store.insert",
        json!({"bucket": "products", "data": {"sku": "k"}}),
    )
    .await;
    let (code, _, details) = c
        .fail(
            "store.insert",
            json!({"bucket": "products", "data": {"sku": "k"}}),
        )
        .await;
    assert_eq!(code, "ALREADY_EXISTS", "duplicate key");
    assert_eq!(details["value"], "k");

    // Field validation happens before the store is touched, with the spec's messages.
    let cases = [
        (
            "store.insert",
            json!({"data": {}}),
            "Missing or invalid \"bucket\": expected non-empty string",
        ),
        (
            "store.get",
            json!({"bucket": "users"}),
            "Missing \"key\": expected non-null value",
        ),
        (
            "store.first",
            json!({"bucket": "users", "n": 0}),
            "Missing or invalid \"n\": expected positive integer",
        ),
        (
            "store.paginate",
            json!({"bucket": "users", "limit": 1.5}),
            "Missing or invalid \"limit\": expected positive integer",
        ),
        (
            "store.insert",
            json!({"bucket": "users", "data": [1]}),
            "Missing or invalid \"data\": expected object",
        ),
    ];
    for (op, fields, expected) in cases {
        let (code, message, _) = c.fail(op, fields).await;
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("VALIDATION_ERROR", expected),
            "{op}"
        );
    }

    let (code, message, _) = c
        .fail(
            "store.where",
            json!({"bucket": "users", "filter": {"age": {"$near": 3}}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("$near"), "{message}");

    let (code, _, _) = c.fail("store.explode", json!({})).await;
    assert_eq!(code, "UNKNOWN_OPERATION");
}

#[tokio::test]
async fn bucket_administration() {
    let (_server, mut c) = server_and_client().await;
    let config = json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}, "title": {"type": "string"}}});
    assert_eq!(
        c.ok(
            "store.defineBucket",
            json!({"name": "notes", "config": config})
        )
        .await,
        json!({"name": "notes", "created": true})
    );
    let (code, _, _) = c
        .fail(
            "store.defineBucket",
            json!({"name": "notes", "config": config}),
        )
        .await;
    assert_eq!(code, "ALREADY_EXISTS");
    let (code, _, _) = c
        .fail(
            "store.defineBucket",
            json!({"name": "bad", "config": {"schema": {}}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR", "a definition without a key");

    let first = c
        .ok(
            "store.insert",
            json!({"bucket": "notes", "data": {"title": "x"}}),
        )
        .await;
    assert_eq!(first["id"], 1);

    assert_eq!(
        c.ok(
            "store.updateBucket",
            json!({"name": "notes", "updates": {
                "addFields": {"tag": {"type": "string", "default": "misc"}},
                "addIndexes": ["tag"]
            }})
        )
        .await,
        json!({"name": "notes", "updated": true})
    );
    let second = c
        .ok(
            "store.insert",
            json!({"bucket": "notes", "data": {"title": "y"}}),
        )
        .await;
    assert_eq!(
        (second["id"].clone(), second["tag"].clone()),
        (json!(2), json!("misc"))
    );
    let (code, _, _) = c
        .fail(
            "store.updateBucket",
            json!({"name": "notes", "updates": {"addIndexes": ["missing"]}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    let (code, _, _) = c
        .fail(
            "store.updateBucket",
            json!({"name": "notes", "updates": {"rename": true}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR", "unknown update field");

    let schema = c
        .ok("store.getBucketSchema", json!({"name": "notes"}))
        .await;
    assert_eq!(schema["name"], "notes");
    assert_eq!(schema["config"]["key"], "id");
    assert_eq!(schema["config"]["schema"]["tag"]["default"], "misc");
    assert_eq!(schema["config"]["indexes"], json!(["tag"]));

    assert_eq!(
        c.ok("store.dropBucket", json!({"name": "notes"})).await,
        json!({"name": "notes", "dropped": true})
    );
    for (op, fields) in [
        ("store.dropBucket", json!({"name": "notes"})),
        ("store.getBucketSchema", json!({"name": "notes"})),
        (
            "store.updateBucket",
            json!({"name": "notes", "updates": {}}),
        ),
        ("store.all", json!({"bucket": "notes"})),
    ] {
        assert_eq!(c.fail(op, fields).await.0, "BUCKET_NOT_DEFINED", "{op}");
    }
}

#[tokio::test]
async fn query_administration() {
    let (_server, mut c) = server_and_client().await;
    let config = json!({"bucket": "products", "sort": {"price": "desc"}, "limit": 2});
    assert_eq!(
        c.ok(
            "store.defineQuery",
            json!({"name": "top-2", "config": config})
        )
        .await,
        json!({"name": "top-2", "defined": true})
    );
    let (code, _, _) = c
        .fail(
            "store.defineQuery",
            json!({"name": "top-2", "config": config}),
        )
        .await;
    assert_eq!(code, "ALREADY_EXISTS");
    let (code, _, _) = c
        .fail(
            "store.defineQuery",
            json!({"name": "bad", "config": {"bucket": "products", "sort": {"price": "up"}}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");

    seed_products(&mut c).await;
    let sub = c.ok("store.subscribe", json!({"query": "top-2"})).await;
    assert_eq!(skus(&sub["data"]), ["d", "b"]);

    let list = c.ok("store.listQueries", json!({})).await;
    let queries = list["queries"].as_array().expect("queries");
    let top = queries
        .iter()
        .find(|q| q["name"] == "top-2")
        .expect("listed");
    assert_eq!(top["type"], "declarative");
    assert_eq!(top["config"], config);
    assert_eq!(top["activeSubscriptions"], 1);
    assert!(queries.iter().any(|q| q["name"] == "admins"));

    assert_eq!(
        c.ok("store.undefineQuery", json!({"name": "top-2"})).await,
        json!({"name": "top-2", "undefined": true})
    );
    // Its subscription ends, with an error frame naming it.
    let ended = c.recv().await;
    assert_eq!(
        (&ended["type"], &ended["id"], &ended["code"]),
        (&json!("error"), &json!(0), &json!("QUERY_NOT_DEFINED")),
        "{ended}"
    );
    assert_eq!(ended["details"]["subscriptionId"], sub["subscriptionId"]);
    let (code, message, _) = c
        .fail("store.undefineQuery", json!({"name": "top-2"}))
        .await;
    assert_eq!(code, "QUERY_NOT_DEFINED");
    assert_eq!(message, "Query \"top-2\" is not defined");
    let (code, _, _) = c.fail("store.subscribe", json!({"query": "top-2"})).await;
    assert_eq!(code, "QUERY_NOT_DEFINED");
}

#[tokio::test]
async fn the_config_store_section_is_applied_and_checked() {
    let server = start(config()).await;
    assert_eq!(server.store().bucket_names(), ["products", "users"]);
    assert_eq!(server.store().list_queries().len(), 1);

    let mut bad = config();
    bad.store = serde_json::from_value(json!({
        "buckets": {"broken": {"key": "id", "schema": {"id": {"type": "strin"}}}}
    }))
    .expect("parses: field types are checked by the store");
    match Server::start(bad).await {
        Err(err @ StartError::Store { .. }) => {
            assert!(err.to_string().contains("bucket \"broken\""), "{err}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a broken bucket must stop start-up"),
    }

    let mut bad = config();
    bad.store.queries.insert(
        "orphan".into(),
        serde_json::from_value(json!({"bucket": "products", "sort": {"price": "sideways"}}))
            .expect("query"),
    );
    let err = Server::start(bad).await.err().expect("start fails");
    assert!(err.to_string().contains("query \"orphan\""), "{err}");
}

#[tokio::test]
async fn records_keep_their_shape_through_the_wire() {
    let (_server, mut c) = server_and_client().await;
    let inserted = c
        .ok(
            "store.insert",
            json!({"bucket": "products", "data": {"sku": "x", "price": 1.5}}),
        )
        .await;
    assert_eq!(
        without_times(inserted),
        json!({"sku": "x", "price": 1.5, "_version": 1})
    );
}
