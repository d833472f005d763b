//! criterion benchmark of insert throughput: in memory vs batched persistence vs sync
//! persistence (one writer, and four writers sharing fsyncs through group commit).
//!
//! `cargo bench -p noex-store --bench persistence -- --warm-up-time 1 --measurement-time 5`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use noex_store::{BucketDefinition, DurabilityMode, PersistenceConfig, Store, StoreConfig};
use serde_json::{Map, Value, json};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

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

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("noex-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start(rt: &tokio::runtime::Runtime, durability: Option<DurabilityMode>, dir: &PathBuf) -> Store {
    let _guard = rt.enter();
    let store = Store::start(StoreConfig {
        persistence: durability.map(|d| PersistenceConfig::in_dir(dir, d)),
        ..StoreConfig::default()
    })
    .expect("store");
    store
        .define_bucket(
            "events",
            BucketDefinition::from_json(json!({"key": "id", "schema": {
                "id": {"type": "number", "generated": "autoincrement"},
                "kind": {"type": "string"}, "n": {"type": "number"}}}))
            .expect("def"),
        )
        .expect("define");
    store
}

fn record(i: u64) -> Map<String, Value> {
    obj(json!({"kind": "click", "n": i, "payload": "x".repeat(64)}))
}

fn inserts(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("insert");
    group.throughput(Throughput::Elements(1));
    let modes = [
        ("memory", None),
        (
            "batched_10ms",
            Some(DurabilityMode::Batched {
                window: Duration::from_millis(10),
            }),
        ),
        ("sync", Some(DurabilityMode::Sync)),
    ];
    for (name, mode) in modes {
        let dir = temp_dir(name);
        let store = start(&rt, mode, &dir);
        let bucket = store.bucket("events");
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                black_box(bucket.insert(record(i)).expect("insert"));
            })
        });
        store.close_persistence().expect("close");
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();

    // Four writer threads in sync mode: each insert still waits for its fsync, but the
    // writers share them (group commit). One iteration = 4 × 25 inserts.
    let mut group = c.benchmark_group("insert_4_writers");
    group.throughput(Throughput::Elements(100));
    group.sample_size(20);
    for (name, mode) in [("memory", None), ("sync", Some(DurabilityMode::Sync))] {
        let dir = temp_dir(&format!("{name}-4w"));
        let store = start(&rt, mode, &dir);
        group.bench_function(name, |b| {
            b.iter_batched(
                || store.clone(),
                |store| {
                    std::thread::scope(|s| {
                        for _ in 0..4 {
                            let bucket = store.bucket("events");
                            s.spawn(move || {
                                for i in 0..25 {
                                    bucket.insert(record(i)).expect("insert");
                                }
                            });
                        }
                    });
                },
                BatchSize::SmallInput,
            )
        });
        store.close_persistence().expect("close");
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, inserts);
criterion_main!(benches);
