//! [`WasmClient`]: the client core driven by a JavaScript `WebSocket` and `setTimeout`.
//!
//! Every input (socket opened / frame / closed, timer tick, user call) goes into the
//! [`ClientCore`]; then [`pump`] drains the core's outputs. Outputs that touch only the
//! transport (send a frame, open or close a socket, re-arm the timer) are carried out at
//! once; outputs that run user code (resolving a promise, a subscription callback, a
//! lifecycle event) are collected and run after the client's state is released, so a
//! callback may call back into the client.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Promise};
use noex_client::ClientError;
use noex_client::core::{
    ClientCore, LifecycleEvent, Output, RequestHandle, SubscriptionKey, SubscriptionTarget,
};
use serde_json::{Map, Value};
use wasm_bindgen::prelude::*;

use crate::error;
use crate::json::{JsJson, js_to_json, to_js, welcome_to_js};
use crate::options::ClientOptions;
use crate::socket::{Socket, SocketEvent};
use crate::timer::{Timer, now_ms};

/// A connection to a noex server: the low-level object under the JavaScript
/// `NoexClient`. Construct it, await [`WasmClient::opened`], then make requests.
#[wasm_bindgen]
pub struct WasmClient {
    inner: Rc<RefCell<Inner>>,
}

/// A promise waiting for the core's answer.
struct Call {
    resolve: Function,
    reject: Function,
    /// For subscribe calls: the local subscription the answer belongs to.
    subscription: Option<SubscriptionKey>,
}

/// A live subscription's callback and whether it receives the initial data.
struct Subscriber {
    callback: Function,
    initial_data: bool,
}

struct Inner {
    core: ClientCore<JsJson>,
    url: String,
    constructor: Option<Function>,
    socket: Option<Socket>,
    /// Bumped for every socket, so events of a replaced socket are recognised.
    generation: u64,
    timer: Timer,
    tick: Option<Closure<dyn FnMut()>>,
    calls: HashMap<RequestHandle, Call>,
    subscribers: HashMap<SubscriptionKey, Subscriber>,
    on_event: Function,
    /// The `opened()` promise's functions until the first connection settles.
    ready: Option<(Function, Function)>,
    ready_promise: Promise,
    /// Why the last socket could not even be created (no constructor, invalid URL).
    connect_error: Option<String>,
}

/// Work that runs user code, done with the client's state released.
enum Action {
    Call(Function, JsValue),
    Event(Function, &'static str, JsValue),
}

#[wasm_bindgen]
impl WasmClient {
    /// Starts connecting to `url`. `on_event(name, payload)` receives lifecycle events:
    /// `connected`, `disconnected`, `reconnecting`, `reconnected`, `shutdown`, `error`.
    /// Throws a `NoexError` with code `INVALID_OPTIONS` for malformed options.
    #[wasm_bindgen(constructor)]
    pub fn new(url: String, options: JsValue, on_event: Function) -> Result<WasmClient, JsValue> {
        let options = ClientOptions::from_js(&options)
            .map_err(|m| error::make("INVALID_OPTIONS", &m, &JsValue::NULL))?;
        let mut ready = None;
        let ready_promise = Promise::new(&mut |resolve, reject| ready = Some((resolve, reject)));
        let inner = Rc::new(RefCell::new(Inner {
            core: ClientCore::with_codec(options.core),
            url,
            constructor: options.websocket,
            socket: None,
            generation: 0,
            timer: Timer::default(),
            tick: None,
            calls: HashMap::new(),
            subscribers: HashMap::new(),
            on_event,
            ready,
            ready_promise,
            connect_error: None,
        }));
        let weak = Rc::downgrade(&inner);
        let tick = Closure::<dyn FnMut()>::new(move || {
            if let Some(rc) = weak.upgrade() {
                {
                    let mut inner = rc.borrow_mut();
                    inner.timer.fired();
                    inner.core.handle_timeout(now_ms());
                }
                pump(&rc);
            }
        });
        {
            let mut state = inner.borrow_mut();
            state.tick = Some(tick);
            let now = now_ms();
            state.open_socket(&inner, now);
        }
        pump(&inner);
        Ok(WasmClient { inner })
    }

