//! Built-in identity (`identity.*`, docs/12-identity.md): users, roles, user-role
//! assignments and password sessions kept in system buckets of the server's own store
//! (`_users`, `_roles`, `_user_roles`, `_acl`, `_sessions`, `_resource_owners`, with the
//! original's fields), Argon2id password hashes ([`password`]) and session tokens from the
//! OS RNG stored only as their SHA-256. A session token also logs in through `auth.login`
//! ([`SessionValidator`]). `store.*` cannot touch the system buckets ([`Identity::guard`]).

mod password;
mod rights;

pub(crate) use rights::{ACL_OPERATIONS, IdentityGrants, RESOURCE_TYPES, Rights};

use std::collections::HashMap;
use std::sync::Arc;

use noex_model::clock::Clock;
use noex_protocol::payloads::{IdentityLogin, IdentityLoginUser, IdentityRole, IdentityUser};
use noex_protocol::{ErrorCode, Operation, Resource};
use noex_store::{BucketDefinition, Store, StoreError};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{Session, TokenValidator, ValidateFuture};
use crate::config::IdentitySection;
use crate::error::ServerError;
use crate::login_limit::FailureWindow;
use password::Lane;

/// The system buckets, created at start when identity is on.
pub(crate) const SYSTEM_BUCKETS: [&str; 6] = [
    "_users",
    "_roles",
    "_user_roles",
    "_acl",
    "_sessions",
    "_resource_owners",
];

/// The id (and username) of the virtual superadmin of `identity.loginWithSecret`.
pub(crate) const SUPERADMIN_ID: &str = "__superadmin__";

/// Live sessions one user may hold: a login past it ends the oldest session's token.
pub(crate) const MAX_SESSIONS_PER_USER: usize = 64;

/// The roles that may administer users.
const ADMIN_ROLES: [&str; 2] = ["superadmin", "admin"];

/// Shortest accepted password, characters (the original's).
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, characters: hashing cost must not grow with client input.
pub(crate) const MAX_PASSWORD_CHARS: usize = 256;
/// Username length bounds, characters (the original's).
const USERNAME_CHARS: (usize, usize) = (3, 64);
/// Role name length bounds, characters (the original's).
const ROLE_NAME_CHARS: (usize, usize) = (1, 64);
/// `identity.listUsers` page size: default and largest (the original's).
const PAGE_SIZE: (u64, u64) = (50, 200);
/// Most usernames whose failed logins are remembered at once.
const MAX_TRACKED_USERNAMES: usize = 65_536;

