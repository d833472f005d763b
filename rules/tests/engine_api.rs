//! Engine API: facts, events, subscriptions, rule management, stats, chaining and isolation.

mod common;

use common::{engine, on_event, record, register, topics};
use noex_rules::{EmitOptions, EngineConfig, RuleEngine, RulesError};
use serde_json::json;

#[test]
fn facts_are_versioned_queried_and_deleted() {
    let (engine, _) = engine();
    let f = engine.set_fact("user:1:name", json!("Ann")).unwrap();
    assert_eq!(
        (f.version, f.source.as_str(), f.timestamp),
        (1, "api", 1_000_000)
    );
    assert_eq!(
        engine
            .set_fact("user:1:name", json!("Anna"))
            .unwrap()
            .version,
        2
    );
    engine.set_fact("user:2:name", json!("Bob")).unwrap();
    engine.set_fact("user:2", json!({"x": 1})).unwrap();
    let keys: Vec<String> = engine
        .query_facts("user:*:name")
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    assert_eq!(keys, ["user:1:name", "user:2:name"]);
    assert_eq!(engine.query_facts("user:*").unwrap().len(), 1);
    assert_eq!(engine.get_fact("user:1:name"), Some(json!("Anna")));
    assert!(engine.delete_fact("user:2"));
    assert!(!engine.delete_fact("user:2"));
    assert_eq!(engine.get_all_facts().len(), 2);
    assert!(matches!(
        engine.set_fact("user:*", json!(1)),
        Err(RulesError::InvalidPattern { .. })
    ));
    assert!(matches!(
        engine.query_facts("a::b"),
        Err(RulesError::InvalidPattern { .. })
    ));
    let json = serde_json::to_value(engine.query_facts("user:1:name").unwrap()).unwrap();
    // Listings carry the whole fact, as the original's `Fact`.
    assert_eq!(
        json,
        json!([{"key": "user:1:name", "value": "Anna", "timestamp": 1_000_000, "source": "api", "version": 2}])
    );
}

#[test]
fn emit_returns_the_event_and_subscribers_get_matching_ones() {
    let (engine, _) = engine();
    let orders = record(&engine, "order.*");
    let all = record(&engine, "*");
    let created = record(&engine, "*.created");
    let e = engine.emit("order.created", json!({"id": 1})).unwrap();
    engine.emit("order.item.added", json!({})).unwrap();
    engine.emit("user.created", json!({})).unwrap();
    assert_eq!(e.topic, "order.created");
    assert_eq!(e.source, "api");
    assert_eq!(e.timestamp, 1_000_000);
    assert_eq!(topics(&orders), ["order.created", "order.item.added"]);
    assert_eq!(topics(&all).len(), 3);
    assert_eq!(topics(&created), ["order.created", "user.created"]);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["data"], json!({"id": 1}));
    assert!(json.get("correlationId").is_none());
    assert!(matches!(
        engine.emit("order.*", json!({})),
        Err(RulesError::InvalidPattern { .. })
    ));
}

#[test]
fn unsubscribe_stops_delivery() {
    let (engine, _) = engine();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(0));
    let s = seen.clone();
    let id = engine.subscribe("a.b", move |_| *s.lock() += 1).unwrap();
    engine.emit("a.b", json!({})).unwrap();
    assert!(engine.unsubscribe(id));
    assert!(!engine.unsubscribe(id));
    engine.emit("a.b", json!({})).unwrap();
    assert_eq!(*seen.lock(), 1);
    assert!(matches!(
        engine.subscribe("", |_| {}),
        Err(RulesError::InvalidPattern { .. })
    ));
}

#[test]
fn subscriber_may_call_the_engine_because_no_lock_is_held() {
    let (engine, _) = engine();
    let e2 = engine.clone();
    engine
        .subscribe("ping", move |_| {
            e2.set_fact("seen:ping", json!(true)).unwrap();
        })
        .unwrap();
    engine.emit("ping", json!({})).unwrap();
    assert_eq!(engine.get_fact("seen:ping"), Some(json!(true)));
}

#[test]
fn rule_events_carry_correlation_and_causation() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "r",
            "order.created",
            json!([]),
            json!([{"type": "emit_event", "topic": "order.ack", "data": {"orderId": {"ref": "event.id"}}}]),
        ),
    );
    let acks = record(&engine, "order.ack");
    let e = engine
        .emit_with(
            "order.created",
            json!({"id": 9}),
            EmitOptions {
                source: Some("store".into()),
                correlation_id: Some("corr-1".into()),
                causation_id: None,
            },
        )
        .unwrap();
    let acks = acks.lock();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].data, json!({"orderId": 9}));
    assert_eq!(acks[0].correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(acks[0].causation_id.as_deref(), Some(e.id.as_str()));
    assert_eq!(acks[0].source, "rule");
}

