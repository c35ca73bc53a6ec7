//! The JSON Microsoft Graph and the Entra token endpoint send, as serde types: pages of users,
//! a group, and the two error envelopes.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::EntraObjectId;
use crate::plan::{EntraUser, SnapshotUser};

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

/// What one entry of a page of group members came to; a page's users are made compact
/// ([`SnapshotUser`]) where the page is decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberEntry<User = EntraUser> {
    /// A user, and what had to be cleaned in its text (for warnings in the report).
    User { user: User, cleaned: Vec<String> },
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
/// Returns the characters replaced, if any; clean text (nearly all of it) is returned as it came.
fn without_controls(text: String) -> (String, Vec<char>) {
    if !text.chars().any(char::is_control) {
        return (text, Vec::new());
    }
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

/// [`without_controls`], with a note for the report when it replaced anything.
fn without_controls_noted(
    text: String,
    name: impl FnOnce() -> String,
    notes: &mut Vec<String>,
) -> String {
    let (text, replaced) = without_controls(text);
    if !replaced.is_empty() {
        notes.push(format!(
            "{} held control characters ({}); each run of them was replaced by a space",
            name(),
            code_points(&replaced)
        ));
    }
    text
}

fn code_points(chars: &[char]) -> String {
    chars
        .iter()
        .map(|c| format!("U+{:04X}", *c as u32))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A member entry's properties with their JSON types checked; what [`finish_entry`] makes a user of.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainEntry {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    id: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    display_name: Option<String>,
    mail: Option<String>,
    user_principal_name: Option<String>,
    job_title: Option<String>,
    business_phones: Option<Vec<Option<String>>>,
    account_enabled: Option<bool>,
}

/// A page of group members read as far as its link to the next page: its entries are still
/// text, where each lies in the page, so the next page can be asked for while they are decoded.
#[derive(Debug)]
pub struct SkimmedMemberPage {
    body: bytes::Bytes,
    /// Each entry's bytes in `body`, in order.
    entries: Vec<std::ops::Range<usize>>,
    pub next_link: Option<String>,
}

impl SkimmedMemberPage {
    /// How many entries the page lists (users or not, repeated or not).
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Decodes the entries, each user made compact, or says what is wrong with one: the text
    /// that follows "page N of the group's members". Runs on the blocking pool, so the run's
    /// task, which follows the pages, does not make a page's 999 users compact (issue 13).
    pub fn decode(self) -> Result<Vec<MemberEntry<SnapshotUser>>, String> {
        self.entries
            .iter()
            .map(|at| {
                // Text already: the skim read each entry as JSON, which is UTF-8.
                let entry = std::str::from_utf8(&self.body[at.clone()])
                    .map_err(|e| format!(": an entry is not text ({e})"))?;
                let entry = member_entry_json(entry).map_err(|problem| format!(": {problem}"))?;
                Ok(match entry {
                    MemberEntry::User { user, cleaned } => MemberEntry::User {
                        user: SnapshotUser::from(user),
                        cleaned,
                    },
                    MemberEntry::NotAUser { id, odata_type } => {
                        MemberEntry::NotAUser { id, odata_type }
                    }
                })
            })
            .collect()
    }
}

/// What the start of a page says about its `@odata.nextLink`, read while the rest of the page
/// is still arriving (issue 13: the next page is asked for before this one has fully come).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadingLink {
    /// The link, given ahead of the entries, as Graph gives it.
    Ahead(String),
    /// The entries (or the page's end) come first, or the start is not in the plain shape read
    /// here: only the whole page tells whether there is a link.
    NotAhead,
    /// Too little of the page has arrived to tell.
    Undecided,
}

