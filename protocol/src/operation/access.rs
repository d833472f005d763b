//! What each operation needs to be allowed: its [`Tier`] and the [`Resource`] it touches,
//! declared by exhaustive matches over the typed operations, so that an operation added
//! later does not compile until it says both. Permission checks read these declarations and
//! never the raw request fields.

use super::{
    AuditOp, AuthOp, JsonObject, Operation, ProceduresOp, RulesOp, ServerOp, StoreOp, TransactionOp,
};

/// How much an operation can change; the built-in roles `reader < writer < admin` grant
/// these tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Reads.
    Read,
    /// Data mutations.
    Write,
    /// Structural changes and server introspection.
    Admin,
}

impl Tier {
    /// The tier's own name, as refusals name it (`... (requires write)`): `read`, `write`,
    /// `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Read => "read",
            Tier::Write => "write",
            Tier::Admin => "admin",
        }
    }

    /// The tier's name as the built-in role that grants it: `reader`, `writer`, `admin`.
    pub fn role(self) -> &'static str {
        match self {
            Tier::Read => "reader",
            Tier::Write => "writer",
            Tier::Admin => "admin",
        }
    }
}

/// Which kind of items a listing operation returns (the server filters them per item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Bucket names or per-bucket statistics.
    Buckets,
    /// Query definitions.
    Queries,
    /// Facts.
    Facts,
    /// Rules.
    Rules,
    /// Procedures.
    Procedures,
}

