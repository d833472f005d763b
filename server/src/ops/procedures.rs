//! The `procedures.*` operations: each typed [`ProceduresOp`] becomes one call on the
//! server's [`Procedures`] (registration, validation, persistence and calls live in
//! `crate::procedures`). `procedures.list` holds only what the session may call.

use noex_protocol::payloads::{
    ProcedureList, ProcedureRegistered, ProcedureUnregistered, ProcedureUpdated,
};
use noex_protocol::{Operation, ProceduresOp};
use serde_json::Value;

use crate::access::{self, Resolver};
use crate::error::ServerError;
use crate::heavy::Principal;
use crate::ops::to_json;
use crate::permissions::Authority;
use crate::procedures::Procedures;

/// What the `procedures.*` operations need: the registered procedures and who asks.
pub(crate) struct ProceduresContext<'a> {
    /// The server's procedures.
    pub(crate) procedures: &'a Procedures,
    /// What permission checks know of the store and the engine.
    pub(crate) resolver: Resolver<'a>,
    /// The session's rights (`None`: everything is visible).
    pub(crate) authority: Option<&'a Authority<'a>>,
    /// Who calls, for `procedures.maxConcurrentCallsPerClient`.
    pub(crate) principal: Principal,
}

/// Answers one `procedures.*` request (its permission was checked by the router).
pub(crate) async fn handle(
    ctx: ProceduresContext<'_>,
    op: ProceduresOp,
) -> Result<Value, ServerError> {
    let procedures = ctx.procedures;
    match op {
        ProceduresOp::Register { procedure } => {
            let name = procedures.register(procedure)?;
            to_json(ProcedureRegistered {
                name,
                registered: true,
            })
        }
        ProceduresOp::Unregister { name } => {
            procedures.unregister(&name)?;
            to_json(ProcedureUnregistered {
                name,
                unregistered: true,
            })
        }
        ProceduresOp::Update { name, updates } => {
            procedures.update(&name, updates)?;
            to_json(ProcedureUpdated {
                name,
                updated: true,
            })
        }
        ProceduresOp::Get { name } => Ok(Value::Object(procedures.get(&name)?)),
        ProceduresOp::List => {
            let mut list = procedures.list();
            if let Some(authority) = ctx.authority {
                list.retain(|p| {
                    let call = Operation::Procedures(ProceduresOp::Call {
                        name: p.name.clone(),
                        input: Default::default(),
                    });
                    access::check(authority, &call, ctx.resolver).is_ok()
                });
            }
            to_json(ProcedureList { procedures: list })
        }
        ProceduresOp::Call { name, input } => {
            to_json(procedures.call(&name, input, ctx.principal).await?)
        }
    }
}
