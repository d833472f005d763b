//! The raw baseline: a minimal tokio-tungstenite server (`noex-bench echo-server`).
//!
//! What it measures: the cost of a bare WebSocket server on the same machine in the same
//! run. Every text frame is parsed as JSON once (as any JSON protocol server must) and a
//! request is answered with `{"id":<same id>,"type":"result","data":null}`. For `fanout`
//! a `store.insert` frame is additionally broadcast to every other connection as
//! `{"type":"push","channel":"subscription","subscriptionId":"echo","data":<data.n>}`,
//! serialized once and shared: "our server vs raw broadcast". It keeps no data, so the
//! ratio shows what storage, queries and bookkeeping cost on top of the transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Outbound frames queued per connection; past this a broadcast to that peer is dropped
/// (like a push held back by backpressure).
const OUTBOUND_QUEUE: usize = 1024;

type Peers = Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>;

/// Binds `127.0.0.1:port`, prints `noex-bench echo listening on ws://127.0.0.1:PORT/` and
/// serves until killed.
pub async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let local = listener.local_addr()?;
    println!(
        "noex-bench echo listening on ws://127.0.0.1:{}/",
        local.port()
    );
    let peers: Peers = Arc::default();
    let next_id = AtomicU64::new(1);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // e.g. EMFILE: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(stream, id, peers.clone()));
    }
}

async fn connection(stream: TcpStream, me: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
    if let Ok(mut p) = peers.lock() {
        p.insert(me, tx.clone());
    }
    let writer = tokio::spawn(async move {
        // Write everything queued, then flush once: one syscall per burst, not per frame.
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else {
            if msg.is_close() {
                break;
            }
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "pong" {
            continue;
        }
        let id = v.get("id").cloned().unwrap_or(Value::from(0));
        let reply = serde_json::json!({"id": id, "type": "result", "data": null});
        if tx.send(Message::text(reply.to_string())).await.is_err() {
            break;
        }
        if kind == "store.insert" {
            let n = v.pointer("/data/n").cloned().unwrap_or(Value::Null);
            let push = Message::text(
                serde_json::json!({"type": "push", "channel": "subscription",
                    "subscriptionId": "echo", "data": n})
                .to_string(),
            );
            let targets: Vec<mpsc::Sender<Message>> = match peers.lock() {
                Ok(p) => p
                    .iter()
                    .filter(|(k, _)| **k != me)
                    .map(|(_, s)| s.clone())
                    .collect(),
                Err(_) => Vec::new(),
            };
            for t in targets {
                let _ = t.try_send(push.clone());
            }
        }
    }
    if let Ok(mut p) = peers.lock() {
        p.remove(&me);
    }
    drop(tx);
    let _ = writer.await;
}
