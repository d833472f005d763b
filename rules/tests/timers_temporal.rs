//! Timers and temporal patterns under paused tokio time (no real sleeps).

mod common;

use std::time::Duration;

use common::{record, register, topics};
use noex_rules::RuleEngine;
use serde_json::{Value, json};
use tokio::time::advance;

async fn step(engine: &RuleEngine, ms: u64) {
    advance(Duration::from_millis(ms)).await;
    engine.settle().await;
}

fn temporal(id: &str, pattern: Value) -> Value {
    json!({"id": id, "name": id, "trigger": {"type": "temporal", "pattern": pattern},
        "actions": [{"type": "emit_event", "topic": "matched.${context.pattern}",
            "data": {"last": {"ref": "event"}, "groupKey": {"ref": "context.groupKey"},
                     "count": {"ref": "context.count"}, "value": {"ref": "context.aggregateValue"},
                     "first": {"ref": "matched.0"}}}]})
}

#[tokio::test(start_paused = true)]
async fn timer_fires_event_and_timer_rule_after_its_duration() {
    let engine = RuleEngine::default();
    register(
        &engine,
        json!({"id": "start", "name": "start", "trigger": {"type": "event", "topic": "order.created"},
        "actions": [{"type": "set_timer", "timer": {"name": "pay:${event.id}", "duration": "15m",
            "onExpire": {"topic": "payment.timeout", "data": {"orderId": {"ref": "event.id"}}}}}]}),
    );
    register(
        &engine,
        json!({"id": "expired", "name": "expired", "trigger": {"type": "timer", "name": "pay:*"},
        "actions": [{"type": "set_fact", "key": "order:${event.orderId}:status", "value": "expired"}]}),
    );
    let timeouts = record(&engine, "payment.*");
    let created = engine.emit("order.created", json!({"id": 42})).unwrap();
    assert_eq!(engine.stats().timers_count, 1);
    step(&engine, 14 * 60_000).await;
    assert!(timeouts.lock().is_empty());
    step(&engine, 60_000).await;
    let t = timeouts.lock().clone();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].data, json!({"orderId": 42}));
    assert_eq!(t[0].source, "timer");
    assert_eq!(t[0].correlation_id.as_deref(), Some(created.id.as_str()));
    assert_eq!(engine.get_fact("order:42:status"), Some(json!("expired")));
    assert_eq!(engine.stats().timers_count, 0);
}

#[tokio::test(start_paused = true)]
async fn cancel_timer_action_prevents_expiry_and_same_name_replaces() {
    let engine = RuleEngine::default();
    register(
        &engine,
        json!({"id": "set", "name": "set", "trigger": {"type": "event", "topic": "start"},
        "actions": [{"type": "set_timer", "timer": {"name": "t", "duration": {"ref": "event.ms"},
            "onExpire": {"topic": "fired", "data": {"ms": {"ref": "event.ms"}}}}}]}),
    );
    register(
        &engine,
        json!({"id": "cancel", "name": "cancel", "trigger": {"type": "event", "topic": "stop"},
        "actions": [{"type": "cancel_timer", "name": "t"}]}),
    );
    let fired = record(&engine, "fired");
    engine.emit("start", json!({"ms": 1000})).unwrap();
    engine.emit("stop", json!({})).unwrap();
    step(&engine, 5000).await;
    assert!(fired.lock().is_empty());

    engine.emit("start", json!({"ms": 1000})).unwrap();
    engine.emit("start", json!({"ms": 3000})).unwrap();
    assert_eq!(
        engine.timers().len(),
        1,
        "same name replaces, never duplicates"
    );
    step(&engine, 1500).await;
    assert!(fired.lock().is_empty());
    step(&engine, 1500).await;
    assert_eq!(
        fired
            .lock()
            .iter()
            .map(|e| e.data["ms"].clone())
            .collect::<Vec<_>>(),
        [json!(3000)]
    );
    assert!(!engine.cancel_timer("t"), "the fired timer is gone");
}

