//! Procedures (`procedures.*`) on a real server over a real WebSocket: the shape of every
//! operation, every step kind, validation errors naming the step, expressions, the
//! guide's transfer (atomic, checked, concurrent), phantom-safe transactional counts,
//! rollback without pushes, permissions per procedure name, the step bound, the timeout,
//! persistence across a restart and procedures from the config file.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Client, local_config, start};
use noex_server::{AuthConfig, PersistenceEngine, Server, ServerConfig, StaticToken};
use serde_json::{Value, json};

fn config() -> ServerConfig {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.store = serde_json::from_value(json!({
        "buckets": {
            "accounts": {"key": "id", "schema": {
                "id": {"type": "string"}, "owner": {"type": "string"},
                "balance": {"type": "number", "min": 0}}},
            "items": {"key": "id", "schema": {
                "id": {"type": "number", "generated": "autoincrement"},
                "kind": {"type": "string"}, "price": {"type": "number"}}},
            "seats": {"key": "id", "schema": {
                "id": {"type": "string", "generated": "uuid"}, "event": {"type": "string"}}},
            "log": {"key": "id", "schema": {
                "id": {"type": "string", "generated": "uuid"}, "text": {"type": "string"}}}
        },
        "queries": {"all-log": {"bucket": "log"}}
    }))
    .expect("store section");
    config
}

/// The guide's transfer: checks both accounts and the balance, then moves `amount` with two
/// expressions, atomically.
fn transfer() -> Value {
    json!({
        "name": "transfer",
        "description": "Move money between two accounts",
        "transaction": true,
        "input": {
            "from": {"type": "string"},
            "to": {"type": "string"},
            "amount": {"type": "number"}
        },
        "steps": [
            {"action": "store.get", "bucket": "accounts", "key": "{{ input.from }}", "as": "source"},
            {"action": "store.get", "bucket": "accounts", "key": "{{ input.to }}", "as": "target"},
            {"action": "if",
             "condition": {"$and": [
                 {"$neq": ["$input.from", "$input.to"]},
                 {"$neq": ["$source", null]},
                 {"$neq": ["$target", null]},
                 {"$gt": ["$input.amount", 0]},
                 {"$gte": ["$source.balance", "$input.amount"]}]},
             "then": [
                 {"action": "store.update", "bucket": "accounts", "key": "{{ input.from }}",
                  "data": {"balance": {"$subtract": ["$source.balance", "$input.amount"]}}},
                 {"action": "store.update", "bucket": "accounts", "key": "{{ input.to }}",
                  "data": {"balance": {"$add": ["$target.balance", "$input.amount"]}}},
                 {"action": "return", "value": {"ok": true}}],
             "else": [{"action": "return", "value": {"ok": false, "reason": "insufficient funds"}}]}
        ]
    })
}

async fn open_accounts(c: &mut Client, balances: &[(&str, i64)]) {
    for (id, balance) in balances {
        c.ok(
            "store.insert",
            json!({"bucket": "accounts", "data": {"id": id, "owner": id, "balance": balance}}),
        )
        .await;
    }
}

