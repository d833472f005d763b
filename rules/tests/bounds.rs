//! The bounds of one input (work units, bytes of produced values, chain depth) and of the
//! fact store (`max_facts`): a rule that feeds itself stops early, drops the rest of its
//! cascade and is counted, a bound is never an action error nor caught by `try_catch`, and
//! facts beyond the limit are refused through the API and in actions.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{on_event, record, register};
use noex_rules::{EngineConfig, Fact, RuleEngine, RulesError};
use serde_json::{Value, json};

fn engine_with(config: EngineConfig) -> RuleEngine {
    RuleEngine::new(config)
}

/// The attack: on `t`, for every item of `event.items`, emit `t` with the same items.
fn re_emit_rule() -> Value {
    on_event(
        "echo",
        "t",
        json!([]),
        json!([{"type": "for_each", "collection": {"ref": "event.items"}, "as": "x",
                "actions": [{"type": "emit_event", "topic": "t",
                             "data": {"items": {"ref": "event.items"}}}]}]),
    )
}

fn items(n: u32) -> Value {
    json!({ "items": (0..n).collect::<Vec<_>>() })
}

#[test]
fn a_for_each_re_emitting_its_trigger_counts_queued_work_against_the_bound() {
    let max_work = 1_000;
    let engine = engine_with(EngineConfig {
        max_work_per_input: max_work,
        ..Default::default()
    });
    register(&engine, re_emit_rule());
    let seen = record(&engine, "t");
    engine.emit("t", items(10)).unwrap();
    let stats = engine.stats();
    assert_eq!(stats.cascades_truncated, 1);
    assert!(stats.work_dropped > 0, "{stats:?}");
    // Every event processed or dropped was queued, and queueing costs a unit: the queue
    // never held more than the bound (before, only *handled* items were counted and the
    // queue grew to ~10× the bound).
    assert!(
        stats.events_processed as usize + stats.work_dropped as usize <= max_work,
        "{stats:?}"
    );
    // Per handled event: a rule run, the for_each action and 10 × (iteration, emit action,
    // queued event) = 32 units, so about 1000 / 32 events ran.
    assert!((20..=40).contains(&stats.events_processed), "{stats:?}");
    // What ran is delivered; the dropped work is not.
    assert_eq!(seen.lock().len() as u64, stats.events_processed);
    assert_eq!(stats.action_errors, 0, "a bound is not an action error");
}

#[test]
fn the_attack_with_default_bounds_stays_small() {
    let engine = RuleEngine::default();
    register(&engine, re_emit_rule());
    for n in [100, 1_000] {
        let started = std::time::Instant::now();
        let event = engine.emit("t", items(n)).unwrap();
        assert_eq!(event.topic, "t");
        // A guard against the unbounded cascade (minutes and gigabytes before), not a
        // timing assumption: the bounded one takes milliseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
    let stats = engine.stats();
    assert_eq!(stats.cascades_truncated, 2);
    assert!(stats.events_processed <= 2 * 10_000, "{stats:?}");
}

#[test]
fn actions_and_iterations_count_even_when_nothing_is_queued() {
    let logged = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&logged);
    let engine = engine_with(EngineConfig {
        max_work_per_input: 5_000,
        // Counts the log actions run, not the lines the log rate limit lets through.
        max_rule_logs_per_second: u32::MAX,
        log_hook: Some(Arc::new(move |_, _, _| {
            counter.fetch_add(1, Ordering::Relaxed);
        })),
        ..Default::default()
    });
    // 1000 × 1000 log actions, none of which queues anything.
    register(
        &engine,
        on_event(
            "square",
            "go",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.items"}, "as": "a",
                    "actions": [{"type": "for_each", "collection": {"ref": "event.items"}, "as": "b",
                                 "actions": [{"type": "log", "level": "debug", "message": "${var.a}/${var.b}"}]}]}]),
        ),
    );
    engine.emit("go", items(1_000)).unwrap();
    let logged = logged.load(Ordering::Relaxed);
    // Each inner iteration costs 2 units (iteration, log action): fewer than 2 500 logs.
    assert!((1_000..2_500).contains(&logged), "{logged}");
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.work_dropped), (1, 0));
    assert_eq!(stats.action_errors, 0);
}

