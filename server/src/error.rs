//! `ServerError`: the one type every request handler fails with, and the single place where
//! failures become protocol error frames.

use noex_protocol::{ErrorCode, ErrorFrame, INTERNAL_ERROR_MESSAGE, OperationError, RequestId};
use serde_json::Value;

/// A request failure with its protocol code. Internal failures carry no client-visible detail.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    /// The protocol code.
    pub code: ErrorCode,
    /// The message sent to the client.
    pub message: String,
    /// Structured details, if any.
    pub details: Option<Value>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ServerError {}

impl ServerError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerError {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An unexpected failure: logged in full on the server, answered with the generic
    /// `INTERNAL_ERROR` message so nothing internal leaks.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error while handling a request");
        ServerError::new(ErrorCode::InternalError, INTERNAL_ERROR_MESSAGE)
    }

    /// `UNKNOWN_OPERATION` for `op_type`.
    pub fn unknown_operation(op_type: &str) -> Self {
        ServerError::new(
            ErrorCode::UnknownOperation,
            format!("Unknown operation \"{op_type}\""),
        )
    }

    /// The error frame answering request `id`; `details` are dropped unless exposed.
    pub fn into_frame(self, id: RequestId, expose_details: bool) -> ErrorFrame {
        ErrorFrame {
            id,
            code: self.code,
            message: self.message,
            details: if expose_details { self.details } else { None },
        }
    }
}

impl From<OperationError> for ServerError {
    fn from(err: OperationError) -> Self {
        ServerError::new(err.code(), err.message())
    }
}

/// A definition without the wire shape answers like any other invalid definition the store
/// refuses (`VALIDATION_ERROR`, "Invalid definition: ...").
impl From<noex_store::InvalidDefinition> for ServerError {
    fn from(err: noex_store::InvalidDefinition) -> Self {
        noex_store::StoreError::from(err).into()
    }
}
