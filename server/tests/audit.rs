//! The audit log over a real WebSocket: every case of the original server's
//! `tests/integration/audit.test.ts`, then what this server adds — denied and failed
//! operations with their error, the ring buffer's bound, bounded strings, the durable
//! bucket (surviving a restart, closed to `store.*`), definitions audited with who made
//! them, and the Rust hook.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{Client, local_config};
use noex_server::{
    AuditConfig, AuditTier, AuthConfig, Clock, ManualClock, PersistenceEngine, Server,
    ServerConfig, ServerHandle, StaticToken,
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

fn config(audit: Option<AuditConfig>) -> ServerConfig {
    let mut config = local_config();
    config.auth = Some(AuthConfig {
        required: true,
        tokens: Some(BTreeMap::from([
            ("admin".into(), token("admin-1", "admin")),
            ("writer".into(), token("writer-1", "writer")),
            ("reader".into(), token("reader-1", "reader")),
        ])),
        ..AuthConfig::default()
    });
    config.audit = audit;
    config.store = serde_json::from_value(json!({"buckets": {"users": {"key": "id",
        "schema": {"id": {"type": "string", "generated": "uuid"}, "name": {"type": "string", "required": true}}}}}))
    .unwrap();
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

async fn setup(audit: AuditConfig) -> ServerHandle {
    start(config(Some(audit))).await.0
}

async fn connect(server: &ServerHandle, token: &str) -> Client {
    let (mut c, _) = Client::connect(server).await;
    c.ok("auth.login", json!({"token": token})).await;
    c
}

async fn entries(c: &mut Client, filter: Value) -> Vec<Value> {
    let data = c.ok("audit.query", filter).await;
    data["entries"].as_array().expect("entries").clone()
}

fn find<'a>(entries: &'a [Value], operation: &str) -> Option<&'a Value> {
    entries.iter().find(|e| e["operation"] == operation)
}

// ── The original's cases ────────────────────────────────────────

#[tokio::test]
async fn server_stats_generates_an_audit_entry() {
    let server = setup(AuditConfig::default()).await;
    let mut ws = connect(&server, "admin").await;
    ws.ok("server.stats", json!({})).await;
    let entries = entries(&mut ws, json!({})).await;
    let stats = find(&entries, "server.stats").expect("a server.stats entry");
    assert_eq!(stats["result"], "success");
    assert_eq!(stats["userId"], "admin-1");
    assert_eq!(stats["resource"], "*");
    assert_eq!(stats["remoteAddress"], "127.0.0.1");
    assert_eq!(stats["timestamp"], T0, "stamped by the server's clock");
    assert!(stats["sessionId"].as_str().unwrap().starts_with("conn-"));
    assert!(stats.get("error").is_none(), "no error on success: {stats}");
}

#[tokio::test]
async fn server_connections_generates_an_audit_entry() {
    let server = setup(AuditConfig::default()).await;
    let mut ws = connect(&server, "admin").await;
    ws.ok("server.connections", json!({})).await;
    let entries = entries(&mut ws, json!({})).await;
    let entry = find(&entries, "server.connections").expect("an entry");
    assert_eq!(entry["result"], "success");
}

#[tokio::test]
async fn store_insert_is_not_audited_by_default() {
    let server = setup(AuditConfig::default()).await;
    let mut ws = connect(&server, "admin").await;
    ws.ok(
        "store.insert",
        json!({"bucket": "users", "data": {"name": "Alice"}}),
    )
    .await;
    let entries = entries(&mut ws, json!({})).await;
    assert!(find(&entries, "store.insert").is_none(), "{entries:?}");
}

#[tokio::test]
async fn write_operations_are_logged_when_configured() {
    let server = setup(AuditConfig {
        tiers: vec![AuditTier::Admin, AuditTier::Write],
        ..AuditConfig::default()
    })
    .await;
    let mut ws = connect(&server, "admin").await;
    ws.ok(
        "store.insert",
        json!({"bucket": "users", "data": {"name": "Bob"}}),
    )
    .await;
    let entries = entries(&mut ws, json!({})).await;
    let insert = find(&entries, "store.insert").expect("an insert entry");
    assert_eq!(insert["result"], "success");
    assert_eq!(insert["resource"], "users");
    assert!(find(&entries, "store.all").is_none(), "reads stay out");
}

