//! `procedures.*` operations (docs/01-protocol.md, "Procedures operations"): named,
//! declarative server-side operations registered by an admin and called by name.

use serde::Serialize;
use ts_rs::TS;

use super::store::JsonObject;
use crate::fields::Fields;

/// Every `procedures.*` operation with its fields.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum ProceduresOp {
    /// Register a procedure (admin): `{name, description?, input?, steps, transaction?,
    /// timeoutMs?}`.
    #[serde(rename = "procedures.register")]
    Register {
        /// The procedure definition.
        #[ts(as = "std::collections::BTreeMap<String, serde_json::Value>")]
        procedure: JsonObject,
    },
    /// Remove a procedure (admin).
    #[serde(rename = "procedures.unregister")]
    Unregister {
        /// The procedure's name.
        name: String,
    },
    /// Replace fields of a procedure's definition (admin); the name stays.
    #[serde(rename = "procedures.update")]
    Update {
        /// The procedure's name.
        name: String,
        /// Fields to replace.
        #[ts(as = "std::collections::BTreeMap<String, serde_json::Value>")]
        updates: JsonObject,
    },
    /// One procedure's definition (read tier).
    #[serde(rename = "procedures.get")]
    Get {
        /// The procedure's name.
        name: String,
    },
    /// Summaries of every procedure (admin).
    #[serde(rename = "procedures.list")]
    List,
    /// Run a procedure (write tier, checked on the procedure's name).
    #[serde(rename = "procedures.call")]
    Call {
        /// The procedure's name.
        name: String,
        /// Input values, checked against the procedure's `input` (default `{}`).
        #[ts(as = "std::collections::BTreeMap<String, serde_json::Value>")]
        input: JsonObject,
    },
}

impl ProceduresOp {
    /// Parses the fields of a `procedures.*` request; `None` when `op_type` is not a
    /// procedures operation.
    pub(crate) fn parse(op_type: &str, f: &Fields<'_>) -> Option<Result<ProceduresOp, String>> {
        let parsed = (|| {
            Ok(match op_type {
                "procedures.register" => ProceduresOp::Register {
                    procedure: f.object("procedure")?,
                },
                "procedures.unregister" => ProceduresOp::Unregister {
                    name: f.string("name")?,
                },
                "procedures.update" => ProceduresOp::Update {
                    name: f.string("name")?,
                    updates: f.object("updates")?,
                },
                "procedures.get" => ProceduresOp::Get {
                    name: f.string("name")?,
                },
                "procedures.list" => ProceduresOp::List,
                "procedures.call" => ProceduresOp::Call {
                    name: f.string("name")?,
                    input: f.opt_object("input")?.unwrap_or_default(),
                },
                _ => return Err(None),
            })
        })();
        super::known_or_none(parsed)
    }

    /// The operation's wire `type`.
    pub fn op_type(&self) -> &'static str {
        match self {
            ProceduresOp::Register { .. } => "procedures.register",
            ProceduresOp::Unregister { .. } => "procedures.unregister",
            ProceduresOp::Update { .. } => "procedures.update",
            ProceduresOp::Get { .. } => "procedures.get",
            ProceduresOp::List => "procedures.list",
            ProceduresOp::Call { .. } => "procedures.call",
        }
    }
}
