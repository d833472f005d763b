//! Results of `store.*` operations and the `details` of store errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

/// The metadata the server adds to every stored record, next to the bucket's own fields
/// (a record on the wire is the bucket's fields plus these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RecordMeta {
    /// 1 on insert, +1 per update.
    #[serde(rename = "_version")]
    pub version: u64,
    /// Insert time, ms since the Unix epoch.
    #[serde(rename = "_createdAt")]
    pub created_at: u64,
    /// Last update time, ms since the Unix epoch.
    #[serde(rename = "_updatedAt")]
    pub updated_at: u64,
    /// Expiry time on TTL buckets, ms since the Unix epoch.
    #[serde(
        rename = "_expiresAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional)]
    pub expires_at: Option<u64>,
}

/// `store.delete` → `{deleted: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Deleted {
    /// Always `true`: deleting an absent key also succeeds.
    pub deleted: bool,
}

/// `store.clear` → `{cleared: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Cleared {
    /// Always `true`.
    pub cleared: bool,
}

/// `store.unsubscribe` / `rules.unsubscribe` → `{unsubscribed: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Unsubscribed {
    /// Always `true`.
    pub unsubscribed: bool,
}

/// `store.paginate` → `{records, hasMore, nextCursor?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PaginateResult {
    /// The page.
    pub records: Vec<Value>,
    /// Whether more records follow.
    pub has_more: bool,
    /// Key of the page's last record; present only when `hasMore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub next_cursor: Option<Value>,
}

/// `store.subscribe` → `{subscriptionId, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeResult {
    /// Server-assigned id (`sub-N`), echoed in every push.
    pub subscription_id: String,
    /// The query's initial result.
    pub data: Value,
}

/// One entry of a transaction result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct TransactionOpResult {
    /// Position of the operation in the request.
    pub index: u32,
    /// What the operation returned.
    pub data: Value,
}

/// `store.transaction` → `{results: [{index, data}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct TransactionResult {
    /// One entry per operation, in order.
    pub results: Vec<TransactionOpResult>,
}

/// One group of a `store.groupBy` result (the same shape as the groups of a declarative
/// query's grouped aggregate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct GroupByEntry {
    /// The group's value of each grouping field (`null` where a record has none).
    #[ts(type = "Record<string, JsonValue>")]
    pub key: serde_json::Map<String, Value>,
    /// The aggregate over the group's records: a number, or `null` for `min`/`max` of a
    /// group without numeric values.
    pub value: Value,
}

/// `details` of an error of `store.insertMany` / `store.updateMany` / `store.deleteMany`
/// caused by one record: its position, and the details the same error has on a single
/// write (`issues` of a `VALIDATION_ERROR`; `bucket`, `field`, `value` of an
/// `ALREADY_EXISTS`; `limit` of a size limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct BulkErrorDetails {
    /// Position of the record in `data` (`insertMany`) or among the matched records in
    /// insertion order (`updateMany`, `deleteMany`).
    pub index: u32,
    /// Key of the matched record (`updateMany`, `deleteMany`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub key: Option<Value>,
    /// The schema issues of a `VALIDATION_ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub issues: Option<Vec<ValidationIssue>>,
    /// Bucket of an `ALREADY_EXISTS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub bucket: Option<String>,
    /// Unique (or key) field of an `ALREADY_EXISTS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
    /// Colliding value of an `ALREADY_EXISTS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub value: Option<Value>,
    /// The limit passed, of a size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u64>,
}

/// The store statistics (defined in `noex-model`, shared with the store).
pub use noex_model::stats::{
    BucketList, IndexStats, PersistenceStats, QueryStats, RecordStats, StoreStats, TtlStats,
};

/// `store.defineBucket` → `{name, created: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct BucketDefined {
    /// Bucket name.
    pub name: String,
    /// Always `true`.
    pub created: bool,
}

/// `store.dropBucket` → `{name, dropped: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct BucketDropped {
    /// Bucket name.
    pub name: String,
    /// Always `true`.
    pub dropped: bool,
}

/// `store.updateBucket` → `{name, updated: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct BucketUpdated {
    /// Bucket name.
    pub name: String,
    /// Always `true`.
    pub updated: bool,
}

/// `store.getBucketSchema` → `{name, config}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct BucketSchema {
    /// Bucket name.
    pub name: String,
    /// The bucket definition.
    pub config: Value,
}

/// `store.defineQuery` → `{name, defined: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct QueryDefined {
    /// Query name.
    pub name: String,
    /// Always `true`.
    pub defined: bool,
}

/// `store.undefineQuery` → `{name, undefined: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct QueryUndefined {
    /// Query name.
    pub name: String,
    /// Always `true`.
    pub undefined: bool,
}

/// A listed query and its kind (defined in `noex-model`, shared with the store).
pub use noex_model::definition::{QueryInfo, QueryKind};

/// `store.listQueries` → `{queries}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct QueryList {
    /// Every defined query.
    pub queries: Vec<QueryInfo>,
}

/// One schema-validation issue (defined in `noex-model`, shared with the store).
pub use noex_model::ValidationIssue;

/// `details` of an `ALREADY_EXISTS` caused by a unique constraint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct UniqueViolationDetails {
    /// Bucket name.
    pub bucket: String,
    /// The unique field.
    pub field: String,
    /// The colliding value.
    pub value: Value,
}

/// `details` of a `CONFLICT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ConflictDetails {
    /// Bucket name.
    pub bucket: String,
    /// Key of the record changed meanwhile.
    pub key: Value,
}

/// `details` of a `RATE_LIMITED` caused by the request rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitDetails {
    /// How long to wait before the next request is accepted.
    pub retry_after_ms: u64,
}
