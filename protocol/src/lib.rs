//! noex-protocol: every message of the noex wire protocol (`docs/reference/protocol.md`) as Rust
//! types, the frame validation every server runs, and the TypeScript export of those types.
//!
//! The crate has no I/O and no async runtime, so the server, the native client and the
//! WebAssembly client all share it.
//!
//! - [`ServerMessage`]: what a server sends (welcome, result, error, push, ping, system).
//! - [`Request`] / [`Pong`]: what a client sends; [`parse_client_frame`] validates a text frame
//!   in the spec's order ([`parse_client_frame_with_limits`] first bounds its nesting and
//!   size with [`check_json_limits`]) and [`Operation::parse`] types a request's fields.
//! - [`ErrorCode`]: the 15 error codes.
//! - [`payloads`]: result shapes the protocol fixes.
//! - [`export_typescript`]: writes the TypeScript definitions kept in `bindings/`.
//!
//! ```
//! use noex_protocol::{ClientFrame, Operation, StoreOp, parse_client_frame};
//!
//! let ClientFrame::Request(request) =
//!     parse_client_frame(r#"{"id":1,"type":"store.get","bucket":"users","key":"a"}"#).unwrap()
//! else { unreachable!() };
//! let op = request.operation().unwrap();
//! assert!(matches!(op, Operation::Store(StoreOp::Get { .. })));
//! ```

mod client_message;
mod error_code;
mod fields;
mod json_limits;
mod operation;
pub mod payloads;
mod request_id;
mod server_message;
mod typescript;

pub use client_message::{
    ClientFrame, FrameError, MSG_BAD_ID, MSG_BAD_PONG, MSG_BAD_TYPE, MSG_ID_OUT_OF_RANGE,
    MSG_INVALID_JSON, MSG_NOT_OBJECT, MSG_TOO_DEEP, MSG_TOO_MANY_VALUES, Pong, RawRequest, Request,
    parse_client_frame, parse_client_frame_with_limits,
};
pub use error_code::ErrorCode;
pub use json_limits::{JsonLimitExceeded, JsonLimits, check_json_limits};
/// The definitions clients send to admin operations, defined once in `noex-model` (which the
/// store shares); the wire names are the TypeScript ones.
pub use noex_model::definition::{
    Aggregate, AggregateFunction, BucketDefinition as BucketConfig, BucketUpdate as BucketUpdates,
    FieldDef, FieldType, Generated, GroupBy, QueryDefinition as QueryConfig, SortOrder,
    StringFormat, Ttl,
};
pub use operation::{
    AuditOp, AuditResult, AuthOp, GroupAggregate, IdentityOp, JsonObject, Listing, Operation,
    OperationError, ProceduresOp, RawOperation, Resource, RulesOp, ServerOp, StoreOp, Tier,
    TransactionOp, namespace_of,
};
pub use request_id::RequestId;
pub use server_message::{
    ErrorFrame, Ping, PushChannel, PushFrame, ResultFrame, ServerMessage, SystemEvent, Welcome,
};
pub use typescript::export_typescript;

/// The protocol version announced in the welcome frame.
pub const PROTOCOL_VERSION: &str = "1.0.0";

/// The message of every `INTERNAL_ERROR`: internals never reach the client.
pub const INTERNAL_ERROR_MESSAGE: &str = "Internal server error";
