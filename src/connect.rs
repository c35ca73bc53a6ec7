//! Builds each tenant's source and target connections from its stored configuration.

use std::sync::Arc;

use async_trait::async_trait;
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

#[async_trait]
impl Connector for ConfiguredConnector {
    async fn source(&self, tenant: &Tenant) -> Result<Arc<dyn DirectorySource>, String> {
        let graph = self.graph.as_ref().ok_or_else(|| {
            "Microsoft Graph is not configured: set [graph] client_id and credential in the \
             service settings (or DIRSYNC__GRAPH__CLIENT_ID …)"
                .to_owned()
        })?;
        let source = graph.source_for(tenant).map_err(|err| err.to_string())?;
        Ok(Arc::new(source))
    }

    async fn target(&self, tenant: &Tenant) -> Result<Arc<dyn TargetAdapter>, String> {
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
