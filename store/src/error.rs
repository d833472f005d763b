//! The store's typed errors. Every variant maps to exactly one protocol error code
//! (see [`StoreError::code`]); messages are precise and safe to show to a client.

use serde_json::Value;

pub use noex_model::ValidationIssue;

/// Everything that can go wrong in a store operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The named bucket does not exist (`BUCKET_NOT_DEFINED`).
    #[error("Bucket \"{bucket}\" is not defined")]
    BucketNotDefined {
        /// Bucket name.
        bucket: String,
    },
    /// `define_bucket` with a name already in use (`ALREADY_EXISTS`).
    #[error("Bucket \"{bucket}\" already exists")]
    BucketAlreadyExists {
        /// Bucket name.
        bucket: String,
    },
    /// The record does not satisfy the schema (`VALIDATION_ERROR`).
    #[error("Validation failed for bucket \"{bucket}\": {}", summarize(.issues))]
    Validation {
        /// Bucket name.
        bucket: String,
        /// Every issue found, in schema order.
        issues: Vec<ValidationIssue>,
    },
    /// A duplicate key or a unique-constraint violation (`ALREADY_EXISTS`).
    #[error("Bucket \"{bucket}\": {field} {value} already exists")]
    AlreadyExists {
        /// Bucket name.
        bucket: String,
        /// The key field or the unique field.
        field: String,
        /// The colliding value.
        value: Value,
    },
    /// A record that must exist does not (`NOT_FOUND`).
    #[error("Record {key} not found in bucket \"{bucket}\"")]
    NotFound {
        /// Bucket name.
        bucket: String,
        /// The key looked up.
        key: Value,
    },
    /// A transaction saw a record that changed before it committed (`CONFLICT`).
    #[error("Transaction conflict on bucket \"{bucket}\" key {key}")]
    Conflict {
        /// Bucket name.
        bucket: String,
        /// The record's key.
        key: Value,
    },
    /// The named query does not exist (`QUERY_NOT_DEFINED`).
    #[error("Query \"{name}\" is not defined")]
    QueryNotDefined {
        /// Query name.
        name: String,
    },
    /// `define_query` with a name already in use (`ALREADY_EXISTS`).
    #[error("Query \"{name}\" already exists")]
    QueryAlreadyExists {
        /// Query name.
        name: String,
    },
    /// Unknown subscription id (`NOT_FOUND`).
    #[error("Subscription \"{id}\" not found")]
    SubscriptionNotFound {
        /// The id asked for.
        id: String,
    },
    /// A bucket or query definition is malformed (`VALIDATION_ERROR`).
    #[error("Invalid definition: {message}")]
    InvalidDefinition {
        /// What is wrong.
        message: String,
    },
    /// An argument (filter, field name, limit...) is malformed (`VALIDATION_ERROR`).
    #[error("Invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// A query parameter does not fit where the query uses it, e.g. an object where a
    /// value to compare is expected (`VALIDATION_ERROR`). Parameters are values: they are
    /// never read as filter syntax.
    #[error("Invalid parameter \"{name}\": {message}")]
    InvalidParameter {
        /// The parameter's name (`x` of `{{ params.x }}`).
        name: String,
        /// What the query expects there.
        message: String,
    },
    /// A read or a query result would be larger than
    /// [`StoreConfig::max_result_bytes`](crate::StoreConfig::max_result_bytes) bytes of
    /// JSON (`VALIDATION_ERROR`); detected while collecting, before the result is built.
    #[error("Result exceeds {limit} bytes; read it in pages with store.paginate")]
    ResultTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A read ran past the time budget of [`with_read_deadline`](crate::with_read_deadline)
    /// (`VALIDATION_ERROR`): nothing of it is answered, a transaction rolls back.
    #[error(
        "Read stopped after {limit_ms} ms, its time budget; narrow the filter, filter on an indexed field, or read in pages with store.paginate"
    )]
    ReadTimeout {
        /// The budget in milliseconds.
        limit_ms: u64,
    },
    /// A store-wide bound was reached: [`StoreConfig::max_buckets`](crate::StoreConfig::max_buckets)
    /// or [`StoreConfig::max_queries`](crate::StoreConfig::max_queries) (`RATE_LIMITED`).
    #[error("{message}")]
    LimitExceeded {
        /// Which limit, e.g. `Bucket limit reached (max 1000)`.
        message: String,
    },
    /// Anything else (`INTERNAL_ERROR`).
    #[error("Internal store error: {message}")]
    Internal {
        /// Description (not meant to leak details of user data).
        message: String,
    },
}

fn summarize(issues: &[ValidationIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl StoreError {
    /// The protocol error code this error maps to.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::BucketNotDefined { .. } => "BUCKET_NOT_DEFINED",
            StoreError::BucketAlreadyExists { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::QueryAlreadyExists { .. } => "ALREADY_EXISTS",
            StoreError::Validation { .. }
            | StoreError::InvalidDefinition { .. }
            | StoreError::InvalidArgument { .. }
            | StoreError::InvalidParameter { .. }
            | StoreError::ResultTooLarge { .. }
            | StoreError::ReadTimeout { .. } => "VALIDATION_ERROR",
            StoreError::LimitExceeded { .. } => "RATE_LIMITED",
            StoreError::NotFound { .. } | StoreError::SubscriptionNotFound { .. } => "NOT_FOUND",
            StoreError::Conflict { .. } => "CONFLICT",
            StoreError::QueryNotDefined { .. } => "QUERY_NOT_DEFINED",
            StoreError::Internal { .. } => "INTERNAL_ERROR",
        }
    }

    pub(crate) fn invalid_arg(message: impl Into<String>) -> Self {
        StoreError::InvalidArgument {
            message: message.into(),
        }
    }

    pub(crate) fn invalid_def(message: impl Into<String>) -> Self {
        StoreError::InvalidDefinition {
            message: message.into(),
        }
    }
}

/// Shorthand for results of store operations.
pub type StoreResult<T> = Result<T, StoreError>;
