//! The audit log: every sign-in, grant change, token creation and revocation, tenant change,
//! forced, approved and rejected run and report download, with who, when and from where, kept in the
//! `AccessStore` and read by operators (`GET /api/v1/audit`, `dirsync audit list`).
//!
//! Events about a tenant's runs and reports are kept as long as the reports (the tenant's
//! retention); the others — access, tokens, configuration, sign-ins — for a year.
//! Recording never fails the action it records: a store error is logged instead.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::auth::caller::{Caller, ClientInfo};
use crate::domain::TenantKey;
use crate::store::access::{AccessStore, AuditEvent, AuditOutcome};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignIn,
    SignOut,
    Grant,
    GrantRevoke,
    TokenCreate,
    TokenRevoke,
    TenantCreate,
    TenantUpdate,
    /// A HighQ target connected with an authorization code.
    TargetConnect,
    RunForce,
    RunApprove,
    /// R18: a held run rejected.
    RunReject,
    ReportDownload,
    /// Issue 14: a tenant paused or resumed, the service paused or resumed (maintenance).
    TenantPause,
    TenantResume,
    ServicePause,
    ServiceResume,
    /// Issue 14: a tenant quarantined after failed nights, and a quarantine lifted by a fix.
    TenantQuarantine,
    QuarantineLift,
    /// A notification sent, or given up (issue 14).
    Notification,
    /// A tenant's notification settings changed.
    NotificationSettings,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Self::SignIn,
        Self::SignOut,
        Self::Grant,
        Self::GrantRevoke,
        Self::TokenCreate,
        Self::TokenRevoke,
        Self::TenantCreate,
        Self::TenantUpdate,
        Self::TargetConnect,
        Self::RunForce,
        Self::RunApprove,
        Self::RunReject,
        Self::ReportDownload,
        Self::TenantPause,
        Self::TenantResume,
        Self::ServicePause,
        Self::ServiceResume,
        Self::TenantQuarantine,
        Self::QuarantineLift,
        Self::Notification,
        Self::NotificationSettings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::SignOut => "sign_out",
            Self::Grant => "grant",
            Self::GrantRevoke => "grant_revoke",
            Self::TokenCreate => "token_create",
            Self::TokenRevoke => "token_revoke",
            Self::TenantCreate => "tenant_create",
            Self::TenantUpdate => "tenant_update",
            Self::TargetConnect => "target_connect",
            Self::RunForce => "run_force",
            Self::RunApprove => "run_approve",
            Self::RunReject => "run_reject",
            Self::ReportDownload => "report_download",
            Self::TenantPause => "tenant_pause",
            Self::TenantResume => "tenant_resume",
            Self::ServicePause => "service_pause",
            Self::ServiceResume => "service_resume",
            Self::TenantQuarantine => "tenant_quarantine",
            Self::QuarantineLift => "quarantine_lift",
            Self::Notification => "notification",
            Self::NotificationSettings => "notification_settings",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == text)
    }
}

/// Who acted, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub id: Option<String>,
    pub client: ClientInfo,
}

impl Actor {
    pub fn of(caller: &Caller) -> Self {
        Self {
            name: caller.name.clone(),
            id: Some(caller.actor_id.clone()),
            client: caller.client.clone(),
        }
    }

    /// Someone at the command line of a machine with the database's credentials.
    pub fn cli() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned());
        Self {
            name: format!("dirsync CLI ({user}@{host})"),
            id: Some(format!("cli:{user}@{host}")),
            client: ClientInfo::default(),
        }
    }

    /// Someone not (yet) signed in.
    pub fn anonymous(name: Option<&str>, id: Option<String>, client: ClientInfo) -> Self {
        Self {
            name: name.unwrap_or("anonymous").to_owned(),
            id,
            client,
        }
    }
}

/// Records one event; a failure to record is logged, never returned.
pub async fn record(
    store: &dyn AccessStore,
    at: DateTime<Utc>,
    actor: &Actor,
    action: Action,
    tenant: Option<&TenantKey>,
    outcome: AuditOutcome,
    detail: Value,
) {
    let event = AuditEvent {
        at,
        tenant: tenant.cloned(),
        actor: actor.name.clone(),
        actor_id: actor.id.clone(),
        action: action.as_str().to_owned(),
        outcome,
        detail,
        source_ip: actor.client.ip.clone(),
        forwarded_for: actor.client.forwarded_for.clone(),
        user_agent: actor.client.user_agent.clone(),
    };
    if let Err(err) = store.record_audit(&event).await {
        tracing::error!(%err, action = action.as_str(), actor = %actor.name, "could not record an audit event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_name() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(*action));
        }
        assert_eq!(Action::parse("bogus"), None);
    }

    #[test]
    fn run_and_report_actions_are_the_ones_kept_for_the_tenants_retention() {
        let retained: Vec<&str> = [
            Action::RunForce,
            Action::RunApprove,
            Action::RunReject,
            Action::ReportDownload,
        ]
        .iter()
        .map(|a| a.as_str())
        .collect();
        assert_eq!(retained, crate::store::access::TENANT_RETAINED_ACTIONS);
    }
}
