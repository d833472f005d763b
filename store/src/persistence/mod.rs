//! Durable storage under the store, on the embedded engine [`redb`].
//!
//! The in-memory [`Data`](crate::data::Data) stays the source of truth for reads; every
//! commit additionally becomes one ordered message of [`Op`]s (bucket definitions, record
//! states, declarative queries, autoincrement counters, side-table entries) sent to a
//! single writer thread that owns the database. The writer applies each group of messages
//! in **one** engine transaction, so a store transaction is durable atomically: after a
//! crash the file holds a prefix of the commit sequence, never half a commit.
//!
//! - [`DurabilityMode::Sync`]: the writer commits whatever is queued as soon as it can
//!   (group commit, fsync per engine transaction) and the store's write call waits until
//!   its own message is durable, so an acknowledged write survives `kill -9`.
//! - [`DurabilityMode::Batched`]: writes return at once; the writer gathers messages for
//!   up to `window` and commits them together. A crash loses at most the last window.
//!
//! Messages are numbered ("tickets") in the order they are queued; the writer publishes
//! the highest durable ticket, and a waiter sleeps on a condition variable until its own
//! ticket is durable or the writer has failed. After a failure (disk full, I/O error) the
//! store refuses further writes instead of diverging silently from its file.
//!
//! A caller on an async runtime need not block a thread for the fsync: inside
//! [`defer_durability`] a sync write returns once its change is in memory and queued, and
//! the caller awaits [`Durability::wait`] (woken by the writer) before acknowledging it.
//!
//! Submodules: `engine` (tables, applying ops, the writer loop, loading) and `bridge`
//! (turning a commit of the store into ops, and a loaded file into store state).

pub(crate) mod bridge;
mod engine;

use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{StoreError, StoreResult};
use noex_model::ttl::Ttl;

pub(crate) use engine::Snapshot;

/// File name used by [`PersistenceConfig::in_dir`].
pub const DEFAULT_FILE_NAME: &str = "noex-store.redb";

/// Most queued commits before a writer blocks (back-pressure when the disk is slower than
/// the writers).
const QUEUE_CAPACITY: usize = 16_384;

/// When a write is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityMode {
    /// A write call returns only after its commit is on disk (fsync). Concurrent writers
    /// share fsyncs (group commit).
    Sync,
    /// Writes return immediately; commits are grouped and written at most `window` after
    /// they happened. A crash loses at most the last window of writes.
    Batched {
        /// Longest time a commit waits before it is written.
        window: Duration,
    },
}

impl DurabilityMode {
    /// Batch window of `"batched"` without an explicit window.
    pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(50);
}

impl std::str::FromStr for DurabilityMode {
    type Err = StoreError;

    /// Parses `sync`, `batched` (window [`DurabilityMode::DEFAULT_BATCH_WINDOW`]) or
    /// `batched:<window>` with the TTL syntax (`batched:20ms`, `batched:1s`), e.g. for a
    /// command-line flag.
    ///
    /// ```
    /// use noex_store::DurabilityMode;
    /// use std::time::Duration;
    /// assert_eq!("sync".parse(), Ok(DurabilityMode::Sync));
    /// assert_eq!("batched:20ms".parse(), Ok(DurabilityMode::Batched { window: Duration::from_millis(20) }));
    /// assert!("eventually".parse::<DurabilityMode>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.split_once(':') {
            None if s.eq_ignore_ascii_case("sync") => Ok(DurabilityMode::Sync),
            None if s.eq_ignore_ascii_case("batched") => Ok(DurabilityMode::Batched {
                window: DurabilityMode::DEFAULT_BATCH_WINDOW,
            }),
            Some((mode, window)) if mode.eq_ignore_ascii_case("batched") => {
                let ms = Ttl::Text(window.to_owned()).as_ms().map_err(|_| {
                    StoreError::invalid_arg(format!(
                        "invalid batch window \"{window}\" (e.g. 50ms, 1s)"
                    ))
                })?;
                Ok(DurabilityMode::Batched {
                    window: Duration::from_millis(ms),
                })
            }
            _ => Err(StoreError::invalid_arg(format!(
                "invalid durability \"{s}\": expected sync, batched or batched:<window>"
            ))),
        }
    }
}

