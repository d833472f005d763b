//! Reactive queries: defining them, subscriptions (callbacks or watch channels) to the
//! shared evaluations keyed by `(query, params)` (held in `registry`), the dispatcher
//! that re-evaluates only affected evaluations after each commit and notifies on change,
//! and `settle()`.
//!
//! The dispatcher is an OS thread of its own (entered into the tokio runtime the store
//! was started on, so change handlers may spawn tasks and timers): a long re-evaluation
//! never holds a runtime worker, and takes the data lock for one evaluation at a time.
//! An evaluation that once took longer than [`SLOW_EVALUATION`] is re-evaluated from then
//! on by a second thread, the slow lane, which coalesces what arrived while it worked, so
//! heavy queries delay only each other's pushes.
//! A subscribe's first evaluation runs on the caller's thread without the registry lock;
//! if a commit came between it and its registration, the dispatcher re-evaluates it once
//! (a recheck batch), so no change is missed.
//! An evaluation whose re-evaluation fails (an error, a panic, a result past
//! `max_result_bytes`) is removed and its subscriptions end: `on_end` of
//! [`Store::subscribe_with`] is called, a watch channel is closed. A re-evaluation that
//! fails because its bucket was dropped keeps the last result instead.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, watch};

use crate::definition::QueryDefinition;
use crate::error::{StoreError, StoreResult};
use crate::filter::Filter;
use crate::persistence::Op;
use crate::persistence::bridge::{is_persistent, query_op};
use crate::query::{
    Deps, Locked, QueryContext, QueryKind, QueryResult, evaluate, evaluate_locked,
    evaluate_unlocked,
};
use crate::registry::{
    EndHandler, EvalKey, Evaluation, Sink, Subscriber, SubscriptionCallback, SubscriptionId,
    canonical,
};
use crate::store::{Batch, Inner, Store};
use crate::value::key_string;

/// An evaluation that takes longer than this moves to the slow lane for good, with every
/// other evaluation of its query; the dispatcher stops one at this time (its work is
/// redone on the slow lane).
const SLOW_EVALUATION: std::time::Duration = std::time::Duration::from_millis(5);

/// Time the dispatcher spends re-evaluating for one batch of commits; what is left when
/// it has passed goes to the slow lane (without being marked slow), so many queries that
/// are each just under [`SLOW_EVALUATION`] cannot hold every push either.
const DISPATCH_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(20);

pub use noex_model::definition::QueryInfo;

impl Store {
    /// Registers a query; `persist` is the op recording it durably (queued under the
    /// registry lock, so definitions reach the file in the order they happened).
    fn define(&self, name: &str, kind: QueryKind, persist: Option<Op>) -> StoreResult<()> {
        let queued = {
            let mut reg = self.inner.reactive.lock();
            if reg.queries.contains_key(name) {
                return Err(StoreError::QueryAlreadyExists {
                    name: name.to_owned(),
                });
            }
            let max = self.inner.limits.max_queries;
            if reg.queries.len() >= max {
                return Err(StoreError::LimitExceeded {
                    message: format!("Query limit reached (max {max})"),
                });
            }
            if persist.is_some() {
                self.inner.persist_check()?;
            }
            let queued = self.inner.persist_ops(|| Ok(persist.into_iter().collect()));
            reg.queries.insert(name.to_owned(), kind);
            queued
        };
        self.inner.persist_wait(queued)
    }

    /// Defines a declarative query. Errors: `QueryAlreadyExists`, `BucketNotDefined`,
    /// `InvalidDefinition` (bad sort direction, aggregate without field, a filter that
    /// does not compile), `LimitExceeded` when [`StoreConfig::max_queries`](crate::StoreConfig::max_queries)
    /// queries exist.
    ///
    /// `{{ params.x }}` placeholders in the filter are bound as values when the query is
    /// evaluated ([`Filter::compile_with_params`]): a placeholder may stand for any
    /// operand here, and its kind is checked against the parameter's value then.
    pub fn define_query(&self, name: &str, def: QueryDefinition) -> StoreResult<()> {
        crate::definition::check_query(&def)?;
        if let Some(f) = &def.filter {
            Filter::check_template(f).map_err(|e| StoreError::invalid_def(e.to_string()))?;
        }
        // A query on a bucket that is not persisted is not persisted either: after a
        // restart the application defines both again.
        let persistent = is_persistent(&self.inner.data.read().bucket(&def.bucket)?.def);
        let op = if persistent && self.inner.persist.is_some() {
            Some(query_op(name, &def)?)
        } else {
            None
        };
        self.define(name, QueryKind::Declarative(Arc::new(def)), op)
    }

