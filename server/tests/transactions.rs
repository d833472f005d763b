//! `store.transaction` over a real WebSocket: all seven operations, read-your-own-writes,
//! all-or-nothing rollback (nothing visible, nothing pushed), one push per committed
//! transaction, and version conflicts between concurrent clients.

mod common;

use common::{Client, local_config, start};
use noex_server::ServerConfig;
use serde_json::{Value, json};

fn config() -> ServerConfig {
    let mut config = local_config();
    config.store = serde_json::from_value(json!({
        "buckets": {
            "accounts": {
                "key": "id",
                "schema": {
                    "id": {"type": "string", "required": true},
                    "balance": {"type": "number", "min": 0}
                }
            },
            "ledger": {
                "key": "n",
                "schema": {
                    "n": {"type": "number", "generated": "autoincrement"},
                    "note": {"type": "string"}
                }
            }
        },
        "queries": {
            "ledger-size": {"bucket": "ledger", "aggregate": {"function": "count"}},
            "accounts": {"bucket": "accounts"}
        }
    }))
    .expect("store section");
    config
}

#[tokio::test]
async fn every_operation_kind_with_read_your_own_writes() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.insert",
        json!({"bucket": "accounts", "data": {"id": "old", "balance": 5}}),
    )
    .await;
    let data = c
        .ok(
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "accounts", "data": {"id": "a", "balance": 100}},
                {"op": "get", "bucket": "accounts", "key": "a"},
                {"op": "update", "bucket": "accounts", "key": "a", "data": {"balance": 70}},
                {"op": "where", "bucket": "accounts", "filter": {"balance": {"$gte": 70}}},
                {"op": "findOne", "bucket": "accounts", "filter": {"id": "a"}},
                {"op": "count", "bucket": "accounts"},
                {"op": "delete", "bucket": "accounts", "key": "old"},
                {"op": "count", "bucket": "accounts", "filter": {"balance": {"$lt": 10}}},
                {"op": "insert", "bucket": "ledger", "data": {"note": "opened a"}}
            ]}),
        )
        .await;
    let results = data["results"].as_array().expect("results");
    assert_eq!(results.len(), 9);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "{r}");
    }
    let d = |i: usize| results[i]["data"].clone();
    assert_eq!(d(0)["balance"], 100);
    assert_eq!(d(1)["balance"], 100, "get sees the insert before it");
    assert_eq!(d(2)["balance"], 70);
    assert_eq!(d(2)["_version"], 2);
    assert_eq!(d(3).as_array().map(Vec::len), Some(1));
    assert_eq!(d(4)["balance"], 70);
    assert_eq!(d(5), 2);
    assert_eq!(d(6), json!({"deleted": true}));
    assert_eq!(d(7), 0, "the deleted record is gone for later reads");
    assert_eq!(d(8)["n"], 1);

    // Committed: everyone sees the end state.
    let all = c.ok("store.all", json!({"bucket": "accounts"})).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["balance"], 70);
}

#[tokio::test]
async fn a_failing_operation_rolls_back_everything_and_pushes_nothing() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.insert",
        json!({"bucket": "accounts", "data": {"id": "a", "balance": 10}}),
    )
    .await;
    c.ok("store.subscribe", json!({"query": "accounts"})).await;
    c.ok("store.subscribe", json!({"query": "ledger-size"}))
        .await;

    let failures = [
        (
            json!({"op": "update", "bucket": "accounts", "key": "ghost", "data": {"balance": 1}}),
            "NOT_FOUND",
        ),
        (
            json!({"op": "insert", "bucket": "nowhere", "data": {}}),
            "BUCKET_NOT_DEFINED",
        ),
        (
            json!({"op": "update", "bucket": "accounts", "key": "a", "data": {"balance": -5}}),
            "VALIDATION_ERROR",
        ),
        (
            json!({"op": "insert", "bucket": "accounts", "data": {"id": "a"}}),
            "ALREADY_EXISTS",
        ),
    ];
    for (failing, code) in failures {
        let (got, _, _) = c
            .fail(
                "store.transaction",
                json!({"operations": [
                    {"op": "insert", "bucket": "ledger", "data": {"note": "x"}},
                    {"op": "update", "bucket": "accounts", "key": "a", "data": {"balance": 0}},
                    failing
                ]}),
            )
            .await;
        assert_eq!(got, code);
    }
    server.store().settle().await;
    c.assert_no_push().await;
    assert_eq!(c.ok("store.count", json!({"bucket": "ledger"})).await, 0);
    let a = c
        .ok("store.get", json!({"bucket": "accounts", "key": "a"}))
        .await;
    assert_eq!(
        (a["balance"].clone(), a["_version"].clone()),
        (json!(10), json!(1))
    );

    let (code, message, _) = c.fail("store.transaction", json!({"operations": []})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("operations"), "{message}");
    let (code, message, _) = c
        .fail(
            "store.transaction",
            json!({"operations": [{"op": "explode", "bucket": "ledger"}]}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.starts_with("operations[0]"), "{message}");
}

