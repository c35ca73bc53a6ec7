//! A tenant's target refresh token kept in dirsync's database (PostgreSQL or SQLite): the
//! durable `TokenStore` for HighQ. A refresh holds the tenant's token row locked (PostgreSQL:
//! `SELECT … FOR UPDATE`; SQLite: a `BEGIN IMMEDIATE` transaction, which takes the database's
//! write lock) from reading the refresh token to saving the rotated one, so replicas refresh one
//! at a time and never spend a refresh token twice; the access token is shared through the row
//! until it expires.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgPool, Postgres, Transaction};

use crate::domain::TenantKey;
use crate::target::highq::{TokenRefresh, TokenStore, TokenStoreError};

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
             DO UPDATE SET refresh_token = EXCLUDED.refresh_token, access_token = NULL,
                           access_expires_at = NULL, updated_at = now()",
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

    async fn record_refresh_expiry(
        &self,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        sqlx::query(
            "UPDATE target_tokens SET refresh_expires_at = $3
             WHERE tenant_id = (SELECT id FROM tenants WHERE key = $1) AND target_kind = $2",
        )
        .bind(self.tenant.as_str())
        .bind(self.target_kind)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn begin_refresh(&self) -> Result<Box<dyn TokenRefresh>, TokenStoreError> {
        let mut tx = self.pool.begin().await?;
        let tenant_id: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE key = $1")
            .bind(self.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| format!("no tenant {} to refresh a token for", self.tenant))?;
        let row: Option<(String, Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT refresh_token, access_token, access_expires_at FROM target_tokens
             WHERE tenant_id = $1 AND target_kind = $2
             FOR UPDATE",
        )
        .bind(tenant_id)
        .bind(self.target_kind)
        .fetch_optional(&mut *tx)
        .await?;
        let (refresh_token, shared) = match row {
            Some((refresh, access, expires)) => (
                Some(SecretString::from(refresh)),
                access.zip(expires).map(|(a, e)| (SecretString::from(a), e)),
            ),
            None => (None, None),
        };
        Ok(Box::new(PgTokenRefresh {
            tx,
            tenant_id,
            target_kind: self.target_kind,
            refresh_token,
            shared,
        }))
    }
}

/// A refresh holding the tenant's token row locked until it commits (or is dropped: rollback).
struct PgTokenRefresh {
    tx: Transaction<'static, Postgres>,
    tenant_id: i64,
    target_kind: &'static str,
    refresh_token: Option<SecretString>,
    shared: Option<(SecretString, DateTime<Utc>)>,
}

#[async_trait]
impl TokenRefresh for PgTokenRefresh {
    fn refresh_token(&self) -> Option<SecretString> {
        self.refresh_token.clone()
    }

    fn shared_access(&self) -> Option<(SecretString, DateTime<Utc>)> {
        self.shared.clone()
    }

    async fn commit(
        mut self: Box<Self>,
        rotated: Option<&SecretString>,
        access: &SecretString,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        let refresh = rotated
            .or(self.refresh_token.as_ref())
            .ok_or("no refresh token to keep")?
            .expose_secret()
            .to_owned();
        sqlx::query(
            "INSERT INTO target_tokens (tenant_id, target_kind, refresh_token, access_token,
                                        access_expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, target_kind)
             DO UPDATE SET refresh_token = EXCLUDED.refresh_token,
                           access_token = EXCLUDED.access_token,
                           access_expires_at = EXCLUDED.access_expires_at,
                           updated_at = now()",
        )
        .bind(self.tenant_id)
        .bind(self.target_kind)
        .bind(refresh)
        .bind(access.expose_secret())
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
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

    async fn record_refresh_expiry(
        &self,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        sqlx::query(
            "UPDATE target_tokens SET refresh_expires_at = $3
             WHERE tenant_id = (SELECT id FROM tenants WHERE key = $1) AND target_kind = $2",
        )
        .bind(self.tenant.as_str())
        .bind(self.target_kind)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn begin_refresh(&self) -> Result<Box<dyn TokenRefresh>, TokenStoreError> {
        Ok(Box::new(self.begin().await?))
    }
}

/// A refresh holding SQLite's write lock (`BEGIN IMMEDIATE`) until it commits (or is dropped:
/// rollback), so refreshes of one database are made one at a time.
struct SqliteTokenRefresh {
    tx: Transaction<'static, sqlx::Sqlite>,
    tenant_id: i64,
    target_kind: &'static str,
    refresh_token: Option<SecretString>,
    shared: Option<(SecretString, DateTime<Utc>)>,
}

impl SqliteTokenStore {
    async fn begin(&self) -> Result<SqliteTokenRefresh, TokenStoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let tenant_id: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE key = $1")
            .bind(self.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| format!("no tenant {} to refresh a token for", self.tenant))?;
        let row: Option<(String, Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT refresh_token, access_token, access_expires_at FROM target_tokens
             WHERE tenant_id = $1 AND target_kind = $2",
        )
        .bind(tenant_id)
        .bind(self.target_kind)
        .fetch_optional(&mut *tx)
        .await?;
        let (refresh_token, shared) = match row {
            Some((refresh, access, expires)) => (
                Some(SecretString::from(refresh)),
                access.zip(expires).map(|(a, e)| (SecretString::from(a), e)),
            ),
            None => (None, None),
        };
        Ok(SqliteTokenRefresh {
            tx,
            tenant_id,
            target_kind: self.target_kind,
            refresh_token,
            shared,
        })
    }
}

#[async_trait]
impl TokenRefresh for SqliteTokenRefresh {
    fn refresh_token(&self) -> Option<SecretString> {
        self.refresh_token.clone()
    }

    fn shared_access(&self) -> Option<(SecretString, DateTime<Utc>)> {
        self.shared.clone()
    }

    async fn commit(
        mut self: Box<Self>,
        rotated: Option<&SecretString>,
        access: &SecretString,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        let refresh = rotated
            .or(self.refresh_token.as_ref())
            .ok_or("no refresh token to keep")?
            .expose_secret()
            .to_owned();
        sqlx::query(
            "INSERT INTO target_tokens (tenant_id, target_kind, refresh_token, access_token,
                                        access_expires_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, target_kind)
             DO UPDATE SET refresh_token = excluded.refresh_token,
                           access_token = excluded.access_token,
                           access_expires_at = excluded.access_expires_at,
                           updated_at = excluded.updated_at",
        )
        .bind(self.tenant_id)
        .bind(self.target_kind)
        .bind(refresh)
        .bind(access.expose_secret())
        .bind(expires_at)
        .bind(super::sqlite::now())
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
