//! One task per connection: the WebSocket handshake (see `handshake`), the welcome frame,
//! frame validation, in-order request handling with panic isolation, heartbeat, and the
//! reaction to shutdown. A separate writer task owns the socket's sink and batches outbound
//! frames, flushing once per burst, under a write deadline (see `socket`): a socket that
//! accepts nothing for `heartbeat.timeoutMs` ends the connection, reader included.
//!
//! A close the server starts (shutdown, heartbeat, a bad frame) is a closing handshake: the
//! connection stays registered — so `ServerHandle::stop` and the process wait for it — until
//! its close frame is written and the client's reply is read (or [`CLOSE_REPLY_WAIT`]
//! passes). Dropping the socket earlier lost the close frame when the process exited first,
//! and dropping it with the client's frames unread resets it: either way the client saw a
//! bare close (1006) instead of the code sent.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use noex_protocol::{
    ClientFrame, JsonLimits, PROTOCOL_VERSION, Ping, RawRequest, ResultFrame, ServerMessage,
    SystemEvent, Welcome, parse_client_frame_with_limits,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, error::CapacityError};

use crate::connection_state::ConnectionState;
use crate::error::ServerError;
use crate::handshake::HandshakeSlot;
use crate::outbound::{Frame, OutboundQueue};
use crate::router;
use crate::session::ConnectionSession;
use crate::shared::{Lifecycle, Shared};
use crate::socket::{PingBudget, WriteProgress, WsStream, within_write_deadline};
use crate::subscriptions::ConnectionSubscriptions;

/// Capacity of tungstenite's read buffer, and the most it asks of the socket per read (it
/// grows to hold a bigger frame). tungstenite zeroes it before every read, so it stays
/// resident for the life of the connection: it is kept small, and the socket is read
/// through [`crate::socket::TrackedStream`]'s own buffer, which an idle connection does not
/// hold (see bench/README.md, scenario `connections`).
pub(crate) const FRAME_READ_BYTES: usize = 256;

/// How long a connection the server closes waits for the client's close frame, reading and
/// dropping what the client still sends, before the socket is dropped.
pub(crate) const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(1);

/// Handles one accepted TCP stream from handshake to close.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: HandshakeSlot,
    listener: crate::http::Listener,
) {
    let config = &shared.config;
    // tungstenite allocates its read buffer eagerly (128 KiB by default) and zeroes it
    // before every read: see [`FRAME_READ_BYTES`].
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(FRAME_READ_BYTES)
        .max_message_size(Some(config.max_payload_bytes))
        .max_frame_size(Some(config.max_payload_bytes))
        // Bounded (tungstenite's default is unbounded): pongs to a client that pings
        // without reading would otherwise pile up here.
        .write_buffer_size(crate::socket::WRITE_BUFFER_BYTES)
        .max_write_buffer_size(crate::socket::WRITE_BUFFER_LIMIT);
    // Boxed: the handshake's state is freed once it is done, instead of making every
    // connection task as large as it for the connection's whole life.
    let Some((ws, progress, client)) = Box::pin(crate::handshake::accept(
        stream,
        peer,
        (&shared.config, &shared.trusted_proxies),
        listener,
        ws_config,
        slot,
        |socket, head, client| {
            Box::pin(crate::endpoints::respond(
                socket,
                head,
                Arc::clone(&shared),
                listener,
                client,
            ))
        },
    ))
    .await
    else {
        return;
    };
    // From here on the client's address: the TCP peer's, or the one a trusted proxy named
    // (every per-address limit and `server.connections` use it).
    let peer = SocketAddr::new(client, peer.port());
    shared.metrics.record_opened();

    let lifecycle = shared.lifecycle.subscribe();
    let now = *lifecycle.borrow();
    let refusal = match now {
        Lifecycle::Running => None,
        // 1013 Try Again Later: the server is up but takes no clients yet.
        Lifecycle::Starting => Some((1013, "server_starting")),
        Lifecycle::Draining { .. } | Lifecycle::Closing => Some((1001, "server_shutting_down")),
    }
    .or_else(|| {
        let limit = config.connection_limits.max_connections_per_ip?;
        (shared.registry.count_from(peer.ip()) >= limit as usize)
            .then_some((4003, "too_many_connections"))
    });
    if let Some((code, reason)) = refusal {
        // Boxed, like everything a connection does only once (see `open`).
        Box::pin(close_now(ws, code, reason)).await;
        shared.metrics.record_closed(Some(code));
        return;
    }
    let (connection, stream, writer) = open(ws, progress, peer, &shared);
    let queue = Arc::clone(&connection.state.queue);
    // `run` consumes the connection: when it returns, its subscriptions are dropped, which
    // cancels every one of them at its source, however the connection ended. Its registry
    // entry is kept until the socket is done with.
    let ended = connection.run(stream, lifecycle).await;
    // The reader is done: the writer drains what is queued (including any close frame)
    // and ends.
    queue.shut();
    let close_sent = writer.await.unwrap_or(false);
    if let (true, Some(stream)) = (close_sent, ended.stream) {
        // The closing handshake: the client answers the close frame with its own.
        let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, await_close_reply(stream)).await;
    }
    drop(ended.registration);
    // Counted once the connection is gone from `noex_connections_open`: the code the
    // server sent, else the client's, else none (1006).
    shared
        .metrics
        .record_closed(queue.close_code().or(ended.client_close));
}

