//! [`Client`]: connect, send requests, observe lifecycle events, disconnect.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use noex_protocol::payloads::{ConnectionInfo, ServerStats};
use noex_protocol::{Operation, Request, ServerOp, Welcome};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::driver::{Command, Driver, open_socket};
use super::{Auth, ClientEvent, Procedures, ReconnectPolicy, Rules, Store};
use crate::ClientError;
use crate::core::{ClientCore, CoreConfig};

/// Connection settings.
///
/// ```
/// use std::time::Duration;
/// let o = noex_client::ClientOptions::default();
/// assert_eq!(o.request_timeout, Duration::from_secs(10));
/// assert_eq!(o.connect_timeout, Duration::from_secs(5));
/// assert!(o.reconnect.enabled && o.heartbeat_replies && o.auth_token.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a request waits for its answer (default 10 s).
    pub request_timeout: Duration,
    /// How long opening a connection and receiving the welcome may take (default 5 s).
    pub connect_timeout: Duration,
    /// Reconnect schedule (default on: 1 s initial, ×2, max 30 s, +0..500 ms jitter, unlimited).
    pub reconnect: ReconnectPolicy,
    /// Answer server pings (default on).
    pub heartbeat_replies: bool,
    /// Token for `auth.login`: [`Client::connect`] logs in with it right after the first
    /// welcome (a rejected token fails the connect with the server's error), and the client
    /// logs in again automatically after every reconnect, before re-subscribing. Without
    /// it, call [`Auth::login`] yourself: a successful login (like this token) is repeated
    /// after every reconnect until [`Auth::logout`].
    pub auth_token: Option<String>,
    /// Seed of the reconnect jitter.
    pub jitter_seed: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let core = CoreConfig::default();
        ClientOptions {
            request_timeout: Duration::from_millis(core.request_timeout_ms),
            connect_timeout: Duration::from_secs(5),
            reconnect: core.reconnect,
            heartbeat_replies: core.heartbeat_replies,
            auth_token: None,
            jitter_seed: core.jitter_seed,
        }
    }
}

/// A connected client. Cheap to clone; every clone drives the same connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), noex_client::ClientError> {
/// use noex_client::{Client, ClientOptions};
/// let client = Client::connect("ws://127.0.0.1:8080", ClientOptions::default()).await?;
/// println!("protocol {}", client.welcome().version);
/// client.disconnect().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    welcome: Welcome,
}

