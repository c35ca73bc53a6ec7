//! What can go wrong talking to a SCIM server, and how each failure reads for an admin once it
//! becomes a [`TargetError`].

use serde_json::Value;

use super::wire::{field, flex_string};
use crate::target::TargetError;

/// The `schemas` URN of a SCIM error body (RFC 7644 §3.12).
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A failure of one SCIM call, precise enough to decide retries and to explain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScimError {
    /// The server answered with an error status and (usually) an RFC 7644 §3.12 error body.
    #[error("the SCIM server answered HTTP {status}{}: {detail}", scim_type.as_ref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Api {
        status: u16,
        scim_type: Option<String>,
        detail: String,
    },
    /// The server could not be reached, timed out, or kept answering 429 / 5xx past the retries.
    #[error("the SCIM server is unavailable: {0}")]
    Unavailable(String),
    /// The server answered something that is not the SCIM JSON we expect.
    #[error("the SCIM server answered something unexpected: {0}")]
    Protocol(String),
}

/// How to fix what a `scimType` (RFC 7644 §3.12, table 9) says is wrong, in an admin's words.
fn hint(scim_type: Option<&str>) -> &'static str {
    match scim_type {
        Some("uniqueness") => {
            "; another resource in the application already has that value (a user with the same \
             userName or email, or a group with the same name)"
        }
        Some("mutability") => "; the application does not allow this attribute to be changed",
        Some("invalidFilter") => "; the application did not accept dirsync's filter",
        Some("tooMany") => {
            "; the application refused to return that many results; lower the tuning limits"
        }
        Some("invalidValue") | Some("invalidSyntax") => {
            "; the application refused a value; check the user's data in Entra"
        }
        Some("noTarget") => "; the attribute or member to change does not exist",
        Some("invalidVers") => "; the resource changed in the application meanwhile",
        Some("sensitive") => "; the application refused sensitive data in the request",
        _ => "",
    }
}

impl ScimError {
    /// Builds the error for a non-success answer from its HTTP status and body text, however much
    /// of the RFC 7644 error body the server sent. The HTTP status decides; the body's `status`
    /// (a string in the RFC, a number on some servers) only repeats it.
    pub fn from_answer(status: u16, text: &str) -> Self {
        let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let detail = flex_string(field(&body, "detail"))
            .or_else(|| {
                let start: String = text.trim().chars().take(200).collect();
                (!start.is_empty() && body.is_null()).then_some(start)
            })
            .unwrap_or_else(|| {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_owned()
            });
        Self::Api {
            status,
            scim_type: flex_string(field(&body, "scimType")),
            detail,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server refused this request's content (so a smaller batch may pass), as
    /// opposed to refusing us, the resource as a whole, or being unavailable.
    pub fn is_about_the_content(&self) -> bool {
        matches!(self.status(), Some(400 | 409 | 413 | 422))
    }

    /// The [`TargetError`] an admin reads, with `doing` ("creating user jane@contoso.com") saying
    /// what dirsync was attempting.
    pub fn into_target(self, doing: &str) -> TargetError {
        match self {
            Self::Api {
                status,
                scim_type,
                detail,
            } => {
                let kind = scim_type
                    .as_deref()
                    .map(|t| format!(", scimType {t}"))
                    .unwrap_or_default();
                let text = format!(
                    "the SCIM server refused {doing}: {detail} (HTTP {status}{kind}){}",
                    hint(scim_type.as_deref())
                );
                match status {
                    401 | 403 => TargetError::Unauthorized(format!(
                        "the SCIM server refused dirsync's access while {doing}: {detail} (HTTP \
                         {status}); check the bearer token in the tenant's target settings and \
                         that it may manage users and groups"
                    )),
                    404 => TargetError::NotFound(format!(
                        "the SCIM server has no such resource while {doing}: {detail} (HTTP 404); \
                         it may have been deleted in the application"
                    )),
                    409 | 412 => TargetError::Conflict(text),
                    _ if scim_type.as_deref() == Some("uniqueness") => TargetError::Conflict(text),
                    429 | 500.. => TargetError::Unavailable(text),
                    _ => TargetError::Rejected(text),
                }
            }
            Self::Unavailable(detail) => TargetError::Unavailable(format!(
                "the SCIM server is unavailable while {doing}: {detail}"
            )),
            Self::Protocol(detail) => TargetError::Protocol(format!(
                "the SCIM server answered something unexpected while {doing}: {detail}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rfc_error_body_with_the_status_as_a_string_is_understood() {
        let err = ScimError::from_answer(
            409,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409",
                "scimType":"uniqueness","detail":"userName taken"}"#,
        );
        assert_eq!(
            err,
            ScimError::Api {
                status: 409,
                scim_type: Some("uniqueness".into()),
                detail: "userName taken".into()
            }
        );
        let target = err.into_target("creating user jane@contoso.com");
        assert!(
            matches!(&target, TargetError::Conflict(t) if t.contains("jane@contoso.com") && t.contains("uniqueness")),
            "{target:?}"
        );
    }

    #[test]
    fn statuses_map_to_the_target_errors_an_admin_can_act_on() {
        let target = |status: u16| ScimError::from_answer(status, "").into_target("x");
        assert!(matches!(target(401), TargetError::Unauthorized(_)));
        assert!(target(403).stops_the_run());
        assert!(matches!(target(404), TargetError::NotFound(_)));
        assert!(matches!(target(409), TargetError::Conflict(_)));
        assert!(matches!(target(400), TargetError::Rejected(_)));
        assert!(matches!(target(503), TargetError::Unavailable(_)));
        assert!(matches!(target(429), TargetError::Unavailable(_)));
    }

    #[test]
    fn a_body_that_is_not_json_still_gives_a_readable_detail() {
        let err = ScimError::from_answer(502, "<html>Bad gateway</html>");
        assert!(err.to_string().contains("Bad gateway"), "{err}");
        let err = ScimError::from_answer(400, "");
        assert!(err.to_string().contains("Bad Request"), "{err}");
    }
}
