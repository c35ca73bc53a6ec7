//! What dirsync remembers about who may use it: grants, sign-in attempts, sessions, API tokens
//! and the audit log — the `AccessStore` trait and its records. PostgreSQL implements it
//! (`access_postgres.rs`); `tests/access_store.rs` is the conformance suite every backend runs.
//!
//! Secrets that arrive from a client (a session cookie, a sign-in attempt cookie, an API token)
//! are only ever handled here as [`SecretHash`]es: a database dump gives no usable credential.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use super::StoreError;
use crate::domain::{AccessRole, EntraObjectId, TenantKey};

/// SHA-256 of a secret a client holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

/// A person as Entra knows them: their directory (`tid`) and object (`oid`). Names and email
/// addresses change and can be reused; these do not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EntraIdentity {
    pub tenant_id: EntraObjectId,
    pub object_id: EntraObjectId,
}

impl std::fmt::Display for EntraIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant_id, self.object_id)
    }
}

/// A person's role, everywhere (operators) or on one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GrantRecord {
    pub id: i64,
    pub identity: EntraIdentity,
    pub role: AccessRole,
    /// `None` for operators.
    pub tenant: Option<TenantKey>,
    /// Who this is, for people reading the list (the identity is what counts).
    pub label: Option<String>,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub identity: EntraIdentity,
    pub role: AccessRole,
    pub tenant: Option<TenantKey>,
    pub label: Option<String>,
    pub granted_by: String,
}

/// An OpenID Connect sign-in waiting for its callback.
#[derive(Clone, PartialEq, Eq)]
pub struct SignInAttempt {
    pub id_hash: SecretHash,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to go once signed in (a path on this service).
    pub return_to: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SignInAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInAttempt")
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A signed-in person's session, kept server-side.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: SecretHash,
    pub identity: EntraIdentity,
    pub name: String,
    pub username: Option<String>,
    /// The app roles the ID token carried at sign-in.
    pub app_roles: Vec<String>,
    /// The token every state-changing request of this session must carry.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute expiry.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("identity", &self.identity)
            .field("name", &self.name)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An API token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    /// `dsy_` and the first characters of the token: enough to tell tokens apart.
    pub prefix: String,
    pub name: String,
    pub role: AccessRole,
    pub tenant: Option<TenantKey>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub prefix: String,
    pub secret_hash: SecretHash,
    pub name: String,
    pub role: AccessRole,
    pub tenant: Option<TenantKey>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Ok,
    /// The attempt was refused (a failed sign-in, say).
    Refused,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
        }
    }
}

/// One audit event: who did what, when, from where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// The tenant it concerns; `None` for service-wide events (sign-ins, operator grants).
    pub tenant: Option<TenantKey>,
    /// Who, as a person reads it: `Alice Example (alice@contoso.com)`, `token dsy_ab12cd34 (ci)`.
    pub actor: String,
    /// Who, as a machine matches it: `entra:{tid}/{oid}`, `token:{id}`, `cli:{user}`.
    pub actor_id: Option<String>,
    /// What: `sign_in`, `grant`, `token_create`, `tenant_update`, `run_force`, …
    pub action: String,
    pub outcome: AuditOutcome,
    /// The particulars (never a secret: secret settings serialize redacted).
    pub detail: Value,
    pub source_ip: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// Which audit events to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub tenant: Option<TenantKey>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only events older than this one (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// How long audit events are kept, unless they are about a tenant's runs and reports.
pub const SERVICE_AUDIT_RETENTION_MONTHS: u32 = 12;

/// The audit actions about a tenant's runs and reports: kept for the tenant's report retention,
/// like the reports themselves.
pub const TENANT_RETAINED_ACTIONS: &[&str] =
    &["run_force", "run_approve", "run_reject", "report_download"];

/// Persistence for who may use dirsync. Each method is atomic on its own; times are passed in,
/// so expiry follows the caller's clock.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Creates the grant, or replaces the role (and label) of the person's grant on that scope.
    /// A tenant that does not exist is [`StoreError::NotFound`].
    async fn grant(&self, grant: &NewGrant) -> Result<GrantRecord, StoreError>;
    /// Removes a grant; `None` if there was none with that ID.
    async fn revoke_grant(&self, id: i64) -> Result<Option<GrantRecord>, StoreError>;
    /// Every grant, or those on one tenant (operators included), ordered by ID.
    async fn grants(&self, tenant: Option<&TenantKey>) -> Result<Vec<GrantRecord>, StoreError>;
    /// A person's grants.
    async fn grants_of(&self, identity: &EntraIdentity) -> Result<Vec<GrantRecord>, StoreError>;
    /// The dirsync tenants synced from one Entra directory (for app-role grants).
    async fn tenants_of_directory(
        &self,
        entra_tenant_id: &EntraObjectId,
    ) -> Result<Vec<TenantKey>, StoreError>;

    async fn save_sign_in(&self, attempt: &SignInAttempt) -> Result<(), StoreError>;
    /// Takes the attempt (it is gone afterwards); `None` when unknown, taken or expired.
    async fn take_sign_in(
        &self,
        id_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Option<SignInAttempt>, StoreError>;

    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The live session: not past its absolute expiry, and seen within `idle`. Marks it seen.
    async fn session(
        &self,
        id_hash: &SecretHash,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Ends a session; whether there was one.
    async fn delete_session(&self, id_hash: &SecretHash) -> Result<bool, StoreError>;
    /// Deletes expired sessions and sign-in attempts; how many.
    async fn purge_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<u64, StoreError>;

    /// A tenant that does not exist is [`StoreError::NotFound`].
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, StoreError>;
    /// The usable token with this hash (not revoked, not expired); marks it used.
    async fn use_token(
        &self,
        secret_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, newest first (revoked and expired ones included).
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token; `None` if there is none with that ID. Revoking twice keeps the first.
    async fn revoke_token(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError>;

    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes events past their retention: those about a tenant's runs and reports
    /// ([`TENANT_RETAINED_ACTIONS`]) after the tenant's report retention, the others after
    /// [`SERVICE_AUDIT_RETENTION_MONTHS`]. Returns how many.
    async fn purge_audit(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
