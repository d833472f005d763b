//! The typed operations of every namespace (`store.*`, `rules.*`, `auth.*`, `server.*`,
//! `procedures.*`, `identity.*`) and
//! [`Operation::parse`], which turns a request's `type` and fields into one of them with the
//! protocol's exact field-validation messages.

mod access;
mod audit;
mod identity;
mod procedures;
mod rules;
mod store;

pub use access::{Listing, Resource, Tier};
pub use audit::{AuditOp, AuditResult};
pub use identity::IdentityOp;

pub use procedures::ProceduresOp;
pub use rules::RulesOp;
pub use store::{GroupAggregate, JsonObject, StoreOp, TransactionOp};

use serde::Serialize;
use serde_json::{Map, Value};
use ts_rs::TS;

use crate::{ErrorCode, fields::Fields};

/// Any operation a client can request, grouped by namespace.
///
/// Serializes to the request's fields without `id`: `{type: "store.insert", bucket, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(untagged)]
pub enum Operation {
    /// `store.*`.
    Store(StoreOp),
    /// `rules.*`.
    Rules(RulesOp),
    /// `auth.*`.
    Auth(AuthOp),
    /// `server.*`.
    Server(ServerOp),
    /// `audit.*`.
    Audit(AuditOp),
    /// `procedures.*`.
    Procedures(ProceduresOp),
    /// `identity.*`.
    Identity(IdentityOp),
    /// A type this version does not know; sent as is. Servers answer `UNKNOWN_OPERATION`.
    #[ts(skip)]
    Unknown(RawOperation),
}

/// An operation of a type this crate does not model: `{type, ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawOperation {
    /// The `type` field.
    #[serde(rename = "type")]
    pub op_type: String,
    /// The other fields.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// `auth.*` operations (docs/reference/protocol.md, "Auth operations").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "type")]
pub enum AuthOp {
    /// Start (or replace) the connection's session.
    #[serde(rename = "auth.login")]
    Login {
        /// The token to validate.
        token: String,
    },
    /// End the session.
    #[serde(rename = "auth.logout")]
    Logout,
    /// Describe the session.
    #[serde(rename = "auth.whoami")]
    Whoami,
}

/// `server.*` operations (docs/reference/protocol.md, "Server operations"; admin tier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "type")]
pub enum ServerOp {
    /// Server statistics.
    #[serde(rename = "server.stats")]
    Stats,
    /// Every open connection.
    #[serde(rename = "server.connections")]
    Connections,
    /// Revokes the sessions of the authenticated connections matching every given filter
    /// (at least one): each is told `{type: "system", event: "session_revoked"}` and closed
    /// with 4002, and its user may not log in again for `revocation.blacklistTtlMs`. An
    /// extension of this server (the original offers it only in process).
    #[serde(rename = "server.revokeSessions", rename_all = "camelCase")]
    RevokeSessions {
        /// Connections of this user.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        user_id: Option<String>,
        /// Connections whose session has this role.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        role: Option<String>,
        /// The connection with this id (`conn-N`, as `server.connections` lists it).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        connection_id: Option<String>,
    },
}

/// Why a request's operation could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationError {
    /// The `type` names no known operation → `UNKNOWN_OPERATION`.
    Unknown(String),
    /// A field is missing or has the wrong type → `VALIDATION_ERROR` with this message.
    InvalidField(String),
}

impl OperationError {
    /// The protocol error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            OperationError::Unknown(_) => ErrorCode::UnknownOperation,
            OperationError::InvalidField(_) => ErrorCode::ValidationError,
        }
    }

    /// The message sent to the client.
    pub fn message(&self) -> String {
        match self {
            OperationError::Unknown(op_type) => format!("Unknown operation \"{op_type}\""),
            OperationError::InvalidField(message) => message.clone(),
        }
    }
}

/// The namespace of an operation type: the part before the first `.`.
pub fn namespace_of(op_type: &str) -> &str {
    op_type.split_once('.').map_or(op_type, |(ns, _)| ns)
}

impl Operation {
    /// Parses an operation from its `type` and the request's other fields.
    ///
    /// ```
    /// use noex_protocol::{Operation, OperationError, StoreOp};
    /// use serde_json::json;
    ///
    /// let fields = json!({"bucket": "users", "n": 2});
    /// let op = Operation::parse("store.first", fields.as_object().unwrap()).unwrap();
    /// assert_eq!(op, Operation::Store(StoreOp::First { bucket: "users".into(), n: 2 }));
    ///
    /// let bad = json!({"bucket": "users", "n": 0});
    /// let err = Operation::parse("store.first", bad.as_object().unwrap()).unwrap_err();
    /// assert_eq!(err.message(), r#"Missing or invalid "n": expected positive integer"#);
    /// ```
    pub fn parse(op_type: &str, fields: &Map<String, Value>) -> Result<Operation, OperationError> {
        Self::parse_fields(op_type, &Fields::new(fields))
    }

