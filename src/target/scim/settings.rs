//! A tenant's SCIM 2.0 connection as it appears in `Tenant.target` (`{"kind": "scim", …}`):
//! where the server is, the bearer token, how roles and group names are written, and how hard
//! and how patiently to talk to the server.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{Role, SecretSetting};

/// The connection settings. The token is a [`SecretSetting`]: hidden from `Debug` and redacted
/// whenever it is serialized.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ScimSettings {
    /// The SCIM base URL, the part before `/Users` (`https://app.example/scim/v2`).
    pub base_url: String,
    /// The static bearer token the application issued for dirsync.
    #[serde(alias = "bearer_token")]
    pub token: SecretSetting,
    /// Where a user's role (R14) is written: the multi-valued `roles` or the single `userType`.
    #[serde(default)]
    pub role_attribute: RoleAttribute,
    /// The values written for each role.
    #[serde(default)]
    pub role_values: RoleValues,
    /// Whether group `displayName`s carry the R2 label (`Sales [Synced Group]`): for
    /// applications with no group type of their own. Off by default: the name is the Entra name.
    #[serde(default)]
    pub group_labels: bool,
    #[serde(default)]
    pub tuning: ScimTuning,
}

impl fmt::Debug for ScimSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimSettings")
            .field("base_url", &self.base_url)
            .field("token", &"[hidden]")
            .field("role_attribute", &self.role_attribute)
            .field("role_values", &self.role_values)
            .field("group_labels", &self.group_labels)
            .field("tuning", &self.tuning)
            .finish()
    }
}

/// Which user attribute carries the role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleAttribute {
    /// `roles: [{"value": "internal", "primary": true}]` (RFC 7643 §4.1.2).
    #[default]
    #[serde(rename = "roles")]
    Roles,
    /// `userType: "internal"` (RFC 7643 §4.1.1).
    #[serde(rename = "userType", alias = "user_type")]
    UserType,
}

/// The text written for each role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleValues {
    pub internal: String,
    pub basic: String,
}

impl Default for RoleValues {
    fn default() -> Self {
        Self {
            internal: "internal".to_owned(),
            basic: "basic".to_owned(),
        }
    }
}

impl RoleValues {
    pub fn value(&self, role: Role) -> &str {
        match role {
            Role::Internal => &self.internal,
            Role::Basic => &self.basic,
        }
    }
}

/// How hard and how patiently the adapter talks to the server. Limits the server advertises in
/// `/ServiceProviderConfig` lower these further, never raise them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScimTuning {
    /// Requests in flight at once, across every call of the adapter.
    pub concurrency: usize,
    /// Members added or removed per PATCH.
    pub member_batch_size: usize,
    /// Emails per `userName eq … or …` filter.
    pub lookup_batch_size: usize,
    /// Up to this many emails are looked up with filters; more, and all users are paged through.
    pub lookup_paging_threshold: usize,
    /// Resources per page (`count`) when listing.
    pub page_size: usize,
    pub request_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Retries of a 429, a 5xx or a lost connection per call.
    pub max_retries: u32,
    /// The first retry's delay when the server gives no `Retry-After`; each further retry doubles it.
    pub retry_base_ms: u64,
    /// The longest total wait for retries in one call before giving up.
    pub max_retry_wait_secs: u64,
}

impl Default for ScimTuning {
    fn default() -> Self {
        Self {
            concurrency: 4,
            member_batch_size: 100,
            lookup_batch_size: 50,
            lookup_paging_threshold: 1000,
            page_size: 200,
            request_timeout_secs: 30,
            connect_timeout_secs: 10,
            max_retries: 4,
            retry_base_ms: 500,
            max_retry_wait_secs: 120,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn settings_parse_from_the_tenant_target_with_defaults() {
        let settings: ScimSettings = serde_json::from_value(json!({
            "kind": "scim",
            "base_url": "https://app.example/scim/v2",
            "token": "t0ken",
            "role_attribute": "userType",
        }))
        .unwrap();
        assert_eq!(settings.role_attribute, RoleAttribute::UserType);
        assert!(!settings.group_labels);
        assert_eq!(settings.tuning, ScimTuning::default());
        assert_eq!(settings.role_values.value(Role::Basic), "basic");
    }

    #[test]
    fn the_token_is_hidden_from_debug_output() {
        let settings: ScimSettings = serde_json::from_value(json!({
            "base_url": "https://app.example/scim/v2",
            "bearer_token": "s3cr3t-value",
        }))
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("app.example"), "{shown}");
    }
}
