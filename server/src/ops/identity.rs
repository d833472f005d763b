//! The `identity.*` operations: the caller's identity roles are checked here, as the
//! original does (admin: `superadmin` or `admin`; role administration: `superadmin`; a
//! user may update its own profile and change its own password). Like `auth.*`, a login
//! answers with the session change the connection applies.

use std::net::IpAddr;
use std::sync::Arc;

use noex_protocol::payloads::{
    AccessGranted, AccessRevoked, AccessUser, AclEntries, AclEntry, Deleted, IdentityRoleList,
    IdentityUserList, LogoutResult, MyAccess, OwnerInfo, OwnerTransferred, PasswordChanged,
    PasswordReset, ResourceAccess, ResourceOwner, RoleAssigned, RoleRemoved, WhoAmI,
};
use noex_protocol::{ErrorCode, IdentityOp};
use serde_json::Value;

use crate::auth::Session;
use crate::error::ServerError;
use crate::identity::{ACL_OPERATIONS, Identity, LoggedIn, RESOURCE_TYPES, SUPERADMIN_ID};
use crate::login_limit::{ConnectionFailures, LoginLimiter, Outcome};
use crate::ops::to_json;
use crate::revocation::{RevocationSlot, Revocations};

/// What the `identity.*` operations need.
pub(crate) struct IdentityContext<'a> {
    /// The built-in identity.
    pub(crate) identity: &'a Identity,
    /// The connection's session, if any.
    pub(crate) session: Option<&'a Arc<Session>>,
    /// The SHA-256 of the connection's identity session token, when it logged in through
    /// `identity.*`.
    pub(crate) token_hash: Option<&'a str>,
    /// The server's failed-login limits (per connection and per address).
    pub(crate) login_limiter: &'a LoginLimiter,
    /// Failed logins on this connection.
    pub(crate) login_failures: &'a mut ConnectionFailures,
    /// The peer's address.
    pub(crate) peer_ip: IpAddr,
    /// Ends the connections of disabled and deleted users.
    pub(crate) revocations: &'a Revocations,
    /// This connection's place in revocation.
    pub(crate) own: &'a RevocationSlot,
    /// Now, on the server's clock (ms).
    pub(crate) now: u64,
    /// The store (whether a granted bucket or query exists).
    pub(crate) store: &'a noex_store::Store,
    /// The procedures (whether a granted procedure exists).
    pub(crate) procedures: &'a crate::procedures::Procedures,
    /// Whether the caller may read a bucket (`store.all` on it), decided as a request is.
    pub(crate) may_read_bucket: &'a (dyn Fn(&str) -> bool + Sync),
}

/// A session change asked of the connection.
pub(crate) struct IdentityChange {
    /// The new session (`None`: anonymous).
    pub(crate) session: Option<Session>,
    /// The new identity token's hash.
    pub(crate) token_hash: Option<String>,
    /// Why subscriptions end when no session is left.
    pub(crate) why_anonymous: &'static str,
}

/// The answer and the session change to apply before it is sent.
pub(crate) struct IdentityAnswer {
    /// The result payload.
    pub(crate) result: Value,
    /// The change, if any.
    pub(crate) change: Option<IdentityChange>,
}

fn answer(result: impl serde::Serialize) -> Result<IdentityAnswer, ServerError> {
    Ok(IdentityAnswer {
        result: to_json(result)?,
        change: None,
    })
}

fn logged_in(login: LoggedIn) -> Result<IdentityAnswer, ServerError> {
    Ok(IdentityAnswer {
        result: to_json(&login.result)?,
        change: Some(IdentityChange {
            session: Some(login.session),
            token_hash: Some(login.token_hash),
            why_anonymous: "Authentication required",
        }),
    })
}

fn require_auth<'a>(ctx: &IdentityContext<'a>) -> Result<&'a Arc<Session>, ServerError> {
    ctx.session
        .filter(|s| s.expires_at.is_none_or(|at| at > ctx.now))
        .ok_or_else(|| ServerError::new(ErrorCode::Unauthorized, "Authentication required"))
}

fn require_admin<'a>(ctx: &IdentityContext<'a>) -> Result<&'a Arc<Session>, ServerError> {
    let session = require_auth(ctx)?;
    if !Identity::is_admin(&session.roles) {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            "Admin role required",
        ));
    }
    Ok(session)
}

