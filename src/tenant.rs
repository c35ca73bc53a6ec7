//! A tenant's configuration: who they are in Entra, when they run, what is synced and where to.

use serde::{Deserialize, Serialize};

use crate::domain::{EntraObjectId, TenantKey};
use crate::plan::TenantPolicy;

/// An Entra directory (tenant) ID: a GUID of the same form as an object ID.
pub type EntraTenantId = EntraObjectId;

/// R19: how long a tenant's reports are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Retention {
    OneMonth,
    #[default]
    ThreeMonths,
    SixMonths,
}

impl Retention {
    pub fn months(self) -> u8 {
        match self {
            Self::OneMonth => 1,
            Self::ThreeMonths => 3,
            Self::SixMonths => 6,
        }
    }
}

impl TryFrom<u8> for Retention {
    type Error = String;
    fn try_from(months: u8) -> Result<Self, Self::Error> {
        match months {
            1 => Ok(Self::OneMonth),
            3 => Ok(Self::ThreeMonths),
            6 => Ok(Self::SixMonths),
            other => Err(format!(
                "report retention must be 1, 3 or 6 months, not {other}"
            )),
        }
    }
}

impl From<Retention> for u8 {
    fn from(value: Retention) -> Self {
        value.months()
    }
}

/// Everything dirsync knows about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub key: TenantKey,
    pub display_name: String,
    pub entra_tenant_id: EntraTenantId,
    /// R20: the IANA zone whose midnight starts the automatic run.
    pub time_zone: chrono_tz::Tz,
    pub report_retention: Retention,
    pub policy: TenantPolicy,
    /// Source overrides (a tenant-specific app registration); interpreted by the source.
    pub source: serde_json::Value,
    /// The target connection (`{"kind": "highq", …}`); interpreted by the target adapter.
    pub target: serde_json::Value,
}

/// The declarative tenant file `dirsync tenant apply` reads (TOML; see `config/tenants.example.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    #[serde(default, rename = "tenant")]
    tenants: Vec<TenantSpec>,
}

/// A tenant as an operator writes it (a `[[tenant]]` table, or the JSON body of
/// `PUT /api/v1/tenants/{key}`): plain text, validated by [`TenantSpec::validate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub key: String,
    pub name: Option<String>,
    pub entra_tenant_id: String,
    pub time_zone: String,
    #[serde(default = "default_retention")]
    pub report_retention_months: u8,
    #[serde(default)]
    pub deactivation_status: Option<String>,
    #[serde(default = "default_threshold")]
    pub deletion_threshold: u32,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    #[serde(default)]
    pub source: Option<serde_json::Value>,
    #[serde(default)]
    pub target: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub id: String,
    pub role: String,
}

fn default_retention() -> u8 {
    Retention::default().months()
}

fn default_threshold() -> u32 {
    500
}

/// What is wrong with a tenant file, naming the tenant and the field.
#[derive(Debug, thiserror::Error)]
pub enum TenantFileError {
    #[error("the tenant file is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("tenant {tenant:?}: {problem}")]
    Invalid { tenant: String, problem: String },
    #[error("the tenant file defines no tenant (add a [[tenant]] table)")]
    Empty,
}

