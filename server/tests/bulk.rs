//! The bulk operations over a real WebSocket (`store.insertMany`, `store.updateMany`,
//! `store.deleteMany`, `store.upsert`, `store.groupBy`): their result shapes, atomicity
//! (one bad record writes nothing and is named by its index), one push per subscription
//! per bulk write, and the `limits.maxBulkRecords` bound.

mod common;

use common::{Client, local_config, start};
use noex_server::{ServerConfig, ServerHandle};
use serde_json::{Value, json};

/// A server with an `items` bucket (client-given key, a required category, a non-negative
/// quantity, a unique code) and a query over all of it; at most `max_bulk` records per
/// bulk write.
fn config(max_bulk: usize) -> ServerConfig {
    let mut config = local_config();
    config.limits.max_bulk_records = max_bulk;
    config.store = serde_json::from_value(json!({
        "buckets": {
            "items": {
                "key": "id",
                "schema": {
                    "id": {"type": "string", "required": true},
                    "cat": {"type": "string", "required": true},
                    "qty": {"type": "number", "min": 0},
                    "code": {"type": "string", "unique": true}
                }
            },
            "counters": {
                "key": "id",
                "schema": {
                    "id": {"type": "number", "generated": "autoincrement"},
                    "n": {"type": "number"}
                }
            }
        },
        "queries": {
            "all-items": {"bucket": "items"}
        }
    }))
    .expect("store section");
    config
}

async fn server_and_client(max_bulk: usize) -> (ServerHandle, Client) {
    let server = start(config(max_bulk)).await;
    let (client, _) = Client::connect(&server).await;
    (server, client)
}

fn item(id: &str, cat: &str, qty: i64) -> Value {
    json!({"id": id, "cat": cat, "qty": qty})
}

