//! Reading operation fields from a request object, with the protocol's exact
//! `VALIDATION_ERROR` messages (e.g. `Missing or invalid "bucket": expected non-empty string`).

use serde_json::{Map, Value};

/// A borrowed view of a request's fields that checks types as it reads.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// Prefix for messages, e.g. `operations[2]: ` inside a transaction.
    prefix: String,
}

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>) -> Self {
        Fields {
            map,
            prefix: String::new(),
        }
    }

    pub(crate) fn with_prefix(map: &'a Map<String, Value>, prefix: String) -> Self {
        Fields { map, prefix }
    }

    fn err(&self, message: String) -> String {
        format!("{}{message}", self.prefix)
    }

    /// Present and not null.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, name: &str) -> Result<String, String> {
        match self.map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(self.err(format!(
                "Missing or invalid \"{name}\": expected non-empty string"
            ))),
        }
    }

    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(self.err(format!("Invalid \"{name}\": expected non-empty string"))),
        }
    }

    pub(crate) fn object(&self, name: &str) -> Result<Map<String, Value>, String> {
        match self.map.get(name) {
            Some(Value::Object(o)) => Ok(o.clone()),
            _ => Err(self.err(format!("Missing or invalid \"{name}\": expected object"))),
        }
    }

    pub(crate) fn opt_object(&self, name: &str) -> Result<Option<Map<String, Value>>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o.clone())),
            Some(_) => Err(self.err(format!("Invalid \"{name}\": expected object"))),
        }
    }

    pub(crate) fn non_null(&self, name: &str) -> Result<Value, String> {
        self.get(name)
            .cloned()
            .ok_or_else(|| self.err(format!("Missing \"{name}\": expected non-null value")))
    }

    /// Present (null allowed): `rules.setFact` accepts any JSON value but an absent one.
    pub(crate) fn present(&self, name: &str) -> Result<Value, String> {
        self.map
            .get(name)
            .cloned()
            .ok_or_else(|| self.err(format!("Missing \"{name}\": expected a value")))
    }

    /// Absent or null → `None`; anything else is passed through.
    pub(crate) fn opt_any(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }

    pub(crate) fn positive_int(&self, name: &str) -> Result<u64, String> {
        let n = self.map.get(name).and_then(|v| match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= MAX_SAFE_INTEGER)
                    .map(|f| f as u64)
            }),
            _ => None,
        });
        match n {
            Some(n) if n >= 1 => Ok(n),
            _ => Err(self.err(format!(
                "Missing or invalid \"{name}\": expected positive integer"
            ))),
        }
    }

    pub(crate) fn non_empty_array(&self, name: &str) -> Result<&'a Vec<Value>, String> {
        match self.map.get(name) {
            Some(Value::Array(a)) if !a.is_empty() => Ok(a),
            _ => Err(self.err(format!(
                "Missing or invalid \"{name}\": expected non-empty array"
            ))),
        }
    }
}
