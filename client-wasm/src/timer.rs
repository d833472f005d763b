//! `setTimeout` / `clearTimeout` and the clock, imported from the JavaScript global scope.
//!
//! These exist in browsers, workers and Node.js alike, unlike `window.setTimeout`, so the
//! client does not depend on a `Window`.

use js_sys::Function;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, delay_ms: f64) -> JsValue;

    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// The clock the core is fed with, in milliseconds: `performance.now()` (monotonic, so a
/// wall-clock step does not stretch or fire every timeout at once), or `Date.now()` where
/// the global `performance` is missing.
pub fn now_ms() -> u64 {
    let monotonic = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .filter(|p| p.is_object())
        .and_then(|performance| {
            let now = js_sys::Reflect::get(&performance, &"now".into()).ok()?;
            let now: &js_sys::Function = now.dyn_ref()?;
            now.call0(&performance).ok()?.as_f64()
        });
    let now = monotonic.unwrap_or_else(js_sys::Date::now);
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}

/// One pending `setTimeout`, cancelled when rescheduled or dropped.
///
/// The callback is owned by the caller and reused for every schedule, so no closure is
/// created or leaked per tick.
#[derive(Debug, Default)]
pub struct Timer {
    scheduled: Option<(u64, JsValue)>,
}

impl Timer {
    /// Makes `handler` run at `at_ms` (absolute), or cancels the timer when `at_ms` is
    /// `None`. Nothing happens when that deadline is already scheduled.
    pub fn schedule(&mut self, handler: &Function, at_ms: Option<u64>, now_ms: u64) {
        if self.scheduled.as_ref().map(|(at, _)| *at) == at_ms {
            return;
        }
        self.cancel();
        if let Some(at) = at_ms {
            let id = set_timeout(handler, at.saturating_sub(now_ms) as f64);
            self.scheduled = Some((at, id));
        }
    }

    /// Forgets the scheduled deadline after its callback ran.
    pub fn fired(&mut self) {
        self.scheduled = None;
    }

    /// Cancels the pending timeout, if any.
    pub fn cancel(&mut self) {
        if let Some((_, id)) = self.scheduled.take() {
            clear_timeout(&id);
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}
