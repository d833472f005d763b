//! Test harness: a real server on port 0 and a real WebSocket client.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use noex_server::{Server, ServerConfig, ServerHandle};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for any single wait: a guard against hangs, not a timing assumption.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn local_config() -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    }
}

pub async fn start(config: ServerConfig) -> ServerHandle {
    Server::start(config).await.expect("server starts")
}

/// The `noex-server` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_noex-server");

/// Spawns the binary with `args` (stdout piped, stderr dropped, `RUST_LOG` unset), waits
/// (bounded by [`WAIT`]) for its first line, `noex-server listening on <url>`, and returns
/// it with the URL. If that line does not come, the child is killed before the panic, so
/// a failing test leaves no server behind.
pub async fn spawn(args: &[&str]) -> (Child, String) {
    spawn_command(Command::new(BIN).args(args)).await
}

/// [`spawn`] with the process's open-file limit (`ulimit -n`) set to `fd_limit`.
pub async fn spawn_with_fd_limit(fd_limit: u32, args: &[&str]) -> (Child, String) {
    let script = format!("ulimit -n {fd_limit} && exec \"$0\" \"$@\"");
    spawn_command(Command::new("sh").arg("-c").arg(script).arg(BIN).args(args)).await
}

async fn spawn_command(command: &mut Command) -> (Child, String) {
    let mut child = command
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await;
    let url = match &line {
        Ok(Ok(Ok(line))) => line
            .trim()
            .strip_prefix("noex-server listening on ")
            .map(str::to_owned),
        _ => None,
    };
    match url {
        Some(url) => (child, url),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no `listening on` line within the wait bound: {line:?}");
        }
    }
}

/// The `noex-server` binary on 127.0.0.1 and a free port, spawned with [`spawn`] and
/// killed (SIGKILL) and reaped when dropped, so a failing test leaves no server behind.
pub struct Binary {
    pub child: Child,
    pub url: String,
}

impl Binary {
    /// Starts the binary with `--port 0 --host 127.0.0.1` and `args`.
    pub async fn spawn(args: &[&str]) -> Binary {
        let mut all = vec!["--port", "0", "--host", "127.0.0.1"];
        all.extend_from_slice(args);
        let (child, url) = spawn(&all).await;
        Binary { child, url }
    }

    /// [`Binary::spawn`] with the open-file limit (`ulimit -n`) set to `fd_limit`.
    pub async fn spawn_with_fd_limit(fd_limit: u32, args: &[&str]) -> Binary {
        let mut all = vec!["--port", "0", "--host", "127.0.0.1"];
        all.extend_from_slice(args);
        let (child, url) = spawn_with_fd_limit(fd_limit, &all).await;
        Binary { child, url }
    }

    /// Starts the binary with `config` written to a config file of its own, then `args`.
    pub async fn with_config(config: &Value, args: &[&str]) -> Binary {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("noex-test-{}-{n}.json", std::process::id()));
        std::fs::write(&path, config.to_string()).expect("config file");
        let path = path.to_str().expect("UTF-8 path").to_owned();
        let mut all = vec!["--config", path.as_str()];
        all.extend_from_slice(args);
        Binary::spawn(&all).await
    }

    /// Its address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()
            .expect("socket address in the URL")
    }

    /// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM")
    }

    /// `kill -9` (what `Child::kill` sends on Unix), then reaps the process.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("reaped");
        assert!(!status.success(), "killed, not finished: {status}");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Pushes read while waiting for an answer (see [`Client::call`]).
    pub pushes: VecDeque<Value>,
    next_id: u64,
}

impl Client {
    /// Connects and returns the client with the welcome frame already read.
    pub async fn connect(server: &ServerHandle) -> (Client, Value) {
        let url = format!("ws://{}/", server.local_addr());
        Client::connect_url(&url).await
    }

    pub async fn connect_url(url: &str) -> (Client, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connects");
        let mut client = Client::from_ws(ws);
        let welcome = client.recv().await;
        (client, welcome)
    }

    /// Connects from `ip` (a loopback address such as `[127, 0, 0, 2]`), so that the server
    /// counts it as a client of its own; the welcome frame is read and checked.
    pub async fn connect_from(server: &ServerHandle, ip: [u8; 4]) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from((ip, 0)))
            .expect("bind a loopback address");
        let stream = socket.connect(server.local_addr()).await.expect("connects");
        let (ws, _) = tokio_tungstenite::client_async(
            format!("ws://{}/", server.local_addr()),
            MaybeTlsStream::Plain(stream),
        )
        .await
        .expect("WebSocket handshake");
        let mut client = Client::from_ws(ws);
        assert_eq!(client.recv().await["type"], "welcome");
        client
    }

    /// Wraps an already-open socket (no welcome is read).
    pub fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            ws,
            pushes: VecDeque::new(),
            next_id: 0,
        }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// The next text frame as JSON.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait bound")
                .expect("stream open")
                .expect("valid frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends a request and returns the next frame (its answer, on an idle connection).
    pub async fn request(&mut self, value: Value) -> Value {
        self.send(value).await;
        self.recv().await
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close within the wait bound");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection failed before a close frame: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }

    /// Sends `{id, type: op, ...fields}` with a fresh id and returns the answer frame.
    /// Pushes that arrive first are kept in `self.pushes`, in order.
    pub async fn call(&mut self, op: &str, fields: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = match fields {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => panic!("fields must be an object, got {other}"),
        };
        request.insert("id".into(), json!(id));
        request.insert("type".into(), json!(op));
        self.send(Value::Object(request)).await;
        loop {
            let frame = self.recv().await;
            if frame["type"] == "push" {
                self.pushes.push_back(frame);
            } else if frame["id"] == json!(id) {
                return frame;
            } else {
                panic!("unexpected frame while waiting for answer {id}: {frame}");
            }
        }
    }

    /// [`Client::call`] that must succeed; returns `data`.
    pub async fn ok(&mut self, op: &str, fields: Value) -> Value {
        let frame = self.call(op, fields).await;
        assert_eq!(frame["type"], "result", "{op} failed: {frame}");
        frame["data"].clone()
    }

    /// [`Client::call`] that must fail; returns `(code, message, details)`.
    pub async fn fail(&mut self, op: &str, fields: Value) -> (String, String, Value) {
        let frame = self.call(op, fields).await;
        assert_eq!(frame["type"], "error", "{op} should fail: {frame}");
        (
            frame["code"].as_str().unwrap_or_default().to_owned(),
            frame["message"].as_str().unwrap_or_default().to_owned(),
            frame["details"].clone(),
        )
    }

    /// The next push (kept or read).
    pub async fn next_push(&mut self) -> Value {
        if let Some(push) = self.pushes.pop_front() {
            return push;
        }
        let frame = self.recv().await;
        assert_eq!(frame["type"], "push", "expected a push, got {frame}");
        frame
    }

    /// Asserts that nothing was pushed to this client. Call it after the server's
    /// `store().settle()`: every push due by then is queued before the answer to this
    /// round trip, so it would show up here.
    pub async fn assert_no_push(&mut self) {
        self.ok("store.buckets", json!({})).await;
        assert!(
            self.pushes.is_empty(),
            "unexpected pushes: {:?}",
            self.pushes
        );
    }
}
