//! Request routing: the pipeline after frame validation (auth check → rate limit → typed
//! operation → namespace handler). Namespaces that are not served answer with their
//! protocol error rather than a generic failure.

use noex_protocol::{ErrorCode, Operation, RawRequest};
use serde_json::Value;

use crate::connection::Connection;
use crate::error::ServerError;

/// Answers one request on `connection`.
pub(crate) async fn handle(
    _connection: &mut Connection,
    request: RawRequest,
) -> Result<Value, ServerError> {
    let operation = request.operation()?;
    match operation {
        // Auth is not configured: every auth.* is unknown (spec section 7).
        Operation::Auth(_) => Err(ServerError::unknown_operation(&request.op_type)),
        Operation::Rules(_) => Err(ServerError::new(
            ErrorCode::RulesNotAvailable,
            "Rule engine is not configured",
        )),
        // Served once the store is wired into the server (store protocol issue).
        Operation::Store(_) | Operation::Server(_) => Err(ServerError::new(
            ErrorCode::UnknownOperation,
            format!(
                "Operation \"{}\" is not served by this server yet",
                request.op_type
            ),
        )),
        Operation::Unknown(_) => Err(ServerError::unknown_operation(&request.op_type)),
    }
}
