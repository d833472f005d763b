//! The sans-I/O client core: a state machine with no sockets, no clock and no runtime.
//!
//! Feed it [`Input`]s (connection opened / closed, frame received, timer fired, user
//! calls) with the current time as `now_ms`, then drain [`Output`]s with
//! [`ClientCore::poll_output`] (frames to send, results to resolve, pushes, lifecycle
//! events, "open a connection now"). [`ClientCore::next_timeout`] says when to call
//! [`ClientCore::handle_timeout`] next. Transports (tokio, browser) are thin shells around it.
//!
//! ```
//! use noex_client::core::{ClientCore, CoreConfig, Output};
//!
//! let mut core = ClientCore::new(CoreConfig::default());
//! core.connection_opened(0);
//! core.frame_received(r#"{"type":"welcome","version":"1.0.0","serverTime":1,"requiresAuth":false}"#, 0);
//! assert!(matches!(core.poll_output(), Some(Output::Event(_))));
//! core.frame_received(r#"{"type":"ping","timestamp":5}"#, 1);
//! assert_eq!(core.poll_output(), Some(Output::Send(r#"{"type":"pong","timestamp":5}"#.into())));
//! ```

mod backoff;
mod codec;
mod frame;
mod io;
mod pending;
mod subscriptions;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;

use noex_protocol::{
    ErrorCode, Operation, PushChannel, RequestId, ServerMessage, SystemEvent, Welcome,
};
use serde_json::{Map, Value};

pub use backoff::{Backoff, ReconnectPolicy};
pub use codec::{Codec, SerdeJson};
pub use io::{CoreConfig, Input, LifecycleEvent, Output};
pub use pending::RequestHandle;
pub use subscriptions::{SubscriptionKey, SubscriptionTarget};

use crate::ClientError;
use pending::{PendingTable, Purpose};
use subscriptions::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Transport open, waiting for the welcome.
    AwaitingWelcome,
    /// Welcome received; requests flow.
    Open,
    /// Waiting for the next reconnect attempt (or for it to open).
    Reconnecting,
    /// Not connected and will not reconnect.
    Closed,
}

/// The client state machine. See the module docs. `C` reads and writes frame text
/// (serde_json unless a transport brings its own, as the browser client does).
#[derive(Debug)]
pub struct ClientCore<C: Codec = SerdeJson> {
    config: CoreConfig,
    state: State,
    ever_welcomed: bool,
    attempt: u32,
    reconnect_at: Option<u64>,
    welcome_deadline: Option<u64>,
    backoff: Backoff,
    pending: PendingTable,
    subs: Registry,
    /// Subscriptions ended while their (re)subscribe request was in flight: when its
    /// answer arrives, the server-side subscription it created is unsubscribed at once.
    cancelled: HashMap<SubscriptionKey, SubscriptionTarget>,
    /// (Re)subscribe requests that timed out, by request id: the server may still create
    /// the subscription, so a late answer is unsubscribed at once.
    abandoned: HashMap<u64, SubscriptionTarget>,
    /// Re-subscriptions that failed for a passing reason (timeout, rate limit, server
    /// error) and are tried again at the given time; with the attempts made so far.
    resubscribe_due: Vec<(u64, SubscriptionKey)>,
    resubscribe_attempts: HashMap<SubscriptionKey, u32>,
    user_handles: u64,
    out: VecDeque<Output>,
    welcome: Option<Welcome>,
    /// The server revoked the session: the next close is final.
    revoked: bool,
    codec: PhantomData<C>,
}

impl ClientCore {
    /// A core that is not connected yet; call [`ClientCore::connection_opened`] when the
    /// transport's first connection is open.
    pub fn new(config: CoreConfig) -> Self {
        Self::with_codec(config)
    }
}