#[test]
fn queued_bytes_bound_large_payloads() {
    let max_bytes = 1024 * 1024;
    let engine = engine_with(EngineConfig {
        max_queued_bytes_per_input: max_bytes,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "copy",
            "big",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.ids"}, "as": "id",
                    "actions": [{"type": "emit_event", "topic": "copy",
                                 "data": {"id": {"ref": "var.id"}, "payload": {"ref": "event.payload"}}}]}]),
        ),
    );
    let copies = record(&engine, "copy");
    let payload = "x".repeat(100_000);
    let ids: Vec<u32> = (0..100).collect();
    engine
        .emit("big", json!({"ids": ids, "payload": payload}))
        .unwrap();
    let stats = engine.stats();
    assert_eq!(stats.cascades_truncated, 1);
    // About ten 100 kB copies fit in 1 MiB; they were queued, then dropped with the rest
    // of the cascade when the eleventh did not fit (before: all 100 were made, 10 MB).
    assert!(
        (1..=(max_bytes / payload.len()) as u64).contains(&stats.work_dropped),
        "{stats:?}"
    );
    assert!(copies.lock().is_empty());
    assert_eq!(stats.action_errors, 0);
}

#[test]
fn a_value_multiplied_by_references_is_refused_before_it_is_built() {
    let engine = engine_with(EngineConfig {
        max_queued_bytes_per_input: 64 * 1024,
        ..Default::default()
    });
    // One emit whose data refers to a 10 kB payload 100 times: 1 MB if built.
    let data: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("k{i}"), json!({"ref": "event.payload"})))
        .collect();
    register(
        &engine,
        on_event(
            "amplify",
            "in",
            json!([]),
            json!([{"type": "emit_event", "topic": "out", "data": data},
                   {"type": "log", "level": "debug", "message": "${event.payload}${event.payload}${event.payload}${event.payload}${event.payload}${event.payload}${event.payload}"}]),
        ),
    );
    let out = record(&engine, "out");
    engine
        .emit("in", json!({"payload": "p".repeat(10_000)}))
        .unwrap();
    assert!(out.lock().is_empty());
    assert_eq!(engine.stats().cascades_truncated, 1);
}

#[test]
fn a_fact_cannot_grow_beyond_the_bytes_bound_across_inputs() {
    let max_bytes = 256 * 1024;
    let engine = engine_with(EngineConfig {
        max_queued_bytes_per_input: max_bytes,
        // The per-input bound is what this test is about, not the fact size bound.
        max_fact_bytes: usize::MAX,
        ..Default::default()
    });
    engine.set_fact("big", json!("x".repeat(1_000))).unwrap();
    // Each `grow` doubles the fact: 2^12 kB = 4 MB after twelve inputs without a bound.
    register(
        &engine,
        on_event(
            "double",
            "grow",
            json!([]),
            json!([{"type": "set_fact", "key": "big", "value": [{"ref": "fact.big"}, {"ref": "fact.big"}]}]),
        ),
    );
    for _ in 0..12 {
        engine.emit("grow", json!({})).unwrap();
    }
    let size = engine
        .get_fact("big")
        .map(|v| v.to_string().len())
        .unwrap_or(0);
    assert!((64_000..=max_bytes).contains(&size), "{size}");
    assert!(engine.stats().cascades_truncated >= 1);
}

#[test]
fn try_catch_does_not_catch_a_bound() {
    let engine = engine_with(EngineConfig {
        max_work_per_input: 200,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "guarded",
            "t",
            json!([]),
            json!([{"type": "try_catch",
                    "try": [{"type": "for_each", "collection": {"ref": "event.items"}, "as": "x",
                             "actions": [{"type": "emit_event", "topic": "t", "data": {"items": {"ref": "event.items"}}}]}],
                    "catch": {"actions": [{"type": "set_fact", "key": "caught", "value": true}]},
                    "finally": [{"type": "set_fact", "key": "finally", "value": true}]}]),
        ),
    );
    engine.emit("t", items(100)).unwrap();
    assert_eq!(engine.get_fact("caught"), None);
    assert_eq!(engine.get_fact("finally"), None);
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.action_errors), (1, 0));
}

