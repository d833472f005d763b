//! The heavy-read slots: scans of large buckets, heavy transactions and first evaluations
//! of subscriptions over large buckets run on the blocking pool, at most
//! `cores - 1` at once. Waiting is fair between clients: each client (its user id once
//! logged in, else its IP address) has at most one heavy read running or waiting for a
//! slot, so one client with many connections queues behind itself, and another client's
//! heavy read waits for at most one `limits.maxReadMs` budget per *other client* ahead of
//! it, however many requests those clients send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Who a heavy read is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Principal {
    /// A logged-in user, whatever its connections.
    User(String),
    /// An anonymous client, by address.
    Address(std::net::IpAddr),
}

/// The slots and each client's turn.
pub(crate) struct HeavySlots {
    slots: Arc<Semaphore>,
    turns: Mutex<HashMap<Principal, Arc<Semaphore>>>,
    /// Heavy reads one client may run at once (its others wait for its turn).
    per_client: usize,
}

/// A running heavy read's place: its client's turn and a slot, released on drop.
pub(crate) struct HeavyPermit {
    _slot: Option<OwnedSemaphorePermit>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl HeavySlots {
    /// `slots` heavy reads at once (at least one).
    pub(crate) fn new(slots: usize) -> Self {
        HeavySlots {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            turns: Mutex::new(HashMap::new()),
            per_client: 1,
        }
    }

    /// `slots` at once over all clients and `per_client` at once for each client: what
    /// procedure calls use (a call can run for its whole `timeoutMs`, far longer than a
    /// heavy read's budget, so calls have slots of their own; each client's calls queue
    /// behind its own, then all clients' calls share the slots).
    pub(crate) fn per_client(slots: usize, per_client: usize) -> Self {
        HeavySlots {
            slots: Arc::new(Semaphore::new(slots.clamp(1, Semaphore::MAX_PERMITS))),
            turns: Mutex::new(HashMap::new()),
            per_client: per_client.max(1),
        }
    }

    /// Waits for `principal`'s turn (its earlier heavy reads first), then for a slot.
    /// The semaphores are never closed, so both permits always come.
    pub(crate) async fn acquire(&self, principal: Principal) -> HeavyPermit {
        let turn = {
            let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            // Forget clients with nothing running or waiting (only the map holds them).
            if turns.len() > 1024 {
                turns.retain(|_, t| Arc::strong_count(t) > 1);
            }
            Arc::clone(
                turns
                    .entry(principal)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_client))),
            )
        };
        let turn = turn.acquire_owned().await.ok();
        let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
        HeavyPermit {
            _slot: slot,
            _turn: turn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn user(name: &str) -> Principal {
        Principal::User(name.to_owned())
    }

    #[tokio::test]
    async fn a_client_waits_behind_itself_not_others_behind_it() {
        let slots = Arc::new(HeavySlots::new(1));
        // The attacker holds the slot and has a second read queued for its turn.
        let running = slots.acquire(user("attacker")).await;
        let queued = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire(user("attacker")).await })
        };
        tokio::task::yield_now().await;
        // The victim queues for the slot directly, ahead of the attacker's second read.
        let victim = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire(user("victim")).await })
        };
        tokio::task::yield_now().await;
        drop(running);
        let victim_permit = victim.await.expect("the victim gets the slot");
        assert!(
            !queued.is_finished(),
            "the attacker's second read still waits"
        );
        drop(victim_permit);
        let _second = queued.await.expect("then the attacker's second read runs");
    }

    #[tokio::test]
    async fn anonymous_clients_are_told_apart_by_address() {
        let slots = HeavySlots::new(2);
        let a = Principal::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let b = Principal::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let _one = slots.acquire(a.clone()).await;
        // Another address gets the second slot at once.
        let _two = tokio::time::timeout(std::time::Duration::from_secs(5), slots.acquire(b))
            .await
            .expect("a second address does not wait for the first");
        // The same address waits for its own turn.
        let again = tokio::time::timeout(std::time::Duration::from_millis(50), slots.acquire(a));
        assert!(again.await.is_err());
    }
}
