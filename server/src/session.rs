//! One connection's session: who is logged in and until when, and a shared read-only view
//! of it for code that runs outside the connection task (the filter that keeps a bucket's
//! change events from rules subscribers who may not read that bucket).

use std::borrow::Cow;
use std::sync::Arc;

use noex_protocol::Tier;
use parking_lot::RwLock;

use crate::access::BUCKET_READ;
use crate::auth::Session;
use crate::permissions::{Authority, Item, Need};
use crate::shared::{AuthRuntime, Shared};

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
            grants: self.grants.as_deref(),
        }
    }
}

/// Whether a connection's session — as it is when asked, not when the filter was made —
/// may read a bucket (`store.all`): the check that keeps a bucket's change events (which
/// carry its records) from `rules.subscribe` subscribers who may not read it. It runs in
/// the engine's callbacks, outside the connection task.
pub(crate) struct BucketReadFilter {
    shared: std::sync::Weak<Shared>,
    session: Arc<SessionView>,
}

impl BucketReadFilter {
    /// A filter following `session` under the policy of `shared`.
    pub(crate) fn new(shared: &Arc<Shared>, session: Arc<SessionView>) -> Self {
        BucketReadFilter {
            shared: Arc::downgrade(shared),
            session,
        }
    }

    /// Whether the session may read `bucket` now (never once the server is gone).
    pub(crate) fn may_read(&self, bucket: &str) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        let (Some(auth), Some(session)) = (&shared.auth, self.session.get()) else {
            // No auth, or an anonymous client that may do everything.
            return shared.auth.as_ref().is_none_or(|auth| !auth.required);
        };
        auth.authority(&session).allows(&Need {
            op: BUCKET_READ,
            tier: Tier::Read,
            resource: Cow::Borrowed(bucket),
            items: vec![Item::Bucket(Cow::Borrowed(bucket))],
        })
    }
}
