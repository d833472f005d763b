//! Built-in identity's authorization over a real WebSocket, on a server with identity alone
//! (no `auth` section: a user may do what its roles' rules, its ACL grants and its
//! ownership allow, nothing else): grants and revocations change store, query and procedure
//! access live, role rules apply from the moment a role is assigned, the creator of a
//! bucket, query or procedure owns it, ownership moves, and the rule engine never sees the
//! system buckets' changes; users, roles, grants and sessions survive a restart on durable
//! storage. No answer carries a password hash.

mod common;

use common::{Client, local_config};
use noex_server::{IdentitySection, Server, ServerConfig, ServerHandle};
use serde_json::{Value, json};

const SECRET: &str = "bootstrap-secret-0123456789";

fn config() -> ServerConfig {
    let mut config = local_config();
    config.identity = IdentitySection {
        enabled: true,
        admin_secret: Some(SECRET.into()),
        ..IdentitySection::default()
    };
    config
}

async fn start() -> ServerHandle {
    Server::start(config()).await.expect("server starts")
}

fn assert_no_hash(frame: &Value) {
    let text = frame.to_string();
    assert!(
        !text.contains("passwordHash") && !text.contains("$argon2"),
        "a frame carries a password hash: {text}"
    );
}

async fn ok(c: &mut Client, op: &str, fields: Value) -> Value {
    let frame = c.call(op, fields).await;
    assert_no_hash(&frame);
    c.pushes.iter().for_each(assert_no_hash);
    assert_eq!(frame["type"], "result", "{op} failed: {frame}");
    frame["data"].clone()
}

