//! `OutboundQueue`: one connection's bounded outbound buffer, measured in bytes, and
//! `OutboundBudget`: the server-wide account of outbound text in memory.
//!
//! - Responses are always queued, in order; when the queue reaches `maxBufferedBytes` the
//!   reader stops reading requests until the client drains, so a client that never reads
//!   cannot grow it without bound.
//! - Pushes go out directly while the queue is under the high-water mark
//!   (`maxBufferedBytes × highWaterMark`). Above it they are held back per subscription:
//!   a store subscription keeps only its newest value (every push carries the complete
//!   result, so the final state is never lost), a rules subscription keeps its most recent
//!   events up to [`MAX_HELD_EVENTS`] and, over all the connection's held pushes, up to
//!   `maxBufferedBytes`. Held pushes are released in order once the writer drains below
//!   the mark.
//! - A subscription is *pending* until its subscribe result is queued; pushes that race
//!   ahead of the result are held, so the result always precedes the first push.
//! - A push's data is serialized once and shared ([`SharedText`]) by every queue that holds
//!   it: only the envelope naming the subscription is per subscriber. The writer hands a
//!   large frame to the socket in fragments of [`FRAGMENT_BYTES`] sliced from the shared
//!   text, so no connection copies it whole.
//! - Every outbound text in memory is charged to the [`OutboundBudget`] while it lives
//!   (shared data once). Over `limits.maxTotalBufferedBytes` the connection holding the most
//!   (queued plus held) is closed with 1008 `buffer_limit`, its buffers freed at once.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Events held per rules subscription while a client is slow; older ones are dropped.
pub(crate) const MAX_HELD_EVENTS: usize = 64;

/// Largest WebSocket frame the writer hands to the socket at once: a larger message goes
/// out as a fragmented message (a text frame and continuation frames), each fragment a
/// slice of the queued text, so the socket's own buffer never holds a copy of it whole.
pub(crate) const FRAGMENT_BYTES: usize = 64 * 1024;

/// The close reason of a connection closed because the server-wide outbound total was over
/// `limits.maxTotalBufferedBytes` while it held the most.
pub(crate) const BUFFER_LIMIT_REASON: &str = "buffer_limit";

/// Bytes charged to the [`OutboundBudget`] until dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    bytes: usize,
    budget: Arc<OutboundBudget>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Serialized data shared by every push that carries it (one query result or event for all
/// its subscribers), charged once.
#[derive(Debug)]
pub(crate) struct SharedText {
    text: Arc<str>,
    _charge: Charge,
}

/// The bytes of a [`SharedText`], for slicing into fragments without a copy.
struct SharedBytes(Arc<SharedText>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.text.as_bytes()
    }
}

/// Shared texts recently made, found again by the identity of their `Arc<str>`.
const RECENT_SHARED: usize = 16;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct OutboundBudget {
    total: AtomicUsize,
    cap: usize,
    next_id: AtomicU64,
    queues: Mutex<HashMap<u64, Weak<OutboundQueue>>>,
    /// Weak: finding a text again must not keep it alive.
    recent: Mutex<(usize, Vec<Weak<SharedText>>)>,
    /// Pushes queued or held for clients (the `noex_pushes` metric).
    pushes: AtomicU64,
    /// Held store results replaced by a newer one before they were sent.
    replaced_results: AtomicU64,
    /// Held events dropped as too many before they were sent.
    dropped_events: AtomicU64,
}

