//! Results of `identity.*` operations. No result ever carries a password hash.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ts_rs::TS;

/// A user as `identity.*` returns it (never its password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct IdentityUser {
    /// The user's id.
    pub id: String,
    /// The user's name.
    pub username: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub display_name: Option<String>,
    /// The e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub email: Option<String>,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Free-form data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(
        optional,
        as = "Option<std::collections::BTreeMap<String, serde_json::Value>>"
    )]
    pub metadata: Option<Map<String, Value>>,
    /// Created, ms since the Unix epoch.
    #[serde(rename = "_createdAt")]
    pub created_at: u64,
    /// Last changed, ms since the Unix epoch.
    #[serde(rename = "_updatedAt")]
    pub updated_at: u64,
}

/// A role as `identity.*` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct IdentityRole {
    /// The role's id.
    pub id: String,
    /// The role's name.
    pub name: String,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub description: Option<String>,
    /// A system role (`superadmin`, `admin`, `writer`, `reader`): cannot be deleted.
    pub system: bool,
    /// Permission rules `{allow, buckets?, topics?, procedures?}`.
    pub permissions: Vec<Value>,
    /// Created, ms since the Unix epoch.
    #[serde(rename = "_createdAt")]
    pub created_at: u64,
    /// Last changed, ms since the Unix epoch.
    #[serde(rename = "_updatedAt")]
    pub updated_at: u64,
}

/// The user part of an [`IdentityLogin`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct IdentityLoginUser {
    /// The user's id (`__superadmin__` after `identity.loginWithSecret`).
    pub id: String,
    /// The user's name.
    pub username: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub display_name: Option<String>,
    /// The user's role names.
    pub roles: Vec<String>,
}

/// `identity.login`, `identity.loginWithSecret`, `identity.refreshSession` →
/// `{token, expiresAt, user: {id, username, displayName?, roles}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct IdentityLogin {
    /// The session token (also valid for `auth.login` on another connection).
    pub token: String,
    /// When the session ends, ms since the Unix epoch.
    pub expires_at: u64,
    /// Who logged in.
    pub user: IdentityLoginUser,
}

/// `identity.listUsers` → `{users, total, page, pageSize}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct IdentityUserList {
    /// This page's users.
    pub users: Vec<IdentityUser>,
    /// Users in all.
    pub total: u64,
    /// The page (from 1).
    pub page: u64,
    /// Users per page.
    pub page_size: u64,
}

/// `identity.listRoles`, `identity.getUserRoles` → `{roles}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct IdentityRoleList {
    /// The roles.
    pub roles: Vec<IdentityRole>,
}

/// `identity.changePassword` → `{changed: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PasswordChanged {
    /// Always `true`.
    pub changed: bool,
}

/// `identity.resetPassword` → `{reset: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PasswordReset {
    /// Always `true`.
    pub reset: bool,
}

/// `identity.assignRole` → `{assigned: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RoleAssigned {
    /// Always `true`.
    pub assigned: bool,
}

/// `identity.removeRole` → `{removed: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RoleRemoved {
    /// Always `true`.
    pub removed: bool,
}

/// `identity.grant` → `{granted: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AccessGranted {
    /// Always `true`.
    pub granted: bool,
}

/// `identity.revoke` → `{revoked: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AccessRevoked {
    /// Always `true`.
    pub revoked: bool,
}

/// `identity.transferOwner` → `{transferred: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct OwnerTransferred {
    /// Always `true`.
    pub transferred: bool,
}

/// One entry of `identity.getAcl`: a grant, or the owner's implicit full access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AclEntry {
    /// `user` or `role`.
    pub subject_type: String,
    /// The user's or the role's id.
    pub subject_id: String,
    /// The user's name or the role's name (`null` when it no longer exists).
    pub subject_name: Option<String>,
    /// Granted operations (`read`, `write`, `admin`).
    pub operations: Vec<String>,
    /// Whether this is the owner's entry.
    pub is_owner: bool,
}

/// `identity.getAcl` → `{entries}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AclEntries {
    /// The owner first, then the grants.
    pub entries: Vec<AclEntry>,
}

/// One resource of `identity.myAccess`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAccess {
    /// `bucket`, `topic`, `procedure` or `query`.
    pub resource_type: String,
    /// The resource's name.
    pub resource_name: String,
    /// What the caller may do on it, sorted.
    pub operations: Vec<String>,
    /// Whether the caller owns it.
    pub is_owner: bool,
}

/// The user part of [`MyAccess`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AccessUser {
    /// The user's id.
    pub id: String,
    /// The user's name.
    pub username: String,
    /// The user's role names (where the original's client reads them).
    pub roles: Vec<String>,
}

/// `identity.myAccess` → `{user: {id, username, roles}, roles, resources}` (`roles` also at
/// the top level, where earlier versions of this server put them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct MyAccess {
    /// The caller.
    pub user: AccessUser,
    /// The caller's role names.
    pub roles: Vec<String>,
    /// Resources the caller was granted (directly or through a role) or owns.
    pub resources: Vec<ResourceAccess>,
}

/// The owner in [`OwnerInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOwner {
    /// The owner's id.
    pub user_id: String,
    /// The owner's name.
    pub username: String,
    /// The kind of the resource asked about.
    pub resource_type: String,
    /// Its name.
    pub resource_name: String,
}

/// `identity.getOwner` → `{owner}` (`null` when nobody owns it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct OwnerInfo {
    /// The owner.
    pub owner: Option<ResourceOwner>,
}
