//! The static token table validator: `token -> {userId, roles, expiresAt?}` from the config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Session, TokenValidator, ValidateFuture};

/// One entry of the token table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticToken {
    /// The user the token logs in as.
    pub user_id: String,
    /// The user's roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// When the token stops working, ms since the Unix epoch.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// Validates tokens against a fixed table.
#[derive(Debug, Clone)]
pub struct StaticTokenValidator {
    tokens: BTreeMap<String, StaticToken>,
}

impl StaticTokenValidator {
    /// A validator over `tokens`.
    pub fn new(tokens: BTreeMap<String, StaticToken>) -> Self {
        StaticTokenValidator { tokens }
    }
}

impl TokenValidator for StaticTokenValidator {
    fn validate<'a>(&'a self, token: &'a str) -> ValidateFuture<'a> {
        let session = self.tokens.get(token).map(|t| Session {
            user_id: t.user_id.clone(),
            roles: t.roles.clone(),
            expires_at: t.expires_at,
            identity: false,
        });
        Box::pin(std::future::ready(session))
    }
}
