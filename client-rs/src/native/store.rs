//! Typed store API: [`Store`] (subscriptions, transactions, admin) and [`Bucket`] (CRUD
//! and queries returning `T`).

use std::marker::PhantomData;

use noex_protocol::payloads::{
    BucketDefined, BucketDropped, BucketList, BucketSchema, BucketUpdated, GroupByEntry,
    QueryDefined, QueryList, QueryUndefined, StoreStats, TransactionResult,
};
use noex_protocol::{
    AggregateFunction, GroupAggregate, GroupBy, JsonObject, Operation, StoreOp, TransactionOp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Client, Page, Subscription};
use crate::ClientError;
use crate::core::SubscriptionTarget;

/// The `store.*` namespace.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
/// let names = client.store().buckets().await?.names;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
}

fn object(value: impl Serialize) -> Result<JsonObject, ClientError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ClientError::Decode("expected a JSON object".into())),
        Err(e) => Err(ClientError::Decode(e.to_string())),
    }
}

impl Store {
    pub(crate) fn new(client: Client) -> Self {
        Store { client }
    }

    async fn call<R: DeserializeOwned>(&self, op: StoreOp) -> Result<R, ClientError> {
        self.client.call(Operation::Store(op)).await
    }

    /// A typed handle on one bucket.
    ///
    /// ```no_run
    /// # fn demo(client: noex_client::Client) {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { name: String }
    /// let users = client.store().bucket::<User>("users");
    /// # }
    /// ```
    pub fn bucket<T>(&self, name: &str) -> Bucket<T> {
        Bucket {
            client: self.client.clone(),
            name: name.to_owned(),
            _marker: PhantomData,
        }
    }

    /// Subscribes to a defined query; the stream's first item is the initial result.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let sub = client.store().subscribe::<u64>("user-count", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe<T: DeserializeOwned>(
        &self,
        query: &str,
        params: Option<Value>,
    ) -> Result<Subscription<T>, ClientError> {
        let target = SubscriptionTarget::Store {
            query: query.to_owned(),
            params,
        };
        Ok(Subscription::open(&self.client, target, true).await?.0)
    }

    /// Runs operations atomically.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_protocol::TransactionOp;
    /// let r = client.store().transaction(vec![TransactionOp::Get { bucket: "users".into(), key: "a".into() }]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction(
        &self,
        operations: Vec<TransactionOp>,
    ) -> Result<TransactionResult, ClientError> {
        self.call(StoreOp::Transaction { operations }).await
    }

    /// Bucket names (`store.buckets`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// let list = store.buckets().await?;
    /// # Ok(()) }
    /// ```
    pub async fn buckets(&self) -> Result<BucketList, ClientError> {
        self.call(StoreOp::Buckets).await
    }

    /// Store statistics (`store.stats`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// let stats = store.stats().await?;
    /// println!("{} records", stats.records.total);
    /// # Ok(()) }
    /// ```
    pub async fn stats(&self) -> Result<StoreStats, ClientError> {
        self.call(StoreOp::Stats).await
    }

    /// Defines a bucket (admin); `config` is the bucket config object.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// store.define_bucket("users", serde_json::json!({"key": "id", "schema": {}})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn define_bucket(
        &self,
        name: &str,
        config: impl Serialize,
    ) -> Result<BucketDefined, ClientError> {
        let config = object(config)?;
        self.call(StoreOp::DefineBucket {
            name: name.to_owned(),
            config,
        })
        .await
    }

    /// Drops a bucket (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// store.drop_bucket("users").await?;
    /// # Ok(()) }
    /// ```
    pub async fn drop_bucket(&self, name: &str) -> Result<BucketDropped, ClientError> {
        self.call(StoreOp::DropBucket {
            name: name.to_owned(),
        })
        .await
    }

    /// Updates a bucket's config (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// store.update_bucket("users", serde_json::json!({"addFields": {}})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_bucket(
        &self,
        name: &str,
        updates: impl Serialize,
    ) -> Result<BucketUpdated, ClientError> {
        let updates = object(updates)?;
        self.call(StoreOp::UpdateBucket {
            name: name.to_owned(),
            updates,
        })
        .await
    }

    /// A bucket's schema (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// let schema = store.bucket_schema("users").await?;
    /// # Ok(()) }
    /// ```
    pub async fn bucket_schema(&self, name: &str) -> Result<BucketSchema, ClientError> {
        self.call(StoreOp::GetBucketSchema {
            name: name.to_owned(),
        })
        .await
    }

    /// Defines a named query (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// store.define_query("all-users", serde_json::json!({"bucket": "users"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn define_query(
        &self,
        name: &str,
        config: impl Serialize,
    ) -> Result<QueryDefined, ClientError> {
        let config = object(config)?;
        self.call(StoreOp::DefineQuery {
            name: name.to_owned(),
            config,
        })
        .await
    }

    /// Removes a named query (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// store.undefine_query("all-users").await?;
    /// # Ok(()) }
    /// ```
    pub async fn undefine_query(&self, name: &str) -> Result<QueryUndefined, ClientError> {
        self.call(StoreOp::UndefineQuery {
            name: name.to_owned(),
        })
        .await
    }

    /// Lists named queries (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let store = client.store();
    /// let queries = store.list_queries().await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_queries(&self) -> Result<QueryList, ClientError> {
        self.call(StoreOp::ListQueries).await
    }
}