fn ids(records: &Value) -> Vec<String> {
    records
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn insert_many_returns_the_records_in_order_with_their_metadata() {
    let (_server, mut c) = server_and_client(1000).await;
    let records = c
        .ok(
            "store.insertMany",
            json!({"bucket": "items", "data": [item("a", "x", 1), item("b", "y", 2), item("c", "x", 3)]}),
        )
        .await;
    assert_eq!(ids(&records), ["a", "b", "c"]);
    for r in records.as_array().expect("records") {
        assert_eq!(r["_version"], 1, "{r}");
        assert!(r["_createdAt"].as_u64().is_some(), "{r}");
    }
    assert_eq!(records[1]["qty"], 2);
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    assert_eq!(all, records);

    // Generated keys are distinct within one call.
    let counters = c
        .ok(
            "store.insertMany",
            json!({"bucket": "counters", "data": [{"n": 1}, {"n": 2}, {"n": 3}]}),
        )
        .await;
    let keys: Vec<_> = counters
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(keys, [json!(1), json!(2), json!(3)]);

    // An empty list inserts nothing.
    assert_eq!(
        c.ok("store.insertMany", json!({"bucket": "items", "data": []}))
            .await,
        json!([])
    );
}

#[tokio::test]
async fn a_bad_record_writes_nothing_and_is_named_by_its_index() {
    let (_server, mut c) = server_and_client(1000).await;
    c.ok(
        "store.insert",
        json!({"bucket": "items", "data": {"id": "old", "cat": "x", "code": "K"}}),
    )
    .await;
    // Index 3 of 5 breaks the schema (negative quantity).
    let data = json!([
        item("a", "x", 1),
        item("b", "x", 1),
        item("c", "x", 1),
        item("d", "x", -1),
        item("e", "x", 1)
    ]);
    let (code, message, details) = c
        .fail("store.insertMany", json!({"bucket": "items", "data": data}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.starts_with("data[3]: Validation failed"),
        "{message}"
    );
    assert_eq!(details["index"], 3, "{details}");
    assert_eq!(details["issues"][0]["field"], "qty", "{details}");
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    assert_eq!(ids(&all), ["old"], "nothing of the five was written");

    // A duplicate key within the call, and a unique value taken by a stored record.
    let (code, message, details) = c
        .fail(
            "store.insertMany",
            json!({"bucket": "items", "data": [item("a", "x", 1), item("a", "y", 2)]}),
        )
        .await;
    assert_eq!(code, "ALREADY_EXISTS", "{message}");
    assert_eq!(details["index"], 1, "{details}");
    assert_eq!(details["field"], "id", "{details}");
    let (code, _, details) = c
        .fail(
            "store.insertMany",
            json!({"bucket": "items", "data": [item("a", "x", 1), {"id": "b", "cat": "x", "code": "K"}]}),
        )
        .await;
    assert_eq!(code, "ALREADY_EXISTS");
    assert_eq!(details["index"], 1, "{details}");
    assert_eq!(details["field"], "code", "{details}");
    assert_eq!(details["value"], "K", "{details}");

    // A record that is not an object is refused before anything runs.
    let (code, message, _) = c
        .fail(
            "store.insertMany",
            json!({"bucket": "items", "data": [item("a", "x", 1), 7]}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(message, "data[1]: expected object");
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    assert_eq!(ids(&all), ["old"]);
}

#[tokio::test]
async fn one_bulk_write_is_one_push_per_subscription() {
    let (server, mut c) = server_and_client(1000).await;
    let sub = c.ok("store.subscribe", json!({"query": "all-items"})).await;
    assert_eq!(sub["data"], json!([]));
    // 100 records: past the 64 a bulk write runs inline with, so on the blocking pool.
    let data: Vec<Value> = (0..100)
        .map(|i| item(&format!("i{i:02}"), "x", i))
        .collect();
    c.ok("store.insertMany", json!({"bucket": "items", "data": data}))
        .await;
    let push = c.next_push().await;
    assert_eq!(push["data"].as_array().map(Vec::len), Some(100), "{push}");
    server.store().settle().await;
    c.assert_no_push().await;

    // updateMany over 50 records: one push with all of them changed.
    let n = c
        .ok(
            "store.updateMany",
            json!({"bucket": "items", "filter": {"qty": {"$gte": 50}}, "data": {"cat": "big"}}),
        )
        .await;
    assert_eq!(n, 50);
    let push = c.next_push().await;
    let big = push["data"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["cat"] == "big")
        .count();
    assert_eq!(big, 50, "{push}");
    server.store().settle().await;
    c.assert_no_push().await;

    // deleteMany: one push without them.
    let n = c
        .ok(
            "store.deleteMany",
            json!({"bucket": "items", "filter": {"cat": "big"}}),
        )
        .await;
    assert_eq!(n, 50);
    let push = c.next_push().await;
    assert_eq!(push["data"].as_array().map(Vec::len), Some(50), "{push}");
    server.store().settle().await;
    c.assert_no_push().await;

    // A failed bulk write pushes nothing.
    c.fail(
        "store.insertMany",
        json!({"bucket": "items", "data": [item("n1", "x", 1), item("n2", "x", -5)]}),
    )
    .await;
    server.store().settle().await;
    c.assert_no_push().await;
}

#[tokio::test]
async fn update_many_and_delete_many_apply_to_every_match_or_none() {
    let (_server, mut c) = server_and_client(1000).await;
    c.ok(
        "store.insertMany",
        json!({"bucket": "items", "data": [item("a", "x", 1), item("b", "x", 2), item("c", "y", 3)]}),
    )
    .await;
    let n = c
        .ok(
            "store.updateMany",
            json!({"bucket": "items", "filter": {"cat": "x"}, "data": {"qty": 10}}),
        )
        .await;
    assert_eq!(n, 2);
    let x = c
        .ok(
            "store.where",
            json!({"bucket": "items", "filter": {"cat": "x"}}),
        )
        .await;
    for r in x.as_array().expect("records") {
        assert_eq!(r["qty"], 10, "{r}");
        assert_eq!(r["_version"], 2, "{r}");
    }
    // No match: 0, nothing changes.
    assert_eq!(
        c.ok(
            "store.updateMany",
            json!({"bucket": "items", "filter": {"cat": "none"}, "data": {"qty": 1}}),
        )
        .await,
        0
    );

    // An update invalid for the matches fails on the first, naming it; nothing changed.
    let (code, message, details) = c
        .fail(
            "store.updateMany",
            json!({"bucket": "items", "filter": {}, "data": {"qty": -1}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.starts_with("record 0 (key \"a\")"), "{message}");
    assert_eq!(details["index"], 0, "{details}");
    assert_eq!(details["key"], "a", "{details}");
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    let qty: Vec<_> = all
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["qty"].clone())
        .collect();
    assert_eq!(qty, [json!(10), json!(10), json!(3)]);

    let n = c
        .ok(
            "store.deleteMany",
            json!({"bucket": "items", "filter": {"qty": 10}}),
        )
        .await;
    assert_eq!(n, 2);
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    assert_eq!(ids(&all), ["c"]);
    // `{}` matches every record.
    assert_eq!(
        c.ok("store.deleteMany", json!({"bucket": "items", "filter": {}}))
            .await,
        1
    );
    // A filter is required.
    let (code, message, _) = c.fail("store.deleteMany", json!({"bucket": "items"})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(message, "Missing or invalid \"filter\": expected object");
}

#[tokio::test]
async fn upsert_inserts_then_updates_by_key() {
    let (_server, mut c) = server_and_client(1000).await;
    let first = c
        .ok(
            "store.upsert",
            json!({"bucket": "items", "data": item("u", "x", 1)}),
        )
        .await;
    assert_eq!(first["_version"], 1, "{first}");
    assert_eq!(first["qty"], 1);
    let second = c
        .ok(
            "store.upsert",
            json!({"bucket": "items", "data": {"id": "u", "qty": 5}}),
        )
        .await;
    assert_eq!(second["_version"], 2, "{second}");
    assert_eq!(second["qty"], 5);
    assert_eq!(second["cat"], "x", "fields not sent are kept");
    assert_eq!(second["_createdAt"], first["_createdAt"]);
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    assert_eq!(ids(&all), ["u"]);

    // An upsert that does not validate changes nothing.
    let (code, _, _) = c
        .fail(
            "store.upsert",
            json!({"bucket": "items", "data": {"id": "u", "qty": -1}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    let got = c
        .ok("store.get", json!({"bucket": "items", "key": "u"}))
        .await;
    assert_eq!(got["qty"], 5);

    // Without a key on a bucket that generates it: an insert each time.
    let a = c
        .ok(
            "store.upsert",
            json!({"bucket": "counters", "data": {"n": 1}}),
        )
        .await;
    let b = c
        .ok(
            "store.upsert",
            json!({"bucket": "counters", "data": {"n": 1}}),
        )
        .await;
    assert_ne!(a["id"], b["id"]);
}

#[tokio::test]
async fn group_by_answers_one_aggregate_per_group() {
    let (_server, mut c) = server_and_client(1000).await;
    c.ok(
        "store.insertMany",
        json!({"bucket": "items", "data": [
            item("a", "x", 1), item("b", "y", 2), item("c", "x", 3), item("d", "y", 4), item("e", "z", 5)
        ]}),
    )
    .await;
    let sums = c
        .ok(
            "store.groupBy",
            json!({"bucket": "items", "field": "cat", "aggregate": {"function": "sum", "field": "qty"}}),
        )
        .await;
    assert_eq!(
        sums,
        json!([
            {"key": {"cat": "x"}, "value": 4},
            {"key": {"cat": "y"}, "value": 6},
            {"key": {"cat": "z"}, "value": 5}
        ])
    );
    let counts = c
        .ok(
            "store.groupBy",
            json!({"bucket": "items", "field": ["cat"], "aggregate": {"function": "count"},
                   "filter": {"qty": {"$gt": 1}}}),
        )
        .await;
    assert_eq!(
        counts,
        json!([
            {"key": {"cat": "y"}, "value": 2},
            {"key": {"cat": "x"}, "value": 1},
            {"key": {"cat": "z"}, "value": 1}
        ])
    );
    // Every function but count needs a field.
    let (code, message, _) = c
        .fail(
            "store.groupBy",
            json!({"bucket": "items", "field": "cat", "aggregate": {"function": "avg"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("aggregate needs a field"), "{message}");
    let (code, message, _) = c
        .fail(
            "store.groupBy",
            json!({"bucket": "items", "field": "cat", "aggregate": {"function": "median", "field": "qty"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "Missing or invalid \"aggregate.function\": expected one of count, sum, avg, min, max"
    );
}

#[tokio::test]
async fn bulk_writes_touch_at_most_max_bulk_records() {
    let (_server, mut c) = server_and_client(3).await;
    let four: Vec<Value> = (0..4).map(|i| item(&format!("i{i}"), "x", i)).collect();
    let (code, message, details) = c
        .fail("store.insertMany", json!({"bucket": "items", "data": four}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "store.insertMany may write at most 3 records (got 4)"
    );
    assert_eq!(details, json!({"limit": 3}));
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    assert_eq!(all, json!([]));

    let three: Vec<Value> = (0..3).map(|i| item(&format!("i{i}"), "x", i)).collect();
    c.ok(
        "store.insertMany",
        json!({"bucket": "items", "data": three}),
    )
    .await;
    c.ok(
        "store.insert",
        json!({"bucket": "items", "data": item("i3", "x", 3)}),
    )
    .await;
    for (op, fields) in [
        (
            "store.updateMany",
            json!({"bucket": "items", "filter": {}, "data": {"qty": 9}}),
        ),
        ("store.deleteMany", json!({"bucket": "items", "filter": {}})),
    ] {
        let (code, message, details) = c.fail(op, fields).await;
        assert_eq!(code, "VALIDATION_ERROR", "{op}");
        assert_eq!(
            message,
            format!("{op} may write at most 3 records (more match the filter); narrow the filter")
        );
        assert_eq!(details, json!({"limit": 3}));
    }
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    assert_eq!(ids(&all), ["i0", "i1", "i2", "i3"]);
    assert!(
        all.as_array()
            .expect("records")
            .iter()
            .all(|r| r["qty"] != 9),
        "nothing updated: {all}"
    );
    // Three matches are within the bound.
    assert_eq!(
        c.ok(
            "store.deleteMany",
            json!({"bucket": "items", "filter": {"qty": {"$lt": 3}}}),
        )
        .await,
        3
    );
}

#[tokio::test]
async fn group_by_is_bounded_by_the_result_limit() {
    let mut config = config(1000);
    config.limits.max_result_bytes = 300;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let data: Vec<Value> = (0..20).map(|i| item(&format!("i{i:02}"), "x", i)).collect();
    c.ok("store.insertMany", json!({"bucket": "items", "data": data}))
        .await;
    // Twenty groups of about 30 bytes each pass 300 bytes; one group does not.
    let (code, message, details) = c
        .fail(
            "store.groupBy",
            json!({"bucket": "items", "field": "id", "aggregate": {"function": "count"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "Result exceeds 300 bytes; read it in pages with store.paginate"
    );
    assert_eq!(details, json!({"limit": 300}));
    assert_eq!(
        c.ok(
            "store.groupBy",
            json!({"bucket": "items", "field": "cat", "aggregate": {"function": "max", "field": "qty"}}),
        )
        .await,
        json!([{"key": {"cat": "x"}, "value": 19}])
    );
}
