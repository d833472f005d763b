//! `rules.*` over a real WebSocket: every operation and its errors, event pushes across
//! clients, rules from the config file, the store bridge, and `RULES_NOT_AVAILABLE`.

mod common;

use common::{Client, local_config, start};
use noex_server::{ServerConfig, StartError};
use serde_json::{Value, json};

fn config() -> ServerConfig {
    let mut config = local_config();
    config.rules.enabled = Some(true);
    config
}

/// Reacts to `order.placed`: records the order as a fact and emits `order.confirmed`.
fn confirm_rule() -> Value {
    json!({
        "id": "confirm",
        "name": "Confirm orders",
        "priority": 5,
        "tags": ["orders"],
        "group": "sales",
        "trigger": {"type": "event", "topic": "order.placed"},
        "conditions": [{"source": {"type": "event", "field": "total"}, "operator": "gt", "value": 0}],
        "actions": [
            {"type": "set_fact", "key": "order:${event.orderId}:status", "value": "confirmed"},
            {"type": "emit_event", "topic": "order.confirmed", "data": {"orderId": {"ref": "event.orderId"}}}
        ]
    })
}

#[tokio::test]
async fn facts_round_trip() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let fact = c
        .ok(
            "rules.setFact",
            json!({"key": "user:1:tier", "value": "gold"}),
        )
        .await;
    assert_eq!(fact["key"], "user:1:tier");
    assert_eq!(fact["value"], "gold");
    assert_eq!(fact["version"], 1);
    assert!(fact["timestamp"].is_u64() || fact["timestamp"].is_i64());
    c.ok(
        "rules.setFact",
        json!({"key": "user:2:tier", "value": null}),
    )
    .await;
    c.ok(
        "rules.setFact",
        json!({"key": "user:1", "value": {"name": "A"}}),
    )
    .await;
    assert_eq!(
        c.ok("rules.getFact", json!({"key": "user:1:tier"})).await,
        "gold"
    );
    assert_eq!(
        c.ok("rules.getFact", json!({"key": "nobody"})).await,
        Value::Null
    );
    // Each entry is the whole fact, as rules.setFact answered it.
    let listed = c
        .ok("rules.queryFacts", json!({"pattern": "user:*:tier"}))
        .await;
    assert_eq!(listed[0], fact);
    assert_eq!(
        (&listed[1]["key"], &listed[1]["value"], &listed[1]["source"]),
        (&json!("user:2:tier"), &Value::Null, &json!("api"))
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(
        c.ok("rules.getAllFacts", json!({}))
            .await
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(
        c.ok("rules.deleteFact", json!({"key": "user:1:tier"}))
            .await,
        json!({"deleted": true})
    );
    assert_eq!(
        c.ok("rules.deleteFact", json!({"key": "user:1:tier"}))
            .await,
        json!({"deleted": false})
    );
    let (code, message, _) = c.fail("rules.setFact", json!({"key": "k"})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("\"value\""), "{message}");
    let (code, _, _) = c.fail("rules.queryFacts", json!({"pattern": "a::b"})).await;
    assert_eq!(code, "VALIDATION_ERROR", "a malformed pattern");
}

#[tokio::test]
async fn emit_returns_the_event_with_its_ids() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let event = c
        .ok(
            "rules.emit",
            json!({"topic": "user.joined", "data": {"userId": 7}, "correlationId": "corr-1", "causationId": "cause-1"}),
        )
        .await;
    assert_eq!(event["topic"], "user.joined");
    assert_eq!(event["data"], json!({"userId": 7}));
    assert_eq!(event["correlationId"], "corr-1");
    assert_eq!(event["causationId"], "cause-1");
    assert_eq!(event["id"].as_str().map(str::len), Some(36));
    assert!(
        event["timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000)
    );
    let plain = c.ok("rules.emit", json!({"topic": "ping"})).await;
    assert_eq!(plain["data"], json!({}), "data defaults to an empty object");
    let (code, message, _) = c.fail("rules.emit", json!({"data": {}})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "Missing or invalid \"topic\": expected non-empty string"
    );
}

#[tokio::test]
async fn rule_management() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    let registered = c
        .ok("rules.registerRule", json!({"rule": confirm_rule()}))
        .await;
    assert_eq!(registered["id"], "confirm");
    assert_eq!(registered["name"], "Confirm orders");
    assert_eq!(registered["version"], 1);
    assert_eq!(registered["createdAt"], registered["updatedAt"]);
    let (code, message, _) = c
        .fail("rules.registerRule", json!({"rule": confirm_rule()}))
        .await;
    assert_eq!(code, "ALREADY_EXISTS");
    assert_eq!(message, "Rule \"confirm\" already exists");

    let mut broken = confirm_rule();
    broken["id"] = json!("broken");
    broken["trigger"] = json!({"type": "telepathy"});
    broken["conditions"][0]["operator"] = json!("approximately");
    let (code, _, details) = c.fail("rules.registerRule", json!({"rule": broken})).await;
    assert_eq!(code, "VALIDATION_ERROR");
    let paths: Vec<&str> = details
        .as_array()
        .expect("errors in details")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(paths.iter().any(|p| p.starts_with("trigger")), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("conditions[0]")),
        "{paths:?}"
    );
    let report = c.ok("rules.validateRule", json!({"rule": broken})).await;
    assert_eq!(report["valid"], false);
    assert!(report["errors"].as_array().is_some_and(|e| e.len() >= 2));
    // The original's shape: each issue has a severity, and `warnings` is always there.
    assert_eq!(report["errors"][0]["severity"], "error", "{report}");
    assert_eq!(report["warnings"], json!([]));
    assert_eq!(
        c.ok("rules.validateRule", json!({"rule": confirm_rule()}))
            .await,
        json!({"valid": true, "errors": [], "warnings": []})
    );

    let rule = c.ok("rules.getRule", json!({"ruleId": "confirm"})).await;
    assert_eq!(rule["trigger"], confirm_rule()["trigger"]);
    assert_eq!(rule["version"], 1);
    assert_eq!(
        c.ok("rules.getRules", json!({})).await,
        json!({"rules": [{"id": "confirm", "name": "Confirm orders", "enabled": true, "priority": 5, "version": 1, "tags": ["orders"], "group": "sales"}]})
    );

    let updated = c
        .ok(
            "rules.updateRule",
            json!({"ruleId": "confirm", "updates": {"priority": 9}}),
        )
        .await;
    assert_eq!(
        (updated["id"].clone(), updated["version"].clone()),
        (json!("confirm"), json!(2))
    );
    assert!(updated["updatedAt"].is_u64());
    assert_eq!(
        c.ok("rules.disableRule", json!({"ruleId": "confirm"}))
            .await,
        json!({"ruleId": "confirm", "enabled": false})
    );
    // A disabled rule does not react.
    c.ok(
        "rules.emit",
        json!({"topic": "order.placed", "data": {"orderId": "o1", "total": 5}}),
    )
    .await;
    assert_eq!(
        c.ok("rules.getFact", json!({"key": "order:o1:status"}))
            .await,
        Value::Null
    );
    assert_eq!(
        c.ok("rules.enableRule", json!({"ruleId": "confirm"})).await,
        json!({"ruleId": "confirm", "enabled": true})
    );
    let stats = c.ok("rules.stats", json!({})).await;
    assert_eq!(stats["rulesCount"], 1);
    assert!(stats["eventsProcessed"].as_u64().is_some_and(|n| n >= 1));

    assert_eq!(
        c.ok("rules.unregisterRule", json!({"ruleId": "confirm"}))
            .await,
        json!({"ruleId": "confirm", "unregistered": true})
    );
    for (op, fields) in [
        ("rules.unregisterRule", json!({"ruleId": "confirm"})),
        ("rules.getRule", json!({"ruleId": "confirm"})),
        ("rules.enableRule", json!({"ruleId": "confirm"})),
        ("rules.disableRule", json!({"ruleId": "confirm"})),
        (
            "rules.updateRule",
            json!({"ruleId": "confirm", "updates": {"priority": 1}}),
        ),
    ] {
        let (code, message, _) = c.fail(op, fields).await;
        assert_eq!(code, "NOT_FOUND", "{op}");
        assert_eq!(message, "Rule \"confirm\" not found", "{op}");
    }
}