/// Where and how the store persists its data.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), noex_store::StoreError> {
/// use noex_store::{DurabilityMode, PersistenceConfig, Store, StoreConfig};
/// let store = Store::start(StoreConfig {
///     persistence: Some(PersistenceConfig::in_dir("./data", DurabilityMode::Sync)),
///     ..StoreConfig::default()
/// })?;
/// assert!(store.stats().persistence.enabled);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistenceConfig {
    /// The database file (created if missing; its directory must exist, or be created by
    /// [`PersistenceConfig::in_dir`]).
    pub path: PathBuf,
    /// When writes are durable.
    pub durability: DurabilityMode,
}

impl PersistenceConfig {
    /// Persistence into the file `path`.
    pub fn new(path: impl Into<PathBuf>, durability: DurabilityMode) -> Self {
        PersistenceConfig {
            path: path.into(),
            durability,
        }
    }

    /// Persistence into [`DEFAULT_FILE_NAME`] inside `dir` (the directory is created when
    /// the store starts).
    pub fn in_dir(dir: impl AsRef<Path>, durability: DurabilityMode) -> Self {
        PersistenceConfig::new(dir.as_ref().join(DEFAULT_FILE_NAME), durability)
    }
}

/// One change to the persisted state. Record keys are the store's canonical key strings.
#[derive(Debug)]
pub(crate) enum Op {
    /// Creates or replaces a bucket definition (JSON of `BucketDefinition`).
    PutBucket { name: String, def: String },
    /// Removes a bucket definition, its records and its counter.
    DropBucket { name: String },
    /// Stores a record with its position in insertion order (JSON of the record).
    PutRecord {
        bucket: String,
        key: String,
        seq: u64,
        record: String,
    },
    /// Removes a record.
    DeleteRecord { bucket: String, key: String },
    /// The bucket's autoincrement counter.
    Counter { bucket: String, value: u64 },
    /// Creates or replaces a declarative query (JSON of `QueryDefinition`).
    PutQuery { name: String, def: String },
    /// Removes a declarative query.
    DeleteQuery { name: String },
    /// Sets (`Some`, JSON) or removes (`None`) a side-table entry.
    Aux {
        namespace: String,
        key: String,
        value: Option<String>,
    },
}

/// Called with the duration of each engine commit (see `StoreConfig::commit_observer`).
pub type CommitObserver = std::sync::Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// One queued commit.
pub(crate) struct Msg {
    ticket: u64,
    ops: Vec<Op>,
    /// Commit now instead of waiting for the batch window (flush).
    urgent: bool,
}

/// Position of a commit in the write queue; see [`Persistence::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

/// What the writer thread reports back.
#[derive(Default)]
pub(crate) struct WriterState {
    /// Highest ticket whose commit is durable.
    durable: u64,
    /// Set when a commit failed; every later write fails too.
    failed: Option<String>,
}

/// Writer state shared with the writer thread.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<WriterState>,
    /// Wakes threads blocked in [`Persistence::wait`].
    changed: Condvar,
    /// Wakes tasks awaiting [`Durability::wait`].
    notify: tokio::sync::Notify,
    /// Engine transactions committed so far (each one fsync in sync mode).
    commits: AtomicU64,
}

impl Shared {
    fn finish(&self, ticket: u64, result: Result<(), String>) {
        {
            let mut s = self.state.lock();
            match result {
                Ok(()) => s.durable = s.durable.max(ticket),
                Err(e) => {
                    if s.failed.is_none() {
                        tracing::error!(error = %e, "store persistence failed; further writes are refused");
                        s.failed = Some(e);
                    }
                }
            }
            self.changed.notify_all();
        }
        self.notify.notify_waiters();
    }

    /// Whether `ticket` is durable (`Some(Ok)`), can never be (`Some(Err)`: the writer
    /// failed), or not yet (`None`).
    fn settled(&self, ticket: u64) -> Option<StoreResult<()>> {
        let s = self.state.lock();
        if s.durable >= ticket {
            return Some(Ok(()));
        }
        s.failed.as_ref().map(|e| Err(write_error(e)))
    }