impl OutboundBudget {
    /// A budget of `cap` bytes over all connections.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(OutboundBudget {
            total: AtomicUsize::new(0),
            cap: cap.max(1),
            next_id: AtomicU64::new(0),
            queues: Mutex::new(HashMap::new()),
            recent: Mutex::new((0, Vec::new())),
            pushes: AtomicU64::new(0),
            replaced_results: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
        })
    }

    /// Pushes queued or held for clients so far.
    pub(crate) fn pushes(&self) -> u64 {
        self.pushes.load(Ordering::Relaxed)
    }

    /// Held pushes given up for a newer one so far: store results replaced, events dropped.
    pub(crate) fn coalesced(&self) -> (u64, u64) {
        (
            self.replaced_results.load(Ordering::Relaxed),
            self.dropped_events.load(Ordering::Relaxed),
        )
    }

    fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.total.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            bytes,
            budget: Arc::clone(self),
        }
    }

    /// Outbound bytes in memory now, over all connections (shared data counted once).
    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// `text` as shared push data: the same [`SharedText`] for the same `Arc<str>` while
    /// any queue still holds it, so its bytes are charged once however many subscribers
    /// receive it.
    pub(crate) fn share(self: &Arc<Self>, text: Arc<str>) -> Arc<SharedText> {
        let mut recent = self.recent.lock();
        let (next, slots) = &mut *recent;
        if let Some(found) = slots
            .iter()
            .filter_map(Weak::upgrade)
            .find(|shared| Arc::ptr_eq(&shared.text, &text))
        {
            return found;
        }
        let shared = Arc::new(SharedText {
            _charge: self.charge(text.len()),
            text,
        });
        if slots.len() < RECENT_SHARED {
            slots.push(Arc::downgrade(&shared));
        } else if let Some(slot) = slots.get_mut(*next % RECENT_SHARED) {
            *slot = Arc::downgrade(&shared);
        }
        *next = (*next + 1) % RECENT_SHARED;
        shared
    }

    /// Over the cap: closes the connection holding the most (queued plus held bytes), which
    /// frees what it holds at once. One per call: what a closed writer still has in hand
    /// is freed as soon as its task runs, and should not cost another connection.
    fn enforce(&self) {
        if self.total() <= self.cap {
            return;
        }
        let queues: Vec<Arc<OutboundQueue>> = self
            .queues
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let victim = queues
            .iter()
            .map(|queue| (queue.holding(), queue))
            .filter(|(holding, _)| *holding > 0)
            .max_by_key(|(holding, _)| *holding);
        if let Some((holding, queue)) = victim {
            tracing::warn!(
                holding,
                total = self.total(),
                cap = self.cap,
                "outbound bytes over limits.maxTotalBufferedBytes: closing the connection holding the most"
            );
            queue.abort(1008, BUFFER_LIMIT_REASON);
        }
    }
}

/// An outbound text frame: the connection's own part (a whole response, or a push's
/// envelope), then optionally shared data and a constant tail.
#[derive(Debug)]
pub(crate) struct Text {
    own: String,
    shared: Option<Arc<SharedText>>,
    tail: &'static str,
    charge: Charge,
}

impl Text {
    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.own.len() + self.shared.as_ref().map_or(0, |s| s.text.len()) + self.tail.len()
    }

    /// The whole text in one string (a copy).
    pub(crate) fn joined(&self) -> String {
        let mut out = String::with_capacity(self.len());
        out.push_str(&self.own);
        if let Some(shared) = &self.shared {
            out.push_str(&shared.text);
        }
        out.push_str(self.tail);
        out
    }

    /// The messages that send it: one text message up to [`FRAGMENT_BYTES`], else a
    /// fragmented message sliced from the text without copying it. The returned charge
    /// should live until they are written.
    pub(crate) fn into_messages(self) -> (Vec<Message>, Charge) {
        if self.len() <= FRAGMENT_BYTES {
            let message = Message::Text(self.joined().into());
            return (vec![message], self.charge);
        }
        let mut parts: Vec<(Bytes, Vec<Range<usize>>)> = Vec::new();
        let own_ranges = char_chunks(&self.own, FRAGMENT_BYTES);
        parts.push((Bytes::from(self.own.into_bytes()), own_ranges));
        if let Some(shared) = self.shared {
            let ranges = char_chunks(&shared.text, FRAGMENT_BYTES);
            parts.push((Bytes::from_owner(SharedBytes(shared)), ranges));
        }
        parts.push((
            Bytes::from_static(self.tail.as_bytes()),
            char_chunks(self.tail, FRAGMENT_BYTES),
        ));
        let slices: Vec<Bytes> = parts
            .iter()
            .flat_map(|(bytes, ranges)| ranges.iter().map(|r| bytes.slice(r.clone())))
            .collect();
        let last = slices.len().saturating_sub(1);
        let messages = slices
            .into_iter()
            .enumerate()
            .map(|(i, slice)| {
                let opcode = if i == 0 {
                    OpCode::Data(Data::Text)
                } else {
                    OpCode::Data(Data::Continue)
                };
                Message::Frame(WsFrame::message(slice, opcode, i == last))
            })
            .collect();
        (messages, self.charge)
    }
}