#[tokio::test]
async fn a_rule_registered_by_one_client_reacts_to_another_and_a_third_sees_the_result() {
    let server = start(config()).await;
    let (mut admin, _) = Client::connect(&server).await;
    let (mut shop, _) = Client::connect(&server).await;
    let (mut watcher, _) = Client::connect(&server).await;
    admin
        .ok("rules.registerRule", json!({"rule": confirm_rule()}))
        .await;
    let sub = watcher
        .ok("rules.subscribe", json!({"pattern": "order.*"}))
        .await;
    let sub_id = sub["subscriptionId"].clone();
    assert_eq!(
        sub.as_object().map(|o| o.len()),
        Some(1),
        "no initial data: {sub}"
    );

    let placed = shop
        .ok(
            "rules.emit",
            json!({"topic": "order.placed", "data": {"orderId": "o-9", "total": 30}, "correlationId": "c-9"}),
        )
        .await;
    let first = watcher.next_push().await;
    assert_eq!(first["channel"], "event");
    assert_eq!(first["subscriptionId"], sub_id);
    assert_eq!(first["data"]["topic"], "order.placed");
    assert_eq!(first["data"]["event"], placed);
    let second = watcher.next_push().await;
    assert_eq!(second["data"]["topic"], "order.confirmed");
    let confirmed = &second["data"]["event"];
    assert_eq!(confirmed["data"], json!({"orderId": "o-9"}));
    assert_eq!(confirmed["correlationId"], "c-9", "carried along the chain");
    assert_eq!(confirmed["causationId"], placed["id"]);
    assert_eq!(
        shop.ok("rules.getFact", json!({"key": "order:o-9:status"}))
            .await,
        "confirmed"
    );

    // Not matching the pattern: nothing pushed.
    shop.ok("rules.emit", json!({"topic": "user.joined"})).await;
    watcher.ok("rules.stats", json!({})).await;
    assert!(watcher.pushes.is_empty(), "{:?}", watcher.pushes);

    assert_eq!(
        watcher
            .ok("rules.unsubscribe", json!({"subscriptionId": sub_id}))
            .await,
        json!({"unsubscribed": true})
    );
    shop.ok(
        "rules.emit",
        json!({"topic": "order.placed", "data": {"orderId": "o-10", "total": 1}}),
    )
    .await;
    watcher.ok("rules.stats", json!({})).await;
    assert!(watcher.pushes.is_empty());
    let (code, _, _) = watcher
        .fail("rules.unsubscribe", json!({"subscriptionId": sub_id}))
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _, _) = watcher
        .fail("rules.subscribe", json!({"pattern": "a..b"}))
        .await;
    assert_eq!(code, "VALIDATION_ERROR");
}

