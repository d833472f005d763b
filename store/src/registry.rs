//! The reactive query registry: defined queries, the live evaluations keyed by
//! `(query, canonical params)` and their subscribers. Plain state under the store's
//! registry lock; defining, subscribing and re-evaluating live in `reactive`.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use tokio::sync::watch;

use crate::definition::QueryDefinition;
use crate::error::StoreError;
use crate::query::{Deps, QueryKind, QueryResult};

/// Identifies one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SubscriptionId(pub u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sub-{}", self.0)
    }
}

/// Called with every new result of a subscription (on the dispatcher thread; keep it short,
/// e.g. push to a queue). The `Arc` is shared by all subscribers of the same evaluation.
pub type SubscriptionCallback = Arc<dyn Fn(Arc<QueryResult>) + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Sink {
    Callback(SubscriptionCallback),
    Watch(watch::Sender<Arc<QueryResult>>),
}

impl Sink {
    pub(crate) fn deliver(&self, result: &Arc<QueryResult>) {
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

/// Called once when the store ends a subscription (see
/// [`Store::subscribe_with`](crate::Store::subscribe_with)).
pub(crate) type EndHandler = Box<dyn FnOnce(StoreError) + Send>;

/// One subscriber of an evaluation.
pub(crate) struct Subscriber {
    pub id: SubscriptionId,
    pub sink: Sink,
    pub on_end: Option<EndHandler>,
}

impl Subscriber {
    /// Tells the subscriber its subscription is over: `on_end` runs (panics caught), a
    /// watch sender is dropped here, which closes its channel.
    pub(crate) fn end(self, query: &str, error: StoreError) {
        match self.on_end {
            Some(on_end) => {
                if catch_unwind(AssertUnwindSafe(|| on_end(error))).is_err() {
                    tracing::warn!("subscription end handler panicked");
                }
            }
            None => {
                tracing::warn!(query, subscription = %self.id, %error, "subscription ended");
            }
        }
    }
}

/// `(query name, canonical params text)`.
pub(crate) type EvalKey = (String, String);

/// JSON text with object keys sorted, so `{a, b}` and `{b, a}` share one evaluation.
pub(crate) fn canonical(v: &Value) -> String {
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

pub(crate) struct Evaluation {
    pub params: Value,
    pub deps: Deps,
    pub last: Arc<QueryResult>,
    pub subscribers: Vec<Subscriber>,
    /// An evaluation of it took longer than the dispatcher's slow-evaluation threshold: the slow lane
    /// re-evaluates it from then on, so it never delays other subscriptions' pushes.
    pub slow: bool,
    /// How long its last evaluation took: the slow lane runs the cheapest first, so a
    /// heavy subscription waits only for evaluations cheaper than its own, not for a
    /// tenant's many long ones.
    pub cost: std::time::Duration,
    /// The store's commit count its `last` result reflects: a subscribe shares `last` only
    /// while no commit came since (else a client that wrote and then subscribed could get
    /// a result from before its own write).
    pub stamp: u64,
}

/// Defined queries, live evaluations and subscriptions.
#[derive(Default)]
pub(crate) struct Registry {
    pub queries: BTreeMap<String, QueryKind>,
    /// Queries one of whose evaluations was slow: all their evaluations, new ones too,
    /// run on the slow lane.
    pub slow_queries: HashSet<String>,
    pub evals: HashMap<EvalKey, Evaluation>,
    pub subs: HashMap<SubscriptionId, EvalKey>,
    pub next_sub: u64,
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
            .insert(name, QueryKind::Declarative(Arc::new(def)));
    }

    /// Adds a subscriber to the registered evaluation `key`; returns its id.
    pub fn attach(
        &mut self,
        key: EvalKey,
        sink: Sink,
        on_end: Option<EndHandler>,
    ) -> SubscriptionId {
        self.next_sub += 1;
        let id = SubscriptionId(self.next_sub);
        if let Some(ev) = self.evals.get_mut(&key) {
            ev.subscribers.push(Subscriber { id, sink, on_end });
        }
        self.subs.insert(id, key);
        id
    }

    /// Removes an evaluation and its subscriptions; returns its subscribers to end.
    pub fn take_evaluation(&mut self, key: &EvalKey) -> Vec<Subscriber> {
        let Some(ev) = self.evals.remove(key) else {
            return Vec::new();
        };
        for sub in &ev.subscribers {
            self.subs.remove(&sub.id);
        }
        ev.subscribers
    }
}
