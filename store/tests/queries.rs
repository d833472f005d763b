//! Declarative query features, programmatic queries, list/undefine, and the reactive
//! machinery: dependency tracking, deep-equality suppression, shared evaluations.

mod common;

use common::{o, store, users};
use noex_store::{QueryDefinition, QueryResult, Store, StoreError};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

async fn seeded() -> Store {
    let s = store();
    users(&s);
    for r in [
        json!({"id": "a", "name": "Alice", "age": 30, "role": "admin"}),
        json!({"id": "b", "name": "Bob", "age": 25, "role": "user"}),
        json!({"id": "c", "name": "Carol", "age": 35, "role": "user"}),
        json!({"id": "d", "name": "Dave", "role": "user"}),
    ] {
        s.bucket("users").insert(o(r)).unwrap();
    }
    s.settle().await;
    s
}

fn q(s: &Store, def: Value, params: Value) -> Value {
    s.undefine_query("q").ok();
    s.define_query("q", QueryDefinition::from_json(def).unwrap())
        .unwrap();
    s.run_query("q", &params).unwrap()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn declarative_features() {
    let s = seeded().await;
    let v = q(
        &s,
        json!({"bucket": "users", "filter": {"role": "{{ params.role }}"}}),
        json!({"role": "user"}),
    );
    assert_eq!(names(&v), ["Bob", "Carol", "Dave"]);
    let v = q(
        &s,
        json!({"bucket": "users", "filter": {"age": {"$in": ["{{params.x}}", 35]}}}),
        json!({"x": 30}),
    );
    assert_eq!(names(&v), ["Alice", "Carol"]);
    let v = q(
        &s,
        json!({"bucket": "users", "filter": {"$or": [{"age": {"$gt": "{{ params.min }}"}}]}}),
        json!({"min": 29}),
    );
    assert_eq!(names(&v), ["Alice", "Carol"]);
    // missing param → null
    let v = q(
        &s,
        json!({"bucket": "users", "filter": {"age": "{{ params.nope }}"}}),
        json!({}),
    );
    assert_eq!(names(&v), ["Dave"]);
    // sort: nulls last in both directions
    let v = q(
        &s,
        json!({"bucket": "users", "sort": {"age": "asc"}}),
        json!({}),
    );
    assert_eq!(names(&v), ["Bob", "Alice", "Carol", "Dave"]);
    let v = q(
        &s,
        json!({"bucket": "users", "sort": {"age": "desc"}}),
        json!({}),
    );
    assert_eq!(names(&v), ["Carol", "Alice", "Bob", "Dave"]);
    let v = q(
        &s,
        json!({"bucket": "users", "sort": {"role": "asc", "name": "desc"}}),
        json!({}),
    );
    assert_eq!(names(&v), ["Alice", "Dave", "Carol", "Bob"]);
    // offset before limit
    let v = q(
        &s,
        json!({"bucket": "users", "sort": {"age": "asc"}, "offset": 1, "limit": 2}),
        json!({}),
    );
    assert_eq!(names(&v), ["Alice", "Carol"]);
    // projection
    let v = q(
        &s,
        json!({"bucket": "users", "filter": {"id": "a"}, "fields": ["name", "age"]}),
        json!({}),
    );
    assert_eq!(v, json!([{"name": "Alice", "age": 30}]));
    // aggregates
    let agg = |f: &str, field: Value| json!({"bucket": "users", "aggregate": {"function": f, "field": field}});
    assert_eq!(
        q(
            &s,
            json!({"bucket": "users", "aggregate": {"function": "count"}}),
            json!({})
        ),
        json!(4)
    );
    assert_eq!(q(&s, agg("sum", json!("age")), json!({})), json!(90));
    assert_eq!(q(&s, agg("avg", json!("age")), json!({})), json!(30));
    assert_eq!(q(&s, agg("min", json!("age")), json!({})), json!(25));
    assert_eq!(q(&s, agg("max", json!("age")), json!({})), json!(35));
    let v = q(
        &s,
        json!({"bucket": "users", "filter": {"role": "{{ params.r }}"}, "aggregate": {"function": "max", "field": "age"}}),
        json!({"r": "ghost"}),
    );
    assert_eq!(v, Value::Null);
    let v = q(
        &s,
        json!({"bucket": "users", "aggregate": {"function": "sum", "field": "age", "groupBy": "role"}}),
        json!({}),
    );
    assert_eq!(
        v,
        json!([{"key": {"role": "admin"}, "value": 30}, {"key": {"role": "user"}, "value": 60}])
    );
    let v = q(
        &s,
        json!({"bucket": "users", "aggregate": {"function": "count", "groupBy": ["role", "age"]}}),
        json!({}),
    );
    assert_eq!(v.as_array().unwrap().len(), 4);
    assert_eq!(
        v[3],
        json!({"key": {"role": "user", "age": null}, "value": 1})
    );
}

#[tokio::test]
async fn query_definition_errors_and_listing() {
    let s = seeded().await;
    let def = |v: Value| QueryDefinition::from_json(v).map_err(StoreError::from);
    assert!(matches!(
        def(json!({"bucket": "users", "bogus": 1})),
        Err(StoreError::InvalidDefinition { .. })
    ));
    assert!(matches!(
        def(json!({"bucket": "users", "aggregate": {"function": "median", "field": "age"}})),
        Err(StoreError::InvalidDefinition { .. })
    ));
    let e = s
        .define_query(
            "x",
            def(json!({"bucket": "users", "sort": {"age": "up"}})).unwrap(),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidDefinition { .. }));
    let e = s
        .define_query(
            "x",
            def(json!({"bucket": "users", "aggregate": {"function": "sum"}})).unwrap(),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidDefinition { .. }));
    let e = s
        .define_query(
            "x",
            def(json!({"bucket": "users", "filter": {"a": {"$zz": 1}}})).unwrap(),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidDefinition { .. }));
    let e = s
        .define_query("x", def(json!({"bucket": "nope"})).unwrap())
        .unwrap_err();
    assert_eq!(e.code(), "BUCKET_NOT_DEFINED");

    let config = json!({"bucket": "users", "filter": {"role": "{{ params.role }}"}, "sort": {"age": "desc"}, "limit": 2});
    s.define_query("byRole", def(config.clone()).unwrap())
        .unwrap();
    assert_eq!(
        s.define_query("byRole", def(config.clone()).unwrap())
            .unwrap_err(),
        StoreError::QueryAlreadyExists {
            name: "byRole".into()
        }
    );
    s.define_programmatic_query("count", |ctx, _| {
        Ok(json!(ctx.bucket("users")?.count(None)?))
    })
    .unwrap();
    let (id, _) = s
        .subscribe("byRole", json!({"role": "user"}), |_| {})
        .unwrap();
    s.subscribe("byRole", json!({"role": "admin"}), |_| {})
        .unwrap();
    let list = serde_json::to_value(s.list_queries()).unwrap();
    assert_eq!(
        list,
        json!([{"name": "byRole", "type": "declarative", "config": config, "activeSubscriptions": 2},
               {"name": "count", "type": "programmatic", "activeSubscriptions": 0}])
    );
    s.unsubscribe(id).unwrap();
    assert_eq!(s.unsubscribe(id).unwrap_err().code(), "NOT_FOUND");
    assert_eq!(s.stats().queries.active_subscriptions, 1);
    s.undefine_query("byRole").unwrap();
    assert_eq!(s.stats().queries.active_subscriptions, 0);
    assert_eq!(
        s.undefine_query("byRole").unwrap_err(),
        StoreError::QueryNotDefined {
            name: "byRole".into()
        }
    );
    assert_eq!(
        s.subscribe("byRole", json!({}), |_| {}).unwrap_err().code(),
        "QUERY_NOT_DEFINED"
    );
}

