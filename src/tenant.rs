//! A tenant's configuration: who they are in Entra, when they run, what is synced and where to.

use serde::{Deserialize, Serialize};

use crate::domain::{EntraObjectId, TenantKey};
use crate::plan::TenantPolicy;

/// An Entra directory (tenant) ID: a GUID of the same form as an object ID.
pub type EntraTenantId = EntraObjectId;

/// R19: how long a tenant's reports are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Retention {
    OneMonth,
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

impl Default for Retention {
    fn default() -> Self {
        Self::ThreeMonths
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