fn require_superadmin(ctx: &IdentityContext<'_>) -> Result<(), ServerError> {
    let session = require_auth(ctx)?;
    if !session.roles.iter().any(|r| r == "superadmin") {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            "Superadmin role required",
        ));
    }
    Ok(())
}

fn not_the_superadmin(user_id: &str, what: &str) -> Result<(), ServerError> {
    if user_id == SUPERADMIN_ID {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            format!("Cannot {what} virtual superadmin"),
        ));
    }
    Ok(())
}

fn validation(message: String) -> ServerError {
    ServerError::new(ErrorCode::ValidationError, message)
}

/// `VALIDATION_ERROR` unless `resource_type` is one of the grantable types.
fn check_resource_type(resource_type: &str) -> Result<(), ServerError> {
    if RESOURCE_TYPES.contains(&resource_type) {
        Ok(())
    } else {
        Err(validation(format!(
            "Invalid \"resourceType\": expected one of {}",
            RESOURCE_TYPES.join(", ")
        )))
    }
}

/// `NOT_FOUND` unless the resource exists (a topic always does).
fn check_resource_exists(
    ctx: &IdentityContext<'_>,
    resource_type: &str,
    name: &str,
) -> Result<(), ServerError> {
    // Access to the system buckets is the identity operations' alone: a grant on one
    // would be a row that means nothing (store.* refuses them whatever the grants).
    if resource_type == "bucket" && crate::identity::SYSTEM_BUCKETS.contains(&name) {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            format!("Bucket \"{name}\" is reserved for the identity system"),
        ));
    }
    let exists = match resource_type {
        "bucket" => ctx.store.bucket_len(name).is_some(),
        "query" => ctx.store.list_queries().iter().any(|q| q.name == name),
        "procedure" => ctx.procedures.get(name).is_ok(),
        _ => true,
    };
    if exists {
        Ok(())
    } else {
        let kind = match resource_type {
            "bucket" => "Bucket",
            "query" => "Query",
            _ => "Procedure",
        };
        Err(ServerError::new(
            ErrorCode::NotFound,
            format!("{kind} \"{name}\" not found"),
        ))
    }
}

/// `FORBIDDEN` unless the caller may manage access to a resource: an admin, its owner, or
/// a holder of `admin` on it.
fn require_resource_admin(
    ctx: &IdentityContext<'_>,
    resource_type: &str,
    name: &str,
) -> Result<(), ServerError> {
    let session = require_auth(ctx)?;
    if Identity::is_admin(&session.roles)
        || ctx
            .identity
            .rights()
            .operations_on(&session.user_id, resource_type, name)
            .iter()
            .any(|op| op == "admin")
    {
        return Ok(());
    }
    Err(ServerError::new(
        ErrorCode::Forbidden,
        format!("No permission to manage access to {resource_type} \"{name}\""),
    ))
}

/// A grant of a query gives its bucket's records (what the query selects) to the grantee, so
/// only someone who may read that bucket hands one out: an administrator, or an owner of
/// the query who can read the bucket itself. Owning a query defined over a bucket one cannot
/// read, and then granting it to oneself, streamed the bucket's records (red team round 11).
/// A programmatic query may read anything: only administrators grant it.
fn check_query_grant(
    ctx: &IdentityContext<'_>,
    resource_type: &str,
    name: &str,
) -> Result<(), ServerError> {
    let session = require_auth(ctx)?;
    if resource_type != "query" || Identity::is_admin(&session.roles) {
        return Ok(());
    }
    let refused = |what: String| {
        Err(ServerError::new(
            ErrorCode::Forbidden,
            format!("Granting query \"{name}\" needs {what}"),
        ))
    };
    match ctx.store.query_bucket(name) {
        Some(Some(bucket)) if !(ctx.may_read_bucket)(&bucket) => {
            refused(format!("read access to its bucket \"{bucket}\""))
        }
        Some(None) => refused("an administrator (it is a programmatic query)".to_owned()),
        _ => Ok(()),
    }
}

