//! The auth API against a server that requires a session: login, logout, whoami,
//! permission errors, and the `auth_token` option logging in on connect.

use noex_client::{Client, ClientError, ClientOptions};
use noex_protocol::ErrorCode;
use noex_protocol::payloads::WhoAmI;
use serde_json::{Value, json};

use crate::common::{auth_config, connect, start, url, within};

#[tokio::test]
async fn login_whoami_logout() {
    let server = start(auth_config()).await;
    let client = connect(&server).await;
    assert!(client.welcome().requires_auth);
    let auth = client.auth();
    assert_eq!(
        auth.whoami().await.unwrap(),
        WhoAmI::Anonymous {
            authenticated: false
        }
    );
    let tasks = client.store().bucket::<Value>("tasks");
    assert_eq!(
        tasks.all().await.unwrap_err().code(),
        Some(ErrorCode::Unauthorized)
    );

    let bad = auth.login("nope").await.unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::Unauthorized));

    let session = auth.login("writer-t").await.unwrap();
    assert_eq!(session.user_id, "wes");
    assert_eq!(session.roles, ["writer"]);
    assert_eq!(session.expires_at, None);
    assert_eq!(
        auth.whoami().await.unwrap(),
        WhoAmI::Authenticated {
            authenticated: true,
            user_id: "wes".into(),
            roles: vec!["writer".into()],
            expires_at: None,
        }
    );
    tasks
        .insert(json!({"id": "t1", "title": "hello"}))
        .await
        .unwrap();
    // A writer may not run admin operations.
    let err = client.store().drop_bucket("tasks").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    assert!(matches!(err, ClientError::Server { .. }));

    assert!(auth.logout().await.unwrap().logged_out);
    assert_eq!(
        auth.whoami().await.unwrap(),
        WhoAmI::Anonymous {
            authenticated: false
        }
    );
    assert_eq!(
        tasks.all().await.unwrap_err().code(),
        Some(ErrorCode::Unauthorized)
    );
    client.disconnect().await;
}

#[tokio::test]
async fn the_configured_token_logs_in_on_connect() {
    let server = start(auth_config()).await;
    let options = ClientOptions {
        auth_token: Some("admin-t".into()),
        ..ClientOptions::default()
    };
    let client = within("connect", Client::connect(&url(&server), options))
        .await
        .unwrap();
    match client.auth().whoami().await.unwrap() {
        WhoAmI::Authenticated { user_id, .. } => assert_eq!(user_id, "ada"),
        other => panic!("not logged in: {other:?}"),
    }
    assert_eq!(
        client
            .server_stats()
            .await
            .unwrap()
            .connections
            .authenticated,
        1
    );

    // A token the server rejects fails the connect with the server's error.
    let options = ClientOptions {
        auth_token: Some("nope".into()),
        ..ClientOptions::default()
    };
    let err = within("connect", Client::connect(&url(&server), options))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    client.disconnect().await;
}

/// A revoked client is told why and does not reconnect (as the original client, which
/// treats close 4002 as final): no loop of reconnects refused with `SESSION_REVOKED`.
#[tokio::test]
async fn a_revoked_client_does_not_reconnect() {
    use crate::common::{connect_watching, fast_reconnect, next};
    use futures_util::StreamExt;
    use noex_client::ClientEvent;

    let mut config = auth_config();
    config.audit = Some(noex_server::AuditConfig::default());
    let server = start(config).await;
    let (writer, mut events) = connect_watching(
        &url(&server),
        ClientOptions {
            auth_token: Some("writer-t".into()),
            ..fast_reconnect()
        },
    )
    .await;
    let admin = within(
        "admin connects",
        Client::connect(
            &url(&server),
            ClientOptions {
                auth_token: Some("admin-t".into()),
                ..ClientOptions::default()
            },
        ),
    )
    .await
    .unwrap();

    let denied = writer.revoke_sessions(Some("ada"), None, None).await;
    assert_eq!(denied.unwrap_err().code(), Some(ErrorCode::Forbidden));
    assert_eq!(
        admin
            .revoke_sessions(Some("wes"), None, None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        next("revoked", &mut events).await,
        ClientEvent::SessionRevoked {
            reason: "Session revoked by administrator".into()
        }
    );
    assert_eq!(
        next("disconnected", &mut events).await,
        ClientEvent::Disconnected {
            will_reconnect: false
        }
    );
    // The stream ends: the client is closed for good.
    assert_eq!(within("events end", events.next()).await, None);
    within("the revoked connection ends", async {
        while server.connection_count() > 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let err = writer.server_stats().await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");

    // The audit log names who revoked whom.
    let entries = admin
        .audit_query(noex_client::AuditQuery {
            operation: Some("server.revokeSessions".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].user_id.as_deref(), Some("ada"));
    assert_eq!(
        entries[0].details.as_ref().and_then(|d| d.get("userId")),
        Some(&json!("wes"))
    );
    assert_eq!(entries[1].user_id.as_deref(), Some("wes"));
    assert_eq!(entries[1].result, noex_protocol::AuditResult::Error);
    let limited = admin
        .audit_query(noex_client::AuditQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}
