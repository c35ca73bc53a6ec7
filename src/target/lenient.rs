//! Lenient reading of target JSON, shared by the adapters: real APIs send numbers as strings,
//! strings as numbers, and field names in whatever case a version chose.

use std::collections::HashSet;

use serde_json::Value;

use crate::domain::Email;

/// Case-insensitive field lookup (HighQ's names vary in case between versions; SCIM attribute
/// names are case-insensitive by RFC 7643 §2.1). Absent fields read as `Null`.
pub fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
    record
        .as_object()
        .and_then(|map| {
            map.get(name).or_else(|| {
                map.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        })
        .unwrap_or(&Value::Null)
}

/// A value that should be a string but may arrive as a number (IDs, refs) or be absent.
pub fn flex_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A value that should be a number but may arrive as a string.
pub fn flex_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The emails to look up, each once (emails compare case-insensitively), in the order given.
pub fn unique_emails(emails: &[Email]) -> Vec<Email> {
    let mut seen = HashSet::new();
    emails.iter().filter(|e| seen.insert(*e)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lenient_reads_accept_what_real_apis_send() {
        let record = json!({"groupID": 42, "Ref": " 122 ", "name": ""});
        assert_eq!(
            flex_string(field(&record, "groupid")),
            Some("42".to_owned())
        );
        assert_eq!(flex_u64(field(&record, "ref")), Some(122));
        assert_eq!(flex_string(field(&record, "name")), None);
        assert!(field(&record, "missing").is_null());
        let emails: Vec<Email> = ["A@x.com", "a@X.com", "b@x.com"]
            .iter()
            .map(|e| Email::parse(e).unwrap())
            .collect();
        assert_eq!(unique_emails(&emails).len(), 2);
    }
}