/// Reads `start`, the first bytes of a page, as far as its properties before `value`: a string
/// `@odata.nextLink` among them is [`LeadingLink::Ahead`]. A page that is not plain JSON text
/// here (an escaped name, a nested value) is [`LeadingLink::NotAhead`], never a guess; the whole
/// page is read as before and must agree.
pub fn leading_next_link(start: &[u8]) -> LeadingLink {
    use LeadingLink::{Ahead, NotAhead, Undecided};
    let mut at = 0;
    let skip_space = |at: &mut usize| {
        while start.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
    };
    // The end of the string whose opening quote is at `from` (one past its closing quote).
    let string_end = |from: usize| -> Option<usize> {
        let mut i = from + 1;
        while let Some(&byte) = start.get(i) {
            match byte {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    skip_space(&mut at);
    match start.get(at) {
        None => return Undecided,
        Some(b'{') => at += 1,
        Some(_) => return NotAhead,
    }
    loop {
        skip_space(&mut at);
        match start.get(at) {
            None => return Undecided,
            Some(b'"') => {}
            Some(_) => return NotAhead,
        }
        let Some(key_end) = string_end(at) else {
            return Undecided;
        };
        let key = &start[at + 1..key_end - 1];
        if key.contains(&b'\\') {
            return NotAhead;
        }
        at = key_end;
        skip_space(&mut at);
        match start.get(at) {
            None => return Undecided,
            Some(b':') => at += 1,
            Some(_) => return NotAhead,
        }
        skip_space(&mut at);
        match (key, start.get(at)) {
            (_, None) => return Undecided,
            (b"value", _) => return NotAhead,
            (b"@odata.nextLink", Some(b'"')) => {
                let Some(end) = string_end(at) else {
                    return Undecided;
                };
                return match serde_json::from_slice::<String>(&start[at..end]) {
                    Ok(link) => Ahead(link),
                    Err(_) => NotAhead,
                };
            }
            (_, Some(b'"')) => match string_end(at) {
                Some(end) => at = end,
                None => return Undecided,
            },
            // A number or a literal (`@odata.count`, a `null`): up to what follows it.
            (_, Some(byte)) if byte.is_ascii_alphanumeric() || *byte == b'-' => {
                while start
                    .get(at)
                    .is_some_and(|b| !matches!(b, b',' | b'}') && !b.is_ascii_whitespace())
                {
                    at += 1;
                }
            }
            (_, Some(_)) => return NotAhead,
        }
        skip_space(&mut at);
        match start.get(at) {
            None => return Undecided,
            Some(b',') => at += 1,
            Some(_) => return NotAhead,
        }
    }
}

/// Reads a page of group members as far as its entries' places and its next link, or says what
/// is wrong with it: the text that follows "page N of the group's members". One pass that
/// copies no entry (issue 13: it stands between a page's answer and the request for the next).
pub fn skim_member_page(body: bytes::Bytes) -> Result<SkimmedMemberPage, String> {
    let (entries, next_link) = {
        let page: GraphPage<&serde_json::value::RawValue> = serde_json::from_slice(&body)
            .map_err(|e| format!(" is not the JSON Graph sends ({e})"))?;
        let Some(entries) = page.value else {
            return Err(" has no \"value\" list".to_owned());
        };
        // Where each borrowed entry starts in the page.
        let start = body.as_ptr().addr();
        let places = entries
            .iter()
            .map(|entry| {
                let from = entry.get().as_ptr().addr() - start;
                from..from + entry.get().len()
            })
            .collect();
        (places, page.next_link)
    };
    Ok(SkimmedMemberPage {
        body,
        entries,
        next_link,
    })
}

/// Decodes one entry of a member page (issue 13: without building a JSON tree for the usual
/// entry). An entry the plain shape does not fit — a property of the wrong type, one given twice,
/// not an object — is decoded again by [`member_entry`], which says precisely what is wrong.
pub fn member_entry_json(json: &str) -> Result<MemberEntry, String> {
    match serde_json::from_str::<PlainEntry>(json) {
        Ok(plain) => finish_entry(plain),
        Err(_) => member_entry(
            serde_json::from_str(json).map_err(|e| format!("an entry is not JSON ({e})"))?,
        ),
    }
}

/// Decodes one entry of a member page strictly: anything that makes the page untrustworthy (no
/// usable `id`, a property of the wrong type) is an `Err` sentence, so the group fails as a
/// whole (R17) instead of a user being misread; `null` where text belongs is absent, `null` in
/// `businessPhones` is skipped, control characters in text are replaced and reported.
pub fn member_entry(value: Value) -> Result<MemberEntry, String> {
    let Value::Object(mut object) = value else {
        return Err(format!("an entry is {}, not an object", kind_of(&value)));
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => return Err(format!("an entry's id is {}, not text", kind_of(&other))),
    };
    let odata_type = match object.remove("@odata.type") {
        Some(Value::String(odata_type)) => Some(odata_type),
        _ => None,
    };
    if odata_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("#microsoft.graph.user"))
    {
        return finish_entry(PlainEntry {
            odata_type,
            id,
            ..PlainEntry::default()
        });
    }
    // The id first: a user without a usable one is reported as such, whatever else is wrong.
    let Some(raw_id) = &id else {
        return Err("a user has no id".to_owned());
    };
    let who = EntraObjectId::parse(raw_id)
        .map_err(|_| format!("a user's id {:?} is not a GUID", truncate(raw_id, 80)))?;
    let mut text = |name: &str| -> Result<Option<String>, String> {
        match object.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(other) => Err(format!(
                "user {who}: {name} is {}, not text",
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
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut phones = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                match item {
                    Value::Null => phones.push(None),
                    Value::String(phone) => phones.push(Some(phone)),
                    other => {
                        return Err(format!(
                            "user {who}: businessPhones[{index}] is {}, not text",
                            kind_of(&other)
                        ));
                    }
                }
            }
            Some(phones)
        }
        Some(other) => {
            return Err(format!(
                "user {who}: businessPhones is {}, not a list",
                kind_of(&other)
            ));
        }
    };
    let account_enabled = match object.remove("accountEnabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(enabled)) => Some(enabled),
        Some(other) => {
            return Err(format!(
                "user {who}: accountEnabled is {}, not true or false",
                kind_of(&other)
            ));
        }
    };
    finish_entry(PlainEntry {
        odata_type,
        id,
        given_name,
        surname,
        display_name,
        mail,
        user_principal_name,
        job_title,
        business_phones,
        account_enabled,
    })
}

/// A type-checked entry as a user (its id a GUID, control characters cleaned and reported), or
/// as the object that is not a user.
fn finish_entry(entry: PlainEntry) -> Result<MemberEntry, String> {
    if let Some(odata_type) = &entry.odata_type
        && !odata_type.eq_ignore_ascii_case("#microsoft.graph.user")
    {
        return Ok(MemberEntry::NotAUser {
            id: entry.id,
            odata_type: truncate(odata_type, 80),
        });
    }
    let Some(raw_id) = entry.id else {
        return Err("a user has no id".to_owned());
    };
    let id = EntraObjectId::parse(&raw_id)
        .map_err(|_| format!("a user's id {:?} is not a GUID", truncate(&raw_id, 80)))?;
    let mut cleaned = Vec::new();
    let mut text = |index: usize, value: Option<String>| {
        value.map(|value| {
            without_controls_noted(value, || TEXT_PROPERTIES[index].to_owned(), &mut cleaned)
        })
    };
    let given_name = text(0, entry.given_name);
    let surname = text(1, entry.surname);
    let display_name = text(2, entry.display_name);
    let mail = text(3, entry.mail);
    let user_principal_name = text(4, entry.user_principal_name);
    let job_title = text(5, entry.job_title);
    let business_phones = entry
        .business_phones
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(index, phone)| {
            phone.map(|phone| {
                without_controls_noted(phone, || format!("businessPhones[{index}]"), &mut cleaned)
            })
        })
        .collect();
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
            account_enabled: entry.account_enabled,
        },
        cleaned,
    })
}

