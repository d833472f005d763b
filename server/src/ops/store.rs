//! The `store.*` operations: each typed [`StoreOp`] becomes one call on the embedded
//! [`Store`] (its errors become protocol errors in `crate::error`). Heavy reads — scans of
//! large buckets, big transactions, the first evaluation of a subscription — run on the
//! blocking pool under a heavy-read permit and the `maxReadMs` budget; `store.subscribe`
//! connects a store subscription to the connection's outbound queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use noex_protocol::payloads::{
    BucketDefined, BucketDropped, BucketList, BucketSchema, BucketUpdated, Cleared, Deleted,
    PaginateResult, QueryDefined, QueryUndefined, TransactionOpResult, TransactionResult,
    Unsubscribed,
};
use std::borrow::Cow;

use noex_protocol::{ErrorCode, Operation, PushChannel, PushFrame, StoreOp, Tier, TransactionOp};
use noex_store::{
    BucketDefinition, BucketUpdate, QueryDefinition, QueryResult, Record, Store, StoreError,
    StoreStats, Transaction, json_size_within,
};
use serde_json::{Map, Value, json};

use crate::access::Resolver;
use crate::config::LimitsConfig;
use crate::error::ServerError;
use crate::ops::{Subscriptions, to_json};
use crate::outbound::PushKind;
use crate::permissions::{Authority, Item, Need};
use crate::subscriptions::SubKind;

/// What the `store.*` operations need: the store, the limits, the heavy-read permits, who
/// asks, and the connection's subscriptions.
pub(crate) struct StoreContext<'a> {
    /// The embedded store.
    pub(crate) store: &'a Store,
    /// The config's `limits` section.
    pub(crate) limits: &'a LimitsConfig,
    /// Slots for heavy reads on the blocking pool, one turn per client.
    pub(crate) heavy_reads: &'a crate::heavy::HeavySlots,
    /// Who this connection's heavy reads are charged to.
    pub(crate) principal: crate::heavy::Principal,
    /// Memory the results of all store subscriptions of the server hold.
    pub(crate) server_held_results: &'a Arc<AtomicUsize>,
    /// What permission checks know of the store and the engine.
    pub(crate) resolver: Resolver<'a>,
    /// The session's rights (`None`: everything is visible).
    pub(crate) authority: Option<&'a Authority<'a>>,
    /// The connection's subscriptions.
    pub(crate) subscriptions: Subscriptions<'a>,
}

/// Answers one `store.*` request. A read that may scan a large bucket (by records or by
/// bytes) and a transaction with heavy reads or many operations run on the blocking pool,
/// at most `heavy_reads` at once, each within `limits.maxReadMs`.
pub(crate) async fn handle(ctx: StoreContext<'_>, op: StoreOp) -> Result<Value, ServerError> {
    check_filters(&op, ctx.limits.max_filter_nodes)?;
    // Estimated cost, not only bucket size: a long filter on a small bucket is as
    // heavy as a short one on a large bucket.
    // And the bytes scanned: text conditions cost time per byte of each record.
    let heavy = scan_cost(ctx.store, &op) > INLINE_SCAN_MAX_RECORDS
        || scanned_bytes(ctx.store, &op) > INLINE_SCAN_MAX_BYTES;
    if let StoreOp::Transaction { operations } = op {
        let limits = *ctx.limits;
        // Bulk entries weigh what they may write (an insertMany of 500 is no cheap op).
        let weight = operations.len().saturating_add(transaction_bulk_records(
            ctx.store,
            &operations,
            limits.max_bulk_records,
        ));
        if !heavy && weight <= INLINE_TRANSACTION_MAX_OPS {
            // Estimated cheap; the read budget is the backstop if the estimate errs.
            return durably(|| {
                noex_store::with_read_deadline(limits.read_budget(), || {
                    transaction(
                        ctx.store,
                        operations,
                        limits.max_transaction_ops,
                        limits.max_result_bytes,
                        limits.max_transaction_scan_cost,
                        limits.max_bulk_records,
                    )
                })
            })
            .await;
        }
        // A transaction with heavy reads or many operations runs on the blocking
        // pool, holding a heavy-read permit, like a heavy read.
        let store = ctx.store.clone();
        let permit = ctx.heavy_reads.acquire(ctx.principal.clone()).await;
        return tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Within `maxReadMs`, or rolled back, so the slot comes back.
            noex_store::with_read_deadline(limits.read_budget(), || {
                transaction(
                    &store,
                    operations,
                    limits.max_transaction_ops,
                    limits.max_result_bytes,
                    limits.max_transaction_scan_cost,
                    limits.max_bulk_records,
                )
            })
        })
        .await
        .unwrap_or_else(|err| Err(ServerError::internal(err)));
    }
    if let Some(records) = bulk_records(ctx.store, &op, ctx.limits.max_bulk_records) {
        let limits = *ctx.limits;
        if !heavy && records <= INLINE_TRANSACTION_MAX_OPS {
            // Estimated cheap; the read budget bounds the scan of a filter if it errs.
            return durably(|| {
                noex_store::with_read_deadline(limits.read_budget(), || {
                    bulk_write(ctx.store, op, limits.max_bulk_records)
                })
            })
            .await;
        }
        // Many records, or a filter scanning a large bucket: on the blocking pool under a
        // heavy-read permit, as a heavy transaction.
        let store = ctx.store.clone();
        let permit = ctx.heavy_reads.acquire(ctx.principal.clone()).await;
        return tokio::task::spawn_blocking(move || {
            let _permit = permit;
            noex_store::with_read_deadline(limits.read_budget(), || {
                bulk_write(&store, op, limits.max_bulk_records)
            })
        })
        .await
        .unwrap_or_else(|err| Err(ServerError::internal(err)));
    }
    if heavy && scanned_bucket(&op).is_some() {
        // A scan of a large bucket runs on the blocking pool, so that the runtime's
        // workers keep serving other connections meanwhile.
        // At most `heavy_reads` of them at once, one per client.
        let store = ctx.store.clone();
        let budget = ctx.limits.read_budget();
        let permit = ctx.heavy_reads.acquire(ctx.principal.clone()).await;
        return tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Within `maxReadMs`, so the slot comes back to the next heavy read.
            noex_store::with_read_deadline(budget, || read(&store, op))
        })
        .await
        .unwrap_or_else(|err| Err(ServerError::internal(err)));
    }
    if let StoreOp::Subscribe { query, params } = op {
        return subscribe(ctx, query, params).await;
    }
    // Estimated cheap; the read budget is the backstop if the estimate errs.
    let budget = ctx.limits.read_budget();
    durably(|| noex_store::with_read_deadline(budget, || answer(ctx, op))).await
}

