//! Rules written for the original TypeScript noex-rules deserialize and run unchanged.

mod common;

use common::{engine, record};
use noex_rules::{RulesError, TemporalPattern, Trigger};
use serde_json::json;

#[test]
fn original_shaped_rules_register() {
    let (engine, _) = engine();
    let rules = [
        json!({"id": "payment-timeout", "name": "Payment timeout", "description": "Cancel unpaid orders",
        "priority": 100, "enabled": true, "tags": ["orders"],
        "trigger": {"type": "event", "topic": "order.created"},
        "conditions": [{"source": {"type": "fact", "pattern": "customer:${event.customerId}:tier"},
            "operator": "neq", "value": "vip"}],
        "actions": [
            {"type": "set_timer", "timer": {"name": "payment-timeout:${event.orderId}", "duration": "15m",
                "onExpire": {"topic": "order.payment_timeout", "data": {"orderId": {"ref": "event.orderId"}}},
                "repeat": {"interval": "5m", "maxCount": 3}}},
            {"type": "log", "level": "info", "message": "Timer set for ${event.orderId}"}
        ]}),
        json!({"id": "fraud", "name": "Fraud", "priority": 50, "enabled": true, "tags": [],
            "trigger": {"type": "temporal", "pattern": {"type": "count",
                "event": {"topic": "auth.login_failed", "filter": {"method": "password"}},
                "threshold": 5, "comparison": "gte", "window": "5m", "groupBy": "userId", "sliding": true}},
            "conditions": [], "actions": [{"type": "emit_event", "topic": "security.alert",
                "data": {"userId": {"ref": "event.userId"}}}]}),
        json!({"id": "seq", "name": "Seq", "priority": 1, "enabled": true, "tags": [],
            "trigger": {"type": "temporal", "pattern": {"type": "sequence",
                "events": [{"topic": "order.created", "as": "order"}, {"topic": "payment.received", "as": "payment"}],
                "within": "30m", "groupBy": "orderId", "strict": false}},
            "conditions": [], "actions": [{"type": "try_catch",
                "try": [{"type": "set_fact", "key": "order:${event.orderId}:paid", "value": true}],
                "catch": {"as": "err", "actions": [{"type": "log", "level": "error", "message": "${var.err.message}"}]},
                "finally": [{"type": "delete_fact", "key": "pending:${event.orderId}"}]}]}),
    ];
    for rule in &rules {
        engine.register_rule(rule).unwrap_or_else(|e| panic!("{e}"));
    }
    let fraud = engine.get_rule("fraud").unwrap();
    match &fraud.input.trigger {
        Trigger::Temporal { pattern } => assert!(matches!(
            **pattern,
            TemporalPattern::Count { sliding: true, .. }
        )),
        other => panic!("unexpected trigger {other:?}"),
    }
    // Round trip: the stored rule serializes back to the original field names.
    let back = serde_json::to_value(engine.get_rule("payment-timeout").unwrap()).unwrap();
    assert_eq!(
        back["actions"][0]["timer"]["onExpire"]["topic"],
        "order.payment_timeout"
    );
    assert_eq!(back["actions"][0]["timer"]["repeat"]["maxCount"], 3);
    assert_eq!(back["version"], 1);
}

#[test]
fn original_call_service_action_is_reported_precisely() {
    let (engine, _) = engine();
    let rule = json!({"id": "svc", "name": "svc", "trigger": {"type": "event", "topic": "x"},
        "actions": [{"type": "call_service", "service": "mail", "method": "send", "args": []}]});
    match engine.register_rule(&rule) {
        Err(RulesError::Validation(errors)) => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].path, "actions[0].type");
            assert!(
                errors[0]
                    .message
                    .starts_with("Invalid action type \"call_service\"")
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn original_fraud_rule_fires_per_user() {
    let (engine, _) = engine();
    engine
        .register_rule(&json!({"id": "fraud", "name": "Fraud",
            "trigger": {"type": "temporal", "pattern": {"type": "count",
                "event": {"topic": "auth.login_failed", "filter": {"method": "password"}},
                "threshold": 3, "comparison": "gte", "window": "5m", "groupBy": "userId", "sliding": true}},
            "actions": [{"type": "emit_event", "topic": "security.alert", "data": {"userId": {"ref": "event.userId"}}}]}))
        .unwrap();
    let alerts = record(&engine, "security.alert");
    for _ in 0..3 {
        engine
            .emit(
                "auth.login_failed",
                json!({"userId": "u1", "method": "password"}),
            )
            .unwrap();
        engine
            .emit(
                "auth.login_failed",
                json!({"userId": "u2", "method": "sso"}),
            )
            .unwrap();
    }
    let alerts = alerts.lock();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].data, json!({"userId": "u1"}));
}
