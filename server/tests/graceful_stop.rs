//! The end of a graceful stop, on the real binary: every connection, whatever it is doing,
//! gets a close frame with code 1000 — never a bare TCP close (which a browser reports as
//! 1006) — and the process exits with success. Run many times, since the failure was a race
//! (3 of 10 SIGTERM probes with `--shutdown-grace-ms 300` saw a bare close).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Binary, Client, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// How many stops are probed.
const ROUNDS: usize = 50;

/// Reads on after the close frame, as a WebSocket client does: that sends the client's
/// reply, which the server awaits before it drops the socket, until the stream ends.
async fn finish_handshake(client: &mut Client, code: u16) -> Result<u16, String> {
    match tokio::time::timeout(WAIT, async { while client.ws.next().await.is_some() {} }).await {
        Ok(()) => Ok(code),
        Err(_) => Err(format!("close {code}, then the stream did not end")),
    }
}

/// What a client saw at the end: the close code, or why there was none.
async fn close_code(client: &mut Client) -> Result<u16, String> {
    loop {
        match tokio::time::timeout(WAIT, client.ws.next()).await {
            Err(_) => return Err("no close within the wait bound".into()),
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return finish_handshake(client, u16::from(frame.code)).await;
            }
            Ok(Some(Ok(Message::Close(None)))) => return Err("close frame without a code".into()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(err))) => return Err(format!("bare close: {err}")),
            Ok(None) => return Err("stream ended without a close frame".into()),
        }
    }
}

/// A client that keeps a request in flight until the server closes: it sends the next
/// `store.buckets` as soon as the previous answer arrives, so the stop finds it mid-request.
async fn busy_until_closed(mut client: Client) -> Result<u16, String> {
    let mut id = 0u64;
    loop {
        id += 1;
        let request = json!({"id": id, "type": "store.buckets"}).to_string();
        // A send can fail once the server has closed; the close frame is read below.
        let _ = client.ws.send(Message::Text(request.into())).await;
        loop {
            match tokio::time::timeout(WAIT, client.ws.next()).await {
                Err(_) => return Err("no answer or close within the wait bound".into()),
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return finish_handshake(&mut client, u16::from(frame.code)).await;
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    if text.as_str().contains("\"result\"") {
                        break;
                    }
                }
                Ok(Some(Ok(Message::Close(None)))) => {
                    return Err("close frame without a code".into());
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(err))) => return Err(format!("bare close: {err}")),
                Ok(None) => return Err("stream ended without a close frame".into()),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_gets_close_1000_at_the_end_of_a_graceful_stop() {
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let mut server = Binary::spawn(&["--shutdown-grace-ms", "30"]).await;
        let (mut idle, _) = Client::connect_url(&server.url).await;
        let (mut subscribed, _) = Client::connect_url(&server.url).await;
        subscribed
            .ok("rules.subscribe", json!({"pattern": "*"}))
            .await;
        let (busy, _) = Client::connect_url(&server.url).await;
        let busy = tokio::spawn(busy_until_closed(busy));

        let status = Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());

        let idle = close_code(&mut idle).await;
        let subscribed = close_code(&mut subscribed).await;
        let busy = busy.await.expect("busy client task");
        // Every client has its close: the process is exiting.
        let exit = server.child.wait().expect("reaped");
        for (who, seen) in [("idle", idle), ("subscribed", subscribed), ("busy", busy)] {
            if seen != Ok(1000) {
                failures.push(format!("round {round}: {who} saw {seen:?}"));
            }
        }
        assert!(exit.success(), "round {round}: graceful exit, got {exit:?}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Fast enough to run with the suite (each round is a process start and a 30 ms grace).
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
}
