//! [`AccessStore`] on SQLite (migration `sqlite/0010_access.sql`), built like
//! `access_postgres.rs` and parsing rows with the same functions. A session's app roles are a
//! JSON array; times are bound by dirsync, never read from SQLite's clock.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Months, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::access::{
    AccessStore, AuditEvent, AuditFilter, AuditRecord, EntraIdentity, GrantRecord, NewGrant,
    NewToken, SERVICE_AUDIT_RETENTION_MONTHS, SecretHash, SessionRecord, SignInAttempt,
    TENANT_RETAINED_ACTIONS, TokenRecord,
};
use super::access_postgres::{
    AuditRow, GRANT_COLUMNS, GrantRow, TOKEN_COLUMNS, TokenRow, corrupt, hash, no_tenant,
    touch_every,
};
use super::{SqliteStore, StoreError};
use crate::domain::TenantKey;

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: Vec<u8>,
    entra_tenant_id: Uuid,
    entra_object_id: Uuid,
    name: String,
    username: Option<String>,
    app_roles: Json<Vec<String>>,
    csrf_token: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl SessionRow {
    fn parse(self) -> Result<SessionRecord, StoreError> {
        Ok(SessionRecord {
            id_hash: hash(self.id_hash, "sessions.id_hash")?,
            identity: EntraIdentity {
                tenant_id: self.entra_tenant_id.into(),
                object_id: self.entra_object_id.into(),
            },
            name: self.name,
            username: self.username,
            app_roles: self.app_roles.0,
            csrf_token: self.csrf_token,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
        })
    }
}

