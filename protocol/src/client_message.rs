//! Frames a client sends (docs/reference/protocol.md, "Frames a client sends") and the frame validation every server runs first.
//!
//! [`parse_client_frame`] applies the spec's validation order (first failure wins) and is the
//! one place that order lives: the server calls it for every text frame and the tests check
//! it case by case. Servers call [`parse_client_frame_with_limits`], which first bounds the
//! frame's JSON nesting and value count (see [`crate::check_json_limits`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ts_rs::TS;

use crate::json_limits::{JsonLimitExceeded, JsonLimits, check_json_limits};
use crate::{ErrorCode, ErrorFrame, Operation, RequestId};

/// A request as a client writes it: `{id, type, ...operation fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Request {
    /// Correlates the answer with this request.
    pub id: RequestId,
    /// The operation and its fields.
    #[serde(flatten)]
    pub operation: Operation,
}

/// `{type: "pong", timestamp}`: the answer to a ping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename = "pong")]
#[ts(rename = "Pong")]
pub struct Pong {
    /// The timestamp of the ping being answered; integral values are written as integers,
    /// so a ping's `5` is echoed as `5`, not `5.0`.
    #[serde(serialize_with = "integral_as_integer")]
    pub timestamp: f64,
}

fn integral_as_integer<S: serde::Serializer>(
    value: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    if value.fract() == 0.0 && value.abs() <= MAX_SAFE_INTEGER {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// A request frame that passed envelope validation; its operation fields are not checked
/// yet (that happens after the auth and rate-limit checks, see [`Operation::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RawRequest {
    /// The request id.
    pub id: RequestId,
    /// The `type` field, e.g. `store.insert`.
    pub op_type: String,
    /// Every field of the frame except `id` and `type`.
    pub fields: Map<String, Value>,
}

impl RawRequest {
    /// Parses the operation fields; see [`Operation::parse`].
    pub fn operation(&self) -> Result<Operation, crate::OperationError> {
        Operation::parse(&self.op_type, &self.fields)
    }

    /// Parses the operation, moving the fields into it instead of copying them (see
    /// [`Operation::parse_owned`]).
    pub fn into_operation(self) -> Result<Operation, crate::OperationError> {
        Operation::parse_owned(&self.op_type, self.fields)
    }
}

/// A text frame that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A request to answer.
    Request(RawRequest),
    /// A heartbeat answer; record it, answer nothing.
    Pong {
        /// The echoed ping timestamp.
        timestamp: f64,
    },
}

/// Why a text frame was refused before it reached the request pipeline. The error frame
/// always carries id `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    /// `PARSE_ERROR` or `INVALID_REQUEST`.
    pub code: ErrorCode,
    /// The message sent to the client.
    pub message: &'static str,
}

impl FrameError {
    /// The error frame to send back.
    pub fn to_error_frame(self) -> ErrorFrame {
        ErrorFrame {
            id: RequestId::zero(),
            code: self.code,
            message: self.message.to_owned(),
            details: None,
        }
    }
}

/// Message for a frame that is not JSON.
pub const MSG_INVALID_JSON: &str = "Invalid JSON";
/// Message for JSON that is not an object.
pub const MSG_NOT_OBJECT: &str = "Message must be a JSON object";
/// Message for a missing or empty `type`.
pub const MSG_BAD_TYPE: &str = "Message must include non-empty string \"type\"";
/// Message for a pong without a finite timestamp.
pub const MSG_BAD_PONG: &str = "Pong must include finite numeric \"timestamp\"";
/// Message for a request without a finite numeric id.
pub const MSG_BAD_ID: &str = "Request must include finite numeric \"id\"";
/// Message for a request whose id could not be echoed exactly: an integer beyond 64 bits
/// (parsed as a double, it would come back rounded) or any number of that magnitude.
pub const MSG_ID_OUT_OF_RANGE: &str =
    "Request \"id\" is too large to be echoed exactly (an integer id must fit in 64 bits)";
/// Message for a frame whose arrays and objects nest deeper than the server allows.
pub const MSG_TOO_DEEP: &str = "JSON is nested too deep (over the server's limits.maxJsonDepth)";
/// Message for a frame with more JSON values than the server allows.
pub const MSG_TOO_MANY_VALUES: &str =
    "JSON has too many values (over the server's limits.maxJsonElements)";

