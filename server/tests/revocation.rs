//! Session revocation over a real WebSocket: every case of the original server's
//! `tests/integration/auth-revocation.test.ts` (the blacklist's TTL on an injected clock
//! instead of a sleep), then what this server adds — revoking one connection by id, the
//! admin-tier `server.revokeSessions` operation, no push after revocation, and the
//! blacklist's bound.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Client, local_config};
use noex_server::{
    AuditConfig, AuthConfig, Clock, ManualClock, RevokeFilter, Server, ServerConfig, ServerHandle,
    StaticToken,
};
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000_000;

fn token(user: &str, role: &str) -> StaticToken {
    StaticToken {
        user_id: user.into(),
        roles: vec![role.into()],
        expires_at: None,
    }
}

fn config() -> ServerConfig {
    let mut config = local_config();
    config.auth = Some(AuthConfig {
        required: true,
        tokens: Some(BTreeMap::from([
            ("admin".into(), token("admin-1", "admin")),
            ("writer".into(), token("writer-1", "writer")),
            ("writer2".into(), token("writer-2", "writer")),
            ("reader".into(), token("reader-1", "reader")),
        ])),
        ..AuthConfig::default()
    });
    config
}

async fn start(config: ServerConfig) -> (ServerHandle, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let server = Server::builder(config)
        .clock(clock.clone() as Arc<dyn Clock>)
        .start()
        .await
        .expect("server starts");
    (server, clock)
}

async fn setup() -> ServerHandle {
    start(config()).await.0
}

async fn connect(server: &ServerHandle, token: &str) -> Client {
    let (mut c, _) = Client::connect(server).await;
    c.ok("auth.login", json!({"token": token})).await;
    c
}

/// Reads the revocation notice, then the close; returns the notice and the close.
async fn expect_revoked(c: &mut Client) -> (Value, (u16, String)) {
    let notice = c.recv().await;
    let close = c.expect_close().await;
    (notice, close)
}

fn by(user_id: Option<&str>, role: Option<&str>) -> RevokeFilter {
    RevokeFilter {
        user_id: user_id.map(Into::into),
        role: role.map(Into::into),
        connection_id: None,
    }
}

// ── The original's cases ────────────────────────────────────────

#[tokio::test]
async fn revoke_session_disconnects_the_users_connection() {
    let server = setup().await;
    let mut ws = connect(&server, "writer").await;
    assert_eq!(server.revoke_session("writer-1"), 1);
    let (notice, close) = expect_revoked(&mut ws).await;
    assert_eq!(
        notice,
        json!({"type": "system", "event": "session_revoked",
               "reason": "Session revoked by administrator"})
    );
    assert_eq!(close, (4002, "session_revoked".to_owned()));
}

#[tokio::test]
async fn revoke_session_disconnects_every_connection_of_the_user() {
    let server = setup().await;
    let mut ws1 = connect(&server, "writer").await;
    let mut ws2 = connect(&server, "writer").await;
    assert_eq!(server.revoke_session("writer-1"), 2);
    assert_eq!(expect_revoked(&mut ws1).await.1.0, 4002);
    assert_eq!(expect_revoked(&mut ws2).await.1.0, 4002);
}

#[tokio::test]
async fn revoke_session_of_a_user_without_connections_revokes_none() {
    let server = setup().await;
    assert_eq!(server.revoke_session("nobody"), 0);
    assert!(server.is_revoked("nobody"), "blacklisted all the same");
}

#[tokio::test]
async fn revoke_session_does_not_affect_other_users() {
    let server = setup().await;
    let mut writer = connect(&server, "writer").await;
    let mut reader = connect(&server, "reader").await;
    server.revoke_session("writer-1");
    expect_revoked(&mut writer).await;
    reader.ok("store.buckets", json!({})).await;
}

#[tokio::test]
async fn a_revoked_user_cannot_log_in_again() {
    let server = setup().await;
    let mut ws1 = connect(&server, "writer").await;
    server.revoke_session("writer-1");
    expect_revoked(&mut ws1).await;
    let (mut ws2, _) = Client::connect(&server).await;
    let (code, message, _) = ws2.fail("auth.login", json!({"token": "writer"})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("SESSION_REVOKED", "Session has been revoked")
    );
    let who = ws2.ok("auth.whoami", json!({})).await;
    assert_eq!(who["authenticated"], false, "no session is left");
}