#[tokio::test(start_paused = true)]
async fn repeating_timer_stops_after_max_count() {
    let engine = RuleEngine::default();
    register(
        &engine,
        json!({"id": "tick", "name": "tick", "trigger": {"type": "event", "topic": "go"},
        "actions": [{"type": "set_timer", "timer": {"name": "heartbeat", "duration": "30s",
            "onExpire": {"topic": "tick", "data": {}}, "repeat": {"interval": "10s", "maxCount": 3}}}]}),
    );
    let ticks = record(&engine, "tick");
    engine.emit("go", json!({})).unwrap();
    step(&engine, 29_999).await;
    assert_eq!(ticks.lock().len(), 0);
    step(&engine, 1).await;
    assert_eq!(ticks.lock().len(), 1);
    step(&engine, 10_000).await;
    assert_eq!(ticks.lock().len(), 2);
    // Jumping far ahead fires the remaining due expiry once, then the timer is gone.
    step(&engine, 600_000).await;
    assert_eq!(ticks.lock().len(), 3);
    assert_eq!(engine.stats().timers_count, 0);
}

#[tokio::test(start_paused = true)]
async fn set_timer_with_a_bad_runtime_duration_fails_only_that_rule() {
    let engine = RuleEngine::default();
    register(
        &engine,
        json!({"id": "t", "name": "t", "trigger": {"type": "event", "topic": "go"},
        "actions": [{"type": "set_timer", "timer": {"name": "x", "duration": "${event.d}",
            "onExpire": {"topic": "x", "data": {}}}}]}),
    );
    register(
        &engine,
        json!({"id": "ok", "name": "ok", "trigger": {"type": "event", "topic": "go"},
        "actions": [{"type": "set_fact", "key": "ok", "value": true}]}),
    );
    engine.emit("go", json!({"d": "soon"})).unwrap();
    assert_eq!(engine.stats().timers_count, 0);
    assert_eq!(engine.stats().action_errors, 1);
    assert_eq!(engine.get_fact("ok"), Some(json!(true)));
}

