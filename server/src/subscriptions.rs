//! One connection's subscriptions (store and rules together): ids `sub-N`, the
//! per-connection and global limits, the counts shown by `server.connections`, and the
//! guarantee that every subscription is cancelled when the connection ends, however it ends
//! (the set cancels everything it still holds when dropped).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use noex_protocol::{ErrorCode, Operation};

use crate::error::ServerError;
use crate::registry::Registration;

/// What a subscription is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubKind {
    /// `store.subscribe`.
    Store,
    /// `rules.subscribe`.
    Rules,
}

/// Ends a subscription at its source (store or rule engine).
pub(crate) type Cancel = Box<dyn FnOnce() + Send + Sync>;

/// Server-wide subscription accounting.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionCounters {
    next_id: AtomicU64,
    total: AtomicU64,
}

impl SubscriptionCounters {
    /// A fresh id, unique on this server.
    pub(crate) fn next_id(&self) -> String {
        format!("sub-{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Subscriptions open over all connections.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

struct Entry {
    kind: SubKind,
    /// The request that created it, checked again whenever the session changes.
    origin: Operation,
    cancel: Option<Cancel>,
}

/// See the module documentation.
pub(crate) struct ConnectionSubscriptions {
    entries: HashMap<String, Entry>,
    counters: Arc<SubscriptionCounters>,
    per_connection_limit: u32,
    total_limit: Option<u64>,
}

impl ConnectionSubscriptions {
    pub(crate) fn new(
        counters: Arc<SubscriptionCounters>,
        per_connection_limit: u32,
        total_limit: Option<u64>,
    ) -> Self {
        ConnectionSubscriptions {
            entries: HashMap::new(),
            counters,
            per_connection_limit,
            total_limit,
        }
    }

    /// Reserves room for one more subscription and returns its id; `RATE_LIMITED` when a
    /// limit is reached. The reservation must be completed with [`Self::insert`] or given
    /// back with [`Self::release`].
    pub(crate) fn reserve(&self) -> Result<String, ServerError> {
        if self.entries.len() >= self.per_connection_limit as usize {
            return Err(ServerError::new(
                ErrorCode::RateLimited,
                format!(
                    "Subscription limit reached (max {} per connection)",
                    self.per_connection_limit
                ),
            ));
        }
        let previous = self.counters.total.fetch_add(1, Ordering::SeqCst);
        if let Some(limit) = self.total_limit {
            if previous >= limit {
                self.counters.total.fetch_sub(1, Ordering::SeqCst);
                return Err(ServerError::new(
                    ErrorCode::RateLimited,
                    format!("Global subscription limit reached (max {limit})"),
                ));
            }
        }
        Ok(self.counters.next_id())
    }

    /// Gives back a reservation that did not become a subscription.
    pub(crate) fn release(&self) {
        self.counters.total.fetch_sub(1, Ordering::SeqCst);
    }

    /// Records a reserved subscription created by `origin`.
    pub(crate) fn insert(
        &mut self,
        id: String,
        kind: SubKind,
        origin: Operation,
        cancel: Cancel,
        registration: &Registration,
    ) {
        self.entries.insert(
            id,
            Entry {
                kind,
                origin,
                cancel: Some(cancel),
            },
        );
        self.publish_counts(registration);
    }

    /// Every subscription's id and the request that created it.
    pub(crate) fn origins(&self) -> impl Iterator<Item = (&str, &Operation)> {
        self.entries
            .iter()
            .map(|(id, entry)| (id.as_str(), &entry.origin))
    }

    /// Ends subscription `id` (whatever its kind), cancelling it at its source; `false` when
    /// this connection has none.
    pub(crate) fn end(&mut self, id: &str, registration: &Registration) -> bool {
        let Some(mut entry) = self.entries.remove(id) else {
            return false;
        };
        if let Some(cancel) = entry.cancel.take() {
            cancel();
        }
        self.counters.total.fetch_sub(1, Ordering::SeqCst);
        self.publish_counts(registration);
        true
    }

    /// Cancels subscription `id` of `kind`; `NOT_FOUND` when this connection has none.
    pub(crate) fn remove(
        &mut self,
        id: &str,
        kind: SubKind,
        registration: &Registration,
    ) -> Result<(), ServerError> {
        match self.entries.get(id) {
            Some(entry) if entry.kind == kind => {}
            _ => {
                return Err(ServerError::new(
                    ErrorCode::NotFound,
                    format!("Subscription \"{id}\" not found"),
                ));
            }
        }
        self.end(id, registration);
        Ok(())
    }

    /// Whether no subscription is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Open subscriptions of `kind`.
    pub(crate) fn count(&self, kind: SubKind) -> u64 {
        self.entries.values().filter(|e| e.kind == kind).count() as u64
    }

    fn publish_counts(&self, registration: &Registration) {
        let (store, rules) = (self.count(SubKind::Store), self.count(SubKind::Rules));
        registration.update(|entry| {
            entry.store_subscriptions = store;
            entry.rules_subscriptions = rules;
        });
    }
}

impl Drop for ConnectionSubscriptions {
    fn drop(&mut self) {
        for (_, mut entry) in self.entries.drain() {
            if let Some(cancel) = entry.cancel.take() {
                cancel();
            }
            self.counters.total.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A subscription that its source ended, and why.
pub(crate) type Ended = (String, crate::error::ServerError);

/// The channel on which subscriptions' sources report that they ended one, made when the
/// first subscription needs a sender: tokio's channel allocates its first block of 32
/// slots up front (4 KiB with this message), which a connection that never subscribes
/// should not carry.
#[derive(Debug, Default)]
pub(crate) struct EndedSubscriptions {
    channel: Option<(
        tokio::sync::mpsc::UnboundedSender<Ended>,
        tokio::sync::mpsc::UnboundedReceiver<Ended>,
    )>,
}

impl EndedSubscriptions {
    /// A sender for a subscription's source (the channel is made on first use).
    pub(crate) fn sender(&mut self) -> tokio::sync::mpsc::UnboundedSender<Ended> {
        let (tx, _) = self
            .channel
            .get_or_insert_with(tokio::sync::mpsc::unbounded_channel);
        tx.clone()
    }

    /// The next report; never resolves while no sender was handed out.
    pub(crate) async fn recv(&mut self) -> Option<Ended> {
        match &mut self.channel {
            Some((_, rx)) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// A report already sent, if any.
    pub(crate) fn try_recv(&mut self) -> Option<Ended> {
        let (_, rx) = self.channel.as_mut()?;
        rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ConnectionRegistry;
    use std::sync::atomic::AtomicUsize;

    fn origin() -> Operation {
        Operation::Server(noex_protocol::ServerOp::Stats)
    }

    fn cancel_counter(counter: &Arc<AtomicUsize>) -> Cancel {
        let counter = Arc::clone(counter);
        Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn limits_counts_and_cleanup() {
        let registry = Arc::new(ConnectionRegistry::default());
        let reg = registry.register("127.0.0.1:9".parse().unwrap(), 0);
        let counters = Arc::new(SubscriptionCounters::default());
        let cancelled = Arc::new(AtomicUsize::new(0));
        let mut subs = ConnectionSubscriptions::new(Arc::clone(&counters), 2, None);

        let a = subs.reserve().unwrap();
        subs.insert(
            a.clone(),
            SubKind::Store,
            origin(),
            cancel_counter(&cancelled),
            &reg,
        );
        let b = subs.reserve().unwrap();
        subs.insert(
            b.clone(),
            SubKind::Rules,
            origin(),
            cancel_counter(&cancelled),
            &reg,
        );
        assert_ne!(a, b);
        let err = subs.reserve().unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert_eq!(
            err.message,
            "Subscription limit reached (max 2 per connection)"
        );
        assert_eq!(counters.total(), 2);
        let entry = registry.snapshot().remove(0);
        assert_eq!(
            (entry.store_subscriptions, entry.rules_subscriptions),
            (1, 1)
        );

        // The wrong kind or an unknown id is NOT_FOUND and cancels nothing.
        assert_eq!(
            subs.remove(&a, SubKind::Rules, &reg).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            subs.remove("sub-999", SubKind::Store, &reg)
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        subs.remove(&a, SubKind::Store, &reg).unwrap();
        assert_eq!(cancelled.load(Ordering::SeqCst), 1);
        assert_eq!(counters.total(), 1);

        drop(subs);
        assert_eq!(
            cancelled.load(Ordering::SeqCst),
            2,
            "dropping the set cancels the rest"
        );
        assert_eq!(counters.total(), 0);
    }

    #[test]
    fn the_global_limit_spans_connections() {
        let counters = Arc::new(SubscriptionCounters::default());
        let registry = Arc::new(ConnectionRegistry::default());
        let reg = registry.register("127.0.0.1:9".parse().unwrap(), 0);
        let mut one = ConnectionSubscriptions::new(Arc::clone(&counters), 10, Some(2));
        let two = ConnectionSubscriptions::new(Arc::clone(&counters), 10, Some(2));
        let id = one.reserve().unwrap();
        one.insert(id, SubKind::Store, origin(), Box::new(|| {}), &reg);
        let _reserved = two.reserve().unwrap();
        let err = two.reserve().unwrap_err();
        assert_eq!(err.message, "Global subscription limit reached (max 2)");
        two.release();
        assert_eq!(counters.total(), 1);
    }
}
