//! From an accepted TCP connection to an open WebSocket: the caps on connections still in
//! their handshake (`limits.maxPendingHandshakes` over all clients and
//! `limits.maxPendingHandshakesPerIp`), the handshake deadline (`limits.handshakeTimeoutMs`,
//! covering the whole HTTP upgrade, so slowly dribbled headers too), and the path and
//! origin checks of the upgrade request. A plain HTTP request (`/health`, `/metrics`...)
//! takes the same path up to its head, so it holds a place under the same caps and
//! deadline until it is answered.
//!
//! When a cap is full, the *oldest* pending handshake under it (from that address for the
//! per-address cap, from anyone for the global one) is dropped to make room for the new
//! one: a client completes its upgrade within a round trip, so the oldest are the silent
//! ones, and an attacker holding a cap — with many addresses, or with silent sockets from
//! the address a real client shares (a NAT) — cannot refuse everyone else until its
//! handshakes time out.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{LimitsConfig, ServerConfig};
use crate::http::{HeadError, Listener, RequestHead};
use crate::socket::{TrackedStream, WriteProgress, WsStream};

/// The key a client's address is counted under: an IPv4 address (also when it arrives
/// IPv4-mapped over IPv6), or the /64 network of an IPv6 address, since one IPv6 client
/// typically holds a whole /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Counts connections in their handshake, over all clients and per client address.
#[derive(Debug)]
pub(crate) struct HandshakeGate {
    max_total: usize,
    max_per_ip: u32,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// Pending handshakes in admission order (oldest first): client key and the signal
    /// that drops the handshake when it is evicted.
    pending: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
    next_id: u64,
    /// Pending handshakes per client key; an entry exists only while it is above 0, so
    /// there are never more entries than `max_total`.
    per_ip: HashMap<IpAddr, u32>,
}

impl GateState {
    /// Forgets pending handshake `id`; its signal when it was there.
    fn remove(&mut self, id: u64) -> Option<Arc<Notify>> {
        let (key, evict) = self.pending.remove(&id)?;
        if let Some(count) = self.per_ip.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&key);
            }
        }
        Some(evict)
    }
}

/// One admitted pending handshake; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct HandshakeSlot {
    gate: Arc<HandshakeGate>,
    id: u64,
    evict: Arc<Notify>,
}

impl HandshakeSlot {
    /// Resolves when the gate evicted this handshake to make room for a newer one.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl HandshakeGate {
    /// A gate with the caps of `limits`.
    pub(crate) fn new(limits: &LimitsConfig) -> Arc<Self> {
        Arc::new(HandshakeGate {
            max_total: limits.max_pending_handshakes as usize,
            max_per_ip: limits.max_pending_handshakes_per_ip,
            state: Mutex::new(GateState::default()),
        })
    }

