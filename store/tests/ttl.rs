//! TTL expiry with tokio paused time, `purge_ttl`, and `maxSize` eviction.

mod common;

use common::{define, o};
use noex_store::{ManualClock, QueryDefinition, Store, StoreConfig};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn records_expire_and_the_sweep_notifies() {
    let s = Store::start(StoreConfig {
        ttl_check_interval: Duration::from_millis(500),
        ..Default::default()
    })
    .unwrap();
    define(
        &s,
        "sessions",
        json!({"key": "id", "schema": {"id": {"type": "string"}}, "ttl": "2s"}),
    );
    let b = s.bucket("sessions");
    let r = b.insert(o(json!({"id": "x"}))).unwrap();
    assert_eq!(
        r["_expiresAt"].as_u64().unwrap(),
        r["_createdAt"].as_u64().unwrap() + 2000
    );
    tokio::time::advance(Duration::from_millis(1000)).await;
    b.insert(o(json!({"id": "y"}))).unwrap();
    s.define_query(
        "all",
        QueryDefinition::from_json(json!({"bucket": "sessions", "fields": ["id"]})).unwrap(),
    )
    .unwrap();
    let log: Arc<Mutex<Vec<Value>>> = Arc::default();
    let l = log.clone();
    let (_, initial) = s
        .subscribe("all", json!({}), move |r| l.lock().push(r.value().clone()))
        .unwrap();
    assert_eq!(initial.value(), &json!([{"id": "x"}, {"id": "y"}]));
    let mut feed = s.change_feed();
    s.settle().await;
    tokio::time::advance(Duration::from_millis(1100)).await;
    // expired "x" is invisible even before the sweep removes it
    assert!(b.get(&json!("x")).unwrap().is_none());
    for _ in 0..1 {
        tokio::time::advance(Duration::from_millis(500)).await;
        tokio::task::yield_now().await;
    }
    s.settle().await;
    assert_eq!(s.stats().records.total, 1);
    assert_eq!(*log.lock(), vec![json!([{"id": "y"}])]);
    let ev = feed.recv().await.unwrap();
    assert_eq!(ev.topic(), "bucket.sessions.deleted");
    assert_eq!(ev.key, json!("x"));
}

#[tokio::test]
async fn purge_ttl_with_manual_clock() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let s = Store::start(StoreConfig {
        ttl_check_interval: Duration::ZERO,
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .unwrap();
    assert!(!s.stats().ttl.enabled);
    define(
        &s,
        "c",
        json!({"key": "id", "schema": {"id": {"type": "string"}}, "ttl": 100}),
    );
    s.bucket("c").insert(o(json!({"id": "a"}))).unwrap();
    clock.advance(50);
    s.bucket("c").insert(o(json!({"id": "b"}))).unwrap();
    assert_eq!(s.purge_ttl(), 0);
    clock.advance(60);
    assert_eq!(s.bucket("c").count(None).unwrap(), 1);
    // an expired key can be inserted again
    s.bucket("c").insert(o(json!({"id": "a"}))).unwrap();
    clock.advance(100);
    assert_eq!(s.purge_ttl(), 2);
    assert_eq!(s.stats().records.total, 0);
}

#[tokio::test]
async fn max_size_evicts_oldest_and_notifies() {
    let s = common::store();
    define(
        &s,
        "log",
        json!({"key": "id", "schema": {"id": {"type": "number"}}, "maxSize": 3}),
    );
    s.define_query(
        "ids",
        QueryDefinition::from_json(json!({"bucket": "log", "fields": ["id"]})).unwrap(),
    )
    .unwrap();
    let log: Arc<Mutex<Vec<Value>>> = Arc::default();
    let l = log.clone();
    s.subscribe("ids", json!({}), move |r| l.lock().push(r.value().clone()))
        .unwrap();
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let d = deleted.clone();
    s.on_change("bucket.log.deleted", move |e| d.lock().push(e.key.clone()));
    let b = s.bucket("log");
    for i in 1..=3 {
        b.insert(o(json!({"id": i}))).unwrap();
    }
    b.update(&json!(1), o(json!({}))).unwrap();
    s.settle().await;
    b.insert(o(json!({"id": 4}))).unwrap();
    b.insert(o(json!({"id": 5}))).unwrap();
    s.settle().await;
    let ids: Vec<Value> = b.all().unwrap().iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![json!(3), json!(4), json!(5)]);
    assert_eq!(*deleted.lock(), vec![json!(1), json!(2)]);
    assert_eq!(
        log.lock().last().unwrap(),
        &json!([{"id": 3}, {"id": 4}, {"id": 5}])
    );
}

/// The background sweep waits on the store's clock: with a manual clock nothing expires
/// until the clock is advanced, then the sweep removes the record (a `deleted` change)
/// without any tokio time passing. Timestamps are the manual clock's.
#[tokio::test]
async fn the_sweep_follows_a_manual_clock() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let s = Store::start(StoreConfig {
        ttl_check_interval: Duration::from_secs(1),
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .unwrap();
    define(
        &s,
        "c",
        json!({"key": "id", "schema": {"id": {"type": "string"}}, "ttl": "5s"}),
    );
    let r = s.bucket("c").insert(o(json!({"id": "a"}))).unwrap();
    assert_eq!(r["_createdAt"], json!(1_000_000));
    assert_eq!(r["_expiresAt"], json!(1_005_000));
    let mut feed = s.change_feed();
    clock.advance(4_000);
    tokio::task::yield_now().await;
    assert_eq!(s.stats().records.total, 1, "not expired yet");
    clock.advance(2_000);
    let ev = feed.recv().await.unwrap();
    assert_eq!(ev.topic(), "bucket.c.deleted");
    assert_eq!(ev.key, json!("a"));
    assert_eq!(s.stats().records.total, 0);
}
