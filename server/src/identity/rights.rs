//! The identity's rights in memory, as permission checks read them on every request:
//! which roles each user holds now, each role's permission rules, the ACL grants and the
//! resources' owners. Loaded from the system buckets at start and after every identity
//! write (the only writers: `store.*` and procedures cannot touch those buckets).

use std::collections::HashMap;

use noex_model::pattern::NamePattern;
use noex_store::Store;
use serde_json::Value;

use crate::auth::Session;
use crate::error::ServerError;
use crate::permissions::{Grants, Item, Need, PermissionRule, Tier};

use super::SUPERADMIN_ID;

/// The resource types of grants and ownership.
pub(crate) const RESOURCE_TYPES: [&str; 4] = ["bucket", "topic", "procedure", "query"];

/// The operations a grant can give, sorted.
pub(crate) const ACL_OPERATIONS: [&str; 3] = ["admin", "read", "write"];

/// One ACL grant.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// `user` or `role`.
    pub(crate) subject_type: String,
    /// The user's or the role's id.
    pub(crate) subject_id: String,
    /// `bucket`, `topic`, `procedure` or `query`.
    pub(crate) resource_type: String,
    /// The resource's name.
    pub(crate) resource_name: String,
    /// `read`, `write`, `admin`.
    pub(crate) operations: Vec<String>,
    /// Who made it (a user id; empty for none recorded).
    pub(crate) granted_by: String,
}

/// A role as checks see it.
#[derive(Debug, Clone)]
pub(crate) struct RoleRights {
    /// The role's name.
    pub(crate) name: String,
    /// Its permission rules, with `role` set to its name.
    pub(crate) rules: Vec<PermissionRule>,
}

/// Everything permission checks need from the identity.
#[derive(Debug, Default)]
pub(crate) struct Rights {
    /// Role id → role.
    pub(crate) roles: HashMap<String, RoleRights>,
    /// User id → the ids of its roles.
    pub(crate) user_roles: HashMap<String, Vec<String>>,
    /// Every grant.
    pub(crate) grants: Vec<Grant>,
    /// (resource type, name) → owner id.
    pub(crate) owners: HashMap<(String, String), String>,
    /// Ids of disabled users: what they granted of a query no longer counts.
    pub(crate) disabled: std::collections::HashSet<String>,
}

fn text(record: &serde_json::Map<String, Value>, field: &str) -> String {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The operation a tier needs from a grant.
fn operation_of(tier: Tier) -> &'static str {
    match tier {
        Tier::Read => "read",
        Tier::Write => "write",
        Tier::Admin => "admin",
    }
}

