//! Shared pieces of the noex fuzz targets: a generator of JSON values biased towards the
//! words each target's input language uses, and the tokio runtime the store and the rule
//! engine need.
//!
//! Every target reads its input in one of two ways:
//! - input that is JSON text (what the checked-in corpus holds) is used as is, so real
//!   frames, filters, rules and configs are the starting points and libFuzzer mutates them;
//! - any other input drives a structured generator ([`Gen`]) that builds a well-formed-ish
//!   value from a vocabulary, which reaches deep code that random text rarely does.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};
use std::sync::OnceLock;

/// Most JSON values one generated input may contain, so a single input stays cheap.
const VALUE_BUDGET: usize = 512;
/// Deepest nesting of generated arrays and objects.
pub const MAX_DEPTH: usize = 6;

/// The one runtime of this process (current-thread, paused time: timers fire only when a
/// target advances time, so a run depends on its input alone).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
    })
}

/// The input as a JSON value when it is JSON text, else `None` (then the generator runs).
pub fn as_json(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

/// Builds JSON values from fuzz bytes, picking keys and strings mostly from a vocabulary.
pub struct Gen<'a, 'b> {
    /// The fuzz bytes.
    pub u: &'a mut Unstructured<'b>,
    budget: usize,
    pool: Vec<Value>,
    keys: &'static [&'static str],
    strings: &'static [&'static str],
}

/// Numbers that tend to find edge cases (signs, precision, extremes).
const SPECIAL_NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    0.5,
    -1.0,
    1e300,
    -1e-300,
    9007199254740992.0,
    9007199254740993.0,
    18446744073709551615.0,
    2147483648.0,
];

