//! Store-wide bounds: `max_result_bytes` on every read that returns records and on query
//! results, `max_buckets` and `max_queries` on definitions (not on what is loaded from
//! disk), and the read time budget of `with_read_deadline`.

mod common;

use common::{define, o};
use noex_store::{
    BucketDefinition, DEFAULT_MAX_RESULT_BYTES, DurabilityMode, PersistenceConfig, QueryDefinition,
    Store, StoreConfig, StoreError, with_read_deadline,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const LIMIT: usize = 10_000;

/// A store whose results may hold at most 10 000 bytes, with 30 records of ~1 000 bytes.
fn big() -> Store {
    let s = Store::start(StoreConfig {
        max_result_bytes: LIMIT,
        ..StoreConfig::default()
    })
    .unwrap();
    define(
        &s,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "body": {"type": "string"}}}),
    );
    let b = s.bucket("docs");
    for id in 0..30 {
        b.insert(o(json!({"id": id, "body": "x".repeat(1000)})))
            .unwrap();
    }
    s
}

fn too_large<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    match r {
        Err(e @ StoreError::ResultTooLarge { .. }) => {
            assert_eq!(e, StoreError::ResultTooLarge { limit: LIMIT });
            assert_eq!(e.code(), "VALIDATION_ERROR");
            assert_eq!(
                e.to_string(),
                "Result exceeds 10000 bytes; read it in pages with store.paginate"
            );
        }
        other => panic!("expected ResultTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn reads_that_return_records_stop_at_the_limit() {
    assert_eq!(StoreConfig::default().max_result_bytes, 8 * 1024 * 1024);
    assert_eq!(DEFAULT_MAX_RESULT_BYTES, 8 * 1024 * 1024);
    let s = big();
    let b = s.bucket("docs");
    too_large(b.all());
    too_large(b.where_(&o(json!({"body": {"$startsWith": "x"}}))));
    too_large(b.where_scan(&o(json!({"body": {"$startsWith": "x"}}))));
    too_large(b.first(30));
    too_large(b.last(30));
    too_large(b.paginate(30, None));
    too_large(b.paginate(20, Some(&json!(2))));
    // What fits still answers: pages, small reads, counts and aggregates.
    let page = b.paginate(5, None).unwrap();
    assert_eq!(page.records.len(), 5);
    assert!(page.has_more);
    assert_eq!(b.first(9).unwrap().len(), 9);
    assert_eq!(b.last(9).unwrap().len(), 9);
    assert_eq!(b.where_(&o(json!({"id": {"$lt": 3}}))).unwrap().len(), 3);
    assert_eq!(b.count(None).unwrap(), 30);
    assert_eq!(b.sum("id", None).unwrap(), json!(435));
    assert!(b.find_one(&o(json!({"id": 29}))).unwrap().is_some());
    assert!(b.get(&json!(29)).unwrap().is_some());
}

#[tokio::test]
async fn a_single_record_over_the_limit_is_not_returned_by_find_one() {
    let s = big();
    let b = s.bucket("docs");
    b.insert(o(json!({"id": 100, "body": "y".repeat(LIMIT)})))
        .unwrap();
    too_large(b.find_one(&o(json!({"id": 100}))));
    too_large(b.find_one(&o(json!({"body": {"$startsWith": "y"}}))));
}

#[tokio::test]
async fn transaction_reads_stop_at_the_limit() {
    let s = big();
    too_large(s.transaction(|tx| tx.bucket("docs")?.all()));
    too_large(s.transaction(|tx| tx.bucket("docs")?.where_(&o(json!({"id": {"$gte": 0}})))));
    let n = s
        .transaction(|tx| {
            tx.bucket("docs")?
                .insert(o(json!({"id": 31, "body": "z"})))?;
            let n = tx.bucket("docs")?.count(None)?;
            let first = tx
                .bucket("docs")?
                .find_one(&o(json!({"id": {"$gte": 0}})))?;
            assert_eq!(first.unwrap()["id"], 0);
            Ok(n)
        })
        .unwrap();
    assert_eq!(n, 31);
}

#[tokio::test]
async fn query_results_stop_at_the_limit() {
    let s = big();
    let def = |v| QueryDefinition::from_json(v).unwrap();
    s.define_query("all", def(json!({"bucket": "docs"})))
        .unwrap();
    s.define_query("ids", def(json!({"bucket": "docs", "fields": ["id"]})))
        .unwrap();
    s.define_query(
        "byBody",
        def(json!({"bucket": "docs", "aggregate": {"function": "count", "groupBy": "body"}})),
    )
    .unwrap();
    s.define_query(
        "firstFew",
        def(json!({"bucket": "docs", "sort": {"id": "desc"}, "limit": 3})),
    )
    .unwrap();
    s.define_programmatic_query("prog", |ctx, _| {
        Ok(json!(
            ctx.bucket("docs")?.count(None)?.to_string().repeat(LIMIT)
        ))
    })
    .unwrap();
    s.define_programmatic_query("progAll", |ctx, _| {
        Ok(json!(ctx.bucket("docs")?.all()?.len()))
    })
    .unwrap();
    too_large(s.run_query("all", &json!({})));
    too_large(s.subscribe("all", json!({}), |_| {}));
    too_large(s.subscribe_watch("all", json!({})));
    too_large(s.run_query("prog", &json!({})));
    too_large(s.run_query("progAll", &json!({})));
    assert_eq!(s.stats().queries.active_subscriptions, 0);
    assert_eq!(
        s.run_query("ids", &json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        30
    );
    assert_eq!(s.run_query("byBody", &json!({})).unwrap()[0]["value"], 30);
    assert_eq!(s.run_query("firstFew", &json!({})).unwrap()[0]["id"], 29);
}

#[tokio::test]
async fn bucket_and_query_counts_are_bounded() {
    let s = Store::start(StoreConfig {
        max_buckets: 2,
        max_queries: 2,
        ..StoreConfig::default()
    })
    .unwrap();
    let bucket = || {
        BucketDefinition::from_json(json!({"key": "id", "schema": {"id": {"type": "number"}}}))
            .unwrap()
    };
    s.define_bucket("a", bucket()).unwrap();
    s.define_bucket("b", bucket()).unwrap();
    let err = s.define_bucket("c", bucket()).unwrap_err();
    assert_eq!(
        err,
        StoreError::LimitExceeded {
            message: "Bucket limit reached (max 2)".into()
        }
    );
    assert_eq!(err.code(), "RATE_LIMITED");
    assert_eq!(err.to_string(), "Bucket limit reached (max 2)");
    // An existing name is still reported as such.
    assert!(matches!(
        s.define_bucket("a", bucket()),
        Err(StoreError::BucketAlreadyExists { .. })
    ));
    s.drop_bucket("b").unwrap();
    s.define_bucket("c", bucket()).unwrap();
    assert_eq!(s.bucket_names(), ["a", "c"]);

    let q = || QueryDefinition::from_json(json!({"bucket": "a"})).unwrap();
    s.define_query("q1", q()).unwrap();
    s.define_programmatic_query("q2", |_, _| Ok(json!(1)))
        .unwrap();
    let err = s.define_query("q3", q()).unwrap_err();
    assert_eq!(err.code(), "RATE_LIMITED");
    assert_eq!(err.to_string(), "Query limit reached (max 2)");
    assert!(matches!(
        s.define_programmatic_query("q3", |_, _| Ok(json!(1))),
        Err(StoreError::LimitExceeded { .. })
    ));
    s.undefine_query("q1").unwrap();
    s.define_query("q3", q()).unwrap();
    assert_eq!(s.list_queries().len(), 2);
}

#[tokio::test]
async fn definitions_loaded_from_disk_never_fail_on_the_limits() {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "noex-limits-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let persistence = Some(PersistenceConfig::in_dir(&dir, DurabilityMode::Sync));
    {
        let s = Store::start(StoreConfig {
            persistence: persistence.clone(),
            ..StoreConfig::default()
        })
        .unwrap();
        for name in ["a", "b", "c"] {
            define(
                &s,
                name,
                json!({"key": "id", "schema": {"id": {"type": "number"}}}),
            );
            s.define_query(
                &format!("q{name}"),
                QueryDefinition::from_json(json!({"bucket": name})).unwrap(),
            )
            .unwrap();
        }
        s.close_persistence().unwrap();
    }
    let s = Store::start(StoreConfig {
        persistence,
        max_buckets: 2,
        max_queries: 2,
        ..StoreConfig::default()
    })
    .unwrap();
    assert_eq!(s.bucket_names(), ["a", "b", "c"]);
    assert_eq!(s.list_queries().len(), 3);
    let def =
        BucketDefinition::from_json(json!({"key": "id", "schema": {"id": {"type": "number"}}}))
            .unwrap();
    assert!(matches!(
        s.define_bucket("d", def),
        Err(StoreError::LimitExceeded { .. })
    ));
    assert!(matches!(
        s.define_query(
            "qd",
            QueryDefinition::from_json(json!({"bucket": "a"})).unwrap()
        ),
        Err(StoreError::LimitExceeded { .. })
    ));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_subscription_whose_result_grows_past_the_limit_ends() {
    let s = Store::start(StoreConfig {
        max_result_bytes: LIMIT,
        ..StoreConfig::default()
    })
    .unwrap();
    define(
        &s,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "body": {"type": "string"}}}),
    );
    s.define_query(
        "all",
        QueryDefinition::from_json(json!({"bucket": "docs"})).unwrap(),
    )
    .unwrap();
    let ended = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let e = ended.clone();
    let (id, _) = s
        .subscribe_with("all", json!({}), |_| {}, move |err| e.lock().push(err))
        .unwrap();
    let (_, mut watch) = s.subscribe_watch("all", json!({})).unwrap();
    s.bucket("docs")
        .insert(o(json!({"id": 1, "body": "x".repeat(LIMIT)})))
        .unwrap();
    s.settle().await;
    assert_eq!(*ended.lock(), [StoreError::ResultTooLarge { limit: LIMIT }]);
    assert!(watch.changed().await.is_err(), "the watch channel closes");
    assert!(matches!(
        s.unsubscribe(id),
        Err(StoreError::SubscriptionNotFound { .. })
    ));
    assert_eq!(s.stats().queries.active_subscriptions, 0);
}

