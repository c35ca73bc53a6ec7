//! `dirsync tenant apply|list|connect-highq`: tenants from a TOML file into the database (with
//! an optional connection check), back out, and connected to HighQ.

use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretString;

use super::open_store;
use super::sync::check_stored_tenant;
use crate::domain::TenantKey;
use crate::settings::Settings;
use crate::store::{PgTokenStore, Store};
use crate::target::highq::HighQAdapter;
use crate::tenant::{MAX_TENANT_FILE_BYTES, TenantFileError, parse_tenant_file_bytes};

pub(super) async fn apply(
    settings: &Settings,
    file: &Path,
    check_connection: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = read_bounded(file)?;
    let tenants = parse_tenant_file_bytes(&bytes).map_err(|err| {
        let problems: Vec<String> = err
            .to_string()
            .lines()
            .map(|line| format!("{}: {line}", file.display()))
            .collect();
        anyhow::anyhow!(problems.join("\n"))
    })?;
    let store = open_store(settings).await?;
    for tenant in &tenants {
        store.upsert_tenant(tenant).await?;
        let groups = tenant.policy.selected_groups.len();
        let warning = if groups == 0 {
            " (confirmed: runs sync nobody and say so in a warning)"
        } else {
            ""
        };
        println!(
            "tenant {}: {groups} selected groups{warning}, time zone {}",
            tenant.key, tenant.time_zone
        );
    }
    if !check_connection {
        return Ok(ExitCode::SUCCESS);
    }
    let mut all_ok = true;
    for tenant in &tenants {
        println!("\n== tenant {}: connection check ==", tenant.key);
        match check_stored_tenant(settings, store.clone(), tenant).await {
            Ok(ok) => all_ok &= ok,
            Err(err) => {
                println!("FAILED: {err:#}");
                all_ok = false;
            }
        }
    }
    if !all_ok {
        println!("\nthe tenants are stored, but a connection check failed (see above)");
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The file's bytes, refused unread when it is larger than a tenant file may be.
fn read_bounded(file: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let opened =
        std::fs::File::open(file).with_context(|| format!("could not read {}", file.display()))?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_TENANT_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("could not read {}", file.display()))?;
    if bytes.len() > MAX_TENANT_FILE_BYTES {
        let size = std::fs::metadata(file).map_or(bytes.len() as u64, |m| m.len());
        anyhow::bail!("{}: {}", file.display(), TenantFileError::TooLarge { size });
    }
    Ok(bytes)
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
