//! Authentication: sessions, the pluggable [`TokenValidator`] trait, and the `auth` section
//! of the config with its two ready validators (a static token table and JWT).

mod jwt;
mod static_tokens;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use jwt::{JwtAlgorithm, JwtConfig, JwtValidator};
pub use static_tokens::{StaticToken, StaticTokenValidator};

pub use crate::auth_session::Session;
use crate::config_error::ConfigError;
use crate::permissions::PermissionsConfig;

/// A boxed future returned by [`TokenValidator::validate`].
pub type ValidateFuture<'a> = Pin<Box<dyn Future<Output = Option<Session>> + Send + 'a>>;

/// Turns a token into a session; `None` means the token is invalid.
///
/// Expiry is not the validator's business: return the session with its `expires_at` and the
/// server answers `Token has expired` itself.
///
/// ```
/// use noex_server::{Session, TokenValidator, ValidateFuture};
///
/// struct OneUser;
/// impl TokenValidator for OneUser {
///     fn validate<'a>(&'a self, token: &'a str) -> ValidateFuture<'a> {
///         Box::pin(async move {
///             (token == "let-me-in").then(|| Session {
///                 user_id: "alice".into(),
///                 roles: vec!["writer".into()],
///                 expires_at: None,
///                 identity: false,
///             })
///         })
///     }
/// }
/// ```
pub trait TokenValidator: Send + Sync + 'static {
    /// Validates `token`.
    fn validate<'a>(&'a self, token: &'a str) -> ValidateFuture<'a>;
}

/// The `auth` section of the config.
///
/// ```json
/// {"required": true,
///  "tokens": {"secret-1": {"userId": "alice", "roles": ["admin"]}},
///  "jwt": {"algorithm": "HS256", "secret": "change-me", "rolesClaim": "roles"},
///  "permissions": {"default": "allow", "rules": [{"role": "viewer", "allow": "store.*"}]}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// Whether requests need a session (`false`: anonymous clients may do everything and
    /// permissions apply once a session exists). Default `true`.
    #[serde(default = "default_true")]
    pub required: bool,
    /// A static token table: token → session.
    pub tokens: Option<BTreeMap<String, StaticToken>>,
    /// JWT validation.
    pub jwt: Option<JwtConfig>,
    /// The permission policy applied to sessions.
    pub permissions: PermissionsConfig,
}

fn default_true() -> bool {
    true
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            required: true,
            tokens: None,
            jwt: None,
            permissions: PermissionsConfig::default(),
        }
    }
}

/// Tries several validators in order; the first session wins.
pub(crate) struct ChainValidator(pub(crate) Vec<Arc<dyn TokenValidator>>);

impl TokenValidator for ChainValidator {
    fn validate<'a>(&'a self, token: &'a str) -> ValidateFuture<'a> {
        Box::pin(async move {
            for validator in &self.0 {
                if let Some(session) = validator.validate(token).await {
                    return Some(session);
                }
            }
            None
        })
    }
}

impl AuthConfig {
    /// The validators this config declares (static table first, then JWT, which reads
    /// `clock` for `nbf`).
    pub(crate) fn validators(
        &self,
        clock: &Arc<dyn noex_model::clock::Clock>,
    ) -> Result<Vec<Arc<dyn TokenValidator>>, ConfigError> {
        let mut out: Vec<Arc<dyn TokenValidator>> = Vec::new();
        if let Some(tokens) = &self.tokens {
            out.push(Arc::new(StaticTokenValidator::new(tokens.clone())));
        }
        if let Some(jwt) = &self.jwt {
            out.push(Arc::new(JwtValidator::with_clock(jwt, Arc::clone(clock))?));
        }
        Ok(out)
    }
}