/// The group's display name with control characters replaced (see [`member_entry`]), and the
/// characters replaced.
pub fn clean_group_name(name: &str) -> (String, Vec<char>) {
    without_controls(name.to_owned())
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

    #[test]
    fn a_next_link_ahead_of_the_entries_is_read_from_the_start_of_a_page() {
        let page = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "@odata.count": 3,
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/groups/g/members?$skiptoken=a\\\"b",
            "value": [{"id": ID}],
        })
        .to_string();
        let link = "https://graph.microsoft.com/v1.0/groups/g/members?$skiptoken=a\\\"b".to_owned();
        let link_ends = page
            .find("\",\"value\"")
            .expect("the link is before the entries");
        // Every start short of the link's closing quote is undecided; from there on, it is read.
        for cut in 0..page.len() {
            let read = leading_next_link(&page.as_bytes()[..cut]);
            if cut < link_ends + 1 {
                assert_eq!(read, LeadingLink::Undecided, "{cut}: {:?}", &page[..cut]);
            } else {
                assert_eq!(read, LeadingLink::Ahead(link.clone()), "{cut}");
            }
        }
        assert_eq!(
            skim_member_page(bytes::Bytes::from(page))
                .expect("a page")
                .next_link,
            Some(link),
            "the whole page agrees"
        );
    }

    #[test]
    fn a_link_after_the_entries_or_in_an_unusual_start_is_left_to_the_whole_page() {
        for start in [
            r#"{"value":[],"@odata.nextLink":"https://graph/next"}"#,
            r#"{"@odata.context":"x"}"#,
            r#"{"@odata.next\u004cink":"https://graph/next","value":[]}"#,
            r#"{"@odata.extra":{"a":1},"@odata.nextLink":"https://graph/next"}"#,
            r#"{"@odata.nextLink":17,"value":[]}"#,
            r#"[{"@odata.nextLink":"https://graph/next"}]"#,
            "<html>Service Unavailable</html>",
        ] {
            assert_eq!(
                leading_next_link(start.as_bytes()),
                LeadingLink::NotAhead,
                "{start}"
            );
        }
        assert_eq!(
            leading_next_link(b" { \"@odata.count\" : 12 , \"@odata.nextLink\" : \"n\" "),
            LeadingLink::Ahead("n".to_owned())
        );
    }

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
            assert_eq!(member_entry_json(&entry.to_string()), Err(problem.clone()));
            assert_eq!(member_entry(entry), Err(problem));
        }
    }

    #[test]
    fn the_plain_decoding_of_an_entry_answers_as_the_strict_one() {
        let entries = [
            json!({"id": ID, "mail": "ada@contoso.com", "givenName": "Ada", "surname": "Lovelace",
                   "displayName": "Ada Lovelace", "userPrincipalName": "ada@contoso.com",
                   "jobTitle": "Countess", "businessPhones": ["+1 555 0100", null, "x\u{7}y"],
                   "accountEnabled": false, "extra": {"ignored": [1, 2]}}),
            json!({"id": ID, "jobTitle": "Line\nbreak\t\u{0}", "businessPhones": null}),
            json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": 5}),
            json!({"@odata.type": 7, "id": ID}),
            json!({"id": "not-a-guid", "mail": 3}),
            json!({"id": null, "mail": 3}),
            json!({"id": ID, "mail": 3}),
            json!([1]),
        ];
        for entry in entries {
            assert_eq!(
                member_entry_json(&entry.to_string()),
                member_entry(entry.clone()),
                "{entry}"
            );
        }
        // A property given twice: the last one counts, as in the strict decoding.
        let twice = format!(r#"{{"id":"{ID}","mail":"a@contoso.com","mail":"b@contoso.com"}}"#);
        let Ok(MemberEntry::User { user, .. }) = member_entry_json(&twice) else {
            panic!("{twice}")
        };
        assert_eq!(user.mail.as_deref(), Some("b@contoso.com"));
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