impl Client {
    /// Opens the connection and waits for the welcome (both within `connect_timeout`).
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        Self::connect_inner(url, options, Vec::new()).await
    }

    /// Like [`Client::connect`], also returning an event stream that sees every event
    /// from `Connected` on.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), noex_client::ClientError> {
    /// use futures_util::StreamExt;
    /// let (client, mut events) =
    ///     noex_client::Client::connect_with_events("ws://127.0.0.1:8080", Default::default()).await?;
    /// assert!(matches!(events.next().await, Some(noex_client::ClientEvent::Connected(_))));
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_events(
        url: &str,
        options: ClientOptions,
    ) -> Result<(Client, EventStream), ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Self::connect_inner(url, options, vec![tx]).await?;
        Ok((client, EventStream { rx }))
    }

    async fn connect_inner(
        url: &str,
        options: ClientOptions,
        listeners: Vec<mpsc::UnboundedSender<ClientEvent>>,
    ) -> Result<Client, ClientError> {
        let started = tokio::time::Instant::now();
        let ws = open_socket(url, options.connect_timeout).await?;
        let core = ClientCore::new(CoreConfig {
            request_timeout_ms: options.request_timeout.as_millis() as u64,
            reconnect: options.reconnect.clone(),
            heartbeat_replies: options.heartbeat_replies,
            auth_token: options.auth_token.clone(),
            jitter_seed: options.jitter_seed,
            welcome_timeout_ms: options.connect_timeout.as_millis() as u64,
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let driver = Driver::new(
            core,
            url.to_owned(),
            options.connect_timeout,
            ws,
            ready_tx,
            listeners,
        );
        tokio::spawn(driver.run(commands_rx));
        let remaining = options.connect_timeout.saturating_sub(started.elapsed());
        let welcome = match tokio::time::timeout(remaining, ready_rx).await {
            Ok(Ok(welcome)) => welcome,
            Ok(Err(_)) => return Err(ClientError::Connect("closed before welcome".into())),
            Err(_) => {
                let _ = commands.send(Command::Disconnect(oneshot::channel().0));
                return Err(ClientError::Connect(
                    "no welcome within connect timeout".into(),
                ));
            }
        };
        let client = Client { commands, welcome };
        if let Some(token) = options.auth_token {
            client.auth().login(&token).await?;
        }
        Ok(client)
    }

    /// The welcome of the first connection.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends an operation and returns the raw result `data`.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_protocol::{Operation, ServerOp};
    /// let stats = client.request(Operation::Server(ServerOp::Stats)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn request(&self, operation: Operation) -> Result<Value, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Request { operation, reply })
            .map_err(|_| ClientError::Disconnected)?;
        rx.await.unwrap_or(Err(ClientError::Disconnected))
    }

    /// Sends a request and returns the raw result `data`. The request's `id` is replaced
    /// by one the client allocates (ids must be unique per connection).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_protocol::{Operation, Request, ServerOp};
    /// let r = Request { id: 0u64.into(), operation: Operation::Server(ServerOp::Connections) };
    /// let connections = client.send_request(r).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_request(&self, request: Request) -> Result<Value, ClientError> {
        self.request(request.operation).await
    }

    /// Sends an operation and decodes the result as `R`.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_protocol::{Operation, ServerOp, payloads::ServerStats};
    /// let stats: ServerStats = client.call(Operation::Server(ServerOp::Stats)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn call<R: DeserializeOwned>(&self, operation: Operation) -> Result<R, ClientError> {
        decode(self.request(operation).await?)
    }

    /// Server statistics (`server.stats`, admin tier).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let stats = client.server_stats().await?;
    /// println!("{} connections", stats.connection_count);
    /// # Ok(()) }
    /// ```
    pub async fn server_stats(&self) -> Result<ServerStats, ClientError> {
        self.call(Operation::Server(ServerOp::Stats)).await
    }

    /// Every open connection (`server.connections`, admin tier).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// for c in client.server_connections().await? { println!("{}", c.connection_id); }
    /// # Ok(()) }
    /// ```
    pub async fn server_connections(&self) -> Result<Vec<ConnectionInfo>, ClientError> {
        self.call(Operation::Server(ServerOp::Connections)).await
    }

    /// Revokes the sessions of the authenticated connections matching every given filter
    /// (`server.revokeSessions`, admin tier; an extension of this server): they are told
    /// `session_revoked`, closed with 4002, and their users may not log in again for the
    /// server's `revocation.blacklistTtlMs`. Returns how many connections were revoked.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// let revoked = client.revoke_sessions(Some("mallory"), None, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_sessions(
        &self,
        user_id: Option<&str>,
        role: Option<&str>,
        connection_id: Option<&str>,
    ) -> Result<u64, ClientError> {
        let answer: noex_protocol::payloads::SessionsRevoked = self
            .call(Operation::Server(ServerOp::RevokeSessions {
                user_id: user_id.map(str::to_owned),
                role: role.map(str::to_owned),
                connection_id: connection_id.map(str::to_owned),
            }))
            .await?;
        Ok(answer.revoked)
    }

    /// Entries of the server's audit log, newest first (`audit.query`, admin tier).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> Result<(), noex_client::ClientError> {
    /// use noex_client::AuditQuery;
    /// let denied = client
    ///     .audit_query(AuditQuery { result: Some(noex_protocol::AuditResult::Error), ..Default::default() })
    ///     .await?;
    /// for entry in denied { println!("{:?} {} {}", entry.user_id, entry.operation, entry.resource); }
    /// # Ok(()) }
    /// ```
    pub async fn audit_query(
        &self,
        query: AuditQuery,
    ) -> Result<Vec<noex_protocol::payloads::AuditEntry>, ClientError> {
        let answer: noex_protocol::payloads::AuditEntries = self
            .call(Operation::Audit(noex_protocol::AuditOp::Query {
                user_id: query.user_id,
                operation: query.operation,
                result: query.result,
                from: query.from.map(|t| t as f64),
                to: query.to.map(|t| t as f64),
                limit: query.limit,
            }))
            .await?;
        Ok(answer.entries)
    }

    /// The store API.
    ///
    /// ```no_run
    /// # fn demo(client: noex_client::Client) { let users = client.store().bucket::<serde_json::Value>("users"); }
    /// ```
    pub fn store(&self) -> Store {
        Store::new(self.clone())
    }

    /// The rules API.
    ///
    /// ```no_run
    /// # fn demo(client: noex_client::Client) { let rules = client.rules(); }
    /// ```
    pub fn rules(&self) -> Rules {
        Rules::new(self.clone())
    }

    /// The procedures API.
    ///
    /// ```no_run
    /// # fn demo(client: noex_client::Client) { let procedures = client.procedures(); }
    /// ```
    pub fn procedures(&self) -> Procedures {
        Procedures::new(self.clone())
    }

    /// The auth API.
    ///
    /// ```no_run
    /// # fn demo(client: noex_client::Client) { let auth = client.auth(); }
    /// ```
    pub fn auth(&self) -> Auth {
        Auth::new(self.clone())
    }

    /// The identity API (the server's built-in users, roles and password sessions).
    ///
    /// ```no_run
    /// # fn demo(client: noex_client::Client) { let identity = client.identity(); }
    /// ```
    pub fn identity(&self) -> super::Identity {
        super::Identity::new(self.clone())
    }

    /// A stream of lifecycle events from now on (ends when the client is closed for good).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) {
    /// use futures_util::StreamExt;
    /// let mut events = client.events();
    /// while let Some(event) = events.next().await { println!("{event:?}"); }
    /// # }
    /// ```
    pub fn events(&self) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.commands.send(Command::Events(tx));
        EventStream { rx }
    }

    /// Closes the connection for good; pending requests fail with `Disconnected`.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) { client.disconnect().await; }
    /// ```
    pub async fn disconnect(&self) {
        let (done, rx) = oneshot::channel();
        if self.commands.send(Command::Disconnect(done)).is_ok() {
            let _ = rx.await;
        }
    }

    pub(crate) fn commands(&self) -> &mpsc::UnboundedSender<Command> {
        &self.commands
    }
}

/// Decodes a result into `R`.
pub(crate) fn decode<R: DeserializeOwned>(value: Value) -> Result<R, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
}

/// Lifecycle events as a [`Stream`].
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) {
/// use futures_util::StreamExt;
/// let next = client.events().next().await;
/// # }
/// ```
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<ClientEvent>,
}

impl Stream for EventStream {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Filters of [`Client::audit_query`]; every given one must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries of this user.
    pub user_id: Option<String>,
    /// Only entries of this operation type.
    pub operation: Option<String>,
    /// Only successes or only errors.
    pub result: Option<noex_protocol::AuditResult>,
    /// Only entries at or after this time (ms since the Unix epoch).
    pub from: Option<u64>,
    /// Only entries at or before this time (ms since the Unix epoch).
    pub to: Option<u64>,
    /// At most this many entries (at least 1).
    pub limit: Option<u64>,
}