/// Runs `f` (store calls) on this runtime worker without blocking it for the disk: with
/// sync durability, its writes are applied and queued inside `f` and their fsync is
/// awaited here, so the worker serves other connections meanwhile (the writer thread
/// groups the fsyncs of every write queued at once). The answer goes out only after its
/// writes are durable; if the disk failed, the answer is that error.
pub(crate) async fn durably<T>(
    f: impl FnOnce() -> Result<T, ServerError>,
) -> Result<T, ServerError> {
    let (answer, durability) = noex_store::defer_durability(f);
    if durability.is_pending() {
        durability.wait().await?;
    }
    answer
}

/// Answers a `store.*` request on the runtime worker. Listings (`store.buckets`,
/// `store.stats`, `store.listQueries`) hold only what the authority may see (everything
/// without one).
fn answer(ctx: StoreContext<'_>, op: StoreOp) -> Result<Value, ServerError> {
    let store = ctx.store;
    let authority = ctx.authority;
    match op {
        StoreOp::Insert { bucket, data } => Ok(Value::Object(store.bucket(&bucket).insert(data)?)),
        StoreOp::Get { bucket, key } => Ok(one(store.bucket(&bucket).get(&key)?)),
        StoreOp::Update { bucket, key, data } => {
            Ok(Value::Object(store.bucket(&bucket).update(&key, data)?))
        }
        StoreOp::Delete { bucket, key } => {
            store.bucket(&bucket).delete(&key)?;
            to_json(Deleted { deleted: true })
        }
        op @ (StoreOp::All { .. }
        | StoreOp::Where { .. }
        | StoreOp::FindOne { .. }
        | StoreOp::Count { .. }
        | StoreOp::First { .. }
        | StoreOp::Last { .. }
        | StoreOp::Paginate { .. }
        | StoreOp::Sum { .. }
        | StoreOp::Avg { .. }
        | StoreOp::Min { .. }
        | StoreOp::Max { .. }
        | StoreOp::GroupBy { .. }) => read(store, op),
        op @ (StoreOp::InsertMany { .. }
        | StoreOp::UpdateMany { .. }
        | StoreOp::DeleteMany { .. }
        | StoreOp::Upsert { .. }) => bulk_write(store, op, ctx.limits.max_bulk_records),
        StoreOp::Clear { bucket } => {
            store.bucket(&bucket).clear()?;
            to_json(Cleared { cleared: true })
        }
        StoreOp::Buckets => {
            let mut names = store.bucket_names();
            names.retain(|name| sees_bucket(authority, "store.buckets", name));
            to_json(BucketList {
                count: names.len() as u64,
                names,
            })
        }
        StoreOp::Stats => to_json(visible_stats(store, authority, "store.stats")),
        // Answered by `subscribe` (async) in `handle`; kept here for completeness.
        StoreOp::Subscribe { .. } => Err(ServerError::internal(
            "store.subscribe is answered by ops::store::subscribe",
        )),
        StoreOp::Unsubscribe { subscription_id } => {
            let subs = ctx.subscriptions;
            subs.subscriptions
                .remove(&subscription_id, SubKind::Store, subs.registration)?;
            to_json(Unsubscribed { unsubscribed: true })
        }
        StoreOp::Transaction { operations } => {
            let limits = ctx.limits;
            transaction(
                store,
                operations,
                limits.max_transaction_ops,
                limits.max_result_bytes,
                limits.max_transaction_scan_cost,
                limits.max_bulk_records,
            )
        }
        StoreOp::DefineBucket { name, config } => {
            store.define_bucket(&name, BucketDefinition::from_json(Value::Object(config))?)?;
            to_json(BucketDefined {
                name,
                created: true,
            })
        }
        StoreOp::DropBucket { name } => {
            store.drop_bucket(&name)?;
            to_json(BucketDropped {
                name,
                dropped: true,
            })
        }
        StoreOp::UpdateBucket { name, updates } => {
            let update: BucketUpdate =
                serde_json::from_value(Value::Object(updates)).map_err(|e| {
                    ServerError::new(
                        ErrorCode::ValidationError,
                        format!("Invalid \"updates\": {e}"),
                    )
                })?;
            store.update_bucket(&name, update)?;
            to_json(BucketUpdated {
                name,
                updated: true,
            })
        }
        StoreOp::GetBucketSchema { name } => {
            let config = to_json(store.bucket_schema(&name)?)?;
            to_json(BucketSchema { name, config })
        }
        StoreOp::DefineQuery { name, config } => {
            store.define_query(&name, QueryDefinition::from_json(Value::Object(config))?)?;
            to_json(QueryDefined {
                name,
                defined: true,
            })
        }
        StoreOp::UndefineQuery { name } => {
            store.undefine_query(&name)?;
            to_json(QueryUndefined {
                name,
                undefined: true,
            })
        }
        StoreOp::ListQueries => {
            let mut queries = store.list_queries();
            if let Some(authority) = authority {
                let resolver = ctx.resolver;
                queries.retain(|q| {
                    authority.allows(&Need {
                        op: "store.listQueries",
                        tier: Tier::Admin,
                        resource: Cow::Borrowed(q.name.as_str()),
                        items: vec![resolver.query_item(&q.name)],
                    })
                });
            }
            to_json(json!({ "queries": queries }))
        }
    }
}