    /// Resolves with the server's welcome once the first connection is established;
    /// rejects with `CONNECTION_FAILED` when it closes (or times out) before that.
    pub fn opened(&self) -> Promise {
        self.inner.borrow().ready_promise.clone()
    }

    /// The last welcome received, or `null`.
    #[wasm_bindgen(getter)]
    pub fn welcome(&self) -> JsValue {
        self.inner
            .borrow()
            .core
            .welcome()
            .map(welcome_to_js)
            .unwrap_or(JsValue::NULL)
    }

    /// Whether requests can be sent now.
    #[wasm_bindgen(getter, js_name = isConnected)]
    pub fn is_connected(&self) -> bool {
        self.inner.borrow().core.is_open()
    }

    /// Number of live subscriptions.
    #[wasm_bindgen(getter, js_name = subscriptionCount)]
    pub fn subscription_count(&self) -> usize {
        self.inner.borrow().core.subscription_count()
    }

    /// Sends `{type, ...payload}`; resolves with the result's `data`, rejects with a
    /// `NoexError` (`code`, `message`, `details`).
    pub fn request(&self, op_type: String, payload: JsValue) -> Promise {
        let fields = match js_to_fields(&payload) {
            Ok(fields) => fields,
            Err(message) => {
                return Promise::reject(&error::make("INVALID_ARGUMENT", &message, &JsValue::NULL));
            }
        };
        // Sent as given: the server validates the fields and gives the authoritative answer.
        let promise = {
            let mut inner = self.inner.borrow_mut();
            let handle = inner.core.request_raw(&op_type, fields, now_ms());
            inner.promise_for(handle, None)
        };
        pump(&self.inner);
        promise
    }

    /// Subscribes to the store query `query` with `params` (or `undefined`).
    /// `callback(data)` gets the initial result, every pushed result, and the fresh
    /// result after a reconnect. Returns `[key, promise]`: the key for
    /// [`WasmClient::unsubscribe`], the promise resolving with the initial data.
    pub fn subscribe(&self, query: String, params: JsValue, callback: Function) -> Array {
        let params = if params.is_undefined() || params.is_null() {
            None
        } else {
            Some(js_to_json(&params))
        };
        self.add_subscription(SubscriptionTarget::Store { query, params }, callback, true)
    }

    /// Subscribes to rule-engine events whose topic matches `pattern`;
    /// `callback({topic, event})` runs for each. Returns `[key, promise]` as
    /// [`WasmClient::subscribe`] does; the promise resolves with `{subscriptionId}`.
    #[wasm_bindgen(js_name = subscribeRules)]
    pub fn subscribe_rules(&self, pattern: String, callback: Function) -> Array {
        self.add_subscription(SubscriptionTarget::Rules { pattern }, callback, false)
    }

    /// Ends the subscription with this key (from `subscribe`); unknown keys are ignored.
    pub fn unsubscribe(&self, key: f64) {
        {
            let mut inner = self.inner.borrow_mut();
            let key = SubscriptionKey(key as u64);
            inner.subscribers.remove(&key);
            inner.core.unsubscribe(key, now_ms());
        }
        pump(&self.inner);
    }

