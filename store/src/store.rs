//! The [`Store`]: configuration, the shared state behind one lock (so a multi-bucket
//! commit is atomic for every reader), bucket definition management and the write path
//! that turns record changes into one published batch per commit.

use parking_lot::{Condvar, Mutex, RwLock};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

use crate::bucket::Bucket;
use crate::definition::{BucketDefinition, BucketUpdate};
use crate::error::{StoreError, StoreResult};
use crate::events::{ChangeEvent, HandlerRegistry};
use crate::handle::BucketHandle;
use crate::persistence::bridge::{self, is_persistent};
use crate::persistence::{Op, Persistence, PersistenceConfig, Ticket};
use crate::reactive::Registry;
use crate::value::{Record, key_string};
use noex_model::clock::{Clock, TokioClock};

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
    /// expiry and the TTL sweep follow it (default: a [`TokioClock`]).
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
    /// Longest a re-evaluation of a subscription may run on the slow lane (see
    /// [`Store::subscribe_with`]): past it the evaluation stops, and its subscriptions end
    /// with [`StoreError::ReadTimeout`]. Default 1 s. (The dispatcher itself gives an
    /// evaluation 5 ms before handing it to the slow lane.)
    pub max_evaluation_time: Duration,
}

/// Default of [`StoreConfig::max_evaluation_time`]: 1 s.
pub const DEFAULT_MAX_EVALUATION_TIME: Duration = Duration::from_secs(1);

/// Default of [`StoreConfig::max_record_bytes`]: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
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
            max_evaluation_time: DEFAULT_MAX_EVALUATION_TIME,
        }
    }
}

/// All buckets; guarded by one lock so commits are atomic across buckets.
pub(crate) struct Data {
    pub buckets: BTreeMap<String, Bucket>,
    /// [`StoreConfig::max_record_bytes`], checked by every write of a record.
    pub max_record_bytes: usize,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            buckets: BTreeMap::new(),
            max_record_bytes: usize::MAX,
        }
    }
}

/// One record change inside a commit; also the undo log of a transaction.
pub(crate) struct Change {
    pub bucket: String,
    pub key: Value,
    pub old: Option<Record>,
    pub new: Option<Record>,
    /// Position of a removed record, so a rollback restores insertion order.
    pub seq: Option<u64>,
}

impl Data {
    /// Bytes of JSON of every stored record, all buckets together.
    pub fn bytes(&self) -> usize {
        self.buckets
            .values()
            .fold(0usize, |n, b| n.saturating_add(b.bytes()))
    }

    /// Fails a commit that grew the records from `before` bytes to past `max` (a commit
    /// that shrinks them always passes, so deletes work on a full store).
    pub fn check_growth(&self, before: usize, max: usize) -> StoreResult<()> {
        let after = self.bytes();
        if after > before && after > max {
            return Err(StoreError::LimitExceeded {
                message: format!(
                    "Store is full: records may take at most {max} bytes; delete records to \
                     make room"
                ),
            });
        }
        Ok(())
    }

    pub fn bucket(&self, name: &str) -> StoreResult<&Bucket> {
        self.buckets
            .get(name)
            .ok_or_else(|| StoreError::BucketNotDefined {
                bucket: name.to_owned(),
            })
    }

