//! The [`Store`]: configuration, the shared state behind one lock (so a multi-bucket
//! commit is atomic for every reader), bucket definition management and the write path
//! that hands each commit's changes to the disk layer and publishes them as one batch
//! (the change feed, the dispatcher); subscribing to the change feed and the durability
//! controls. Starting a store is in `start`; what works on a started store (handles,
//! reactive queries, transactions, the TTL sweep) sits above this module.

use parking_lot::{Condvar, Mutex, RwLock};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

use crate::bucket::Bucket;
use crate::data::{Change, Data};
use crate::definition::{BucketDefinition, BucketUpdate};
use crate::error::{StoreError, StoreResult};
use crate::events::{ChangeEvent, HandlerRegistry};
use crate::persistence::bridge::{self, is_persistent};
use crate::persistence::{CommitObserver, Op, Persistence, PersistenceConfig, Ticket};
use crate::registry::{EvalKey, Registry};
use noex_model::clock::Clock;

/// Store configuration.
#[derive(Clone)]
pub struct StoreConfig {
    /// Name reported by `stats()`.
    pub name: String,
    /// Interval of the background TTL sweep, on [`Self::clock`]; `Duration::ZERO` disables it.
    pub ttl_check_interval: Duration,
    /// Capacity of the broadcast change feed (slow receivers lag, never block writers).
    pub change_feed_capacity: usize,
    /// Time source: record timestamps (`_createdAt`, `_updatedAt`, `_expiresAt`), TTL
    /// expiry and the TTL sweep follow it (default: a [`TokioClock`](crate::TokioClock)).
    pub clock: Option<Arc<dyn Clock>>,
    /// Durable storage; `None` (the default) keeps everything in memory only.
    pub persistence: Option<PersistenceConfig>,
    /// Largest result, in bytes of JSON, that a read returning records (`all`, `where`,
    /// `find_one`, `first`, `last`, `paginate`, their transaction forms) or a query
    /// evaluation (`run_query`, `subscribe`, every re-evaluation) may build. Past it the
    /// read fails with [`StoreError::ResultTooLarge`] as soon as the records collected so
    /// far pass the limit, before the result is built. Default 8 MiB.
    pub max_result_bytes: usize,
    /// Most buckets the store holds; `define_bucket` beyond it fails with
    /// [`StoreError::LimitExceeded`]. Buckets loaded from disk at start never fail on it.
    /// Default 1 000.
    pub max_buckets: usize,
    /// Most queries (declarative and programmatic) the store holds; `define_query`
    /// beyond it fails with [`StoreError::LimitExceeded`]. Queries loaded from disk at
    /// start never fail on it. Default 1 000.
    pub max_queries: usize,
    /// Largest record, in bytes: the larger of its JSON (metadata fields included) and its
    /// estimated size in memory ([`crate::memory_size`]; an array of small numbers takes
    /// about 30 times its JSON); a write of a bigger one fails with [`StoreError::InvalidArgument`]. Records loaded from disk at start
    /// are never refused. Default 1 MiB.
    pub max_record_bytes: usize,
    /// Most bytes all records together may take, each counted as for
    /// [`StoreConfig::max_record_bytes`] (the larger of JSON and estimated memory, so an
    /// approximation of the memory they use). A commit that would grow the total
    /// past it fails with [`StoreError::LimitExceeded`] and changes nothing; commits that
    /// shrink it (deletes, expiry) always pass. Records loaded from disk at start are never
    /// refused. Default 1 GiB.
    pub max_store_bytes: usize,
    /// Most bytes of records one transaction may write (every inserted or updated record
    /// counted as for [`StoreConfig::max_record_bytes`], a record written twice counted
    /// twice): past it the write fails with [`StoreError::InvalidArgument`] and the
    /// transaction changes nothing. It bounds the memory and the commit time of one
    /// transaction, of a bulk write (`insertMany`, `updateMany`, `upsert`) and of a
    /// procedure call. Never less than `max_record_bytes` (a single-record write always
    /// fits). Default 16 MiB.
    pub max_transaction_bytes: usize,
    /// Longest a re-evaluation of a subscription may run on the slow lane (see
    /// [`Store::subscribe_with`]): past it the evaluation stops, and its subscriptions end
    /// with [`StoreError::ReadTimeout`]. Default 1 s. (The dispatcher itself gives an
    /// evaluation 5 ms before handing it to the slow lane.)
    pub max_evaluation_time: Duration,
    /// Called on the persistence writer thread with the duration of each engine commit (a
    /// group of store commits written and made durable together), e.g. for a latency
    /// histogram. Keep it quick. Default `None`; unused without persistence.
    pub commit_observer: Option<CommitObserver>,
}

