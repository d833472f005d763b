//! Request routing: the pipeline after frame validation — auth check → rate limit →
//! typed operation → permission check (decided from the typed operation) → namespace
//! handler — and the `auth.*` operations, which also end the subscriptions a new (or no)
//! session may not keep.

use std::sync::Arc;

use noex_protocol::payloads::{
    ConnectionInfo, LoginResult, LogoutResult, RateLimitDetails, WhoAmI,
};
use noex_protocol::{AuthOp, ErrorCode, Operation, RawRequest, ServerOp, StoreOp, namespace_of};
use serde_json::{Value, json};

use crate::access;
use crate::connection::Connection;
use crate::error::ServerError;
use crate::registry::{ConnectionEntry, wire_connection_id};
use crate::server::AuthRuntime;

/// Answers one request on `connection`.
pub(crate) async fn handle(
    connection: &mut Connection,
    mut request: RawRequest,
) -> Result<Value, ServerError> {
    let shared = Arc::clone(&connection.shared);
    let op_type = request.op_type.as_str();
    let is_auth_op = namespace_of(op_type) == "auth";
    let now = shared.clock.now_ms();

    if let (Some(auth), false) = (&shared.auth, is_auth_op) {
        check_session(connection, auth, now)?;
    }
    if let Some(limiter) = &shared.rate_limiter {
        let key = match connection.session.get() {
            Some(session) => format!("user:{}", session.user_id),
            None => format!("ip:{}", connection.peer.ip()),
        };
        if let Err(retry_after_ms) = limiter.check(&key, now) {
            return Err(ServerError::new(
                ErrorCode::RateLimited,
                format!("Rate limit exceeded. Retry after {retry_after_ms}ms"),
            )
            .with_details(json!(RateLimitDetails { retry_after_ms })));
        }
    }
    if shared.auth.is_none() && is_auth_op {
        // Before field validation: without auth every auth.* is unknown (as the protocol
        // says), whatever fields it carries.
        return Err(ServerError::unknown_operation(op_type));
    }
    if shared.rules.is_none() && namespace_of(op_type) == "rules" {
        // Before field validation: without an engine every rules.* is unavailable.
        return Err(ServerError::new(
            ErrorCode::RulesNotAvailable,
            "Rule engine is not configured",
        ));
    }
    // The fields move into the operation: a large record or filter is not copied.
    let operation = Operation::parse_owned(op_type, std::mem::take(&mut request.fields))?;
    // Permissions apply once a session exists (anonymous clients of a server with
    // `required: false` may do everything, as the protocol says).
    let session = connection.session.get().cloned();
    let authority = match (&shared.auth, &session) {
        (Some(auth), Some(session)) => Some(auth.authority(session)),
        _ => None,
    };
    if let Some(authority) = &authority {
        access::check(authority, &operation, shared.resolver())?;
    }
    match operation {
        Operation::Auth(op) => match &shared.auth {
            // Auth is not configured: every auth.* is unknown (docs/reference/protocol.md, "Auth operations").
            None => Err(ServerError::unknown_operation(op_type)),
            Some(auth) => handle_auth(connection, auth, op, now).await,
        },
        Operation::Rules(op) => match shared.rules.clone() {
            None => Err(ServerError::internal("rules.* routed without an engine")),
            Some(engine) => {
                crate::rules_ops::handle(connection, &engine, op, authority.as_ref()).await
            }
        },
        Operation::Store(op) => {
            crate::store_ops::check_filters(&op, shared.config.limits.max_filter_nodes)?;
            // Estimated cost, not only bucket size: a long filter on a small bucket is as
            // heavy as a short one on a large bucket.
            // And the bytes scanned: text conditions cost time per byte of each record.
            let cost = crate::store_ops::scan_cost(&shared.store, &op);
            let heavy = cost > crate::store_ops::INLINE_SCAN_MAX_RECORDS
                || crate::store_ops::scanned_bytes(&shared.store, &op)
                    > crate::store_ops::INLINE_SCAN_MAX_BYTES;
            if let StoreOp::Transaction { operations } = op {
                if !heavy && operations.len() <= crate::store_ops::INLINE_TRANSACTION_MAX_OPS {
                    // Estimated cheap; the read budget is the backstop if the estimate errs.
                    let budget = shared.config.limits.read_budget();
                    return noex_store::with_read_deadline(budget, || {
                        crate::store_ops::handle(
                            connection,
                            StoreOp::Transaction { operations },
                            authority.as_ref(),
                        )
                    });
                }
                // A transaction with heavy reads or many operations runs on the blocking
                // pool, holding a heavy-read permit, like a heavy read.
                let store = shared.store.clone();
                let limits = shared.config.limits;
                let permit = shared.heavy_reads.acquire(connection.principal()).await;
                return tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    // Within `maxReadMs`, or rolled back, so the slot comes back.
                    noex_store::with_read_deadline(limits.read_budget(), || {
                        crate::store_ops::transaction(
                            &store,
                            operations,
                            limits.max_transaction_ops,
                            limits.max_result_bytes,
                            limits.max_transaction_scan_cost,
                        )
                    })
                })
                .await
                .unwrap_or_else(|err| Err(ServerError::internal(err)));
            }
            if heavy && crate::store_ops::scanned_bucket(&op).is_some() {
                // A scan of a large bucket runs on the blocking pool, so that the runtime's
                // workers keep serving other connections meanwhile.
                // At most `heavy_reads` of them at once (the semaphore is never closed, so
                // the permit always comes).
                let store = shared.store.clone();
                let budget = shared.config.limits.read_budget();
                let permit = shared.heavy_reads.acquire(connection.principal()).await;
                return tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    // Within `maxReadMs`, so the slot comes back to the next heavy read.
                    noex_store::with_read_deadline(budget, || crate::store_ops::read(&store, op))
                })
                .await
                .unwrap_or_else(|err| Err(ServerError::internal(err)));
            }
            if let StoreOp::Subscribe { query, params } = op {
                return crate::store_ops::subscribe(connection, query, params).await;
            }
            // Estimated cheap; the read budget is the backstop if the estimate errs.
            let budget = shared.config.limits.read_budget();
            noex_store::with_read_deadline(budget, || {
                crate::store_ops::handle(connection, op, authority.as_ref())
            })
        }
        Operation::Server(ServerOp::Connections) => {
            to_json(connections(&shared.registry.snapshot()))
        }
        Operation::Server(ServerOp::Stats) => to_json(shared.stats(authority.as_ref())),
        Operation::Unknown(_) => Err(ServerError::unknown_operation(op_type)),
    }
}