async fn fail(c: &mut Client, op: &str, fields: Value) -> (String, String) {
    let frame = c.call(op, fields).await;
    assert_no_hash(&frame);
    assert_eq!(frame["type"], "error", "{op} should fail: {frame}");
    (
        frame["code"].as_str().unwrap_or_default().to_owned(),
        frame["message"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn code(c: &mut Client, op: &str, fields: Value) -> String {
    fail(c, op, fields).await.0
}

async fn superadmin(server: &ServerHandle) -> Client {
    let (mut c, _) = Client::connect(server).await;
    ok(
        &mut c,
        "identity.loginWithSecret",
        json!({"secret": SECRET}),
    )
    .await;
    c
}

/// Creates `username` with `roles` and logs it in on a new connection.
async fn user(
    server: &ServerHandle,
    root: &mut Client,
    username: &str,
    roles: &[&str],
) -> (Client, String) {
    let created = ok(
        root,
        "identity.createUser",
        json!({"username": username, "password": "password-1"}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    for role in roles {
        ok(
            root,
            "identity.assignRole",
            json!({"userId": id, "roleName": role}),
        )
        .await;
    }
    let (mut c, _) = Client::connect(server).await;
    ok(
        &mut c,
        "identity.login",
        json!({"username": username, "password": "password-1"}),
    )
    .await;
    (c, id)
}

async fn define_bucket(c: &mut Client, name: &str) {
    ok(
        c,
        "store.defineBucket",
        json!({"name": name, "config": {"key": "id", "schema": {
            "id": {"type": "string", "generated": "uuid"}, "value": {"type": "string"}}}}),
    )
    .await;
}

fn grant(subject_type: &str, subject_id: &str, bucket: &str, ops: &[&str]) -> Value {
    json!({"subjectType": subject_type, "subjectId": subject_id, "resourceType": "bucket",
           "resourceName": bucket, "operations": ops})
}

#[tokio::test]
async fn grants_and_revocations_change_store_access_live() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    define_bucket(&mut root, "docs").await;
    let (mut bob, bob_id) = user(&server, &mut root, "bob", &[]).await;
    // No role, no grant: nothing.
    assert_eq!(
        code(&mut bob, "store.all", json!({"bucket": "docs"})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        ok(
            &mut root,
            "identity.grant",
            grant("user", &bob_id, "docs", &["read"])
        )
        .await,
        json!({"granted": true})
    );
    // Live: the same session reads now, but may not write.
    ok(&mut bob, "store.all", json!({"bucket": "docs"})).await;
    assert_eq!(
        code(
            &mut bob,
            "store.insert",
            json!({"bucket": "docs", "data": {"value": "x"}})
        )
        .await,
        "FORBIDDEN"
    );
    // A second grant merges.
    ok(
        &mut root,
        "identity.grant",
        grant("user", &bob_id, "docs", &["write"]),
    )
    .await;
    ok(
        &mut bob,
        "store.insert",
        json!({"bucket": "docs", "data": {"value": "x"}}),
    )
    .await;
    let acl = ok(
        &mut root,
        "identity.getAcl",
        json!({"resourceType": "bucket", "resourceName": "docs"}),
    )
    .await;
    let entries = acl["entries"].as_array().expect("entries");
    let owner = entries
        .iter()
        .find(|e| e["isOwner"] == true)
        .expect("owner entry");
    assert_eq!(owner["subjectName"], "__superadmin__");
    let bobs = entries
        .iter()
        .find(|e| e["subjectId"] == json!(bob_id))
        .expect("bob");
    assert_eq!(bobs["operations"], json!(["read", "write"]));
    assert_eq!(bobs["subjectName"], "bob");
    assert_eq!(bobs["isOwner"], false);
    // Inside a transaction, every entry needs its grant.
    define_bucket(&mut root, "secret").await;
    assert_eq!(
        code(
            &mut bob,
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "docs", "data": {"value": "y"}},
                {"op": "insert", "bucket": "secret", "data": {"value": "y"}}]})
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(
        ok(&mut bob, "store.count", json!({"bucket": "docs"})).await,
        1,
        "nothing written"
    );
    // Revoke write: read stays.
    assert_eq!(
        ok(
            &mut root,
            "identity.revoke",
            json!({"subjectType": "user", "subjectId": bob_id, "resourceType": "bucket",
                   "resourceName": "docs", "operations": ["write"]})
        )
        .await,
        json!({"revoked": true})
    );
    ok(&mut bob, "store.all", json!({"bucket": "docs"})).await;
    assert_eq!(
        code(
            &mut bob,
            "store.insert",
            json!({"bucket": "docs", "data": {"value": "z"}})
        )
        .await,
        "FORBIDDEN"
    );
    // Revoke all.
    ok(
        &mut root,
        "identity.revoke",
        json!({"subjectType": "user", "subjectId": bob_id, "resourceType": "bucket",
               "resourceName": "docs"}),
    )
    .await;
    assert_eq!(
        code(&mut bob, "store.all", json!({"bucket": "docs"})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        fail(
            &mut root,
            "identity.revoke",
            json!({"subjectType": "user", "subjectId": bob_id, "resourceType": "bucket",
                   "resourceName": "docs"})
        )
        .await,
        ("NOT_FOUND".to_owned(), "ACL entry not found".to_owned())
    );
}

#[tokio::test]
async fn bad_grants_are_refused_and_change_nothing() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    define_bucket(&mut root, "docs").await;
    let (mut alice, _) = user(&server, &mut root, "alice", &["writer"]).await;
    let (_, bob_id) = user(&server, &mut root, "bob", &[]).await;
    let cases = [
        (
            grant("user", &bob_id, "docs", &["read", "execute"]),
            "VALIDATION_ERROR",
        ),
        (grant("user", "nobody", "docs", &["read"]), "NOT_FOUND"),
        (grant("role", "no-role", "docs", &["read"]), "NOT_FOUND"),
        (
            grant("group", &bob_id, "docs", &["read"]),
            "VALIDATION_ERROR",
        ),
        (grant("user", &bob_id, "missing", &["read"]), "NOT_FOUND"),
        (grant("user", &bob_id, "docs", &[]), "VALIDATION_ERROR"),
    ];
    for (fields, expected) in cases {
        assert_eq!(
            code(&mut root, "identity.grant", fields.clone()).await,
            expected,
            "{fields}"
        );
    }
    let (c, m) = fail(
        &mut root,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": bob_id, "resourceType": "table",
               "resourceName": "docs", "operations": ["read"]}),
    )
    .await;
    assert_eq!(
        (c.as_str(), m.as_str()),
        (
            "VALIDATION_ERROR",
            r#"Invalid "resourceType": expected one of bucket, topic, procedure, query"#
        )
    );
    assert_eq!(
        fail(
            &mut root,
            "identity.grant",
            grant("user", &bob_id, "missing", &["read"])
        )
        .await
        .1,
        r#"Bucket "missing" not found"#
    );
    // A writer that neither owns nor administers the bucket may not grant.
    assert_eq!(
        code(
            &mut alice,
            "identity.grant",
            grant("user", &bob_id, "docs", &["read"])
        )
        .await,
        "FORBIDDEN"
    );
    let acl = ok(
        &mut root,
        "identity.getAcl",
        json!({"resourceType": "bucket", "resourceName": "docs"}),
    )
    .await;
    assert_eq!(
        acl["entries"].as_array().map(Vec::len),
        Some(1),
        "only the owner: {acl}"
    );
}

#[tokio::test]
async fn role_grants_and_role_rules_apply_to_the_roles_holders() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    define_bucket(&mut root, "docs").await;
    define_bucket(&mut root, "orders").await;
    let editor = ok(&mut root, "identity.createRole", json!({"name": "editor"})).await;
    let editor_id = editor["id"].as_str().expect("id").to_owned();
    ok(
        &mut root,
        "identity.grant",
        grant("role", &editor_id, "docs", &["read", "write"]),
    )
    .await;
    let (mut ed, ed_id) = user(&server, &mut root, "eddie", &["editor"]).await;
    ok(
        &mut ed,
        "store.insert",
        json!({"bucket": "docs", "data": {"value": "via role"}}),
    )
    .await;
    assert_eq!(
        code(&mut ed, "store.all", json!({"bucket": "orders"})).await,
        "FORBIDDEN"
    );
    // A role whose rules allow reading `orders`, assigned while ed is logged in.
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "order-reader", "permissions": [
            {"allow": ["store.all", "store.get"], "buckets": ["orders"]}]}),
    )
    .await;
    ok(
        &mut root,
        "identity.assignRole",
        json!({"userId": ed_id, "roleName": "order-reader"}),
    )
    .await;
    ok(&mut ed, "store.all", json!({"bucket": "orders"})).await;
    assert_eq!(
        code(
            &mut ed,
            "store.insert",
            json!({"bucket": "orders", "data": {"value": "x"}})
        )
        .await,
        "FORBIDDEN"
    );
    // The system roles' rules: a reader reads every bucket and writes none.
    let (mut rita, _) = user(&server, &mut root, "rita", &["reader"]).await;
    ok(&mut rita, "store.all", json!({"bucket": "orders"})).await;
    assert_eq!(
        code(
            &mut rita,
            "store.insert",
            json!({"bucket": "orders", "data": {"value": "x"}})
        )
        .await,
        "FORBIDDEN"
    );
    let access = ok(&mut ed, "identity.myAccess", json!({})).await;
    // The roles in `user`, where the original's client reads them, and at the top level.
    assert_eq!(
        access["user"],
        json!({"id": ed_id, "username": "eddie", "roles": ["editor", "order-reader"]})
    );
    assert_eq!(access["roles"], json!(["editor", "order-reader"]));
    assert_eq!(
        access["resources"],
        json!([{"resourceType": "bucket", "resourceName": "docs",
                "operations": ["read", "write"], "isOwner": false}])
    );
}