/// Default of [`StoreConfig::max_evaluation_time`]: 1 s.
pub const DEFAULT_MAX_EVALUATION_TIME: Duration = Duration::from_secs(1);

/// Default of [`StoreConfig::max_record_bytes`]: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Default of [`StoreConfig::max_transaction_bytes`]: 16 MiB.
pub const DEFAULT_MAX_TRANSACTION_BYTES: usize = 16 * 1024 * 1024;
/// Default of [`StoreConfig::max_store_bytes`]: 1 GiB.
pub const DEFAULT_MAX_STORE_BYTES: usize = 1024 * 1024 * 1024;

/// Default of [`StoreConfig::max_result_bytes`]: 8 MiB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 8 * 1024 * 1024;
/// Default of [`StoreConfig::max_buckets`].
pub const DEFAULT_MAX_BUCKETS: usize = 1_000;
/// Default of [`StoreConfig::max_queries`].
pub const DEFAULT_MAX_QUERIES: usize = 1_000;

/// The bounds of [`StoreConfig`] in force.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_result_bytes: usize,
    pub max_buckets: usize,
    pub max_queries: usize,
    pub max_store_bytes: usize,
    pub max_evaluation_time: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            name: "noex-store".to_owned(),
            ttl_check_interval: Duration::from_secs(1),
            change_feed_capacity: 1024,
            clock: None,
            persistence: None,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_buckets: DEFAULT_MAX_BUCKETS,
            max_queries: DEFAULT_MAX_QUERIES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_store_bytes: DEFAULT_MAX_STORE_BYTES,
            max_transaction_bytes: DEFAULT_MAX_TRANSACTION_BYTES,
            commit_observer: None,
            max_evaluation_time: DEFAULT_MAX_EVALUATION_TIME,
        }
    }
}

/// What the dispatcher receives after each commit.
pub(crate) struct Batch {
    pub events: Vec<Arc<ChangeEvent>>,
    pub dropped: Vec<String>,
    /// Evaluations (`(query, canonical params)`) to re-evaluate whatever changed: a new
    /// evaluation registered after a commit it may not have seen.
    pub recheck: Vec<(String, String)>,
}

/// What waits for the slow lane: each evaluation with when it first waited, and whether
/// the lane has been woken for it (see [`Inner::slow_queue`]).
#[derive(Default)]
pub(crate) struct SlowQueue {
    pub waiting: std::collections::HashMap<EvalKey, std::time::Instant>,
    pub woken: bool,
}

/// Shared state of a store.
pub(crate) struct Inner {
    pub name: String,
    pub data: RwLock<Data>,
    pub reactive: Mutex<Registry>,
    pub handlers: Mutex<HandlerRegistry>,
    pub clock: Arc<dyn Clock>,
    pub feed: broadcast::Sender<Arc<ChangeEvent>>,
    pub dispatch: mpsc::UnboundedSender<Batch>,
    /// Wakes the slow lane: one message while `slow_queue` has work it has not taken up
    /// (the message is counted in `pending` until the queue is empty again).
    pub slow_lane: mpsc::UnboundedSender<()>,
    /// Evaluations waiting for the slow lane, each once however many commits touched it
    /// (so what waits is bounded by the evaluations, not by the commits).
    pub slow_queue: Mutex<SlowQueue>,
    pub pending: AtomicU64,
    /// Commits published so far (incremented under the data write lock); a subscription
    /// evaluated without the registry lock compares it to learn whether a commit came
    /// between its evaluation and its registration.
    pub commits: AtomicU64,
    /// Held to check or signal that `pending` reached zero.
    pub settle_lock: Mutex<()>,
    /// Signalled (under `settle_lock`) when `pending` drops to zero.
    pub settled: Condvar,
    pub next_tx: AtomicU64,
    pub ttl_interval: Duration,
    /// The open persistence, when configured.
    pub persist: Option<Persistence>,
    /// Result size and definition count bounds.
    pub limits: Limits,
}