#[tokio::test]
async fn every_operation_has_the_originals_shape() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let ping = json!({"name": "ping", "description": "answers pong",
        "steps": [{"action": "return", "value": "pong"}]});
    assert_eq!(
        c.ok("procedures.register", json!({"procedure": ping}))
            .await,
        json!({"name": "ping", "registered": true})
    );
    let (code, message, _) = c
        .fail("procedures.register", json!({"procedure": ping}))
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("ALREADY_EXISTS", "Procedure \"ping\" already exists")
    );
    assert_eq!(c.ok("procedures.get", json!({"name": "ping"})).await, ping);
    assert_eq!(
        c.ok("procedures.list", json!({})).await,
        json!({"procedures": [{"name": "ping", "description": "answers pong", "stepsCount": 1}]})
    );
    assert_eq!(
        c.ok("procedures.call", json!({"name": "ping"})).await,
        json!({"success": true, "result": "pong", "results": {}})
    );
    assert_eq!(
        c.ok(
            "procedures.update",
            json!({"name": "ping", "updates": {
            "steps": [{"action": "return", "value": "{{ input.word }}"}]}})
        )
        .await,
        json!({"name": "ping", "updated": true})
    );
    let got = c.ok("procedures.get", json!({"name": "ping"})).await;
    assert_eq!(
        got["description"], "answers pong",
        "fields not updated stay"
    );
    assert_eq!(
        c.ok(
            "procedures.call",
            json!({"name": "ping", "input": {"word": "hi"}})
        )
        .await["result"],
        "hi"
    );
    assert_eq!(
        c.ok("procedures.unregister", json!({"name": "ping"})).await,
        json!({"name": "ping", "unregistered": true})
    );
    for op in ["procedures.call", "procedures.get", "procedures.unregister"] {
        let (code, message, _) = c.fail(op, json!({"name": "ping"})).await;
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("NOT_FOUND", "Procedure \"ping\" not found"),
            "{op}"
        );
    }
    let (code, message, _) = c.fail("procedures.call", json!({})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "Missing or invalid \"name\": expected non-empty string"
    );
}