impl<'a, 'b> Gen<'a, 'b> {
    /// A generator over `u` with this vocabulary.
    pub fn new(
        u: &'a mut Unstructured<'b>,
        keys: &'static [&'static str],
        strings: &'static [&'static str],
    ) -> Self {
        Gen {
            u,
            budget: VALUE_BUDGET,
            pool: Vec::new(),
            keys,
            strings,
        }
    }

    /// True with probability `p`/256; false once the input is used up.
    pub fn chance(&mut self, p: u8) -> Result<bool> {
        Ok(self.u.arbitrary::<u8>()? >= 255 - p.saturating_sub(1) && p > 0)
    }

    /// One of `items` (the first once the input is used up).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Result<T> {
        Ok(*self.u.choose(items)?)
    }

    /// A length in `0..=max` (0 once the input is used up or the budget is spent).
    pub fn len(&mut self, max: usize) -> Result<usize> {
        if self.budget == 0 {
            return Ok(0);
        }
        self.u.int_in_range(0..=max.min(self.budget))
    }

    /// `n` items made by `item`.
    pub fn list<T>(
        &mut self,
        max: usize,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let n = self.len(max)?;
        (0..n).map(|_| item(self)).collect()
    }

    /// Any short string (arbitrary bytes made UTF-8).
    pub fn any_string(&mut self) -> Result<String> {
        let s: &str = self.u.arbitrary()?;
        Ok(s.chars().take(48).collect())
    }

    /// A vocabulary string most of the time, any string otherwise.
    pub fn string(&mut self) -> Result<String> {
        if self.strings.is_empty() || self.chance(40)? {
            self.any_string()
        } else {
            Ok(self.pick(self.strings)?.to_owned())
        }
    }

    /// A vocabulary key most of the time, any string otherwise.
    pub fn key(&mut self) -> Result<String> {
        if self.keys.is_empty() || self.chance(24)? {
            self.any_string()
        } else {
            Ok(self.pick(self.keys)?.to_owned())
        }
    }

    /// A number: small integers mostly, then extremes, floats and special values.
    pub fn number(&mut self) -> Result<Value> {
        self.spend();
        Ok(match self.u.int_in_range(0..=7u8)? {
            0..=3 => Value::from(self.u.int_in_range(-2i64..=10)?),
            4 => Value::from(self.u.arbitrary::<i64>()?),
            5 => Value::from(self.u.arbitrary::<u64>()?),
            6 => float(self.u.arbitrary::<f64>()?),
            _ => float(self.pick(SPECIAL_NUMBERS)?),
        })
    }

    /// Draws `n` scalars that [`Gen::scalar`] then returns half the time, so that values
    /// meet: a filter compares against what a record holds, a condition against what an
    /// event carries.
    pub fn fill_pool(&mut self, n: usize) -> Result<()> {
        self.pool.clear();
        for _ in 0..n {
            let v = self.scalar()?;
            self.pool.push(v);
        }
        Ok(())
    }

    /// A scalar: null, boolean, number or string (a pooled one half the time).
    pub fn scalar(&mut self) -> Result<Value> {
        self.spend();
        if !self.pool.is_empty() && self.chance(128)? {
            let i = self.u.choose_index(self.pool.len())?;
            return Ok(self.pool[i].clone());
        }
        Ok(match self.u.int_in_range(0..=5u8)? {
            0 => Value::Null,
            1 => Value::Bool(self.u.arbitrary()?),
            2 | 3 => self.number()?,
            _ => Value::String(self.string()?),
        })
    }

    /// Any value, nested at most [`MAX_DEPTH`] deep.
    pub fn value(&mut self, depth: usize) -> Result<Value> {
        if depth >= MAX_DEPTH || self.budget == 0 {
            return self.scalar();
        }
        self.spend();
        Ok(match self.u.int_in_range(0..=7u8)? {
            0..=4 => self.scalar()?,
            5 => Value::Array(self.list(6, |g| g.value(depth + 1))?),
            _ => Value::Object(self.object(depth)?),
        })
    }

    /// An object with vocabulary keys and any values.
    pub fn object(&mut self, depth: usize) -> Result<Map<String, Value>> {
        let n = self.len(5)?;
        let mut map = Map::new();
        for _ in 0..n {
            let k = self.key()?;
            let v = self.value(depth + 1)?;
            map.insert(k, v);
        }
        Ok(map)
    }

    /// `well_formed` most of the time; now and then any value instead, so the code that
    /// rejects a wrong shape runs too.
    pub fn or_any(
        &mut self,
        well_formed: impl FnOnce(&mut Self) -> Result<Value>,
    ) -> Result<Value> {
        if self.chance(12)? {
            self.value(MAX_DEPTH - 2)
        } else {
            well_formed(self)
        }
    }

    /// Inserts `key: value` unless the input says to leave the field out (1 in 16).
    pub fn field(
        &mut self,
        map: &mut Map<String, Value>,
        key: &str,
        value: impl FnOnce(&mut Self) -> Result<Value>,
    ) -> Result<()> {
        if !self.chance(16)? {
            let v = self.or_any(value)?;
            map.insert(key.to_owned(), v);
        }
        Ok(())
    }

    /// Inserts `key: value` only sometimes (optional fields), half the time.
    pub fn opt_field(
        &mut self,
        map: &mut Map<String, Value>,
        key: &str,
        value: impl FnOnce(&mut Self) -> Result<Value>,
    ) -> Result<()> {
        if self.chance(128)? {
            let v = self.or_any(value)?;
            map.insert(key.to_owned(), v);
        }
        Ok(())
    }

    /// A string value from `choices` (or any string now and then).
    pub fn word(&mut self, choices: &[&str]) -> Result<Value> {
        Ok(Value::String(if self.chance(12)? {
            self.any_string()?
        } else {
            self.pick(choices)?.to_owned()
        }))
    }

    fn spend(&mut self) {
        self.budget = self.budget.saturating_sub(1);
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Builds an object from `(key, value)` pairs.
pub fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// With `NOEX_FUZZ_PRINT` set, prints the input a target is about to run as JSON text: run
/// a crash file with it to get the case as a JSON seed / regression-test input.
pub fn show(what: &dyn std::fmt::Display) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("NOEX_FUZZ_PRINT").is_some()) {
        eprintln!("NOEX_FUZZ_PRINT: {what}");
    }
}
