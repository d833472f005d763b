//! Reading operation fields from a request object, with the protocol's exact
//! `VALIDATION_ERROR` messages (e.g. `Missing or invalid "bucket": expected non-empty string`),
//! from a borrowed map (values cloned) or an owned one (values moved out).

use std::cell::RefCell;

use serde_json::{Map, Value};

/// A view of a request's fields that checks types as it reads. Over a borrowed map every
/// value read is cloned; over an owned map (see [`Fields::owned`]) objects, arrays and other
/// whole values are moved out instead, so a large filter or record is never copied. Each
/// field is read at most once by the operation parsers, which is what makes moving safe.
pub(crate) struct Fields<'a> {
    source: Source<'a>,
    /// Prefix for messages, e.g. `operations[2]: ` inside a transaction.
    prefix: String,
}

enum Source<'a> {
    Borrowed(&'a Map<String, Value>),
    Owned(RefCell<Map<String, Value>>),
}

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>) -> Self {
        Fields {
            source: Source::Borrowed(map),
            prefix: String::new(),
        }
    }

    /// Fields that are moved out as they are read.
    pub(crate) fn owned(map: Map<String, Value>, prefix: String) -> Self {
        Fields {
            source: Source::Owned(RefCell::new(map)),
            prefix,
        }
    }

    fn err(&self, message: String) -> String {
        format!("{}{message}", self.prefix)
    }

    /// Looks at field `name` without taking it.
    fn peek<R>(&self, name: &str, read: impl FnOnce(Option<&Value>) -> R) -> R {
        match &self.source {
            Source::Borrowed(map) => read(map.get(name)),
            Source::Owned(map) => read(map.borrow().get(name)),
        }
    }

    /// Field `name`, cloned from a borrowed map or moved out of an owned one.
    fn take(&self, name: &str) -> Option<Value> {
        match &self.source {
            Source::Borrowed(map) => map.get(name).cloned(),
            Source::Owned(map) => map.borrow_mut().remove(name),
        }
    }

    /// Present and not null.
    fn take_non_null(&self, name: &str) -> Option<Value> {
        self.take(name).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, name: &str) -> Result<String, String> {
        self.peek(name, |value| match value {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(self.err(format!(
                "Missing or invalid \"{name}\": expected non-empty string"
            ))),
        })
    }

    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<String>, String> {
        self.peek(name, |value| match value.filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(self.err(format!("Invalid \"{name}\": expected non-empty string"))),
        })
    }

    pub(crate) fn object(&self, name: &str) -> Result<Map<String, Value>, String> {
        if !self.peek(name, |v| matches!(v, Some(Value::Object(_)))) {
            return Err(self.err(format!("Missing or invalid \"{name}\": expected object")));
        }
        match self.take(name) {
            Some(Value::Object(o)) => Ok(o),
            _ => Err(self.err(format!("Missing or invalid \"{name}\": expected object"))),
        }
    }

    pub(crate) fn opt_object(&self, name: &str) -> Result<Option<Map<String, Value>>, String> {
        let kind = self.peek(name, |v| match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(_)) => Some(true),
            Some(_) => Some(false),
        });
        match kind {
            None => Ok(None),
            Some(false) => Err(self.err(format!("Invalid \"{name}\": expected object"))),
            Some(true) => match self.take(name) {
                Some(Value::Object(o)) => Ok(Some(o)),
                _ => Err(self.err(format!("Invalid \"{name}\": expected object"))),
            },
        }
    }

    pub(crate) fn non_null(&self, name: &str) -> Result<Value, String> {
        self.take_non_null(name)
            .ok_or_else(|| self.err(format!("Missing \"{name}\": expected non-null value")))
    }

    /// Present (null allowed): `rules.setFact` accepts any JSON value but an absent one.
    pub(crate) fn present(&self, name: &str) -> Result<Value, String> {
        self.take(name)
            .ok_or_else(|| self.err(format!("Missing \"{name}\": expected a value")))
    }

    /// Absent or null → `None`; anything else is passed through.
    pub(crate) fn opt_any(&self, name: &str) -> Option<Value> {
        self.take_non_null(name)
    }

    pub(crate) fn positive_int(&self, name: &str) -> Result<u64, String> {
        let n = self.peek(name, |v| match v? {
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

    /// An array of objects (possibly empty); an element of another type is named by its
    /// index: `data[3]: expected object`.
    pub(crate) fn object_array(&self, name: &str) -> Result<Vec<Map<String, Value>>, String> {
        let error = || self.err(format!("Missing or invalid \"{name}\": expected array"));
        let bad = self.peek(name, |v| match v {
            Some(Value::Array(items)) => Ok(items.iter().position(|item| !item.is_object())),
            _ => Err(()),
        });
        match bad {
            Err(()) => return Err(error()),
            Ok(Some(i)) => return Err(self.err(format!("{name}[{i}]: expected object"))),
            Ok(None) => {}
        }
        match self.take(name) {
            Some(Value::Array(items)) => Ok(items
                .into_iter()
                .filter_map(|item| match item {
                    Value::Object(o) => Some(o),
                    _ => None,
                })
                .collect()),
            _ => Err(error()),
        }
    }

    /// One non-empty field name or a non-empty array of them (a `groupBy` key).
    pub(crate) fn field_names(
        &self,
        name: &str,
    ) -> Result<noex_model::definition::GroupBy, String> {
        use noex_model::definition::GroupBy;
        let parsed = self.peek(name, |v| match v {
            Some(Value::String(s)) if !s.is_empty() => Some(GroupBy::One(s.clone())),
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|item| match item {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(GroupBy::Many),
            _ => None,
        });
        parsed.ok_or_else(|| {
            self.err(format!(
                "Missing or invalid \"{name}\": expected non-empty string or non-empty array of non-empty strings"
            ))
        })
    }

    pub(crate) fn non_empty_array(&self, name: &str) -> Result<Vec<Value>, String> {
        let error = || {
            self.err(format!(
                "Missing or invalid \"{name}\": expected non-empty array"
            ))
        };
        if !self.peek(
            name,
            |v| matches!(v, Some(Value::Array(a)) if !a.is_empty()),
        ) {
            return Err(error());
        }
        match self.take(name) {
            Some(Value::Array(a)) => Ok(a),
            _ => Err(error()),
        }
    }
}
