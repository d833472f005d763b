//! Property test of persistence: after any sequence of bucket, record, transaction and
//! query operations (some failing), closing and restarting the store gives back exactly
//! the persisted part of the state it had: definitions, records with metadata and order,
//! declarative queries and autoincrement counters. Runs in sync mode (one engine
//! transaction per commit, or a few grouped) and in batched mode with a window longer
//! than the test (everything in one engine transaction).

mod common;

use common::o;
use noex_store::{
    BucketDefinition, DurabilityMode, PersistenceConfig, QueryDefinition, QueryKind, Store,
    StoreConfig,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [&str; 3] = ["auto", "keyed", "volatile"];

fn definition(bucket: usize) -> Value {
    match bucket {
        // Autoincrement keys and maxSize eviction.
        0 => json!({"key": "id", "schema": {
            "id": {"type": "number", "generated": "autoincrement"},
            "v": {"type": "number"}}, "maxSize": 4}),
        // Explicit keys, an index and a unique field.
        1 => json!({"key": "id", "schema": {
            "id": {"type": "string"}, "v": {"type": "number"}, "u": {"type": "number", "unique": true}},
            "indexes": ["v"]}),
        _ => json!({"key": "id", "schema": {"id": {"type": "string"}, "v": {"type": "number"}},
            "persistent": false}),
    }
}

#[derive(Debug, Clone)]
enum Act {
    Define(usize),
    Drop(usize),
    Insert(usize, u8, i64),
    Update(usize, u8, i64),
    Delete(usize, u8),
    Clear(usize),
    Tx(Vec<(usize, u8, i64)>),
    DefineQuery(u8, usize),
    UndefineQuery(u8),
}

fn act() -> impl Strategy<Value = Act> {
    let b = 0..BUCKETS.len();
    prop_oneof![
        2 => b.clone().prop_map(Act::Define),
        1 => b.clone().prop_map(Act::Drop),
        6 => (b.clone(), 0u8..6, -3i64..3).prop_map(|(b, k, v)| Act::Insert(b, k, v)),
        3 => (b.clone(), 0u8..6, -3i64..3).prop_map(|(b, k, v)| Act::Update(b, k, v)),
        2 => (b.clone(), 0u8..6).prop_map(|(b, k)| Act::Delete(b, k)),
        1 => b.clone().prop_map(Act::Clear),
        2 => prop::collection::vec((b.clone(), 0u8..6, -3i64..3), 1..4).prop_map(Act::Tx),
        1 => (0u8..3, b).prop_map(|(q, b)| Act::DefineQuery(q, b)),
        1 => (0u8..3).prop_map(Act::UndefineQuery),
    ]
}

fn key(bucket: usize, k: u8) -> Value {
    if bucket == 0 {
        json!(u64::from(k) + 1)
    } else {
        json!(format!("k{k}"))
    }
}

fn data(bucket: usize, k: u8, v: i64) -> serde_json::Map<String, Value> {
    match bucket {
        0 => o(json!({"v": v})),
        1 => o(json!({"id": format!("k{k}"), "v": v, "u": v})),
        _ => o(json!({"id": format!("k{k}"), "v": v})),
    }
}

/// Applies one action; errors (undefined bucket, duplicate key, conflict...) are part of
/// the test: a failed operation must leave nothing behind, in memory or on disk.
fn apply(s: &Store, act: &Act) {
    let _ = match act {
        Act::Define(b) => s
            .define_bucket(
                BUCKETS[*b],
                BucketDefinition::from_json(definition(*b)).expect("definition"),
            )
            .map(|_| ()),
        Act::Drop(b) => s.drop_bucket(BUCKETS[*b]),
        Act::Insert(b, k, v) => s.bucket(BUCKETS[*b]).insert(data(*b, *k, *v)).map(|_| ()),
        Act::Update(b, k, v) => s
            .bucket(BUCKETS[*b])
            .update(&key(*b, *k), o(json!({"v": v})))
            .map(|_| ()),
        Act::Delete(b, k) => s.bucket(BUCKETS[*b]).delete(&key(*b, *k)).map(|_| ()),
        Act::Clear(b) => s.bucket(BUCKETS[*b]).clear().map(|_| ()),
        Act::Tx(writes) => s.transaction(|tx| {
            for (b, k, v) in writes {
                let mut bucket = tx.bucket(BUCKETS[*b])?;
                if bucket.get(&key(*b, *k))?.is_some() {
                    bucket.update(&key(*b, *k), o(json!({"v": v})))?;
                } else {
                    bucket.insert(data(*b, *k, *v))?;
                }
            }
            Ok(())
        }),
        Act::DefineQuery(q, b) => s.define_query(
            &format!("q{q}"),
            QueryDefinition::from_json(
                json!({"bucket": BUCKETS[*b], "filter": {"v": {"$gte": 0}}}),
            )
            .expect("query"),
        ),
        Act::UndefineQuery(q) => s.undefine_query(&format!("q{q}")),
    };
}

/// The persisted part of a store's state.
fn persisted_state(s: &Store) -> Value {
    let mut buckets = serde_json::Map::new();
    for name in s.bucket_names() {
        let def = s.bucket_schema(&name).expect("schema");
        if def.persistent == Some(false) {
            continue;
        }
        buckets.insert(
            name.clone(),
            json!({"def": serde_json::to_value(def).expect("json"),
                   "records": s.bucket(&name).all().expect("all")}),
        );
    }
    let queries: Vec<Value> = s
        .list_queries()
        .into_iter()
        .filter(|q| q.kind == QueryKind::Declarative)
        .filter(|q| q.config.as_ref().is_some_and(|c| c.bucket != "volatile"))
        .map(|q| json!({"name": q.name, "config": q.config}))
        .collect();
    json!({"buckets": buckets, "queries": queries})
}

fn start(path: &Path, durability: DurabilityMode) -> Store {
    Store::start(StoreConfig {
        persistence: Some(PersistenceConfig::new(path, durability)),
        ttl_check_interval: Duration::ZERO,
        ..StoreConfig::default()
    })
    .expect("start")
}

fn run_case(acts: &[Act], batched: bool) -> Result<(), TestCaseError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "noex-persist-prop-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("store.redb");
    let mode = if batched {
        DurabilityMode::Batched {
            window: Duration::from_secs(3600),
        }
    } else {
        DurabilityMode::Sync
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let s = start(&path, mode);
        for act in acts {
            apply(&s, act);
        }
        // One more autoincrement insert: after the restart the next id must follow it,
        // even when records with the highest ids were deleted or evicted.
        let probe = s
            .bucket("auto")
            .insert(o(json!({"v": 0})))
            .ok()
            .and_then(|r| r["id"].as_u64());
        if let Some(id) = probe {
            // Gone again, so only the persisted counter can know it was issued.
            s.bucket("auto").delete(&json!(id)).expect("delete probe");
        }
        let expected = persisted_state(&s);
        s.close_persistence().expect("close");
        drop(s);

        let s = start(&path, mode);
        let actual = persisted_state(&s);
        let next = probe.map(|_| {
            s.bucket("auto")
                .insert(o(json!({"v": 0})))
                .ok()
                .and_then(|r| r["id"].as_u64())
        });
        s.close_persistence().expect("close");
        prop_assert_eq!(&actual, &expected);
        if let Some(id) = probe {
            prop_assert_eq!(next, Some(Some(id + 1)));
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn restart_gives_back_the_persisted_state(
        acts in prop::collection::vec(act(), 0..40),
        batched in any::<bool>(),
    ) {
        run_case(&acts, batched)?;
    }
}
