//! The protocol's error codes (docs/reference/protocol.md, "Error codes"): one enum, serialized exactly as on the wire.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Every error code a server may put in an `error` frame's `code` field.
///
/// Serialized in `SCREAMING_SNAKE_CASE`, e.g. [`ErrorCode::BucketNotDefined`] is
/// `"BUCKET_NOT_DEFINED"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The frame is not JSON, or not a JSON object.
    ParseError,
    /// `id` or `type` is missing or malformed.
    InvalidRequest,
    /// No such operation (also every `auth.*` when auth is not configured).
    UnknownOperation,
    /// A field is missing or of the wrong type, or schema validation failed.
    ValidationError,
    /// Record, subscription or rule not found.
    NotFound,
    /// Unique constraint, or bucket / query / rule already defined.
    AlreadyExists,
    /// Transaction version conflict.
    Conflict,
    /// Not logged in, bad token, expired session.
    Unauthorized,
    /// Logged in but not allowed.
    Forbidden,
    /// Request rate exceeded, or subscription limit reached.
    RateLimited,
    /// Write buffer full.
    Backpressure,
    /// Anything unexpected; details never leak.
    InternalError,
    /// Unknown bucket.
    BucketNotDefined,
    /// Unknown query.
    QueryNotDefined,
    /// A `rules.*` request while no rule engine is configured.
    RulesNotAvailable,
    /// `auth.login` for a user whose sessions an administrator revoked (for
    /// `revocation.blacklistTtlMs`).
    SessionRevoked,
}

impl ErrorCode {
    /// All codes, in the order of the spec's table.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::ParseError,
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownOperation,
        ErrorCode::ValidationError,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Conflict,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::Backpressure,
        ErrorCode::InternalError,
        ErrorCode::BucketNotDefined,
        ErrorCode::QueryNotDefined,
        ErrorCode::RulesNotAvailable,
        ErrorCode::SessionRevoked,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::UnknownOperation => "UNKNOWN_OPERATION",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Backpressure => "BACKPRESSURE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::BucketNotDefined => "BUCKET_NOT_DEFINED",
            ErrorCode::QueryNotDefined => "QUERY_NOT_DEFINED",
            ErrorCode::RulesNotAvailable => "RULES_NOT_AVAILABLE",
            ErrorCode::SessionRevoked => "SESSION_REVOKED",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_as_its_wire_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn codes_are_distinct() {
        let names: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), 16);
    }
}
