//! Request routing: the pipeline after frame validation — auth check → rate limit →
//! permission check → typed operation → namespace handler — and the `auth.*` operations.

use std::sync::Arc;

use noex_protocol::payloads::{
    ConnectionInfo, LoginResult, LogoutResult, RateLimitDetails, WhoAmI,
};
use noex_protocol::{AuthOp, ErrorCode, Operation, RawRequest, ServerOp, namespace_of};
use serde_json::{Value, json};

use crate::connection::Connection;
use crate::error::ServerError;
use crate::permissions::check_request;
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
        let key = match &connection.session {
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
    if let (Some(auth), Some(session), false) = (&shared.auth, &connection.session, is_auth_op) {
        let checked = check_request(
            session,
            op_type,
            &request.fields,
            &auth.permissions,
            auth.hook.as_deref(),
        );
        if let Err((op, resource)) = checked {
            return Err(ServerError::new(
                ErrorCode::Forbidden,
                format!("No permission for {op} on {resource}"),
            ));
        }
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
    match operation {
        Operation::Auth(op) => match &shared.auth {
            // Auth is not configured: every auth.* is unknown (spec section 7).
            None => Err(ServerError::unknown_operation(op_type)),
            Some(auth) => handle_auth(connection, auth, op, now).await,
        },
        Operation::Rules(op) => match shared.rules.clone() {
            None => Err(ServerError::internal("rules.* routed without an engine")),
            Some(engine) => crate::rules_ops::handle(connection, &engine, op),
        },
        Operation::Store(op) => crate::store_ops::handle(connection, op),
        Operation::Server(ServerOp::Connections) => {
            to_json(connections(&shared.registry.snapshot()))
        }
        Operation::Server(ServerOp::Stats) => to_json(shared.stats()),
        Operation::Unknown(_) => Err(ServerError::unknown_operation(op_type)),
    }
}

/// `UNAUTHORIZED` when a session is required and missing, or when it has expired (the
/// expired session is cleared).
fn check_session(
    connection: &mut Connection,
    auth: &AuthRuntime,
    now: u64,
) -> Result<(), ServerError> {
    match &connection.session {
        Some(session) if session.expires_at.is_some_and(|at| at <= now) => {
            set_session(connection, None);
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

fn set_session(connection: &mut Connection, session: Option<crate::auth::Session>) {
    let user_id = session.as_ref().map(|s| s.user_id.clone());
    connection
        .registration
        .update(|entry| entry.user_id = user_id);
    if let Some(old) = &connection.session {
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
    connection.session = session;
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
            let Some(session) = auth.validator.validate(&token).await else {
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
            set_session(connection, Some(session));
            to_json(result)
        }
        AuthOp::Logout => {
            set_session(connection, None);
            to_json(LogoutResult { logged_out: true })
        }
        AuthOp::Whoami => {
            if connection
                .session
                .as_ref()
                .is_some_and(|s| s.expires_at.is_some_and(|at| at <= now))
            {
                set_session(connection, None);
            }
            let who = match &connection.session {
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