#[tokio::test]
async fn subscribing_to_a_query_needs_access_to_the_bucket_it_reads() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    define_bucket(&mut root, "docs").await;
    ok(
        &mut root,
        "store.defineQuery",
        json!({"name": "all-docs", "config": {"bucket": "docs"}}),
    )
    .await;
    let (mut bob, bob_id) = user(&server, &mut root, "bob", &[]).await;
    assert_eq!(
        code(&mut bob, "store.subscribe", json!({"query": "all-docs"})).await,
        "FORBIDDEN"
    );
    ok(
        &mut root,
        "identity.grant",
        grant("user", &bob_id, "docs", &["read"]),
    )
    .await;
    ok(&mut bob, "store.subscribe", json!({"query": "all-docs"})).await;
    // A grant of the query alone also lets it subscribe.
    let (mut carol, carol_id) = user(&server, &mut root, "carol", &[]).await;
    ok(
        &mut root,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": carol_id, "resourceType": "query",
               "resourceName": "all-docs", "operations": ["read"]}),
    )
    .await;
    ok(&mut carol, "store.subscribe", json!({"query": "all-docs"})).await;
    assert_eq!(
        code(&mut carol, "store.all", json!({"bucket": "docs"})).await,
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn procedures_are_called_with_a_grant() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    ok(
        &mut root,
        "procedures.register",
        json!({"procedure": {"name": "ping", "steps": [{"action": "return", "value": "pong"}]}}),
    )
    .await;
    let (mut bob, bob_id) = user(&server, &mut root, "bob", &[]).await;
    assert_eq!(
        code(&mut bob, "procedures.call", json!({"name": "ping"})).await,
        "FORBIDDEN"
    );
    ok(
        &mut root,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": bob_id, "resourceType": "procedure",
               "resourceName": "ping", "operations": ["write"]}),
    )
    .await;
    assert_eq!(
        ok(&mut bob, "procedures.call", json!({"name": "ping"})).await["result"],
        "pong"
    );
    // The superadmin registered it: it owns it.
    let owner = ok(
        &mut root,
        "identity.getOwner",
        json!({"resourceType": "procedure", "resourceName": "ping"}),
    )
    .await;
    assert_eq!(
        owner,
        json!({"owner": {"userId": "__superadmin__", "username": "__superadmin__",
            "resourceType": "procedure", "resourceName": "ping"}})
    );
}