/// Non-empty ranges of at most `max` bytes (at least one character) covering `text`, cut at
/// character boundaries.
fn char_chunks(text: &str, max: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = start.saturating_add(max.max(1)).min(text.len());
        while end > start && !text.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            // `max` is smaller than this character: take the character whole.
            end = start + 1;
            while end < text.len() && !text.is_char_boundary(end) {
                end += 1;
            }
        }
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// A frame for the writer.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A text frame.
    Text(Text),
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
    frames: VecDeque<Text>,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Bytes queued in `frames` plus bytes handed to the writer and not yet flushed.
    bytes: usize,
    /// The most `bytes` ever reached.
    peak: usize,
    held: Vec<Held>,
    /// Bytes of the pushes in `held`.
    held_bytes: usize,
    pending: Vec<String>,
    closed: bool,
    /// Closed by the budget: what the writer has in hand is dropped too.
    aborted: bool,
    dropped_events: u64,
    /// The code of the close frame queued, if any.
    close_code: Option<u16>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    state: Mutex<State>,
    writer: Notify,
    space: Notify,
    /// Woken when the queue closes (see [`OutboundQueue::closed`]).
    closing: Notify,
    /// Woken when the queue is aborted (see [`OutboundQueue::aborted`]).
    aborting: Notify,
    max_bytes: usize,
    high_water: usize,
    budget: Arc<OutboundBudget>,
    id: u64,
}

impl Drop for OutboundQueue {
    fn drop(&mut self) {
        self.budget.queues.lock().remove(&self.id);
    }
}

impl OutboundQueue {
    pub(crate) fn new(
        max_bytes: usize,
        high_water_mark: f64,
        budget: &Arc<OutboundBudget>,
    ) -> Arc<Self> {
        let max_bytes = max_bytes.max(1);
        let high_water = ((max_bytes as f64) * high_water_mark).ceil() as usize;
        let id = budget.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(OutboundQueue {
            state: Mutex::new(State::default()),
            writer: Notify::new(),
            space: Notify::new(),
            closing: Notify::new(),
            aborting: Notify::new(),
            max_bytes,
            high_water: high_water.clamp(1, max_bytes),
            budget: Arc::clone(budget),
            id,
        });
        budget.queues.lock().insert(id, Arc::downgrade(&queue));
        queue
    }

    /// A text of the connection's own (a response or notice), charged to the budget.
    fn own_text(&self, text: String) -> Text {
        Text {
            charge: self.budget.charge(text.len()),
            own: text,
            shared: None,
            tail: "",
        }
    }

