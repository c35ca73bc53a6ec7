//! The JSON Microsoft Graph and the Entra token endpoint send, as serde types: pages of users,
//! a group, and the two error envelopes.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::EntraObjectId;
use crate::plan::EntraUser;

/// The `$select` list for group members (SPEC "Source"): `accountEnabled` must be named or Graph
/// leaves it out.
pub const USER_SELECT: &str = "id,givenName,surname,displayName,mail,userPrincipalName,businessPhones,jobTitle,accountEnabled";

/// `GET /groups/{id}?$select=id,displayName`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphGroup {
    pub id: String,
    pub display_name: Option<String>,
}

/// One page of a collection. `value` is optional here so that its absence is reported as such
/// rather than as a generic parse error.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphPage<T> {
    pub value: Option<Vec<T>>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// What one entry of a page of group members came to.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberEntry {
    /// A user, and what had to be cleaned in its text (for warnings in the report).
    User {
        user: EntraUser,
        cleaned: Vec<String>,
    },
    /// An object whose `@odata.type` says it is not a user: ignored, as R1 ignores devices
    /// and service principals.
    NotAUser {
        id: Option<String>,
        odata_type: String,
    },
}

/// The text properties of [`USER_SELECT`], as Graph names them.
const TEXT_PROPERTIES: &[&str] = &[
    "givenName",
    "surname",
    "displayName",
    "mail",
    "userPrincipalName",
    "jobTitle",
];

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `text` with each run of control characters (a NUL, a line break…) replaced by one space:
/// they cannot be stored or shown, and a NUL would stop the database write of the whole batch.
/// Returns the characters replaced, if any.
fn without_controls(text: &str) -> (String, Vec<char>) {
    let mut replaced = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if c.is_control() {
            if !replaced.contains(&c) {
                replaced.push(c);
            }
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    (out, replaced)
}

fn code_points(chars: &[char]) -> String {
    chars
        .iter()
        .map(|c| format!("U+{:04X}", *c as u32))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes one entry of a member page strictly: anything that makes the page untrustworthy (no
/// usable `id`, a property of the wrong type) is an `Err` sentence, so the group fails as a
/// whole (R17) instead of a user being misread; `null` where text belongs is absent, `null` in
/// `businessPhones` is skipped, control characters in text are replaced and reported.
pub fn member_entry(value: Value) -> Result<MemberEntry, String> {
    let Value::Object(mut object) = value else {
        return Err(format!("an entry is {}, not an object", kind_of(&value)));
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(other) => return Err(format!("an entry's id is {}, not text", kind_of(other))),
    };
    if let Some(odata_type) = object.get("@odata.type").and_then(Value::as_str) {
        if !odata_type.eq_ignore_ascii_case("#microsoft.graph.user") {
            return Ok(MemberEntry::NotAUser {
                id,
                odata_type: truncate(odata_type, 80),
            });
        }
    }
    let Some(raw_id) = id else {
        return Err("a user has no id".to_owned());
    };
    let id = EntraObjectId::parse(&raw_id)
        .map_err(|_| format!("a user's id {:?} is not a GUID", truncate(&raw_id, 80)))?;
    let mut cleaned = Vec::new();
    let mut text = |name: &str| -> Result<Option<String>, String> {
        match object.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => {
                let (value, replaced) = without_controls(&value);
                if !replaced.is_empty() {
                    cleaned.push(format!(
                        "{name} held control characters ({}); each run of them was replaced by a space",
                        code_points(&replaced)
                    ));
                }
                Ok(Some(value))
            }
            Some(other) => Err(format!(
                "user {id}: {name} is {}, not text",
                kind_of(&other)
            )),
        }
    };
    let [
        given_name,
        surname,
        display_name,
        mail,
        user_principal_name,
        job_title,
    ] = [
        text(TEXT_PROPERTIES[0])?,
        text(TEXT_PROPERTIES[1])?,
        text(TEXT_PROPERTIES[2])?,
        text(TEXT_PROPERTIES[3])?,
        text(TEXT_PROPERTIES[4])?,
        text(TEXT_PROPERTIES[5])?,
    ];
    let business_phones = match object.remove("businessPhones") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut phones = Vec::new();
            for (index, item) in items.into_iter().enumerate() {
                match item {
                    Value::Null => {}
                    Value::String(phone) => {
                        let (phone, replaced) = without_controls(&phone);
                        if !replaced.is_empty() {
                            cleaned.push(format!(
                                "businessPhones[{index}] held control characters ({}); each run of them was replaced by a space",
                                code_points(&replaced)
                            ));
                        }
                        phones.push(phone);
                    }
                    other => {
                        return Err(format!(
                            "user {id}: businessPhones[{index}] is {}, not text",
                            kind_of(&other)
                        ));
                    }
                }
            }
            phones
        }
        Some(other) => {
            return Err(format!(
                "user {id}: businessPhones is {}, not a list",
                kind_of(&other)
            ));
        }
    };
    let account_enabled = match object.remove("accountEnabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(enabled)) => Some(enabled),
        Some(other) => {
            return Err(format!(
                "user {id}: accountEnabled is {}, not true or false",
                kind_of(&other)
            ));
        }
    };
    Ok(MemberEntry::User {
        user: EntraUser {
            id,
            given_name,
            surname,
            display_name,
            mail,
            user_principal_name,
            business_phones,
            job_title,
            account_enabled,
        },
        cleaned,
    })
}

