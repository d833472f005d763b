//! Typed shapes of the definitions clients send to admin operations: bucket definitions with
//! their field schemas, declarative queries, and bucket updates (docs/reference/store.md "Buckets and
//! schemas" and "Queries").
//!
//! Operations carry these as raw JSON (the store validates them and reports every issue
//! precisely); these types give Rust and TypeScript clients a typed way to write them, and the
//! TypeScript bindings of `store.defineBucket` / `store.defineQuery` / `store.updateBucket`
//! refer to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

/// A bucket definition: `{key, schema, indexes?, ttl?, maxSize?, persistent?}`.
///
/// ```
/// use noex_protocol::{BucketConfig, FieldDef, FieldType, Generated, StringFormat};
/// let users = BucketConfig::new("id")
///     .field("id", FieldDef::new(FieldType::String).generated(Generated::Uuid))
///     .field("email", FieldDef::new(FieldType::String).required().unique().format(StringFormat::Email));
/// let json = serde_json::to_value(&users).unwrap();
/// assert_eq!(json["schema"]["email"]["unique"], true);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct BucketConfig {
    /// The field holding each record's key.
    pub key: String,
    /// Field name → definition.
    pub schema: BTreeMap<String, FieldDef>,
    /// Fields with a secondary index (fast equality filters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub indexes: Option<Vec<String>>,
    /// Record lifetime: ms, or `"30s"`, `"15m"`, `"1h"`, `"7d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ttl: Option<Ttl>,
    /// Most records kept; inserting past it evicts the oldest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub max_size: Option<u64>,
    /// `false` keeps the bucket out of durable storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub persistent: Option<bool>,
}

impl BucketConfig {
    /// A bucket keyed by `key` with an empty schema.
    pub fn new(key: impl Into<String>) -> Self {
        BucketConfig {
            key: key.into(),
            schema: BTreeMap::new(),
            indexes: None,
            ttl: None,
            max_size: None,
            persistent: None,
        }
    }

    /// Adds a field.
    pub fn field(mut self, name: impl Into<String>, def: FieldDef) -> Self {
        self.schema.insert(name.into(), def);
        self
    }

    /// Adds a secondary index.
    pub fn index(mut self, field: impl Into<String>) -> Self {
        self.indexes.get_or_insert_with(Vec::new).push(field.into());
        self
    }
}

/// A TTL: milliseconds or a duration string such as `"15m"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum Ttl {
    /// Milliseconds.
    Ms(u64),
    /// `"30s"`, `"15m"`, `"1h"`, `"7d"`.
    Text(String),
}

/// A field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A string.
    String,
    /// A number.
    Number,
    /// A boolean.
    Boolean,
    /// An object (see `properties`).
    Object,
    /// An array (see `items`).
    Array,
    /// An ISO-8601 date string.
    Date,
}

/// Values the store can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Generated {
    /// A random UUID v4 string.
    Uuid,
    /// A collision-resistant id string.
    Cuid,
    /// 1, 2, 3, ... per bucket.
    Autoincrement,
    /// The insert time, ms since the Unix epoch.
    Timestamp,
}

/// String formats the store checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub enum StringFormat {
    /// An e-mail address.
    #[serde(rename = "email")]
    Email,
    /// A URL.
    #[serde(rename = "url")]
    Url,
    /// An ISO-8601 date.
    #[serde(rename = "iso-date")]
    IsoDate,
}

/// One field of a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FieldDef {
    /// The value's type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Must be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub required: Option<bool>,
    /// Value used when the field is absent on insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub default: Option<Value>,
    /// A value the store generates when the field is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub generated: Option<Generated>,
    /// No two records share a (non-null) value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub unique: Option<bool>,
    /// Allowed values.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    #[ts(optional, rename = "enum")]
    pub allowed: Option<Vec<Value>>,
    /// A string format to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub format: Option<StringFormat>,
    /// Smallest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub min: Option<f64>,
    /// Largest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub max: Option<f64>,
    /// Shortest string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub min_length: Option<u64>,
    /// Longest string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub max_length: Option<u64>,
    /// Regular expression a string must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub pattern: Option<String>,
    /// Name of a referenced bucket (metadata).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    #[ts(optional, rename = "ref")]
    pub reference: Option<String>,
    /// Nested schema of an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub properties: Option<BTreeMap<String, FieldDef>>,
    /// Definition of an array's elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub items: Option<Box<FieldDef>>,
}

impl FieldDef {
    /// A field of `field_type` with no other options.
    pub fn new(field_type: FieldType) -> Self {
        FieldDef {
            field_type,
            required: None,
            default: None,
            generated: None,
            unique: None,
            allowed: None,
            format: None,
            min: None,
            max: None,
            min_length: None,
            max_length: None,
            pattern: None,
            reference: None,
            properties: None,
            items: None,
        }
    }

    /// Marks the field required.
    pub fn required(mut self) -> Self {
        self.required = Some(true);
        self
    }

    /// Marks the field unique.
    pub fn unique(mut self) -> Self {
        self.unique = Some(true);
        self
    }

    /// Generates the value when absent.
    pub fn generated(mut self, kind: Generated) -> Self {
        self.generated = Some(kind);
        self
    }

    /// Requires a string format.
    pub fn format(mut self, format: StringFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets the default value.
    pub fn default_value(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Aggregate function of a declarative query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum AggregateFunction {
    /// Number of records.
    Count,
    /// Sum of `field`.
    Sum,
    /// Mean of `field`.
    Avg,
    /// Minimum of `field`.
    Min,
    /// Maximum of `field`.
    Max,
}

/// `aggregate: {function, field?, groupBy?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    /// The function.
    pub function: AggregateFunction,
    /// The field it reads (all but `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
    /// Group by one field or several; the result is `[{key, value}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub group_by: Option<GroupBy>,
}

/// One field or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum GroupBy {
    /// One field.
    One(String),
    /// Several fields.
    Many(Vec<String>),
}

/// A declarative query: `{bucket, filter?, sort?, limit?, offset?, fields?, aggregate?}`.
/// Filter values of the form `"{{ params.x }}"` are replaced by subscription parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct QueryConfig {
    /// The bucket queried.
    pub bucket: String,
    /// Filter (see docs/reference/store.md, "Filters").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, as = "Option<BTreeMap<String, Value>>")]
    pub filter: Option<serde_json::Map<String, Value>>,
    /// Field → direction; null/absent values sort last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub sort: Option<BTreeMap<String, SortOrder>>,
    /// Most records returned (after `offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u64>,
    /// Records skipped first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub offset: Option<u64>,
    /// Projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub fields: Option<Vec<String>>,
    /// Aggregate instead of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub aggregate: Option<Aggregate>,
}

/// `store.updateBucket`'s `updates`: `{addFields?, addIndexes?, ttl?}` (`ttl: null` removes it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct BucketUpdates {
    /// New fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub add_fields: Option<BTreeMap<String, FieldDef>>,
    /// New indexes on existing fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub add_indexes: Option<Vec<String>>,
    /// New TTL; `Some(None)` (`ttl: null`) removes it, `None` leaves it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    #[ts(optional)]
    pub ttl: Option<Option<Ttl>>,
}

/// Deserializes a field that is present (possibly `null`) as `Some(..)`; with
/// `#[serde(default)]` an absent field stays `None`.
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