/// What one operation touches, as permission checks see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resource<'a> {
    /// Nothing beyond the operation itself: statistics, validation, the connection's own
    /// subscriptions, the session.
    None,
    /// One bucket, by name (record operations act on `bucket`, bucket administration on
    /// `name`).
    Bucket(&'a str),
    /// A defined query, by name; the buckets it reads are resolved where the query is known.
    Query(&'a str),
    /// A query being defined: the bucket it reads is part of its definition.
    QueryDefinition {
        /// The query's name.
        name: &'a str,
        /// Its definition as sent.
        config: &'a JsonObject,
    },
    /// Several operations of a transaction, each checked as the single operation it
    /// stands for.
    Transaction(&'a [TransactionOp]),
    /// An event topic.
    Topic(&'a str),
    /// A topic pattern (subscriptions).
    TopicPattern(&'a str),
    /// A fact key.
    Fact(&'a str),
    /// A listing: every item of a kind, filtered to what the session may see.
    Listing(Listing),
    /// A registered rule, by id; what it reads and writes is resolved from the engine.
    Rule(&'a str),
    /// A rule being registered: what it reads and writes is part of its definition.
    RuleDefinition(&'a JsonObject),
    /// A procedure, by name (registering, changing, reading or calling it).
    Procedure(&'a str),
    /// A change to a registered rule: the rule as it is and as it would be.
    RuleUpdate {
        /// The rule id.
        id: &'a str,
        /// The fields to replace.
        updates: &'a JsonObject,
    },
}

impl Operation {
    /// The tier an operation requires; `None` for what is always allowed — `auth.*`, and
    /// ending one of the connection's own subscriptions (whatever the session has become
    /// since) — and for types this version does not know (answered `UNKNOWN_OPERATION`).
    ///
    /// ```
    /// use noex_protocol::{Operation, StoreOp, Tier};
    /// let drop = Operation::Store(StoreOp::DropBucket { name: "users".into() });
    /// assert_eq!(drop.tier(), Some(Tier::Admin));
    /// ```
    pub fn tier(&self) -> Option<Tier> {
        match self {
            Operation::Store(StoreOp::Unsubscribe { .. })
            | Operation::Rules(RulesOp::Unsubscribe { .. }) => None,
            Operation::Store(op) => Some(op.tier()),
            Operation::Rules(op) => Some(op.tier()),
            Operation::Server(
                ServerOp::Stats | ServerOp::Connections | ServerOp::RevokeSessions { .. },
            ) => Some(Tier::Admin),
            Operation::Audit(AuditOp::Query { .. }) => Some(Tier::Admin),
            Operation::Procedures(op) => Some(op.tier()),
            Operation::Auth(AuthOp::Login { .. } | AuthOp::Logout | AuthOp::Whoami) => None,
            // Identity operations check the caller's identity roles themselves (admin,
            // superadmin or the user itself), as the original does.
            Operation::Identity(_) => None,
            Operation::Unknown(_) => None,
        }
    }

    /// What the operation touches, read from its typed fields.
    ///
    /// ```
    /// use noex_protocol::{Operation, Resource, StoreOp};
    /// // Bucket administration acts on `name`, whatever else a request carries.
    /// let drop = Operation::Store(StoreOp::DropBucket { name: "secret".into() });
    /// assert_eq!(drop.resource(), Resource::Bucket("secret"));
    /// ```
    pub fn resource(&self) -> Resource<'_> {
        match self {
            Operation::Store(op) => op.resource(),
            Operation::Rules(op) => op.resource(),
            Operation::Server(
                ServerOp::Stats | ServerOp::Connections | ServerOp::RevokeSessions { .. },
            ) => Resource::None,
            Operation::Audit(AuditOp::Query { .. }) => Resource::None,
            Operation::Procedures(op) => op.resource(),
            Operation::Auth(AuthOp::Login { .. } | AuthOp::Logout | AuthOp::Whoami) => {
                Resource::None
            }
            Operation::Identity(_) => Resource::None,
            Operation::Unknown(_) => Resource::None,
        }
    }
}

impl ProceduresOp {
    /// See [`Operation::tier`]: the original's tiers — registering, changing and listing
    /// are admin, calling is write, reading one definition is read.
    pub fn tier(&self) -> Tier {
        match self {
            ProceduresOp::Register { .. }
            | ProceduresOp::Unregister { .. }
            | ProceduresOp::Update { .. }
            | ProceduresOp::List => Tier::Admin,
            ProceduresOp::Call { .. } => Tier::Write,
            ProceduresOp::Get { .. } => Tier::Read,
        }
    }

    /// See [`Operation::resource`]: the procedure's name (a definition being registered
    /// names itself; one without a usable name is checked as `*`).
    pub fn resource(&self) -> Resource<'_> {
        match self {
            ProceduresOp::Register { procedure } => Resource::Procedure(
                procedure
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("*"),
            ),
            ProceduresOp::Unregister { name }
            | ProceduresOp::Update { name, .. }
            | ProceduresOp::Get { name }
            | ProceduresOp::Call { name, .. } => Resource::Procedure(name),
            ProceduresOp::List => Resource::Listing(Listing::Procedures),
        }
    }
}

impl StoreOp {
    /// See [`Operation::tier`].
    pub fn tier(&self) -> Tier {
        match self {
            StoreOp::Get { .. }
            | StoreOp::All { .. }
            | StoreOp::Where { .. }
            | StoreOp::FindOne { .. }
            | StoreOp::Count { .. }
            | StoreOp::First { .. }
            | StoreOp::Last { .. }
            | StoreOp::Paginate { .. }
            | StoreOp::Sum { .. }
            | StoreOp::Avg { .. }
            | StoreOp::Min { .. }
            | StoreOp::Max { .. }
            | StoreOp::GroupBy { .. }
            | StoreOp::Buckets
            | StoreOp::Stats
            | StoreOp::Subscribe { .. }
            | StoreOp::Unsubscribe { .. } => Tier::Read,
            StoreOp::Insert { .. }
            | StoreOp::Update { .. }
            | StoreOp::Delete { .. }
            | StoreOp::InsertMany { .. }
            | StoreOp::UpdateMany { .. }
            | StoreOp::DeleteMany { .. }
            | StoreOp::Upsert { .. }
            | StoreOp::Clear { .. }
            | StoreOp::Transaction { .. } => Tier::Write,
            StoreOp::DefineBucket { .. }
            | StoreOp::DropBucket { .. }
            | StoreOp::UpdateBucket { .. }
            | StoreOp::GetBucketSchema { .. }
            | StoreOp::DefineQuery { .. }
            | StoreOp::UndefineQuery { .. }
            | StoreOp::ListQueries => Tier::Admin,
        }
    }

    /// See [`Operation::resource`].
    pub fn resource(&self) -> Resource<'_> {
        match self {
            StoreOp::Insert { bucket, .. }
            | StoreOp::Get { bucket, .. }
            | StoreOp::Update { bucket, .. }
            | StoreOp::Delete { bucket, .. }
            | StoreOp::All { bucket }
            | StoreOp::Where { bucket, .. }
            | StoreOp::FindOne { bucket, .. }
            | StoreOp::Count { bucket, .. }
            | StoreOp::First { bucket, .. }
            | StoreOp::Last { bucket, .. }
            | StoreOp::Paginate { bucket, .. }
            | StoreOp::Sum { bucket, .. }
            | StoreOp::Avg { bucket, .. }
            | StoreOp::Min { bucket, .. }
            | StoreOp::Max { bucket, .. }
            | StoreOp::InsertMany { bucket, .. }
            | StoreOp::UpdateMany { bucket, .. }
            | StoreOp::DeleteMany { bucket, .. }
            | StoreOp::Upsert { bucket, .. }
            | StoreOp::GroupBy { bucket, .. }
            | StoreOp::Clear { bucket } => Resource::Bucket(bucket),
            StoreOp::DefineBucket { name, .. }
            | StoreOp::DropBucket { name }
            | StoreOp::UpdateBucket { name, .. }
            | StoreOp::GetBucketSchema { name } => Resource::Bucket(name),
            StoreOp::Buckets | StoreOp::Stats => Resource::Listing(Listing::Buckets),
            StoreOp::ListQueries => Resource::Listing(Listing::Queries),
            StoreOp::Subscribe { query, .. } => Resource::Query(query),
            StoreOp::UndefineQuery { name } => Resource::Query(name),
            StoreOp::DefineQuery { name, config } => Resource::QueryDefinition { name, config },
            StoreOp::Unsubscribe { .. } => Resource::None,
            StoreOp::Transaction { operations } => Resource::Transaction(operations),
        }
    }
}

impl TransactionOp {
    /// The tier of the single operation this entry stands for.
    pub fn tier(&self) -> Tier {
        match self {
            TransactionOp::Get { .. }
            | TransactionOp::Where { .. }
            | TransactionOp::FindOne { .. }
            | TransactionOp::Count { .. } => Tier::Read,
            TransactionOp::Insert { .. }
            | TransactionOp::Update { .. }
            | TransactionOp::Delete { .. }
            | TransactionOp::InsertMany { .. }
            | TransactionOp::UpdateMany { .. }
            | TransactionOp::DeleteMany { .. }
            | TransactionOp::Upsert { .. } => Tier::Write,
        }
    }

    /// The single operation (`store.get`, `store.insert`, ...) this entry stands for.
    pub fn op_type(&self) -> &'static str {
        match self {
            TransactionOp::Get { .. } => "store.get",
            TransactionOp::Insert { .. } => "store.insert",
            TransactionOp::Update { .. } => "store.update",
            TransactionOp::Delete { .. } => "store.delete",
            TransactionOp::Where { .. } => "store.where",
            TransactionOp::FindOne { .. } => "store.findOne",
            TransactionOp::Count { .. } => "store.count",
            TransactionOp::InsertMany { .. } => "store.insertMany",
            TransactionOp::UpdateMany { .. } => "store.updateMany",
            TransactionOp::DeleteMany { .. } => "store.deleteMany",
            TransactionOp::Upsert { .. } => "store.upsert",
        }
    }
}

impl RulesOp {
    /// See [`Operation::tier`].
    pub fn tier(&self) -> Tier {
        match self {
            RulesOp::GetFact { .. }
            | RulesOp::QueryFacts { .. }
            | RulesOp::GetAllFacts
            | RulesOp::Subscribe { .. }
            | RulesOp::Unsubscribe { .. }
            | RulesOp::Stats => Tier::Read,
            RulesOp::Emit { .. } | RulesOp::SetFact { .. } | RulesOp::DeleteFact { .. } => {
                Tier::Write
            }
            RulesOp::RegisterRule { .. }
            | RulesOp::UnregisterRule { .. }
            | RulesOp::UpdateRule { .. }
            | RulesOp::EnableRule { .. }
            | RulesOp::DisableRule { .. }
            | RulesOp::GetRule { .. }
            | RulesOp::GetRules
            | RulesOp::ValidateRule { .. } => Tier::Admin,
        }
    }

    /// See [`Operation::resource`].
    pub fn resource(&self) -> Resource<'_> {
        match self {
            RulesOp::Emit { topic, .. } => Resource::Topic(topic),
            RulesOp::SetFact { key, .. }
            | RulesOp::GetFact { key }
            | RulesOp::DeleteFact { key } => Resource::Fact(key),
            RulesOp::QueryFacts { .. } | RulesOp::GetAllFacts => Resource::Listing(Listing::Facts),
            RulesOp::Subscribe { pattern } => Resource::TopicPattern(pattern),
            RulesOp::Unsubscribe { .. } | RulesOp::Stats | RulesOp::ValidateRule { .. } => {
                Resource::None
            }
            RulesOp::GetRules => Resource::Listing(Listing::Rules),
            RulesOp::RegisterRule { rule } => Resource::RuleDefinition(rule),
            RulesOp::UpdateRule { rule_id, updates } => Resource::RuleUpdate {
                id: rule_id,
                updates,
            },
            RulesOp::UnregisterRule { rule_id }
            | RulesOp::EnableRule { rule_id }
            | RulesOp::DisableRule { rule_id }
            | RulesOp::GetRule { rule_id } => Resource::Rule(rule_id),
        }
    }
}
