//! One task per connection: the WebSocket handshake (path and origin checks), the welcome
//! frame, frame validation, in-order request handling with panic isolation, heartbeat, and
//! the reaction to shutdown. A separate writer task owns the socket's sink and batches
//! outbound frames, flushing once per burst.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use noex_protocol::{
    ClientFrame, PROTOCOL_VERSION, Ping, RawRequest, ResultFrame, ServerMessage, SystemEvent,
    Welcome, parse_client_frame,
};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, error::CapacityError};

use crate::error::ServerError;
use crate::outbound::{Frame, OutboundQueue};
use crate::registry::Registration;
use crate::router;
use crate::server::{Lifecycle, Shared};
use crate::session::ConnectionSession;
use crate::subscriptions::ConnectionSubscriptions;

/// Initial capacity of each connection's WebSocket read buffer (it grows for big frames).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Handles one accepted TCP stream from handshake to close.
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let config = &shared.config;
    // tungstenite allocates its read buffer eagerly (128 KiB by default): with requests of
    // a few hundred bytes a small one costs nothing in throughput and keeps an idle
    // connection cheap (see bench/README.md, scenario `connections`).
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(config.max_payload_bytes))
        .max_frame_size(Some(config.max_payload_bytes));
    let path = config.path.clone();
    let allowed_origins = config.allowed_origins.clone();
    // The error type is fixed by tungstenite's handshake callback trait.
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() != path {
            return Err(refusal(StatusCode::NOT_FOUND));
        }
        if let (Some(allowed), Some(origin)) = (&allowed_origins, request.headers().get("origin")) {
            let origin = origin.to_str().unwrap_or("");
            if !allowed.iter().any(|a| a == origin) {
                return Err(refusal(StatusCode::FORBIDDEN));
            }
        }
        Ok(response)
    };
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config))
        .await
    {
        Ok(ws) => ws,
        Err(err) => {
            tracing::debug!(%peer, %err, "handshake refused");
            return;
        }
    };

    let lifecycle = shared.lifecycle.subscribe();
    if *lifecycle.borrow() != Lifecycle::Running {
        close_now(ws, 1001, "server_shutting_down").await;
        return;
    }
    if let Some(limit) = config.connection_limits.max_connections_per_ip {
        if shared.registry.count_from(peer.ip()) >= limit as usize {
            close_now(ws, 4003, "too_many_connections").await;
            return;
        }
    }
    let registration = shared.registry.register(peer, shared.clock.now_ms());
    let subscriptions = ConnectionSubscriptions::new(
        Arc::clone(&shared.subscription_counters),
        config.connection_limits.max_subscriptions_per_connection,
        config.connection_limits.max_total_subscriptions,
    );
    let (sink, stream) = ws.split();
    let queue = OutboundQueue::new(
        config.backpressure.max_buffered_bytes,
        config.backpressure.high_water_mark,
    );
    registration.attach_queue(Arc::clone(&queue));
    let writer = tokio::spawn(write_loop(sink, Arc::clone(&queue)));
    let connection = Connection {
        shared: Arc::clone(&shared),
        queue: Arc::clone(&queue),
        registration,
        subscriptions,
        activate_after_reply: Vec::new(),
        peer,
        session: ConnectionSession::default(),
        session_deadline: None,
        pong_since_ping: true,
        pong_deadline: None,
    };
    crate::rules_ops::connection_event(&shared, "opened", || {
        serde_json::json!({
            "connectionId": connection.registration.wire_id(),
            "remoteAddress": peer.ip().to_string(),
        })
    });
    // `run` consumes the connection: when it returns, its subscriptions are dropped, which
    // cancels every one of them at its source, however the connection ended.
    connection.run(stream, lifecycle).await;
    // The reader is done: the writer drains what is queued (including any close frame)
    // and ends.
    queue.shut();
    let _ = writer.await;
}

fn refusal(status: StatusCode) -> ErrorResponse {
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = status;
    response
}

async fn close_now(mut ws: WebSocketStream<TcpStream>, code: u16, reason: &'static str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        })))
        .await;
}

/// Writes queued frames, flushing once per batch so that a burst of answers costs one
/// flush, and reports flushed bytes back to the queue (which releases held pushes).
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>,
    queue: Arc<OutboundQueue>,
) {
    loop {
        let (batch, bytes) = queue.next_batch().await;
        if batch.is_empty() {
            let _ = sink.close().await;
            return;
        }
        for frame in batch {
            let result = match frame {
                Frame::Text(text) => sink.feed(Message::Text(text.into())).await,
                Frame::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    queue.shut();
                    return;
                }
            };
            if result.is_err() {
                queue.shut();
                return;
            }
        }
        if sink.flush().await.is_err() {
            queue.shut();
            return;
        }
        queue.written(bytes);
    }
}

