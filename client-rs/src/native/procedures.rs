//! Typed procedures API: register, change, read, list and call server-side procedures.

use noex_protocol::payloads::{
    ProcedureCallResult, ProcedureList, ProcedureRegistered, ProcedureUnregistered,
    ProcedureUpdated,
};
use noex_protocol::{JsonObject, Operation, ProceduresOp};
use serde::de::DeserializeOwned;

use super::Client;
use crate::ClientError;

/// The `procedures.*` namespace.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
/// use serde_json::json;
/// let input = json!({"from": "alice", "to": "bob", "amount": 30});
/// let out = client.procedures().call("transfer", input.as_object().unwrap().clone()).await?;
/// println!("{:?}", out.result);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Procedures {
    client: Client,
}

impl Procedures {
    pub(crate) fn new(client: Client) -> Self {
        Procedures { client }
    }

    async fn call_op<R: DeserializeOwned>(&self, op: ProceduresOp) -> Result<R, ClientError> {
        self.client.call(Operation::Procedures(op)).await
    }

    /// Registers a procedure (admin): `{name, description?, input?, steps, transaction?,
    /// timeoutMs?}`.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let def = serde_json::json!({"name": "ping", "steps": [{"action": "return", "value": "pong"}]});
    /// client.procedures().register(def.as_object().unwrap().clone()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn register(
        &self,
        procedure: JsonObject,
    ) -> Result<ProcedureRegistered, ClientError> {
        self.call_op(ProceduresOp::Register { procedure }).await
    }

    /// Removes a procedure (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// client.procedures().unregister("ping").await?;
    /// # Ok(()) }
    /// ```
    pub async fn unregister(&self, name: &str) -> Result<ProcedureUnregistered, ClientError> {
        self.call_op(ProceduresOp::Unregister {
            name: name.to_owned(),
        })
        .await
    }

    /// Replaces fields of a procedure's definition (admin); the name stays.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let updates = serde_json::json!({"timeoutMs": 500});
    /// client.procedures().update("ping", updates.as_object().unwrap().clone()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        name: &str,
        updates: JsonObject,
    ) -> Result<ProcedureUpdated, ClientError> {
        self.call_op(ProceduresOp::Update {
            name: name.to_owned(),
            updates,
        })
        .await
    }

    /// One procedure's definition, as registered.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let def = client.procedures().get("ping").await?;
    /// assert_eq!(def["name"], "ping");
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, name: &str) -> Result<JsonObject, ClientError> {
        self.call_op(ProceduresOp::Get {
            name: name.to_owned(),
        })
        .await
    }

    /// Summaries of every procedure (admin).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// for p in client.procedures().list().await?.procedures {
    ///     println!("{} ({} steps)", p.name, p.steps_count);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<ProcedureList, ClientError> {
        self.call_op(ProceduresOp::List).await
    }

    /// Runs a procedure with `input`; `result` is what its `return` step gave.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let out = client.procedures().call("ping", serde_json::Map::new()).await?;
    /// assert_eq!(out.result, Some(serde_json::json!("pong")));
    /// # Ok(()) }
    /// ```
    pub async fn call(
        &self,
        name: &str,
        input: JsonObject,
    ) -> Result<ProcedureCallResult, ClientError> {
        self.call_op(ProceduresOp::Call {
            name: name.to_owned(),
            input,
        })
        .await
    }
}
