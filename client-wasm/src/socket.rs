//! One JavaScript `WebSocket` and its four event handlers.
//!
//! The socket is created with the global `WebSocket` (browsers, Node 22+) or with a
//! constructor from the options (the `ws` package in Node 20); both expose the same
//! `onopen` / `onmessage` / `onclose` / `onerror` / `send` / `close` surface, which is all
//! this module touches, so the object is used through web-sys's `WebSocket` binding
//! without an `instanceof` check.

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, WebSocket};

/// What a socket reports to the client driver.
#[derive(Debug)]
pub enum SocketEvent {
    /// The connection is open.
    Open,
    /// A text frame arrived.
    Text(String),
    /// The connection closed (or failed to open).
    Closed,
}

/// An open (or opening) socket; dropping it detaches its handlers, so a socket that is
/// replaced or abandoned can no longer reach the client.
pub struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(JsValue)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(JsValue)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").finish_non_exhaustive()
    }
}

impl Socket {
    /// Opens a socket to `url` with `constructor` (or the global `WebSocket`) and routes
    /// its events to `on_event`. Fails when there is no constructor or it throws (e.g. an
    /// invalid URL).
    pub fn open(
        url: &str,
        constructor: Option<&Function>,
        on_event: impl Fn(SocketEvent) + Clone + 'static,
    ) -> Result<Socket, String> {
        let constructor = match constructor {
            Some(c) => c.clone(),
            None => Reflect::get(&js_sys::global(), &"WebSocket".into())
                .ok()
                .and_then(|c| c.dyn_into::<Function>().ok())
                .ok_or_else(|| {
                    "no global WebSocket: pass one in the options (e.g. the `ws` package)"
                        .to_owned()
                })?,
        };
        let ws: WebSocket = Reflect::construct(&constructor, &Array::of1(&url.into()))
            .map_err(|e| describe(&e))?
            .unchecked_into();

        let on = on_event.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| on(SocketEvent::Open));
        let on = on_event.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            // Text frames only; the protocol never sends binary.
            if let Some(text) = event.data().as_string() {
                on(SocketEvent::Text(text));
            }
        });
        let on = on_event;
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| on(SocketEvent::Closed));
        // A failure is always followed by a close event, which is what the core needs.
        let on_error = Closure::<dyn FnMut(JsValue)>::new(|_| {});

        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
        })
    }

    /// Sends a text frame; a socket that is already closing drops it (its close event
    /// follows and fails the pending requests).
    pub fn send(&self, text: &str) {
        let _ = self.ws.send_with_str(text);
    }

    /// Closes the connection with code 1000. No event is reported for it afterwards.
    pub fn close(self) {
        let _ = self.ws.close_with_code(1000);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // Keep a no-op error handler: `ws` in Node throws on an unhandled 'error' event,
        // which a socket closed while still connecting emits.
        IGNORE_ERROR.with(|ignore| self.ws.set_onerror(Some(ignore.unchecked_ref())));
    }
}

thread_local! {
    /// One shared no-op `onerror` handler for sockets that are no longer ours.
    static IGNORE_ERROR: JsValue = Closure::<dyn FnMut(JsValue)>::new(|_| {}).into_js_value();
}

#[wasm_bindgen]
extern "C" {
    /// JavaScript's `String(value)` (throws for an object without `toString`).
    #[wasm_bindgen(js_name = String, catch)]
    fn js_string(value: &JsValue) -> Result<String, JsValue>;
}

/// A thrown JavaScript value as text: an `Error`'s message, a string, or `String(value)`.
pub fn describe(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .or_else(|| js_string(value).ok())
        .unwrap_or_else(|| "unknown error".to_owned())
}