/// The per-connection actor: owns the session state and answers requests in order.
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    /// Outbound frames, bounded in bytes.
    pub(crate) queue: Arc<OutboundQueue>,
    /// Store and rules subscriptions; all cancelled when the connection ends. Declared
    /// before `registration` so that they are gone by the time the registry shows the
    /// connection as closed.
    pub(crate) subscriptions: ConnectionSubscriptions,
    /// This connection's registry entry; removed when the connection ends.
    pub(crate) registration: Registration,
    /// Subscriptions created by the request being answered: their pushes are released
    /// once the answer is queued.
    pub(crate) activate_after_reply: Vec<String>,
    /// The peer's address (the rate-limit key before login).
    pub(crate) peer: SocketAddr,
    /// The session after `auth.login`.
    pub(crate) session: ConnectionSession,
    /// When the session's `expiresAt` passes (on the runtime's timer); its subscriptions
    /// end then, even if the client sends nothing.
    session_deadline: Option<tokio::time::Instant>,
    /// Whether a pong arrived since the last ping (true before the first ping).
    pong_since_ping: bool,
    /// When the outstanding ping must have been answered (`heartbeat.timeoutMs` after it).
    pong_deadline: Option<tokio::time::Instant>,
}

enum Flow {
    Continue,
    Stop,
}

impl Connection {
    /// Serves the connection until it ends, then reports `connection.closed` (when
    /// connection events are on) with the user logged in at that moment.
    async fn run(
        mut self,
        stream: futures_util::stream::SplitStream<WebSocketStream<TcpStream>>,
        lifecycle: tokio::sync::watch::Receiver<Lifecycle>,
    ) {
        self.serve(stream, lifecycle).await;
        crate::rules_ops::connection_event(&self.shared, "closed", || {
            serde_json::json!({
                "connectionId": self.registration.wire_id(),
                "remoteAddress": self.peer.ip().to_string(),
                "userId": self.session.get().map(|s| s.user_id.as_str()),
            })
        });
    }

