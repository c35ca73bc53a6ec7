//! `dirsync sync`, `approve`, `reject`, `check` and `preview`: one tenant's run, the R18 decision
//! on a held run, connection test and R22 preview, and how their results print.

use std::process::ExitCode;

use anyhow::Context;

use super::{exit_code, graph_connector, open_store, sync_context};
use crate::audit::{self, Action, Actor};
use crate::domain::TenantKey;
use crate::plan::Plan;
use crate::settings::Settings;
use crate::source::graph::{CheckReport, GraphConnector, TokenCheck, check_connection};
use crate::store::access::AuditOutcome;
use crate::store::{RunOptions, Trigger};
use crate::sync::{
    ApproveError, RejectError, RunOutcome, approve_held_run, dry_run, reject_held_run, run_sync,
};
use crate::tenant::Tenant;

/// A Manual run now, forced by whoever runs the command (recorded in the report and the audit
/// log as `dirsync CLI (user@host)`).
pub(super) async fn sync(settings: &Settings, tenant: &str, dry: bool) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let ctx = sync_context(settings, store.clone(), graph_connector(settings)?);
    if dry {
        let plan = dry_run(&ctx, &key).await?;
        print!("{}", describe_plan(&plan));
        return Ok(ExitCode::SUCCESS);
    }
    let actor = Actor::cli();
    let outcome = run_sync(
        &ctx,
        &key,
        Trigger::manual(actor.name.clone()),
        RunOptions::default(),
    )
    .await?;
    audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &actor,
        Action::RunForce,
        Some(&key),
        AuditOutcome::Ok,
        serde_json::json!({"run": outcome.run_id, "status": outcome.status.as_str()}),
    )
    .await;
    print!("{}", describe_outcome(&outcome));
    Ok(exit_code(outcome.status, outcome.already_running))
}

/// R18: approves a held run and carries the approval out in this process.
pub(super) async fn approve(
    settings: &Settings,
    tenant: &str,
    run: i64,
    by: &str,
) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let ctx = sync_context(settings, store.clone(), graph_connector(settings)?);
    let pending = match approve_held_run(&ctx, &key, run, by).await {
        Ok(pending) => pending,
        Err(ApproveError::Refused(refused)) => {
            println!("approval refused: {refused}");
            return Ok(ExitCode::from(5));
        }
        Err(ApproveError::Sync(err)) => return Err(err.into()),
    };
    audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &Actor::cli(),
        Action::RunApprove,
        Some(&key),
        AuditOutcome::Ok,
        serde_json::json!({"approved_run": run, "run": pending.id(), "by": by.trim()}),
    )
    .await;
    println!(
        "run {run} approved by {}; run {} carries it out",
        by.trim(),
        pending.id()
    );
    let outcome = pending.execute().await?;
    print!("{}", describe_outcome(&outcome));
    Ok(exit_code(outcome.status, outcome.already_running))
}

/// R18: rejects a held run; it can no longer be approved.
pub(super) async fn reject(
    settings: &Settings,
    tenant: &str,
    run: i64,
    by: &str,
    reason: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let ctx = sync_context(settings, store.clone(), graph_connector(settings)?);
    let rejection = match reject_held_run(&ctx, &key, run, by, reason).await {
        Ok(rejection) => rejection,
        Err(RejectError::Refused(refused)) => {
            println!("rejection refused: {refused}");
            return Ok(ExitCode::from(5));
        }
        Err(RejectError::Sync(err)) => return Err(err.into()),
    };
    audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &Actor::cli(),
        Action::RunReject,
        Some(&key),
        AuditOutcome::Ok,
        serde_json::json!({"rejected_run": run, "by": rejection.by, "reason": rejection.reason}),
    )
    .await;
    println!(
        "run {run} rejected by {}; it applies nothing and can no longer be approved",
        rejection.by
    );
    Ok(ExitCode::SUCCESS)
}