    pub fn bucket_mut(&mut self, name: &str) -> StoreResult<&mut Bucket> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| StoreError::BucketNotDefined {
                bucket: name.to_owned(),
            })
    }

    /// Stores a prepared record: replaces a live record with the same key (update) or
    /// inserts it (dropping an expired leftover, then evicting past `maxSize`).
    pub fn apply_put(
        &mut self,
        bucket: &str,
        record: Record,
        now: u64,
        changes: &mut Vec<Change>,
    ) -> StoreResult<()> {
        let size = crate::bucket::record_bytes(&record);
        let max = self.max_record_bytes;
        if size > max {
            return Err(StoreError::invalid_arg(format!(
                "Record exceeds {max} bytes (it has {size})"
            )));
        }
        let b = self.bucket_mut(bucket)?;
        let key_value = record.get(&b.def.key).cloned().unwrap_or(Value::Null);
        let key = key_string(&key_value);
        let live = b.get(&key, now).is_some();
        if !live && b.get_raw(&key).is_some() {
            b.check_unique(&record, &key)?;
            let (seq, old) = b.remove_seq(&key).unzip();
            changes.push(Change {
                bucket: bucket.to_owned(),
                key: key_value.clone(),
                old,
                new: None,
                seq,
            });
        }
        let old = b.put(record.clone(), size)?;
        changes.push(Change {
            bucket: bucket.to_owned(),
            key: key_value,
            old,
            new: Some(record),
            seq: None,
        });
        if !live {
            if let Some(max) = b.def.max_size {
                while b.len() > max {
                    let Some(oldest) = b.oldest_key() else { break };
                    if oldest == key {
                        break;
                    }
                    if let Some((seq, old)) = b.remove_seq(&oldest) {
                        let k = old.get(&b.def.key).cloned().unwrap_or(Value::Null);
                        changes.push(Change {
                            bucket: bucket.to_owned(),
                            key: k,
                            old: Some(old),
                            new: None,
                            seq: Some(seq),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes a record (live or expired).
    pub fn apply_remove(
        &mut self,
        bucket: &str,
        key: &Value,
        changes: &mut Vec<Change>,
    ) -> StoreResult<bool> {
        let b = self.bucket_mut(bucket)?;
        let (seq, old) = b.remove_seq(&key_string(key)).unzip();
        let removed = old.is_some();
        if removed {
            changes.push(Change {
                bucket: bucket.to_owned(),
                key: key.clone(),
                old,
                new: None,
                seq,
            });
        }
        Ok(removed)
    }

    /// Undoes `changes` (newest first).
    pub fn rollback(&mut self, changes: Vec<Change>) {
        for c in changes.into_iter().rev() {
            let Some(b) = self.buckets.get_mut(&c.bucket) else {
                continue;
            };
            let key = key_string(&c.key);
            match (c.old, c.seq) {
                (Some(old), Some(seq)) => b.restore_at(seq, key, old),
                (Some(old), None) => {
                    b.put_unchecked(key, old);
                }
                (None, _) => {
                    b.remove(&key);
                }
            }
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

/// Shared state of a store.
pub(crate) struct Inner {
    pub name: String,
    pub data: RwLock<Data>,
    pub reactive: Mutex<Registry>,
    pub handlers: Mutex<HandlerRegistry>,
    pub clock: Arc<dyn Clock>,
    pub feed: broadcast::Sender<Arc<ChangeEvent>>,
    pub dispatch: mpsc::UnboundedSender<Batch>,
    /// Re-evaluations of slow evaluations, for the slow lane (each message counted in
    /// `pending` until it is processed).
    pub slow_lane: mpsc::UnboundedSender<Vec<crate::reactive::EvalKey>>,
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
    /// Creates a store, starts its dispatcher thread (change handlers, query
    /// re-evaluation, notifications: an OS thread of its own that enters the current tokio
    /// runtime, so handlers may spawn tasks and timers, and a long re-evaluation never
    /// holds a runtime worker) and spawns the TTL sweep on the current tokio runtime.
    /// Errors outside a runtime.
    ///
    /// With [`StoreConfig::persistence`], opens (or creates) the file and loads every
    /// bucket, record, declarative query, counter and side-table entry before returning;
    /// records whose TTL passed while the store was down are dropped. A file that cannot
    /// be opened or read fails with a [`StoreError::Internal`] naming the file; the store
    /// never starts empty in its place.
    pub fn start(config: StoreConfig) -> StoreResult<Store> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| StoreError::Internal {
            message: "Store::start needs a tokio runtime".into(),
        })?;
        let clock = config.clock.unwrap_or_else(|| Arc::new(TokioClock::new()));
        let mut data = Data::default();
        let mut registry = Registry::default();
        let persist = match &config.persistence {
            Some(pc) => {
                let (persist, snapshot) = Persistence::open(pc, clock.now_ms())?;
                bridge::restore(snapshot, persist.path(), &mut data, &mut registry)?;
                Some(persist)
            }
            None => None,
        };
        // Set after the restore: what was stored before is never refused.
        data.max_record_bytes = config.max_record_bytes;
        let (tx, rx) = mpsc::unbounded_channel();
        let (slow_tx, slow_rx) = mpsc::unbounded_channel();
        let (feed, _) = broadcast::channel(config.change_feed_capacity.max(1));
        let inner = Arc::new(Inner {
            name: config.name,
            data: RwLock::new(data),
            reactive: Mutex::new(registry),
            handlers: Mutex::new(HandlerRegistry::default()),
            clock,
            feed,
            dispatch: tx,
            slow_lane: slow_tx,
            pending: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            settle_lock: Mutex::new(()),
            settled: Condvar::new(),
            next_tx: AtomicU64::new(0),
            ttl_interval: config.ttl_check_interval,
            persist,
            limits: Limits {
                max_result_bytes: config.max_result_bytes,
                max_buckets: config.max_buckets,
                max_queries: config.max_queries,
                max_store_bytes: config.max_store_bytes,
                max_evaluation_time: config.max_evaluation_time,
            },
        });
        let weak = Arc::downgrade(&inner);
        let runtime = handle.clone();
        std::thread::Builder::new()
            .name(format!("{}-dispatch", inner.name))
            .spawn(move || crate::reactive::run_dispatcher(weak, rx, runtime))
            .map_err(|e| StoreError::Internal {
                message: format!("cannot start the dispatcher thread: {e}"),
            })?;
        let weak = Arc::downgrade(&inner);
        let runtime = handle.clone();
        std::thread::Builder::new()
            .name(format!("{}-slow", inner.name))
            .spawn(move || crate::reactive::run_slow_lane(weak, slow_rx, runtime))
            .map_err(|e| StoreError::Internal {
                message: format!("cannot start the slow-lane thread: {e}"),
            })?;
        if !inner.ttl_interval.is_zero() {
            handle.spawn(crate::ttl::run_sweep(
                Arc::downgrade(&inner),
                Arc::clone(&inner.clock),
                inner.ttl_interval,
            ));
        }
        Ok(Store { inner })
    }

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

    /// A handle for reads and writes on bucket `name` (checked on each call).
    pub fn bucket(&self, name: &str) -> BucketHandle {
        BucketHandle::new(self.clone(), name)
    }
}