    /// [`Operation::parse`] consuming the fields: values are moved into the operation
    /// rather than copied, so a large record or filter exists once, not twice. What a
    /// server uses on a request it owns.
    ///
    /// ```
    /// use noex_protocol::{Operation, StoreOp};
    /// use serde_json::json;
    ///
    /// let fields = json!({"bucket": "users", "filter": {"age": {"$in": [30, 40]}}});
    /// let owned = Operation::parse_owned("store.where", fields.as_object().unwrap().clone());
    /// let borrowed = Operation::parse("store.where", fields.as_object().unwrap());
    /// assert_eq!(owned, borrowed);
    /// ```
    pub fn parse_owned(
        op_type: &str,
        fields: Map<String, Value>,
    ) -> Result<Operation, OperationError> {
        Self::parse_fields(op_type, &Fields::owned(fields, String::new()))
    }

    fn parse_fields(op_type: &str, fields: &Fields<'_>) -> Result<Operation, OperationError> {
        let parsed = match namespace_of(op_type) {
            "store" => StoreOp::parse(op_type, fields).map(|r| r.map(Operation::Store)),
            "rules" => RulesOp::parse(op_type, fields).map(|r| r.map(Operation::Rules)),
            "auth" => parse_auth(op_type, fields).map(|r| r.map(Operation::Auth)),
            "procedures" => {
                ProceduresOp::parse(op_type, fields).map(|r| r.map(Operation::Procedures))
            }
            "server" => match op_type {
                "server.stats" => Some(Ok(Operation::Server(ServerOp::Stats))),
                "server.connections" => Some(Ok(Operation::Server(ServerOp::Connections))),
                "server.revokeSessions" => Some(parse_revoke(fields).map(Operation::Server)),
                _ => None,
            },
            "audit" => AuditOp::parse(op_type, fields).map(|r| r.map(Operation::Audit)),
            "identity" => IdentityOp::parse(op_type, fields).map(|r| r.map(Operation::Identity)),
            _ => None,
        };
        match parsed {
            Some(Ok(op)) => Ok(op),
            Some(Err(message)) => Err(OperationError::InvalidField(message)),
            None => Err(OperationError::Unknown(op_type.to_owned())),
        }
    }

    /// The operation's `type`, e.g. `store.insert`.
    pub fn op_type(&self) -> &str {
        match self {
            Operation::Store(op) => op.op_type(),
            Operation::Rules(op) => op.op_type(),
            Operation::Procedures(op) => op.op_type(),
            Operation::Auth(AuthOp::Login { .. }) => "auth.login",
            Operation::Auth(AuthOp::Logout) => "auth.logout",
            Operation::Auth(AuthOp::Whoami) => "auth.whoami",
            Operation::Server(ServerOp::Stats) => "server.stats",
            Operation::Server(ServerOp::Connections) => "server.connections",
            Operation::Server(ServerOp::RevokeSessions { .. }) => "server.revokeSessions",
            Operation::Audit(op) => op.op_type(),
            Operation::Identity(op) => op.op_type(),
            Operation::Unknown(raw) => &raw.op_type,
        }
    }
}

/// Turns a namespace parser's outcome into "not this namespace's op" (`None`), a parsed
/// operation, or a field error. Parsers signal an unknown type with `Err(None)`.
fn known_or_none<T>(parsed: Result<T, Option<String>>) -> Option<Result<T, String>> {
    match parsed {
        Ok(op) => Some(Ok(op)),
        Err(Some(message)) => Some(Err(message)),
        Err(None) => None,
    }
}

fn parse_auth(op_type: &str, f: &Fields<'_>) -> Option<Result<AuthOp, String>> {
    Some(match op_type {
        "auth.login" => f.string("token").map(|token| AuthOp::Login { token }),
        "auth.logout" => Ok(AuthOp::Logout),
        "auth.whoami" => Ok(AuthOp::Whoami),
        _ => return None,
    })
}

fn parse_revoke(f: &Fields<'_>) -> Result<ServerOp, String> {
    let user_id = f.opt_string("userId")?;
    let role = f.opt_string("role")?;
    let connection_id = f.opt_string("connectionId")?;
    if user_id.is_none() && role.is_none() && connection_id.is_none() {
        return Err(
            r#"Missing filter: expected at least one of "userId", "role", "connectionId""#
                .to_owned(),
        );
    }
    Ok(ServerOp::RevokeSessions {
        user_id,
        role,
        connection_id,
    })
}