/// Buckets with more records than this are scanned off the runtime's worker threads (a
/// scan of this many records takes well under a millisecond; handing it to the blocking
/// pool costs more than that saves).
const INLINE_SCAN_MAX_RECORDS: usize = 4096;

/// Reads whose scanned record bytes times filter nodes ([`scanned_bytes`]) pass this run
/// off the runtime's worker threads too, whatever their record count: text conditions
/// (`$contains`, `$startsWith`, regular expressions) cost time per byte, so a few hundred
/// records of a mebibyte each are a long scan, and so is one record tested a thousand
/// times.
const INLINE_SCAN_MAX_BYTES: usize = 1024 * 1024;

/// Transactions with more operations than this run on the blocking pool.
const INLINE_TRANSACTION_MAX_OPS: usize = 64;

/// Operator and field nodes of a filter: each field, each operator on a field, each
/// `$or` / `$and` and everything in it. An `$in` / `$nin` list is one node (it is tested
/// with one hash lookup).
fn filter_nodes(filter: &Map<String, Value>) -> usize {
    filter.iter().fold(0usize, |n, (key, v)| {
        let own = match (key.as_str(), v) {
            ("$or" | "$and", Value::Array(items)) => items.iter().fold(1usize, |m, item| {
                m.saturating_add(item.as_object().map_or(1, filter_nodes))
            }),
            (_, Value::Object(ops))
                if !ops.is_empty() && ops.keys().all(|k| k.starts_with('$')) =>
            {
                1usize.saturating_add(ops.len())
            }
            _ => 1,
        };
        n.saturating_add(own)
    })
}

