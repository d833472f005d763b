//! The shapes and messages the TypeScript original (and its client, `noex-client`) sends,
//! frame by frame on a real server: events carry `source`, facts are whole `Fact`s
//! everywhere, tier refusals name the tier, namespaces that are not configured say so, and
//! the global subscription limit names itself.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Client, local_config, start};
use noex_server::{AuthConfig, Clock, ManualClock, Server, ServerHandle, StaticToken};
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000_000;

/// A server with the rule engine on a manual clock at [`T0`], optionally with auth.
async fn server(auth: Option<AuthConfig>) -> ServerHandle {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.auth = auth;
    let clock = Arc::new(ManualClock::new(T0));
    Server::builder(config)
        .clock(clock as Arc<dyn Clock>)
        .start()
        .await
        .expect("server starts")
}

/// The frame answering `request`, with the event id (random) checked and replaced.
fn without_id(mut frame: Value, path: &[&str]) -> Value {
    let mut at = &mut frame;
    for key in path {
        at = &mut at[*key];
    }
    let id = at["id"].as_str().expect("an event id").to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    at["id"] = json!("ID");
    frame
}

#[tokio::test]
async fn events_carry_their_source_in_answers_and_pushes() {
    let server = server(None).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "ack", "name": "Ack", "trigger": {"type": "event", "topic": "order.placed"},
            "actions": [{"type": "emit_event", "topic": "order.acked", "data": {"by": "rule"}}]}}),
    )
    .await;
    let sub = c
        .request(json!({"id": 1, "type": "rules.subscribe", "pattern": "order.*"}))
        .await;
    assert_eq!(sub["data"]["subscriptionId"], "sub-1");

    c.send(json!({"id": 2, "type": "rules.emit", "topic": "order.placed", "data": {"n": 1}, "correlationId": "c-1"}))
        .await;
    // The client's event, then the rule's, pushed before the answer.
    let placed = without_id(c.recv().await, &["data", "event"]);
    assert_eq!(
        placed,
        json!({"type": "push", "channel": "event", "subscriptionId": "sub-1", "data": {
            "topic": "order.placed",
            "event": {"id": "ID", "topic": "order.placed", "data": {"n": 1}, "timestamp": T0,
                "correlationId": "c-1", "source": "api"}}})
    );
    let acked = c.recv().await;
    assert_eq!(acked["data"]["event"]["source"], "rule");
    assert_eq!(acked["data"]["event"]["correlationId"], "c-1");
    let answer = without_id(c.recv().await, &["data"]);
    assert_eq!(
        answer,
        json!({"type": "result", "id": 2, "data": {"id": "ID", "topic": "order.placed",
            "data": {"n": 1}, "timestamp": T0, "correlationId": "c-1", "source": "api"}})
    );
    // Without a correlation id: the same `source`, as the original's `engine.emit`.
    let plain = c
        .request(json!({"id": 3, "type": "rules.emit", "topic": "other"}))
        .await;
    assert_eq!(
        without_id(plain, &["data"]),
        json!({"type": "result", "id": 3, "data": {"id": "ID", "topic": "other", "data": {},
            "timestamp": T0, "source": "api"}})
    );
}

#[tokio::test]
async fn a_timer_event_has_source_timer() {
    // On the system clock: the timer fires 100 ms after it is set.
    let mut config = local_config();
    config.rules.enabled = Some(true);
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "later", "name": "Later", "trigger": {"type": "event", "topic": "go"},
            "actions": [{"type": "set_timer", "timer": {"name": "t", "duration": 100, "onExpire": {"topic": "done"}}}]}}),
    )
    .await;
    c.ok("rules.subscribe", json!({"pattern": "done"})).await;
    c.ok("rules.emit", json!({"topic": "go"})).await;
    let push = c.next_push().await;
    assert_eq!(push["data"]["topic"], "done");
    assert_eq!(push["data"]["event"]["source"], "timer");
}

#[tokio::test]
async fn facts_are_whole_in_every_answer() {
    let server = server(None).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok(
        "rules.registerRule",
        json!({"rule": {"id": "tier", "name": "Tier", "trigger": {"type": "fact", "pattern": "spent:*"},
            "actions": [{"type": "set_fact", "key": "tier:u1", "value": "gold"}]}}),
    )
    .await;
    let set = c
        .request(json!({"id": 1, "type": "rules.setFact", "key": "spent", "value": 10}))
        .await;
    assert_eq!(
        set,
        json!({"type": "result", "id": 1, "data": {"key": "spent", "value": 10, "timestamp": T0,
            "source": "api", "version": 1}})
    );
    let again = c
        .request(json!({"id": 2, "type": "rules.setFact", "key": "spent", "value": 20}))
        .await;
    assert_eq!(again["data"]["version"], 2);
    let fact_rule = c
        .request(json!({"id": 3, "type": "rules.setFact", "key": "spent:u1", "value": 5}))
        .await;
    assert_eq!(fact_rule["data"]["source"], "api");
    // rules.getFact answers the value only, as the original's `engine.getFact`.
    assert_eq!(
        c.request(json!({"id": 4, "type": "rules.getFact", "key": "spent"}))
            .await,
        json!({"type": "result", "id": 4, "data": 20})
    );
    assert_eq!(
        c.request(json!({"id": 5, "type": "rules.getFact", "key": "none"}))
            .await,
        json!({"type": "result", "id": 5, "data": null})
    );
    assert_eq!(
        c.request(json!({"id": 6, "type": "rules.queryFacts", "pattern": "spent"}))
            .await,
        json!({"type": "result", "id": 6, "data": [{"key": "spent", "value": 20, "timestamp": T0,
            "source": "api", "version": 2}]})
    );
    assert_eq!(
        c.request(json!({"id": 7, "type": "rules.getAllFacts"}))
            .await,
        json!({"type": "result", "id": 7, "data": [
            {"key": "spent", "value": 20, "timestamp": T0, "source": "api", "version": 2},
            {"key": "spent:u1", "value": 5, "timestamp": T0, "source": "api", "version": 1},
            {"key": "tier:u1", "value": "gold", "timestamp": T0, "source": "rule", "version": 1}
        ]})
    );
}