impl TenantSpec {
    /// Checks every field and builds the tenant; a problem names the tenant and the field.
    pub fn validate(self) -> Result<Tenant, TenantFileError> {
        let entry = self;
        let invalid = |problem: String| TenantFileError::Invalid {
            tenant: entry.key.clone(),
            problem,
        };
        let key = TenantKey::parse(&entry.key).map_err(|e| invalid(e.to_string()))?;
        let entra_tenant_id = EntraTenantId::parse(&entry.entra_tenant_id)
            .map_err(|e| invalid(format!("entra_tenant_id: {e}")))?;
        let time_zone: chrono_tz::Tz = entry.time_zone.parse().map_err(|_| {
            invalid(format!(
                "time_zone {:?} is not an IANA time zone (for example Europe/London)",
                entry.time_zone
            ))
        })?;
        let report_retention =
            Retention::try_from(entry.report_retention_months).map_err(invalid)?;
        let deactivation_status = match &entry.deactivation_status {
            Some(text) => text
                .parse()
                .map_err(|e: crate::domain::UnknownVariant| invalid(e.to_string()))?,
            None => Default::default(),
        };
        let mut group_ids = std::collections::HashSet::new();
        let selected_groups = entry
            .groups
            .iter()
            .map(|group| {
                let entra_id =
                    EntraObjectId::parse(&group.id).map_err(|e| invalid(format!("group: {e}")))?;
                if !group_ids.insert(entra_id.clone()) {
                    return Err(invalid(format!("group {entra_id} is listed twice")));
                }
                let role = group
                    .role
                    .parse()
                    .map_err(|e: crate::domain::UnknownVariant| {
                        invalid(format!("group {entra_id}: {e}"))
                    })?;
                Ok(crate::plan::SelectedGroup { entra_id, role })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let object = |value: Option<serde_json::Value>, what: &str| match value {
            None => Ok(serde_json::json!({})),
            Some(value @ serde_json::Value::Object(_)) => Ok(value),
            Some(_) => Err(invalid(format!("{what} must be a table of settings"))),
        };
        Ok(Tenant {
            display_name: entry.name.clone().unwrap_or_else(|| entry.key.clone()),
            key,
            entra_tenant_id,
            time_zone,
            report_retention,
            policy: TenantPolicy {
                selected_groups,
                deactivation_status,
                deletion_threshold: entry.deletion_threshold,
            },
            source: object(entry.source.clone(), "source")?,
            target: object(entry.target.clone(), "target")?,
        })
    }
}

/// Parses and validates a tenant file. Every problem is reported with the tenant it belongs to.
pub fn parse_tenant_file(text: &str) -> Result<Vec<Tenant>, TenantFileError> {
    let file: TenantFile = toml::from_str(text)?;
    if file.tenants.is_empty() {
        return Err(TenantFileError::Empty);
    }
    let mut seen = std::collections::HashSet::new();
    file.tenants
        .into_iter()
        .map(|spec| {
            let name = spec.key.clone();
            let tenant = spec.validate()?;
            if !seen.insert(tenant.key.clone()) {
                return Err(TenantFileError::Invalid {
                    tenant: name,
                    problem: "the key is used by more than one tenant".to_owned(),
                });
            }
            Ok(tenant)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config/tenants.example.toml");

    #[test]
    fn the_example_tenant_file_parses() {
        let tenants = parse_tenant_file(EXAMPLE).unwrap();
        assert_eq!(tenants.len(), 1);
        let acme = &tenants[0];
        assert_eq!(acme.key.as_str(), "acme");
        assert_eq!(acme.time_zone, chrono_tz::Europe::London);
        assert_eq!(acme.policy.selected_groups.len(), 3);
        assert_eq!(acme.target["kind"], "highq");
    }

    #[test]
    fn tenant_file_errors_name_the_tenant_and_the_field() {
        let bad_zone = EXAMPLE.replace("Europe/London", "Mars/Olympus");
        let err = parse_tenant_file(&bad_zone).unwrap_err().to_string();
        assert!(
            err.contains("\"acme\"") && err.contains("Mars/Olympus"),
            "{err}"
        );

        let bad_role = EXAMPLE.replacen("role = \"basic\"", "role = \"guest\"", 1);
        let err = parse_tenant_file(&bad_role).unwrap_err().to_string();
        assert!(
            err.contains("guest") && err.contains("internal basic"),
            "{err}"
        );

        let bad_retention =
            EXAMPLE.replace("report_retention_months = 3", "report_retention_months = 2");
        assert!(
            parse_tenant_file(&bad_retention)
                .unwrap_err()
                .to_string()
                .contains("1, 3 or 6")
        );

        assert!(matches!(parse_tenant_file(""), Err(TenantFileError::Empty)));
        assert!(matches!(
            parse_tenant_file("[[tenant]]\nkey = 1"),
            Err(TenantFileError::Syntax(_))
        ));
    }
}