/// `max_record_bytes` bounds one record, `max_store_bytes` all of them: every write that
/// grows the total is counted (insert, update, a whole transaction), deletes free room.
#[tokio::test]
async fn records_and_the_whole_store_are_bounded_in_bytes() {
    let s = Store::start(StoreConfig {
        max_record_bytes: 3_000,
        max_store_bytes: 10_000,
        ..StoreConfig::default()
    })
    .unwrap();
    define(
        &s,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "body": {"type": "string"}}}),
    );
    let b = s.bucket("docs");
    match b.insert(o(json!({"id": 0, "body": "x".repeat(3_000)}))) {
        Err(StoreError::InvalidArgument { message }) => {
            assert!(message.contains("3000"), "{message}")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // Records of about 1 080 bytes of JSON (about 1 700 of estimated memory, which counts)
    // until the store is full.
    let mut n = 0;
    let full = loop {
        match b.insert(o(json!({"id": n, "body": "x".repeat(1_000)}))) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 100, "never refused");
    };
    assert!(matches!(full, StoreError::LimitExceeded { .. }), "{full:?}");
    assert!(full.to_string().contains("Store is full"), "{full}");
    assert!((5..=6).contains(&n), "{n} records");
    assert_eq!(b.count(None).unwrap(), n as usize);
    // Growing a record by more than the room left is refused and changes nothing...
    let grow = b.update(&json!(0), o(json!({"body": "y".repeat(2_100)})));
    assert!(
        matches!(grow, Err(StoreError::LimitExceeded { .. })),
        "{grow:?}"
    );
    assert_eq!(b.get(&json!(0)).unwrap().unwrap()["_version"], 1);
    // ...shrinking one always works.
    b.update(&json!(0), o(json!({"body": "y"}))).unwrap();
    // A transaction counts as a whole: three more records do not fit.
    let tx = s.transaction(|tx| {
        for id in 100..103 {
            tx.bucket("docs")?
                .insert(o(json!({"id": id, "body": "z".repeat(1_000)})))?;
        }
        Ok(())
    });
    assert!(
        matches!(tx, Err(StoreError::LimitExceeded { .. })),
        "{tx:?}"
    );
    assert_eq!(b.count(None).unwrap(), n as usize);
    // Deletes free room.
    b.delete(&json!(1)).unwrap();
    b.delete(&json!(2)).unwrap();
    b.insert(o(json!({"id": 200, "body": "x".repeat(1_000)})))
        .unwrap();
}

