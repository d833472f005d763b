//! The store findings of the hostile-clients attack run, replayed over a real WebSocket:
//! query parameters are values (never filter syntax), one result frame is bounded, buckets
//! and queries per server are bounded, a field holding mixed types sorts without a panic,
//! a subscription whose query can no longer be evaluated ends with an error frame instead
//! of going silent, and a heavy grouped subscription does not stall other clients.

mod common;

use std::time::{Duration, Instant};

use common::{Binary, Client, local_config, start};
use serde_json::json;

fn people_config() -> noex_server::ServerConfig {
    let mut config = local_config();
    config.store = serde_json::from_value(json!({
        "buckets": {"docs": {"key": "id", "schema": {"id": {"type": "string"}, "owner": {"type": "string"}}}}
    }))
    .expect("store section");
    config
}

#[tokio::test]
async fn a_parameter_is_a_value_never_filter_syntax() {
    let server = start(people_config()).await;
    let (mut c, _) = Client::connect(&server).await;
    for (id, owner) in [("1", "alice"), ("2", "bob"), ("3", "carol")] {
        c.ok(
            "store.insert",
            json!({"bucket": "docs", "data": {"id": id, "owner": owner}}),
        )
        .await;
    }
    c.ok(
        "store.defineQuery",
        json!({"name": "mine", "config": {"bucket": "docs", "filter": {"owner": "{{ params.owner }}"}}}),
    )
    .await;

    // The attack: an operator object where the query expects a value.
    let answer = c
        .request(json!({"id": 1, "type": "store.subscribe", "query": "mine", "params": {"owner": {"$ne": null}}}))
        .await;
    assert_eq!(answer["code"], "VALIDATION_ERROR", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("owner")),
        "{answer}"
    );
    assert_eq!(server.store().stats().queries.active_subscriptions, 0);

    // A value is compared for equality.
    let sub = c
        .ok(
            "store.subscribe",
            json!({"query": "mine", "params": {"owner": "bob"}}),
        )
        .await;
    assert_eq!(sub["data"].as_array().map(Vec::len), Some(1), "{sub}");
    assert_eq!(sub["data"][0]["owner"], "bob");
}

#[tokio::test]
async fn a_field_of_mixed_types_sorts_and_its_subscription_keeps_pushing() {
    let server = start(people_config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.defineQuery",
        json!({"name": "by-v", "config": {"bucket": "docs", "sort": {"v": "asc"}}}),
    )
    .await;
    let sub = c.ok("store.subscribe", json!({"query": "by-v"})).await;
    let sub_id = sub["subscriptionId"].clone();
    // Numbers and strings in one field: the sort that used to panic.
    for (id, v) in [
        ("a", json!(3)),
        ("b", json!("x")),
        ("c", json!(1)),
        ("d", json!("a")),
        ("e", json!(true)),
        ("f", json!(2.5)),
    ] {
        c.ok(
            "store.insert",
            json!({"bucket": "docs", "data": {"id": id, "v": v}}),
        )
        .await;
    }
    server.store().settle().await;
    // Every push due is queued before this round trip's answer.
    c.ok("store.buckets", json!({})).await;
    let last = c.pushes.back().expect("pushes")["data"].clone();
    assert!(c.pushes.iter().all(|p| p["subscriptionId"] == sub_id));
    c.pushes.clear();
    let order: Vec<&str> = last
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    // booleans < numbers < strings
    assert_eq!(order, ["e", "c", "f", "a", "d", "b"], "{last}");
    // The subscription is still alive: one more change, one more push.
    c.ok(
        "store.insert",
        json!({"bucket": "docs", "data": {"id": "g", "v": 0}}),
    )
    .await;
    let push = c.next_push().await;
    assert_eq!(push["data"][1]["id"], "g", "{push}");
}

#[tokio::test]
async fn a_subscription_whose_result_outgrows_the_limit_ends_with_an_error_frame() {
    let mut config = people_config();
    config.limits.max_result_bytes = 64 * 1024;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.defineQuery",
        json!({"name": "all", "config": {"bucket": "docs"}}),
    )
    .await;
    let sub = c.ok("store.subscribe", json!({"query": "all"})).await;
    let sub_id = sub["subscriptionId"].clone();
    let blob = "x".repeat(40 * 1024);
    c.ok(
        "store.insert",
        json!({"bucket": "docs", "data": {"id": "1", "blob": blob}}),
    )
    .await;
    assert_eq!(c.next_push().await["subscriptionId"], sub_id);
    c.send(json!({"id": 50, "type": "store.insert", "bucket": "docs", "data": {"id": "2", "blob": blob}}))
        .await;
    // The answer and the end of the subscription, in either order.
    let (mut answered, mut ended) = (false, false);
    while !(answered && ended) {
        let frame = c.recv().await;
        if frame["id"] == 50 {
            assert_eq!(frame["type"], "result", "{frame}");
            answered = true;
        } else {
            assert_eq!(frame["type"], "error", "{frame}");
            assert_eq!(frame["id"], 0);
            assert_eq!(frame["code"], "VALIDATION_ERROR");
            assert_eq!(frame["details"]["subscriptionId"], sub_id);
            ended = true;
        }
    }
    // Gone on both sides.
    let (code, _, _) = c
        .fail("store.unsubscribe", json!({"subscriptionId": sub_id}))
        .await;
    assert_eq!(code, "NOT_FOUND");
    assert_eq!(server.store().stats().queries.active_subscriptions, 0);
}