    /// Queues a response (or any frame that must not be held back), then waits while the
    /// queue is full. Returns `false` once the connection is closed.
    pub(crate) async fn send(&self, text: String) -> bool {
        {
            let mut state = self.state.lock();
            if state.closed {
                return false;
            }
            let text = self.own_text(text);
            state.bytes += text.len();
            state.peak = state.peak.max(state.bytes);
            state.frames.push_back(Frame::Text(text));
        }
        self.writer.notify_one();
        self.budget.enforce();
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
            let text = self.own_text(text);
            state.bytes += text.len();
            state.peak = state.peak.max(state.bytes);
            state.frames.push_back(Frame::Text(text));
        }
        self.writer.notify_one();
        self.budget.enforce();
    }

    /// Queues a push for `subscription` (`head`, the shared `data`, then `tail`), holding it
    /// back while the queue is over the high-water mark or the subscription's result has not
    /// been queued yet.
    pub(crate) fn push(
        &self,
        subscription: &str,
        kind: PushKind,
        head: String,
        data: Arc<SharedText>,
        tail: &'static str,
    ) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        self.budget.pushes.fetch_add(1, Ordering::Relaxed);
        let text = Text {
            charge: self.budget.charge(head.len() + tail.len()),
            own: head,
            shared: Some(data),
            tail,
        };
        let hold = state.bytes >= self.high_water
            || state.pending.iter().any(|p| p == subscription)
            || state.held.iter().any(|h| h.subscription == subscription);
        if !hold {
            state.bytes += text.len();
            state.peak = state.peak.max(state.bytes);
            state.frames.push_back(Frame::Text(text));
            drop(state);
            self.writer.notify_one();
            self.budget.enforce();
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
        let State {
            held,
            held_bytes,
            dropped_events,
            ..
        } = &mut *state;
        if let Some(held) = held.get_mut(index) {
            match held.kind {
                PushKind::Latest => {
                    for old in held.frames.drain(..) {
                        *held_bytes = held_bytes.saturating_sub(old.len());
                        self.budget.replaced_results.fetch_add(1, Ordering::Relaxed);
                    }
                }
                PushKind::Event => {
                    // The most recent events, bounded in number and, with everything else
                    // this connection holds, in bytes; the newest is always kept.
                    while !held.frames.is_empty()
                        && (held.frames.len() >= MAX_HELD_EVENTS
                            || held_bytes.saturating_add(text.len()) > self.max_bytes)
                    {
                        if let Some(old) = held.frames.pop_front() {
                            *held_bytes = held_bytes.saturating_sub(old.len());
                            *dropped_events += 1;
                            self.budget.dropped_events.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            *held_bytes += text.len();
            held.frames.push_back(text);
        }
        drop(state);
        self.budget.enforce();
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
        let State {
            held, held_bytes, ..
        } = &mut *state;
        held.retain(|h| {
            if h.subscription != subscription {
                return true;
            }
            let bytes: usize = h.frames.iter().map(Text::len).sum();
            *held_bytes = held_bytes.saturating_sub(bytes);
            false
        });
    }

    /// The code of the close frame the server queued, if it queued one.
    pub(crate) fn close_code(&self) -> Option<u16> {
        self.state.lock().close_code
    }

    /// Queues a close frame; nothing is accepted after it.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        {
            let mut state = self.state.lock();
            if state.closed {
                return;
            }
            state.frames.push_back(Frame::Close(code, reason));
            state.close_code = Some(code);
            state.closed = true;
            state.held.clear();
            state.held_bytes = 0;
        }
        self.writer.notify_one();
        self.space.notify_waiters();
        self.closing.notify_waiters();
    }

    /// Closes the queue dropping everything it holds, queued or held, and what the writer
    /// is writing: only a close frame is left (unless the queue was shut without one).
    pub(crate) fn abort(&self, code: u16, reason: &'static str) {
        let dropped = {
            let mut state = self.state.lock();
            if state.aborted {
                return;
            }
            let send_close = !state.closed
                || state
                    .frames
                    .iter()
                    .any(|frame| matches!(frame, Frame::Close(..)));
            let frames = std::mem::take(&mut state.frames);
            let held = std::mem::take(&mut state.held);
            if send_close {
                state.frames.push_back(Frame::Close(code, reason));
                state.close_code = Some(code);
            }
            state.closed = true;
            state.aborted = true;
            state.bytes = 0;
            state.held_bytes = 0;
            (frames, held)
        };
        // Freed (and uncharged) outside the lock.
        drop(dropped);
        self.writer.notify_one();
        self.space.notify_waiters();
        self.closing.notify_waiters();
        self.aborting.notify_waiters();
    }

    /// Ends the queue without a close frame (the socket is gone).
    pub(crate) fn shut(&self) {
        {
            let mut state = self.state.lock();
            state.closed = true;
            state.held.clear();
            state.held_bytes = 0;
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

    /// Whether the queue was aborted (see [`OutboundQueue::abort`]).
    #[cfg(test)]
    pub(crate) fn is_aborted(&self) -> bool {
        self.state.lock().aborted
    }

    /// Resolves once the queue is aborted: the writer then gives up what it is writing.
    pub(crate) async fn aborted(&self) {
        loop {
            let aborting = self.aborting.notified();
            if self.state.lock().aborted {
                return;
            }
            aborting.await;
        }
    }

    /// For the writer: everything queued, waiting until there is something, its bytes, and
    /// whether it was taken before any abort (then an abort interrupts its writing). An
    /// empty batch means the queue is closed and drained.
    ///
    /// The queue's storage goes with the batch: an idle connection's queue holds none.
    pub(crate) async fn next_batch(&self) -> (VecDeque<Frame>, usize, bool) {
        loop {
            let notified = self.writer.notified();
            {
                let mut state = self.state.lock();
                if !state.frames.is_empty() {
                    let frames = std::mem::take(&mut state.frames);
                    let bytes = frames
                        .iter()
                        .map(|f| match f {
                            Frame::Text(t) => t.len(),
                            Frame::Close(..) => 0,
                        })
                        .sum();
                    return (frames, bytes, !state.aborted);
                }
                if state.closed {
                    return (VecDeque::new(), 0, false);
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
                state.held_bytes = state.held_bytes.saturating_sub(text.len());
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
        self.state.lock().held_bytes
    }

    /// Bytes queued, in flight or held.
    fn holding(&self) -> usize {
        let state = self.state.lock();
        state.bytes + state.held_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(frames: &VecDeque<Frame>) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Text(t) => t.joined(),
                Frame::Close(..) => "<close>".to_owned(),
            })
            .collect()
    }

    fn budget() -> Arc<OutboundBudget> {
        OutboundBudget::new(usize::MAX)
    }

    fn push(q: &OutboundQueue, sub: &str, kind: PushKind, data: &str) {
        let shared = q.budget.share(Arc::from(data));
        q.push(sub, kind, String::new(), shared, "");
    }

    #[tokio::test]
    async fn under_the_mark_everything_flows_in_order() {
        let q = OutboundQueue::new(1000, 0.8, &budget());
        assert!(q.send("r1".into()).await);
        push(&q, "s", PushKind::Latest, "p1");
        assert!(q.send("r2".into()).await);
        let (batch, bytes, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["r1", "p1", "r2"]);
        assert_eq!(bytes, 6);
        q.written(bytes);
        assert_eq!(q.buffered_bytes(), 0);
    }

    #[tokio::test]
    async fn over_the_mark_pushes_coalesce_and_responses_still_go_out() {
        let q = OutboundQueue::new(10, 0.5, &budget());
        assert!(q.send("123456".into()).await); // 6 bytes >= mark 5
        for i in 0..1000 {
            push(&q, "a", PushKind::Latest, &format!("a{i}"));
            push(&q, "b", PushKind::Latest, &format!("b{i}"));
        }
        assert!(
            q.held_bytes() <= 8,
            "only the newest value per subscription is kept"
        );
        assert!(q.send("r".into()).await);
        let (batch, bytes, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["123456", "r"]);
        q.written(bytes);
        // Drained: the held values follow, newest only, in first-held order.
        let (batch, _, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["a999", "b999"]);
        assert_eq!(q.held_bytes(), 0);
    }

    #[tokio::test]
    async fn held_events_are_bounded_in_number() {
        let q = OutboundQueue::new(4000, 0.001, &budget());
        assert!(q.send("xxxx".into()).await); // at the mark of 4 bytes
        for i in 0..500 {
            push(&q, "e", PushKind::Event, &format!("{i}"));
        }
        let (batch, bytes, _) = q.next_batch().await;
        q.written(bytes);
        assert_eq!(batch.len(), 1);
        let (batch, _, _) = q.next_batch().await;
        assert_eq!(batch.len(), MAX_HELD_EVENTS);
        assert_eq!(texts(&batch).last().map(String::as_str), Some("499"));
    }

    #[tokio::test]
    async fn held_events_are_bounded_in_bytes_by_the_connections_buffer() {
        let q = OutboundQueue::new(1000, 0.001, &budget());
        assert!(q.send("x".into()).await);
        let big = "e".repeat(300);
        for _ in 0..MAX_HELD_EVENTS {
            push(&q, "e", PushKind::Event, &big);
        }
        assert_eq!(q.held_bytes(), 900, "three events of 300 bytes fit in 1000");
        // The newest is always kept, however large.
        push(&q, "e", PushKind::Event, &"n".repeat(5000));
        assert_eq!(q.held_bytes(), 5000);
    }

    #[tokio::test]
    async fn pending_subscriptions_hold_pushes_until_activated() {
        let q = OutboundQueue::new(1000, 0.8, &budget());
        q.mark_pending("s");
        push(&q, "s", PushKind::Latest, "early");
        assert!(q.send("subscribe-result".into()).await);
        q.activate("s");
        let (batch, _, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["subscribe-result", "early"]);
    }

    #[tokio::test]
    async fn a_full_queue_blocks_the_reader_until_written() {
        let q = OutboundQueue::new(10, 0.8, &budget());
        let q2 = Arc::clone(&q);
        let sender = tokio::spawn(async move { q2.send("0123456789AB".into()).await });
        let (batch, bytes, _) = q.next_batch().await;
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
        let q = OutboundQueue::new(100, 0.8, &budget());
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
        let q = OutboundQueue::new(100, 0.8, &budget());
        assert!(q.send("bye".into()).await);
        q.close(1000, "server_shutdown");
        assert!(!q.send("late".into()).await);
        let (batch, _, _) = q.next_batch().await;
        assert_eq!(texts(&batch), ["bye", "<close>"]);
        let (batch, _, _) = q.next_batch().await;
        assert!(batch.is_empty());
    }

    #[test]
    fn shared_data_is_charged_once_and_uncharged_when_the_last_holder_drops() {
        let budget = budget();
        let (a, b) = (
            OutboundQueue::new(100, 0.01, &budget),
            OutboundQueue::new(100, 0.01, &budget),
        );
        a.notice("x".into());
        b.notice("x".into());
        let data: Arc<str> = Arc::from("d".repeat(1000));
        for q in [&a, &b] {
            let shared = budget.share(Arc::clone(&data));
            q.push("s", PushKind::Latest, "head".into(), shared, "}");
        }
        assert_eq!(
            budget.total(),
            2 + 1000 + 2 * 5,
            "the data once, envelopes each"
        );
        assert_eq!(
            a.held_bytes(),
            1005,
            "each connection counts the whole push"
        );
        drop(a);
        assert_eq!(budget.total(), 1 + 1000 + 5);
        drop(b);
        assert_eq!(budget.total(), 0);
    }

    #[tokio::test]
    async fn over_the_budget_the_connection_holding_the_most_is_closed() {
        let budget = OutboundBudget::new(1000);
        let small = OutboundQueue::new(10_000, 0.8, &budget);
        let big = OutboundQueue::new(10_000, 0.8, &budget);
        assert!(small.send("s".repeat(300)).await);
        assert!(big.send("b".repeat(600)).await);
        assert!(!big.is_aborted() && !small.is_aborted());
        // Over 1000 in total: `big` holds the most and is closed, freeing what it held.
        assert!(small.send("t".repeat(200)).await);
        assert!(big.is_aborted());
        assert!(!small.is_aborted());
        assert_eq!(budget.total(), 500);
        let (batch, _, _) = big.next_batch().await;
        assert_eq!(texts(&batch), ["<close>"]);
        assert!(!big.send("late".into()).await);
    }

    #[test]
    fn large_texts_go_out_in_fragments_cut_at_character_boundaries() {
        let budget = budget();
        let q = OutboundQueue::new(usize::MAX, 0.8, &budget);
        let data = "é".repeat(FRAGMENT_BYTES); // 2 bytes each
        let shared = budget.share(Arc::from(data.as_str()));
        q.push("s", PushKind::Latest, "[".into(), shared, "]");
        let Some(Frame::Text(text)) = q.state.lock().frames.pop_front() else {
            panic!("a text frame");
        };
        let (messages, _charge) = text.into_messages();
        let mut whole = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let Message::Frame(frame) = message else {
                panic!("fragments");
            };
            assert!(frame.payload().len() <= FRAGMENT_BYTES);
            assert!(std::str::from_utf8(frame.payload()).is_ok());
            assert_eq!(frame.header().is_final, i == messages.len() - 1);
            let text_opcode = frame.header().opcode == OpCode::Data(Data::Text);
            assert_eq!(text_opcode, i == 0);
            whole.extend_from_slice(frame.payload());
        }
        assert_eq!(whole, format!("[{data}]").into_bytes());
        assert_eq!(char_chunks("aé", 1), [0..1, 1..3]);
    }
}