impl Inner {
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Hands a commit's changes to the dispatcher. Called while the data write lock is
    /// still held, so batches reach the dispatcher in commit order.
    pub fn publish(&self, changes: Vec<Change>, tx: Option<u64>, dropped: Vec<String>) {
        let events: Vec<Arc<ChangeEvent>> = changes
            .into_iter()
            .filter_map(|c| ChangeEvent::new(&c.bucket, c.key, c.old, c.new, tx))
            .map(Arc::new)
            .collect();
        if events.is_empty() && dropped.is_empty() {
            return;
        }
        // The broadcast feed gets events at commit time (non-blocking), so a receiver
        // sees exactly the changes committed after it subscribed, in commit order.
        if self.feed.receiver_count() > 0 {
            for event in &events {
                let _ = self.feed.send(event.clone());
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.send_batch(Batch {
            events,
            dropped,
            recheck: Vec::new(),
        });
    }

    /// Hands a batch to the dispatcher, counted in `pending` until it is processed.
    pub fn send_batch(&self, batch: Batch) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.dispatch.send(batch).is_err() && self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _guard = self.settle_lock.lock();
            self.settled.notify_all();
        }
    }

    /// Runs `f` under the write lock, queues its changes for persistence and publishes
    /// them if it succeeds; in sync durability, waits (after releasing the lock) until
    /// they are durable. `f` must leave no change behind when it fails (single operations
    /// check before writing).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Data, u64, &mut Vec<Change>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let (out, queued) = {
            let mut data = self.data.write();
            self.persist_check()?;
            let now = self.now();
            let mut changes = Vec::new();
            let before = data.bytes();
            let done = f(&mut data, now, &mut changes).and_then(|out| {
                data.check_growth(before, self.limits.max_store_bytes)?;
                Ok(out)
            });
            match done {
                Ok(out) => {
                    let queued = self.persist_ops(|| bridge::record_ops(&data, &changes));
                    self.publish(changes, None, Vec::new());
                    (out, queued)
                }
                Err(e) => {
                    data.rollback(changes);
                    return Err(e);
                }
            }
        };
        self.persist_wait(queued)?;
        Ok(out)
    }

    /// Errors when persistence is on but can no longer record writes (checked before a
    /// write changes memory).
    pub fn persist_check(&self) -> StoreResult<()> {
        self.persist.as_ref().map_or(Ok(()), Persistence::check)
    }

    /// Queues the ops built by `ops` (only called when persistence is on). Call under the
    /// lock that orders the commit.
    pub fn persist_ops(
        &self,
        ops: impl FnOnce() -> StoreResult<Vec<Op>>,
    ) -> StoreResult<Option<Ticket>> {
        match &self.persist {
            Some(p) => p.enqueue(ops()?),
            None => Ok(None),
        }
    }

    /// Waits for a queued commit as the durability mode requires. Call without locks.
    pub fn persist_wait(&self, queued: StoreResult<Option<Ticket>>) -> StoreResult<()> {
        let ticket = queued?;
        self.persist.as_ref().map_or(Ok(()), |p| p.wait(ticket))
    }
}

