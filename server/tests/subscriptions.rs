//! `store.subscribe` over a real WebSocket: initial data, pushes on change only, scalar and
//! parameterized queries, pushes across connections, limits, and release of everything
//! when a socket closes.

mod common;

use common::{Client, local_config, start};
use futures_util::future::join_all;
use noex_server::ServerConfig;
use serde_json::{Value, json};

fn config() -> ServerConfig {
    let mut config = local_config();
    config.store = serde_json::from_value(json!({
        "buckets": {
            "tasks": {
                "key": "id",
                "schema": {
                    "id": {"type": "string", "required": true},
                    "title": {"type": "string"},
                    "owner": {"type": "string"},
                    "done": {"type": "boolean", "default": false},
                    "points": {"type": "number", "default": 1}
                }
            },
            "logs": {"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}}
        },
        "queries": {
            "all-tasks": {"bucket": "tasks"},
            "open-count": {"bucket": "tasks", "filter": {"done": false}, "aggregate": {"function": "count"}},
            "by-owner": {"bucket": "tasks", "filter": {"owner": "{{ params.owner }}"}, "fields": ["id"]}
        }
    }))
    .expect("store section");
    config
}

async fn insert(c: &mut Client, id: &str, owner: &str) -> Value {
    c.ok(
        "store.insert",
        json!({"bucket": "tasks", "data": {"id": id, "title": id, "owner": owner}}),
    )
    .await
}

fn ids(records: &Value) -> Vec<&str> {
    records
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect()
}

fn assert_push(push: &Value, subscription_id: &Value) {
    assert_eq!(push["type"], "push");
    assert_eq!(push["channel"], "subscription");
    assert_eq!(&push["subscriptionId"], subscription_id);
    assert!(push.get("id").is_none(), "pushes carry no request id");
}

#[tokio::test]
async fn insert_update_delete_push_the_complete_result() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let sub = c.ok("store.subscribe", json!({"query": "all-tasks"})).await;
    let sub_id = sub["subscriptionId"].clone();
    assert!(
        sub_id.as_str().is_some_and(|s| s.starts_with("sub-")),
        "{sub}"
    );
    assert_eq!(sub["data"], json!([]));

    insert(&mut c, "t1", "ann").await;
    let push = c.next_push().await;
    assert_push(&push, &sub_id);
    assert_eq!(ids(&push["data"]), ["t1"]);

    c.ok(
        "store.update",
        json!({"bucket": "tasks", "key": "t1", "data": {"done": true}}),
    )
    .await;
    let push = c.next_push().await;
    assert_eq!(push["data"][0]["done"], true);
    assert_eq!(push["data"][0]["_version"], 2);

    insert(&mut c, "t2", "bob").await;
    assert_eq!(ids(&c.next_push().await["data"]), ["t1", "t2"]);
    c.ok("store.delete", json!({"bucket": "tasks", "key": "t1"}))
        .await;
    assert_eq!(ids(&c.next_push().await["data"]), ["t2"]);

    // A change to another bucket, and a write that changes nothing visible, push nothing.
    c.ok("store.insert", json!({"bucket": "logs", "data": {}}))
        .await;
    c.ok("store.delete", json!({"bucket": "tasks", "key": "missing"}))
        .await;
    server.store().settle().await;
    c.assert_no_push().await;

    assert_eq!(
        c.ok("store.unsubscribe", json!({"subscriptionId": sub_id}))
            .await,
        json!({"unsubscribed": true})
    );
    insert(&mut c, "t3", "ann").await;
    server.store().settle().await;
    c.assert_no_push().await;
    let (code, message, _) = c
        .fail("store.unsubscribe", json!({"subscriptionId": sub_id}))
        .await;
    assert_eq!(code, "NOT_FOUND");
    assert_eq!(
        message,
        format!(
            "Subscription \"{}\" not found",
            sub_id.as_str().unwrap_or_default()
        )
    );
}