/// Sets up an accepted connection: its registry entry, outbound queue and writer task, and
/// the state its reader serves.
///
/// Not async: a connection task's future is as large as the most it holds across an await,
/// for the connection's whole life, and every local of an async function that is moved out
/// before an await still takes room in it. What is only needed to set up lives here.
fn open(
    ws: WsStream,
    progress: Arc<WriteProgress>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> (
    Connection,
    futures_util::stream::SplitStream<WsStream>,
    tokio::task::JoinHandle<bool>,
) {
    let config = &shared.config;
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
        &shared.outbound,
    );
    registration.attach_queue(Arc::clone(&queue));
    let registration_id = registration.id();
    let write_timeout = Duration::from_millis(config.heartbeat.timeout_ms);
    let writer = tokio::spawn(write_loop(
        sink,
        Arc::clone(&queue),
        progress,
        write_timeout,
        Arc::clone(shared),
    ));
    let connection = Connection {
        state: ConnectionState {
            shared: Arc::clone(shared),
            queue: Arc::clone(&queue),
            registration,
            subscriptions,
            activate_after_reply: Vec::new(),
            peer,
            session: ConnectionSession::default(),
            ended_subscriptions: Default::default(),
            held_results: Arc::default(),
            session_deadline: None,
            expired_unseen: false,
            login_failures: Default::default(),
            identity_token: None,
            revocation: shared.revocations.slot(registration_id, queue),
        },
        pong_since_ping: true,
        pong_deadline: None,
        pings: PingBudget::new(config.limits.max_pings_per_second),
        closing: false,
        client_close: None,
    };
    crate::connection_events::emit(shared, "opened", || {
        serde_json::json!({
            "connectionId": connection.state.registration.wire_id(),
            "remoteAddress": peer.ip().to_string(),
        })
    });
    (connection, stream, writer)
}

/// Reads (and drops) what the client sends until its close frame or the end of the stream.
async fn await_close_reply(mut stream: futures_util::stream::SplitStream<WsStream>) {
    while let Some(Ok(message)) = stream.next().await {
        if message.is_close() {
            return;
        }
    }
}

/// What is left of a connection once it stops serving: its registry entry, and its read half
/// when the server closed it (to read the client's close reply).
struct Ended {
    /// The code of the client's close frame (1005 for one without a code), if it sent one.
    client_close: Option<u16>,
    registration: crate::registry::Registration,
    stream: Option<futures_util::stream::SplitStream<WsStream>>,
}

async fn close_now(mut ws: WsStream, code: u16, reason: &'static str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        })))
        .await;
}

