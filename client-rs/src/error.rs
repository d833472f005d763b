//! The client's error type: server errors with their protocol code, timeouts, disconnects
//! and malformed frames.

use noex_protocol::ErrorCode;
use serde_json::Value;

/// Everything a client call can fail with.
///
/// ```
/// use noex_client::ClientError;
/// use noex_protocol::ErrorCode;
///
/// let err = ClientError::Server { code: ErrorCode::NotFound, message: "gone".into(), details: None };
/// assert_eq!(err.code(), Some(ErrorCode::NotFound));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error frame.
    #[error("{code}: {message}")]
    Server {
        /// The protocol error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// Structured details, when the server sent any.
        details: Option<Value>,
    },
    /// No answer arrived within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The connection dropped (or was not open) while the request was pending. Requests
    /// are never retried silently.
    #[error("disconnected")]
    Disconnected,
    /// The server sent a frame that does not follow the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Connecting failed (transport level).
    #[error("connection failed: {0}")]
    Connect(String),
    /// A result could not be turned into the requested type.
    #[error("cannot decode result: {0}")]
    Decode(String),
}

impl ClientError {
    /// The protocol error code, for server errors.
    ///
    /// ```
    /// assert_eq!(noex_client::ClientError::Timeout.code(), None);
    /// ```
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}
