//! Reads and writes never wait behind a slow subscriber callback, and many tasks can
//! write at once while subscribers see a consistent final state.

mod common;

use common::{o, store, users};
use noex_store::QueryDefinition;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_callback_does_not_block_reads_or_writes() {
    let s = store();
    users(&s);
    s.define_query(
        "all",
        QueryDefinition::from_json(json!({"bucket": "users"})).unwrap(),
    )
    .unwrap();
    let entered = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (e, r) = (entered.clone(), release.clone());
    s.subscribe("all", json!({}), move |_| {
        e.store(true, Ordering::SeqCst);
        let start = Instant::now();
        while !r.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .unwrap();
    s.bucket("users")
        .insert(o(json!({"id": "a", "name": "A"})))
        .unwrap();
    let start = Instant::now();
    while !entered.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "callback never ran"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The callback is blocked now; the data API keeps working.
    let t = Instant::now();
    for i in 0..100 {
        s.bucket("users")
            .insert(o(json!({"id": format!("k{i}"), "name": "x"})))
            .unwrap();
        assert!(s.bucket("users").get(&json!("a")).unwrap().is_some());
        assert_eq!(s.bucket("users").count(None).unwrap(), i + 2);
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!release.load(Ordering::SeqCst));
    release.store(true, Ordering::SeqCst);
    s.settle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_a_subscriber_converge() {
    let s = store();
    users(&s);
    s.define_query(
        "count",
        QueryDefinition::from_json(json!({"bucket": "users", "aggregate": {"function": "count"}}))
            .unwrap(),
    )
    .unwrap();
    let last = Arc::new(AtomicUsize::new(0));
    let l = last.clone();
    s.subscribe("count", json!({}), move |r| {
        l.store(r.value().as_u64().unwrap_or(0) as usize, Ordering::SeqCst)
    })
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                s.bucket("users")
                    .insert(o(json!({"id": format!("{t}-{i}"), "name": "x"})))
                    .unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.settle().await;
    assert_eq!(last.load(Ordering::SeqCst), 1000);
    assert_eq!(s.stats().records.total, 1000);
}