#[tokio::test]
async fn the_creator_owns_a_bucket_and_may_hand_it_over() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    let (mut alice, alice_id) = user(&server, &mut root, "alice", &["admin"]).await;
    let (mut bob, bob_id) = user(&server, &mut root, "bob", &[]).await;
    define_bucket(&mut alice, "alice-data").await;
    assert_eq!(
        ok(
            &mut root,
            "identity.getOwner",
            json!({"resourceType": "bucket", "resourceName": "alice-data"})
        )
        .await,
        json!({"owner": {"userId": alice_id, "username": "alice",
            "resourceType": "bucket", "resourceName": "alice-data"}})
    );
    let mine = ok(&mut alice, "identity.myAccess", json!({})).await;
    assert_eq!(
        mine["resources"],
        json!([{"resourceType": "bucket", "resourceName": "alice-data",
                "operations": ["admin", "read", "write"], "isOwner": true}])
    );
    // The owner grants; bob may not transfer what he does not own.
    ok(
        &mut alice,
        "identity.grant",
        grant("user", &bob_id, "alice-data", &["read"]),
    )
    .await;
    ok(&mut bob, "store.all", json!({"bucket": "alice-data"})).await;
    assert_eq!(
        fail(
            &mut bob,
            "identity.transferOwner",
            json!({"resourceType": "bucket", "resourceName": "alice-data", "newOwnerId": bob_id})
        )
        .await,
        (
            "FORBIDDEN".to_owned(),
            "Only the owner or a superadmin can transfer ownership".to_owned()
        )
    );
    assert_eq!(
        code(
            &mut alice,
            "identity.transferOwner",
            json!({"resourceType": "bucket", "resourceName": "alice-data", "newOwnerId": "nobody"})
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        ok(
            &mut alice,
            "identity.transferOwner",
            json!({"resourceType": "bucket", "resourceName": "alice-data", "newOwnerId": bob_id})
        )
        .await,
        json!({"transferred": true})
    );
    // Bob owns it now: he may write and drop it.
    ok(
        &mut bob,
        "store.insert",
        json!({"bucket": "alice-data", "data": {"value": "mine"}}),
    )
    .await;
    ok(&mut bob, "store.dropBucket", json!({"name": "alice-data"})).await;
    // Dropped: no owner, no grants left.
    assert_eq!(
        ok(
            &mut root,
            "identity.getOwner",
            json!({"resourceType": "bucket", "resourceName": "alice-data"})
        )
        .await,
        json!({"owner": null})
    );
    assert_eq!(
        ok(
            &mut root,
            "identity.getAcl",
            json!({"resourceType": "bucket", "resourceName": "alice-data"})
        )
        .await,
        json!({"entries": []})
    );
    // Deleting a user forgets what it owned.
    define_bucket(&mut alice, "alice-2").await;
    ok(
        &mut root,
        "identity.deleteUser",
        json!({"userId": alice_id}),
    )
    .await;
    assert_eq!(
        ok(
            &mut root,
            "identity.getOwner",
            json!({"resourceType": "bucket", "resourceName": "alice-2"})
        )
        .await,
        json!({"owner": null})
    );
}

#[tokio::test]
async fn the_rule_engine_never_sees_the_system_buckets() {
    let mut config = config();
    config.rules.enabled = Some(true);
    config.rules.store_bridge = true;
    let server = Server::start(config).await.expect("server starts");
    let mut root = superadmin(&server).await;
    ok(
        &mut root,
        "rules.subscribe",
        json!({"pattern": "bucket.*.*"}),
    )
    .await;
    ok(
        &mut root,
        "identity.createUser",
        json!({"username": "alice", "password": "password-1"}),
    )
    .await;
    define_bucket(&mut root, "visible").await;
    ok(
        &mut root,
        "store.insert",
        json!({"bucket": "visible", "data": {"value": "x"}}),
    )
    .await;
    // The first push is the visible bucket's insert: no `_users` (nor `_resource_owners`)
    // change came before it.
    let push = root.next_push().await;
    assert_no_hash(&push);
    assert_eq!(push["data"]["topic"], "bucket.visible.inserted", "{push}");
}