#[test]
fn the_depth_bound_stops_a_chain_without_dropping_work() {
    let engine = engine_with(EngineConfig {
        max_chain_depth: 3,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "next",
            "step",
            json!([]),
            json!([{"type": "emit_event", "topic": "step", "data": {}}]),
        ),
    );
    let steps = record(&engine, "step");
    engine.emit("step", json!({})).unwrap();
    // Depths 0..=3 are delivered; the event at depth 3 triggers no rule.
    assert_eq!(steps.lock().len(), 4);
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.work_dropped), (1, 0));
}

#[test]
fn ordinary_cascades_are_not_truncated() {
    let engine = RuleEngine::default();
    register(
        &engine,
        on_event(
            "confirm",
            "order.placed",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.lines"}, "as": "line",
                    "actions": [{"type": "set_fact", "key": "order:${event.id}:line:${var.line_index}", "value": {"ref": "var.line"}},
                                {"type": "emit_event", "topic": "line.added", "data": {"line": {"ref": "var.line"}}}]}]),
        ),
    );
    let lines: Vec<Value> = (0..500).map(|i| json!({"sku": i, "qty": 1})).collect();
    engine
        .emit("order.placed", json!({"id": 1, "lines": lines}))
        .unwrap();
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.work_dropped), (0, 0));
    assert_eq!(stats.facts_count, 500);
    assert_eq!(stats.events_processed, 501);
}

#[test]
fn set_fact_beyond_max_facts_is_limit_exceeded() {
    let engine = engine_with(EngineConfig {
        max_facts: 3,
        ..Default::default()
    });
    for key in ["a", "b", "c"] {
        engine.set_fact(key, json!(1)).unwrap();
    }
    match engine.set_fact("d", json!(1)) {
        Err(RulesError::LimitExceeded(message)) => assert!(message.contains("3"), "{message}"),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(engine.get_fact("d"), None);
    // Existing keys still change; a deletion makes room.
    assert_eq!(engine.set_fact("a", json!(2)).unwrap().version, 2);
    assert!(engine.delete_fact("b"));
    engine.set_fact("d", json!(1)).unwrap();
    assert_eq!(engine.stats().facts_count, 3);
}

#[test]
fn a_set_fact_action_beyond_max_facts_is_an_action_error() {
    let engine = engine_with(EngineConfig {
        max_facts: 5,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "fill",
            "fill",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.items"}, "as": "x",
                    "actions": [{"type": "set_fact", "key": "item:${var.x}", "value": true}]}]),
        ),
    );
    register(
        &engine,
        on_event(
            "guarded",
            "guarded",
            json!([]),
            json!([{"type": "try_catch",
                    "try": [{"type": "set_fact", "key": "another", "value": 1}],
                    "catch": {"as": "err", "actions": [{"type": "emit_event", "topic": "refused",
                                                        "data": {"message": "${var.err.message}"}}]}}]),
        ),
    );
    engine.emit("fill", items(10)).unwrap();
    let stats = engine.stats();
    assert_eq!(stats.facts_count, 5);
    assert_eq!(stats.action_errors, 1);
    assert_eq!(stats.cascades_truncated, 0);
    // An ordinary failure: try_catch sees it.
    let refused = record(&engine, "refused");
    engine.emit("guarded", json!({})).unwrap();
    let refused = refused.lock();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].data["message"]
            .as_str()
            .is_some_and(|m| m.contains("fact limit (5)")),
        "{:?}",
        refused[0].data
    );
}

#[test]
fn restored_facts_beyond_the_limit_are_kept() {
    let engine = engine_with(EngineConfig {
        max_facts: 2,
        ..Default::default()
    });
    engine.restore_facts((0..4).map(|i| Fact {
        key: format!("k{i}"),
        value: json!(i),
        timestamp: 0,
        source: "api".into(),
        version: 1,
    }));
    assert_eq!(engine.stats().facts_count, 4);
    assert!(matches!(
        engine.set_fact("new", json!(1)),
        Err(RulesError::LimitExceeded(_))
    ));
    assert_eq!(engine.set_fact("k0", json!(9)).unwrap().version, 2);
}