#[tokio::test]
async fn rules_subscriptions_share_the_limit_and_end_with_the_socket() {
    let mut config = config();
    config.connection_limits.max_subscriptions_per_connection = 2;
    config.store = serde_json::from_value(json!({
        "buckets": {"b": {"key": "id", "schema": {"id": {"type": "number"}}}},
        "queries": {"q": {"bucket": "b"}}
    }))
    .expect("store");
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let store_sub = c.ok("store.subscribe", json!({"query": "q"})).await;
    c.ok("rules.subscribe", json!({"pattern": "*"})).await;
    let (code, message, _) = c.fail("rules.subscribe", json!({"pattern": "x"})).await;
    assert_eq!(code, "RATE_LIMITED");
    assert_eq!(message, "Subscription limit reached (max 2 per connection)");
    // A store id is not a rules subscription.
    let (code, _, _) = c
        .fail(
            "rules.unsubscribe",
            json!({"subscriptionId": store_sub["subscriptionId"]}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");

    let stats = c.ok("server.stats", json!({})).await;
    assert_eq!(stats["rulesEnabled"], true);
    assert_eq!(stats["connections"]["totalRulesSubscriptions"], 1);
    assert_eq!(stats["connections"]["totalStoreSubscriptions"], 1);
    assert_eq!(stats["rules"]["rulesCount"], 0);
    let list = c.ok("server.connections", json!({})).await;
    assert_eq!(list[0]["rulesSubscriptionCount"], 1);

    drop(c);
    server.wait_idle().await;
    let engine = server.rules().expect("engine");
    assert_eq!(
        engine.stats().subscriptions_count,
        0,
        "released at the source"
    );
    assert_eq!(server.stats().connections.total_rules_subscriptions, 0);
}

#[tokio::test]
async fn rules_from_the_config_and_the_store_bridge() {
    let mut config = config();
    config.rules.store_bridge = true;
    config.rules.rules = vec![json!({
        "id": "count-signups",
        "name": "Count signups",
        "trigger": {"type": "event", "topic": "bucket.users.inserted"},
        "actions": [{"type": "set_fact", "key": "signup:${event.record.name}", "value": {"ref": "event.record.id"}}]
    })];
    config.store = serde_json::from_value(json!({
        "buckets": {"users": {"key": "id", "schema": {"id": {"type": "number"}, "name": {"type": "string"}}}}
    }))
    .expect("store");
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    let sub = c
        .ok("rules.subscribe", json!({"pattern": "bucket.users.*"}))
        .await;
    c.ok(
        "store.insert",
        json!({"bucket": "users", "data": {"id": 5, "name": "eve"}}),
    )
    .await;
    let push = c.next_push().await;
    assert_eq!(push["subscriptionId"], sub["subscriptionId"]);
    assert_eq!(push["data"]["topic"], "bucket.users.inserted");
    let event = &push["data"]["event"];
    assert_eq!(event["source"], "store");
    assert_eq!(event["data"]["type"], "inserted");
    assert_eq!(event["data"]["record"]["name"], "eve");
    assert_eq!(c.ok("rules.getFact", json!({"key": "signup:eve"})).await, 5);
}

#[tokio::test]
async fn a_server_without_rules_answers_rules_not_available() {
    let server = start(local_config()).await;
    let (mut c, _) = Client::connect(&server).await;
    for (op, fields) in [
        ("rules.emit", json!({"topic": "x"})),
        ("rules.emit", json!({})),
        ("rules.getRules", json!({})),
        ("rules.subscribe", json!({"pattern": "*"})),
        ("rules.whatever", json!({})),
    ] {
        let (code, message, _) = c.fail(op, fields).await;
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("RULES_NOT_AVAILABLE", "Rule engine is not configured"),
            "{op}"
        );
    }
    let stats = c.ok("server.stats", json!({})).await;
    assert_eq!(stats["rulesEnabled"], false);
    assert_eq!(stats["rules"], Value::Null);
}

#[tokio::test]
async fn invalid_config_rules_stop_start_up() {
    let mut bad = config();
    bad.rules.rules =
        vec![json!({"id": "x", "name": "x", "trigger": {"type": "nope"}, "actions": []})];
    match noex_server::Server::start(bad).await {
        Err(err @ StartError::Rule { .. }) => {
            assert!(err.to_string().contains("rule #0"), "{err}")
        }
        Err(other) => panic!("wrong error {other}"),
        Ok(_) => panic!("must not start"),
    }
    let mut off = local_config();
    off.rules.enabled = Some(false);
    off.rules.store_bridge = true;
    let err = noex_server::Server::start(off)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("rules.enabled"), "{err}");
}