    /// Waits without blocking the thread until `ticket` is durable or the writer failed.
    async fn durable(&self, ticket: u64) -> StoreResult<()> {
        loop {
            let mut notified = std::pin::pin!(self.notify.notified());
            // Registered before the check, so a commit finishing in between still wakes us.
            notified.as_mut().enable();
            if let Some(done) = self.settled(ticket) {
                return done;
            }
            notified.await;
        }
    }
}

/// Sync commits still to become durable: per persistence, its highest ticket.
type Pending = Vec<(Arc<Shared>, u64)>;

thread_local! {
    /// Inside [`defer_durability`] on this thread: the sync commits whose fsync its caller
    /// awaits instead of the write calls blocking for them.
    static DEFERRED: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The fsyncs a [`defer_durability`] call's writes still wait for. Await
/// [`Durability::wait`] before telling anyone that those writes happened.
#[must_use = "a deferred sync write is durable only once `wait` returned Ok"]
#[derive(Default)]
pub struct Durability {
    pending: Pending,
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Durability {
    /// Whether some write still waits for its fsync (false without sync persistence).
    pub fn is_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Resolves once every deferred write is durable, without blocking the thread: Ok,
    /// or the error the write would have returned (the disk failed; memory already holds
    /// the change, as after a failed sync write).
    pub async fn wait(self) -> StoreResult<()> {
        for (shared, ticket) in self.pending {
            shared.durable(ticket).await?;
        }
        Ok(())
    }
}

/// Runs `f` (store calls on this thread) so that its sync-durability writes do not block
/// the thread for their fsync: each write returns once it is applied in memory and queued
/// for the disk (so it is visible to reads at once, as always), and the returned
/// [`Durability`] resolves when all of them are on disk. Meant for async servers: call the
/// store inside `f` on a runtime worker, then await [`Durability::wait`] before
/// acknowledging the writes, and the worker serves other tasks while the disk works.
/// In batched mode and without persistence nothing is deferred. Nested calls each get
/// their own writes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), noex_store::StoreError> {
/// use noex_store::{BucketDefinition, DurabilityMode, PersistenceConfig, Store, StoreConfig, defer_durability};
/// use serde_json::json;
/// # let dir = std::env::temp_dir().join(format!("noex-defer-doc-{}", std::process::id()));
/// let store = Store::start(StoreConfig {
///     persistence: Some(PersistenceConfig::in_dir(&dir, DurabilityMode::Sync)),
///     ..StoreConfig::default()
/// })?;
/// store.define_bucket("notes", BucketDefinition::from_json(json!({
///     "key": "id", "schema": {"id": {"type": "number"}}
/// }))?)?;
/// let notes = store.bucket("notes");
/// let (inserted, durability) = defer_durability(|| notes.insert(json!({"id": 1}).as_object().unwrap().clone()));
/// inserted?;
/// assert!(durability.is_pending());
/// durability.wait().await?; // on disk now: safe to acknowledge
/// # store.close_persistence()?;
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok(()) }
/// ```
pub fn defer_durability<T>(f: impl FnOnce() -> T) -> (T, Durability) {
    /// Puts the outer scope back even if `f` unwinds.
    struct Restore(Option<Pending>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            DEFERRED.with(|d| *d.borrow_mut() = outer);
        }
    }
    let outer = DEFERRED.with(|d| d.borrow_mut().replace(Vec::new()));
    let restore = Restore(outer);
    let out = f();
    let pending = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (out, Durability { pending })
}

/// Hands `ticket` to the enclosing [`defer_durability`] on this thread, if there is one.
fn defer(shared: &Arc<Shared>, ticket: u64) -> bool {
    DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(pending) => {
            // Tickets are durable in order: one entry per persistence, the highest ticket.
            match pending.iter_mut().find(|(s, _)| Arc::ptr_eq(s, shared)) {
                Some((_, t)) => *t = (*t).max(ticket),
                None => pending.push((shared.clone(), ticket)),
            }
            true
        }
        None => false,
    })
}

