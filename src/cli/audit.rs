//! `dirsync audit list`: the audit log, newest first, as an operator reads it.

use std::process::ExitCode;

use super::open_store;
use crate::audit::Action;
use crate::domain::TenantKey;
use crate::settings::Settings;
use crate::store::access::AuditFilter;

pub(super) async fn list(
    settings: &Settings,
    tenant: Option<&str>,
    action: Option<&str>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let tenant = tenant.map(TenantKey::parse).transpose()?;
    if let Some(action) = action {
        if Action::parse(action).is_none() {
            let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            anyhow::bail!("--action {action:?} is not one of {}", known.join(", "));
        }
    }
    let store = open_store(settings).await?;
    let events = store
        .audit_events(&AuditFilter {
            tenant,
            action: action.map(str::to_owned),
            limit: limit.clamp(1, 10_000) as i64,
            ..AuditFilter::default()
        })
        .await?;
    println!("at\taction\toutcome\ttenant\tactor\tfrom\tdetail");
    for record in events {
        let e = &record.event;
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.at.format("%Y-%m-%d %H:%M:%S UTC"),
            e.action,
            e.outcome.as_str(),
            e.tenant.as_ref().map_or("-", TenantKey::as_str),
            e.actor,
            e.source_ip.as_deref().unwrap_or("-"),
            e.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}