type Log = Arc<Mutex<Vec<Arc<QueryResult>>>>;

fn sub(s: &Store, name: &str, params: Value) -> (Log, Arc<QueryResult>) {
    let log: Log = Arc::default();
    let l = log.clone();
    let (_, initial) = s
        .subscribe(name, params, move |r| l.lock().push(r))
        .unwrap();
    (log, initial)
}

#[tokio::test]
async fn record_dependency_only_reacts_to_that_record() {
    let s = seeded().await;
    common::define(
        &s,
        "other",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    s.define_programmatic_query("one", move |ctx, p| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(ctx
            .bucket("users")?
            .get(&p["id"])
            .map_or(Value::Null, |u| u["name"].clone()))
    })
    .unwrap();
    let (log, initial) = sub(&s, "one", json!({"id": "a"}));
    assert_eq!(initial.value(), &json!("Alice"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    s.bucket("users")
        .update(&json!("b"), o(json!({"name": "Bobby"})))
        .unwrap();
    s.bucket("users")
        .insert(o(json!({"id": "z", "name": "Zed"})))
        .unwrap();
    s.bucket("other").insert(o(json!({"id": "x"}))).unwrap();
    s.settle().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "other records/buckets must not re-run"
    );
    assert!(log.lock().is_empty());
    s.bucket("users")
        .update(&json!("a"), o(json!({"name": "Alicia"})))
        .unwrap();
    s.settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        log.lock()
            .iter()
            .map(|r| r.value().clone())
            .collect::<Vec<_>>(),
        vec![json!("Alicia")]
    );
    // same result (only age changed) → re-run but no notification
    s.bucket("users")
        .update(&json!("a"), o(json!({"age": 31})))
        .unwrap();
    s.settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(log.lock().len(), 1);
    // deleting the record notifies null
    s.bucket("users").delete(&json!("a")).unwrap();
    s.settle().await;
    assert_eq!(log.lock().last().unwrap().value(), &Value::Null);
}

