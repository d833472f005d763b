//! Plain HTTP on the listeners: the request head of every accepted connection is read here
//! (at most [`MAX_HEAD_BYTES`], within the handshake deadline and under the pending
//! handshake caps, like any upgrade), a WebSocket upgrade goes on to tungstenite with the
//! bytes already read, and anything else is answered by [`respond`] — one request per
//! connection (`Connection: close`):
//!
//! - `GET|HEAD /health` (liveness), `/ready` (readiness: 503 while shutting down) and
//!   `/metrics` (Prometheus text, optionally behind a bearer token), on the main listener
//!   or, with `http.admin`, only on the admin listener;
//! - a non-upgrade request on the WebSocket path: 426; any other path: 404; another
//!   method on an endpoint: 405; a malformed head: 400; one over [`MAX_HEAD_BYTES`] or
//!   with too many headers: 431.
//!
//! The routes are one table ([`route`]): a later endpoint (say a `/console`, off by
//! default) is one more arm there.

use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::metrics::HttpEndpoint;
use crate::shared::{Lifecycle, Shared};

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
    method: Method,
    /// The path without its query.
    path: String,
    /// Whether it asks for a WebSocket upgrade (`Upgrade: websocket`).
    pub(crate) upgrade: bool,
    /// The `Authorization` header's value.
    authorization: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
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
            Ok(Some(RequestHead {
                method,
                path,
                upgrade,
                authorization,
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

/// One answer.
struct Answer {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    /// Further header lines, each ending in `\r\n`.
    headers: &'static str,
    body: String,
}

impl Answer {
    fn json(status: u16, reason: &'static str, body: serde_json::Value) -> Self {
        Answer {
            status,
            reason,
            content_type: "application/json",
            headers: "",
            body: body.to_string(),
        }
    }

    fn error(status: u16, reason: &'static str, message: &str) -> Self {
        Answer::json(status, reason, serde_json::json!({ "error": message }))
    }
}

/// Which endpoint a request is for, as the listener and the config serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Ready,
    Metrics,
    /// A plain request on the WebSocket path: 426.
    UpgradeRequired,
    NotFound,
}

/// The route table.
fn route(path: &str, listener: Listener, shared: &Shared) -> Route {
    let http = &shared.config.http;
    if listener == Listener::Main && path == shared.config.path {
        return Route::UpgradeRequired;
    }
    let endpoints_here = match listener {
        Listener::Main => http.admin.is_none(),
        Listener::Admin => true,
    };
    match path {
        "/health" if endpoints_here && http.health => Route::Health,
        "/ready" if endpoints_here && http.health => Route::Ready,
        "/metrics" if endpoints_here && http.metrics => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// Answers a request head that is not a WebSocket upgrade (`head: None`: the head could
/// not be read, `error` says why), then closes the connection.
pub(crate) async fn respond(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    head: Result<&RequestHead, &HeadError>,
    shared: &Arc<Shared>,
    listener: Listener,
) {
    let metrics = &shared.metrics;
    let (answer, head_only) = match head {
        Err(HeadError::Closed) => return,
        Err(HeadError::Malformed) => {
            metrics.record_http(HttpEndpoint::Refused);
            (
                Answer::error(400, "Bad Request", "malformed HTTP request"),
                false,
            )
        }
        Err(HeadError::TooLarge) => {
            metrics.record_http(HttpEndpoint::Refused);
            (
                Answer::error(
                    431,
                    "Request Header Fields Too Large",
                    "request head too large",
                ),
                false,
            )
        }
        Ok(head) => (answer(head, shared, listener), head.method == Method::Head),
    };
    let mut text = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        answer.status,
        answer.reason,
        answer.content_type,
        answer.body.len(),
        answer.headers,
    );
    if !head_only {
        text.push_str(&answer.body);
    }
    if stream.write_all(text.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Read what the client still sends (a body, the rest of an oversized head) so that
    // closing does not reset the connection before the client reads the answer.
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

fn answer(head: &RequestHead, shared: &Arc<Shared>, listener: Listener) -> Answer {
    let metrics = &shared.metrics;
    let route = route(&head.path, listener, shared);
    let endpoint = match route {
        Route::Health => HttpEndpoint::Health,
        Route::Ready => HttpEndpoint::Ready,
        Route::Metrics => HttpEndpoint::Metrics,
        Route::UpgradeRequired | Route::NotFound => HttpEndpoint::Other,
    };
    metrics.record_http(endpoint);
    match route {
        Route::NotFound => return Answer::error(404, "Not Found", "not found"),
        Route::UpgradeRequired => {
            return Answer {
                headers: "Upgrade: websocket\r\n",
                ..Answer::error(
                    426,
                    "Upgrade Required",
                    "this path serves WebSocket upgrades only",
                )
            };
        }
        Route::Health | Route::Ready | Route::Metrics => {}
    }
    if head.method == Method::Other {
        return Answer {
            headers: "Allow: GET, HEAD\r\n",
            ..Answer::error(405, "Method Not Allowed", "only GET and HEAD")
        };
    }
    match route {
        Route::Health => Answer::json(
            200,
            "OK",
            serde_json::json!({
                "status": "ok",
                "name": shared.config.name,
                "uptimeMs": u64::try_from(shared.started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        ),
        Route::Ready => match *shared.lifecycle.borrow() {
            Lifecycle::Running => Answer::json(200, "OK", serde_json::json!({"status": "ready"})),
            Lifecycle::Draining { .. } | Lifecycle::Closing => Answer::json(
                503,
                "Service Unavailable",
                serde_json::json!({
                    "status": "shutting_down",
                    "reason": "the server is stopping: clients are being asked to leave",
                }),
            ),
        },
        Route::Metrics => {
            if let Some(token) = &shared.config.http.metrics_token
                && !bearer_matches(head.authorization.as_deref(), token)
            {
                return Answer {
                    headers: "WWW-Authenticate: Bearer\r\n",
                    ..Answer::error(401, "Unauthorized", "a valid bearer token is required")
                };
            }
            match crate::metrics::render(shared) {
                Ok(body) => Answer {
                    status: 200,
                    reason: "OK",
                    content_type: crate::metrics::CONTENT_TYPE,
                    headers: "",
                    body,
                },
                Err(_) => Answer::error(500, "Internal Server Error", "metrics unavailable"),
            }
        }
        Route::UpgradeRequired | Route::NotFound => Answer::error(404, "Not Found", "not found"),
    }
}

/// Whether `authorization` is `Bearer <token>`, compared in constant time.
fn bearer_matches(authorization: Option<&[u8]>, token: &str) -> bool {
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