/// Index entries count against `max_store_bytes` with their records (the third red-team
/// run: eight indexed text fields took almost three times the memory of the records), and
/// deleting the records frees their entries' room too.
#[tokio::test]
async fn index_entries_count_against_the_store_limit() {
    let fields: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
    let fill = |indexed: bool| {
        let s = Store::start(StoreConfig {
            max_store_bytes: 200_000,
            ..StoreConfig::default()
        })
        .unwrap();
        let mut schema = serde_json::Map::new();
        schema.insert("id".into(), json!({"type": "number"}));
        for f in &fields {
            schema.insert(f.clone(), json!({"type": "string"}));
        }
        let indexes: Vec<&String> = if indexed {
            fields.iter().collect()
        } else {
            Vec::new()
        };
        define(
            &s,
            "docs",
            json!({"key": "id", "schema": schema, "indexes": indexes}),
        );
        let b = s.bucket("docs");
        let mut n = 0u32;
        loop {
            let mut record = serde_json::Map::new();
            record.insert("id".into(), json!(n));
            for f in &fields {
                record.insert(f.clone(), json!(format!("{f}-{n:08}")));
            }
            match b.insert(record) {
                Ok(_) => n += 1,
                Err(e) => {
                    assert!(matches!(e, StoreError::LimitExceeded { .. }), "{e:?}");
                    break;
                }
            }
            assert!(n < 10_000, "never refused");
        }
        (s, n)
    };
    let (_, plain) = fill(false);
    let (s, indexed) = fill(true);
    // Each record holds 8 entries of ~140 bytes besides its own ~1 000.
    assert!(
        indexed * 3 < plain * 2,
        "{indexed} indexed records vs {plain} without indexes"
    );
    // Deleting every record frees the room of the records and of their entries alike.
    let b = s.bucket("docs");
    for id in 0..indexed {
        b.delete(&json!(id)).unwrap();
    }
    let mut record = serde_json::Map::new();
    record.insert("id".into(), json!(0));
    for f in &fields {
        record.insert(f.clone(), json!("again"));
    }
    for id in 0..indexed {
        record.insert("id".into(), json!(id));
        b.insert(record.clone()).unwrap();
    }
}

