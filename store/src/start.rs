//! Starting a store: loading the persistence file, building the shared state and
//! starting what runs beside the callers (the dispatcher and slow-lane threads, the TTL
//! sweep). The one place that knows every part of the store.

use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::sync::{broadcast, mpsc};

use crate::data::Data;
use crate::error::{StoreError, StoreResult};
use crate::events::HandlerRegistry;
use crate::persistence::Persistence;
use crate::persistence::bridge;
use crate::registry::Registry;
use crate::store::{Inner, Limits, Store, StoreConfig};
use noex_model::clock::TokioClock;

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
                let (persist, snapshot) =
                    Persistence::open(pc, clock.now_ms(), config.commit_observer.clone())?;
                for (name, def) in bridge::restore(snapshot, persist.path(), &mut data)? {
                    registry.insert_declarative(name, def);
                }
                Some(persist)
            }
            None => None,
        };
        // Set after the restore: what was stored before is never refused.
        data.max_record_bytes = config.max_record_bytes;
        data.max_transaction_bytes = config.max_transaction_bytes.max(config.max_record_bytes);
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
            slow_queue: Mutex::new(crate::store::SlowQueue::default()),
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
}
