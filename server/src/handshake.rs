//! From an accepted TCP connection to an open WebSocket: the caps on connections still in
//! their handshake (`limits.maxPendingHandshakes` over all clients and
//! `limits.maxPendingHandshakesPerIp`), the handshake deadline (`limits.handshakeTimeoutMs`,
//! covering the whole HTTP upgrade, so slowly dribbled headers too), and the path and
//! origin checks of the upgrade request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{LimitsConfig, ServerConfig};
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
    total: usize,
    /// Pending handshakes per client key; an entry exists only while it is above 0, so
    /// there are never more entries than `max_total`.
    per_ip: HashMap<IpAddr, u32>,
}

/// One admitted pending handshake; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct HandshakeSlot {
    gate: Arc<HandshakeGate>,
    key: IpAddr,
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

    /// A place for a handshake from `ip`, or `None` when a cap is reached (the caller
    /// drops the connection at once).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<HandshakeSlot> {
        let key = client_key(ip);
        let mut state = self.state.lock();
        if state.total >= self.max_total {
            return None;
        }
        let from_ip = state.per_ip.get(&key).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return None;
        }
        state.per_ip.insert(key, from_ip + 1);
        state.total += 1;
        Some(HandshakeSlot {
            gate: Arc::clone(self),
            key,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(count) = state.per_ip.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.per_ip.remove(&self.key);
            }
        }
    }
}

/// Performs the WebSocket handshake on `stream` within `limits.handshakeTimeoutMs`, holding
/// `slot` until it ends. `None` when it failed, was refused (wrong path: 404, origin not
/// allowed: 403) or timed out; the connection is then dropped.
pub(crate) async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    config: &ServerConfig,
    ws_config: WebSocketConfig,
    slot: HandshakeSlot,
) -> Option<(WsStream, Arc<WriteProgress>)> {
    let (stream, progress) = TrackedStream::new(stream);
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
    let mut handshake = std::pin::pin!(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        check,
        Some(ws_config)
    ));
    let result = tokio::time::timeout(timeout, &mut handshake).await;
    drop(slot);
    match result {
        Ok(Ok(ws)) => Some((ws, progress)),
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "handshake refused");
            None
        }
        Err(_) => {
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
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "per-IP cap");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate.admit(c).is_none(), "global cap");
        drop(a1);
        assert!(gate.admit(c).is_some());
        assert!(gate.state.lock().per_ip.len() <= 3);
    }

    #[test]
    fn empty_entries_are_removed() {
        let gate = gate(10, 10);
        let slot = gate.admit("10.0.0.9".parse().unwrap()).unwrap();
        drop(slot);
        let state = gate.state.lock();
        assert_eq!((state.total, state.per_ip.len()), (0, 0));
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
