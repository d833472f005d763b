//! `rule`: rule validation and the engine running what validation let through.
//!
//! Input (JSON, as in the corpus, or generated from other bytes): one rule, a list of
//! rules, or `{"rules": [...], "facts": {key: value}, "events": [{"topic", "data"}],
//! "advanceMs": n}`. The generator builds rules from the rule grammar (every trigger,
//! temporal pattern, condition source, operator and action type, nested actions, `${...}`
//! templates and `{ref}`s) with a wrong-shaped value now and then.
//!
//! Checks: `validate_rule` never panics; a rule it calls valid registers (validation and
//! the rule model agree), and `updateRule` with no change accepts it again (its serialized
//! form is valid too); setting the facts, emitting the events and letting timers run for
//! `advanceMs` (at most a minute) of paused time never panics. One input may cause at most
//! `MAX_EVENTS` events: past that the target stops the engine's timers, because a rule that
//! re-arms a timer on the timer's own event loops forever (see the README's known issues).

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use noex_fuzz::{Gen, as_json, obj, runtime};
use noex_rules::{EngineConfig, RuleEngine, validate_rule};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Most events one input may cause before the target stops its timers (see `run`).
const MAX_EVENTS: usize = 2_000;

fuzz_target!(|data: &[u8]| {
    let case = match as_json(data) {
        Some(case) => case,
        None => match generate(&mut Unstructured::new(data)) {
            Ok(case) => case,
            Err(_) => return,
        },
    };
    noex_fuzz::show(&case);
    run(&case);
});

fn run(case: &Value) {
    let rules: Vec<Value> = match case {
        Value::Array(rules) => rules.clone(),
        Value::Object(o) if o.contains_key("rules") => match o.get("rules") {
            Some(Value::Array(rules)) => rules.clone(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        },
        other => vec![other.clone()],
    };
    let get = |k: &str| case.as_object().and_then(|o| o.get(k));
    let facts = get("facts")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let events = get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let advance = get("advanceMs")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(60_000);

    runtime().block_on(async {
        let engine = RuleEngine::new(EngineConfig {
            // Small bounds keep one input cheap; they are limits the engine must honour.
            max_work_per_input: 500,
            max_for_each_iterations: 50,
            max_timers: 50,
            ..EngineConfig::default()
        });
        for rule in &rules {
            // The engine's report: the free one plus the engine's bounds, of which only the
            // timer floor can refuse what the free validator accepts.
            let report = engine.validate_rule(rule);
            if report.valid != validate_rule(rule).valid {
                assert!(
                    report.errors.iter().all(|e| e.message.contains("minimum timer interval")),
                    "{report:?}"
                );
            }
            serde_json::to_string(&report).expect("a validation report serializes");
            let id = rule.get("id").and_then(Value::as_str);
            let duplicate = id.is_some_and(|id| engine.get_rule(id).is_ok());
            match engine.register_rule(rule) {
                Ok(registered) => {
                    assert!(report.valid, "registered although invalid: {rule}");
                    let again = engine
                        .update_rule(&registered.input.id, &json!({}))
                        .unwrap_or_else(|e| {
                            panic!("a registered rule does not re-validate: {e} ({rule})")
                        });
                    assert_eq!(again.input, registered.input);
                }
                Err(e) => assert!(
                    !report.valid || duplicate,
                    "validate_rule accepts {rule} but register_rule refuses it: {e}"
                ),
            }
        }
        // A bound on the events one input may cause. Rules can loop through timers without
        // limit (the chain depth bound restarts at every timer expiry): a rule that re-arms
        // a timer on the timer's own event fires for as long as time advances (at most every
        // `min_timer_interval_ms`, 100 ms, since the red-team rerun; before, a 0 ms timer
        // fired without pause). Past this many events the target stops every timer.
        let events_seen = Arc::new(AtomicUsize::new(0));
        let subscription = {
            let (seen, engine) = (events_seen.clone(), engine.clone());
            engine.clone().subscribe("*", move |_| {
                if seen.fetch_add(1, Ordering::Relaxed) >= MAX_EVENTS {
                    engine.shutdown();
                }
            })
        };
        for (key, value) in facts {
            let _ = engine.set_fact(&key, value);
        }
        for event in events {
            let topic = event.get("topic").and_then(Value::as_str).unwrap_or("t");
            let data = event.get("data").cloned().unwrap_or(Value::Null);
            let _ = engine.emit(topic, data);
        }
        if advance > 0 {
            tokio::time::advance(Duration::from_millis(advance)).await;
        }
        engine.settle().await;
        let _ = (
            engine.get_all_facts(),
            engine.timers(),
            engine.stats(),
            engine.get_rules(),
        );
        let _ = engine.query_facts("*");
        engine.shutdown();
        // The callback holds an engine handle: unsubscribing breaks that cycle.
        if let Ok(id) = subscription {
            engine.unsubscribe(id);
        }
    });
}

// ----- the generator ---------------------------------------------------------------------

const KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "topic",
    "pattern",
    "field",
    "key",
    "value",
    "data",
    "ref",
    "as",
    "conditions",
    "actions",
    "trigger",
    "timer",
    "within",
    "events",
    "groupBy",
];
const STRINGS: &[&str] = &[
    "t",
    "order.created",
    "order.*",
    "*",
    "user:1:score",
    "user:*:score",
    "x",
    "${event.id}",
    "${event.n}",
    "order:${event.id}:status",
    "${fact.user:1:score}",
    "${context.item}",
    "${var.item.n}",
    "${",
    "$}",
    "event.items",
    "5s",
    "10ms",
    "1y",
    "",
];
const TOPICS: &[&str] = &[
    "t",
    "order.created",
    "order.*",
    "*",
    "a.b.c",
    "a..b",
    ".",
    "a.*.c",
];
const FACT_KEYS: &[&str] = &[
    "user:1:score",
    "user:*:score",
    "order:${event.id}:status",
    "k",
    "a:b",
    "*",
    "a::b",
];
const FIELDS: &[&str] = &["id", "n", "items", "s", "nested.n", "missing", ""];
const DURATIONS: &[&str] = &[
    "10ms",
    "1s",
    "5m",
    "1h",
    "7d",
    "1w",
    "1y",
    "0",
    "99999999999999999999d",
    "${event.n}",
];

