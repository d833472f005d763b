//! The `auth.*` operations: login (with the failed-login limits), logout and whoami. A
//! handler does not touch the connection's session itself: it answers with the session
//! change to make, which the connection applies (and with it ends the subscriptions the new
//! session may not keep).

use std::net::IpAddr;
use std::sync::Arc;

use noex_protocol::payloads::{LoginResult, LogoutResult, WhoAmI};
use noex_protocol::{AuthOp, ErrorCode};
use serde_json::Value;

use crate::auth::Session;
use crate::error::ServerError;
use crate::login_limit::{ConnectionFailures, LoginLimiter, Outcome};
use crate::ops::to_json;
use crate::shared::AuthRuntime;

/// What the `auth.*` operations need: auth as the server runs it, the current session, the
/// failed-login limits and this connection's failures, the peer's address and the time.
pub(crate) struct AuthContext<'a> {
    /// The validator chain and policy.
    pub(crate) auth: &'a AuthRuntime,
    /// The connection's session, if any.
    pub(crate) session: Option<&'a Arc<Session>>,
    /// The server's failed-login limits.
    pub(crate) login_limiter: &'a LoginLimiter,
    /// Failed logins on this connection.
    pub(crate) login_failures: &'a mut ConnectionFailures,
    /// The peer's address (failed logins are also counted per address).
    pub(crate) peer_ip: IpAddr,
    /// Now, on the server's clock (ms).
    pub(crate) now: u64,
    /// Counts logins refused by the limits.
    pub(crate) metrics: &'a crate::metrics::Metrics,
}

/// A session change an `auth.*` operation asks of the connection.
pub(crate) struct SessionChange {
    /// The new session (`None`: anonymous).
    pub(crate) session: Option<Session>,
    /// Why subscriptions end when auth is required and no session is left.
    pub(crate) why_anonymous: &'static str,
}

/// The answer of an `auth.*` operation and the session change to apply before it is sent.
pub(crate) struct AuthAnswer {
    /// The result payload.
    pub(crate) result: Value,
    /// The change, if the session changes.
    pub(crate) change: Option<SessionChange>,
}

/// Answers one `auth.*` request.
pub(crate) async fn handle(ctx: AuthContext<'_>, op: AuthOp) -> Result<AuthAnswer, ServerError> {
    let now = ctx.now;
    match op {
        AuthOp::Login { token } => {
            let limiter = ctx.login_limiter;
            let ip = ctx.peer_ip;
            let attempt = match limiter.begin(ctx.login_failures, ip, now).await {
                Ok(attempt) => attempt,
                Err(retry_after_ms) => {
                    ctx.metrics.record_login_limited();
                    return Err(crate::login_limit::refusal(retry_after_ms));
                }
            };
            // A session without a user id (from any validator, a custom one included) is no
            // session: the same answer as any other invalid token.
            let Some(session) = ctx
                .auth
                .validator
                .validate(&token)
                .await
                .filter(|session| !session.user_id.is_empty())
            else {
                attempt.finish(ctx.login_failures, now, Outcome::Failed);
                return Err(ServerError::new(ErrorCode::Unauthorized, "Invalid token"));
            };
            if session.expires_at.is_some_and(|at| at <= now) {
                attempt.finish(ctx.login_failures, now, Outcome::Failed);
                return Err(ServerError::new(
                    ErrorCode::Unauthorized,
                    "Token has expired",
                ));
            }
            attempt.finish(ctx.login_failures, now, Outcome::Succeeded);
            let result = to_json(LoginResult {
                user_id: session.user_id.clone(),
                roles: session.roles.clone(),
                expires_at: session.expires_at,
            })?;
            Ok(AuthAnswer {
                result,
                change: Some(SessionChange {
                    session: Some(session),
                    why_anonymous: "Authentication required",
                }),
            })
        }
        AuthOp::Logout => Ok(AuthAnswer {
            result: to_json(LogoutResult { logged_out: true })?,
            change: Some(SessionChange {
                session: None,
                why_anonymous: "Logged out",
            }),
        }),
        AuthOp::Whoami => {
            let expired = ctx
                .session
                .is_some_and(|s| s.expires_at.is_some_and(|at| at <= now));
            let who = match ctx.session {
                Some(s) if !expired => WhoAmI::Authenticated {
                    authenticated: true,
                    user_id: s.user_id.clone(),
                    roles: s.roles.clone(),
                    expires_at: s.expires_at,
                },
                _ => WhoAmI::Anonymous {
                    authenticated: false,
                },
            };
            Ok(AuthAnswer {
                result: to_json(who)?,
                // An expired session ends now.
                change: expired.then_some(SessionChange {
                    session: None,
                    why_anonymous: "Session expired",
                }),
            })
        }
    }
}
