//! Harness: the real server in-process, configured like the server's own tests, plus a
//! TCP proxy between client and server that a test can stall or cut.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use noex_client::{Client, ClientEvent, ClientOptions, EventStream, ReconnectPolicy};
use noex_server::{AuthConfig, Server, ServerConfig, ServerHandle, StaticToken};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

/// Upper bound for any single wait: a guard against hangs, not a timing assumption.
pub const WAIT: Duration = Duration::from_secs(10);

/// `fut`, or a panic naming `what` after [`WAIT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The next item of a stream (which must not end), within [`WAIT`].
pub async fn next<S: Stream + Unpin>(what: &str, stream: &mut S) -> S::Item {
    within(what, stream.next())
        .await
        .unwrap_or_else(|| panic!("{what}: stream ended"))
}

/// Buckets `tasks` (client-given key, validation), `users` (generated key, unique email)
/// and queries over them; the rule engine on.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    };
    config.store = serde_json::from_value(json!({
        "buckets": {
            "tasks": {
                "key": "id",
                "schema": {
                    "id": {"type": "string", "required": true},
                    "title": {"type": "string", "required": true, "minLength": 1},
                    "owner": {"type": "string"},
                    "done": {"type": "boolean", "default": false},
                    "points": {"type": "number", "default": 1, "min": 0}
                },
                "indexes": ["owner"]
            },
            "users": {
                "key": "id",
                "schema": {
                    "id": {"type": "string", "generated": "uuid"},
                    "name": {"type": "string", "required": true},
                    "email": {"type": "string", "format": "email", "unique": true}
                }
            }
        },
        "queries": {
            "all-tasks": {"bucket": "tasks"},
            "open-count": {"bucket": "tasks", "filter": {"done": false}, "aggregate": {"function": "count"}},
            "by-owner": {"bucket": "tasks", "filter": {"owner": "{{ params.owner }}"}}
        }
    }))
    .expect("store section");
    config.rules.enabled = Some(true);
    config
}

/// [`config`] with auth required and a static token table: `admin-t` (ada, admin),
/// `writer-t` (wes, writer), `reader-t` (rea, reader).
pub fn auth_config() -> ServerConfig {
    let token = |user: &str, role: &str| StaticToken {
        user_id: user.into(),
        roles: vec![role.into()],
        expires_at: None,
    };
    let mut config = config();
    config.auth = Some(AuthConfig {
        required: true,
        tokens: Some(BTreeMap::from([
            ("admin-t".into(), token("ada", "admin")),
            ("writer-t".into(), token("wes", "writer")),
            ("reader-t".into(), token("rea", "reader")),
        ])),
        ..AuthConfig::default()
    });
    config
}

pub async fn start(config: ServerConfig) -> ServerHandle {
    Server::start(config).await.expect("server starts")
}

pub fn url(server: &ServerHandle) -> String {
    format!("ws://{}", server.local_addr())
}

/// Fast reconnects (20..100 ms) so that restart tests do not wait for the defaults.
pub fn fast_reconnect() -> ClientOptions {
    ClientOptions {
        reconnect: ReconnectPolicy {
            initial_delay_ms: 20,
            max_delay_ms: 100,
            jitter_ms: 5,
            ..ReconnectPolicy::default()
        },
        ..ClientOptions::default()
    }
}

pub async fn connect(server: &ServerHandle) -> Client {
    within(
        "connect",
        Client::connect(&url(server), ClientOptions::default()),
    )
    .await
    .expect("client connects")
}

/// A JSON object literal as a record / rule map.
pub fn obj(value: serde_json::Value) -> noex_protocol::JsonObject {
    value.as_object().cloned().expect("an object")
}

/// Connects to `url` with `options` and the lifecycle event stream, and waits for the
/// `Connected` event.
pub async fn connect_watching(url: &str, options: ClientOptions) -> (Client, EventStream) {
    let (client, mut events) = within("connect", Client::connect_with_events(url, options))
        .await
        .expect("connects");
    assert!(matches!(
        next("connected", &mut events).await,
        ClientEvent::Connected(_)
    ));
    (client, events)
}

/// Reads lifecycle events until `stop` matches one; returns every event read.
pub async fn events_until<S>(
    events: &mut S,
    stop: impl Fn(&ClientEvent) -> bool,
) -> Vec<ClientEvent>
where
    S: Stream<Item = ClientEvent> + Unpin,
{
    let mut seen = Vec::new();
    loop {
        let event = next("a lifecycle event", events).await;
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// A TCP proxy in front of a server: every accepted connection is piped to the server.
/// [`Proxy::stall`] stops forwarding client→server bytes (requests vanish, nothing is
/// answered; a stalled connection cannot resume, its WebSocket framing is broken, so cut it
/// afterwards); [`Proxy::cut`] drops every current connection (the server stays up).
pub struct Proxy {
    pub port: u16,
    stalled: watch::Sender<bool>,
    swallowed: watch::Sender<usize>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(server: &ServerHandle) -> Proxy {
        let target = server.local_addr();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let (stalled, _) = watch::channel(false);
        let (swallowed, _) = watch::channel(0);
        let pipes: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let stalled = stalled.clone();
            let swallowed = swallowed.clone();
            let pipes = Arc::clone(&pipes);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        continue;
                    };
                    let pipe = tokio::spawn(pipe(
                        client,
                        upstream,
                        stalled.subscribe(),
                        swallowed.clone(),
                    ));
                    pipes.lock().await.push(pipe);
                }
            })
        };
        Proxy {
            port,
            stalled,
            swallowed,
            pipes,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Stops forwarding client→server bytes from now on.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Resolves once the stalled proxy has swallowed at least `bytes` bytes in total.
    pub async fn swallowed(&self, bytes: usize) {
        let mut rx = self.swallowed.subscribe();
        within("bytes swallowed by the proxy", rx.wait_for(|n| *n >= bytes))
            .await
            .expect("proxy alive");
    }

    /// Closes every current connection (both sockets dropped); later connections are
    /// forwarded normally again.
    pub async fn cut(&self) {
        for pipe in self.pipes.lock().await.drain(..) {
            pipe.abort();
            let _ = pipe.await;
        }
        self.stalled.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pipe(
    client: TcpStream,
    upstream: TcpStream,
    mut stalled: watch::Receiver<bool>,
    swallowed: watch::Sender<usize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let upward = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if *stalled.borrow_and_update() {
                // Swallowed: the server never sees these bytes.
                swallowed.send_modify(|total| *total += n);
                continue;
            }
            if up_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downward = async move {
        let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
    };
    tokio::select! {
        () = upward => {}
        () = downward => {}
    }
}