#[tokio::test]
async fn bucket_dependency_and_deep_equality_suppression() {
    let s = seeded().await;
    common::define(
        &s,
        "other",
        json!({"key": "id", "schema": {"id": {"type": "string"}}}),
    );
    s.define_query(
        "admins",
        QueryDefinition::from_json(
            json!({"bucket": "users", "filter": {"role": "admin"}, "fields": ["name"]}),
        )
        .unwrap(),
    )
    .unwrap();
    let (log, initial) = sub(&s, "admins", json!({}));
    assert_eq!(initial.value(), &json!([{"name": "Alice"}]));
    s.bucket("other").insert(o(json!({"id": "x"}))).unwrap();
    s.bucket("users")
        .update(&json!("b"), o(json!({"age": 26})))
        .unwrap();
    s.bucket("users")
        .update(&json!("a"), o(json!({"age": 99})))
        .unwrap();
    s.settle().await;
    assert!(
        log.lock().is_empty(),
        "unchanged projection must not notify"
    );
    s.bucket("users")
        .insert(o(json!({"id": "e", "name": "Eve", "role": "admin"})))
        .unwrap();
    s.settle().await;
    assert_eq!(log.lock().len(), 1);
    assert_eq!(
        log.lock()[0].value(),
        &json!([{"name": "Alice"}, {"name": "Eve"}])
    );
    assert_eq!(
        &*log.lock()[0].json(),
        r#"[{"name":"Alice"},{"name":"Eve"}]"#
    );
}

#[tokio::test]
async fn identical_subscriptions_share_one_evaluation_and_allocation() {
    let s = seeded().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    s.define_programmatic_query("byRole", move |ctx, p| {
        r.fetch_add(1, Ordering::SeqCst);
        let filter = json!({"role": p["role"].clone()});
        Ok(json!(ctx.bucket("users")?.count(filter.as_object())?))
    })
    .unwrap();
    let subs: Vec<_> = (0..5)
        .map(|_| sub(&s, "byRole", json!({"role": "user"})))
        .collect();
    let (other, _) = sub(&s, "byRole", json!({"role": "admin"}));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(Arc::ptr_eq(&subs[0].1, &subs[4].1));
    s.bucket("users")
        .insert(o(json!({"id": "e", "name": "Eve", "role": "user"})))
        .unwrap();
    s.settle().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "one re-run per (query, params)"
    );
    let first = subs[0].0.lock()[0].clone();
    assert_eq!(first.value(), &json!(4));
    for (log, _) in &subs {
        assert_eq!(log.lock().len(), 1);
        assert!(Arc::ptr_eq(&log.lock()[0], &first));
    }
    assert!(other.lock().is_empty());
    let text = first.json();
    assert!(Arc::ptr_eq(&text, &subs[3].0.lock()[0].json()));
}

