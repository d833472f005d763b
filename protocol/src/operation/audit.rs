//! `audit.*` operations: reading the server's audit log (`audit.query`), with the
//! original server's validation messages for its filters.

use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use crate::fields::Fields;

/// Whether an audited operation succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    /// Answered with a result.
    Success,
    /// Answered with an error (denied ones included).
    Error,
}

/// `audit.*` operations (docs/reference/protocol.md, "Audit operations"; admin tier).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type")]
pub enum AuditOp {
    /// Entries of the audit log, newest first, matching every given filter.
    #[serde(rename = "audit.query", rename_all = "camelCase")]
    Query {
        /// Only entries of this user.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        user_id: Option<String>,
        /// Only entries of this operation type, e.g. `store.defineBucket`.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        operation: Option<String>,
        /// Only successes or only errors.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        result: Option<AuditResult>,
        /// Only entries at or after this time (ms since the Unix epoch).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        from: Option<f64>,
        /// Only entries at or before this time (ms since the Unix epoch).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        to: Option<f64>,
        /// At most this many entries (positive integer).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        limit: Option<u64>,
    },
}

impl AuditOp {
    /// The operation's `type`.
    pub fn op_type(&self) -> &'static str {
        match self {
            AuditOp::Query { .. } => "audit.query",
        }
    }

    /// Parses an `audit.*` request; `None` for a type of another namespace or an unknown
    /// `audit.*` type.
    pub(crate) fn parse(op_type: &str, f: &Fields<'_>) -> Option<Result<AuditOp, String>> {
        match op_type {
            "audit.query" => Some(parse_query(f)),
            _ => None,
        }
    }
}

fn parse_query(f: &Fields<'_>) -> Result<AuditOp, String> {
    let string = |name: &str| match f.opt_any(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("Invalid \"{name}\": expected string")),
    };
    let number = |name: &str| match f.opt_any(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(format!("Invalid \"{name}\": expected number")),
    };
    let user_id = string("userId")?;
    let operation = string("operation")?;
    let result = match f.opt_any("result") {
        None => None,
        Some(Value::String(s)) if s == "success" => Some(AuditResult::Success),
        Some(Value::String(s)) if s == "error" => Some(AuditResult::Error),
        Some(_) => return Err(r#"Invalid "result": expected "success" or "error""#.to_owned()),
    };
    let from = number("from")?;
    let to = number("to")?;
    let limit = match f.opt_any("limit") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|x| x.fract() == 0.0 && *x >= 1.0)
                .map(|x| x.min(u64::MAX as f64) as u64)
        }) {
            Some(n) if n >= 1 => Some(n),
            _ => return Err(r#"Invalid "limit": expected positive integer"#.to_owned()),
        },
        Some(_) => return Err(r#"Invalid "limit": expected positive integer"#.to_owned()),
    };
    Ok(AuditOp::Query {
        user_id,
        operation,
        result,
        from,
        to,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use crate::{Operation, OperationError};
    use serde_json::json;

    fn parse(fields: serde_json::Value) -> Result<Operation, OperationError> {
        Operation::parse("audit.query", fields.as_object().unwrap())
    }

    #[test]
    fn filters_are_validated_with_the_original_messages() {
        let cases = [
            (json!({"userId": 1}), r#"Invalid "userId": expected string"#),
            (
                json!({"operation": []}),
                r#"Invalid "operation": expected string"#,
            ),
            (
                json!({"result": "ok"}),
                r#"Invalid "result": expected "success" or "error""#,
            ),
            (
                json!({"from": "yesterday"}),
                r#"Invalid "from": expected number"#,
            ),
            (json!({"to": true}), r#"Invalid "to": expected number"#),
            (
                json!({"limit": -1}),
                r#"Invalid "limit": expected positive integer"#,
            ),
            (
                json!({"limit": 1.5}),
                r#"Invalid "limit": expected positive integer"#,
            ),
            (
                json!({"limit": 0}),
                r#"Invalid "limit": expected positive integer"#,
            ),
        ];
        for (fields, message) in cases {
            let err = parse(fields.clone()).unwrap_err();
            assert_eq!(err.message(), message, "{fields}");
        }
    }

    #[test]
    fn a_query_round_trips_through_its_wire_form() {
        let fields = json!({"userId": "u", "result": "error", "from": 5, "limit": 2});
        let op = parse(fields.clone()).unwrap();
        let mut wire = serde_json::to_value(&op).unwrap();
        assert_eq!(
            wire.as_object_mut().unwrap().remove("type"),
            Some(json!("audit.query"))
        );
        assert_eq!(
            wire,
            json!({"userId": "u", "result": "error", "from": 5.0, "limit": 2})
        );
    }
}
