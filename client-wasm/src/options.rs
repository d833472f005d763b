//! The options object of `NoexClient.connect(url, options)`, turned into the core's
//! [`CoreConfig`].
//!
//! Every field is optional; names are camelCase as JavaScript users expect:
//!
//! ```text
//! {
//!   WebSocket?: constructor,          // e.g. `require('ws')` in Node 20
//!   requestTimeoutMs?: number,        // default 10000
//!   connectTimeoutMs?: number,        // welcome timeout, default 5000
//!   heartbeat?: boolean,              // answer server pings, default true
//!   authToken?: string,               // log in after connect and after every reconnect
//!   reconnect?: boolean | { initialDelayMs?, maxDelayMs?, multiplier?, maxRetries?, jitterMs? }
//! }
//! ```

use js_sys::{Function, Reflect};
use noex_client::core::{CoreConfig, ReconnectPolicy};
use serde_json::{Map, Value};
use wasm_bindgen::{JsCast, JsValue};

/// The options as they arrive from JavaScript (functions excluded).
#[derive(Debug, Default)]
struct RawOptions {
    request_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    heartbeat: Option<bool>,
    auth_token: Option<String>,
    reconnect: Option<RawReconnect>,
}

#[derive(Debug)]
enum RawReconnect {
    Enabled(bool),
    Policy(RawPolicy),
}

#[derive(Debug, Default)]
struct RawPolicy {
    enabled: Option<bool>,
    initial_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    multiplier: Option<f64>,
    max_retries: Option<u32>,
    jitter_ms: Option<u64>,
}

/// The parsed options: the core's configuration plus what only the transport needs.
#[derive(Debug)]
pub struct ClientOptions {
    /// Configuration of the client core.
    pub core: CoreConfig,
    /// The `WebSocket` constructor to use instead of the global one.
    pub websocket: Option<Function>,
}

impl ClientOptions {
    /// Reads the options object; `undefined` / `null` give the defaults. A field of the
    /// wrong type is an error naming it.
    pub fn from_js(options: &JsValue) -> Result<ClientOptions, String> {
        if options.is_undefined() || options.is_null() {
            return Ok(ClientOptions {
                core: CoreConfig::default(),
                websocket: None,
            });
        }
        let websocket = match Reflect::get(options, &"WebSocket".into()) {
            Ok(v) if v.is_undefined() || v.is_null() => None,
            Ok(v) => Some(
                v.dyn_into::<Function>()
                    .map_err(|_| "options.WebSocket must be a constructor".to_owned())?,
            ),
            Err(_) => None,
        };
        // As JSON (which drops the constructor and any other function); what JSON cannot
        // hold counts as no options.
        let json = match crate::json::js_to_json(options) {
            Value::Null => Value::Object(Map::new()),
            json => json,
        };
        let raw = RawOptions::parse(&json).map_err(|field| {
            let mut message = String::from("invalid options: `");
            message.push_str(field);
            message.push_str("` has the wrong type");
            message
        })?;
        Ok(ClientOptions {
            core: raw.into_core(),
            websocket,
        })
    }
}

/// The value of an optional field: absent and `null` are `None`; `Err` names the field
/// when `read` rejects its value.
fn field<'a, T>(
    map: &Map<String, Value>,
    name: &'a str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, &'a str> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => read(v).map(Some).ok_or(name),
    }
}

impl RawOptions {
    /// Reads the options from their JSON; `Err` names the first field of the wrong type.
    fn parse(json: &Value) -> Result<RawOptions, &'static str> {
        let Value::Object(m) = json else {
            return Err("options");
        };
        let reconnect = match m.get("reconnect") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(RawReconnect::Enabled(*b)),
            Some(Value::Object(p)) => Some(RawReconnect::Policy(RawPolicy {
                enabled: field(p, "enabled", Value::as_bool).map_err(|_| "reconnect")?,
                initial_delay_ms: field(p, "initialDelayMs", Value::as_u64)
                    .map_err(|_| "reconnect")?,
                max_delay_ms: field(p, "maxDelayMs", Value::as_u64).map_err(|_| "reconnect")?,
                multiplier: field(p, "multiplier", Value::as_f64).map_err(|_| "reconnect")?,
                max_retries: field(p, "maxRetries", |v| {
                    v.as_u64().and_then(|n| u32::try_from(n).ok())
                })
                .map_err(|_| "reconnect")?,
                jitter_ms: field(p, "jitterMs", Value::as_u64).map_err(|_| "reconnect")?,
            })),
            Some(_) => return Err("reconnect"),
        };
        Ok(RawOptions {
            request_timeout_ms: field(m, "requestTimeoutMs", Value::as_u64)?,
            connect_timeout_ms: field(m, "connectTimeoutMs", Value::as_u64)?,
            heartbeat: field(m, "heartbeat", Value::as_bool)?,
            auth_token: field(m, "authToken", |v| v.as_str().map(str::to_owned))?,
            reconnect,
        })
    }

    fn into_core(self) -> CoreConfig {
        let defaults = CoreConfig::default();
        let reconnect = match self.reconnect {
            None => defaults.reconnect.clone(),
            Some(RawReconnect::Enabled(enabled)) => ReconnectPolicy {
                enabled,
                ..ReconnectPolicy::default()
            },
            Some(RawReconnect::Policy(p)) => {
                let d = ReconnectPolicy::default();
                ReconnectPolicy {
                    enabled: p.enabled.unwrap_or(true),
                    initial_delay_ms: p.initial_delay_ms.unwrap_or(d.initial_delay_ms),
                    max_delay_ms: p.max_delay_ms.unwrap_or(d.max_delay_ms),
                    multiplier: p.multiplier.unwrap_or(d.multiplier),
                    max_retries: p.max_retries.or(d.max_retries),
                    jitter_ms: p.jitter_ms.unwrap_or(d.jitter_ms),
                }
            }
        };
        CoreConfig {
            request_timeout_ms: self
                .request_timeout_ms
                .unwrap_or(defaults.request_timeout_ms),
            welcome_timeout_ms: self
                .connect_timeout_ms
                .unwrap_or(defaults.welcome_timeout_ms),
            heartbeat_replies: self.heartbeat.unwrap_or(defaults.heartbeat_replies),
            auth_token: self.auth_token,
            reconnect,
            // Different clients in one page should not retry in lockstep.
            jitter_seed: (js_sys::Math::random() * u32::MAX as f64) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let json = serde_json::json!({"requestTimeoutMs":50,"authToken":"t","reconnect":{"initialDelayMs":10,"jitterMs":0,"maxRetries":3}});
        let raw = RawOptions::parse(&json).unwrap_or_default();
        assert_eq!(raw.request_timeout_ms, Some(50));
        let Some(RawReconnect::Policy(p)) = raw.reconnect else {
            panic!("policy expected");
        };
        assert_eq!(
            (p.initial_delay_ms, p.jitter_ms, p.max_retries),
            (Some(10), Some(0), Some(3))
        );
        let off = RawOptions::parse(&serde_json::json!({"reconnect":false})).unwrap_or_default();
        assert!(matches!(off.reconnect, Some(RawReconnect::Enabled(false))));
        let wrong = RawOptions::parse(&serde_json::json!({"requestTimeoutMs":"soon"}));
        assert_eq!(wrong.err(), Some("requestTimeoutMs"));
        let wrong = RawOptions::parse(&serde_json::json!({"reconnect":{"maxRetries":-1}}));
        assert_eq!(wrong.err(), Some("reconnect"));
    }
}
