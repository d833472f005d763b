//! Scripted-server tests: a tiny WebSocket server written in the test plays the server's
//! part frame by frame, for client behaviour the real server does not serve yet (CRUD
//! results, subscription pushes, re-subscription and re-login after a reconnect,
//! timeouts against a server that never answers).
#![cfg(feature = "native")]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use noex_client::{Client, ClientError, ClientEvent, ClientOptions, ReconnectPolicy, Record};
use noex_protocol::payloads::EventPush;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const GUARD: Duration = Duration::from_secs(10);

type Conn = WebSocketStream<TcpStream>;

/// Accepts connections and hands each to the test.
async fn scripted_server() -> (String, mpsc::UnboundedReceiver<Conn>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await
                && tx.send(ws).is_err()
            {
                break;
            }
        }
    });
    (url, rx)
}

async fn next_conn(rx: &mut mpsc::UnboundedReceiver<Conn>) -> Conn {
    let mut conn = tokio::time::timeout(GUARD, rx.recv())
        .await
        .unwrap()
        .unwrap();
    send(
        &mut conn,
        json!({"type": "welcome", "version": "1.0.0", "serverTime": 1, "requiresAuth": false}),
    )
    .await;
    conn
}

async fn send(conn: &mut Conn, value: Value) {
    conn.send(Message::text(value.to_string())).await.unwrap();
}

async fn recv(conn: &mut Conn) -> Value {
    loop {
        match tokio::time::timeout(GUARD, conn.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn answer(conn: &mut Conn, request: &Value, data: Value) {
    send(
        conn,
        json!({"id": request["id"], "type": "result", "data": data}),
    )
    .await;
}

fn options() -> ClientOptions {
    ClientOptions {
        reconnect: ReconnectPolicy {
            initial_delay_ms: 10,
            jitter_ms: 5,
            max_delay_ms: 50,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: String,
    name: String,
}

#[tokio::test]
async fn scripted_request_times_out_when_the_server_never_answers() {
    let (url, mut conns) = scripted_server().await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(100),
        ..options()
    };
    let connect = tokio::spawn({
        let url = url.clone();
        async move { Client::connect_with_events(&url, options).await }
    });
    let mut conn = next_conn(&mut conns).await;
    let (client, _events) = connect.await.unwrap().unwrap();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.rules().stats().await }
    });
    let request = recv(&mut conn).await;
    assert_eq!(request["type"], "rules.stats");
    let outcome = tokio::time::timeout(GUARD, call).await.unwrap().unwrap();
    assert_eq!(outcome.unwrap_err(), ClientError::Timeout);
    // The connection is still usable afterwards; the late answer is ignored.
    answer(&mut conn, &request, json!({})).await;
    let next = tokio::spawn({
        let client = client.clone();
        async move { client.auth().logout().await }
    });
    let request = recv(&mut conn).await;
    assert_eq!(request["type"], "auth.logout");
    answer(&mut conn, &request, json!({"loggedOut": true})).await;
    assert!(next.await.unwrap().unwrap().logged_out);
}

#[tokio::test]
async fn scripted_pending_request_fails_with_disconnected_when_the_connection_drops() {
    let (url, mut conns) = scripted_server().await;
    let options = ClientOptions {
        reconnect: ReconnectPolicy {
            enabled: false,
            ..Default::default()
        },
        ..options()
    };
    let connect = tokio::spawn({
        let url = url.clone();
        async move { Client::connect(&url, options).await }
    });
    let mut conn = next_conn(&mut conns).await;
    let client = connect.await.unwrap().unwrap();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.rules().get_fact("k").await }
    });
    let request = recv(&mut conn).await;
    assert_eq!(
        request,
        json!({"id": request["id"], "type": "rules.getFact", "key": "k"})
    );
    drop(conn);
    let outcome = tokio::time::timeout(GUARD, call).await.unwrap().unwrap();
    assert_eq!(outcome.unwrap_err(), ClientError::Disconnected);
}

#[tokio::test]
async fn scripted_typed_bucket_operations() {
    let (url, mut conns) = scripted_server().await;
    let connect = tokio::spawn({
        let url = url.clone();
        let options = options();
        async move { Client::connect(&url, options).await }
    });
    let mut conn = next_conn(&mut conns).await;
    let client = connect.await.unwrap().unwrap();
    let users = client.store().bucket::<Record<User>>("users");

    let task = tokio::spawn({
        let users = users.clone();
        async move {
            let inserted = users.insert(json!({"name": "Alice"})).await?;
            let missing = users.get("nope").await?;
            let all = users.all().await?;
            let deleted = users.delete(&inserted.data.id).await?;
            Ok::<_, ClientError>((inserted, missing, all, deleted))
        }
    });
    let alice =
        json!({"id": "a1", "name": "Alice", "_version": 1, "_createdAt": 5, "_updatedAt": 5});
    let r = recv(&mut conn).await;
    assert_eq!(r["type"], "store.insert");
    assert_eq!(r["data"], json!({"name": "Alice"}));
    answer(&mut conn, &r, alice.clone()).await;
    let r = recv(&mut conn).await;
    assert_eq!(
        (r["type"].as_str(), &r["key"]),
        (Some("store.get"), &json!("nope"))
    );
    answer(&mut conn, &r, Value::Null).await;
    let r = recv(&mut conn).await;
    assert_eq!(r["type"], "store.all");
    answer(&mut conn, &r, json!([alice])).await;
    let r = recv(&mut conn).await;
    assert_eq!(
        (r["type"].as_str(), &r["key"]),
        (Some("store.delete"), &json!("a1"))
    );
    answer(&mut conn, &r, json!({"deleted": true})).await;

    let (inserted, missing, all, deleted) = task.await.unwrap().unwrap();
    assert_eq!(
        inserted.data,
        User {
            id: "a1".into(),
            name: "Alice".into()
        }
    );
    assert_eq!(inserted.version, 1);
    assert_eq!(missing, None);
    assert_eq!(all, vec![inserted]);
    assert!(deleted);

    // A result of the wrong shape is a decode error, not a panic.
    let task = tokio::spawn(async move { users.count(None).await });
    let r = recv(&mut conn).await;
    answer(&mut conn, &r, json!("many")).await;
    assert!(matches!(task.await.unwrap(), Err(ClientError::Decode(_))));
}