    /// Defines a programmatic query. The function must only read through its context
    /// (calling back into the store from inside would deadlock). Error: `QueryAlreadyExists`,
    /// `LimitExceeded` (programmatic queries count towards `max_queries` too).
    pub fn define_programmatic_query<F>(&self, name: &str, f: F) -> StoreResult<()>
    where
        F: Fn(&QueryContext<'_>, &Value) -> StoreResult<Value> + Send + Sync + 'static,
    {
        self.define(name, QueryKind::Programmatic(Arc::new(f)), None)
    }

    /// Removes a query and ends its subscriptions: each one's `on_end` (see
    /// [`Store::subscribe_with`]) is called with `QueryNotDefined` on this thread before
    /// this returns; watch channels close. Error: `QueryNotDefined`.
    pub fn undefine_query(&self, name: &str) -> StoreResult<()> {
        let mut ended = Vec::new();
        let queued = {
            let mut reg = self.inner.reactive.lock();
            let declarative = match reg.queries.get(name) {
                None => {
                    return Err(StoreError::QueryNotDefined {
                        name: name.to_owned(),
                    });
                }
                Some(kind) => matches!(kind, QueryKind::Declarative(_)),
            };
            if declarative {
                self.inner.persist_check()?;
            }
            reg.queries.remove(name);
            reg.slow_queries.remove(name);
            let keys: Vec<EvalKey> = reg
                .evals
                .keys()
                .filter(|(q, _)| q == name)
                .cloned()
                .collect();
            for key in &keys {
                ended.extend(reg.take_evaluation(key));
            }
            self.inner.persist_ops(|| {
                Ok(if declarative {
                    vec![Op::DeleteQuery {
                        name: name.to_owned(),
                    }]
                } else {
                    Vec::new()
                })
            })
        };
        for sub in ended {
            sub.end(
                name,
                StoreError::QueryNotDefined {
                    name: name.to_owned(),
                },
            );
        }
        self.inner.persist_wait(queued)
    }

    /// Every defined query with its kind, definition and subscription count.
    pub fn list_queries(&self) -> Vec<QueryInfo> {
        let reg = self.inner.reactive.lock();
        let mut per_query: HashMap<&str, u64> = HashMap::new();
        for (q, _) in reg.subs.values() {
            *per_query.entry(q.as_str()).or_default() += 1;
        }
        reg.queries
            .iter()
            .map(|(name, kind)| QueryInfo {
                name: name.clone(),
                kind: match kind {
                    QueryKind::Declarative(_) => noex_model::definition::QueryKind::Declarative,
                    QueryKind::Programmatic(_) => noex_model::definition::QueryKind::Programmatic,
                },
                config: match kind {
                    QueryKind::Declarative(d) => Some((**d).clone()),
                    QueryKind::Programmatic(_) => None,
                },
                active_subscriptions: per_query.get(name.as_str()).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Evaluates a query once, without subscribing. Errors: `QueryNotDefined`,
    /// `InvalidParameter`, `ResultTooLarge`, or the evaluation's error.
    pub fn run_query(&self, name: &str, params: &Value) -> StoreResult<Value> {
        // The registry lock is never waited for while holding the data lock: it may be
        // held by a subscribe evaluating its initial result, and a reader waiting under
        // the data lock would stall writers and every reader queued behind them.
        let kind = self.inner.reactive.lock().queries.get(name).cloned();
        let kind = kind.ok_or_else(|| StoreError::QueryNotDefined {
            name: name.to_owned(),
        })?;
        let limit = self.inner.limits.max_result_bytes;
        Ok(evaluate(&kind, params, self.inner.data.read(), self.now(), limit)?.0)
    }

    fn subscribe_sink(
        &self,
        name: &str,
        params: Value,
        sink: impl FnOnce(&Arc<QueryResult>) -> Sink,
        on_end: Option<EndHandler>,
    ) -> StoreResult<(SubscriptionId, Arc<QueryResult>)> {
        let key = (name.to_owned(), canonical(&params));
        let kind = {
            let mut reg = self.inner.reactive.lock();
            // Shared only while current: after a commit its re-evaluation may still be on
            // its way, and the subscriber must see at least what was committed before it.
            let commits = self.inner.commits.load(Ordering::SeqCst);
            if let Some(last) = reg
                .evals
                .get(&key)
                .filter(|ev| ev.stamp == commits)
                .map(|ev| ev.last.clone())
            {
                let id = reg.attach(key, sink(&last), on_end);
                return Ok((id, last));
            }
            reg.queries
                .get(name)
                .cloned()
                .ok_or_else(|| StoreError::QueryNotDefined {
                    name: name.to_owned(),
                })?
        };
        // The first evaluation holds no registry lock (so the dispatcher, other
        // subscribes and unsubscribes never wait for it) and the data lock only while it
        // takes its records. `stamp` is the commit it saw.
        let limit = self.inner.limits.max_result_bytes;
        let started = std::time::Instant::now();
        let data = self.inner.data.read();
        let stamp = self.inner.commits.load(Ordering::SeqCst);
        let (value, deps) = evaluate(&kind, &params, data, self.now(), limit)?;
        let took_long = started.elapsed() > SLOW_EVALUATION;
        let mut reg = self.inner.reactive.lock();
        if took_long {
            reg.slow_queries.insert(name.to_owned());
        }
        let slow = reg.slow_queries.contains(name);
        if !reg.queries.contains_key(name) {
            return Err(StoreError::QueryNotDefined {
                name: name.to_owned(),
            });
        }
        // The evaluation exists (registered meanwhile, or stale when this subscribe
        // started): join it, starting from this fresh result; the evaluation's own
        // re-evaluation follows with a push.
        if reg.evals.contains_key(&key) {
            let fresh = Arc::new(QueryResult::new(value));
            let id = reg.attach(key, sink(&fresh), on_end);
            return Ok((id, fresh));
        }
        let last = Arc::new(QueryResult::new(value));
        reg.evals.insert(
            key.clone(),
            Evaluation {
                params,
                deps,
                last: last.clone(),
                subscribers: Vec::new(),
                slow,
                cost: started.elapsed(),
                stamp,
            },
        );
        let id = reg.attach(key.clone(), sink(&last), on_end);
        // A commit after `stamp` may have been dispatched before the evaluation was
        // registered: the dispatcher re-evaluates it once more. A later commit finds it
        // registered (the dispatcher takes the registry lock after the commit counts).
        let missed = self.inner.commits.load(Ordering::SeqCst) != stamp;
        drop(reg);
        if missed {
            self.inner.send_batch(Batch {
                events: Vec::new(),
                dropped: Vec::new(),
                recheck: vec![key],
            });
        }
        Ok((id, last))
    }

    /// Subscribes to `(query, params)`: returns the id and the initial result; `callback`
    /// receives every later result that differs from the previous one.
    /// Errors: `QueryNotDefined`, `InvalidParameter`, `ResultTooLarge`, or the
    /// evaluation's error.
    ///
    /// If the store ends the subscription (see [`Store::subscribe_with`]) the end is only
    /// logged; use `subscribe_with` to learn of it.
    pub fn subscribe<F>(
        &self,
        name: &str,
        params: Value,
        callback: F,
    ) -> StoreResult<(SubscriptionId, Arc<QueryResult>)>
    where
        F: Fn(Arc<QueryResult>) + Send + Sync + 'static,
    {
        let cb: SubscriptionCallback = Arc::new(callback);
        self.subscribe_sink(name, params, move |_| Sink::Callback(cb), None)
    }

    /// Like `subscribe`, plus `on_end`, called once if the store ends the subscription:
    /// a re-evaluation failed (error, panic, result too large) or the query was undefined.
    /// After `on_end` the subscription is gone (unsubscribe then answers SubscriptionNotFound).
    ///
    /// `on_end` receives the error: the re-evaluation's (`ResultTooLarge`,
    /// `InvalidParameter`, `Internal` for a panic, ...) or `QueryNotDefined`. It runs on
    /// the dispatcher thread, or on the thread calling [`Store::undefine_query`], with no
    /// store lock held; it is not called when the subscriber unsubscribes. A
    /// re-evaluation failing with `BucketNotDefined` (its bucket was dropped) does not end
    /// the subscription: it keeps its last result.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), noex_store::StoreError> {
    /// use noex_store::{BucketDefinition, QueryDefinition, Store, StoreConfig, StoreError};
    /// use serde_json::json;
    /// use std::sync::{Arc, Mutex};
    /// let store = Store::start(StoreConfig::default())?;
    /// store.define_bucket("b", BucketDefinition::from_json(json!(
    ///     {"key": "id", "schema": {"id": {"type": "number"}}}))?)?;
    /// store.define_query("all", QueryDefinition::from_json(json!({"bucket": "b"}))?)?;
    /// let ended = Arc::new(Mutex::new(None));
    /// let seen = ended.clone();
    /// let (id, _) = store.subscribe_with("all", json!({}), |_| {}, move |err| {
    ///     *seen.lock().unwrap() = Some(err);
    /// })?;
    /// store.undefine_query("all")?;
    /// assert!(matches!(*ended.lock().unwrap(), Some(StoreError::QueryNotDefined { .. })));
    /// assert!(store.unsubscribe(id).is_err());
    /// # Ok(()) }
    /// ```
    pub fn subscribe_with<F, E>(
        &self,
        name: &str,
        params: Value,
        on_result: F,
        on_end: E,
    ) -> StoreResult<(SubscriptionId, Arc<QueryResult>)>
    where
        F: Fn(Arc<QueryResult>) + Send + Sync + 'static,
        E: FnOnce(StoreError) + Send + 'static,
    {
        let cb: SubscriptionCallback = Arc::new(on_result);
        self.subscribe_sink(
            name,
            params,
            move |_| Sink::Callback(cb),
            Some(Box::new(on_end)),
        )
    }

    /// Subscribes through a watch channel that always holds the latest result. If the
    /// store ends the subscription (see [`Store::subscribe_with`]) the channel closes:
    /// `changed()` then fails.
    pub fn subscribe_watch(
        &self,
        name: &str,
        params: Value,
    ) -> StoreResult<(SubscriptionId, watch::Receiver<Arc<QueryResult>>)> {
        let mut rx = None;
        let (id, _) = self.subscribe_sink(
            name,
            params,
            |initial| {
                let (tx, r) = watch::channel(initial.clone());
                rx = Some(r);
                Sink::Watch(tx)
            },
            None,
        )?;
        rx.map(|r| (id, r)).ok_or_else(|| StoreError::Internal {
            message: "watch channel".into(),
        })
    }

    /// Ends a subscription. Error: `SubscriptionNotFound`.
    pub fn unsubscribe(&self, id: SubscriptionId) -> StoreResult<()> {
        let mut reg = self.inner.reactive.lock();
        let key = reg
            .subs
            .remove(&id)
            .ok_or_else(|| StoreError::SubscriptionNotFound { id: id.to_string() })?;
        let empty = match reg.evals.get_mut(&key) {
            Some(ev) => {
                ev.subscribers.retain(|s| s.id != id);
                ev.subscribers.is_empty()
            }
            None => false,
        };
        if empty {
            reg.evals.remove(&key);
        }
        Ok(())
    }

    /// Resolves once every change committed before the call has been dispatched: change
    /// handlers ran, affected queries were re-evaluated and subscribers notified.
    ///
    /// The wait happens on tokio's blocking pool, which also keeps a paused test clock
    /// (`start_paused`) from auto-advancing while the dispatcher thread works.
    pub async fn settle(&self) {
        if self.inner.pending.load(Ordering::SeqCst) == 0 {
            return;
        }
        let inner = self.inner.clone();
        let waited = tokio::task::spawn_blocking(move || {
            let mut guard = inner.settle_lock.lock();
            while inner.pending.load(Ordering::SeqCst) != 0 {
                inner.settled.wait(&mut guard);
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("settle: the wait was cancelled (runtime shutting down)");
        }
    }
}

/// The dispatcher thread: drains batches, runs change handlers, then re-evaluates
/// affected evaluations once per drained group of batches; `settle()` waiters are woken
/// once every batch handed over so far is done. Runs inside `runtime` (entered, not
/// blocked on), so handlers can spawn tokio tasks and timers. Ends with the store.
pub(crate) fn run_dispatcher(
    inner: Weak<Inner>,
    mut rx: mpsc::UnboundedReceiver<Batch>,
    runtime: tokio::runtime::Handle,
) {
    let _entered = runtime.enter();
    while let Some(first) = rx.blocking_recv() {
        let mut batches = vec![first];
        while batches.len() < 1024 {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { break };
        process(&inner, &batches);
        let n = batches.len() as u64;
        if inner.pending.fetch_sub(n, Ordering::SeqCst) == n {
            // Under the lock, so a waiter between its check and its wait is not missed.
            let _guard = inner.settle_lock.lock();
            inner.settled.notify_all();
        }
    }
}

fn process(inner: &Inner, batches: &[Batch]) {
    let mut touched: HashSet<(String, String)> = HashSet::new();
    let mut dropped: HashSet<String> = HashSet::new();
    let mut recheck: HashSet<&EvalKey> = HashSet::new();
    for batch in batches {
        dropped.extend(batch.dropped.iter().cloned());
        recheck.extend(batch.recheck.iter());
        for event in &batch.events {
            touched.insert((event.bucket.clone(), key_string(&event.key)));
            let handlers = {
                let reg = inner.handlers.lock();
                if reg.is_empty() {
                    Vec::new()
                } else {
                    reg.matching(&event.topic())
                }
            };
            for h in handlers {
                if catch_unwind(AssertUnwindSafe(|| h(event))).is_err() {
                    tracing::warn!("change handler panicked");
                }
            }
        }
    }
    let touched_buckets: HashSet<&str> = touched.iter().map(|(b, _)| b.as_str()).collect();
    let (slow, work): (Vec<EvalKey>, Vec<(EvalKey, QueryKind, Value)>) = {
        let reg = inner.reactive.lock();
        let affected = reg.evals.iter().filter(|(k, ev)| {
            recheck.contains(k)
                || dropped.iter().any(|b| ev.deps.mentions(b))
                || ev
                    .deps
                    .buckets
                    .iter()
                    .any(|b| touched_buckets.contains(b.as_str()))
                || ev.deps.records.iter().any(|r| touched.contains(r))
        });
        let mut slow = Vec::new();
        let mut work = Vec::new();
        for (k, ev) in affected {
            if ev.slow {
                slow.push(k.clone());
            } else if let Some(q) = reg.queries.get(&k.0) {
                work.push((ev.cost, (k.clone(), q.clone(), ev.params.clone())));
            }
        }
        // The cheapest first (by their last run): when the batch's time runs out on many
        // middling evaluations, what is left for the slow lane are those, not a cheap
        // subscription's push (red team round 13: one client's 3 200 parameterised
        // subscriptions kept another client's cheap push from arriving for 20 s).
        work.sort_by_key(|(cost, _)| *cost);
        (slow, work.into_iter().map(|(_, w)| w).collect())
    };
    let mut slow = slow;
    slow.extend(reevaluate(inner, work, Lane::Dispatcher, None));
    hand_to_slow_lane(inner, slow);
}

/// Queues `keys` for the slow lane, each at most once, and wakes the lane if it was not
/// woken yet. The wake-up is counted in `pending` until the lane has emptied the queue,
/// so `settle()` waits for it. (The queue used to be a channel of key lists, one per
/// commit batch: with the lane starved of CPU, 3 200 parameterised subscriptions and
/// two writers grew the server by 2 GB in 6 s — red team round 13.)
fn hand_to_slow_lane(inner: &Inner, keys: Vec<EvalKey>) {
    if keys.is_empty() {
        return;
    }
    let mut queue = inner.slow_queue.lock();
    let now = std::time::Instant::now();
    for k in keys {
        queue.waiting.entry(k).or_insert(now);
    }
    if !queue.woken {
        inner.pending.fetch_add(1, Ordering::SeqCst);
        if inner.slow_lane.send(()).is_ok() {
            queue.woken = true;
        } else {
            // The lane is gone (the store is closing): nothing will run them.
            inner.pending.fetch_sub(1, Ordering::SeqCst);
            queue.waiting.clear();
        }
    }
}

/// Where a re-evaluation runs, which sets its time budget.
#[derive(Clone, Copy, PartialEq)]
enum Lane {
    /// [`SLOW_EVALUATION`] per evaluation and [`DISPATCH_BATCH_TIME`] per batch; what
    /// does not fit goes on to the slow lane.
    Dispatcher,
    /// `StoreConfig::max_evaluation_time` per evaluation; past it, its subscriptions end.
    Slow,
}

/// One re-evaluation: its key, its outcome, whether it was slow, how long it took and the
/// commit count its data reflected.
type Reevaluated = (
    EvalKey,
    StoreResult<(Value, Deps)>,
    bool,
    std::time::Duration,
    u64,
);

/// Re-evaluates `work` one evaluation at a time (each takes the data read lock on its
/// own, so a long list never holds writers for its whole duration; every evaluation
/// still sees whole commits only), then stores the results and notifies subscribers of
/// the ones that changed. An evaluation slower than [`SLOW_EVALUATION`] is marked slow,
/// with its query.
///
/// On the dispatcher each evaluation has [`SLOW_EVALUATION`] and the batch
/// [`DISPATCH_BATCH_TIME`]: an evaluation stopped at its budget (its query then slow),
/// those of a query found slow meanwhile, and those left when the batch time has passed
/// are returned, for the slow lane. On the slow lane an evaluation past
/// `max_evaluation_time` ends its subscriptions with `ReadTimeout`.
///
/// With `reader` (the slow lane's), the part of each evaluation that holds the data read
/// lock runs on the reader's thread, at the default CPU priority (see [`LockedReader`]).
fn reevaluate(
    inner: &Inner,
    work: Vec<(EvalKey, QueryKind, Value)>,
    lane: Lane,
    reader: Option<(&LockedReader, &Arc<Inner>)>,
) -> Vec<EvalKey> {
    let mut handed_on = Vec::new();
    if work.is_empty() {
        return handed_on;
    }
    let limit = inner.limits.max_result_bytes;
    let budget = match lane {
        Lane::Dispatcher => SLOW_EVALUATION,
        Lane::Slow => inner.limits.max_evaluation_time,
    };
    let batch_started = std::time::Instant::now();
    let mut slow_queries: HashSet<String> = HashSet::new();
    let mut results: Vec<Reevaluated> = Vec::with_capacity(work.len());
    for (k, q, p) in work {
        if lane == Lane::Dispatcher
            && (slow_queries.contains(&k.0) || batch_started.elapsed() > DISPATCH_BATCH_TIME)
        {
            handed_on.push(k);
            continue;
        }
        let started = std::time::Instant::now();
        let mut stamp = 0;
        let r = match reader {
            Some((reader, shared)) => {
                let (r, at) = evaluate_through(reader, shared, &q, &p, budget);
                stamp = at;
                r
            }
            None => crate::deadline::with_read_deadline(budget, || {
                let data = inner.data.read();
                // Commits count under the write lock: this is the last one the data holds.
                stamp = inner.commits.load(Ordering::SeqCst);
                evaluate(&q, &p, data, inner.now(), limit)
            }),
        };
        let cost = started.elapsed();
        let slow = cost > SLOW_EVALUATION;
        if slow {
            slow_queries.insert(k.0.clone());
        }
        if lane == Lane::Dispatcher && matches!(r, Err(StoreError::ReadTimeout { .. })) {
            handed_on.push(k.clone());
            results.push((k, Ok((Value::Null, Deps::default())), true, cost, stamp));
            continue;
        }
        results.push((k, r, slow, cost, stamp));
    }
    // Whether each new result equals the last one, compared without the registry lock (a
    // large result takes milliseconds to compare, and the slow lane may be preempted
    // meanwhile: the dispatcher, which needs the lock for every commit, would wait with
    // it). The result compared against is kept to tell whether it was replaced meanwhile.
    let previous: Vec<Option<Arc<QueryResult>>> = {
        let reg = inner.reactive.lock();
        results
            .iter()
            .map(|(key, result, ..)| {
                result.as_ref().ok()?;
                reg.evals.get(key).map(|ev| ev.last.clone())
            })
            .collect()
    };
    let unchanged: Vec<Option<Arc<QueryResult>>> = previous
        .into_iter()
        .zip(&results)
        .map(|(last, (_, result, ..))| match (last, result) {
            (Some(last), Ok((value, _))) if last.value() == value => Some(last),
            _ => None,
        })
        .collect();
    let mut deliveries: Vec<(Arc<QueryResult>, Vec<Sink>)> = Vec::new();
    let mut ended: Vec<(String, StoreError, Vec<Subscriber>)> = Vec::new();
    {
        let mut reg = inner.reactive.lock();
        if !slow_queries.is_empty() {
            // Every evaluation of a query found slow is slow from now on.
            let registry = &mut *reg;
            for (key, ev) in registry.evals.iter_mut() {
                if slow_queries.contains(&key.0) {
                    ev.slow = true;
                }
            }
            registry.slow_queries.extend(slow_queries);
        }
        let handed: HashSet<&EvalKey> = handed_on.iter().collect();
        for ((key, result, slow, cost, stamp), unchanged) in results.into_iter().zip(unchanged) {
            let Some(ev) = reg.evals.get_mut(&key) else {
                continue;
            };
            ev.slow |= slow;
            ev.cost = cost;
            // Stopped on the dispatcher: the slow lane evaluates it again.
            if handed.contains(&key) {
                continue;
            }
            match result {
                Ok((value, deps)) => {
                    ev.deps = deps;
                    ev.stamp = ev.stamp.max(stamp);
                    let same = match &unchanged {
                        // Compared above, and still the last result.
                        Some(last) if Arc::ptr_eq(last, &ev.last) => true,
                        // Replaced meanwhile (rare): compare with the new one.
                        Some(_) => ev.last.value() == &value,
                        None => false,
                    };
                    if !same {
                        ev.last = Arc::new(QueryResult::new(value));
                        deliveries.push((
                            ev.last.clone(),
                            ev.subscribers.iter().map(|s| s.sink.clone()).collect(),
                        ));
                    }
                }
                // A dropped bucket: keep the last result (it resumes if the bucket is
                // defined again and written to).
                Err(StoreError::BucketNotDefined { .. }) => {}
                Err(e) => {
                    tracing::warn!(query = %key.0, error = %e, "re-evaluation failed; ending its subscriptions");
                    let subs = reg.take_evaluation(&key);
                    ended.push((key.0, e, subs));
                }
            }
        }
    }
    for (result, sinks) in deliveries {
        for sink in sinks {
            sink.deliver(&result);
        }
    }
    for (query, error, subs) in ended {
        for sub in subs {
            sub.end(&query, error.clone());
        }
    }
    handed_on
}

/// The slow-lane thread: re-evaluates the evaluations marked slow, so a heavy query
/// (a large grouping, a long text filter) delays only its own pushes, not the
/// dispatcher's. Keys are coalesced (each evaluation re-evaluated once per turn, on the
/// newest data) and run one at a time, each delivered as soon as it is done. Before each
/// run the lane takes everything that arrived meanwhile and picks again, the one with the
/// lowest [`slow_lane_priority`]: the cheapest by its last run, aged by how long it has
/// waited. So a cheap evaluation that arrives behind a queue of long ones waits for the
/// one running, not for the queue, and a long one is not starved by a stream of cheap
/// ones. It runs at a lower CPU priority (nice 10 on Linux): request handling and the
/// dispatcher's pushes come first. Ends with the store.
pub(crate) fn run_slow_lane(
    inner: Weak<Inner>,
    mut rx: mpsc::UnboundedReceiver<()>,
    runtime: tokio::runtime::Handle,
) {
    let _entered = runtime.enter();
    // Started before the lane lowers its own priority, so it keeps the default one.
    let reader = inner
        .upgrade()
        .and_then(|inner| LockedReader::spawn(&inner.name));
    // Best effort, behind request handling and the dispatcher's pushes.
    crate::priority::lower_current_thread();
    while let Some(()) = rx.blocking_recv() {
        loop {
            let Some(inner) = inner.upgrade() else { return };
            let next = {
                // Lock order: the slow queue, then the registry (the dispatcher never
                // holds the registry while it queues).
                let mut queue = inner.slow_queue.lock();
                let reg = inner.reactive.lock();
                let now = std::time::Instant::now();
                // Gone evaluations (unsubscribed meanwhile) are dropped here.
                queue
                    .waiting
                    .retain(|k, _| reg.evals.contains_key(k) && reg.queries.contains_key(&k.0));
                // The one to run, then only its definition cloned (not every waiting one's:
                // with thousands waiting that was most of the time under both locks).
                let next = queue
                    .waiting
                    .iter()
                    .filter_map(|(k, since)| {
                        let ev = reg.evals.get(k)?;
                        Some((slow_lane_priority(ev.cost, now.duration_since(*since)), k))
                    })
                    .min_by_key(|(priority, _)| *priority)
                    .and_then(|(_, k)| {
                        let ev = reg.evals.get(k)?;
                        let q = reg.queries.get(&k.0)?;
                        Some((k.clone(), q.clone(), ev.params.clone()))
                    });
                match &next {
                    Some(item) => {
                        queue.waiting.remove(&item.0);
                    }
                    // Empty: the next key queued wakes the lane again.
                    None => queue.woken = false,
                }
                next
            };
            let Some(item) = next else {
                if inner.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                    let _guard = inner.settle_lock.lock();
                    inner.settled.notify_all();
                }
                break;
            };
            let reader = reader.as_ref().map(|r| (r, &inner));
            reevaluate(&inner, vec![item], Lane::Slow, reader);
        }
    }
}

/// A thread at the default CPU priority that runs the part of the slow lane's evaluations
/// that holds the data read lock (a declarative query's candidates, a programmatic query
/// whole). The slow lane itself runs at a lower priority: holding the read lock there, it
/// could be preempted by busy request handlers for many milliseconds, and a writer waiting
/// for the lock — and every reader queued behind that writer — would wait with it (red
/// team round 9: `store.get` p99 14.9 ms beside heavy grouped subscriptions). Ends with
/// the slow lane (its job sender is dropped).
pub(crate) struct LockedReader {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl LockedReader {
    /// Starts the thread; `None` if it cannot be started (the slow lane then takes the
    /// lock itself, as before).
    fn spawn(store_name: &str) -> Option<LockedReader> {
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name(format!("{store_name}-slowread"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .ok()?;
        Some(LockedReader { jobs })
    }

    /// Runs `job` on the reader's thread and waits for its outcome; `None` if the thread
    /// is gone.
    fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(job());
            }))
            .ok()?;
        rx.recv().ok()
    }
}

/// One slow-lane evaluation within `budget`: the locked part on `reader`'s thread, the
/// rest (filter, sort, grouping) here. Returns the outcome and the commit count the data
/// reflected.
fn evaluate_through(
    reader: &LockedReader,
    inner: &Arc<Inner>,
    q: &QueryKind,
    p: &Value,
    budget: std::time::Duration,
) -> (StoreResult<(Value, Deps)>, u64) {
    let started = std::time::Instant::now();
    let limit = inner.limits.max_result_bytes;
    let job = {
        let (inner, q, p) = (Arc::clone(inner), q.clone(), p.clone());
        move || {
            crate::deadline::with_read_deadline(budget, || {
                let data = inner.data.read();
                // Commits count under the write lock: this is the last one the data holds.
                let stamp = inner.commits.load(Ordering::SeqCst);
                let locked = evaluate_locked(&q, &p, &data, inner.now(), limit);
                drop(data);
                (
                    locked.and_then(|l| crate::deadline::check().map(|()| l)),
                    stamp,
                )
            })
        }
    };
    let Some((locked, stamp)) = reader.run(job) else {
        let gone = StoreError::Internal {
            message: "the slow lane's reader thread is gone".into(),
        };
        return (Err(gone), 0);
    };
    let rest = budget.saturating_sub(started.elapsed());
    let r = crate::deadline::with_read_deadline(rest, || {
        let r = locked.and_then(|l: Locked| evaluate_unlocked(q, l, limit));
        crate::deadline::check()?;
        r
    });
    // A timeout in either part is one past the whole budget.
    let r = r.map_err(|err| match err {
        StoreError::ReadTimeout { .. } => StoreError::ReadTimeout {
            limit_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        },
        other => other,
    });
    (r, stamp)
}

/// The slow lane's order: an evaluation's last cost less an eighth of the time it has
/// waited (lowest runs first). Shortest-first keeps cheap pushes prompt even behind a
/// queue of long evaluations; the ageing means no evaluation waits forever behind a
/// steady stream of cheaper ones (one that has waited eight times its cost goes before
/// any newly arrived one).
fn slow_lane_priority(cost: std::time::Duration, waited: std::time::Duration) -> i128 {
    cost.as_nanos() as i128 - (waited.as_nanos() / 8) as i128
}

impl Store {
    /// Evaluations waiting for the slow lane (each counted once, however many commits
    /// touched it): at most the number of live evaluations.
    pub fn slow_lane_waiting(&self) -> usize {
        self.inner.slow_queue.lock().waiting.len()
    }

    /// The bucket a query reads, for permission checks: `Some(Some(bucket))` for a
    /// declarative query, `Some(None)` for a programmatic one (it may read anything),
    /// `None` when no query has this name.
    pub fn query_bucket(&self, name: &str) -> Option<Option<String>> {
        let reg = self.inner.reactive.lock();
        reg.queries.get(name).map(|kind| match kind {
            QueryKind::Declarative(def) => Some(def.bucket.clone()),
            QueryKind::Programmatic(_) => None,
        })
    }
}
