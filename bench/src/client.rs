//! The load generator's side of the wire: connect on loopback, classify incoming frames,
//! and a bounded request/answer helper used for setup and introspection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config, tungstenite::Message,
};

/// One client WebSocket connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a single setup/introspection request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection to `ws://127.0.0.1:PORT/` (loopback only, by construction).
pub async fn connect(port: u16) -> Result<Ws, String> {
    let url = format!("ws://127.0.0.1:{port}/");
    // Nagle off: pipelined small frames must not wait for ACKs (the servers disable it too).
    connect_async_with_config(url, None, true)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// What the load generator needs to know about a server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `{id, type:"result", data}`.
    Result {
        /// The echoed request id.
        id: u64,
        /// The result payload.
        data: Value,
    },
    /// `{id, type:"error", code, ...}`.
    Error {
        /// The echoed request id (0 when the server could not read one).
        id: u64,
        /// The error code, e.g. `UNKNOWN_OPERATION`.
        code: String,
    },
    /// `{type:"push", data, ...}`.
    Push {
        /// The pushed payload (complete query result).
        data: Value,
    },
    /// `{type:"ping", timestamp}`: must be answered with a pong.
    Ping {
        /// The timestamp to echo back.
        timestamp: Value,
    },
    /// Anything else (welcome, system, non-JSON, binary, control frames).
    Other,
}

/// Classifies one WebSocket message without ever failing.
pub fn classify(msg: &Message) -> Frame {
    let Message::Text(text) = msg else {
        return Frame::Other;
    };
    let Ok(mut v) = serde_json::from_str::<Value>(text.as_str()) else {
        return Frame::Other;
    };
    let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
    match v.get("type").and_then(Value::as_str) {
        Some("result") => Frame::Result {
            id,
            data: v.get_mut("data").map(Value::take).unwrap_or(Value::Null),
        },
        Some("error") => Frame::Error {
            id,
            code: v
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
        },
        Some("push") => Frame::Push {
            data: v.get_mut("data").map(Value::take).unwrap_or(Value::Null),
        },
        Some("ping") => Frame::Ping {
            timestamp: v
                .get_mut("timestamp")
                .map(Value::take)
                .unwrap_or(Value::Null),
        },
        _ => Frame::Other,
    }
}

/// The pong answering a ping with `timestamp`.
pub fn pong(timestamp: &Value) -> Message {
    Message::text(serde_json::json!({"type": "pong", "timestamp": timestamp}).to_string())
}

/// The server's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A `result` frame's data.
    Result(Value),
    /// An `error` frame's code, e.g. `CONFLICT`.
    Error(String),
}

/// Sends `body` (an object; `id` is set here) and waits for the answer with that id,
/// answering pings and ignoring pushes meanwhile. `Err` only when no answer came: the
/// connection closed or broke, or [`REQUEST_TIMEOUT`] passed.
pub async fn call(ws: &mut Ws, id: u64, mut body: Value) -> Result<Reply, String> {
    body["id"] = Value::from(id);
    ws.send(Message::text(body.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("timeout".into()),
            Ok(None) => return Err("connection closed".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(m))) => m,
        };
        match classify(&msg) {
            Frame::Result { id: got, data } if got == id => return Ok(Reply::Result(data)),
            Frame::Error { id: got, code } if got == id => return Ok(Reply::Error(code)),
            Frame::Ping { timestamp } => {
                let _ = ws.send(pong(&timestamp)).await;
            }
            _ => {}
        }
    }
}

/// [`call`] for setup and introspection: `Ok(data)` for a result, `Err` for an error
/// frame (its code), a closed connection or a timeout.
pub async fn request(ws: &mut Ws, id: u64, body: Value) -> Result<Value, String> {
    match call(ws, id, body).await? {
        Reply::Result(data) => Ok(data),
        Reply::Error(code) => Err(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        let m = Message::text(r#"{"id":7,"type":"result","data":3}"#);
        assert_eq!(
            classify(&m),
            Frame::Result {
                id: 7,
                data: Value::from(3)
            }
        );
        let m = Message::text(r#"{"id":2,"type":"error","code":"UNKNOWN_OPERATION"}"#);
        assert!(matches!(classify(&m), Frame::Error { id: 2, .. }));
        let m = Message::text(r#"{"type":"push","channel":"subscription","data":4}"#);
        assert_eq!(
            classify(&m),
            Frame::Push {
                data: Value::from(4)
            }
        );
        assert_eq!(classify(&Message::text("not json")), Frame::Other);
    }
}
