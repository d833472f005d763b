//! The store's side of the shared definitions (`noex-model`): what the store checks in a
//! definition it is given beyond its wire shape (a TTL's duration, a query's sort directions
//! and aggregate), as store errors.

use noex_model::definition::InvalidDefinition;
pub use noex_model::definition::{
    Aggregate, AggregateFunction, BucketDefinition, BucketUpdate, FieldDef, FieldType, Generated,
    GroupBy, QueryDefinition, SortOrder, StringFormat, Ttl,
};

use crate::error::{StoreError, StoreResult};

impl From<InvalidDefinition> for StoreError {
    fn from(e: InvalidDefinition) -> Self {
        StoreError::invalid_def(e.0)
    }
}

/// A TTL in milliseconds (see `noex_model::ttl` for the grammar: a bare number is
/// milliseconds), or an `InvalidDefinition` naming it.
pub(crate) fn ttl_ms(ttl: &Ttl) -> StoreResult<u64> {
    ttl.as_ms().map_err(|e| match (ttl, e) {
        (_, noex_model::DurationError::NotPositive) => {
            StoreError::invalid_def("ttl must be positive")
        }
        (Ttl::Text(text), _) => StoreError::invalid_def(format!("invalid ttl \"{text}\"")),
        (Ttl::Ms(ms), _) => StoreError::invalid_def(format!("invalid ttl {ms}")),
    })
}

/// Most fields a query's `fields` projection may name.
pub(crate) const MAX_QUERY_FIELDS: usize = 256;
/// Most fields a query's `groupBy` may name.
pub(crate) const MAX_GROUP_BY_FIELDS: usize = 32;
/// Most fields a query's `sort` may name.
pub(crate) const MAX_SORT_FIELDS: usize = 32;

/// `fields` named at most `max` times, each once (`what` names the list in the error).
/// A list repeating one field a thousand times made every group key a thousand copies of
/// its value: a subscribe over one 1 MB record took 2 GB (red team, round 5).
fn check_field_list<'a>(
    what: &str,
    fields: impl ExactSizeIterator<Item = &'a str>,
    max: usize,
) -> StoreResult<()> {
    if fields.len() > max {
        return Err(StoreError::invalid_def(format!(
            "{what} may name at most {max} fields (got {})",
            fields.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for field in fields {
        if !seen.insert(field) {
            return Err(StoreError::invalid_def(format!(
                "{what} names \"{field}\" more than once"
            )));
        }
    }
    Ok(())
}

/// Checks a query's sort directions, that an aggregate other than `count` names a field,
/// and that `sort`, `fields` and `groupBy` name distinct fields, at most
/// [`MAX_SORT_FIELDS`], [`MAX_QUERY_FIELDS`] and [`MAX_GROUP_BY_FIELDS`].
pub(crate) fn check_query(def: &QueryDefinition) -> StoreResult<()> {
    // A sort over 48 000 fields took 3.5 MB per record and aborted the server (red team,
    // round 6); its keys are an object's, so each is named once already.
    if let Some(sort) = &def.sort {
        check_field_list("sort", sort.keys().map(String::as_str), MAX_SORT_FIELDS)?;
    }
    if let Some(fields) = &def.fields {
        check_field_list(
            "fields",
            fields.iter().map(String::as_str),
            MAX_QUERY_FIELDS,
        )?;
    }
    if let Some(group_by) = def.aggregate.as_ref().and_then(|a| a.group_by.as_ref()) {
        let fields = group_by.fields();
        check_field_list("groupBy", fields.into_iter(), MAX_GROUP_BY_FIELDS)?;
    }
    if let Some(sort) = &def.sort {
        for (field, dir) in sort {
            if SortOrder::deserialize(dir).is_err() {
                return Err(StoreError::invalid_def(format!(
                    "sort direction of \"{field}\" must be \"asc\" or \"desc\""
                )));
            }
        }
    }
    if let Some(agg) = &def.aggregate {
        if agg.function != AggregateFunction::Count && agg.field.is_none() {
            return Err(StoreError::invalid_def("aggregate needs a field"));
        }
    }
    Ok(())
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_forms() {
        assert_eq!(ttl_ms(&Ttl::Ms(1500)), Ok(1500));
        assert_eq!(ttl_ms(&Ttl::Text("500ms".into())), Ok(500));
        assert_eq!(ttl_ms(&Ttl::Text("30s".into())), Ok(30_000));
        assert_eq!(ttl_ms(&Ttl::Text("15m".into())), Ok(900_000));
        assert_eq!(ttl_ms(&Ttl::Text("1h".into())), Ok(3_600_000));
        assert_eq!(ttl_ms(&Ttl::Text("7d".into())), Ok(604_800_000));
        for bad in ["", "h", "1x", "-1s", "99999999999999999999d"] {
            assert_eq!(
                ttl_ms(&Ttl::Text(bad.into())),
                Err(StoreError::invalid_def(format!("invalid ttl \"{bad}\""))),
                "{bad}"
            );
        }
        assert_eq!(
            ttl_ms(&Ttl::Ms(0)),
            Err(StoreError::invalid_def("ttl must be positive"))
        );
    }

    #[test]
    fn a_bare_number_ttl_is_milliseconds() {
        // As in the original noex-store and in rule durations (it was seconds as a text
        // before the definitions were shared).
        assert_eq!(ttl_ms(&Ttl::Text("90".into())), Ok(90));
        assert_eq!(ttl_ms(&Ttl::Ms(90)), Ok(90));
    }

    #[test]
    fn update_ttl_null_means_remove() {
        let u: BucketUpdate = serde_json::from_str(r#"{"ttl": null}"#).unwrap();
        assert_eq!(u.ttl, Some(None));
        let u: BucketUpdate = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.ttl, None);
        let u: BucketUpdate = serde_json::from_str(r#"{"ttl": "1h"}"#).unwrap();
        assert_eq!(u.ttl, Some(Some(Ttl::Text("1h".into()))));
    }

    #[test]
    fn query_definition_round_trip() {
        let v = serde_json::json!({"bucket": "b", "filter": {"a": 1}, "sort": {"a": "desc", "b": "asc"},
            "limit": 5, "offset": 1, "fields": ["a"], "aggregate": {"function": "sum", "field": "a", "groupBy": ["c"]}});
        let q = QueryDefinition::from_json(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&q).unwrap(), v);
        assert_eq!(check_query(&q), Ok(()));
    }

    #[test]
    fn unknown_members_are_refused() {
        let v = serde_json::json!({"key": "id", "schema": {}, "extra": 1});
        assert!(
            StoreError::from(BucketDefinition::from_json(v).unwrap_err())
                .to_string()
                .contains("unknown field `extra`")
        );
    }
}
