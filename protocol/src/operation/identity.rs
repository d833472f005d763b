//! `identity.*` operations (docs/12-identity.md): the built-in users, roles and password
//! sessions. Field names and messages are the original's.

use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use super::store::JsonObject;
use crate::fields::Fields;

/// Every `identity.*` operation this version serves, with its fields.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum IdentityOp {
    /// Log in with a username and a password; starts a session on this connection.
    #[serde(rename = "identity.login")]
    Login {
        /// The user's name.
        username: String,
        /// The user's password.
        password: String,
    },
    /// Bootstrap: log in as the virtual superadmin with the configured `adminSecret`.
    #[serde(rename = "identity.loginWithSecret")]
    LoginWithSecret {
        /// The configured admin secret.
        secret: String,
    },
    /// End the session (its token stops working).
    #[serde(rename = "identity.logout")]
    Logout,
    /// Describe the session.
    #[serde(rename = "identity.whoami")]
    Whoami,
    /// Replace the session's token with a new one with a fresh expiry.
    #[serde(rename = "identity.refreshSession")]
    RefreshSession,
    /// Create a user (admin).
    #[serde(rename = "identity.createUser")]
    CreateUser {
        /// 3 to 64 characters, unique.
        username: String,
        /// 8 to 256 characters.
        password: String,
        /// A display name.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        display_name: Option<String>,
        /// An e-mail address.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        email: Option<String>,
        /// Whether the user may log in (default `true`).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        enabled: Option<bool>,
        /// Free-form data.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(
            optional,
            as = "Option<std::collections::BTreeMap<String, serde_json::Value>>"
        )]
        metadata: Option<JsonObject>,
    },
    /// One user (admin).
    #[serde(rename = "identity.getUser")]
    GetUser {
        /// The user's id.
        user_id: String,
    },
    /// Change a user's profile (the user itself or an admin).
    #[serde(rename = "identity.updateUser")]
    UpdateUser {
        /// The user's id.
        user_id: String,
        /// A new display name.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        display_name: Option<String>,
        /// A new e-mail address.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        email: Option<String>,
        /// New metadata (replaces the old).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(
            optional,
            as = "Option<std::collections::BTreeMap<String, serde_json::Value>>"
        )]
        metadata: Option<JsonObject>,
    },
    /// Delete a user, its role assignments and its sessions (admin).
    #[serde(rename = "identity.deleteUser")]
    DeleteUser {
        /// The user's id.
        user_id: String,
    },
    /// One page of users (admin).
    #[serde(rename = "identity.listUsers")]
    ListUsers {
        /// The page, from 1 (default 1).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        page: Option<u64>,
        /// Users per page, 1 to 200 (default 50).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        page_size: Option<u64>,
    },
    /// Let a user log in again (admin).
    #[serde(rename = "identity.enableUser")]
    EnableUser {
        /// The user's id.
        user_id: String,
    },
    /// Stop a user from logging in and end its sessions at once (admin).
    #[serde(rename = "identity.disableUser")]
    DisableUser {
        /// The user's id.
        user_id: String,
    },
    /// Change one's own password; ends the user's sessions.
    #[serde(rename = "identity.changePassword")]
    ChangePassword {
        /// The caller's own id.
        user_id: String,
        /// The current password.
        current_password: String,
        /// The new password.
        new_password: String,
    },
    /// Set a user's password (admin); ends the user's sessions.
    #[serde(rename = "identity.resetPassword")]
    ResetPassword {
        /// The user's id.
        user_id: String,
        /// The new password.
        new_password: String,
    },
    /// Create a role (superadmin).
    #[serde(rename = "identity.createRole")]
    CreateRole {
        /// 1 to 64 characters, unique.
        name: String,
        /// A description.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        description: Option<String>,
        /// Permission rules `{allow, buckets?, topics?, procedures?}`.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        permissions: Option<Vec<Value>>,
    },
    /// Change a role's description or permissions (superadmin).
    #[serde(rename = "identity.updateRole")]
    UpdateRole {
        /// The role's id.
        role_id: String,
        /// A new description.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        description: Option<String>,
        /// New permission rules.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        permissions: Option<Vec<Value>>,
    },
    /// Delete a role that is not a system role, and its assignments (superadmin).
    #[serde(rename = "identity.deleteRole")]
    DeleteRole {
        /// The role's id.
        role_id: String,
    },
    /// Every role (admin).
    #[serde(rename = "identity.listRoles")]
    ListRoles,
    /// Give a user a role (admin).
    #[serde(rename = "identity.assignRole")]
    AssignRole {
        /// The user's id.
        user_id: String,
        /// The role's name.
        role_name: String,
    },
    /// Take a role from a user (admin).
    #[serde(rename = "identity.removeRole")]
    RemoveRole {
        /// The user's id.
        user_id: String,
        /// The role's name.
        role_name: String,
    },
    /// The roles of a user (admin).
    #[serde(rename = "identity.getUserRoles")]
    GetUserRoles {
        /// The user's id.
        user_id: String,
    },
    /// Grant a user or a role operations on a resource (an admin, the resource's owner or a
    /// holder of `admin` on it); merges with an existing grant.
    #[serde(rename = "identity.grant")]
    Grant {
        /// `user` or `role`.
        subject_type: String,
        /// The user's or the role's id.
        subject_id: String,
        /// `bucket`, `topic`, `procedure` or `query`.
        resource_type: String,
        /// The resource's name (a topic pattern for `topic`).
        resource_name: String,
        /// Any of `read`, `write`, `admin`.
        operations: Vec<String>,
    },
    /// Take operations (all of them without `operations`) back from a grant.
    #[serde(rename = "identity.revoke")]
    Revoke {
        /// `user` or `role`.
        subject_type: String,
        /// The user's or the role's id.
        subject_id: String,
        /// `bucket`, `topic`, `procedure` or `query`.
        resource_type: String,
        /// The resource's name.
        resource_name: String,
        /// The operations to take back; all when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        operations: Option<Vec<String>>,
    },
    /// The grants on a resource, its owner first.
    #[serde(rename = "identity.getAcl")]
    GetAcl {
        /// `bucket`, `topic`, `procedure` or `query`.
        resource_type: String,
        /// The resource's name.
        resource_name: String,
    },
    /// The caller's grants and owned resources.
    #[serde(rename = "identity.myAccess")]
    MyAccess,
    /// Who owns a resource.
    #[serde(rename = "identity.getOwner")]
    GetOwner {
        /// `bucket`, `topic`, `procedure` or `query`.
        resource_type: String,
        /// The resource's name.
        resource_name: String,
    },
    /// Give a resource to another user (its owner or a superadmin).
    #[serde(rename = "identity.transferOwner")]
    TransferOwner {
        /// `bucket`, `topic`, `procedure` or `query`.
        resource_type: String,
        /// The resource's name.
        resource_name: String,
        /// The new owner's id.
        new_owner_id: String,
    },
}

