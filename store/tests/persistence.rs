//! Durable storage: every persisted kind survives a restart, TTL records that expired
//! while the store was down are gone, `persistent: false` buckets never reach the file,
//! and a damaged file fails start-up with an error naming it.

mod common;

use common::{define, o};
use noex_store::{
    BucketDefinition, BucketUpdate, DurabilityMode, ManualClock, PersistenceConfig,
    QueryDefinition, QueryKind, Store, StoreConfig, StoreError, defer_durability,
};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "noex-persist-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("store.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(path: &Path, durability: DurabilityMode) -> StoreConfig {
    StoreConfig {
        persistence: Some(PersistenceConfig::new(path, durability)),
        ..StoreConfig::default()
    }
}

fn open(path: &Path) -> Store {
    Store::start(config(path, DurabilityMode::Sync)).expect("start with persistence")
}

/// Everything observable about a store's persisted state.
fn state(s: &Store) -> Value {
    let mut buckets = serde_json::Map::new();
    for name in s.bucket_names() {
        buckets.insert(
            name.clone(),
            json!({
                "schema": serde_json::to_value(s.bucket_schema(&name).unwrap()).unwrap(),
                "records": s.bucket(&name).all().unwrap(),
            }),
        );
    }
    let queries: Vec<Value> = s
        .list_queries()
        .into_iter()
        .filter(|q| q.kind == QueryKind::Declarative)
        .map(|q| json!({"name": q.name, "config": q.config}))
        .collect();
    json!({"buckets": buckets, "queries": queries, "aux": s.load_aux("facts")})
}

