//! Transactions: read-your-own-writes, conflicts, rollback, one notification per
//! subscription, atomic visibility under concurrent readers.

mod common;

use common::{define, o, store};
use noex_store::{QueryDefinition, Store, StoreError};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;

async fn accounts() -> Store {
    let s = store();
    let def = json!({"key": "id", "schema": {"id": {"type": "string"}, "balance": {"type": "number", "min": 0},
        "email": {"type": "string", "unique": true}}});
    define(&s, "accounts", def.clone());
    define(
        &s,
        "audit",
        json!({"key": "n", "schema": {"n": {"type": "number", "generated": "autoincrement"}, "msg": {"type": "string"}}}),
    );
    s.bucket("accounts")
        .insert(o(json!({"id": "a", "balance": 100})))
        .unwrap();
    s.bucket("accounts")
        .insert(o(json!({"id": "b", "balance": 0})))
        .unwrap();
    s.settle().await;
    s
}

fn balance(s: &Store, id: &str) -> Value {
    s.bucket("accounts").get(&json!(id)).unwrap().unwrap()["balance"].clone()
}

#[tokio::test]
async fn read_your_own_writes_and_commit() {
    let s = accounts().await;
    let mut feed = s.change_feed();
    let out = s
        .transaction(|tx| {
            let mut acc = tx.bucket("accounts")?;
            acc.update(&json!("a"), o(json!({"balance": 60})))?;
            acc.update(&json!("b"), o(json!({"balance": 40})))?;
            acc.insert(o(json!({"id": "c", "balance": 5})))?;
            acc.delete(&json!("c"))?;
            acc.insert(o(json!({"id": "d", "balance": 7})))?;
            let seen_a = acc.get(&json!("a"))?.unwrap()["balance"].clone();
            let rich = acc.where_(&o(json!({"balance": {"$gte": 40}})))?.len();
            let count = acc.count(None)?;
            let one = acc.find_one(&o(json!({"id": "d"})))?.is_some();
            assert!(acc.get(&json!("c"))?.is_none());
            // outside the transaction nothing is visible yet
            assert_eq!(s.bucket("accounts").count(None)?, 2);
            tx.bucket("audit")?.insert(o(json!({"msg": "moved"})))?;
            Ok((seen_a, rich, count, one))
        })
        .unwrap();
    assert_eq!(out, (json!(60), 2, 3, true));
    assert_eq!(balance(&s, "a"), 60);
    assert_eq!(balance(&s, "b"), 40);
    assert_eq!(
        s.bucket("accounts").get(&json!("a")).unwrap().unwrap()["_version"],
        2
    );
    assert!(s.bucket("accounts").get(&json!("c")).unwrap().is_none());
    assert_eq!(s.bucket("audit").count(None).unwrap(), 1);
    s.settle().await;
    let mut events = Vec::new();
    while let Ok(e) = feed.try_recv() {
        events.push((e.topic(), e.transaction_id));
    }
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events.iter().all(|(_, t)| *t == events[0].1 && t.is_some()));
}

