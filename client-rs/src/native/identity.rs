//! Typed identity API: the server's built-in users, roles and password sessions
//! (`identity.*`, served when the server's `identity.enabled` is on).

use noex_protocol::payloads::{
    AccessGranted, AccessRevoked, AclEntries, Deleted, IdentityLogin, IdentityRole,
    IdentityRoleList, IdentityUser, IdentityUserList, LogoutResult, MyAccess, OwnerInfo,
    OwnerTransferred, PasswordChanged, PasswordReset, RoleAssigned, RoleRemoved, WhoAmI,
};
use noex_protocol::{IdentityOp, JsonObject, Operation};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Client;
use crate::ClientError;

/// A new user for [`Identity::create_user`]: a username and a password, and optional
/// profile fields.
///
/// ```
/// let user = noex_client::NewUser::new("alice", "correct horse battery");
/// assert_eq!(user.enabled, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUser {
    /// 3 to 64 characters, unique.
    pub username: String,
    /// 8 to 256 characters.
    pub password: String,
    /// A display name.
    pub display_name: Option<String>,
    /// An e-mail address.
    pub email: Option<String>,
    /// Whether the user may log in (the server's default: `true`).
    pub enabled: Option<bool>,
    /// Free-form data.
    pub metadata: Option<JsonObject>,
}

impl NewUser {
    /// A user with only a username and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        NewUser {
            username: username.into(),
            password: password.into(),
            ..NewUser::default()
        }
    }
}

/// Profile changes for [`Identity::update_user`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    /// A new display name.
    pub display_name: Option<String>,
    /// A new e-mail address.
    pub email: Option<String>,
    /// New metadata.
    pub metadata: Option<JsonObject>,
}

/// The `identity.*` namespace.
///
/// A successful [`Identity::login`], [`Identity::login_with_secret`] or
/// [`Identity::refresh_session`] leaves the client as [`crate::Auth::login`] does: the
/// session token of the answer is sent with `auth.login` after every reconnect, until
/// [`Identity::logout`] (or [`crate::Auth::logout`]). On a new client, give the token to
/// [`crate::ClientOptions::auth_token`].
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
/// let session = client.identity().login("alice", "correct horse battery").await?;
/// println!("{} until {}", session.user.username, session.expires_at);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Identity {
    client: Client,
}

impl Identity {
    pub(crate) fn new(client: Client) -> Self {
        Identity { client }
    }

    async fn call_op<R: DeserializeOwned>(&self, op: IdentityOp) -> Result<R, ClientError> {
        self.client.call(Operation::Identity(op)).await
    }

    /// Logs in with a username and a password (`identity.login`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let session = client.identity().login("alice", "correct horse battery").await?;
    /// # Ok(()) }
    /// ```
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<IdentityLogin, ClientError> {
        self.call_op(IdentityOp::Login {
            username: username.to_owned(),
            password: password.to_owned(),
        })
        .await
    }

    /// Logs in as the bootstrap superadmin with the server's `identity.adminSecret`
    /// (`identity.loginWithSecret`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().login_with_secret("the-admin-secret").await?;
    /// # Ok(()) }
    /// ```
    pub async fn login_with_secret(&self, secret: &str) -> Result<IdentityLogin, ClientError> {
        self.call_op(IdentityOp::LoginWithSecret {
            secret: secret.to_owned(),
        })
        .await
    }

    /// Ends the session; its token stops working (`identity.logout`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().logout().await?;
    /// # Ok(()) }
    /// ```
    pub async fn logout(&self) -> Result<LogoutResult, ClientError> {
        self.call_op(IdentityOp::Logout).await
    }

