//! noex-model: the vocabulary every other noex crate shares, defined once.
//!
//! It sits below `noex-protocol`, `noex-store` and `noex-rules` (and depends on none of
//! them): what a bucket, a field, a query, a TTL, a duration, a validation issue, a topic
//! pattern and the clock *are*. The protocol re-exports what the wire carries; the store and
//! the rule engine use the same types, so they cannot drift apart.
//!
//! - [`definition`]: bucket, field, query and bucket-update definitions, listed queries.
//! - [`ttl`]: the one duration parser (a bare number is milliseconds) and [`Ttl`].
//! - [`issue`]: a record's schema issue and a rule definition's issue.
//! - [`stats`]: the `store.stats` figures.
//! - [`rule`]: rule summaries and fact entries as the engine lists them.
//! - [`json`]: numeric-aware equality, type names, bounded JSON size, the memory estimate.
//!
//! With the `ts` feature every wire type also derives `ts_rs::TS` (the protocol's
//! TypeScript bindings); Rust names that differ from the wire's carry a `ts(rename)`.

pub mod clock;
pub mod definition;
pub mod issue;
pub mod json;
pub mod pattern;
pub mod rule;
pub mod stats;
pub mod ttl;

pub use definition::{
    Aggregate, AggregateFunction, BucketDefinition, BucketUpdate, FieldDef, FieldType, Generated,
    GroupBy, InvalidDefinition, QueryDefinition, SortOrder, StringFormat,
};
pub use issue::{RuleValidationIssue, ValidationIssue};
pub use ttl::{DurationError, MAX_DURATION_MS, Ttl, parse_duration_ms};
