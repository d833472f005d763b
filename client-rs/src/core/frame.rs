//! Server frames read from their JSON value by hand, and the client's frames built as
//! JSON values. The core routes on a few fields only (`type`, `id`, `subscriptionId`,
//! `code`, ...); doing that here rather than through the protocol types' serde derives
//! keeps their generic code out of the browser client's WebAssembly. The frames accepted
//! are those the derives accept.

use noex_protocol::{
    ErrorCode, ErrorFrame, Ping, PushChannel, PushFrame, RequestId, ResultFrame, ServerMessage,
    SystemEvent, Welcome,
};
use serde_json::{Map, Value};

/// Reads a server frame; `Err` names what is missing or malformed.
pub(crate) fn server_message(value: Value) -> Result<ServerMessage, String> {
    let Value::Object(mut m) = value else {
        return Err("a frame must be an object".into());
    };
    let frame_type = string(&mut m, "type")?;
    Ok(match frame_type.as_str() {
        "welcome" => ServerMessage::Welcome(Welcome {
            version: string(&mut m, "version")?,
            server_time: unsigned(&m, "serverTime")?,
            requires_auth: match m.get("requiresAuth") {
                Some(Value::Bool(b)) => *b,
                _ => return Err(invalid("requiresAuth")),
            },
        }),
        "result" => ServerMessage::Result(ResultFrame {
            id: id(&mut m)?,
            data: required(&mut m, "data")?,
        }),
        "error" => ServerMessage::Error(ErrorFrame {
            id: id(&mut m)?,
            code: {
                let code = string(&mut m, "code")?;
                ErrorCode::ALL
                    .into_iter()
                    .find(|c| c.as_str() == code)
                    .ok_or_else(|| invalid("code"))?
            },
            message: string(&mut m, "message")?,
            details: m.remove("details").filter(|d| !d.is_null()),
        }),
        "push" => ServerMessage::Push(PushFrame {
            channel: match string(&mut m, "channel")?.as_str() {
                "subscription" => PushChannel::Subscription,
                "event" => PushChannel::Event,
                _ => return Err(invalid("channel")),
            },
            subscription_id: string(&mut m, "subscriptionId")?,
            data: required(&mut m, "data")?,
        }),
        "ping" => ServerMessage::Ping(Ping {
            timestamp: unsigned(&m, "timestamp")?,
        }),
        "system" => ServerMessage::System(match string(&mut m, "event")?.as_str() {
            "shutdown" => SystemEvent::Shutdown {
                grace_period_ms: unsigned(&m, "gracePeriodMs")?,
            },
            "session_revoked" => SystemEvent::SessionRevoked {
                reason: string(&mut m, "reason")?,
            },
            _ => return Err(invalid("event")),
        }),
        _ => return Err(invalid("type")),
    })
}

/// `{type: "pong", timestamp}`; integral timestamps are written as integers (as
/// [`noex_protocol::Pong`] does).
pub(crate) fn pong(timestamp: u64) -> Value {
    const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;
    let timestamp = if timestamp <= MAX_SAFE_INTEGER {
        Value::from(timestamp)
    } else {
        Value::from(timestamp as f64)
    };
    let mut m = Map::new();
    m.insert("type".into(), "pong".into());
    m.insert("timestamp".into(), timestamp);
    Value::Object(m)
}

/// `{id, type, ...fields}`: a request frame (`id` and `type` in `fields` are ignored).
pub(crate) fn request(id: u64, op_type: &str, fields: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), id.into());
    m.insert("type".into(), op_type.into());
    for (k, v) in fields {
        if k != "id" && k != "type" {
            m.insert(k, v);
        }
    }
    Value::Object(m)
}

/// A map of one field.
pub(crate) fn one(name: &str, value: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(name.into(), value);
    m
}

fn invalid(field: &str) -> String {
    let mut s = String::from("missing or invalid field `");
    s.push_str(field);
    s.push('`');
    s
}

fn string(m: &mut Map<String, Value>, field: &str) -> Result<String, String> {
    match m.remove(field) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(invalid(field)),
    }
}

fn unsigned(m: &Map<String, Value>, field: &str) -> Result<u64, String> {
    m.get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(field))
}

fn required(m: &mut Map<String, Value>, field: &str) -> Result<Value, String> {
    m.remove(field).ok_or_else(|| invalid(field))
}

fn id(m: &mut Map<String, Value>) -> Result<RequestId, String> {
    match m.remove("id") {
        Some(Value::Number(n)) => Ok(RequestId::from_number(n)),
        _ => Err(invalid("id")),
    }
}