/// `UNAUTHORIZED` when a session is required and missing, or when it has expired (the
/// expired session is cleared and its subscriptions end).
fn check_session(
    connection: &mut Connection,
    auth: &AuthRuntime,
    now: u64,
) -> Result<(), ServerError> {
    match connection.session.get() {
        Some(session) if session.expires_at.is_some_and(|at| at <= now) => {
            set_session(connection, None, "Session expired");
            Err(ServerError::new(ErrorCode::Unauthorized, "Session expired"))
        }
        Some(_) => Ok(()),
        None if auth.required => Err(ServerError::new(
            ErrorCode::Unauthorized,
            "Authentication required",
        )),
        None => Ok(()),
    }
}

/// Replaces the connection's session (reporting `connection.login` / `connection.logout`
/// events when they are on), then ends every subscription the new session — or, with
/// `None`, an anonymous client — may not hold; `why_anonymous` is the reason given when
/// auth is required and no session is left.
pub(crate) fn set_session(
    connection: &mut Connection,
    session: Option<crate::auth::Session>,
    why_anonymous: &str,
) {
    let user_id = session.as_ref().map(|s| s.user_id.clone());
    connection
        .registration
        .update(|entry| entry.user_id = user_id);
    if let Some(old) = connection.session.get() {
        let same_user = session.as_ref().is_some_and(|s| s.user_id == old.user_id);
        if !same_user {
            crate::rules_ops::connection_event(
                &connection.shared,
                "logout",
                || json!({"connectionId": connection.registration.wire_id(), "userId": old.user_id}),
            );
        }
    }
    if let Some(new) = &session {
        crate::rules_ops::connection_event(
            &connection.shared,
            "login",
            || json!({"connectionId": connection.registration.wire_id(), "userId": new.user_id, "roles": new.roles}),
        );
    }
    connection.session.replace(session);
    connection.end_forbidden_subscriptions(why_anonymous);
    connection.arm_session_expiry();
}

async fn handle_auth(
    connection: &mut Connection,
    auth: &AuthRuntime,
    op: AuthOp,
    now: u64,
) -> Result<Value, ServerError> {
    match op {
        AuthOp::Login { token } => {
            let limiter = &connection.shared.login_limiter;
            let ip = connection.peer.ip();
            if let Err(retry_after_ms) = limiter.check(&connection.login_failures, ip, now) {
                return Err(crate::login_limit::refusal(retry_after_ms));
            }
            // A session without a user id (from any validator, a custom one included) is no
            // session: the same answer as any other invalid token.
            let Some(session) = auth
                .validator
                .validate(&token)
                .await
                .filter(|session| !session.user_id.is_empty())
            else {
                limiter.failed(&mut connection.login_failures, ip, now);
                return Err(ServerError::new(ErrorCode::Unauthorized, "Invalid token"));
            };
            if session.expires_at.is_some_and(|at| at <= now) {
                limiter.failed(&mut connection.login_failures, ip, now);
                return Err(ServerError::new(
                    ErrorCode::Unauthorized,
                    "Token has expired",
                ));
            }
            crate::login_limit::LoginLimiter::succeeded(&mut connection.login_failures);
            let result = LoginResult {
                user_id: session.user_id.clone(),
                roles: session.roles.clone(),
                expires_at: session.expires_at,
            };
            set_session(connection, Some(session), "Authentication required");
            to_json(result)
        }
        AuthOp::Logout => {
            set_session(connection, None, "Logged out");
            to_json(LogoutResult { logged_out: true })
        }
        AuthOp::Whoami => {
            if connection
                .session
                .get()
                .is_some_and(|s| s.expires_at.is_some_and(|at| at <= now))
            {
                set_session(connection, None, "Session expired");
            }
            let who = match connection.session.get() {
                Some(s) => WhoAmI::Authenticated {
                    authenticated: true,
                    user_id: s.user_id.clone(),
                    roles: s.roles.clone(),
                    expires_at: s.expires_at,
                },
                None => WhoAmI::Anonymous {
                    authenticated: false,
                },
            };
            to_json(who)
        }
    }
}

/// Serializes a result payload; failure here is a bug, reported as `INTERNAL_ERROR`.
pub(crate) fn to_json(value: impl serde::Serialize) -> Result<Value, ServerError> {
    serde_json::to_value(value).map_err(ServerError::internal)
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
