//! Hostile clients at the transport and login level, each test replaying one attack from
//! the attack run against a real server: WebSocket ping floods, idle and slowloris TCP
//! connections, subscribers that never read, oversized JSON nesting, malformed frames and
//! login guessing. Memory is measured on the spawned binary (`/proc/PID/status`).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Binary, Client, WAIT, local_config, start};
use noex_server::{AuthConfig, Server, ServerHandle, Session, TokenValidator, ValidateFuture};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;

// ---------------------------------------------------------------------------------------
// Helpers: the spawned binary, raw sockets, raw WebSocket frames.

const MIB: u64 = 1024;

/// A TCP connection to `addr` from the loopback address `from`, optionally with a small
/// receive buffer (so that a client that does not read stalls the server quickly).
async fn tcp_from(addr: SocketAddr, from: Ipv4Addr, recv_buffer: Option<u32>) -> TcpStream {
    try_tcp_from(addr, from, recv_buffer)
        .await
        .expect("connects")
}

/// [`tcp_from`] that may fail: a server that resets a connection at once can do so before
/// `connect` returns.
async fn try_tcp_from(
    addr: SocketAddr,
    from: Ipv4Addr,
    recv_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect(addr).await
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A raw WebSocket connection: the handshake done by hand, frames read and written as bytes.
struct RawWs {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawWs {
    /// Upgrades `stream` and reads the welcome frame.
    async fn open(mut stream: TcpStream) -> RawWs {
        stream.write_all(UPGRADE.as_bytes()).await.expect("upgrade");
        let mut buffer = Vec::new();
        let end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("handshake answer within the wait bound")
                .expect("read");
            assert!(n > 0, "closed during the handshake");
            buffer.extend_from_slice(&chunk[..n]);
        };
        assert!(
            buffer.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.drain(..end);
        let mut ws = RawWs { stream, buffer };
        let (opcode, welcome) = ws.read_frame().await.expect("welcome frame");
        assert_eq!(opcode, 1);
        let welcome: Value = serde_json::from_slice(&welcome).expect("welcome is JSON");
        assert_eq!(welcome["type"], "welcome");
        ws
    }

    /// The next server frame `(opcode, payload)`; `None` at EOF or reset.
    async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((header, len)) = parse_header(&self.buffer) {
                if self.buffer.len() >= header + len {
                    let opcode = self.buffer[0] & 0x0f;
                    let payload = self.buffer[header..header + len].to_vec();
                    self.buffer.drain(..header + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("a frame within the wait bound")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until a close frame and returns its code; panics if the socket ends first.
    async fn close_code(&mut self) -> u16 {
        loop {
            match self.read_frame().await {
                Some((8, payload)) => {
                    assert!(payload.len() >= 2, "close frame without a code");
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

/// Header length and payload length of an unmasked server frame, once complete.
fn parse_header(buf: &[u8]) -> Option<(usize, usize)> {
    let len7 = usize::from(*buf.get(1)? & 0x7f);
    match len7 {
        126 => Some((
            4,
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        )),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some((10, u64::from_be_bytes(bytes) as usize))
        }
        n => Some((2, n)),
    }
}

/// A client frame: `first` is FIN/RSV/opcode, the payload is masked when `masked`.
fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&KEY);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Waits until the peer closes `stream` (EOF or reset) and returns when; nothing the peer
/// sends is expected.
async fn await_eof(stream: &mut TcpStream, bound: Duration) -> Option<Instant> {
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
}

/// A WebSocket client (the test harness's `Client`) connecting from `from`.
async fn client_from(addr: SocketAddr, from: Ipv4Addr, recv_buffer: Option<u32>) -> Client {
    let stream = tcp_from(addr, from, recv_buffer).await;
    let (ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/"), MaybeTlsStream::Plain(stream))
            .await
            .expect("WebSocket handshake");
    let mut client = Client::from_ws(ws);
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome");
    client
}

// ---------------------------------------------------------------------------------------
// Finding 6: WebSocket pings from a client that never reads.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_client_that_never_reads_is_cut_off_and_memory_stays_bounded() {
    let server = Binary::with_config(
        &json!({"heartbeat": {"intervalMs": 60_000, "timeoutMs": 1_000}}),
        &[],
    )
    .await;
    let addr = server.addr();
    // Warm up: one served client, then the baseline.
    let (mut warm, _) = Client::connect_url(&server.url).await;
    warm.ok("server.stats", json!({})).await;
    let baseline = server.status_kib("VmRSS");

    // 125-byte pings (the most a control frame carries): every one queues a 127-byte pong.
    let ping = client_frame(0x89, &[b'p'; 125], true);
    let chunk: Vec<u8> = ping.repeat(8 * 1024); // ~1 MiB
    const TOTAL_CHUNKS: usize = 160; // ~160 MiB of pings, ~1.3 M pings
    let stream = tcp_from(addr, Ipv4Addr::LOCALHOST, Some(4096)).await;
    let mut flooder = RawWs::open(stream).await;
    let started = Instant::now();
    // The flood ends when everything is written or the server drops the socket.
    let sent = tokio::time::timeout(Duration::from_secs(60), async {
        let mut sent = 0;
        for _ in 0..TOTAL_CHUNKS {
            if flooder.stream.write_all(&chunk).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    })
    .await
    .expect("the flood ends within its bound");
    let flood_time = started.elapsed();
    let peak = server.status_kib("VmHWM");
    let growth_mib = peak.saturating_sub(baseline) / MIB;

    // Another client is served promptly.
    let asked = Instant::now();
    let (mut other, _) = Client::connect_url(&server.url).await;
    other.ok("server.stats", json!({})).await;
    let answered = asked.elapsed();
    println!(
        "ping flood: sent {sent}/{TOTAL_CHUNKS} MiB of pings in {flood_time:?}; \
         RSS baseline {} MiB, peak {} MiB (+{growth_mib} MiB); another client answered in {answered:?}",
        baseline / MIB,
        peak / MIB
    );
    assert!(
        sent < TOTAL_CHUNKS,
        "the server read every ping of the flood instead of cutting the client off"
    );
    assert!(
        growth_mib < 32,
        "the ping flood grew the server by {growth_mib} MiB"
    );
    assert!(answered < Duration::from_secs(2), "{answered:?}");
}

// ---------------------------------------------------------------------------------------
// Finding 7: idle and slowloris connections, pending-handshake caps.

#[tokio::test]
async fn tcp_connections_that_never_send_a_byte_are_closed_after_the_handshake_timeout() {
    let mut config = local_config();
    config.limits.handshake_timeout_ms = 300;
    let server = start(config).await;
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(tcp_from(server.local_addr(), Ipv4Addr::LOCALHOST, None).await);
    }
    for stream in &mut idle {
        let closed = await_eof(stream, WAIT)
            .await
            .expect("an idle connection is closed by the server");
        let after = closed - opened;
        assert!(
            after >= Duration::from_millis(300) && after < Duration::from_secs(3),
            "closed after {after:?}"
        );
    }
    // The server still serves.
    let (mut client, _) = Client::connect(&server).await;
    client.ok("server.stats", json!({})).await;
}

#[tokio::test]
async fn a_slowloris_handshake_is_dropped_at_the_handshake_timeout() {
    let mut config = local_config();
    config.limits.handshake_timeout_ms = 500;
    let server = start(config).await;
    let stream = tcp_from(server.local_addr(), Ipv4Addr::LOCALHOST, None).await;
    let (mut read_half, mut write_half) = stream.into_split();
    let started = Instant::now();
    // One header byte every 50 ms: the request is never complete, but bytes keep coming.
    let dribble = tokio::spawn(async move {
        let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in request {
            if write_half.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut chunk = [0u8; 256];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match read_half.read(&mut chunk).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the slowloris connection is dropped");
    dribble.abort();
    assert!(
        closed >= Duration::from_millis(500) && closed < Duration::from_secs(3),
        "dropped after {closed:?}"
    );
}

/// Fourth red-team run: with 32 silent sockets from one address, a real client from that
/// address (behind the same NAT) was reset. At the per-address cap the oldest pending
/// handshake from that address now makes room, as at the global cap.
#[tokio::test]
async fn at_the_per_ip_handshake_cap_the_oldest_from_that_ip_makes_room() {
    let mut config = local_config();
    config.limits.max_pending_handshakes_per_ip = 3;
    let server = start(config).await;
    let addr = server.local_addr();
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(tcp_from(addr, Ipv4Addr::LOCALHOST, None).await);
    }
    // A real client from the same address completes its handshake and is served.
    let mut neighbour = client_from(addr, Ipv4Addr::LOCALHOST, None).await;
    neighbour.ok("server.stats", json!({})).await;
    assert!(
        await_eof(&mut pending[0], Duration::from_secs(3))
            .await
            .is_some(),
        "the oldest silent handshake from that address made room"
    );
    // Another address is not affected by 127.0.0.1's pending handshakes.
    let mut other = client_from(addr, Ipv4Addr::new(127, 0, 0, 2), None).await;
    other.ok("server.stats", json!({})).await;
    drop(pending);
}

#[tokio::test]
async fn at_the_global_handshake_cap_the_oldest_pending_handshake_makes_room() {
    let mut config = local_config();
    config.limits.max_pending_handshakes = 2;
    let server = start(config).await;
    let addr = server.local_addr();
    let mut oldest = tcp_from(addr, Ipv4Addr::new(127, 0, 0, 4), None).await;
    let _b = tcp_from(addr, Ipv4Addr::new(127, 0, 0, 5), None).await;
    // A third pending handshake is over the global cap: the oldest is dropped, not it.
    let _c = tcp_from(addr, Ipv4Addr::new(127, 0, 0, 6), None).await;
    assert!(
        await_eof(&mut oldest, Duration::from_secs(3))
            .await
            .is_some(),
        "the oldest pending handshake makes room"
    );
}

/// Rerun finding: silent connections from many addresses filled the global cap and every
/// other client was refused until their handshake timeouts expired.
#[tokio::test]
async fn filling_the_handshake_cap_from_many_addresses_does_not_lock_others_out() {
    const CAP: u32 = 8;
    let mut config = local_config();
    config.limits.max_pending_handshakes = CAP;
    config.limits.handshake_timeout_ms = 60_000;
    let server = start(config).await;
    let addr = server.local_addr();
    let mut silent = Vec::new();
    for i in 0..CAP {
        silent.push(tcp_from(addr, Ipv4Addr::new(127, 0, 1, 10 + i as u8), None).await);
    }
    let started = Instant::now();
    let mut client = tokio::time::timeout(
        Duration::from_secs(5),
        client_from(addr, Ipv4Addr::new(127, 0, 2, 1), None),
    )
    .await
    .expect("a normal client connects while the cap is full");
    client.ok("server.stats", json!({})).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "connected in {took:?}");
    // The silent connection that made room was the oldest.
    assert!(
        await_eof(&mut silent[0], Duration::from_secs(3))
            .await
            .is_some(),
        "the oldest silent connection was dropped"
    );
}

/// Seventh red-team run: under a low open-file limit, TCP connects that never send a byte
/// from many addresses used every descriptor; accept failed with EMFILE, the handshake cap
/// never saw the new connections, and every new client timed out until the silent ones
/// reached the handshake timeout (4 of 4 probes failed while the attacker kept
/// reconnecting). Out of descriptors, the oldest pending handshake now makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_oldest_pending_handshake_makes_room() {
    // 64 descriptors: a few for the runtime and the listener, the rest for connections.
    // (The handshake timeout, 10 s by default, is longer than the client's 5 s wait.)
    let binary = Binary::spawn_with_fd_limit(64, &["--heartbeat-interval-ms", "600000"]).await;
    let addr = binary.addr();
    // More silent connections than descriptors, each from an address of its own (below
    // every per-address cap).
    let mut silent = Vec::new();
    for i in 0..120u8 {
        if let Ok(stream) = try_tcp_from(addr, Ipv4Addr::new(127, 0, 3, 10 + i), None).await {
            silent.push(stream);
        }
    }
    let started = Instant::now();
    let mut client = tokio::time::timeout(
        Duration::from_secs(5),
        client_from(addr, Ipv4Addr::new(127, 0, 4, 1), None),
    )
    .await
    .expect("a normal client connects while the descriptors are used up");
    client.ok("server.stats", json!({})).await;
    let took = started.elapsed();
    eprintln!(
        "connected in {took:?} past {} silent connections",
        silent.len()
    );
    assert!(took < Duration::from_secs(3), "connected in {took:?}");
    // The first silent connections were accepted and then dropped to make room.
    assert!(
        await_eof(&mut silent[0], Duration::from_secs(3))
            .await
            .is_some(),
        "the oldest silent connection was dropped"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 8: subscribers that never read.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_read_are_dropped_by_the_write_deadline() {
    const SUBSCRIBERS: usize = 20;
    const RECORDS: usize = 40;
    // What fills a stalled socket: every record is inserted and also emitted as an event.
    // Query results coalesce (on a loaded machine the heavy query runs on the store's slow
    // lane and a subscriber may see a few of the 40 results, which the kernel's buffers
    // absorb), events do not: 40 x 256 KiB reach every subscriber's socket, more than its
    // buffers hold, so each one stalls whatever the machine's load.
    const TIMEOUT_MS: u64 = 1_000;
    let server = Binary::with_config(&json!({
        "heartbeat": {"intervalMs": 60_000, "timeoutMs": TIMEOUT_MS},
        "rules": {"enabled": true},
        "store": {
            "buckets": {"blobs": {"key": "id", "schema": {
                "id": {"type": "string"}, "n": {"type": "number"}, "blob": {"type": "string"}}}},
            "queries": {"newest": {"bucket": "blobs", "sort": {"n": "desc"}, "limit": 1}}
        }
    }), &[])
    .await;
    let addr = server.addr();
    let (mut writer, _) = Client::connect_url(&server.url).await;
    writer.ok("server.stats", json!({})).await;
    let baseline = server.status_kib("VmRSS");

    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut client = client_from(addr, Ipv4Addr::LOCALHOST, Some(4096)).await;
        client
            .ok("store.subscribe", json!({"query": "newest"}))
            .await;
        client
            .ok("rules.subscribe", json!({"pattern": "big.*"}))
            .await;
        subscribers.push(client); // never read again
    }
    let blob = "x".repeat(256 * 1024);
    let first_insert = Instant::now();
    // The server resets a stalled socket it drops: the error shows without reading it.
    // Every subscriber is watched from now on, while the records are inserted.
    let bound = Duration::from_secs(20);
    let dropped_at = futures_util::future::join_all(subscribers.iter().map(|subscriber| async {
        let MaybeTlsStream::Plain(stream) = subscriber.ws.get_ref() else {
            panic!("plain TCP");
        };
        tokio::time::timeout(bound, async {
            loop {
                match stream.ready(Interest::ERROR).await {
                    Ok(ready) if ready.is_error() => return Instant::now(),
                    Ok(_) => continue,
                    Err(_) => return Instant::now(),
                }
            }
        })
        .await
        .ok()
    }));
    let inserts = async {
        for n in 0..RECORDS {
            writer
                .ok(
                    "store.insert",
                    json!({"bucket": "blobs", "data": {"id": format!("r{n}"), "n": n, "blob": blob}}),
                )
                .await;
            writer
                .ok(
                    "rules.emit",
                    json!({"topic": "big.blob", "data": {"n": n, "blob": blob}}),
                )
                .await;
        }
        Instant::now()
    };
    let (dropped_at, inserted) = tokio::join!(dropped_at, inserts);
    let peak = server.status_kib("VmHWM");
    let now = server.status_kib("VmRSS");
    println!(
        "stalled subscribers: {} of {SUBSCRIBERS} dropped; RSS baseline {} MiB, peak {} MiB, now {} MiB",
        dropped_at.iter().flatten().count(),
        baseline / MIB,
        peak / MIB,
        now / MIB
    );
    let timeout = Duration::from_millis(TIMEOUT_MS);
    let slack = Duration::from_secs(3);
    let mut latest = Duration::ZERO;
    for at in &dropped_at {
        let at = at.expect("a subscriber that never reads is dropped");
        let since_first = at - first_insert;
        // Not before its socket could have stalled (the first push) plus the deadline, and
        // within the deadline (plus slack) once the last push was due.
        assert!(
            since_first >= timeout,
            "dropped {since_first:?} after the first insert"
        );
        assert!(
            at <= inserted + timeout + slack,
            "dropped {:?} after the last insert",
            at.saturating_duration_since(inserted)
        );
        latest = latest.max(at.saturating_duration_since(inserted));
    }
    println!(
        "{RECORDS} inserts took {:?}; the last subscriber was dropped {latest:?} after the last insert",
        inserted - first_insert
    );
    // A dropped connection leaves the registry once its task has ended, which may be a
    // moment after its socket was reset (a close the server starts waits up to 1 s for the
    // close handshake): wait for it, within a bound.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut connections = writer.ok("server.connections", json!({})).await;
    while connections.as_array().map(Vec::len) != Some(1) && Instant::now() < deadline {
        tokio::task::yield_now().await;
        connections = writer.ok("server.connections", json!({})).await;
    }
    assert_eq!(
        connections.as_array().map(Vec::len),
        Some(1),
        "only the writer is left: {connections}"
    );
    assert!(
        peak.saturating_sub(baseline) / MIB < 96,
        "stalled subscribers held {} MiB",
        peak.saturating_sub(baseline) / MIB
    );
}

// ---------------------------------------------------------------------------------------
// Finding 9: a request of deeply nested arrays.

/// The attack's shape: a 588 KiB `store.where` whose `$in` holds arrays nested 100 deep.
fn nested_in_request() -> String {
    let item = format!("{}0{}", "[".repeat(100), "]".repeat(100));
    let items = vec![item; 588 * 1024 / 202].join(",");
    format!(r#"{{"id":7,"type":"store.where","bucket":"b","filter":{{"x":{{"$in":[{items}]}}}}}}"#)
}

/// Many elements, shallow: `[[0],[0],...]`.
fn wide_in_request() -> String {
    let items = vec!["[0]"; 588 * 1024 / 4].join(",");
    format!(r#"{{"id":8,"type":"store.where","bucket":"b","filter":{{"x":{{"$in":[{items}]}}}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_deeply_nested_arrays_is_refused_before_it_is_parsed() {
    let server = Binary::with_config(
        &json!({
            "store": {"buckets": {"b": {"key": "id", "schema": {"id": {"type": "string"}}}}}
        }),
        &[],
    )
    .await;
    let (mut client, _) = Client::connect_url(&server.url).await;
    client.ok("server.stats", json!({})).await;
    let baseline = server.status_kib("VmRSS");

    for (shape, request, word) in [
        ("nested", nested_in_request(), "deep"),
        ("wide", wide_in_request(), "values"),
    ] {
        let len = request.len();
        client.send_text(request).await;
        let reply = client.recv().await;
        let peak = server.status_kib("VmHWM");
        let growth = peak.saturating_sub(baseline) / MIB;
        println!(
            "{shape} request of {} KiB: answer {} {}; RSS baseline {} MiB, peak {} MiB (+{growth} MiB)",
            len / 1024,
            reply["code"],
            reply["message"],
            baseline / MIB,
            peak / MIB
        );
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], "PARSE_ERROR", "{reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| m.contains(word)),
            "{reply}"
        );
        assert!(growth < 16, "the {shape} request cost {growth} MiB");
    }
    assert_eq!(
        client
            .request(json!({"id": 9, "type": "store.all", "bucket": "b"}))
            .await["type"],
        "result",
        "the connection lives on"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 15: protocol violations and invalid UTF-8 get their close codes.

async fn close_code_after(bytes: Vec<u8>) -> u16 {
    let server = start(local_config()).await;
    let stream = tcp_from(server.local_addr(), Ipv4Addr::LOCALHOST, None).await;
    let mut ws = RawWs::open(stream).await;
    ws.stream.write_all(&bytes).await.expect("write");
    ws.close_code().await
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let cases = [
        ("RSV1 set", client_frame(0x80 | 0x40 | 0x1, b"{}", true)),
        ("reserved data opcode", client_frame(0x83, b"{}", true)),
        ("reserved control opcode", client_frame(0x8b, b"", true)),
        ("unmasked client frame", client_frame(0x81, b"{}", false)),
        (
            "continuation without a start",
            client_frame(0x80, b"{}", true),
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(close_code_after(bytes).await, 1002, "{what}");
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    assert_eq!(
        close_code_after(client_frame(0x81, &[b'{', 0xff, 0xfe, b'}'], true)).await,
        1007
    );
    // Split over two fragments, each invalid on its own end.
    let mut fragmented = client_frame(0x01, &[b'"', 0xc3], true);
    fragmented.extend(client_frame(0x80, &[0x28, b'"'], true));
    assert_eq!(close_code_after(fragmented).await, 1007);
}

// ---------------------------------------------------------------------------------------
// Finding 12: login guessing without a rate limit.

/// Accepts `good`, counts every token it is asked about.
struct CountingValidator(Arc<AtomicUsize>);

impl TokenValidator for CountingValidator {
    fn validate<'a>(&'a self, token: &'a str) -> ValidateFuture<'a> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            (token == "good").then(|| Session {
                user_id: "ann".into(),
                roles: vec!["writer".into()],
                expires_at: None,
                identity: false,
            })
        })
    }
}

async fn login_server(clock: Arc<noex_server::ManualClock>) -> (ServerHandle, Arc<AtomicUsize>) {
    let mut config = local_config();
    config.auth = Some(AuthConfig::default());
    config.limits.login.max_failures_per_connection = 3;
    config.limits.login.max_failures_per_ip = 5;
    config.limits.login.window_ms = 60_000;
    let tried = Arc::new(AtomicUsize::new(0));
    let server = Server::builder(config)
        .token_validator(CountingValidator(Arc::clone(&tried)))
        .clock(clock as Arc<dyn noex_server::Clock>)
        .start()
        .await
        .expect("server starts");
    (server, tried)
}

async fn login(client: &mut Client, token: &str) -> Value {
    client.call("auth.login", json!({"token": token})).await
}

fn assert_login_limited(frame: &Value) {
    assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
    assert_eq!(
        frame["message"], "Too many failed login attempts. Try again later.",
        "{frame}"
    );
    let retry = frame["details"]["retryAfterMs"]
        .as_u64()
        .expect("retryAfterMs");
    assert!(retry > 0 && retry <= 60_000, "{frame}");
}

#[tokio::test]
async fn wrong_logins_are_cut_off_per_connection_and_per_ip() {
    let clock = Arc::new(noex_server::ManualClock::new(1_800_000_000_000));
    let (server, tried) = login_server(Arc::clone(&clock)).await;
    let addr = server.local_addr();

    // A burst on one connection: 3 failures, then refused without trying the token.
    let mut first = client_from(addr, Ipv4Addr::LOCALHOST, None).await;
    for _ in 0..3 {
        assert_eq!(login(&mut first, "wrong").await["code"], "UNAUTHORIZED");
    }
    let before = tried.load(Ordering::SeqCst);
    for token in ["wrong", "good"] {
        assert_login_limited(&login(&mut first, token).await);
    }
    assert_eq!(
        tried.load(Ordering::SeqCst),
        before,
        "a refused login does not reach the validator"
    );

    // A second connection from the same IP: the IP has 2 failures left.
    let mut second = client_from(addr, Ipv4Addr::LOCALHOST, None).await;
    for _ in 0..2 {
        assert_eq!(login(&mut second, "wrong").await["code"], "UNAUTHORIZED");
    }
    assert_login_limited(&login(&mut second, "good").await);

    // A correct token from a fresh IP still works.
    let mut fresh = client_from(addr, Ipv4Addr::new(127, 0, 0, 2), None).await;
    assert_eq!(login(&mut fresh, "good").await["type"], "result");

    // After the window, the IP may try again.
    clock.advance(60_000);
    assert_eq!(login(&mut second, "good").await["type"], "result");
}

#[tokio::test]
async fn a_successful_login_resets_the_connections_failures_but_not_the_ips() {
    let clock = Arc::new(noex_server::ManualClock::new(1_800_000_000_000));
    let (server, _tried) = login_server(clock).await;
    let addr = server.local_addr();
    let mut client = client_from(addr, Ipv4Addr::new(127, 0, 0, 3), None).await;
    for _ in 0..2 {
        assert_eq!(login(&mut client, "wrong").await["code"], "UNAUTHORIZED");
    }
    assert_eq!(login(&mut client, "good").await["type"], "result");
    // The connection starts again from 0 (3 allowed), the IP has 5 - 2 = 3 left.
    for _ in 0..3 {
        assert_eq!(login(&mut client, "wrong").await["code"], "UNAUTHORIZED");
    }
    assert_login_limited(&login(&mut client, "wrong").await);
    let mut again = client_from(addr, Ipv4Addr::new(127, 0, 0, 3), None).await;
    assert_login_limited(&login(&mut again, "good").await);
}

/// Rerun finding: one user behind a shared address can lock everyone there out. The per-IP
/// bound stays (it is a brute-force defence); the lockout ends with its window however long
/// the neighbour keeps trying, since refused attempts do not count.
#[tokio::test]
async fn a_per_ip_lockout_ends_with_its_window_even_while_the_neighbour_keeps_trying() {
    let clock = Arc::new(noex_server::ManualClock::new(1_800_000_000_000));
    let (server, _tried) = login_server(Arc::clone(&clock)).await;
    let addr = server.local_addr();
    let shared_ip = Ipv4Addr::new(127, 0, 0, 7);
    // The neighbour uses up the address's 5 failures (3 per connection).
    let mut neighbour = client_from(addr, shared_ip, None).await;
    for _ in 0..3 {
        assert_eq!(login(&mut neighbour, "wrong").await["code"], "UNAUTHORIZED");
    }
    let mut neighbour2 = client_from(addr, shared_ip, None).await;
    for _ in 0..2 {
        assert_eq!(
            login(&mut neighbour2, "wrong").await["code"],
            "UNAUTHORIZED"
        );
    }
    let mut colleague = client_from(addr, shared_ip, None).await;
    let refused = login(&mut colleague, "good").await;
    assert_login_limited(&refused);
    assert_eq!(refused["details"]["retryAfterMs"], 60_000);
    // The neighbour hammers on through the window: refused, and the end does not move.
    for _ in 0..5 {
        clock.advance(11_000);
        assert_login_limited(&login(&mut neighbour2, "wrong").await);
    }
    let refused = login(&mut colleague, "good").await;
    assert_eq!(refused["details"]["retryAfterMs"], 5_000);
    clock.advance(5_000);
    assert_eq!(login(&mut colleague, "good").await["type"], "result");
}

// ---------------------------------------------------------------------------------------
// Rerun finding: memory per subscriber that never reads.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_read_share_their_pushes_and_stay_within_a_memory_bound() {
    const STORE_SUBSCRIBERS: usize = 12;
    const RULES_SUBSCRIBERS: usize = 12;
    const RECORDS: usize = 24;
    // A long write deadline: the stalled subscribers stay connected for the whole test, so
    // what they hold is measured (dropping them is another test's subject).
    let server = Binary::with_config(&json!({
        "heartbeat": {"intervalMs": 120_000, "timeoutMs": 120_000},
        "rules": {"enabled": true},
        "store": {
            "buckets": {"blobs": {"key": "id", "schema": {
                "id": {"type": "string"}, "n": {"type": "number"}, "blob": {"type": "string"}}}},
            "queries": {"recent": {"bucket": "blobs", "sort": {"n": "desc"}, "limit": 8}}
        }
    }), &[])
    .await;
    let addr = server.addr();
    let (mut writer, _) = Client::connect_url(&server.url).await;
    writer.ok("server.stats", json!({})).await;
    // A subscriber that reads (at the end) gets the final state of both subscriptions.
    let (mut reader, _) = Client::connect_url(&server.url).await;
    let store_sub = reader
        .ok("store.subscribe", json!({"query": "recent"}))
        .await;
    let rules_sub = reader
        .ok("rules.subscribe", json!({"pattern": "big.*"}))
        .await;
    let baseline = server.status_kib("VmRSS");

    let mut stalled = Vec::new();
    for i in 0..STORE_SUBSCRIBERS + RULES_SUBSCRIBERS {
        let mut client = client_from(addr, Ipv4Addr::LOCALHOST, Some(4096)).await;
        if i < STORE_SUBSCRIBERS {
            client
                .ok("store.subscribe", json!({"query": "recent"}))
                .await;
        } else {
            client
                .ok("rules.subscribe", json!({"pattern": "big.*"}))
                .await;
        }
        stalled.push(client); // never read again
    }
    let blob = "x".repeat(256 * 1024);
    for n in 0..RECORDS {
        writer
            .ok(
                "store.insert",
                json!({"bucket": "blobs", "data": {"id": format!("r{n}"), "n": n, "blob": blob}}),
            )
            .await;
        writer
            .ok(
                "rules.emit",
                json!({"topic": "big.blob", "data": {"n": n, "blob": blob}}),
            )
            .await;
    }
    let peak = server.status_kib("VmHWM");
    let growth_mib = peak.saturating_sub(baseline) / MIB;

    // Other clients are served: a fresh one at once, the reader gets the final state.
    let asked = Instant::now();
    let (mut other, _) = Client::connect_url(&server.url).await;
    other.ok("server.stats", json!({})).await;
    let answered = asked.elapsed();
    let (mut newest_record, mut newest_event) = (None, None);
    while newest_record != Some(RECORDS as u64 - 1) || newest_event != Some(RECORDS as u64 - 1) {
        let push = reader.next_push().await;
        if push["subscriptionId"] == store_sub["subscriptionId"] {
            newest_record = push["data"][0]["n"].as_u64();
        } else if push["subscriptionId"] == rules_sub["subscriptionId"] {
            newest_event = push["data"]["event"]["data"]["n"].as_u64();
        }
    }
    println!(
        "{} stalled subscribers, {RECORDS} records and events of 256 KiB: RSS baseline {} MiB, \
         peak {} MiB (+{growth_mib} MiB); another client answered in {answered:?}",
        stalled.len(),
        baseline / MIB,
        peak / MIB
    );
    assert!(
        growth_mib < 64,
        "{} subscribers that never read grew the server by {growth_mib} MiB",
        stalled.len()
    );
    assert!(answered < Duration::from_secs(2), "{answered:?}");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_total_outbound_cap_the_connections_holding_the_most_are_closed() {
    const CAP: usize = 4 * 1024 * 1024;
    const STALLERS: usize = 8;
    const REQUESTS: usize = 16;
    let mut config = local_config();
    config.limits.max_total_buffered_bytes = CAP;
    config.heartbeat.timeout_ms = 120_000;
    config.heartbeat.interval_ms = 120_000;
    let max_buffered = config.backpressure.max_buffered_bytes;
    config.store.buckets = serde_json::from_value(json!({"blobs": {"key": "id", "schema": {
        "id": {"type": "string"}, "blob": {"type": "string"}}}}))
    .expect("buckets");
    let server = start(config).await;
    let addr = server.local_addr();
    let (mut writer, _) = Client::connect(&server).await;
    let blob = "x".repeat(200 * 1024);
    for n in 0..4 {
        writer
            .ok(
                "store.insert",
                json!({"bucket": "blobs", "data": {"id": format!("r{n}"), "blob": blob}}),
            )
            .await;
    }
    // Each staller asks for ~800 KiB answers and does not read them: alone, each is within
    // its own `maxBufferedBytes` (1 MiB, plus one answer); together they are far over the cap.
    let mut stallers = Vec::new();
    for _ in 0..STALLERS {
        let mut client = client_from(addr, Ipv4Addr::LOCALHOST, Some(4096)).await;
        for id in 1..=REQUESTS {
            client
                .send(json!({"id": id, "type": "store.all", "bucket": "blobs"}))
                .await;
        }
        stallers.push(client);
    }
    // The attack settles when every staller left has its buffer full (its requests are no
    // longer read). Nothing signals that: it is polled, within the wait bound.
    let settled = tokio::time::timeout(WAIT, async {
        loop {
            let buffers = server.connection_buffers();
            let stalled = buffers
                .iter()
                .filter(|b| b.buffered_bytes >= max_buffered)
                .count();
            if buffers.len() < 1 + STALLERS && stalled == buffers.len() - 1 {
                return buffers.len() - 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let total = server.outbound_bytes();
    let survivors = settled.unwrap_or_else(|_| {
        panic!(
            "the stallers did not settle; total {total}, buffers {:?}",
            server.connection_buffers()
        )
    });
    println!("{survivors} of {STALLERS} stallers left; outbound bytes {total} (cap {CAP})");
    assert!(total <= CAP, "{total} bytes over a cap of {CAP}");
    // Everybody else is served: the writer and a new client.
    let all = writer.ok("store.all", json!({"bucket": "blobs"})).await;
    assert_eq!(all.as_array().map(Vec::len), Some(4));
    let (mut other, _) = Client::connect(&server).await;
    other.ok("server.stats", json!({})).await;
    // Read now, a staller left gets every answer (reading it resumes its requests, which
    // may take the total over the cap again and close another one); a closed one ends with
    // 1008 (or a reset when its socket was full) before getting them all.
    let mut closed = 0;
    for staller in &mut stallers {
        match read_to_the_end_or_all(staller, REQUESTS).await {
            (answers, None) if answers == REQUESTS => {}
            (answers, code) => {
                assert!(answers < REQUESTS);
                assert!(matches!(code, None | Some(1008)), "closed with {code:?}");
                closed += 1;
            }
        }
    }
    assert!(closed >= STALLERS - survivors, "{closed} closed");
}

/// Reads a connection that was not read during an attack: the answers it gets, up to `all`,
/// then how it ended (`None` for open, reset or ended without a close frame).
async fn read_to_the_end_or_all(client: &mut Client, all: usize) -> (usize, Option<u16>) {
    use tokio_tungstenite::tungstenite::Message;
    let mut answers = 0;
    while answers < all {
        let next = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut client.ws))
            .await
            .expect("a frame or the end within the wait bound");
        match next {
            Some(Ok(Message::Text(_))) => answers += 1,
            Some(Ok(Message::Close(frame))) => {
                return (answers, Some(frame.map_or(1005, |f| u16::from(f.code))));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (answers, None),
        }
    }
    (answers, None)
}

// ---------------------------------------------------------------------------------------
// Behind a reverse proxy (red team round 12: every client shared the proxy's address, so 30
// failed logins from anyone locked everyone out): `http.trustedProxies`.

/// Opens a WebSocket from 127.0.0.1 whose upgrade request carries `X-Forwarded-For:
/// forwarded`; `None` when the server refused it with a close frame (the code is returned).
async fn via_proxy(addr: SocketAddr, forwarded: &str) -> Result<Client, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("x-forwarded-for", forwarded.parse().expect("header value"));
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket handshake");
    let mut client = Client::from_ws(ws);
    let first = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut client.ws))
        .await
        .expect("a frame")
        .expect("open")
        .expect("valid");
    match first {
        tokio_tungstenite::tungstenite::Message::Text(t) => {
            let welcome: Value = serde_json::from_str(t.as_str()).expect("JSON");
            assert_eq!(welcome["type"], "welcome");
            Ok(client)
        }
        tokio_tungstenite::tungstenite::Message::Close(Some(frame)) => Err(u16::from(frame.code)),
        other => panic!("unexpected first frame {other:?}"),
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_counted_under_its_own_address() {
    let clock = Arc::new(noex_server::ManualClock::new(1_800_000_000_000));
    let mut config = local_config();
    config.auth = Some(AuthConfig::default());
    config.limits.login.max_failures_per_connection = 3;
    config.limits.login.max_failures_per_ip = 3;
    config.connection_limits.max_connections_per_ip = Some(3);
    config.http.trusted_proxies = vec!["127.0.0.0/8".into()];
    let tried = Arc::new(AtomicUsize::new(0));
    let server = Server::builder(config)
        .token_validator(CountingValidator(Arc::clone(&tried)))
        .clock(clock as Arc<dyn noex_server::Clock>)
        .start()
        .await
        .expect("server starts");
    let addr = server.local_addr();

    // The client the proxy names fails its logins until its address is cut off...
    let mut mallory = via_proxy(addr, "198.51.100.66").await.expect("open");
    for _ in 0..3 {
        assert_eq!(login(&mut mallory, "wrong").await["code"], "UNAUTHORIZED");
    }
    let mut again = via_proxy(addr, "198.51.100.66").await.expect("open");
    assert_login_limited(&login(&mut again, "good").await);
    // ...and a forged left part does not get it a fresh address.
    let mut forged = via_proxy(addr, "203.0.113.1, 198.51.100.66")
        .await
        .expect("open");
    assert_login_limited(&login(&mut forged, "good").await);
    // Another client behind the same proxy logs in.
    let mut alice = via_proxy(addr, "198.51.100.7").await.expect("open");
    assert_eq!(login(&mut alice, "good").await["type"], "result");

    // Connections per address: the named client's three, not the proxy's five.
    assert_eq!(via_proxy(addr, "198.51.100.66").await.err(), Some(4003));
    let _bob = via_proxy(addr, "198.51.100.8").await.expect("open");
    let addresses: Vec<String> = server
        .connections()
        .iter()
        .map(|c| c.remote_address.clone())
        .collect();
    assert!(
        addresses.iter().any(|a| a == "198.51.100.7"),
        "{addresses:?}"
    );
    assert!(!addresses.iter().any(|a| a == "127.0.0.1"), "{addresses:?}");
    drop((mallory, again, forged, alice));
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_address_is_ignored() {
    let mut config = local_config();
    config.connection_limits.max_connections_per_ip = Some(2);
    // A proxy is trusted, but not the address these clients come from.
    config.http.trusted_proxies = vec!["10.0.0.0/8".into()];
    let server = start(config).await;
    let addr = server.local_addr();
    let _a = via_proxy(addr, "198.51.100.1").await.expect("open");
    let _b = via_proxy(addr, "198.51.100.2").await.expect("open");
    // Counted under 127.0.0.1 whatever they claim: the third is one too many.
    assert_eq!(via_proxy(addr, "198.51.100.3").await.err(), Some(4003));
}