#[test]
fn rule_management_lifecycle() {
    let (engine, clock) = engine();
    let rule = json!({"id": "r1", "name": "One", "priority": 5, "tags": ["a"], "group": "g",
        "trigger": {"type": "event", "topic": "x"},
        "actions": [{"type": "set_fact", "key": "hit", "value": 1}]});
    let r = engine.register_rule(&rule).unwrap();
    assert_eq!(
        (r.version, r.created_at, r.updated_at),
        (1, 1_000_000, 1_000_000)
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["id"], "r1");
    assert_eq!(json["createdAt"], 1_000_000);
    assert_eq!(json["trigger"]["topic"], "x");
    assert!(
        matches!(engine.register_rule(&rule), Err(RulesError::AlreadyExists(id)) if id == "r1")
    );

    engine.disable_rule("r1").unwrap();
    engine.emit("x", json!({})).unwrap();
    assert_eq!(engine.get_fact("hit"), None);
    assert!(engine.enable_rule("r1").unwrap().input.enabled);
    engine.emit("x", json!({})).unwrap();
    assert_eq!(engine.get_fact("hit"), Some(json!(1)));

    clock.advance(500);
    let updated = engine
        .update_rule(
            "r1",
            &json!({"name": "Uno", "id": "ignored",
        "actions": [{"type": "set_fact", "key": "hit", "value": 2}]}),
        )
        .unwrap();
    assert_eq!(
        (updated.version, updated.updated_at, updated.created_at),
        (2, 1_000_500, 1_000_000)
    );
    assert_eq!(updated.input.id, "r1");
    engine.emit("x", json!({})).unwrap();
    assert_eq!(engine.get_fact("hit"), Some(json!(2)));
    match engine.update_rule("r1", &json!({"trigger": {"type": "nope"}})) {
        Err(RulesError::Validation(errors)) => assert_eq!(errors[0].path, "trigger.type"),
        other => panic!("expected validation error, got {other:?}"),
    }

    let list = serde_json::to_value(engine.get_rules()).unwrap();
    assert_eq!(
        list,
        json!([{"id": "r1", "name": "Uno", "enabled": true, "priority": 5, "version": 2,
        "tags": ["a"], "group": "g"}])
    );
    assert_eq!(engine.get_rule("r1").unwrap().input.name, "Uno");
    engine.unregister_rule("r1").unwrap();
    for result in [
        engine.unregister_rule("r1"),
        engine.get_rule("r1").map(|_| ()),
        engine.enable_rule("r1").map(|_| ()),
        engine.update_rule("r1", &json!({})).map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(RulesError::NotFound { kind: "rule", .. })),
            "{result:?}"
        );
    }
}

#[test]
fn register_rejects_invalid_rules_with_paths() {
    let (engine, _) = engine();
    match engine.register_rule(&json!({"id": "r", "name": "R", "trigger": {"type": "event"},
        "conditions": [{"source": {"type": "event", "field": "a"}, "operator": "like", "value": 1}]}))
    {
        Err(RulesError::Validation(errors)) => {
            let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["trigger.topic", "conditions[0].operator"]);
        }
        other => panic!("expected validation error, got {other:?}"),
    }
    let report = serde_json::to_value(engine.validate_rule(&json!({"id": "r"}))).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(
        report["errors"][0],
        json!({"path": "name", "message": "Required field \"name\" is missing", "severity": "error"})
    );
    assert!(
        engine
            .validate_rule(&common::on_event("r", "a", json!([]), json!([])))
            .valid
    );
}

#[test]
fn rules_run_in_priority_order() {
    let (engine, _) = engine();
    for (id, priority) in [("low", 1), ("high", 10), ("mid", 5)] {
        register(
            &engine,
            json!({"id": id, "name": id, "priority": priority,
            "trigger": {"type": "event", "topic": "go"},
            "actions": [{"type": "emit_event", "topic": format!("ran.{id}"), "data": {}}]}),
        );
    }
    let ran = record(&engine, "ran.*");
    engine.emit("go", json!({})).unwrap();
    assert_eq!(topics(&ran), ["ran.high", "ran.mid", "ran.low"]);
}

