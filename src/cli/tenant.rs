//! `dirsync tenant apply|list`: tenants from a TOML file into the database, and back out.

use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretString;

use super::open_store;
use crate::domain::TenantKey;
use crate::settings::Settings;
use crate::store::{PgTokenStore, Store};
use crate::target::highq::HighQAdapter;
use crate::tenant::parse_tenant_file;

pub(super) async fn apply(settings: &Settings, file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("could not read {}", file.display()))?;
    let tenants = parse_tenant_file(&text)?;
    let store = open_store(settings).await?;
    for tenant in &tenants {
        store.upsert_tenant(tenant).await?;
        println!(
            "tenant {}: {} selected groups, time zone {}",
            tenant.key,
            tenant.policy.selected_groups.len(),
            tenant.time_zone
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    for tenant in store.tenants().await? {
        println!(
            "{}\t{}\t{}\t{} groups",
            tenant.key,
            tenant.display_name,
            tenant.time_zone,
            tenant.policy.selected_groups.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn connect_highq(
    settings: &Settings,
    tenant: &str,
    code: String,
    redirect_uri: &str,
) -> anyhow::Result<ExitCode> {
    let key = TenantKey::parse(tenant)?;
    let store = open_store(settings).await?;
    let tenant = store
        .tenant(&key)
        .await?
        .with_context(|| format!("no tenant with key {key:?} (see `dirsync tenant list`)"))?;
    let tokens = PgTokenStore::new(store.pool().clone(), key.clone(), "highq");
    let tenant = crate::connect::resolved(&tenant)
        .map_err(|problem| anyhow::anyhow!("tenant {key}: {problem}"))?;
    let adapter = HighQAdapter::from_tenant_target(&tenant.target, Arc::new(tokens))
        .with_context(|| format!("tenant {key}: [tenant.target]"))?;
    adapter
        .connect_with_authorization_code(&SecretString::from(code), redirect_uri)
        .await
        .with_context(|| format!("tenant {key}"))?;
    println!("tenant {key}: connected to HighQ; the refresh token is stored");
    Ok(ExitCode::SUCCESS)
}