/// `{rules, facts, events, advanceMs}`.
fn generate(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut g = Gen::new(u, KEYS, STRINGS);
    g.fill_pool(4)?;
    let rules = g.list(3, rule)?;
    let mut facts = Map::new();
    for _ in 0..g.len(2)? {
        let k = g.word(FACT_KEYS)?.as_str().unwrap_or_default().to_owned();
        let v = g.scalar()?;
        facts.insert(k, v);
    }
    let events = g.list(3, |g| {
        Ok(obj([("topic", g.word(TOPICS)?), ("data", event_data(g)?)]))
    })?;
    let advance = g.pick(&[0u64, 0, 5, 1_000, 20_000, 60_000])?;
    Ok(obj([
        ("rules", Value::Array(rules)),
        ("facts", Value::Object(facts)),
        ("events", Value::Array(events)),
        ("advanceMs", json!(advance)),
    ]))
}

fn event_data(g: &mut Gen<'_, '_>) -> Result<Value> {
    let items = Value::Array(g.list(4, |g| g.value(3))?);
    Ok(obj([
        ("id", g.scalar()?),
        ("n", g.number()?),
        ("s", Value::String(g.string()?)),
        ("items", items),
        ("nested", obj([("n", g.scalar()?)])),
    ]))
}

fn string(g: &mut Gen<'_, '_>) -> Result<Value> {
    Ok(Value::String(g.string()?))
}

fn duration(g: &mut Gen<'_, '_>) -> Result<Value> {
    if g.chance(64)? {
        g.number()
    } else {
        g.word(DURATIONS)
    }
}