#[tokio::test]
async fn every_persisted_kind_round_trips() {
    let dir = TempDir::new("roundtrip");
    let s = open(&dir.file());
    define(
        &s,
        "users",
        json!({"key": "id", "schema": {
            "id": {"type": "string", "generated": "uuid"},
            "name": {"type": "string", "required": true},
            "email": {"type": "string", "unique": true},
            "role": {"type": "string"}},
            "indexes": ["role"]}),
    );
    define(
        &s,
        "seq",
        json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"},
            "v": {"type": "string"}}}),
    );
    define(
        &s,
        "cache",
        json!({"key": "id", "schema": {"id": {"type": "string"}}, "persistent": false}),
    );
    define(
        &s,
        "gone",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    define(
        &s,
        "ring",
        json!({"key": "id", "schema": {"id": {"type": "number"}}, "maxSize": 2}),
    );

    let users = s.bucket("users");
    let alice = users
        .insert(o(
            json!({"name": "Alice", "email": "a@x.io", "role": "admin"}),
        ))
        .unwrap();
    let bob = users
        .insert(o(json!({"name": "Bob", "email": "b@x.io", "role": "user"})))
        .unwrap();
    users
        .insert(o(
            json!({"name": "Carol", "email": "c@x.io", "role": "user"}),
        ))
        .unwrap();
    users
        .update(&alice["id"], o(json!({"role": "owner"})))
        .unwrap();
    users.delete(&bob["id"]).unwrap();
    let seq = s.bucket("seq");
    for v in ["a", "b", "c"] {
        seq.insert(o(json!({"v": v}))).unwrap();
    }
    seq.delete(&json!(3)).unwrap();
    s.bucket("cache").insert(o(json!({"id": "k"}))).unwrap();
    s.bucket("gone").insert(o(json!({"id": "k"}))).unwrap();
    s.drop_bucket("gone").unwrap();
    for id in 1..=3 {
        s.bucket("ring").insert(o(json!({"id": id}))).unwrap();
    }
    // Dropping a bucket drops its counter: a redefined bucket counts from 1 again.
    let auto =
        json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}});
    define(&s, "auto", auto.clone());
    for _ in 0..3 {
        s.bucket("auto").insert(o(json!({}))).unwrap();
    }
    s.drop_bucket("auto").unwrap();
    define(&s, "auto", auto);
    assert_eq!(s.bucket("auto").insert(o(json!({}))).unwrap()["id"], 1);
    s.update_bucket(
        "users",
        BucketUpdate {
            add_fields: Some(o(json!({"age": {"type": "number"}}))),
            add_indexes: Some(vec!["name".into()]),
            ttl: None,
        },
    )
    .unwrap();
    // A transaction across two buckets.
    s.transaction(|tx| {
        tx.bucket("users")?
            .insert(o(json!({"name": "Dan", "email": "d@x.io", "age": 30})))?;
        tx.bucket("seq")?.insert(o(json!({"v": "tx"})))?;
        Ok(())
    })
    .unwrap();
    let q = |v: Value| QueryDefinition::from_json(v).unwrap();
    s.define_query(
        "byRole",
        q(json!({"bucket": "users", "filter": {"role": "{{ params.role }}"}, "sort": {"name": "asc"}})),
    )
    .unwrap();
    s.define_query("temp", q(json!({"bucket": "seq"}))).unwrap();
    s.undefine_query("temp").unwrap();
    s.define_query("cached", q(json!({"bucket": "cache"})))
        .unwrap();
    s.define_programmatic_query("prog", |_, _| Ok(json!(1)))
        .unwrap();
    s.persist_aux("facts", "a", Some(json!({"n": 1}))).unwrap();
    s.persist_aux("facts", "b", Some(json!(2))).unwrap();
    s.persist_aux("facts", "b", None).unwrap();
    s.persist_aux("rules", "r1", Some(json!("rule"))).unwrap();
    // A batch in one commit: sets, and a removal of an entry set in the same batch.
    s.persist_aux_many(
        "facts",
        vec![
            ("c".to_owned(), Some(json!(3))),
            ("d".to_owned(), Some(json!(4))),
            ("d".to_owned(), None),
        ],
    )
    .unwrap();
    assert_eq!(
        s.load_aux("facts"),
        [
            ("a".to_owned(), json!({"n": 1})),
            ("c".to_owned(), json!(3))
        ]
    );

    let before = state(&s);
    assert!(s.stats().persistence.enabled);
    s.close_persistence().unwrap();
    assert!(
        s.bucket("seq").insert(o(json!({"v": "late"}))).is_err(),
        "writes after close are refused"
    );
    drop(s);

    let s = open(&dir.file());
    let mut expected = before;
    // Not persisted: the non-persistent bucket and the query on it.
    expected["buckets"].as_object_mut().unwrap().remove("cache");
    expected["queries"]
        .as_array_mut()
        .unwrap()
        .retain(|q| q["name"] != "cached");
    assert_eq!(state(&s), expected);
    assert_eq!(s.bucket_names(), ["auto", "ring", "seq", "users"]);
    assert_eq!(s.bucket("auto").insert(o(json!({}))).unwrap()["id"], 2);
    assert_eq!(s.load_aux("rules"), [("r1".to_owned(), json!("rule"))]);
    assert!(s.stats().persistence.enabled);

    // Versions and metadata came back; the records still behave.
    let alice2 = s.bucket("users").get(&alice["id"]).unwrap().unwrap();
    assert_eq!(alice2["_version"], 2);
    assert_eq!(alice2["_createdAt"], alice["_createdAt"]);
    let alice3 = s
        .bucket("users")
        .update(&alice["id"], o(json!({"age": 41})))
        .unwrap();
    assert_eq!(alice3["_version"], 3);
    // Unique constraint and indexes are rebuilt.
    let dup = s
        .bucket("users")
        .insert(o(json!({"name": "X", "email": "c@x.io"})));
    assert!(matches!(dup, Err(StoreError::AlreadyExists { .. })));
    let owners = s
        .bucket("users")
        .where_(&o(json!({"role": "owner"})))
        .unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(s.stats().indexes.per_bucket["users"], 3);
    // The autoincrement counter continues after the highest id ever issued (4, by the
    // transaction), not after the highest id still present.
    let next = s.bucket("seq").insert(o(json!({"v": "d"}))).unwrap();
    assert_eq!(next["id"], 5);
    // Insertion order (and so maxSize eviction order) is preserved.
    let ring: Vec<Value> = s
        .bucket("ring")
        .all()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ring, [json!(2), json!(3)]);
    s.bucket("ring").insert(o(json!({"id": 4}))).unwrap();
    let ids: Vec<Value> = s
        .bucket("ring")
        .all()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [json!(3), json!(4)]);
    // The restored query runs.
    let admins = s.run_query("byRole", &json!({"role": "owner"})).unwrap();
    assert_eq!(admins.as_array().map(Vec::len), Some(1));
    // Buckets can be redefined after a restart only once dropped.
    let redefined = s.define_bucket(
        "seq",
        BucketDefinition::from_json(json!({"key": "id", "schema": {"id": {"type": "number"}}}))
            .unwrap(),
    );
    assert!(matches!(
        redefined,
        Err(StoreError::BucketAlreadyExists { .. })
    ));

    // A second restart sees the writes made after the first one, in the same order.
    let after_first = state(&s);
    s.close_persistence().unwrap();
    drop(s);
    let s = open(&dir.file());
    assert_eq!(state(&s), after_first);
    assert_eq!(
        s.bucket("seq").insert(o(json!({"v": "e"}))).unwrap()["id"],
        6
    );
    s.close_persistence().unwrap();
    drop(s);
    // The dropped bucket left nothing behind in the file.
    let db = redb::Database::open(dir.file()).unwrap();
    let txn = db.begin_read().unwrap();
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    assert!(!tables.iter().any(|t| t.contains("gone")), "{tables:?}");
    assert!(tables.contains(&"records/seq".to_owned()), "{tables:?}");
}

