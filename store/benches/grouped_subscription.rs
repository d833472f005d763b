//! Latency under a heavy subscription (attack report finding 11): a count grouped by a
//! unique field over 20 000 records is re-evaluated after every insert. Measures, on a
//! 2-worker multi-thread runtime like the server's, while inserts arrive every 50 ms:
//!
//! - `insert`: latency of an insert issued as a runtime task (spawned from a plain thread,
//!   spawn → done), which waits for a free runtime worker and for the data lock held by a
//!   running re-evaluation;
//! - `get`: latency of `get` requests issued every 2 ms the same way by another "client";
//! - `reeval`: one insert followed by `settle()` with nothing else running (the cost of
//!   one re-evaluation and notification).
//!
//! Only uses API that existed before the fix, so the same file builds against the
//! baseline: `scripts/bench-grouped-subscription.sh` runs both in one go and prints the
//! ratios. Alone: `cargo bench -p noex-store --bench grouped_subscription`.
//! Environment: `RECORDS` (default 20000), `INSERTS` (default 12).

use noex_store::{BucketDefinition, QueryDefinition, Store, StoreConfig};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} p50={:.3}ms p99={:.3}ms max={:.3}ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let records = env("RECORDS", 20_000);
    let inserts = env("INSERTS", 12);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = Store::start(StoreConfig::default()).expect("store");
        let def =
            json!({"key": "id", "schema": {"id": {"type": "number"}, "u": {"type": "string"}}});
        store
            .define_bucket("items", BucketDefinition::from_json(def).expect("def"))
            .expect("define");
        let b = store.bucket("items");
        for i in 0..records {
            b.insert(obj(json!({"id": i, "u": format!("u{i}")})))
                .expect("insert");
        }
        store
            .define_query(
                "byU",
                QueryDefinition::from_json(
                    json!({"bucket": "items", "aggregate": {"function": "count", "groupBy": "u"}}),
                )
                .expect("query"),
            )
            .expect("define query");
        let pushes = Arc::new(AtomicU64::new(0));
        let p = pushes.clone();
        let setup = Instant::now();
        let _sub = store
            .subscribe("byU", json!({}), move |_| {
                p.fetch_add(1, Ordering::Relaxed);
            })
            .expect("subscribe");
        println!(
            "records={records} inserts={inserts} initial_eval={:.3}ms",
            setup.elapsed().as_secs_f64() * 1e3
        );

        // One re-evaluation alone.
        let mut reeval = Vec::new();
        for k in 0..3 {
            let t = Instant::now();
            b.insert(obj(json!({"id": records + k, "u": format!("solo{k}")})))
                .expect("insert");
            store.settle().await;
            reeval.push(t.elapsed().as_secs_f64() * 1e3);
        }
        report("reeval", reeval);

        // Inserts every 50 ms from one client, gets every 2 ms from another. Requests are
        // spawned from plain threads, so they land on whichever runtime worker is free, as
        // connection tasks woken by the network do.
        let handle = tokio::runtime::Handle::current();
        let done = Arc::new(AtomicBool::new(false));
        let getter = {
            let (store, done, handle) = (store.clone(), done.clone(), handle.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let s = store.clone();
                    let key = json!(i % 1000);
                    let t = Instant::now();
                    lat.push(handle.spawn(async move {
                        let _ = s.bucket("items").get(&key);
                        t.elapsed()
                    }));
                    i += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                lat
            })
        };
        let inserter = {
            let (store, handle) = (store.clone(), handle.clone());
            let base = records + 10;
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                for k in 0..inserts {
                    let s = store.clone();
                    let t = Instant::now();
                    lat.push(handle.spawn(async move {
                        let _ = s
                            .bucket("items")
                            .insert(obj(json!({"id": base + k, "u": format!("new{k}")})));
                        t.elapsed()
                    }));
                    std::thread::sleep(Duration::from_millis(50));
                }
                lat
            })
        };
        let inserts_done = tokio::task::spawn_blocking(move || inserter.join())
            .await
            .expect("join")
            .expect("inserter");
        let mut insert_ms = Vec::new();
        for h in inserts_done {
            if let Ok(d) = h.await {
                insert_ms.push(d.as_secs_f64() * 1e3);
            }
        }
        let t = Instant::now();
        store.settle().await;
        let drain = t.elapsed().as_secs_f64() * 1e3;
        done.store(true, Ordering::Relaxed);
        let gets = tokio::task::spawn_blocking(move || getter.join())
            .await
            .expect("join")
            .expect("getter");
        let mut get_ms = Vec::new();
        for h in gets {
            if let Ok(d) = h.await {
                get_ms.push(d.as_secs_f64() * 1e3);
            }
        }
        report("insert", insert_ms);
        report("get", get_ms);
        println!(
            "drain_after_last_insert={drain:.3}ms pushes={}",
            pushes.load(Ordering::Relaxed)
        );
    });
}