/// An embedded reactive store. Cheap to clone; all clones share the same data.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), noex_store::StoreError> {
/// use noex_store::{BucketDefinition, Store, StoreConfig};
/// use serde_json::json;
/// let store = Store::start(StoreConfig::default())?;
/// store.define_bucket("users", BucketDefinition::from_json(json!({
///     "key": "id",
///     "schema": {"id": {"type": "string", "generated": "uuid"}, "name": {"type": "string", "required": true}}
/// }))?)?;
/// let users = store.bucket("users");
/// let alice = users.insert(json!({"name": "Alice"}).as_object().unwrap().clone())?;
/// assert_eq!(alice["_version"], 1);
/// assert_eq!(users.count(None)?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl Store {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Current time of the store's clock (ms since epoch).
    pub fn now(&self) -> u64 {
        self.inner.now()
    }

    /// Defines a bucket. Errors: `BucketAlreadyExists`, `InvalidDefinition` (also for an
    /// empty name or one holding `.` or `*`, which change-event topics cannot carry),
    /// `LimitExceeded` when [`StoreConfig::max_buckets`] buckets exist.
    pub fn define_bucket(&self, name: &str, def: BucketDefinition) -> StoreResult<()> {
        if name.is_empty() {
            return Err(StoreError::invalid_def("bucket name must not be empty"));
        }
        // Change events are published on `bucket.<name>.<kind>`: a `.` or `*` in the name
        // would make topics ambiguous (and topic patterns see more than one bucket).
        if name.contains(['.', '*']) {
            return Err(StoreError::invalid_def(format!(
                "bucket name \"{name}\" must not contain '.' or '*'"
            )));
        }
        let bucket = Bucket::new(name, def)?;
        let queued = {
            let mut data = self.inner.data.write();
            if data.buckets.contains_key(name) {
                return Err(StoreError::BucketAlreadyExists {
                    bucket: name.to_owned(),
                });
            }
            let max = self.inner.limits.max_buckets;
            if data.buckets.len() >= max {
                return Err(StoreError::LimitExceeded {
                    message: format!("Bucket limit reached (max {max})"),
                });
            }
            if is_persistent(&bucket.def) {
                self.inner.persist_check()?;
            }
            let queued = self
                .inner
                .persist_ops(|| Ok(bridge::bucket_op(&bucket)?.into_iter().collect()));
            data.buckets.insert(name.to_owned(), bucket);
            data.touch(name);
            queued
        };
        self.inner.persist_wait(queued)
    }

    /// Drops a bucket and its records. Queries reading it keep their last result.
    pub fn drop_bucket(&self, name: &str) -> StoreResult<()> {
        let queued = {
            let mut data = self.inner.data.write();
            let persistent = is_persistent(&data.bucket(name)?.def);
            if persistent {
                self.inner.persist_check()?;
            }
            data.buckets.remove(name);
            // A transaction that read it sees a conflict: the entry is gone (a redefinition
            // starts after every earlier read).
            data.touch(name);
            data.bucket_changed.remove(name);
            let queued = self.inner.persist_ops(|| {
                Ok(if persistent {
                    vec![Op::DropBucket {
                        name: name.to_owned(),
                    }]
                } else {
                    Vec::new()
                })
            });
            self.inner.publish(Vec::new(), None, vec![name.to_owned()]);
            queued
        };
        self.inner.persist_wait(queued)
    }

    /// Adds fields or indexes, or changes the TTL (for records inserted from now on).
    pub fn update_bucket(&self, name: &str, update: BucketUpdate) -> StoreResult<()> {
        let mut data = self.inner.data.write();
        if is_persistent(&data.bucket(name)?.def) {
            self.inner.persist_check()?;
        }
        data.touch(name);
        let b = data.bucket_mut(name)?;
        let ttl_ms = match &update.ttl {
            Some(Some(t)) => Some(Some(crate::definition::ttl_ms(t)?)),
            Some(None) => Some(None),
            None => None,
        };
        if let Some(idx) = &update.add_indexes {
            // A field added by this same update may be indexed by it.
            let added = |f: &str| {
                update
                    .add_fields
                    .as_ref()
                    .is_some_and(|a| a.contains_key(f))
            };
            if let Some(f) = idx
                .iter()
                .find(|f| b.schema.field(f).is_none() && !added(f))
            {
                return Err(StoreError::invalid_arg(format!(
                    "cannot index \"{f}\": field is not in the schema of bucket \"{name}\""
                )));
            }
        }
        if let Some(fields) = &update.add_fields {
            b.add_fields(fields)?;
        }
        for f in update.add_indexes.iter().flatten() {
            b.add_index(f)?;
        }
        if let Some(ttl) = ttl_ms {
            b.ttl_ms = ttl;
            b.def.ttl = update.ttl.clone().flatten();
        }
        let queued = self
            .inner
            .persist_ops(|| Ok(bridge::bucket_op(b)?.into_iter().collect()));
        drop(data);
        self.inner.persist_wait(queued)
    }

    /// The definition of a bucket as it is now (serializes to the wire shape).
    pub fn bucket_schema(&self, name: &str) -> StoreResult<BucketDefinition> {
        Ok(self.inner.data.read().bucket(name)?.def.clone())
    }

    /// Number of records stored in bucket `name` (expired ones not yet swept included);
    /// `None` when there is no such bucket. Cheap: no record is read.
    pub fn bucket_len(&self, name: &str) -> Option<usize> {
        self.inner.data.read().buckets.get(name).map(|b| b.len())
    }

    /// Bytes the records of bucket `name` count against `max_store_bytes` (the larger of
    /// their JSON and their estimated memory); `None` when there is no such bucket. What a
    /// scan of the bucket reads, for deciding where to run it.
    pub fn bucket_bytes(&self, name: &str) -> Option<usize> {
        self.inner.data.read().buckets.get(name).map(|b| b.bytes())
    }

    /// Names of all buckets (sorted).
    pub fn bucket_names(&self) -> Vec<String> {
        self.inner.data.read().buckets.keys().cloned().collect()
    }
}

