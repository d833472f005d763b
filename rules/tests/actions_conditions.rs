//! Conditions (every operator, every source, refs) and actions (every type) through the engine.

mod common;

use std::sync::Arc;

use common::{engine, on_event, record, register};
use noex_rules::{EngineConfig, LogLevel, RuleEngine};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Registers a rule on `t` with one condition and checks whether it fires for `data`.
fn fires(condition: Value, data: Value) -> bool {
    let (engine, _) = engine();
    engine.set_fact("limit:max", json!(100)).unwrap();
    engine.set_fact("user:7:role", json!("admin")).unwrap();
    register(
        &engine,
        on_event(
            "r",
            "t",
            json!([condition]),
            json!([{"type": "set_fact", "key": "fired", "value": true}]),
        ),
    );
    engine.emit("t", data).unwrap();
    engine.get_fact("fired").is_some()
}

fn ev(field: &str, op: &str, value: Value) -> Value {
    json!({"source": {"type": "event", "field": field}, "operator": op, "value": value})
}

#[test]
fn every_operator_decides_whether_the_rule_fires() {
    let d = json!({"n": 10, "s": "hello world", "tags": ["a", "b"], "code": "ORD-42", "nil": null});
    let cases = [
        (ev("n", "eq", json!(10)), true),
        (ev("n", "eq", json!(11)), false),
        (ev("n", "neq", json!(11)), true),
        (ev("n", "neq", json!(10)), false),
        (ev("n", "gt", json!(9)), true),
        (ev("n", "gt", json!(10)), false),
        (ev("n", "gte", json!(10)), true),
        (ev("n", "gte", json!(11)), false),
        (ev("n", "lt", json!(11)), true),
        (ev("n", "lt", json!(10)), false),
        (ev("n", "lte", json!(10)), true),
        (ev("n", "lte", json!(9)), false),
        (ev("n", "in", json!([1, 10])), true),
        (ev("n", "in", json!([1, 2])), false),
        (ev("n", "not_in", json!([1, 2])), true),
        (ev("n", "not_in", json!([10])), false),
        (ev("s", "contains", json!("world")), true),
        (ev("s", "contains", json!("mars")), false),
        (ev("tags", "contains", json!("b")), true),
        (ev("tags", "contains", json!("z")), false),
        (ev("s", "not_contains", json!("mars")), true),
        (ev("tags", "not_contains", json!("a")), false),
        (ev("code", "matches", json!("^ORD-\\d+$")), true),
        (ev("code", "matches", json!("^X")), false),
        (
            json!({"source": {"type": "event", "field": "n"}, "operator": "exists"}),
            true,
        ),
        (
            json!({"source": {"type": "event", "field": "nil"}, "operator": "exists"}),
            false,
        ),
        (
            json!({"source": {"type": "event", "field": "missing"}, "operator": "not_exists"}),
            true,
        ),
        (
            json!({"source": {"type": "event", "field": "n"}, "operator": "not_exists"}),
            false,
        ),
    ];
    for (condition, expected) in cases {
        assert_eq!(fires(condition.clone(), d.clone()), expected, "{condition}");
    }
}

#[test]
fn fact_and_context_sources_and_refs() {
    let d = json!({"user": 7, "amount": 150, "cap": 200});
    // Fact source with an interpolated key.
    let role = json!({"source": {"type": "fact", "pattern": "user:${event.user}:role"}, "operator": "eq", "value": "admin"});
    assert!(fires(role, d.clone()));
    let wildcard = json!({"source": {"type": "fact", "pattern": "user:*:role"}, "operator": "eq", "value": "admin"});
    assert!(fires(wildcard, d.clone()));
    // `{ref}` values: fact and event.
    assert!(fires(
        ev("amount", "gt", json!({"ref": "fact.limit:max"})),
        d.clone()
    ));
    assert!(!fires(
        ev("amount", "gt", json!({"ref": "event.cap"})),
        d.clone()
    ));
    assert!(fires(
        ev("amount", "lt", json!({"ref": "event.cap"})),
        d.clone()
    ));
    // Context source: unset outside for_each / temporal.
    let ctx = json!({"source": {"type": "context", "key": "item"}, "operator": "not_exists"});
    assert!(fires(ctx, d.clone()));
}

