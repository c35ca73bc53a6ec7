//! Item 6: when a tenant's credentials stop working, and the warnings that start
//! [`WARNING_DAYS`] (30) before. The Entra app credential's expiry is read from Graph
//! when the app may read its own registration (`GET /applications(appId='…')`), else taken from
//! the tenant's configured `source.credential_expires_at`; the HighQ refresh token's from the
//! `refresh_token_expires_in` of the token response that brought it. Pure apart from
//! [`known_expiries`], which reads the store.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{Store, StoreError};
use crate::tenant::Tenant;

/// Warnings start this many days before a credential expires.
pub const WARNING_DAYS: u32 = 30;

/// The Entra app registration's secret or certificate.
pub const GRAPH_APP: &str = "graph_app";
/// The HighQ refresh token.
pub const HIGHQ_REFRESH_TOKEN: &str = "highq_refresh_token";

/// Where an expiry was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpirySource {
    /// Read from the app registration in Graph.
    Graph,
    /// The tenant's `source.credential_expires_at`.
    Configured,
    /// HighQ's token response (`refresh_token_expires_in`).
    TokenResponse,
}

/// When one credential stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialExpiry {
    pub credential: &'static str,
    pub expires_at: DateTime<Utc>,
    pub source: ExpirySource,
}

/// A credential close to (or past) its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryWarning {
    pub credential: &'static str,
    pub expires_at: DateTime<Utc>,
    pub source: ExpirySource,
    /// Whole days left (0 on the last day; negative once expired).
    pub days_left: i64,
    /// The tightest of 30, 14, 7, 1 and 0 days reached: one notification each.
    pub threshold_days: i64,
    pub message: String,
}

/// The thresholds a warning is notified at, loosest first.
const THRESHOLDS: &[i64] = &[30, 14, 7, 1, 0];

impl CredentialExpiry {
    /// A warning when the credential expires within `warn_days` of `now` (or has expired).
    pub fn warning(&self, now: DateTime<Utc>, warn_days: u32) -> Option<ExpiryWarning> {
        let left = self.expires_at - now;
        if left > chrono::Duration::days(i64::from(warn_days)) {
            return None;
        }
        let days_left = left.num_days();
        let threshold_days = THRESHOLDS
            .iter()
            .copied()
            .filter(|t| left <= chrono::Duration::days(*t))
            .min()
            .unwrap_or(i64::from(warn_days));
        let what = super::event::credential_label(self.credential);
        let message = if left <= chrono::Duration::zero() {
            format!(
                "the {what} expired on {}: renew it now, runs will fail",
                self.expires_at.format("%Y-%m-%d")
            )
        } else {
            format!(
                "the {what} expires in {days_left} days, on {}: renew it before then",
                self.expires_at.format("%Y-%m-%d")
            )
        };
        Some(ExpiryWarning {
            credential: self.credential,
            expires_at: self.expires_at,
            source: self.source,
            days_left,
            threshold_days,
            message,
        })
    }
}

impl ExpiryWarning {
    /// The once-only mark of this warning: a new credential (another expiry) warns afresh.
    pub fn mark(&self) -> String {
        format!(
            "expiry:{}:{}:{}",
            self.credential,
            self.expires_at.timestamp(),
            self.threshold_days
        )
    }
}

/// The warnings among `expiries` at `now`.
pub fn warnings(
    expiries: &[CredentialExpiry],
    now: DateTime<Utc>,
    warn_days: u32,
) -> Vec<ExpiryWarning> {
    expiries
        .iter()
        .filter_map(|e| e.warning(now, warn_days))
        .collect()
}

/// The expiries dirsync knows without asking Graph: the configured app credential expiry and
/// the stored HighQ refresh token's.
pub async fn known_expiries(
    store: &dyn Store,
    tenant: &Tenant,
) -> Result<Vec<CredentialExpiry>, StoreError> {
    let mut found = Vec::new();
    if let Some(expires_at) = tenant.source.credential_expires_at {
        found.push(CredentialExpiry {
            credential: GRAPH_APP,
            expires_at,
            source: ExpirySource::Configured,
        });
    }
    if let Some((_, Some(expires_at))) = store.target_token_dates(&tenant.key, "highq").await? {
        found.push(CredentialExpiry {
            credential: HIGHQ_REFRESH_TOKEN,
            expires_at,
            source: ExpirySource::TokenResponse,
        });
    }
    Ok(found)
}

/// Every expiry dirsync can learn for the tenant: Graph's (through `connector`) when the app may
/// read its own registration, else the configured one; the HighQ refresh token's. The second
/// value says why Graph could not tell, when it could not.
pub async fn credential_expiries(
    store: &dyn Store,
    connector: Option<&dyn crate::sync::Connector>,
    tenant: &Tenant,
) -> Result<(Vec<CredentialExpiry>, Option<String>), StoreError> {
    let known = known_expiries(store, tenant).await?;
    let Some(connector) = connector else {
        return Ok((known, None));
    };
    let from_graph = match connector.source(tenant).await {
        Ok(source) => source.app_credential_expiry().await,
        Err(err) => Err(err),
    };
    Ok(match from_graph {
        Ok(found) => (with_graph_expiry(known, found), None),
        Err(reason) => (known, Some(reason)),
    })
}

/// `found` with the app credential's expiry read from Graph in place of a configured one.
pub fn with_graph_expiry(
    mut found: Vec<CredentialExpiry>,
    from_graph: Option<DateTime<Utc>>,
) -> Vec<CredentialExpiry> {
    if let Some(expires_at) = from_graph {
        found.retain(|e| e.credential != GRAPH_APP);
        found.insert(
            0,
            CredentialExpiry {
                credential: GRAPH_APP,
                expires_at,
                source: ExpirySource::Graph,
            },
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn expiring(days: i64, now: DateTime<Utc>) -> CredentialExpiry {
        CredentialExpiry {
            credential: GRAPH_APP,
            expires_at: now + chrono::Duration::days(days),
            source: ExpirySource::Configured,
        }
    }

    #[test]
    fn no_warning_at_31_days_and_a_warning_at_29() {
        let now = at("2026-03-01T12:00:00Z");
        assert_eq!(expiring(31, now).warning(now, 30), None);
        let warning = expiring(29, now).warning(now, 30).expect("warned");
        assert_eq!(warning.days_left, 29);
        assert_eq!(warning.threshold_days, 30);
        assert!(
            warning.message.contains("expires in 29 days"),
            "{}",
            warning.message
        );
    }

    #[test]
    fn each_threshold_has_its_own_mark_and_expired_is_the_last() {
        let now = at("2026-03-01T12:00:00Z");
        let marks: Vec<String> = [29, 20, 13, 6, 0, -3]
            .iter()
            .map(|d| {
                expiring(*d, now)
                    .warning(now, 30)
                    .unwrap()
                    .threshold_days
                    .to_string()
            })
            .collect();
        assert_eq!(marks, ["30", "30", "14", "7", "0", "0"]);
        let expired = expiring(-3, now).warning(now, 30).unwrap();
        assert!(expired.message.contains("expired"), "{}", expired.message);
    }

    #[test]
    fn graph_replaces_a_configured_expiry() {
        let now = at("2026-03-01T12:00:00Z");
        let found = with_graph_expiry(vec![expiring(10, now)], Some(now));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].source, ExpirySource::Graph);
    }
}
