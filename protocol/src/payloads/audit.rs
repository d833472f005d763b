//! Results of `audit.*` operations and of `server.revokeSessions` (docs/reference/protocol.md,
//! "Audit operations").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ts_rs::TS;

use crate::AuditResult;

/// One entry of the audit log: who did what, on what, with which outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// When the operation was answered, ms since the Unix epoch (server clock).
    pub timestamp: u64,
    /// The session's user; `null` when the connection had no session.
    pub user_id: Option<String>,
    /// The connection of the session (`conn-N`); `null` when it had no session.
    pub session_id: Option<String>,
    /// The operation's type, e.g. `store.defineBucket`.
    pub operation: String,
    /// What it acted on: a bucket, query, rule id, topic, fact key or pattern; `*` for none.
    pub resource: String,
    /// Success or error.
    pub result: AuditResult,
    /// The error message (bounded), when `result` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
    /// Operation-specific facts (bounded), e.g. the filter of `server.revokeSessions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, as = "Option<std::collections::HashMap<String, Value>>")]
    pub details: Option<Map<String, Value>>,
    /// The client's IP address.
    pub remote_address: String,
}

/// `audit.query`: `{entries}`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct AuditEntries {
    /// The matching entries.
    pub entries: Vec<AuditEntry>,
}

/// `server.revokeSessions`: `{revoked}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SessionsRevoked {
    /// How many connections were revoked (and are being closed).
    pub revoked: u64,
}