#[test]
fn set_delete_emit_with_interpolation_and_typed_refs() {
    let (engine, _) = engine();
    engine.set_fact("order:1:status", json!("new")).unwrap();
    register(
        &engine,
        on_event(
            "r",
            "order.paid",
            json!([]),
            json!([
                {"type": "set_fact", "key": "order:${event.orderId}:total", "value": {"ref": "event.total"}},
                {"type": "set_fact", "key": "order:${event.orderId}:label", "value": "Order ${event.orderId} by ${event.customer.name}"},
                {"type": "delete_fact", "key": "order:${event.orderId}:status"},
                {"type": "emit_event", "topic": "order.${event.orderId}.done",
                 "data": {"items": {"ref": "event.items"}, "total": {"ref": "fact.order:1:total"}, "missing": {"ref": "event.nope"}}}
            ]),
        ),
    );
    let done = record(&engine, "order.*");
    engine
        .emit(
            "order.paid",
            json!({"orderId": 1, "total": 99.5, "customer": {"name": "Ann"}, "items": [1, 2]}),
        )
        .unwrap();
    assert_eq!(engine.get_fact("order:1:total"), Some(json!(99.5)));
    assert_eq!(
        engine.get_fact("order:1:label"),
        Some(json!("Order 1 by Ann"))
    );
    assert_eq!(engine.get_fact("order:1:status"), None);
    let done = done.lock();
    assert_eq!(done[1].topic, "order.1.done");
    assert_eq!(
        done[1].data,
        json!({"items": [1, 2], "total": 99.5, "missing": null})
    );
}

#[test]
fn conditional_runs_then_or_else() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "r",
            "t",
            json!([]),
            json!([{"type": "conditional",
        "conditions": [ev("n", "gte", json!(10))],
        "then": [{"type": "set_fact", "key": "size:${event.n}", "value": "big"}],
        "else": [{"type": "set_fact", "key": "size:${event.n}", "value": "small"}]}]),
        ),
    );
    engine.emit("t", json!({"n": 12})).unwrap();
    engine.emit("t", json!({"n": 3})).unwrap();
    assert_eq!(engine.get_fact("size:12"), Some(json!("big")));
    assert_eq!(engine.get_fact("size:3"), Some(json!("small")));
}

#[test]
fn for_each_binds_item_and_index_and_respects_max_iterations() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "r",
            "batch",
            json!([]),
            json!([
                {"type": "for_each", "collection": {"ref": "event.items"}, "as": "item", "maxIterations": 2, "actions": [
                    {"type": "set_fact", "key": "item:${var.item.id}", "value": {"ref": "var.item_index"}},
                    {"type": "conditional", "conditions": [{"source": {"type": "context", "key": "item.vip"}, "operator": "eq", "value": true}],
                     "then": [{"type": "set_fact", "key": "vip:${context.item.id}", "value": {"ref": "context.item"}}]}
                ]},
                {"type": "for_each", "collection": ["x", "y"], "as": "s", "actions": [
                    {"type": "set_fact", "key": "lit:${var.s}", "value": true}]}
            ]),
        ),
    );
    engine
        .emit(
            "batch",
            json!({"items": [{"id": "a"}, {"id": "b", "vip": true}, {"id": "c"}]}),
        )
        .unwrap();
    assert_eq!(engine.get_fact("item:a"), Some(json!(0)));
    assert_eq!(engine.get_fact("item:b"), Some(json!(1)));
    assert_eq!(
        engine.get_fact("item:c"),
        None,
        "maxIterations 2 stops before the third item"
    );
    assert_eq!(
        engine.get_fact("vip:b"),
        Some(json!({"id": "b", "vip": true}))
    );
    assert_eq!(engine.get_fact("lit:y"), Some(json!(true)));
}