#[tokio::test]
async fn a_committed_transaction_pushes_once_per_subscription() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let (mut watcher, _) = Client::connect(&server).await;
    let size = watcher
        .ok("store.subscribe", json!({"query": "ledger-size"}))
        .await;
    let accounts = watcher
        .ok("store.subscribe", json!({"query": "accounts"}))
        .await;
    c.ok(
        "store.transaction",
        json!({"operations": [
            {"op": "insert", "bucket": "ledger", "data": {"note": "1"}},
            {"op": "insert", "bucket": "ledger", "data": {"note": "2"}},
            {"op": "insert", "bucket": "ledger", "data": {"note": "3"}},
            {"op": "insert", "bucket": "accounts", "data": {"id": "x", "balance": 1}},
            {"op": "insert", "bucket": "accounts", "data": {"id": "y", "balance": 2}}
        ]}),
    )
    .await;
    let mut pushes = [watcher.next_push().await, watcher.next_push().await];
    pushes.sort_by_key(|p| p["subscriptionId"].as_str().map(str::to_owned));
    let by_id = |id: &Value| {
        pushes
            .iter()
            .find(|p| &p["subscriptionId"] == id)
            .map(|p| p["data"].clone())
            .expect("a push for the subscription")
    };
    assert_eq!(by_id(&size["subscriptionId"]), 3, "never 1 or 2");
    assert_eq!(
        by_id(&accounts["subscriptionId"]).as_array().map(Vec::len),
        Some(2)
    );
    server.store().settle().await;
    watcher.assert_no_push().await;
}

/// Two clients run read-modify-write transactions on the same record as fast as they can:
/// each either commits or fails with `CONFLICT` naming the record, and the record's
/// version counts exactly the commits (no lost update, no half transaction).
///
/// Whether any conflict happens depends on scheduling: a wire transaction runs all of its
/// operations and its commit in one synchronous call, so no client can deterministically
/// write between another's read and commit. The conflict count is only reported; the
/// conflict path itself is pinned down in the store's own tests
/// (`store/tests/transactions.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_conflict_instead_of_losing_updates() {
    let server = start(config()).await;
    let (mut setup, _) = Client::connect(&server).await;
    setup
        .ok(
            "store.insert",
            json!({"bucket": "accounts", "data": {"id": "shared", "balance": 0}}),
        )
        .await;
    for i in 0..200 {
        setup
            .ok(
                "store.insert",
                json!({"bucket": "ledger", "data": {"note": format!("seed {i}")}}),
            )
            .await;
    }
    const ROUNDS: u64 = 200;
    let worker = |name: &'static str| {
        let addr = server.local_addr();
        tokio::spawn(async move {
            let (mut c, _) = Client::connect_url(&format!("ws://{addr}/")).await;
            for i in 0..ROUNDS {
                c.send(json!({"id": i, "type": "store.transaction", "operations": [
                    {"op": "get", "bucket": "accounts", "key": "shared"},
                    // A slow read widens the window in which the other writer commits.
                    {"op": "where", "bucket": "ledger", "filter": {"note": {"$contains": "seed"}}},
                    {"op": "update", "bucket": "accounts", "key": "shared", "data": {"balance": i}},
                    {"op": "insert", "bucket": "ledger", "data": {"note": name}}
                ]}))
                .await;
            }
            let (mut committed, mut conflicts) = (0u64, 0u64);
            for _ in 0..ROUNDS {
                let answer = c.recv().await;
                match answer["type"].as_str() {
                    Some("result") => committed += 1,
                    _ => {
                        assert_eq!(answer["code"], "CONFLICT", "{answer}");
                        assert_eq!(
                            answer["details"],
                            json!({"bucket": "accounts", "key": "shared"})
                        );
                        conflicts += 1;
                    }
                }
            }
            (committed, conflicts)
        })
    };
    let (a, b) = (worker("a"), worker("b"));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    let committed = a.0 + b.0;
    let shared = setup
        .ok("store.get", json!({"bucket": "accounts", "key": "shared"}))
        .await;
    assert_eq!(shared["_version"], 1 + committed);
    assert_eq!(
        setup
            .ok(
                "store.count",
                json!({"bucket": "ledger", "filter": {"note": {"$in": ["a", "b"]}}})
            )
            .await,
        committed,
        "every committed transaction left its ledger line, no failed one did"
    );
    let conflicts = a.1 + b.1;
    eprintln!("committed {committed}, conflicts {conflicts}");
    assert!(
        committed > 0,
        "the first transaction to commit cannot conflict"
    );
}