#[tokio::test]
async fn a_scalar_query_pushes_a_scalar_only_when_it_changes() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let sub = c
        .ok("store.subscribe", json!({"query": "open-count"}))
        .await;
    assert_eq!(sub["data"], 0);
    insert(&mut c, "t1", "ann").await;
    assert_eq!(c.next_push().await["data"], 1);
    insert(&mut c, "t2", "ann").await;
    assert_eq!(c.next_push().await["data"], 2);
    // The title changes but the count does not: no push.
    c.ok(
        "store.update",
        json!({"bucket": "tasks", "key": "t1", "data": {"title": "renamed"}}),
    )
    .await;
    server.store().settle().await;
    c.assert_no_push().await;
    c.ok(
        "store.update",
        json!({"bucket": "tasks", "key": "t1", "data": {"done": true}}),
    )
    .await;
    assert_eq!(c.next_push().await["data"], 1);
}

#[tokio::test]
async fn parameterized_subscriptions_see_only_their_slice() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    insert(&mut c, "t1", "ann").await;
    let ann = c
        .ok(
            "store.subscribe",
            json!({"query": "by-owner", "params": {"owner": "ann"}}),
        )
        .await;
    let bob = c
        .ok(
            "store.subscribe",
            json!({"query": "by-owner", "params": {"owner": "bob"}}),
        )
        .await;
    assert_eq!(ann["data"], json!([{"id": "t1"}]));
    assert_eq!(bob["data"], json!([]));
    assert_ne!(ann["subscriptionId"], bob["subscriptionId"]);

    insert(&mut c, "t2", "bob").await;
    let push = c.next_push().await;
    assert_eq!(push["subscriptionId"], bob["subscriptionId"]);
    assert_eq!(push["data"], json!([{"id": "t2"}]));
    server.store().settle().await;
    c.assert_no_push().await;
}

#[tokio::test]
async fn a_change_by_one_client_reaches_another() {
    let server = start(config()).await;
    let (mut a, _) = Client::connect(&server).await;
    let (mut b, _) = Client::connect(&server).await;
    let sub = a.ok("store.subscribe", json!({"query": "all-tasks"})).await;
    insert(&mut b, "t1", "bob").await;
    let push = a.next_push().await;
    assert_push(&push, &sub["subscriptionId"]);
    assert_eq!(ids(&push["data"]), ["t1"]);
    server.store().settle().await;
    b.assert_no_push().await;
}

