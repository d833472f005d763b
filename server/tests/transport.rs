//! The server skeleton over a real WebSocket: welcome, frame validation, routing errors,
//! transport limits, ordering, heartbeat and graceful shutdown.

mod common;

use std::time::Duration;

use common::{Client, local_config, start};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn welcome_is_the_first_frame() {
    let server = start(local_config()).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (_client, welcome) = Client::connect(&server).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["version"], "1.0.0");
    assert_eq!(welcome["requiresAuth"], false);
    let server_time = welcome["serverTime"].as_u64().expect("serverTime is ms");
    assert!(server_time >= before && server_time < before + 60_000);
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn every_malformed_frame_gets_its_error_with_id_zero() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    let cases = [
        ("{not json", "PARSE_ERROR"),
        ("[1,2]", "PARSE_ERROR"),
        ("null", "PARSE_ERROR"),
        ("12", "PARSE_ERROR"),
        ("\"text\"", "PARSE_ERROR"),
        (r#"{"id":1}"#, "INVALID_REQUEST"),
        (r#"{"id":1,"type":""}"#, "INVALID_REQUEST"),
        (r#"{"id":1,"type":7}"#, "INVALID_REQUEST"),
        (r#"{"type":"pong"}"#, "INVALID_REQUEST"),
        (r#"{"type":"pong","timestamp":"x"}"#, "INVALID_REQUEST"),
        (r#"{"type":"store.all","bucket":"a"}"#, "INVALID_REQUEST"),
        (r#"{"type":"store.all","id":"1"}"#, "INVALID_REQUEST"),
    ];
    for (frame, code) in cases {
        client.send_text(frame).await;
        let reply = client.recv().await;
        assert_eq!(reply["type"], "error", "{frame}");
        assert_eq!(reply["id"], 0, "{frame}");
        assert_eq!(reply["code"], code, "{frame}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        client.request(json!({"id": 5, "type": "nope.op"})).await["id"],
        5,
        "the connection survives malformed frames"
    );
}

#[tokio::test]
async fn unknown_operations_and_unconfigured_namespaces() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    for op in [
        "foo.bar",
        "store.nope",
        "nonamespace",
        "auth.login",
        "auth.whoami",
    ] {
        let reply = client
            .request(json!({"id": 3, "type": op, "token": "t"}))
            .await;
        assert_eq!(reply["code"], "UNKNOWN_OPERATION", "{op}");
        assert_eq!(reply["id"], 3);
    }
    let reply = client
        .request(json!({"id": 4, "type": "rules.emit", "topic": "a"}))
        .await;
    assert_eq!(reply["code"], "RULES_NOT_AVAILABLE");
    assert_eq!(reply["message"], "Rule engine is not configured");
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    client
        .ws
        .send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(
        client.expect_close().await,
        (1003, "binary_not_supported".into())
    );
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009() {
    let mut config = local_config();
    config.max_payload_bytes = 1024;
    let server = start(config).await;
    let (mut client, _) = Client::connect(&server).await;
    // Just under the limit still works.
    let ok = json!({"id": 1, "type": "x.y", "pad": "a".repeat(900)});
    assert_eq!(client.request(ok).await["id"], 1);
    let big = json!({"id": 2, "type": "x.y", "pad": "a".repeat(2000)});
    client.send(big).await;
    assert_eq!(client.expect_close().await.0, 1009);
}

#[tokio::test]
async fn upgrades_on_another_path_are_refused() {
    let mut config = local_config();
    config.path = "/ws".into();
    let server = start(config).await;
    let wrong = format!("ws://{}/other", server.local_addr());
    let err = tokio_tungstenite::connect_async(&wrong).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
    let right = format!("ws://{}/ws", server.local_addr());
    let (_client, welcome) = Client::connect_url(&right).await;
    assert_eq!(welcome["type"], "welcome");
}

#[tokio::test]
async fn a_burst_of_1000_requests_is_answered_in_order() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    for id in 1..=1000u64 {
        // Alternate kinds of answers so that ordering does not rely on identical work.
        let frame = match id % 3 {
            0 => json!({"id": id, "type": "rules.stats"}),
            1 => json!({"id": id, "type": "nope.x"}),
            _ => json!({"id": id, "type": "store.first", "bucket": "b", "n": 0}),
        };
        client
            .ws
            .feed(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    client.ws.flush().await.unwrap();
    for id in 1..=1000u64 {
        let reply = client.recv().await;
        assert_eq!(reply["id"], id);
    }
}

#[tokio::test]
async fn pong_is_accepted_silently() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    client.send(json!({"type": "pong", "timestamp": 123})).await;
    // The next frame must be the answer to this request, not an answer to the pong.
    let reply = client.request(json!({"id": 9, "type": "nope.x"})).await;
    assert_eq!(reply["id"], 9);
}

#[tokio::test]
async fn request_ids_are_echoed_exactly() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    client.send_text(r#"{"id":7.5,"type":"nope.x"}"#).await;
    let reply = client.recv().await;
    assert_eq!(reply["id"], json!(7.5));
}

#[tokio::test]
async fn heartbeat_closes_a_silent_client_and_keeps_a_ponging_one() {
    let mut config = local_config();
    config.heartbeat.interval_ms = 50;
    let server = start(config).await;

    let (mut silent, _) = Client::connect(&server).await;
    let (mut polite, _) = Client::connect(&server).await;
    // The polite client answers three pings; meanwhile the silent one is closed.
    for _ in 0..3 {
        let ping = polite.recv().await;
        assert_eq!(ping["type"], "ping");
        let ts = ping["timestamp"].clone();
        polite.send(json!({"type": "pong", "timestamp": ts})).await;
    }
    assert_eq!(
        silent.expect_close().await,
        (4001, "heartbeat_timeout".into())
    );
    let reply = polite.request(json!({"id": 1, "type": "nope.x"})).await;
    // A ping may arrive before the answer; skip it.
    let reply = if reply["type"] == "ping" {
        polite.recv().await
    } else {
        reply
    };
    assert_eq!(reply["id"], 1);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_ping_closes_after_the_timeout_not_the_interval() {
    let mut config = local_config();
    config.heartbeat.interval_ms = 2_000;
    config.heartbeat.timeout_ms = 500;
    let server = start(config).await;
    let (mut client, _) = Client::connect(&server).await;
    // Paused time auto-advances while everything waits: the first ping comes at 2 s.
    let ping = client.recv().await;
    assert_eq!(ping["type"], "ping");
    let sent_at = tokio::time::Instant::now();
    assert_eq!(
        client.expect_close().await,
        (4001, "heartbeat_timeout".into())
    );
    let waited = sent_at.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(2),
        "closed {waited:?} after the ping"
    );
}

#[tokio::test]
async fn graceful_stop_announces_then_closes_with_1000() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    let addr = server.local_addr();
    let stopping = tokio::spawn(async move {
        server.stop(Duration::from_secs(30)).await;
        server
    });
    let notice = client.recv().await;
    assert_eq!(
        notice,
        json!({"type": "system", "event": "shutdown", "gracePeriodMs": 30000})
    );

    // A connection arriving during the grace period is closed with 1001.
    let (mut late, _) = {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        (Client::from_ws(ws), ())
    };
    assert_eq!(
        late.expect_close().await,
        (1001, "server_shutting_down".into())
    );

    // The client leaves: the server stops before the grace ends.
    client.ws.close(None).await.unwrap();
    let server = tokio::time::timeout(common::WAIT, stopping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.connection_count(), 0);
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn grace_end_closes_remaining_clients_with_server_shutdown() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    let stop = tokio::spawn(async move { server.stop(Duration::from_millis(100)).await });
    let notice: Value = client.recv().await;
    assert_eq!(notice["gracePeriodMs"], 100);
    assert_eq!(
        client.expect_close().await,
        (1000, "server_shutdown".into())
    );
    stop.await.unwrap();
}

#[tokio::test]
async fn stop_without_grace_closes_at_once() {
    let server = start(local_config()).await;
    let (mut client, _) = Client::connect(&server).await;
    server.stop(Duration::ZERO).await;
    assert_eq!(
        client.expect_close().await,
        (1000, "server_shutdown".into())
    );
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn connection_count_follows_clients() {
    let server = start(local_config()).await;
    let (a, _) = Client::connect(&server).await;
    let (mut b, _) = Client::connect(&server).await;
    assert_eq!(server.connection_count(), 2);
    drop(a);
    b.ws.close(None).await.unwrap();
    tokio::time::timeout(common::WAIT, async {
        while server.connection_count() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both connections are released");
}

#[tokio::test]
async fn server_connections_lists_every_open_connection() {
    let server = start(local_config()).await;
    let (mut a, _) = Client::connect(&server).await;
    let (_b, _) = Client::connect(&server).await;
    let reply = a
        .request(json!({"id": 1, "type": "server.connections"}))
        .await;
    let list = reply["data"].as_array().expect("a list").clone();
    assert_eq!(list.len(), 2);
    for entry in &list {
        assert!(entry["connectionId"].as_str().unwrap().starts_with("conn-"));
        assert_eq!(entry["remoteAddress"], "127.0.0.1");
        assert!(entry["connectedAt"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(entry["authenticated"], false);
        assert_eq!(entry["userId"], Value::Null);
        assert_eq!(entry["storeSubscriptionCount"], 0);
        assert_eq!(entry["rulesSubscriptionCount"], 0);
    }
    assert_ne!(list[0]["connectionId"], list[1]["connectionId"]);
}