#[test]
fn fact_triggers_fire_on_set_and_delete_and_chain() {
    let (engine, _) = engine();
    register(
        &engine,
        json!({"id": "tier", "name": "tier", "trigger": {"type": "fact", "pattern": "customer:*:spent"},
        "conditions": [{"source": {"type": "event", "field": "value"}, "operator": "gt", "value": 1000}],
        "actions": [{"type": "set_fact", "key": "${event.key}:tier", "value": "gold"}]}),
    );
    register(
        &engine,
        json!({"id": "gold", "name": "gold", "trigger": {"type": "fact", "pattern": "customer:*:spent:tier"},
        "actions": [{"type": "emit_event", "topic": "customer.gold", "data": {"key": {"ref": "event.key"},
            "deleted": {"ref": "event.deleted"}}}]}),
    );
    let gold = record(&engine, "customer.gold");
    engine.set_fact("customer:1:spent", json!(500)).unwrap();
    assert_eq!(engine.get_fact("customer:1:spent:tier"), None);
    engine.set_fact("customer:1:spent", json!(1500)).unwrap();
    assert_eq!(
        engine.get_fact("customer:1:spent:tier"),
        Some(json!("gold"))
    );
    assert_eq!(
        engine
            .get_fact_record("customer:1:spent:tier")
            .unwrap()
            .source,
        "rule"
    );
    assert!(engine.delete_fact("customer:1:spent:tier"));
    let gold = gold.lock();
    assert_eq!(gold.len(), 2);
    assert_eq!(
        gold[0].data,
        json!({"key": "customer:1:spent:tier", "deleted": false})
    );
    assert_eq!(gold[1].data["deleted"], true);
}

#[test]
fn self_triggering_rule_stops_at_the_depth_bound() {
    let clock = noex_rules::ManualClock::new(0);
    let engine = RuleEngine::new(EngineConfig {
        max_chain_depth: 5,
        clock: std::sync::Arc::new(clock),
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "loop",
            "ping",
            json!([]),
            json!([
                {"type": "set_fact", "key": "count", "value": {"ref": "event.n"}},
                {"type": "emit_event", "topic": "ping", "data": {"n": {"ref": "event.n"}}}
            ]),
        ),
    );
    let pings = record(&engine, "ping");
    engine.emit("ping", json!({"n": 1})).unwrap();
    // The client event (depth 0) and one rule event per generation up to the bound.
    assert_eq!(pings.lock().len(), 6);
    let stats = engine.stats();
    assert_eq!(stats.rules_executed, 5);
    // Cut by depth, not by work: nothing was dropped.
    assert_eq!((stats.cascades_truncated, stats.work_dropped), (1, 0));
}

#[test]
fn fan_out_is_bounded_by_the_work_limit() {
    let engine = RuleEngine::new(EngineConfig {
        max_chain_depth: 50,
        max_work_per_input: 100,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "fan",
            "f",
            json!([]),
            json!([
                {"type": "emit_event", "topic": "f", "data": {}},
                {"type": "emit_event", "topic": "f", "data": {}}
            ]),
        ),
    );
    let seen = record(&engine, "f");
    engine.emit("f", json!({})).unwrap();
    // Units: the input 1, then per event 1 rule run + 2 × (action + queued event) = 5.
    // The 20th event's second emit would be unit 101: it is refused, and the 20 events
    // still queued are dropped.
    assert_eq!(seen.lock().len(), 20);
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.work_dropped), (1, 20));
    assert_eq!(stats.action_errors, 0);
}

#[test]
fn a_failing_action_stops_only_its_own_rule() {
    let (engine, _) = engine();
    register(
        &engine,
        json!({"id": "bad", "name": "bad", "priority": 10, "trigger": {"type": "event", "topic": "go"},
        "actions": [
            {"type": "set_fact", "key": "bad:before", "value": true},
            {"type": "for_each", "collection": {"ref": "event.notAList"}, "as": "x", "actions": []},
            {"type": "set_fact", "key": "bad:after", "value": true}
        ]}),
    );
    register(
        &engine,
        on_event(
            "good",
            "go",
            json!([]),
            json!([{"type": "set_fact", "key": "good", "value": true}]),
        ),
    );
    engine.emit("go", json!({"notAList": 3})).unwrap();
    assert_eq!(engine.get_fact("bad:before"), Some(json!(true)));
    assert_eq!(engine.get_fact("bad:after"), None);
    assert_eq!(engine.get_fact("good"), Some(json!(true)));
    assert_eq!(engine.stats().action_errors, 1);
    // The engine keeps running.
    engine.emit("go", json!({"notAList": []})).unwrap();
    assert_eq!(engine.get_fact("bad:after"), Some(json!(true)));
}