/// The tenant and the Graph connector `check` and `preview` both need, or why there are none.
async fn tenant_and_graph(
    settings: &Settings,
    key: &TenantKey,
) -> anyhow::Result<(
    std::sync::Arc<dyn crate::store::Database>,
    Tenant,
    GraphConnector,
)> {
    let store = open_store(settings).await?;
    let tenant = store
        .tenant(key)
        .await?
        .with_context(|| format!("no tenant with key {key:?} (see `dirsync tenant list`)"))?;
    // The check reads the tenant's own source settings: `env:` references resolved, as in a run.
    let tenant = crate::connect::resolved(&tenant, &settings.secrets)
        .map_err(|problem| anyhow::anyhow!("tenant {key}: {problem}"))?;
    let graph = graph_connector(settings)?.context(
        "Microsoft Graph is not configured: set [graph] client_id and credential in the service \
         settings (or DIRSYNC__GRAPH__CLIENT_ID …)",
    )?;
    Ok((store, tenant, graph))
}

async fn check_tenant(graph: &GraphConnector, tenant: &Tenant) -> CheckReport {
    let groups: Vec<_> = tenant
        .policy
        .selected_groups
        .iter()
        .map(|g| g.entra_id.clone())
        .collect();
    check_connection(graph, tenant, &groups).await
}

