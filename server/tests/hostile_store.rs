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
        "limits": {"maxRecordBytes": 2 * 1024 * 1024},
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

/// Latencies of `store.get` from a bystander while a writer inserts a record every 10 ms
/// for `span`, ids from `first_id` on; returns `(p50, p99, max)` and the next free id.
async fn bystander_gets_during_inserts(
    reader: &mut Client,
    mut writer: Client,
    first_id: u32,
    span: Duration,
) -> ((Duration, Duration, Duration), u32) {
    let writes = tokio::spawn(async move {
        let started = Instant::now();
        let mut id = first_id;
        let mut pace = tokio::time::interval(Duration::from_millis(10));
        while started.elapsed() < span {
            pace.tick().await;
            writer
                .ok(
                    "store.insert",
                    json!({"bucket": "items", "data": {"id": id, "code": format!("n{id}")}}),
                )
                .await;
            id += 1;
        }
        id
    });
    let mut lat = Vec::new();
    while lat.len() < 20 || !writes.is_finished() {
        let started = Instant::now();
        let got = reader
            .ok("store.get", json!({"bucket": "items", "key": 7}))
            .await;
        lat.push(started.elapsed());
        assert_eq!(got["code"], "c7");
    }
    let next = writes.await.expect("writer");
    lat.sort();
    let at = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    ((at(0.5), at(0.99), at(1.0)), next)
}

// Four workers on the client side, so that parsing the 20 000-group pushes and answers in
// this process does not delay the bystander's reads (the server is the real binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heavy_grouped_subscription_does_not_stall_other_clients() {
    // A read budget far above what the grouping takes even in a debug build on a busy
    // machine: this test is about other clients' latency, not about the budget.
    let config = json!({
        "limits": {"maxReadMs": 30_000},
        "store": {
            "buckets": {"items": {"key": "id", "schema": {"id": {"type": "number"}, "code": {"type": "string"}}}},
            "queries": {"per-code": {"bucket": "items", "aggregate": {"function": "count", "groupBy": "code"}}}
        }
    });
    let server = Binary::with_config(
        &config,
        &["--no-rules", "--heartbeat-interval-ms", "600000"],
    )
    .await;
    let records = 20_000u32;
    // Pipelined, so the setup does not take 20 000 round trips.
    let (mut loader, _) = Client::connect_url(&server.url).await;
    for chunk in (0..records).collect::<Vec<_>>().chunks(1000) {
        for id in chunk {
            loader
                .send(json!({"id": id, "type": "store.insert", "bucket": "items",
                    "data": {"id": id, "code": format!("c{id}")}}))
                .await;
        }
        for _ in chunk {
            assert_eq!(loader.recv().await["type"], "result");
        }
    }
    let (mut reader, _) = Client::connect_url(&server.url).await;
    let (writer, _) = Client::connect_url(&server.url).await;
    let span = Duration::from_secs(3);

    // The same load without the subscription: what a bystander sees on this machine now.
    let ((base50, base99, base_max), next) =
        bystander_gets_during_inserts(&mut reader, writer, records, span).await;

    let (mut watcher, _) = Client::connect_url(&server.url).await;
    let sub = watcher
        .ok("store.subscribe", json!({"query": "per-code"}))
        .await;
    assert_eq!(sub["data"].as_array().map(Vec::len), Some(next as usize));
    // The subscriber reads every push, as a live client does, until it has seen a result
    // of `target` groups (set once the attack is over).
    let target = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let seen = target.clone();
    let pushes = tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            let push = watcher.next_push().await;
            n += 1;
            let len = push["data"].as_array().map(Vec::len);
            assert!(len.is_some(), "{push}");
            if len == Some(seen.load(std::sync::atomic::Ordering::SeqCst)) {
                return n;
            }
        }
    });
    // The attack: inserts that each change the 20 000-group result.
    let (writer, _) = Client::connect_url(&server.url).await;
    let ((p50, p99, max), last) =
        bystander_gets_during_inserts(&mut reader, writer, next, span).await;
    eprintln!(
        "bystander store.get without the subscription p50 {base50:?} p99 {base99:?} max \
         {base_max:?}; with it p50 {p50:?} p99 {p99:?} max {max:?}"
    );
    // One more insert after the target is known: its push ends the watcher.
    target.store(last as usize + 1, std::sync::atomic::Ordering::SeqCst);
    reader
        .ok(
            "store.insert",
            json!({"bucket": "items", "data": {"id": last, "code": "last"}}),
        )
        .await;
    let pushed = pushes.await.expect("watcher");
    assert!(pushed >= 2, "{pushed} pushes");

    // The same query subscribed again and again with new params, from two connections: each
    // subscribe is a fresh 20 000-group evaluation. Before, each one held the registry lock
    // while it ran and a runtime worker, and a second one waited for it holding the data
    // lock, so writers and every reader queued behind them waited too.
    let mut subscribers = Vec::new();
    for a in 0..2 {
        let (mut attacker, _) = Client::connect_url(&server.url).await;
        subscribers.push(tokio::spawn(async move {
            for i in 0..4 {
                attacker
                    .ok(
                        "store.subscribe",
                        json!({"query": "per-code", "params": {"n": a * 10 + i}}),
                    )
                    .await;
            }
        }));
    }
    let mut lat = Vec::new();
    while lat.len() < 20 || subscribers.iter().any(|s| !s.is_finished()) {
        let started = Instant::now();
        reader
            .ok("store.get", json!({"bucket": "items", "key": 7}))
            .await;
        lat.push(started.elapsed());
    }
    for s in subscribers {
        s.await.expect("attacker");
    }
    lat.sort();
    let sub99 = lat[((lat.len() - 1) as f64 * 0.99).round() as usize];
    let sub_max = lat[lat.len() - 1];
    eprintln!("bystander store.get during 8 heavy subscribes: p99 {sub99:?} max {sub_max:?}");
    // Before the fix a get waited for running re-evaluations (350 ms at p99 in a release
    // build). The bound is generous for a debug build on a loaded machine.
    assert!(
        p99 < base99 * 4 + Duration::from_millis(150),
        "p99 {p99:?} against {base99:?} without the subscription"
    );
    assert!(
        sub99 < base99 * 4 + Duration::from_millis(150),
        "p99 {sub99:?} during subscribes against {base99:?} without them"
    );
}