/// The bucket definitions, in the store's definition format.
fn definitions() -> [(&'static str, Value); 6] {
    let id = json!({"type": "string", "generated": "uuid"});
    let at = json!({"type": "number", "generated": "timestamp"});
    let resource_type = json!({"type": "string", "required": true,
        "enum": ["bucket", "topic", "procedure", "query"]});
    [
        (
            "_users",
            json!({"key": "id", "schema": {
                "id": id,
                "username": {"type": "string", "required": true, "unique": true,
                             "minLength": 3, "maxLength": 64},
                "passwordHash": {"type": "string", "required": true},
                "displayName": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "enabled": {"type": "boolean", "default": true},
                "metadata": {"type": "object"}},
                "indexes": ["username", "email"]}),
        ),
        (
            "_roles",
            json!({"key": "id", "schema": {
                "id": id,
                "name": {"type": "string", "required": true, "unique": true,
                         "minLength": 1, "maxLength": 64},
                "description": {"type": "string"},
                "system": {"type": "boolean", "default": false},
                "permissions": {"type": "array"}},
                "indexes": ["name"]}),
        ),
        (
            "_user_roles",
            json!({"key": "id", "schema": {
                "id": id,
                "userId": {"type": "string", "required": true},
                "roleId": {"type": "string", "required": true},
                "grantedBy": {"type": "string"},
                "grantedAt": at},
                "indexes": ["userId", "roleId"]}),
        ),
        (
            "_acl",
            json!({"key": "id", "schema": {
                "id": id,
                "subjectType": {"type": "string", "required": true, "enum": ["user", "role"]},
                "subjectId": {"type": "string", "required": true},
                "resourceType": resource_type,
                "resourceName": {"type": "string", "required": true},
                "operations": {"type": "array", "required": true},
                "grantedBy": {"type": "string"},
                "grantedAt": at},
                "indexes": ["subjectId", "resourceName"]}),
        ),
        (
            // The key is the SHA-256 of the token: the token itself is never stored.
            "_sessions",
            json!({"key": "id", "schema": {
                "id": {"type": "string", "required": true},
                "userId": {"type": "string", "required": true},
                "expiresAt": {"type": "number", "required": true},
                "createdAt": at,
                "ip": {"type": "string"},
                "userAgent": {"type": "string"}},
                "indexes": ["userId"]}),
        ),
        (
            "_resource_owners",
            json!({"key": "id", "schema": {
                "id": id,
                "userId": {"type": "string", "required": true},
                "resourceType": resource_type,
                "resourceName": {"type": "string", "required": true},
                "createdAt": at},
                "indexes": ["userId", "resourceName"]}),
        ),
    ]
}

/// The system roles, created at start when missing: `(name, description)`; their
/// `permissions` are the operation patterns the original gives them.
fn system_roles() -> [(&'static str, &'static str, Value); 4] {
    [
        (
            "superadmin",
            "Full access to everything including identity management",
            json!([{"allow": "*"}]),
        ),
        (
            "admin",
            "Structural operations, data mutations, and reads",
            json!([{"allow": ["store.*", "rules.*", "procedures.*", "server.*", "audit.*"]}]),
        ),
        (
            "writer",
            "Data mutations and reads",
            json!([{"allow": ["store.*", "rules.emit", "rules.setFact", "rules.deleteFact",
                              "rules.getFact", "rules.queryFacts", "rules.getAllFacts",
                              "rules.subscribe", "rules.unsubscribe", "rules.stats",
                              "procedures.call", "procedures.get"]}]),
        ),
        (
            "reader",
            "Read-only access",
            json!([{"allow": ["store.get", "store.all", "store.where", "store.findOne",
                              "store.count", "store.first", "store.last", "store.paginate",
                              "store.sum", "store.avg", "store.min", "store.max",
                              "store.subscribe", "store.unsubscribe", "store.buckets",
                              "store.stats", "rules.getFact", "rules.queryFacts",
                              "rules.getAllFacts", "rules.subscribe", "rules.unsubscribe",
                              "rules.stats", "procedures.get"]}]),
        ),
    ]
}

/// One role permission rule as `identity.createRole` accepts it: the config's
/// `permissions.rules` form without `role`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed to validate the shape
struct RolePermission {
    allow: crate::permissions::Patterns,
    buckets: Option<Vec<String>>,
    topics: Option<Vec<String>>,
    procedures: Option<Vec<String>>,
}

/// The built-in identity of a running server.
pub(crate) struct Identity {
    store: Store,
    config: IdentitySection,
    clock: Arc<dyn Clock>,
    hasher: password::Hasher,
    /// Failed `identity.login` per username.
    failures: Mutex<HashMap<String, FailureWindow>>,
    /// One password check at a time per username, so that the failure count is checked
    /// and updated around each check: logins sent at once cannot all pass the check while
    /// the first ones are still hashing (60 concurrent guesses all got an answer before:
    /// red team round 10). Valid logins of one user sent at once simply queue.
    checking: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Serializes the check-then-write sequences of the operations (no await inside).
    writes: Mutex<()>,
    /// Roles, assignments, grants and owners as permission checks read them, reloaded after
    /// every identity write.
    rights: parking_lot::RwLock<Arc<Rights>>,
    /// Counts reloads of `rights`: connections watch it and check their live
    /// subscriptions again, so a revoked right also ends what it was streaming.
    rights_version: tokio::sync::watch::Sender<u64>,
}

/// Who a successful login is, and the token to hand out.
pub(crate) struct LoggedIn {
    /// The answer.
    pub(crate) result: IdentityLogin,
    /// The connection's new session.
    pub(crate) session: Session,
    /// The SHA-256 of the token (the `_sessions` key).
    pub(crate) token_hash: String,
}

fn not_found(what: &str) -> ServerError {
    ServerError::new(ErrorCode::NotFound, format!("{what} not found"))
}

fn validation(message: impl Into<String>) -> ServerError {
    ServerError::new(ErrorCode::ValidationError, message)
}

fn unauthorized(message: &str) -> ServerError {
    ServerError::new(ErrorCode::Unauthorized, message)
}

/// The SHA-256 of a session token, hex.
fn token_hash(token: &str) -> String {
    password::hex(&Sha256::digest(token.as_bytes()))
}

fn text(record: &Map<String, Value>, field: &str) -> Option<String> {
    record.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn number(record: &Map<String, Value>, field: &str) -> u64 {
    record
        .get(field)
        .and_then(Value::as_u64)
        .unwrap_or_default()
}

/// A `_users` record as clients see it: never its password hash.
fn user_info(record: &Map<String, Value>) -> IdentityUser {
    IdentityUser {
        id: text(record, "id").unwrap_or_default(),
        username: text(record, "username").unwrap_or_default(),
        display_name: text(record, "displayName"),
        email: text(record, "email"),
        enabled: record.get("enabled").and_then(Value::as_bool) != Some(false),
        metadata: record.get("metadata").and_then(Value::as_object).cloned(),
        created_at: number(record, "_createdAt"),
        updated_at: number(record, "_updatedAt"),
    }
}

/// A `_roles` record as clients see it.
fn role_info(record: &Map<String, Value>) -> IdentityRole {
    IdentityRole {
        id: text(record, "id").unwrap_or_default(),
        name: text(record, "name").unwrap_or_default(),
        description: text(record, "description"),
        system: record.get("system").and_then(Value::as_bool) == Some(true),
        permissions: record
            .get("permissions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        created_at: number(record, "_createdAt"),
        updated_at: number(record, "_updatedAt"),
    }
}

fn filter(field: &str, value: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(field.to_owned(), Value::String(value.to_owned()));
    map
}

fn check_password(password: &str) -> Result<(), ServerError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(validation(format!(
            "Password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(validation(format!(
            "Password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

fn check_permissions(permissions: &[Value]) -> Result<(), ServerError> {
    for (index, rule) in permissions.iter().enumerate() {
        serde_json::from_value::<RolePermission>(rule.clone())
            .map_err(|err| validation(format!("Invalid \"permissions[{index}]\": {err}")))?;
    }
    Ok(())
}

impl Identity {
    /// Creates the system buckets and the system roles when missing (a restart with
    /// persistence finds them) and the password hasher.
    pub(crate) fn start(
        store: &Store,
        config: &IdentitySection,
        clock: Arc<dyn Clock>,
    ) -> Result<Identity, ServerError> {
        let existing = store.bucket_names();
        for (name, definition) in definitions() {
            if existing.iter().any(|b| b == name) {
                continue;
            }
            let definition: BucketDefinition =
                serde_json::from_value(definition).map_err(ServerError::internal)?;
            store.define_bucket(name, definition)?;
        }
        let roles = store.bucket("_roles");
        for (name, description, permissions) in system_roles() {
            if roles.find_one(&filter("name", name))?.is_none() {
                let mut record = Map::new();
                record.insert("name".into(), json!(name));
                record.insert("description".into(), json!(description));
                record.insert("system".into(), json!(true));
                record.insert("permissions".into(), permissions);
                roles.insert(record)?;
            }
        }
        // One fewer than the cores (at least one), like the heavy-read slots: however many
        // logins arrive at once, a core stays free for the workers answering everybody else.
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1);
        let identity = Identity {
            store: store.clone(),
            config: config.clone(),
            clock,
            hasher: password::Hasher::new(cores)?,
            failures: Mutex::new(HashMap::new()),
            checking: Mutex::new(HashMap::new()),
            writes: Mutex::new(()),
            rights: parking_lot::RwLock::new(Arc::default()),
            rights_version: tokio::sync::watch::Sender::new(0),
        };
        identity.reload()?;
        Ok(identity)
    }

    /// Reads roles, assignments, grants and owners again (after a write).
    pub(crate) fn reload(&self) -> Result<(), ServerError> {
        let rights = Rights::load(&self.store)?;
        *self.rights.write() = Arc::new(rights);
        self.rights_version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// A receiver that wakes after every change of roles, assignments, grants or owners
    /// (the change it is created after counts as seen).
    pub(crate) fn watch_rights(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rights_version.subscribe()
    }

    /// The rights as they are now.
    pub(crate) fn rights(&self) -> Arc<Rights> {
        Arc::clone(&self.rights.read())
    }

    /// The username of `user_id` (`__superadmin__` for the virtual superadmin).
    pub(crate) fn username(&self, user_id: &str) -> Result<Option<String>, ServerError> {
        if user_id == SUPERADMIN_ID {
            return Ok(Some(SUPERADMIN_ID.to_owned()));
        }
        Ok(self
            .store
            .bucket("_users")
            .get(&json!(user_id))?
            .and_then(|u| text(&u, "username")))
    }

    /// Whether a user (or the virtual superadmin) with this id exists.
    pub(crate) fn user_exists(&self, user_id: &str) -> Result<bool, ServerError> {
        Ok(user_id == SUPERADMIN_ID || self.store.bucket("_users").get(&json!(user_id))?.is_some())
    }

    /// Whether a role with this id exists.
    pub(crate) fn role_exists(&self, role_id: &str) -> Result<bool, ServerError> {
        Ok(self.store.bucket("_roles").get(&json!(role_id))?.is_some())
    }

    /// Grants `operations` on a resource to a subject, merged with its existing grant.
    pub(crate) fn grant(
        &self,
        subject: (&str, &str),
        resource: (&str, &str),
        operations: &[String],
        granted_by: &str,
    ) -> Result<(), ServerError> {
        let _writes = self.writes.lock();
        let acl = self.store.bucket("_acl");
        let existing = self.acl_entry(subject, resource)?;
        match existing {
            Some(entry) => {
                let mut merged: Vec<String> = entry
                    .get("operations")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                for op in operations {
                    if !merged.contains(op) {
                        merged.push(op.clone());
                    }
                }
                merged.sort();
                let mut patch = Map::new();
                patch.insert("operations".into(), json!(merged));
                if let Some(id) = entry.get("id") {
                    acl.update(id, patch)?;
                }
            }
            None => {
                let mut ops = operations.to_vec();
                ops.sort();
                ops.dedup();
                let mut record = Map::new();
                record.insert("subjectType".into(), json!(subject.0));
                record.insert("subjectId".into(), json!(subject.1));
                record.insert("resourceType".into(), json!(resource.0));
                record.insert("resourceName".into(), json!(resource.1));
                record.insert("operations".into(), json!(ops));
                record.insert("grantedBy".into(), json!(granted_by));
                acl.insert(record)?;
            }
        }
        self.reload()
    }

    fn acl_entry(
        &self,
        subject: (&str, &str),
        resource: (&str, &str),
    ) -> Result<Option<Map<String, Value>>, ServerError> {
        Ok(self
            .store
            .bucket("_acl")
            .where_(&filter("subjectId", subject.1))?
            .into_iter()
            .find(|e| {
                text(e, "subjectType").as_deref() == Some(subject.0)
                    && text(e, "resourceType").as_deref() == Some(resource.0)
                    && text(e, "resourceName").as_deref() == Some(resource.1)
            }))
    }

    /// Takes `operations` (all when `None`) back from a subject's grant on a resource.
    pub(crate) fn revoke(
        &self,
        subject: (&str, &str),
        resource: (&str, &str),
        operations: Option<&[String]>,
    ) -> Result<(), ServerError> {
        let _writes = self.writes.lock();
        let acl = self.store.bucket("_acl");
        let Some(entry) = self.acl_entry(subject, resource)? else {
            return Err(not_found("ACL entry"));
        };
        let Some(id) = entry.get("id") else {
            return Err(not_found("ACL entry"));
        };
        let left: Vec<String> = match operations {
            None => Vec::new(),
            Some(remove) => entry
                .get("operations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .filter(|op| !remove.contains(op))
                .collect(),
        };
        if left.is_empty() {
            acl.delete(id)?;
        } else {
            let mut patch = Map::new();
            patch.insert("operations".into(), json!(left));
            acl.update(id, patch)?;
        }
        self.reload()
    }

    /// Records `user_id` as the owner of a resource it created (replacing an old owner).
    pub(crate) fn set_owner(
        &self,
        resource: (&str, &str),
        user_id: &str,
    ) -> Result<(), ServerError> {
        let _writes = self.writes.lock();
        self.remove_owner_record(resource)?;
        let mut record = Map::new();
        record.insert("userId".into(), json!(user_id));
        record.insert("resourceType".into(), json!(resource.0));
        record.insert("resourceName".into(), json!(resource.1));
        self.store.bucket("_resource_owners").insert(record)?;
        self.reload()
    }

    fn remove_owner_record(&self, resource: (&str, &str)) -> Result<(), ServerError> {
        let owners = self.store.bucket("_resource_owners");
        for record in owners.where_(&filter("resourceName", resource.1))? {
            if text(&record, "resourceType").as_deref() == Some(resource.0)
                && let Some(id) = record.get("id")
            {
                owners.delete(id)?;
            }
        }
        Ok(())
    }

    /// A resource is gone: its owner and its grants go too.
    pub(crate) fn forget_resource(&self, resource: (&str, &str)) -> Result<(), ServerError> {
        let _writes = self.writes.lock();
        self.remove_owner_record(resource)?;
        let acl = self.store.bucket("_acl");
        for entry in acl.where_(&filter("resourceName", resource.1))? {
            if text(&entry, "resourceType").as_deref() == Some(resource.0)
                && let Some(id) = entry.get("id")
            {
                acl.delete(id)?;
            }
        }
        self.reload()
    }

    /// `FORBIDDEN` for a `store.*` operation on a system bucket: only `identity.*` reads
    /// and writes them (and never returns a password hash).
    pub(crate) fn guard(operation: &Operation) -> Result<(), ServerError> {
        let Operation::Store(op) = operation else {
            return Ok(());
        };
        let hit = match op.resource() {
            Resource::Bucket(name) => SYSTEM_BUCKETS.contains(&name).then_some(name),
            Resource::Transaction(ops) => ops
                .iter()
                .map(|o| o.bucket())
                .find(|b| SYSTEM_BUCKETS.contains(b)),
            Resource::QueryDefinition { config, .. } => config
                .get("bucket")
                .and_then(Value::as_str)
                .filter(|b| SYSTEM_BUCKETS.contains(b)),
            _ => None,
        };
        match hit {
            Some(bucket) => Err(ServerError::new(
                ErrorCode::Forbidden,
                format!("Bucket \"{bucket}\" is reserved for the identity system"),
            )),
            None => Ok(()),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The role names of `user_id`.
    pub(crate) fn role_names(&self, user_id: &str) -> Result<Vec<String>, ServerError> {
        if user_id == SUPERADMIN_ID {
            return Ok(vec!["superadmin".to_owned()]);
        }
        Ok(self
            .user_roles(user_id)?
            .iter()
            .map(|r| r.name.clone())
            .collect())
    }

    fn user_roles(&self, user_id: &str) -> Result<Vec<IdentityRole>, ServerError> {
        let assignments = self
            .store
            .bucket("_user_roles")
            .where_(&filter("userId", user_id))?;
        let roles = self.store.bucket("_roles");
        let mut out = Vec::new();
        for assignment in assignments {
            if let Some(role_id) = assignment.get("roleId")
                && let Some(role) = roles.get(role_id)?
            {
                out.push(role_info(&role));
            }
        }
        Ok(out)
    }

    fn user_record(&self, user_id: &str) -> Result<Map<String, Value>, ServerError> {
        self.store
            .bucket("_users")
            .get(&json!(user_id))?
            .ok_or_else(|| not_found("User"))
    }

    fn role_by_name(&self, name: &str) -> Result<Map<String, Value>, ServerError> {
        self.store
            .bucket("_roles")
            .find_one(&filter("name", name))?
            .ok_or_else(|| {
                ServerError::new(ErrorCode::NotFound, format!("Role \"{name}\" not found"))
            })
    }

    /// Starts a session for `user` with `roles`.
    fn open_session(&self, user: IdentityLoginUser, ip: &str) -> Result<LoggedIn, ServerError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(ServerError::internal)?;
        let token = password::hex(&random);
        let hash = token_hash(&token);
        let expires_at = self.now().saturating_add(self.config.session_ttl_ms);
        let sessions = self.store.bucket("_sessions");
        // Sessions of this user that ran out go now (a bounded sweep at each login), and
        // past MAX_SESSIONS_PER_USER live ones the oldest go too: one user's logins cannot
        // grow `_sessions` without bound (nor past what one read of them may return).
        let mut live = Vec::new();
        for old in sessions.where_(&filter("userId", &user.id))? {
            let Some(id) = old.get("id") else { continue };
            let expires = number(&old, "expiresAt");
            if expires <= self.now() {
                sessions.delete(id)?;
            } else {
                live.push((expires, id.clone()));
            }
        }
        if live.len() >= MAX_SESSIONS_PER_USER {
            live.sort_by_key(|(expires, _)| *expires);
            let excess = live.len() + 1 - MAX_SESSIONS_PER_USER;
            for (_, id) in live.into_iter().take(excess) {
                sessions.delete(&id)?;
            }
        }
        let mut record = Map::new();
        record.insert("id".into(), json!(hash));
        record.insert("userId".into(), json!(user.id));
        record.insert("expiresAt".into(), json!(expires_at));
        record.insert("ip".into(), json!(ip));
        sessions.insert(record)?;
        let session = Session {
            user_id: user.id.clone(),
            roles: user.roles.clone(),
            expires_at: Some(expires_at),
            identity: true,
        };
        Ok(LoggedIn {
            result: IdentityLogin {
                token,
                expires_at,
                user,
            },
            session,
            token_hash: hash,
        })
    }

    /// The lock that makes the password checks of `username` take turns.
    fn turn(&self, username: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut checking = self.checking.lock();
        // Forget usernames nobody is logging in as (only the map holds them).
        if checking.len() >= MAX_TRACKED_USERNAMES {
            checking.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        Arc::clone(checking.entry(username.to_owned()).or_default())
    }

    /// Refuses a password check of `username` (`RATE_LIMITED`) when it has too many
    /// recent failures, and otherwise says which hashing lane it waits in. Called holding
    /// the username's [`turn`](Self::turn).
    fn lane(&self, username: &str, suspect_address: bool) -> Result<Lane, ServerError> {
        let now = self.now();
        let failures = self
            .failures
            .lock()
            .get(username)
            .map_or(0, |window| window.current(now, self.config.login_window_ms));
        self.check_failures(username)
            .map_err(crate::login_limit::refusal)?;
        Ok(if suspect_address {
            Lane::Suspect
        } else if failures > 0 {
            Lane::Watched
        } else {
            Lane::Clean
        })
    }

    /// `Err(retry_after_ms)` when `username` has too many recent failed logins.
    fn check_failures(&self, username: &str) -> Result<(), u64> {
        let now = self.now();
        match self.failures.lock().get(username) {
            Some(window) => window.check(
                self.config.max_login_attempts,
                now,
                self.config.login_window_ms,
            ),
            None => Ok(()),
        }
    }

    fn record_failure(&self, username: &str) {
        let now = self.now();
        let window = self.config.login_window_ms;
        let mut table = self.failures.lock();
        if !table.contains_key(username) && table.len() >= MAX_TRACKED_USERNAMES {
            table.retain(|_, w| w.current(now, window) > 0);
            if table.len() >= MAX_TRACKED_USERNAMES {
                // Still full: forget one at random rather than grow.
                if let Some(key) = table.keys().next().cloned() {
                    table.remove(&key);
                }
            }
        }
        table
            .entry(username.to_owned())
            .or_default()
            .record(now, window);
    }

    /// `identity.login`: the same answer for an unknown user and a wrong password, and the
    /// same work (a dummy hash is verified for an unknown user).
    ///
    /// `suspect_address`: the client's address has failed logins in its window, so the
    /// password check waits behind those of everybody else ([`Lane::Suspect`]), as it does
    /// for a username with failures.
    pub(crate) async fn login(
        &self,
        username: &str,
        password: &str,
        ip: &str,
        suspect_address: bool,
    ) -> Result<LoggedIn, ServerError> {
        // No user has a longer name or password: refused without a lookup or a hash (and
        // without a failure-table entry, whose keys stay within the username limit).
        if username.chars().count() > USERNAME_CHARS.1
            || password.chars().count() > MAX_PASSWORD_CHARS
        {
            return Err(unauthorized("Invalid credentials"));
        }
        let turn = self.turn(username);
        let _turn = turn.lock().await;
        let lane = self.lane(username, suspect_address)?;
        let user = self
            .store
            .bucket("_users")
            .find_one(&filter("username", username))?;
        let hash = user.as_ref().and_then(|u| text(u, "passwordHash"));
        let valid = self.hasher.verify(password.to_owned(), hash, lane).await;
        let Some(user) = user.filter(|_| valid) else {
            self.record_failure(username);
            return Err(unauthorized("Invalid credentials"));
        };
        if user.get("enabled").and_then(Value::as_bool) == Some(false) {
            return Err(unauthorized("Account disabled"));
        }
        self.failures.lock().remove(username);
        let id = text(&user, "id").unwrap_or_default();
        let roles = self.role_names(&id)?;
        self.open_session(
            IdentityLoginUser {
                id,
                username: text(&user, "username").unwrap_or_default(),
                display_name: text(&user, "displayName"),
                roles,
            },
            ip,
        )
    }

    /// `identity.loginWithSecret`: the virtual superadmin (compared in constant time).
    pub(crate) fn login_with_secret(
        &self,
        secret: &str,
        ip: &str,
    ) -> Result<LoggedIn, ServerError> {
        use subtle_eq::eq;
        let expected = self.config.admin_secret.as_deref().unwrap_or_default();
        if expected.is_empty() || !eq(secret.as_bytes(), expected.as_bytes()) {
            return Err(unauthorized("Invalid secret"));
        }
        self.open_session(
            IdentityLoginUser {
                id: SUPERADMIN_ID.to_owned(),
                username: SUPERADMIN_ID.to_owned(),
                display_name: None,
                roles: vec!["superadmin".to_owned()],
            },
            ip,
        )
    }

    /// Deletes the session whose token hashes to `hash`.
    pub(crate) fn logout(&self, hash: &str) -> Result<(), ServerError> {
        self.store.bucket("_sessions").delete(&json!(hash))?;
        Ok(())
    }

    /// The session of a token, if it is live and its user may log in.
    pub(crate) fn validate(&self, token: &str) -> Result<Option<Session>, ServerError> {
        self.validate_hash(&token_hash(token))
    }

    /// The `_sessions` key of `token` when it is a live identity session token: what a
    /// connection that logged in with it through `auth.login` keeps, so that
    /// `identity.logout` and `identity.refreshSession` act on it.
    pub(crate) fn session_key(&self, token: &str) -> Option<String> {
        let hash = token_hash(token);
        matches!(self.validate_hash(&hash), Ok(Some(_))).then_some(hash)
    }

    fn validate_hash(&self, hash: &str) -> Result<Option<Session>, ServerError> {
        let sessions = self.store.bucket("_sessions");
        let Some(record) = sessions.get(&json!(hash))? else {
            return Ok(None);
        };
        let expires_at = number(&record, "expiresAt");
        if expires_at <= self.now() {
            sessions.delete(&json!(hash))?;
            return Ok(None);
        }
        let user_id = text(&record, "userId").unwrap_or_default();
        if user_id != SUPERADMIN_ID {
            match self.store.bucket("_users").get(&json!(user_id))? {
                Some(user) if user.get("enabled").and_then(Value::as_bool) != Some(false) => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(Session {
            roles: self.role_names(&user_id)?,
            user_id,
            expires_at: Some(expires_at),
            identity: true,
        }))
    }

    /// `identity.refreshSession`: the old token stops working, a new one starts.
    pub(crate) fn refresh(&self, hash: &str, ip: &str) -> Result<LoggedIn, ServerError> {
        let Some(session) = self.validate_hash(hash)? else {
            return Err(unauthorized("Invalid or expired session"));
        };
        self.logout(hash)?;
        let user = if session.user_id == SUPERADMIN_ID {
            IdentityLoginUser {
                id: SUPERADMIN_ID.to_owned(),
                username: SUPERADMIN_ID.to_owned(),
                display_name: None,
                roles: session.roles,
            }
        } else {
            let record = self
                .user_record(&session.user_id)
                .map_err(|_| unauthorized("User not found or disabled"))?;
            IdentityLoginUser {
                id: session.user_id,
                username: text(&record, "username").unwrap_or_default(),
                display_name: text(&record, "displayName"),
                roles: session.roles,
            }
        };
        self.open_session(user, ip)
    }

    /// `identity.createUser`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_user(
        &self,
        username: String,
        password: String,
        display_name: Option<String>,
        email: Option<String>,
        enabled: Option<bool>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<IdentityUser, ServerError> {
        let chars = username.chars().count();
        if chars < USERNAME_CHARS.0 || chars > USERNAME_CHARS.1 {
            return Err(validation("Username must be between 3 and 64 characters"));
        }
        check_password(&password)?;
        let exists = || -> Result<bool, ServerError> {
            Ok(self
                .store
                .bucket("_users")
                .find_one(&filter("username", &username))?
                .is_some())
        };
        let already = || {
            ServerError::new(
                ErrorCode::AlreadyExists,
                format!("User \"{username}\" already exists"),
            )
        };
        if exists()? {
            return Err(already());
        }
        let hash = self.hasher.hash(password).await?;
        let mut record = Map::new();
        record.insert("username".into(), json!(username));
        record.insert("passwordHash".into(), json!(hash));
        record.insert("enabled".into(), json!(enabled.unwrap_or(true)));
        if let Some(v) = display_name {
            record.insert("displayName".into(), json!(v));
        }
        if let Some(v) = email {
            record.insert("email".into(), json!(v));
        }
        if let Some(v) = metadata {
            record.insert("metadata".into(), Value::Object(v));
        }
        let _writes = self.writes.lock();
        if exists()? {
            return Err(already());
        }
        let inserted = self.store.bucket("_users").insert(record)?;
        Ok(user_info(&inserted))
    }

    /// `identity.getUser`.
    pub(crate) fn get_user(&self, user_id: &str) -> Result<IdentityUser, ServerError> {
        Ok(user_info(&self.user_record(user_id)?))
    }

    /// `identity.updateUser`: profile fields only.
    pub(crate) fn update_user(
        &self,
        user_id: &str,
        display_name: Option<String>,
        email: Option<String>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<IdentityUser, ServerError> {
        let existing = self.user_record(user_id)?;
        let mut patch = Map::new();
        if let Some(v) = display_name {
            patch.insert("displayName".into(), json!(v));
        }
        if let Some(v) = email {
            patch.insert("email".into(), json!(v));
        }
        if let Some(v) = metadata {
            patch.insert("metadata".into(), Value::Object(v));
        }
        if patch.is_empty() {
            return Ok(user_info(&existing));
        }
        let updated = self.store.bucket("_users").update(&json!(user_id), patch)?;
        Ok(user_info(&updated))
    }

    /// Deletes every session of `user_id`.
    fn delete_sessions(&self, user_id: &str) -> Result<(), ServerError> {
        let sessions = self.store.bucket("_sessions");
        for session in sessions.where_(&filter("userId", user_id))? {
            if let Some(id) = session.get("id") {
                sessions.delete(id)?;
            }
        }
        Ok(())
    }

    /// `identity.deleteUser`: the user, its sessions, role assignments and ACL entries.
    pub(crate) fn delete_user(&self, user_id: &str) -> Result<(), ServerError> {
        let _writes = self.writes.lock();
        self.user_record(user_id)?;
        self.delete_sessions(user_id)?;
        for bucket in ["_user_roles", "_acl", "_resource_owners"] {
            let field = if bucket == "_acl" {
                "subjectId"
            } else {
                "userId"
            };
            let handle = self.store.bucket(bucket);
            for record in handle.where_(&filter(field, user_id))? {
                if let Some(id) = record.get("id") {
                    handle.delete(id)?;
                }
            }
        }
        self.store.bucket("_users").delete(&json!(user_id))?;
        self.reload()
    }

    /// `identity.listUsers`: `(users, total, page, pageSize)`.
    pub(crate) fn list_users(
        &self,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<(Vec<IdentityUser>, u64, u64, u64), ServerError> {
        let page = page.unwrap_or(1).max(1);
        let page_size = page_size.unwrap_or(PAGE_SIZE.0).clamp(1, PAGE_SIZE.1);
        let all = self.store.bucket("_users").all()?;
        let total = all.len() as u64;
        let start = usize::try_from((page - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
        let users = all
            .iter()
            .skip(start)
            .take(page_size as usize)
            .map(user_info)
            .collect();
        Ok((users, total, page, page_size))
    }

    /// `identity.enableUser` / `identity.disableUser` (disabling deletes its sessions; the
    /// caller ends its connections).
    pub(crate) fn set_enabled(
        &self,
        user_id: &str,
        enabled: bool,
    ) -> Result<IdentityUser, ServerError> {
        let _writes = self.writes.lock();
        self.user_record(user_id)?;
        let mut patch = Map::new();
        patch.insert("enabled".into(), json!(enabled));
        let updated = self.store.bucket("_users").update(&json!(user_id), patch)?;
        if !enabled {
            self.delete_sessions(user_id)?;
        }
        // What a disabled user granted of a query stops counting (`Rights::may_share`).
        self.reload()?;
        Ok(user_info(&updated))
    }

    /// `identity.changePassword`: checks the current password; deletes the user's sessions.
    pub(crate) async fn change_password(
        &self,
        user_id: &str,
        current: String,
        new: String,
    ) -> Result<(), ServerError> {
        check_password(&new)?;
        let user = self.user_record(user_id)?;
        // The current password is checked like a login of the user: no longer than any
        // password (refused without a hash), one check at a time, counted against the
        // username's failed logins and refused once they reach the limit. Unlimited, a
        // stolen token could guess the password at 30 a second and any user could keep
        // the hashing slots busy (red team round 10).
        if current.chars().count() > MAX_PASSWORD_CHARS {
            return Err(unauthorized("Current password is incorrect"));
        }
        let username = text(&user, "username").unwrap_or_default();
        let turn = self.turn(&username);
        let _turn = turn.lock().await;
        let lane = self.lane(&username, false)?;
        if !self
            .hasher
            .verify(current, text(&user, "passwordHash"), lane)
            .await
        {
            self.record_failure(&username);
            return Err(unauthorized("Current password is incorrect"));
        }
        self.failures.lock().remove(&username);
        self.set_password(user_id, new).await
    }

    /// `identity.resetPassword`: deletes the user's sessions.
    pub(crate) async fn reset_password(
        &self,
        user_id: &str,
        new: String,
    ) -> Result<(), ServerError> {
        check_password(&new)?;
        self.user_record(user_id)?;
        self.set_password(user_id, new).await
    }

    async fn set_password(&self, user_id: &str, new: String) -> Result<(), ServerError> {
        let hash = self.hasher.hash(new).await?;
        let mut patch = Map::new();
        patch.insert("passwordHash".into(), json!(hash));
        self.store
            .bucket("_users")
            .update(&json!(user_id), patch)
            .map_err(|err| match err {
                StoreError::NotFound { .. } => not_found("User"),
                other => other.into(),
            })?;
        self.delete_sessions(user_id)
    }

    /// `identity.createRole`.
    pub(crate) fn create_role(
        &self,
        name: &str,
        description: Option<String>,
        permissions: Option<Vec<Value>>,
    ) -> Result<IdentityRole, ServerError> {
        let chars = name.chars().count();
        if chars < ROLE_NAME_CHARS.0 || chars > ROLE_NAME_CHARS.1 {
            return Err(validation("Role name must be between 1 and 64 characters"));
        }
        let permissions = permissions.unwrap_or_default();
        check_permissions(&permissions)?;
        let _writes = self.writes.lock();
        let roles = self.store.bucket("_roles");
        if roles.find_one(&filter("name", name))?.is_some() {
            return Err(ServerError::new(
                ErrorCode::AlreadyExists,
                format!("Role \"{name}\" already exists"),
            ));
        }
        let mut record = Map::new();
        record.insert("name".into(), json!(name));
        record.insert("system".into(), json!(false));
        record.insert("permissions".into(), Value::Array(permissions));
        if let Some(v) = description {
            record.insert("description".into(), json!(v));
        }
        let role = role_info(&roles.insert(record)?);
        self.reload()?;
        Ok(role)
    }

    /// `identity.updateRole`: description and permissions.
    pub(crate) fn update_role(
        &self,
        role_id: &str,
        description: Option<String>,
        permissions: Option<Vec<Value>>,
    ) -> Result<IdentityRole, ServerError> {
        if let Some(permissions) = &permissions {
            check_permissions(permissions)?;
        }
        let roles = self.store.bucket("_roles");
        let existing = roles
            .get(&json!(role_id))?
            .ok_or_else(|| not_found("Role"))?;
        let mut patch = Map::new();
        if let Some(v) = description {
            patch.insert("description".into(), json!(v));
        }
        if let Some(v) = permissions {
            patch.insert("permissions".into(), Value::Array(v));
        }
        if patch.is_empty() {
            return Ok(role_info(&existing));
        }
        let role = role_info(&roles.update(&json!(role_id), patch)?);
        self.reload()?;
        Ok(role)
    }

    /// `identity.deleteRole`: not a system role; its assignments go with it. Answers the
    /// users who held it.
    pub(crate) fn delete_role(&self, role_id: &str) -> Result<Vec<String>, ServerError> {
        let _writes = self.writes.lock();
        let roles = self.store.bucket("_roles");
        let existing = roles
            .get(&json!(role_id))?
            .ok_or_else(|| not_found("Role"))?;
        if existing.get("system").and_then(Value::as_bool) == Some(true) {
            return Err(ServerError::new(
                ErrorCode::Forbidden,
                "Cannot delete system role",
            ));
        }
        let assignments = self.store.bucket("_user_roles");
        let mut holders = Vec::new();
        for assignment in assignments.where_(&filter("roleId", role_id))? {
            if let Some(user) = text(&assignment, "userId") {
                holders.push(user);
            }
            if let Some(id) = assignment.get("id") {
                assignments.delete(id)?;
            }
        }
        roles.delete(&json!(role_id))?;
        // Its grants go with it.
        let acl = self.store.bucket("_acl");
        for entry in acl.where_(&filter("subjectId", role_id))? {
            if let Some(id) = entry.get("id") {
                acl.delete(id)?;
            }
        }
        self.reload()?;
        Ok(holders)
    }

    /// `identity.listRoles`.
    pub(crate) fn list_roles(&self) -> Result<Vec<IdentityRole>, ServerError> {
        Ok(self
            .store
            .bucket("_roles")
            .all()?
            .iter()
            .map(role_info)
            .collect())
    }

    /// `identity.assignRole`.
    pub(crate) fn assign_role(
        &self,
        user_id: &str,
        role_name: &str,
        granted_by: &str,
    ) -> Result<(), ServerError> {
        let _writes = self.writes.lock();
        // The virtual superadmin is no `_users` record and its roles are fixed: an
        // assignment to it was a stray row (red team round 10).
        self.user_record(user_id)?;
        let role = self.role_by_name(role_name)?;
        let role_id = text(&role, "id").unwrap_or_default();
        let assignments = self.store.bucket("_user_roles");
        let held = assignments
            .where_(&filter("userId", user_id))?
            .iter()
            .any(|a| text(a, "roleId").as_deref() == Some(role_id.as_str()));
        if held {
            return Err(ServerError::new(
                ErrorCode::AlreadyExists,
                format!("User already has role \"{role_name}\""),
            ));
        }
        let mut record = Map::new();
        record.insert("userId".into(), json!(user_id));
        record.insert("roleId".into(), json!(role_id));
        record.insert("grantedBy".into(), json!(granted_by));
        assignments.insert(record)?;
        self.reload()
    }

    /// `identity.removeRole`. `caller` may not remove its own last admin role.
    pub(crate) fn remove_role(
        &self,
        user_id: &str,
        role_name: &str,
        caller: &str,
    ) -> Result<(), ServerError> {
        let _writes = self.writes.lock();
        let role = self.role_by_name(role_name)?;
        let role_id = text(&role, "id").unwrap_or_default();
        let assignments = self.store.bucket("_user_roles");
        let held = assignments.where_(&filter("userId", user_id))?;
        let Some(assignment) = held
            .iter()
            .find(|a| text(a, "roleId").as_deref() == Some(role_id.as_str()))
        else {
            return Err(ServerError::new(
                ErrorCode::NotFound,
                format!("User does not have role \"{role_name}\""),
            ));
        };
        if user_id == caller && ADMIN_ROLES.contains(&role_name) {
            let admin_left = self
                .user_roles(user_id)?
                .iter()
                .any(|r| r.name != role_name && ADMIN_ROLES.contains(&r.name.as_str()));
            if !admin_left {
                return Err(ServerError::new(
                    ErrorCode::Forbidden,
                    "Cannot remove your own last admin role",
                ));
            }
        }
        if let Some(id) = assignment.get("id") {
            assignments.delete(id)?;
        }
        self.reload()
    }

    /// `identity.getUserRoles`.
    pub(crate) fn get_user_roles(&self, user_id: &str) -> Result<Vec<IdentityRole>, ServerError> {
        if user_id == SUPERADMIN_ID {
            let role = self.role_by_name("superadmin")?;
            return Ok(vec![role_info(&role)]);
        }
        self.user_record(user_id)?;
        self.user_roles(user_id)
    }

    /// Whether `roles` may administer users.
    pub(crate) fn is_admin(roles: &[String]) -> bool {
        roles.iter().any(|r| ADMIN_ROLES.contains(&r.as_str()))
    }
}

/// Constant-time equality of byte strings.
mod subtle_eq {
    /// Whether `a == b`, in time that depends only on the lengths.
    pub(super) fn eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Session tokens of the built-in identity as an `auth.login` token source.
pub(crate) struct SessionValidator(pub(crate) Arc<Identity>);

impl TokenValidator for SessionValidator {
    fn validate<'a>(&'a self, token: &'a str) -> ValidateFuture<'a> {
        Box::pin(async move {
            match self.0.validate(token) {
                Ok(session) => session,
                Err(err) => {
                    tracing::warn!(%err, "identity session lookup failed");
                    None
                }
            }
        })
    }
}

/// What a successful request does to the ownership records: the creator of a bucket, a
/// query or a procedure owns it; removing one forgets its owner and its grants.
pub(crate) enum Ownership {
    /// `(type, name)` was created.
    Created(&'static str, String),
    /// `(type, name)` was removed.
    Removed(&'static str, String),
}

impl Ownership {
    /// The ownership change `operation` makes if it succeeds.
    pub(crate) fn of(operation: &Operation) -> Option<Ownership> {
        use noex_protocol::{ProceduresOp, StoreOp};
        match operation {
            Operation::Store(StoreOp::DefineBucket { name, .. }) => {
                Some(Ownership::Created("bucket", name.clone()))
            }
            Operation::Store(StoreOp::DropBucket { name }) => {
                Some(Ownership::Removed("bucket", name.clone()))
            }
            Operation::Store(StoreOp::DefineQuery { name, .. }) => {
                Some(Ownership::Created("query", name.clone()))
            }
            Operation::Store(StoreOp::UndefineQuery { name }) => {
                Some(Ownership::Removed("query", name.clone()))
            }
            Operation::Procedures(ProceduresOp::Register { procedure }) => procedure
                .get("name")
                .and_then(Value::as_str)
                .map(|name| Ownership::Created("procedure", name.to_owned())),
            Operation::Procedures(ProceduresOp::Unregister { name }) => {
                Some(Ownership::Removed("procedure", name.clone()))
            }
            _ => None,
        }
    }

    /// Records the change, made by `user_id`.
    pub(crate) fn apply(self, identity: &Identity, user_id: &str) -> Result<(), ServerError> {
        match self {
            Ownership::Created(kind, name) => identity.set_owner((kind, &name), user_id),
            Ownership::Removed(kind, name) => identity.forget_resource((kind, &name)),
        }
    }
}