fn token(user: &str, role: &str) -> StaticToken {
    StaticToken {
        user_id: user.into(),
        roles: vec![role.into()],
        expires_at: None,
    }
}

#[tokio::test]
async fn a_tier_refusal_names_the_tier() {
    let auth = AuthConfig {
        required: true,
        tokens: Some(BTreeMap::from([
            ("r".to_owned(), token("rea", "reader")),
            ("w".to_owned(), token("wes", "writer")),
        ])),
        ..AuthConfig::default()
    };
    let server = server(Some(auth)).await;
    let cases = [
        (
            "r",
            "store.insert",
            json!({"bucket": "b", "data": {}}),
            "write",
        ),
        ("r", "rules.emit", json!({"topic": "t"}), "write"),
        (
            "w",
            "store.defineBucket",
            json!({"name": "b", "config": {}}),
            "admin",
        ),
        ("w", "rules.getRules", json!({}), "admin"),
        ("w", "server.stats", json!({}), "admin"),
    ];
    for (tok, op, fields, tier) in cases {
        let (mut c, _) = Client::connect(&server).await;
        c.ok("auth.login", json!({"token": tok})).await;
        let (code, message, _) = c.fail(op, fields).await;
        assert_eq!(code, "FORBIDDEN");
        assert_eq!(
            message,
            format!("Role level insufficient for {op} (requires {tier})")
        );
    }
}

#[tokio::test]
async fn namespaces_that_are_not_configured_say_so() {
    let server = start(local_config()).await;
    let (mut c, _) = Client::connect(&server).await;
    for (i, (op, message)) in [
        ("auth.login", "Authentication is not configured"),
        ("auth.whoami", "Authentication is not configured"),
        ("audit.query", "Audit log is not configured"),
        ("identity.login", "Identity management is not configured"),
        (
            "identity.createUser",
            "Identity management is not configured",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = i + 1;
        assert_eq!(
            c.request(json!({"id": id, "type": op})).await,
            json!({"type": "error", "id": id, "code": "UNKNOWN_OPERATION", "message": message})
        );
    }
    // Procedures are always served here (the original needs them configured).
    assert_eq!(
        c.request(json!({"id": 7, "type": "procedures.call"})).await["code"],
        json!("VALIDATION_ERROR")
    );
    // A namespace the server runs keeps the generic message for a type it does not know.
    assert_eq!(
        c.request(json!({"id": 9, "type": "store.everything"}))
            .await,
        json!({"type": "error", "id": 9, "code": "UNKNOWN_OPERATION",
            "message": "Unknown operation \"store.everything\""})
    );
}

#[tokio::test]
async fn identity_login_needs_no_session_and_says_identity_is_not_configured() {
    let auth = AuthConfig {
        required: true,
        tokens: Some(BTreeMap::new()),
        ..AuthConfig::default()
    };
    let server = server(Some(auth)).await;
    let (mut c, _) = Client::connect(&server).await;
    let (code, message, _) = c
        .fail("identity.login", json!({"username": "a", "password": "b"}))
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("UNKNOWN_OPERATION", "Identity management is not configured")
    );
    // Other identity.* operations need a session first, as in the original.
    let (code, message, _) = c.fail("identity.createUser", json!({})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("UNAUTHORIZED", "Authentication required")
    );
}

#[tokio::test]
async fn the_global_subscription_limit_names_itself() {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config.connection_limits.max_total_subscriptions = Some(1);
    let server = start(config).await;
    let (mut a, _) = Client::connect(&server).await;
    let (mut b, _) = Client::connect(&server).await;
    a.ok("rules.subscribe", json!({"pattern": "x"})).await;
    assert_eq!(
        b.request(json!({"id": 1, "type": "rules.subscribe", "pattern": "x"}))
            .await,
        json!({"type": "error", "id": 1, "code": "RATE_LIMITED",
            "message": "Global subscription limit reached (max 1)"})
    );
}