#[test]
fn timers_and_rules_have_bounds_too() {
    let engine = engine_with(EngineConfig {
        max_rules: 2,
        max_timers: 1,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "arm",
            "arm",
            json!([]),
            json!([{"type": "set_timer", "timer": {"name": "t:${event.n}", "duration": "1h",
                    "onExpire": {"topic": "fired"}}}]),
        ),
    );
    register(&engine, on_event("other", "x", json!([]), json!([])));
    assert!(matches!(
        engine.register_rule(&on_event("third", "x", json!([]), json!([]))),
        Err(RulesError::LimitExceeded(_))
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        engine.emit("arm", json!({"n": 1})).unwrap();
        engine.emit("arm", json!({"n": 2})).unwrap();
        // Re-arming the existing timer is fine.
        engine.emit("arm", json!({"n": 1})).unwrap();
    });
    let stats = engine.stats();
    assert_eq!(stats.timers_count, 1);
    assert_eq!(stats.action_errors, 1);
}

/// Red-team rerun: a rule whose `log` runs in a `for_each` (or on every event) wrote
/// unbounded log lines. Each rule may write `max_rule_logs_per_second` lines per second of
/// the engine clock; the rest are dropped, counted, and summed up in one warning before the
/// rule's next line that passes.
#[test]
fn log_lines_of_a_rule_are_rate_limited_with_one_summary_of_the_dropped() {
    let clock = noex_rules::ManualClock::new(1_000_000);
    let lines = Arc::new(parking_lot::Mutex::new(Vec::<(String, String)>::new()));
    let sink = Arc::clone(&lines);
    let engine = engine_with(EngineConfig {
        max_rule_logs_per_second: 5,
        clock: Arc::new(clock.clone()),
        log_hook: Some(Arc::new(move |_, message: &str, rule: &str| {
            sink.lock().push((rule.to_owned(), message.to_owned()));
        })),
        ..Default::default()
    });
    let logger = |id: &str| {
        on_event(
            id,
            "go",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.items"}, "as": "i",
                    "actions": [{"type": "log", "level": "info", "message": "line ${context.i}"}]}]),
        )
    };
    register(&engine, logger("flood"));
    register(&engine, logger("other"));
    let take = |rule: &str| -> Vec<String> {
        let mut all = lines.lock();
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(r, _)| r == rule);
        *all = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    };

    // 1 000 lines at once: the burst of 5 passes, 995 are dropped.
    engine.emit("go", items(1_000)).unwrap();
    assert_eq!(
        take("flood"),
        ["line 0", "line 1", "line 2", "line 3", "line 4"]
    );
    // Each rule has its own bucket.
    assert_eq!(take("other").len(), 5);
    assert_eq!(engine.stats().logs_dropped, 2 * 995);
    // Nothing refills without time passing.
    engine.emit("go", items(3)).unwrap();
    assert!(take("flood").is_empty());
    assert_eq!(engine.stats().logs_dropped, 2 * 998);

    // 400 ms later: 2 tokens; the first line that passes is preceded by the summary.
    clock.advance(400);
    engine.emit("go", items(10)).unwrap();
    assert_eq!(
        take("flood"),
        [
            "998 log lines dropped (over 5 per second)",
            "line 0",
            "line 1"
        ]
    );
    assert_eq!(take("other").len(), 3);
    // After a quiet second the bucket is full again (5, never more).
    clock.advance(10_000);
    engine.emit("go", items(10)).unwrap();
    let flood = take("flood");
    assert_eq!(flood.len(), 6, "{flood:?}");
    assert_eq!(flood[0], "8 log lines dropped (over 5 per second)");
    assert_eq!(take("other").len(), 6);
    engine.emit("go", items(0)).unwrap();
    let stats = engine.stats();
    assert_eq!(stats.logs_dropped, 2 * 998 + 2 * 8 + 2 * 5);
    assert_eq!(stats.action_errors, 0);
}