#[tokio::test]
async fn users_roles_grants_and_sessions_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("noex-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let durable = || {
        let mut config = config();
        config.persistence.engine = noex_server::PersistenceEngine::Redb;
        config.persistence.data_dir = Some(dir.clone());
        config
    };
    let first = Server::start(durable()).await.expect("starts");
    let mut root = superadmin(&first).await;
    define_bucket(&mut root, "docs").await;
    ok(&mut root, "identity.createRole", json!({"name": "editor"})).await;
    let (mut bob, bob_id) = user(&first, &mut root, "bob", &["editor"]).await;
    ok(
        &mut root,
        "identity.grant",
        grant("user", &bob_id, "docs", &["read"]),
    )
    .await;
    let token = ok(&mut bob, "identity.refreshSession", json!({})).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    drop((root, bob));
    first.stop(std::time::Duration::ZERO).await;
    first.store().close_persistence().expect("closes");
    drop(first);

    let second = Server::start(durable()).await.expect("restarts");
    // The session token still logs in; the role, the grant and the ownership are there.
    let (mut bob, _) = Client::connect(&second).await;
    let session = ok(&mut bob, "auth.login", json!({"token": token})).await;
    assert_eq!(session["roles"], json!(["editor"]));
    ok(&mut bob, "store.all", json!({"bucket": "docs"})).await;
    let (mut again, _) = Client::connect(&second).await;
    ok(
        &mut again,
        "identity.login",
        json!({"username": "bob", "password": "password-1"}),
    )
    .await;
    let mut root = superadmin(&second).await;
    let roles = ok(&mut root, "identity.listRoles", json!({})).await;
    assert_eq!(
        roles["roles"].as_array().map(Vec::len),
        Some(5),
        "no role twice: {roles}"
    );
    assert_eq!(
        ok(
            &mut root,
            "identity.getOwner",
            json!({"resourceType": "bucket", "resourceName": "docs"})
        )
        .await["owner"]["userId"],
        "__superadmin__"
    );
    drop((bob, again, root));
    second.stop(std::time::Duration::ZERO).await;
    second.store().close_persistence().expect("closes");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session from another source whose user id is an identity user's — here the virtual
/// superadmin's — gets only what its own roles give: the identity's ownership, grants and
/// role rules apply to the sessions the identity issued (before, a static token or a JWT
/// naming `__superadmin__` owned every bucket the superadmin had created).
#[tokio::test]
async fn a_token_from_another_source_naming_an_identity_user_gets_no_identity_rights() {
    let mut config = config();
    config.auth = serde_json::from_value(json!({"tokens": {
        "fake-super": {"userId": "__superadmin__", "roles": ["reader"]}
    }}))
    .expect("auth section");
    let server = Server::start(config).await.expect("server starts");
    // The real superadmin creates (so owns) a bucket.
    let mut root = superadmin(&server).await;
    ok(
        &mut root,
        "store.defineBucket",
        json!({"name": "vault", "config": {"key": "id", "schema": {"id": {"type": "string"}}}}),
    )
    .await;
    ok(
        &mut root,
        "store.insert",
        json!({"bucket": "vault", "data": {"id": "gold"}}),
    )
    .await;
    let (mut c, _) = Client::connect(&server).await;
    ok(&mut c, "auth.login", json!({"token": "fake-super"})).await;
    for (op, fields) in [
        (
            "store.insert",
            json!({"bucket": "vault", "data": {"id": "forged"}}),
        ),
        ("store.dropBucket", json!({"name": "vault"})),
    ] {
        assert_eq!(code(&mut c, op, fields).await, "FORBIDDEN", "{op}");
    }
    assert_eq!(
        ok(&mut root, "store.count", json!({"bucket": "vault"})).await,
        json!(1)
    );
}

/// Red team round 10: a user allowed only `store.defineQuery` owned the query it defined
/// over a bucket it could not read, and subscribed to its records through that ownership.
/// A query's records need a right on its bucket (or a grant of the query).
#[tokio::test]
async fn owning_a_query_over_a_bucket_gives_no_right_to_read_the_bucket() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    ok(
        &mut root,
        "store.defineBucket",
        json!({"name": "secret", "config": {"key": "id", "schema": {"id": {"type": "string"}, "pay": {"type": "number"}}}}),
    )
    .await;
    ok(
        &mut root,
        "store.insert",
        json!({"bucket": "secret", "data": {"id": "ceo", "pay": 1000000}}),
    )
    .await;
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "querier", "permissions": [
            {"allow": ["store.defineQuery"], "buckets": ["*"]}]}),
    )
    .await;
    let (mut eve, _) = user(&server, &mut root, "eve", &["querier"]).await;
    assert_eq!(
        code(
            &mut eve,
            "store.get",
            json!({"bucket": "secret", "key": "ceo"})
        )
        .await,
        "FORBIDDEN"
    );
    // Defining it may or may not be refused; subscribing to it must be.
    let _ = eve
        .call(
            "store.defineQuery",
            json!({"name": "pq", "config": {"bucket": "secret"}}),
        )
        .await;
    let frame = eve.call("store.subscribe", json!({"query": "pq"})).await;
    assert_eq!(
        frame["type"], "error",
        "eve read the secret bucket: {frame}"
    );
    assert!(
        !frame.to_string().contains("1000000"),
        "eve read the secret bucket: {frame}"
    );
}