    async fn serve(
        &mut self,
        mut stream: futures_util::stream::SplitStream<WebSocketStream<TcpStream>>,
        mut lifecycle: tokio::sync::watch::Receiver<Lifecycle>,
    ) {
        let welcome = ServerMessage::Welcome(Welcome {
            version: PROTOCOL_VERSION.to_owned(),
            server_time: self.shared.clock.now_ms(),
            requires_auth: self.shared.auth.as_ref().is_some_and(|a| a.required),
        });
        if self.send(welcome.to_json()).await.is_err() {
            return;
        }
        let interval = Duration::from_millis(self.shared.config.heartbeat.interval_ms);
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let flow = tokio::select! {
                changed = lifecycle.changed() => {
                    let state = if changed.is_ok() { *lifecycle.borrow_and_update() } else { Lifecycle::Closing };
                    self.on_lifecycle(state).await
                }
                message = stream.next() => self.on_message(message).await,
                _ = heartbeat.tick() => self.on_heartbeat().await,
                _ = wait_until(self.pong_deadline) => self.close(4001, "heartbeat_timeout").await,
                _ = wait_until(self.session_deadline) => self.on_session_deadline(),
            };
            if let Flow::Stop = flow {
                break;
            }
        }
    }

    /// The session's `expiresAt` may have passed: end the session (and the subscriptions it
    /// alone allowed) if the clock says so, else wait again.
    fn on_session_deadline(&mut self) -> Flow {
        let now = self.shared.clock.now_ms();
        if self.session.expires_at().is_some_and(|at| at <= now) {
            crate::router::set_session(self, None, "Session expired");
        } else {
            self.arm_session_expiry();
        }
        Flow::Continue
    }

    /// Sets the timer for the current session's expiry (none without one).
    pub(crate) fn arm_session_expiry(&mut self) {
        let now = self.shared.clock.now_ms();
        self.session_deadline = self
            .session
            .expires_at()
            .map(|at| tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now)));
    }

    /// Ends every subscription the current session (or, with none, an anonymous client) may
    /// not hold, each with an error frame (id 0) naming it; `why_anonymous` is the reason
    /// when auth is required and there is no session.
    pub(crate) fn end_forbidden_subscriptions(&mut self, why_anonymous: &str) {
        let shared = Arc::clone(&self.shared);
        let Some(auth) = &shared.auth else { return };
        let session = self.session.get().cloned();
        let refused: Vec<(String, ServerError)> = self
            .subscriptions
            .origins()
            .filter_map(|(id, origin)| {
                let verdict = match &session {
                    Some(session) => {
                        crate::access::check(&auth.authority(session), origin, shared.resolver())
                    }
                    None if auth.required => Err(ServerError::new(
                        noex_protocol::ErrorCode::Unauthorized,
                        why_anonymous,
                    )),
                    None => Ok(()),
                };
                verdict.err().map(|err| (id.to_owned(), err))
            })
            .collect();
        for (id, err) in refused {
            self.end_subscription(&id, err);
        }
    }

    /// Ends subscription `id` at its source and tells the client with an error frame
    /// `{id: 0, code, message: "Subscription <id> ended: <why>", details: {subscriptionId}}`.
    pub(crate) fn end_subscription(&mut self, id: &str, why: ServerError) {
        if !self.subscriptions.end(id, &self.registration) {
            return;
        }
        let notice = ServerError::new(
            why.code,
            format!("Subscription {id} ended: {}", why.message),
        )
        .with_details(serde_json::json!({ "subscriptionId": id }));
        let frame = notice.into_frame(
            noex_protocol::RequestId::zero(),
            self.shared.config.expose_error_details,
        );
        self.queue.notice(ServerMessage::Error(frame).to_json());
    }

    async fn send(&self, text: String) -> Result<(), ()> {
        if self.queue.send(text).await {
            Ok(())
        } else {
            Err(())
        }
    }

    async fn close(&self, code: u16, reason: &'static str) -> Flow {
        self.queue.close(code, reason);
        Flow::Stop
    }

    async fn on_lifecycle(&mut self, state: Lifecycle) -> Flow {
        match state {
            Lifecycle::Running => Flow::Continue,
            Lifecycle::Draining { grace_ms } => {
                if grace_ms > 0 {
                    let notice = ServerMessage::System(SystemEvent::Shutdown {
                        grace_period_ms: grace_ms,
                    });
                    if self.send(notice.to_json()).await.is_err() {
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            }
            Lifecycle::Closing => self.close(1000, "server_shutdown").await,
        }
    }

    async fn on_heartbeat(&mut self) -> Flow {
        if !self.pong_since_ping {
            return self.close(4001, "heartbeat_timeout").await;
        }
        self.pong_since_ping = false;
        let timeout = Duration::from_millis(self.shared.config.heartbeat.timeout_ms);
        self.pong_deadline = Some(tokio::time::Instant::now() + timeout);
        let ping = ServerMessage::Ping(Ping {
            timestamp: self.shared.clock.now_ms(),
        });
        match self.send(ping.to_json()).await {
            Ok(()) => Flow::Continue,
            Err(()) => Flow::Stop,
        }
    }

    async fn on_message(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Flow {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match message {
            None | Some(Ok(Message::Close(_))) => Flow::Stop,
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => self.close(1003, "binary_not_supported").await,
            // WebSocket-level pings are answered by tungstenite itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Flow::Continue,
            Some(Err(WsError::Capacity(
                CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
            ))) => self.close(1009, "message_too_big").await,
            Some(Err(err)) => {
                tracing::debug!(%err, "connection read failed");
                Flow::Stop
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let reply = match parse_client_frame(text) {
            Err(err) => ServerMessage::Error(err.to_error_frame()),
            Ok(ClientFrame::Pong { .. }) => {
                self.pong_since_ping = true;
                self.pong_deadline = None;
                return Flow::Continue;
            }
            Ok(ClientFrame::Request(request)) => {
                let id = request.id.clone();
                match self.handle_guarded(request).await {
                    Ok(data) => ServerMessage::Result(ResultFrame { id, data }),
                    Err(err) => ServerMessage::Error(
                        err.into_frame(id, self.shared.config.expose_error_details),
                    ),
                }
            }
        };
        let sent = self.send(reply.to_json()).await;
        for id in self.activate_after_reply.drain(..) {
            self.queue.activate(&id);
        }
        match sent {
            Ok(()) => Flow::Continue,
            Err(()) => Flow::Stop,
        }
    }

    /// Handles a request; a panic inside becomes `INTERNAL_ERROR` and the connection lives on.
    async fn handle_guarded(
        &mut self,
        request: RawRequest,
    ) -> Result<serde_json::Value, ServerError> {
        let op_type = request.op_type.clone();
        match guard_panics(router::handle(self, request)).await {
            Ok(result) => result,
            Err(()) => Err(ServerError::internal(format_args!(
                "panic while handling {op_type}"
            ))),
        }
    }
}

/// Resolves at `deadline`; never when there is none.
async fn wait_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs `future`, turning a panic into `Err(())`.
pub(crate) async fn guard_panics<F: std::future::Future>(future: F) -> Result<F::Output, ()> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::guard_panics;

    #[tokio::test]
    async fn a_panicking_handler_becomes_an_error_value() {
        let ok = guard_panics(async { 7 }).await;
        assert_eq!(ok, Ok(7));
        let failed = guard_panics(async {
            let v: Vec<u8> = Vec::new();
            #[allow(clippy::indexing_slicing)]
            v[3]
        })
        .await;
        assert_eq!(failed, Err(()));
    }
}