/// Beyond the original server: the bulk operations inside a transaction, which the
/// original's newest client declares (`insertMany`, `updateMany`, `upsert`, `deleteMany`)
/// and no server served (its frame, sent by the unmodified original client, was refused
/// with `VALIDATION_ERROR`). They commit with the rest or not at all, and their records
/// together count against `limits.maxBulkRecords`.
#[tokio::test]
async fn bulk_operations_inside_a_transaction_commit_together() {
    let mut config = local_config();
    // The first transaction below writes exactly 6: 2 inserts, 1 upsert, 2 + 1 matches.
    config.limits.max_bulk_records = 6;
    config.store = serde_json::from_value(json!({
        "buckets": {"items": {"key": "id", "schema": {
            "id": {"type": "string", "generated": "uuid"},
            "name": {"type": "string"}, "tag": {"type": "string"},
            "price": {"type": "number", "min": 0}}}}
    }))
    .expect("store section");
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    // The original client's frame.
    let result = c
        .ok(
            "store.transaction",
            json!({"operations": [
                {"op": "insertMany", "bucket": "items", "data": [
                    {"name": "a1", "tag": "t", "price": 1}, {"name": "a2", "tag": "t", "price": 2}]},
                {"op": "updateMany", "bucket": "items", "filter": {"tag": "t"}, "data": {"price": 3}},
                {"op": "upsert", "bucket": "items", "data": {"id": "tx-up", "name": "up", "tag": "u", "price": 4}},
                {"op": "deleteMany", "bucket": "items", "filter": {"name": "a1"}}]}),
        )
        .await;
    let results = result["results"].as_array().expect("results");
    assert_eq!(results[0]["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(results[1]["data"], 2, "both inserts updated: {result}");
    assert_eq!(results[2]["data"]["id"], "tx-up");
    assert_eq!(results[3]["data"], 1);
    let all = c.ok("store.all", json!({"bucket": "items"})).await;
    let mut seen: Vec<(String, f64)> = all
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["price"].as_f64().unwrap_or_default(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen, [("a2".to_owned(), 3.0), ("up".to_owned(), 4.0)]);

    // A later failure rolls the bulk entries back too.
    let (code, _, _) = c
        .fail(
            "store.transaction",
            json!({"operations": [
                {"op": "insertMany", "bucket": "items", "data": [{"name": "b1"}, {"name": "b2"}]},
                {"op": "updateMany", "bucket": "items", "filter": {}, "data": {"price": -1}}]}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(c.ok("store.count", json!({"bucket": "items"})).await, 2);

    // The bulk entries' records together are bounded: 5 inserts + 2 matches > 6.
    let frame = c
        .call(
            "store.transaction",
            json!({"operations": [
                {"op": "insertMany", "bucket": "items", "data": [{"name": "c1"}, {"name": "c2"}, {"name": "c3"}, {"name": "c4"}, {"name": "c5"}]},
                {"op": "deleteMany", "bucket": "items", "filter": {}}]}),
        )
        .await;
    assert_eq!(frame["code"], "VALIDATION_ERROR", "{frame}");
    assert_eq!(frame["details"]["limit"], 6, "{frame}");
    let frame = c
        .call(
            "store.transaction",
            json!({"operations": [
                {"op": "insertMany", "bucket": "items", "data": [{"name": "d1"}, {"name": "d2"}, {"name": "d3"}]},
                {"op": "insertMany", "bucket": "items", "data": [{"name": "d4"}, {"name": "d5"}, {"name": "d6"}, {"name": "d7"}]}]}),
        )
        .await;
    assert_eq!(frame["code"], "VALIDATION_ERROR", "{frame}");
    assert_eq!(c.ok("store.count", json!({"bucket": "items"})).await, 2);
}

/// Every bulk entry of a transaction is checked as the operation it stands for: a role
/// that may write `mine` only cannot `insertMany`/`deleteMany` into `theirs` through a
/// transaction.
#[tokio::test]
async fn bulk_entries_of_a_transaction_need_their_own_permission() {
    let mut config = local_config();
    config.store = serde_json::from_value(json!({
        "buckets": {
            "mine": {"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}, "v": {"type": "number"}}},
            "theirs": {"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}, "v": {"type": "number"}}}}
    }))
    .expect("store section");
    config.auth = Some(
        serde_json::from_value(json!({
            "tokens": {"w": {"userId": "w", "roles": ["mine-writer"]}},
            "permissions": {"default": "deny", "rules": [
                {"role": "mine-writer", "allow": ["store.*"], "buckets": ["mine"]}]}}))
        .expect("auth"),
    );
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok("auth.login", json!({"token": "w"})).await;
    for entry in [
        json!({"op": "insertMany", "bucket": "theirs", "data": [{"v": 1}]}),
        json!({"op": "deleteMany", "bucket": "theirs", "filter": {}}),
        json!({"op": "updateMany", "bucket": "theirs", "filter": {}, "data": {"v": 2}}),
        json!({"op": "upsert", "bucket": "theirs", "data": {"v": 3}}),
    ] {
        let frame = c
            .call(
                "store.transaction",
                json!({"operations": [{"op": "insert", "bucket": "mine", "data": {"v": 0}}, entry]}),
            )
            .await;
        assert_eq!(frame["code"], "FORBIDDEN", "{frame}");
    }
    assert_eq!(c.ok("store.count", json!({"bucket": "mine"})).await, 0);
    c.ok(
        "store.transaction",
        json!({"operations": [{"op": "insertMany", "bucket": "mine", "data": [{"v": 1}, {"v": 2}]}]}),
    )
    .await;
    assert_eq!(c.ok("store.count", json!({"bucket": "mine"})).await, 2);
}
