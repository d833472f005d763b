//! Result payloads whose shape the protocol fixes: what goes in a result's `data` (and in
//! some errors' `details`), namespace by namespace.

mod audit;
mod auth;
mod identity;
mod procedures;
mod rules;
mod server;
mod store;

pub use audit::{AuditEntries, AuditEntry, SessionsRevoked};
pub use auth::{LoginResult, LogoutResult, WhoAmI};
pub use identity::{
    AccessGranted, AccessRevoked, AccessUser, AclEntries, AclEntry, IdentityLogin,
    IdentityLoginUser, IdentityRole, IdentityRoleList, IdentityUser, IdentityUserList, MyAccess,
    OwnerInfo, OwnerTransferred, PasswordChanged, PasswordReset, ResourceAccess, ResourceOwner,
    RoleAssigned, RoleRemoved,
};
pub use procedures::{
    ProcedureCallResult, ProcedureInfo, ProcedureList, ProcedureRegistered, ProcedureUnregistered,
    ProcedureUpdated,
};
pub use rules::{
    EventPush, Fact, FactDeleted, RuleEnabled, RuleEvent, RuleList, RuleRegistered, RuleSummary,
    RuleUnregistered, RuleUpdated, RuleValidation, RuleValidationIssue, RulesStats,
    RulesSubscribeResult,
};
pub use server::{ConnectionInfo, ConnectionsSummary, ServerStats};
pub use store::{
    BucketDefined, BucketDropped, BucketList, BucketSchema, BucketUpdated, BulkErrorDetails,
    Cleared, ConflictDetails, Deleted, GroupByEntry, IndexStats, PaginateResult, PersistenceStats,
    QueryDefined, QueryInfo, QueryKind, QueryList, QueryStats, QueryUndefined, RateLimitDetails,
    RecordMeta, RecordStats, StoreStats, SubscribeResult, TransactionOpResult, TransactionResult,
    TtlStats, UniqueViolationDetails, Unsubscribed, ValidationIssue,
};