#[tokio::test]
async fn two_hundred_connections_all_receive_the_push() {
    let mut config = config();
    // All 200 handshakes are in flight at once from 127.0.0.1: over the default
    // per-address cap on pending handshakes, which would reset some of them.
    config.limits.max_pending_handshakes_per_ip = 256;
    let server = start(config).await;
    let mut clients = join_all((0..200).map(|_| async {
        let (mut c, _) = Client::connect(&server).await;
        let sub = c.ok("store.subscribe", json!({"query": "all-tasks"})).await;
        assert_eq!(sub["data"], json!([]));
        (c, sub["subscriptionId"].clone())
    }))
    .await;
    let subscription_ids: std::collections::HashSet<String> = clients
        .iter()
        .map(|(_, id)| id.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(subscription_ids.len(), 200, "ids are unique");

    let (mut writer, _) = Client::connect(&server).await;
    insert(&mut writer, "t1", "ann").await;
    let pushes = join_all(clients.iter_mut().map(|(c, id)| async move {
        let push = c.next_push().await;
        assert_push(&push, id);
        push["data"].clone()
    }))
    .await;
    assert!(pushes.iter().all(|data| ids(data) == ["t1"]));
    assert_eq!(
        server.stats().store.queries.active_subscriptions,
        200,
        "200 subscriptions share one evaluation but each is counted"
    );
}

#[tokio::test]
async fn the_per_connection_limit_counts_open_subscriptions() {
    let mut config = config();
    config.connection_limits.max_subscriptions_per_connection = 2;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let first = c.ok("store.subscribe", json!({"query": "all-tasks"})).await;
    c.ok("store.subscribe", json!({"query": "open-count"}))
        .await;
    let (code, message, _) = c
        .fail("store.subscribe", json!({"query": "all-tasks"}))
        .await;
    assert_eq!(code, "RATE_LIMITED");
    assert_eq!(message, "Subscription limit reached (max 2 per connection)");
    // A failed subscribe (unknown query) does not use up a slot either.
    c.ok(
        "store.unsubscribe",
        json!({"subscriptionId": first["subscriptionId"]}),
    )
    .await;
    assert_eq!(
        c.fail("store.subscribe", json!({"query": "nope"})).await.0,
        "QUERY_NOT_DEFINED"
    );
    c.ok("store.subscribe", json!({"query": "all-tasks"})).await;

    // Another connection has its own allowance.
    let (mut other, _) = Client::connect(&server).await;
    other
        .ok("store.subscribe", json!({"query": "all-tasks"}))
        .await;
}

#[tokio::test]
async fn the_global_limit_spans_connections() {
    let mut config = config();
    config.connection_limits.max_total_subscriptions = Some(3);
    let server = start(config).await;
    let (mut a, _) = Client::connect(&server).await;
    let (mut b, _) = Client::connect(&server).await;
    a.ok("store.subscribe", json!({"query": "all-tasks"})).await;
    a.ok("store.subscribe", json!({"query": "open-count"}))
        .await;
    b.ok("store.subscribe", json!({"query": "all-tasks"})).await;
    let (code, message, _) = b
        .fail("store.subscribe", json!({"query": "open-count"}))
        .await;
    assert_eq!(code, "RATE_LIMITED");
    assert_eq!(message, "Global subscription limit reached (max 3)");

    // When the connections close, their slots come back.
    drop(a);
    drop(b);
    server.wait_idle().await;
    let (mut c, _) = Client::connect(&server).await;
    for _ in 0..3 {
        c.ok("store.subscribe", json!({"query": "all-tasks"})).await;
    }
}

#[tokio::test]
async fn closing_the_socket_releases_every_subscription() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    for query in ["all-tasks", "open-count"] {
        c.ok("store.subscribe", json!({"query": query})).await;
    }
    c.ok(
        "store.subscribe",
        json!({"query": "by-owner", "params": {"owner": "x"}}),
    )
    .await;
    let stats = c.ok("server.stats", json!({})).await;
    assert_eq!(stats["connections"]["totalStoreSubscriptions"], 3);
    assert_eq!(stats["store"]["queries"]["activeSubscriptions"], 3);

    // An abrupt end: the TCP stream is dropped without a close handshake.
    drop(c);
    server.wait_idle().await;
    let stats = server.stats();
    assert_eq!(stats.connections.total_store_subscriptions, 0);
    assert_eq!(stats.store.queries.active_subscriptions, 0);
    let (mut fresh, _) = Client::connect(&server).await;
    let stats = fresh.ok("server.stats", json!({})).await;
    assert_eq!(stats["store"]["queries"]["activeSubscriptions"], 0);
    assert_eq!(stats["connectionCount"], 1);
}

#[tokio::test]
async fn the_subscribe_result_always_precedes_the_first_push() {
    // A writer hammers the bucket while another connection subscribes repeatedly: for
    // every subscription, its result arrives before any push carrying its id.
    let server = start(config()).await;
    let (mut writer, _) = Client::connect(&server).await;
    let (mut reader, _) = Client::connect(&server).await;
    let writes = tokio::spawn(async move {
        // Pipelined: the server commits back to back while the subscribes are handled.
        for i in 0..1000 {
            writer
                .send(json!({"id": i, "type": "store.insert", "bucket": "tasks", "data": {"id": format!("t{i}")}}))
                .await;
        }
        for _ in 0..1000 {
            assert_eq!(writer.recv().await["type"], "result");
        }
    });
    let mut known = std::collections::HashSet::new();
    for _ in 0..90 {
        // Every subscribe reuses id 1: each answer is read before the next is sent.
        reader
            .send(json!({"id": 1, "type": "store.subscribe", "query": "open-count"}))
            .await;
        loop {
            let frame = reader.recv().await;
            match frame["type"].as_str() {
                Some("push") => {
                    let id = frame["subscriptionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    assert!(known.contains(&id), "push for {id} before its result");
                }
                Some("result") => {
                    known.insert(
                        frame["data"]["subscriptionId"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                    break;
                }
                _ => panic!("unexpected {frame}"),
            }
        }
    }
    writes.await.expect("writer");
}
