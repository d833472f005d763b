//! Integration tests against the real noex server (what it serves today: welcome, error
//! answers, heartbeat, graceful stop, restart).
#![cfg(feature = "native")]

use std::time::Duration;

use futures_util::StreamExt;
use noex_client::{Client, ClientError, ClientEvent, ClientOptions, ReconnectPolicy};
use noex_protocol::{ErrorCode, Operation, ServerOp, StoreOp};
use noex_server::{HeartbeatConfig, Server, ServerConfig, ServerHandle};

const GUARD: Duration = Duration::from_secs(10);

async fn start(port: u16, heartbeat_ms: Option<u64>) -> ServerHandle {
    let mut config = ServerConfig {
        host: "127.0.0.1".into(),
        port,
        ..Default::default()
    };
    if let Some(ms) = heartbeat_ms {
        config.heartbeat = HeartbeatConfig {
            interval_ms: ms,
            timeout_ms: ms,
        };
    }
    Server::start(config).await.expect("server starts")
}

fn url(server: &ServerHandle) -> String {
    format!("ws://{}", server.local_addr())
}

fn fast_reconnect() -> ClientOptions {
    ClientOptions {
        reconnect: ReconnectPolicy {
            initial_delay_ms: 20,
            max_delay_ms: 100,
            jitter_ms: 5,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn connect_returns_the_welcome() {
    let server = start(0, None).await;
    let client = Client::connect(&url(&server), ClientOptions::default())
        .await
        .unwrap();
    assert_eq!(client.welcome().version, noex_protocol::PROTOCOL_VERSION);
    assert!(!client.welcome().requires_auth);
    client.disconnect().await;
    server.stop(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn connect_to_nothing_fails() {
    let server = start(0, None).await;
    let addr = server.local_addr();
    server.stop(Duration::from_millis(10)).await;
    let err = Client::connect(&format!("ws://{addr}"), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn concurrent_requests_get_their_own_error_answers() {
    let server = start(0, None).await;
    let client = Client::connect(&url(&server), ClientOptions::default())
        .await
        .unwrap();
    let store = client.request(Operation::Store(StoreOp::All {
        bucket: "users".into(),
    }));
    let rules_api = client.rules();
    let rules = rules_api.stats();
    let server_stats = client.request(Operation::Server(ServerOp::Stats));
    let (store, rules, server_stats) =
        tokio::time::timeout(GUARD, async { tokio::join!(store, rules, server_stats) })
            .await
            .unwrap();
    match store.unwrap_err() {
        ClientError::Server { code, message, .. } => {
            assert_eq!(code, ErrorCode::BucketNotDefined);
            assert!(message.contains("users"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        rules.unwrap_err().code(),
        Some(ErrorCode::RulesNotAvailable)
    );
    assert_eq!(server_stats.unwrap()["connectionCount"], 1);
    // Typed APIs map answers and errors the same way.
    assert_eq!(client.server_stats().await.unwrap().connection_count, 1);
    let users = client.store().bucket::<serde_json::Value>("users");
    assert_eq!(
        users.get("a").await.unwrap_err().code(),
        Some(ErrorCode::BucketNotDefined)
    );
    client.disconnect().await;
    server.stop(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn pong_replies_keep_a_short_heartbeat_alive() {
    let server = start(0, Some(50)).await;
    let (client, mut events) = Client::connect_with_events(&url(&server), ClientOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        events.next().await,
        Some(ClientEvent::Connected(_))
    ));
    // Ten heartbeat periods: without pongs the server closes with 4001 after ~2.
    let quiet = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(quiet.is_err(), "no lifecycle event expected, got {quiet:?}");
    let err = client.rules().stats().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RulesNotAvailable));
    assert_eq!(server.connection_count(), 1);
    client.disconnect().await;
    server.stop(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn without_pong_replies_the_heartbeat_closes_the_connection() {
    let server = start(0, Some(50)).await;
    let options = ClientOptions {
        heartbeat_replies: false,
        reconnect: ReconnectPolicy {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let (_client, mut events) = Client::connect_with_events(&url(&server), options)
        .await
        .unwrap();
    assert!(matches!(
        events.next().await,
        Some(ClientEvent::Connected(_))
    ));
    let next = tokio::time::timeout(GUARD, events.next()).await.unwrap();
    assert_eq!(
        next,
        Some(ClientEvent::Disconnected {
            will_reconnect: false
        })
    );
    server.stop(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn server_restart_reconnects_and_fails_pending_requests() {
    let server = start(0, None).await;
    let port = server.local_addr().port();
    let (client, mut events) = Client::connect_with_events(&url(&server), fast_reconnect())
        .await
        .unwrap();
    assert!(matches!(
        events.next().await,
        Some(ClientEvent::Connected(_))
    ));

    // Graceful stop: a shutdown notice, then the close.
    server.stop(Duration::from_millis(50)).await;
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(GUARD, events.next())
            .await
            .unwrap()
            .unwrap();
        let reconnecting = matches!(event, ClientEvent::Reconnecting { .. });
        seen.push(event);
        if reconnecting {
            break;
        }
    }
    assert!(
        seen.contains(&ClientEvent::Disconnected {
            will_reconnect: true
        }),
        "{seen:?}"
    );
    assert!(matches!(
        seen.last(),
        Some(ClientEvent::Reconnecting { attempt: 1, .. })
    ));
    // While reconnecting, requests fail at once.
    assert_eq!(
        client.rules().stats().await.unwrap_err(),
        ClientError::Disconnected
    );

    let _server = start(port, None).await;
    loop {
        match tokio::time::timeout(GUARD, events.next())
            .await
            .unwrap()
            .unwrap()
        {
            ClientEvent::Reconnected(welcome) => {
                assert_eq!(welcome.version, noex_protocol::PROTOCOL_VERSION);
                break;
            }
            ClientEvent::Reconnecting { .. } | ClientEvent::Disconnected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        client.rules().stats().await.unwrap_err().code(),
        Some(ErrorCode::RulesNotAvailable)
    );

    // Requests in flight at a drop fail with Disconnected: tested deterministically (a
    // proxy cuts the connection mid-request) in end_to_end/reconnect.rs.
    client.disconnect().await;
    let last = tokio::time::timeout(GUARD, async {
        let mut last = None;
        while let Some(e) = events.next().await {
            last = Some(e);
        }
        last
    })
    .await
    .unwrap();
    assert_eq!(
        last,
        Some(ClientEvent::Disconnected {
            will_reconnect: false
        })
    );
}

#[tokio::test]
async fn disconnect_ends_the_client() {
    let server = start(0, None).await;
    let client = Client::connect(&url(&server), ClientOptions::default())
        .await
        .unwrap();
    client.disconnect().await;
    assert_eq!(
        client.rules().stats().await.unwrap_err(),
        ClientError::Disconnected
    );
    let mut events = client.events();
    assert_eq!(
        tokio::time::timeout(GUARD, events.next()).await.unwrap(),
        None
    );
    server.stop(Duration::from_millis(100)).await;
}
