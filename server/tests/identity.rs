//! Built-in identity (`identity.*`) over a real WebSocket: bootstrap, users, passwords,
//! roles, sessions (expiry on an injected clock, refresh, logout, revocation of disabled
//! and deleted users), the login rate limiter, the system buckets' guard, and the effect of
//! roles on store access. Every answer in this file goes through [`ok`] or [`fail`], which
//! assert that no frame carries a password hash.

mod common;

use std::sync::Arc;

use common::{Client, local_config};
use noex_server::{
    AuthConfig, Clock, DefaultPolicy, IdentitySection, ManualClock, Patterns, PermissionRule,
    PermissionsConfig, Server, ServerConfig, ServerHandle,
};
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000_000;
const SECRET: &str = "bootstrap-secret-0123456789";
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

fn config() -> ServerConfig {
    let mut config = local_config();
    config.identity = IdentitySection {
        enabled: true,
        admin_secret: Some(SECRET.into()),
        ..IdentitySection::default()
    };
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

/// Fails the test when a frame carries a password hash.
fn assert_no_hash(frame: &Value) {
    let text = frame.to_string();
    assert!(
        !text.contains("passwordHash") && !text.contains("$argon2"),
        "a frame carries a password hash: {text}"
    );
}

/// The call must succeed; returns `data`. Scans the answer and any pushes read with it.
async fn ok(c: &mut Client, op: &str, fields: Value) -> Value {
    let frame = c.call(op, fields).await;
    assert_no_hash(&frame);
    c.pushes.iter().for_each(assert_no_hash);
    assert_eq!(frame["type"], "result", "{op} failed: {frame}");
    frame["data"].clone()
}

/// The call must fail; returns `(code, message)`.
async fn fail(c: &mut Client, op: &str, fields: Value) -> (String, String) {
    let frame = c.call(op, fields).await;
    assert_no_hash(&frame);
    assert_eq!(frame["type"], "error", "{op} should fail: {frame}");
    (
        frame["code"].as_str().unwrap_or_default().to_owned(),
        frame["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn err(code: &str, message: &str) -> (String, String) {
    (code.to_owned(), message.to_owned())
}

/// A connection logged in as the bootstrap superadmin.
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

/// A connection logged in as `username`.
async fn login(server: &ServerHandle, username: &str, password: &str) -> (Client, Value) {
    let (mut c, _) = Client::connect(server).await;
    let answer = ok(
        &mut c,
        "identity.login",
        json!({"username": username, "password": password}),
    )
    .await;
    (c, answer)
}

/// Creates a user with `roles`; returns its id.
async fn user(admin: &mut Client, username: &str, roles: &[&str]) -> String {
    let created = ok(
        admin,
        "identity.createUser",
        json!({"username": username, "password": "password-1"}),
    )
    .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    for role in roles {
        ok(
            admin,
            "identity.assignRole",
            json!({"userId": id, "roleName": role}),
        )
        .await;
    }
    id
}

#[tokio::test]
async fn bootstrap_with_the_admin_secret() {
    let (server, _) = start(config()).await;
    let (mut c, _) = Client::connect(&server).await;
    // Before login nothing else is served.
    assert_eq!(
        fail(&mut c, "identity.listUsers", json!({})).await,
        err("UNAUTHORIZED", "Authentication required")
    );
    assert_eq!(
        fail(
            &mut c,
            "identity.loginWithSecret",
            json!({"secret": "wrong"})
        )
        .await,
        err("UNAUTHORIZED", "Invalid secret")
    );
    assert_eq!(
        fail(&mut c, "identity.loginWithSecret", json!({})).await,
        err(
            "VALIDATION_ERROR",
            r#"Missing or invalid "secret": expected non-empty string"#
        )
    );
    let login = ok(
        &mut c,
        "identity.loginWithSecret",
        json!({"secret": SECRET}),
    )
    .await;
    assert_eq!(login["expiresAt"], json!(T0 + DAY_MS));
    assert_eq!(
        login["user"],
        json!({"id": "__superadmin__", "username": "__superadmin__", "roles": ["superadmin"]})
    );
    let token = login["token"].as_str().expect("a token");
    assert_eq!(token.len(), 64, "256 random bits, hex");
    assert_eq!(
        ok(&mut c, "identity.whoami", json!({})).await,
        json!({"authenticated": true, "userId": "__superadmin__", "roles": ["superadmin"],
               "expiresAt": T0 + DAY_MS})
    );
    // The four system roles exist.
    let roles = ok(&mut c, "identity.listRoles", json!({})).await;
    let names: Vec<&str> = roles["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["superadmin", "admin", "writer", "reader"]);
    assert!(
        roles["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .all(|r| r["system"] == true)
    );
    // The superadmin's roles.
    let mine = ok(
        &mut c,
        "identity.getUserRoles",
        json!({"userId": "__superadmin__"}),
    )
    .await;
    assert_eq!(mine["roles"][0]["name"], "superadmin");
    // The superadmin cannot be deleted or disabled.
    assert_eq!(
        fail(
            &mut c,
            "identity.deleteUser",
            json!({"userId": "__superadmin__"})
        )
        .await,
        err("FORBIDDEN", "Cannot delete virtual superadmin")
    );
    assert_eq!(
        fail(
            &mut c,
            "identity.disableUser",
            json!({"userId": "__superadmin__"})
        )
        .await,
        err("FORBIDDEN", "Cannot disable virtual superadmin")
    );
    // Logout ends the session; whoami says so.
    assert_eq!(
        ok(&mut c, "identity.logout", json!({})).await,
        json!({"loggedOut": true})
    );
    assert_eq!(
        ok(&mut c, "identity.whoami", json!({})).await,
        json!({"authenticated": false})
    );
}

#[tokio::test]
async fn users_are_created_read_updated_listed_and_deleted() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    let created = ok(
        &mut admin,
        "identity.createUser",
        json!({"username": "alice", "password": "correct horse", "displayName": "Alice",
               "email": "alice@example.com", "metadata": {"team": "blue"}}),
    )
    .await;
    let alice = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["username"], "alice");
    assert_eq!(created["displayName"], "Alice");
    assert_eq!(created["email"], "alice@example.com");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["metadata"], json!({"team": "blue"}));
    assert_eq!(created["_createdAt"], json!(T0));
    assert_eq!(
        ok(&mut admin, "identity.getUser", json!({"userId": alice})).await,
        created
    );
    // Duplicates, limits and bad ids: each a clear error that changes nothing.
    assert_eq!(
        fail(
            &mut admin,
            "identity.createUser",
            json!({"username": "alice", "password": "password-2"})
        )
        .await,
        err("ALREADY_EXISTS", r#"User "alice" already exists"#)
    );
    for username in ["ab".to_owned(), "x".repeat(65)] {
        assert_eq!(
            fail(
                &mut admin,
                "identity.createUser",
                json!({"username": username, "password": "password-2"})
            )
            .await,
            err(
                "VALIDATION_ERROR",
                "Username must be between 3 and 64 characters"
            )
        );
    }
    assert_eq!(
        fail(
            &mut admin,
            "identity.createUser",
            json!({"username": "bob", "password": "short"})
        )
        .await,
        err("VALIDATION_ERROR", "Password must be at least 8 characters")
    );
    assert_eq!(
        fail(
            &mut admin,
            "identity.createUser",
            json!({"username": "bob", "password": "p".repeat(257)})
        )
        .await,
        err(
            "VALIDATION_ERROR",
            "Password must be at most 256 characters"
        )
    );
    assert_eq!(
        fail(&mut admin, "identity.getUser", json!({"userId": "nobody"})).await,
        err("NOT_FOUND", "User not found")
    );
    assert_eq!(
        fail(
            &mut admin,
            "identity.deleteUser",
            json!({"userId": "nobody"})
        )
        .await,
        err("NOT_FOUND", "User not found")
    );
    let list = ok(&mut admin, "identity.listUsers", json!({})).await;
    assert_eq!(
        list["total"], 1,
        "the refused users were not created: {list}"
    );
    // Update: profile fields only.
    let updated = ok(
        &mut admin,
        "identity.updateUser",
        json!({"userId": alice, "displayName": "Alice A."}),
    )
    .await;
    assert_eq!(updated["displayName"], "Alice A.");
    assert_eq!(updated["email"], "alice@example.com");
    // Pagination.
    for name in ["carol", "dave", "erin", "frank"] {
        user(&mut admin, name, &[]).await;
    }
    let page = ok(
        &mut admin,
        "identity.listUsers",
        json!({"page": 2, "pageSize": 2}),
    )
    .await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["page"], 2);
    assert_eq!(page["pageSize"], 2);
    let names: Vec<&str> = page["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["dave", "erin"]);
    let capped = ok(&mut admin, "identity.listUsers", json!({"pageSize": 1000})).await;
    assert_eq!(capped["pageSize"], 200);
    assert_eq!(
        fail(&mut admin, "identity.listUsers", json!({"page": 0})).await,
        err(
            "VALIDATION_ERROR",
            r#"Invalid "page": expected positive integer"#
        )
    );
    // Delete.
    assert_eq!(
        ok(&mut admin, "identity.deleteUser", json!({"userId": alice})).await,
        json!({"deleted": true})
    );
    assert_eq!(
        fail(&mut admin, "identity.getUser", json!({"userId": alice})).await,
        err("NOT_FOUND", "User not found")
    );
    assert_eq!(
        ok(&mut admin, "identity.listUsers", json!({})).await["total"],
        4
    );
}

#[tokio::test]
async fn login_answers_the_same_for_an_unknown_user_and_a_wrong_password() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    let id = user(&mut admin, "alice", &["writer"]).await;
    let (mut c, _) = Client::connect(&server).await;
    let wrong = fail(
        &mut c,
        "identity.login",
        json!({"username": "alice", "password": "not-her-password"}),
    )
    .await;
    let unknown = fail(
        &mut c,
        "identity.login",
        json!({"username": "mallory", "password": "password-1"}),
    )
    .await;
    assert_eq!(wrong, err("UNAUTHORIZED", "Invalid credentials"));
    assert_eq!(unknown, wrong);
    let (mut alice, session) = login(&server, "alice", "password-1").await;
    assert_eq!(
        session["user"],
        json!({"id": id, "username": "alice", "roles": ["writer"]})
    );
    assert_eq!(
        ok(&mut alice, "identity.whoami", json!({})).await["userId"],
        json!(id)
    );
    // A non-admin may not administer users, but may update itself.
    assert_eq!(
        fail(&mut alice, "identity.listUsers", json!({})).await,
        err("FORBIDDEN", "Admin role required")
    );
    assert_eq!(
        fail(&mut alice, "identity.createRole", json!({"name": "x"})).await,
        err("FORBIDDEN", "Superadmin role required")
    );
    ok(
        &mut alice,
        "identity.updateUser",
        json!({"userId": id, "displayName": "Me"}),
    )
    .await;
    let other = user(&mut admin, "bob", &[]).await;
    assert_eq!(
        fail(
            &mut alice,
            "identity.updateUser",
            json!({"userId": other, "displayName": "Not me"})
        )
        .await,
        err("FORBIDDEN", "Admin role required")
    );
    // A disabled user cannot log in; enabled again, it can at once.
    ok(&mut admin, "identity.disableUser", json!({"userId": id})).await;
    let (mut c2, _) = Client::connect(&server).await;
    assert_eq!(
        fail(
            &mut c2,
            "identity.login",
            json!({"username": "alice", "password": "password-1"})
        )
        .await,
        err("UNAUTHORIZED", "Account disabled")
    );
    let enabled = ok(&mut admin, "identity.enableUser", json!({"userId": id})).await;
    assert_eq!(enabled["enabled"], true);
    login(&server, "alice", "password-1").await;
}

#[tokio::test]
async fn a_session_token_logs_in_on_another_connection_until_logout() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    user(&mut admin, "alice", &["reader"]).await;
    let (mut alice, session) = login(&server, "alice", "password-1").await;
    let token = session["token"].as_str().expect("token").to_owned();
    let (mut other, _) = Client::connect(&server).await;
    let session = ok(&mut other, "auth.login", json!({"token": token})).await;
    assert_eq!(session["roles"], json!(["reader"]));
    assert_eq!(session["expiresAt"], json!(T0 + DAY_MS));
    // A connection logged in with the token through auth.login may refresh it: the
    // refreshed token works, the old one no longer.
    let via_auth = ok(&mut other, "identity.refreshSession", json!({})).await;
    let via_auth_token = via_auth["token"].as_str().expect("token").to_owned();
    let (mut check, _) = Client::connect(&server).await;
    assert_eq!(
        fail(&mut check, "auth.login", json!({"token": token})).await,
        err("UNAUTHORIZED", "Invalid token")
    );
    ok(&mut check, "auth.login", json!({"token": via_auth_token})).await;
    // Over-long usernames and passwords are refused like any wrong credentials.
    assert_eq!(
        fail(
            &mut check,
            "identity.login",
            json!({"username": "u".repeat(10_000), "password": "password-1"})
        )
        .await,
        err("UNAUTHORIZED", "Invalid credentials")
    );
    assert_eq!(
        fail(
            &mut check,
            "identity.login",
            json!({"username": "alice", "password": "p".repeat(10_000)})
        )
        .await,
        err("UNAUTHORIZED", "Invalid credentials")
    );
    // Refresh: a new token; the old one stops working. (Alice's own token was refreshed
    // by the other connection above: she logs in again first.)
    ok(
        &mut alice,
        "identity.login",
        json!({"username": "alice", "password": "password-1"}),
    )
    .await;
    let token = ok(&mut alice, "identity.refreshSession", json!({})).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let refreshed = ok(&mut alice, "identity.refreshSession", json!({})).await;
    let new_token = refreshed["token"].as_str().expect("token").to_owned();
    assert_ne!(new_token, token);
    let (mut third, _) = Client::connect(&server).await;
    assert_eq!(
        fail(&mut third, "auth.login", json!({"token": token})).await,
        err("UNAUTHORIZED", "Invalid token")
    );
    ok(&mut third, "auth.login", json!({"token": new_token})).await;
    // Logout deletes the session.
    ok(&mut alice, "identity.logout", json!({})).await;
    let (mut fourth, _) = Client::connect(&server).await;
    assert_eq!(
        fail(&mut fourth, "auth.login", json!({"token": new_token})).await,
        err("UNAUTHORIZED", "Invalid token")
    );
    assert_eq!(
        fail(&mut alice, "identity.refreshSession", json!({})).await,
        err("UNAUTHORIZED", "Authentication required")
    );
}

#[tokio::test]
async fn sessions_expire_on_the_server_clock() {
    let mut config = config();
    config.identity.session_ttl_ms = 60_000;
    let (server, clock) = start(config).await;
    let mut admin = superadmin(&server).await;
    user(&mut admin, "alice", &["reader"]).await;
    let (mut alice, session) = login(&server, "alice", "password-1").await;
    let token = session["token"].as_str().expect("token").to_owned();
    assert_eq!(session["expiresAt"], json!(T0 + 60_000));
    ok(&mut alice, "store.buckets", json!({})).await;
    clock.advance(60_001);
    assert_eq!(
        fail(&mut alice, "store.buckets", json!({})).await,
        err("UNAUTHORIZED", "Session expired")
    );
    assert_eq!(
        ok(&mut alice, "identity.whoami", json!({})).await,
        json!({"authenticated": false})
    );
    let (mut c, _) = Client::connect(&server).await;
    assert_eq!(
        fail(&mut c, "auth.login", json!({"token": token})).await,
        err("UNAUTHORIZED", "Invalid token")
    );
}

#[tokio::test]
async fn disabling_or_deleting_a_user_ends_its_sessions_and_subscriptions_at_once() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    ok(
        &mut admin,
        "store.defineBucket",
        json!({"name": "notes", "config": {"key": "id", "schema": {"id": {"type": "string"}}}}),
    )
    .await;
    ok(
        &mut admin,
        "store.defineQuery",
        json!({"name": "all-notes", "config": {"bucket": "notes"}}),
    )
    .await;
    for (action, name) in [
        ("identity.disableUser", "alice"),
        ("identity.deleteUser", "bob"),
    ] {
        let id = user(&mut admin, name, &["reader"]).await;
        let (mut c, session) = login(&server, name, "password-1").await;
        let token = session["token"].as_str().expect("token").to_owned();
        ok(&mut c, "store.subscribe", json!({"query": "all-notes"})).await;
        ok(&mut admin, action, json!({"userId": id})).await;
        // The notice, then the close; no push after it.
        loop {
            let frame = c.recv().await;
            if frame["type"] == "system" {
                assert_eq!(frame["event"], "session_revoked", "{action}");
                break;
            }
        }
        assert_eq!(c.expect_close().await.0, 4002, "{action}");
        // Its token no longer logs in.
        let (mut again, _) = Client::connect(&server).await;
        assert_eq!(
            fail(&mut again, "auth.login", json!({"token": token})).await,
            err("UNAUTHORIZED", "Invalid token"),
            "{action}"
        );
    }
}

