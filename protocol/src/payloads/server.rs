//! Results of `server.*` operations (docs/reference/protocol.md, "Server operations").

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{RulesStats, StoreStats};

/// Connection counts in [`ServerStats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsSummary {
    /// Open connections.
    pub active: u64,
    /// Open connections with a session.
    pub authenticated: u64,
    /// Store subscriptions over all connections.
    pub total_store_subscriptions: u64,
    /// Rules subscriptions over all connections.
    pub total_rules_subscriptions: u64,
}

/// `server.stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServerStats {
    /// Server name.
    pub name: String,
    /// Bound port.
    pub port: u16,
    /// Bound host.
    pub host: String,
    /// Open connections.
    pub connection_count: u64,
    /// Time since start.
    pub uptime_ms: u64,
    /// Whether auth is configured.
    pub auth_enabled: bool,
    /// Whether rate limiting is configured.
    pub rate_limit_enabled: bool,
    /// Whether the rule engine runs.
    pub rules_enabled: bool,
    /// Connection counts.
    pub connections: ConnectionsSummary,
    /// Store statistics.
    pub store: StoreStats,
    /// Rule engine statistics, `null` without an engine.
    pub rules: Option<RulesStats>,
}

/// One entry of `server.connections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// `conn-N`.
    pub connection_id: String,
    /// Peer IP address.
    pub remote_address: String,
    /// ms since the Unix epoch.
    pub connected_at: u64,
    /// Whether a session exists.
    pub authenticated: bool,
    /// The session's user, or `null`.
    pub user_id: Option<String>,
    /// Open store subscriptions.
    pub store_subscription_count: u64,
    /// Open rules subscriptions.
    pub rules_subscription_count: u64,
}