/// `rules.connectionEvents`: open, login, re-login as someone else, logout and close of a
/// connection reach the engine as `connection.*` events, and a rule keeps presence facts
/// from them (the chat example's presence works this way).
#[tokio::test]
async fn connection_events_reach_the_engine_and_drive_presence_rules() {
    let mut config = config();
    config.rules.connection_events = true;
    config.auth = Some(
        serde_json::from_value(json!({
            "required": false,
            "tokens": {
                "t-ann": {"userId": "ann", "roles": ["writer"]},
                "t-bob": {"userId": "bob", "roles": ["writer"]}
            }
        }))
        .expect("auth"),
    );
    config.rules.rules = vec![
        json!({
            "id": "online", "name": "Online",
            "trigger": {"type": "event", "topic": "connection.login"},
            "actions": [{"type": "set_fact", "key": "online:${event.userId}:${event.connectionId}", "value": true}]
        }),
        json!({
            "id": "offline-logout", "name": "Offline on logout",
            "trigger": {"type": "event", "topic": "connection.logout"},
            "actions": [{"type": "delete_fact", "key": "online:${event.userId}:${event.connectionId}"}]
        }),
        json!({
            "id": "offline-closed", "name": "Offline on close",
            "trigger": {"type": "event", "topic": "connection.closed"},
            "conditions": [{"source": {"type": "event", "field": "userId"}, "operator": "exists", "value": true}],
            "actions": [{"type": "delete_fact", "key": "online:${event.userId}:${event.connectionId}"}]
        }),
    ];
    let server = start(config).await;
    let (mut watcher, _) = Client::connect(&server).await;
    watcher
        .ok("rules.subscribe", json!({"pattern": "connection.*"}))
        .await;

    let (mut b, _) = Client::connect(&server).await;
    let opened = watcher.next_push().await;
    assert_eq!(opened["data"]["topic"], "connection.opened");
    let event = &opened["data"]["event"];
    assert_eq!(event["source"], "server");
    assert_eq!(event["data"]["remoteAddress"], "127.0.0.1");
    let conn = event["data"]["connectionId"]
        .as_str()
        .expect("connectionId")
        .to_owned();
    assert!(conn.starts_with("conn-"), "{conn}");
    let listed = watcher.ok("server.connections", json!({})).await;
    assert!(
        listed
            .as_array()
            .expect("connections")
            .iter()
            .any(|c| c["connectionId"] == conn.as_str()),
        "the event's id is the one server.connections shows: {listed}"
    );

    b.ok("auth.login", json!({"token": "t-ann"})).await;
    let login = watcher.next_push().await;
    assert_eq!(login["data"]["topic"], "connection.login");
    assert_eq!(login["data"]["event"]["data"]["userId"], "ann");
    assert_eq!(login["data"]["event"]["data"]["roles"], json!(["writer"]));
    let ann_key = format!("online:ann:{conn}");
    assert_eq!(
        watcher.ok("rules.getFact", json!({"key": ann_key})).await,
        true
    );

    // Re-login as someone else: ann logs out, bob logs in.
    b.ok("auth.login", json!({"token": "t-bob"})).await;
    let out = watcher.next_push().await;
    assert_eq!(out["data"]["topic"], "connection.logout");
    assert_eq!(out["data"]["event"]["data"]["userId"], "ann");
    let login = watcher.next_push().await;
    assert_eq!(login["data"]["topic"], "connection.login");
    assert_eq!(login["data"]["event"]["data"]["userId"], "bob");
    assert_eq!(
        watcher.ok("rules.getFact", json!({"key": ann_key})).await,
        Value::Null
    );

    // The socket ends without a logout: the close still carries the user.
    drop(b);
    let closed = watcher.next_push().await;
    assert_eq!(closed["data"]["topic"], "connection.closed");
    assert_eq!(
        closed["data"]["event"]["data"]["connectionId"],
        conn.as_str()
    );
    assert_eq!(closed["data"]["event"]["data"]["userId"], "bob");
    let online = watcher
        .ok("rules.queryFacts", json!({"pattern": "online:*:*"}))
        .await;
    assert_eq!(online, json!([]), "presence facts are gone after the close");

    // An anonymous connection's close has userId null.
    let (c, _) = Client::connect(&server).await;
    assert_eq!(
        watcher.next_push().await["data"]["topic"],
        "connection.opened"
    );
    drop(c);
    let closed = watcher.next_push().await;
    assert_eq!(closed["data"]["topic"], "connection.closed");
    assert_eq!(closed["data"]["event"]["data"]["userId"], Value::Null);
}

