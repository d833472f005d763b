//! The `server.*` operations: `server.connections` and `server.stats`, the server's view of
//! itself. Also what [`crate::ServerHandle`] reports in process.

use noex_protocol::ServerOp;
use noex_protocol::payloads::{ConnectionInfo, ConnectionsSummary, ServerStats, SessionsRevoked};
use serde_json::Value;

use crate::error::ServerError;
use crate::ops::to_json;
use crate::permissions::Authority;
use crate::registry::{ConnectionEntry, wire_connection_id};
use crate::shared::Shared;

/// What the `server.*` operations need: the server's shared state (they report on all of
/// it, read-only) and who asks.
pub(crate) struct ServerContext<'a> {
    /// The server.
    pub(crate) shared: &'a Shared,
    /// The session's rights (`None`: everything is visible).
    pub(crate) authority: Option<&'a Authority<'a>>,
    /// The asking connection's place in revocation (it may revoke itself).
    pub(crate) revocation: &'a crate::revocation::RevocationSlot,
}

/// Answers one `server.*` request.
pub(crate) fn handle(ctx: ServerContext<'_>, op: ServerOp) -> Result<Value, ServerError> {
    match op {
        ServerOp::Connections => to_json(connections(&ctx.shared.registry.snapshot())),
        ServerOp::Stats => to_json(stats(ctx.shared, ctx.authority)),
        ServerOp::RevokeSessions {
            user_id,
            role,
            connection_id,
        } => {
            let filter = crate::revocation::RevokeFilter {
                user_id,
                role,
                connection_id,
            };
            let revoked = ctx
                .shared
                .revocations
                .revoke_from(&filter, Some(ctx.revocation));
            to_json(SessionsRevoked {
                revoked: revoked as u64,
            })
        }
    }
}

/// `server.connections`: every open connection.
pub(crate) fn connections(entries: &[ConnectionEntry]) -> Vec<ConnectionInfo> {
    entries
        .iter()
        .map(|e| ConnectionInfo {
            connection_id: wire_connection_id(e.id),
            remote_address: e.remote.ip().to_string(),
            connected_at: e.connected_at,
            authenticated: e.user_id.is_some(),
            user_id: e.user_id.clone(),
            store_subscription_count: e.store_subscriptions,
            rules_subscription_count: e.rules_subscriptions,
        })
        .collect()
}

/// `server.stats` (docs/reference/protocol.md, "Server operations"), with per-bucket figures limited to the buckets
/// `authority` may see (all of them without one).
pub(crate) fn stats(shared: &Shared, authority: Option<&Authority<'_>>) -> ServerStats {
    let entries = shared.registry.snapshot();
    let connections = ConnectionsSummary {
        active: entries.len() as u64,
        authenticated: entries.iter().filter(|e| e.user_id.is_some()).count() as u64,
        total_store_subscriptions: entries.iter().map(|e| e.store_subscriptions).sum(),
        total_rules_subscriptions: entries.iter().map(|e| e.rules_subscriptions).sum(),
    };
    let store = crate::ops::store::visible_stats(&shared.store, authority, "server.stats");
    ServerStats {
        name: shared.config.name.clone(),
        port: shared.local_addr.port(),
        host: shared.config.host.clone(),
        connection_count: entries.len() as u64,
        uptime_ms: u64::try_from(shared.started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
        auth_enabled: shared.auth.is_some(),
        rate_limit_enabled: shared.rate_limiter.is_some(),
        rules_enabled: shared.rules.is_some(),
        connections,
        store,
        rules: shared
            .rules
            .as_ref()
            .map(|engine| crate::rule_events::wire_stats(engine.stats())),
    }
}
