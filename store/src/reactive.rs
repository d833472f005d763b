//! Reactive queries: the query registry, shared evaluations keyed by `(query, params)`,
//! subscriptions (callbacks or watch channels), the dispatcher task that re-evaluates
//! only affected evaluations after each commit and notifies on change, and `settle()`.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, watch};

use crate::definition::QueryDefinition;
use crate::error::{StoreError, StoreResult};
use crate::persistence::Op;
use crate::persistence::bridge::{is_persistent, query_op};
use crate::query::{Deps, QueryContext, QueryKind, QueryResult, evaluate};
use crate::store::{Batch, Inner, Store};
use crate::value::key_string;

/// Identifies one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SubscriptionId(pub u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sub-{}", self.0)
    }
}

/// Called with every new result of a subscription (on the dispatcher task; keep it short,
/// e.g. push to a queue). The `Arc` is shared by all subscribers of the same evaluation.
pub type SubscriptionCallback = Arc<dyn Fn(Arc<QueryResult>) + Send + Sync>;

#[derive(Clone)]
enum Sink {
    Callback(SubscriptionCallback),
    Watch(watch::Sender<Arc<QueryResult>>),
}

impl Sink {
    fn deliver(&self, result: &Arc<QueryResult>) {
        match self {
            Sink::Callback(cb) => {
                if catch_unwind(AssertUnwindSafe(|| cb(result.clone()))).is_err() {
                    tracing::warn!("subscription callback panicked");
                }
            }
            Sink::Watch(tx) => {
                let _ = tx.send(result.clone());
            }
        }
    }
}

/// `(query name, canonical params text)`.
type EvalKey = (String, String);

/// JSON text with object keys sorted, so `{a, b}` and `{b, a}` share one evaluation.
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

struct Evaluation {
    params: Value,
    deps: Deps,
    last: Arc<QueryResult>,
    subscribers: Vec<(SubscriptionId, Sink)>,
}

/// Defined queries, live evaluations and subscriptions.
#[derive(Default)]
pub(crate) struct Registry {
    queries: BTreeMap<String, QueryKind>,
    evals: HashMap<EvalKey, Evaluation>,
    subs: HashMap<SubscriptionId, EvalKey>,
    next_sub: u64,
}

impl Registry {
    pub fn query_count(&self) -> usize {
        self.queries.len()
    }
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Installs a declarative query loaded from persistence (its bucket is not checked:
    /// a query may outlive its bucket, as in memory).
    pub fn insert_declarative(&mut self, name: String, def: QueryDefinition) {
        self.queries
            .insert(name, QueryKind::Declarative(Box::new(def)));
    }
}

/// Kind of a listed query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryType {
    /// Defined in Rust.
    Programmatic,
    /// Defined from JSON.
    Declarative,
}

