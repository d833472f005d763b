//! `OutboundQueue`: one connection's bounded outbound buffer, measured in bytes.
//!
//! - Responses are always queued, in order; when the queue reaches `maxBufferedBytes` the
//!   reader stops reading requests until the client drains, so a client that never reads
//!   cannot grow it without bound.
//! - Pushes go out directly while the queue is under the high-water mark
//!   (`maxBufferedBytes × highWaterMark`). Above it they are held back per subscription:
//!   a store subscription keeps only its newest value (every push carries the complete
//!   result, so the final state is never lost), a rules subscription keeps its most recent
//!   events up to a small bound. Held pushes are released in order once the writer drains
//!   below the mark.
//! - A subscription is *pending* until its subscribe result is queued; pushes that race
//!   ahead of the result are held, so the result always precedes the first push.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Events held per rules subscription while a client is slow; older ones are dropped.
pub(crate) const MAX_HELD_EVENTS: usize = 64;

/// A frame for the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A text frame.
    Text(String),
    /// A close frame; the writer stops after it.
    Close(u16, &'static str),
}

/// How held pushes of one subscription combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushKind {
    /// Store query result: only the newest matters.
    Latest,
    /// Rules event: each matters; keep the most recent few.
    Event,
}

#[derive(Debug)]
struct Held {
    subscription: String,
    kind: PushKind,
    frames: VecDeque<String>,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Bytes queued in `frames` plus bytes handed to the writer and not yet flushed.
    bytes: usize,
    /// The most `bytes` ever reached.
    peak: usize,
    held: Vec<Held>,
    pending: Vec<String>,
    closed: bool,
    dropped_events: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    state: Mutex<State>,
    writer: Notify,
    space: Notify,
    /// Woken when the queue closes (see [`OutboundQueue::closed`]).
    closing: Notify,
    max_bytes: usize,
    high_water: usize,
}

impl OutboundQueue {
    pub(crate) fn new(max_bytes: usize, high_water_mark: f64) -> Arc<Self> {
        let max_bytes = max_bytes.max(1);
        let high_water = ((max_bytes as f64) * high_water_mark).ceil() as usize;
        Arc::new(OutboundQueue {
            state: Mutex::new(State::default()),
            writer: Notify::new(),
            space: Notify::new(),
            closing: Notify::new(),
            max_bytes,
            high_water: high_water.clamp(1, max_bytes),
        })
    }

    /// Queues a response (or any frame that must not be held back), then waits while the
    /// queue is full. Returns `false` once the connection is closed.
    pub(crate) async fn send(&self, text: String) -> bool {
        {
            let mut state = self.state.lock();
            if state.closed {
                return false;
            }
            state.bytes += text.len();
            state.peak = state.peak.max(state.bytes);
            state.frames.push_back(Frame::Text(text));
        }
        self.writer.notify_one();
        loop {
            let space = self.space.notified();
            {
                let state = self.state.lock();
                if state.closed {
                    return false;
                }
                if state.bytes < self.max_bytes {
                    return true;
                }
            }
            space.await;
        }
    }

    /// Queues a frame that must reach the client but is not an answer to the request being
    /// handled (e.g. a subscription ended by the server) without waiting for space: there
    /// is at most one per subscription, so the bound of subscriptions bounds them.
    pub(crate) fn notice(&self, text: String) {
        {
            let mut state = self.state.lock();
            if state.closed {
                return;
            }
            state.bytes += text.len();
            state.peak = state.peak.max(state.bytes);
            state.frames.push_back(Frame::Text(text));
        }
        self.writer.notify_one();
    }

