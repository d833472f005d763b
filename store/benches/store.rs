//! criterion benchmarks: insert, get by key, `where` on an indexed vs an unindexed field
//! over 100k records, reading 10k records at once (`first`), and subscription fan-out (10 000 subscriptions over 100 distinct
//! `(query, params)` pairs; one insert → all affected subscribers notified).

use criterion::{Criterion, criterion_group, criterion_main};
use noex_store::{BucketDefinition, QueryDefinition, Store, StoreConfig};
use serde_json::{Map, Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bucket(store: &Store, name: &str, indexed: bool) {
    let mut def = json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"},
        "tag": {"type": "string"}, "group": {"type": "string"}, "n": {"type": "number"}}});
    if indexed {
        def["indexes"] = json!(["tag", "group"]);
    }
    store
        .define_bucket(name, BucketDefinition::from_json(def).expect("def"))
        .expect("define");
}

fn fill(store: &Store, name: &str, n: u64) {
    let b = store.bucket(name);
    for i in 0..n {
        b.insert(obj(
            json!({"tag": format!("t{}", i % 1000), "group": format!("g{}", i % 100), "n": i}),
        ))
        .expect("insert");
    }
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();

    let store = Store::start(StoreConfig::default()).expect("store");
    bucket(&store, "ins", true);
    let b = store.bucket("ins");
    c.bench_function("insert (2 indexes)", |bench| {
        bench.iter_custom(|iters| {
            // Keep memory bounded: clear (untimed) every 50k inserts.
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(50_000);
                let start = std::time::Instant::now();
                for i in 0..chunk {
                    black_box(
                        b.insert(obj(json!({"tag": "t", "group": "g", "n": i})))
                            .expect("insert"),
                    );
                }
                total += start.elapsed();
                b.clear().expect("clear");
                rt.block_on(store.settle());
                left -= chunk;
            }
            total
        })
    });

    let store = Store::start(StoreConfig::default()).expect("store");
    bucket(&store, "idx", true);
    bucket(&store, "scan", false);
    fill(&store, "idx", 100_000);
    fill(&store, "scan", 100_000);
    let idx = store.bucket("idx");
    let scan = store.bucket("scan");
    let mut k = 0u64;
    c.bench_function("get by key (100k records)", |bench| {
        bench.iter(|| {
            k = (k + 7919) % 100_000;
            black_box(idx.get(&json!(k + 1)).expect("get"))
        })
    });
    let filter = obj(json!({"tag": "t42"}));
    assert_eq!(idx.where_(&filter).expect("where").len(), 100);
    c.bench_function("where indexed (100k records, 100 hits)", |bench| {
        bench.iter(|| black_box(idx.where_(&filter).expect("where")))
    });
    c.bench_function("where unindexed (100k records, 100 hits)", |bench| {
        bench.iter(|| black_box(scan.where_(&filter).expect("where")))
    });
    // Whole-bucket reads: each record is measured against max_result_bytes before it is
    // cloned (10k records of about 70 bytes of JSON, well under the limit).
    let first = idx.first(10_000).expect("first");
    assert_eq!(first.len(), 10_000);
    c.bench_function("first 10k records (of 100k)", |bench| {
        bench.iter(|| black_box(idx.first(10_000).expect("first")))
    });

    // Fan-out: every insert changes all 100 evaluations' results.
    let store = Store::start(StoreConfig::default()).expect("store");
    bucket(&store, "fan", true);
    fill(&store, "fan", 1_000);
    store
        .define_query(
            "notInGroup",
            QueryDefinition::from_json(
                json!({"bucket": "fan", "filter": {"group": {"$neq": "{{ params.g }}"}},
                "aggregate": {"function": "count"}}),
            )
            .expect("query"),
        )
        .expect("define");
    let notified = Arc::new(AtomicU64::new(0));
    for s in 0..10_000 {
        let n = notified.clone();
        store
            .subscribe(
                "notInGroup",
                json!({"g": format!("g{}", s % 100)}),
                move |r| {
                    black_box(r.json());
                    n.fetch_add(1, Ordering::Relaxed);
                },
            )
            .expect("subscribe");
    }
    assert_eq!(store.stats().queries.active_subscriptions, 10_000);
    let fan = store.bucket("fan");
    let mut rounds = 0u64;
    c.bench_function(
        "fan-out: 1 insert -> 10k subscribers (100 evaluations)",
        |bench| {
            bench.iter(|| {
                rounds += 1;
                fan.insert(obj(json!({"tag": "x", "group": "none", "n": 0})))
                    .expect("insert");
                rt.block_on(store.settle());
            })
        },
    );
    assert_eq!(
        notified.load(Ordering::Relaxed),
        rounds * 10_000,
        "every subscriber notified once per insert"
    );
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
