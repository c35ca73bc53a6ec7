//! HighQ's JSON as it really arrives: a single object where a list is documented, numbers as
//! strings and strings as numbers. Everything the adapter reads goes through these helpers.

use serde_json::Value;

pub use crate::target::lenient::{field, flex_string, flex_u64};

/// A list that may arrive as a list, a single element, or nothing at all.
pub fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Finds the list of records named `singular` (`user`, `group`) in a response, whichever of the
/// shapes HighQ uses it came in: a bare list, `{"user": …}`, `{"users": …}` or
/// `{"users": {"user": …}}`, each holding one record or many. A bare record (one that has
/// `id_field`) counts as a list of one.
pub fn records<'a>(body: &'a Value, singular: &str, id_field: &str) -> Vec<&'a Value> {
    let plural = format!("{singular}s");
    match body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) if map.contains_key(id_field) => vec![body],
        Value::Object(map) => {
            if let Some(inner) = map.get(singular) {
                return one_or_many(inner);
            }
            match map.get(&plural) {
                Some(Value::Object(wrapper)) if !wrapper.contains_key(id_field) => {
                    wrapper.get(singular).map(one_or_many).unwrap_or_default()
                }
                Some(inner) => one_or_many(inner),
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// The error body HighQ sends: `{"error":{"summary","ref","link"}}`, fields possibly missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub summary: Option<String>,
    pub code: Option<u64>,
    pub link: Option<String>,
}

impl ApiErrorBody {
    pub fn parse(body: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(body).ok()?;
        let error = field(&value, "error");
        let error = match error {
            Value::Object(_) => error,
            Value::Array(items) => items.first()?,
            _ => return None,
        };
        Some(Self {
            summary: flex_string(field(error, "summary")),
            code: flex_u64(field(error, "ref")),
            link: flex_string(field(error, "link")),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_and_strings_are_read_either_way() {
        assert_eq!(flex_string(&json!(42)), Some("42".to_owned()));
        assert_eq!(flex_string(&json!(" 42 ")), Some("42".to_owned()));
        assert_eq!(flex_string(&json!("")), None);
        assert_eq!(flex_u64(&json!("394")), Some(394));
        assert_eq!(flex_u64(&json!(394)), Some(394));
    }

    #[test]
    fn a_single_record_where_a_list_is_expected_is_a_list_of_one() {
        let one = json!({"user": {"userid": 1}});
        let many = json!({"user": [{"userid": 1}, {"userid": "2"}]});
        let wrapped = json!({"users": {"user": {"userid": 1}}});
        let bare = json!({"userid": 7});
        assert_eq!(records(&one, "user", "userid").len(), 1);
        assert_eq!(records(&many, "user", "userid").len(), 2);
        assert_eq!(records(&wrapped, "user", "userid").len(), 1);
        assert_eq!(records(&bare, "user", "userid").len(), 1);
        assert_eq!(records(&json!({"user": null}), "user", "userid").len(), 0);
        assert_eq!(records(&json!([{"userid": 1}]), "user", "userid").len(), 1);
    }

    #[test]
    fn fields_are_found_whatever_their_case() {
        let group = json!({"groupID": "12"});
        assert_eq!(flex_string(field(&group, "groupid")), Some("12".to_owned()));
    }

    #[test]
    fn error_bodies_are_read_with_refs_as_numbers_or_strings() {
        let body = r#"{"error":{"summary":"Group name already exists","ref":"122","link":"https://x/122"}}"#;
        let parsed = ApiErrorBody::parse(body).unwrap();
        assert_eq!(parsed.code, Some(122));
        assert_eq!(parsed.summary.as_deref(), Some("Group name already exists"));
        assert_eq!(
            ApiErrorBody::parse(r#"{"error":{"ref":394}}"#)
                .unwrap()
                .code,
            Some(394)
        );
        assert_eq!(ApiErrorBody::parse("<error/>"), None);
    }
}
