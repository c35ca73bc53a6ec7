//! `dirsync access grant|revoke|list`: who may use which tenant, managed from the command line
//! (as an operator with the database's credentials; each change goes to the audit log).

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::open_store;
use crate::audit::{self, Action, Actor};
use crate::auth::manage::new_grant;
use crate::domain::{AccessRole, TenantKey};
use crate::settings::Settings;
use crate::store::access::{AuditOutcome, GrantRecord};

fn line(grant: &GrantRecord) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        grant.id,
        grant.role,
        grant
            .tenant
            .as_ref()
            .map_or("(every tenant)", TenantKey::as_str),
        grant.identity,
        grant.label.as_deref().unwrap_or("-"),
        grant.granted_by
    )
}

pub(super) async fn grant(
    settings: &Settings,
    entra_tenant_id: &str,
    entra_object_id: &str,
    role: AccessRole,
    tenant: Option<&str>,
    label: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let actor = Actor::cli();
    let grant = new_grant(
        entra_tenant_id,
        entra_object_id,
        role,
        tenant,
        label,
        &actor.name,
    )?;
    let store = open_store(settings).await?;
    let record = store.grant(&grant).await?;
    audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &actor,
        Action::Grant,
        record.tenant.as_ref(),
        AuditOutcome::Ok,
        serde_json::to_value(&record).unwrap_or_default(),
    )
    .await;
    println!("granted: {}", line(&record));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn revoke(settings: &Settings, id: i64) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let record = store
        .revoke_grant(id)
        .await?
        .with_context(|| format!("there is no grant {id} (see `dirsync access list`)"))?;
    audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &Actor::cli(),
        Action::GrantRevoke,
        record.tenant.as_ref(),
        AuditOutcome::Ok,
        json!(record),
    )
    .await;
    println!("revoked: {}", line(&record));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list(settings: &Settings, tenant: Option<&str>) -> anyhow::Result<ExitCode> {
    let tenant = tenant.map(TenantKey::parse).transpose()?;
    let store = open_store(settings).await?;
    println!("id\trole\ttenant\tentra identity (tid/oid)\tlabel\tgranted by");
    for grant in store.grants(tenant.as_ref()).await? {
        println!("{}", line(&grant));
    }
    Ok(ExitCode::SUCCESS)
}
