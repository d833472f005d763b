//! The connection registry: the shared view of every open connection, used for
//! `connection_count()`, `server.connections`, per-IP limits and the shutdown wait.
//! Each connection task holds a [`Registration`] that removes its entry when dropped, so the
//! entry goes away however the task ends (clean close, error or panic).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::outbound::OutboundQueue;

/// One connection's outbound buffer, for operators and tests (not on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBuffer {
    /// Numeric connection id (`conn-N` on the wire).
    pub id: u64,
    /// Bytes queued for the socket or written and not yet flushed.
    pub buffered_bytes: usize,
    /// Bytes of pushes held back (coalesced) while the client is slow.
    pub held_bytes: usize,
    /// The most `buffered_bytes` ever reached on this connection.
    pub peak_buffered_bytes: usize,
}

/// What the registry knows about one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEntry {
    /// Numeric id; the wire id is `conn-N`.
    pub id: u64,
    /// Peer address.
    pub remote: SocketAddr,
    /// ms since the Unix epoch.
    pub connected_at: u64,
    /// The session's user, when logged in.
    pub user_id: Option<String>,
    /// Open store subscriptions.
    pub store_subscriptions: u64,
    /// Open rules subscriptions.
    pub rules_subscriptions: u64,
}

/// All open connections.
#[derive(Debug, Default)]
pub struct ConnectionRegistry {
    entries: Mutex<HashMap<u64, ConnectionEntry>>,
    queues: Mutex<HashMap<u64, Arc<OutboundQueue>>>,
    next_id: AtomicU64,
    changed: Notify,
}

impl ConnectionRegistry {
    /// Registers a new connection; the entry lives as long as the returned guard.
    pub fn register(self: &Arc<Self>, remote: SocketAddr, connected_at: u64) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.entries.lock().insert(
            id,
            ConnectionEntry {
                id,
                remote,
                connected_at,
                user_id: None,
                store_subscriptions: 0,
                rules_subscriptions: 0,
            },
        );
        Registration {
            registry: Arc::clone(self),
            id,
        }
    }

    /// Number of open connections.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open connections from `ip`'s client: the address, or for IPv6 its /64 network.
    pub fn count_from(&self, ip: IpAddr) -> usize {
        // By client key: an IPv6 client holds a whole /64 (see `handshake::client_key`).
        let key = crate::handshake::client_key(ip);
        self.entries
            .lock()
            .values()
            .filter(|e| crate::handshake::client_key(e.remote.ip()) == key)
            .count()
    }

    /// A copy of every entry, ordered by id.
    pub fn snapshot(&self) -> Vec<ConnectionEntry> {
        let mut all: Vec<_> = self.entries.lock().values().cloned().collect();
        all.sort_by_key(|e| e.id);
        all
    }

    /// The outbound buffer of every open connection, ordered by id.
    pub fn buffers(&self) -> Vec<ConnectionBuffer> {
        let mut all: Vec<ConnectionBuffer> = self
            .queues
            .lock()
            .iter()
            .map(|(id, queue)| ConnectionBuffer {
                id: *id,
                buffered_bytes: queue.buffered_bytes(),
                held_bytes: queue.held_bytes(),
                peak_buffered_bytes: queue.peak_bytes(),
            })
            .collect();
        all.sort_by_key(|b| b.id);
        all
    }

    /// Resolves once the registry is empty.
    pub async fn wait_empty(&self) {
        loop {
            let notified = self.changed.notified();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// The wire form (`conn-N`) of a connection's numeric id.
pub fn wire_connection_id(id: u64) -> String {
    format!("conn-{id}")
}

/// Keeps one connection's registry entry alive; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<ConnectionRegistry>,
    id: u64,
}

impl Registration {
    /// The connection's numeric id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The connection's id on the wire (`conn-N`), as `server.connections` lists it.
    pub fn wire_id(&self) -> String {
        wire_connection_id(self.id)
    }

    /// Makes this connection's outbound queue visible to [`ConnectionRegistry::buffers`].
    pub(crate) fn attach_queue(&self, queue: Arc<OutboundQueue>) {
        self.registry.queues.lock().insert(self.id, queue);
    }

    /// Changes this connection's entry.
    pub fn update(&self, change: impl FnOnce(&mut ConnectionEntry)) {
        if let Some(entry) = self.registry.entries.lock().get_mut(&self.id) {
            change(entry);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.entries.lock().remove(&self.id);
        self.registry.queues.lock().remove(&self.id);
        self.registry.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fifth red-team run: an IPv6 host holds a /64, so counting per full address let one
    /// host open unlimited connections (and take unlimited heavy-read turns).
    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let registry = Arc::new(ConnectionRegistry::default());
        let one: SocketAddr = "[2001:db8:1:2::1]:1".parse().unwrap();
        let other: SocketAddr = "[2001:db8:1:2:ffff::9]:2".parse().unwrap();
        let elsewhere: SocketAddr = "[2001:db8:1:3::1]:3".parse().unwrap();
        let _a = registry.register(one, 1);
        let _b = registry.register(other, 2);
        let _c = registry.register(elsewhere, 3);
        assert_eq!(registry.count_from(one.ip()), 2);
        assert_eq!(registry.count_from(elsewhere.ip()), 1);
    }

    #[tokio::test]
    async fn entries_leave_when_their_registration_drops() {
        let registry = Arc::new(ConnectionRegistry::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = registry.register(addr, 1);
        let b = registry.register(addr, 2);
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.count_from(addr.ip()), 2);
        assert_ne!(a.id(), b.id());
        b.update(|e| e.user_id = Some("u".into()));
        assert_eq!(registry.snapshot()[1].user_id.as_deref(), Some("u"));
        drop(a);
        assert_eq!(registry.len(), 1);
        let waiter = {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move { registry.wait_empty().await })
        };
        drop(b);
        waiter.await.unwrap();
        assert!(registry.is_empty());
    }
}