/// Red-team rerun: `set_fact` with huge values, repeated up to `max_facts`, grew memory
/// until the process died. One value is bounded by `max_fact_bytes`, all facts together by
/// `max_facts_bytes` (values counted as the larger of JSON and memory, plus the keys), through the API and in rule
/// actions (an action error there, never a panic).
#[test]
fn fact_values_and_all_facts_together_are_bounded_in_bytes() {
    let engine = engine_with(EngineConfig {
        max_fact_bytes: 1000,
        max_facts_bytes: 2500,
        ..Default::default()
    });
    // A string counts as its size in memory (a node plus its bytes) when that is more than
    // its JSON: `blob(n)` counts n bytes.
    let node = std::mem::size_of::<Value>();
    let blob = |n: usize| json!("x".repeat(n - node));
    // One value over the bound: TooLarge, nothing stored.
    match engine.set_fact("big", blob(1010)) {
        Err(RulesError::TooLarge(message)) => {
            assert!(
                message.contains("1010 bytes") && message.contains("(1000 bytes)"),
                "{message}"
            )
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(engine.get_fact("big"), None);
    // 1000 bytes + 2 of key each: two fit, the third would pass 2500.
    engine.set_fact("k1", blob(1000)).unwrap();
    engine.set_fact("k2", blob(1000)).unwrap();
    match engine.set_fact("k3", blob(1000)) {
        Err(RulesError::LimitExceeded(message)) => {
            assert!(
                message.contains("fact storage limit (2500 bytes"),
                "{message}"
            )
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // A small new fact still fits (2004 + 400 + 2 <= 2500); growing an existing one does not,
    // shrinking does, and a deletion makes room.
    engine.set_fact("k3", blob(400)).unwrap();
    assert!(matches!(
        engine.set_fact("k3", blob(500)),
        Err(RulesError::LimitExceeded(_))
    ));
    engine.set_fact("k1", blob(100)).unwrap();
    engine.set_fact("k3", blob(1000)).unwrap();
    assert!(engine.delete_fact("k2"));
    engine.set_fact("k4", blob(1000)).unwrap();
    // 102 + 1002 + 1002 = 2106 bytes stored: 402 more do not fit.
    assert!(matches!(
        engine.set_fact("k5", blob(400)),
        Err(RulesError::LimitExceeded(_))
    ));

    // In rule actions: an action error, the rest of the engine unharmed.
    register(
        &engine,
        on_event(
            "grow",
            "grow",
            json!([]),
            json!([{"type": "set_fact", "key": "${event.key}", "value": {"ref": "event.blob"}}]),
        ),
    );
    engine
        .emit("grow", json!({"key": "r1", "blob": blob(10000)}))
        .unwrap();
    engine
        .emit("grow", json!({"key": "k1", "blob": blob(800)}))
        .unwrap();
    assert_eq!(engine.get_fact("r1"), None);
    assert_eq!(engine.get_fact("k1"), Some(blob(100)));
    assert_eq!(engine.stats().action_errors, 2);
    engine
        .emit("grow", json!({"key": "k1", "blob": 7}))
        .unwrap();
    assert_eq!(engine.get_fact("k1"), Some(json!(7)));
    assert_eq!(engine.stats().action_errors, 2);
}

/// Red-team rerun: a rule's `for_each` over `event.s`, 50 emits with `s` a 900 KB string,
/// wrote 45 MB of action-error warnings in 1.6 s (each carried the whole value). The
/// warnings of failed conditions and actions now share the per-rule rate of `log` lines:
/// beyond it they are dropped and counted in `logs_dropped`.
#[test]
fn action_error_warnings_share_the_per_rule_log_rate() {
    let engine = engine_with(EngineConfig {
        clock: Arc::new(noex_rules::ManualClock::new(0)),
        max_rule_logs_per_second: 5,
        ..Default::default()
    });
    register(
        &engine,
        on_event(
            "fail",
            "go",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.s"}, "as": "i",
                    "actions": []}]),
        ),
    );
    let big = "x".repeat(900_000);
    for _ in 0..50 {
        engine.emit("go", json!({"s": big})).unwrap();
    }
    let stats = engine.stats();
    assert_eq!(stats.action_errors, 50);
    // A burst of 5 warnings passed; 45 were dropped.
    assert_eq!(stats.logs_dropped, 45);
}

/// `count` conditions `not_contains "zz<i>"` on `event.text` (none holds false on text
/// without `zz`), then an `ok` event.
fn not_contains_rule(id: &str, count: usize) -> Value {
    let conditions: Vec<Value> = (0..count)
        .map(|i| {
            json!({"source": {"type": "event", "field": "text"},
                        "operator": "not_contains", "value": format!("zz{i}")})
        })
        .collect();
    on_event(
        id,
        "t",
        json!(conditions),
        json!([{"type": "emit_event", "topic": "ok", "data": {}}]),
    )
}

/// Red-team rerun: one rule of 7 000 `not_contains` over a 900 KB event field took ~250 ms
/// per event (6.3 GB compared) and counted as one work unit. What conditions look at is
/// charged to `max_scanned_bytes_per_input` before they compare: the rule stops after
/// ~18 conditions, the input is counted as truncated, and the same rule over a small
/// field, or a normal rule over the large one, is unaffected.
#[test]
fn conditions_scanning_a_large_field_are_bounded_by_the_scanned_bytes() {
    let engine = engine_with(EngineConfig {
        max_rule_bytes: usize::MAX,
        max_rules_bytes: usize::MAX,
        ..Default::default()
    });
    register(&engine, not_contains_rule("heavy", 7_000));
    let ok = record(&engine, "ok");
    let text = "x".repeat(900_000);

    let started = std::time::Instant::now();
    engine.emit("t", json!({ "text": text })).unwrap();
    let took = started.elapsed();
    let stats = engine.stats();
    assert_eq!(stats.cascades_truncated, 1, "{stats:?}");
    assert_eq!(stats.rules_executed, 0, "{stats:?}");
    assert_eq!(stats.action_errors, 0, "a bound is not an action error");
    assert!(ok.lock().is_empty());
    eprintln!("7 000 not_contains over 900 KB: one emit took {took:?}");

    // The same 7 000 conditions over a short text: ~0.5 MB scanned, the rule runs.
    engine.emit("t", json!({ "text": "hello" })).unwrap();
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.rules_executed), (1, 1));
    assert_eq!(ok.lock().len(), 1);

    // A normal rule over the large text: 3 conditions, ~2.7 MB scanned.
    engine.unregister_rule("heavy").unwrap();
    register(&engine, not_contains_rule("normal", 3));
    engine.emit("t", json!({ "text": text })).unwrap();
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.rules_executed), (1, 2));
    assert_eq!(ok.lock().len(), 2);
}