/// Writes queued frames, flushing once per batch so that a burst of answers costs one
/// flush, and reports flushed bytes back to the queue (which releases held pushes).
/// Returns whether it ended by writing a close frame.
///
/// Every write runs under the write deadline: when the socket accepts no bytes for
/// `timeout`, the connection is given up (the queue is shut, which stops the reader too,
/// and the socket is reset when dropped).
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WsStream, Message>,
    queue: Arc<OutboundQueue>,
    progress: Arc<WriteProgress>,
    timeout: Duration,
    shared: Arc<Shared>,
) -> bool {
    let stalled = || {
        tracing::debug!("socket accepted no bytes within the write deadline: dropped");
        shared.metrics.record_write_deadline_drop();
        progress.reset_on_drop();
        queue.shut();
    };
    loop {
        // A batch taken before the queue was aborted is given up at the abort (the socket is
        // reset); one taken after it holds only the close frame.
        let (batch, bytes, interruptible) = queue.next_batch().await;
        if batch.is_empty() {
            if within_write_deadline(sink.close(), &progress, timeout)
                .await
                .is_none()
            {
                stalled();
            }
            return false;
        }
        for frame in batch {
            let (messages, charge) = match frame {
                Frame::Text(text) => text.into_messages(),
                Frame::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let sent = within_write_deadline(
                        sink.send(Message::Close(Some(frame))),
                        &progress,
                        timeout,
                    )
                    .await;
                    let written = matches!(sent, Some(Ok(())));
                    if sent.is_none() {
                        stalled();
                    }
                    queue.shut();
                    return written;
                }
            };
            for message in messages {
                let write = within_write_deadline(sink.feed(message), &progress, timeout);
                let outcome = if interruptible {
                    tokio::select! {
                        biased;
                        () = queue.aborted() => {
                            progress.reset_on_drop();
                            queue.shut();
                            return false;
                        }
                        outcome = write => outcome,
                    }
                } else {
                    write.await
                };
                match outcome {
                    Some(Ok(())) => {}
                    Some(Err(err)) => {
                        tracing::debug!(%err, "connection write failed");
                        queue.shut();
                        return false;
                    }
                    None => {
                        stalled();
                        return false;
                    }
                }
            }
            drop(charge);
        }
        let flush = within_write_deadline(sink.flush(), &progress, timeout);
        let outcome = if interruptible {
            tokio::select! {
                biased;
                () = queue.aborted() => {
                    progress.reset_on_drop();
                    queue.shut();
                    return false;
                }
                outcome = flush => outcome,
            }
        } else {
            flush.await
        };
        match outcome {
            Some(Ok(())) => queue.written(bytes),
            Some(Err(_)) => {
                queue.shut();
                return false;
            }
            None => {
                stalled();
                return false;
            }
        }
    }
}

/// The per-connection actor: owns the connection's state and answers requests in order.
pub(crate) struct Connection {
    /// Session, subscriptions, queue, registry entry: what requests act on.
    state: ConnectionState,
    /// Whether a pong arrived since the last ping (true before the first ping).
    pong_since_ping: bool,
    /// When the outstanding ping must have been answered (`heartbeat.timeoutMs` after it).
    pong_deadline: Option<tokio::time::Instant>,
    /// WebSocket pings this connection may still send in the current second.
    pings: PingBudget,
    /// Whether the server queued a close frame (then the client's reply is awaited).
    closing: bool,
    /// The code of the client's close frame, once it sent one (1005: without a code).
    client_close: Option<u16>,
}

enum Flow {
    Continue,
    Stop,
}

impl Connection {
    /// Serves the connection until it ends, then reports `connection.closed` (when
    /// connection events are on) with the user logged in at that moment. Everything but
    /// the registry entry (and the read half, when the server closed) is dropped here.
    async fn run(
        mut self,
        stream: futures_util::stream::SplitStream<WsStream>,
        lifecycle: tokio::sync::watch::Receiver<Lifecycle>,
    ) -> Ended {
        let stream = self.serve(stream, lifecycle).await;
        let state = &self.state;
        crate::connection_events::emit(&state.shared, "closed", || {
            serde_json::json!({
                "connectionId": state.registration.wire_id(),
                "remoteAddress": state.peer.ip().to_string(),
                "userId": state.session.get().map(|s| s.user_id.as_str()),
            })
        });
        let stream = if self.closing { stream } else { None };
        // Subscriptions go before the registry entry (see `ConnectionState::subscriptions`).
        let ConnectionState {
            subscriptions,
            registration,
            ..
        } = self.state;
        drop(subscriptions);
        Ended {
            client_close: self.client_close,
            registration,
            stream,
        }
    }

