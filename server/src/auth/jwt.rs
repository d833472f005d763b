//! The JWT validator (HS256 with a shared secret, RS256 / ES256 with a public key), via the
//! `jsonwebtoken` crate: `sub` → userId, a configurable roles claim, `exp` → expiresAt.
//!
//! On top of the signature and `iss` / `aud` checks of the crate, a token is invalid when
//! its header carries `crit` (no extension is implemented, RFC 7515 section 4.1.11), when
//! `exp`, `nbf` or `iat` is present but not a number between 0 and the end of year 9999
//! (in seconds), or before its `nbf` by the server's
//! clock (no leeway, like `exp`).

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Session, TokenValidator, ValidateFuture};
use crate::config_error::ConfigError;
use noex_model::clock::{Clock, SystemClock};

/// Supported signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with `secret`.
    HS256,
    /// RSA-SHA256 with `publicKey` / `publicKeyFile` (PEM).
    RS256,
    /// ECDSA P-256 with `publicKey` / `publicKeyFile` (PEM).
    ES256,
}

/// `auth.jwt` in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtConfig {
    /// Signature algorithm.
    pub algorithm: JwtAlgorithm,
    /// Shared secret (HS256).
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM public key (RS256 / ES256).
    #[serde(default)]
    pub public_key: Option<String>,
    /// File holding the PEM public key (RS256 / ES256).
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// Claim holding the roles (an array of strings or one string). Default `roles`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Required `iss`, if any.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    #[serde(default)]
    pub audience: Option<String>,
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

/// Validates JWTs.
pub struct JwtValidator {
    key: DecodingKey,
    validation: Validation,
    roles_claim: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("algorithms", &self.validation.algorithms)
            .field("roles_claim", &self.roles_claim)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// Builds the validator reading the system clock for `nbf`; a missing or unreadable key
    /// is a config error naming the field.
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Like [`JwtValidator::new`], with `nbf` checked against `clock` (the server passes the
    /// clock given to `ServerBuilder::clock`).
    pub fn with_clock(config: &JwtConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let invalid = |field, message| ConfigError::Invalid { field, message };
        let (algorithm, key) = match config.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = config
                    .secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| invalid("auth.jwt.secret", "is required for HS256"))?;
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                let pem = match (&config.public_key, &config.public_key_file) {
                    (Some(pem), _) => pem.clone(),
                    (None, Some(path)) => {
                        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                            path: path.clone(),
                            source,
                        })?
                    }
                    (None, None) => {
                        return Err(invalid(
                            "auth.jwt.publicKey",
                            "(or publicKeyFile) is required for RS256 and ES256",
                        ));
                    }
                };
                let not_pem = || invalid("auth.jwt.publicKey", "is not a valid PEM public key");
                if config.algorithm == JwtAlgorithm::RS256 {
                    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| not_pem())?;
                    (Algorithm::RS256, key)
                } else {
                    let key = DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| not_pem())?;
                    (Algorithm::ES256, key)
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        // Expiry is checked by the server against its clock so that an expired token gets
        // "Token has expired" rather than "Invalid token".
        validation.validate_exp = false;
        // `nbf` too: it is checked against the server's (injectable) clock below.
        validation.validate_nbf = false;
        validation.required_spec_claims = ["sub".to_owned()].into_iter().collect();
        validation.validate_aud = config.audience.is_some();
        if let Some(aud) = &config.audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(JwtValidator {
            key,
            validation,
            roles_claim: config.roles_claim.clone(),
            clock,
        })
    }

    fn session(&self, token: &str) -> Option<Session> {
        if !header_is_acceptable(token) {
            return None;
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation).ok()?;
        let claims = data.claims;
        // RFC 7519 NumericDate: a JSON number (seconds, possibly fractional), here between
        // the epoch and the end of year 9999: an `exp` of 1e300 is not "never expires" but
        // an invalid token.
        let time_claim = |name: &str| match claims.get(name) {
            None => Some(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|secs| (0.0..=MAX_NUMERIC_DATE).contains(secs))
                .map(Some),
            Some(_) => None,
        };
        let (exp, nbf, _iat) = (time_claim("exp")?, time_claim("nbf")?, time_claim("iat")?);
        if let Some(nbf) = nbf {
            if (self.clock.now_ms() as f64) < nbf * 1000.0 {
                return None;
            }
        }
        // A session needs a user: a missing, non-string or empty `sub` is an invalid token.
        let user_id = claims.get("sub")?.as_str()?.to_owned();
        if user_id.is_empty() {
            return None;
        }
        // The roles claim is absent (no roles), one string or an array of strings; anything
        // else (an object, a number, a non-string element) is an invalid token rather than
        // silently no roles.
        let roles = match claims.get(&self.roles_claim) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?,
            Some(Value::String(role)) => vec![role.clone()],
            Some(_) => return None,
        };
        let expires_at = exp.map(|secs| (secs * 1000.0).max(0.0) as u64);
        Some(Session {
            user_id,
            roles,
            expires_at,
            identity: false,
        })
    }
}

/// Whether the token's header (its first segment) is a JSON object without `crit`.
/// `jsonwebtoken`'s `Header` drops fields it does not know, `crit` among them, so the
/// segment is decoded here; everything else about the header is left to the crate.
fn header_is_acceptable(token: &str) -> bool {
    let Some(segment) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment) else {
        return false;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(header)) => !header.contains_key("crit"),
        _ => false,
    }
}

impl TokenValidator for JwtValidator {
    fn validate<'a>(&'a self, token: &'a str) -> ValidateFuture<'a> {
        Box::pin(std::future::ready(self.session(token)))
    }
}

/// The largest NumericDate accepted: 9999-12-31T23:59:59Z, in seconds.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn headers_with_crit_or_not_json_are_refused() {
        let ok = format!("{}.e30.sig", segment(r#"{"alg":"HS256"}"#));
        assert!(header_is_acceptable(&ok));
        for header in [
            r#"{"alg":"HS256","crit":["b64"]}"#,
            r#"{"crit":null}"#,
            "[1]",
            "{",
        ] {
            let token = format!("{}.e30.sig", segment(header));
            assert!(!header_is_acceptable(&token), "{header}");
        }
        assert!(!header_is_acceptable("%%%.e30.sig"));
    }
}
