//! `dirsync tenant pause|resume|status` and `dirsync pause|resume` (issue 14): the same actions
//! as the API and the console, in the name of the person at the command line, audited.

use std::process::ExitCode;

use anyhow::Context;

use super::open_store;
use crate::audit::Actor;
use crate::domain::TenantKey;
use crate::schedule::{self, PauseChange, ScheduleStatus};
use crate::settings::Settings;
use crate::store::Pause;
use crate::sync::SyncSettings;

fn tenant_key(tenant: &str) -> anyhow::Result<TenantKey> {
    TenantKey::parse(tenant).map_err(|err| anyhow::anyhow!("--tenant {tenant:?}: {err}"))
}

fn describe(pause: &Pause) -> String {
    let mut text = format!("by {} since {}", pause.by, pause.at.to_rfc3339());
    if let Some(reason) = &pause.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

fn report(change: &PauseChange, done: &str, already: &str) {
    match (&change.pause, change.changed) {
        (Some(pause), true) => println!("{done}: {}", describe(pause)),
        (Some(pause), false) => println!("{already}: {}", describe(pause)),
        (None, _) => println!("{already}"),
    }
}

pub(super) async fn pause_tenant(
    settings: &Settings,
    tenant: &str,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let key = tenant_key(tenant)?;
    let store = open_store(settings).await?;
    let change = schedule::pause_tenant(
        store.as_ref(),
        store.as_ref(),
        &Actor::cli(),
        &key,
        reason,
        chrono::Utc::now(),
    )
    .await
    .with_context(|| format!("could not pause tenant {key}"))?;
    report(
        &change,
        &format!(
            "tenant {key} paused: its midnights are skipped and no run starts until it is resumed"
        ),
        &format!("tenant {key} was already paused"),
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn resume_tenant(settings: &Settings, tenant: &str) -> anyhow::Result<ExitCode> {
    let key = tenant_key(tenant)?;
    let store = open_store(settings).await?;
    let change = schedule::resume_tenant(
        store.as_ref(),
        store.as_ref(),
        &Actor::cli(),
        &key,
        chrono::Utc::now(),
    )
    .await
    .with_context(|| format!("could not resume tenant {key}"))?;
    report(
        &change,
        &format!("tenant {key} resumed (it had been paused)"),
        &format!("tenant {key} was not paused"),
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn pause_service(
    settings: &Settings,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let change = schedule::pause_service(
        store.as_ref(),
        store.as_ref(),
        &Actor::cli(),
        reason,
        chrono::Utc::now(),
    )
    .await?;
    report(
        &change,
        "dirsync paused for maintenance: every tenant's midnight is skipped and no run starts",
        "dirsync was already paused",
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn resume_service(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let change = schedule::resume_service(
        store.as_ref(),
        store.as_ref(),
        &Actor::cli(),
        chrono::Utc::now(),
    )
    .await?;
    report(
        &change,
        "dirsync resumed (it had been paused)",
        "dirsync was not paused",
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints whether the tenant's midnights run, and if not, why. Exit code 0 when they run, 3
/// when paused or quarantined.
pub(super) async fn status(settings: &Settings, tenant: &str) -> anyhow::Result<ExitCode> {
    let key = tenant_key(tenant)?;
    let store = open_store(settings).await?;
    let config = store
        .tenant(&key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant with key {key:?}"))?;
    let policy = SyncSettings::from(settings.sync).quarantine;
    let status = ScheduleStatus::of(store.as_ref(), &policy, &config).await?;
    let zone = config.time_zone;
    let mut held = false;
    if let Some(pause) = &status.service_pause {
        held = true;
        println!(
            "dirsync is paused for maintenance ({})",
            schedule::paused_by(zone, pause)
        );
    }
    if let Some(pause) = &status.pause {
        held = true;
        println!(
            "tenant {key} is paused ({})",
            schedule::paused_by(zone, pause)
        );
    }
    if let Some(quarantine) = &status.quarantine {
        held = true;
        println!("tenant {key} is {}", quarantine.reason(zone));
    }
    if !held {
        println!("tenant {key} runs every midnight ({zone})");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::from(3))
}