struct Queue {
    tx: Option<SyncSender<Msg>>,
    last: u64,
}

/// Side-table entries: namespace → key → value.
type AuxMap = BTreeMap<String, BTreeMap<String, Value>>;

/// The open persistence of a store: the write queue, the writer thread and the side table.
pub(crate) struct Persistence {
    path: PathBuf,
    mode: DurabilityMode,
    queue: Mutex<Queue>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    aux: Mutex<AuxMap>,
}

impl Persistence {
    /// Opens (or creates) the file, loads everything in it (dropping records that expired
    /// at `now`) and starts the writer thread. Any unreadable content is an error naming
    /// the file.
    pub fn open(
        config: &PersistenceConfig,
        now: u64,
        observer: Option<CommitObserver>,
    ) -> StoreResult<(Persistence, Snapshot)> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                file_error(
                    &path,
                    format!("cannot create directory {}: {e}", dir.display()),
                )
            })?;
        }
        let (db, mut snapshot) = engine::open_and_load(&path, now)?;
        let aux = std::mem::take(&mut snapshot.aux);
        let shared = Arc::new(Shared::default());
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let mode = config.durability;
        let writer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("noex-store-persist".into())
            .spawn(move || engine::run_writer(db, rx, mode, &writer_shared, observer))
            .map_err(|e| file_error(&path, format!("cannot start the writer thread: {e}")))?;
        Ok((
            Persistence {
                path,
                mode,
                queue: Mutex::new(Queue {
                    tx: Some(tx),
                    last: 0,
                }),
                shared,
                thread: Mutex::new(Some(thread)),
                aux: Mutex::new(aux),
            },
            snapshot,
        ))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Engine transactions committed so far (each one fsync in sync mode).
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Errors if writes can no longer be persisted (the writer failed or was closed).
    /// Called before a write changes memory, so a refused write changes nothing.
    pub fn check(&self) -> StoreResult<()> {
        if let Some(e) = &self.shared.state.lock().failed {
            return Err(write_error(e));
        }
        if self.queue.lock().tx.is_none() {
            return Err(write_error("the store's persistence is closed"));
        }
        Ok(())
    }

    /// Queues one commit. Must be called under the lock that orders the commit, so the
    /// file sees commits in the order memory saw them.
    pub fn enqueue(&self, ops: Vec<Op>) -> StoreResult<Option<Ticket>> {
        if ops.is_empty() {
            return Ok(None);
        }
        self.send(ops, false).map(Some)
    }

    fn send(&self, ops: Vec<Op>, urgent: bool) -> StoreResult<Ticket> {
        let mut q = self.queue.lock();
        let ticket = q.last + 1;
        let tx =
            q.tx.as_ref()
                .ok_or_else(|| write_error("the store's persistence is closed"))?;
        if tx
            .send(Msg {
                ticket,
                ops,
                urgent,
            })
            .is_err()
        {
            // The writer thread is gone: nothing more reaches the file, so refuse every
            // later write before it changes memory (as after a failed commit).
            let stopped = "the persistence writer has stopped";
            self.shared.finish(ticket, Err(stopped.to_owned()));
            return Err(write_error(stopped));
        }
        q.last = ticket;
        Ok(Ticket(ticket))
    }

    /// In [`DurabilityMode::Sync`], blocks until `ticket` is durable (inside
    /// [`defer_durability`]: hands the ticket to its caller instead); in batched mode
    /// returns at once (unless the writer already failed).
    pub fn wait(&self, ticket: Option<Ticket>) -> StoreResult<()> {
        let Some(ticket) = ticket else { return Ok(()) };
        match self.mode {
            DurabilityMode::Sync if defer(&self.shared, ticket.0) => {
                match &self.shared.state.lock().failed {
                    Some(e) => Err(write_error(e)),
                    None => Ok(()),
                }
            }
            DurabilityMode::Sync => self.wait_durable(ticket),
            DurabilityMode::Batched { .. } => match &self.shared.state.lock().failed {
                Some(e) => Err(write_error(e)),
                None => Ok(()),
            },
        }
    }

    fn wait_durable(&self, Ticket(ticket): Ticket) -> StoreResult<()> {
        let wait = || {
            let mut s = self.shared.state.lock();
            loop {
                if s.durable >= ticket {
                    return Ok(());
                }
                if let Some(e) = &s.failed {
                    return Err(write_error(e));
                }
                self.shared.changed.wait(&mut s);
            }
        };
        // On a multi-thread tokio runtime, tell the scheduler this worker is about to
        // block for an fsync so it hands its other tasks to another worker (the store's
        // API is synchronous; this keeps a server's other connections moving).
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    /// Blocks until every commit queued so far is durable (whatever the mode).
    /// A failed writer is reported at once; with nothing queued since the last durable
    /// commit there is nothing to write.
    pub fn flush(&self) -> StoreResult<()> {
        self.check()?;
        let last = self.queue.lock().last;
        if self.shared.state.lock().durable >= last {
            return Ok(());
        }
        let ticket = self.send(Vec::new(), true)?;
        self.wait_durable(ticket)
    }

    /// Writes what is queued, stops the writer and releases the file. Later writes fail.
    pub fn close(&self) -> StoreResult<()> {
        let tx = self.queue.lock().tx.take();
        drop(tx);
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                return Err(write_error("the persistence writer panicked"));
            }
        }
        match &self.shared.state.lock().failed {
            Some(e) => Err(write_error(e)),
            None => Ok(()),
        }
    }

    /// Sets (`Some`) or removes (`None`) side-table entries in memory and queues their
    /// writes as ONE commit (under the side-table lock, so the file sees changes in memory
    /// order).
    pub fn aux_set(
        &self,
        namespace: &str,
        entries: Vec<(String, Option<Value>)>,
    ) -> StoreResult<Option<Ticket>> {
        self.check()?;
        let ops = entries
            .iter()
            .map(|(key, value)| {
                let value = value
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::invalid_arg(format!("side-table value: {e}")))?;
                Ok(Op::Aux {
                    namespace: namespace.to_owned(),
                    key: key.clone(),
                    value,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let mut aux = self.aux.lock();
        let ticket = self.enqueue(ops)?;
        for (key, value) in entries {
            match value {
                Some(v) => {
                    aux.entry(namespace.to_owned()).or_default().insert(key, v);
                }
                None => {
                    if let Some(ns) = aux.get_mut(namespace) {
                        ns.remove(&key);
                        if ns.is_empty() {
                            aux.remove(namespace);
                        }
                    }
                }
            }
        }
        Ok(ticket)
    }

    /// Side-table entries of `namespace`, sorted by key.
    pub fn aux_entries(&self, namespace: &str) -> Vec<(String, Value)> {
        self.aux
            .lock()
            .get(namespace)
            .map(|ns| ns.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
impl Persistence {
    /// Makes the writer report `message` as a failure, as a full disk would.
    pub(crate) fn fail_writer(&self, message: &str) {
        self.shared.finish(0, Err(message.into()));
    }
}

impl Drop for Persistence {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, path = %self.path.display(), "closing store persistence");
        }
    }
}

/// An error about the file itself (opening, loading): names the file.
pub(crate) fn file_error(path: &Path, message: impl std::fmt::Display) -> StoreError {
    StoreError::Internal {
        message: format!("store file \"{}\": {message}", path.display()),
    }
}

/// A write that could not be made durable.
fn write_error(message: impl std::fmt::Display) -> StoreError {
    StoreError::Internal {
        message: format!("write not persisted: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_modes_parse() {
        assert_eq!("SYNC".parse(), Ok(DurabilityMode::Sync));
        assert_eq!(
            "batched".parse(),
            Ok(DurabilityMode::Batched {
                window: DurabilityMode::DEFAULT_BATCH_WINDOW
            })
        );
        assert_eq!(
            " batched:2s ".parse(),
            Ok(DurabilityMode::Batched {
                window: Duration::from_secs(2)
            })
        );
        for bad in [
            "",
            "batched:",
            "batched:0ms",
            "batched:soon",
            "sync:1s",
            "memory",
        ] {
            assert!(bad.parse::<DurabilityMode>().is_err(), "{bad}");
        }
    }
}
