//! Request routing: the pipeline after frame validation — session check → rate limit →
//! typed operation → permission check (decided from the typed operation) → the family's
//! handler in `ops`, given a context borrowed from the connection's state. The router
//! decides nothing about an operation itself; an `auth.*` answer's session change is
//! applied to the connection here.

use std::sync::Arc;

use noex_protocol::payloads::RateLimitDetails;
use noex_protocol::{ErrorCode, Operation, RawRequest, namespace_of};
use serde_json::{Value, json};

use crate::access;
use crate::connection_state::ConnectionState;
use crate::error::ServerError;
use crate::ops;
use crate::ops::auth::AuthContext;
use crate::ops::identity::IdentityContext;
use crate::ops::procedures::ProceduresContext;
use crate::ops::rules::RulesContext;
use crate::ops::server::ServerContext;
use crate::ops::store::StoreContext;
use crate::session::BucketReadFilter;
use crate::shared::AuthRuntime;

/// Answers one request on the connection whose state is `state`, and logs it in the audit
/// log when its tier is audited.
pub(crate) async fn handle(
    state: &mut ConnectionState,
    request: RawRequest,
) -> Result<Value, ServerError> {
    let mut target = None;
    let result = route(state, request, &mut target).await;
    if let (Some(audit), Some(target)) = (&state.shared.audit, target) {
        let session = state.session.get();
        let entry = crate::audit::entry(
            target,
            state.shared.clock.now_ms(),
            session.map(|s| s.user_id.as_str()),
            session.map(|_| state.registration.wire_id()),
            result.as_ref().map(|_| ()),
            state.peer.ip().to_string(),
        );
        audit.append(entry);
    }
    result
}

/// The checks before an operation is parsed: session, rate limit, and namespaces that are
/// not configured.
fn precheck(state: &mut ConnectionState, op_type: &str, now: u64) -> Result<(), ServerError> {
    let shared = Arc::clone(&state.shared);
    let is_auth_op = namespace_of(op_type) == "auth";
    // As in the original, the operations that establish a session need none.
    // `identity.whoami` answers `{authenticated: false}` without one.
    let opens_session = is_auth_op
        || matches!(
            op_type,
            "identity.login" | "identity.loginWithSecret" | "identity.whoami"
        );
    if let (Some(auth), false) = (&shared.auth, opens_session) {
        check_session(state, auth, now)?;
    }
    if let Some(limiter) = &shared.rate_limiter {
        let key = match state.session.get() {
            Some(session) => format!("user:{}", session.user_id),
            // By client key: an IPv6 client holds a whole /64.
            None => format!("ip:{}", crate::handshake::client_key(state.peer.ip())),
        };
        if let Err(retry_after_ms) = limiter.check(&key, now) {
            shared.metrics.record_rate_limited();
            return Err(ServerError::new(
                ErrorCode::RateLimited,
                format!("Rate limit exceeded. Retry after {retry_after_ms}ms"),
            )
            .with_details(json!(RateLimitDetails { retry_after_ms })));
        }
    }
    if let Some(message) = not_configured(
        namespace_of(op_type),
        shared.auth.is_some(),
        shared.audit.is_some(),
        shared.identity.is_some(),
    ) {
        // Before field validation, whatever fields it carries: a namespace this server does
        // not run answers UNKNOWN_OPERATION saying so, with the original's message.
        return Err(ServerError::new(ErrorCode::UnknownOperation, message));
    }
    if shared.rules.is_none() && namespace_of(op_type) == "rules" {
        // Before field validation: without an engine every rules.* is unavailable.
        return Err(ServerError::new(
            ErrorCode::RulesNotAvailable,
            "Rule engine is not configured",
        ));
    }
    Ok(())
}