/// Conditions of `conditional` actions (here in a `for_each`), comparisons of large arrays
/// and wildcard fact lookups are charged too.
#[test]
fn action_conditions_array_comparisons_and_fact_lookups_are_scanned_bytes() {
    let config = || EngineConfig {
        max_scanned_bytes_per_input: 1024 * 1024,
        ..Default::default()
    };
    // 1 000 iterations, each checking a 100 KB text: 100 MB without the bound.
    let engine = engine_with(config());
    register(
        &engine,
        on_event(
            "loop",
            "t",
            json!([]),
            json!([{"type": "for_each", "collection": {"ref": "event.items"}, "as": "i",
                    "actions": [{"type": "conditional",
                        "conditions": [{"source": {"type": "event", "field": "text"},
                                        "operator": "contains", "value": "zz"}],
                        "then": [{"type": "emit_event", "topic": "found", "data": {}}]}]}]),
        ),
    );
    let items: Vec<u32> = (0..1_000).collect();
    engine
        .emit("t", json!({"items": items, "text": "x".repeat(100_000)}))
        .unwrap();
    let stats = engine.stats();
    assert_eq!(stats.cascades_truncated, 1, "{stats:?}");

    // `eq` of two large arrays walks them.
    let engine = engine_with(config());
    let conditions: Vec<Value> = (0..10)
        .map(|_| {
            json!({"source": {"type": "event", "field": "a"}, "operator": "eq",
                   "value": {"ref": "event.b"}})
        })
        .collect();
    register(&engine, on_event("eq", "t", json!(conditions), json!([])));
    let big: Vec<u32> = (0..20_000).collect();
    engine.emit("t", json!({"a": big, "b": big})).unwrap();
    assert_eq!(engine.stats().cascades_truncated, 1);
    assert_eq!(engine.stats().rules_executed, 0);

    // A wildcard fact condition passes every fact before the one it finds.
    let engine = engine_with(config());
    for i in 0..20_000 {
        engine
            .set_fact(&format!("a:{i:05}:padding-padding-padding"), json!(i))
            .unwrap();
    }
    let conditions: Vec<Value> = (0..10)
        .map(|_| json!({"source": {"type": "fact", "pattern": "z:*"}, "operator": "not_exists"}))
        .collect();
    register(
        &engine,
        on_event("facts", "t", json!(conditions), json!([])),
    );
    engine.emit("t", json!({})).unwrap();
    let stats = engine.stats();
    assert_eq!((stats.cascades_truncated, stats.rules_executed), (1, 0));
}

