//! The JSON Microsoft Graph and the Entra token endpoint send, as serde types: pages of users,
//! a group, and the two error envelopes.

use serde::Deserialize;

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

/// A user as `$select`ed by [`USER_SELECT`]. Every field but `id` may be null or absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphUser {
    pub id: String,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub business_phones: Option<Vec<String>>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
}

impl GraphUser {
    /// The planner's view of the user; fails only on an ID that is not a GUID.
    pub fn into_entra_user(self) -> Result<EntraUser, String> {
        let id = EntraObjectId::parse(&self.id).map_err(|e| e.to_string())?;
        Ok(EntraUser {
            id,
            given_name: self.given_name,
            surname: self.surname,
            display_name: self.display_name,
            mail: self.mail,
            user_principal_name: self.user_principal_name,
            business_phones: self.business_phones.unwrap_or_default(),
            job_title: self.job_title,
            account_enabled: self.account_enabled,
        })
    }
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
