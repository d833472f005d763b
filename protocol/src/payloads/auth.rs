//! Results of `auth.*` operations.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// `auth.login` → `{userId, roles, expiresAt}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LoginResult {
    /// The authenticated user.
    pub user_id: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// When the session ends, ms since the Unix epoch; `null` for never.
    pub expires_at: Option<u64>,
}

/// `auth.logout` → `{loggedOut: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LogoutResult {
    /// Always `true`.
    pub logged_out: bool,
}

/// `auth.whoami` → `{authenticated: true, userId, roles, expiresAt}` or `{authenticated: false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum WhoAmI {
    /// A session exists.
    #[serde(rename_all = "camelCase")]
    Authenticated {
        /// Always `true`.
        #[ts(type = "true")]
        authenticated: bool,
        /// The user.
        user_id: String,
        /// The user's roles.
        roles: Vec<String>,
        /// Session end, ms since the Unix epoch, or `null`.
        expires_at: Option<u64>,
    },
    /// No session.
    Anonymous {
        /// Always `false`.
        #[ts(type = "false")]
        authenticated: bool,
    },
}