pub(super) async fn check(settings: &Settings, tenant: &str) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let tenant = store
        .tenant(&key)
        .await?
        .with_context(|| format!("no tenant with key {key:?} (see `dirsync tenant list`)"))?;
    Ok(if check_stored_tenant(settings, store, &tenant).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `dirsync check` of a stored tenant (also run by `tenant apply --check-connection`): signs in
/// to Entra and counts each selected group, then makes one harmless look-up in the target,
/// printing both. True when everything answered as it should.
pub(super) async fn check_stored_tenant(
    settings: &Settings,
    store: std::sync::Arc<dyn crate::store::Database>,
    tenant: &Tenant,
) -> anyhow::Result<bool> {
    // The check reads the tenant's own source settings: `env:` references resolved, as in a run.
    let tenant = crate::connect::resolved(tenant, &settings.secrets)
        .map_err(|problem| anyhow::anyhow!("tenant {}: {problem}", tenant.key))?;
    let graph = graph_connector(settings)?.context(
        "Microsoft Graph is not configured: set [graph] client_id and credential in the service \
         settings (or DIRSYNC__GRAPH__CLIENT_ID …)",
    )?;
    let report = check_tenant(&graph, &tenant).await;
    print!("{report}");
    let ctx = sync_context(settings, store.clone(), Some(graph));
    let target_ok = check_target(&ctx, &tenant).await;
    print_expiries(store.as_ref(), ctx.connector.as_ref(), &tenant).await?;
    Ok(report.is_ok() && target_ok)
}

/// Issue 14 item 6: each credential's expiry, and a warning from 30 days before. A warning does
/// not fail the check (the credential still works).
async fn print_expiries(
    store: &dyn crate::store::Database,
    connector: &dyn crate::sync::Connector,
    tenant: &Tenant,
) -> anyhow::Result<()> {
    use crate::notify::expiry;
    let (expiries, graph_note) =
        expiry::credential_expiries(store, Some(connector), tenant).await?;
    for found in &expiries {
        let label = crate::notify::event::credential_label(found.credential);
        match found.warning(chrono::Utc::now(), expiry::WARNING_DAYS) {
            Some(warning) => println!("credential WARNING: {}", warning.message),
            None => println!(
                "credential {label} expires {} ok",
                found.expires_at.format("%Y-%m-%d")
            ),
        }
    }
    if expiries.iter().all(|e| e.credential != expiry::GRAPH_APP) {
        if let Some(note) = graph_note {
            println!("credential app expiry unknown: {note}");
        }
    }
    Ok(())
}

/// Connects to the tenant's target and looks up one address that cannot exist: the sign-in and
/// the API answer, or the sentence saying why not. Changes nothing.
async fn check_target(ctx: &crate::sync::SyncContext, tenant: &Tenant) -> bool {
    let outcome = crate::sync::probe_target(ctx, tenant).await;
    match outcome {
        Ok(kind) => {
            println!("target    {kind} ok");
            true
        }
        Err(problem) => {
            println!("target    FAILED: {problem}");
            false
        }
    }
}

/// R22: the per-group counts of `check`, then the counts of a dry run.
pub(super) async fn preview(settings: &Settings, tenant: &str) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let (store, tenant, graph) = tenant_and_graph(settings, &key).await?;
    let report = check_tenant(&graph, &tenant).await;
    print!("{report}");
    if report.token != TokenCheck::Ok {
        return Ok(ExitCode::FAILURE);
    }
    let ctx = sync_context(settings, store, Some(graph));
    println!();
    match dry_run(&ctx, &key).await {
        Ok(plan) => {
            print!(
                "if a sync ran now (dry run, nothing was changed):\n{}",
                describe_plan_counts(&plan)
            );
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(err) => {
            println!("the dry run could not be planned: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A plan's counts as people read them, and the deletion guard's hold if any.
pub fn describe_plan_counts(plan: &Plan) -> String {
    let c = plan.counts();
    let mut out = format!(
        "groups: {} to create, {} to rename, {} to convert to system groups\n\
         users: {} to create, {} to adopt, {} to update, {} to activate, {} to deactivate\n\
         memberships: {} to add, {} to remove\n\
         {} warnings, {} errors\n",
        c.groups_created,
        c.groups_renamed,
        c.groups_converted,
        c.users_created,
        c.users_adopted,
        c.users_updated,
        c.users_activated,
        c.users_deactivated,
        c.memberships_added,
        c.memberships_removed,
        c.warnings,
        c.errors
    );
    if let Some(hold) = &plan.hold {
        out.push_str(&format!("{}\n", hold.describe()));
    }
    out
}

/// A dry run's plan as people read it: counts, then each group's outcome.
pub fn describe_plan(plan: &Plan) -> String {
    let mut out = format!(
        "dry run — nothing was changed\n{}",
        describe_plan_counts(plan)
    );
    for group in &plan.groups {
        out.push_str(&format!(
            "group {} {:?} ({}): {}{}\n",
            group.entra_id,
            group.label(),
            group.role,
            group.status.as_str(),
            group
                .members_seen
                .map(|n| format!(", {n} direct user members"))
                .unwrap_or_default()
        ));
    }
    out
}

/// A finished run as people read it: what was applied, and for a held, failed or stopped run
/// also what was planned, labelled so (R19).
pub fn describe_outcome(outcome: &RunOutcome) -> String {
    if outcome.already_running {
        return format!(
            "run {} is already in progress; no new run was started\n",
            outcome.run_id
        );
    }
    let s = &outcome.summary;
    let mut out = format!(
        "run {}: {}\n{}",
        outcome.run_id,
        outcome.status.as_str(),
        describe_changes(&s.applied, "")
    );
    if let Some(label) = s.planned_label(outcome.status) {
        out.push_str(&format!("{label}:\n{}", describe_changes(&s.planned, "  ")));
    }
    out.push_str(&format!(
        "operations: {} applied, {} failed; {} warnings, {} errors\n\
         Graph: {} requests, {} throttled, {} ms waited\n",
        s.operations_applied,
        s.operations_failed,
        s.applied.warnings,
        s.applied.errors,
        s.source.requests,
        s.source.throttled,
        s.source.waited_ms
    ));
    if let Some(message) = &outcome.message {
        out.push_str(message);
        out.push('\n');
    }
    out
}

/// The user, group and membership changes of a tally, one line each, indented by `indent`.
fn describe_changes(c: &crate::plan::PlanCounts, indent: &str) -> String {
    format!(
        "{indent}users: {} created, {} adopted, {} updated, {} activated, {} deactivated\n\
         {indent}groups: {} created, {} renamed, {} converted; memberships: {} added, {} removed\n",
        c.users_created,
        c.users_adopted,
        c.users_updated,
        c.users_activated,
        c.users_deactivated,
        c.groups_created,
        c.groups_renamed,
        c.groups_converted,
        c.memberships_added,
        c.memberships_removed,
    )
}
