//! Session revocation (`revocation` config section): an administrator — in process through
//! [`crate::ServerHandle::revoke_session`] / [`crate::ServerHandle::revoke_sessions`], or on
//! the wire with `server.revokeSessions` — ends the sessions of matching connections. Each
//! is sent `{type: "system", event: "session_revoked", reason}` and closed with 4002
//! `session_revoked` (its subscriptions end with it: the queue takes no push after the
//! close), and its user is blacklisted for `blacklistTtlMs`: `auth.login` for that user
//! answers `SESSION_REVOKED` until then. The blacklist is bounded
//! ([`MAX_REVOKED_USERS`]; expired entries are dropped first, then the one expiring soonest).

use std::collections::HashMap;
use std::sync::Arc;

use noex_model::clock::Clock;
use noex_protocol::{ServerMessage, SystemEvent};
use parking_lot::Mutex;

use crate::auth_session::Session;
use crate::config::RevocationConfig;
use crate::outbound::OutboundQueue;

/// Most users the blacklist holds at once.
pub const MAX_REVOKED_USERS: usize = 100_000;
/// The `reason` of the `session_revoked` notice.
pub const REVOKED_REASON: &str = "Session revoked by administrator";
/// The close code of a revoked connection.
pub const REVOKED_CLOSE_CODE: u16 = 4002;

/// Which connections [`crate::ServerHandle::revoke_sessions`] revokes: the authenticated
/// ones matching every given field (all authenticated connections when none is given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokeFilter {
    /// The session's user.
    pub user_id: Option<String>,
    /// A role the session has.
    pub role: Option<String>,
    /// The connection's id, `conn-N` as [`crate::ServerHandle::connections`] lists it.
    pub connection_id: Option<String>,
}

/// An authenticated connection, as revocation sees it.
struct Member {
    user_id: String,
    roles: Vec<String>,
    queue: Arc<OutboundQueue>,
}

#[derive(Default)]
struct State {
    /// Revoked users and when their ban ends (server clock, ms).
    blacklist: HashMap<String, u64>,
    /// Authenticated connections by numeric id.
    members: HashMap<u64, Member>,
}