/// Past a read deadline every filter read answers `ReadTimeout` instead of a partial
/// result: a transaction rolls back (its writes too), a subscription is not made, a
/// programmatic query's reads fail; without a deadline the same reads answer.
#[tokio::test]
async fn reads_past_their_deadline_answer_read_timeout_and_leave_nothing_behind() {
    let s = big();
    let zero = std::time::Duration::ZERO;
    let filter = o(json!({"id": {"$gte": 0}}));
    let timed_out = |r: Result<_, StoreError>| {
        assert!(
            matches!(r, Err(StoreError::ReadTimeout { limit_ms: 0 })),
            "{:?}",
            r.map(|_: ()| ())
        )
    };
    let docs = s.bucket("docs");
    timed_out(with_read_deadline(zero, || {
        docs.count(Some(&filter)).map(drop)
    }));
    timed_out(with_read_deadline(zero, || {
        docs.find_one(&filter).map(drop)
    }));
    timed_out(with_read_deadline(zero, || {
        docs.sum("id", Some(&filter)).map(drop)
    }));
    // A transaction that wrote first and then read past its deadline commits nothing.
    timed_out(with_read_deadline(zero, || {
        s.transaction(|tx| {
            tx.bucket("docs")?
                .insert(o(json!({"id": 100, "body": "late"})))?;
            tx.bucket("docs")?.count(Some(&filter))
        })
        .map(drop)
    }));
    assert_eq!(docs.get(&json!(100)).unwrap(), None);
    // A subscription whose first evaluation ran past the deadline is not made.
    s.define_query(
        "small",
        QueryDefinition::from_json(json!({"bucket": "docs", "filter": {"id": {"$lt": 2}}}))
            .unwrap(),
    )
    .unwrap();
    timed_out(with_read_deadline(zero, || {
        s.subscribe("small", json!({}), |_| {}).map(drop)
    }));
    assert_eq!(s.stats().queries.active_subscriptions, 0);
    // Without a deadline (and after one) the same reads answer.
    assert_eq!(docs.count(Some(&filter)).unwrap(), 30);
    let (_, first) = s.subscribe("small", json!({}), |_| {}).unwrap();
    assert_eq!(first.value().as_array().map(Vec::len), Some(2));
}