    /// Closes the connection for good: no reconnect; pending requests reject with
    /// `DISCONNECTED`.
    pub fn disconnect(&self) {
        self.inner.borrow_mut().core.disconnect();
        pump(&self.inner);
        let mut inner = self.inner.borrow_mut();
        inner.timer.cancel();
        inner.subscribers.clear();
    }
}

impl WasmClient {
    fn add_subscription(
        &self,
        target: SubscriptionTarget,
        callback: Function,
        initial_data: bool,
    ) -> Array {
        let (key, promise) = {
            let mut inner = self.inner.borrow_mut();
            let (handle, key) = inner.core.subscribe(target, now_ms());
            inner.subscribers.insert(
                key,
                Subscriber {
                    callback,
                    initial_data,
                },
            );
            (key, inner.promise_for(handle, Some(key)))
        };
        pump(&self.inner);
        Array::of2(&JsValue::from_f64(key.0 as f64), &promise)
    }
}

impl Inner {
    /// A promise settled when `handle` resolves.
    fn promise_for(
        &mut self,
        handle: RequestHandle,
        subscription: Option<SubscriptionKey>,
    ) -> Promise {
        let mut call = None;
        let promise = Promise::new(&mut |resolve, reject| {
            call = Some(Call {
                resolve,
                reject,
                subscription,
            })
        });
        if let Some(call) = call {
            self.calls.insert(handle, call);
        }
        promise
    }

    /// Opens a socket for a (re)connect attempt; a failure to even create one is a
    /// failed attempt for the core.
    fn open_socket(&mut self, rc: &Rc<RefCell<Inner>>, now: u64) {
        self.socket = None;
        self.generation += 1;
        let generation = self.generation;
        let weak: Weak<RefCell<Inner>> = Rc::downgrade(rc);
        let on_event = move |event: SocketEvent| {
            let Some(rc) = weak.upgrade() else { return };
            {
                let mut inner = rc.borrow_mut();
                if inner.generation != generation {
                    return;
                }
                let now = now_ms();
                match event {
                    SocketEvent::Open => inner.core.connection_opened(now),
                    SocketEvent::Text(text) => inner.core.frame_received(&text, now),
                    SocketEvent::Closed => inner.core.connection_closed(now),
                }
            }
            pump(&rc);
        };
        match Socket::open(&self.url, self.constructor.as_ref(), on_event) {
            Ok(socket) => self.socket = Some(socket),
            Err(message) => {
                // Reported by the opened() promise or, on reconnects, as an `error` event.
                self.connect_error = Some(message);
                self.core.connection_closed(now);
            }
        }
    }