/// Red team round 11: the owner of a query over a bucket it cannot read granted the query to
/// itself (`identity.grant` with `resourceType: "query"`) and then subscribing streamed the
/// bucket's records; it could also hand them to a user without any role. A query grant
/// needs read access to the query's bucket (or an administrator).
#[tokio::test]
async fn only_someone_who_may_read_its_bucket_grants_a_query() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    for bucket in ["payroll", "public"] {
        ok(
            &mut root,
            "store.defineBucket",
            json!({"name": bucket, "config": {"key": "id", "schema": {"id": {"type": "string"}, "pay": {"type": "number"}}}}),
        )
        .await;
        ok(
            &mut root,
            "store.insert",
            json!({"bucket": bucket, "data": {"id": "ceo", "pay": 1000000}}),
        )
        .await;
    }
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "dq", "permissions": [{"allow": ["store.defineQuery"], "buckets": ["*"]}]}),
    )
    .await;
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "public-reader", "permissions": [
            {"allow": ["store.defineQuery"], "buckets": ["*"]},
            {"allow": ["store.all", "store.get", "store.where"], "buckets": ["public"]}]}),
    )
    .await;
    let (mut eve, eve_id) = user(&server, &mut root, "eve", &["dq"]).await;
    let (mut mal, mal_id) = user(&server, &mut root, "mal", &[]).await;
    ok(
        &mut eve,
        "store.defineQuery",
        json!({"name": "pq", "config": {"bucket": "payroll", "filter": {}}}),
    )
    .await;
    assert_eq!(
        code(&mut eve, "store.subscribe", json!({"query": "pq"})).await,
        "FORBIDDEN"
    );
    for subject in [&eve_id, &mal_id] {
        let frame = eve
            .call(
                "identity.grant",
                json!({"subjectType": "user", "subjectId": subject, "resourceType": "query",
                    "resourceName": "pq", "operations": ["read"]}),
            )
            .await;
        assert_eq!(frame["code"], "FORBIDDEN", "{frame}");
        assert_eq!(
            frame["message"],
            "Granting query \"pq\" needs read access to its bucket \"payroll\""
        );
    }
    for c in [&mut eve, &mut mal] {
        let frame = c.call("store.subscribe", json!({"query": "pq"})).await;
        assert_eq!(frame["type"], "error", "payroll was read: {frame}");
        assert!(!frame.to_string().contains("1000000"), "{frame}");
    }
    // The owner of a query over a bucket it may read grants it; the grantee reads through it.
    let (mut pat, _) = user(&server, &mut root, "pat", &["public-reader"]).await;
    ok(
        &mut pat,
        "store.defineQuery",
        json!({"name": "pubq", "config": {"bucket": "public", "filter": {}}}),
    )
    .await;
    ok(
        &mut pat,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": mal_id, "resourceType": "query",
            "resourceName": "pubq", "operations": ["read"]}),
    )
    .await;
    // Grants are live: mal's open connection reads through it at once.
    let frame = mal.call("store.subscribe", json!({"query": "pubq"})).await;
    assert_eq!(frame["type"], "result", "{frame}");
    // An administrator may grant the payroll query.
    ok(
        &mut root,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": mal_id, "resourceType": "query",
            "resourceName": "pq", "operations": ["read"]}),
    )
    .await;
}

/// Red team round 12: a query grant outlived its granter's access to the bucket. eve (who
/// may only define queries) was given read on `payroll`, granted her query over it to
/// herself, lost the read grant, and still streamed payroll through the query; the same
/// with a role rule instead of a grant. A query grant counts only while its granter may
/// read the bucket.
#[tokio::test]
async fn a_query_grant_ends_when_its_granter_loses_the_bucket() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    ok(
        &mut root,
        "store.defineBucket",
        json!({"name": "payroll", "config": {"key": "id", "schema": {"id": {"type": "string"}, "pay": {"type": "number"}}}}),
    )
    .await;
    ok(
        &mut root,
        "store.insert",
        json!({"bucket": "payroll", "data": {"id": "ceo", "pay": 1000000}}),
    )
    .await;
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "dq", "permissions": [{"allow": ["store.defineQuery"], "buckets": ["*"]}]}),
    )
    .await;
    let reader = ok(
        &mut root,
        "identity.createRole",
        json!({"name": "payroll-reader", "permissions": [{"allow": ["store.all", "store.get"], "buckets": ["payroll"]}]}),
    )
    .await;
    let (mut eve, eve_id) = user(&server, &mut root, "eve", &["dq"]).await;
    let (mut mal, mal_id) = user(&server, &mut root, "mal", &[]).await;
    ok(
        &mut root,
        "identity.grant",
        grant("user", &eve_id, "payroll", &["read"]),
    )
    .await;
    ok(
        &mut eve,
        "store.defineQuery",
        json!({"name": "pq", "config": {"bucket": "payroll", "filter": {}}}),
    )
    .await;
    ok(
        &mut eve,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": eve_id, "resourceType": "query",
            "resourceName": "pq", "operations": ["read"]}),
    )
    .await;
    let sub = ok(&mut eve, "store.subscribe", json!({"query": "pq"})).await;
    ok(
        &mut root,
        "identity.revoke",
        json!({"subjectType": "user", "subjectId": eve_id, "resourceType": "bucket", "resourceName": "payroll"}),
    )
    .await;
    // Her live subscription ends (live_subscriptions_end_when_the_rights_behind_them_are_revoked).
    let sub_id = sub["subscriptionId"].as_str().expect("id");
    ended_notice(&mut eve, sub_id).await;
    let frame = eve.call("store.subscribe", json!({"query": "pq"})).await;
    assert_eq!(
        frame["code"], "FORBIDDEN",
        "eve still reads payroll: {frame}"
    );

    // The same with a role rule: eve holds payroll-reader, shares pq with mal, loses it.
    ok(
        &mut root,
        "identity.assignRole",
        json!({"userId": eve_id, "roleName": "payroll-reader"}),
    )
    .await;
    ok(
        &mut eve,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": mal_id, "resourceType": "query",
            "resourceName": "pq", "operations": ["read"]}),
    )
    .await;
    let sub = ok(&mut mal, "store.subscribe", json!({"query": "pq"})).await;
    ok(
        &mut root,
        "identity.removeRole",
        json!({"userId": eve_id, "roleName": "payroll-reader"}),
    )
    .await;
    let sub_id = sub["subscriptionId"].as_str().expect("id");
    ended_notice(&mut mal, sub_id).await;
    let frame = mal.call("store.subscribe", json!({"query": "pq"})).await;
    assert_eq!(
        frame["code"], "FORBIDDEN",
        "mal still reads payroll: {frame}"
    );
    assert!(reader["id"].is_string());
}