/// A list of strings.
fn strings(f: &Fields<'_>, name: &str, required: bool) -> Result<Option<Vec<String>>, String> {
    let error = || format!("Missing or invalid \"{name}\": expected non-empty array");
    match f.opt_any(name) {
        None if required => Err(error()),
        None => Ok(None),
        Some(Value::Array(items)) if !items.is_empty() => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(format!("Invalid \"{name}\": expected an array of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(error()),
    }
}

/// An optional boolean field.
fn opt_bool(f: &Fields<'_>, name: &str) -> Result<Option<bool>, String> {
    match f.opt_any(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(format!("Invalid \"{name}\": expected boolean")),
    }
}

/// An optional positive integer field.
fn opt_positive(f: &Fields<'_>, name: &str) -> Result<Option<u64>, String> {
    match f.opt_any(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().filter(|n| *n > 0) {
            Some(n) => Ok(Some(n)),
            None => Err(format!("Invalid \"{name}\": expected positive integer")),
        },
        Some(_) => Err(format!("Invalid \"{name}\": expected positive integer")),
    }
}

/// An optional array field.
fn opt_array(f: &Fields<'_>, name: &str) -> Result<Option<Vec<Value>>, String> {
    match f.opt_any(name) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(format!("Invalid \"{name}\": expected array")),
    }
}

/// An optional string field that may be empty (a profile field being cleared).
fn opt_text(f: &Fields<'_>, name: &str) -> Result<Option<String>, String> {
    match f.opt_any(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("Invalid \"{name}\": expected string")),
    }
}

