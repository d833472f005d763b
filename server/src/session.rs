//! One connection's session: who is logged in and until when, and a shared read-only view
//! of it for code that runs outside the connection task (the filter that keeps a bucket's
//! change events from rules subscribers who may not read that bucket).

use std::sync::Arc;

use parking_lot::RwLock;

use crate::auth::Session;
use crate::permissions::Authority;
use crate::server::AuthRuntime;

/// The session as callbacks outside the connection task see it.
#[derive(Debug, Default)]
pub(crate) struct SessionView(RwLock<Option<Arc<Session>>>);

impl SessionView {
    /// The current session, if any.
    pub(crate) fn get(&self) -> Option<Arc<Session>> {
        self.0.read().clone()
    }
}

/// The connection's session slot; every change is mirrored into its [`SessionView`].
#[derive(Debug, Default)]
pub(crate) struct ConnectionSession {
    current: Option<Arc<Session>>,
    view: Arc<SessionView>,
}

impl ConnectionSession {
    /// The current session.
    pub(crate) fn get(&self) -> Option<&Arc<Session>> {
        self.current.as_ref()
    }

    /// Replaces the session; returns the previous one.
    pub(crate) fn replace(&mut self, session: Option<Session>) -> Option<Arc<Session>> {
        let session = session.map(Arc::new);
        *self.view.0.write() = session.clone();
        std::mem::replace(&mut self.current, session)
    }

    /// A view that follows this session.
    pub(crate) fn view(&self) -> Arc<SessionView> {
        Arc::clone(&self.view)
    }

    /// When the session ends (ms on the server's clock), if it does.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        self.current.as_ref().and_then(|s| s.expires_at)
    }
}

impl AuthRuntime {
    /// The rights of `session` under this server's policy.
    pub(crate) fn authority<'a>(&'a self, session: &'a Session) -> Authority<'a> {
        Authority {
            session,
            policy: &self.permissions,
            hook: self.hook.as_deref(),
        }
    }
}