/// The change feed: handlers called for each committed change and a broadcast receiver.
impl Store {
    /// Registers `handler` for every committed change whose topic (`bucket.<name>.<type>`)
    /// matches `pattern`, a topic pattern in the protocol's grammar: `bucket.users.inserted`
    /// exactly, `bucket.*.deleted` (`*` is one segment), `bucket.users.*` or `bucket.*` (a
    /// trailing `.*` matches any depth), `*` (everything). `**` has no special meaning. Handlers run on the dispatcher thread
    /// (inside the tokio runtime the store was started on: they may spawn tasks).
    /// Returns an id for [`Store::off_change`](crate::Store::off_change).
    pub fn on_change<F>(&self, pattern: &str, handler: F) -> u64
    where
        F: Fn(&ChangeEvent) + Send + Sync + 'static,
    {
        self.inner
            .handlers
            .lock()
            .add(pattern.to_owned(), Arc::new(handler))
    }

    /// Removes a change handler; returns whether it existed.
    pub fn off_change(&self, id: u64) -> bool {
        self.inner.handlers.lock().remove(id)
    }

    /// A receiver of every change committed after this call, in commit order. Bounded: a receiver that
    /// falls behind gets `RecvError::Lagged` instead of slowing the store down.
    pub fn change_feed(&self) -> tokio::sync::broadcast::Receiver<Arc<ChangeEvent>> {
        self.inner.feed.subscribe()
    }
}

/// Durability controls and the persistence side table.
impl Store {
    /// The persistence file, when persistence is on.
    pub fn persistence_path(&self) -> Option<&Path> {
        self.inner.persist.as_ref().map(Persistence::path)
    }

    /// Engine transactions the persistence writer has committed since the store started
    /// (in sync mode each is one fsync, shared by every write queued when it began: group
    /// commit); `None` without persistence.
    pub fn persistence_commits(&self) -> Option<u64> {
        self.inner.persist.as_ref().map(Persistence::commits)
    }

    /// Blocks until every write made so far is durable (useful in batched mode, e.g. at
    /// shutdown). Without persistence: nothing to do.
    pub fn flush(&self) -> StoreResult<()> {
        self.inner
            .persist
            .as_ref()
            .map_or(Ok(()), Persistence::flush)
    }

