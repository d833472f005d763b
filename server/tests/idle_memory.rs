//! Memory per idle connection: the server binary's resident memory (VmRSS) grows by at most
//! a few KiB per open, idle WebSocket connection, and no more once each connection has
//! sent a request (the read buffer is not kept while the socket is idle).
//!
//! The clients are plain blocking sockets holding nothing in this process; the server is
//! the binary built for the tests, so the figure is the server's alone. It is taken over
//! [`CONNECTIONS`] connections, after a first one has run every lazy initialisation.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Binary, WAIT};
use serde_json::json;

/// Connections opened for the figure.
const CONNECTIONS: usize = 1_000;

/// The bound, in bytes per connection, for the debug build these tests run (its futures are
/// larger than a release build's: the release server measures about 5.8 KiB per idle
/// connection in the load tool's `connections` scenario, where it measured 25.7 KiB before
/// the read buffer was made lazy and the connection task's future was cut down).
const MAX_BYTES_PER_CONNECTION: u64 = 8 * 1024;

/// Opens a WebSocket connection and reads up to the end of the welcome frame.
fn connect(binary: &Binary) -> TcpStream {
    let mut socket = TcpStream::connect(binary.addr()).expect("connects");
    socket.set_read_timeout(Some(WAIT)).expect("read timeout");
    socket
        .write_all(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .expect("upgrade request");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 512];
    // A refused connection (say, over a per-address cap) gets a close frame, not the welcome.
    while !seen.windows(9).any(|w| w == b"\"welcome\"") {
        let n = socket.read(&mut chunk).expect("reads the welcome");
        assert!(n > 0, "closed before the welcome: {seen:?}");
        seen.extend_from_slice(&chunk[..n]);
    }
    let end = seen.iter().rposition(|&b| b == b'}').expect("a JSON frame");
    assert_eq!(end + 1, seen.len(), "nothing after the welcome frame");
    socket
}

/// Sends one masked text frame of `text` (under 126 bytes) and reads one answer frame.
fn request(socket: &mut TcpStream, text: &str) -> String {
    let payload = text.as_bytes();
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    socket.write_all(&frame).expect("request frame");
    let mut head = [0u8; 2];
    socket.read_exact(&mut head).expect("answer header");
    assert_eq!(head[0], 0x81, "a final text frame");
    let len = match head[1] {
        126 => {
            let mut ext = [0u8; 2];
            socket.read_exact(&mut ext).expect("length");
            usize::from(u16::from_be_bytes(ext))
        }
        n if n < 126 => usize::from(n),
        n => panic!("unexpected length byte {n}"),
    };
    let mut body = vec![0u8; len];
    socket.read_exact(&mut body).expect("answer body");
    String::from_utf8(body).expect("UTF-8 answer")
}

#[tokio::test]
async fn an_idle_connection_holds_a_few_kib_before_and_after_a_request() {
    // Every connection comes from 127.0.0.1: lift the per-address caps.
    let config = json!({
        "limits": {
            "maxPendingHandshakes": 100_000,
            "maxPendingHandshakesPerIp": 100_000,
        },
        "connectionLimits": { "maxConnectionsPerIp": 100_000 },
    });
    let binary = Binary::with_config(&config, &[]).await;
    let mut first = connect(&binary);
    let answer = request(
        &mut first,
        r#"{"id":1,"type":"store.get","bucket":"b","key":"k"}"#,
    );
    assert!(answer.contains("BUCKET_NOT_DEFINED"), "answer: {answer}");

    let before = binary.status_kib("VmRSS");
    let mut sockets: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(&binary)).collect();
    let idle = binary.status_kib("VmRSS");
    let per_idle = (idle.saturating_sub(before) * 1024) / CONNECTIONS as u64;
    assert!(
        per_idle <= MAX_BYTES_PER_CONNECTION,
        "{per_idle} bytes per idle connection ({before} KiB -> {idle} KiB for {CONNECTIONS})"
    );

    for (i, socket) in sockets.iter_mut().enumerate() {
        let text = format!(r#"{{"id":{i},"type":"store.get","bucket":"b","key":"k"}}"#);
        let answer = request(socket, &text);
        assert!(answer.contains("BUCKET_NOT_DEFINED"), "answer: {answer}");
    }
    let used = binary.status_kib("VmRSS");
    let per_used = (used.saturating_sub(before) * 1024) / CONNECTIONS as u64;
    assert!(
        per_used <= MAX_BYTES_PER_CONNECTION,
        "{per_used} bytes per connection after a request each ({before} KiB -> {used} KiB)"
    );
    eprintln!("per connection: {per_idle} bytes idle, {per_used} bytes after a request");
}
