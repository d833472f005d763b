//! JSON values to JavaScript values and back, walked by hand, and [`JsJson`], the core's
//! codec on JavaScript's own `JSON.parse` / `JSON.stringify`: the WebAssembly carries no
//! JSON parser or printer (serde_json's are most of a package's weight), and the client
//! core only reads the few fields it routes on.

use js_sys::{Array, JSON, Object};
use noex_client::core::Codec;
use noex_protocol::Welcome;
use serde_json::{Map, Number, Value};
use wasm_bindgen::{JsCast, JsValue};

/// The core's codec for the browser: frames are parsed and written by JavaScript's `JSON`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsJson;

impl Codec for JsJson {
    fn decode(text: &str) -> Result<Value, String> {
        JSON::parse(text)
            .map(|v| from_js(&v))
            .map_err(|e| crate::socket::describe(&e))
    }

    fn encode(value: &Value) -> String {
        JSON::stringify(&to_js(value))
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default()
    }
}

/// A JSON value as a JavaScript value (objects get their keys as own data properties, as
/// `JSON.parse` makes them, so a key `__proto__` stays a key).
pub fn to_js(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(items) => items.iter().map(to_js).collect::<Array>().into(),
        Value::Object(map) => {
            let entries: Array = map
                .iter()
                .map(|(k, v)| Array::of2(&JsValue::from_str(k), &to_js(v)))
                .collect();
            Object::from_entries(&entries)
                .map(JsValue::from)
                .unwrap_or(JsValue::NULL)
        }
    }
}

/// A JavaScript value made of what `JSON.parse` returns (null, booleans, numbers,
/// strings, arrays, plain objects) as a JSON value; anything else becomes `null`.
/// Integral numbers up to 2^53 become integers, as serde_json reads them from text.
pub fn from_js(value: &JsValue) -> Value {
    if let Some(s) = value.as_string() {
        Value::String(s)
    } else if let Some(f) = value.as_f64() {
        number(f)
    } else if let Some(b) = value.as_bool() {
        Value::Bool(b)
    } else if Array::is_array(value) {
        let array: &Array = value.unchecked_ref();
        Value::Array(array.iter().map(|v| from_js(&v)).collect())
    } else if value.is_object() {
        let mut map = Map::new();
        for entry in Object::entries(value.unchecked_ref()).iter() {
            let entry: Array = entry.unchecked_into();
            if let Some(key) = entry.get(0).as_string() {
                map.insert(key, from_js(&entry.get(1)));
            }
        }
        Value::Object(map)
    } else {
        Value::Null
    }
}

/// Any JavaScript value as JSON, the way `JSON.stringify` sees it (`toJSON`, functions
/// and `undefined` dropped, ...); what cannot be stringified becomes `null`.
pub fn js_to_json(value: &JsValue) -> Value {
    JSON::stringify(value)
        .ok()
        .filter(|s| s.is_string())
        .and_then(|s| JSON::parse(&String::from(s)).ok())
        .map(|v| from_js(&v))
        .unwrap_or(Value::Null)
}

fn number(f: f64) -> Value {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER {
        if f >= 0.0 {
            Value::from(f as u64)
        } else {
            Value::from(f as i64)
        }
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The server's welcome as `{version, serverTime, requiresAuth}`.
pub fn welcome_to_js(welcome: &Welcome) -> JsValue {
    let mut map = Map::new();
    map.insert("version".into(), welcome.version.as_str().into());
    map.insert("serverTime".into(), welcome.server_time.into());
    map.insert("requiresAuth".into(), welcome.requires_auth.into());
    to_js(&Value::Object(map))
}