/// Asserts nothing was pushed to `c` (after the server's `settle()`: a push due by then is
/// queued before the answer to this round trip).
async fn assert_no_push(c: &mut Client) {
    ok(c, "identity.whoami", json!({})).await;
    assert!(c.pushes.is_empty(), "unexpected pushes: {:?}", c.pushes);
}

/// Reads frames until the error notice (id 0) that ends `subscription`; pushes before it
/// are skipped.
async fn ended_notice(c: &mut Client, subscription: &str) -> Value {
    loop {
        let frame = match c.pushes.pop_front() {
            Some(push) => push,
            None => c.recv().await,
        };
        if frame["type"] == "push" {
            continue;
        }
        assert_eq!(frame["id"], 0, "not a notice: {frame}");
        assert_eq!(frame["details"]["subscriptionId"], subscription, "{frame}");
        return frame;
    }
}

#[tokio::test]
async fn live_subscriptions_end_when_the_rights_behind_them_are_revoked() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    ok(
        &mut root,
        "store.defineBucket",
        json!({"name": "payroll", "config": {"key": "id", "schema": {"id": {"type": "string"}, "pay": {"type": "number"}}}}),
    )
    .await;
    ok(
        &mut root,
        "store.insert",
        json!({"bucket": "payroll", "data": {"id": "ceo", "pay": 1000000}}),
    )
    .await;
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "dq", "permissions": [{"allow": ["store.defineQuery"], "buckets": ["*"]}]}),
    )
    .await;
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "payroll-reader", "permissions": [{"allow": ["store.all", "store.get"], "buckets": ["payroll"]}]}),
    )
    .await;
    let (mut eve, eve_id) = user(&server, &mut root, "eve", &["dq"]).await;
    let (mut mal, mal_id) = user(&server, &mut root, "mal", &[]).await;
    ok(
        &mut root,
        "identity.grant",
        grant("user", &eve_id, "payroll", &["read"]),
    )
    .await;
    ok(
        &mut eve,
        "store.defineQuery",
        json!({"name": "pq", "config": {"bucket": "payroll", "filter": {}}}),
    )
    .await;

    // A grant on the bucket: revoking it ends eve's live subscription, with a notice.
    let sub = ok(&mut eve, "store.subscribe", json!({"query": "pq"})).await;
    let sub_id = sub["subscriptionId"].as_str().expect("id").to_owned();
    ok(
        &mut root,
        "identity.revoke",
        json!({"subjectType": "user", "subjectId": eve_id, "resourceType": "bucket", "resourceName": "payroll"}),
    )
    .await;
    let notice = ended_notice(&mut eve, &sub_id).await;
    assert_eq!(notice["code"], "FORBIDDEN", "{notice}");
    ok(
        &mut root,
        "store.update",
        json!({"bucket": "payroll", "key": "ceo", "data": {"pay": 4321}}),
    )
    .await;
    server.store().settle().await;
    assert_no_push(&mut eve).await;

    // A query grant whose granter loses the bucket: the grantee's live subscription ends.
    ok(
        &mut root,
        "identity.assignRole",
        json!({"userId": eve_id, "roleName": "payroll-reader"}),
    )
    .await;
    ok(
        &mut eve,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": mal_id, "resourceType": "query",
            "resourceName": "pq", "operations": ["read"]}),
    )
    .await;
    let sub = ok(&mut mal, "store.subscribe", json!({"query": "pq"})).await;
    let mal_sub = sub["subscriptionId"].as_str().expect("id").to_owned();
    ok(
        &mut root,
        "identity.removeRole",
        json!({"userId": eve_id, "roleName": "payroll-reader"}),
    )
    .await;
    let notice = ended_notice(&mut mal, &mal_sub).await;
    assert_eq!(notice["code"], "FORBIDDEN", "{notice}");
    ok(
        &mut root,
        "store.update",
        json!({"bucket": "payroll", "key": "ceo", "data": {"pay": 1234}}),
    )
    .await;
    server.store().settle().await;
    assert_no_push(&mut mal).await;

    // A role whose rule is narrowed: its holder's live subscription ends.
    let reader_role = ok(
        &mut root,
        "identity.createRole",
        json!({"name": "payroll-viewer", "permissions": [{"allow": ["store.subscribe", "store.all"], "buckets": ["payroll"]}]}),
    )
    .await;
    let (mut ann, _) = user(&server, &mut root, "ann", &["payroll-viewer"]).await;
    let sub = ok(&mut ann, "store.subscribe", json!({"query": "pq"})).await;
    let ann_sub = sub["subscriptionId"].as_str().expect("id").to_owned();
    ok(
        &mut root,
        "identity.updateRole",
        json!({"roleId": reader_role["id"], "permissions": [{"allow": ["store.all"], "buckets": ["other"]}]}),
    )
    .await;
    let notice = ended_notice(&mut ann, &ann_sub).await;
    assert_eq!(notice["code"], "FORBIDDEN", "{notice}");

    // A right that stays keeps its subscription: an unrelated grant changes nothing.
    // (Removing eve's role above ended her connections.)
    ok(
        &mut root,
        "identity.grant",
        grant("user", &eve_id, "payroll", &["read"]),
    )
    .await;
    let (mut eve, _) = Client::connect(&server).await;
    ok(
        &mut eve,
        "identity.login",
        json!({"username": "eve", "password": "password-1"}),
    )
    .await;
    let sub = ok(&mut eve, "store.subscribe", json!({"query": "pq"})).await;
    assert!(sub["subscriptionId"].is_string());
    ok(
        &mut root,
        "identity.grant",
        grant("user", &mal_id, "payroll", &["read"]),
    )
    .await;
    ok(
        &mut root,
        "store.update",
        json!({"bucket": "payroll", "key": "ceo", "data": {"pay": 7}}),
    )
    .await;
    let push = eve.next_push().await;
    assert_eq!(push["data"][0]["pay"], 7, "{push}");
}