/// The group's display name with control characters replaced (see [`member_entry`]), and the
/// characters replaced.
pub fn clean_group_name(name: &str) -> (String, Vec<char>) {
    without_controls(name)
}

/// The code points of `chars`, for a warning.
pub fn describe_code_points(chars: &[char]) -> String {
    code_points(chars)
}

/// `{"error":{"code","message","innerError"}}`; Graph spells the inner key both ways.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphErrorEnvelope {
    pub error: GraphErrorBody,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, alias = "innererror", rename = "innerError")]
    pub inner_error: Option<serde_json::Value>,
}

impl GraphErrorBody {
    /// The `request-id` Microsoft support asks for, when Graph sent one.
    pub fn request_id(&self) -> Option<&str> {
        self.inner_error.as_ref()?.get("request-id")?.as_str()
    }
}

/// Parses a Graph error body, if it is one.
pub fn parse_graph_error(body: &[u8]) -> Option<GraphErrorBody> {
    serde_json::from_slice::<GraphErrorEnvelope>(body)
        .ok()
        .map(|e| e.error)
}

/// The token endpoint's error: `{"error","error_description","error_codes":[…]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenErrorBody {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
    #[serde(default)]
    pub error_codes: Vec<i64>,
}

/// The body of `/$count`: a bare integer as `text/plain`, sometimes behind a byte-order mark.
pub fn parse_count(body: &[u8]) -> Result<u64, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "the $count response is not UTF-8 text".to_owned())?;
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    trimmed.parse::<u64>().map_err(|_| {
        format!(
            "the $count response is not a number: {:?}",
            truncate(trimmed, 80)
        )
    })
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "8f3e2c1a-0b4d-4e5f-9a6b-7c8d9e0f1a2b";

    #[test]
    fn a_member_entry_that_cannot_be_trusted_is_named_precisely() {
        for (entry, problem) in [
            (json!("x"), "an entry is text, not an object".to_owned()),
            (json!({"id": null}), "a user has no id".to_owned()),
            (
                json!({"id": 7}),
                "an entry's id is a number, not text".to_owned(),
            ),
            (
                json!({"id": "not-a-guid"}),
                "a user's id \"not-a-guid\" is not a GUID".to_owned(),
            ),
            (
                json!({"id": ID, "givenName": 42}),
                format!("user {ID}: givenName is a number, not text"),
            ),
            (
                json!({"id": ID, "accountEnabled": "false"}),
                format!("user {ID}: accountEnabled is text, not true or false"),
            ),
            (
                json!({"id": ID, "businessPhones": [null, {"n": 1}]}),
                format!("user {ID}: businessPhones[1] is an object, not text"),
            ),
        ] {
            assert_eq!(member_entry(entry), Err(problem));
        }
    }

    #[test]
    fn nulls_are_absent_other_types_are_not_users_and_controls_are_replaced() {
        let entry = member_entry(json!({
            "id": ID, "mail": null, "businessPhones": [null, "+1 555 0100"],
            "givenName": "Ja\u{0}\u{0}ne", "accountEnabled": null,
        }))
        .unwrap();
        let MemberEntry::User { user, cleaned } = entry else {
            panic!("{entry:?}")
        };
        assert_eq!(user.mail, None);
        assert_eq!(user.business_phones, ["+1 555 0100"]);
        assert_eq!(user.given_name.as_deref(), Some("Ja ne"));
        assert_eq!(user.account_enabled, None);
        assert_eq!(
            cleaned,
            [
                "givenName held control characters (U+0000); each run of them was replaced by a space"
            ]
        );
        assert_eq!(
            member_entry(json!({"@odata.type": "#microsoft.graph.device", "id": ID})),
            Ok(MemberEntry::NotAUser {
                id: Some(ID.to_owned()),
                odata_type: "#microsoft.graph.device".to_owned()
            })
        );
        assert!(matches!(
            member_entry(json!({"@odata.type": "#microsoft.graph.user", "id": ID})),
            Ok(MemberEntry::User { .. })
        ));
    }
}