#[tokio::test]
async fn a_forbidden_operation_generates_an_error_entry() {
    let server = setup(AuditConfig::default()).await;
    let mut writer = connect(&server, "writer").await;
    let (code, message, _) = writer.fail("server.stats", json!({})).await;
    assert_eq!(code, "FORBIDDEN");

    let mut admin = connect(&server, "admin").await;
    let entries = entries(&mut admin, json!({})).await;
    let denied = entries
        .iter()
        .find(|e| e["operation"] == "server.stats" && e["result"] == "error")
        .expect("an error entry");
    assert_eq!(denied["userId"], "writer-1");
    assert_eq!(denied["error"], message, "the error the client got");
}

#[tokio::test]
async fn audit_query_filters_by_user_id() {
    let server = setup(AuditConfig::default()).await;
    let mut admin = connect(&server, "admin").await;
    let mut writer = connect(&server, "writer").await;
    writer.fail("server.stats", json!({})).await;
    admin.ok("server.stats", json!({})).await;
    admin.ok("server.connections", json!({})).await;
    let entries = entries(&mut admin, json!({"userId": "admin-1"})).await;
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e["userId"] == "admin-1"));
}

#[tokio::test]
async fn audit_query_filters_by_operation() {
    let server = setup(AuditConfig::default()).await;
    let mut ws = connect(&server, "admin").await;
    ws.ok("server.stats", json!({})).await;
    ws.ok("server.connections", json!({})).await;
    ws.ok("server.stats", json!({})).await;
    let entries = entries(&mut ws, json!({"operation": "server.stats"})).await;
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e["operation"] == "server.stats"));
}

#[tokio::test]
async fn audit_query_respects_limit() {
    let server = setup(AuditConfig::default()).await;
    let mut ws = connect(&server, "admin").await;
    for _ in 0..3 {
        ws.ok("server.stats", json!({})).await;
    }
    assert_eq!(entries(&mut ws, json!({"limit": 2})).await.len(), 2);
}

#[tokio::test]
async fn writers_and_readers_cannot_query_the_audit_log() {
    let server = setup(AuditConfig::default()).await;
    for token in ["writer", "reader"] {
        let mut ws = connect(&server, token).await;
        let (code, _, _) = ws.fail("audit.query", json!({})).await;
        assert_eq!(code, "FORBIDDEN", "{token}");
    }
}

#[tokio::test]
async fn audit_query_validates_its_filters() {
    let server = setup(AuditConfig::default()).await;
    let mut ws = connect(&server, "admin").await;
    for (fields, message) in [
        (
            json!({"limit": -1}),
            r#"Invalid "limit": expected positive integer"#,
        ),
        (
            json!({"from": "yesterday"}),
            r#"Invalid "from": expected number"#,
        ),
        (
            json!({"to": "tomorrow"}),
            r#"Invalid "to": expected number"#,
        ),
        (json!({"userId": 7}), r#"Invalid "userId": expected string"#),
        (
            json!({"operation": 7}),
            r#"Invalid "operation": expected string"#,
        ),
        (
            json!({"result": "failed"}),
            r#"Invalid "result": expected "success" or "error""#,
        ),
    ] {
        let (code, got, _) = ws.fail("audit.query", fields.clone()).await;
        assert_eq!((code.as_str(), got.as_str()), ("VALIDATION_ERROR", message));
    }
}

#[tokio::test]
async fn without_an_audit_section_audit_query_is_unknown() {
    let (server, _) = start(config(None)).await;
    let mut ws = connect(&server, "admin").await;
    let (code, message, _) = ws.fail("audit.query", json!({"limit": "bad"})).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("UNKNOWN_OPERATION", "Audit log is not configured")
    );
    assert_eq!(server.audit_len(), 0);
}