#[tokio::test]
async fn the_blacklist_expires_after_its_ttl() {
    let mut config = config();
    config.revocation.blacklist_ttl_ms = 200;
    let (server, clock) = start(config).await;
    let mut ws1 = connect(&server, "writer").await;
    server.revoke_session("writer-1");
    expect_revoked(&mut ws1).await;

    let (mut ws2, _) = Client::connect(&server).await;
    clock.advance(199);
    let (code, _, _) = ws2.fail("auth.login", json!({"token": "writer"})).await;
    assert_eq!(code, "SESSION_REVOKED", "still within the TTL");
    clock.advance(1);
    ws2.ok("auth.login", json!({"token": "writer"})).await;
    assert_eq!(server.revoked_users(), 0);
}

#[tokio::test]
async fn revoke_sessions_by_user_id() {
    let server = setup().await;
    let mut ws = connect(&server, "writer").await;
    assert_eq!(server.revoke_sessions(&by(Some("writer-1"), None)), 1);
    assert_eq!(expect_revoked(&mut ws).await.1.0, 4002);
}

#[tokio::test]
async fn revoke_sessions_by_role() {
    let server = setup().await;
    let mut ws1 = connect(&server, "writer").await;
    let mut ws2 = connect(&server, "writer2").await;
    let mut reader = connect(&server, "reader").await;
    assert_eq!(server.revoke_sessions(&by(None, Some("writer"))), 2);
    assert_eq!(expect_revoked(&mut ws1).await.1.0, 4002);
    assert_eq!(expect_revoked(&mut ws2).await.1.0, 4002);
    reader.ok("store.buckets", json!({})).await;
}

#[tokio::test]
async fn revoke_sessions_by_user_id_and_role_combined() {
    let server = setup().await;
    let mut ws1 = connect(&server, "writer").await;
    let mut ws2 = connect(&server, "writer2").await;
    assert_eq!(
        server.revoke_sessions(&by(Some("writer-1"), Some("writer"))),
        1
    );
    expect_revoked(&mut ws1).await;
    ws2.ok("store.buckets", json!({})).await;
}

#[tokio::test]
async fn users_revoked_by_role_are_blacklisted() {
    let server = setup().await;
    let mut ws = connect(&server, "writer").await;
    server.revoke_sessions(&by(None, Some("writer")));
    expect_revoked(&mut ws).await;
    let (mut ws2, _) = Client::connect(&server).await;
    let (code, _, _) = ws2.fail("auth.login", json!({"token": "writer"})).await;
    assert_eq!(code, "SESSION_REVOKED");
    assert!(!server.is_revoked("writer-2"), "only matched users");
}

#[tokio::test]
async fn revoke_sessions_without_a_match_revokes_none() {
    let server = setup().await;
    let _ws = connect(&server, "writer").await;
    assert_eq!(server.revoke_sessions(&by(None, Some("nonexistent"))), 0);
    assert_eq!(server.revoked_users(), 0);
}

#[tokio::test]
async fn unauthenticated_connections_are_unaffected() {
    let server = setup().await;
    let (mut ws, _) = Client::connect(&server).await;
    assert_eq!(server.revoke_session("writer-1"), 0);
    assert_eq!(server.revoke_sessions(&RevokeFilter::default()), 0);
    ws.ok("auth.login", json!({"token": "admin"})).await;
}

// ── Beyond the original ─────────────────────────────────────────

#[tokio::test]
async fn one_connection_is_revoked_by_its_id() {
    let server = setup().await;
    let mut first = connect(&server, "writer").await;
    let mut second = connect(&server, "writer").await;
    let ids: Vec<String> = server
        .connections()
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    let filter = RevokeFilter {
        connection_id: Some(ids[0].clone()),
        ..RevokeFilter::default()
    };
    assert_eq!(server.revoke_sessions(&filter), 1);
    expect_revoked(&mut first).await;
    second.ok("store.buckets", json!({})).await;
    assert_eq!(
        server.revoke_sessions(&RevokeFilter {
            connection_id: Some("not-a-connection".into()),
            ..RevokeFilter::default()
        }),
        0
    );
}