impl<C: Codec> ClientCore<C> {
    /// [`ClientCore::new`] with the codec `C`.
    pub fn with_codec(config: CoreConfig) -> Self {
        let backoff = Backoff::new(config.reconnect.clone(), config.jitter_seed);
        ClientCore {
            config,
            state: State::Closed,
            ever_welcomed: false,
            attempt: 0,
            reconnect_at: None,
            welcome_deadline: None,
            backoff,
            pending: PendingTable::default(),
            subs: Registry::default(),
            cancelled: HashMap::new(),
            abandoned: HashMap::new(),
            resubscribe_due: Vec::new(),
            resubscribe_attempts: HashMap::new(),
            user_handles: 0,
            out: VecDeque::new(),
            welcome: None,
            revoked: false,
            codec: PhantomData,
        }
    }

    /// Dispatches one [`Input`].
    ///
    /// ```
    /// use noex_client::core::*;
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// core.handle_input(Input::ConnectionOpened, 0);
    /// assert!(!core.is_open());
    /// ```
    pub fn handle_input(&mut self, input: Input, now_ms: u64) {
        match input {
            Input::ConnectionOpened => self.connection_opened(now_ms),
            Input::ConnectionClosed => self.connection_closed(now_ms),
            Input::Frame(text) => self.frame_received(&text, now_ms),
            Input::Timer => self.handle_timeout(now_ms),
            Input::Disconnect => self.disconnect(),
        }
    }

    /// The next output to act on.
    ///
    /// ```
    /// use noex_client::core::*;
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// assert_eq!(core.poll_output(), None);
    /// ```
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether requests can be sent now (welcome received).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The last welcome received.
    pub fn welcome(&self) -> Option<&Welcome> {
        self.welcome.as_ref()
    }

    /// Whether the core is closed for good (user disconnect, retries exhausted, or the
    /// first connection closed before its welcome).
    pub fn is_terminated(&self) -> bool {
        self.state == State::Closed && self.ever_welcomed
    }

