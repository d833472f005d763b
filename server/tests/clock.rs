//! One injected clock over a real WebSocket: the clock given to `ServerBuilder::clock` also
//! stamps the store's records, drives their TTL expiry (the sweep) and fires the rule
//! engine's timers. Nothing here sleeps: time moves only when the test advances the clock.

mod common;

use std::sync::Arc;

use common::{Client, local_config};
use noex_server::{Clock, ManualClock, Server};
use serde_json::json;

const T0: u64 = 1_800_000_000_000;

#[tokio::test]
async fn a_manual_clock_drives_record_timestamps_ttl_and_rule_timers() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    let clock = Arc::new(ManualClock::new(T0));
    let server = Server::builder(config)
        .clock(clock.clone() as Arc<dyn Clock>)
        .start()
        .await
        .expect("server starts");
    let (mut c, welcome) = Client::connect(&server).await;
    assert_eq!(welcome["serverTime"], T0);

    // Record timestamps are the manual time.
    c.ok(
        "store.defineBucket",
        json!({"name": "sessions", "config": {"key": "id",
            "schema": {"id": {"type": "string"}}, "ttl": "1m"}}),
    )
    .await;
    let record = c
        .ok(
            "store.insert",
            json!({"bucket": "sessions", "data": {"id": "s1"}}),
        )
        .await;
    assert_eq!(record["_createdAt"], T0);
    assert_eq!(record["_updatedAt"], T0);
    assert_eq!(record["_expiresAt"], T0 + 60_000);
    c.ok(
        "store.defineQuery",
        json!({"name": "all-sessions", "config": {"bucket": "sessions", "fields": ["id"]}}),
    )
    .await;
    let sub = c
        .ok("store.subscribe", json!({"query": "all-sessions"}))
        .await;
    assert_eq!(sub["data"], json!([{"id": "s1"}]));
    let store_sub = sub["subscriptionId"].clone();

    // A rule timer of 30 s, observed through its onExpire event.
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "remind", "name": "remind",
            "trigger": {"type": "event", "topic": "session.started"},
            "actions": [{"type": "set_timer", "timer": {"name": "remind:${event.id}",
                "duration": "30s",
                "onExpire": {"topic": "session.reminder", "data": {"id": {"ref": "event.id"}}}}}]}}),
    )
    .await;
    let events = c
        .ok("rules.subscribe", json!({"pattern": "session.reminder"}))
        .await;
    let started = c
        .ok(
            "rules.emit",
            json!({"topic": "session.started", "data": {"id": "s1"}}),
        )
        .await;
    assert_eq!(
        started["timestamp"], T0,
        "events are stamped by the same clock"
    );

    // Just short of the timer: nothing fires, the record is still there.
    clock.advance(29_999);
    let engine = server.rules().expect("rules are on");
    engine.settle().await;
    server.store().settle().await;
    c.assert_no_push().await;
    assert_eq!(
        c.ok("store.get", json!({"bucket": "sessions", "key": "s1"}))
            .await["id"],
        "s1"
    );

    // Past it: the timer fires, its event carries the manual time.
    clock.advance(1);
    let push = c.next_push().await;
    assert_eq!(push["channel"], "event");
    assert_eq!(push["subscriptionId"], events["subscriptionId"]);
    assert_eq!(push["data"]["topic"], "session.reminder");
    assert_eq!(push["data"]["event"]["data"], json!({"id": "s1"}));
    assert_eq!(push["data"]["event"]["timestamp"], T0 + 30_000);
    engine.settle().await;
    server.store().settle().await;
    c.assert_no_push().await;
    assert_eq!(
        c.ok("store.get", json!({"bucket": "sessions", "key": "s1"}))
            .await["id"],
        "s1",
        "the record's TTL (1 min) has not run out"
    );

    // Past the TTL (and the next sweep, 1 s later on the same clock): the sweep removes the
    // record and the subscription sees it go.
    clock.advance(31_000);
    let push = c.next_push().await;
    assert_eq!(push["channel"], "subscription");
    assert_eq!(push["subscriptionId"], store_sub);
    assert_eq!(push["data"], json!([]));
    assert_eq!(
        c.ok("store.get", json!({"bucket": "sessions", "key": "s1"}))
            .await,
        json!(null)
    );
}