    /// Writes what is queued, closes the persistence file and releases its lock (so it
    /// can be opened again, e.g. by a new store in the same process). Every later write
    /// fails; reads keep working. Idempotent; without persistence: nothing to do. Dropping
    /// the last clone of the store does the same.
    pub fn close_persistence(&self) -> StoreResult<()> {
        self.inner
            .persist
            .as_ref()
            .map_or(Ok(()), Persistence::close)
    }

    /// Sets (`Some`) or removes (`None`) an entry of the persistence side table: a small
    /// durable key/value space for state the store does not own (e.g. the rule engine's
    /// facts and rules, kept by the server). Same durability as record writes. Without
    /// persistence this does nothing and [`Store::load_aux`] stays empty.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), noex_store::StoreError> {
    /// # use noex_store::{DurabilityMode, PersistenceConfig, Store, StoreConfig};
    /// # let dir = std::env::temp_dir().join(format!("noex-aux-doc-{}", std::process::id()));
    /// let config = || StoreConfig {
    ///     persistence: Some(PersistenceConfig::in_dir(&dir, DurabilityMode::Sync)),
    ///     ..StoreConfig::default()
    /// };
    /// let store = Store::start(config())?;
    /// store.persist_aux("facts", "user:1:tier", Some(serde_json::json!("gold")))?;
    /// store.close_persistence()?;
    /// let store = Store::start(config())?;
    /// assert_eq!(store.load_aux("facts"), vec![("user:1:tier".to_owned(), serde_json::json!("gold"))]);
    /// # store.close_persistence()?;
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok(()) }
    /// ```
    pub fn persist_aux(&self, namespace: &str, key: &str, value: Option<Value>) -> StoreResult<()> {
        self.persist_aux_many(namespace, vec![(key.to_owned(), value)])
    }

    /// [`Store::persist_aux`] for several entries of one namespace, written as one commit
    /// (one fsync in sync mode, all or nothing after a crash).
    pub fn persist_aux_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Option<Value>)>,
    ) -> StoreResult<()> {
        match &self.inner.persist {
            Some(p) => {
                let queued = p.aux_set(namespace, entries);
                p.wait(queued?)
            }
            None => Ok(()),
        }
    }

    /// Every side-table entry of `namespace` (as loaded at start plus later changes),
    /// sorted by key.
    pub fn load_aux(&self, namespace: &str) -> Vec<(String, Value)> {
        self.inner
            .persist
            .as_ref()
            .map(|p| p.aux_entries(namespace))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::{DurabilityMode, PersistenceConfig};
    use serde_json::json;

    /// After the writer reports a failure, writes are refused before they touch memory,
    /// while reads keep working.
    #[tokio::test]
    async fn a_failed_writer_makes_the_store_refuse_writes() {
        let dir = std::env::temp_dir().join(format!("noex-persist-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::start(StoreConfig {
            persistence: Some(PersistenceConfig::in_dir(&dir, DurabilityMode::Sync)),
            ..StoreConfig::default()
        })
        .unwrap();
        let def = json!({"key": "id", "schema": {"id": {"type": "number"}}});
        store
            .define_bucket("b", BucketDefinition::from_json(def).unwrap())
            .unwrap();
        let b = store.bucket("b");
        b.insert(json!({"id": 1}).as_object().unwrap().clone())
            .unwrap();
        let persist = store.inner.persist.as_ref().unwrap();
        persist.fail_writer("disk full");

        let err = b
            .insert(json!({"id": 2}).as_object().unwrap().clone())
            .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(
            store
                .transaction(|tx| tx.bucket("b")?.delete(&json!(1)))
                .is_err()
        );
        assert!(store.drop_bucket("b").is_err());
        assert_eq!(b.count(None).unwrap(), 1, "memory unchanged, reads work");
        assert!(store.persist_aux("x", "k", Some(json!(1))).is_err());
        assert!(store.flush().is_err());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
