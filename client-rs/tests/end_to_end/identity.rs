//! The identity API against a server with built-in identity: bootstrap with the admin
//! secret, create a user and give it a role, log in with its password, use the session
//! token with `auth_token` on a new client, grants and ownership, and the errors a client
//! sees.

use noex_client::{Client, ClientOptions, NewUser, UserChanges};
use noex_protocol::ErrorCode;
use noex_protocol::payloads::WhoAmI;
use noex_server::IdentitySection;
use serde_json::{Value, json};

use crate::common::{config, connect, start, url};

const SECRET: &str = "bootstrap-secret-0123456789";

#[tokio::test]
async fn bootstrap_create_a_user_and_log_in_with_its_password() {
    let mut config = config();
    config.identity = IdentitySection {
        enabled: true,
        admin_secret: Some(SECRET.into()),
        ..IdentitySection::default()
    };
    let server = start(config).await;
    let admin = connect(&server).await;
    let identity = admin.identity();
    let root = identity.login_with_secret(SECRET).await.unwrap();
    assert_eq!(root.user.roles, ["superadmin"]);

    let alice = identity
        .create_user(NewUser {
            display_name: Some("Alice".into()),
            ..NewUser::new("alice", "correct horse battery")
        })
        .await
        .unwrap();
    assert_eq!(alice.username, "alice");
    assert!(alice.enabled);
    identity.assign_role(&alice.id, "writer").await.unwrap();
    let roles = identity.get_user_roles(&alice.id).await.unwrap().roles;
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].name, "writer");
    assert_eq!(identity.list_users(None, None).await.unwrap().total, 1);
    let clerk = identity
        .create_role(
            "clerk",
            Some("Orders"),
            Some(vec![json!({"allow": "store.*"})]),
        )
        .await
        .unwrap();
    assert!(!clerk.system);
    assert_eq!(identity.list_roles().await.unwrap().roles.len(), 5);

    // Alice logs in with her password and edits her own profile.
    let client = connect(&server).await;
    let session = client
        .identity()
        .login("alice", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(session.user.roles, ["writer"]);
    let changed = client
        .identity()
        .update_user(
            &alice.id,
            UserChanges {
                email: Some("alice@example.com".into()),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.email.as_deref(), Some("alice@example.com"));
    let refused = client.identity().list_users(None, None).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
    let wrong = client
        .identity()
        .login("alice", "not her password")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::Unauthorized));

    // Her session token logs a new client in on connect.
    let options = ClientOptions {
        auth_token: Some(session.token.clone()),
        ..ClientOptions::default()
    };
    let again = Client::connect(&url(&server), options).await.unwrap();
    match again.identity().whoami().await.unwrap() {
        WhoAmI::Authenticated { user_id, .. } => assert_eq!(user_id, alice.id),
        other => panic!("expected a session, got {other:?}"),
    }
    again.store().bucket::<Value>("tasks").all().await.unwrap();

    // Grants, ownership and the caller's view of them.
    let owner = identity.get_owner("bucket", "tasks").await.unwrap().owner;
    assert_eq!(owner, None, "config buckets have no owner");
    identity
        .grant(("user", &alice.id), ("bucket", "tasks"), &["read"])
        .await
        .unwrap();
    let entries = identity.get_acl("bucket", "tasks").await.unwrap().entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].operations, ["read"]);
    let mine = again.identity().my_access().await.unwrap();
    assert_eq!(mine.resources.len(), 1);
    assert_eq!(mine.resources[0].resource_name, "tasks");
    identity
        .revoke(("user", &alice.id), ("bucket", "tasks"), None)
        .await
        .unwrap();
    assert!(
        identity
            .get_acl("bucket", "tasks")
            .await
            .unwrap()
            .entries
            .is_empty()
    );

    // Disabling her ends her sessions; her token no longer logs in.
    identity.disable_user(&alice.id).await.unwrap();
    let late = connect(&server).await;
    let err = late.auth().login(&session.token).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    identity.delete_user(&alice.id).await.unwrap();
    assert_eq!(identity.list_users(None, None).await.unwrap().total, 0);
}

/// Drops the client's connection at the proxy; the lifecycle events until it is back.
async fn cut_and_reconnect(
    proxy: &crate::common::Proxy,
    events: &mut noex_client::EventStream,
) -> Vec<noex_client::ClientEvent> {
    proxy.cut().await;
    crate::common::events_until(events, |e| {
        matches!(e, noex_client::ClientEvent::Reconnected(_))
    })
    .await
}

/// A password session survives a lost connection: the client logs in again with the
/// session's token (as after `auth.login`), so no `Error` event reports a failed re-login;
/// after `identity.logout` a reconnect stays anonymous.
#[tokio::test]
async fn a_password_session_is_logged_in_again_after_a_reconnect_until_logout() {
    use crate::common::{Proxy, connect_watching, fast_reconnect};
    use noex_client::ClientEvent;

    let mut config = config();
    config.identity = IdentitySection {
        enabled: true,
        admin_secret: Some(SECRET.into()),
        ..IdentitySection::default()
    };
    let server = start(config).await;
    let admin = connect(&server).await;
    admin.identity().login_with_secret(SECRET).await.unwrap();
    let alice = admin
        .identity()
        .create_user(NewUser::new("alice", "correct horse battery"))
        .await
        .unwrap();
    admin
        .identity()
        .assign_role(&alice.id, "reader")
        .await
        .unwrap();

    let proxy = Proxy::start(&server).await;
    let (client, mut events) = connect_watching(&proxy.url(), fast_reconnect()).await;
    client
        .identity()
        .login("alice", "correct horse battery")
        .await
        .unwrap();
    let seen = cut_and_reconnect(&proxy, &mut events).await;
    // The re-login goes out before this request: alice again, and her role still applies.
    match client.identity().whoami().await.unwrap() {
        WhoAmI::Authenticated { user_id, .. } => assert_eq!(user_id, alice.id),
        other => panic!("expected alice's session after the reconnect, got {other:?}"),
    }
    client.store().bucket::<Value>("tasks").all().await.unwrap();
    // It is an identity session again on the new connection: it can be refreshed.
    client.identity().refresh_session().await.unwrap();

    client.identity().logout().await.unwrap();
    let seen_after_logout = cut_and_reconnect(&proxy, &mut events).await;
    assert!(matches!(
        client.identity().whoami().await.unwrap(),
        WhoAmI::Anonymous { .. }
    ));
    let errors: Vec<_> = seen
        .iter()
        .chain(&seen_after_logout)
        .filter(|e| matches!(e, ClientEvent::Error(_)))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