#[tokio::test]
async fn errors_roll_back_everything() {
    let s = accounts().await;
    let mut feed = s.change_feed();
    let e = s
        .transaction(|tx| {
            tx.bucket("accounts")?
                .update(&json!("a"), o(json!({"balance": 0})))?;
            tx.bucket("audit")?.insert(o(json!({"msg": "x"})))?;
            tx.bucket("accounts")?
                .update(&json!("b"), o(json!({"balance": -5})))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.code(), "VALIDATION_ERROR");
    let e = s
        .transaction(|tx| tx.bucket("ghost").map(|_| ()))
        .unwrap_err();
    assert_eq!(
        e,
        StoreError::BucketNotDefined {
            bucket: "ghost".into()
        }
    );
    let e = s
        .transaction(|tx| tx.bucket("accounts")?.update(&json!("zz"), o(json!({}))))
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    let e = s
        .transaction(|tx| {
            let mut acc = tx.bucket("accounts")?;
            acc.insert(o(json!({"id": "x", "email": "e@x"})))?;
            acc.insert(o(json!({"id": "y", "email": "e@x"})))
        })
        .unwrap_err();
    assert_eq!(e.code(), "ALREADY_EXISTS");
    let e = s
        .transaction(|tx| tx.bucket("accounts")?.insert(o(json!({"id": "a"}))))
        .unwrap_err();
    assert_eq!(e.code(), "ALREADY_EXISTS");
    assert_eq!(balance(&s, "a"), 100);
    assert_eq!(balance(&s, "b"), 0);
    assert_eq!(s.bucket("audit").count(None).unwrap(), 0);
    assert_eq!(s.bucket("accounts").count(None).unwrap(), 2);
    s.settle().await;
    assert!(feed.try_recv().is_err(), "nothing published");
}

#[tokio::test]
async fn conflicting_write_fails_commit_and_unique_clash_at_commit_rolls_back() {
    let s = accounts().await;
    let other = s.clone();
    let e = s
        .transaction(|tx| {
            let b = tx.bucket("accounts")?.get(&json!("a"))?.unwrap()["balance"]
                .as_i64()
                .unwrap_or(0);
            // someone else writes the record we read
            other
                .bucket("accounts")
                .update(&json!("a"), o(json!({"balance": 1})))?;
            tx.bucket("accounts")?
                .update(&json!("b"), o(json!({"balance": b})))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(
        e,
        StoreError::Conflict {
            bucket: "accounts".into(),
            key: json!("a")
        }
    );
    assert_eq!(balance(&s, "a"), 1);
    assert_eq!(balance(&s, "b"), 0);

    // an insert racing with an outside insert of the same key conflicts too
    let e = s
        .transaction(|tx| {
            tx.bucket("accounts")?.insert(o(json!({"id": "n"})))?;
            other.bucket("accounts").insert(o(json!({"id": "n"})))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.code(), "CONFLICT");

    // a unique value taken by an outside writer after the check → fails at commit, rolled back
    let e = s
        .transaction(|tx| {
            tx.bucket("accounts")?
                .update(&json!("a"), o(json!({"balance": 2})))?;
            tx.bucket("accounts")?
                .insert(o(json!({"id": "u1", "email": "same"})))?;
            other
                .bucket("accounts")
                .insert(o(json!({"id": "u2", "email": "same"})))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.code(), "ALREADY_EXISTS");
    assert_eq!(balance(&s, "a"), 1);
    assert!(s.bucket("accounts").get(&json!("u1")).unwrap().is_none());
}

#[tokio::test]
async fn one_notification_per_subscription_per_transaction() {
    let s = accounts().await;
    s.define_query(
        "total",
        QueryDefinition::from_json(
            json!({"bucket": "accounts", "aggregate": {"function": "sum", "field": "balance"}}),
        )
        .unwrap(),
    )
    .unwrap();
    s.define_query(
        "all",
        QueryDefinition::from_json(json!({"bucket": "accounts"})).unwrap(),
    )
    .unwrap();
    let log: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (l1, l2) = (log.clone(), log.clone());
    s.subscribe("total", json!({}), move |r| {
        l1.lock().push(r.value().clone())
    })
    .unwrap();
    s.subscribe("all", json!({}), move |r| {
        l2.lock().push(json!(r.value().as_array().map(Vec::len)))
    })
    .unwrap();
    s.transaction(|tx| {
        let mut acc = tx.bucket("accounts")?;
        acc.update(&json!("a"), o(json!({"balance": 50})))?;
        acc.update(&json!("b"), o(json!({"balance": 50})))?;
        acc.insert(o(json!({"id": "c", "balance": 1})))?;
        Ok(())
    })
    .unwrap();
    s.settle().await;
    let mut got = log.lock().clone();
    got.sort_by_key(|v| v.as_i64());
    assert_eq!(got, vec![json!(3), json!(101)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_never_see_half_a_transaction() {
    let s = accounts().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut checks = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let total = s.bucket("accounts").sum("balance", None).unwrap();
                assert_eq!(total, json!(100), "reader saw a partial transfer");
                checks += 1;
            }
            checks
        })
    };
    for i in 0..500 {
        let amount = if i % 2 == 0 { 100 } else { 0 };
        s.transaction(|tx| {
            let mut acc = tx.bucket("accounts")?;
            acc.update(&json!("a"), o(json!({"balance": 100 - amount})))?;
            acc.update(&json!("b"), o(json!({"balance": amount})))?;
            Ok(())
        })
        .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let checks = reader.await.unwrap();
    assert!(checks > 0);
    assert_eq!(
        balance(&s, "a").as_i64().unwrap() + balance(&s, "b").as_i64().unwrap(),
        100
    );
}

#[tokio::test]
async fn rollback_restores_evicted_and_deleted_records_in_their_place() {
    let s = store();
    define(
        &s,
        "ring",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "v": {"type": "number", "max": 10}}, "maxSize": 3}),
    );
    for i in 1..=3 {
        s.bucket("ring")
            .insert(o(json!({"id": i, "v": 0})))
            .unwrap();
    }
    let e = s
        .transaction(|tx| {
            let mut ring = tx.bucket("ring")?;
            ring.delete(&json!(2))?;
            ring.insert(o(json!({"id": 4, "v": 0})))?;
            ring.insert(o(json!({"id": 5, "v": 0})))?;
            ring.update(&json!(3), o(json!({"v": 1})))?;
            Ok(())
        })
        .map(|_| ());
    assert!(e.is_ok());
    let ids = |s: &Store| {
        s.bucket("ring")
            .all()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&s), vec![json!(3), json!(4), json!(5)]);
    // A transaction that deletes and evicts, then fails while applying (a unique value
    // taken by an outside writer after the buffered check): everything is restored in place.
    define(
        &s,
        "ring2",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "tag": {"type": "string", "unique": true}}, "maxSize": 4}),
    );
    for i in 1..=4 {
        s.bucket("ring2").insert(o(json!({"id": i}))).unwrap();
    }
    let other = s.clone();
    let e = s
        .transaction(|tx| {
            let mut ring = tx.bucket("ring2")?;
            ring.delete(&json!(2))?;
            ring.insert(o(json!({"id": 5})))?;
            ring.insert(o(json!({"id": 6})))?;
            ring.insert(o(json!({"id": 7, "tag": "t"})))?;
            other
                .bucket("ring2")
                .insert(o(json!({"id": 8, "tag": "t"})))?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.code(), "ALREADY_EXISTS");
    let ids2 = s
        .bucket("ring2")
        .all()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect::<Vec<_>>();
    assert_eq!(ids2, vec![json!(2), json!(3), json!(4), json!(8)]);
    assert_eq!(
        s.bucket("ring2")
            .count(Some(&o(json!({"tag": "t"}))))
            .unwrap(),
        1
    );
}

