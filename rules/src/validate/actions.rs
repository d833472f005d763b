//! Validation of rule actions (recursively for conditional, for_each and try_catch bodies).

use serde_json::Value;

use super::{ACTION_TYPES, MAX_ACTION_NESTING, Validator, join, type_name};
use crate::pattern::parse_duration_ms;

impl Validator {
    pub(super) fn actions(&mut self, actions: &[Value], path: &str, depth: usize) {
        if depth > MAX_ACTION_NESTING {
            self.err(
                path,
                format!("Actions nested deeper than {MAX_ACTION_NESTING} levels"),
            );
            return;
        }
        for (i, a) in actions.iter().enumerate() {
            self.action(a, &format!("{path}[{i}]"), depth);
        }
    }

    fn action(&mut self, a: &Value, path: &str, depth: usize) {
        let Some(o) = self.object(a, path, "Action") else {
            return;
        };
        let Some(kind) = self.string(o, path, "type") else {
            return;
        };
        let require = |v: &mut Self, field: &str| {
            if o.get(field).is_none() {
                v.err(
                    join(path, field),
                    format!("Required field \"{field}\" is missing"),
                );
            }
        };
        match kind {
            "set_fact" => {
                self.string(o, path, "key");
                require(self, "value");
            }
            "delete_fact" => {
                self.string(o, path, "key");
            }
            "emit_event" => {
                self.string(o, path, "topic");
                if let Some(d) = o.get("data")
                    && !d.is_object()
                {
                    self.err(
                        join(path, "data"),
                        format!("Field \"data\" must be an object, got {}", type_name(d)),
                    );
                }
            }
            "set_timer" => {
                let tp = join(path, "timer");
                match o.get("timer") {
                    None | Some(Value::Null) => self.err(tp, "Required field \"timer\" is missing"),
                    Some(t) => {
                        let Some(to) = self.object(t, &tp, "Timer") else {
                            return;
                        };
                        self.string(to, &tp, "name");
                        self.action_duration(to, &tp, "duration");
                        let ep = join(&tp, "onExpire");
                        match to.get("onExpire") {
                            None | Some(Value::Null) => {
                                self.err(ep, "Required field \"onExpire\" is missing")
                            }
                            Some(e) => {
                                if let Some(eo) = self.object(e, &ep, "onExpire") {
                                    self.string(eo, &ep, "topic");
                                }
                            }
                        }
                        if let Some(r) = to.get("repeat") {
                            let rp = join(&tp, "repeat");
                            if let Some(ro) = self.object(r, &rp, "repeat") {
                                self.action_duration(ro, &rp, "interval");
                                if let Some(mc) = ro.get("maxCount")
                                    && !mc.is_u64()
                                {
                                    self.err(
                                        join(&rp, "maxCount"),
                                        "Field \"maxCount\" must be a non-negative integer",
                                    );
                                }
                                if let Some(0) =
                                    ro.get("interval").and_then(|i| parse_duration_ms(i).ok())
                                {
                                    self.err(
                                        join(&rp, "interval"),
                                        "Field \"interval\" must be greater than 0",
                                    );
                                }
                            }
                        }
                    }
                }
            }
            "cancel_timer" => {
                self.string(o, path, "name");
            }
            "log" => {
                match o.get("level") {
                    Some(Value::String(l))
                        if ["debug", "info", "warn", "error"].contains(&l.as_str()) => {}
                    None | Some(Value::Null) => {
                        self.err(join(path, "level"), "Required field \"level\" is missing")
                    }
                    Some(other) => self.err(
                        join(path, "level"),
                        format!("Invalid log level {other}. Expected: debug, info, warn, error"),
                    ),
                }
                if !o.get("message").is_some_and(Value::is_string) {
                    self.err(join(path, "message"), "Field \"message\" must be a string");
                }
            }
            "conditional" => {
                for (i, c) in self.array(o, path, "conditions", true).iter().enumerate() {
                    self.condition(c, &format!("{}[{i}]", join(path, "conditions")));
                }
                let then = self.array(o, path, "then", true);
                self.actions(then, &join(path, "then"), depth + 1);
                let els = self.array(o, path, "else", false);
                self.actions(els, &join(path, "else"), depth + 1);
            }
            "for_each" => {
                require(self, "collection");
                if let Some(c) = o.get("collection")
                    && !c.is_array()
                    && c.get("ref").is_none()
                {
                    self.err(
                        join(path, "collection"),
                        "Field \"collection\" must be an array or a {ref}",
                    );
                }
                self.string(o, path, "as");
                let body = self.array(o, path, "actions", true);
                self.actions(body, &join(path, "actions"), depth + 1);
                if let Some(m) = o.get("maxIterations")
                    && m.as_u64().is_none_or(|n| n == 0)
                {
                    self.err(
                        join(path, "maxIterations"),
                        "Field \"maxIterations\" must be a positive integer",
                    );
                }
            }
            "try_catch" => {
                let body = self.array(o, path, "try", true);
                self.actions(body, &join(path, "try"), depth + 1);
                if let Some(c) = o.get("catch") {
                    let cp = join(path, "catch");
                    if let Some(co) = self.object(c, &cp, "catch") {
                        self.opt_string(co, &cp, "as");
                        let body = self.array(co, &cp, "actions", true);
                        self.actions(body, &join(&cp, "actions"), depth + 1);
                    }
                }
                let fin = self.array(o, path, "finally", false);
                self.actions(fin, &join(path, "finally"), depth + 1);
            }
            other => self.err(
                join(path, "type"),
                format!("Invalid action type \"{other}\". Expected: {ACTION_TYPES}"),
            ),
        }
    }
}