    /// Number of requests waiting for an answer (internal ones included).
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Number of live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// When [`ClientCore::handle_timeout`] must be called next (absolute ms).
    ///
    /// ```
    /// use noex_client::core::*;
    /// let core = ClientCore::new(CoreConfig::default());
    /// assert_eq!(core.next_timeout(), None);
    /// ```
    pub fn next_timeout(&self) -> Option<u64> {
        [
            self.pending.next_deadline(),
            self.reconnect_at,
            self.welcome_deadline,
            self.resubscribe_due.iter().map(|(at, _)| *at).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The transport opened a connection; wait for the welcome.
    pub fn connection_opened(&mut self, now_ms: u64) {
        if self.state != State::Closed || !self.ever_welcomed {
            self.state = State::AwaitingWelcome;
            self.reconnect_at = None;
            self.welcome_deadline = Some(now_ms.saturating_add(self.config.welcome_timeout_ms));
        }
    }

    /// The connection closed, or a connect attempt failed. Pending requests fail with
    /// [`ClientError::Disconnected`]; a reconnect is scheduled when the policy allows.
    pub fn connection_closed(&mut self, now_ms: u64) {
        if self.state == State::Closed && self.ever_welcomed {
            return;
        }
        let was_connected = self.state == State::Open
            || (self.state == State::AwaitingWelcome && self.attempt == 0);
        self.welcome_deadline = None;
        self.fail_all_pending();
        self.subs.clear_server_ids();
        self.forget_subscription_requests();
        self.attempt += 1;
        let will_reconnect =
            self.ever_welcomed && !self.revoked && self.backoff.allows(self.attempt);
        if was_connected {
            self.emit(LifecycleEvent::Disconnected { will_reconnect });
        }
        if will_reconnect {
            let delay_ms = self.backoff.delay_ms(self.attempt);
            self.state = State::Reconnecting;
            self.reconnect_at = Some(now_ms.saturating_add(delay_ms));
            self.emit(LifecycleEvent::Reconnecting {
                attempt: self.attempt,
                delay_ms,
            });
        } else {
            if !was_connected {
                self.emit(LifecycleEvent::Disconnected {
                    will_reconnect: false,
                });
            }
            self.state = State::Closed;
            self.reconnect_at = None;
            self.ever_welcomed = true; // terminal: ignore later closes
        }
    }

    /// The user closes the client: no reconnect, pending requests fail.
    ///
    /// ```
    /// use noex_client::core::*;
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// core.connection_opened(0);
    /// core.disconnect();
    /// assert_eq!(core.poll_output(), Some(Output::Close));
    /// assert!(core.is_terminated());
    /// ```
    pub fn disconnect(&mut self) {
        let was = self.state;
        self.fail_all_pending();
        self.subs.clear_server_ids();
        self.forget_subscription_requests();
        self.state = State::Closed;
        self.ever_welcomed = true;
        self.reconnect_at = None;
        self.welcome_deadline = None;
        if was != State::Closed {
            self.out.push_back(Output::Close);
            self.emit(LifecycleEvent::Disconnected {
                will_reconnect: false,
            });
        }
    }

    /// Time has passed: expire requests, start a due reconnect attempt.
    ///
    /// ```
    /// use noex_client::core::*;
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// core.handle_timeout(1_000);
    /// assert_eq!(core.poll_output(), None);
    /// ```
    pub fn handle_timeout(&mut self, now_ms: u64) {
        for (id, pending) in self.pending.take_expired(now_ms) {
            if let Purpose::Subscribe(_, key) | Purpose::Resubscribe(key) = pending.purpose {
                let cancelled = self.cancelled.remove(&key);
                // The server may still create it: release what a late answer reports.
                if let Some(target) = cancelled.clone().or_else(|| self.subs.target(key).cloned()) {
                    self.abandoned.insert(id, target);
                }
                if cancelled.is_some() && matches!(pending.purpose, Purpose::Resubscribe(_)) {
                    continue; // the user already ended it: nothing to report
                }
            }
            self.finish(pending.purpose, Err(ClientError::Timeout), now_ms);
        }
        self.resubscribe_due_ones(now_ms);
        if let Some(at) = self.welcome_deadline
            && at <= now_ms
        {
            #[cfg(feature = "tracing")]
            tracing::debug!("no welcome in time; dropping the connection");
            self.out.push_back(Output::Close);
            self.connection_closed(now_ms);
        }
        if let Some(at) = self.reconnect_at
            && at <= now_ms
        {
            self.reconnect_at = None;
            self.out.push_back(Output::Connect);
        }
    }

    /// Sends a user request; its outcome arrives as [`Output::Resolve`]. When the client
    /// is not open it resolves at once with [`ClientError::Disconnected`].
    ///
    /// ```
    /// use noex_client::core::*;
    /// use noex_protocol::{Operation, ServerOp};
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// let h = core.request(Operation::Server(ServerOp::Stats), 0);
    /// assert!(matches!(core.poll_output(), Some(Output::Resolve { handle, result: Err(_) }) if handle == h));
    /// ```
    pub fn request(&mut self, operation: Operation, now_ms: u64) -> RequestHandle {
        match serde_json::to_value(&operation) {
            Ok(Value::Object(mut fields)) => {
                let op_type = match fields.shift_remove("type") {
                    Some(Value::String(t)) => t,
                    _ => operation.op_type().to_owned(),
                };
                self.request_raw(&op_type, fields, now_ms)
            }
            Ok(_) => self.request_raw(operation.op_type(), Map::new(), now_ms),
            Err(e) => {
                let handle = self.new_handle();
                let error = ClientError::Protocol(e.to_string());
                self.finish(Purpose::User(handle), Err(error), now_ms);
                handle
            }
        }
    }

    /// [`ClientCore::request`] for an operation given as its `type` and its other fields
    /// (what the browser client sends; `id` and `type` in `fields` are ignored). The
    /// session-changing operations (`auth.login`, `identity.login`, `auth.logout`, ...)
    /// are recognised by their type, as for typed operations.
    ///
    /// ```
    /// use noex_client::core::*;
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// let h = core.request_raw("server.stats", Default::default(), 0);
    /// assert!(matches!(core.poll_output(), Some(Output::Resolve { handle, result: Err(_) }) if handle == h));
    /// ```
    pub fn request_raw(
        &mut self,
        op_type: &str,
        fields: Map<String, Value>,
        now_ms: u64,
    ) -> RequestHandle {
        let handle = self.new_handle();
        let purpose = match op_type {
            "auth.login" => match fields.get("token") {
                Some(Value::String(token)) => Purpose::Login(handle, token.clone()),
                _ => Purpose::User(handle),
            },
            "auth.logout" | "identity.logout" => Purpose::Logout(handle),
            // A password (or admin secret) session: its token logs in again after a
            // reconnect, exactly as a token given to `auth.login` does.
            "identity.login" | "identity.loginWithSecret" | "identity.refreshSession" => {
                Purpose::IdentityLogin(handle)
            }
            "identity.changePassword" => Purpose::PasswordChanged(handle),
            _ => Purpose::User(handle),
        };
        self.send(op_type, fields, purpose, now_ms);
        handle
    }

    /// Subscribes; the handle resolves with the initial data (store) or the subscribe
    /// result (rules), and later data arrives as [`Output::Push`] with the key.
    pub fn subscribe(
        &mut self,
        target: SubscriptionTarget,
        now_ms: u64,
    ) -> (RequestHandle, SubscriptionKey) {
        let handle = self.new_handle();
        let key = self.subs.add(target.clone());
        let (op_type, fields) = subscribe_op(&target);
        if !self.send(op_type, fields, Purpose::Subscribe(handle, key), now_ms) {
            self.subs.remove(key);
        }
        (handle, key)
    }

    /// Ends a subscription: forgets it and tells the server (when connected).
    ///
    /// ```
    /// use noex_client::core::*;
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// core.unsubscribe(SubscriptionKey(1), 0); // unknown keys are ignored
    /// assert_eq!(core.poll_output(), None);
    /// ```
    pub fn unsubscribe(&mut self, key: SubscriptionKey, now_ms: u64) {
        let Some((target, server_id)) = self.subs.remove(key) else {
            return;
        };
        if self.state != State::Open {
            return;
        }
        match server_id {
            Some(server_id) => {
                let (op_type, fields) = unsubscribe_op(&target, server_id);
                self.send(op_type, fields, Purpose::Ignore, now_ms);
            }
            // A (re)subscribe is in flight: undo it when its answer arrives.
            None if self.pending.has_subscription(key) => {
                self.cancelled.insert(key, target);
            }
            None => {}
        }
    }

    /// Handles one text frame from the server.
    ///
    /// ```
    /// use noex_client::core::*;
    /// let mut core = ClientCore::new(CoreConfig::default());
    /// core.frame_received("garbage", 0);
    /// assert!(matches!(core.poll_output(), Some(Output::Event(LifecycleEvent::Error(_)))));
    /// ```
    pub fn frame_received(&mut self, text: &str, now_ms: u64) {
        let message = match C::decode(text).and_then(frame::server_message) {
            Ok(m) => m,
            Err(e) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(error = %e, "malformed server frame");
                self.emit(LifecycleEvent::Error(ClientError::Protocol(e)));
                return;
            }
        };
        match message {
            ServerMessage::Welcome(welcome) => self.on_welcome(welcome, now_ms),
            ServerMessage::Ping(ping) => {
                if self.config.heartbeat_replies {
                    let text = C::encode(&frame::pong(ping.timestamp));
                    self.out.push_back(Output::Send(text));
                }
            }
            ServerMessage::Result(frame) => self.on_answer(&frame.id, Ok(frame.data), now_ms),
            ServerMessage::Error(frame) => {
                let err = ClientError::Server {
                    code: frame.code,
                    message: frame.message,
                    details: frame.details,
                };
                if frame.id.as_u64() == Some(0) {
                    // The server ends a subscription (the session that allowed it is gone,
                    // or its query can no longer be evaluated) with an id-0 error naming it.
                    let ended =
                        ended_subscription_id(&err).and_then(|id| self.subs.by_server_id(id));
                    if let Some(key) = ended {
                        self.resubscribe_attempts.remove(&key);
                        self.subs.remove(key);
                        self.out.push_back(Output::SubscriptionEnded {
                            key,
                            error: err.clone(),
                        });
                    }
                    self.emit(LifecycleEvent::Error(err));
                } else {
                    self.on_answer(&frame.id, Err(err), now_ms);
                }
            }
            ServerMessage::Push(push) => {
                if let Some(key) = self.subs.by_server_id(&push.subscription_id) {
                    let matches = matches!(
                        (self.subs.target(key), push.channel),
                        (
                            Some(SubscriptionTarget::Store { .. }),
                            PushChannel::Subscription
                        ) | (Some(SubscriptionTarget::Rules { .. }), PushChannel::Event)
                    );
                    if matches {
                        self.out.push_back(Output::Push {
                            key,
                            data: push.data,
                        });
                    }
                }
            }
            ServerMessage::System(SystemEvent::Shutdown { grace_period_ms }) => {
                self.emit(LifecycleEvent::Shutdown { grace_period_ms });
            }
            ServerMessage::System(SystemEvent::SessionRevoked { reason }) => {
                // No reconnect and no re-login: the user is blacklisted for a while, and a
                // loop of reconnects would only be refused again.
                self.revoked = true;
                self.config.auth_token = None;
                self.emit(LifecycleEvent::SessionRevoked { reason });
            }
        }
    }

    fn on_welcome(&mut self, welcome: Welcome, now_ms: u64) {
        if self.state != State::AwaitingWelcome {
            self.emit(LifecycleEvent::Error(ClientError::Protocol(
                "unexpected welcome".into(),
            )));
            return;
        }
        self.state = State::Open;
        self.welcome_deadline = None;
        self.welcome = Some(welcome.clone());
        if !self.ever_welcomed {
            self.ever_welcomed = true;
            self.attempt = 0;
            self.emit(LifecycleEvent::Connected(welcome));
            return;
        }
        self.attempt = 0;
        self.emit(LifecycleEvent::Reconnected(welcome));
        if let Some(token) = self.config.auth_token.clone() {
            let fields = frame::one("token", token.into());
            self.send("auth.login", fields, Purpose::Relogin, now_ms);
        }
        for (key, target) in self.subs.all() {
            let (op_type, fields) = subscribe_op(&target);
            self.send(op_type, fields, Purpose::Resubscribe(key), now_ms);
        }
    }

    fn on_answer(&mut self, id: &RequestId, result: Result<Value, ClientError>, now_ms: u64) {
        let Some(pending) = id.as_u64().and_then(|id| self.pending.take(id)) else {
            match id.as_u64().and_then(|id| self.abandoned.remove(&id)) {
                Some(target) => self.release_late(&target, &result, now_ms),
                #[cfg(feature = "tracing")]
                None => tracing::debug!(%id, "answer for no pending request"),
                #[cfg(not(feature = "tracing"))]
                None => {}
            }
            return;
        };
        if let Purpose::Subscribe(_, key) | Purpose::Resubscribe(key) = pending.purpose
            && let Some(target) = self.cancelled.remove(&key)
        {
            // Ended while in flight: release what the server just created.
            self.release_late(&target, &result, now_ms);
            if let Purpose::Subscribe(handle, _) = pending.purpose {
                self.out.push_back(Output::Resolve {
                    handle,
                    result: Err(ClientError::Disconnected),
                });
            }
            return;
        }
        self.finish(pending.purpose, result, now_ms);
    }

    /// Unsubscribes the server-side subscription a (re)subscribe answer created, when
    /// nobody wants it any more.
    fn release_late(
        &mut self,
        target: &SubscriptionTarget,
        result: &Result<Value, ClientError>,
        now_ms: u64,
    ) {
        if let Some(server_id) = result
            .as_ref()
            .ok()
            .and_then(|data| data.get("subscriptionId"))
            .and_then(Value::as_str)
        {
            let (op_type, fields) = unsubscribe_op(target, server_id.to_owned());
            self.send(op_type, fields, Purpose::Ignore, now_ms);
        }
    }

    /// Forgets the bookkeeping of subscription requests of a connection that is gone
    /// (everything is re-subscribed on the next welcome).
    fn forget_subscription_requests(&mut self) {
        self.cancelled.clear();
        self.abandoned.clear();
        self.resubscribe_due.clear();
        self.resubscribe_attempts.clear();
    }

    /// Sends the re-subscriptions whose retry time has come.
    fn resubscribe_due_ones(&mut self, now_ms: u64) {
        if self.state != State::Open {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.resubscribe_due)
            .into_iter()
            .partition(|(at, _)| *at <= now_ms);
        self.resubscribe_due = later;
        for (_, key) in due {
            if let Some(target) = self.subs.target(key).cloned() {
                let (op_type, fields) = subscribe_op(&target);
                self.send(op_type, fields, Purpose::Resubscribe(key), now_ms);
            }
        }
    }

    /// A re-subscription failed: try again later when the reason passes (timeout, rate
    /// limit, server error) and the reconnect policy allows another attempt; otherwise
    /// end the subscription where its user sees it instead of leaving it silent.
    fn resubscribe_failed(&mut self, key: SubscriptionKey, error: ClientError, now_ms: u64) {
        if self.subs.target(key).is_none() {
            return; // ended by the user meanwhile
        }
        let attempt = {
            let n = self.resubscribe_attempts.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        let passing = matches!(
            error,
            ClientError::Timeout
                | ClientError::Server {
                    code: ErrorCode::RateLimited | ErrorCode::InternalError,
                    ..
                }
        );
        if passing && self.backoff.allows(attempt) {
            let retry_after = match &error {
                ClientError::Server { details, .. } => details
                    .as_ref()
                    .and_then(|d| d.get("retryAfterMs"))
                    .and_then(Value::as_u64),
                _ => None,
            };
            let delay = retry_after.unwrap_or_else(|| self.backoff.delay_ms(attempt));
            self.resubscribe_due
                .push((now_ms.saturating_add(delay), key));
        } else {
            self.resubscribe_attempts.remove(&key);
            self.subs.remove(key);
            self.out.push_back(Output::SubscriptionEnded {
                key,
                error: error.clone(),
            });
        }
        self.emit(LifecycleEvent::Error(error));
    }

    fn finish(&mut self, purpose: Purpose, result: Result<Value, ClientError>, now_ms: u64) {
        match purpose {
            Purpose::User(handle) => self.out.push_back(Output::Resolve { handle, result }),
            Purpose::Subscribe(handle, key) => {
                let result = result.and_then(|data| self.record_subscription(key, data));
                if result.is_err() {
                    self.subs.remove(key);
                }
                self.out.push_back(Output::Resolve { handle, result });
            }
            Purpose::Resubscribe(key) => {
                match result.and_then(|data| self.record_subscription(key, data)) {
                    Ok(data) => {
                        self.resubscribe_attempts.remove(&key);
                        if matches!(
                            self.subs.target(key),
                            Some(SubscriptionTarget::Store { .. })
                        ) {
                            self.out.push_back(Output::Push { key, data });
                        }
                    }
                    Err(error) => self.resubscribe_failed(key, error, now_ms),
                }
            }
            Purpose::Login(handle, token) => {
                if result.is_ok() {
                    self.config.auth_token = Some(token);
                }
                self.out.push_back(Output::Resolve { handle, result });
            }
            Purpose::IdentityLogin(handle) => {
                if let Some(token) = result
                    .as_ref()
                    .ok()
                    .and_then(|data| data.get("token"))
                    .and_then(Value::as_str)
                {
                    self.config.auth_token = Some(token.to_owned());
                }
                self.out.push_back(Output::Resolve { handle, result });
            }
            Purpose::Logout(handle) => {
                // Without a connection there is no session left to log out of: the
                // token is forgotten too, so no reconnect logs the user back in.
                if matches!(result, Ok(_) | Err(ClientError::Disconnected)) {
                    self.config.auth_token = None;
                }
                self.out.push_back(Output::Resolve { handle, result });
            }
            Purpose::PasswordChanged(handle) => {
                if result.is_ok() {
                    self.config.auth_token = None;
                }
                self.out.push_back(Output::Resolve { handle, result });
            }
            Purpose::Relogin => {
                if let Err(e) = result {
                    self.emit(LifecycleEvent::Error(e));
                }
            }
            Purpose::Ignore => {}
        }
    }

    /// Reads `subscriptionId` (and `data` for store) from a subscribe result.
    fn record_subscription(
        &mut self,
        key: SubscriptionKey,
        data: Value,
    ) -> Result<Value, ClientError> {
        let Some(id) = data.get("subscriptionId").and_then(Value::as_str) else {
            return Err(ClientError::Protocol(
                "subscribe result without subscriptionId".into(),
            ));
        };
        let id = id.to_owned();
        if !self.subs.set_server_id(key, id) {
            // Unsubscribed while the request was in flight.
            return Err(ClientError::Disconnected);
        }
        Ok(match (self.subs.target(key), data) {
            // The initial result is moved out, not copied.
            (Some(SubscriptionTarget::Store { .. }), Value::Object(mut map)) => {
                map.remove("data").unwrap_or(Value::Null)
            }
            (_, data) => data,
        })
    }

    /// Sends the operation `{type, ...fields}` if open; otherwise fails its purpose with
    /// `Disconnected`.
    fn send(
        &mut self,
        op_type: &str,
        fields: Map<String, Value>,
        purpose: Purpose,
        now_ms: u64,
    ) -> bool {
        if self.state != State::Open {
            self.finish(purpose, Err(ClientError::Disconnected), now_ms);
            return false;
        }
        let deadline = now_ms.saturating_add(self.config.request_timeout_ms);
        let id = self.pending.insert(purpose, deadline);
        let text = C::encode(&frame::request(id, op_type, fields));
        self.out.push_back(Output::Send(text));
        true
    }

    fn fail_all_pending(&mut self) {
        for (_, pending) in self.pending.drain() {
            match pending.purpose {
                // Internal requests of a dead connection are simply dropped.
                Purpose::Relogin | Purpose::Resubscribe(_) | Purpose::Ignore => {}
                // No time is read on this path (only re-subscriptions are scheduled).
                purpose => self.finish(purpose, Err(ClientError::Disconnected), 0),
            }
        }
    }

    fn new_handle(&mut self) -> RequestHandle {
        self.user_handles += 1;
        RequestHandle(self.user_handles)
    }

    fn emit(&mut self, event: LifecycleEvent) {
        self.out.push_back(Output::Event(event));
    }
}

fn unsubscribe_op(
    target: &SubscriptionTarget,
    subscription_id: String,
) -> (&'static str, Map<String, Value>) {
    let op_type = match target {
        SubscriptionTarget::Store { .. } => "store.unsubscribe",
        SubscriptionTarget::Rules { .. } => "rules.unsubscribe",
    };
    (
        op_type,
        frame::one("subscriptionId", subscription_id.into()),
    )
}

fn subscribe_op(target: &SubscriptionTarget) -> (&'static str, Map<String, Value>) {
    match target {
        SubscriptionTarget::Store { query, params } => {
            let mut fields = frame::one("query", query.as_str().into());
            if let Some(params) = params {
                fields.insert("params".into(), params.clone());
            }
            ("store.subscribe", fields)
        }
        SubscriptionTarget::Rules { pattern } => (
            "rules.subscribe",
            frame::one("pattern", pattern.as_str().into()),
        ),
    }
}

/// The server id of the subscription an id-0 error says has ended: `details.subscriptionId`,
/// or (when the server hides details) the id in its message `Subscription <id> ended: ...`.
fn ended_subscription_id(err: &ClientError) -> Option<&str> {
    let ClientError::Server {
        message, details, ..
    } = err
    else {
        return None;
    };
    details
        .as_ref()
        .and_then(|d| d.get("subscriptionId"))
        .and_then(Value::as_str)
        .or_else(|| {
            let rest = message.strip_prefix("Subscription ")?;
            // A plain scan rather than `split_once(" ended: ")`, whose substring searcher
            // is a kilobyte of the browser client's WebAssembly.
            let at = rest.as_bytes().windows(8).position(|w| w == b" ended: ")?;
            rest.get(..at)
        })
}