#[tokio::test]
async fn the_hook_is_called_for_each_audited_operation() {
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = Arc::clone(&received);
    let server = Server::builder(config(Some(AuditConfig::default())))
        .audit_hook(move |entry| {
            let result = serde_json::to_value(entry.result).unwrap();
            sink.lock()
                .unwrap()
                .push((entry.operation.clone(), result.as_str().unwrap().to_owned()));
        })
        .start()
        .await
        .unwrap();
    let mut ws = connect(&server, "admin").await;
    ws.ok("server.stats", json!({})).await;
    // The hook runs before the answer is sent: no wait needed.
    assert_eq!(
        *received.lock().unwrap(),
        vec![("server.stats".to_owned(), "success".to_owned())]
    );
}

// ── Beyond the original ─────────────────────────────────────────

#[tokio::test]
async fn an_audit_hook_without_an_audit_section_is_a_config_error() {
    let err = Server::builder(config(None))
        .audit_hook(|_| {})
        .start()
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("audit"), "{err}");
}

#[tokio::test]
async fn failed_and_unauthenticated_operations_are_audited_with_their_error() {
    let server = setup(AuditConfig::default()).await;
    let (mut anonymous, _) = Client::connect(&server).await;
    let (code, _, _) = anonymous.fail("server.stats", json!({})).await;
    assert_eq!(code, "UNAUTHORIZED");
    let mut admin = connect(&server, "admin").await;
    let (code, message, _) = admin
        .fail("store.dropBucket", json!({"name": "missing"}))
        .await;
    assert_eq!(code, "BUCKET_NOT_DEFINED");

    let errors = entries(&mut admin, json!({"result": "error"})).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    // Newest first.
    assert_eq!(errors[0]["operation"], "store.dropBucket");
    assert_eq!(errors[0]["resource"], "missing");
    assert_eq!(errors[0]["error"], message);
    assert_eq!(errors[1]["operation"], "server.stats");
    assert_eq!(errors[1]["userId"], Value::Null);
    assert_eq!(errors[1]["sessionId"], Value::Null);
    assert_eq!(errors[1]["error"], "Authentication required");
    let successes = entries(&mut admin, json!({"result": "success"})).await;
    assert!(successes.iter().all(|e| e["result"] == "success"));
    assert!(!successes.is_empty(), "the previous audit.query is logged");
}

#[tokio::test]
async fn from_and_to_select_by_the_server_clock_and_entries_come_newest_first() {
    let (server, clock) = start(config(Some(AuditConfig::default()))).await;
    let mut ws = connect(&server, "admin").await;
    for step in 0..3 {
        clock.set(T0 + step * 1_000);
        ws.ok("server.stats", json!({})).await;
    }
    let stats = entries(
        &mut ws,
        json!({"operation": "server.stats", "from": T0 + 1_000, "to": T0 + 2_000}),
    )
    .await;
    let times: Vec<&Value> = stats.iter().map(|e| &e["timestamp"]).collect();
    assert_eq!(times, [&json!(T0 + 2_000), &json!(T0 + 1_000)]);
}

#[tokio::test]
async fn the_ring_buffer_keeps_the_newest_max_entries() {
    let (server, clock) = start(config(Some(AuditConfig {
        max_entries: 3,
        ..AuditConfig::default()
    })))
    .await;
    let mut ws = connect(&server, "admin").await;
    for step in 1..=5 {
        clock.set(T0 + step);
        ws.ok("server.stats", json!({})).await;
    }
    assert_eq!(server.audit_len(), 3);
    // The query answers before its own entry is logged.
    let entries = entries(&mut ws, json!({})).await;
    let times: Vec<&Value> = entries.iter().map(|e| &e["timestamp"]).collect();
    assert_eq!(times, [&json!(T0 + 5), &json!(T0 + 4), &json!(T0 + 3)]);
}

