//! Builds each tenant's source and target connections from its stored configuration.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgPool;

use crate::source::DirectorySource;
use crate::store::PgTokenStore;
use crate::sync::Connector;
use crate::target::TargetAdapter;
use crate::target::highq::HighQAdapter;
use crate::tenant::Tenant;

/// The production connector: Microsoft Graph for the source, the adapter named by the tenant's
/// `target.kind` for the target. Target credentials that rotate are kept in the database.
#[derive(Debug, Clone)]
pub struct ConfiguredConnector {
    pool: PgPool,
}

impl ConfiguredConnector {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const SUPPORTED_TARGETS: &[&str] = &["highq"];

#[async_trait]
impl Connector for ConfiguredConnector {
    async fn source(&self, tenant: &Tenant) -> Result<Arc<dyn DirectorySource>, String> {
        Err(format!(
            "tenant {}: the Microsoft Graph source is not configured in this build",
            tenant.key
        ))
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
            other => Err(format!(
                "target kind {other:?} is not supported (supported: {}); set [tenant.target] kind",
                SUPPORTED_TARGETS.join(", ")
            )),
        }
    }
}