/// Validates one text frame in the spec's order:
///
/// 1. not JSON → `PARSE_ERROR` `Invalid JSON`
/// 2. not an object → `PARSE_ERROR`
/// 3. `type` missing / not a non-empty string → `INVALID_REQUEST`
/// 4. `type == "pong"` → needs a finite numeric `timestamp`, else `INVALID_REQUEST`
/// 5. `id` missing / not a finite number → `INVALID_REQUEST`
///
/// ```
/// use noex_protocol::{parse_client_frame, ClientFrame, ErrorCode};
///
/// let frame = parse_client_frame(r#"{"id":1,"type":"store.all","bucket":"users"}"#).unwrap();
/// assert!(matches!(frame, ClientFrame::Request(ref r) if r.op_type == "store.all"));
///
/// let err = parse_client_frame("[1,2]").unwrap_err();
/// assert_eq!(err.code, ErrorCode::ParseError);
/// ```
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    parse_client_frame_with_limits(text, JsonLimits::UNLIMITED)
}

/// [`parse_client_frame`] preceded by [`check_json_limits`]: a frame over `limits` is
/// refused with `PARSE_ERROR` (`MSG_TOO_DEEP` or `MSG_TOO_MANY_VALUES`, id `0`) before
/// `serde_json` builds anything from it. This is what a server runs on untrusted input.
///
/// ```
/// use noex_protocol::{ErrorCode, JsonLimits, MSG_TOO_DEEP, parse_client_frame_with_limits};
///
/// let limits = JsonLimits { max_depth: 3, max_elements: 1000 };
/// let text = r#"{"id":1,"type":"store.where","bucket":"b","filter":{"x":{"$in":[[1]]}}}"#;
/// let err = parse_client_frame_with_limits(text, limits).unwrap_err();
/// assert_eq!((err.code, err.message), (ErrorCode::ParseError, MSG_TOO_DEEP));
/// ```
pub fn parse_client_frame_with_limits(
    text: &str,
    limits: JsonLimits,
) -> Result<ClientFrame, FrameError> {
    if limits != JsonLimits::UNLIMITED {
        check_json_limits(text, limits).map_err(|exceeded| FrameError {
            code: ErrorCode::ParseError,
            message: match exceeded {
                JsonLimitExceeded::Depth => MSG_TOO_DEEP,
                JsonLimitExceeded::Elements => MSG_TOO_MANY_VALUES,
            },
        })?;
    }
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError {
        code: ErrorCode::ParseError,
        message: MSG_INVALID_JSON,
    })?;
    let Value::Object(mut object) = value else {
        return Err(FrameError {
            code: ErrorCode::ParseError,
            message: MSG_NOT_OBJECT,
        });
    };
    let op_type = match object.remove("type") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => {
            return Err(FrameError {
                code: ErrorCode::InvalidRequest,
                message: MSG_BAD_TYPE,
            });
        }
    };
    if op_type == "pong" {
        // serde_json never produces NaN or infinities, so any number is finite.
        return match object.get("timestamp").and_then(Value::as_f64) {
            Some(timestamp) => Ok(ClientFrame::Pong { timestamp }),
            None => Err(FrameError {
                code: ErrorCode::InvalidRequest,
                message: MSG_BAD_PONG,
            }),
        };
    }
    let id = match object.remove("id") {
        Some(Value::Number(n)) if echoes_exactly(&n) => RequestId::from_number(n),
        Some(Value::Number(_)) => {
            return Err(FrameError {
                code: ErrorCode::InvalidRequest,
                message: MSG_ID_OUT_OF_RANGE,
            });
        }
        _ => {
            return Err(FrameError {
                code: ErrorCode::InvalidRequest,
                message: MSG_BAD_ID,
            });
        }
    };
    Ok(ClientFrame::Request(RawRequest {
        id,
        op_type,
        fields: object,
    }))
}

/// Whether an id can be echoed as the number the client wrote: an integer in the 64-bit
/// ranges is kept exactly; a number parsed as a double is echoed as the same double (the
/// shortest text for it, e.g. `7.50` as `7.5`), which is exact only while it cannot be an
/// integer beyond 64 bits, i.e. below 2^63 in magnitude.
fn echoes_exactly(n: &serde_json::Number) -> bool {
    /// 2^63.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    n.is_u64() || n.is_i64() || n.as_f64().is_some_and(|f| f.abs() < LIMIT)
}