#[tokio::test]
async fn definitions_are_audited_with_who_made_them_and_long_texts_are_bounded() {
    let mut config = config(Some(AuditConfig {
        tiers: vec![AuditTier::Admin, AuditTier::Write],
        ..AuditConfig::default()
    }));
    config.rules.enabled = Some(true);
    let (server, _) = start(config).await;
    let mut ws = connect(&server, "admin").await;
    let definition = json!({"key": "id", "schema": {"id": {"type": "string"}}});
    ws.ok(
        "store.defineBucket",
        json!({"name": "orders", "config": definition}),
    )
    .await;
    ws.ok(
        "rules.registerRule",
        json!({"rule": {"id": "greet", "name": "Greet",
            "trigger": {"type": "event", "topic": "user.joined"},
            "actions": [{"type": "set_fact", "key": "greeted", "value": true}]}}),
    )
    .await;
    // A definition too large to keep whole, and an operation on a 5 KB bucket name.
    let mut schema = serde_json::Map::new();
    schema.insert("id".into(), json!({"type": "string"}));
    for i in 0..200 {
        schema.insert(format!("field_{i:04}"), json!({"type": "string"}));
    }
    ws.ok(
        "store.defineBucket",
        json!({"name": "wide", "config": {"key": "id", "schema": schema}}),
    )
    .await;
    let long_name = "x".repeat(5_000);
    ws.fail(
        "store.insert",
        json!({"bucket": long_name, "data": {"id": "1"}}),
    )
    .await;

    let entries = entries(&mut ws, json!({})).await;
    let bucket = entries
        .iter()
        .find(|e| e["operation"] == "store.defineBucket" && e["resource"] == "orders")
        .expect("the bucket definition");
    assert_eq!(bucket["userId"], "admin-1");
    assert_eq!(bucket["details"], json!({"config": definition}));
    let rule = find(&entries, "rules.registerRule").expect("the rule registration");
    assert_eq!(rule["resource"], "greet");
    assert_eq!(rule["userId"], "admin-1");
    assert_eq!(rule["details"]["rule"]["id"], "greet");
    let wide = entries
        .iter()
        .find(|e| e["resource"] == "wide")
        .expect("the wide definition");
    assert_eq!(wide["details"]["config"]["truncated"], true);
    assert!(wide["details"]["config"]["bytes"].as_u64().unwrap() > 4096);
    let insert = find(&entries, "store.insert").expect("the failed insert");
    let resource = insert["resource"].as_str().unwrap();
    let error = insert["error"].as_str().unwrap();
    assert!(
        resource.len() <= noex_server::MAX_AUDIT_TEXT_BYTES,
        "{}",
        resource.len()
    );
    assert!(resource.ends_with('…'));
    assert!(
        error.len() <= noex_server::MAX_AUDIT_TEXT_BYTES,
        "{}",
        error.len()
    );
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("noex-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn durable(dir: &std::path::Path, max_entries: usize) -> ServerConfig {
    let mut config = config(Some(AuditConfig {
        max_entries,
        bucket: Some("_audit".into()),
        ..AuditConfig::default()
    }));
    config.persistence.engine = PersistenceEngine::Redb;
    config.persistence.data_dir = Some(dir.to_owned());
    config
}

#[tokio::test]
async fn the_durable_bucket_survives_a_restart_and_stays_bounded() {
    let dir = temp_dir("restart");
    let stop = |server: ServerHandle| async move {
        server.stop(std::time::Duration::ZERO).await;
        server.store().close_persistence().expect("closes");
    };
    let (first, clock) = start(durable(&dir, 4)).await;
    let mut ws = connect(&first, "admin").await;
    // Keys past 9, whose text order is not their order.
    for step in 1..=12 {
        clock.set(T0 + step);
        ws.ok("server.stats", json!({})).await;
    }
    assert_eq!(
        first.store().bucket_len("_audit"),
        Some(4),
        "trimmed to maxEntries"
    );
    drop(ws);
    stop(first).await;

    let (second, clock) = start(durable(&dir, 4)).await;
    assert_eq!(second.audit_len(), 4, "loaded at start");
    let mut ws = connect(&second, "admin").await;
    clock.set(T0 + 20);
    let loaded = entries(&mut ws, json!({})).await;
    let times: Vec<&Value> = loaded.iter().map(|e| &e["timestamp"]).collect();
    assert_eq!(
        times,
        [
            &json!(T0 + 12),
            &json!(T0 + 11),
            &json!(T0 + 10),
            &json!(T0 + 9)
        ]
    );
    assert!(loaded.iter().all(|e| e["userId"] == "admin-1"));
    clock.set(T0 + 21);
    ws.ok("server.stats", json!({})).await;
    assert_eq!(second.store().bucket_len("_audit"), Some(4));
    drop(ws);
    stop(second).await;

    // The oldest went (not the lowest key in text order), and a smaller maxEntries
    // shrinks the bucket at start.
    let (third, clock) = start(durable(&dir, 2)).await;
    assert_eq!(third.audit_len(), 2);
    assert_eq!(third.store().bucket_len("_audit"), Some(2));
    let mut ws = connect(&third, "admin").await;
    clock.set(T0 + 30);
    let left = entries(&mut ws, json!({})).await;
    let kept: Vec<(&Value, &Value)> = left
        .iter()
        .map(|e| (&e["timestamp"], &e["operation"]))
        .collect();
    assert_eq!(
        kept,
        [
            (&json!(T0 + 21), &json!("server.stats")),
            (&json!(T0 + 20), &json!("audit.query"))
        ]
    );
    drop(ws);
    stop(third).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn store_operations_cannot_touch_the_audit_bucket() {
    let server = setup(AuditConfig {
        bucket: Some("_audit".into()),
        ..AuditConfig::default()
    })
    .await;
    let mut ws = connect(&server, "admin").await;
    ws.ok("server.stats", json!({})).await;
    let forbidden = [
        (
            "store.insert",
            json!({"bucket": "_audit", "data": {"entry": {}}}),
        ),
        (
            "store.update",
            json!({"bucket": "_audit", "key": 1, "data": {"entry": {}}}),
        ),
        ("store.delete", json!({"bucket": "_audit", "key": 1})),
        ("store.clear", json!({"bucket": "_audit"})),
        ("store.all", json!({"bucket": "_audit"})),
        ("store.dropBucket", json!({"name": "_audit"})),
        (
            "store.updateBucket",
            json!({"name": "_audit", "updates": {"addFields": {"x": {"type": "string"}}}}),
        ),
        (
            "store.transaction",
            json!({"operations": [{"op": "delete", "bucket": "_audit", "key": 1}]}),
        ),
        (
            "store.defineQuery",
            json!({"name": "peek", "config": {"bucket": "_audit"}}),
        ),
    ];
    for (op, fields) in forbidden {
        let (code, message, _) = ws.fail(op, fields).await;
        assert_eq!(
            (code.as_str(), message.as_str()),
            (
                "FORBIDDEN",
                r#"Bucket "_audit" is reserved for the audit log"#
            ),
            "{op}"
        );
    }
    assert_eq!(
        server.store().bucket_len("_audit"),
        Some(server.audit_len())
    );
    let entries = entries(&mut ws, json!({"operation": "store.dropBucket"})).await;
    assert_eq!(entries[0]["result"], "error", "the attempt is audited");
}

#[tokio::test]
async fn an_existing_bucket_of_another_shape_is_not_taken_for_the_log() {
    let mut config = config(Some(AuditConfig {
        bucket: Some("users".into()),
        ..AuditConfig::default()
    }));
    config.rules.enabled = Some(false);
    let err = Server::start(config).await.err().expect("refused");
    assert_eq!(
        err.to_string(),
        "cannot define the audit bucket \"users\": Invalid definition: bucket \"users\" exists and is not an audit log (its key is not \"seq\")"
    );
}