impl IdentityOp {
    /// Parses the fields of an `identity.*` request; `None` when `op_type` is not an
    /// identity operation this version serves.
    pub(crate) fn parse(op_type: &str, f: &Fields<'_>) -> Option<Result<IdentityOp, String>> {
        let parsed = (|| {
            Ok(match op_type {
                "identity.login" => IdentityOp::Login {
                    username: f.string("username")?,
                    password: f.string("password")?,
                },
                "identity.loginWithSecret" => IdentityOp::LoginWithSecret {
                    secret: f.string("secret")?,
                },
                "identity.logout" => IdentityOp::Logout,
                "identity.whoami" => IdentityOp::Whoami,
                "identity.refreshSession" => IdentityOp::RefreshSession,
                "identity.createUser" => IdentityOp::CreateUser {
                    username: f.string("username")?,
                    password: f.string("password")?,
                    display_name: opt_text(f, "displayName")?,
                    email: opt_text(f, "email")?,
                    enabled: opt_bool(f, "enabled")?,
                    metadata: f.opt_object("metadata")?,
                },
                "identity.getUser" => IdentityOp::GetUser {
                    user_id: f.string("userId")?,
                },
                "identity.updateUser" => IdentityOp::UpdateUser {
                    user_id: f.string("userId")?,
                    display_name: opt_text(f, "displayName")?,
                    email: opt_text(f, "email")?,
                    metadata: f.opt_object("metadata")?,
                },
                "identity.deleteUser" => IdentityOp::DeleteUser {
                    user_id: f.string("userId")?,
                },
                "identity.listUsers" => IdentityOp::ListUsers {
                    page: opt_positive(f, "page")?,
                    page_size: opt_positive(f, "pageSize")?,
                },
                "identity.enableUser" => IdentityOp::EnableUser {
                    user_id: f.string("userId")?,
                },
                "identity.disableUser" => IdentityOp::DisableUser {
                    user_id: f.string("userId")?,
                },
                "identity.changePassword" => IdentityOp::ChangePassword {
                    user_id: f.string("userId")?,
                    current_password: f.string("currentPassword")?,
                    new_password: f.string("newPassword")?,
                },
                "identity.resetPassword" => IdentityOp::ResetPassword {
                    user_id: f.string("userId")?,
                    new_password: f.string("newPassword")?,
                },
                "identity.createRole" => IdentityOp::CreateRole {
                    name: f.string("name")?,
                    description: opt_text(f, "description")?,
                    permissions: opt_array(f, "permissions")?,
                },
                "identity.updateRole" => IdentityOp::UpdateRole {
                    role_id: f.string("roleId")?,
                    description: opt_text(f, "description")?,
                    permissions: opt_array(f, "permissions")?,
                },
                "identity.deleteRole" => IdentityOp::DeleteRole {
                    role_id: f.string("roleId")?,
                },
                "identity.listRoles" => IdentityOp::ListRoles,
                "identity.assignRole" => IdentityOp::AssignRole {
                    user_id: f.string("userId")?,
                    role_name: f.string("roleName")?,
                },
                "identity.removeRole" => IdentityOp::RemoveRole {
                    user_id: f.string("userId")?,
                    role_name: f.string("roleName")?,
                },
                "identity.getUserRoles" => IdentityOp::GetUserRoles {
                    user_id: f.string("userId")?,
                },
                "identity.grant" => IdentityOp::Grant {
                    subject_type: f.string("subjectType")?,
                    subject_id: f.string("subjectId")?,
                    resource_type: f.string("resourceType")?,
                    resource_name: f.string("resourceName")?,
                    operations: strings(f, "operations", true)?.unwrap_or_default(),
                },
                "identity.revoke" => IdentityOp::Revoke {
                    subject_type: f.string("subjectType")?,
                    subject_id: f.string("subjectId")?,
                    resource_type: f.string("resourceType")?,
                    resource_name: f.string("resourceName")?,
                    operations: strings(f, "operations", false)?,
                },
                "identity.getAcl" => IdentityOp::GetAcl {
                    resource_type: f.string("resourceType")?,
                    resource_name: f.string("resourceName")?,
                },
                "identity.myAccess" => IdentityOp::MyAccess,
                "identity.getOwner" => IdentityOp::GetOwner {
                    resource_type: f.string("resourceType")?,
                    resource_name: f.string("resourceName")?,
                },
                "identity.transferOwner" => IdentityOp::TransferOwner {
                    resource_type: f.string("resourceType")?,
                    resource_name: f.string("resourceName")?,
                    new_owner_id: f.string("newOwnerId")?,
                },
                _ => return Err(None),
            })
        })();
        super::known_or_none(parsed)
    }

    /// The operation's wire `type`.
    pub fn op_type(&self) -> &'static str {
        match self {
            IdentityOp::Login { .. } => "identity.login",
            IdentityOp::LoginWithSecret { .. } => "identity.loginWithSecret",
            IdentityOp::Logout => "identity.logout",
            IdentityOp::Whoami => "identity.whoami",
            IdentityOp::RefreshSession => "identity.refreshSession",
            IdentityOp::CreateUser { .. } => "identity.createUser",
            IdentityOp::GetUser { .. } => "identity.getUser",
            IdentityOp::UpdateUser { .. } => "identity.updateUser",
            IdentityOp::DeleteUser { .. } => "identity.deleteUser",
            IdentityOp::ListUsers { .. } => "identity.listUsers",
            IdentityOp::EnableUser { .. } => "identity.enableUser",
            IdentityOp::DisableUser { .. } => "identity.disableUser",
            IdentityOp::ChangePassword { .. } => "identity.changePassword",
            IdentityOp::ResetPassword { .. } => "identity.resetPassword",
            IdentityOp::CreateRole { .. } => "identity.createRole",
            IdentityOp::UpdateRole { .. } => "identity.updateRole",
            IdentityOp::DeleteRole { .. } => "identity.deleteRole",
            IdentityOp::ListRoles => "identity.listRoles",
            IdentityOp::AssignRole { .. } => "identity.assignRole",
            IdentityOp::RemoveRole { .. } => "identity.removeRole",
            IdentityOp::GetUserRoles { .. } => "identity.getUserRoles",
            IdentityOp::Grant { .. } => "identity.grant",
            IdentityOp::Revoke { .. } => "identity.revoke",
            IdentityOp::GetAcl { .. } => "identity.getAcl",
            IdentityOp::MyAccess => "identity.myAccess",
            IdentityOp::GetOwner { .. } => "identity.getOwner",
            IdentityOp::TransferOwner { .. } => "identity.transferOwner",
        }
    }
}