#[tokio::test]
async fn every_step_kind_runs() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let procedure = json!({
        "name": "tour",
        "input": {"kind": {"type": "string", "required": false, "default": "book"}},
        "steps": [
            {"action": "store.insert", "bucket": "items", "data": {"kind": "{{ input.kind }}", "price": 10}, "as": "first"},
            {"action": "store.insert", "bucket": "items", "data": {"kind": "{{ input.kind }}", "price": 30}},
            {"action": "store.insert", "bucket": "items", "data": {"kind": "pen", "price": 2}, "as": "pen"},
            {"action": "store.get", "bucket": "items", "key": "{{ first.id }}", "as": "got"},
            {"action": "store.where", "bucket": "items", "filter": {"kind": "{{ input.kind }}"}, "as": "books"},
            {"action": "store.findOne", "bucket": "items", "filter": {"price": {"$gt": 20}}, "as": "dear"},
            {"action": "store.count", "bucket": "items", "as": "total"},
            {"action": "store.update", "bucket": "items", "key": "{{ pen.id }}",
             "data": {"price": {"$multiply": ["$pen.price", 3]}}, "as": "pen2"},
            {"action": "store.delete", "bucket": "items", "key": "{{ pen.id }}"},
            {"action": "store.count", "bucket": "items", "filter": {"kind": "pen"}, "as": "pens"},
            {"action": "aggregate", "source": "books", "field": "price", "op": "sum", "as": "sum"},
            {"action": "aggregate", "source": "books", "field": "price", "op": "avg", "as": "avg"},
            {"action": "aggregate", "source": "books", "op": "count", "as": "n"},
            {"action": "transform", "source": "books", "operation": "pluck", "args": "price", "as": "prices"},
            {"action": "transform", "source": "books", "operation": "filter", "args": {"price": 30}, "as": "thirty"},
            {"action": "transform", "source": "books", "operation": "filter",
             "args": {"$lt": ["$item.price", 20]}, "as": "cheap"},
            {"action": "transform", "source": "books", "operation": "map",
             "args": {"label": {"$concat": ["$item.kind", " at ", "$item.price"]}}, "as": "labelled"},
            {"action": "transform", "source": "got", "operation": "pick", "args": ["kind", "price"], "as": "picked"},
            {"action": "rules.setFact", "key": "tour:{{ first.id }}", "value": "{{ sum }}"},
            {"action": "rules.getFact", "key": "tour:{{ first.id }}", "as": "fact"},
            {"action": "rules.emit", "topic": "tour.done", "data": {"sum": "{{ sum }}"}},
            {"action": "if", "condition": {"ref": "total", "operator": "gte", "value": 3},
             "then": [{"action": "if", "condition": {"ref": "dear", "operator": "exists"},
                       "then": [{"action": "store.get", "bucket": "items", "key": 999, "as": "missing"}]}],
             "else": [{"action": "return", "value": "unreachable"}]},
            {"action": "return", "value": {"sum": "{{ sum }}", "text": "{{ n }} books, missing={{ missing }}"}}
        ]
    });
    c.ok("procedures.register", json!({"procedure": procedure}))
        .await;
    c.ok("rules.subscribe", json!({"pattern": "tour.*"})).await;
    let out = c.ok("procedures.call", json!({"name": "tour"})).await;
    let r = &out["results"];
    assert_eq!(out["success"], true);
    assert_eq!(
        out["result"],
        json!({"sum": 40, "text": "2 books, missing="})
    );
    assert_eq!(r["got"]["price"], 10);
    assert_eq!(r["books"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["dear"]["price"], 30);
    assert_eq!(
        (r["total"].clone(), r["pens"].clone()),
        (json!(3), json!(0))
    );
    assert_eq!(r["pen2"]["price"], 6);
    assert_eq!(
        (r["sum"].clone(), r["avg"].clone(), r["n"].clone()),
        (json!(40), json!(20), json!(2))
    );
    assert_eq!(r["prices"], json!([10, 30]));
    assert_eq!(r["thirty"][0]["price"], 30);
    assert_eq!(r["cheap"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["labelled"][1]["label"], "book at 30");
    assert_eq!(r["picked"], json!({"kind": "book", "price": 10}));
    assert_eq!(r["fact"], 40);
    assert_eq!(r["missing"], Value::Null);
    let push = c.next_push().await;
    assert_eq!(push["data"]["event"]["topic"], "tour.done");
    assert_eq!(push["data"]["event"]["data"]["sum"], 40);
    assert_eq!(c.ok("rules.getFact", json!({"key": "tour:1"})).await, 40);
}

#[tokio::test]
async fn registration_errors_name_the_step() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let cases = [
        (
            json!([{"action": "store.explode", "bucket": "items"}]),
            "steps[0]: \"action\": expected one of:",
        ),
        (
            json!([{"action": "return", "value": "{{ later.id }}"},
                   {"action": "store.get", "bucket": "items", "key": 1, "as": "later"}]),
            "steps[0] (return): reference \"later.id\" names no earlier step result",
        ),
        (
            json!([{"action": "store.get", "bucket": "items", "key": 1, "as": "a"},
                   {"action": "if", "condition": {"ref": "a", "operator": "exists"},
                    "then": [{"action": "store.insert", "bucket": "nope", "data": {}}]}]),
            "steps[1].then[0] (store.insert): bucket \"nope\" does not exist",
        ),
        (
            json!([{"action": "store.update", "bucket": "items", "key": 1,
                    "data": {"price": {"$add": ["$ghost.price", 1]}}}]),
            "steps[0] (store.update): reference \"ghost.price\" names no earlier step result",
        ),
        (
            json!([{"action": "aggregate", "source": "x", "op": "median", "field": "p", "as": "m"}]),
            "steps[0] (aggregate): \"op\": expected one of: sum, avg, min, max, count",
        ),
    ];
    for (steps, expected) in cases {
        let (code, message, details) = c
            .fail(
                "procedures.register",
                json!({"procedure": {"name": "bad", "steps": steps}}),
            )
            .await;
        assert_eq!(code, "VALIDATION_ERROR", "{message}");
        assert!(
            message.contains(expected),
            "{message} should contain {expected}"
        );
        assert!(details["issues"].is_array(), "{details}");
    }
    let (code, message, _) = c
        .fail(
            "procedures.register",
            json!({"procedure": {"name": "bad",
            "input": {"n": {"type": "integer"}}, "steps": [{"action": "return", "value": 1}]}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.contains("input.n.type: expected one of: string, number, boolean, object, array"),
        "{message}"
    );
    assert!(
        c.ok("procedures.list", json!({})).await["procedures"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "nothing was registered"
    );
}

#[tokio::test]
async fn input_is_typed_and_expressions_fail_cleanly() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "calc",
            "input": {"a": {"type": "number"}, "b": {"type": "number", "default": 2},
                      "label": {"type": "string", "required": false}},
            "steps": [
                {"action": "return", "value": {"q": {"$divide": ["$input.a", "$input.b"]},
                                                "sum": {"$add": ["$input.a", "$input.label"]}}}]}}),
    )
    .await;
    let (code, message, details) = c
        .fail(
            "procedures.call",
            json!({"name": "calc", "input": {"a": "1"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "Invalid procedure input: Input \"a\": expected number, got string"
    );
    assert_eq!(
        details["issues"],
        json!(["Input \"a\": expected number, got string"])
    );
    let (_, message, _) = c
        .fail("procedures.call", json!({"name": "calc", "input": {}}))
        .await;
    assert_eq!(
        message,
        "Invalid procedure input: Missing required input \"a\""
    );
    let (code, message, _) = c
        .fail(
            "procedures.call",
            json!({"name": "calc", "input": {"a": 1, "b": 0}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "Procedure step steps[0] (return) failed: $divide: division by zero"
    );
    let (code, message, _) = c
        .fail(
            "procedures.call",
            json!({"name": "calc", "input": {"a": 1, "label": "x"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.ends_with("$add: expected two numbers, got number and string"),
        "{message}"
    );
    // Without a label the $add sees null: also refused, never a panic.
    let (code, _, _) = c
        .fail(
            "procedures.call",
            json!({"name": "calc", "input": {"a": 1}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    c.ok(
        "procedures.update",
        json!({"name": "calc", "updates": {"steps": [
            {"action": "return", "value": {"$divide": ["$input.a", "$input.b"]}}]}}),
    )
    .await;
    assert_eq!(
        c.ok(
            "procedures.call",
            json!({"name": "calc", "input": {"a": 9}})
        )
        .await["result"],
        json!(4.5),
        "the default applies"
    );
}

#[tokio::test]
async fn the_transfer_moves_money_or_writes_nothing() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok("procedures.register", json!({"procedure": transfer()}))
        .await;
    open_accounts(&mut c, &[("alice", 100), ("bob", 20)]).await;
    let out = c
        .ok(
            "procedures.call",
            json!({"name": "transfer", "input": {"from": "alice", "to": "bob", "amount": 30}}),
        )
        .await;
    assert_eq!(out["result"], json!({"ok": true}));
    let balance = |r: &Value| r["balance"].clone();
    assert_eq!(
        balance(
            &c.ok("store.get", json!({"bucket": "accounts", "key": "alice"}))
                .await
        ),
        70
    );
    assert_eq!(
        balance(
            &c.ok("store.get", json!({"bucket": "accounts", "key": "bob"}))
                .await
        ),
        50
    );
    let out = c
        .ok(
            "procedures.call",
            json!({"name": "transfer", "input": {"from": "bob", "to": "alice", "amount": 51}}),
        )
        .await;
    assert_eq!(
        out["result"],
        json!({"ok": false, "reason": "insufficient funds"})
    );
    let bob = c
        .ok("store.get", json!({"bucket": "accounts", "key": "bob"}))
        .await;
    assert_eq!(
        (bob["balance"].clone(), bob["_version"].clone()),
        (json!(50), json!(2)),
        "nothing written"
    );
    let out = c
        .ok(
            "procedures.call",
            json!({"name": "transfer", "input": {"from": "bob", "to": "carol", "amount": 1}}),
        )
        .await;
    assert_eq!(
        out["result"]["ok"], false,
        "an unknown account moves nothing"
    );
}

#[tokio::test]
async fn a_rolled_back_call_writes_and_pushes_nothing() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let (mut watcher, _) = Client::connect(&server).await;
    let sub = watcher
        .ok("store.subscribe", json!({"query": "all-log"}))
        .await;
    assert_eq!(sub["data"], json!([]));
    watcher
        .ok("rules.subscribe", json!({"pattern": "audit.*"}))
        .await;
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "half", "transaction": true, "steps": [
            {"action": "store.insert", "bucket": "log", "data": {"text": "first"}},
            {"action": "rules.emit", "topic": "audit.half"},
            {"action": "store.update", "bucket": "log", "key": "no-such-key", "data": {"text": "x"}}]}}),
    )
    .await;
    let (code, message, _) = c.fail("procedures.call", json!({"name": "half"})).await;
    assert_eq!(code, "NOT_FOUND");
    assert!(
        message.starts_with("Procedure step steps[2] (store.update) failed:"),
        "{message}"
    );
    assert_eq!(c.ok("store.count", json!({"bucket": "log"})).await, 0);
    server.store().settle().await;
    watcher.assert_no_push().await;
}

/// 16 clients run 1 600 transfers over 1 000 accounts at once: the total never changes and
/// no balance goes negative.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_keep_the_total() {
    const ACCOUNTS: usize = 1_000;
    const CLIENTS: usize = 16;
    const CALLS: usize = 100;
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok("procedures.register", json!({"procedure": transfer()}))
        .await;
    let operations: Vec<Value> = (0..ACCOUNTS)
        .map(|i| json!({"op": "insert", "bucket": "accounts", "data": {"id": format!("a{i}"), "owner": "x", "balance": 100}}))
        .collect();
    c.ok("store.transaction", json!({"operations": operations}))
        .await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let url = format!("ws://{}/", server.local_addr());
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = Client::connect_url(&url).await;
            // A small deterministic generator per client: pairs and amounts vary, some
            // amounts exceed the balance.
            let mut x = 0x9e37_79b9_u64.wrapping_mul(client as u64 + 1);
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let (mut ok, mut refused, mut conflicts) = (0, 0, 0);
            for _ in 0..CALLS {
                let from = next() as usize % ACCOUNTS;
                let to = next() as usize % ACCOUNTS;
                let amount = next() % 120 + 1;
                let frame = c
                    .call(
                        "procedures.call",
                        json!({"name": "transfer", "input": {
                        "from": format!("a{from}"), "to": format!("a{to}"), "amount": amount}}),
                    )
                    .await;
                match (frame["type"].as_str(), frame["code"].as_str()) {
                    (Some("result"), _) if frame["data"]["result"]["ok"] == true => ok += 1,
                    (Some("result"), _) => refused += 1,
                    (_, Some("CONFLICT")) => conflicts += 1,
                    _ => panic!("unexpected answer {frame}"),
                }
            }
            (ok, refused, conflicts)
        }));
    }
    let (mut ok, mut refused, mut conflicts) = (0, 0, 0);
    for task in tasks {
        let (o, r, x) = task.await.expect("client task");
        ok += o;
        refused += r;
        conflicts += x;
    }
    let elapsed = started.elapsed();
    let accounts = c.ok("store.all", json!({"bucket": "accounts"})).await;
    let balances: Vec<i64> = accounts
        .as_array()
        .expect("records")
        .iter()
        .map(|a| a["balance"].as_i64().expect("integer balance"))
        .collect();
    assert_eq!(balances.len(), ACCOUNTS);
    assert_eq!(
        balances.iter().sum::<i64>(),
        100 * ACCOUNTS as i64,
        "the total is constant"
    );
    assert!(balances.iter().all(|b| *b >= 0), "no balance is negative");
    assert!(ok > CLIENTS * CALLS / 2, "most transfers succeed: {ok}");
    eprintln!(
        "{} transfers in {elapsed:?} ({:.0} calls/s): {ok} moved, {refused} refused, {conflicts} conflicts",
        CLIENTS * CALLS,
        (CLIENTS * CALLS) as f64 / elapsed.as_secs_f64()
    );
}