/// Validates a grant's or a revocation's subject.
fn check_subject(ctx: &IdentityContext<'_>, kind: &str, id: &str) -> Result<(), ServerError> {
    match kind {
        "user" if ctx.identity.user_exists(id)? => Ok(()),
        "user" => Err(ServerError::new(ErrorCode::NotFound, "User not found")),
        "role" if ctx.identity.role_exists(id)? => Ok(()),
        "role" => Err(ServerError::new(ErrorCode::NotFound, "Role not found")),
        _ => Err(validation(
            "Invalid \"subjectType\": expected one of user, role".to_owned(),
        )),
    }
}

fn check_operations(operations: &[String]) -> Result<(), ServerError> {
    match operations
        .iter()
        .find(|op| !ACL_OPERATIONS.contains(&op.as_str()))
    {
        Some(bad) => Err(validation(format!(
            "Invalid operation \"{bad}\": expected one of {}",
            ACL_OPERATIONS.join(", ")
        ))),
        None => Ok(()),
    }
}

/// How a login ended for the failed-login limits: only wrong credentials (or an unknown
/// user: `UNAUTHORIZED`) count as a failure; a refusal for the username's failures or an
/// internal error counts nowhere and resets nothing.
fn judged<T>(outcome: &Result<T, ServerError>) -> Outcome {
    match outcome {
        Ok(_) => Outcome::Succeeded,
        Err(err) if err.code == ErrorCode::Unauthorized => Outcome::Failed,
        Err(_) => Outcome::Refused,
    }
}