#[tokio::test]
async fn a_transaction_answer_is_bounded_and_its_operations_counted() {
    let mut config = local_config();
    config.limits.max_result_bytes = 64 * 1024;
    config.limits.max_transaction_ops = 50;
    config.store = serde_json::from_value(json!({
        "buckets": {"docs": {"key": "id", "schema": {"id": {"type": "number"}, "blob": {"type": "string"}}}}
    }))
    .expect("store section");
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let blob = "x".repeat(4 * 1024);
    for id in 0..10 {
        c.ok(
            "store.insert",
            json!({"bucket": "docs", "data": {"id": id, "blob": blob}}),
        )
        .await;
    }
    // One read is within the limit (about 40 KiB)...
    let all = c
        .ok("store.where", json!({"bucket": "docs", "filter": {}}))
        .await;
    assert_eq!(all.as_array().map(Vec::len), Some(10));
    // ...the attack: many of them in one transaction, with a write that must not stay.
    let mut operations = vec![json!({"op": "insert", "bucket": "docs", "data": {"id": 99}})];
    operations.extend((0..20).map(|_| json!({"op": "where", "bucket": "docs", "filter": {}})));
    let (code, message, details) = c
        .fail("store.transaction", json!({"operations": operations}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("store.paginate"), "{message}");
    assert_eq!(details["limit"], 64 * 1024);
    assert_eq!(
        c.ok("store.get", json!({"bucket": "docs", "key": 99}))
            .await,
        json!(null),
        "the failed transaction was rolled back"
    );
    // Too many operations: refused before any runs.
    let operations: Vec<_> = (0..51)
        .map(|id| json!({"op": "insert", "bucket": "docs", "data": {"id": 1000 + id}}))
        .collect();
    let (code, message, details) = c
        .fail("store.transaction", json!({"operations": operations}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("at most 50 operations"), "{message}");
    assert_eq!(details["limit"], 50);
    assert_eq!(server.store().bucket_len("docs"), Some(10));
    // At the limit it works.
    let operations: Vec<_> = (0..50)
        .map(|id| json!({"op": "insert", "bucket": "docs", "data": {"id": 1000 + id}}))
        .collect();
    let done = c
        .ok("store.transaction", json!({"operations": operations}))
        .await;
    assert_eq!(done["results"].as_array().map(Vec::len), Some(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_with_a_huge_in_list_does_not_stall_other_clients() {
    let mut config = local_config();
    // About other clients' latency, not the read budget: room for a debug build on a busy
    // machine.
    config.limits.max_read_ms = 30_000;
    config.store = serde_json::from_value(json!({
        "buckets": {"items": {"key": "id", "schema": {"id": {"type": "number"}, "code": {"type": "string"}}}}
    }))
    .expect("store section");
    let server = start(config).await;
    let items = server.store().bucket("items");
    let records = 20_000u32;
    for id in 0..records {
        let record = json!({"id": id, "code": format!("c{id}")});
        items
            .insert(record.as_object().cloned().unwrap_or_default())
            .expect("insert");
    }
    // A list of 60 000 values none of which (but the last) matches: before the fix every
    // record was compared with every value, under the data lock (1.2e9 comparisons).
    let mut list: Vec<serde_json::Value> = (0..60_000).map(|i| json!(format!("x{i}"))).collect();
    list.push(json!("c7"));
    let (mut attacker, _) = Client::connect(&server).await;
    let (mut reader, _) = Client::connect(&server).await;
    let (mut writer, _) = Client::connect(&server).await;
    let started = Instant::now();
    for op in ["$in", "$nin"] {
        let answer = attacker
            .ok(
                "store.count",
                json!({"bucket": "items", "filter": {"code": {op: list}}}),
            )
            .await;
        let expected = if op == "$in" { 1 } else { records - 1 };
        assert_eq!(answer, json!(expected), "{op}");
    }
    let attack = started.elapsed();
    // And while such scans run, other clients read and write.
    let attack_task = tokio::spawn(async move {
        for _ in 0..3 {
            attacker
                .ok(
                    "store.count",
                    json!({"bucket": "items", "filter": {"code": {"$nin": list}}}),
                )
                .await;
        }
    });
    let mut slowest = Duration::ZERO;
    let mut id = records;
    while !attack_task.is_finished() {
        let t = Instant::now();
        reader
            .ok("store.get", json!({"bucket": "items", "key": 7}))
            .await;
        writer
            .ok(
                "store.insert",
                json!({"bucket": "items", "data": {"id": id, "code": "w"}}),
            )
            .await;
        id += 1;
        slowest = slowest.max(t.elapsed());
    }
    attack_task.await.expect("attacker");
    eprintln!(
        "two scans with 60 001 values: {attack:?}; slowest get + insert meanwhile {slowest:?}"
    );
    // Debug-build bounds on a loaded machine; before the fix the two scans took minutes.
    assert!(attack < Duration::from_secs(20), "{attack:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}

#[tokio::test]
async fn records_until_the_process_dies_are_refused_once_the_store_is_full() {
    let config = json!({
        "limits": {"maxRecordBytes": 300 * 1024, "maxStoreBytes": 16 * 1024 * 1024},
        "store": {"buckets": {"big": {"key": "id", "schema": {"id": {"type": "number"}, "blob": {"type": "string"}}}}}
    });
    let server = Binary::with_config(
        &config,
        &["--no-rules", "--heartbeat-interval-ms", "600000"],
    )
    .await;
    let (mut c, _) = Client::connect_url(&server.url).await;
    // One record past maxRecordBytes.
    let (code, message, _) = c
        .fail(
            "store.insert",
            json!({"bucket": "big", "data": {"id": -1, "blob": "x".repeat(400 * 1024)}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains(&(300 * 1024).to_string()), "{message}");
    let before = server.peak_rss_kib();
    // The attack: large records, one after the other, until the server says no. Before the
    // fix it never did (the attack ran until the process was killed); 1 000 records of
    // 256 KiB end the test in that case.
    let blob = "x".repeat(256 * 1024);
    let mut stored = 0u32;
    let refusal = loop {
        let frame = c
            .call(
                "store.insert",
                json!({"bucket": "big", "data": {"id": stored, "blob": blob}}),
            )
            .await;
        if frame["type"] == "error" {
            break frame;
        }
        stored += 1;
        assert!(stored < 1_000, "the store never filled up");
    };
    assert_eq!(refusal["code"], "RATE_LIMITED", "{refusal}");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("Store is full")),
        "{refusal}"
    );
    // 16 MiB hold 63 records of 256 KiB and their metadata.
    assert_eq!(stored, 63);
    let grown = server.peak_rss_kib().saturating_sub(before);
    eprintln!(
        "16 MiB of records raised the peak RSS by {} MiB",
        grown / 1024
    );
    assert!(grown < 160 * 1024, "peak RSS grew by {grown} KiB");
    // A transaction that would pass the bound is refused as a whole.
    let (code, _, _) = c
        .fail(
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "big", "data": {"id": 5000}},
                {"op": "insert", "bucket": "big", "data": {"id": 5001, "blob": blob}}
            ]}),
        )
        .await;
    assert_eq!(code, "RATE_LIMITED");
    assert_eq!(
        c.ok("store.get", json!({"bucket": "big", "key": 5000}))
            .await,
        json!(null)
    );
    // Deletes make room again.
    c.ok("store.delete", json!({"bucket": "big", "key": 0}))
        .await;
    c.ok(
        "store.insert",
        json!({"bucket": "big", "data": {"id": 0, "blob": blob}}),
    )
    .await;
}

#[tokio::test]
async fn bucket_names_that_would_make_event_topics_ambiguous_are_refused() {
    let server = start(people_config()).await;
    let (mut c, _) = Client::connect(&server).await;
    // `bucket.a.b.inserted` could be bucket "a.b" or events of "a" under a pattern; `*` would
    // be read as a wildcard by topic patterns.
    for name in ["a.b", "users.*", "*", "x*y"] {
        let (code, message, _) = c
            .fail(
                "store.defineBucket",
                json!({"name": name, "config": {"key": "id", "schema": {"id": {"type": "string"}}}}),
            )
            .await;
        assert_eq!(code, "VALIDATION_ERROR", "{name}");
        assert!(message.contains("must not contain"), "{message}");
    }
    assert_eq!(server.store().bucket_names(), ["docs"]);
    // The same from the config file.
    let mut config = local_config();
    config.store = serde_json::from_value(json!({
        "buckets": {"a.b": {"key": "id", "schema": {"id": {"type": "string"}}}}
    }))
    .expect("store section");
    let refused = noex_server::Server::builder(config).start().await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("must not contain"), "{message}");
}

#[tokio::test]
async fn subscribe_params_must_be_an_object() {
    let server = start(people_config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "store.defineQuery",
        json!({"name": "mine", "config": {"bucket": "docs", "filter": {"owner": "{{ params.owner }}"}}}),
    )
    .await;
    for params in [json!("alice"), json!(["alice"]), json!(7), json!(true)] {
        let (code, message, _) = c
            .fail(
                "store.subscribe",
                json!({"query": "mine", "params": params}),
            )
            .await;
        assert_eq!(code, "VALIDATION_ERROR", "{params}");
        assert!(message.contains("params"), "{message}");
    }
    assert_eq!(server.store().stats().queries.active_subscriptions, 0);
    // An object, null or nothing are fine.
    for fields in [
        json!({"query": "mine", "params": {"owner": "bob"}}),
        json!({"query": "mine", "params": null}),
        json!({"query": "mine"}),
    ] {
        c.ok("store.subscribe", fields).await;
    }
}

#[tokio::test]
async fn records_of_small_numbers_count_their_memory_not_their_json() {
    // Exactly the red team's record: `{"id":i,"z":[0,0,…99 000 zeros]}` ×300, 59 MB of
    // JSON under a store limit of 64 MiB. Counted by JSON they all fitted and the server
    // grew to about 2 GB; counted by estimated memory the store refuses past 64 MiB.
    let config = json!({
        "limits": {"maxRecordBytes": 16 * 1024 * 1024, "maxStoreBytes": 64 * 1024 * 1024},
        "store": {"buckets": {"a": {"key": "id", "schema": {"id": {"type": "number"}}}}}
    });
    let server = Binary::with_config(
        &config,
        &["--no-rules", "--heartbeat-interval-ms", "600000"],
    )
    .await;
    let (mut c, _) = Client::connect_url(&server.url).await;
    let zeros = vec![0; 99_000];
    let mut stored = 0;
    let mut refused = 0;
    for id in 0..300 {
        let frame = c
            .call(
                "store.insert",
                json!({"bucket": "a", "data": {"id": id, "z": zeros}}),
            )
            .await;
        if frame["type"] == "result" {
            stored += 1;
        } else {
            assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
            refused += 1;
        }
    }
    assert!(refused > 250, "stored {stored}, refused {refused}");
    assert!(stored > 0, "stored {stored}");
    let peak = server.peak_rss_kib() * 1024;
    assert!(
        peak < 400 * 1024 * 1024,
        "peak RSS {} MiB",
        peak / 1024 / 1024
    );
}

#[tokio::test]
async fn subscriptions_with_different_params_hold_bounded_memory() {
    // The red team's attack: `{"type":"store.subscribe","query":"allfat","params":{"k":N}}`
    // for N = 1..100 over `{"bucket":"fat"}`; each distinct params value evaluated and kept
    // its own copy of the whole bucket (about 11.5 MB each, RSS 32 -> 1216 MB).
    let config = json!({
        // (A read budget with room for a debug build on a busy machine.)
        "limits": {"maxSubscriptionResultBytes": 16 * 1024 * 1024, "maxReadMs": 30_000},
        "store": {"buckets": {"fat": {"key": "id", "schema": {"id": {"type": "number"}}}}}
    });
    let server = Binary::with_config(
        &config,
        &["--no-rules", "--heartbeat-interval-ms", "600000"],
    )
    .await;
    let (mut c, _) = Client::connect_url(&server.url).await;
    // About 4 MiB of records.
    let blob = "x".repeat(512 * 1024);
    for id in 0..8 {
        c.ok(
            "store.insert",
            json!({"bucket": "fat", "data": {"id": id, "blob": blob}}),
        )
        .await;
    }
    c.ok(
        "store.defineQuery",
        json!({"name": "allfat", "config": {"bucket": "fat"}}),
    )
    .await;
    let before = server.peak_rss_kib();
    let (mut held, mut refused) = (Vec::new(), 0);
    for k in 1..=100 {
        let frame = c
            .call(
                "store.subscribe",
                json!({"query": "allfat", "params": {"k": k}}),
            )
            .await;
        if frame["type"] == "result" {
            held.push(frame["data"]["subscriptionId"].clone());
        } else {
            assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
            assert!(
                frame["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("per connection")),
                "{frame}"
            );
            refused += 1;
        }
    }
    let grown = server.peak_rss_kib().saturating_sub(before);
    eprintln!(
        "100 subscriptions raised the peak RSS by {} MiB",
        grown / 1024
    );
    assert!(grown < 200 * 1024, "peak RSS grew by {grown} KiB");
    // 16 MiB hold three results of about 4 MiB (the fourth passes the bound).
    assert!((2..=4).contains(&held.len()), "held {}", held.len());
    assert_eq!(refused, 100 - held.len());
    // Ending one makes room for another.
    c.ok("store.unsubscribe", json!({"subscriptionId": held[0]}))
        .await;
    c.ok(
        "store.subscribe",
        json!({"query": "allfat", "params": {"k": 1000}}),
    )
    .await;
    // A re-evaluation that grows the held results past the bound ends that subscription
    // with an error frame instead of holding it.
    // Each record of 900 KB grows each of the held results by that much.
    for id in 500..503 {
        c.send(json!({"id": id, "type": "store.insert", "bucket": "fat", "data": {"id": id, "blob": "y".repeat(900 * 1024)}}))
            .await;
    }
    let (mut answered, mut ended) = (0, 0);
    while answered < 3 || ended == 0 {
        let frame = c.recv().await;
        if frame["type"] == "result" {
            answered += 1;
        } else if frame["type"] == "error" {
            assert_eq!(frame["id"], 0, "{frame}");
            assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
            ended += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Red team 8, finding 5: `store.updateMany` over 300 records of 900 KB took ~1 s and
// +770 MB per call, and two clients looping it held others' reads for 486 ms (p99).

#[tokio::test]
async fn a_write_of_many_large_records_is_bounded_in_bytes() {
    const RECORDS: usize = 40;
    let server = Binary::with_config(
        &json!({
            "store": {"buckets": {"fat": {"key": "id", "schema": {
                "id": {"type": "string"}, "n": {"type": "number"}, "blob": {"type": "string"}}}}}
        }),
        &["--no-rules"],
    )
    .await;
    let (mut c, _) = Client::connect_url(&server.url).await;
    let blob = "x".repeat(900 * 1024);
    for i in 0..RECORDS {
        c.ok(
            "store.insert",
            json!({"bucket": "fat", "data": {"id": format!("r{i:02}"), "n": 0, "blob": blob}}),
        )
        .await;
    }
    let before = server.peak_rss_kib();
    // The attack's frame: 40 x 900 KB = 36 MB of records rewritten in one write.
    let answer = c
        .request(json!({"id": 1, "type": "store.updateMany", "bucket": "fat", "filter": {}, "data": {"n": 1}}))
        .await;
    assert_eq!(answer["code"], "VALIDATION_ERROR", "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("limits.maxTransactionBytes"), "{message}");
    assert!(
        message.contains(&(16 * 1024 * 1024).to_string()),
        "{message}"
    );
    // The same as a transaction of single updates: refused too (its results, the updated
    // records, pass limits.maxResultBytes first).
    let operations: Vec<_> = (0..RECORDS)
        .map(|i| json!({"op": "update", "bucket": "fat", "key": format!("r{i:02}"), "data": {"n": 1}}))
        .collect();
    let (code, message, _) = c
        .fail("store.transaction", json!({"operations": operations}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("Result exceeds"), "{message}");
    let grown = server.peak_rss_kib().saturating_sub(before) / 1024;
    eprintln!("two refused writes of {RECORDS} x 900 KB raised the peak RSS by {grown} MiB");
    // Stopped at 16 MiB of written records (about 18), not 36 MB of them.
    assert!(grown < 96, "peak RSS grew by {grown} MiB");
    // Nothing was written.
    let count = c
        .ok("store.count", json!({"bucket": "fat", "filter": {"n": 1}}))
        .await;
    assert_eq!(count, json!(0));
    // Red team 9: a deleteMany of 700 records of 1 MB held other clients' reads for about
    // a second. Removed records count against the same bound.
    let (code, message, _) = c
        .fail("store.deleteMany", json!({"bucket": "fat", "filter": {}}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.contains("writes or removes more than") && message.contains("maxTransactionBytes"),
        "{message}"
    );
    assert_eq!(
        c.ok("store.count", json!({"bucket": "fat"})).await,
        json!(RECORDS)
    );
    // Under the bound the same write goes through: 10 x 900 KB.
    let changed = c
        .ok(
            "store.updateMany",
            json!({"bucket": "fat", "filter": {"id": {"$lt": "r10"}}, "data": {"n": 1}}),
        )
        .await;
    assert_eq!(changed, json!(10));
    let count = c
        .ok("store.count", json!({"bucket": "fat", "filter": {"n": 1}}))
        .await;
    assert_eq!(count, json!(10));
}

#[tokio::test]
async fn the_transaction_bound_cannot_be_below_one_record() {
    let mut config = local_config();
    config.limits.max_record_bytes = 2 * 1024 * 1024;
    config.limits.max_transaction_bytes = 1024 * 1024;
    let err = config.validate().expect_err("refused");
    assert!(
        err.to_string().contains("limits.maxTransactionBytes"),
        "{err}"
    );
}