/// Red-team rerun: 400 rules of 616 KB each were accepted (512 MB) and `rules.getRules`
/// took 11.8 s. One rule is bounded by `max_rule_bytes` (`TooLarge`), all rules together
/// by `max_rules_bytes` (`LimitExceeded`); unregistering frees room, updates are bounded
/// too, and restored rules are all kept.
#[test]
fn rule_definitions_are_bounded_in_bytes() {
    let engine = engine_with(EngineConfig {
        max_rules_bytes: 256 * 1024,
        ..Default::default()
    });
    let err = engine
        .register_rule(&not_contains_rule("huge", 7_000))
        .unwrap_err();
    let RulesError::TooLarge(message) = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.starts_with("rule \"huge\": definition of ")
            && message.ends_with("exceeds the rule size limit (65536 bytes)"),
        "{message}"
    );
    assert!(engine.get_rule("huge").is_err());

    // Rules of 60 conditions (~42 KB each): the 256 KiB total is reached after 6.
    let mut stored = Vec::new();
    let refused = loop {
        let id = format!("r{}", stored.len());
        match engine.register_rule(&not_contains_rule(&id, 60)) {
            Ok(_) => stored.push(id),
            Err(e) => break e,
        }
        assert!(stored.len() < 100, "the total bound was never reached");
    };
    assert_eq!(stored.len(), 6);
    let RulesError::LimitExceeded(message) = &refused else {
        panic!("{refused:?}");
    };
    assert!(
        message.contains("rule storage limit (262144 bytes of all rules) reached"),
        "{message}"
    );
    // A growing update is refused as well; one that shrinks always works.
    assert!(matches!(
        engine.update_rule(
            &stored[0],
            &json!({"conditions": not_contains_rule("x", 75)["conditions"]})
        ),
        Err(RulesError::LimitExceeded(_))
    ));
    assert!(matches!(
        engine.update_rule(
            &stored[0],
            &json!({"conditions": not_contains_rule("x", 7_000)["conditions"]})
        ),
        Err(RulesError::TooLarge(_))
    ));
    engine
        .update_rule(
            &stored[0],
            &json!({"conditions": not_contains_rule("x", 1)["conditions"]}),
        )
        .unwrap();
    // Unregistering frees room.
    engine.unregister_rule(&stored[1]).unwrap();
    register(&engine, not_contains_rule("again", 60));

    // Restored rules are kept over both bounds.
    engine
        .restore_rule_as(&not_contains_rule("restored", 7_000), Some("o"))
        .unwrap();
    assert_eq!(
        engine.get_rule("restored").unwrap().owner.as_deref(),
        Some("o")
    );
    assert!(matches!(
        engine.register_rule(&not_contains_rule("small", 1)),
        Err(RulesError::LimitExceeded(_))
    ));
}
