//! What one connection owns besides its socket: the session and its expiry timer, the
//! subscriptions, the outbound queue, the registry entry, the failed logins. The connection
//! task (`connection`) holds it; the router borrows it per request and lends the
//! operations only the parts they need (`ops::Subscriptions`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use noex_protocol::{ErrorCode, RequestId, ServerMessage};
use serde_json::json;

use crate::auth::Session;
use crate::error::ServerError;
use crate::login_limit::ConnectionFailures;
use crate::ops::Subscriptions;
use crate::outbound::OutboundQueue;
use crate::registry::Registration;
use crate::session::ConnectionSession;
use crate::shared::Shared;
use crate::subscriptions::ConnectionSubscriptions;

/// One connection's state.
pub(crate) struct ConnectionState {
    /// The server's shared state.
    pub(crate) shared: Arc<Shared>,
    /// Outbound frames, bounded in bytes.
    pub(crate) queue: Arc<OutboundQueue>,
    /// Store and rules subscriptions; all cancelled when the connection ends. Declared
    /// before `registration` so that they are gone by the time the registry shows the
    /// connection as closed.
    pub(crate) subscriptions: ConnectionSubscriptions,
    /// This connection's registry entry; removed when the connection ends.
    pub(crate) registration: Registration,
    /// Subscriptions created by the request being answered: their pushes are released
    /// once the answer is queued.
    pub(crate) activate_after_reply: Vec<String>,
    /// The peer's address (the rate-limit key before login).
    pub(crate) peer: SocketAddr,
    /// The session after `auth.login`.
    pub(crate) session: ConnectionSession,
    /// Where a subscription's source reports that it ended the subscription (its query
    /// can no longer be evaluated): at most one message per subscription.
    pub(crate) ended_subscriptions: crate::subscriptions::EndedSubscriptions,
    /// Estimated memory of the results this connection's store subscriptions hold
    /// (`limits.maxSubscriptionResultBytes`).
    pub(crate) held_results: Arc<AtomicUsize>,
    /// When the session's `expiresAt` passes, in ms on the server's clock; its subscriptions
    /// end then, even if the client sends nothing.
    pub(crate) session_deadline: Option<u64>,
    /// The session expired on its timer and no request has been refused for it yet.
    pub(crate) expired_unseen: bool,
    /// Failed `auth.login` attempts on this connection (see `login_limit`).
    pub(crate) login_failures: ConnectionFailures,
    /// The SHA-256 of the identity session token this connection logged in with through
    /// `identity.*` (what `identity.logout` and `identity.refreshSession` act on).
    pub(crate) identity_token: Option<String>,
    /// This connection's place in session revocation (see `revocation`).
    pub(crate) revocation: crate::revocation::RevocationSlot,
}

impl ConnectionState {
    /// The parts of this connection that subscribing touches, lent to an operation.
    pub(crate) fn subscriptions(&mut self) -> Subscriptions<'_> {
        Subscriptions {
            subscriptions: &mut self.subscriptions,
            registration: &self.registration,
            queue: &self.queue,
            outbound: &self.shared.outbound,
            activate_after_reply: &mut self.activate_after_reply,
            ended: &mut self.ended_subscriptions,
            held_results: &self.held_results,
        }
    }

    /// Who this connection's heavy reads are charged to: its user once logged in, else
    /// its peer's address.
    pub(crate) fn principal(&self) -> crate::heavy::Principal {
        match self.session.get() {
            Some(session) => crate::heavy::Principal::User(session.user_id.clone()),
            // By client key: an IPv6 client holds a whole /64.
            None => crate::heavy::Principal::Address(crate::handshake::client_key(self.peer.ip())),
        }
    }

    /// Replaces the session (reporting `connection.login` / `connection.logout` events when
    /// they are on), then ends every subscription the new session — or, with `None`, an
    /// anonymous client — may not hold; `why_anonymous` is the reason given when auth is
    /// required and no session is left.
    pub(crate) fn set_session(&mut self, session: Option<Session>, why_anonymous: &str) {
        self.expired_unseen = false;
        let user_id = session.as_ref().map(|s| s.user_id.clone());
        self.registration.update(|entry| entry.user_id = user_id);
        if let Some(old) = self.session.get() {
            let same_user = session.as_ref().is_some_and(|s| s.user_id == old.user_id);
            if !same_user {
                crate::connection_events::emit(
                    &self.shared,
                    "logout",
                    || json!({"connectionId": self.registration.wire_id(), "userId": old.user_id}),
                );
            }
        }
        if let Some(new) = &session {
            crate::connection_events::emit(
                &self.shared,
                "login",
                || json!({"connectionId": self.registration.wire_id(), "userId": new.user_id, "roles": new.roles}),
            );
        }
        self.revocation.set(session.as_ref());
        self.session.replace(session);
        self.end_forbidden_subscriptions(why_anonymous);
        self.arm_session_expiry();
    }

    /// Sets the timer for the current session's expiry (none without one), in ms on the
    /// server's clock: the connection waits for it with `Clock::sleep_until`, so a manual
    /// clock that is advanced past it ends the session at once.
    pub(crate) fn arm_session_expiry(&mut self) {
        self.session_deadline = self.session.expires_at();
    }

    /// Ends every subscription the current session (or, with none, an anonymous client) may
    /// not hold, each with an error frame (id 0) naming it; `why_anonymous` is the reason
    /// when auth is required and there is no session.
    pub(crate) fn end_forbidden_subscriptions(&mut self, why_anonymous: &str) {
        let shared = Arc::clone(&self.shared);
        let Some(auth) = &shared.auth else { return };
        let session = self.session.get().cloned();
        let refused: Vec<(String, ServerError)> = self
            .subscriptions
            .origins()
            .filter_map(|(id, origin)| {
                let verdict = match &session {
                    Some(session) => {
                        crate::access::check(&auth.authority(session), origin, shared.resolver())
                    }
                    None if auth.required => {
                        Err(ServerError::new(ErrorCode::Unauthorized, why_anonymous))
                    }
                    None => Ok(()),
                };
                verdict.err().map(|err| (id.to_owned(), err))
            })
            .collect();
        for (id, err) in refused {
            self.end_subscription(&id, err);
        }
    }

    /// Ends subscription `id` at its source and tells the client with an error frame
    /// `{id: 0, code, message: "Subscription <id> ended: <why>", details: {subscriptionId}}`.
    pub(crate) fn end_subscription(&mut self, id: &str, why: ServerError) {
        if !self.subscriptions.end(id, &self.registration) {
            return;
        }
        let notice = ServerError::new(
            why.code,
            format!("Subscription {id} ended: {}", why.message),
        )
        .with_details(json!({ "subscriptionId": id }));
        let frame = notice.into_frame(RequestId::zero(), self.shared.config.expose_error_details);
        self.queue.notice(ServerMessage::Error(frame).to_json());
    }
}
