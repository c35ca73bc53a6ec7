//! `dirsync token create|list|revoke`: API tokens for automation. A new token is printed once;
//! dirsync keeps only its hash and its visible prefix.

use std::process::ExitCode;

use anyhow::Context;
use secrecy::ExposeSecret;

use super::open_store;
use crate::audit::{self, Action, Actor};
use crate::auth::manage::issue_token;
use crate::domain::{AccessRole, TenantKey};
use crate::settings::Settings;
use crate::store::access::{AuditOutcome, TokenRecord};

fn line(token: &TokenRecord) -> String {
    let state = match (&token.revoked_at, token.expires_at <= chrono::Utc::now()) {
        (Some(at), _) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
        (None, true) => "expired".to_owned(),
        (None, false) => "active".to_owned(),
    };
    format!(
        "{}\t{}…\t{}\t{}\t{}\t{}\t{}\t{}",
        token.id,
        token.prefix,
        token.name,
        token.role,
        token
            .tenant
            .as_ref()
            .map_or("(every tenant)", TenantKey::as_str),
        token.expires_at.format("%Y-%m-%d"),
        token.last_used_at.map_or_else(
            || "never".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M").to_string()
        ),
        state
    )
}

pub(super) async fn create(
    settings: &Settings,
    name: &str,
    role: AccessRole,
    tenant: Option<&str>,
    expires_in_days: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let actor = Actor::cli();
    let store = open_store(settings).await?;
    let now = chrono::Utc::now();
    let (token, record) = issue_token(
        store.as_ref(),
        &settings.auth.tokens,
        name,
        role,
        tenant,
        expires_in_days,
        &actor.name,
        now,
    )
    .await?;
    audit::record(
        store.as_ref(),
        now,
        &actor,
        Action::TokenCreate,
        record.tenant.as_ref(),
        AuditOutcome::Ok,
        serde_json::to_value(&record).unwrap_or_default(),
    )
    .await;
    println!("{}", token.expose_secret());
    eprintln!(
        "token {} ({}): {} {}, expires {}. It is shown this once; dirsync keeps only its hash.",
        record.id,
        record.prefix,
        record.role,
        record
            .tenant
            .as_ref()
            .map_or("of every tenant".to_owned(), |t| format!("of {t}")),
        record.expires_at.format("%Y-%m-%d")
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    println!("id\tprefix\tname\trole\ttenant\texpires\tlast used\tstate");
    for token in store.tokens().await? {
        println!("{}", line(&token));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn revoke(settings: &Settings, id: i64) -> anyhow::Result<ExitCode> {
    let actor = Actor::cli();
    let store = open_store(settings).await?;
    let now = chrono::Utc::now();
    let record = store
        .revoke_token(id, &actor.name, now)
        .await?
        .with_context(|| format!("there is no token {id} (see `dirsync token list`)"))?;
    audit::record(
        store.as_ref(),
        now,
        &actor,
        Action::TokenRevoke,
        record.tenant.as_ref(),
        AuditOutcome::Ok,
        serde_json::to_value(&record).unwrap_or_default(),
    )
    .await;
    println!("{}", line(&record));
    Ok(ExitCode::SUCCESS)
}
