//! A tenant's target refresh token kept in dirsync's database (PostgreSQL or SQLite): the
//! durable `TokenStore` for HighQ.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::domain::TenantKey;
use crate::target::highq::{TokenStore, TokenStoreError};

/// One tenant's refresh token for one kind of target. A save is committed (and so survives a
/// crash) before it returns.
#[derive(Debug, Clone)]
pub struct PgTokenStore {
    pool: PgPool,
    tenant: TenantKey,
    target_kind: &'static str,
}

impl PgTokenStore {
    pub fn new(pool: PgPool, tenant: TenantKey, target_kind: &'static str) -> Self {
        Self {
            pool,
            tenant,
            target_kind,
        }
    }
}

#[async_trait]
impl TokenStore for PgTokenStore {
    async fn load(&self) -> Result<Option<SecretString>, TokenStoreError> {
        let token: Option<String> = sqlx::query_scalar(
            "SELECT t.refresh_token FROM target_tokens t JOIN tenants n ON n.id = t.tenant_id
             WHERE n.key = $1 AND t.target_kind = $2",
        )
        .bind(self.tenant.as_str())
        .bind(self.target_kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(token.map(SecretString::from))
    }

    async fn save(&self, token: &SecretString) -> Result<(), TokenStoreError> {
        let saved = sqlx::query(
            "INSERT INTO target_tokens (tenant_id, target_kind, refresh_token)
             SELECT id, $2, $3 FROM tenants WHERE key = $1
             ON CONFLICT (tenant_id, target_kind)
             DO UPDATE SET refresh_token = EXCLUDED.refresh_token, updated_at = now()",
        )
        .bind(self.tenant.as_str())
        .bind(self.target_kind)
        .bind(token.expose_secret())
        .execute(&self.pool)
        .await?;
        if saved.rows_affected() == 0 {
            return Err(format!("no tenant {} to save a refresh token for", self.tenant).into());
        }
        Ok(())
    }
}

/// [`PgTokenStore`]'s SQLite twin: the same rows in the embedded database file.
#[derive(Debug, Clone)]
pub struct SqliteTokenStore {
    pool: sqlx::SqlitePool,
    tenant: TenantKey,
    target_kind: &'static str,
}

impl SqliteTokenStore {
    pub fn new(pool: sqlx::SqlitePool, tenant: TenantKey, target_kind: &'static str) -> Self {
        Self {
            pool,
            tenant,
            target_kind,
        }
    }
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    async fn load(&self) -> Result<Option<SecretString>, TokenStoreError> {
        let token: Option<String> = sqlx::query_scalar(
            "SELECT t.refresh_token FROM target_tokens t JOIN tenants n ON n.id = t.tenant_id
             WHERE n.key = $1 AND t.target_kind = $2",
        )
        .bind(self.tenant.as_str())
        .bind(self.target_kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(token.map(SecretString::from))
    }

    async fn save(&self, token: &SecretString) -> Result<(), TokenStoreError> {
        let saved = sqlx::query(
            "INSERT INTO target_tokens (tenant_id, target_kind, refresh_token, updated_at)
             SELECT id, $2, $3, $4 FROM tenants WHERE key = $1
             ON CONFLICT (tenant_id, target_kind)
             DO UPDATE SET refresh_token = excluded.refresh_token, updated_at = excluded.updated_at",
        )
        .bind(self.tenant.as_str())
        .bind(self.target_kind)
        .bind(token.expose_secret())
        .bind(super::sqlite::now())
        .execute(&self.pool)
        .await?;
        if saved.rows_affected() == 0 {
            return Err(format!("no tenant {} to save a refresh token for", self.tenant).into());
        }
        Ok(())
    }
}