#[tokio::test]
async fn buckets_and_queries_per_server_are_bounded() {
    let server = start(local_config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let bucket = json!({"key": "id", "schema": {"id": {"type": "string"}}});
    for i in 0..1_000 {
        c.ok(
            "store.defineBucket",
            json!({"name": format!("b{i}"), "config": bucket}),
        )
        .await;
    }
    let (code, message, _) = c
        .fail(
            "store.defineBucket",
            json!({"name": "one-more", "config": bucket}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("RATE_LIMITED", "Bucket limit reached (max 1000)")
    );
    for i in 0..1_000 {
        c.ok(
            "store.defineQuery",
            json!({"name": format!("q{i}"), "config": {"bucket": "b0"}}),
        )
        .await;
    }
    let (code, message, _) = c
        .fail(
            "store.defineQuery",
            json!({"name": "one-more", "config": {"bucket": "b0"}}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("RATE_LIMITED", "Query limit reached (max 1000)")
    );
}

#[tokio::test]
async fn reading_records_of_a_mebibyte_is_refused_instead_of_one_huge_frame() {
    let config = json!({
        "maxPayloadBytes": 2 * 1024 * 1024,
        "store": {"buckets": {"big": {"key": "id", "schema": {"id": {"type": "number"}, "blob": {"type": "string"}}}}}
    });
    let server = Binary::with_config(
        &config,
        &["--no-rules", "--heartbeat-interval-ms", "600000"],
    )
    .await;
    let (mut c, _) = Client::connect_url(&server.url).await;
    let blob = "x".repeat(1024 * 1024);
    // The attack stored 300 such records (a 312 MB answer); 40 show the same thing in a
    // debug build's time.
    for id in 0..40 {
        c.ok(
            "store.insert",
            json!({"bucket": "big", "data": {"id": id, "blob": blob}}),
        )
        .await;
    }
    let before = server.peak_rss_kib();
    let (code, message, details) = c.fail("store.all", json!({"bucket": "big"})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("store.paginate"), "{message}");
    assert_eq!(details["limit"], 8 * 1024 * 1024);
    let after = server.peak_rss_kib();
    // Before the fix the answer was one frame the size of the bucket, built on top of a
    // clone of every record: the peak grew by several times the bucket's size.
    assert!(
        after.saturating_sub(before) < 24 * 1024,
        "store.all raised the peak RSS by {} KiB",
        after.saturating_sub(before)
    );
    // Pages work.
    let page = c
        .ok("store.paginate", json!({"bucket": "big", "limit": 5}))
        .await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_grouped_subscription_does_not_stall_other_clients() {
    let mut config = local_config();
    config.store = serde_json::from_value(json!({
        "buckets": {"items": {"key": "id", "schema": {"id": {"type": "number"}, "code": {"type": "string"}}}},
        "queries": {"per-code": {"bucket": "items", "aggregate": {"function": "count", "groupBy": "code"}}}
    }))
    .expect("store section");
    let server = start(config).await;
    let items = server.store().bucket("items");
    for id in 0..20_000u32 {
        let record = json!({"id": id, "code": format!("c{id}")});
        items
            .insert(record.as_object().cloned().unwrap_or_default())
            .expect("insert");
    }
    let (mut watcher, _) = Client::connect(&server).await;
    let sub = watcher
        .ok("store.subscribe", json!({"query": "per-code"}))
        .await;
    assert_eq!(sub["data"].as_array().map(Vec::len), Some(20_000));

    // Inserts that each re-evaluate the grouped count, while another client reads.
    let (mut reader, _) = Client::connect(&server).await;
    let (mut writer, _) = Client::connect(&server).await;
    let writes = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        for id in 20_000..20_100u32 {
            let started = Instant::now();
            writer
                .ok(
                    "store.insert",
                    json!({"bucket": "items", "data": {"id": id, "code": "new"}}),
                )
                .await;
            slowest = slowest.max(started.elapsed());
        }
        slowest
    });
    let mut slowest_read = Duration::ZERO;
    let mut reads = 0;
    while reads == 0 || !writes.is_finished() {
        reads += 1;
        let started = Instant::now();
        reader
            .ok("store.get", json!({"bucket": "items", "key": 7}))
            .await;
        slowest_read = slowest_read.max(started.elapsed());
        // A scan of the whole bucket (it runs on the blocking pool at this size).
        let found = reader
            .ok(
                "store.where",
                json!({"bucket": "items", "filter": {"code": "c7"}}),
            )
            .await;
        assert_eq!(found.as_array().map(Vec::len), Some(1));
    }
    let slowest_write = writes.await.expect("writer");
    // Before the fix each insert took 1.3 s in a release build (and a get as long); these
    // bounds are for a debug build on a loaded machine. The figures of a release build
    // come from `scripts/bench-grouped-subscription.sh`.
    assert!(slowest_write < Duration::from_secs(2), "{slowest_write:?}");
    assert!(slowest_read < Duration::from_secs(2), "{slowest_read:?}");
    eprintln!("slowest insert {slowest_write:?}, slowest get {slowest_read:?} ({reads} reads)");
}
