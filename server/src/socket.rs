//! The TCP socket under a WebSocket and the per-socket guards against clients that send
//! without reading:
//!
//! - [`TrackedStream`] records when the socket last accepted bytes, which gives the writer
//!   its write deadline ([`within_write_deadline`]): a socket that accepts nothing for
//!   `heartbeat.timeoutMs` while the server has something to send is dropped, with a reset
//!   so that the kernel frees its buffers at once.
//! - [`WRITE_BUFFER_LIMIT`] bounds tungstenite's own out buffer (unbounded by default),
//!   where pongs to a client's pings pile up while the client does not read.
//! - [`PingBudget`] bounds the WebSocket pings a client may send per second.
//!
//! [`TrackedStream`] also holds the socket's read buffer, and only while the socket has
//! bytes to read: an idle connection holds none.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;

/// A WebSocket over a tracked TCP socket.
pub(crate) type WsStream = WebSocketStream<TrackedStream>;

/// tungstenite's write buffer: frames are gathered up to this size before a write.
pub(crate) const WRITE_BUFFER_BYTES: usize = 128 * 1024;

/// Room over the largest frame for its header and pongs.
const FRAME_SLACK_BYTES: usize = 64 * 1024;

/// The most tungstenite may hold unwritten for one connection: one write buffer plus the
/// largest frame the server sends (messages over [`crate::outbound::FRAGMENT_BYTES`] go out
/// in fragments of that size, whatever `limits.maxResultBytes`). Past it a pong to a
/// client's ping is not queued again (one stays pending), and a frame that does not fit
/// ends the connection.
pub(crate) const WRITE_BUFFER_LIMIT: usize =
    WRITE_BUFFER_BYTES + crate::outbound::FRAGMENT_BYTES + FRAME_SLACK_BYTES;

/// When a socket last accepted bytes, shared by its reader (which writes pongs), its writer
/// and the stream itself.
#[derive(Debug)]
pub(crate) struct WriteProgress {
    origin: Instant,
    /// Milliseconds after `origin` of the last accepted write (or of the start of a wait).
    last_ms: AtomicU64,
    /// Reset the connection instead of closing it gracefully when the socket is dropped.
    reset_on_drop: AtomicBool,
}

impl WriteProgress {
    fn new() -> Arc<Self> {
        Arc::new(WriteProgress {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            reset_on_drop: AtomicBool::new(false),
        })
    }

    /// Records activity now.
    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// The last recorded activity.
    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// The socket will be reset (RST, buffers discarded) rather than closed when dropped.
    pub(crate) fn reset_on_drop(&self) {
        self.reset_on_drop.store(true, Ordering::Relaxed);
    }
}

/// A `TcpStream` that records write progress in a shared [`WriteProgress`], with a read
/// buffer of its own that exists only while the socket has bytes to read.
///
/// tungstenite reads through a buffer it zeroes up to its capacity before every read, so
/// that buffer is resident for as long as the connection lives, idle or not. Here it is
/// small (see `connection::FRAME_READ_BYTES`) and the socket is read into this buffer,
/// [`SOCKET_READ_BYTES`] at a time and without zeroing: it is allocated when the socket
/// is readable and freed as soon as it is drained and the socket would block, so an idle
/// connection holds no read buffer at all.
#[derive(Debug)]
pub(crate) struct TrackedStream {
    inner: TcpStream,
    progress: Arc<WriteProgress>,
    /// Bytes read from `inner` and not yet returned: first the request head (read to route
    /// the request) replayed for the WebSocket handshake, then what each socket read brought.
    buffered: Vec<u8>,
    /// How much of `buffered` was returned.
    consumed: usize,
}

/// The most bytes one read takes from the socket (into [`TrackedStream`]'s own buffer).
pub(crate) const SOCKET_READ_BYTES: usize = 8 * 1024;

impl TrackedStream {
    /// Wraps `inner`, whose first bytes `prefix` were already read from it; the returned
    /// handle observes its writes.
    pub(crate) fn new(inner: TcpStream, prefix: Vec<u8>) -> (TrackedStream, Arc<WriteProgress>) {
        let progress = WriteProgress::new();
        let stream = TrackedStream {
            inner,
            progress: Arc::clone(&progress),
            buffered: prefix,
            consumed: 0,
        };
        (stream, progress)
    }

    /// Makes the next reads return `bytes` (already read from the socket) first, then
    /// whatever was read after them and not returned yet.
    pub(crate) fn replay(&mut self, mut bytes: Vec<u8>) {
        bytes.extend_from_slice(self.buffered.get(self.consumed..).unwrap_or_default());
        self.buffered = bytes;
        self.consumed = 0;
    }