    /// Describes the session (`identity.whoami`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let me = client.identity().whoami().await?;
    /// # Ok(()) }
    /// ```
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.call_op(IdentityOp::Whoami).await
    }

    /// A new token with a fresh expiry; the old one stops working
    /// (`identity.refreshSession`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let renewed = client.identity().refresh_session().await?;
    /// # Ok(()) }
    /// ```
    pub async fn refresh_session(&self) -> Result<IdentityLogin, ClientError> {
        self.call_op(IdentityOp::RefreshSession).await
    }

    /// Creates a user (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_client::NewUser;
    /// let alice = client.identity().create_user(NewUser::new("alice", "correct horse")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_user(&self, user: NewUser) -> Result<IdentityUser, ClientError> {
        self.call_op(IdentityOp::CreateUser {
            username: user.username,
            password: user.password,
            display_name: user.display_name,
            email: user.email,
            enabled: user.enabled,
            metadata: user.metadata,
        })
        .await
    }

    /// One user (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let user = client.identity().get_user("user-id").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_user(&self, user_id: &str) -> Result<IdentityUser, ClientError> {
        self.call_op(IdentityOp::GetUser {
            user_id: user_id.to_owned(),
        })
        .await
    }

    /// Changes a user's profile (the user itself or an admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_client::UserChanges;
    /// let changes = UserChanges { display_name: Some("Alice".into()), ..Default::default() };
    /// client.identity().update_user("user-id", changes).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_user(
        &self,
        user_id: &str,
        changes: UserChanges,
    ) -> Result<IdentityUser, ClientError> {
        self.call_op(IdentityOp::UpdateUser {
            user_id: user_id.to_owned(),
            display_name: changes.display_name,
            email: changes.email,
            metadata: changes.metadata,
        })
        .await
    }

    /// Deletes a user, its sessions and role assignments (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().delete_user("user-id").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_user(&self, user_id: &str) -> Result<Deleted, ClientError> {
        self.call_op(IdentityOp::DeleteUser {
            user_id: user_id.to_owned(),
        })
        .await
    }

    /// One page of users (admin); `None` for the server's defaults (page 1, 50 a page).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let page = client.identity().list_users(Some(2), Some(20)).await?;
    /// println!("{} users", page.total);
    /// # Ok(()) }
    /// ```
    pub async fn list_users(
        &self,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<IdentityUserList, ClientError> {
        self.call_op(IdentityOp::ListUsers { page, page_size })
            .await
    }

    /// Lets a user log in again (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().enable_user("user-id").await?;
    /// # Ok(()) }
    /// ```
    pub async fn enable_user(&self, user_id: &str) -> Result<IdentityUser, ClientError> {
        self.call_op(IdentityOp::EnableUser {
            user_id: user_id.to_owned(),
        })
        .await
    }

    /// Stops a user from logging in and ends its connections at once (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().disable_user("user-id").await?;
    /// # Ok(()) }
    /// ```
    pub async fn disable_user(&self, user_id: &str) -> Result<IdentityUser, ClientError> {
        self.call_op(IdentityOp::DisableUser {
            user_id: user_id.to_owned(),
        })
        .await
    }

    /// Changes the caller's own password (its sessions end).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().change_password("my-id", "old password", "new password").await?;
    /// # Ok(()) }
    /// ```
    pub async fn change_password(
        &self,
        user_id: &str,
        current_password: &str,
        new_password: &str,
    ) -> Result<PasswordChanged, ClientError> {
        self.call_op(IdentityOp::ChangePassword {
            user_id: user_id.to_owned(),
            current_password: current_password.to_owned(),
            new_password: new_password.to_owned(),
        })
        .await
    }

    /// Sets a user's password (admin; the user's sessions end).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().reset_password("user-id", "new password").await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset_password(
        &self,
        user_id: &str,
        new_password: &str,
    ) -> Result<PasswordReset, ClientError> {
        self.call_op(IdentityOp::ResetPassword {
            user_id: user_id.to_owned(),
            new_password: new_password.to_owned(),
        })
        .await
    }

    /// Creates a role (superadmin) with permission rules `{allow, buckets?, topics?,
    /// procedures?}`.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let rules = vec![serde_json::json!({"allow": "store.*", "buckets": ["orders"]})];
    /// client.identity().create_role("clerk", Some("Orders"), Some(rules)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        permissions: Option<Vec<Value>>,
    ) -> Result<IdentityRole, ClientError> {
        self.call_op(IdentityOp::CreateRole {
            name: name.to_owned(),
            description: description.map(str::to_owned),
            permissions,
        })
        .await
    }

    /// Changes a role's description or permission rules (superadmin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().update_role("role-id", Some("All orders"), None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_role(
        &self,
        role_id: &str,
        description: Option<&str>,
        permissions: Option<Vec<Value>>,
    ) -> Result<IdentityRole, ClientError> {
        self.call_op(IdentityOp::UpdateRole {
            role_id: role_id.to_owned(),
            description: description.map(str::to_owned),
            permissions,
        })
        .await
    }

    /// Deletes a role that is not a system role (superadmin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().delete_role("role-id").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_role(&self, role_id: &str) -> Result<Deleted, ClientError> {
        self.call_op(IdentityOp::DeleteRole {
            role_id: role_id.to_owned(),
        })
        .await
    }

    /// Every role (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// for role in client.identity().list_roles().await?.roles { println!("{}", role.name); }
    /// # Ok(()) }
    /// ```
    pub async fn list_roles(&self) -> Result<IdentityRoleList, ClientError> {
        self.call_op(IdentityOp::ListRoles).await
    }

    /// Gives a user a role, by the role's name (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().assign_role("user-id", "writer").await?;
    /// # Ok(()) }
    /// ```
    pub async fn assign_role(
        &self,
        user_id: &str,
        role_name: &str,
    ) -> Result<RoleAssigned, ClientError> {
        self.call_op(IdentityOp::AssignRole {
            user_id: user_id.to_owned(),
            role_name: role_name.to_owned(),
        })
        .await
    }

    /// Takes a role from a user (admin); the user's connections end at once.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().remove_role("user-id", "writer").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_role(
        &self,
        user_id: &str,
        role_name: &str,
    ) -> Result<RoleRemoved, ClientError> {
        self.call_op(IdentityOp::RemoveRole {
            user_id: user_id.to_owned(),
            role_name: role_name.to_owned(),
        })
        .await
    }

    /// The roles of a user (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let roles = client.identity().get_user_roles("user-id").await?.roles;
    /// # Ok(()) }
    /// ```
    pub async fn get_user_roles(&self, user_id: &str) -> Result<IdentityRoleList, ClientError> {
        self.call_op(IdentityOp::GetUserRoles {
            user_id: user_id.to_owned(),
        })
        .await
    }

    /// Grants `operations` (`read`, `write`, `admin`) on a resource (`bucket`, `topic`,
    /// `procedure`, `query`) to a user or a role (`subject_type` `user` or `role`); merged
    /// with an existing grant. An admin, the resource's owner or a holder of `admin` on it
    /// may grant.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().grant(("user", "user-id"), ("bucket", "docs"), &["read"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn grant(
        &self,
        subject: (&str, &str),
        resource: (&str, &str),
        operations: &[&str],
    ) -> Result<AccessGranted, ClientError> {
        self.call_op(IdentityOp::Grant {
            subject_type: subject.0.to_owned(),
            subject_id: subject.1.to_owned(),
            resource_type: resource.0.to_owned(),
            resource_name: resource.1.to_owned(),
            operations: operations.iter().map(|s| (*s).to_owned()).collect(),
        })
        .await
    }

    /// Takes `operations` (all of them when `None`) back from a grant.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().revoke(("user", "user-id"), ("bucket", "docs"), None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(
        &self,
        subject: (&str, &str),
        resource: (&str, &str),
        operations: Option<&[&str]>,
    ) -> Result<AccessRevoked, ClientError> {
        self.call_op(IdentityOp::Revoke {
            subject_type: subject.0.to_owned(),
            subject_id: subject.1.to_owned(),
            resource_type: resource.0.to_owned(),
            resource_name: resource.1.to_owned(),
            operations: operations.map(|ops| ops.iter().map(|s| (*s).to_owned()).collect()),
        })
        .await
    }

    /// The grants on a resource, its owner first.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let acl = client.identity().get_acl("bucket", "docs").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_acl(
        &self,
        resource_type: &str,
        resource_name: &str,
    ) -> Result<AclEntries, ClientError> {
        self.call_op(IdentityOp::GetAcl {
            resource_type: resource_type.to_owned(),
            resource_name: resource_name.to_owned(),
        })
        .await
    }

    /// The caller's roles, grants and owned resources.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// for r in client.identity().my_access().await?.resources { println!("{}", r.resource_name); }
    /// # Ok(()) }
    /// ```
    pub async fn my_access(&self) -> Result<MyAccess, ClientError> {
        self.call_op(IdentityOp::MyAccess).await
    }

    /// Who owns a resource (`owner` is `None` when nobody does).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let owner = client.identity().get_owner("bucket", "docs").await?.owner;
    /// # Ok(()) }
    /// ```
    pub async fn get_owner(
        &self,
        resource_type: &str,
        resource_name: &str,
    ) -> Result<OwnerInfo, ClientError> {
        self.call_op(IdentityOp::GetOwner {
            resource_type: resource_type.to_owned(),
            resource_name: resource_name.to_owned(),
        })
        .await
    }

    /// Gives a resource to another user (its owner or a superadmin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.identity().transfer_owner("bucket", "docs", "user-id").await?;
    /// # Ok(()) }
    /// ```
    pub async fn transfer_owner(
        &self,
        resource_type: &str,
        resource_name: &str,
        new_owner_id: &str,
    ) -> Result<OwnerTransferred, ClientError> {
        self.call_op(IdentityOp::TransferOwner {
            resource_type: resource_type.to_owned(),
            resource_name: resource_name.to_owned(),
            new_owner_id: new_owner_id.to_owned(),
        })
        .await
    }
}
