//! Builds each tenant's source and target connections from its stored configuration.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use secrecy::SecretString;

use crate::domain::SecretEnvPolicy;
use crate::settings::Settings;
use crate::source::DirectorySource;
use crate::source::graph::GraphConnector;
use crate::store::Database;
use crate::sync::{Connector, SyncContext};
use crate::target::TargetAdapter;
use crate::target::highq::{HighQAdapter, HighQConfig};
use crate::target::scim::ScimAdapter;
use crate::tenant::{TargetSettings, Tenant};

/// The production connector: Microsoft Graph for the source, the adapter named by the tenant's
/// `target.kind` for the target. Target credentials that rotate are kept in the database.
#[derive(Clone)]
pub struct ConfiguredConnector {
    database: Arc<dyn Database>,
    graph: Option<GraphConnector>,
    /// Which environment variables tenant settings may read.
    secrets: SecretEnvPolicy,
}

impl ConfiguredConnector {
    /// `graph` is `None` when the service has no Graph app registration configured; runs then
    /// fail with a sentence saying so.
    pub fn new(
        database: Arc<dyn Database>,
        graph: Option<GraphConnector>,
        secrets: SecretEnvPolicy,
    ) -> Self {
        Self {
            database,
            graph,
            secrets,
        }
    }
}

/// The Graph connector the settings' `[graph]` section describes, if there is one.
pub fn graph_connector(settings: &Settings) -> anyhow::Result<Option<GraphConnector>> {
    settings
        .graph
        .clone()
        .map(GraphConnector::new)
        .transpose()
        .context("the [graph] settings are not valid")
}

/// The run context for production: the database and this connector, tuned by `settings`.
pub fn production_context(
    settings: &Settings,
    database: Arc<dyn Database>,
    graph: Option<GraphConnector>,
) -> SyncContext {
    SyncContext {
        connector: Arc::new(ConfiguredConnector::new(
            database.clone(),
            graph,
            settings.secrets.clone(),
        )),
        store: database,
        settings: settings.sync.into(),
    }
}

/// The tenant with its `env:` references read from the environment, within `policy`. Everything
/// that builds a connection from a stored tenant goes through this.
pub fn resolved(tenant: &Tenant, policy: &SecretEnvPolicy) -> Result<Tenant, String> {
    tenant.resolved(policy)
}

/// The HighQ adapter of a tenant whose settings are resolved, with its refresh token in the
/// database.
pub fn highq_adapter(
    database: &dyn Database,
    tenant: &Tenant,
    config: &HighQConfig,
) -> Result<HighQAdapter, String> {
    let tokens = database.target_tokens(tenant.key.clone(), "highq");
    HighQAdapter::new(config.clone(), tokens).map_err(|err| err.to_string())
}

/// Connects a stored tenant to HighQ for the first time: exchanges the authorization code a HighQ
/// admin's consent produced (issued for `redirect_uri`) for the first refresh token, stored in
/// the database. `dirsync tenant connect-highq` and the console both connect through here.
pub async fn connect_highq(
    database: &dyn Database,
    tenant: &Tenant,
    policy: &SecretEnvPolicy,
    code: &SecretString,
    redirect_uri: &str,
) -> Result<(), String> {
    let tenant = resolved(tenant, policy)?;
    let Some(TargetSettings::Highq(config)) = &tenant.target else {
        return Err(format!(
            "tenant {}: its target is not a HighQ connection (kind = \"highq\")",
            tenant.key
        ));
    };
    let adapter = highq_adapter(database, &tenant, config)
        .map_err(|problem| format!("tenant {}: target: {problem}", tenant.key))?;
    adapter
        .connect_with_authorization_code(code, redirect_uri)
        .await
        .map_err(|err| format!("tenant {}: {err}", tenant.key))
}

#[async_trait]
impl Connector for ConfiguredConnector {
    async fn connect_target(
        &self,
        tenant: &Tenant,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<(), String> {
        connect_highq(
            self.database.as_ref(),
            tenant,
            &self.secrets,
            code,
            redirect_uri,
        )
        .await
    }

    async fn source(&self, tenant: &Tenant) -> Result<Arc<dyn DirectorySource>, String> {
        let tenant = &resolved(tenant, &self.secrets)?;
        let graph = self.graph.as_ref().ok_or_else(|| {
            "Microsoft Graph is not configured: set [graph] client_id and credential in the \
             service settings (or DIRSYNC__GRAPH__CLIENT_ID …)"
                .to_owned()
        })?;
        let source = graph.source_for(tenant).map_err(|err| err.to_string())?;
        Ok(Arc::new(source))
    }

    async fn target(&self, tenant: &Tenant) -> Result<Arc<dyn TargetAdapter>, String> {
        let tenant = &resolved(tenant, &self.secrets)?;
        match &tenant.target {
            None => Err(format!(
                "tenant {} has no target connection: set [tenant.target] (kind highq or scim)",
                tenant.key
            )),
            Some(TargetSettings::Highq(config)) => Ok(Arc::new(highq_adapter(
                self.database.as_ref(),
                tenant,
                config,
            )?)),
            Some(TargetSettings::Scim(settings)) => {
                let adapter = ScimAdapter::new(settings.clone()).map_err(|err| err.to_string())?;
                Ok(Arc::new(adapter))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tenant::TenantSpec;

    fn tenant_with_target(target: serde_json::Value) -> Tenant {
        TenantSpec {
            key: "acme".to_owned(),
            name: None,
            entra_tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned(),
            time_zone: "UTC".to_owned(),
            report_retention_months: 3,
            deactivation_status: None,
            deletion_threshold: 500,
            groups: Vec::new(),
            confirm_no_groups: true,
            source: None,
            target: Some(target),
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn env_references_resolve_only_within_the_prefix_and_a_missing_one_is_named() {
        // Setting a variable of our own would need `unsafe` (edition 2024): PATH is always set,
        // and is exactly what the prefix must keep out.
        let policy = SecretEnvPolicy::default();
        let tenant = tenant_with_target(json!({
            "kind": "highq", "base_url": "https://h.example/acme", "client_id": "c",
            "client_secret": "env:PATH"
        }));
        let err = resolved(&tenant, &policy).unwrap_err();
        assert!(
            err.contains("target.client_secret") && err.contains("DIRSYNC_SECRET_"),
            "{err}"
        );
        let anything = SecretEnvPolicy {
            env_prefix: "PA".to_owned(),
        };
        let path = std::env::var("PATH").expect("PATH is set for tests");
        let Some(TargetSettings::Highq(config)) = resolved(&tenant, &anything).unwrap().target
        else {
            panic!("a HighQ target");
        };
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(config.client_secret.value("x").unwrap()),
            path
        );

        let name = "DIRSYNC_SECRET_TEST_VARIABLE_THAT_IS_NOT_SET";
        let missing = tenant_with_target(json!({
            "kind": "scim", "base_url": "https://a.example/scim", "token": format!("env:{name}")
        }));
        assert_eq!(
            resolved(&missing, &policy).unwrap_err(),
            format!(
                "setting target.token refers to the environment variable {name}, which is not set"
            )
        );
    }
}