#[tokio::test]
async fn records_that_expired_while_down_are_gone() {
    let dir = TempDir::new("ttl");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let cfg = || StoreConfig {
        clock: Some(clock.clone()),
        ttl_check_interval: Duration::ZERO,
        ..config(&dir.file(), DurabilityMode::Sync)
    };
    let s = Store::start(cfg()).unwrap();
    define(
        &s,
        "sessions",
        json!({"key": "id", "schema": {"id": {"type": "string"}}, "ttl": "1s"}),
    );
    define(
        &s,
        "plain",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    s.bucket("sessions")
        .insert(o(json!({"id": "old"})))
        .unwrap();
    clock.advance(500);
    s.bucket("sessions")
        .insert(o(json!({"id": "new"})))
        .unwrap();
    s.bucket("plain").insert(o(json!({"id": "p"}))).unwrap();
    s.close_persistence().unwrap();
    drop(s);

    // "old" expired at +1000 ms, "new" expires at +1500 ms.
    clock.advance(700);
    let s = Store::start(cfg()).unwrap();
    let keys = |s: &Store, b: &str| -> Vec<Value> {
        s.bucket(b)
            .all()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect()
    };
    assert_eq!(keys(&s, "sessions"), [json!("new")]);
    assert_eq!(
        s.stats().records.per_bucket["sessions"],
        1,
        "not merely hidden"
    );
    assert_eq!(keys(&s, "plain"), [json!("p")]);
    s.close_persistence().unwrap();
    drop(s);

    // The expired record was removed from the file itself, not only skipped.
    let db = redb::Database::open(dir.file()).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn
        .open_table(TableDefinition::<&[u8], &[u8]>::new("records/sessions"))
        .unwrap();
    assert_eq!(table.len().unwrap(), 1);
}

#[tokio::test]
async fn non_persistent_buckets_are_never_written() {
    let dir = TempDir::new("nonpersistent");
    let s = open(&dir.file());
    define(
        &s,
        "cache",
        json!({"key": "id", "schema": {"id": {"type": "number"}}, "persistent": false}),
    );
    define(
        &s,
        "kept",
        json!({"key": "id", "schema": {"id": {"type": "number"}}}),
    );
    for id in 0..50 {
        s.bucket("cache").insert(o(json!({"id": id}))).unwrap();
    }
    s.transaction(|tx| {
        tx.bucket("cache")?.insert(o(json!({"id": 100})))?;
        tx.bucket("kept")?.insert(o(json!({"id": 100})))?;
        Ok(())
    })
    .unwrap();
    s.update_bucket(
        "cache",
        BucketUpdate {
            add_indexes: None,
            add_fields: Some(o(json!({"x": {"type": "string"}}))),
            ttl: None,
        },
    )
    .unwrap();
    s.close_persistence().unwrap();
    drop(s);

    let db = redb::Database::open(dir.file()).unwrap();
    let txn = db.begin_read().unwrap();
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    assert!(tables.contains(&"records/kept".to_owned()), "{tables:?}");
    assert!(!tables.iter().any(|t| t.contains("cache")), "{tables:?}");
    let buckets = txn
        .open_table(TableDefinition::<&[u8], &[u8]>::new("buckets"))
        .unwrap();
    let names: Vec<Vec<u8>> = buckets
        .iter()
        .unwrap()
        .map(|e| e.unwrap().0.value().to_vec())
        .collect();
    assert_eq!(names, [b"kept".to_vec()]);
    drop((buckets, txn, db));

    let s = open(&dir.file());
    assert_eq!(s.bucket_names(), ["kept"]);
    assert_eq!(s.bucket("kept").count(None).unwrap(), 1);
    s.close_persistence().unwrap();
}

fn start_error(path: &Path) -> String {
    match Store::start(config(path, DurabilityMode::Sync)) {
        Ok(_) => panic!("start must fail on a damaged file"),
        Err(e) => {
            assert_eq!(e.code(), "INTERNAL_ERROR");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_fails_start_naming_it() {
    let dir = TempDir::new("garbage");
    let path = dir.file();
    std::fs::write(&path, vec![0xA5u8; 8192]).unwrap();
    let msg = start_error(&path);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    // The damaged file is left as it was for an operator to inspect.
    assert_eq!(std::fs::read(&path).unwrap(), vec![0xA5u8; 8192]);
}

#[tokio::test]
async fn an_unreadable_record_fails_start_naming_the_file_and_record() {
    let dir = TempDir::new("badrecord");
    let path = dir.file();
    let s = open(&path);
    define(
        &s,
        "b",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    s.bucket("b").insert(o(json!({"id": "k"}))).unwrap();
    s.close_persistence().unwrap();
    drop(s);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(TableDefinition::<&[u8], &[u8]>::new("records/b"))
                .unwrap();
            let bad: &[u8] = b"\x01\0\0\0\0\0\0\0{not json";
            t.insert(b"\"k\"".as_slice(), bad).unwrap();
            // A value too short to even hold its position.
            t.insert(b"\"z\"".as_slice(), b"\x01".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let msg = start_error(&path);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("bucket \"b\""), "{msg}");
}

#[tokio::test]
async fn an_unknown_format_version_fails_start() {
    let dir = TempDir::new("format");
    let path = dir.file();
    open(&path).close_persistence().unwrap();
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<&[u8], &[u8]>::new("meta"))
            .unwrap()
            .insert(b"format".as_slice(), b"99".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let msg = start_error(&path);
    assert!(msg.contains("format version"), "{msg}");
}

#[tokio::test]
async fn a_file_in_use_fails_start() {
    let dir = TempDir::new("locked");
    let s = open(&dir.file());
    let msg = start_error(&dir.file());
    assert!(msg.contains(&dir.file().display().to_string()), "{msg}");
    s.close_persistence().unwrap();
    // Released by close: a new store opens it.
    open(&dir.file()).close_persistence().unwrap();
}

#[tokio::test]
async fn batched_writes_are_durable_after_flush() {
    let dir = TempDir::new("batched");
    let cfg = || {
        config(
            &dir.file(),
            DurabilityMode::Batched {
                window: Duration::from_secs(3600),
            },
        )
    };
    let s = Store::start(cfg()).unwrap();
    define(
        &s,
        "b",
        json!({"key": "id", "schema": {"id": {"type": "number"}}}),
    );
    for id in 0..100 {
        s.bucket("b").insert(o(json!({"id": id}))).unwrap();
    }
    // With an hour-long window nothing is forced out except by flush.
    s.flush().unwrap();
    // Peek at the file while the store still has it open: a second store cannot open
    // it (it is locked), so read through a copy.
    let copy = dir.0.join("copy.redb");
    std::fs::copy(dir.file(), &copy).unwrap();
    {
        let db = redb::Database::open(&copy).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new("records/b"))
            .unwrap();
        assert_eq!(t.len().unwrap(), 100);
    }
    for id in 100..150 {
        s.bucket("b").insert(o(json!({"id": id}))).unwrap();
    }
    // Closing writes what is still queued.
    s.close_persistence().unwrap();
    drop(s);
    let s = Store::start(cfg()).unwrap();
    assert_eq!(s.bucket("b").count(None).unwrap(), 150);
    s.close_persistence().unwrap();
}

#[tokio::test]
async fn in_memory_default_is_unchanged() {
    let s = Store::start(StoreConfig::default()).unwrap();
    assert!(!s.stats().persistence.enabled);
    assert!(s.persistence_path().is_none());
    s.persist_aux("facts", "a", Some(json!(1))).unwrap();
    assert!(s.load_aux("facts").is_empty());
    s.flush().unwrap();
    s.close_persistence().unwrap();
    define(
        &s,
        "b",
        json!({"key": "id", "schema": {"id": {"type": "number"}}}),
    );
    s.bucket("b").insert(o(json!({"id": 1}))).unwrap();
}

#[tokio::test]
async fn a_truncated_file_fails_start_naming_it() {
    let dir = TempDir::new("truncated");
    let path = dir.file();
    let s = open(&path);
    define(
        &s,
        "b",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "pad": {"type": "string"}}}),
    );
    s.transaction(|tx| {
        for id in 0..2000 {
            tx.bucket("b")?
                .insert(o(json!({"id": id, "pad": "x".repeat(100)})))?;
        }
        Ok(())
    })
    .unwrap();
    s.close_persistence().unwrap();
    drop(s);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    // redb asserts on this damage; the store turns that into an error naming the file.
    let msg = start_error(&path);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("damaged"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_writes_from_many_tasks_on_a_multi_thread_runtime() {
    let dir = TempDir::new("tasks");
    let s = open(&dir.file());
    define(
        &s,
        "b",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    s.bucket("b")
                        .insert(o(json!({"id": format!("{t}-{i}")})))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    s.close_persistence().unwrap();
    drop(s);
    let s = open(&dir.file());
    assert_eq!(s.bucket("b").count(None).unwrap(), 160);
    s.close_persistence().unwrap();
}

/// 64 tasks inserting at once in sync mode inside `defer_durability` share fsyncs: each
/// insert is visible at once, its durability resolves later, the writer commits them in
/// fewer engine transactions than inserts, and all are there after a restart. On a
/// current-thread runtime, where a blocking wait would make every insert commit alone.
#[tokio::test(flavor = "current_thread")]
async fn deferred_sync_inserts_share_commits_and_survive_a_restart() {
    let dir = TempDir::new("deferred");
    let s = open(&dir.file());
    define(
        &s,
        "b",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    let before = s.persistence_commits().expect("persistence on");
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let key = format!("k{t}");
                let b = s.bucket("b");
                let (inserted, durability) =
                    defer_durability(|| b.insert(o(json!({"id": key.clone()}))));
                inserted.unwrap();
                assert!(durability.is_pending());
                // Reads never wait for the disk.
                assert!(b.get(&json!(key)).unwrap().is_some());
                durability.wait().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let commits = s.persistence_commits().unwrap() - before;
    assert!(
        (1..64).contains(&commits),
        "{commits} commits for 64 inserts"
    );
    // A scope without writes defers nothing.
    let (_, nothing) = defer_durability(|| ());
    assert!(!nothing.is_pending());
    s.close_persistence().unwrap();
    drop(s);
    let s = open(&dir.file());
    assert_eq!(s.bucket("b").count(None).unwrap(), 64);
    s.close_persistence().unwrap();
}

/// With a long batch window, a whole session lands in one engine transaction: drops,
/// redefinitions and counters inside one group must still come out right.
#[tokio::test]
async fn one_group_with_drop_and_redefine_round_trips() {
    let dir = TempDir::new("onegroup");
    let cfg = || {
        config(
            &dir.file(),
            DurabilityMode::Batched {
                window: Duration::from_secs(3600),
            },
        )
    };
    let s = Store::start(cfg()).unwrap();
    let auto =
        json!({"key": "id", "schema": {"id": {"type": "number", "generated": "autoincrement"}}});
    define(&s, "auto", auto.clone());
    define(&s, "other", auto.clone());
    for _ in 0..3 {
        s.bucket("auto").insert(o(json!({}))).unwrap();
        s.bucket("other").insert(o(json!({}))).unwrap();
    }
    s.drop_bucket("auto").unwrap();
    define(&s, "auto", auto);
    s.bucket("auto").insert(o(json!({}))).unwrap();
    s.bucket("other").delete(&json!(3)).unwrap();
    let before = state(&s);
    s.close_persistence().unwrap();
    drop(s);

    let s = Store::start(cfg()).unwrap();
    assert_eq!(state(&s), before);
    assert_eq!(s.bucket("auto").insert(o(json!({}))).unwrap()["id"], 2);
    assert_eq!(s.bucket("other").insert(o(json!({}))).unwrap()["id"], 4);
    s.close_persistence().unwrap();
}