/// The blacklist and the authenticated connections.
pub(crate) struct Revocations {
    ttl_ms: u64,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl Revocations {
    pub(crate) fn new(config: RevocationConfig, clock: Arc<dyn Clock>) -> Arc<Revocations> {
        Arc::new(Revocations {
            ttl_ms: config.blacklist_ttl_ms,
            clock,
            state: Mutex::default(),
        })
    }

    /// This connection's place in revocation; it leaves when the slot is dropped.
    pub(crate) fn slot(self: &Arc<Self>, id: u64, queue: Arc<OutboundQueue>) -> RevocationSlot {
        RevocationSlot {
            revocations: Arc::clone(self),
            id,
            queue,
            close_after_answer: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether `user_id` may not log in now.
    pub(crate) fn is_revoked(&self, user_id: &str) -> bool {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        match state.blacklist.get(user_id) {
            Some(&until) if until > now => true,
            Some(_) => {
                state.blacklist.remove(user_id);
                false
            }
            None => false,
        }
    }

    /// Users blacklisted now.
    pub(crate) fn blacklisted(&self) -> usize {
        let now = self.clock.now_ms();
        self.state
            .lock()
            .blacklist
            .values()
            .filter(|&&until| until > now)
            .count()
    }

    /// Blacklists `user_id` and revokes every connection of it; the number revoked.
    pub(crate) fn revoke_user(&self, user_id: &str) -> usize {
        let revoked = {
            let mut state = self.state.lock();
            self.ban(&mut state, user_id);
            take_matching(&mut state, |_, m| m.user_id == user_id)
        };
        let count = revoked.len();
        close_all(revoked.into_iter().map(|(_, m)| m.queue).collect());
        count
    }

    /// Revokes the authenticated connections matching `filter`, blacklisting each one's
    /// user; the number revoked.
    pub(crate) fn revoke(&self, filter: &RevokeFilter) -> usize {
        self.revoke_from(filter, None)
    }

    /// [`Revocations::revoke`] asked by the connection holding `own`: when it is among the
    /// revoked, it is closed only once its answer is queued (see
    /// [`RevocationSlot::close_if_revoked`]).
    pub(crate) fn revoke_from(&self, filter: &RevokeFilter, own: Option<&RevocationSlot>) -> usize {
        let connection = match &filter.connection_id {
            Some(wire) => match parse_connection_id(wire) {
                Some(id) => Some(id),
                None => return 0,
            },
            None => None,
        };
        let mut revoked = {
            let mut state = self.state.lock();
            let revoked = take_matching(&mut state, |id, m| {
                connection.is_none_or(|c| c == id)
                    && filter.user_id.as_ref().is_none_or(|u| &m.user_id == u)
                    && filter.role.as_ref().is_none_or(|r| m.roles.contains(r))
            });
            for (_, member) in &revoked {
                self.ban(&mut state, &member.user_id);
            }
            revoked
        };
        let count = revoked.len();
        if let Some(own) = own {
            let before = revoked.len();
            revoked.retain(|(id, _)| *id != own.id);
            if revoked.len() < before {
                own.close_after_answer
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        close_all(revoked.into_iter().map(|(_, m)| m.queue).collect());
        count
    }

    /// Ends every authenticated connection of `user_id` (the notice and the 4002 close)
    /// without blacklisting it: what disabling or deleting a built-in identity user does
    /// (enabling it again lets it log in at once). `own` as in [`Revocations::revoke_from`].
    pub(crate) fn end_user_from(&self, user_id: &str, own: Option<&RevocationSlot>) -> usize {
        let mut ended = take_matching(&mut self.state.lock(), |_, m| m.user_id == user_id);
        let count = ended.len();
        if let Some(own) = own {
            let before = ended.len();
            ended.retain(|(id, _)| *id != own.id);
            if ended.len() < before {
                own.close_after_answer
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        close_all(ended.into_iter().map(|(_, m)| m.queue).collect());
        count
    }

    /// Adds `user_id` to the blacklist, within [`MAX_REVOKED_USERS`].
    fn ban(&self, state: &mut State, user_id: &str) {
        let now = self.clock.now_ms();
        if !state.blacklist.contains_key(user_id) && state.blacklist.len() >= MAX_REVOKED_USERS {
            state.blacklist.retain(|_, until| *until > now);
            if state.blacklist.len() >= MAX_REVOKED_USERS {
                let soonest = state
                    .blacklist
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(user, _)| user.clone());
                if let Some(user) = soonest {
                    tracing::warn!(
                        "revocation blacklist full ({MAX_REVOKED_USERS}): the ban expiring soonest ends early"
                    );
                    state.blacklist.remove(&user);
                }
            }
        }
        state
            .blacklist
            .insert(user_id.to_owned(), now.saturating_add(self.ttl_ms));
    }
}

/// Removes and returns the members matching `matches`, with their ids.
fn take_matching(state: &mut State, matches: impl Fn(u64, &Member) -> bool) -> Vec<(u64, Member)> {
    let ids: Vec<u64> = state
        .members
        .iter()
        .filter(|(id, m)| matches(**id, m))
        .map(|(id, _)| *id)
        .collect();
    ids.into_iter()
        .filter_map(|id| state.members.remove(&id).map(|m| (id, m)))
        .collect()
}

/// Tells each revoked connection and closes it; the queue accepts nothing after the close,
/// so no push of its subscriptions follows the notice.
fn close_all(queues: Vec<Arc<OutboundQueue>>) {
    let notice = ServerMessage::System(SystemEvent::SessionRevoked {
        reason: REVOKED_REASON.to_owned(),
    })
    .to_json();
    for queue in queues {
        queue.notice(notice.clone());
        queue.close(REVOKED_CLOSE_CODE, "session_revoked");
    }
}

/// `conn-N` → `N`.
fn parse_connection_id(wire: &str) -> Option<u64> {
    wire.strip_prefix("conn-")?.parse().ok()
}

/// One connection's membership; leaves when dropped (the connection ended).
pub(crate) struct RevocationSlot {
    revocations: Arc<Revocations>,
    id: u64,
    queue: Arc<OutboundQueue>,
    /// The connection revoked itself: close it once the answer is queued.
    close_after_answer: std::sync::atomic::AtomicBool,
}

impl RevocationSlot {
    /// Sends the revocation notice and closes the connection if its own request revoked
    /// it; called once the request's answer is queued.
    pub(crate) fn close_if_revoked(&self) {
        if self
            .close_after_answer
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            close_all(vec![Arc::clone(&self.queue)]);
        }
    }

    /// The connection's session changed. A session of a user revoked meanwhile (a login
    /// that passed its check just before the revocation) is revoked at once.
    pub(crate) fn set(&self, session: Option<&Session>) {
        let revoked = {
            let now = self.revocations.clock.now_ms();
            let mut state = self.revocations.state.lock();
            match session {
                None => {
                    state.members.remove(&self.id);
                    false
                }
                Some(session) => {
                    let banned = state
                        .blacklist
                        .get(&session.user_id)
                        .is_some_and(|&until| until > now);
                    if banned {
                        state.members.remove(&self.id);
                    } else {
                        state.members.insert(
                            self.id,
                            Member {
                                user_id: session.user_id.clone(),
                                roles: session.roles.clone(),
                                queue: Arc::clone(&self.queue),
                            },
                        );
                    }
                    banned
                }
            }
        };
        if revoked {
            close_all(vec![Arc::clone(&self.queue)]);
        }
    }
}

impl Drop for RevocationSlot {
    fn drop(&mut self) {
        self.revocations.state.lock().members.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_parse_only_in_their_wire_form() {
        assert_eq!(parse_connection_id("conn-12"), Some(12));
        assert_eq!(parse_connection_id("12"), None);
        assert_eq!(parse_connection_id("conn-x"), None);
    }
}
