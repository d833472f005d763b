//! Request ids and the pending-request table with per-request deadlines.

use std::collections::HashMap;

use super::SubscriptionKey;

/// A handle the core gives for each user request; its outcome arrives as
/// [`super::Output::Resolve`] with the same handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(pub u64);

/// Why a request is pending: what to do with its answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Purpose {
    /// A user call: resolve the handle with the result.
    User(RequestHandle),
    /// A user subscribe: record the server id, resolve the handle with the initial data.
    Subscribe(RequestHandle, SubscriptionKey),
    /// Re-subscription after a reconnect: record the server id, push fresh data.
    Resubscribe(SubscriptionKey),
    /// A user `auth.login`: on success the token is kept for re-login after reconnects.
    Login(RequestHandle, String),
    /// A user `identity.login`, `identity.loginWithSecret` or `identity.refreshSession`: on
    /// success the session token of the answer is kept for re-login after reconnects.
    IdentityLogin(RequestHandle),
    /// A user `auth.logout` or `identity.logout`: on success no token is replayed after
    /// reconnects.
    Logout(RequestHandle),
    /// A user `identity.changePassword`: on success the server has ended every session of
    /// the user, this one's token included, so it is not replayed after reconnects (it
    /// would only be refused).
    PasswordChanged(RequestHandle),
    /// Automatic re-login after a reconnect.
    Relogin,
    /// Fire-and-forget (unsubscribe): answers are ignored.
    Ignore,
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) purpose: Purpose,
    pub(crate) deadline_ms: u64,
}

/// Allocates ids (1, 2, 3, ...) and tracks what waits for an answer.
#[derive(Debug, Default)]
pub(crate) struct PendingTable {
    next_id: u64,
    entries: HashMap<u64, Pending>,
}

impl PendingTable {
    pub(crate) fn insert(&mut self, purpose: Purpose, deadline_ms: u64) -> u64 {
        self.next_id += 1;
        self.entries.insert(
            self.next_id,
            Pending {
                purpose,
                deadline_ms,
            },
        );
        self.next_id
    }

    pub(crate) fn take(&mut self, id: u64) -> Option<Pending> {
        self.entries.remove(&id)
    }

    /// Removes and returns (sorted by id) every entry whose deadline is `<= now_ms`.
    pub(crate) fn take_expired(&mut self, now_ms: u64) -> Vec<(u64, Pending)> {
        self.take_sorted(|p| p.deadline_ms <= now_ms)
    }

    /// Removes and returns (sorted by id) every entry.
    pub(crate) fn drain(&mut self) -> Vec<(u64, Pending)> {
        self.take_sorted(|_| true)
    }

    /// Removes and returns (sorted by id) the entries `which` selects. (Sorting the ids
    /// alone keeps one sort routine in the browser client's WebAssembly.)
    fn take_sorted(&mut self, which: impl Fn(&Pending) -> bool) -> Vec<(u64, Pending)> {
        let mut ids: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.entries.remove(&id).map(|p| (id, p)))
            .collect()
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.entries.values().map(|p| p.deadline_ms).min()
    }

    /// Whether a subscribe or re-subscribe for `key` waits for its answer.
    pub(crate) fn has_subscription(&self, key: SubscriptionKey) -> bool {
        self.entries.values().any(
            |p| matches!(p.purpose, Purpose::Subscribe(_, k) | Purpose::Resubscribe(k) if k == key),
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
