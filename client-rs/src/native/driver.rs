//! The tokio task that owns the socket and the [`ClientCore`]: it feeds socket frames,
//! timers and user commands into the core and carries out the core's outputs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use noex_protocol::{Operation, Welcome};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ClientError;
use crate::core::{
    ClientCore, LifecycleEvent, Output, RequestHandle, SubscriptionKey, SubscriptionTarget,
};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type ConnectFut = Pin<Box<dyn Future<Output = Result<Ws, ClientError>> + Send>>;

/// Opens a WebSocket within `timeout`.
pub(crate) async fn open_socket(url: &str, timeout: Duration) -> Result<Ws, ClientError> {
    match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(ClientError::Connect(e.to_string())),
        Err(_) => Err(ClientError::Connect("connect timed out".into())),
    }
}

/// What the public handles ask the driver to do.
pub(crate) enum Command {
    Request {
        operation: Operation,
        reply: oneshot::Sender<Result<Value, ClientError>>,
    },
    Subscribe {
        target: SubscriptionTarget,
        reply: oneshot::Sender<Result<(SubscriptionKey, Value), ClientError>>,
        pushes: mpsc::UnboundedSender<Result<Value, ClientError>>,
    },
    Unsubscribe(SubscriptionKey),
    Events(mpsc::UnboundedSender<LifecycleEvent>),
    Disconnect(oneshot::Sender<()>),
}

enum Waiter {
    Request(oneshot::Sender<Result<Value, ClientError>>),
    Subscribe(
        SubscriptionKey,
        oneshot::Sender<Result<(SubscriptionKey, Value), ClientError>>,
    ),
}

pub(crate) struct Driver {
    core: ClientCore,
    url: String,
    connect_timeout: Duration,
    start: Instant,
    ws: Option<Ws>,
    connecting: Option<ConnectFut>,
    waiters: HashMap<RequestHandle, Waiter>,
    pushes: HashMap<SubscriptionKey, mpsc::UnboundedSender<Result<Value, ClientError>>>,
    listeners: Vec<mpsc::UnboundedSender<LifecycleEvent>>,
    ready: Option<oneshot::Sender<Welcome>>,
    disconnect_waiters: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(crate) fn new(
        core: ClientCore,
        url: String,
        connect_timeout: Duration,
        ws: Ws,
        ready: oneshot::Sender<Welcome>,
        listeners: Vec<mpsc::UnboundedSender<LifecycleEvent>>,
    ) -> Self {
        let mut driver = Driver {
            core,
            url,
            connect_timeout,
            start: Instant::now(),
            ws: Some(ws),
            connecting: None,
            waiters: HashMap::new(),
            pushes: HashMap::new(),
            listeners,
            ready: Some(ready),
            disconnect_waiters: Vec::new(),
        };
        let now = driver.now();
        driver.core.connection_opened(now);
        driver
    }

    /// Milliseconds since the driver started, rounded up: the core adds durations to this,
    /// so rounding down would let a timer (request timeout, reconnect delay) fire up to
    /// 1 ms before its duration has passed.
    fn now(&self) -> u64 {
        let elapsed = self.start.elapsed();
        let ms = elapsed.as_millis() as u64;
        if elapsed.subsec_nanos() % 1_000_000 == 0 {
            ms
        } else {
            ms + 1
        }
    }

    /// Runs until the core is closed for good or every handle is gone.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.flush().await;
            if self.core.is_terminated() {
                break;
            }
            let deadline = self
                .core
                .next_timeout()
                .map(|ms| self.start + Duration::from_millis(ms));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => self.core.disconnect(),
                },
                frame = next_frame(&mut self.ws) => {
                    let now = self.now();
                    match frame {
                        Some(text) => self.core.frame_received(&text, now),
                        None => {
                            self.ws = None;
                            self.core.connection_closed(now);
                        }
                    }
                }
                opened = poll_connect(&mut self.connecting) => {
                    self.connecting = None;
                    let now = self.now();
                    match opened {
                        Ok(ws) => {
                            self.ws = Some(ws);
                            self.core.connection_opened(now);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "reconnect attempt failed");
                            self.core.connection_closed(now);
                        }
                    }
                }
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.core.handle_timeout(now);
                }
            }
        }
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
        for waiter in self.disconnect_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::Request { operation, reply } => {
                let handle = self.core.request(operation, now);
                self.waiters.insert(handle, Waiter::Request(reply));
            }
            Command::Subscribe {
                target,
                reply,
                pushes,
            } => {
                let (handle, key) = self.core.subscribe(target, now);
                self.pushes.insert(key, pushes);
                self.waiters.insert(handle, Waiter::Subscribe(key, reply));
            }
            Command::Unsubscribe(key) => {
                self.pushes.remove(&key);
                self.core.unsubscribe(key, now);
            }
            Command::Events(listener) => self.listeners.push(listener),
            Command::Disconnect(done) => {
                self.disconnect_waiters.push(done);
                self.core.disconnect();
            }
        }
    }

    /// Carries out every queued output of the core.
    async fn flush(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send(text) => {
                    let failed = match self.ws.as_mut() {
                        Some(ws) => ws.send(Message::text(text)).await.is_err(),
                        None => false,
                    };
                    if failed {
                        self.ws = None;
                        let now = self.now();
                        self.core.connection_closed(now);
                    }
                }
                Output::Resolve { handle, result } => match self.waiters.remove(&handle) {
                    Some(Waiter::Request(reply)) => {
                        let _ = reply.send(result);
                    }
                    Some(Waiter::Subscribe(key, reply)) => {
                        if result.is_err() {
                            self.pushes.remove(&key);
                        }
                        if reply.send(result.map(|data| (key, data))).is_err() {
                            // The caller gave up waiting: nobody will ever read this one.
                            self.pushes.remove(&key);
                            let now = self.now();
                            self.core.unsubscribe(key, now);
                        }
                    }
                    None => {}
                },
                Output::Push { key, data } => {
                    if let Some(tx) = self.pushes.get(&key)
                        && tx.send(Ok(data)).is_err()
                    {
                        self.pushes.remove(&key);
                    }
                }
                Output::SubscriptionEnded { key, error } => {
                    // The error is the stream's last item; dropping the sender ends it.
                    if let Some(tx) = self.pushes.remove(&key) {
                        let _ = tx.send(Err(error));
                    }
                }
                Output::Event(event) => {
                    if let LifecycleEvent::Connected(welcome) = &event
                        && let Some(ready) = self.ready.take()
                    {
                        let _ = ready.send(welcome.clone());
                    }
                    self.listeners.retain(|l| l.send(event.clone()).is_ok());
                }
                Output::Connect => {
                    let url = self.url.clone();
                    let timeout = self.connect_timeout;
                    self.connecting =
                        Some(Box::pin(async move { open_socket(&url, timeout).await }));
                }
                Output::Close => {
                    if let Some(mut ws) = self.ws.take() {
                        let _ = ws.close(None).await;
                    }
                    self.connecting = None;
                }
            }
        }
    }
}

/// The next text frame; `None` when the socket closed or failed. Pends forever without a
/// socket.
async fn next_frame(ws: &mut Option<Ws>) -> Option<String> {
    let Some(ws) = ws.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn poll_connect(connecting: &mut Option<ConnectFut>) -> Result<Ws, ClientError> {
    match connecting.as_mut() {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