/// A typed bucket: results decode into `T` (use [`Record<T>`] to keep the metadata).
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
/// use noex_client::Record;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { id: String, name: String }
/// let users = client.store().bucket::<Record<User>>("users");
/// let alice = users.insert(serde_json::json!({"name": "Alice"})).await?;
/// let again = users.get(&alice.data.id).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Bucket<T> {
    client: Client,
    name: String,
    _marker: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Bucket<T> {
    async fn call<R: DeserializeOwned>(&self, op: StoreOp) -> Result<R, ClientError> {
        self.client.call(Operation::Store(op)).await
    }

    fn b(&self) -> String {
        self.name.clone()
    }

    /// The bucket name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Inserts a record (any serializable object) and returns it as stored.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let alice = users.insert(serde_json::json!({"name": "Alice"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert(&self, data: impl Serialize) -> Result<T, ClientError> {
        let data = object(data)?;
        self.call(StoreOp::Insert {
            bucket: self.b(),
            data,
        })
        .await
    }

    /// Reads a record by key; `None` when absent.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let maybe = users.get("a1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: impl Serialize) -> Result<Option<T>, ClientError> {
        let key = serde_json::to_value(key).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(StoreOp::Get {
            bucket: self.b(),
            key,
        })
        .await
    }

    /// Merges fields into a record and returns it.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let updated = users.update("a1", serde_json::json!({"name": "Al"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        key: impl Serialize,
        data: impl Serialize,
    ) -> Result<T, ClientError> {
        let key = serde_json::to_value(key).map_err(|e| ClientError::Decode(e.to_string()))?;
        let data = object(data)?;
        self.call(StoreOp::Update {
            bucket: self.b(),
            key,
            data,
        })
        .await
    }

    /// Deletes a record; `true` also when it did not exist (`{deleted: true}`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let deleted = users.delete("a1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: impl Serialize) -> Result<bool, ClientError> {
        let key = serde_json::to_value(key).map_err(|e| ClientError::Decode(e.to_string()))?;
        let v: Value = self
            .call(StoreOp::Delete {
                bucket: self.b(),
                key,
            })
            .await?;
        Ok(v.get("deleted").and_then(Value::as_bool).unwrap_or(false))
    }

    /// Every record in insertion order.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let everyone = users.all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn all(&self) -> Result<Vec<T>, ClientError> {
        self.call(StoreOp::All { bucket: self.b() }).await
    }

    /// Records matching a filter (`store.where`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let admins = users.find(serde_json::json!({"role": "admin"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn find(&self, filter: impl Serialize) -> Result<Vec<T>, ClientError> {
        let filter = object(filter)?;
        self.call(StoreOp::Where {
            bucket: self.b(),
            filter,
        })
        .await
    }

    /// The first record matching a filter.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let one = users.find_one(serde_json::json!({"role": "admin"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn find_one(&self, filter: impl Serialize) -> Result<Option<T>, ClientError> {
        let filter = object(filter)?;
        self.call(StoreOp::FindOne {
            bucket: self.b(),
            filter,
        })
        .await
    }

    /// Number of records (matching `filter`, when given).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let n = users.count(None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn count(&self, filter: Option<JsonObject>) -> Result<u64, ClientError> {
        self.call(StoreOp::Count {
            bucket: self.b(),
            filter,
        })
        .await
    }

    /// The first `n` records.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let oldest = users.first(3).await?;
    /// # Ok(()) }
    /// ```
    pub async fn first(&self, n: u64) -> Result<Vec<T>, ClientError> {
        self.call(StoreOp::First {
            bucket: self.b(),
            n,
        })
        .await
    }

    /// The last `n` records.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let newest = users.last(3).await?;
    /// # Ok(()) }
    /// ```
    pub async fn last(&self, n: u64) -> Result<Vec<T>, ClientError> {
        self.call(StoreOp::Last {
            bucket: self.b(),
            n,
        })
        .await
    }

    /// One page of records after the cursor `after`.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let page = users.paginate(10, None).await?;
    /// let next = users.paginate(10, page.next_cursor).await?;
    /// # Ok(()) }
    /// ```
    pub async fn paginate(&self, limit: u64, after: Option<Value>) -> Result<Page<T>, ClientError> {
        self.call(StoreOp::Paginate {
            bucket: self.b(),
            limit,
            after,
        })
        .await
    }

    /// Sum of a numeric field.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let total = users.sum("age", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn sum(&self, field: &str, filter: Option<JsonObject>) -> Result<f64, ClientError> {
        self.call(StoreOp::Sum {
            bucket: self.b(),
            field: field.to_owned(),
            filter,
        })
        .await
    }

    /// Average of a numeric field (0 when nothing matches).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let mean = users.avg("age", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn avg(&self, field: &str, filter: Option<JsonObject>) -> Result<f64, ClientError> {
        self.call(StoreOp::Avg {
            bucket: self.b(),
            field: field.to_owned(),
            filter,
        })
        .await
    }

    /// Smallest value of a numeric field (`None` when nothing matches).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let youngest = users.min("age", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn min(
        &self,
        field: &str,
        filter: Option<JsonObject>,
    ) -> Result<Option<f64>, ClientError> {
        self.call(StoreOp::Min {
            bucket: self.b(),
            field: field.to_owned(),
            filter,
        })
        .await
    }

    /// Largest value of a numeric field (`None` when nothing matches).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let oldest = users.max("age", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn max(
        &self,
        field: &str,
        filter: Option<JsonObject>,
    ) -> Result<Option<f64>, ClientError> {
        self.call(StoreOp::Max {
            bucket: self.b(),
            field: field.to_owned(),
            filter,
        })
        .await
    }

    /// Inserts several records in one commit and returns them as stored, in order. All or
    /// nothing: the first record that fails fails the call (its position is the error's
    /// `details.index`) and nothing is written. At most the server's
    /// `limits.maxBulkRecords` (1 000 by default) records.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let both = users
    ///     .insert_many([serde_json::json!({"name": "Ann"}), serde_json::json!({"name": "Bob"})])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert_many<D: Serialize>(
        &self,
        data: impl IntoIterator<Item = D>,
    ) -> Result<Vec<T>, ClientError> {
        let data = data.into_iter().map(object).collect::<Result<_, _>>()?;
        self.call(StoreOp::InsertMany {
            bucket: self.b(),
            data,
        })
        .await
    }

    /// Merges `data` into every record matching `filter` (`{}` matches all) in one commit;
    /// returns how many were updated. All or nothing, at most `limits.maxBulkRecords`
    /// matches.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let n = users
    ///     .update_many(serde_json::json!({"role": "guest"}), serde_json::json!({"role": "user"}))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_many(
        &self,
        filter: impl Serialize,
        data: impl Serialize,
    ) -> Result<u64, ClientError> {
        let filter = object(filter)?;
        let data = object(data)?;
        self.call(StoreOp::UpdateMany {
            bucket: self.b(),
            filter,
            data,
        })
        .await
    }

    /// Deletes every record matching `filter` (`{}` matches all) in one commit; returns how
    /// many were deleted. At most `limits.maxBulkRecords` matches.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let n = users.delete_many(serde_json::json!({"role": "guest"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_many(&self, filter: impl Serialize) -> Result<u64, ClientError> {
        let filter = object(filter)?;
        self.call(StoreOp::DeleteMany {
            bucket: self.b(),
            filter,
        })
        .await
    }

    /// Inserts a record, or merges its fields into the record with its key when one
    /// exists; returns it as stored.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let ann = users.upsert(serde_json::json!({"id": "a1", "name": "Ann"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn upsert(&self, data: impl Serialize) -> Result<T, ClientError> {
        let data = object(data)?;
        self.call(StoreOp::Upsert {
            bucket: self.b(),
            data,
        })
        .await
    }

    /// One aggregate per group of records with equal values of `fields` (one field or
    /// several), over the records matching `filter`: `[{key, value}]`, groups in order of
    /// their first record. `field` is the field `function` reads (all but `count`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_client::protocol::AggregateFunction;
    /// let orders = client.store().bucket::<serde_json::Value>("orders");
    /// let totals = orders
    ///     .group_by(&["status"], AggregateFunction::Sum, Some("total"), None)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn group_by(
        &self,
        fields: &[&str],
        function: AggregateFunction,
        field: Option<&str>,
        filter: Option<JsonObject>,
    ) -> Result<Vec<GroupByEntry>, ClientError> {
        let group = match fields {
            [one] => GroupBy::One((*one).to_owned()),
            many => GroupBy::Many(many.iter().map(|f| (*f).to_owned()).collect()),
        };
        self.call(StoreOp::GroupBy {
            bucket: self.b(),
            field: group,
            aggregate: GroupAggregate {
                function,
                field: field.map(str::to_owned),
            },
            filter,
        })
        .await
    }

    /// Removes every record.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let users = client.store().bucket::<serde_json::Value>("users");
    /// let cleared = users.clear().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<bool, ClientError> {
        let v: Value = self.call(StoreOp::Clear { bucket: self.b() }).await?;
        Ok(v.get("cleared").and_then(Value::as_bool).unwrap_or(false))
    }
}