#[tokio::test]
async fn connection_events_are_off_by_default() {
    let mut config = config();
    config.rules.rules = vec![json!({
        "id": "saw", "name": "Saw a connection event",
        "trigger": {"type": "event", "topic": "connection.*"},
        "actions": [{"type": "set_fact", "key": "saw:${event.connectionId}", "value": true}]
    })];
    let server = start(config).await;
    let (other, _) = Client::connect(&server).await;
    drop(other);
    // Every connection has ended, so a `connection.closed` would have been emitted.
    server.wait_idle().await;
    let (mut c, _) = Client::connect(&server).await;
    assert_eq!(
        c.ok("rules.queryFacts", json!({"pattern": "saw:*"})).await,
        json!([])
    );
}

/// With durable storage, a rule change that cannot be written answers `INTERNAL_ERROR`
/// instead of a success the disk never saw.
#[tokio::test]
async fn a_rule_change_that_cannot_be_persisted_is_an_error() {
    let dir = std::env::temp_dir().join(format!("noex-rules-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = config();
    config.persistence.engine = noex_server::PersistenceEngine::Redb;
    config.persistence.data_dir = Some(dir.clone());
    let server = start(config).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok("rules.registerRule", json!({"rule": confirm_rule()}))
        .await;
    // The store stops writing (as after a disk failure): later rule changes must fail.
    server.store().close_persistence().expect("closes");
    let (code, _, _) = c
        .fail("rules.disableRule", json!({"ruleId": "confirm"}))
        .await;
    assert_eq!(code, "INTERNAL_ERROR");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rules.stats` and the `rules` part of `server.stats` are one shape with the same figures.
#[tokio::test]
async fn rules_stats_and_server_stats_agree() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    c.ok("rules.registerRule", json!({"rule": confirm_rule()}))
        .await;
    c.ok("rules.subscribe", json!({"pattern": "order.*"})).await;
    c.ok(
        "rules.emit",
        json!({"topic": "order.placed", "data": {"orderId": "o-1", "total": 3}}),
    )
    .await;
    c.next_push().await;
    c.next_push().await;
    let direct = c.ok("rules.stats", json!({})).await;
    let within = c.ok("server.stats", json!({})).await["rules"].clone();
    assert_eq!(direct, within);
    assert_eq!(direct["rulesCount"], 1);
    assert_eq!(direct["subscriptionsCount"], 1);
    assert_eq!(direct["actionErrors"], 0);
    assert_eq!(direct["factsCount"], 1);
}
