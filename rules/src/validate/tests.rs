//! Unit tests of rule validation.

use super::*;
use serde_json::json;

fn paths(rule: Value) -> Vec<String> {
    validate_rule(&rule)
        .errors
        .into_iter()
        .map(|e| e.path)
        .collect()
}

#[test]
fn minimal_rule_is_valid() {
    let r = validate_rule(
        &json!({"id": "r", "name": "R", "trigger": {"type": "event", "topic": "a.b"}}),
    );
    assert!(r.valid, "{:?}", r.errors);
}

#[test]
fn reports_every_problem_with_its_path() {
    let errors = validate_rule(&json!({
        "name": 5,
        "trigger": {"type": "webhook"},
        "conditions": [{"source": {"type": "event", "field": "x"}, "operator": "approx", "value": 1}],
        "actions": [{"type": "set_timer", "timer": {"name": "t", "duration": "soon"}}, {"type": "fly"}]
    }))
    .errors;
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert!(
        got.contains(&("id", "Required field \"id\" is missing")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(p, m)| *p == "name" && m.contains("must be a string"))
    );
    assert!(
        got.iter()
            .any(|(p, m)| *p == "trigger.type" && m.contains("Invalid trigger type \"webhook\""))
    );
    assert!(
        got.iter()
            .any(|(p, m)| *p == "conditions[0].operator" && m.contains("Invalid operator"))
    );
    assert!(got.iter().any(|(p, _)| *p == "actions[0].timer.duration"));
    assert!(got.iter().any(|(p, _)| *p == "actions[0].timer.onExpire"));
    assert!(
        got.iter()
            .any(|(p, m)| *p == "actions[1].type" && m.contains("Invalid action type"))
    );
}

#[test]
fn temporal_and_nested_action_errors_have_paths() {
    let p = paths(json!({"id": "r", "name": "R",
        "trigger": {"type": "temporal", "pattern": {"type": "sequence", "events": [{"topic": "a"}], "within": "5m"}},
        "actions": [{"type": "for_each", "collection": {"ref": "event.items"}, "as": "i",
            "actions": [{"type": "log", "level": "loud", "message": "x"}]}]}));
    assert_eq!(p, ["trigger.pattern.events", "actions[0].actions[0].level"]);
    let p = paths(json!({"id": "r", "name": "R",
        "trigger": {"type": "temporal", "pattern": {"type": "aggregate", "event": {"topic": "a"},
            "field": "x", "function": "median", "threshold": "10", "window": "1m"}}}));
    assert_eq!(p, ["trigger.pattern.function", "trigger.pattern.threshold"]);
}

#[test]
fn bad_regex_and_non_array_in_are_caught() {
    let p = paths(
        json!({"id": "r", "name": "R", "trigger": {"type": "fact", "pattern": "a:*"},
        "conditions": [
            {"source": {"type": "event", "field": "x"}, "operator": "matches", "value": "(("},
            {"source": {"type": "event", "field": "x"}, "operator": "in", "value": 3},
            {"source": {"type": "event", "field": "x"}, "operator": "exists"}
        ]}),
    );
    assert_eq!(p, ["conditions[0].value", "conditions[1].value"]);
}

#[test]
fn literal_patterns_must_compile_within_the_regex_size_limit() {
    let rule = |pattern: &str| {
        json!({"id": "r", "name": "R", "trigger": {"type": "event", "topic": "t"},
            "conditions": [{"source": {"type": "event", "field": "x"}, "operator": "matches", "value": pattern}]})
    };
    // Unicode `\w` repeated: past 256 KiB compiled (tens of ms to compile at 1 MiB).
    assert_eq!(paths(rule(r"\w{10}")), ["conditions[0].value"]);
    assert_eq!(paths(rule(r"(?:\w{40}){40}")), ["conditions[0].value"]);
    // The ASCII spellings fit.
    assert!(paths(rule(r"(?-u:\w){10}")).is_empty());
    assert!(paths(rule(r"^ORD-[0-9]+$")).is_empty());
}