/// Answers one request; `target` receives what the audit log says about it once its
/// operation is known (when its tier is audited).
async fn route(
    state: &mut ConnectionState,
    mut request: RawRequest,
    target: &mut Option<crate::audit::AuditTarget>,
) -> Result<Value, ServerError> {
    let shared = Arc::clone(&state.shared);
    let op_type = request.op_type.as_str();
    let now = shared.clock.now_ms();

    if let Err(err) = precheck(state, op_type, now) {
        if let Some(audit) = &shared.audit {
            // Refused before parsing: the tier comes from the operation as it would parse.
            *target = Operation::parse(op_type, &request.fields)
                .ok()
                .and_then(|op| crate::audit::target(audit, &op));
        }
        return Err(err);
    }
    // The fields move into the operation: a large record or filter is not copied.
    let operation = Operation::parse_owned(op_type, std::mem::take(&mut request.fields))?;
    if let Some(audit) = &shared.audit {
        *target = crate::audit::target(audit, &operation);
        audit.guard(&operation)?;
    }
    // What this request creates or removes, for the identity's ownership records.
    let mut ownership = None;
    if let Some(identity) = &shared.identity {
        crate::identity::Identity::guard(&operation)?;
        ownership = crate::identity::Ownership::of(&operation).map(|o| (Arc::clone(identity), o));
    }
    // Permissions apply once a session exists (anonymous clients of a server with
    // `required: false` may do everything, as the protocol says).
    let session = state.session.get().cloned();
    let authority = match (&shared.auth, &session) {
        (Some(auth), Some(session)) => Some(auth.authority(session)),
        _ => None,
    };
    if let Some(authority) = &authority {
        access::check(authority, &operation, shared.resolver())?;
    }
    let result = dispatch(state, operation, &session, authority, now).await;
    if let (Ok(_), Some((identity, change)), Some(session)) =
        (&result, ownership, state.session.get())
    {
        // The creator of a bucket, query or procedure owns it; a removed one's owner and
        // grants go with it.
        if let Err(err) = change.apply(&identity, &session.user_id) {
            tracing::warn!(%err, "identity ownership not recorded");
        }
    }
    result
}

/// Runs a parsed and allowed operation.
async fn dispatch(
    state: &mut ConnectionState,
    operation: Operation,
    session: &Option<Arc<crate::auth::Session>>,
    authority: Option<crate::permissions::Authority<'_>>,
    now: u64,
) -> Result<Value, ServerError> {
    let shared = Arc::clone(&state.shared);
    let op_type = operation.op_type().to_owned();
    let op_type = op_type.as_str();
    match operation {
        Operation::Auth(op) => match &shared.auth {
            // Answered above (`not_configured`).
            None => Err(ServerError::new(
                ErrorCode::UnknownOperation,
                AUTH_NOT_CONFIGURED,
            )),
            Some(auth) => {
                let login_token = match &op {
                    noex_protocol::AuthOp::Login { token } => Some(token.clone()),
                    _ => None,
                };
                let ctx = AuthContext {
                    auth,
                    session: session.as_ref(),
                    login_limiter: &shared.login_limiter,
                    login_failures: &mut state.login_failures,
                    peer_ip: state.peer.ip(),
                    now,
                    metrics: &shared.metrics,
                };
                let answer = ops::auth::handle(ctx, op).await?;
                if let Some(change) = answer.change {
                    if let Some(new) = &change.session
                        && shared.revocations.is_revoked(&new.user_id)
                    {
                        // As the original: the login fails and no session is left.
                        if state.session.get().is_some() {
                            state.set_session(None, "Session has been revoked");
                        }
                        return Err(ServerError::new(
                            ErrorCode::SessionRevoked,
                            "Session has been revoked",
                        ));
                    }
                    state.set_session(change.session, change.why_anonymous);
                    // A session token of the built-in identity logs in here too; the
                    // connection keeps its key for identity.logout / refreshSession.
                    state.identity_token = match (&shared.identity, login_token) {
                        (Some(identity), Some(token)) if state.session.get().is_some() => {
                            identity.session_key(&token)
                        }
                        _ => None,
                    };
                }
                Ok(answer.result)
            }
        },
        Operation::Identity(op) => match &shared.identity {
            None => Err(ServerError::internal("identity.* routed without identity")),
            Some(identity) => {
                let resolver_shared = Arc::clone(&shared);
                let may_read_bucket = |bucket: &str| match &authority {
                    Some(authority) => {
                        let read = Operation::Store(noex_protocol::StoreOp::All {
                            bucket: bucket.to_owned(),
                        });
                        access::check(authority, &read, resolver_shared.resolver()).is_ok()
                    }
                    // No session, or a server without permissions: nothing is refused.
                    None => true,
                };
                let ctx = IdentityContext {
                    identity,
                    session: session.as_ref(),
                    token_hash: state.identity_token.as_deref(),
                    login_limiter: &shared.login_limiter,
                    login_failures: &mut state.login_failures,
                    peer_ip: state.peer.ip(),
                    revocations: &shared.revocations,
                    own: &state.revocation,
                    now,
                    store: &shared.store,
                    procedures: &shared.procedures,
                    may_read_bucket: &may_read_bucket,
                };
                let answer = ops::identity::handle(ctx, op).await?;
                if let Some(change) = answer.change {
                    if let Some(new) = &change.session
                        && shared.revocations.is_revoked(&new.user_id)
                    {
                        if let Some(hash) = &change.token_hash {
                            let _ = identity.logout(hash);
                        }
                        if state.session.get().is_some() {
                            state.set_session(None, "Session has been revoked");
                        }
                        state.identity_token = None;
                        return Err(ServerError::new(
                            ErrorCode::SessionRevoked,
                            "Session has been revoked",
                        ));
                    }
                    state.set_session(change.session, change.why_anonymous);
                    state.identity_token = change.token_hash;
                }
                Ok(answer.result)
            }
        },
        Operation::Rules(op) => match &shared.rules {
            None => Err(ServerError::internal("rules.* routed without an engine")),
            Some(engine) => {
                let ctx = RulesContext {
                    engine,
                    store: &shared.store,
                    max_result_bytes: shared.config.limits.max_result_bytes,
                    resolver: shared.resolver(),
                    authority: authority.as_ref(),
                    event_json: &shared.event_json,
                    bucket_reader: BucketReadFilter::new(&shared, state.session.view()),
                    subscriptions: state.subscriptions(),
                };
                ops::rules::handle(ctx, op).await
            }
        },
        Operation::Store(op) => {
            let ctx = StoreContext {
                store: &shared.store,
                limits: &shared.config.limits,
                heavy_reads: &shared.heavy_reads,
                principal: state.principal(),
                server_held_results: &shared.held_results,
                resolver: shared.resolver(),
                authority: authority.as_ref(),
                subscriptions: state.subscriptions(),
            };
            ops::store::handle(ctx, op).await
        }
        Operation::Server(op) => {
            let ctx = ServerContext {
                shared: &shared,
                authority: authority.as_ref(),
                revocation: &state.revocation,
            };
            ops::server::handle(ctx, op)
        }
        Operation::Audit(op) => match &shared.audit {
            None => Err(ServerError::internal("audit.* routed without an audit log")),
            Some(audit) => audit.query(op, shared.config.limits.max_result_bytes),
        },
        Operation::Procedures(op) => {
            let ctx = ProceduresContext {
                procedures: &shared.procedures,
                resolver: shared.resolver(),
                authority: authority.as_ref(),
                principal: state.principal(),
            };
            ops::procedures::handle(ctx, op).await
        }
        Operation::Unknown(_) => Err(ServerError::unknown_operation(op_type)),
    }
}

