//! Connection loss against the real server: a server restart on the same port (the client
//! reconnects, logs in again with its token, re-subscribes and its streams deliver fresh
//! data), a cut connection with requests in flight (they fail with `Disconnected` and are
//! never retried), and request timeouts.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use noex_client::{Client, ClientError, ClientEvent, ClientOptions};
use noex_protocol::ErrorCode;
use noex_protocol::payloads::WhoAmI;
use noex_server::{Server, ServerConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::{
    Proxy, auth_config, config, connect, connect_watching, events_until, fast_reconnect, next, obj,
    start, url, within,
};

#[derive(Debug, Deserialize)]
struct Task {
    id: String,
}

fn ids(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

fn is_reconnected(event: &ClientEvent) -> bool {
    matches!(event, ClientEvent::Reconnected(_))
}

#[tokio::test]
async fn server_restart_on_the_same_port_relogs_in_and_resubscribes() {
    let server = start(auth_config()).await;
    let port = server.local_addr().port();
    let options = ClientOptions {
        auth_token: Some("writer-t".into()),
        ..fast_reconnect()
    };
    let (client, mut events) = connect_watching(&url(&server), options).await;
    let mut all = client
        .store()
        .subscribe::<Vec<Task>>("all-tasks", None)
        .await
        .unwrap();
    let open = client
        .store()
        .subscribe::<u64>("open-count", None)
        .await
        .unwrap();
    let mut orders = client.rules().subscribe("order.*").await.unwrap();
    assert!(next("initial", &mut all).await.unwrap().is_empty());

    // Another client's insert is pushed.
    let other = Client::connect(
        &url(&server),
        ClientOptions {
            auth_token: Some("admin-t".into()),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    let tasks = other.store().bucket::<Value>("tasks");
    tasks
        .insert(json!({"id": "t1", "title": "before"}))
        .await
        .unwrap();
    assert_eq!(ids(&next("push t1", &mut all).await.unwrap()), ["t1"]);
    other.disconnect().await;

    // Stop the server: shutdown notice, disconnected, reconnecting.
    server.stop(Duration::from_millis(50)).await;
    let seen = events_until(&mut events, |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    assert!(
        seen.contains(&ClientEvent::Disconnected {
            will_reconnect: true
        }),
        "{seen:?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(ClientEvent::Reconnecting { attempt: 1, .. })
        ),
        "{seen:?}"
    );
    // While disconnected, requests fail at once (never queued for later).
    assert_eq!(
        client.auth().whoami().await.unwrap_err(),
        ClientError::Disconnected
    );
    // A subscription dropped while disconnected is not re-established.
    drop(open);

    // The data changes while the client is away; the restarted server keeps the store
    // (like a durable one would).
    server
        .store()
        .bucket("tasks")
        .insert(obj(json!({"id": "t2", "title": "while away"})))
        .unwrap();
    let mut restarted_config: ServerConfig = auth_config();
    restarted_config.port = port;
    let restarted = Server::builder(restarted_config)
        .store(server.store().clone())
        .start()
        .await
        .expect("restarts on the same port");
    assert_eq!(restarted.local_addr().port(), port);

    let seen = events_until(&mut events, is_reconnected).await;
    for event in &seen[..seen.len() - 1] {
        assert!(
            matches!(
                event,
                ClientEvent::Reconnecting { .. } | ClientEvent::Disconnected { .. }
            ),
            "unexpected {event:?} in {seen:?}"
        );
    }
    // The existing stream delivers the fresh result of the re-subscription.
    assert_eq!(
        ids(&next("fresh data after reconnect", &mut all).await.unwrap()),
        ["t1", "t2"]
    );
    // Logged in again automatically (the re-login precedes every later request).
    match client.auth().whoami().await.unwrap() {
        WhoAmI::Authenticated { user_id, .. } => assert_eq!(user_id, "wes"),
        other => panic!("not logged in again: {other:?}"),
    }
    let stats = restarted.stats();
    assert_eq!(stats.connections.authenticated, 1);
    assert_eq!(
        stats.connections.total_store_subscriptions, 1,
        "only the live store subscription came back"
    );
    assert_eq!(stats.connections.total_rules_subscriptions, 1);

    // Later changes keep flowing into the same streams.
    let other = Client::connect(
        &url(&restarted),
        ClientOptions {
            auth_token: Some("admin-t".into()),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    other
        .store()
        .bucket::<Value>("tasks")
        .insert(json!({"id": "t3", "title": "after"}))
        .await
        .unwrap();
    assert_eq!(
        ids(&next("push after reconnect", &mut all).await.unwrap()),
        ["t1", "t2", "t3"]
    );
    let placed = other
        .rules()
        .emit("order.placed", obj(json!({"orderId": "o1"})))
        .await
        .unwrap();
    let push = next("rules push after reconnect", &mut orders)
        .await
        .unwrap();
    assert_eq!(push.event.id, placed.id);

    drop(all);
    drop(orders);
    client.auth().whoami().await.unwrap();
    assert_eq!(restarted.stats().connections.total_store_subscriptions, 0);
    assert_eq!(restarted.stats().connections.total_rules_subscriptions, 0);

    client.disconnect().await;
    let seen = events_until(&mut events, |e| {
        *e == ClientEvent::Disconnected {
            will_reconnect: false,
        }
    })
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        within("events end", events.next()).await,
        None,
        "the event stream ends with the client"
    );
    other.disconnect().await;
    restarted.stop(Duration::ZERO).await;
}

#[tokio::test]
async fn a_cut_connection_fails_requests_in_flight_and_never_retries_them() {
    let server = start(config()).await;
    let proxy = Proxy::start(&server).await;
    let (client, mut events) = connect_watching(&proxy.url(), fast_reconnect()).await;
    let mut all = client
        .store()
        .subscribe::<Vec<Task>>("all-tasks", None)
        .await
        .unwrap();
    assert!(next("initial", &mut all).await.unwrap().is_empty());

    // The insert leaves the client but never reaches the server.
    proxy.stall();
    let in_flight = {
        let tasks = client.store().bucket::<Value>("tasks");
        tokio::spawn(async move { tasks.insert(json!({"id": "lost", "title": "x"})).await })
    };
    proxy.swallowed(1).await;
    proxy.cut().await;
    assert_eq!(
        within("the pending insert", in_flight).await.unwrap(),
        Err(ClientError::Disconnected)
    );
    let seen = events_until(&mut events, is_reconnected).await;
    assert_eq!(
        seen.first(),
        Some(&ClientEvent::Disconnected {
            will_reconnect: true
        }),
        "{seen:?}"
    );
    assert!(
        matches!(
            seen.get(1),
            Some(ClientEvent::Reconnecting { attempt: 1, .. })
        ),
        "{seen:?}"
    );

    // Re-subscribed: a fresh (still empty) result, then pushes again.
    assert!(next("fresh data", &mut all).await.unwrap().is_empty());
    // The lost insert was not retried behind the caller's back.
    let tasks = client.store().bucket::<Task>("tasks");
    assert_eq!(tasks.get("lost").await.unwrap().map(|t| t.id), None);
    server.store().settle().await;
    assert_eq!(
        tasks.count(None).await.unwrap(),
        0,
        "the insert failed with Disconnected and was never sent again"
    );

    let other = connect(&server).await;
    other
        .store()
        .bucket::<Value>("tasks")
        .insert(json!({"id": "t1", "title": "x"}))
        .await
        .unwrap();
    assert_eq!(ids(&next("push", &mut all).await.unwrap()), ["t1"]);
    // Every notification of the insert is out, and a round trip on this connection has
    // passed: a second push would be here by now.
    server.store().settle().await;
    client.store().buckets().await.unwrap();
    assert!(all.next().now_or_never().is_none(), "exactly one push");
    client.disconnect().await;
    assert!(
        within("the stream ends", all.next()).await.is_none(),
        "a subscription stream ends when its client is closed"
    );
    other.disconnect().await;
}

#[tokio::test]
async fn an_unanswered_request_times_out_without_dropping_the_connection() {
    let server = start(config()).await;
    let proxy = Proxy::start(&server).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        ..fast_reconnect()
    };
    let (client, mut events) = connect_watching(&proxy.url(), options).await;
    assert_eq!(client.store().buckets().await.unwrap().count, 2);

    proxy.stall();
    let started = tokio::time::Instant::now();
    let err = within("the timeout", client.store().buckets())
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(200));
    // A timeout is no disconnect.
    assert!(events.next().now_or_never().is_none());

    // Once the connection is replaced the client works again.
    proxy.cut().await;
    events_until(&mut events, is_reconnected).await;
    assert_eq!(client.store().buckets().await.unwrap().count, 2);
    client.disconnect().await;
}

#[tokio::test]
async fn a_failed_relogin_after_reconnect_is_reported_as_an_error_event() {
    let server = start(auth_config()).await;
    let port = server.local_addr().port();
    let options = ClientOptions {
        auth_token: Some("writer-t".into()),
        ..fast_reconnect()
    };
    let (client, mut events) = connect_watching(&url(&server), options).await;
    server.stop(Duration::ZERO).await;
    events_until(&mut events, |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;

    // The restarted server no longer knows the token.
    let mut restarted_config = auth_config();
    restarted_config.port = port;
    if let Some(auth) = restarted_config.auth.as_mut()
        && let Some(tokens) = auth.tokens.as_mut()
    {
        tokens.remove("writer-t");
    }
    let restarted = start(restarted_config).await;
    events_until(&mut events, is_reconnected).await;
    match next("relogin error", &mut events).await {
        ClientEvent::Error(err) => assert_eq!(err.code(), Some(ErrorCode::Unauthorized)),
        other => panic!("expected the relogin error, got {other:?}"),
    }
    assert_eq!(
        client.auth().whoami().await.unwrap(),
        WhoAmI::Anonymous {
            authenticated: false
        }
    );
    client.disconnect().await;
    restarted.stop(Duration::ZERO).await;
}

/// After a restart where the query is gone, the re-subscription fails: the stream yields
/// that error as its last item and ends (instead of staying silent). A login made at run
/// time (no `auth_token` option) is replayed after the reconnect.
#[tokio::test]
async fn a_failed_resubscription_ends_the_stream_and_a_runtime_login_is_replayed() {
    let server = start(auth_config()).await;
    let port = server.local_addr().port();
    let (client, mut events) = connect_watching(&url(&server), fast_reconnect()).await;
    client.auth().login("writer-t").await.unwrap();
    let mut all = client
        .store()
        .subscribe::<Vec<Task>>("all-tasks", None)
        .await
        .unwrap();
    assert!(next("initial", &mut all).await.unwrap().is_empty());

    server.stop(Duration::from_millis(50)).await;
    events_until(&mut events, |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    server.store().undefine_query("all-tasks").unwrap();
    let mut restarted_config: ServerConfig = auth_config();
    restarted_config.port = port;
    restarted_config.store = Default::default();
    let _restarted = Server::builder(restarted_config)
        .store(server.store().clone())
        .start()
        .await
        .expect("restarts on the same port");
    events_until(&mut events, is_reconnected).await;

    let ended = next("the re-subscription's failure", &mut all).await;
    assert!(
        matches!(
            &ended,
            Err(ClientError::Server {
                code: ErrorCode::QueryNotDefined,
                ..
            })
        ),
        "{ended:?}"
    );
    assert!(
        within("end of stream", all.next()).await.is_none(),
        "the stream ends after its error"
    );
    // The runtime login was replayed before the re-subscription.
    match client.auth().whoami().await.unwrap() {
        WhoAmI::Authenticated { user_id, .. } => assert_eq!(user_id, "wes"),
        other => panic!("not logged in again: {other:?}"),
    }
}
