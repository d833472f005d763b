//! The raw baselines: minimal tokio-tungstenite servers (`noex-bench echo-server`).
//!
//! What they measure: the cost of a bare WebSocket server on the same machine in the same
//! run. A request is answered with `{"id":<same id>,"type":"result","data":null}`. For
//! `fanout` a `store.insert` frame is additionally broadcast to every other connection that
//! has sent a `store.subscribe`, as
//! `{"type":"push","channel":"subscription","subscriptionId":"echo","data":<data.n>}`,
//! serialized once and shared: "our server vs raw broadcast". They keep no data, so the
//! ratio shows what storage, queries and bookkeeping cost on top of the transport.
//!
//! The default (`echo`, [`connection`]) is the floor: one task per connection that parses
//! each frame into a borrowed typed struct, `feed`s the answers of every frame that is
//! already readable and `flush`es once when the read side would block, i.e. one write per
//! burst, as our server does; it reads the socket only when the socket signalled. `--naive` (`echo-naive`, [`naive_connection`]) is the
//! previous baseline: a `serde_json::Value` per frame and a writer task that usually wakes
//! and writes once per answer.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Outbound frames queued per connection; past this a broadcast to that peer is dropped
/// (like a push held back by backpressure).
const OUTBOUND_QUEUE: usize = 1024;

/// At most this many frames are answered before a flush, even if more are readable.
const MAX_BURST: usize = 64;

/// The floor's WebSocket read buffer (the noex server reads the socket 8 KiB at a time
/// too, into a buffer of its own that it frees when the socket is idle). tungstenite (0.30)
/// zeroes the buffer's spare capacity before every read, so its default of 128 KiB costs
/// a 128 KiB memset per read (13 % of the naive baseline's CPU in request-rtt; 58 % for
/// this floor, which polls until the socket would block, before it was set).
const READ_BUFFER_BYTES: usize = 8 * 1024;

type Peers = Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>;

/// Binds `127.0.0.1:port`, prints `noex-bench echo listening on ws://127.0.0.1:PORT/` and
/// serves until killed; `naive` selects the one-write-per-answer baseline.
pub async fn serve(port: u16, naive: bool) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let local = listener.local_addr()?;
    println!(
        "noex-bench echo listening on ws://127.0.0.1:{}/",
        local.port()
    );
    let peers: Peers = Arc::default();
    let next_id = AtomicU64::new(1);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // e.g. EMFILE: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        if naive {
            tokio::spawn(naive_connection(stream, id, peers.clone()));
        } else {
            tokio::spawn(connection(stream, id, peers.clone()));
        }
    }
}

/// What the floor reads from a request: borrowed from the frame where it can be, the
/// rest of the frame skipped (but still validated as JSON).
#[derive(Deserialize)]
struct Req<'a> {
    #[serde(default)]
    id: u64,
    #[serde(borrow, rename = "type", default)]
    kind: Cow<'a, str>,
    #[serde(default)]
    data: Option<InsertData>,
}

/// The part of a `store.insert`'s `data` that the broadcast carries.
#[derive(Deserialize)]
struct InsertData {
    #[serde(default)]
    n: Option<serde_json::Number>,
}

/// What a request does besides being answered.
enum Effect {
    /// Nothing.
    None,
    /// `store.subscribe`: the connection receives broadcasts from now on.
    Subscribe,
    /// `store.insert`: this push goes to every subscribed connection.
    Broadcast(Message),
}

/// The answer to one text frame and its [`Effect`]; `None` for a frame that needs no
/// answer (a pong, or not JSON).
fn answer(text: &str) -> Option<(String, Effect)> {
    let mut reply = String::with_capacity(48);
    let (kind, n) = match serde_json::from_str::<Req<'_>>(text) {
        Ok(req) => {
            let _ = write!(reply, r#"{{"id":{},"type":"result","data":null}}"#, req.id);
            let n = req.data.and_then(|d| d.n).map(Value::Number);
            (req.kind, n)
        }
        // A shape the typed struct does not take (an id that is not a u64, a `data` that
        // is not an object): the slow path, still answered.
        Err(_) => {
            let v: Value = serde_json::from_str(text).ok()?;
            let id = v.get("id").cloned().unwrap_or(Value::from(0));
            let body = serde_json::json!({"id": id, "type": "result", "data": null});
            reply = body.to_string();
            let kind = v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            (Cow::Owned(kind), v.pointer("/data/n").cloned())
        }
    };
    match kind.as_ref() {
        "pong" => None,
        "store.insert" => {
            let mut push = String::with_capacity(96);
            let n = n.unwrap_or(Value::Null);
            let _ = write!(
                push,
                r#"{{"type":"push","channel":"subscription","subscriptionId":"echo","data":{n}}}"#
            );
            Some((reply, Effect::Broadcast(Message::text(push))))
        }
        "store.subscribe" => Some((reply, Effect::Subscribe)),
        _ => Some((reply, Effect::None)),
    }
}

/// Makes connection `me` receive broadcasts through `tx`.
fn subscribe(peers: &Peers, me: u64, tx: &mpsc::Sender<Message>) {
    if let Ok(mut p) = peers.lock() {
        p.entry(me).or_insert_with(|| tx.clone());
    }
}