    /// Queues a push for `subscription`, holding it back while the queue is over the
    /// high-water mark or the subscription's result has not been queued yet.
    pub(crate) fn push(&self, subscription: &str, kind: PushKind, text: String) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        let hold = state.bytes >= self.high_water
            || state.pending.iter().any(|p| p == subscription)
            || state.held.iter().any(|h| h.subscription == subscription);
        if !hold {
            state.bytes += text.len();
            state.peak = state.peak.max(state.bytes);
            state.frames.push_back(Frame::Text(text));
            drop(state);
            self.writer.notify_one();
            return;
        }
        let index = match state
            .held
            .iter()
            .position(|h| h.subscription == subscription)
        {
            Some(i) => i,
            None => {
                state.held.push(Held {
                    subscription: subscription.to_owned(),
                    kind,
                    frames: VecDeque::new(),
                });
                state.held.len() - 1
            }
        };
        let mut dropped = 0;
        if let Some(held) = state.held.get_mut(index) {
            match held.kind {
                PushKind::Latest => held.frames.clear(),
                PushKind::Event => {
                    while held.frames.len() >= MAX_HELD_EVENTS {
                        held.frames.pop_front();
                        dropped += 1;
                    }
                }
            }
            held.frames.push_back(text);
        }
        state.dropped_events += dropped;
    }

    /// Marks `subscription` as waiting for its subscribe result.
    pub(crate) fn mark_pending(&self, subscription: &str) {
        self.state.lock().pending.push(subscription.to_owned());
    }

    /// The subscribe result has been queued: pushes may follow.
    pub(crate) fn activate(&self, subscription: &str) {
        let mut state = self.state.lock();
        state.pending.retain(|p| p != subscription);
        if self.release_held(&mut state) {
            drop(state);
            self.writer.notify_one();
        }
    }

    /// Forgets everything held for `subscription`.
    pub(crate) fn remove(&self, subscription: &str) {
        let mut state = self.state.lock();
        state.pending.retain(|p| p != subscription);
        state.held.retain(|h| h.subscription != subscription);
    }

    /// Queues a close frame; nothing is accepted after it.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        {
            let mut state = self.state.lock();
            if state.closed {
                return;
            }
            state.frames.push_back(Frame::Close(code, reason));
            state.closed = true;
            state.held.clear();
        }
        self.writer.notify_one();
        self.space.notify_waiters();
        self.closing.notify_waiters();
    }

    /// Ends the queue without a close frame (the socket is gone).
    pub(crate) fn shut(&self) {
        {
            let mut state = self.state.lock();
            state.closed = true;
            state.held.clear();
        }
        self.writer.notify_one();
        self.space.notify_waiters();
        self.closing.notify_waiters();
    }

    /// Resolves once the queue is closed (by a close frame, or shut because the socket is
    /// gone or stalled).
    pub(crate) async fn closed(&self) {
        loop {
            // Created before the check: a close between the two still wakes it.
            let closing = self.closing.notified();
            if self.state.lock().closed {
                return;
            }
            closing.await;
        }
    }

    /// For the writer: everything queued, waiting until there is something. An empty batch
    /// means the queue is closed and drained.
    pub(crate) async fn next_batch(&self) -> (Vec<Frame>, usize) {
        loop {
            let notified = self.writer.notified();
            {
                let mut state = self.state.lock();
                if !state.frames.is_empty() {
                    let frames: Vec<Frame> = state.frames.drain(..).collect();
                    let bytes = frames
                        .iter()
                        .map(|f| match f {
                            Frame::Text(t) => t.len(),
                            Frame::Close(..) => 0,
                        })
                        .sum();
                    return (frames, bytes);
                }
                if state.closed {
                    return (Vec::new(), 0);
                }
            }
            notified.await;
        }
    }

    /// For the writer: `bytes` were flushed to the socket.
    pub(crate) fn written(&self, bytes: usize) {
        let mut state = self.state.lock();
        state.bytes = state.bytes.saturating_sub(bytes);
        let released = self.release_held(&mut state);
        drop(state);
        if released {
            self.writer.notify_one();
        }
        self.space.notify_waiters();
    }

    /// Moves held pushes of active subscriptions to the queue while under the mark.
    fn release_held(&self, state: &mut State) -> bool {
        let mut released = false;
        let mut i = 0;
        while i < state.held.len() && state.bytes < self.high_water {
            let active = state
                .held
                .get(i)
                .is_some_and(|h| !state.pending.contains(&h.subscription));
            if !active {
                i += 1;
                continue;
            }
            let held = state.held.remove(i);
            for text in held.frames {
                state.bytes += text.len();
                state.peak = state.peak.max(state.bytes);
                state.frames.push_back(Frame::Text(text));
            }
            released = true;
        }
        released
    }

    /// The most bytes ever queued or in flight at once.
    pub(crate) fn peak_bytes(&self) -> usize {
        self.state.lock().peak
    }

    /// Bytes queued or in flight.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Bytes held back in coalesced pushes.
    pub(crate) fn held_bytes(&self) -> usize {
        self.state
            .lock()
            .held
            .iter()
            .flat_map(|h| h.frames.iter())
            .map(String::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(frames: &[Frame]) -> Vec<&str> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Text(t) => t.as_str(),
                Frame::Close(..) => "<close>",
            })
            .collect()
    }

    #[tokio::test]
    async fn under_the_mark_everything_flows_in_order() {
        let q = OutboundQueue::new(1000, 0.8);
        assert!(q.send("r1".into()).await);
        q.push("s", PushKind::Latest, "p1".into());
        assert!(q.send("r2".into()).await);
        let (batch, bytes) = q.next_batch().await;
        assert_eq!(texts(&batch), ["r1", "p1", "r2"]);
        assert_eq!(bytes, 6);
        q.written(bytes);
        assert_eq!(q.buffered_bytes(), 0);
    }

    #[tokio::test]
    async fn over_the_mark_pushes_coalesce_and_responses_still_go_out() {
        let q = OutboundQueue::new(10, 0.5);
        assert!(q.send("123456".into()).await); // 6 bytes >= mark 5
        for i in 0..1000 {
            q.push("a", PushKind::Latest, format!("a{i}"));
            q.push("b", PushKind::Latest, format!("b{i}"));
        }
        assert!(
            q.held_bytes() <= 8,
            "only the newest value per subscription is kept"
        );
        assert!(q.send("r".into()).await);
        let (batch, bytes) = q.next_batch().await;
        assert_eq!(texts(&batch), ["123456", "r"]);
        q.written(bytes);
        // Drained: the held values follow, newest only, in first-held order.
        let (batch, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["a999", "b999"]);
    }

    #[tokio::test]
    async fn held_events_are_bounded() {
        let q = OutboundQueue::new(4, 0.5);
        assert!(q.send("xxx".into()).await);
        for i in 0..500 {
            q.push("e", PushKind::Event, format!("{i}"));
        }
        let (batch, bytes) = q.next_batch().await;
        q.written(bytes);
        assert_eq!(batch.len(), 1);
        let (batch, _) = q.next_batch().await;
        assert_eq!(batch.len(), MAX_HELD_EVENTS);
        assert_eq!(texts(&batch).last().copied(), Some("499"));
    }

    #[tokio::test]
    async fn pending_subscriptions_hold_pushes_until_activated() {
        let q = OutboundQueue::new(1000, 0.8);
        q.mark_pending("s");
        q.push("s", PushKind::Latest, "early".into());
        assert!(q.send("subscribe-result".into()).await);
        q.activate("s");
        let (batch, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["subscribe-result", "early"]);
    }

    #[tokio::test]
    async fn a_full_queue_blocks_the_reader_until_written() {
        let q = OutboundQueue::new(10, 0.8);
        let q2 = Arc::clone(&q);
        let sender = tokio::spawn(async move { q2.send("0123456789AB".into()).await });
        let (batch, bytes) = q.next_batch().await;
        assert_eq!(batch.len(), 1);
        tokio::task::yield_now().await;
        assert!(
            !sender.is_finished(),
            "the reader waits while the queue is full"
        );
        q.written(bytes);
        assert!(sender.await.unwrap());
    }

    #[tokio::test]
    async fn closed_resolves_when_the_writer_shuts_the_queue() {
        let q = OutboundQueue::new(100, 0.8);
        let q2 = Arc::clone(&q);
        let waiter = tokio::spawn(async move { q2.closed().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        q.shut();
        waiter.await.unwrap();
        q.closed().await;
    }

    #[tokio::test]
    async fn close_ends_the_queue_after_the_close_frame() {
        let q = OutboundQueue::new(100, 0.8);
        assert!(q.send("bye".into()).await);
        q.close(1000, "server_shutdown");
        assert!(!q.send("late".into()).await);
        let (batch, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["bye", "<close>"]);
        let (batch, _) = q.next_batch().await;
        assert!(batch.is_empty());
    }
}