    /// Drains the core's outputs; transport work is done here, user code is returned.
    fn collect(&mut self, rc: &Rc<RefCell<Inner>>) -> Vec<Action> {
        let now = now_ms();
        let mut actions = Vec::new();
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send(text) => {
                    if let Some(socket) = &self.socket {
                        socket.send(&text);
                    }
                }
                Output::Resolve { handle, result } => self.resolve(handle, result, &mut actions),
                Output::Push { key, data } => {
                    if let Some(sub) = self.subscribers.get(&key) {
                        actions.push(Action::Call(sub.callback.clone(), to_js(&data)));
                    }
                }
                // A failed re-subscription after a reconnect: the callback gets nothing
                // more; the reason reaches the `error` event handlers (Output::Event).
                Output::SubscriptionEnded { key, .. } => {
                    self.subscribers.remove(&key);
                }
                Output::Event(event) => self.lifecycle(event, &mut actions),
                Output::Connect => {
                    self.open_socket(rc, now);
                    if let Some(message) = self.connect_error.take() {
                        let e = error::to_js(&ClientError::Connect(message));
                        actions.push(Action::Event(self.on_event.clone(), "error", e));
                    }
                }
                Output::Close => {
                    self.generation += 1;
                    if let Some(socket) = self.socket.take() {
                        socket.close();
                    }
                }
            }
        }
        if let Some(tick) = &self.tick {
            let next = self.core.next_timeout();
            self.timer
                .schedule(tick.as_ref().unchecked_ref(), next, now);
        }
        actions
    }

    fn resolve(
        &mut self,
        handle: RequestHandle,
        result: Result<Value, ClientError>,
        actions: &mut Vec<Action>,
    ) {
        let Some(call) = self.calls.remove(&handle) else {
            return;
        };
        match result {
            Ok(data) => {
                let data = to_js(&data);
                // The initial data reaches the callback before any later push can: both
                // run in this order, before the promise's continuations.
                if let Some(sub) = call.subscription.and_then(|k| self.subscribers.get(&k))
                    && sub.initial_data
                {
                    actions.push(Action::Call(sub.callback.clone(), data.clone()));
                }
                actions.push(Action::Call(call.resolve, data));
            }
            Err(e) => {
                if let Some(key) = call.subscription {
                    self.subscribers.remove(&key);
                }
                actions.push(Action::Call(call.reject, error::to_js(&e)));
            }
        }
    }

    fn lifecycle(&mut self, event: LifecycleEvent, actions: &mut Vec<Action>) {
        let (name, payload) = match event {
            LifecycleEvent::Connected(welcome) => {
                let welcome = welcome_to_js(&welcome);
                if let Some((resolve, _)) = self.ready.take() {
                    actions.push(Action::Call(resolve, welcome.clone()));
                }
                ("connected", welcome)
            }
            LifecycleEvent::Disconnected { will_reconnect } => {
                if let Some((_, reject)) = self.ready.take() {
                    let reason = self
                        .connect_error
                        .take()
                        .unwrap_or_else(|| self.url.clone() + " closed before the welcome");
                    let e = ClientError::Connect(reason);
                    actions.push(Action::Call(reject, error::to_js(&e)));
                }
                (
                    "disconnected",
                    object(&[("willReconnect", will_reconnect.into())]),
                )
            }
            LifecycleEvent::Reconnecting { attempt, delay_ms } => (
                "reconnecting",
                object(&[
                    ("attempt", attempt.into()),
                    ("delayMs", (delay_ms as f64).into()),
                ]),
            ),
            LifecycleEvent::Reconnected(welcome) => ("reconnected", welcome_to_js(&welcome)),
            LifecycleEvent::Shutdown { grace_period_ms } => (
                "shutdown",
                object(&[("gracePeriodMs", (grace_period_ms as f64).into())]),
            ),
            LifecycleEvent::SessionRevoked { reason } => (
                "session_revoked",
                object(&[("reason", reason.as_str().into())]),
            ),
            LifecycleEvent::Error(e) => ("error", error::to_js(&e)),
        };
        actions.push(Action::Event(self.on_event.clone(), name, payload));
    }
}

/// Drains the core until it has nothing more to say, running user code in between with
/// the state released (user code may call the client again, which pumps again).
fn pump(rc: &Rc<RefCell<Inner>>) {
    loop {
        let actions = rc.borrow_mut().collect(rc);
        if actions.is_empty() {
            return;
        }
        for action in actions {
            let outcome = match &action {
                Action::Call(f, value) => f.call1(&JsValue::UNDEFINED, value),
                Action::Event(f, name, payload) => {
                    f.call2(&JsValue::UNDEFINED, &(*name).into(), payload)
                }
            };
            if let Err(thrown) = outcome {
                web_sys::console::error_2(&"noex: a callback threw".into(), &thrown);
            }
        }
    }
}

/// A plain object from name/value pairs.
fn object(entries: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (name, value) in entries {
        let _ = js_sys::Reflect::set(&object, &(*name).into(), value);
    }
    object.into()
}

/// A request payload as the request's fields: an object (or nothing), without `id` and
/// `type`, which the client sets.
fn js_to_fields(payload: &JsValue) -> Result<Map<String, Value>, String> {
    if payload.is_undefined() || payload.is_null() {
        return Ok(Map::new());
    }
    match js_to_json(payload) {
        Value::Object(mut fields) => {
            fields.shift_remove("id");
            fields.shift_remove("type");
            Ok(fields)
        }
        _ => Err("the request payload must be an object".to_owned()),
    }
}