#[tokio::test]
async fn passwords_are_changed_by_their_owner_and_reset_by_an_admin() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    let id = user(&mut admin, "alice", &[]).await;
    let other = user(&mut admin, "bob", &[]).await;
    let (mut alice, session) = login(&server, "alice", "password-1").await;
    let token = session["token"].as_str().expect("token").to_owned();
    assert_eq!(
        fail(
            &mut alice,
            "identity.changePassword",
            json!({"userId": other, "currentPassword": "password-1", "newPassword": "password-9"})
        )
        .await,
        err(
            "FORBIDDEN",
            "Can only change your own password (use resetPassword for other users)"
        )
    );
    assert_eq!(
        fail(
            &mut alice,
            "identity.changePassword",
            json!({"userId": id, "currentPassword": "wrong-one", "newPassword": "password-2"})
        )
        .await,
        err("UNAUTHORIZED", "Current password is incorrect")
    );
    assert_eq!(
        fail(
            &mut alice,
            "identity.changePassword",
            json!({"userId": id, "currentPassword": "password-1", "newPassword": "short"})
        )
        .await,
        err("VALIDATION_ERROR", "Password must be at least 8 characters")
    );
    assert_eq!(
        ok(
            &mut alice,
            "identity.changePassword",
            json!({"userId": id, "currentPassword": "password-1", "newPassword": "password-2"})
        )
        .await,
        json!({"changed": true})
    );
    // The user's sessions are gone: its old token no longer logs in.
    let (mut c, _) = Client::connect(&server).await;
    assert_eq!(
        fail(&mut c, "auth.login", json!({"token": token})).await,
        err("UNAUTHORIZED", "Invalid token")
    );
    login_fails(&server, "alice", "password-1").await;
    login(&server, "alice", "password-2").await;
    // An admin resets it.
    assert_eq!(
        fail(
            &mut alice,
            "identity.resetPassword",
            json!({"userId": id, "newPassword": "password-3"})
        )
        .await,
        err("FORBIDDEN", "Admin role required")
    );
    assert_eq!(
        ok(
            &mut admin,
            "identity.resetPassword",
            json!({"userId": id, "newPassword": "password-3"})
        )
        .await,
        json!({"reset": true})
    );
    assert_eq!(
        fail(
            &mut admin,
            "identity.resetPassword",
            json!({"userId": "nobody", "newPassword": "password-3"})
        )
        .await,
        err("NOT_FOUND", "User not found")
    );
    login(&server, "alice", "password-3").await;
}

