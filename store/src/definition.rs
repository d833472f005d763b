//! Wire-shaped definitions: buckets, fields, TTLs, bucket updates and declarative queries.
//! They deserialize from exactly the protocol's camelCase JSON and serialize back to it.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{StoreError, StoreResult};

/// Field type of a schema entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// JSON string.
    String,
    /// JSON number.
    Number,
    /// JSON boolean.
    Boolean,
    /// JSON object.
    Object,
    /// JSON array.
    Array,
    /// ISO-8601 date string.
    Date,
}

/// How a field's value is generated when absent on insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generated {
    /// Random UUID v4 string.
    Uuid,
    /// Collision-resistant id string (`c` + base36 time, counter, random).
    Cuid,
    /// Per-bucket counter starting at 1.
    Autoincrement,
    /// Current time in ms since epoch.
    Timestamp,
}

/// String formats checked by `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// An e-mail address.
    #[serde(rename = "email")]
    Email,
    /// An http(s) URL.
    #[serde(rename = "url")]
    Url,
    /// An ISO-8601 date or date-time.
    #[serde(rename = "iso-date")]
    IsoDate,
}

/// One field of a bucket schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDef {
    /// Value type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Must be present (non-null) after defaults and generation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// Static default for absent fields on insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Generated value for absent fields on insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
    /// No two records share a (non-null) value.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// Allowed values.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<Value>>,
    /// String format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Minimum number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Maximum number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Minimum string length (characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    /// Maximum string length (characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Regular expression strings must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Name of a referenced bucket (metadata only).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Nested schema for objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
    /// Element definition for arrays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<FieldDef>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl FieldDef {
    /// A plain field of the given type.
    pub fn of(field_type: FieldType) -> Self {
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
}

/// Time-to-live: milliseconds or a string like `"30s"`, `"15m"`, `"1h"`, `"7d"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ttl {
    /// Milliseconds.
    Ms(u64),
    /// Text form (`500ms`, `30s`, `15m`, `1h`, `7d`).
    Text(String),
}

impl Ttl {
    /// The TTL in milliseconds, or an `InvalidDefinition` for a malformed text.
    pub fn as_ms(&self) -> StoreResult<u64> {
        let ms = match self {
            Ttl::Ms(ms) => *ms,
            Ttl::Text(text) => {
                let t = text.trim();
                let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                let (num, unit) = t.split_at(split);
                let n: u64 = num
                    .parse()
                    .map_err(|_| StoreError::invalid_def(format!("invalid ttl \"{text}\"")))?;
                let mult = match unit {
                    "ms" => 1,
                    "s" | "" => 1_000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    _ => return Err(StoreError::invalid_def(format!("invalid ttl \"{text}\""))),
                };
                n.checked_mul(mult)
                    .ok_or_else(|| StoreError::invalid_def(format!("invalid ttl \"{text}\"")))?
            }
        };
        if ms == 0 {
            return Err(StoreError::invalid_def("ttl must be positive"));
        }
        Ok(ms)
    }
}

/// A bucket definition as sent by `store.defineBucket`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketDefinition {
    /// Name of the key field.
    pub key: String,
    /// Field definitions (raw JSON objects, compiled by the store).
    pub schema: Map<String, Value>,
    /// Fields with an equality index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<String>,
    /// Record lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Ttl>,
    /// Maximum number of records; older ones are evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<usize>,
    /// Whether the bucket is persisted (when persistence is enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
}

impl BucketDefinition {
    /// Parses the wire JSON; malformed input is an `InvalidDefinition`.
    pub fn from_json(value: Value) -> StoreResult<Self> {
        serde_json::from_value(value).map_err(|e| StoreError::invalid_def(e.to_string()))
    }
}

/// `store.updateBucket` changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketUpdate {
    /// New fields (must not exist yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_fields: Option<Map<String, Value>>,
    /// New indexes (fields must exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_indexes: Option<Vec<String>>,
    /// `Some(None)` removes the TTL, `Some(Some(t))` sets it, `None` leaves it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Option<Ttl>>,
}

fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Ttl>>, D::Error> {
    Option::<Ttl>::deserialize(d).map(Some)
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateFn {
    /// Number of records.
    Count,
    /// Sum of numbers.
    Sum,
    /// Average of numbers (0 when none).
    Avg,
    /// Smallest number (null when none).
    Min,
    /// Largest number (null when none).
    Max,
}

/// `groupBy`: one field or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GroupBy {
    /// One field.
    One(String),
    /// Several fields.
    Many(Vec<String>),
}

impl GroupBy {
    /// The grouping fields.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            GroupBy::One(f) => vec![f.as_str()],
            GroupBy::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Aggregate clause of a declarative query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Aggregate {
    /// Function to apply.
    pub function: AggregateFn,
    /// Field aggregated (not needed for `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Grouping fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
}

/// A declarative query as sent by `store.defineQuery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryDefinition {
    /// Bucket queried.
    pub bucket: String,
    /// Filter, possibly with `{{ params.x }}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Map<String, Value>>,
    /// Sort keys in priority order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<Map<String, Value>>,
    /// Maximum number of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Records skipped before `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Aggregate instead of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
}

impl QueryDefinition {
    /// Parses the wire JSON; malformed input is an `InvalidDefinition`.
    pub fn from_json(value: Value) -> StoreResult<Self> {
        serde_json::from_value(value).map_err(|e| StoreError::invalid_def(e.to_string()))
    }

    /// Checks sort directions and aggregate fields.
    pub(crate) fn check(&self) -> StoreResult<()> {
        if let Some(sort) = &self.sort {
            for (field, dir) in sort {
                if serde_json::from_value::<SortDir>(dir.clone()).is_err() {
                    return Err(StoreError::invalid_def(format!(
                        "sort direction of \"{field}\" must be \"asc\" or \"desc\""
                    )));
                }
            }
        }
        if let Some(agg) = &self.aggregate {
            if agg.function != AggregateFn::Count && agg.field.is_none() {
                return Err(StoreError::invalid_def("aggregate needs a field"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_forms() {
        let ms = |t: Ttl| t.as_ms();
        assert_eq!(ms(Ttl::Ms(1500)), Ok(1500));
        assert_eq!(ms(Ttl::Text("500ms".into())), Ok(500));
        assert_eq!(ms(Ttl::Text("30s".into())), Ok(30_000));
        assert_eq!(ms(Ttl::Text("15m".into())), Ok(900_000));
        assert_eq!(ms(Ttl::Text("1h".into())), Ok(3_600_000));
        assert_eq!(ms(Ttl::Text("7d".into())), Ok(604_800_000));
        for bad in ["", "h", "1w", "-1s", "99999999999999999999d"] {
            assert!(ms(Ttl::Text(bad.into())).is_err(), "{bad}");
        }
        assert!(ms(Ttl::Ms(0)).is_err());
    }

    #[test]
    fn update_ttl_null_means_remove() {
        let u: BucketUpdate = serde_json::from_str(r#"{"ttl": null}"#).unwrap();
        assert_eq!(u.ttl, Some(None));
        let u: BucketUpdate = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.ttl, None);
        let u: BucketUpdate = serde_json::from_str(r#"{"ttl": "1h"}"#).unwrap();
        assert_eq!(u.ttl, Some(Some(Ttl::Text("1h".into()))));
    }

    #[test]
    fn query_definition_round_trip() {
        let v = serde_json::json!({"bucket": "b", "filter": {"a": 1}, "sort": {"a": "desc", "b": "asc"},
            "limit": 5, "offset": 1, "fields": ["a"], "aggregate": {"function": "sum", "field": "a", "groupBy": ["c"]}});
        let q = QueryDefinition::from_json(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&q).unwrap(), v);
    }
}