#[tokio::test]
async fn scripted_subscriptions_resubscribe_and_relogin_after_reconnect() {
    let (url, mut conns) = scripted_server().await;
    let options = ClientOptions {
        auth_token: Some("tok".into()),
        ..options()
    };
    let connect = tokio::spawn({
        let url = url.clone();
        async move { Client::connect_with_events(&url, options).await }
    });
    let mut conn = next_conn(&mut conns).await;
    let login = recv(&mut conn).await;
    assert_eq!(login["type"], "auth.login");
    assert_eq!(login["token"], "tok");
    answer(
        &mut conn,
        &login,
        json!({"userId": "u1", "roles": [], "expiresAt": null}),
    )
    .await;
    let (client, mut events) = connect.await.unwrap().unwrap();
    assert!(matches!(
        events.next().await,
        Some(ClientEvent::Connected(_))
    ));

    // Store subscription: the first item is the initial data, then pushes.
    let sub = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .store()
                .subscribe::<Vec<String>>("names", Some(json!({"min": 1})))
                .await
        }
    });
    let r = recv(&mut conn).await;
    assert_eq!(
        r,
        json!({"id": r["id"], "type": "store.subscribe", "query": "names", "params": {"min": 1}})
    );
    answer(
        &mut conn,
        &r,
        json!({"subscriptionId": "s1", "data": ["a"]}),
    )
    .await;
    let mut names = sub.await.unwrap().unwrap();
    assert_eq!(names.next().await.unwrap().unwrap(), vec!["a"]);
    send(&mut conn, json!({"type": "push", "channel": "subscription", "subscriptionId": "s1", "data": ["a", "b"]})).await;
    assert_eq!(names.next().await.unwrap().unwrap(), vec!["a", "b"]);

    // Rules subscription: items are event pushes.
    let sub = tokio::spawn({
        let client = client.clone();
        async move { client.rules().subscribe("order.*").await }
    });
    let r = recv(&mut conn).await;
    assert_eq!(r["type"], "rules.subscribe");
    answer(&mut conn, &r, json!({"subscriptionId": "r1"})).await;
    let mut orders = sub.await.unwrap().unwrap();
    let event =
        json!({"id": "e1", "topic": "order.created", "data": {}, "timestamp": 3, "source": "api"});
    send(&mut conn, json!({"type": "push", "channel": "event", "subscriptionId": "r1", "data": {"topic": "order.created", "event": event}})).await;
    let push: EventPush = orders.next().await.unwrap().unwrap();
    assert_eq!(push.topic, "order.created");
    assert_eq!(push.event.id, "e1");

    // The connection drops; the client reconnects, logs in again, then re-subscribes.
    drop(conn);
    let mut conn = next_conn(&mut conns).await;
    let login = recv(&mut conn).await;
    assert_eq!(
        (login["type"].as_str(), login["token"].as_str()),
        (Some("auth.login"), Some("tok"))
    );
    let resub_store = recv(&mut conn).await;
    assert_eq!(resub_store["type"], "store.subscribe");
    assert_eq!(resub_store["params"], json!({"min": 1}));
    let resub_rules = recv(&mut conn).await;
    assert_eq!(resub_rules["type"], "rules.subscribe");
    answer(
        &mut conn,
        &login,
        json!({"userId": "u1", "roles": [], "expiresAt": null}),
    )
    .await;
    answer(
        &mut conn,
        &resub_store,
        json!({"subscriptionId": "s2", "data": ["a", "b", "c"]}),
    )
    .await;
    answer(&mut conn, &resub_rules, json!({"subscriptionId": "r2"})).await;
    // Fresh data reaches the existing stream.
    assert_eq!(names.next().await.unwrap().unwrap(), vec!["a", "b", "c"]);
    // Pushes under the old id are not delivered; under the new one they are.
    send(
        &mut conn,
        json!({"type": "push", "channel": "subscription", "subscriptionId": "s1", "data": ["old"]}),
    )
    .await;
    send(
        &mut conn,
        json!({"type": "push", "channel": "subscription", "subscriptionId": "s2", "data": ["new"]}),
    )
    .await;
    assert_eq!(names.next().await.unwrap().unwrap(), vec!["new"]);

    let mut kinds = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
        kinds.push(match e {
            ClientEvent::Disconnected { .. } => "disconnected",
            ClientEvent::Reconnecting { .. } => "reconnecting",
            ClientEvent::Reconnected(_) => "reconnected",
            _ => "other",
        });
    }
    assert_eq!(kinds, vec!["disconnected", "reconnecting", "reconnected"]);

    // Dropping the stream unsubscribes with the current server id.
    drop(names);
    let r = recv(&mut conn).await;
    assert_eq!(
        r,
        json!({"id": r["id"], "type": "store.unsubscribe", "subscriptionId": "s2"})
    );
    drop(orders);
    let r = recv(&mut conn).await;
    assert_eq!(
        r,
        json!({"id": r["id"], "type": "rules.unsubscribe", "subscriptionId": "r2"})
    );
    client.disconnect().await;
}
