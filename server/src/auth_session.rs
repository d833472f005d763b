//! `Session`: who a connection is after a successful `auth.login`, as token validators
//! return it and permission checks read it. Its own module so that `auth` (which makes
//! sessions) and `permissions` (which judges them) both depend on it, not on each other.

use serde::{Deserialize, Serialize};

/// Who a connection is after a successful `auth.login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The user.
    pub user_id: String,
    /// The user's roles (`reader`, `writer`, `admin` are the built-in tiers).
    pub roles: Vec<String>,
    /// When the session ends, ms since the Unix epoch; `None` for never.
    pub expires_at: Option<u64>,
    /// Whether the built-in identity (`identity.*`) issued it. Only then do the identity's
    /// role rules and ACL grants apply to it: a static token or a JWT whose user id happens
    /// to be an identity user's (or the superadmin's) gets the rights its own roles give,
    /// nothing more. Token validators of an embedder set `false`.
    #[serde(default)]
    pub identity: bool,
}