/// A transactional count-then-insert run by 16 clients at once never exceeds its bound: an
/// insert by another call after the count is a conflict, and the call runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_counts_see_no_phantoms() {
    const LIMIT: i64 = 3;
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "book", "transaction": true,
            "input": {"event": {"type": "string"}},
            "steps": [
                {"action": "store.count", "bucket": "seats", "filter": {"event": "{{ input.event }}"}, "as": "taken"},
                {"action": "if", "condition": {"$lt": ["$taken", LIMIT]},
                 "then": [{"action": "store.insert", "bucket": "seats", "data": {"event": "{{ input.event }}"}},
                          {"action": "return", "value": true}],
                 "else": [{"action": "return", "value": false}]}]}}),
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let url = format!("ws://{}/", server.local_addr());
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = Client::connect_url(&url).await;
            let mut booked = 0;
            for _ in 0..4 {
                let frame = c
                    .call(
                        "procedures.call",
                        json!({"name": "book", "input": {"event": "gig"}}),
                    )
                    .await;
                if frame["type"] == "result" && frame["data"]["result"] == true {
                    booked += 1;
                } else if frame["type"] == "error" {
                    assert_eq!(frame["code"], "CONFLICT", "{frame}");
                }
            }
            booked
        }));
    }
    let mut booked = 0;
    for task in tasks {
        booked += task.await.expect("client task");
    }
    let seats = c
        .ok(
            "store.count",
            json!({"bucket": "seats", "filter": {"event": "gig"}}),
        )
        .await;
    assert_eq!(
        seats,
        json!(booked),
        "every booking answered true was written"
    );
    assert_eq!(
        seats,
        json!(LIMIT),
        "never more than {LIMIT}, and the bound is reached"
    );
}

