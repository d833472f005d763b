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
