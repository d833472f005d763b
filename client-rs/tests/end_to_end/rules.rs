//! The rules API against the real server: emit, facts, a `rules.subscribe` stream fed by
//! another client's events, and rule management.

use futures_util::StreamExt;
use noex_client::ClientError;
use noex_protocol::ErrorCode;
use serde_json::{Value, json};

use crate::common::{config, connect, next, obj, start};

/// Reacts to `order.placed` with a positive total: sets a fact, emits `order.confirmed`.
fn confirm_rule() -> noex_protocol::JsonObject {
    obj(json!({
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
    }))
}

#[tokio::test]
async fn facts_round_trip() {
    let server = start(config()).await;
    let client = connect(&server).await;
    let rules = client.rules();
    let fact = rules.set_fact("user:1:tier", json!("gold")).await.unwrap();
    assert_eq!(fact.key, "user:1:tier");
    assert_eq!(fact.value, "gold");
    assert_eq!(fact.version, 1);
    assert_eq!(
        rules
            .set_fact("user:1:tier", json!("platinum"))
            .await
            .unwrap()
            .version,
        2
    );
    rules
        .set_fact("user:2:tier", json!("silver"))
        .await
        .unwrap();
    rules.set_fact("config:x", json!({"n": 1})).await.unwrap();

    assert_eq!(
        rules.get_fact("user:1:tier").await.unwrap(),
        Some(json!("platinum"))
    );
    assert_eq!(rules.get_fact("nobody").await.unwrap(), None);
    let mut tiers: Vec<(String, Value)> = rules
        .query_facts("user:*:tier")
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.key, f.value))
        .collect();
    tiers.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        tiers,
        [
            ("user:1:tier".to_owned(), json!("platinum")),
            ("user:2:tier".to_owned(), json!("silver"))
        ]
    );
    assert_eq!(rules.all_facts().await.unwrap().len(), 3);
    assert!(rules.delete_fact("user:1:tier").await.unwrap().deleted);
    assert!(!rules.delete_fact("user:1:tier").await.unwrap().deleted);
    assert_eq!(rules.get_fact("user:1:tier").await.unwrap(), None);
    assert_eq!(rules.stats().await.unwrap().facts_count, 2);

    let err = rules.query_facts("a::b").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ValidationError));
    client.disconnect().await;
}

#[tokio::test]
async fn event_stream_receives_events_emitted_by_another_client() {
    let server = start(config()).await;
    let admin = connect(&server).await;
    let shop = connect(&server).await;
    let watcher = connect(&server).await;
    admin.rules().register_rule(confirm_rule()).await.unwrap();

    let mut orders = watcher.rules().subscribe("order.*").await.unwrap();
    assert_eq!(server.stats().connections.total_rules_subscriptions, 1);

    let placed = shop
        .rules()
        .emit("order.placed", obj(json!({"orderId": "o-9", "total": 30})))
        .await
        .unwrap();
    assert_eq!(placed.topic, "order.placed");
    assert_eq!(placed.data, json!({"orderId": "o-9", "total": 30}));

    let first = next("order.placed push", &mut orders).await.unwrap();
    assert_eq!(first.topic, "order.placed");
    assert_eq!(first.event, placed);
    let second = next("order.confirmed push", &mut orders).await.unwrap();
    assert_eq!(second.topic, "order.confirmed");
    assert_eq!(second.event.data, json!({"orderId": "o-9"}));
    assert_eq!(
        second.event.causation_id.as_deref(),
        Some(placed.id.as_str())
    );
    assert_eq!(
        shop.rules().get_fact("order:o-9:status").await.unwrap(),
        Some(json!("confirmed"))
    );

    // A topic outside the pattern is not delivered: the next item is the next order.
    shop.rules()
        .emit("user.joined", obj(json!({})))
        .await
        .unwrap();
    // A total of 0 does not trigger the rule: exactly one more push.
    let zero = shop
        .rules()
        .emit("order.placed", obj(json!({"orderId": "o-10", "total": 0})))
        .await
        .unwrap();
    let third = next("second order.placed push", &mut orders).await.unwrap();
    assert_eq!(third.event.id, zero.id);
    // The round trip after the emit: any push due is queued before its answer.
    watcher.rules().stats().await.unwrap();
    assert!(
        futures_util::FutureExt::now_or_never(orders.next()).is_none(),
        "nothing else was pushed"
    );

    // Dropping the stream unsubscribes on the server.
    drop(orders);
    watcher.rules().stats().await.unwrap();
    assert_eq!(server.stats().connections.total_rules_subscriptions, 0);

    let err = watcher.rules().subscribe("a..b").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ValidationError));
    for c in [admin, shop, watcher] {
        c.disconnect().await;
    }
}

