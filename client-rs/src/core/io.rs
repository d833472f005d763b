//! The core's settings and its inputs and outputs.

use noex_protocol::Welcome;
use serde_json::Value;

use super::{ReconnectPolicy, RequestHandle, SubscriptionKey};
use crate::ClientError;

/// Core settings.
///
/// ```
/// let c = noex_client::core::CoreConfig::default();
/// assert_eq!(c.request_timeout_ms, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// How long a request waits for its answer.
    pub request_timeout_ms: u64,
    /// Reconnect schedule.
    pub reconnect: ReconnectPolicy,
    /// Answer server pings automatically.
    pub heartbeat_replies: bool,
    /// Token sent with `auth.login` after every reconnect (set it to log in automatically).
    /// A successful user `auth.login` replaces it and a successful `auth.logout` clears it,
    /// so the session the user chose last is the one restored after a reconnect.
    pub auth_token: Option<String>,
    /// Seed of the jitter generator.
    pub jitter_seed: u64,
    /// How long an opened connection may wait for its welcome before it is dropped (and,
    /// after the first welcome, the next reconnect attempt scheduled).
    pub welcome_timeout_ms: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            request_timeout_ms: 10_000,
            reconnect: ReconnectPolicy::default(),
            heartbeat_replies: true,
            auth_token: None,
            jitter_seed: 0x6e6f6578,
            welcome_timeout_ms: 5_000,
        }
    }
}

/// Lifecycle notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleEvent {
    /// The first welcome arrived.
    Connected(Welcome),
    /// The connection dropped.
    Disconnected {
        /// Whether the core will try to reconnect.
        will_reconnect: bool,
    },
    /// A reconnect attempt is scheduled.
    Reconnecting {
        /// 1-based attempt number.
        attempt: u32,
        /// Delay before the attempt.
        delay_ms: u64,
    },
    /// A welcome arrived after a reconnect; re-login and re-subscriptions are sent.
    Reconnected(Welcome),
    /// The server announced a shutdown.
    Shutdown {
        /// The server's grace period.
        grace_period_ms: u64,
    },
    /// An administrator revoked the session (`{type: "system", event: "session_revoked"}`):
    /// the server closes the connection with 4002 and the core does not reconnect (a
    /// reconnect could not log in again), as the original client.
    SessionRevoked {
        /// The server's reason.
        reason: String,
    },
    /// Something went wrong that belongs to no request (malformed frame, id-0 error,
    /// failed re-login or re-subscription).
    Error(ClientError),
}

/// What the core asks its transport to do or deliver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this text frame.
    Send(String),
    /// A user request finished.
    Resolve {
        /// The handle returned when the request was made.
        handle: RequestHandle,
        /// Its outcome.
        result: Result<Value, ClientError>,
    },
    /// New data for a subscription: a store push, a rules event, or fresh data after
    /// re-subscription.
    Push {
        /// The local subscription.
        key: SubscriptionKey,
        /// The data (`{topic, event}` for rules).
        data: Value,
    },
    /// A subscription ended on the client's side: its re-subscription after a reconnect
    /// failed for good (the query is gone, the session lost the permission), or kept
    /// failing for a passing reason (timeout, rate limit, server error) through the
    /// reconnect policy's retries. The core has forgotten it; no more [`Output::Push`]
    /// comes for `key`.
    SubscriptionEnded {
        /// The local subscription.
        key: SubscriptionKey,
        /// Why it ended.
        error: ClientError,
    },
    /// A lifecycle event.
    Event(LifecycleEvent),
    /// Open a new connection now (reconnect attempt); report with
    /// [`ClientCore::connection_opened`] or [`ClientCore::connection_closed`].
    Connect,
    /// Close the connection (user disconnect, or no welcome in time). The core already
    /// knows it is closed: do not report [`ClientCore::connection_closed`] for it.
    Close,
}

/// Every input the core accepts; [`ClientCore::handle_input`] dispatches them.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The transport opened a connection.
    ConnectionOpened,
    /// The connection closed or a connect attempt failed.
    ConnectionClosed,
    /// A text frame arrived.
    Frame(String),
    /// The time reported by [`ClientCore::next_timeout`] has come.
    Timer,
    /// The user closes the client.
    Disconnect,
}