impl Rights {
    /// Reads the system buckets.
    pub(crate) fn load(store: &Store) -> Result<Rights, ServerError> {
        let mut rights = Rights::default();
        for role in store.bucket("_roles").all()? {
            let name = text(&role, "name");
            let rules = role
                .get("permissions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|rule| {
                    let mut rule = rule.as_object()?.clone();
                    rule.insert("role".into(), Value::String(name.clone()));
                    serde_json::from_value::<PermissionRule>(Value::Object(rule)).ok()
                })
                .collect();
            rights
                .roles
                .insert(text(&role, "id"), RoleRights { name, rules });
        }
        for assignment in store.bucket("_user_roles").all()? {
            rights
                .user_roles
                .entry(text(&assignment, "userId"))
                .or_default()
                .push(text(&assignment, "roleId"));
        }
        for entry in store.bucket("_acl").all()? {
            rights.grants.push(Grant {
                subject_type: text(&entry, "subjectType"),
                subject_id: text(&entry, "subjectId"),
                resource_type: text(&entry, "resourceType"),
                resource_name: text(&entry, "resourceName"),
                operations: entry
                    .get("operations")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                granted_by: text(&entry, "grantedBy"),
            });
        }
        let disabled = serde_json::json!({"enabled": false});
        if let Some(filter) = disabled.as_object() {
            for user in store.bucket("_users").where_(filter)? {
                rights.disabled.insert(text(&user, "id"));
            }
        }
        for owner in store.bucket("_resource_owners").all()? {
            rights.owners.insert(
                (text(&owner, "resourceType"), text(&owner, "resourceName")),
                text(&owner, "userId"),
            );
        }
        Ok(rights)
    }

    /// The ids of the roles `user_id` holds now (the superadmin role for the virtual
    /// superadmin).
    pub(crate) fn role_ids(&self, user_id: &str) -> Vec<String> {
        if user_id == SUPERADMIN_ID {
            return self
                .roles
                .iter()
                .filter(|(_, r)| r.name == "superadmin")
                .map(|(id, _)| id.clone())
                .collect();
        }
        self.user_roles.get(user_id).cloned().unwrap_or_default()
    }

    /// Whether `subject` is `user_id` itself or one of its roles.
    fn is_subject(&self, grant: &Grant, user_id: &str, role_ids: &[String]) -> bool {
        match grant.subject_type.as_str() {
            "user" => grant.subject_id == user_id,
            "role" => role_ids.contains(&grant.subject_id),
            _ => false,
        }
    }

    /// What `user_id` may do on a resource, sorted (an owner may do everything).
    pub(crate) fn operations_on(
        &self,
        user_id: &str,
        resource_type: &str,
        name: &str,
    ) -> Vec<String> {
        if self.owner_of(resource_type, name) == Some(user_id) {
            return ACL_OPERATIONS
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>();
        }
        let role_ids = self.role_ids(user_id);
        let mut ops: Vec<String> = self
            .grants
            .iter()
            .filter(|g| {
                g.resource_type == resource_type
                    && g.resource_name == name
                    && self.is_subject(g, user_id, &role_ids)
            })
            .flat_map(|g| g.operations.iter().cloned())
            .collect();
        ops.sort();
        ops.dedup();
        ops
    }

    /// The owner of a resource.
    pub(crate) fn owner_of(&self, resource_type: &str, name: &str) -> Option<&str> {
        self.owners
            .get(&(resource_type.to_owned(), name.to_owned()))
            .map(String::as_str)
    }

    /// Every resource `user_id` was granted or owns: `(type, name, operations, owner)`.
    pub(crate) fn resources_of(&self, user_id: &str) -> Vec<(String, String, Vec<String>, bool)> {
        let role_ids = self.role_ids(user_id);
        let mut keys: Vec<(String, String)> = self
            .grants
            .iter()
            .filter(|g| self.is_subject(g, user_id, &role_ids))
            .map(|g| (g.resource_type.clone(), g.resource_name.clone()))
            .chain(
                self.owners
                    .iter()
                    .filter(|(_, owner)| owner.as_str() == user_id)
                    .map(|(key, _)| key.clone()),
            )
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|(t, n)| {
                let ops = self.operations_on(user_id, &t, &n);
                let owner = self.owner_of(&t, &n) == Some(user_id);
                (t, n, ops, owner)
            })
            .collect()
    }

    /// Whether `granter` may (still) share what a query over `bucket` selects: an
    /// administrator, or for a declarative query someone who may read the bucket through
    /// the identity — owning it, a `read` grant on it (directly or through a role), or a
    /// rule of one of its roles allowing `store.all` on it. Rules of the config file for the
    /// granter's role names are not consulted, so such a grant may end early, never late.
    fn may_share(&self, granter: &str, bucket: Option<&str>) -> bool {
        // A disabled granter shares nothing (red team round 13: its query grants kept
        // streaming).
        if granter.is_empty() || self.disabled.contains(granter) {
            return false;
        }
        let role_ids = self.role_ids(granter);
        let role_names: Vec<String> = role_ids
            .iter()
            .filter_map(|id| self.roles.get(id).map(|r| r.name.clone()))
            .collect();
        if granter == SUPERADMIN_ID || super::Identity::is_admin(&role_names) {
            return true;
        }
        let Some(bucket) = bucket else {
            // A programmatic query may read anything: only administrators share it.
            return false;
        };
        let item = Item::Bucket(std::borrow::Cow::Borrowed(bucket));
        self.owner_of("bucket", bucket) == Some(granter)
            || self.grants.iter().any(|g| {
                g.resource_type == "bucket"
                    && g.resource_name == bucket
                    && g.operations.iter().any(|o| o == "read")
                    && self.is_subject(g, granter, &role_ids)
            })
            || role_ids
                .iter()
                .filter_map(|id| self.roles.get(id))
                .flat_map(|role| role.rules.iter())
                .any(|rule| rule.allow.matches("store.all") && rule.covers(&item))
    }

    /// Whether a grant (or ownership) gives `operation` on `item` to `user_id`.
    fn covers(&self, user_id: &str, role_ids: &[String], operation: &str, item: &Item<'_>) -> bool {
        let granted = |resource_type: &str, name: &str| {
            self.grants.iter().any(|g| {
                g.resource_type == resource_type
                    && g.resource_name == name
                    && g.operations.iter().any(|o| o == operation)
                    && self.is_subject(g, user_id, role_ids)
            })
        };
        let on = |resource_type: &str, name: &str| {
            self.owner_of(resource_type, name) == Some(user_id) || granted(resource_type, name)
        };
        match item {
            Item::Bucket(name) => on("bucket", name),
            // A query reads its bucket: a right on the bucket, or a grant of the query (an
            // admin's decision to share it as a view). Owning the query is not enough: whoever
            // may define queries would read any bucket through one (a user who owned a query
            // over a bucket it could not read subscribed to its records: red team round 10).
            // The grant of a query counts only while whoever made it may still read the
            // bucket: granted by a reader who then lost the bucket, it kept streaming it
            // (red team round 12).
            Item::Query { name, bucket } => {
                bucket.as_deref().is_some_and(|b| on("bucket", b))
                    || self.grants.iter().any(|g| {
                        g.resource_type == "query"
                            && g.resource_name == name.as_ref()
                            && g.operations.iter().any(|o| o == operation)
                            && self.is_subject(g, user_id, role_ids)
                            && self.may_share(&g.granted_by, bucket.as_deref())
                    })
            }
            Item::Procedure(name) => on("procedure", name),
            Item::Topic(wanted) => {
                let topic = |name: &str| NamePattern::topic(name).covers(wanted);
                self.owners
                    .iter()
                    .any(|((t, n), owner)| t == "topic" && owner == user_id && topic(n))
                    || self.grants.iter().any(|g| {
                        g.resource_type == "topic"
                            && g.operations.iter().any(|o| o == operation)
                            && self.is_subject(g, user_id, role_ids)
                            && topic(&g.resource_name)
                    })
            }
            Item::AllBuckets | Item::Fact(_) | Item::Timer(_) | Item::Opaque => false,
        }
    }
}

/// The identity's grants as the permission check consults them.
pub(crate) struct IdentityGrants(pub(crate) std::sync::Arc<super::Identity>);

impl Grants for IdentityGrants {
    fn allows(&self, session: &Session, need: &Need<'_>) -> bool {
        // Only sessions the identity issued: a token from another source naming the same
        // user id (or the superadmin's) gets no grants.
        if !session.identity || need.items.is_empty() {
            return false;
        }
        let rights = self.0.rights();
        let role_ids = rights.role_ids(&session.user_id);
        let operation = operation_of(need.tier);
        need.items
            .iter()
            .all(|item| rights.covers(&session.user_id, &role_ids, operation, item))
    }

    fn role_rules(&self, session: &Session) -> Vec<PermissionRule> {
        if !session.identity {
            return Vec::new();
        }
        let rights = self.0.rights();
        rights
            .role_ids(&session.user_id)
            .iter()
            .filter_map(|id| rights.roles.get(id))
            .flat_map(|role| role.rules.iter().cloned())
            .collect()
    }
}