#[tokio::test]
async fn watch_channel_and_change_events() {
    let s = seeded().await;
    s.define_query(
        "all",
        QueryDefinition::from_json(json!({"bucket": "users", "aggregate": {"function": "count"}}))
            .unwrap(),
    )
    .unwrap();
    let (_, mut rx) = s.subscribe_watch("all", json!({})).unwrap();
    assert_eq!(rx.borrow_and_update().value(), &json!(4));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, b) = (seen.clone(), seen.clone());
    s.on_change("bucket.*.*", move |e| {
        a.lock().push(format!("all:{}", e.topic()))
    });
    let id = s.on_change("bucket.users.inserted", move |e| {
        b.lock().push(format!("ins:{}", e.key))
    });
    let mut feed = s.change_feed();
    s.bucket("users")
        .insert(o(json!({"id": "e", "name": "Eve"})))
        .unwrap();
    s.settle().await;
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().value(), &json!(5));
    s.bucket("users")
        .update(&json!("e"), o(json!({"age": 1})))
        .unwrap();
    s.bucket("users").delete(&json!("e")).unwrap();
    s.settle().await;
    assert_eq!(rx.borrow().value(), &json!(4));
    assert_eq!(
        *seen.lock(),
        [
            "all:bucket.users.inserted",
            "ins:\"e\"",
            "all:bucket.users.updated",
            "all:bucket.users.deleted"
        ]
    );
    let ins = feed.recv().await.unwrap();
    let v = serde_json::to_value(&*ins).unwrap();
    assert_eq!(v["type"], "inserted");
    assert_eq!(v["key"], "e");
    assert_eq!(v["record"]["name"], "Eve");
    assert_eq!(v["version"], 1);
    assert!(v.get("transactionId").is_none());
    let upd = serde_json::to_value(&*feed.recv().await.unwrap()).unwrap();
    assert_eq!(
        (
            upd["oldRecord"]["_version"].clone(),
            upd["newRecord"]["age"].clone(),
            upd["version"].clone()
        ),
        (json!(1), json!(1), json!(2))
    );
    assert!(upd.get("record").is_none());
    assert_eq!(
        feed.recv().await.unwrap().kind,
        noex_store::ChangeKind::Deleted
    );
    assert!(s.off_change(id));
    assert!(noex_store::topic_matches(
        "bucket.users.*",
        "bucket.users.deleted"
    ));
    assert!(!noex_store::topic_matches(
        "bucket.orders.*",
        "bucket.users.deleted"
    ));
}

#[tokio::test]
async fn panicking_callback_does_not_stop_dispatch() {
    let s = seeded().await;
    s.define_query(
        "all",
        QueryDefinition::from_json(json!({"bucket": "users"})).unwrap(),
    )
    .unwrap();
    s.subscribe("all", json!({}), |_| panic!("boom")).unwrap();
    let (log, _) = sub(&s, "all", json!({}));
    s.bucket("users")
        .insert(o(json!({"id": "e", "name": "Eve"})))
        .unwrap();
    s.settle().await;
    s.bucket("users")
        .insert(o(json!({"id": "f", "name": "Fay"})))
        .unwrap();
    s.settle().await;
    assert_eq!(log.lock().len(), 2);
}

#[tokio::test]
async fn params_key_order_does_not_split_evaluations() {
    let s = seeded().await;
    s.define_query("q", QueryDefinition::from_json(json!({"bucket": "users", "filter": {"role": "{{ params.r }}", "age": "{{ params.a }}"}})).unwrap())
        .unwrap();
    let (_, one) = s
        .subscribe("q", json!({"r": "user", "a": 25}), |_| {})
        .unwrap();
    let (_, two) = s
        .subscribe("q", json!({"a": 25, "r": "user"}), |_| {})
        .unwrap();
    assert!(Arc::ptr_eq(&one, &two));
    assert_eq!(names(one.value()), ["Bob"]);
}

/// `Store::on_change` patterns are the protocol's topic patterns: a trailing `.*` matches
/// any depth (so `bucket.*` now sees every change, where it used to see none), `*` is one
/// segment elsewhere, and `**` is no wildcard any more (it matched "the rest" before).
#[tokio::test]
async fn on_change_patterns_use_the_topic_grammar() {
    let s = seeded().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    for pattern in [
        "bucket.*",
        "bucket.**",
        "*.users.*",
        "bucket.*.deleted",
        "*",
    ] {
        let log = seen.clone();
        s.on_change(pattern, move |e| {
            log.lock().push(format!("{pattern} {}", e.topic()))
        });
    }
    let users = s.bucket("users");
    users.insert(o(json!({"id": "e", "name": "Eve"}))).unwrap();
    users.delete(&json!("e")).unwrap();
    s.settle().await;
    let mut got = seen.lock().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "* bucket.users.deleted",
            "* bucket.users.inserted",
            "*.users.* bucket.users.deleted",
            "*.users.* bucket.users.inserted",
            "bucket.* bucket.users.deleted",
            "bucket.* bucket.users.inserted",
            "bucket.*.deleted bucket.users.deleted",
        ]
    );
}