/// A re-evaluation on the slow lane past `max_evaluation_time` ends its subscriptions
/// with `ReadTimeout`, instead of holding the slow lane (and every heavy subscription
/// behind it) for as long as it likes.
#[tokio::test]
async fn a_slow_lane_evaluation_past_its_time_ends_its_subscriptions() {
    let s = Store::start(StoreConfig {
        max_evaluation_time: std::time::Duration::from_millis(1),
        ..StoreConfig::default()
    })
    .unwrap();
    define(
        &s,
        "txt",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "s": {"type": "string"}}}),
    );
    let text = "É".repeat(200_000);
    for id in 0..8 {
        s.bucket("txt")
            .insert(o(json!({"id": id, "s": text})))
            .unwrap();
    }
    let clauses: Vec<_> = (0..50)
        .map(|i| json!({"s": {"$contains": format!("z{i}")}}))
        .collect();
    s.define_query(
        "heavy",
        QueryDefinition::from_json(json!({"bucket": "txt", "filter": {"$or": clauses}})).unwrap(),
    )
    .unwrap();
    let ended = Arc::new(std::sync::Mutex::new(None));
    let seen = ended.clone();
    // The first evaluation (no deadline here) takes well over 5 ms: the query is slow.
    s.subscribe_with(
        "heavy",
        json!({}),
        |_| {},
        move |err| {
            *seen.lock().unwrap() = Some(err);
        },
    )
    .unwrap();
    s.bucket("txt")
        .insert(o(json!({"id": 100, "s": text})))
        .unwrap();
    s.settle().await;
    let ended = ended.lock().unwrap().take();
    assert!(
        matches!(ended, Some(StoreError::ReadTimeout { limit_ms: 1 })),
        "{ended:?}"
    );
    assert_eq!(s.stats().queries.active_subscriptions, 0);
}

/// Sort values are compared by a bounded prefix: objects of thousands of keys used to
/// cost seconds per sort (each comparison sorted both objects' keys). Values that differ
/// in their first nodes still sort by them; values equal there keep insertion order.
#[tokio::test]
async fn large_sort_values_compare_by_their_first_nodes() {
    let s = Store::start(StoreConfig::default()).unwrap();
    define(
        &s,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "k": {"type": "object"}}}),
    );
    // Keys a0000.. a0999: the first key decides between records 0..3; records 3 and 4
    // differ only in their last key, past the compared prefix.
    let big = |first: u32, last: u32| {
        let mut m = serde_json::Map::new();
        for i in 0..1000 {
            let v = match i {
                0 => first,
                999 => last,
                _ => 7,
            };
            m.insert(format!("a{i:04}"), json!(v));
        }
        serde_json::Value::Object(m)
    };
    let rows = [
        (0, big(3, 0)),
        (1, big(1, 0)),
        (2, big(2, 0)),
        (3, big(0, 9)),
        (4, big(0, 1)),
    ];
    for (id, k) in rows {
        s.bucket("docs")
            .insert(o(json!({"id": id, "k": k})))
            .unwrap();
    }
    s.define_query(
        "sorted",
        QueryDefinition::from_json(json!({"bucket": "docs", "sort": {"k": "asc"}})).unwrap(),
    )
    .unwrap();
    let (_, result) = s.subscribe("sorted", json!({}), |_| {}).unwrap();
    let ids: Vec<_> = result
        .value()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    // 3 and 4 tie (insertion order), then 1, 2, 0 by the first key.
    assert_eq!(ids, vec![json!(3), json!(4), json!(1), json!(2), json!(0)]);
}