/// The filters a client sends with `op`: of reads, counts and aggregates, of a query
/// definition, and of every operation of a transaction.
fn filters_of(op: &StoreOp) -> Vec<&Map<String, Value>> {
    match op {
        StoreOp::Where { filter, .. } | StoreOp::FindOne { filter, .. } => vec![filter],
        StoreOp::Count { filter, .. }
        | StoreOp::Sum { filter, .. }
        | StoreOp::Avg { filter, .. }
        | StoreOp::Min { filter, .. }
        | StoreOp::Max { filter, .. }
        | StoreOp::GroupBy { filter, .. } => filter.iter().collect(),
        StoreOp::UpdateMany { filter, .. } | StoreOp::DeleteMany { filter, .. } => vec![filter],
        StoreOp::DefineQuery { config, .. } => config
            .get("filter")
            .and_then(Value::as_object)
            .into_iter()
            .collect(),
        StoreOp::Transaction { operations } => operations
            .iter()
            .filter_map(|op| match op {
                TransactionOp::Where { filter, .. }
                | TransactionOp::FindOne { filter, .. }
                | TransactionOp::UpdateMany { filter, .. }
                | TransactionOp::DeleteMany { filter, .. } => Some(filter),
                TransactionOp::Count { filter, .. } => filter.as_ref(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// [`scan_cost`] of a transaction's operations: the sum over its filter reads.
fn transaction_cost(store: &Store, operations: &[TransactionOp]) -> usize {
    let one = |bucket: &str, filter: Option<&Map<String, Value>>| {
        store
            .bucket_len(bucket)
            .unwrap_or(0)
            .saturating_mul(filter.map_or(1, filter_nodes).max(1))
    };
    operations.iter().fold(0usize, |sum, op| {
        let cost = match op {
            TransactionOp::Where { bucket, filter }
            | TransactionOp::FindOne { bucket, filter }
            | TransactionOp::UpdateMany { bucket, filter, .. }
            | TransactionOp::DeleteMany { bucket, filter } => one(bucket, Some(filter)),
            TransactionOp::Count { bucket, filter } => one(bucket, filter.as_ref()),
            _ => 0,
        };
        sum.saturating_add(cost)
    })
}

/// `VALIDATION_ERROR` when a filter of `op` has more than `max` nodes ([`filter_nodes`]).
fn check_filters(op: &StoreOp, max: usize) -> Result<(), ServerError> {
    for filter in filters_of(op) {
        let nodes = filter_nodes(filter);
        if nodes > max {
            return Err(ServerError::new(
                ErrorCode::ValidationError,
                format!("A filter may hold at most {max} conditions (got {nodes})"),
            )
            .with_details(json!({ "limit": max })));
        }
    }
    Ok(())
}

/// Estimated work of `op`: for each scan it makes, the records of its bucket times the
/// nodes of its filter (at least one). Zero for operations that scan nothing.
fn scan_cost(store: &Store, op: &StoreOp) -> usize {
    let one = |bucket: &str, filter: Option<&Map<String, Value>>| {
        store
            .bucket_len(bucket)
            .unwrap_or(0)
            .saturating_mul(filter.map_or(1, filter_nodes).max(1))
    };
    match op {
        StoreOp::Where { bucket, filter } | StoreOp::FindOne { bucket, filter } => {
            one(bucket, Some(filter))
        }
        StoreOp::Count { bucket, filter }
        | StoreOp::Sum { bucket, filter, .. }
        | StoreOp::Avg { bucket, filter, .. }
        | StoreOp::Min { bucket, filter, .. }
        | StoreOp::Max { bucket, filter, .. }
        | StoreOp::GroupBy { bucket, filter, .. } => one(bucket, filter.as_ref()),
        StoreOp::UpdateMany { bucket, filter, .. } | StoreOp::DeleteMany { bucket, filter } => {
            one(bucket, Some(filter))
        }
        StoreOp::Transaction { operations } => transaction_cost(store, operations),
        other => scanned_bucket(other).map_or(0, |bucket| one(bucket, None)),
    }
}

/// Record bytes of the buckets `op` scans times the nodes of the filter it scans them
/// with (every filter read of a transaction, summed); zero for operations that scan
/// nothing. Text conditions cost time per byte each, so one record of a mebibyte tested
/// with 999 `$contains` is a gigabyte of searching (red team, round 4).
fn scanned_bytes(store: &Store, op: &StoreOp) -> usize {
    let bytes = |bucket: &str, filter: Option<&Map<String, Value>>| {
        store
            .bucket_bytes(bucket)
            .unwrap_or(0)
            .saturating_mul(filter.map_or(1, filter_nodes).max(1))
    };
    match op {
        StoreOp::Transaction { operations } => operations.iter().fold(0usize, |sum, op| {
            let scanned = match op {
                TransactionOp::Where { bucket, filter }
                | TransactionOp::FindOne { bucket, filter }
                | TransactionOp::UpdateMany { bucket, filter, .. }
                | TransactionOp::DeleteMany { bucket, filter } => bytes(bucket, Some(filter)),
                TransactionOp::Count { bucket, filter } => bytes(bucket, filter.as_ref()),
                _ => 0,
            };
            sum.saturating_add(scanned)
        }),
        StoreOp::Where { bucket, filter } | StoreOp::FindOne { bucket, filter } => {
            bytes(bucket, Some(filter))
        }
        StoreOp::Count { bucket, filter }
        | StoreOp::Sum { bucket, filter, .. }
        | StoreOp::Avg { bucket, filter, .. }
        | StoreOp::Min { bucket, filter, .. }
        | StoreOp::Max { bucket, filter, .. }
        | StoreOp::GroupBy { bucket, filter, .. } => bytes(bucket, filter.as_ref()),
        StoreOp::UpdateMany { bucket, filter, .. } | StoreOp::DeleteMany { bucket, filter } => {
            bytes(bucket, Some(filter))
        }
        other => scanned_bucket(other).map_or(0, |bucket| bytes(bucket, None)),
    }
}

/// The bucket a read that may scan every record of it acts on (`store.all`, `where`,
/// `findOne`, `count`, `first`, `last`, `paginate`, the aggregates and `groupBy`); `None`
/// for every other operation.
fn scanned_bucket(op: &StoreOp) -> Option<&str> {
    match op {
        StoreOp::All { bucket }
        | StoreOp::Where { bucket, .. }
        | StoreOp::FindOne { bucket, .. }
        | StoreOp::Count { bucket, .. }
        | StoreOp::First { bucket, .. }
        | StoreOp::Last { bucket, .. }
        | StoreOp::Paginate { bucket, .. }
        | StoreOp::Sum { bucket, .. }
        | StoreOp::Avg { bucket, .. }
        | StoreOp::Min { bucket, .. }
        | StoreOp::Max { bucket, .. }
        | StoreOp::GroupBy { bucket, .. } => Some(bucket),
        _ => None,
    }
}

/// Answers a read of [`scanned_bucket`]'s kinds; it needs nothing of the connection, so it
/// can run on the blocking pool.
fn read(store: &Store, op: StoreOp) -> Result<Value, ServerError> {
    match op {
        StoreOp::All { bucket } => Ok(many(store.bucket(&bucket).all()?)),
        StoreOp::Where { bucket, filter } => Ok(many(store.bucket(&bucket).where_(&filter)?)),
        StoreOp::FindOne { bucket, filter } => Ok(one(store.bucket(&bucket).find_one(&filter)?)),
        StoreOp::Count { bucket, filter } => to_json(store.bucket(&bucket).count(filter.as_ref())?),
        StoreOp::First { bucket, n } => Ok(many(store.bucket(&bucket).first(clamp(n))?)),
        StoreOp::Last { bucket, n } => Ok(many(store.bucket(&bucket).last(clamp(n))?)),
        StoreOp::Paginate {
            bucket,
            limit,
            after,
        } => {
            let page = store
                .bucket(&bucket)
                .paginate(clamp(limit), after.as_ref())?;
            to_json(PaginateResult {
                records: page.records.into_iter().map(Value::Object).collect(),
                has_more: page.has_more,
                next_cursor: page.next_cursor,
            })
        }
        StoreOp::Sum {
            bucket,
            field,
            filter,
        } => Ok(store.bucket(&bucket).sum(&field, filter.as_ref())?),
        StoreOp::Avg {
            bucket,
            field,
            filter,
        } => Ok(store.bucket(&bucket).avg(&field, filter.as_ref())?),
        StoreOp::Min {
            bucket,
            field,
            filter,
        } => Ok(store.bucket(&bucket).min(&field, filter.as_ref())?),
        StoreOp::Max {
            bucket,
            field,
            filter,
        } => Ok(store.bucket(&bucket).max(&field, filter.as_ref())?),
        StoreOp::GroupBy {
            bucket,
            field,
            aggregate,
            filter,
        } => Ok(store.bucket(&bucket).group_by(
            field,
            aggregate.function,
            aggregate.field.as_deref(),
            filter.as_ref(),
        )?),
        other => Err(ServerError::internal(format_args!(
            "{} is not a read",
            other.op_type()
        ))),
    }
}

/// Whether `authority` may see bucket `name` in the listing `op`.
fn sees_bucket(authority: Option<&Authority<'_>>, op: &str, name: &str) -> bool {
    authority.is_none_or(|a| {
        a.allows(&Need {
            op,
            tier: Tier::Read,
            resource: Cow::Borrowed(name),
            items: vec![Item::Bucket(Cow::Borrowed(name))],
        })
    })
}

/// Store statistics with the per-bucket figures (and the totals over them) limited to the
/// buckets `authority` may see in the listing `op`, and the query and subscription counts to
/// the queries reading them (a programmatic query, which may read anything, counts only for
/// a session that may see every bucket).
pub(crate) fn visible_stats(
    store: &Store,
    authority: Option<&Authority<'_>>,
    op: &str,
) -> StoreStats {
    let mut stats = store.stats();
    let Some(authority) = authority else {
        return stats;
    };
    stats
        .buckets
        .names
        .retain(|name| sees_bucket(Some(authority), op, name));
    let visible = |name: &String| stats.buckets.names.contains(name);
    stats.buckets.count = stats.buckets.names.len() as u64;
    stats.records.per_bucket.retain(|name, _| visible(name));
    stats.records.total = stats.records.per_bucket.values().sum();
    stats.indexes.per_bucket.retain(|name, _| visible(name));
    stats.indexes.total = stats.indexes.per_bucket.values().sum();
    let sees_all = authority.allows(&Need {
        op,
        tier: Tier::Read,
        resource: Cow::Borrowed("*"),
        items: vec![Item::AllBuckets],
    });
    let (mut defined, mut active) = (0, 0);
    for query in store.list_queries() {
        let counted = match &query.config {
            Some(def) => sees_bucket(Some(authority), op, &def.bucket),
            None => sees_all,
        };
        if counted {
            defined += 1;
            active += query.active_subscriptions;
        }
    }
    stats.queries.defined = defined;
    stats.queries.active_subscriptions = active;
    stats
}

/// Records as a result value, moved rather than re-serialized (a record already is a
/// JSON object).
fn many(records: Vec<Record>) -> Value {
    Value::Array(records.into_iter().map(Value::Object).collect())
}

/// An optional record as a result value (`null` when absent), moved as [`many`] does.
fn one(record: Option<Record>) -> Value {
    record.map_or(Value::Null, Value::Object)
}

/// A positive count from the wire as a `usize` (saturating on 32-bit targets).
fn clamp(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `store.transaction`: at most `max_ops` operations (else `VALIDATION_ERROR` before any
/// runs); the results together may not pass `max_result_bytes` bytes of JSON, as any other
/// read (else the transaction is rolled back and fails with the error of a read too large,
/// pointing to `store.paginate`).
fn transaction(
    store: &Store,
    operations: Vec<TransactionOp>,
    max_ops: usize,
    max_result_bytes: usize,
    max_scan_cost: usize,
    max_bulk_records: usize,
) -> Result<Value, ServerError> {
    let cost = transaction_cost(store, &operations);
    if cost > max_scan_cost {
        return Err(ServerError::new(
            ErrorCode::ValidationError,
            format!(
                "A transaction may scan at most {max_scan_cost} records times filter conditions (this one {cost})"
            ),
        )
        .with_details(json!({ "limit": max_scan_cost })));
    }
    if operations.len() > max_ops {
        return Err(ServerError::new(
            ErrorCode::ValidationError,
            format!(
                "A transaction may hold at most {max_ops} operations (got {})",
                operations.len()
            ),
        )
        .with_details(json!({ "limit": max_ops })));
    }
    // The records the bulk entries write, all together, are bounded like one bulk write:
    // the inserts are counted here, the matches of updateMany / deleteMany as they are found.
    let inserts = operations.iter().fold(0usize, |n, op| match op {
        TransactionOp::InsertMany { data, .. } => n.saturating_add(data.len()),
        TransactionOp::Upsert { .. } => n.saturating_add(1),
        _ => n,
    });
    if inserts > max_bulk_records {
        return Err(bulk_in_transaction_too_many(max_bulk_records));
    }
    let mut bulk_budget = max_bulk_records - inserts;
    let mut too_many = false;
    let results = store.transaction(|tx| {
        let mut used = 0usize;
        operations
            .into_iter()
            .enumerate()
            .map(|(index, op)| {
                let data = transaction_op(tx, op, &mut bulk_budget).inspect_err(|_| {
                    too_many = bulk_budget == usize::MAX;
                })?;
                let result = TransactionOpResult {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    data,
                };
                let room = max_result_bytes.saturating_sub(used);
                used = match json_size_within(&result, room) {
                    Some(n) => used.saturating_add(n).saturating_add(1),
                    None => usize::MAX,
                };
                if used > max_result_bytes {
                    return Err(StoreError::ResultTooLarge {
                        limit: max_result_bytes,
                    });
                }
                Ok(result)
            })
            .collect::<Result<Vec<_>, StoreError>>()
    });
    if too_many {
        return Err(bulk_in_transaction_too_many(max_bulk_records));
    }
    to_json(TransactionResult { results: results? })
}

/// `VALIDATION_ERROR` for a transaction whose bulk entries would write more than `max`
/// records together; nothing is written.
fn bulk_in_transaction_too_many(max: usize) -> ServerError {
    ServerError::new(
        ErrorCode::ValidationError,
        format!(
            "The bulk operations of a transaction may write at most {max} records together; split it"
        ),
    )
    .with_details(json!({ "limit": max }))
}

/// What the bulk entries of a transaction may write, for choosing where it runs (as
/// [`bulk_records`] for each).
fn transaction_bulk_records(store: &Store, operations: &[TransactionOp], max: usize) -> usize {
    operations
        .iter()
        .fold(0usize, |n, op| {
            let records = match op {
                TransactionOp::InsertMany { data, .. } => data.len(),
                TransactionOp::Upsert { .. } => 1,
                TransactionOp::UpdateMany { bucket, .. }
                | TransactionOp::DeleteMany { bucket, .. } => store.bucket_len(bucket).unwrap_or(0),
                _ => 0,
            };
            n.saturating_add(records)
        })
        .min(max)
}

/// One operation of `store.transaction`; its result `data`. `bulk_budget` is what the
/// matches of `updateMany` / `deleteMany` may still take; past it the transaction fails and
/// the budget is set to `usize::MAX` to say why.
fn transaction_op(
    tx: &mut Transaction<'_>,
    op: TransactionOp,
    bulk_budget: &mut usize,
) -> Result<Value, StoreError> {
    let mut matches = |b: &mut noex_store::TxBucket<'_, '_>,
                       filter: &Map<String, Value>|
     -> Result<Vec<Value>, StoreError> {
        let keys = b.keys_where(filter, *bulk_budget)?;
        if keys.len() > *bulk_budget {
            *bulk_budget = usize::MAX;
            return Err(StoreError::InvalidArgument {
                message: "too many records".into(),
            });
        }
        *bulk_budget -= keys.len();
        Ok(keys)
    };
    match op {
        TransactionOp::InsertMany { bucket, data } => {
            let mut b = tx.bucket(&bucket)?;
            let mut out = Vec::with_capacity(data.len());
            for record in data {
                out.push(Value::Object(b.insert(record)?));
            }
            Ok(Value::Array(out))
        }
        TransactionOp::UpdateMany {
            bucket,
            filter,
            data,
        } => {
            let mut b = tx.bucket(&bucket)?;
            let keys = matches(&mut b, &filter)?;
            let n = keys.len();
            for key in keys {
                b.update(&key, data.clone())?;
            }
            Ok(json!(n))
        }
        TransactionOp::DeleteMany { bucket, filter } => {
            let mut b = tx.bucket(&bucket)?;
            let keys = matches(&mut b, &filter)?;
            let mut n = 0usize;
            for key in keys {
                if b.delete(&key)? {
                    n += 1;
                }
            }
            Ok(json!(n))
        }
        TransactionOp::Upsert { bucket, data } => {
            Ok(Value::Object(upsert(&mut tx.bucket(&bucket)?, data)?))
        }
        TransactionOp::Get { bucket, key } => Ok(one(tx.bucket(&bucket)?.get(&key)?)),
        TransactionOp::Insert { bucket, data } => {
            Ok(Value::Object(tx.bucket(&bucket)?.insert(data)?))
        }
        TransactionOp::Update { bucket, key, data } => {
            Ok(Value::Object(tx.bucket(&bucket)?.update(&key, data)?))
        }
        TransactionOp::Delete { bucket, key } => {
            tx.bucket(&bucket)?.delete(&key)?;
            Ok(json!(Deleted { deleted: true }))
        }
        TransactionOp::Where { bucket, filter } => Ok(many(tx.bucket(&bucket)?.where_(&filter)?)),
        TransactionOp::FindOne { bucket, filter } => {
            Ok(one(tx.bucket(&bucket)?.find_one(&filter)?))
        }
        TransactionOp::Count { bucket, filter } => {
            Ok(json!(tx.bucket(&bucket)?.count(filter.as_ref())?))
        }
    }
}

/// `upsert` in a transaction: merges `data` into the record with its key, or inserts it.
fn upsert(
    b: &mut noex_store::TxBucket<'_, '_>,
    data: Map<String, Value>,
) -> Result<Map<String, Value>, StoreError> {
    let key_field = b.key_field()?;
    let existing = match data.get(&key_field).filter(|k| !k.is_null()) {
        Some(key) => b.get(key)?.map(|_| key.clone()),
        None => None,
    };
    match existing {
        Some(key) => {
            let mut patch = data;
            patch.remove(&key_field);
            b.update(&key, patch)
        }
        None => b.insert(data),
    }
}

/// Records a bulk write handles, for choosing where it runs: the records of an
/// `insertMany`, one for an `upsert`, and for `updateMany` / `deleteMany` the most it may
/// touch (the bucket's records, at most `max`; the exact bound is checked once the matches
/// are known). `None` for every other operation.
fn bulk_records(store: &Store, op: &StoreOp, max: usize) -> Option<usize> {
    match op {
        StoreOp::InsertMany { data, .. } => Some(data.len()),
        StoreOp::Upsert { .. } => Some(1),
        StoreOp::UpdateMany { bucket, .. } | StoreOp::DeleteMany { bucket, .. } => {
            Some(store.bucket_len(bucket).unwrap_or(0).min(max))
        }
        _ => None,
    }
}

/// Where a bulk write stopped, to name it in the error.
enum BulkFailure {
    /// The record at this position (with its key, for a matched record) failed.
    At(usize, Option<Value>),
    /// More records than `limits.maxBulkRecords` match the filter.
    TooMany,
}

/// `VALIDATION_ERROR` for a bulk write over `max` records.
fn too_many(op: &str, max: usize, got: Option<usize>) -> ServerError {
    let message = match got {
        Some(n) => format!("{op} may write at most {max} records (got {n})"),
        None => format!(
            "{op} may write at most {max} records (more match the filter); narrow the filter"
        ),
    };
    ServerError::new(ErrorCode::ValidationError, message).with_details(json!({ "limit": max }))
}

/// The error of a bulk write: the store's error, with the position of the record that
/// caused it (and its key) in the message and in `details` (`BulkErrorDetails`: `index`,
/// `key?`, then the details the error has on a single write, the issues of a validation
/// error as `issues`).
fn bulk_error(op: &str, err: StoreError, failure: Option<BulkFailure>, max: usize) -> ServerError {
    let (index, key) = match failure {
        None => return err.into(),
        Some(BulkFailure::TooMany) => return too_many(op, max, None),
        Some(BulkFailure::At(index, key)) => (index, key),
    };
    let err = ServerError::from(err);
    if err.code == ErrorCode::InternalError {
        return err;
    }
    let mut details = Map::new();
    details.insert("index".into(), json!(index));
    let at = match &key {
        Some(key) => {
            details.insert("key".into(), key.clone());
            format!("record {index} (key {key})")
        }
        None => format!("data[{index}]"),
    };
    match err.details {
        Some(Value::Array(issues)) => {
            details.insert("issues".into(), Value::Array(issues));
        }
        Some(Value::Object(more)) => {
            for (name, value) in more {
                details.entry(name).or_insert(value);
            }
        }
        _ => {}
    }
    ServerError::new(err.code, format!("{at}: {}", err.message))
        .with_details(Value::Object(details))
}

/// The bulk writes, each one store transaction: validated as a whole (the first record
/// that fails stops it, and nothing is written), committed at once (one change batch, so
/// one push per affected subscription). `insertMany` answers the inserted records,
/// `updateMany` / `deleteMany` how many records they changed, `upsert` the record.
fn bulk_write(store: &Store, op: StoreOp, max_records: usize) -> Result<Value, ServerError> {
    let op_type = op.op_type();
    let mut failure = None;
    let result = match op {
        StoreOp::InsertMany { bucket, data } => {
            if data.len() > max_records {
                return Err(too_many(op_type, max_records, Some(data.len())));
            }
            store.transaction(|tx| {
                let mut b = tx.bucket(&bucket)?;
                let mut out = Vec::with_capacity(data.len());
                for (index, record) in data.into_iter().enumerate() {
                    match b.insert(record) {
                        Ok(record) => out.push(Value::Object(record)),
                        Err(err) => {
                            failure = Some(BulkFailure::At(index, None));
                            return Err(err);
                        }
                    }
                }
                Ok(Value::Array(out))
            })
        }
        StoreOp::UpdateMany {
            bucket,
            filter,
            data,
        } => store.transaction(|tx| {
            let mut b = tx.bucket(&bucket)?;
            let keys = b.keys_where(&filter, max_records)?;
            if keys.len() > max_records {
                failure = Some(BulkFailure::TooMany);
                return Err(StoreError::InvalidArgument {
                    message: "too many records".into(),
                });
            }
            let n = keys.len();
            for (index, key) in keys.into_iter().enumerate() {
                if let Err(err) = b.update(&key, data.clone()) {
                    failure = Some(BulkFailure::At(index, Some(key)));
                    return Err(err);
                }
            }
            Ok(json!(n))
        }),
        StoreOp::DeleteMany { bucket, filter } => store.transaction(|tx| {
            let mut b = tx.bucket(&bucket)?;
            let keys = b.keys_where(&filter, max_records)?;
            if keys.len() > max_records {
                failure = Some(BulkFailure::TooMany);
                return Err(StoreError::InvalidArgument {
                    message: "too many records".into(),
                });
            }
            let mut n = 0usize;
            for key in keys {
                if b.delete(&key)? {
                    n += 1;
                }
            }
            Ok(json!(n))
        }),
        StoreOp::Upsert { bucket, data } => {
            store.transaction(|tx| Ok(Value::Object(upsert(&mut tx.bucket(&bucket)?, data)?)))
        }
        other => {
            return Err(ServerError::internal(format_args!(
                "{} is not a bulk write",
                other.op_type()
            )));
        }
    };
    result.map_err(|err| bulk_error(op_type, err, failure, max_records))
}

/// The estimated memory one store subscription's result holds, counted against its
/// connection's `limits.maxSubscriptionResultBytes` and the server's
/// `limits.maxTotalSubscriptionResultBytes`. `None` once released (the subscription
/// ended, or was refused for passing a limit).
struct ResultHold {
    held: std::sync::Mutex<Option<usize>>,
    connection: Arc<AtomicUsize>,
    server: Arc<AtomicUsize>,
    max_connection: usize,
    max_server: usize,
}

impl ResultHold {
    /// Counts `size` instead of what was held. A growth past either limit releases the
    /// hold instead and returns the error to answer; a released hold stays released.
    fn set(&self, size: usize) -> Result<(), ServerError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(old) = *held else {
            return Err(ServerError::new(
                ErrorCode::RateLimited,
                "Subscription results limit reached",
            ));
        };
        if size > old {
            let grow = size - old;
            let over = if self.connection.load(Ordering::Relaxed).saturating_add(grow)
                > self.max_connection
            {
                Some(format!(
                    "Subscription results limit reached (max {} bytes per connection)",
                    self.max_connection
                ))
            } else if self.server.load(Ordering::Relaxed).saturating_add(grow) > self.max_server {
                Some(format!(
                    "Subscription results limit reached (max {} bytes per server)",
                    self.max_server
                ))
            } else {
                None
            };
            if let Some(message) = over {
                self.connection.fetch_sub(old, Ordering::Relaxed);
                self.server.fetch_sub(old, Ordering::Relaxed);
                *held = None;
                return Err(ServerError::new(ErrorCode::RateLimited, message));
            }
            self.connection.fetch_add(grow, Ordering::Relaxed);
            self.server.fetch_add(grow, Ordering::Relaxed);
        } else {
            self.connection.fetch_sub(old - size, Ordering::Relaxed);
            self.server.fetch_sub(old - size, Ordering::Relaxed);
        }
        *held = Some(size);
        Ok(())
    }

    /// Stops counting this subscription's result.
    fn release(&self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = held.take() {
            self.connection.fetch_sub(old, Ordering::Relaxed);
            self.server.fetch_sub(old, Ordering::Relaxed);
        }
    }
}

/// `store.subscribe`: reserves an id within the limits, subscribes in the store with a
/// callback that queues each new result as a push, and answers with the initial result.
///
/// The first evaluation runs on the blocking pool; over a large bucket it holds a permit of
/// the server's `heavy_reads`: a query over a large bucket (say a count grouped by a unique field) must
/// not hold a runtime worker, nor all cores, that other connections' requests need.
///
/// The subscription stays *pending* in the outbound queue until the connection has queued
/// this answer, so a change racing with the subscribe can never push before the result.
async fn subscribe(
    ctx: StoreContext<'_>,
    query: String,
    params: Option<Value>,
) -> Result<Value, ServerError> {
    // An object or absent: the protocol refuses anything else.
    let params = params.unwrap_or_else(|| Value::Object(Map::new()));
    let origin = Operation::Store(StoreOp::Subscribe {
        query: query.clone(),
        params: Some(params.clone()),
    });
    let store = ctx.store.clone();
    let subs = ctx.subscriptions;
    // A connection already at its bound of held results is refused before evaluating.
    let max_held = ctx.limits.max_subscription_result_bytes;
    if subs.held_results.load(Ordering::Relaxed) >= max_held {
        return Err(ServerError::new(
            ErrorCode::RateLimited,
            format!("Subscription results limit reached (max {max_held} bytes per connection)"),
        ));
    }
    let id = subs.subscriptions.reserve()?;
    subs.queue.mark_pending(&id);
    let queue = Arc::clone(subs.queue);
    let outbound = Arc::clone(subs.outbound);
    let push_id = id.clone();
    // When the store ends the subscription (a re-evaluation failed, the query was
    // undefined), the connection forgets it and tells the client.
    let ended = subs.ended.sender();
    let ended_id = id.clone();
    let subscribing = store.clone();
    let limits = ctx.limits;
    let hold = Arc::new(ResultHold {
        held: std::sync::Mutex::new(Some(0)),
        connection: Arc::clone(subs.held_results),
        server: Arc::clone(ctx.server_held_results),
        max_connection: limits.max_subscription_result_bytes,
        max_server: limits.max_total_subscription_result_bytes,
    });
    let push_hold = Arc::clone(&hold);
    let over_ended = subs.ended.sender();
    let over_id = id.clone();
    let (answer, answered) = tokio::sync::oneshot::channel();
    // Only the first evaluation of a query over a large bucket (or a programmatic query,
    // whose cost is unknown) waits for a heavy-read permit: a cheap subscribe must not
    // queue behind other clients' long scans. Never closed, so the permit always comes.
    let heavy = match store.query_bucket(&query) {
        Some(Some(bucket)) => {
            store
                .bucket_len(&bucket)
                .is_none_or(|n| n > INLINE_SCAN_MAX_RECORDS)
                || store
                    .bucket_bytes(&bucket)
                    .is_none_or(|n| n > INLINE_SCAN_MAX_BYTES)
        }
        _ => true,
    };
    let permit = if heavy {
        Some(ctx.heavy_reads.acquire(ctx.principal.clone()).await)
    } else {
        None
    };
    let budget = limits.read_budget();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // The first evaluation within `maxReadMs` (past it nothing is subscribed).
        let result = noex_store::with_read_deadline(budget, || {
            subscribing.subscribe_with(
                &query,
                params,
                move |result: Arc<QueryResult>| {
                    // A result past the connection's (or server's) bound ends the subscription
                    // instead of being held and pushed.
                    if let Err(err) = push_hold.set(result.memory_size()) {
                        let _ = over_ended.send((over_id.clone(), err));
                        return;
                    }
                    // The result's JSON text is shared by every subscriber of (query, params), in
                    // their queues too; only the envelope is built per subscription.
                    let data = outbound.share(result.json());
                    let head = PushFrame::encode_head(PushChannel::Subscription, &push_id);
                    queue.push(&push_id, PushKind::Latest, head, data, PushFrame::TAIL);
                },
                move |err: StoreError| {
                    // The connection may be gone already; then there is nobody to tell.
                    let _ = ended.send((ended_id, ServerError::from(err)));
                },
            )
        });
        // Nobody waits any more (the connection is gone): undo the subscription.
        if let Err(Ok((store_id, _))) = answer.send(result) {
            let _ = subscribing.unsubscribe(store_id);
        }
    });
    let subscribed = answered.await.unwrap_or_else(|_| {
        Err(StoreError::Internal {
            message: "subscribe: the evaluation did not finish".into(),
        })
    });
    let (store_id, initial) = match subscribed {
        Ok(ok) => match hold.set(ok.1.memory_size()) {
            Ok(()) => ok,
            Err(err) => {
                let _ = store.unsubscribe(ok.0);
                subs.subscriptions.release();
                subs.queue.remove(&id);
                return Err(err);
            }
        },
        Err(err) => {
            hold.release();
            subs.subscriptions.release();
            subs.queue.remove(&id);
            return Err(err.into());
        }
    };
    let cancel_store = store;
    let cancel_queue = Arc::clone(subs.queue);
    let cancel_id = id.clone();
    subs.subscriptions.insert(
        id.clone(),
        SubKind::Store,
        origin,
        Box::new(move || {
            // Already gone only if the store dropped it; nothing else to undo then.
            let _ = cancel_store.unsubscribe(store_id);
            cancel_queue.remove(&cancel_id);
            hold.release();
        }),
        subs.registration,
    );
    subs.activate_after_reply.push(id.clone());
    // `SubscribeResult`, built directly: `to_json` would copy the (possibly large) result
    // a second time.
    let mut answer = Map::with_capacity(2);
    answer.insert("subscriptionId".into(), Value::String(id));
    answer.insert("data".into(), initial.value().clone());
    Ok(Value::Object(answer))
}