#[test]
fn for_each_default_bound_comes_from_the_config() {
    let engine = RuleEngine::new(EngineConfig {
        max_for_each_iterations: 3,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "r",
            "t",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.xs"},
        "as": "x", "maxIterations": 100, "actions": [{"type": "emit_event", "topic": "x", "data": {}}]}]),
        ),
    );
    let xs = record(&engine, "x");
    engine.emit("t", json!({"xs": [1, 2, 3, 4, 5]})).unwrap();
    assert_eq!(xs.lock().len(), 3);
}

#[test]
fn try_catch_recovers_and_finally_always_runs() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "r",
            "t",
            json!([]),
            json!([
                {"type": "try_catch",
                 "try": [
                    {"type": "set_fact", "key": "try:start", "value": true},
                    {"type": "for_each", "collection": {"ref": "event.bad"}, "as": "x", "actions": []},
                    {"type": "set_fact", "key": "try:end", "value": true}
                 ],
                 "catch": {"as": "err", "actions": [{"type": "set_fact", "key": "caught", "value": "${var.err.message}"}]},
                 "finally": [{"type": "set_fact", "key": "finally", "value": true}]},
                {"type": "set_fact", "key": "after", "value": true}
            ]),
        ),
    );
    engine.emit("t", json!({"bad": "nope"})).unwrap();
    assert_eq!(engine.get_fact("try:start"), Some(json!(true)));
    assert_eq!(engine.get_fact("try:end"), None);
    let caught = engine.get_fact("caught").unwrap();
    assert!(
        caught.as_str().unwrap().contains("not an array"),
        "{caught}"
    );
    assert_eq!(engine.get_fact("finally"), Some(json!(true)));
    assert_eq!(
        engine.get_fact("after"),
        Some(json!(true)),
        "a caught error does not stop the rule"
    );
    assert_eq!(engine.stats().action_errors, 0);
}

#[test]
fn try_without_catch_runs_finally_then_fails_the_rule() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "r",
            "t",
            json!([]),
            json!([
                {"type": "try_catch", "try": [{"type": "emit_event", "topic": "${event.bad}", "data": {}}],
                 "finally": [{"type": "set_fact", "key": "finally", "value": true}]},
                {"type": "set_fact", "key": "after", "value": true}
            ]),
        ),
    );
    engine.emit("t", json!({"bad": "a..b"})).unwrap();
    assert_eq!(engine.get_fact("finally"), Some(json!(true)));
    assert_eq!(engine.get_fact("after"), None);
    assert_eq!(engine.stats().action_errors, 1);
}

#[test]
fn log_action_interpolates_and_reaches_the_hook() {
    let logs: Arc<Mutex<Vec<(LogLevel, String, String)>>> = Arc::default();
    let sink = logs.clone();
    let engine = RuleEngine::new(EngineConfig {
        log_hook: Some(Arc::new(move |level, msg: &str, rule: &str| {
            sink.lock().push((level, msg.into(), rule.into()))
        })),
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "r",
            "t",
            json!([]),
            json!([
        {"type": "log", "level": "warn", "message": "order ${event.id} is late"}]),
        ),
    );
    engine.emit("t", json!({"id": 5})).unwrap();
    assert_eq!(
        logs.lock().as_slice(),
        [(
            LogLevel::Warn,
            "order 5 is late".to_string(),
            "r".to_string()
        )]
    );
}

#[test]
fn unknown_reference_source_fails_the_rule() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "r",
            "t",
            json!([]),
            json!([
        {"type": "set_fact", "key": "k", "value": "${bogus.x}"}]),
        ),
    );
    engine.emit("t", json!({})).unwrap();
    assert_eq!(engine.get_fact("k"), None);
    assert_eq!(engine.stats().action_errors, 1);
}

#[test]
fn rules_written_in_rust_register_too() {
    let (engine, _) = engine();
    let input: noex_rules::RuleInput = serde_json::from_value(on_event(
        "r",
        "t",
        json!([]),
        json!([{"type": "set_fact", "key": "k", "value": 1}]),
    ))
    .unwrap();
    assert_eq!(input.priority, 0);
    assert!(input.enabled);
    engine.register(input).unwrap();
    engine.emit("t", json!({})).unwrap();
    assert_eq!(engine.get_fact("k"), Some(json!(1)));
}
