//! Builds each tenant's source and target connections from its stored configuration.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::PgPool;

use crate::settings::Settings;
use crate::source::DirectorySource;
use crate::source::graph::GraphConnector;
use crate::store::{PgStore, PgTokenStore};
use crate::sync::{Connector, SyncContext};
use crate::target::TargetAdapter;
use crate::target::highq::HighQAdapter;
use crate::target::scim::ScimAdapter;
use crate::tenant::Tenant;

/// The production connector: Microsoft Graph for the source, the adapter named by the tenant's
/// `target.kind` for the target. Target credentials that rotate are kept in the database.
#[derive(Clone)]
pub struct ConfiguredConnector {
    pool: PgPool,
    graph: Option<GraphConnector>,
}

impl ConfiguredConnector {
    /// `graph` is `None` when the service has no Graph app registration configured; runs then
    /// fail with a sentence saying so.
    pub fn new(pool: PgPool, graph: Option<GraphConnector>) -> Self {
        Self { pool, graph }
    }
}

/// The run context for production: the PostgreSQL store and this connector, tuned by `settings`.
pub fn production_context(
    settings: &Settings,
    store: PgStore,
    graph: Option<GraphConnector>,
) -> SyncContext {
    SyncContext {
        connector: Arc::new(ConfiguredConnector::new(store.pool().clone(), graph)),
        store: Arc::new(store),
        settings: settings.sync.into(),
    }
}

const SUPPORTED_TARGETS: &[&str] = &["highq", "scim"];

/// Replaces every string of the form `env:NAME` in a tenant's settings with the value of the
/// environment variable `NAME`, so secrets need not be stored in the database. A missing variable
/// is an error naming it (and the setting), never an empty secret.
pub fn resolve_env_refs(value: &Value, path: &str) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => match text.strip_prefix("env:") {
            Some(name) => Value::String(std::env::var(name).map_err(|_| {
                format!(
                    "setting {path} refers to the environment variable {name}, which is not set"
                )
            })?),
            None => value.clone(),
        },
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve_env_refs(v, &format!("{path}.{k}"))?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| resolve_env_refs(v, &format!("{path}[{i}]")))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The tenant with `env:` references in its source and target settings resolved. Everything
/// that builds a connection from a stored tenant goes through this.
pub fn resolved(tenant: &Tenant) -> Result<Tenant, String> {
    let mut tenant = tenant.clone();
    tenant.source = resolve_env_refs(&tenant.source, "source")?;
    tenant.target = resolve_env_refs(&tenant.target, "target")?;
    Ok(tenant)
}

#[async_trait]
impl Connector for ConfiguredConnector {
    async fn source(&self, tenant: &Tenant) -> Result<Arc<dyn DirectorySource>, String> {
        let tenant = &resolved(tenant)?;
        let graph = self.graph.as_ref().ok_or_else(|| {
            "Microsoft Graph is not configured: set [graph] client_id and credential in the \
             service settings (or DIRSYNC__GRAPH__CLIENT_ID …)"
                .to_owned()
        })?;
        let source = graph.source_for(tenant).map_err(|err| err.to_string())?;
        Ok(Arc::new(source))
    }

    async fn target(&self, tenant: &Tenant) -> Result<Arc<dyn TargetAdapter>, String> {
        let tenant = &resolved(tenant)?;
        let kind = tenant
            .target
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("");
        match kind {
            "highq" => {
                let tokens = PgTokenStore::new(self.pool.clone(), tenant.key.clone(), "highq");
                let adapter = HighQAdapter::from_tenant_target(&tenant.target, Arc::new(tokens))
                    .map_err(|err| err.to_string())?;
                Ok(Arc::new(adapter))
            }
            "scim" => {
                let adapter = ScimAdapter::from_tenant_target(&tenant.target)
                    .map_err(|err| err.to_string())?;
                Ok(Arc::new(adapter))
            }
            other => Err(format!(
                "target kind {other:?} is not supported (supported: {}); set [tenant.target] kind",
                SUPPORTED_TARGETS.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn env_references_in_tenant_settings_are_resolved_and_a_missing_one_is_named() {
        // PATH is always set; setting a variable of our own would need `unsafe` (edition 2024).
        let name = "DIRSYNC_TEST_VARIABLE_THAT_IS_NOT_SET";
        let path_value = std::env::var("PATH").expect("PATH is set for tests");
        let settings =
            json!({"kind": "highq", "client_secret": "env:PATH", "tuning": {"x": ["env:PATH", 3]}});
        let out = resolve_env_refs(&settings, "target").unwrap();
        assert_eq!(out["client_secret"], path_value);
        assert_eq!(out["tuning"]["x"][0], path_value);
        assert_eq!(out["tuning"]["x"][1], 3);
        assert_eq!(out["kind"], "highq");

        let missing = json!({"client_secret": format!("env:{name}")});
        let err = resolve_env_refs(&missing, "target").unwrap_err();
        assert_eq!(
            err,
            format!(
                "setting target.client_secret refers to the environment variable {name}, which is not set"
            )
        );
    }
}