    /// Serves until the connection stops; returns the read half unless it failed or ended.
    async fn serve(
        &mut self,
        mut stream: futures_util::stream::SplitStream<WsStream>,
        mut lifecycle: tokio::sync::watch::Receiver<Lifecycle>,
    ) -> Option<futures_util::stream::SplitStream<WsStream>> {
        let welcome = ServerMessage::Welcome(Welcome {
            version: PROTOCOL_VERSION.to_owned(),
            server_time: self.state.shared.clock.now_ms(),
            requires_auth: self.state.shared.auth.as_ref().is_some_and(|a| a.required),
        })
        .to_json();
        if self.send(welcome).await.is_err() {
            return None;
        }
        let interval = Duration::from_millis(self.state.shared.config.heartbeat.interval_ms);
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let queue = Arc::clone(&self.state.queue);

        // The wait for the session's expiry, on the server's clock, and the time it is for.
        let mut session_wait: Option<(u64, noex_model::clock::Sleep)> = None;
        // Changes of the built-in identity's rights: live subscriptions are checked again.
        let mut rights = self
            .state
            .shared
            .identity
            .as_ref()
            .map(|i| i.watch_rights());
        loop {
            let deadline = self.state.session_deadline;
            if session_wait.as_ref().map(|(at, _)| *at) != deadline {
                session_wait = deadline.map(|at| (at, self.state.shared.clock.sleep_until(at)));
            }
            // Only a connection holding subscriptions listens for rights changes: anyone
            // allowed to grant on its own bucket could otherwise wake every connection of
            // the server with each grant. A change missed meanwhile is seen (as changed)
            // once it holds one again, and its new subscriptions were checked anyway.
            let watches_rights = rights.is_some() && !self.state.subscriptions.is_empty();
            let flow = tokio::select! {
                changed = lifecycle.changed() => {
                    let state = if changed.is_ok() { *lifecycle.borrow_and_update() } else { Lifecycle::Closing };
                    self.on_lifecycle(state).await
                }
                message = stream.next() => self.on_message(message).await,
                _ = heartbeat.tick() => self.on_heartbeat().await,
                _ = wait_until(self.pong_deadline) => self.close(4001, "heartbeat_timeout").await,
                _ = async {
                    match session_wait.as_mut() {
                        Some((_, sleep)) => sleep.await,
                        None => std::future::pending().await,
                    }
                } => {
                    // Done: a new wait is made for whatever deadline is set next.
                    session_wait = None;
                    self.on_session_deadline()
                }
                changed = async {
                    match rights.as_mut() {
                        Some(rx) => rx.changed().await,
                        None => std::future::pending().await,
                    }
                }, if watches_rights => {
                    match changed {
                        // A right revoked (a grant, a role, an ownership, a query grant's
                        // granter losing its bucket) ends what it alone allowed.
                        Ok(()) => self.state.end_forbidden_subscriptions("Access changed"),
                        Err(_) => rights = None,
                    }
                    Flow::Continue
                }
                Some((id, why)) = self.state.ended_subscriptions.recv() => {
                    self.state.end_subscription(&id, why);
                    Flow::Continue
                }
                // The writer gave up (write deadline or a failed write): stop reading too.
                () = queue.closed() => Flow::Stop,
            };
            if let Flow::Stop = flow {
                return Some(stream);
            }
        }
    }

    /// The session's `expiresAt` may have passed: end the session (and the subscriptions it
    /// alone allowed) if the clock says so, else wait again.
    fn on_session_deadline(&mut self) -> Flow {
        let now = self.state.shared.clock.now_ms();
        if self.state.session.expires_at().is_some_and(|at| at <= now) {
            self.state.set_session(None, "Session expired");
            self.state.expired_unseen = true;
        } else {
            self.state.arm_session_expiry();
        }
        Flow::Continue
    }