/// The unique check inside a transaction answers from the unique index (it scanned the
/// whole bucket for each write: red team, round 5) and sees the transaction's own
/// changes: a value held by a committed record clashes, unless this transaction deleted
/// or changed that record first.
#[tokio::test]
async fn unique_values_inside_a_transaction_follow_its_own_changes() {
    let s = accounts().await;
    s.bucket("accounts")
        .update(&json!("a"), o(json!({"email": "a@x"})))
        .unwrap();
    let clash = s.transaction(|tx| {
        tx.bucket("accounts")?
            .insert(o(json!({"id": "c", "balance": 1, "email": "a@x"})))
    });
    assert!(
        matches!(clash, Err(StoreError::AlreadyExists { ref field, .. }) if field == "email"),
        "{clash:?}"
    );
    // The holder gives the value up earlier in the same transaction: no clash.
    s.transaction(|tx| {
        tx.bucket("accounts")?
            .update(&json!("a"), o(json!({"email": "a@y"})))?;
        tx.bucket("accounts")?
            .insert(o(json!({"id": "c", "balance": 1, "email": "a@x"})))
    })
    .unwrap();
    s.transaction(|tx| {
        tx.bucket("accounts")?.delete(&json!("c"))?;
        tx.bucket("accounts")?
            .insert(o(json!({"id": "d", "balance": 1, "email": "a@x"})))
    })
    .unwrap();
    assert_eq!(
        s.bucket("accounts").get(&json!("d")).unwrap().unwrap()["email"],
        "a@x"
    );
}

/// `keys_where` sees the transaction's own writes, stops collecting past `max + 1` keys,
/// and notes every match as read (a concurrent change to one fails the commit).
#[tokio::test]
async fn keys_where_sees_own_writes_and_is_bounded() {
    let s = accounts().await;
    let keys = s
        .transaction(|tx| {
            let mut acc = tx.bucket("accounts")?;
            acc.insert(o(json!({"id": "c", "balance": 5})))?;
            acc.delete(&json!("b"))?;
            let all = acc.keys_where(&o(json!({})), 10)?;
            let capped = acc.keys_where(&o(json!({})), 0)?;
            Ok((all, capped))
        })
        .unwrap();
    assert_eq!(keys.0, [json!("a"), json!("c")]);
    assert_eq!(keys.1, [json!("a")], "max + 1 keys");
    // A transaction that writes (here to another record) fails on a match changed
    // meanwhile.
    let conflict = s.transaction(|tx| {
        let mut acc = tx.bucket("accounts")?;
        let keys = acc.keys_where(&o(json!({"balance": {"$gte": 50}})), 10)?;
        acc.insert(o(json!({"id": "e", "balance": 1})))?;
        s.bucket("accounts")
            .update(&json!("a"), o(json!({"balance": 99})))?;
        Ok(keys)
    });
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
}