async fn login_fails(server: &ServerHandle, username: &str, password: &str) {
    let (mut c, _) = Client::connect(server).await;
    assert_eq!(
        fail(
            &mut c,
            "identity.login",
            json!({"username": username, "password": password})
        )
        .await,
        err("UNAUTHORIZED", "Invalid credentials")
    );
}

#[tokio::test]
async fn roles_are_created_assigned_and_removed() {
    let (server, _) = start(config()).await;
    let mut root = superadmin(&server).await;
    let role = ok(
        &mut root,
        "identity.createRole",
        json!({"name": "clerk", "description": "Orders",
               "permissions": [{"allow": "store.*", "buckets": ["orders"]}]}),
    )
    .await;
    let role_id = role["id"].as_str().expect("id").to_owned();
    assert_eq!(role["system"], false);
    assert_eq!(
        role["permissions"],
        json!([{"allow": "store.*", "buckets": ["orders"]}])
    );
    assert_eq!(
        fail(&mut root, "identity.createRole", json!({"name": "clerk"})).await,
        err("ALREADY_EXISTS", r#"Role "clerk" already exists"#)
    );
    assert_eq!(
        fail(
            &mut root,
            "identity.createRole",
            json!({"name": "x".repeat(65)})
        )
        .await,
        err(
            "VALIDATION_ERROR",
            "Role name must be between 1 and 64 characters"
        )
    );
    let (code, message) = fail(
        &mut root,
        "identity.createRole",
        json!({"name": "bad", "permissions": [{"allow": "*", "tables": []}]}),
    )
    .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(
        message.starts_with(r#"Invalid "permissions[0]""#),
        "{message}"
    );
    let updated = ok(
        &mut root,
        "identity.updateRole",
        json!({"roleId": role_id, "description": "All orders"}),
    )
    .await;
    assert_eq!(updated["description"], "All orders");
    assert_eq!(
        fail(&mut root, "identity.updateRole", json!({"roleId": "nope"})).await,
        err("NOT_FOUND", "Role not found")
    );
    // System roles stay.
    let roles = ok(&mut root, "identity.listRoles", json!({})).await;
    let reader_id = roles["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["name"] == "reader")
        .and_then(|r| r["id"].as_str())
        .expect("reader")
        .to_owned();
    assert_eq!(
        fail(
            &mut root,
            "identity.deleteRole",
            json!({"roleId": reader_id})
        )
        .await,
        err("FORBIDDEN", "Cannot delete system role")
    );
    // Assign, list, remove.
    let alice = user(&mut root, "alice", &["clerk"]).await;
    assert_eq!(
        fail(
            &mut root,
            "identity.assignRole",
            json!({"userId": alice, "roleName": "clerk"})
        )
        .await,
        err("ALREADY_EXISTS", r#"User already has role "clerk""#)
    );
    assert_eq!(
        fail(
            &mut root,
            "identity.assignRole",
            json!({"userId": alice, "roleName": "ghost"})
        )
        .await,
        err("NOT_FOUND", r#"Role "ghost" not found"#)
    );
    assert_eq!(
        fail(
            &mut root,
            "identity.assignRole",
            json!({"userId": "nobody", "roleName": "clerk"})
        )
        .await,
        err("NOT_FOUND", "User not found")
    );
    let held = ok(&mut root, "identity.getUserRoles", json!({"userId": alice})).await;
    assert_eq!(held["roles"][0]["name"], "clerk");
    assert_eq!(
        ok(
            &mut root,
            "identity.removeRole",
            json!({"userId": alice, "roleName": "clerk"})
        )
        .await,
        json!({"removed": true})
    );
    assert_eq!(
        fail(
            &mut root,
            "identity.removeRole",
            json!({"userId": alice, "roleName": "clerk"})
        )
        .await,
        err("NOT_FOUND", r#"User does not have role "clerk""#)
    );
    assert_eq!(
        ok(&mut root, "identity.getUserRoles", json!({"userId": alice})).await,
        json!({"roles": []})
    );
    // Deleting a role removes its assignments.
    ok(
        &mut root,
        "identity.assignRole",
        json!({"userId": alice, "roleName": "clerk"}),
    )
    .await;
    assert_eq!(
        ok(&mut root, "identity.deleteRole", json!({"roleId": role_id})).await,
        json!({"deleted": true})
    );
    assert_eq!(
        ok(&mut root, "identity.getUserRoles", json!({"userId": alice})).await,
        json!({"roles": []})
    );
}

#[tokio::test]
async fn an_admin_cannot_remove_its_own_last_admin_role() {
    let (server, _) = start(config()).await;
    let mut root = superadmin(&server).await;
    let id = user(&mut root, "boss", &["admin"]).await;
    let (mut boss, _) = login(&server, "boss", "password-1").await;
    assert_eq!(
        fail(
            &mut boss,
            "identity.removeRole",
            json!({"userId": id, "roleName": "admin"})
        )
        .await,
        err("FORBIDDEN", "Cannot remove your own last admin role")
    );
    let held = ok(&mut boss, "identity.getUserRoles", json!({"userId": id})).await;
    assert_eq!(held["roles"][0]["name"], "admin", "nothing changed");
    // An admin cannot manage roles themselves.
    assert_eq!(
        fail(&mut boss, "identity.deleteRole", json!({"roleId": "x"})).await,
        err("FORBIDDEN", "Superadmin role required")
    );
}

#[tokio::test]
async fn roles_decide_store_access_and_losing_one_takes_effect_at_once() {
    let mut config = config();
    // A deny-by-default policy: the custom role `clerk` may use `orders` only.
    config.auth = Some(AuthConfig {
        permissions: PermissionsConfig {
            default: DefaultPolicy::Deny,
            rules: vec![
                PermissionRule {
                    role: "superadmin".into(),
                    allow: Patterns::One("*".into()),
                    buckets: None,
                    topics: None,
                    procedures: None,
                },
                PermissionRule {
                    role: "clerk".into(),
                    allow: Patterns::One("store.*".into()),
                    buckets: Some(vec!["orders".into()]),
                    topics: None,
                    procedures: None,
                },
            ],
        },
        ..AuthConfig::default()
    });
    let (server, _) = start(config).await;
    let mut root = superadmin(&server).await;
    for bucket in ["orders", "payroll"] {
        ok(
            &mut root,
            "store.defineBucket",
            json!({"name": bucket, "config": {"key": "id", "schema": {"id": {"type": "string"}}}}),
        )
        .await;
    }
    ok(&mut root, "identity.createRole", json!({"name": "clerk"})).await;
    let id = user(&mut root, "alice", &[]).await;
    let (mut alice, _) = login(&server, "alice", "password-1").await;
    assert_eq!(
        fail(
            &mut alice,
            "store.insert",
            json!({"bucket": "orders", "data": {"id": "1"}})
        )
        .await
        .0,
        "FORBIDDEN"
    );
    ok(
        &mut root,
        "identity.assignRole",
        json!({"userId": id, "roleName": "clerk"}),
    )
    .await;
    // A new role counts from the next session (login or refresh).
    ok(&mut alice, "identity.refreshSession", json!({})).await;
    ok(
        &mut alice,
        "store.insert",
        json!({"bucket": "orders", "data": {"id": "1"}}),
    )
    .await;
    assert_eq!(
        fail(&mut alice, "store.all", json!({"bucket": "payroll"})).await,
        err("FORBIDDEN", "No permission for store.all on payroll")
    );
    // Inside a transaction too.
    assert_eq!(
        fail(
            &mut alice,
            "store.transaction",
            json!({"operations": [
                {"op": "insert", "bucket": "orders", "data": {"id": "2"}},
                {"op": "insert", "bucket": "payroll", "data": {"id": "2"}}]})
        )
        .await
        .0,
        "FORBIDDEN"
    );
    // Removing the role ends the user's connections at once.
    ok(
        &mut root,
        "identity.removeRole",
        json!({"userId": id, "roleName": "clerk"}),
    )
    .await;
    assert_eq!(alice.expect_close().await.0, 4002);
    let (mut again, _) = login(&server, "alice", "password-1").await;
    assert_eq!(
        fail(&mut again, "store.all", json!({"bucket": "orders"}))
            .await
            .0,
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn the_login_rate_limiter_counts_failures_per_username() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    user(&mut admin, "alice", &[]).await;
    user(&mut admin, "bob", &[]).await;
    // Five failures, each on a new connection (the per-connection limit is not the one
    // under test).
    for _ in 0..5 {
        login_fails(&server, "alice", "guess-guess").await;
    }
    let (mut c, _) = Client::connect(&server).await;
    let frame = c
        .call(
            "identity.login",
            json!({"username": "alice", "password": "password-1"}),
        )
        .await;
    assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
    assert_eq!(
        frame["message"],
        "Too many failed login attempts. Try again later."
    );
    assert!(
        frame["details"]["retryAfterMs"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    // Another username from the same address still logs in.
    login(&server, "bob", "password-1").await;
}

#[tokio::test]
async fn store_operations_on_the_system_buckets_are_forbidden() {
    let (server, _) = start(config()).await;
    let mut root = superadmin(&server).await;
    user(&mut root, "alice", &[]).await;
    for bucket in [
        "_users",
        "_roles",
        "_user_roles",
        "_acl",
        "_sessions",
        "_resource_owners",
    ] {
        let message = format!("Bucket \"{bucket}\" is reserved for the identity system");
        for (op, fields) in [
            ("store.all", json!({"bucket": bucket})),
            ("store.get", json!({"bucket": bucket, "key": "x"})),
            ("store.where", json!({"bucket": bucket, "filter": {}})),
            (
                "store.insert",
                json!({"bucket": bucket, "data": {"id": "x"}}),
            ),
            ("store.clear", json!({"bucket": bucket})),
            ("store.dropBucket", json!({"name": bucket})),
            (
                "store.transaction",
                json!({"operations": [{"op": "get", "bucket": bucket, "key": "x"}]}),
            ),
            (
                "store.defineQuery",
                json!({"name": "q", "config": {"bucket": bucket}}),
            ),
        ] {
            assert_eq!(
                fail(&mut root, op, fields).await,
                err("FORBIDDEN", &message),
                "{op} on {bucket}"
            );
        }
    }
    // Nothing changed: the user is still there.
    assert_eq!(
        ok(&mut root, "identity.listUsers", json!({})).await["total"],
        1
    );
    // Procedures do not see them either.
    let (code, message) = fail(
        &mut root,
        "procedures.register",
        json!({"procedure": {"name": "steal", "steps": [
            {"action": "store.all", "bucket": "_users", "as": "users"}]}}),
    )
    .await;
    assert_eq!(code, "VALIDATION_ERROR", "{message}");
}

#[tokio::test]
async fn identity_needs_an_admin_secret_of_sixteen_bytes() {
    let mut config = config();
    config.identity.admin_secret = Some("short".into());
    let err = Server::start(config).await.err().expect("refused");
    assert_eq!(
        err.to_string(),
        "invalid config: \"identity.adminSecret\" must be at least 16 bytes when identity is enabled"
    );
}

/// One user's logins cannot grow `_sessions` without bound: past 64 live sessions a login
/// ends the oldest session's token (before, every login added a record until the store
/// was full, and the per-login sweep read them all).
#[tokio::test]
async fn a_user_holds_a_bounded_number_of_sessions() {
    let (server, clock) = start(config()).await;
    let mut admin = superadmin(&server).await;
    let alice = user(&mut admin, "alice", &["reader"]).await;
    let mut tokens = Vec::new();
    let (mut c, _) = Client::connect(&server).await;
    for _ in 0..70 {
        let session = ok(
            &mut c,
            "identity.login",
            json!({"username": "alice", "password": "password-1"}),
        )
        .await;
        tokens.push(session["token"].as_str().expect("token").to_owned());
        clock.advance(1);
    }
    let held = server
        .store()
        .bucket("_sessions")
        .count(Some(
            &serde_json::from_value(json!({"userId": alice})).expect("filter"),
        ))
        .expect("count");
    assert_eq!(held, 64);
    let (mut check, _) = Client::connect(&server).await;
    assert_eq!(
        fail(&mut check, "auth.login", json!({"token": tokens[0]})).await,
        err("UNAUTHORIZED", "Invalid token")
    );
    ok(&mut check, "auth.login", json!({"token": tokens[69]})).await;
    let (mut check, _) = Client::connect(&server).await;
    ok(&mut check, "auth.login", json!({"token": tokens[6]})).await;
}

/// Red team round 10: an admin assigned itself `superadmin`
/// (`{"type":"identity.assignRole","userId":"<own id>","roleName":"superadmin"}` answered
/// `{"assigned":true}`). Only a superadmin assigns or removes it.
#[tokio::test]
async fn only_a_superadmin_hands_out_superadmin() {
    let (server, _) = start(config()).await;
    let mut root = superadmin(&server).await;
    let admin_id = user(&mut root, "admin1", &["admin"]).await;
    let (mut admin, _) = login(&server, "admin1", "password-1").await;
    assert_eq!(
        fail(
            &mut admin,
            "identity.assignRole",
            json!({"userId": admin_id, "roleName": "superadmin"})
        )
        .await,
        err("FORBIDDEN", "Superadmin role required")
    );
    let roles = ok(
        &mut admin,
        "identity.getUserRoles",
        json!({"userId": admin_id}),
    )
    .await;
    assert!(
        !roles.to_string().contains("superadmin"),
        "the admin holds superadmin: {roles}"
    );
    // The superadmin may.
    ok(
        &mut root,
        "identity.assignRole",
        json!({"userId": admin_id, "roleName": "superadmin"}),
    )
    .await;
}

/// Red team round 10: logins sent at once all passed the per-username limit, which was
/// checked before the password hash and counted after it (60 connections, 59 wrong
/// passwords and then the right one: 59 × UNAUTHORIZED and a session). An attempt is
/// counted when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_sent_at_once_are_limited_per_username_too() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    user(&mut admin, "alice", &["reader"]).await;
    let mut guessers = Vec::new();
    for _ in 0..20 {
        guessers.push(Client::connect(&server).await.0);
    }
    let last = guessers.len() - 1;
    for (i, c) in guessers.iter_mut().enumerate() {
        let password = if i == last {
            "password-1".to_owned()
        } else {
            format!("guess-{i}")
        };
        c.send(
            json!({"id": 1, "type": "identity.login", "username": "alice", "password": password}),
        )
        .await;
    }
    let mut codes = Vec::new();
    for c in &mut guessers {
        let answer = c.recv().await;
        assert_no_hash(&answer);
        codes.push(answer["code"].as_str().unwrap_or("none").to_owned());
    }
    let checked = codes.iter().filter(|c| *c == "UNAUTHORIZED").count();
    assert!(checked <= 5, "{checked} passwords were checked: {codes:?}");
    assert!(
        codes.iter().all(|c| c != "none"),
        "a guess logged in: {codes:?}"
    );
}

/// Red team round 10: logins sent at once over many connections of one address all passed
/// the per-address limit (60 guesses from one address, a limit of 30), because a failure
/// was counted only once its hash was done. Each sends `identity.login` for a user of its
/// own, so the per-username limit does not hold them.
#[tokio::test]
async fn logins_sent_at_once_from_one_address_are_limited_per_address() {
    let mut config = config();
    config.limits.login.max_failures_per_ip = 10;
    let (server, _) = start(config).await;
    let mut guessers = Vec::new();
    for _ in 0..30 {
        guessers.push(Client::connect_from(&server, [127, 0, 0, 7]).await);
    }
    for (i, c) in guessers.iter_mut().enumerate() {
        c.send(json!({"id": 1, "type": "identity.login", "username": format!("user-{i}"), "password": "guess-password"}))
            .await;
    }
    let mut codes = Vec::new();
    for c in &mut guessers {
        let answer = c.recv().await;
        codes.push(answer["code"].as_str().unwrap_or("none").to_owned());
    }
    let checked = codes.iter().filter(|c| *c == "UNAUTHORIZED").count();
    let limited = codes.iter().filter(|c| *c == "RATE_LIMITED").count();
    assert!(checked <= 10, "{checked} passwords were checked: {codes:?}");
    assert_eq!(checked + limited, 30, "{codes:?}");
    // Another address is not affected.
    let mut other = Client::connect_from(&server, [127, 0, 0, 8]).await;
    let (code, _) = fail(
        &mut other,
        "identity.login",
        json!({"username": "user-0", "password": "guess-password"}),
    )
    .await;
    assert_eq!(code, "UNAUTHORIZED");
}

/// Red team round 10: `identity.changePassword` had no failure limit (40 wrong
/// `currentPassword` were all checked), so a stolen token could guess the password. These
/// are the reported frames; the failures count with the username's failed logins.
#[tokio::test]
async fn wrong_current_passwords_are_limited_like_failed_logins() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    let id = user(&mut admin, "alice", &[]).await;
    let (mut alice, _) = login(&server, "alice", "password-1").await;
    let mut codes = Vec::new();
    for i in 0..8 {
        let (code, _) = fail(
            &mut alice,
            "identity.changePassword",
            json!({"userId": id, "currentPassword": format!("guess-{i}"), "newPassword": "password-2"}),
        )
        .await;
        codes.push(code);
    }
    assert_eq!(
        codes.iter().filter(|c| *c == "UNAUTHORIZED").count(),
        5,
        "maxLoginAttempts wrong guesses are checked: {codes:?}"
    );
    assert!(codes[5..].iter().all(|c| c == "RATE_LIMITED"), "{codes:?}");
    // The right one is refused too until the window ends, and so is a login.
    let (code, _) = fail(
        &mut alice,
        "identity.changePassword",
        json!({"userId": id, "currentPassword": "password-1", "newPassword": "password-2"}),
    )
    .await;
    assert_eq!(code, "RATE_LIMITED");
    let (mut other, _) = Client::connect(&server).await;
    let (code, _) = fail(
        &mut other,
        "identity.login",
        json!({"username": "alice", "password": "password-1"}),
    )
    .await;
    assert_eq!(code, "RATE_LIMITED");
}

/// The reported hash-slot hog: a `currentPassword` of 200 KB. No password is that long, so
/// it is refused without a hash and without counting as a guess: after ten of them the
/// user still has its five guesses, and the sixth wrong one is refused (before the fix
/// nothing was ever refused).
#[tokio::test]
async fn an_over_long_current_password_is_refused_without_a_check() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    let id = user(&mut admin, "alice", &[]).await;
    let (mut alice, _) = login(&server, "alice", "password-1").await;
    for _ in 0..10 {
        let (code, message) = fail(
            &mut alice,
            "identity.changePassword",
            json!({"userId": id, "currentPassword": "x".repeat(200_000), "newPassword": "password-2"}),
        )
        .await;
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("UNAUTHORIZED", "Current password is incorrect")
        );
    }
    for i in 0..6 {
        let (code, _) = fail(
            &mut alice,
            "identity.changePassword",
            json!({"userId": id, "currentPassword": format!("guess-{i}"), "newPassword": "password-2"}),
        )
        .await;
        let expected = if i < 5 {
            "UNAUTHORIZED"
        } else {
            "RATE_LIMITED"
        };
        assert_eq!(code, expected, "guess {i}");
    }
}

/// Red team round 10: 50 addresses looping bad logins put a legitimate login at 2–3 s, as
/// it queued for a hashing slot behind all of theirs. A login from an address and for a
/// username without failures now takes the next free slot before any check from an
/// address with failures.
#[tokio::test]
async fn a_clean_login_does_not_queue_behind_logins_from_an_address_with_failures() {
    clean_login_overtakes(true, false, [127, 0, 0, 9], [127, 0, 0, 10]).await;
}

/// Red team round 11: an address counted as clean until its first failure was counted, so
/// a burst from a fresh address all went in the clean lane (10 addresses × 30 logins put a
/// legitimate login at 32 s). Only one check of an address at a time is clean.
#[tokio::test]
async fn a_clean_login_does_not_queue_behind_a_burst_from_a_fresh_address() {
    clean_login_overtakes(false, false, [127, 0, 0, 12], [127, 0, 0, 13]).await;
}

/// Red team round 12: one wrong password against a user (from anywhere) put that user's
/// own login behind every check from an attacking address for 15 minutes (27–51 s). From a
/// clean address it now waits only behind clean checks.
#[tokio::test]
async fn a_login_for_a_username_with_a_failure_does_not_queue_behind_attackers() {
    clean_login_overtakes(true, true, [127, 0, 0, 14], [127, 0, 0, 15]).await;
}

/// Sends a burst of bad logins from `attacker` (after one failure first when `primed`),
/// then a good login from `victim` (for a username with one failure from a third address
/// when `marked`), and checks that only the checks already running went before it.
async fn clean_login_overtakes(
    primed: bool,
    marked: bool,
    attacker_ip: [u8; 4],
    victim_ip: [u8; 4],
) {
    let mut config = config();
    config.limits.login.max_failures_per_ip = 1_000;
    config.limits.login.max_failures_per_connection = 1_000;
    let (server, _) = start(config).await;
    let mut admin = superadmin(&server).await;
    user(&mut admin, "alice", &[]).await;
    let slots = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1);
    let suspects = 4 * slots + 8;
    if marked {
        let mut other = Client::connect_from(&server, [127, 0, 0, 16]).await;
        let (code, _) = fail(
            &mut other,
            "identity.login",
            json!({"username": "alice", "password": "guess-password"}),
        )
        .await;
        assert_eq!(code, "UNAUTHORIZED");
    }
    if primed {
        let mut attacker = Client::connect_from(&server, attacker_ip).await;
        let (code, _) = fail(
            &mut attacker,
            "identity.login",
            json!({"username": "someone", "password": "guess-password"}),
        )
        .await;
        assert_eq!(code, "UNAUTHORIZED");
    }
    let mut queued = Vec::new();
    for _ in 0..suspects {
        queued.push(Client::connect_from(&server, attacker_ip).await);
    }
    let mut victim = Client::connect_from(&server, victim_ip).await;
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for (i, mut c) in queued.into_iter().enumerate() {
        c.send(json!({"id": 1, "type": "identity.login", "username": format!("user-{i}"), "password": "guess-password"}))
            .await;
        let answers_tx = answers_tx.clone();
        tokio::spawn(async move {
            let answer = c.recv().await;
            let _ = answers_tx.send(answer["code"].as_str().unwrap_or("none").to_owned());
        });
    }
    // Once one answer is back, a hash has been done and every request reached its queue.
    assert_eq!(answers.recv().await.as_deref(), Some("UNAUTHORIZED"));
    victim
        .send(json!({"id": 1, "type": "identity.login", "username": "alice", "password": "password-1"}))
        .await;
    let logged_in = victim.recv().await;
    assert_eq!(logged_in["type"], "result", "{logged_in}");
    let mut before = 0;
    while answers.try_recv().is_ok() {
        before += 1;
    }
    drop(answers_tx);
    let mut after = 0;
    while let Some(code) = answers.recv().await {
        assert_eq!(code, "UNAUTHORIZED");
        after += 1;
    }
    assert_eq!(1 + before + after, suspects);
    // Unprimed, the burst's first check was clean and may have started after the victim's
    // was queued: one more.
    assert!(
        before <= slots + 3,
        "{before} checks from the attacking address went first (slots: {slots})"
    );
}

/// Red team round 11: a login refused because its username is locked counted as a success
/// and reset the connection's failure count, so one connection interleaving them got 12
/// wrong passwords checked against a per-connection limit of 5. The frames: [3 unknown
/// names, then the locked name] × 4.
#[tokio::test]
async fn refused_logins_do_not_reset_the_connections_failures() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    user(&mut admin, "alice", &[]).await;
    // alice is locked by five wrong passwords from elsewhere.
    for i in 0..5 {
        let mut c = Client::connect_from(&server, [127, 0, 0, 20 + i]).await;
        let (code, _) = fail(
            &mut c,
            "identity.login",
            json!({"username": "alice", "password": "guess-password"}),
        )
        .await;
        assert_eq!(code, "UNAUTHORIZED");
    }
    let mut c = Client::connect_from(&server, [127, 0, 0, 30]).await;
    let mut checked = 0;
    for round in 0..4 {
        for i in 0..3 {
            let (code, _) = fail(
                &mut c,
                "identity.login",
                json!({"username": format!("nobody-{round}-{i}"), "password": "guess-password"}),
            )
            .await;
            checked += usize::from(code == "UNAUTHORIZED");
        }
        let (code, _) = fail(
            &mut c,
            "identity.login",
            json!({"username": "alice", "password": "guess-password"}),
        )
        .await;
        assert_eq!(code, "RATE_LIMITED");
    }
    assert_eq!(
        checked, 5,
        "maxFailuresPerConnection wrong passwords are checked"
    );
}

/// Red team round 10 (low): a grant on a system bucket was accepted (a row that means
/// nothing), and an assignment of a role to the virtual superadmin left a stray row.
#[tokio::test]
async fn no_grant_on_a_system_bucket_and_no_role_for_the_virtual_superadmin() {
    let (server, _) = start(config()).await;
    let mut admin = superadmin(&server).await;
    let bob = user(&mut admin, "bob", &[]).await;
    let (code, message) = fail(
        &mut admin,
        "identity.grant",
        json!({"subjectType": "user", "subjectId": bob, "resourceType": "bucket", "resourceName": "_users", "operations": ["read"]}),
    )
    .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "FORBIDDEN",
            "Bucket \"_users\" is reserved for the identity system"
        )
    );
    let acl = ok(
        &mut admin,
        "identity.getAcl",
        json!({"resourceType": "bucket", "resourceName": "_users"}),
    )
    .await;
    assert_eq!(acl["entries"], json!([]), "{acl}");
    let (code, _) = fail(
        &mut admin,
        "identity.assignRole",
        json!({"userId": "__superadmin__", "roleName": "reader"}),
    )
    .await;
    assert_eq!(code, "NOT_FOUND");
    let roles = ok(
        &mut admin,
        "identity.getUserRoles",
        json!({"userId": "__superadmin__"}),
    )
    .await;
    assert_eq!(roles["roles"].as_array().map(Vec::len), Some(1), "{roles}");
}

/// Logins being checked hold the address's remaining failures, not failures themselves: 40
/// users behind one address (a NAT) logging in at once all get in, with a per-address
/// limit of 10. (Counting them as failures while checked refused most of 50 such logins.)
#[tokio::test]
async fn many_good_logins_sent_at_once_from_one_address_all_succeed() {
    let mut config = config();
    config.limits.login.max_failures_per_ip = 10;
    let (server, _) = start(config).await;
    let mut admin = superadmin(&server).await;
    user(&mut admin, "alice", &[]).await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(Client::connect_from(&server, [127, 0, 0, 11]).await);
    }
    for c in &mut clients {
        c.send(json!({"id": 1, "type": "identity.login", "username": "alice", "password": "password-1"}))
            .await;
    }
    for c in &mut clients {
        let answer = c.recv().await;
        assert_eq!(answer["type"], "result", "{answer}");
    }
}