/// `'run_force', 'run_approve', …`: the retained actions as an SQL list (constants, not input).
fn retained_actions_sql() -> String {
    TENANT_RETAINED_ACTIONS
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqliteStore {
    /// The database ID of a tenant named in a grant or token, if one is named.
    async fn scope_id(&self, tenant: Option<&TenantKey>) -> Result<Option<i64>, StoreError> {
        match tenant {
            None => Ok(None),
            Some(key) => sqlx::query_scalar("SELECT id FROM tenants WHERE key = $1")
                .bind(key.as_str())
                .fetch_optional(self.pool())
                .await?
                .map(Some)
                .ok_or_else(|| no_tenant(key)),
        }
    }

    async fn grant_by_id(&self, id: i64) -> Result<Option<GrantRecord>, StoreError> {
        sqlx::query_as::<_, GrantRow>(&format!("{GRANT_COLUMNS} WHERE g.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .map(GrantRow::parse)
            .transpose()
    }

    async fn token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query_as::<_, TokenRow>(&format!("{TOKEN_COLUMNS} WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .map(TokenRow::parse)
            .transpose()
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn grant(&self, grant: &NewGrant) -> Result<GrantRecord, StoreError> {
        let tenant_id = self.scope_id(grant.tenant.as_ref()).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO access_grants
                 (entra_tenant_id, entra_object_id, role, tenant_id, label, granted_by, granted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (entra_tenant_id, entra_object_id, COALESCE(tenant_id, 0))
             DO UPDATE SET role = excluded.role,
                           label = COALESCE(excluded.label, access_grants.label),
                           granted_by = excluded.granted_by,
                           granted_at = excluded.granted_at
             RETURNING id",
        )
        .bind(grant.identity.tenant_id.as_uuid())
        .bind(grant.identity.object_id.as_uuid())
        .bind(grant.role.as_str())
        .bind(tenant_id)
        .bind(&grant.label)
        .bind(&grant.granted_by)
        .bind(super::sqlite::now())
        .fetch_one(self.pool())
        .await?;
        self.grant_by_id(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("grant {id} vanished")))
    }

    async fn revoke_grant(&self, id: i64) -> Result<Option<GrantRecord>, StoreError> {
        let grant = self.grant_by_id(id).await?;
        if grant.is_some() {
            sqlx::query("DELETE FROM access_grants WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
        }
        Ok(grant)
    }

    async fn grants(&self, tenant: Option<&TenantKey>) -> Result<Vec<GrantRecord>, StoreError> {
        let rows: Vec<GrantRow> = match tenant {
            None => {
                sqlx::query_as(&format!("{GRANT_COLUMNS} ORDER BY g.id"))
                    .fetch_all(self.pool())
                    .await?
            }
            Some(key) => {
                sqlx::query_as(&format!(
                    "{GRANT_COLUMNS} WHERE t.key = $1 OR g.tenant_id IS NULL ORDER BY g.id"
                ))
                .bind(key.as_str())
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.into_iter().map(GrantRow::parse).collect()
    }

    async fn grants_of(&self, identity: &EntraIdentity) -> Result<Vec<GrantRecord>, StoreError> {
        let rows: Vec<GrantRow> = sqlx::query_as(&format!(
            "{GRANT_COLUMNS} WHERE g.entra_tenant_id = $1 AND g.entra_object_id = $2 ORDER BY g.id"
        ))
        .bind(identity.tenant_id.as_uuid())
        .bind(identity.object_id.as_uuid())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(GrantRow::parse).collect()
    }

    async fn tenants_of_directory(
        &self,
        entra_tenant_id: &crate::domain::EntraObjectId,
    ) -> Result<Vec<TenantKey>, StoreError> {
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT key FROM tenants WHERE entra_tenant_id = $1 ORDER BY key")
                .bind(entra_tenant_id.as_uuid())
                .fetch_all(self.pool())
                .await?;
        keys.into_iter()
            .map(|k| TenantKey::parse(&k).map_err(|e| corrupt("tenants.key", e)))
            .collect()
    }

    async fn save_sign_in(&self, attempt: &SignInAttempt) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sign_in_attempts
                 (id_hash, state, nonce, pkce_verifier, return_to, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(attempt.id_hash.0.as_slice())
        .bind(&attempt.state)
        .bind(&attempt.nonce)
        .bind(&attempt.pkce_verifier)
        .bind(&attempt.return_to)
        .bind(attempt.created_at)
        .bind(attempt.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn take_sign_in(
        &self,
        id_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Option<SignInAttempt>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id_hash: Vec<u8>,
            state: String,
            nonce: String,
            pkce_verifier: String,
            return_to: String,
            created_at: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        }
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM sign_in_attempts WHERE id_hash = $1
             RETURNING id_hash, state, nonce, pkce_verifier, return_to, created_at, expires_at",
        )
        .bind(id_hash.0.as_slice())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row.filter(|r| r.expires_at > now) else {
            return Ok(None);
        };
        Ok(Some(SignInAttempt {
            id_hash: hash(row.id_hash, "sign_in_attempts.id_hash")?,
            state: row.state,
            nonce: row.nonce,
            pkce_verifier: row.pkce_verifier,
            return_to: row.return_to,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }))
    }

    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, entra_tenant_id, entra_object_id, name, username,
                                   app_roles, csrf_token, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(session.id_hash.0.as_slice())
        .bind(session.identity.tenant_id.as_uuid())
        .bind(session.identity.object_id.as_uuid())
        .bind(&session.name)
        .bind(&session.username)
        .bind(Json(&session.app_roles))
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        id_hash: &SecretHash,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT id_hash, entra_tenant_id, entra_object_id, name, username, app_roles,
                    csrf_token, created_at, last_seen_at, expires_at
             FROM sessions WHERE id_hash = $1 AND expires_at > $2 AND last_seen_at > $3",
        )
        .bind(id_hash.0.as_slice())
        .bind(now)
        .bind(now - idle)
        .fetch_optional(self.pool())
        .await?;
        let Some(mut session) = row.map(SessionRow::parse).transpose()? else {
            return Ok(None);
        };
        if session.last_seen_at < now - touch_every() {
            sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(id_hash.0.as_slice())
                .bind(now)
                .execute(self.pool())
                .await?;
            session.last_seen_at = now;
        }
        Ok(Some(session))
    }

    async fn delete_session(&self, id_hash: &SecretHash) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash.0.as_slice())
            .execute(self.pool())
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn purge_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<u64, StoreError> {
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(now)
                .bind(now - idle)
                .execute(self.pool())
                .await?;
        let attempts = sqlx::query("DELETE FROM sign_in_attempts WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(sessions.rows_affected() + attempts.rows_affected())
    }

    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, StoreError> {
        let tenant_id = self.scope_id(token.tenant.as_ref()).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (prefix, secret_hash, name, role, tenant_id, created_by,
                                     created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id",
        )
        .bind(&token.prefix)
        .bind(token.secret_hash.0.as_slice())
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(tenant_id)
        .bind(&token.created_by)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(self.pool())
        .await?;
        self.token_by_id(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("token {id} vanished")))
    }

    async fn use_token(
        &self,
        secret_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(&format!(
            "{TOKEN_COLUMNS} WHERE a.secret_hash = $1 AND a.revoked_at IS NULL AND a.expires_at > $2"
        ))
        .bind(secret_hash.0.as_slice())
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(mut token) = row.map(TokenRow::parse).transpose()? else {
            return Ok(None);
        };
        if token
            .last_used_at
            .is_none_or(|used| used < now - touch_every())
        {
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(token.id)
                .bind(now)
                .execute(self.pool())
                .await?;
            token.last_used_at = Some(now);
        }
        Ok(Some(token))
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!("{TOKEN_COLUMNS} ORDER BY a.id DESC"))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(TokenRow::parse).collect()
    }

    async fn revoke_token(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2, revoked_by = $3
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(by)
        .execute(self.pool())
        .await?;
        self.token_by_id(id).await
    }

    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let tenant_id = match &event.tenant {
            // An event about a tenant that is not (or no longer) there is kept as service-wide,
            // with the key it named in its detail.
            Some(key) => {
                sqlx::query_scalar::<_, i64>("SELECT id FROM tenants WHERE key = $1")
                    .bind(key.as_str())
                    .fetch_optional(self.pool())
                    .await?
            }
            None => None,
        };
        let mut detail = event.detail.clone();
        if let (Some(key), None, serde_json::Value::Object(map)) =
            (&event.tenant, tenant_id, &mut detail)
        {
            map.insert(
                "tenant".to_owned(),
                serde_json::Value::String(key.to_string()),
            );
        }
        sqlx::query(
            "INSERT INTO audit_events (at, tenant_id, actor, actor_id, action, outcome, detail,
                                       source_ip, forwarded_for, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(event.at)
        .bind(tenant_id)
        .bind(&event.actor)
        .bind(&event.actor_id)
        .bind(&event.action)
        .bind(event.outcome.as_str())
        .bind(Json(&detail))
        .bind(&event.source_ip)
        .bind(&event.forwarded_for)
        .bind(&event.user_agent)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT e.id, e.at, t.key AS tenant_key, e.actor, e.actor_id, e.action, e.outcome,
                    e.detail, e.source_ip, e.forwarded_for, e.user_agent
             FROM audit_events e LEFT JOIN tenants t ON t.id = e.tenant_id
             WHERE ($1 IS NULL OR t.key = $1)
               AND ($2 IS NULL OR e.action = $2)
               AND ($3 IS NULL OR e.actor_id = $3)
               AND ($4 IS NULL OR e.at >= $4)
               AND ($5 IS NULL OR e.at < $5)
               AND ($6 IS NULL OR e.id < $6)
             ORDER BY e.id DESC
             LIMIT $7",
        )
        .bind(filter.tenant.as_ref().map(TenantKey::as_str))
        .bind(&filter.action)
        .bind(&filter.actor_id)
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.before_id)
        .bind(filter.limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(AuditRow::parse).collect()
    }

    async fn purge_audit(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let service_cutoff = now
            .checked_sub_months(Months::new(SERVICE_AUDIT_RETENTION_MONTHS))
            .unwrap_or(now);
        let retained = retained_actions_sql();
        let mut tx = self.write().await?;
        let mut purged = sqlx::query(&format!(
            "DELETE FROM audit_events
             WHERE (tenant_id IS NULL OR action NOT IN ({retained})) AND at < $1"
        ))
        .bind(service_cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Each retention the tenants use, with its own cutoff (SQLite has no month arithmetic
        // on RFC 3339 text).
        let retentions: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT report_retention_months FROM tenants")
                .fetch_all(&mut *tx)
                .await?;
        for months in retentions {
            let cutoff = now
                .checked_sub_months(Months::new(u32::try_from(months).unwrap_or(0)))
                .unwrap_or(now);
            purged += sqlx::query(&format!(
                "DELETE FROM audit_events
                 WHERE action IN ({retained}) AND at < $1
                   AND tenant_id IN (SELECT id FROM tenants WHERE report_retention_months = $2)"
            ))
            .bind(cutoff)
            .bind(months)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(purged)
    }
}