/// Sends `push` to every subscribed peer but `me` without waiting (a full queue drops it).
fn broadcast(peers: &Peers, me: u64, push: &Message) {
    let targets: Vec<mpsc::Sender<Message>> = match peers.lock() {
        Ok(p) => p
            .iter()
            .filter(|(k, _)| **k != me)
            .map(|(_, s)| s.clone())
            .collect(),
        Err(_) => Vec::new(),
    };
    for t in targets {
        let _ = t.try_send(push.clone());
    }
}

/// The floor's waker for its socket: it records that the socket signalled before waking
/// the task, so a task woken by a broadcast does not poll the socket (every poll of a
/// tokio-tungstenite stream is a read attempt, and tungstenite zeroes the spare read
/// buffer first: about a tenth of the CPU per push in fan-out when polled every time).
struct SocketWake {
    /// The socket signalled since it last returned `Pending` (true at first).
    signalled: AtomicBool,
    /// The connection task.
    task: AtomicWaker,
}

impl Wake for SocketWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.signalled.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl SocketWake {
    /// Polls the socket once if it signalled since it was last pending; `None` when it
    /// was not polled or had nothing.
    fn poll(&self, ws: &mut Ws, waker: &Waker) -> Option<Option<WsItem>> {
        if !self.signalled.swap(false, Ordering::AcqRel) {
            return None;
        }
        match ws.poll_next_unpin(&mut Context::from_waker(waker)) {
            Poll::Ready(m) => {
                // Only a `Pending` arms the waker: more may be ready already.
                self.signalled.store(true, Ordering::Release);
                Some(m)
            }
            Poll::Pending => None,
        }
    }
}

/// The floor's server-side WebSocket.
type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// What the WebSocket stream yields.
type WsItem = Result<Message, tokio_tungstenite::tungstenite::Error>;

/// One wake-up of the floor's connection task.
enum Event {
    /// A frame from the client, the end of the stream (`None`), or a read error.
    Input(Option<WsItem>),
    /// A broadcast from another connection.
    Push(Message),
}

/// The floor: one task per connection; each wake-up answers everything already readable
/// (and queues every pending broadcast) with `feed`, then writes it all with one `flush`.
async fn connection(stream: TcpStream, me: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
    let socket = Arc::new(SocketWake {
        signalled: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    let socket_waker = Waker::from(socket.clone());
    'conn: loop {
        let mut event = std::future::poll_fn(|cx| {
            socket.task.register(cx.waker());
            if let Poll::Ready(Some(p)) = rx.poll_recv(cx) {
                return Poll::Ready(Event::Push(p));
            }
            match socket.poll(&mut ws, &socket_waker) {
                Some(m) => Poll::Ready(Event::Input(m)),
                None => Poll::Pending,
            }
        })
        .await;
        let mut burst = 0;
        loop {
            match event {
                Event::Input(Some(Ok(Message::Text(text)))) => {
                    if let Some((reply, effect)) = answer(text.as_str()) {
                        if ws.feed(Message::text(reply)).await.is_err() {
                            break 'conn;
                        }
                        match effect {
                            Effect::None => {}
                            Effect::Subscribe => subscribe(&peers, me, &tx),
                            Effect::Broadcast(push) => broadcast(&peers, me, &push),
                        }
                    }
                }
                Event::Input(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => break 'conn,
                // Pings are answered by tungstenite itself (queued, sent with the flush).
                Event::Input(Some(Ok(_))) => {}
                Event::Push(p) => {
                    if ws.feed(p).await.is_err() {
                        break 'conn;
                    }
                }
            }
            burst += 1;
            if burst >= MAX_BURST {
                break;
            }
            // Whatever is ready now joins this burst; nothing waits.
            event = if let Ok(p) = rx.try_recv() {
                Event::Push(p)
            } else if let Some(m) = socket.poll(&mut ws, &socket_waker) {
                Event::Input(m)
            } else {
                break;
            };
        }
        if ws.flush().await.is_err() {
            break;
        }
    }
    if let Ok(mut p) = peers.lock() {
        p.remove(&me);
    }
}

/// The previous baseline: a reader that parses each frame into a `serde_json::Value` and a
/// writer task that flushes whatever is queued when it wakes, which under request/answer
/// traffic is one write per answer; tungstenite's default 128 KiB read buffer.
async fn naive_connection(stream: TcpStream, me: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
    let writer = tokio::spawn(async move {
        // Write everything queued, then flush: under request/answer traffic the reader
        // has usually queued one answer when this task wakes, so one write per answer.
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else {
            if msg.is_close() {
                break;
            }
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "pong" {
            continue;
        }
        let id = v.get("id").cloned().unwrap_or(Value::from(0));
        let reply = serde_json::json!({"id": id, "type": "result", "data": null});
        if tx.send(Message::text(reply.to_string())).await.is_err() {
            break;
        }
        if kind == "store.subscribe" {
            subscribe(&peers, me, &tx);
        }
        if kind == "store.insert" {
            let n = v.pointer("/data/n").cloned().unwrap_or(Value::Null);
            let push = Message::text(
                serde_json::json!({"type": "push", "channel": "subscription",
                    "subscriptionId": "echo", "data": n})
                .to_string(),
            );
            let targets: Vec<mpsc::Sender<Message>> = match peers.lock() {
                Ok(p) => p
                    .iter()
                    .filter(|(k, _)| **k != me)
                    .map(|(_, s)| s.clone())
                    .collect(),
                Err(_) => Vec::new(),
            };
            for t in targets {
                let _ = t.try_send(push.clone());
            }
        }
    }
    if let Ok(mut p) = peers.lock() {
        p.remove(&me);
    }
    drop(tx);
    let _ = writer.await;
}