/// What `auth.*` answers on a server without auth.
const AUTH_NOT_CONFIGURED: &str = "Authentication is not configured";

/// The message of `UNKNOWN_OPERATION` for an operation of a namespace this server does not
/// run (the original's wording): `auth.*` without auth, `audit.*` without an audit log and
/// `identity.*` without built-in identity. `None` for the
/// namespaces it serves (an unknown operation in them says `Unknown operation "..."`).
fn not_configured(
    namespace: &str,
    auth_on: bool,
    audit_on: bool,
    identity_on: bool,
) -> Option<&'static str> {
    match namespace {
        "auth" if !auth_on => Some(AUTH_NOT_CONFIGURED),
        "audit" if !audit_on => Some("Audit log is not configured"),
        "identity" if !identity_on => Some("Identity management is not configured"),
        _ => None,
    }
}

/// `UNAUTHORIZED` when a session is required and missing, or when it has expired (the
/// expired session is cleared and its subscriptions end).
fn check_session(
    state: &mut ConnectionState,
    auth: &AuthRuntime,
    now: u64,
) -> Result<(), ServerError> {
    match state.session.get() {
        Some(session) if session.expires_at.is_some_and(|at| at <= now) => {
            state.set_session(None, "Session expired");
            Err(ServerError::new(ErrorCode::Unauthorized, "Session expired"))
        }
        Some(_) => Ok(()),
        // The session ran out while the client was silent: the first request after it
        // learns why, as if it had arrived just before the timer.
        None if auth.required && std::mem::take(&mut state.expired_unseen) => {
            Err(ServerError::new(ErrorCode::Unauthorized, "Session expired"))
        }
        None if auth.required => Err(ServerError::new(
            ErrorCode::Unauthorized,
            "Authentication required",
        )),
        None => Ok(()),
    }
}
