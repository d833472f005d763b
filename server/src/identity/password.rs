//! Password hashing: Argon2id (RustCrypto `argon2`, its default parameters m = 19 MiB,
//! t = 2, p = 1, the OWASP minimum) in the PHC string format. Hashing and verifying run on
//! the blocking pool under a semaphore of one permit fewer than the cores (at least one),
//! so logins waiting for a hash never hold up the runtime workers that answer other
//! clients.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use crate::error::ServerError;

/// Hashes and verifies passwords off the runtime workers.
pub(crate) struct Hasher {
    slots: Arc<Semaphore>,
    /// A hash of a random password, verified for unknown usernames so that their answer
    /// takes as long as a wrong password's.
    dummy: String,
}

impl Hasher {
    /// A hasher running at most `slots` hashes at once.
    pub(crate) fn new(slots: usize) -> Result<Self, ServerError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(ServerError::internal)?;
        let dummy = hash_now(&hex(&random))?;
        Ok(Hasher {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            dummy,
        })
    }

    /// The PHC string of `password`.
    pub(crate) async fn hash(&self, password: String) -> Result<String, ServerError> {
        let _permit = self.slots.acquire().await.map_err(ServerError::internal)?;
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(ServerError::internal)?
    }

    /// Whether `password` matches `hash` (the comparison is the crate's, in constant time).
    /// `None` verifies against the dummy hash and answers `false`.
    pub(crate) async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.slots.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

fn hash_now(password: &str) -> Result<String, ServerError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ServerError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(ServerError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ServerError::internal)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