fn rule(g: &mut Gen<'_, '_>) -> Result<Value> {
    let mut r = Map::new();
    g.field(&mut r, "id", |g| g.word(&["r1", "r2", "r3", ""]))?;
    g.field(&mut r, "name", string)?;
    g.opt_field(&mut r, "priority", |g| g.number())?;
    g.opt_field(&mut r, "enabled", |g| Ok(Value::Bool(g.u.arbitrary()?)))?;
    g.opt_field(&mut r, "tags", |g| Ok(Value::Array(g.list(2, string)?)))?;
    g.opt_field(&mut r, "group", string)?;
    g.opt_field(&mut r, "description", string)?;
    g.field(&mut r, "trigger", trigger)?;
    g.opt_field(&mut r, "conditions", |g| {
        Ok(Value::Array(g.list(3, condition)?))
    })?;
    g.field(&mut r, "actions", |g| {
        Ok(Value::Array(g.list(3, |g| action(g, 0))?))
    })?;
    Ok(Value::Object(r))
}

fn trigger(g: &mut Gen<'_, '_>) -> Result<Value> {
    let mut t = Map::new();
    let kind = g.pick(&["event", "fact", "timer", "temporal"])?;
    g.field(&mut t, "type", |_| Ok(json!(kind)))?;
    match kind {
        "event" => g.field(&mut t, "topic", |g| g.word(TOPICS))?,
        "fact" => g.field(&mut t, "pattern", |g| g.word(FACT_KEYS))?,
        "timer" => g.field(&mut t, "name", |g| g.word(&["tm", "tm-${event.id}"]))?,
        _ => g.field(&mut t, "pattern", temporal)?,
    }
    Ok(Value::Object(t))
}

fn matcher(g: &mut Gen<'_, '_>) -> Result<Value> {
    let mut m = Map::new();
    g.field(&mut m, "topic", |g| g.word(TOPICS))?;
    g.opt_field(&mut m, "filter", |g| Ok(Value::Object(g.object(2)?)))?;
    g.opt_field(&mut m, "as", string)?;
    Ok(Value::Object(m))
}

fn temporal(g: &mut Gen<'_, '_>) -> Result<Value> {
    let mut p = Map::new();
    let kind = g.pick(&["sequence", "absence", "count", "aggregate"])?;
    g.field(&mut p, "type", |_| Ok(json!(kind)))?;
    g.opt_field(&mut p, "groupBy", |g| g.word(FIELDS))?;
    match kind {
        "sequence" => {
            g.field(&mut p, "events", |g| {
                let n = g.len(3)?.max(2);
                Ok(Value::Array(
                    (0..n).map(|_| matcher(g)).collect::<Result<_>>()?,
                ))
            })?;
            g.field(&mut p, "within", duration)?;
            g.opt_field(&mut p, "strict", |g| Ok(Value::Bool(g.u.arbitrary()?)))?;
        }
        "absence" => {
            g.field(&mut p, "after", matcher)?;
            g.field(&mut p, "expected", matcher)?;
            g.field(&mut p, "within", duration)?;
        }
        _ => {
            g.field(&mut p, "event", matcher)?;
            if kind == "aggregate" {
                g.field(&mut p, "field", |g| g.word(FIELDS))?;
                g.field(&mut p, "function", |g| {
                    g.word(&["sum", "avg", "min", "max", "count"])
                })?;
            } else {
                g.opt_field(&mut p, "sliding", |g| Ok(Value::Bool(g.u.arbitrary()?)))?;
            }
            g.field(&mut p, "threshold", |g| g.number())?;
            g.opt_field(&mut p, "comparison", |g| g.word(&["gte", "lte", "eq"]))?;
            g.field(&mut p, "window", duration)?;
        }
    }
    Ok(Value::Object(p))
}

fn condition(g: &mut Gen<'_, '_>) -> Result<Value> {
    let mut c = Map::new();
    g.field(&mut c, "source", |g| {
        Ok(match g.pick(&["event", "fact", "context"])? {
            "event" => obj([("type", json!("event")), ("field", g.word(FIELDS)?)]),
            "fact" => obj([("type", json!("fact")), ("pattern", g.word(FACT_KEYS)?)]),
            _ => obj([
                ("type", json!("context")),
                ("key", g.word(&["item", "e", "x"])?),
            ]),
        })
    })?;
    let op = g.pick(&[
        "eq",
        "neq",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "not_in",
        "contains",
        "not_contains",
        "matches",
        "exists",
        "not_exists",
    ])?;
    g.field(&mut c, "operator", |_| Ok(json!(op)))?;
    g.field(&mut c, "value", |g| {
        Ok(match op {
            _ if g.chance(32)? => obj([(
                "ref",
                g.word(&["event.n", "event.items", "fact.k", "context.item"])?,
            )]),
            "in" | "not_in" => Value::Array(g.list(3, |g| g.scalar())?),
            "matches" => g.word(&["^a", "(a+)+$", "[", "\\d{2,}", "(?i)x", "a{1000}{1000}"])?,
            _ => g.scalar()?,
        })
    })?;
    Ok(Value::Object(c))
}

