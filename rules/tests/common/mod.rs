//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use noex_rules::{EngineConfig, Event, ManualClock, RuleEngine};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// An engine on a manual clock starting at 1_000_000 ms.
pub fn engine() -> (RuleEngine, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let engine = RuleEngine::new(EngineConfig {
        clock: Arc::new(clock.clone()),
        ..Default::default()
    });
    (engine, clock)
}

/// Records every event matching `pattern`.
pub fn record(engine: &RuleEngine, pattern: &str) -> Arc<Mutex<Vec<Event>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    engine
        .subscribe(pattern, move |e: &Event| sink.lock().push(e.clone()))
        .expect("subscribe");
    seen
}

/// Topics of recorded events.
pub fn topics(seen: &Arc<Mutex<Vec<Event>>>) -> Vec<String> {
    seen.lock().iter().map(|e| e.topic.clone()).collect()
}

/// A rule on an event topic with the given conditions and actions.
pub fn on_event(id: &str, topic: &str, conditions: Value, actions: Value) -> Value {
    json!({"id": id, "name": id, "trigger": {"type": "event", "topic": topic},
           "conditions": conditions, "actions": actions})
}

/// Registers or panics with the validation errors.
pub fn register(engine: &RuleEngine, rule: Value) {
    if let Err(e) = engine.register_rule(&rule) {
        panic!("register failed: {e}");
    }
}
