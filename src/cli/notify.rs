//! `dirsync notify show|set|test --tenant KEY`: a tenant's notification settings (issue 14 item
//! 3) from the command line, with the same checks and audit records as the API. The command line
//! holds the database's credentials, so it may set the webhook, as an operator may.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::open_store;
use crate::audit::{Action, Actor};
use crate::domain::TenantKey;
use crate::notify::{Event, TenantNotifications};
use crate::settings::Settings;
use crate::store::access::AuditOutcome;

pub(super) async fn show(settings: &Settings, tenant: &str) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let stored = store.notification_settings(&key).await?;
    let shown = match &stored {
        Some(stored) => json!({
            "settings": stored.settings,
            "updated_by": stored.updated_by,
            "updated_at": stored.updated_at,
        }),
        None => json!({ "settings": TenantNotifications::default() }),
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    println!("\nlatest notifications:");
    for n in store.notifications(&key, 20).await? {
        println!(
            "{}\t{}\t{}\t{}\t{} attempt(s)\t{}",
            n.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            n.event.as_str(),
            n.channel.as_str(),
            n.status.as_str(),
            n.attempts,
            n.last_error.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Replaces the settings with the JSON file's (`webhook`, `email_to`, `events`,
/// `error_threshold`, `daily_digest`).
pub(super) async fn set(
    settings: &Settings,
    tenant: &str,
    file: &Path,
) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("could not read {}", file.display()))?;
    let wanted: TenantNotifications = serde_json::from_str(&text)
        .with_context(|| format!("{} is not notification settings", file.display()))?;
    let store = open_store(settings).await?;
    store
        .tenant(&key)
        .await?
        .with_context(|| format!("no tenant with key {key:?}"))?;
    let stored = store.notification_settings(&key).await?.map(|s| s.settings);
    let saved = wanted
        .validated(stored.as_ref(), &settings.secrets)
        .map_err(|problems| anyhow::anyhow!("{}", problems.join("\n")))?;
    let actor = Actor::cli();
    store
        .save_notification_settings(&key, &saved, &actor.name, chrono::Utc::now())
        .await?;
    crate::audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &actor,
        Action::NotificationSettings,
        Some(&key),
        AuditOutcome::Ok,
        json!({
            "webhook_host": saved.webhook.as_ref().and_then(|w| w.url.host_str().map(str::to_owned)),
            "email_recipients": saved.email_to.len(),
            "events": saved.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        }),
    )
    .await;
    println!("saved the notification settings of {key}");
    Ok(ExitCode::SUCCESS)
}

/// Queues a test notification; the running service's worker delivers it.
pub(super) async fn test(settings: &Settings, tenant: &str) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let stored = store.notification_settings(&key).await?.with_context(|| {
        format!("tenant {key} has no notification settings (dirsync notify set)")
    })?;
    let queued = crate::notify::enqueue(
        store.as_ref(),
        &key,
        &stored.settings,
        &Event::Test {
            requested_by: Actor::cli().name,
        },
        chrono::Utc::now(),
    )
    .await?;
    if queued.is_empty() {
        anyhow::bail!("tenant {key} has neither a webhook nor an email recipient");
    }
    println!(
        "queued test notification(s) {queued:?}; the service's delivery worker sends them \
         (dirsync notify show --tenant {key} shows how it went)"
    );
    Ok(ExitCode::SUCCESS)
}
