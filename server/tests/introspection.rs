//! `server.stats` and `server.connections` (docs/reference/protocol.md, "Server operations") over a real WebSocket,
//! and the same figures from the Rust handle (`stats()`, `connections()`), kept current
//! through connect, login, subscribe, unsubscribe and close.

mod common;

use std::collections::BTreeMap;

use common::{Client, local_config, start};
use noex_server::{AuthConfig, RateLimitConfig, ServerConfig, StaticToken};
use serde_json::{Value, json};

fn config() -> ServerConfig {
    let mut config = local_config();
    config.name = "stats-test".into();
    config.rate_limit = Some(RateLimitConfig {
        max_requests: 10_000,
        window_ms: 1_000,
    });
    config.auth = Some(AuthConfig {
        required: false,
        tokens: Some(BTreeMap::from([(
            "tok".to_owned(),
            StaticToken {
                user_id: "ada".into(),
                roles: vec!["admin".into()],
                expires_at: None,
            },
        )])),
        ..AuthConfig::default()
    });
    config.store = serde_json::from_value(json!({
        "buckets": {"items": {"key": "id", "schema": {"id": {"type": "number"}}}},
        "queries": {"items": {"bucket": "items"}, "n": {"bucket": "items", "aggregate": {"function": "count"}}}
    }))
    .expect("store section");
    config
}

fn entry<'a>(list: &'a Value, user: Option<&str>) -> &'a Value {
    list.as_array()
        .expect("list")
        .iter()
        .find(|e| e["userId"].as_str() == user)
        .expect("entry")
}

#[tokio::test]
async fn stats_and_connections_follow_the_connections_life() {
    let server = start(config()).await;
    let (mut admin, _) = Client::connect(&server).await;
    let (mut anon, _) = Client::connect(&server).await;

    let stats = admin.ok("server.stats", json!({})).await;
    assert_eq!(stats["name"], "stats-test");
    assert_eq!(stats["port"], server.local_addr().port());
    assert_eq!(stats["host"], "127.0.0.1");
    assert_eq!(stats["connectionCount"], 2);
    assert!(stats["uptimeMs"].is_u64());
    assert_eq!(stats["authEnabled"], true);
    assert_eq!(stats["rateLimitEnabled"], true);
    assert_eq!(stats["rulesEnabled"], false);
    assert_eq!(stats["rules"], Value::Null);
    assert_eq!(
        stats["connections"],
        json!({"active": 2, "authenticated": 0, "totalStoreSubscriptions": 0, "totalRulesSubscriptions": 0})
    );
    assert_eq!(stats["store"]["buckets"]["names"], json!(["items"]));
    assert_eq!(stats["store"]["queries"]["defined"], 2);

    admin.ok("auth.login", json!({"token": "tok"})).await;
    let a = admin.ok("store.subscribe", json!({"query": "items"})).await;
    admin.ok("store.subscribe", json!({"query": "n"})).await;
    anon.ok("store.subscribe", json!({"query": "n"})).await;
    admin
        .ok(
            "store.insert",
            json!({"bucket": "items", "data": {"id": 1}}),
        )
        .await;

    let stats = admin.ok("server.stats", json!({})).await;
    assert_eq!(
        stats["connections"],
        json!({"active": 2, "authenticated": 1, "totalStoreSubscriptions": 3, "totalRulesSubscriptions": 0})
    );
    assert_eq!(stats["store"]["records"]["total"], 1);
    assert_eq!(stats["store"]["queries"]["activeSubscriptions"], 3);

    let list = admin.ok("server.connections", json!({})).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let me = entry(&list, Some("ada"));
    assert_eq!(me["authenticated"], true);
    assert_eq!(me["storeSubscriptionCount"], 2);
    assert_eq!(me["rulesSubscriptionCount"], 0);
    let other = entry(&list, None);
    assert_eq!(other["authenticated"], false);
    assert_eq!(other["storeSubscriptionCount"], 1);

    admin
        .ok(
            "store.unsubscribe",
            json!({"subscriptionId": a["subscriptionId"]}),
        )
        .await;
    admin.ok("auth.logout", json!({})).await;
    // The handle reports the same as the wire.
    let stats = server.stats();
    assert_eq!(stats.connections.authenticated, 0);
    assert_eq!(stats.connections.total_store_subscriptions, 2);
    let connections = server.connections();
    assert_eq!(connections.len(), 2);
    assert!(connections.iter().all(|c| c.user_id.is_none()));

    drop(anon);
    drop(admin);
    server.wait_idle().await;
    let stats = server.stats();
    assert_eq!(stats.connection_count, 0);
    assert_eq!(stats.connections.total_store_subscriptions, 0);
    assert_eq!(stats.store.queries.active_subscriptions, 0);
    assert!(server.connections().is_empty());
}