#[tokio::test(start_paused = true)]
async fn sequence_matches_in_order_within_the_window_per_group() {
    let engine = RuleEngine::default();
    register(
        &engine,
        temporal(
            "seq",
            json!({"type": "sequence", "groupBy": "orderId", "within": "5m",
        "events": [{"topic": "order.created"}, {"topic": "payment.received", "filter": {"status": "ok"}}]}),
        ),
    );
    let matched = record(&engine, "matched.*");
    // Wrong order: payment first does not start a sequence.
    engine
        .emit("payment.received", json!({"orderId": 1, "status": "ok"}))
        .unwrap();
    engine.emit("order.created", json!({"orderId": 1})).unwrap();
    engine.emit("order.created", json!({"orderId": 2})).unwrap();
    step(&engine, 60_000).await;
    engine
        .emit(
            "payment.received",
            json!({"orderId": 2, "status": "failed"}),
        )
        .unwrap();
    assert!(matched.lock().is_empty(), "filter must hold");
    engine
        .emit("payment.received", json!({"orderId": 2, "status": "ok"}))
        .unwrap();
    {
        let m = matched.lock();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].data["groupKey"], "2");
        assert_eq!(m[0].data["first"], json!({"orderId": 2}));
        assert_eq!(m[0].data["last"]["status"], "ok");
    }
    // Group 1 runs out of time.
    step(&engine, 5 * 60_000).await;
    engine
        .emit("payment.received", json!({"orderId": 1, "status": "ok"}))
        .unwrap();
    assert_eq!(matched.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn strict_sequence_is_broken_by_an_out_of_order_event() {
    let engine = RuleEngine::default();
    register(
        &engine,
        temporal(
            "seq",
            json!({"type": "sequence", "within": 60_000, "strict": true,
        "events": [{"topic": "a"}, {"topic": "b"}, {"topic": "c"}]}),
        ),
    );
    let matched = record(&engine, "matched.*");
    for t in ["a", "c", "b", "c"] {
        engine.emit(t, json!({})).unwrap();
    }
    assert!(matched.lock().is_empty());
    for t in ["a", "b", "c"] {
        engine.emit(t, json!({})).unwrap();
    }
    assert_eq!(matched.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn absence_fires_when_the_expected_event_does_not_come() {
    let engine = RuleEngine::default();
    register(
        &engine,
        temporal(
            "abs",
            json!({"type": "absence", "groupBy": "orderId", "within": "10m",
        "after": {"topic": "order.created"}, "expected": {"topic": "payment.received"}}),
        ),
    );
    let matched = record(&engine, "matched.*");
    engine
        .emit("order.created", json!({"orderId": "A"}))
        .unwrap();
    engine
        .emit("order.created", json!({"orderId": "B"}))
        .unwrap();
    step(&engine, 5 * 60_000).await;
    engine
        .emit("payment.received", json!({"orderId": "A"}))
        .unwrap();
    step(&engine, 5 * 60_000 - 1).await;
    assert!(matched.lock().is_empty());
    step(&engine, 1).await;
    assert_eq!(topics(&matched), ["matched.absence"]);
    let m = matched.lock().clone();
    assert_eq!(m[0].data["groupKey"], "B");
    assert_eq!(m[0].data["last"], json!({"orderId": "B"}));
}

#[tokio::test(start_paused = true)]
async fn count_tumbling_window_fires_once_per_window() {
    let engine = RuleEngine::default();
    register(
        &engine,
        temporal(
            "cnt",
            json!({"type": "count", "event": {"topic": "login.failed"},
        "threshold": 3, "comparison": "gte", "window": "1m", "groupBy": "user"}),
        ),
    );
    let matched = record(&engine, "matched.*");
    for _ in 0..2 {
        engine.emit("login.failed", json!({"user": "ann"})).unwrap();
    }
    engine.emit("login.failed", json!({"user": "bob"})).unwrap();
    assert!(matched.lock().is_empty());
    engine.emit("login.failed", json!({"user": "ann"})).unwrap();
    assert_eq!(matched.lock().len(), 1);
    assert_eq!(matched.lock()[0].data["count"], 3);
    assert_eq!(matched.lock()[0].data["groupKey"], "ann");
    // The window was consumed; two more within it do not fire.
    engine.emit("login.failed", json!({"user": "ann"})).unwrap();
    engine.emit("login.failed", json!({"user": "ann"})).unwrap();
    assert_eq!(matched.lock().len(), 1);
    // After the window, counting restarts.
    step(&engine, 61_000).await;
    engine.emit("login.failed", json!({"user": "bob"})).unwrap();
    engine.emit("login.failed", json!({"user": "bob"})).unwrap();
    assert_eq!(
        matched.lock().len(),
        1,
        "bob's first failure is outside the new window"
    );
}

#[tokio::test(start_paused = true)]
async fn count_sliding_window_drops_old_events() {
    let engine = RuleEngine::default();
    register(
        &engine,
        temporal(
            "cnt",
            json!({"type": "count", "event": {"topic": "err"},
        "threshold": 3, "window": "10s", "sliding": true}),
        ),
    );
    let matched = record(&engine, "matched.*");
    engine.emit("err", json!({})).unwrap();
    step(&engine, 6_000).await;
    engine.emit("err", json!({})).unwrap();
    step(&engine, 6_000).await;
    engine.emit("err", json!({})).unwrap();
    assert!(
        matched.lock().is_empty(),
        "the first event left the trailing window"
    );
    engine.emit("err", json!({})).unwrap();
    assert_eq!(matched.lock().len(), 1);
    engine.emit("err", json!({})).unwrap();
    assert_eq!(
        matched.lock().len(),
        2,
        "sliding windows keep firing while the count holds"
    );
}

#[tokio::test(start_paused = true)]
async fn aggregate_functions_over_the_window() {
    for (function, threshold, comparison, expected) in [
        ("sum", 100.0, "gte", 100.0),
        ("avg", 50.0, "eq", 50.0),
        ("min", 30.0, "lte", 30.0),
        ("max", 70.0, "eq", 70.0),
        ("count", 2.0, "eq", 2.0),
    ] {
        let engine = RuleEngine::default();
        register(
            &engine,
            temporal(
                "agg",
                json!({"type": "aggregate", "event": {"topic": "sale"},
            "field": "amount", "function": function, "threshold": threshold, "comparison": comparison,
            "window": "1h", "groupBy": "region"}),
            ),
        );
        let matched = record(&engine, "matched.*");
        engine
            .emit("sale", json!({"region": "eu", "amount": 30}))
            .unwrap();
        engine
            .emit("sale", json!({"region": "us", "amount": 500}))
            .unwrap();
        step(&engine, 60_000).await;
        let before = matched
            .lock()
            .iter()
            .filter(|e| e.data["groupKey"] == "eu")
            .count();
        engine
            .emit("sale", json!({"region": "eu", "amount": 70}))
            .unwrap();
        let eu: Vec<_> = matched
            .lock()
            .iter()
            .filter(|e| e.data["groupKey"] == "eu")
            .cloned()
            .collect();
        assert_eq!(eu.len(), before + 1, "{function}");
        assert_eq!(
            eu.last().unwrap().data["value"],
            json!(expected),
            "{function}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn aggregate_window_expires_old_values() {
    let engine = RuleEngine::default();
    register(
        &engine,
        temporal(
            "agg",
            json!({"type": "aggregate", "event": {"topic": "sale"},
        "field": "amount", "function": "sum", "threshold": 100, "comparison": "gte", "window": "1m"}),
        ),
    );
    let matched = record(&engine, "matched.*");
    engine.emit("sale", json!({"amount": 60})).unwrap();
    step(&engine, 61_000).await;
    engine.emit("sale", json!({"amount": 60})).unwrap();
    assert!(matched.lock().is_empty());
    engine.emit("sale", json!({"amount": 40})).unwrap();
    assert_eq!(matched.lock()[0].data["value"], json!(100.0));
}

#[tokio::test(start_paused = true)]
async fn disabling_a_temporal_rule_drops_its_state() {
    let engine = RuleEngine::default();
    register(
        &engine,
        temporal(
            "abs",
            json!({"type": "absence", "within": "1m",
        "after": {"topic": "a"}, "expected": {"topic": "b"}}),
        ),
    );
    let matched = record(&engine, "matched.*");
    engine.emit("a", json!({})).unwrap();
    engine.disable_rule("abs").unwrap();
    engine.enable_rule("abs").unwrap();
    step(&engine, 120_000).await;
    assert!(matched.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn timer_events_trigger_event_rules_and_temporal_rules_check_conditions() {
    let engine = RuleEngine::default();
    register(
        &engine,
        json!({"id": "arm", "name": "arm", "trigger": {"type": "event", "topic": "arm"},
        "actions": [{"type": "set_timer", "timer": {"name": "reminder", "duration": 1000,
            "onExpire": {"topic": "reminder.due", "data": {"who": {"ref": "event.who"}}}}}]}),
    );
    register(
        &engine,
        json!({"id": "remind", "name": "remind", "trigger": {"type": "event", "topic": "reminder.*"},
        "actions": [{"type": "set_fact", "key": "reminded:${event.who}", "value": true}]}),
    );
    let mut big = temporal(
        "big",
        json!({"type": "count", "event": {"topic": "pay"}, "threshold": 2, "window": "1m"}),
    );
    big["conditions"] =
        json!([{"source": {"type": "event", "field": "amount"}, "operator": "gt", "value": 10}]);
    register(&engine, big);
    let matched = record(&engine, "matched.*");
    engine.emit("arm", json!({"who": "ann"})).unwrap();
    step(&engine, 1000).await;
    assert_eq!(engine.get_fact("reminded:ann"), Some(json!(true)));
    engine.emit("pay", json!({"amount": 50})).unwrap();
    engine.emit("pay", json!({"amount": 5})).unwrap();
    assert!(
        matched.lock().is_empty(),
        "the count matched but the condition on the last event failed"
    );
    engine.emit("pay", json!({"amount": 50})).unwrap();
    engine.emit("pay", json!({"amount": 60})).unwrap();
    assert_eq!(matched.lock().len(), 1);
}

/// Red-team rerun / fuzzing: a rule re-arming a 0 ms timer on its own expiry fired without
/// end, and a 1 ms repeat flooded the engine. A literal below `min_timer_interval_ms` is
/// refused at registration (and by `validate_rule`); a computed one is raised to it.
#[tokio::test(start_paused = true)]
async fn timers_shorter_than_the_minimum_interval_are_refused_or_raised() {
    let engine = RuleEngine::default();
    assert_eq!(engine.config().min_timer_interval_ms, 100);
    let timer = |duration: Value, repeat: Option<Value>| {
        let mut t = json!({"name": "tm", "duration": duration, "onExpire": {"topic": "t"}});
        if let Some(r) = repeat {
            t["repeat"] = json!({"interval": r});
        }
        json!({"id": "loop", "name": "loop", "trigger": {"type": "event", "topic": "t"},
               "actions": [{"type": "try_catch", "try": [{"type": "set_timer", "timer": t}]}]})
    };
    for (rule, path) in [
        (timer(json!(0), None), "actions[0].try[0].timer.duration"),
        (
            timer(json!("99ms"), None),
            "actions[0].try[0].timer.duration",
        ),
        (
            timer(json!("1s"), Some(json!(1))),
            "actions[0].try[0].timer.repeat.interval",
        ),
    ] {
        let err = engine.register_rule(&rule).unwrap_err();
        let noex_rules::RulesError::Validation(errors) = err else {
            panic!("not a validation error: {err}")
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, path);
        assert!(errors[0].message.contains("at least 100 ms"), "{errors:?}");
        let report = engine.validate_rule(&rule);
        assert!(!report.valid);
        assert_eq!(report.errors, errors);
    }
    assert!(engine.get_rules().is_empty());

    // Computed: raised to the floor. The 0 ms self re-arming loop fires once per 100 ms.
    register(
        &engine,
        json!({"id": "loop", "name": "loop", "trigger": {"type": "event", "topic": "t"},
               "actions": [{"type": "set_timer", "timer": {"name": "tm", "duration": {"ref": "event.ms"},
                   "onExpire": {"topic": "t", "data": {"ms": 0}}}}]}),
    );
    let fired = record(&engine, "t");
    engine.emit("t", json!({"ms": 0})).unwrap();
    step(&engine, 99).await;
    assert_eq!(fired.lock().len(), 1, "only the emit itself");
    step(&engine, 1).await;
    assert_eq!(fired.lock().len(), 2);
    for _ in 0..9 {
        step(&engine, 100).await;
    }
    assert_eq!(fired.lock().len(), 11, "one expiry per 100 ms over 1 s");
    engine.shutdown();
}

/// Timers and absence waits follow the engine clock, not tokio time: on a manual clock a
/// timer fires when the clock is advanced past its duration (and its event carries the
/// manual time), and an absence wait ends the same way.
#[tokio::test]
async fn a_manual_clock_drives_timers_and_absence_waits() {
    let (engine, clock) = common::engine();
    register(
        &engine,
        json!({"id": "start", "name": "start", "trigger": {"type": "event", "topic": "go"},
        "actions": [{"type": "set_timer", "timer": {"name": "t", "duration": "10s",
            "onExpire": {"topic": "done", "data": {}}}}]}),
    );
    register(
        &engine,
        temporal(
            "quiet",
            json!({"type": "absence", "after": {"topic": "go"}, "expected": {"topic": "ack"},
                   "within": "5s"}),
        ),
    );
    let done = record(&engine, "done");
    let matched = record(&engine, "matched.*");
    engine.emit("go", json!({})).unwrap();
    engine.settle().await;
    assert_eq!(engine.timers()[0].remaining_ms, 10_000);
    clock.advance(4_999);
    engine.settle().await;
    assert!(matched.lock().is_empty(), "absence wait one ms short");
    clock.advance(1);
    engine.settle().await;
    assert_eq!(topics(&matched), ["matched.absence"]);
    assert!(done.lock().is_empty());
    clock.advance(4_999);
    engine.settle().await;
    assert!(done.lock().is_empty(), "timer one ms short");
    assert_eq!(engine.timers()[0].remaining_ms, 1);
    clock.advance(1);
    engine.settle().await;
    let fired = done.lock().clone();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].timestamp, 1_010_000);
    assert!(engine.timers().is_empty());
}
