//! `dirsync tenant apply|list|connect-highq|consent-url`: tenants from a TOML file into the
//! database (with an optional connection check), back out, connected to HighQ, and the
//! admin-consent URL to send a customer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use secrecy::SecretString;

use serde_json::json;

use super::open_store;
use super::sync::check_stored_tenant;
use crate::audit::{self, Action, Actor};
use crate::domain::TenantKey;
use crate::settings::Settings;
use crate::store::access::AuditOutcome;
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
    // `env:` references within the secret prefix only: refused here, before anything is stored.
    let mut tenants = tenants;
    let refused: Vec<String> = tenants
        .iter_mut()
        .filter_map(|tenant| {
            let key = tenant.key.clone();
            tenant
                .check_secret_references(&settings.secrets)
                .err()
                .map(|problem| format!("{}: tenant \"{key}\": {problem}", file.display()))
        })
        .collect();
    if !refused.is_empty() {
        anyhow::bail!(refused.join("\n"));
    }
    let store = open_store(settings).await?;
    let actor = Actor::cli();
    let policy = crate::sync::SyncSettings::from(settings.sync).quarantine;
    for tenant in &tenants {
        let before = store.tenant(&tenant.key).await?;
        let saved = store.upsert_tenant(tenant).await?;
        // Issue 14: a change to the connection settings is a fix: it lifts a quarantine.
        if crate::schedule::lift_quarantine_after_fix(
            store.as_ref(),
            store.as_ref(),
            &policy,
            &actor,
            before.as_ref(),
            tenant,
            false,
            chrono::Utc::now(),
        )
        .await?
        {
            println!(
                "tenant {}: its quarantine is lifted (connection settings changed)",
                tenant.key
            );
        }
        audit::record(
            store.as_ref(),
            chrono::Utc::now(),
            &actor,
            if saved.created {
                Action::TenantCreate
            } else {
                Action::TenantUpdate
            },
            Some(&tenant.key),
            AuditOutcome::Ok,
            json!({"connection_changed": saved.connection_changed, "file": file.display().to_string(),
                   "tenant": serde_json::to_value(tenant).unwrap_or_default()}),
        )
        .await;
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
        if saved.connection_changed {
            println!(
                "tenant {}: it connects somewhere else now; its stored target token was dropped \
                 (connect HighQ again: dirsync tenant connect-highq --tenant {})",
                tenant.key, tenant.key
            );
        }
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
    crate::connect::connect_highq(
        store.as_ref(),
        &tenant,
        &settings.secrets,
        &SecretString::from(code),
        redirect_uri,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    audit::record(
        store.as_ref(),
        chrono::Utc::now(),
        &Actor::cli(),
        Action::TargetConnect,
        Some(&key),
        AuditOutcome::Ok,
        json!({"target": "highq", "redirect_uri": redirect_uri}),
    )
    .await;
    let policy = crate::sync::SyncSettings::from(settings.sync).quarantine;
    if crate::schedule::lift_quarantine_after_fix(
        store.as_ref(),
        store.as_ref(),
        &policy,
        &Actor::cli(),
        Some(&tenant),
        &tenant,
        true,
        chrono::Utc::now(),
    )
    .await?
    {
        println!("tenant {key}: its quarantine is lifted (new credentials)");
    }
    println!("tenant {key}: connected to HighQ; the refresh token is stored");
    Ok(ExitCode::SUCCESS)
}

/// The Microsoft Entra admin-consent URL for a customer's directory: their Global (or
/// Privileged Role) Administrator opens it, signs in and grants the app registration its Graph
/// application permissions in their directory, once.
pub(super) fn admin_consent_url(
    authority_host: &url::Url,
    entra_tenant_id: &crate::domain::EntraObjectId,
    client_id: &str,
    redirect_uri: Option<&str>,
) -> url::Url {
    let mut url = authority_host.clone();
    url.set_path(&format!("/{entra_tenant_id}/adminconsent"));
    url.set_query(None);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("client_id", client_id);
        if let Some(redirect_uri) = redirect_uri {
            query.append_pair("redirect_uri", redirect_uri);
        }
    }
    url
}

/// `dirsync tenant consent-url`: for a stored tenant (its own app registration if it has one),
/// or for a directory not configured yet.
pub(super) async fn consent_url(
    settings: &Settings,
    tenant: Option<&str>,
    entra_tenant_id: Option<&str>,
    redirect_uri: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (directory, own_client_id) = match (tenant, entra_tenant_id) {
        (Some(key), None) => {
            let key = TenantKey::parse(key)?;
            let store = open_store(settings).await?;
            let tenant = store.tenant(&key).await?.with_context(|| {
                format!("no tenant with key {key:?} (see `dirsync tenant list`)")
            })?;
            (
                tenant.entra_tenant_id.clone(),
                tenant.source.client_id.clone(),
            )
        }
        (None, Some(id)) => (
            crate::domain::EntraObjectId::parse(id)
                .map_err(|e| anyhow::anyhow!("--entra-tenant-id: {e}"))?,
            None,
        ),
        _ => anyhow::bail!("give either --tenant KEY or --entra-tenant-id GUID"),
    };
    let client_id = match (own_client_id, &settings.graph) {
        (Some(own), _) => own,
        (None, Some(graph)) => graph.client_id.clone(),
        (None, None) => anyhow::bail!(
            "no app registration to consent to: configure [graph] client_id (or the tenant's \
             [tenant.source] client_id)"
        ),
    };
    let authority = settings.graph.as_ref().map_or_else(
        || url::Url::parse(crate::source::graph::PUBLIC_AUTHORITY_HOST).expect("a valid URL"),
        |graph| graph.authority_host.clone(),
    );
    println!(
        "{}",
        admin_consent_url(&authority, &directory, &client_id, redirect_uri)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EntraObjectId;

    #[test]
    fn the_consent_url_names_the_customers_directory_and_the_app() {
        let tenant = EntraObjectId::parse("72F988BF-86F1-41AF-91AB-2D7CD011DB47").unwrap();
        let authority = url::Url::parse("https://login.microsoftonline.com").unwrap();
        assert_eq!(
            admin_consent_url(&authority, &tenant, "app-id", None).as_str(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/adminconsent?client_id=app-id"
        );
        assert_eq!(
            admin_consent_url(
                &authority,
                &tenant,
                "a&b",
                Some("https://x.example/done?a=1")
            )
            .as_str(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/adminconsent?client_id=a%26b&redirect_uri=https%3A%2F%2Fx.example%2Fdone%3Fa%3D1"
        );
    }
}