/// Answers one `identity.*` request.
pub(crate) async fn handle(
    ctx: IdentityContext<'_>,
    op: IdentityOp,
) -> Result<IdentityAnswer, ServerError> {
    let identity = ctx.identity;
    let ip = ctx.peer_ip.to_string();
    match op {
        IdentityOp::Login { username, password } => {
            let limiter = ctx.login_limiter;
            let attempt = limiter
                .begin(ctx.login_failures, ctx.peer_ip, ctx.now)
                .await
                .map_err(crate::login_limit::refusal)?;
            let outcome = identity
                .login(&username, &password, &ip, attempt.suspect)
                .await;
            attempt.finish(ctx.login_failures, ctx.now, judged(&outcome));
            outcome.and_then(logged_in)
        }
        IdentityOp::LoginWithSecret { secret } => {
            let limiter = ctx.login_limiter;
            let attempt = limiter
                .begin(ctx.login_failures, ctx.peer_ip, ctx.now)
                .await
                .map_err(crate::login_limit::refusal)?;
            let outcome = identity.login_with_secret(&secret, &ip);
            attempt.finish(ctx.login_failures, ctx.now, judged(&outcome));
            outcome.and_then(logged_in)
        }
        IdentityOp::Logout => {
            if let Some(hash) = ctx.token_hash {
                identity.logout(hash)?;
            }
            Ok(IdentityAnswer {
                result: to_json(LogoutResult { logged_out: true })?,
                change: Some(IdentityChange {
                    session: None,
                    token_hash: None,
                    why_anonymous: "Logged out",
                }),
            })
        }
        IdentityOp::Whoami => answer(match require_auth(&ctx) {
            Ok(s) => WhoAmI::Authenticated {
                authenticated: true,
                user_id: s.user_id.clone(),
                roles: s.roles.clone(),
                expires_at: s.expires_at,
            },
            Err(_) => WhoAmI::Anonymous {
                authenticated: false,
            },
        }),
        IdentityOp::RefreshSession => {
            let hash = ctx.token_hash.filter(|_| require_auth(&ctx).is_ok());
            let Some(hash) = hash else {
                return Err(ServerError::new(
                    ErrorCode::Unauthorized,
                    "No active session to refresh",
                ));
            };
            logged_in(identity.refresh(hash, &ip)?)
        }
        IdentityOp::CreateUser {
            username,
            password,
            display_name,
            email,
            enabled,
            metadata,
        } => {
            require_admin(&ctx)?;
            answer(
                identity
                    .create_user(username, password, display_name, email, enabled, metadata)
                    .await?,
            )
        }
        IdentityOp::GetUser { user_id } => {
            require_admin(&ctx)?;
            answer(identity.get_user(&user_id)?)
        }
        IdentityOp::UpdateUser {
            user_id,
            display_name,
            email,
            metadata,
        } => {
            let session = require_auth(&ctx)?;
            if session.user_id != user_id && !Identity::is_admin(&session.roles) {
                return Err(ServerError::new(
                    ErrorCode::Forbidden,
                    "Admin role required",
                ));
            }
            answer(identity.update_user(&user_id, display_name, email, metadata)?)
        }
        IdentityOp::DeleteUser { user_id } => {
            require_admin(&ctx)?;
            not_the_superadmin(&user_id, "delete")?;
            identity.delete_user(&user_id)?;
            ctx.revocations.end_user_from(&user_id, Some(ctx.own));
            answer(Deleted { deleted: true })
        }
        IdentityOp::ListUsers { page, page_size } => {
            require_admin(&ctx)?;
            let (users, total, page, page_size) = identity.list_users(page, page_size)?;
            answer(IdentityUserList {
                users,
                total,
                page,
                page_size,
            })
        }
        IdentityOp::EnableUser { user_id } => {
            require_admin(&ctx)?;
            answer(identity.set_enabled(&user_id, true)?)
        }
        IdentityOp::DisableUser { user_id } => {
            require_admin(&ctx)?;
            not_the_superadmin(&user_id, "disable")?;
            let user = identity.set_enabled(&user_id, false)?;
            ctx.revocations.end_user_from(&user_id, Some(ctx.own));
            answer(user)
        }
        IdentityOp::ChangePassword {
            user_id,
            current_password,
            new_password,
        } => {
            let session = require_auth(&ctx)?;
            if session.user_id != user_id {
                return Err(ServerError::new(
                    ErrorCode::Forbidden,
                    "Can only change your own password (use resetPassword for other users)",
                ));
            }
            identity
                .change_password(&user_id, current_password, new_password)
                .await?;
            answer(PasswordChanged { changed: true })
        }
        IdentityOp::ResetPassword {
            user_id,
            new_password,
        } => {
            require_admin(&ctx)?;
            identity.reset_password(&user_id, new_password).await?;
            answer(PasswordReset { reset: true })
        }
        IdentityOp::CreateRole {
            name,
            description,
            permissions,
        } => {
            require_superadmin(&ctx)?;
            answer(identity.create_role(&name, description, permissions)?)
        }
        IdentityOp::UpdateRole {
            role_id,
            description,
            permissions,
        } => {
            require_superadmin(&ctx)?;
            answer(identity.update_role(&role_id, description, permissions)?)
        }
        IdentityOp::DeleteRole { role_id } => {
            require_superadmin(&ctx)?;
            // Losing a right takes effect at once: the holders' connections end.
            for user in identity.delete_role(&role_id)? {
                ctx.revocations.end_user_from(&user, Some(ctx.own));
            }
            answer(Deleted { deleted: true })
        }
        IdentityOp::ListRoles => {
            require_admin(&ctx)?;
            answer(IdentityRoleList {
                roles: identity.list_roles()?,
            })
        }
        IdentityOp::AssignRole { user_id, role_name } => {
            let session = require_admin(&ctx)?;
            // Only a superadmin hands out superadmin (an admin gave it to itself: red team
            // round 10).
            if role_name == "superadmin" {
                require_superadmin(&ctx)?;
            }
            identity.assign_role(&user_id, &role_name, &session.user_id)?;
            answer(RoleAssigned { assigned: true })
        }
        IdentityOp::RemoveRole { user_id, role_name } => {
            let session = require_admin(&ctx)?;
            if role_name == "superadmin" {
                require_superadmin(&ctx)?;
            }
            identity.remove_role(&user_id, &role_name, &session.user_id)?;
            // Losing a right takes effect at once: the user's connections end.
            ctx.revocations.end_user_from(&user_id, Some(ctx.own));
            answer(RoleRemoved { removed: true })
        }
        IdentityOp::GetUserRoles { user_id } => {
            require_admin(&ctx)?;
            answer(IdentityRoleList {
                roles: identity.get_user_roles(&user_id)?,
            })
        }
        IdentityOp::Grant {
            subject_type,
            subject_id,
            resource_type,
            resource_name,
            operations,
        } => {
            let by = require_auth(&ctx)?.user_id.clone();
            check_resource_type(&resource_type)?;
            check_operations(&operations)?;
            require_resource_admin(&ctx, &resource_type, &resource_name)?;
            check_subject(&ctx, &subject_type, &subject_id)?;
            check_resource_exists(&ctx, &resource_type, &resource_name)?;
            check_query_grant(&ctx, &resource_type, &resource_name)?;
            identity.grant(
                (&subject_type, &subject_id),
                (&resource_type, &resource_name),
                &operations,
                &by,
            )?;
            answer(AccessGranted { granted: true })
        }
        IdentityOp::Revoke {
            subject_type,
            subject_id,
            resource_type,
            resource_name,
            operations,
        } => {
            require_auth(&ctx)?;
            check_resource_type(&resource_type)?;
            if let Some(operations) = &operations {
                check_operations(operations)?;
            }
            require_resource_admin(&ctx, &resource_type, &resource_name)?;
            check_subject(&ctx, &subject_type, &subject_id)?;
            identity.revoke(
                (&subject_type, &subject_id),
                (&resource_type, &resource_name),
                operations.as_deref(),
            )?;
            answer(AccessRevoked { revoked: true })
        }
        IdentityOp::GetAcl {
            resource_type,
            resource_name,
        } => {
            require_auth(&ctx)?;
            check_resource_type(&resource_type)?;
            let rights = identity.rights();
            let mut entries = Vec::new();
            if let Some(owner) = rights.owner_of(&resource_type, &resource_name) {
                entries.push(AclEntry {
                    subject_type: "user".into(),
                    subject_id: owner.to_owned(),
                    subject_name: identity.username(owner)?,
                    operations: ACL_OPERATIONS.iter().map(|s| (*s).to_owned()).collect(),
                    is_owner: true,
                });
            }
            for grant in rights
                .grants
                .iter()
                .filter(|g| g.resource_type == resource_type && g.resource_name == resource_name)
            {
                let subject_name = match grant.subject_type.as_str() {
                    "user" => identity.username(&grant.subject_id)?,
                    _ => rights.roles.get(&grant.subject_id).map(|r| r.name.clone()),
                };
                entries.push(AclEntry {
                    subject_type: grant.subject_type.clone(),
                    subject_id: grant.subject_id.clone(),
                    subject_name,
                    operations: grant.operations.clone(),
                    is_owner: false,
                });
            }
            answer(AclEntries { entries })
        }
        IdentityOp::MyAccess => {
            let session = require_auth(&ctx)?;
            let rights = identity.rights();
            let resources = rights
                .resources_of(&session.user_id)
                .into_iter()
                .map(
                    |(resource_type, resource_name, operations, is_owner)| ResourceAccess {
                        resource_type,
                        resource_name,
                        operations,
                        is_owner,
                    },
                )
                .collect();
            let roles = identity.role_names(&session.user_id)?;
            answer(MyAccess {
                user: AccessUser {
                    id: session.user_id.clone(),
                    username: identity.username(&session.user_id)?.unwrap_or_default(),
                    roles: roles.clone(),
                },
                roles,
                resources,
            })
        }
        IdentityOp::GetOwner {
            resource_type,
            resource_name,
        } => {
            require_auth(&ctx)?;
            check_resource_type(&resource_type)?;
            let rights = identity.rights();
            let owner = match rights.owner_of(&resource_type, &resource_name) {
                Some(user_id) => Some(ResourceOwner {
                    user_id: user_id.to_owned(),
                    username: identity.username(user_id)?.unwrap_or_default(),
                    resource_type: resource_type.clone(),
                    resource_name: resource_name.clone(),
                }),
                None => None,
            };
            answer(OwnerInfo { owner })
        }
        IdentityOp::TransferOwner {
            resource_type,
            resource_name,
            new_owner_id,
        } => {
            let session = require_auth(&ctx)?;
            check_resource_type(&resource_type)?;
            let owner = identity
                .rights()
                .owner_of(&resource_type, &resource_name)
                .map(str::to_owned);
            let superadmin = session.roles.iter().any(|r| r == "superadmin");
            if owner.as_deref() != Some(session.user_id.as_str()) && !superadmin {
                return Err(ServerError::new(
                    ErrorCode::Forbidden,
                    "Only the owner or a superadmin can transfer ownership",
                ));
            }
            check_resource_exists(&ctx, &resource_type, &resource_name)?;
            if !identity.user_exists(&new_owner_id)? {
                return Err(ServerError::new(ErrorCode::NotFound, "User not found"));
            }
            identity.set_owner((&resource_type, &resource_name), &new_owner_id)?;
            answer(OwnerTransferred { transferred: true })
        }
    }
}
