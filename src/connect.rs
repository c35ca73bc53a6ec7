//! Builds each tenant's source and target connections from its stored configuration.

use std::sync::Arc;

use async_trait::async_trait;

use crate::source::DirectorySource;
use crate::sync::Connector;
use crate::target::TargetAdapter;
use crate::target::scim::ScimAdapter;
use crate::tenant::Tenant;

/// The production connector: Microsoft Graph for the source, the adapter named by the tenant's
/// `target.kind` for the target.
#[derive(Debug, Default)]
pub struct ConfiguredConnector {}

const SUPPORTED_TARGETS: &[&str] = &["scim"];

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
        if kind == "scim" {
            let adapter = ScimAdapter::from_tenant_target(&tenant.target)
                .map_err(|err| format!("tenant {}: {err}", tenant.key))?;
            return Ok(Arc::new(adapter));
        }
        Err(format!(
            "tenant {}: target kind {kind:?} is not supported by this build (supported: {})",
            tenant.key,
            SUPPORTED_TARGETS.join(", ")
        ))
    }
}
