//! Typed errors of the rule engine. Each variant maps to exactly one protocol error code
//! in the server (`NOT_FOUND`, `ALREADY_EXISTS`, `VALIDATION_ERROR`, ...).

pub use noex_model::issue::RuleValidationIssue;

/// Errors returned by [`crate::RuleEngine`] operations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulesError {
    /// A rule, subscription or timer with that id does not exist (`NOT_FOUND`).
    #[error("{kind} not found: {id}")]
    NotFound {
        /// What was looked up (`rule`, `subscription`).
        kind: &'static str,
        /// The id that was not found.
        id: String,
    },
    /// A rule with that id is already registered (`ALREADY_EXISTS`).
    #[error("rule already exists: {0}")]
    AlreadyExists(String),
    /// The rule is invalid (`VALIDATION_ERROR`); every problem found is listed.
    #[error("invalid rule: {}", summarize(.0))]
    Validation(Vec<RuleValidationIssue>),
    /// A topic or fact pattern, or a fact key, is malformed (`VALIDATION_ERROR`).
    #[error("invalid pattern {pattern:?}: {message}")]
    InvalidPattern {
        /// The offending pattern.
        pattern: String,
        /// Why it is invalid.
        message: String,
    },
    /// A value is larger than a configured bound allows for one item (a fact value over
    /// `max_fact_bytes`); the server answers `VALIDATION_ERROR`.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A configured bound was reached (rules, facts, bytes of all facts, subscriptions,
    /// timers); the server answers `RATE_LIMITED`.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}

fn summarize(errors: &[RuleValidationIssue]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.path.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.path, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias of this crate.
pub type Result<T, E = RulesError> = std::result::Result<T, E>;
