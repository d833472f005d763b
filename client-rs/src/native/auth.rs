//! Typed auth API: login, logout, whoami.

use noex_protocol::payloads::{LoginResult, LogoutResult, WhoAmI};
use noex_protocol::{AuthOp, Operation};

use super::Client;
use crate::ClientError;

/// The `auth.*` namespace.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
/// let session = client.auth().login("token").await?;
/// println!("{}", session.user_id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Auth {
    client: Client,
}

impl Auth {
    pub(crate) fn new(client: Client) -> Self {
        Auth { client }
    }

    /// Logs in with `token` (`auth.login`). On success the client remembers the token and
    /// logs in with it again after every reconnect (replacing
    /// [`crate::ClientOptions::auth_token`]); [`Auth::logout`] forgets it.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let auth = client.auth();
    /// let session = auth.login("token").await?;
    /// # Ok(()) }
    /// ```
    pub async fn login(&self, token: &str) -> Result<LoginResult, ClientError> {
        let op = AuthOp::Login {
            token: token.to_owned(),
        };
        self.client.call(Operation::Auth(op)).await
    }

    /// Ends the session (`auth.logout`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let auth = client.auth();
    /// auth.logout().await?;
    /// # Ok(()) }
    /// ```
    pub async fn logout(&self) -> Result<LogoutResult, ClientError> {
        self.client.call(Operation::Auth(AuthOp::Logout)).await
    }

    /// Describes the session (`auth.whoami`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let auth = client.auth();
    /// let me = auth.whoami().await?;
    /// # Ok(()) }
    /// ```
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.client.call(Operation::Auth(AuthOp::Whoami)).await
    }
}