    async fn send(&self, text: String) -> Result<(), ()> {
        if self.state.queue.send(text).await {
            Ok(())
        } else {
            Err(())
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> Flow {
        if code == 4001 {
            self.state.shared.metrics.record_heartbeat_timeout();
        }
        self.state.queue.close(code, reason);
        self.closing = true;
        Flow::Stop
    }

    async fn on_lifecycle(&mut self, state: Lifecycle) -> Flow {
        match state {
            // No connection is served while starting (they are closed at once), and the
            // state never returns to Starting.
            Lifecycle::Running | Lifecycle::Starting => Flow::Continue,
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
        let timeout = Duration::from_millis(self.state.shared.config.heartbeat.timeout_ms);
        self.pong_deadline = Some(tokio::time::Instant::now() + timeout);
        let ping = ServerMessage::Ping(Ping {
            timestamp: self.state.shared.clock.now_ms(),
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
            None => Flow::Stop,
            Some(Ok(Message::Close(frame))) => {
                self.client_close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                Flow::Stop
            }
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => self.close(1003, "binary_not_supported").await,
            // WebSocket-level pings are answered by tungstenite itself, within a budget.
            Some(Ok(Message::Ping(_))) if !self.pings.allow() => {
                self.close(1008, "too_many_pings").await
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Flow::Continue,
            Some(Err(WsError::Capacity(
                CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
            ))) => self.close(1009, "message_too_big").await,
            Some(Err(err)) => match violation_close(&err) {
                Some((code, reason)) => {
                    tracing::debug!(%err, code, "closing on a bad frame");
                    self.close(code, reason).await
                }
                None => {
                    tracing::debug!(%err, "connection read failed");
                    Flow::Stop
                }
            },
        }
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let limits = JsonLimits {
            max_depth: self.state.shared.config.limits.max_json_depth,
            max_elements: self.state.shared.config.limits.max_json_elements,
        };
        let reply = match parse_client_frame_with_limits(text, limits) {
            Err(err) => {
                self.state.shared.metrics.record_invalid_frame(err.code);
                ServerMessage::Error(err.to_error_frame())
            }
            Ok(ClientFrame::Pong { .. }) => {
                self.pong_since_ping = true;
                self.pong_deadline = None;
                return Flow::Continue;
            }
            Ok(ClientFrame::Request(request)) => {
                let id = request.id.clone();
                let metrics_on = self.state.shared.metrics.enabled();
                let started = metrics_on.then(std::time::Instant::now);
                let operation = crate::metrics::operation_index(&request.op_type);
                // Disabled (a few loads) unless the log filter lets debug through.
                let span = tracing::debug_span!(
                    "request",
                    connection = tracing::field::Empty,
                    user = tracing::field::Empty,
                    operation = crate::metrics::operation_name(operation),
                );
                if !span.is_disabled() {
                    let connection = self.state.registration.wire_id();
                    span.record("connection", connection.as_str());
                    if let Some(session) = self.state.session.get() {
                        span.record("user", session.user_id.as_str());
                    }
                }
                // Boxed: handling a request needs kilobytes of future state, which an idle
                // connection's task would otherwise carry all the time.
                let result = tracing::Instrument::instrument(
                    Box::pin(self.handle_guarded(request)),
                    span.clone(),
                )
                .await;
                if let Some(started) = started {
                    let code = result.as_ref().map(|_| ()).map_err(|err| err.code);
                    self.state
                        .shared
                        .metrics
                        .record_request(operation, code, started.elapsed());
                }
                span.in_scope(|| match &result {
                    Ok(_) => tracing::debug!(result = "ok", "request answered"),
                    Err(err) => tracing::debug!(result = err.code.as_str(), "request answered"),
                });
                match result {
                    Ok(data) => ServerMessage::Result(ResultFrame { id, data }),
                    Err(err) => ServerMessage::Error(
                        err.into_frame(id, self.state.shared.config.expose_error_details),
                    ),
                }
            }
        };
        let sent = self.send(reply.to_json()).await;
        // A request that revoked its own connection: the notice and close follow its answer.
        self.state.revocation.close_if_revoked();
        for id in self.state.activate_after_reply.drain(..) {
            self.state.queue.activate(&id);
        }
        // Subscriptions this request ended (e.g. `store.undefineQuery`) are reported right
        // after its answer.
        while let Some((id, why)) = self.state.ended_subscriptions.try_recv() {
            self.state.end_subscription(&id, why);
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
        match guard_panics(router::handle(&mut self.state, request)).await {
            Ok(result) => result,
            Err(()) => Err(ServerError::internal(format_args!(
                "panic while handling {op_type}"
            ))),
        }
    }
}

/// The close frame for a read error that is the client's fault: 1002 for a protocol
/// violation (reserved bits or opcodes, an unmasked frame, a bad fragment sequence), 1007
/// for a text frame that is not UTF-8. tungstenite leaves the connection active after
/// these, so the close frame can still be written. `None` for errors of the socket itself.
fn violation_close(err: &tokio_tungstenite::tungstenite::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match err {
        WsError::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::ReceivedAfterClosing,
        ) => None,
        WsError::Protocol(_) => Some((1002, "protocol_error")),
        WsError::Utf8(_) => Some((1007, "invalid_utf8")),
        _ => None,
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
