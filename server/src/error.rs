//! `ServerError`: the one type every request handler fails with, and the single place where
//! failures become protocol error frames: the store's, the rule engine's and the protocol's
//! own errors are converted here and nowhere else.

use noex_protocol::payloads::{ConflictDetails, UniqueViolationDetails};
use noex_protocol::{ErrorCode, ErrorFrame, INTERNAL_ERROR_MESSAGE, OperationError, RequestId};
use noex_rules::RulesError;
use noex_store::StoreError;
use serde_json::{Value, json};

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

/// The protocol code of a store error: the store's own table ([`StoreError::code`], one
/// code per variant), read as the protocol's enum. A code the protocol does not know
/// (a store newer than this server) is an internal error.
fn store_code(err: &StoreError) -> ErrorCode {
    let code = err.code();
    ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == code)
        .unwrap_or(ErrorCode::InternalError)
}

impl From<StoreError> for ServerError {
    /// The code comes from [`store_code`]; this adds only the structured `details` the
    /// protocol gives some errors.
    fn from(err: StoreError) -> Self {
        let code = store_code(&err);
        if code == ErrorCode::InternalError {
            return ServerError::internal(err);
        }
        let message = err.to_string();
        let details = match err {
            StoreError::AlreadyExists {
                bucket,
                field,
                value,
            } => Some(json!(UniqueViolationDetails {
                bucket,
                field,
                value
            })),
            StoreError::Validation { issues, .. } => Some(json!(issues)),
            StoreError::ResultTooLarge { limit } => Some(json!({ "limit": limit })),
            StoreError::ReadTimeout { limit_ms } => Some(json!({ "limitMs": limit_ms })),
            StoreError::Conflict { bucket, key } => Some(json!(ConflictDetails { bucket, key })),
            _ => None,
        };
        ServerError {
            code,
            message,
            details,
        }
    }
}

impl From<RulesError> for ServerError {
    fn from(err: RulesError) -> Self {
        match err {
            RulesError::NotFound { kind, id } => {
                let mut kind = kind.to_owned();
                if let Some(first) = kind.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                ServerError::new(ErrorCode::NotFound, format!("{kind} \"{id}\" not found"))
            }
            RulesError::AlreadyExists(id) => ServerError::new(
                ErrorCode::AlreadyExists,
                format!("Rule \"{id}\" already exists"),
            ),
            RulesError::Validation(errors) => {
                let message = RulesError::Validation(errors.clone()).to_string();
                ServerError::new(ErrorCode::ValidationError, message).with_details(json!(errors))
            }
            err @ (RulesError::InvalidPattern { .. } | RulesError::TooLarge(_)) => {
                ServerError::new(ErrorCode::ValidationError, err.to_string())
            }
            err @ RulesError::LimitExceeded(_) => {
                ServerError::new(ErrorCode::RateLimited, err.to_string())
            }
        }
    }
}

/// A definition without the wire shape answers like any other invalid definition the store
/// refuses (`VALIDATION_ERROR`, "Invalid definition: ...").
impl From<noex_store::InvalidDefinition> for ServerError {
    fn from(err: noex_store::InvalidDefinition) -> Self {
        noex_store::StoreError::from(err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every store variant.
    fn every_store_error() -> Vec<StoreError> {
        let s = || "x".to_owned();
        vec![
            StoreError::BucketNotDefined { bucket: s() },
            StoreError::BucketAlreadyExists { bucket: s() },
            StoreError::Validation {
                bucket: s(),
                issues: Vec::new(),
            },
            StoreError::AlreadyExists {
                bucket: s(),
                field: s(),
                value: json!(1),
            },
            StoreError::NotFound {
                bucket: s(),
                key: json!(1),
            },
            StoreError::Conflict {
                bucket: s(),
                key: json!(1),
            },
            StoreError::QueryNotDefined { name: s() },
            StoreError::QueryAlreadyExists { name: s() },
            StoreError::SubscriptionNotFound { id: s() },
            StoreError::InvalidDefinition { message: s() },
            StoreError::InvalidArgument { message: s() },
            StoreError::InvalidParameter {
                name: s(),
                message: s(),
            },
            StoreError::ResultTooLarge { limit: 1 },
            StoreError::ReadTimeout { limit_ms: 1 },
            StoreError::LimitExceeded { message: s() },
            StoreError::Internal { message: s() },
        ]
    }

    #[test]
    fn every_store_error_keeps_the_code_of_the_store_table() {
        for err in every_store_error() {
            let table = err.code();
            let server = ServerError::from(err.clone());
            assert_eq!(server.code.as_str(), table, "{err:?}");
        }
    }

    #[test]
    fn an_internal_store_error_leaks_nothing() {
        let server = ServerError::from(StoreError::Internal {
            message: "disk path /secret".into(),
        });
        assert_eq!(server.code, ErrorCode::InternalError);
        assert_eq!(server.message, INTERNAL_ERROR_MESSAGE);
    }

    #[test]
    fn a_conflict_carries_its_bucket_and_key() {
        let server = ServerError::from(StoreError::Conflict {
            bucket: "b".into(),
            key: json!("k"),
        });
        assert_eq!(server.code, ErrorCode::Conflict);
        assert_eq!(server.details, Some(json!({"bucket": "b", "key": "k"})));
    }
}
