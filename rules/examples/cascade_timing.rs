//! How long one input takes at the default cascade bound (a `for_each` that re-emits its
//! trigger) and how long another caller waits for the engine meanwhile, for sizing
//! `limits.maxRuleWorkPerInput`:
//!
//! ```sh
//! cargo run --release -p noex-rules --example cascade_timing
//! ```
use std::time::{Duration, Instant};

use noex_rules::RuleEngine;
use serde_json::json;

fn main() {
    let engine = RuleEngine::default();
    engine
        .register_rule(&json!({"id": "r", "name": "r", "trigger": {"type": "event", "topic": "t"},
            "actions": [{"type": "for_each", "collection": {"ref": "event.items"}, "as": "i",
                "actions": [{"type": "emit_event", "topic": "t", "data": {"items": {"ref": "event.items"}}}]}]}))
        .expect("rule");
    engine.set_fact("probe", json!(1)).expect("fact");
    for n in [10u64, 100, 1000] {
        let items: Vec<u64> = (0..n).collect();
        let cascade = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                engine.emit("t", json!({"items": items})).expect("emit");
                started.elapsed()
            })
        };
        let mut longest_wait = Duration::ZERO;
        let mut probes = 0u32;
        while !cascade.is_finished() {
            let started = Instant::now();
            let _ = engine.get_fact("probe");
            longest_wait = longest_wait.max(started.elapsed());
            probes += 1;
        }
        let took = cascade.join().expect("cascade thread");
        println!(
            "{n} items: input took {took:?}; {probes} getFact calls meanwhile, the longest waited {longest_wait:?}"
        );
    }
}
