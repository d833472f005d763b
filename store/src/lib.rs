//! noex-store: the embedded reactive store (see `docs/reference/store.md` in the repository).
//!
//! - [`Store`]: buckets ([`Store::define_bucket`]), per-bucket handles ([`Store::bucket`]),
//!   queries ([`Store::define_query`], [`Store::define_programmatic_query`]),
//!   subscriptions ([`Store::subscribe`], [`Store::settle`]), transactions
//!   ([`Store::transaction`]), the change feed ([`Store::on_change`],
//!   [`Store::change_feed`]), TTL ([`Store::purge_ttl`]) and [`Store::stats`].
//! - The data API is synchronous and in-memory; a dispatcher thread re-evaluates affected
//!   queries and notifies subscribers (ending a subscription whose re-evaluation fails, see
//!   [`Store::subscribe_with`]), and a sweep task removes expired records.
//! - Bounds for untrusted callers: [`StoreConfig::max_result_bytes`],
//!   [`StoreConfig::max_record_bytes`], [`StoreConfig::max_store_bytes`],
//!   [`StoreConfig::max_buckets`], [`StoreConfig::max_queries`]; query parameters are bound
//!   as values ([`Filter::compile_with_params`]); a time budget per read on the calling
//!   thread ([`with_read_deadline`]).
//! - Optional durable storage ([`StoreConfig::persistence`], [`PersistenceConfig`]) on the
//!   embedded engine redb, with sync or batched durability; [`defer_durability`] lets an
//!   async caller await a sync write's fsync instead of blocking its thread.
//! - Errors are [`StoreError`] values, each mapping to one protocol code.

mod bucket;
mod data;
mod deadline;
mod definition;
mod error;
mod events;
mod filter;
mod handle;
mod persistence;
mod priority;
mod query;
mod reactive;
mod reads;
mod registry;
mod schema;
mod start;
mod stats;
mod store;
mod transaction;
mod ttl;
mod value;

pub use deadline::with_read_deadline;
pub use definition::{
    Aggregate, AggregateFunction, BucketDefinition, BucketUpdate, FieldDef, FieldType, Generated,
    GroupBy, QueryDefinition, SortOrder, StringFormat, Ttl,
};
pub use error::{StoreError, StoreResult};
pub use events::{ChangeEvent, ChangeHandler, ChangeKind};
pub use filter::{FILTER_OPERATORS, Filter, interpolate};
pub use handle::BucketHandle;
pub use noex_model::ValidationIssue;
pub use noex_model::clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use noex_model::definition::InvalidDefinition;
pub use noex_model::definition::QueryKind;
pub use noex_model::pattern::topic_matches;
pub use persistence::{
    CommitObserver, DEFAULT_FILE_NAME, Durability, DurabilityMode, PersistenceConfig,
    defer_durability,
};
pub use query::{BucketReader, QueryContext, QueryFn, QueryResult};
pub use reactive::QueryInfo;
pub use reads::Page;
pub use registry::{SubscriptionCallback, SubscriptionId};
pub use stats::{
    BucketList, IndexStats, PersistenceStats, QueryStats, RecordStats, StoreStats, TtlStats,
};
pub use store::{
    DEFAULT_MAX_BUCKETS, DEFAULT_MAX_EVALUATION_TIME, DEFAULT_MAX_QUERIES,
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_STORE_BYTES, Store,
    StoreConfig,
};
pub use transaction::{Transaction, TxBucket};
pub use value::Record;
pub use value::{json_size_within, memory_size};