/// One entry of [`Store::list_queries`](crate::Store::list_queries).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInfo {
    /// Query name.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub query_type: QueryType,
    /// Definition of a declarative query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<QueryDefinition>,
    /// Number of subscriptions to this query (all params).
    pub active_subscriptions: usize,
}

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
    /// `InvalidDefinition` (bad sort direction, aggregate without field).
    pub fn define_query(&self, name: &str, def: QueryDefinition) -> StoreResult<()> {
        def.check()?;
        if let Some(f) = &def.filter {
            // Placeholders are strings, so a filter with them still compiles.
            crate::filter::Filter::compile(f)
                .map_err(|e| StoreError::invalid_def(e.to_string()))?;
        }
        // A query on a bucket that is not persisted is not persisted either: after a
        // restart the application defines both again.
        let persistent = is_persistent(&self.inner.data.read().bucket(&def.bucket)?.def);
        let op = if persistent && self.inner.persist.is_some() {
            Some(query_op(name, &def)?)
        } else {
            None
        };
        self.define(name, QueryKind::Declarative(Box::new(def)), op)
    }

    /// Defines a programmatic query. The function must only read through its context
    /// (calling back into the store from inside would deadlock).
    pub fn define_programmatic_query<F>(&self, name: &str, f: F) -> StoreResult<()>
    where
        F: Fn(&QueryContext<'_>, &Value) -> StoreResult<Value> + Send + Sync + 'static,
    {
        self.define(name, QueryKind::Programmatic(Arc::new(f)), None)
    }

    /// Removes a query and ends its subscriptions. Error: `QueryNotDefined`.
    pub fn undefine_query(&self, name: &str) -> StoreResult<()> {
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
            reg.evals.retain(|(q, _), _| q != name);
            reg.subs.retain(|_, (q, _)| q != name);
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
        self.inner.persist_wait(queued)
    }

    /// Every defined query with its kind, definition and subscription count.
    pub fn list_queries(&self) -> Vec<QueryInfo> {
        let reg = self.inner.reactive.lock();
        reg.queries
            .iter()
            .map(|(name, kind)| QueryInfo {
                name: name.clone(),
                query_type: match kind {
                    QueryKind::Declarative(_) => QueryType::Declarative,
                    QueryKind::Programmatic(_) => QueryType::Programmatic,
                },
                config: match kind {
                    QueryKind::Declarative(d) => Some((**d).clone()),
                    QueryKind::Programmatic(_) => None,
                },
                active_subscriptions: reg.subs.values().filter(|(q, _)| q == name).count(),
            })
            .collect()
    }

    /// Evaluates a query once, without subscribing.
    pub fn run_query(&self, name: &str, params: &Value) -> StoreResult<Value> {
        let data = self.inner.data.read();
        let kind = self.inner.reactive.lock().queries.get(name).cloned();
        let kind = kind.ok_or_else(|| StoreError::QueryNotDefined {
            name: name.to_owned(),
        })?;
        Ok(evaluate(&kind, params, &data, self.now())?.0)
    }

    fn subscribe_sink(
        &self,
        name: &str,
        params: Value,
        sink: impl FnOnce(&Arc<QueryResult>) -> Sink,
    ) -> StoreResult<(SubscriptionId, Arc<QueryResult>)> {
        let data = self.inner.data.read();
        let mut reg = self.inner.reactive.lock();
        let kind = reg
            .queries
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::QueryNotDefined {
                name: name.to_owned(),
            })?;
        let key = (name.to_owned(), canonical(&params));
        let last = match reg.evals.get(&key) {
            Some(ev) => ev.last.clone(),
            None => {
                let (value, deps) = evaluate(&kind, &params, &data, self.now())?;
                let last = Arc::new(QueryResult::new(value));
                reg.evals.insert(
                    key.clone(),
                    Evaluation {
                        params,
                        deps,
                        last: last.clone(),
                        subscribers: Vec::new(),
                    },
                );
                last
            }
        };
        reg.next_sub += 1;
        let id = SubscriptionId(reg.next_sub);
        let sink = sink(&last);
        if let Some(ev) = reg.evals.get_mut(&key) {
            ev.subscribers.push((id, sink));
        }
        reg.subs.insert(id, key);
        Ok((id, last))
    }

    /// Subscribes to `(query, params)`: returns the id and the initial result; `callback`
    /// receives every later result that differs from the previous one.
    /// Errors: `QueryNotDefined`, or the evaluation's error.
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
        self.subscribe_sink(name, params, move |_| Sink::Callback(cb))
    }

    /// Subscribes through a watch channel that always holds the latest result.
    pub fn subscribe_watch(
        &self,
        name: &str,
        params: Value,
    ) -> StoreResult<(SubscriptionId, watch::Receiver<Arc<QueryResult>>)> {
        let mut rx = None;
        let (id, _) = self.subscribe_sink(name, params, |initial| {
            let (tx, r) = watch::channel(initial.clone());
            rx = Some(r);
            Sink::Watch(tx)
        })?;
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
                ev.subscribers.retain(|(s, _)| *s != id);
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
    pub async fn settle(&self) {
        loop {
            let notified = self.inner.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The dispatcher: drains batches, runs change handlers, feeds the broadcast, then
/// re-evaluates affected evaluations once per drained group of batches.
pub(crate) async fn run_dispatcher(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Batch>) {
    while let Some(first) = rx.recv().await {
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
            inner.settled.notify_waiters();
        }
        drop(inner);
        tokio::task::yield_now().await;
    }
}

fn process(inner: &Inner, batches: &[Batch]) {
    let mut touched: HashSet<(String, String)> = HashSet::new();
    let mut dropped: HashSet<String> = HashSet::new();
    for batch in batches {
        dropped.extend(batch.dropped.iter().cloned());
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
    let work: Vec<(EvalKey, QueryKind, Value)> = {
        let reg = inner.reactive.lock();
        reg.evals
            .iter()
            .filter(|(_, ev)| {
                dropped.iter().any(|b| ev.deps.mentions(b))
                    || ev
                        .deps
                        .buckets
                        .iter()
                        .any(|b| touched_buckets.contains(b.as_str()))
                    || ev.deps.records.iter().any(|r| touched.contains(r))
            })
            .filter_map(|(k, ev)| {
                reg.queries
                    .get(&k.0)
                    .map(|q| (k.clone(), q.clone(), ev.params.clone()))
            })
            .collect()
    };
    if work.is_empty() {
        return;
    }
    // Each evaluation takes the read lock on its own, so a long list of re-evaluations
    // never holds writers (and the readers queued behind them) for its whole duration.
    // Every evaluation still sees whole commits only.
    let results: Vec<(EvalKey, StoreResult<(Value, Deps)>)> = work
        .into_iter()
        .map(|(k, q, p)| {
            let r = catch_unwind(AssertUnwindSafe(|| {
                let data = inner.data.read();
                evaluate(&q, &p, &data, inner.now())
            }))
            .unwrap_or_else(|_| {
                Err(StoreError::Internal {
                    message: "query panicked".into(),
                })
            });
            (k, r)
        })
        .collect();
    let mut deliveries: Vec<(Arc<QueryResult>, Vec<Sink>)> = Vec::new();
    {
        let mut reg = inner.reactive.lock();
        for (key, result) in results {
            let Some(ev) = reg.evals.get_mut(&key) else {
                continue;
            };
            match result {
                Ok((value, deps)) => {
                    ev.deps = deps;
                    if ev.last.value() != &value {
                        ev.last = Arc::new(QueryResult::new(value));
                        deliveries.push((
                            ev.last.clone(),
                            ev.subscribers.iter().map(|(_, s)| s.clone()).collect(),
                        ));
                    }
                }
                Err(e) => tracing::warn!(query = %key.0, error = %e, "re-evaluation failed"),
            }
        }
    }
    for (result, sinks) in deliveries {
        for sink in sinks {
            sink.deliver(&result);
        }
    }
}

impl Store {
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