fn token(user: &str, roles: &[&str]) -> StaticToken {
    StaticToken {
        user_id: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        expires_at: None,
    }
}

#[tokio::test]
async fn permissions_are_per_tier_and_per_procedure_name() {
    let mut config = config();
    config.auth = Some(AuthConfig {
        required: true,
        tokens: Some(BTreeMap::from([
            ("admin-t".into(), token("ada", &["admin"])),
            ("writer-t".into(), token("wri", &["writer"])),
            ("caller-t".into(), token("cal", &["caller"])),
        ])),
        permissions: serde_json::from_value(json!({
            "default": "deny",
            "rules": [
                {"role": "admin", "allow": "*"},
                {"role": "writer", "allow": "*"},
                {"role": "caller", "allow": ["procedures.call", "procedures.get"], "procedures": ["note"]}
            ]
        }))
        .expect("permissions"),
        ..AuthConfig::default()
    });
    let server = start(config).await;
    let (mut admin, _) = Client::connect(&server).await;
    admin.ok("auth.login", json!({"token": "admin-t"})).await;
    let note = json!({"name": "note", "input": {"text": {"type": "string"}}, "steps": [
        {"action": "store.insert", "bucket": "log", "data": {"text": "{{ input.text }}"}, "as": "row"},
        {"action": "return", "value": "{{ row.text }}"}]});
    admin
        .ok("procedures.register", json!({"procedure": note}))
        .await;
    admin
        .ok(
            "procedures.register",
            json!({"procedure": {"name": "secret", "steps": [{"action": "return", "value": 1}]}}),
        )
        .await;

    let (mut writer, _) = Client::connect(&server).await;
    writer.ok("auth.login", json!({"token": "writer-t"})).await;
    for (op, fields) in [
        (
            "procedures.register",
            json!({"procedure": {"name": "x", "steps": [{"action": "return", "value": 1}]}}),
        ),
        ("procedures.unregister", json!({"name": "note"})),
        ("procedures.update", json!({"name": "note", "updates": {}})),
        ("procedures.list", json!({})),
    ] {
        let (code, _, _) = writer.fail(op, fields).await;
        assert_eq!(code, "FORBIDDEN", "{op} is admin");
    }
    assert_eq!(
        writer
            .ok("procedures.call", json!({"name": "secret"}))
            .await["result"],
        1
    );

    let (mut caller, _) = Client::connect(&server).await;
    caller.ok("auth.login", json!({"token": "caller-t"})).await;
    // The caller has no right on the bucket: the steps run with the server's authority.
    let (code, _, _) = caller
        .fail(
            "store.insert",
            json!({"bucket": "log", "data": {"text": "direct"}}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let out = caller
        .ok(
            "procedures.call",
            json!({"name": "note", "input": {"text": "hi"}}),
        )
        .await;
    assert_eq!(out["result"], "hi");
    assert_eq!(
        caller.ok("procedures.get", json!({"name": "note"})).await["name"],
        "note"
    );
    let (code, message, _) = caller
        .fail("procedures.call", json!({"name": "secret"}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    assert!(message.contains("procedures.call on secret"), "{message}");
    assert_eq!(admin.ok("store.count", json!({"bucket": "log"})).await, 1);
}

#[tokio::test]
async fn limits_step_bound_and_timeout() {
    let mut config = config();
    config.limits.max_procedures = 2;
    config.limits.max_procedure_steps = 10;
    // Measured in memory too: an 11-step definition takes ~3 KB there.
    config.limits.max_procedure_bytes = 8_000;
    config.limits.max_result_bytes = 400_000;
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    // 1 + 5 + 5 = 11 steps counting nested branches.
    let five: Vec<Value> = (0..5)
        .map(|_| json!({"action": "return", "value": 1}))
        .collect();
    let (code, message, _) = c
        .fail(
            "procedures.register",
            json!({"procedure": {"name": "big", "steps": [
            {"action": "if", "condition": {"$eq": [1, 1]}, "then": five, "else": five}]}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.contains("Total step count (11) exceeds maximum (10)"),
        "{message}"
    );
    let (code, message, _) = c
        .fail(
            "procedures.register",
            json!({"procedure": {"name": "fat", "description": "x".repeat(9_000),
            "steps": [{"action": "return", "value": 1}]}}),
        )
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("exceeds 8000 bytes"), "{message}");

    let items: Vec<Value> = (0..3_000)
        .map(|i| json!({"op": "insert", "bucket": "items", "data": {"kind": "k", "price": i}}))
        .collect();
    for chunk in items.chunks(1_000) {
        c.ok("store.transaction", json!({"operations": chunk}))
            .await;
    }
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "slow", "timeoutMs": 1, "steps": [
            {"action": "store.where", "bucket": "items", "filter": {"kind": "k"}, "as": "all"},
            {"action": "transform", "source": "all", "operation": "map", "args": {"x": {"$add": ["$item.price", 1]}}, "as": "m"},
            {"action": "return", "value": "{{ m.length }}"}]}}),
    )
    .await;
    let (code, message, _) = c.fail("procedures.call", json!({"name": "slow"})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("INTERNAL_ERROR", "Procedure \"slow\" timed out after 1ms")
    );
    // Without the timeout the answer is bounded by limits.maxResultBytes, and what the
    // steps hold by four times it (3 000 records take more than that in memory).
    c.ok("procedures.update", json!({"name": "slow", "updates": {"timeoutMs": 30_000,
        "steps": [{"action": "store.where", "bucket": "items", "filter": {"kind": "k"}, "as": "all"},
                  {"action": "return", "value": "{{ all }}"}]}}))
        .await;
    let (code, message, _) = c.fail("procedures.call", json!({"name": "slow"})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.contains("take more than 1600000 bytes (4 times limits.maxResultBytes)"),
        "{message}"
    );
    // A result the steps may hold but the answer may not: the answer's limit.
    c.ok("procedures.update", json!({"name": "slow", "updates": {
        "steps": [{"action": "store.where", "bucket": "items", "filter": {"price": {"$lt": 2000}}, "as": "half"},
                  {"action": "return", "value": "{{ half }}"}]}}))
        .await;
    let (code, message, details) = c.fail("procedures.call", json!({"name": "slow"})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.starts_with("Result exceeds 400000 bytes"),
        "{message}"
    );
    assert_eq!(details["limit"], 400_000);
    c.ok("procedures.update", json!({"name": "slow", "updates": {"timeoutMs": 1,
        "steps": [
            {"action": "store.where", "bucket": "items", "filter": {"kind": "k"}, "as": "all"},
            {"action": "transform", "source": "all", "operation": "map", "args": {"x": {"$add": ["$item.price", 1]}}, "as": "m"},
            {"action": "return", "value": "{{ m.length }}"}]}}))
        .await;
    let (code, message, _) = c.fail("procedures.call", json!({"name": "slow"})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("INTERNAL_ERROR", "Procedure \"slow\" timed out after 1ms")
    );
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "two", "steps": [{"action": "return", "value": 2}]}}),
    )
    .await;
    let (code, message, _) = c
        .fail(
            "procedures.register",
            json!({"procedure": {"name": "three", "steps": [{"action": "return", "value": 3}]}}),
        )
        .await;
    assert_eq!(code, "RATE_LIMITED");
    assert!(message.contains("limits.maxProcedures"), "{message}");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("noex-procedures-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn procedures_survive_a_restart_and_come_from_the_config() {
    let dir = temp_dir("restart");
    let durable = || {
        let mut config = config();
        config.persistence.engine = PersistenceEngine::Redb;
        config.persistence.data_dir = Some(dir.clone());
        config.procedures = serde_json::from_value(json!({"procedures": [
            {"name": "hello", "steps": [{"action": "return", "value": "hello from the config"}]}]}))
        .expect("procedures section");
        config
    };
    let first = Server::start(durable()).await.expect("starts");
    let (mut c, _) = Client::connect(&first).await;
    c.ok("procedures.register", json!({"procedure": transfer()}))
        .await;
    c.ok(
        "procedures.register",
        json!({"procedure": {"name": "gone", "steps": [{"action": "return", "value": 0}]}}),
    )
    .await;
    c.ok("procedures.unregister", json!({"name": "gone"})).await;
    open_accounts(&mut c, &[("a", 10), ("b", 0)]).await;
    drop(c);
    first.stop(Duration::ZERO).await;
    first.store().close_persistence().expect("closes");
    drop(first);

    let second = Server::start(durable()).await.expect("restarts");
    let (mut c, _) = Client::connect(&second).await;
    assert_eq!(
        c.ok("procedures.get", json!({"name": "transfer"})).await,
        transfer()
    );
    let names: Vec<Value> = c.ok("procedures.list", json!({})).await["procedures"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("hello"), json!("transfer")]);
    let out = c
        .ok(
            "procedures.call",
            json!({"name": "transfer", "input": {"from": "a", "to": "b", "amount": 10}}),
        )
        .await;
    assert_eq!(out["result"]["ok"], true);
    assert_eq!(
        c.ok("procedures.call", json!({"name": "hello"})).await["result"],
        "hello from the config"
    );
    second.stop(Duration::ZERO).await;
    second.store().close_persistence().expect("closes");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_bad_config_procedure_stops_the_start() {
    let mut config = config();
    config.procedures = serde_json::from_value(json!({"procedures": [
        {"name": "broken", "steps": [{"action": "store.get", "bucket": "nowhere", "key": 1, "as": "x"}]}]}))
    .expect("procedures section");
    let err = Server::start(config).await.err().expect("refused");
    assert!(
        err.to_string().contains("cannot register procedure #0")
            && err
                .to_string()
                .contains("bucket \"nowhere\" does not exist"),
        "{err}"
    );
}
