//! Plain HTTP on the listeners: the request head of every accepted connection is read here
//! (at most [`MAX_HEAD_BYTES`], within the handshake deadline and under the pending
//! handshake caps, like any upgrade), a WebSocket upgrade goes on to tungstenite with the
//! bytes already read, and anything else is answered by `endpoints` through
//! [`write_answer`] — one request per connection (`Connection: close`):
//!
//! - `GET|HEAD /health` (liveness), `/ready` (readiness: 503 while shutting down),
//!   `/metrics` (Prometheus text, optionally behind a bearer token) and, with
//!   `http.console`, the browser console under `/console/`, on the main listener or, with
//!   `http.admin`, only on the admin listener;
//! - a non-upgrade request on the WebSocket path: 426; any other path: 404; another
//!   method on an endpoint: 405; a malformed head: 400; one over [`MAX_HEAD_BYTES`] or
//!   with too many headers: 431.
//!
//! This module knows HTTP only; which path answers what is `endpoints`' route table.

use std::borrow::Cow;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest request head read (request line and headers); a longer one is answered 431.
/// Browsers' WebSocket upgrades, cookies included, stay well below it.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most headers in a request head (tungstenite's own bound); more is answered 431.
const MAX_HEADERS: usize = 124;

/// After an answer, how long unread request bytes are drained before the socket is
/// closed (so that the client reads the answer instead of a reset).
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// The most bytes drained after an answer.
const DRAIN_BYTES: usize = 64 * 1024;

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The main listener: WebSocket upgrades on the configured path, and the HTTP
    /// endpoints unless `http.admin` moves them.
    Main,
    /// The `http.admin` listener: only the HTTP endpoints.
    Admin,
}

/// A request head, as much as routing needs.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// `GET`, `HEAD` or anything else.
    pub(crate) method: Method,
    /// The path without its query.
    pub(crate) path: String,
    /// Whether it asks for a WebSocket upgrade (`Upgrade: websocket`).
    pub(crate) upgrade: bool,
    /// The `Authorization` header's value.
    pub(crate) authorization: Option<Vec<u8>>,
    /// The `X-Forwarded-For` values, joined with `,` in order (one header or several);
    /// read only for a connection from a trusted proxy.
    pub(crate) forwarded_for: Option<String>,
}

/// A request's method, as far as the endpoints care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: answered as `GET`, without the body.
    Head,
    /// Anything else (405 on the endpoints).
    Other,
}

/// Why no request head could be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The connection closed or failed before a complete head: dropped silently.
    Closed,
    /// Not HTTP/1.x: answered 400.
    Malformed,
    /// Over [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`]: answered 431.
    TooLarge,
}

/// Reads the request head from `stream`. Returns it with every byte read so far (the head
/// and whatever followed it), which the WebSocket handshake reads again.
pub(crate) async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let room = MAX_HEAD_BYTES.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let Some(space) = chunk.get_mut(..room) else {
            return Err(HeadError::TooLarge);
        };
        let n = stream.read(space).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(head) = parse(&buf)? {
            return Ok((head, buf));
        }
    }
}

/// Parses a complete head; `None` while it is incomplete.
fn parse(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(_)) => {
            let method = match request.method {
                Some("GET") => Method::Get,
                Some("HEAD") => Method::Head,
                _ => Method::Other,
            };
            let target = request.path.unwrap_or("/");
            let path = target.split_once('?').map_or(target, |(p, _)| p).to_owned();
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value)
            };
            let upgrade = header("upgrade").is_some_and(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            });
            let authorization = header("authorization").map(<[u8]>::to_vec);
            let forwarded: Vec<String> = request
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .collect();
            Ok(Some(RequestHead {
                method,
                path,
                upgrade,
                authorization,
                forwarded_for: (!forwarded.is_empty()).then(|| forwarded.join(",")),
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

/// One answer.
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// Its reason phrase.
    pub(crate) reason: &'static str,
    /// The body's `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Further header lines, each ending in `\r\n`.
    pub(crate) headers: Cow<'static, str>,
    /// The body: built for this answer, or an embedded file.
    pub(crate) body: Cow<'static, [u8]>,
}

impl Answer {
    /// A JSON answer.
    pub(crate) fn json(status: u16, reason: &'static str, body: serde_json::Value) -> Self {
        Answer {
            status,
            reason,
            content_type: "application/json",
            headers: Cow::Borrowed(""),
            body: Cow::Owned(body.to_string().into_bytes()),
        }
    }

    /// `{"error": message}`.
    pub(crate) fn error(status: u16, reason: &'static str, message: &str) -> Self {
        Answer::json(status, reason, serde_json::json!({ "error": message }))
    }
}

/// Writes `answer` (without its body for a `HEAD` request), then closes the connection,
/// reading what the client still sends for a moment (a body, the rest of an oversized
/// head) so that it reads the answer rather than a reset.
pub(crate) async fn write_answer(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    answer: &Answer,
    head_only: bool,
) {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        answer.status,
        answer.reason,
        answer.content_type,
        answer.body.len(),
        answer.headers,
    );
    // One write for head and body: a second small segment could wait for a delayed ACK.
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&answer.body);
    }
    if stream.write_all(&bytes).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        let mut chunk = [0u8; 4096];
        let mut drained = 0;
        while drained < DRAIN_BYTES {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Whether `authorization` is `Bearer <token>`, compared in constant time.
pub(crate) fn bearer_matches(authorization: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let Some(given) = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
    else {
        return false;
    };
    given.ct_eq(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_into_routes_and_limits() {
        let head =
            parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(
            (head.method, head.path.as_str(), head.upgrade),
            (Method::Get, "/metrics", false)
        );
        assert!(bearer_matches(head.authorization.as_deref(), "t"));
        assert!(!bearer_matches(head.authorization.as_deref(), "u"));
        assert!(!bearer_matches(None, "t"));
        let upgrade = parse(b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(upgrade.upgrade);
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(matches!(
            parse(b"\x16\x03\x01garbage\r\n\r\n"),
            Err(HeadError::Malformed)
        ));
        let many: String = (0..200).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert!(matches!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Err(HeadError::TooLarge)
        ));
    }
}