/// Fifth red-team run: `groupBy` repeating one field a thousand times made each group key a
/// thousand copies of a 1 MB value (2 GB for one subscribe; 5 000 aborted the server).
/// `fields` and `groupBy` name distinct fields, at most 256 and 32.
#[tokio::test]
async fn fields_and_group_by_name_each_field_once_within_a_bound() {
    let s = big();
    let def = |v| QueryDefinition::from_json(v).unwrap();
    let refused = |name: &str, v| match s.define_query(name, def(v)) {
        Err(StoreError::InvalidDefinition { message }) => message,
        other => panic!("{name}: {other:?}"),
    };
    let repeated = refused(
        "g",
        json!({"bucket": "docs", "aggregate": {"function": "count", "groupBy": ["body", "body"]}}),
    );
    assert!(
        repeated.contains("groupBy names \"body\" more than once"),
        "{repeated}"
    );
    let many: Vec<String> = (0..33).map(|i| format!("f{i}")).collect();
    let too_many = refused(
        "h",
        json!({"bucket": "docs", "aggregate": {"function": "count", "groupBy": many}}),
    );
    assert!(too_many.contains("at most 32"), "{too_many}");
    let projected = refused("p", json!({"bucket": "docs", "fields": vec!["body"; 1000]}));
    assert!(projected.contains("at most 256"), "{projected}");
    let twice = refused("q", json!({"bucket": "docs", "fields": ["id", "id"]}));
    assert!(
        twice.contains("fields names \"id\" more than once"),
        "{twice}"
    );
    // Distinct fields within the bounds are fine.
    s.define_query(
        "ok",
        def(json!({"bucket": "docs", "fields": ["id", "body"],
            "aggregate": {"function": "count", "groupBy": ["id", "body"]}})),
    )
    .unwrap();
}

/// Fifth red-team run: a projection or grouping over a large value ran to its end however
/// long it took (the read budget was only checked in filter tests); now every record of
/// them ticks the budget.
#[tokio::test]
async fn projection_and_grouping_stop_at_the_read_deadline() {
    let s = big();
    s.define_query(
        "grouped",
        QueryDefinition::from_json(
            json!({"bucket": "docs", "aggregate": {"function": "count", "groupBy": "body"}}),
        )
        .unwrap(),
    )
    .unwrap();
    s.define_query(
        "projected",
        QueryDefinition::from_json(json!({"bucket": "docs", "fields": ["body"], "limit": 3}))
            .unwrap(),
    )
    .unwrap();
    for name in ["grouped", "projected"] {
        let late = with_read_deadline(std::time::Duration::ZERO, || {
            s.subscribe(name, json!({}), |_| {}).map(drop)
        });
        assert!(
            matches!(late, Err(StoreError::ReadTimeout { .. })),
            "{name}: {late:?}"
        );
    }
    assert_eq!(s.stats().queries.active_subscriptions, 0);
}