#[test]
fn stats_are_camel_case_and_count() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "r",
            "a",
            json!([]),
            json!([{"type": "emit_event", "topic": "b", "data": {}}]),
        ),
    );
    engine.set_fact("k", json!(1)).unwrap();
    engine.emit("a", json!({})).unwrap();
    let stats = serde_json::to_value(engine.stats()).unwrap();
    assert_eq!(stats["rulesCount"], 1);
    assert_eq!(stats["factsCount"], 1);
    assert_eq!(stats["timersCount"], 0);
    assert_eq!(stats["eventsProcessed"], 2);
    assert_eq!(stats["rulesExecuted"], 1);
    assert!(stats["avgProcessingTimeMs"].as_f64().is_some());
}

#[test]
fn engine_is_usable_from_many_threads() {
    let (engine, _) = engine();
    register(
        &engine,
        on_event(
            "count",
            "hit",
            json!([]),
            json!([{"type": "emit_event", "topic": "counted", "data": {}}]),
        ),
    );
    let counted = record(&engine, "counted");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let e = engine.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    e.emit("hit", json!({})).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(counted.lock().len(), 100);
}

#[test]
fn the_fact_observer_sees_every_change_in_order_and_restore_is_silent() {
    use std::sync::{Arc, Mutex};
    type Seen = Vec<(String, Option<serde_json::Value>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = Arc::clone(&seen);
    let engine = RuleEngine::new(EngineConfig {
        fact_observer: Some(Arc::new(move |changes: &[noex_rules::FactChange]| {
            let mut seen = sink.lock().unwrap();
            for c in changes {
                seen.push((c.key.clone(), c.fact.as_ref().map(|f| f.value.clone())));
            }
        })),
        ..EngineConfig::default()
    });
    engine
        .register_rule(&json!({
            "id": "mirror", "name": "mirror",
            "trigger": {"type": "event", "topic": "tier.changed"},
            "actions": [{"type": "set_fact", "key": "tier:${event.user}", "value": {"ref": "event.tier"}}]
        }))
        .unwrap();
    engine.set_fact("a", json!(1)).unwrap();
    engine
        .emit("tier.changed", json!({"user": "u1", "tier": "gold"}))
        .unwrap();
    assert!(engine.delete_fact("a"));
    assert!(!engine.delete_fact("a"), "deleting nothing reports nothing");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("a".to_owned(), Some(json!(1))),
            ("tier:u1".to_owned(), Some(json!("gold"))),
            ("a".to_owned(), None),
        ]
    );

    let restored = noex_rules::Fact {
        key: "old".into(),
        value: json!("kept"),
        timestamp: 5,
        source: "api".into(),
        version: 7,
    };
    engine.restore_facts([restored.clone()]);
    assert_eq!(engine.get_fact_record("old"), Some(restored));
    assert_eq!(seen.lock().unwrap().len(), 3, "restoring is not a change");
}

#[test]
fn fact_trigger_data_keeps_its_field_order() {
    let (engine, _) = engine();
    register(
        &engine,
        json!({"id": "echo", "name": "echo", "trigger": {"type": "fact", "pattern": "k"},
               "actions": [{"type": "emit_event", "topic": "changed", "data": {"ref": "event"}}]}),
    );
    let changed = record(&engine, "changed");
    engine.set_fact("k", json!(1)).unwrap();
    assert_eq!(
        changed.lock()[0].data.to_string(),
        r#"{"key":"k","value":1,"previousValue":null,"deleted":false}"#
    );
}

// ----- inputs found by the `rule` fuzz target (fuzz/): what validate_rule accepts,
// register_rule registers ------------------------------------------------------------------

/// `validate_rule` takes `null` for the optional lists as "absent"; registration refused
/// the same rule with "invalid type: null, expected a sequence".
#[test]
fn null_optional_lists_register_like_absent_ones() {
    for field in ["tags", "conditions", "actions"] {
        let (engine, _) = engine();
        let mut rule = json!({"id": "r", "name": "r", "trigger": {"type": "event", "topic": "t"}});
        rule[field] = serde_json::Value::Null;
        assert!(engine.validate_rule(&rule).valid, "{field}");
        let registered = engine
            .register_rule(&rule)
            .unwrap_or_else(|e| panic!("{field}: null: {e}"));
        assert!(registered.input.tags.is_empty() && registered.input.actions.is_empty());
        assert!(registered.input.conditions.is_empty());
    }
}