fn action(g: &mut Gen<'_, '_>, depth: usize) -> Result<Value> {
    let mut a = Map::new();
    let kinds: &[&str] = if depth < 4 {
        &[
            "set_fact",
            "delete_fact",
            "emit_event",
            "set_timer",
            "cancel_timer",
            "log",
            "conditional",
            "for_each",
            "try_catch",
        ]
    } else {
        &[
            "set_fact",
            "delete_fact",
            "emit_event",
            "set_timer",
            "cancel_timer",
            "log",
        ]
    };
    let kind = g.pick(kinds)?;
    g.field(&mut a, "type", |_| Ok(json!(kind)))?;
    let body = |g: &mut Gen<'_, '_>| Ok(Value::Array(g.list(2, |g| action(g, depth + 1))?));
    match kind {
        "set_fact" => {
            g.field(&mut a, "key", |g| g.word(FACT_KEYS))?;
            g.field(&mut a, "value", |g| {
                if g.chance(64)? {
                    Ok(obj([(
                        "ref",
                        g.word(&["event.n", "event.items", "var.item"])?,
                    )]))
                } else {
                    g.value(3)
                }
            })?;
        }
        "delete_fact" => g.field(&mut a, "key", |g| g.word(FACT_KEYS))?,
        "emit_event" => {
            g.field(&mut a, "topic", |g| g.word(TOPICS))?;
            g.opt_field(&mut a, "data", |g| Ok(Value::Object(g.object(2)?)))?;
        }
        "set_timer" => g.field(&mut a, "timer", |g| {
            let mut t = Map::new();
            g.field(&mut t, "name", |g| g.word(&["tm", "tm-${event.id}"]))?;
            g.field(&mut t, "duration", duration)?;
            g.field(&mut t, "onExpire", |g| {
                Ok(obj([
                    ("topic", g.word(TOPICS)?),
                    ("data", Value::Object(g.object(2)?)),
                ]))
            })?;
            g.opt_field(&mut t, "repeat", |g| {
                let mut r = Map::new();
                g.field(&mut r, "interval", duration)?;
                g.opt_field(&mut r, "maxCount", |g| g.number())?;
                Ok(Value::Object(r))
            })?;
            Ok(Value::Object(t))
        })?,
        "cancel_timer" => g.field(&mut a, "name", |g| g.word(&["tm", "tm-${event.id}"]))?,
        "log" => {
            g.field(&mut a, "level", |g| {
                g.word(&["debug", "info", "warn", "error"])
            })?;
            g.field(&mut a, "message", string)?;
        }
        "conditional" => {
            g.field(&mut a, "conditions", |g| {
                Ok(Value::Array(g.list(2, condition)?))
            })?;
            g.field(&mut a, "then", body)?;
            g.opt_field(&mut a, "else", body)?;
        }
        "for_each" => {
            g.field(&mut a, "collection", |g| {
                if g.chance(128)? {
                    Ok(obj([(
                        "ref",
                        g.word(&["event.items", "event.n", "var.item"])?,
                    )]))
                } else {
                    Ok(Value::Array(g.list(4, |g| g.scalar())?))
                }
            })?;
            g.field(&mut a, "as", |g| g.word(&["item", "x"]))?;
            g.field(&mut a, "actions", body)?;
            g.opt_field(&mut a, "maxIterations", |g| g.number())?;
        }
        _ => {
            g.field(&mut a, "try", body)?;
            g.opt_field(&mut a, "catch", |g| {
                Ok(obj([("as", g.word(&["err", "e"])?), ("actions", body(g)?)]))
            })?;
            g.opt_field(&mut a, "finally", body)?;
        }
    }
    Ok(Value::Object(a))
}