#[tokio::test]
async fn rule_management() {
    let server = start(config()).await;
    let client = connect(&server).await;
    let rules = client.rules();

    let registered = rules.register_rule(confirm_rule()).await.unwrap();
    assert_eq!(registered.id, "confirm");
    assert_eq!(registered.name, "Confirm orders");
    assert_eq!(registered.version, 1);
    let err = rules.register_rule(confirm_rule()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyExists));

    // An invalid rule: VALIDATION_ERROR whose details list the paths.
    let mut broken = confirm_rule();
    broken.insert("id".into(), json!("broken"));
    broken.insert("trigger".into(), json!({"type": "telepathy"}));
    let err = rules.register_rule(broken.clone()).await.unwrap_err();
    let ClientError::Server {
        code,
        details: Some(details),
        ..
    } = err
    else {
        panic!("expected a server error with details, got {err:?}");
    };
    assert_eq!(code, ErrorCode::ValidationError);
    assert!(
        details.to_string().contains("trigger"),
        "details name the field: {details}"
    );
    let report = rules.validate_rule(broken).await.unwrap();
    assert!(!report.valid);
    assert!(report.errors.iter().any(|e| e.path.starts_with("trigger")));
    assert!(rules.validate_rule(confirm_rule()).await.unwrap().valid);

    assert_eq!(rules.get_rule("confirm").await.unwrap()["id"], "confirm");
    let list = rules.get_rules().await.unwrap();
    assert_eq!(list.rules.len(), 1);
    assert_eq!(list.rules[0].group.as_deref(), Some("sales"));

    let updated = rules
        .update_rule("confirm", obj(json!({"priority": 9})))
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(rules.get_rules().await.unwrap().rules[0].priority, 9);

    let disabled = rules.disable_rule("confirm").await.unwrap();
    assert!(!disabled.enabled);
    rules
        .emit("order.placed", obj(json!({"orderId": "o1", "total": 5})))
        .await
        .unwrap();
    assert_eq!(
        rules.get_fact("order:o1:status").await.unwrap(),
        None,
        "a disabled rule does not fire"
    );
    assert!(rules.enable_rule("confirm").await.unwrap().enabled);
    rules
        .emit("order.placed", obj(json!({"orderId": "o2", "total": 5})))
        .await
        .unwrap();
    assert_eq!(
        rules.get_fact("order:o2:status").await.unwrap(),
        Some(json!("confirmed"))
    );
    let stats = rules.stats().await.unwrap();
    assert_eq!(stats.rules_count, 1);
    assert!(stats.events_processed >= 2);

    let gone = rules.unregister_rule("confirm").await.unwrap();
    assert!(gone.unregistered);
    assert_eq!(
        rules.unregister_rule("confirm").await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        rules.get_rule("confirm").await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    client.disconnect().await;
}

#[tokio::test]
async fn without_the_engine_rules_calls_fail_with_rules_not_available() {
    let mut config = config();
    config.rules.enabled = Some(false);
    let server = start(config).await;
    let client = connect(&server).await;
    assert_eq!(
        client.rules().stats().await.unwrap_err().code(),
        Some(ErrorCode::RulesNotAvailable)
    );
    assert_eq!(
        client.rules().subscribe("*").await.unwrap_err().code(),
        Some(ErrorCode::RulesNotAvailable)
    );
    client.disconnect().await;
}
