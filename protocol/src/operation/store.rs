//! `store.*` operations (docs/reference/protocol.md, "Store operations") and the operations of a `store.transaction`.

use serde::Serialize;
use serde_json::{Map, Value};
use ts_rs::TS;

use crate::fields::Fields;

/// A JSON object: record data, filters.
pub type JsonObject = Map<String, Value>;

/// The aggregate of `store.groupBy`: `{function, field?}` (`field` for all but `count`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct GroupAggregate {
    /// `count`, `sum`, `avg`, `min` or `max`.
    pub function: noex_model::definition::AggregateFunction,
    /// The field the function reads (all but `count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
}

impl GroupAggregate {
    fn parse(value: JsonObject) -> Result<GroupAggregate, String> {
        let function = value
            .get("function")
            .cloned()
            .and_then(|f| serde_json::from_value(f).ok())
            .ok_or_else(|| {
                "Missing or invalid \"aggregate.function\": expected one of count, sum, avg, min, max"
                    .to_owned()
            })?;
        let field = match value.get("field") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                return Err("Invalid \"aggregate.field\": expected non-empty string".to_owned());
            }
        };
        Ok(GroupAggregate { function, field })
    }
}

/// Every `store.*` operation with its fields.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum StoreOp {
    /// Insert a record; returns it with generated fields and metadata.
    #[serde(rename = "store.insert")]
    Insert {
        /// Bucket name.
        bucket: String,
        /// The record's fields.
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
    /// Read one record by key; `null` when absent.
    #[serde(rename = "store.get")]
    Get {
        /// Bucket name.
        bucket: String,
        /// The record key.
        key: Value,
    },
    /// Merge fields into a record.
    #[serde(rename = "store.update")]
    Update {
        /// Bucket name.
        bucket: String,
        /// The record key.
        key: Value,
        /// Fields to merge.
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
    /// Delete a record (also succeeds when it does not exist).
    #[serde(rename = "store.delete")]
    Delete {
        /// Bucket name.
        bucket: String,
        /// The record key.
        key: Value,
    },
    /// Every record in insertion order.
    #[serde(rename = "store.all")]
    All {
        /// Bucket name.
        bucket: String,
    },
    /// Records matching a filter.
    #[serde(rename = "store.where")]
    Where {
        /// Bucket name.
        bucket: String,
        /// The filter.
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
    },
    /// First record matching a filter, or `null`.
    #[serde(rename = "store.findOne")]
    FindOne {
        /// Bucket name.
        bucket: String,
        /// The filter.
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
    },
    /// Number of records (matching the optional filter).
    #[serde(rename = "store.count")]
    Count {
        /// Bucket name.
        bucket: String,
        /// Optional filter.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, JsonValue>")]
        filter: Option<JsonObject>,
    },
    /// The first `n` records by insertion order.
    #[serde(rename = "store.first")]
    First {
        /// Bucket name.
        bucket: String,
        /// How many.
        n: u64,
    },
    /// The last `n` records by insertion order.
    #[serde(rename = "store.last")]
    Last {
        /// Bucket name.
        bucket: String,
        /// How many.
        n: u64,
    },
    /// One page of records in insertion order.
    #[serde(rename = "store.paginate")]
    Paginate {
        /// Bucket name.
        bucket: String,
        /// Page size.
        limit: u64,
        /// Key of the last record of the previous page.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        after: Option<Value>,
    },
    /// Sum of a numeric field.
    #[serde(rename = "store.sum")]
    Sum {
        /// Bucket name.
        bucket: String,
        /// Field to sum.
        field: String,
        /// Optional filter.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, JsonValue>")]
        filter: Option<JsonObject>,
    },
    /// Average of a numeric field (0 for none).
    #[serde(rename = "store.avg")]
    Avg {
        /// Bucket name.
        bucket: String,
        /// Field to average.
        field: String,
        /// Optional filter.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, JsonValue>")]
        filter: Option<JsonObject>,
    },
    /// Minimum of a numeric field, or `null`.
    #[serde(rename = "store.min")]
    Min {
        /// Bucket name.
        bucket: String,
        /// Field.
        field: String,
        /// Optional filter.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, JsonValue>")]
        filter: Option<JsonObject>,
    },
    /// Maximum of a numeric field, or `null`.
    #[serde(rename = "store.max")]
    Max {
        /// Bucket name.
        bucket: String,
        /// Field.
        field: String,
        /// Optional filter.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, JsonValue>")]
        filter: Option<JsonObject>,
    },
    /// Insert several records in one commit, all or none; returns them in order.
    #[serde(rename = "store.insertMany")]
    InsertMany {
        /// Bucket name.
        bucket: String,
        /// The records' fields, in order.
        #[ts(type = "Array<Record<string, JsonValue>>")]
        data: Vec<JsonObject>,
    },
    /// Merge the same fields into every record matching a filter, in one commit; returns
    /// how many were updated.
    #[serde(rename = "store.updateMany")]
    UpdateMany {
        /// Bucket name.
        bucket: String,
        /// The filter (`{}` matches every record).
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
        /// Fields to merge.
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
    /// Delete every record matching a filter, in one commit; returns how many were deleted.
    #[serde(rename = "store.deleteMany")]
    DeleteMany {
        /// Bucket name.
        bucket: String,
        /// The filter (`{}` matches every record).
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
    },
    /// Insert a record, or merge its fields into the record with its key when one exists.
    #[serde(rename = "store.upsert")]
    Upsert {
        /// Bucket name.
        bucket: String,
        /// The record's fields (with its key to update an existing record).
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
    /// An aggregate per group of records with equal values of `field`: `[{key, value}]`.
    #[serde(rename = "store.groupBy")]
    GroupBy {
        /// Bucket name.
        bucket: String,
        /// The grouping field, or several.
        field: noex_model::definition::GroupBy,
        /// The aggregate computed per group.
        aggregate: GroupAggregate,
        /// Optional filter.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, JsonValue>")]
        filter: Option<JsonObject>,
    },
    /// Delete every record of a bucket.
    #[serde(rename = "store.clear")]
    Clear {
        /// Bucket name.
        bucket: String,
    },
    /// `{count, names}` of the defined buckets.
    #[serde(rename = "store.buckets")]
    Buckets,
    /// Store statistics.
    #[serde(rename = "store.stats")]
    Stats,
    /// Subscribe to a defined query.
    #[serde(rename = "store.subscribe")]
    Subscribe {
        /// Query name.
        query: String,
        /// Query parameters: an object (anything else is a `VALIDATION_ERROR`).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        params: Option<Value>,
    },
    /// End a store subscription.
    #[serde(rename = "store.unsubscribe")]
    Unsubscribe {
        /// The id returned by `store.subscribe`.
        subscription_id: String,
    },
    /// Several operations, all or nothing.
    #[serde(rename = "store.transaction")]
    Transaction {
        /// The operations, in order.
        operations: Vec<TransactionOp>,
    },
    /// Define a bucket (admin).
    #[serde(rename = "store.defineBucket")]
    DefineBucket {
        /// Bucket name.
        name: String,
        /// The bucket definition `{key, schema, indexes?, ttl?, maxSize?, persistent?}`.
        #[ts(as = "crate::BucketConfig")]
        config: JsonObject,
    },
    /// Drop a bucket and its records (admin).
    #[serde(rename = "store.dropBucket")]
    DropBucket {
        /// Bucket name.
        name: String,
    },
    /// Change a bucket's definition (admin).
    #[serde(rename = "store.updateBucket")]
    UpdateBucket {
        /// Bucket name.
        name: String,
        /// `{addFields?, addIndexes?, ttl?}`.
        #[ts(as = "crate::BucketUpdates")]
        updates: JsonObject,
    },
    /// A bucket's definition (admin).
    #[serde(rename = "store.getBucketSchema")]
    GetBucketSchema {
        /// Bucket name.
        name: String,
    },
    /// Define a declarative query (admin).
    #[serde(rename = "store.defineQuery")]
    DefineQuery {
        /// Query name.
        name: String,
        /// `{bucket, filter?, sort?, limit?, offset?, fields?, aggregate?}`.
        #[ts(as = "crate::QueryConfig")]
        config: JsonObject,
    },
    /// Remove a query (admin).
    #[serde(rename = "store.undefineQuery")]
    UndefineQuery {
        /// Query name.
        name: String,
    },
    /// Every defined query (admin).
    #[serde(rename = "store.listQueries")]
    ListQueries,
}

/// One operation inside `store.transaction`, discriminated by `op`.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum TransactionOp {
    /// Read a record.
    Get {
        /// Bucket name.
        bucket: String,
        /// Record key.
        key: Value,
    },
    /// Insert a record.
    Insert {
        /// Bucket name.
        bucket: String,
        /// Record fields.
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
    /// Merge fields into a record.
    Update {
        /// Bucket name.
        bucket: String,
        /// Record key.
        key: Value,
        /// Fields to merge.
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
    /// Delete a record.
    Delete {
        /// Bucket name.
        bucket: String,
        /// Record key.
        key: Value,
    },
    /// Records matching a filter.
    Where {
        /// Bucket name.
        bucket: String,
        /// The filter.
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
    },
    /// First match or `null`.
    FindOne {
        /// Bucket name.
        bucket: String,
        /// The filter.
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
    },
    /// Number of matches.
    Count {
        /// Bucket name.
        bucket: String,
        /// Optional filter.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "Record<string, JsonValue>")]
        filter: Option<JsonObject>,
    },
    /// Insert several records (as `store.insertMany`); the result is the inserted records.
    /// The records of all bulk entries of one transaction count against
    /// `limits.maxBulkRecords` together.
    InsertMany {
        /// Bucket name.
        bucket: String,
        /// The records' fields, in order.
        #[ts(type = "Array<Record<string, JsonValue>>")]
        data: Vec<JsonObject>,
    },
    /// Merge fields into every record matching a filter (as `store.updateMany`); the
    /// result is how many were updated.
    UpdateMany {
        /// Bucket name.
        bucket: String,
        /// The filter (`{}` matches every record).
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
        /// Fields to merge into each.
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
    /// Delete every record matching a filter (as `store.deleteMany`); the result is how
    /// many were deleted.
    DeleteMany {
        /// Bucket name.
        bucket: String,
        /// The filter (`{}` matches every record).
        #[ts(type = "Record<string, JsonValue>")]
        filter: JsonObject,
    },
    /// Insert a record, or merge into the record with its key (as `store.upsert`); the
    /// result is the record.
    Upsert {
        /// Bucket name.
        bucket: String,
        /// The record's fields (with its key to update an existing record).
        #[ts(type = "Record<string, JsonValue>")]
        data: JsonObject,
    },
}

impl TransactionOp {
    /// The bucket this operation touches.
    pub fn bucket(&self) -> &str {
        match self {
            TransactionOp::Get { bucket, .. }
            | TransactionOp::Insert { bucket, .. }
            | TransactionOp::Update { bucket, .. }
            | TransactionOp::Delete { bucket, .. }
            | TransactionOp::Where { bucket, .. }
            | TransactionOp::FindOne { bucket, .. }
            | TransactionOp::Count { bucket, .. }
            | TransactionOp::InsertMany { bucket, .. }
            | TransactionOp::UpdateMany { bucket, .. }
            | TransactionOp::DeleteMany { bucket, .. }
            | TransactionOp::Upsert { bucket, .. } => bucket,
        }
    }

    fn parse(index: usize, value: Value) -> Result<TransactionOp, String> {
        let prefix = format!("operations[{index}]: ");
        let Value::Object(map) = value else {
            return Err(format!("{prefix}expected object"));
        };
        let op = match map.get("op") {
            Some(Value::String(op)) => op.clone(),
            _ => String::new(),
        };
        let f = Fields::owned(map, prefix.clone());
        Ok(match op.as_str() {
            "get" => TransactionOp::Get {
                bucket: f.string("bucket")?,
                key: f.non_null("key")?,
            },
            "insert" => TransactionOp::Insert {
                bucket: f.string("bucket")?,
                data: f.object("data")?,
            },
            "update" => TransactionOp::Update {
                bucket: f.string("bucket")?,
                key: f.non_null("key")?,
                data: f.object("data")?,
            },
            "delete" => TransactionOp::Delete {
                bucket: f.string("bucket")?,
                key: f.non_null("key")?,
            },
            "where" => TransactionOp::Where {
                bucket: f.string("bucket")?,
                filter: f.object("filter")?,
            },
            "findOne" => TransactionOp::FindOne {
                bucket: f.string("bucket")?,
                filter: f.object("filter")?,
            },
            "count" => TransactionOp::Count {
                bucket: f.string("bucket")?,
                filter: f.opt_object("filter")?,
            },
            "insertMany" => TransactionOp::InsertMany {
                bucket: f.string("bucket")?,
                data: f.object_array("data")?,
            },
            "updateMany" => TransactionOp::UpdateMany {
                bucket: f.string("bucket")?,
                filter: f.object("filter")?,
                data: f.object("data")?,
            },
            "deleteMany" => TransactionOp::DeleteMany {
                bucket: f.string("bucket")?,
                filter: f.object("filter")?,
            },
            "upsert" => TransactionOp::Upsert {
                bucket: f.string("bucket")?,
                data: f.object("data")?,
            },
            _ => {
                return Err(format!(
                    "{prefix}Missing or invalid \"op\": expected one of get, insert, update, delete, where, findOne, count, insertMany, updateMany, deleteMany, upsert"
                ));
            }
        })
    }
}

impl StoreOp {
    /// Parses the fields of a `store.*` request; `None` when `op_type` is not a store operation.
    pub(crate) fn parse(op_type: &str, f: &Fields<'_>) -> Option<Result<StoreOp, String>> {
        let parsed = (|| {
            Ok(match op_type {
                "store.insert" => StoreOp::Insert {
                    bucket: f.string("bucket")?,
                    data: f.object("data")?,
                },
                "store.get" => StoreOp::Get {
                    bucket: f.string("bucket")?,
                    key: f.non_null("key")?,
                },
                "store.update" => StoreOp::Update {
                    bucket: f.string("bucket")?,
                    key: f.non_null("key")?,
                    data: f.object("data")?,
                },
                "store.delete" => StoreOp::Delete {
                    bucket: f.string("bucket")?,
                    key: f.non_null("key")?,
                },
                "store.all" => StoreOp::All {
                    bucket: f.string("bucket")?,
                },
                "store.where" => StoreOp::Where {
                    bucket: f.string("bucket")?,
                    filter: f.object("filter")?,
                },
                "store.findOne" => StoreOp::FindOne {
                    bucket: f.string("bucket")?,
                    filter: f.object("filter")?,
                },
                "store.count" => StoreOp::Count {
                    bucket: f.string("bucket")?,
                    filter: f.opt_object("filter")?,
                },
                "store.first" => StoreOp::First {
                    bucket: f.string("bucket")?,
                    n: f.positive_int("n")?,
                },
                "store.last" => StoreOp::Last {
                    bucket: f.string("bucket")?,
                    n: f.positive_int("n")?,
                },
                "store.paginate" => StoreOp::Paginate {
                    bucket: f.string("bucket")?,
                    limit: f.positive_int("limit")?,
                    after: f.opt_any("after"),
                },
                "store.sum" | "store.avg" | "store.min" | "store.max" => {
                    let bucket = f.string("bucket")?;
                    let field = f.string("field")?;
                    let filter = f.opt_object("filter")?;
                    match op_type {
                        "store.sum" => StoreOp::Sum {
                            bucket,
                            field,
                            filter,
                        },
                        "store.avg" => StoreOp::Avg {
                            bucket,
                            field,
                            filter,
                        },
                        "store.min" => StoreOp::Min {
                            bucket,
                            field,
                            filter,
                        },
                        _ => StoreOp::Max {
                            bucket,
                            field,
                            filter,
                        },
                    }
                }
                "store.insertMany" => StoreOp::InsertMany {
                    bucket: f.string("bucket")?,
                    data: f.object_array("data")?,
                },
                "store.updateMany" => StoreOp::UpdateMany {
                    bucket: f.string("bucket")?,
                    filter: f.object("filter")?,
                    data: f.object("data")?,
                },
                "store.deleteMany" => StoreOp::DeleteMany {
                    bucket: f.string("bucket")?,
                    filter: f.object("filter")?,
                },
                "store.upsert" => StoreOp::Upsert {
                    bucket: f.string("bucket")?,
                    data: f.object("data")?,
                },
                "store.groupBy" => StoreOp::GroupBy {
                    bucket: f.string("bucket")?,
                    field: f.field_names("field")?,
                    aggregate: GroupAggregate::parse(f.object("aggregate")?)?,
                    filter: f.opt_object("filter")?,
                },
                "store.clear" => StoreOp::Clear {
                    bucket: f.string("bucket")?,
                },
                "store.buckets" => StoreOp::Buckets,
                "store.stats" => StoreOp::Stats,
                "store.subscribe" => StoreOp::Subscribe {
                    query: f.string("query")?,
                    params: f.opt_object("params")?.map(Value::Object),
                },
                "store.unsubscribe" => StoreOp::Unsubscribe {
                    subscription_id: f.string("subscriptionId")?,
                },
                "store.transaction" => StoreOp::Transaction {
                    operations: f
                        .non_empty_array("operations")?
                        .into_iter()
                        .enumerate()
                        .map(|(i, op)| TransactionOp::parse(i, op))
                        .collect::<Result<_, _>>()?,
                },
                "store.defineBucket" => StoreOp::DefineBucket {
                    name: f.string("name")?,
                    config: f.object("config")?,
                },
                "store.dropBucket" => StoreOp::DropBucket {
                    name: f.string("name")?,
                },
                "store.updateBucket" => StoreOp::UpdateBucket {
                    name: f.string("name")?,
                    updates: f.object("updates")?,
                },
                "store.getBucketSchema" => StoreOp::GetBucketSchema {
                    name: f.string("name")?,
                },
                "store.defineQuery" => StoreOp::DefineQuery {
                    name: f.string("name")?,
                    config: f.object("config")?,
                },
                "store.undefineQuery" => StoreOp::UndefineQuery {
                    name: f.string("name")?,
                },
                "store.listQueries" => StoreOp::ListQueries,
                _ => return Err(None),
            })
        })();
        super::known_or_none(parsed)
    }
}

impl StoreOp {
    /// The operation's wire `type`.
    pub fn op_type(&self) -> &'static str {
        match self {
            StoreOp::Insert { .. } => "store.insert",
            StoreOp::Get { .. } => "store.get",
            StoreOp::Update { .. } => "store.update",
            StoreOp::Delete { .. } => "store.delete",
            StoreOp::All { .. } => "store.all",
            StoreOp::Where { .. } => "store.where",
            StoreOp::FindOne { .. } => "store.findOne",
            StoreOp::Count { .. } => "store.count",
            StoreOp::First { .. } => "store.first",
            StoreOp::Last { .. } => "store.last",
            StoreOp::Paginate { .. } => "store.paginate",
            StoreOp::Sum { .. } => "store.sum",
            StoreOp::Avg { .. } => "store.avg",
            StoreOp::Min { .. } => "store.min",
            StoreOp::Max { .. } => "store.max",
            StoreOp::InsertMany { .. } => "store.insertMany",
            StoreOp::UpdateMany { .. } => "store.updateMany",
            StoreOp::DeleteMany { .. } => "store.deleteMany",
            StoreOp::Upsert { .. } => "store.upsert",
            StoreOp::GroupBy { .. } => "store.groupBy",
            StoreOp::Clear { .. } => "store.clear",
            StoreOp::Buckets => "store.buckets",
            StoreOp::Stats => "store.stats",
            StoreOp::Subscribe { .. } => "store.subscribe",
            StoreOp::Unsubscribe { .. } => "store.unsubscribe",
            StoreOp::Transaction { .. } => "store.transaction",
            StoreOp::DefineBucket { .. } => "store.defineBucket",
            StoreOp::DropBucket { .. } => "store.dropBucket",
            StoreOp::UpdateBucket { .. } => "store.updateBucket",
            StoreOp::GetBucketSchema { .. } => "store.getBucketSchema",
            StoreOp::DefineQuery { .. } => "store.defineQuery",
            StoreOp::UndefineQuery { .. } => "store.undefineQuery",
            StoreOp::ListQueries => "store.listQueries",
        }
    }
}