/// Red team round 13: a disabled granter's query grants kept streaming. Disabling the
/// granter ends the grantee's live subscription; enabling it again restores the grant.
#[tokio::test]
async fn a_disabled_granters_query_grants_stop_counting() {
    let server = start().await;
    let mut root = superadmin(&server).await;
    ok(
        &mut root,
        "store.defineBucket",
        json!({"name": "pay", "config": {"key": "id", "schema": {"id": {"type": "string"}, "pay": {"type": "number"}}}}),
    )
    .await;
    ok(
        &mut root,
        "identity.createRole",
        json!({"name": "dq", "permissions": [{"allow": ["store.defineQuery"], "buckets": ["*"]}]}),
    )
    .await;
    let (mut eve, eve_id) = user(&server, &mut root, "eve7", &["dq"]).await;
    let (mut mal, mal_id) = user(&server, &mut root, "mal7", &[]).await;
    ok(
        &mut root,
        "identity.grant",
        grant("user", &eve_id, "pay", &["read"]),
    )
    .await;
    ok(
        &mut eve,
        "store.defineQuery",
        json!({"name": "geve7", "config": {"bucket": "pay", "filter": {}}}),
    )
    .await;
    ok(
        &mut eve,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": mal_id, "resourceType": "query",
            "resourceName": "geve7", "operations": ["read"]}),
    )
    .await;
    let sub = ok(&mut mal, "store.subscribe", json!({"query": "geve7"})).await;
    let sub_id = sub["subscriptionId"].as_str().expect("id").to_owned();
    ok(&mut root, "identity.disableUser", json!({"userId": eve_id})).await;
    let notice = ended_notice(&mut mal, &sub_id).await;
    assert_eq!(notice["code"], "FORBIDDEN", "{notice}");
    assert_eq!(
        code(&mut mal, "store.subscribe", json!({"query": "geve7"})).await,
        "FORBIDDEN"
    );
    ok(&mut root, "identity.enableUser", json!({"userId": eve_id})).await;
    ok(&mut mal, "store.subscribe", json!({"query": "geve7"})).await;
}