/// A record past `max_record_bytes` fails at the transaction operation that writes it (an
/// insert or an update), before commit, so that its caller knows which one it was.
#[tokio::test]
async fn a_transaction_write_too_large_fails_where_it_is_written() {
    let s = Store::start(StoreConfig {
        max_record_bytes: 3_000,
        ..StoreConfig::default()
    })
    .unwrap();
    define(
        &s,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "body": {"type": "string"}}}),
    );
    let mut failed_at = None;
    let tx = s.transaction(|tx| {
        let mut b = tx.bucket("docs")?;
        for (i, len) in [10, 20, 3_000, 30].into_iter().enumerate() {
            if let Err(e) = b.insert(o(json!({"id": i, "body": "x".repeat(len)}))) {
                failed_at = Some(i);
                return Err(e);
            }
        }
        Ok(())
    });
    assert!(
        matches!(&tx, Err(StoreError::InvalidArgument { message }) if message.contains("3000")),
        "{tx:?}"
    );
    assert_eq!(failed_at, Some(2));
    assert_eq!(s.bucket("docs").count(None).unwrap(), 0);
    s.bucket("docs")
        .insert(o(json!({"id": 1, "body": "x"})))
        .unwrap();
    let grow = s.transaction(|tx| {
        tx.bucket("docs")?
            .update(&json!(1), o(json!({"body": "y".repeat(3_000)})))
    });
    assert!(
        matches!(grow, Err(StoreError::InvalidArgument { .. })),
        "{grow:?}"
    );
    assert_eq!(
        s.bucket("docs").get(&json!(1)).unwrap().unwrap()["body"],
        "x"
    );
}

#[tokio::test]
async fn the_records_one_transaction_writes_are_bounded_together() {
    assert_eq!(
        StoreConfig::default().max_transaction_bytes,
        16 * 1024 * 1024
    );
    let s = Store::start(StoreConfig {
        max_record_bytes: 3_000,
        max_transaction_bytes: 6_000,
        ..StoreConfig::default()
    })
    .unwrap();
    define(
        &s,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "body": {"type": "string"}}}),
    );
    // Two records of ~2 KB fit; the third (an update counts like an insert) does not.
    let mut failed_at = None;
    let tx = s.transaction(|tx| {
        let mut b = tx.bucket("docs")?;
        for (i, step) in ["insert", "insert", "update"].into_iter().enumerate() {
            let done = if step == "insert" {
                b.insert(o(json!({"id": i, "body": "x".repeat(2_000)})))
            } else {
                b.update(&json!(0), o(json!({"body": "y".repeat(2_000)})))
            };
            if let Err(e) = done {
                failed_at = Some(i);
                return Err(e);
            }
        }
        Ok(())
    });
    assert!(
        matches!(&tx, Err(StoreError::InvalidArgument { message })
            if message.contains("more than 6000 bytes") && message.contains("maxTransactionBytes")),
        "{tx:?}"
    );
    assert_eq!(failed_at, Some(2));
    assert_eq!(s.bucket("docs").count(None).unwrap(), 0, "nothing applied");
    // Under the bound, and a bound below one record is raised to it.
    s.transaction(|tx| {
        let mut b = tx.bucket("docs")?;
        b.insert(o(json!({"id": 1, "body": "x".repeat(2_000)})))?;
        b.insert(o(json!({"id": 2, "body": "x".repeat(2_000)})))
    })
    .unwrap();
    // Removed records count too; a record buffered here is not counted twice.
    let removed = s.transaction(|tx| {
        let mut b = tx.bucket("docs")?;
        b.insert(o(json!({"id": 3, "body": "x".repeat(2_000)})))?;
        b.delete(&json!(3))?;
        b.delete(&json!(1))?;
        b.delete(&json!(2))
    });
    assert!(
        matches!(&removed, Err(StoreError::InvalidArgument { message }) if message.contains("removes more than 6000")),
        "{removed:?}"
    );
    assert_eq!(s.bucket("docs").count(None).unwrap(), 2, "nothing applied");
    s.transaction(|tx| tx.bucket("docs")?.delete(&json!(1)))
        .unwrap();
    assert_eq!(s.bucket("docs").count(None).unwrap(), 1);
    let small = Store::start(StoreConfig {
        max_record_bytes: 3_000,
        max_transaction_bytes: 10,
        ..StoreConfig::default()
    })
    .unwrap();
    define(
        &small,
        "docs",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "body": {"type": "string"}}}),
    );
    small
        .transaction(|tx| {
            tx.bucket("docs")?
                .insert(o(json!({"id": 1, "body": "x".repeat(2_000)})))
        })
        .unwrap();
}
