//! Query parameters are values: a `{{ params.x }}` placeholder is replaced by a value that
//! is compared (or used as the operand of the operator written in the query), never by
//! filter syntax; a parameter of the wrong kind is an `InvalidParameter` error naming it.

mod common;

use common::{define, o};
use noex_store::{QueryDefinition, Store, StoreError};
use serde_json::{Value, json};

fn notes() -> Store {
    let s = common::store();
    define(
        &s,
        "notes",
        json!({"key": "id", "schema": {"id": {"type": "number"}, "owner": {"type": "string"},
               "n": {"type": "number"}, "tags": {"type": "array"}}}),
    );
    let b = s.bucket("notes");
    for (id, owner, n) in [(1, "ann", 1), (2, "bob", 5), (3, "ann", 9)] {
        b.insert(o(
            json!({"id": id, "owner": owner, "n": n, "tags": [owner]}),
        ))
        .unwrap();
    }
    s
}

fn query(s: &Store, name: &str, def: Value) {
    s.define_query(name, QueryDefinition::from_json(def).unwrap())
        .unwrap();
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

fn param_error(r: Result<impl std::fmt::Debug, StoreError>) -> (String, String) {
    match r {
        Err(e @ StoreError::InvalidParameter { .. }) => {
            assert_eq!(e.code(), "VALIDATION_ERROR");
            let text = e.to_string();
            let StoreError::InvalidParameter { name, .. } = e else {
                unreachable!()
            };
            (name, text)
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

/// The attack report's frames: filter `{"owner": "{{ params.owner }}"}` subscribed with
/// `params: {"owner": {"$ne": null}}` returned every owner's records.
#[tokio::test]
async fn an_operator_object_as_parameter_is_rejected_not_interpreted() {
    let s = notes();
    query(
        &s,
        "mine",
        json!({"bucket": "notes", "filter": {"owner": "{{ params.owner }}"}}),
    );
    let hostile = json!({"owner": {"$ne": null}});
    let (name, text) = param_error(s.subscribe("mine", hostile.clone(), |_| {}));
    assert_eq!(name, "owner");
    assert!(text.contains("\"owner\""), "{text}");
    param_error(s.run_query("mine", &hostile));
    assert_eq!(s.stats().queries.active_subscriptions, 0);
    // A plain value still works, and a string that looks like syntax is just a string.
    assert_eq!(
        ids(&s.run_query("mine", &json!({"owner": "ann"})).unwrap()),
        [1, 3]
    );
    assert!(ids(&s.run_query("mine", &json!({"owner": "$ne"})).unwrap()).is_empty());
    assert!(
        ids(&s
            .run_query("mine", &json!({"owner": "{{ params.owner }}"}))
            .unwrap())
        .is_empty()
    );
    // A missing parameter is null: no owner is null.
    assert!(ids(&s.run_query("mine", &json!({})).unwrap()).is_empty());
}

#[tokio::test]
async fn operands_are_checked_against_the_operator_written_in_the_query() {
    let s = notes();
    query(
        &s,
        "atLeast",
        json!({"bucket": "notes", "filter": {"n": {"$gte": "{{ params.min }}"}}}),
    );
    query(
        &s,
        "among",
        json!({"bucket": "notes", "filter": {"owner": {"$in": "{{ params.owners }}"}}}),
    );
    query(
        &s,
        "prefix",
        json!({"bucket": "notes", "filter": {"owner": {"$startsWith": "{{ params.p }}"}}}),
    );
    query(
        &s,
        "has",
        json!({"bucket": "notes", "filter": {"owner": {"$exists": "{{ params.e }}"}}}),
    );
    query(
        &s,
        "range",
        json!({"bucket": "notes", "filter": {"n": {"$between": "{{ params.r }}"}}}),
    );
    query(
        &s,
        "either",
        json!({"bucket": "notes", "filter": {"$or": [{"owner": "{{ params.a }}"}, {"n": {"$lt": "{{ params.max }}"}}]}}),
    );
    assert_eq!(
        ids(&s.run_query("atLeast", &json!({"min": 5})).unwrap()),
        [2, 3]
    );
    assert_eq!(
        ids(&s
            .run_query("among", &json!({"owners": ["bob", "cy"]}))
            .unwrap()),
        [2]
    );
    assert_eq!(
        ids(&s.run_query("prefix", &json!({"p": "a"})).unwrap()),
        [1, 3]
    );
    assert_eq!(
        ids(&s.run_query("has", &json!({"e": true})).unwrap()).len(),
        3
    );
    assert_eq!(
        ids(&s.run_query("range", &json!({"r": [2, 9]})).unwrap()),
        [2, 3]
    );
    assert_eq!(
        ids(&s
            .run_query("either", &json!({"a": "bob", "max": 2}))
            .unwrap()),
        [1, 2]
    );

    for (q, params, param, expect) in [
        ("atLeast", json!({"min": {"$gt": 0}}), "min", "object"),
        (
            "among",
            json!({"owners": "ann"}),
            "owners",
            "$in expects an array, got a string",
        ),
        (
            "among",
            json!({"owners": {"$exists": true}}),
            "owners",
            "object",
        ),
        (
            "prefix",
            json!({"p": 1}),
            "p",
            "expects a string, got a number",
        ),
        (
            "has",
            json!({"e": "yes"}),
            "e",
            "expects a boolean, got a string",
        ),
        (
            "range",
            json!({"r": [1]}),
            "r",
            "$between expects [low, high], got an array",
        ),
        (
            "either",
            json!({"a": {"$ne": null}, "max": 2}),
            "a",
            "object",
        ),
    ] {
        let (name, text) = param_error(s.run_query(q, &params));
        assert_eq!(name, param, "{q}");
        assert!(text.contains(expect), "{q}: {text}");
    }
}

#[tokio::test]
async fn placeholders_inside_literal_lists_are_elements() {
    let s = notes();
    query(
        &s,
        "two",
        json!({"bucket": "notes", "filter": {"owner": {"$in": ["{{ params.a }}", "{{ params.b }}"]}}}),
    );
    query(
        &s,
        "tagged",
        json!({"bucket": "notes", "filter": {"tags": "{{ params.tags }}"}}),
    );
    assert_eq!(
        ids(&s
            .run_query("two", &json!({"a": "bob", "b": "nobody"}))
            .unwrap()),
        [2]
    );
    param_error(s.run_query("two", &json!({"a": {"$ne": null}, "b": "x"})));
    // An array parameter compared for equality with an array field.
    assert_eq!(
        ids(&s.run_query("tagged", &json!({"tags": ["bob"]})).unwrap()),
        [2]
    );
}

#[tokio::test]
async fn a_subscription_with_a_bad_parameter_never_exists() {
    let s = notes();
    query(
        &s,
        "mine",
        json!({"bucket": "notes", "filter": {"owner": "{{ params.owner }}"}}),
    );
    param_error(s.subscribe_watch("mine", json!({"owner": {"$gt": ""}})));
    assert_eq!(s.stats().queries.active_subscriptions, 0);
    let (_, initial) = s
        .subscribe("mine", json!({"owner": "bob"}), |_| {})
        .unwrap();
    assert_eq!(ids(initial.value()), [2]);
}