    /// A place for a handshake from `ip`. At the per-address cap the oldest pending
    /// handshake from that address, at the global cap the oldest of all, is evicted (its
    /// task drops it) to make room. A trusted proxy (`proxy`: it speaks for many clients,
    /// whose addresses are known only from its request heads) is under the global cap
    /// alone. `None` only with a per-address cap of zero.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, proxy: bool) -> Option<HandshakeSlot> {
        let key = client_key(ip);
        let mut state = self.state.lock();
        if self.max_per_ip == 0 {
            return None;
        }
        while !proxy && state.per_ip.get(&key).copied().unwrap_or(0) >= self.max_per_ip {
            let Some(oldest) = state
                .pending
                .iter()
                .find(|(_, (k, _))| *k == key)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(evict) = state.remove(oldest) {
                evict.notify_one();
            }
        }
        while state.pending.len() >= self.max_total.max(1) {
            let Some(oldest) = state.pending.keys().next().copied() else {
                break;
            };
            if let Some(evict) = state.remove(oldest) {
                evict.notify_one();
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let evict = Arc::new(Notify::new());
        if !proxy {
            *state.per_ip.entry(key).or_insert(0) += 1;
        }
        state.pending.insert(id, (key, Arc::clone(&evict)));
        Some(HandshakeSlot {
            gate: Arc::clone(self),
            id,
            evict,
        })
    }
}

impl HandshakeGate {
    /// Connections in their handshake now.
    pub(crate) fn pending(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// Evicts the oldest pending handshake (its task drops the connection); whether there
    /// was one. The accept loop calls it when the process is out of file descriptors, so
    /// connections that never finish their handshake cannot keep new clients out until
    /// they time out.
    pub(crate) fn evict_oldest(&self) -> bool {
        let mut state = self.state.lock();
        let Some(oldest) = state.pending.keys().next().copied() else {
            return false;
        };
        if let Some(evict) = state.remove(oldest) {
            evict.notify_one();
        }
        true
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        // Nothing to do when it was evicted: the gate forgot it then.
        self.gate.state.lock().remove(self.id);
    }
}

/// Answering a plain HTTP request (see `endpoints`), borrowing the socket.
pub(crate) type HttpAnswer<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Reads the request head of `stream` and performs the WebSocket handshake, or has `respond`
/// answer a plain HTTP request, within `limits.handshakeTimeoutMs`, holding `slot`
/// until it ends. `None` when it was not an upgrade, or the upgrade failed, was refused
/// (wrong path: 404, origin not allowed: 403), timed out or was evicted by a newer one; the
/// connection is then dropped (a timed-out or evicted one is reset, without an answer).
/// Both the upgraded connection and `respond` get the client's address: `peer`'s, or
/// the one a trusted proxy names (`proxies`).
pub(crate) async fn accept<R>(
    stream: TcpStream,
    peer: SocketAddr,
    (config, proxies): (&ServerConfig, &crate::proxy::TrustedProxies),
    listener: Listener,
    ws_config: WebSocketConfig,
    slot: HandshakeSlot,
    respond: R,
) -> Option<(WsStream, Arc<WriteProgress>, IpAddr)>
where
    R: for<'a> FnOnce(
        &'a mut TrackedStream,
        Result<RequestHead, HeadError>,
        IpAddr,
    ) -> HttpAnswer<'a>,
{
    let path = config.path.clone();
    let allowed_origins = config.allowed_origins.clone();
    // The error type is fixed by tungstenite's handshake callback trait.
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() != path {
            return Err(refusal(StatusCode::NOT_FOUND));
        }
        if let (Some(allowed), Some(origin)) = (&allowed_origins, request.headers().get("origin")) {
            let origin = origin.to_str().unwrap_or("");
            if !allowed.iter().any(|a| a == origin) {
                return Err(refusal(StatusCode::FORBIDDEN));
            }
        }
        Ok(response)
    };
    let timeout = Duration::from_millis(config.limits.handshake_timeout_ms);
    let (mut stream, progress) = TrackedStream::new(stream, Vec::new());
    let work = async move {
        let head = crate::http::read_head(&mut stream).await;
        match head {
            Ok((head, bytes)) if head.upgrade && listener == Listener::Main => {
                let client = proxies.client(peer.ip(), head.forwarded_for.as_deref());
                // tungstenite reads the head again, and whatever followed it.
                stream.replay(bytes);
                tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config))
                    .await
                    .map(|ws| (ws, client))
                    .map_err(|err| err.to_string())
            }
            Ok((head, _)) => {
                let client = proxies.client(peer.ip(), head.forwarded_for.as_deref());
                respond(&mut stream, Ok(head), client).await;
                Err("plain HTTP request answered".to_owned())
            }
            Err(err) => {
                let why = format!("no HTTP request head: {err:?}");
                respond(&mut stream, Err(err), peer.ip()).await;
                Err(why)
            }
        }
    };
    let result = tokio::select! {
        result = tokio::time::timeout(timeout, work) => Some(result),
        () = slot.evicted() => None,
    };
    drop(slot);
    match result {
        Some(Ok(Ok((ws, client)))) => Some((ws, progress, client)),
        Some(Ok(Err(err))) => {
            tracing::debug!(%peer, %err, "no WebSocket handshake");
            None
        }
        None => {
            tracing::debug!(%peer, "oldest pending handshake evicted at the global cap");
            progress.reset_on_drop();
            None
        }
        Some(Err(_)) => {
            tracing::debug!(%peer, "handshake timed out");
            // The socket is still inside the pending handshake, dropped on return: reset
            // it rather than leave its buffers to a graceful close.
            progress.reset_on_drop();
            None
        }
    }
}

fn refusal(status: StatusCode) -> ErrorResponse {
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(total: u32, per_ip: u32) -> Arc<HandshakeGate> {
        HandshakeGate::new(&LimitsConfig {
            max_pending_handshakes: total,
            max_pending_handshakes_per_ip: per_ip,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn caps_per_ip_and_in_total_and_frees_on_drop() {
        let gate = gate(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = gate.admit(a, false).unwrap();
        let _a2 = gate.admit(a, false).unwrap();
        // At the per-IP cap the newcomer from `a` takes the place of `a`'s oldest.
        let _a3 = gate.admit(a, false).unwrap();
        assert_eq!(
            gate.state.lock().per_ip.get(&a).copied(),
            Some(2),
            "per-IP cap"
        );
        assert!(
            !gate.state.lock().pending.contains_key(&a1.id),
            "a1 evicted"
        );
        drop(a1);
        let b1 = gate.admit(b, false).unwrap();
        let _c1 = gate.admit(c, false).unwrap();
        drop(b1);
        assert!(gate.state.lock().pending.len() <= 3);
        assert!(gate.state.lock().per_ip.len() <= 3);
    }

    #[tokio::test]
    async fn at_the_global_cap_the_oldest_pending_handshake_is_evicted() {
        let gate = gate(2, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = gate.admit(a, false).unwrap();
        let b1 = gate.admit(b, false).unwrap();
        let c1 = gate.admit(c, false).expect("the newcomer gets a place");
        a1.evicted().await; // resolves: the oldest made room
        assert_eq!(gate.state.lock().pending.len(), 2);
        assert!(!gate.state.lock().per_ip.contains_key(&a));
        drop(a1); // an evicted slot frees nothing twice
        assert_eq!(gate.state.lock().pending.len(), 2);
        drop((b1, c1));
        let state = gate.state.lock();
        assert_eq!((state.pending.len(), state.per_ip.len()), (0, 0));
    }

    #[test]
    fn empty_entries_are_removed() {
        let gate = gate(10, 10);
        let slot = gate.admit("10.0.0.9".parse().unwrap(), false).unwrap();
        drop(slot);
        let state = gate.state.lock();
        assert_eq!((state.pending.len(), state.per_ip.len()), (0, 0));
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_key(one), client_key(other));
        assert_ne!(
            client_key(one),
            client_key("2001:db8:1:3::1".parse().unwrap())
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