#[tokio::test]
async fn admins_revoke_over_the_wire_and_the_revocation_is_audited() {
    let mut config = config();
    config.audit = Some(AuditConfig::default());
    let (server, _) = start(config).await;
    let mut admin = connect(&server, "admin").await;
    let mut writer = connect(&server, "writer").await;
    let mut reader = connect(&server, "reader").await;

    let (code, _, _) = writer
        .fail("server.revokeSessions", json!({"userId": "reader-1"}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, message, _) = admin.fail("server.revokeSessions", json!({})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "VALIDATION_ERROR",
            r#"Missing filter: expected at least one of "userId", "role", "connectionId""#
        )
    );
    let writer_id = server
        .connections()
        .into_iter()
        .find(|c| c.user_id.as_deref() == Some("writer-1"))
        .expect("the writer's connection")
        .connection_id;
    let answer = admin
        .ok("server.revokeSessions", json!({"connectionId": writer_id}))
        .await;
    assert_eq!(answer, json!({"revoked": 1}));
    assert_eq!(expect_revoked(&mut writer).await.1.0, 4002);
    reader.ok("store.buckets", json!({})).await;

    let entries = admin
        .ok("audit.query", json!({"operation": "server.revokeSessions"}))
        .await;
    let entries = entries["entries"].as_array().unwrap();
    // The request without a filter did not parse: no tier, no entry.
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["userId"], "admin-1");
    assert_eq!(entries[0]["result"], "success");
    assert_eq!(entries[0]["details"], json!({"connectionId": writer_id}));
    assert_eq!(entries[1]["userId"], "writer-1", "the denied attempt");
    assert_eq!(entries[1]["result"], "error");
}

#[tokio::test]
async fn an_admin_revoking_itself_gets_the_answer_first() {
    let server = setup().await;
    let mut admin = connect(&server, "admin").await;
    let answer = admin
        .ok("server.revokeSessions", json!({"role": "admin"}))
        .await;
    assert_eq!(answer["revoked"], 1);
    let (notice, close) = expect_revoked(&mut admin).await;
    assert_eq!(notice["event"], "session_revoked");
    assert_eq!(close.0, 4002);
}

#[tokio::test]
async fn a_revoked_connections_subscription_pushes_nothing_after_the_notice() {
    let mut config = config();
    config.store = serde_json::from_value(json!({
        "buckets": {"notes": {"key": "id", "schema": {"id": {"type": "string"}}}},
        "queries": {"all-notes": {"bucket": "notes"}}
    }))
    .unwrap();
    let (server, _) = start(config).await;
    let mut writer = connect(&server, "writer").await;
    let mut other = connect(&server, "writer2").await;
    let sub = writer
        .ok("store.subscribe", json!({"query": "all-notes"}))
        .await;
    assert_eq!(sub["data"], json!([]));
    assert_eq!(server.stats().connections.total_store_subscriptions, 1);

    assert_eq!(server.revoke_session("writer-1"), 1);
    for id in ["a", "b", "c"] {
        other
            .ok(
                "store.insert",
                json!({"bucket": "notes", "data": {"id": id}}),
            )
            .await;
    }
    server.store().settle().await;
    let notice = writer.recv().await;
    assert_eq!(
        notice["event"], "session_revoked",
        "no push before it: {notice}"
    );
    assert_eq!(writer.expect_close().await.0, 4002, "and none after it");
    // The subscription ended with the connection.
    tokio::time::timeout(common::WAIT, async {
        while server.connection_count() > 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the revoked connection ends");
    assert_eq!(server.stats().connections.total_store_subscriptions, 0);
}

#[tokio::test]
async fn the_blacklist_is_bounded() {
    let (server, clock) = start(config()).await;
    let cap = noex_server::MAX_REVOKED_USERS;
    for i in 0..cap {
        server.revoke_session(&format!("user-{i}"));
    }
    assert_eq!(server.revoked_users(), cap);
    clock.advance(1);
    server.revoke_session("one-more");
    assert_eq!(server.revoked_users(), cap, "the cap holds");
    assert!(server.is_revoked("one-more"), "the newest ban is kept");
    let older = (0..cap)
        .filter(|i| server.is_revoked(&format!("user-{i}")))
        .count();
    assert_eq!(older, cap - 1, "one ban expiring soonest made room");
    // The older bans expire first.
    clock.advance(noex_server::DEFAULT_BLACKLIST_TTL_MS - 1);
    assert_eq!(server.revoked_users(), 1);
    assert!(server.is_revoked("one-more"));
}

#[test]
fn revocation_ttl_must_be_positive() {
    let config: ServerConfig =
        serde_json::from_value(json!({"revocation": {"blacklistTtlMs": 0}})).unwrap();
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "invalid config: \"revocation.blacklistTtlMs\" must be at least 1"
    );
}
