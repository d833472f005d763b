//! Frames the server sends (docs/reference/protocol.md, "Frames the server sends"): welcome, result, error, push, ping, system.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

use crate::{ErrorCode, RequestId};

/// Any frame a server sends, discriminated by its `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// First frame on every connection.
    Welcome(Welcome),
    /// A request succeeded.
    Result(ResultFrame),
    /// A request failed.
    Error(ErrorFrame),
    /// A subscription fired.
    Push(PushFrame),
    /// Heartbeat tick; answer with a pong echoing `timestamp`.
    Ping(Ping),
    /// A server-wide notice, e.g. an imminent shutdown.
    System(SystemEvent),
}

/// `{type: "welcome", version, serverTime, requiresAuth}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// Protocol version, [`crate::PROTOCOL_VERSION`].
    pub version: String,
    /// Server clock, ms since the Unix epoch.
    pub server_time: u64,
    /// Whether requests need an `auth.login` first.
    pub requires_auth: bool,
}

/// `{id, type: "result", data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ResultFrame {
    /// Echo of the request id.
    pub id: RequestId,
    /// The operation's result.
    pub data: Value,
}

/// `{id, type: "error", code, message, details?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ErrorFrame {
    /// Echo of the request id, `0` when no valid id could be read.
    pub id: RequestId,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message; never leaks internals.
    pub message: String,
    /// Structured details (validation issues, conflict key, retry delay...), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub details: Option<Value>,
}

/// Which kind of subscription a push belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum PushChannel {
    /// A store query subscription (`store.subscribe`); `data` is the complete new result.
    Subscription,
    /// A rules event subscription (`rules.subscribe`); `data` is `{topic, event}`.
    Event,
}

impl PushChannel {
    /// The channel name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PushChannel::Subscription => "subscription",
            PushChannel::Event => "event",
        }
    }
}

/// `{type: "push", channel, subscriptionId, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PushFrame {
    /// Store or rules subscription.
    pub channel: PushChannel,
    /// The id returned by the subscribe request.
    pub subscription_id: String,
    /// The new value.
    pub data: Value,
}

impl PushFrame {
    /// Builds the text of a push frame around `data_json`, which must already be valid JSON.
    ///
    /// This is how a server sends one serialized query result to many subscribers without
    /// serializing it again for each of them: only the envelope differs per subscriber.
    pub fn encode_raw(channel: PushChannel, subscription_id: &str, data_json: &str) -> String {
        let mut out = Self::encode_head(channel, subscription_id);
        out.reserve(data_json.len() + Self::TAIL.len());
        out.push_str(data_json);
        out.push_str(Self::TAIL);
        out
    }

    /// The text of a push frame before its data: `head + data_json + TAIL` is
    /// [`PushFrame::encode_raw`]. A server that keeps the data's text shared among many
    /// subscribers only builds this per subscriber.
    pub fn encode_head(channel: PushChannel, subscription_id: &str) -> String {
        let id = Value::String(subscription_id.to_owned()).to_string();
        let mut out = String::with_capacity(64 + id.len());
        out.push_str(r#"{"type":"push","channel":""#);
        out.push_str(channel.as_str());
        out.push_str(r#"","subscriptionId":"#);
        out.push_str(&id);
        out.push_str(r#","data":"#);
        out
    }

    /// The text of a push frame after its data (see [`PushFrame::encode_head`]).
    pub const TAIL: &'static str = "}";
}

/// `{type: "ping", timestamp}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Ping {
    /// Server clock when the ping was sent, ms since the Unix epoch.
    pub timestamp: u64,
}

/// `{type: "system", event, ...}`: server-wide notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum SystemEvent {
    /// The server is stopping; clients have `gracePeriodMs` to finish and leave.
    #[serde(rename_all = "camelCase")]
    Shutdown {
        /// How long the server waits before closing the remaining connections.
        grace_period_ms: u64,
    },
    /// An administrator revoked this connection's session; the server closes it with 4002
    /// `session_revoked` right after. Clients do not reconnect on it.
    #[serde(rename = "session_revoked")]
    SessionRevoked {
        /// Why, e.g. `Session revoked by administrator`.
        reason: String,
    },
}

impl ServerMessage {
    /// Serializes the frame to its JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string and no
        // custom Serialize impl returns an error.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","id":0,"code":"INTERNAL_ERROR","message":"Internal server error"}"#
                .to_owned()
        })
    }
}