    /// Bytes of read buffer this stream holds (0 when idle).
    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.buffered.capacity()
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if self.progress.reset_on_drop.load(Ordering::Relaxed) {
            // Zero linger: close() discards unsent data and sends RST, without blocking.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.consumed < this.buffered.len() {
                let rest = this.buffered.get(this.consumed..).unwrap_or_default();
                let n = rest.len().min(buf.remaining());
                buf.put_slice(rest.get(..n).unwrap_or_default());
                this.consumed += n;
                if this.consumed >= this.buffered.len() {
                    // Drained: the capacity is kept while bytes keep coming.
                    this.buffered.clear();
                    this.consumed = 0;
                }
                return Poll::Ready(Ok(()));
            }
            // A reader with room for a whole socket read needs no buffer of ours.
            if buf.remaining() >= SOCKET_READ_BYTES {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            match this.inner.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    // Idle: nothing to hold until the socket is readable again.
                    this.buffered = Vec::new();
                    return Poll::Pending;
                }
            }
            if this.buffered.capacity() < SOCKET_READ_BYTES {
                this.buffered.reserve_exact(SOCKET_READ_BYTES);
            }
            // Into the spare capacity, which is not zeroed first: only the bytes that
            // arrive are touched.
            match this.inner.try_read_buf(&mut this.buffered) {
                // End of stream: returned as a read of nothing.
                Ok(0) => return Poll::Ready(Ok(())),
                // Returned from the buffer on the next turn.
                Ok(_) => {}
                // Readiness was cleared: the next turn waits for it again.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                self.progress.touch();
            }
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs `write` (a send or flush on the socket); `None` when the socket accepted no bytes
/// for `timeout` in a row meanwhile. The clock starts when the wait starts, so an idle
/// socket is not late before it has something to write.
pub(crate) async fn within_write_deadline<F: Future>(
    write: F,
    progress: &WriteProgress,
    timeout: Duration,
) -> Option<F::Output> {
    progress.touch();
    let mut write = std::pin::pin!(write);
    loop {
        let deadline = progress.last() + timeout;
        tokio::select! {
            biased;
            output = &mut write => return Some(output),
            () = tokio::time::sleep_until(deadline) => {
                if progress.last() + timeout <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// WebSocket pings one connection may send per second (`limits.maxPingsPerSecond`); each
/// one makes the server queue a pong.
#[derive(Debug)]
pub(crate) struct PingBudget {
    max_per_second: u32,
    window_start: Instant,
    count: u32,
}

impl PingBudget {
    /// A budget of `max_per_second` pings in each one-second window.
    pub(crate) fn new(max_per_second: u32) -> Self {
        PingBudget {
            max_per_second,
            window_start: Instant::now(),
            count: 0,
        }
    }

    /// Counts one ping; `false` when it is over the budget.
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= self.max_per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_ping_budget_refills_every_second() {
        let mut budget = PingBudget::new(3);
        assert!((0..3).all(|_| budget.allow()));
        assert!(!budget.allow());
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert!(budget.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_misses_the_deadline() {
        let progress = WriteProgress::new();
        let stuck = within_write_deadline(
            std::future::pending::<()>(),
            &progress,
            Duration::from_millis(500),
        );
        assert_eq!(stuck.await, None);
        let done = within_write_deadline(async { 7 }, &progress, Duration::from_millis(500));
        assert_eq!(done.await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_moves_the_deadline() {
        let progress = WriteProgress::new();
        let writer = {
            let progress = &progress;
            async move {
                // Accepts a byte every 300 ms, five times: never 500 ms without progress.
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    progress.touch();
                }
                "written"
            }
        };
        let out = within_write_deadline(writer, &progress, Duration::from_millis(500)).await;
        assert_eq!(out, Some("written"));
    }

    #[tokio::test]
    async fn the_read_buffer_exists_only_while_bytes_wait() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        let (mut stream, _progress) = TrackedStream::new(socket, b"head".to_vec());
        // Reads smaller than a socket read, as tungstenite's: the replayed bytes come first.
        let mut small = [0u8; 3];
        stream.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hea");
        client.write_all(b"0123456789").await.unwrap();
        let mut rest = [0u8; 11];
        stream.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"d0123456789");
        // Drained, and the socket has nothing more: the read that finds it idle frees it.
        let polled = std::future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut small);
            Poll::Ready(Pin::new(&mut stream).poll_read(cx, &mut buf))
        })
        .await;
        assert!(polled.is_pending());
        assert_eq!(stream.buffer_capacity(), 0);
        // Bytes sent while idle are read as before, and the end of the stream reads 0.
        client.write_all(b"xyz").await.unwrap();
        drop(client);
        stream.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"xyz");
        assert_eq!(stream.read(&mut small).await.unwrap(), 0);
    }

    #[test]
    fn the_write_buffer_fits_the_largest_frame() {
        let limit = WRITE_BUFFER_LIMIT;
        assert!(limit > WRITE_BUFFER_BYTES + crate::outbound::FRAGMENT_BYTES);
    }
}
