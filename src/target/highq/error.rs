//! What can go wrong talking to HighQ, and how each failure reads for an admin once it becomes
//! a [`TargetError`].

use std::time::Duration;

use crate::target::TargetError;

/// HighQ error references the adapter explains in its own words.
pub mod refs {
    /// The user addressed does not exist.
    pub const USER_NOT_FOUND: u64 = 110;
    /// A group with that name already exists.
    pub const GROUP_NAME_TAKEN: u64 = 122;
    /// The phone number is not `{countrycode}${areacode}${number}`.
    pub const PHONE_FORMAT: u64 = 360;
    /// The phone number is not accepted (too long or otherwise invalid).
    pub const PHONE_INVALID: u64 = 361;
    /// An archived user cannot be added to a group.
    pub const ARCHIVED_USER: u64 = 394;
}

/// A failure of one HighQ call, precise enough to decide retries and to explain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HighQError {
    /// HighQ answered with an error status and (usually) a `{"error":{…}}` body.
    #[error("HighQ answered {status}{}: {}", code.map(|c| format!(" (ref {c})")).unwrap_or_default(), summary)]
    Api {
        status: u16,
        code: Option<u64>,
        summary: String,
        link: Option<String>,
    },
    /// HighQ kept answering 429 and the wait it asked for exceeds what we allow.
    #[error(
        "HighQ is rate limiting us and asked to wait {asked:?}, longer than the {cap:?} allowed"
    )]
    RateLimited { asked: Duration, cap: Duration },
    /// HighQ could not be reached, timed out or kept failing with 5xx.
    #[error("HighQ is unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused the stored refresh token or our client credentials.
    #[error(
        "HighQ refused dirsync's credentials ({0}); an operator must reconnect the tenant to HighQ \
         (a new authorization grant) before syncing can resume"
    )]
    TokenRejected(String),
    /// No refresh token was ever stored for this tenant.
    #[error(
        "no HighQ refresh token is stored for this tenant; an operator must connect the tenant to HighQ first"
    )]
    NotConnected,
    /// The refresh token could not be loaded or saved.
    #[error("the HighQ refresh token could not be {action}: {detail}")]
    TokenStore {
        action: &'static str,
        detail: String,
    },
    /// HighQ answered something that is not the JSON we expect.
    #[error("HighQ answered something unexpected: {0}")]
    Protocol(String),
}

impl HighQError {
    pub fn code(&self) -> Option<u64> {
        match self {
            Self::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether sending the same request again later may succeed (5xx, transport errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The [`TargetError`] an admin reads, with `doing` ("creating user jane@contoso.com") saying
    /// what dirsync was attempting.
    pub fn into_target(self, doing: &str) -> TargetError {
        let see = |link: &Option<String>| {
            link.as_ref()
                .map(|l| format!(" (see {l})"))
                .unwrap_or_default()
        };
        match self {
            Self::Api {
                code: Some(refs::USER_NOT_FOUND),
                summary,
                ..
            } => TargetError::NotFound(format!(
                "HighQ has no such user while {doing} (ref 110: {summary}); it may have been deleted in HighQ"
            )),
            Self::Api {
                code: Some(refs::GROUP_NAME_TAKEN),
                summary,
                ..
            } => TargetError::Conflict(format!(
                "HighQ already has a group with that name while {doing} (ref 122: {summary}); rename or \
                 remove the existing HighQ group, or rename the Entra group"
            )),
            Self::Api {
                code: Some(refs::ARCHIVED_USER),
                summary,
                ..
            } => TargetError::Rejected(format!(
                "the user is archived in HighQ and cannot be added to a group while {doing} (ref 394: \
                 {summary}); the user will be added once they are active again"
            )),
            Self::Api {
                code: Some(code @ (refs::PHONE_FORMAT | refs::PHONE_INVALID)),
                summary,
                ..
            } => TargetError::Rejected(format!(
                "HighQ refused the phone number while {doing} (ref {code}: {summary}); HighQ needs \
                 countrycode$areacode$number, so correct the user's business phone in Entra"
            )),
            Self::Api {
                status: 401 | 403,
                code,
                summary,
                link,
            } => TargetError::Unauthorized(format!(
                "HighQ refused dirsync's access while {doing} ({}{summary}){}; check that the connected \
                 HighQ account is a System Admin and reconnect the tenant",
                code.map(|c| format!("ref {c}: ")).unwrap_or_default(),
                see(&link)
            )),
            Self::Api {
                status,
                code,
                summary,
                link,
            } => {
                let text = format!(
                    "HighQ refused {doing}: {summary} ({}HTTP {status}){}",
                    code.map(|c| format!("ref {c}, ")).unwrap_or_default(),
                    see(&link)
                );
                match status {
                    404 => TargetError::NotFound(text),
                    409 => TargetError::Conflict(text),
                    s if s >= 500 => TargetError::Unavailable(text),
                    _ => TargetError::Rejected(text),
                }
            }
            err @ (Self::RateLimited { .. } | Self::Unavailable(_) | Self::TokenStore { .. }) => {
                TargetError::Unavailable(format!("{err} (while {doing})"))
            }
            err @ (Self::TokenRejected(_) | Self::NotConnected) => {
                TargetError::Unauthorized(err.to_string())
            }
            Self::Protocol(detail) => TargetError::Protocol(format!(
                "HighQ answered something unexpected while {doing}: {detail}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: u64, summary: &str) -> HighQError {
        HighQError::Api {
            status,
            code: Some(code),
            summary: summary.to_owned(),
            link: None,
        }
    }

    #[test]
    fn a_taken_group_name_is_a_conflict_that_says_what_to_do() {
        let err =
            api(400, 122, "Group name already exists").into_target("creating group \"Sales\"");
        assert!(matches!(err, TargetError::Conflict(_)));
        let text = err.to_string();
        assert!(
            text.contains("ref 122") && text.contains("creating group \"Sales\""),
            "{text}"
        );
    }

    #[test]
    fn an_archived_user_is_a_rejection_naming_ref_394() {
        let err =
            api(400, 394, "Archived users cannot be added").into_target("adding user 7 to group 3");
        assert!(
            matches!(&err, TargetError::Rejected(t) if t.contains("archived") && t.contains("394"))
        );
    }

    #[test]
    fn phone_refs_tell_the_admin_to_fix_the_phone_in_entra() {
        for code in [360, 361] {
            let err = api(400, code, "Invalid phone").into_target("creating user a@b.c");
            assert!(
                matches!(&err, TargetError::Rejected(t) if t.contains("business phone in Entra"))
            );
        }
    }

    #[test]
    fn a_missing_user_is_not_found() {
        assert!(matches!(
            api(404, 110, "User not found").into_target("x"),
            TargetError::NotFound(_)
        ));
    }

    #[test]
    fn refused_credentials_stop_the_run() {
        assert!(
            HighQError::TokenRejected("invalid_grant".into())
                .into_target("x")
                .stops_the_run()
        );
        assert!(HighQError::NotConnected.into_target("x").stops_the_run());
    }
}
