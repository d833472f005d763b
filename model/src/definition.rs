//! The definitions clients send to admin operations and the store keeps: bucket definitions
//! with their field schemas, bucket updates and declarative queries (docs/reference/store.md
//! "Buckets and schemas" and "Queries"). One type per concept: the protocol re-exports them
//! for the wire (and their TypeScript bindings), the store validates and keeps them.
//!
//! A schema (and an object's `properties`, and an update's `addFields`) is kept as the JSON
//! object the client sent, in the client's order, so the store can compile it field by field
//! and name the exact path of a bad field; [`FieldDef`] is the typed form of one entry. Its
//! TypeScript type is still `{ [key in string]: FieldDef }`.

#[cfg(feature = "ts")]
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::ttl::Ttl;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "BucketConfig"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketDefinition {
    /// The field holding each record's key.
    pub key: String,
    /// Field name → definition.
    #[cfg_attr(feature = "ts", ts(as = "BTreeMap<String, FieldDef>"))]
    pub schema: Map<String, Value>,
    /// Fields with a secondary index (fast equality filters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(optional, as = "Option<Vec<String>>"))]
    pub indexes: Vec<String>,
    /// Record lifetime: ms, or `"30s"`, `"15m"`, `"1h"`, `"7d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub ttl: Option<Ttl>,
    /// Most records kept; inserting past it evicts the oldest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub max_size: Option<usize>,
    /// `false` keeps the bucket out of durable storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub persistent: Option<bool>,
}

impl BucketDefinition {
    /// A bucket keyed by `key` with an empty schema.
    pub fn new(key: impl Into<String>) -> Self {
        BucketDefinition {
            key: key.into(),
            schema: Map::new(),
            indexes: Vec::new(),
            ttl: None,
            max_size: None,
            persistent: None,
        }
    }

    /// Adds a field.
    pub fn field(mut self, name: impl Into<String>, def: FieldDef) -> Self {
        self.schema.insert(name.into(), def.to_json());
        self
    }

    /// Adds a secondary index.
    pub fn index(mut self, field: impl Into<String>) -> Self {
        self.indexes.push(field.into());
        self
    }

    /// The typed definition of the schema field `name`, or `None` when there is no such
    /// field or its JSON is not a valid [`FieldDef`].
    pub fn field_def(&self, name: &str) -> Option<FieldDef> {
        FieldDef::deserialize(self.schema.get(name)?).ok()
    }

    /// Parses a definition from its wire JSON (unknown members are an error).
    pub fn from_json(value: Value) -> Result<Self, InvalidDefinition> {
        serde_json::from_value(value).map_err(|e| InvalidDefinition(e.to_string()))
    }
}

/// A definition that does not have the wire shape: the reason, as serde tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDefinition(pub String);

impl std::fmt::Display for InvalidDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidDefinition {}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDef {
    /// The value's type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Must be present.
    #[serde(default, skip_serializing_if = "is_false")]
    #[cfg_attr(feature = "ts", ts(optional, as = "Option<bool>"))]
    pub required: bool,
    /// Value used when the field is absent on insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub default: Option<Value>,
    /// A value the store generates when the field is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub generated: Option<Generated>,
    /// No two records share a (non-null) value.
    #[serde(default, skip_serializing_if = "is_false")]
    #[cfg_attr(feature = "ts", ts(optional, as = "Option<bool>"))]
    pub unique: bool,
    /// Allowed values.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, rename = "enum"))]
    pub enum_values: Option<Vec<Value>>,
    /// A string format to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub format: Option<StringFormat>,
    /// Smallest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub min: Option<f64>,
    /// Largest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub max: Option<f64>,
    /// Shortest string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub min_length: Option<usize>,
    /// Longest string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub max_length: Option<usize>,
    /// Regular expression a string must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub pattern: Option<String>,
    /// Name of a referenced bucket (metadata).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, rename = "ref"))]
    pub reference: Option<String>,
    /// Nested schema of an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "ts",
        ts(optional, as = "Option<BTreeMap<String, FieldDef>>")
    )]
    pub properties: Option<Map<String, Value>>,
    /// Definition of an array's elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub items: Option<Box<FieldDef>>,
}

impl FieldDef {
    /// A field of `field_type` with no other options.
    pub fn new(field_type: FieldType) -> Self {
        FieldDef {
            field_type,
            required: false,
            default: None,
            generated: None,
            unique: false,
            enum_values: None,
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
        self.required = true;
        self
    }

    /// Marks the field unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
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

    /// The wire JSON of this field.
    pub fn to_json(&self) -> Value {
        // A FieldDef has string keys and finite-or-null numbers only, so this cannot fail;
        // `Null` keeps the builder total should serde ever disagree.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Aggregate function of a declarative query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Aggregate {
    /// The function.
    pub function: AggregateFunction,
    /// The field it reads (all but `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub field: Option<String>,
    /// Group by one field or several; the result is `[{key, value}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub group_by: Option<GroupBy>,
}

/// One field or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged)]
pub enum GroupBy {
    /// One field.
    One(String),
    /// Several fields.
    Many(Vec<String>),
}

impl GroupBy {
    /// The grouping fields, in order.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            GroupBy::One(f) => vec![f.as_str()],
            GroupBy::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A declarative query: `{bucket, filter?, sort?, limit?, offset?, fields?, aggregate?}`.
/// Filter values of the form `"{{ params.x }}"` are replaced by subscription parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "QueryConfig"))]
#[serde(deny_unknown_fields)]
pub struct QueryDefinition {
    /// The bucket queried.
    pub bucket: String,
    /// Filter (see docs/reference/store.md, "Filters").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, as = "Option<BTreeMap<String, Value>>"))]
    pub filter: Option<Map<String, Value>>,
    /// Field → direction; null/absent values sort last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "ts",
        ts(optional, as = "Option<BTreeMap<String, SortOrder>>")
    )]
    pub sort: Option<Map<String, Value>>,
    /// Most records returned (after `offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub limit: Option<usize>,
    /// Records skipped first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub offset: Option<usize>,
    /// Projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub fields: Option<Vec<String>>,
    /// Aggregate instead of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub aggregate: Option<Aggregate>,
}

impl QueryDefinition {
    /// Parses a query from its wire JSON (unknown members are an error).
    pub fn from_json(value: Value) -> Result<Self, InvalidDefinition> {
        serde_json::from_value(value).map_err(|e| InvalidDefinition(e.to_string()))
    }
}

/// How a query was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum QueryKind {
    /// A Rust function registered by the embedder.
    Programmatic,
    /// A JSON definition (config file or `store.defineQuery`).
    Declarative,
}

/// One entry of `store.listQueries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct QueryInfo {
    /// Query name.
    pub name: String,
    /// Programmatic or declarative.
    #[serde(rename = "type")]
    pub kind: QueryKind,
    /// The definition, for declarative queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, as = "Option<Value>"))]
    pub config: Option<QueryDefinition>,
    /// Subscriptions currently open on it.
    pub active_subscriptions: u64,
}

/// `store.updateBucket`'s `updates`: `{addFields?, addIndexes?, ttl?}` (`ttl: null` removes it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "BucketUpdates"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketUpdate {
    /// New fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "ts",
        ts(optional, as = "Option<BTreeMap<String, FieldDef>>")
    )]
    pub add_fields: Option<Map<String, Value>>,
    /// New indexes on existing fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub add_indexes: Option<Vec<String>>,
    /// New TTL; `Some(None)` (`ttl: null`) removes it, `None` leaves it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    #[cfg_attr(feature = "ts", ts(optional))]
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
