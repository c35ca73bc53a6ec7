//! Issue 14's records: who paused a tenant (or the whole service) and why, the midnights skipped
//! because of it, and what the runs cannot say about a quarantine (when a fix lifted it, and which
//! quarantine was announced). `PauseStore` is part of every [`Store`](super::Store); both
//! backends are here, statement for statement.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::types::Json;

use super::postgres::no_tenant;
use super::{PgStore, ReportEntry, RunId, SqliteStore, Store, StoreError, SubjectKind};
use crate::domain::TenantKey;
use crate::plan::Severity;

/// Who paused, when and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pause {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl Pause {
    /// A pause by `by` now, the time kept to the microsecond as both databases keep it.
    pub fn new(by: impl Into<String>, at: DateTime<Utc>, reason: Option<String>) -> Self {
        Self {
            by: by.into(),
            at: at.trunc_subsecs(6),
            reason: reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
        }
    }
}

/// What the store remembers about a tenant's quarantine beyond its runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineMark {
    /// When a fix (a change to the tenant's connection settings or credentials) last lifted a
    /// quarantine: failed runs that started before then no longer count.
    pub lifted_at: Option<DateTime<Utc>>,
    pub lifted_by: Option<String>,
    pub lifted_reason: Option<String>,
    /// The failed run whose quarantine was announced (`on_quarantined`).
    pub announced_run: Option<RunId>,
}

/// Pauses, skipped midnights and quarantine marks. Each method is atomic on its own.
#[async_trait]
pub trait PauseStore: Send + Sync {
    /// Pauses the tenant; `false`, and the first pause kept, when it was paused already.
    async fn pause_tenant(&self, tenant: &TenantKey, pause: &Pause) -> Result<bool, StoreError>;
    /// Resumes the tenant: the pause it ended, or `None` when it was not paused.
    async fn resume_tenant(&self, tenant: &TenantKey) -> Result<Option<Pause>, StoreError>;
    async fn tenant_pause(&self, tenant: &TenantKey) -> Result<Option<Pause>, StoreError>;
    /// The global pause (maintenance); `false`, and the first pause kept, when it was on already.
    async fn pause_service(&self, pause: &Pause) -> Result<bool, StoreError>;
    /// Ends the global pause: the pause it ended, or `None` when there was none.
    async fn resume_service(&self) -> Result<Option<Pause>, StoreError>;
    async fn service_pause(&self) -> Result<Option<Pause>, StoreError>;
    /// Records the tenant's claimed `midnight` as an automatic run with status `skipped` that
    /// began and ended `at`, with `message` (why) as its message and its report's one line.
    async fn record_skipped_run(
        &self,
        tenant: &TenantKey,
        midnight: DateTime<Utc>,
        at: DateTime<Utc>,
        message: &str,
    ) -> Result<RunId, StoreError>;
    async fn quarantine_mark(&self, tenant: &TenantKey) -> Result<QuarantineMark, StoreError>;
    /// A fix lifted the tenant's quarantine at `at`: failed runs before then no longer count.
    async fn lift_quarantine(
        &self,
        tenant: &TenantKey,
        at: DateTime<Utc>,
        by: &str,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Marks the quarantine that `run` (the failed run that reached the limit) began as
    /// announced: `true` only for the first caller, whichever replica asks.
    async fn announce_quarantine(&self, tenant: &TenantKey, run: RunId)
    -> Result<bool, StoreError>;
}

type PauseRow = (String, DateTime<Utc>, Option<String>);

fn pause_from_row((by, at, reason): PauseRow) -> Pause {
    Pause { by, at, reason }
}

fn skipped_line(message: &str) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::Run,
        entra_id: None,
        email: None,
        name: None,
        action: "skipped".to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity: Severity::Info,
        message: Some(message.to_owned()),
    }
}

type MarkRow = (
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn mark_from_row(row: Option<MarkRow>) -> QuarantineMark {
    row.map(
        |(lifted_at, lifted_by, lifted_reason, announced_run)| QuarantineMark {
            lifted_at,
            lifted_by,
            lifted_reason,
            announced_run,
        },
    )
    .unwrap_or_default()
}

/// The same SQL runs on both backends (`$n` parameters, `ON CONFLICT`, `RETURNING`); only the
/// pools differ, so one macro writes both implementations.
macro_rules! pause_store {
    ($store:ty) => {
        #[async_trait]
        impl PauseStore for $store {
            async fn pause_tenant(
                &self,
                tenant: &TenantKey,
                pause: &Pause,
            ) -> Result<bool, StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO tenant_pauses (tenant_id, paused_by, paused_at, reason)
                     SELECT id, $2, $3, $4 FROM tenants WHERE key = $1
                     ON CONFLICT (tenant_id) DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(&pause.by)
                .bind(pause.at)
                .bind(pause.reason.as_deref())
                .execute(self.pool())
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(true);
                }
                self.tenant_pause(tenant).await?.ok_or_else(|| no_tenant(tenant))?;
                Ok(false)
            }

            async fn resume_tenant(&self, tenant: &TenantKey) -> Result<Option<Pause>, StoreError> {
                let row: Option<PauseRow> = sqlx::query_as(
                    "DELETE FROM tenant_pauses
                     WHERE tenant_id = (SELECT id FROM tenants WHERE key = $1)
                     RETURNING paused_by, paused_at, reason",
                )
                .bind(tenant.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(row.map(pause_from_row))
            }

            async fn tenant_pause(&self, tenant: &TenantKey) -> Result<Option<Pause>, StoreError> {
                let row: Option<PauseRow> = sqlx::query_as(
                    "SELECT p.paused_by, p.paused_at, p.reason
                     FROM tenant_pauses p JOIN tenants t ON t.id = p.tenant_id
                     WHERE t.key = $1",
                )
                .bind(tenant.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(row.map(pause_from_row))
            }

            async fn pause_service(&self, pause: &Pause) -> Result<bool, StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO service_pauses (id, paused_by, paused_at, reason)
                     VALUES (1, $1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&pause.by)
                .bind(pause.at)
                .bind(pause.reason.as_deref())
                .execute(self.pool())
                .await?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn resume_service(&self) -> Result<Option<Pause>, StoreError> {
                let row: Option<PauseRow> = sqlx::query_as(
                    "DELETE FROM service_pauses WHERE id = 1
                     RETURNING paused_by, paused_at, reason",
                )
                .fetch_optional(self.pool())
                .await?;
                Ok(row.map(pause_from_row))
            }

            async fn service_pause(&self) -> Result<Option<Pause>, StoreError> {
                let row: Option<PauseRow> = sqlx::query_as(
                    "SELECT paused_by, paused_at, reason FROM service_pauses WHERE id = 1",
                )
                .fetch_optional(self.pool())
                .await?;
                Ok(row.map(pause_from_row))
            }

            async fn record_skipped_run(
                &self,
                tenant: &TenantKey,
                midnight: DateTime<Utc>,
                at: DateTime<Utc>,
                message: &str,
            ) -> Result<RunId, StoreError> {
                let at = at.trunc_subsecs(6);
                let mut tx = self.pool().begin().await?;
                let run: Option<RunId> = sqlx::query_scalar(
                    "INSERT INTO runs (tenant_id, trigger_kind, status, started_at, finished_at,
                                       summary, message)
                     SELECT id, 'automatic', 'skipped', $2, $2, $3, $4 FROM tenants WHERE key = $1
                     RETURNING id",
                )
                .bind(tenant.as_str())
                .bind(at)
                .bind(Json(super::RunSummary::default()))
                .bind(message)
                .fetch_optional(&mut *tx)
                .await?;
                let run = run.ok_or_else(|| no_tenant(tenant))?;
                sqlx::query(
                    "UPDATE scheduled_midnights SET run_id = $3
                     WHERE tenant_id = (SELECT id FROM tenants WHERE key = $1) AND midnight = $2",
                )
                .bind(tenant.as_str())
                .bind(midnight)
                .bind(run)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.record_entries(run, &[skipped_line(message)]).await?;
                Ok(run)
            }

            async fn quarantine_mark(
                &self,
                tenant: &TenantKey,
            ) -> Result<QuarantineMark, StoreError> {
                let row: Option<MarkRow> = sqlx::query_as(
                    "SELECT q.lifted_at, q.lifted_by, q.lifted_reason, q.announced_run
                     FROM quarantine_marks q JOIN tenants t ON t.id = q.tenant_id
                     WHERE t.key = $1",
                )
                .bind(tenant.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(mark_from_row(row))
            }

            async fn lift_quarantine(
                &self,
                tenant: &TenantKey,
                at: DateTime<Utc>,
                by: &str,
                reason: &str,
            ) -> Result<(), StoreError> {
                let written = sqlx::query(
                    "INSERT INTO quarantine_marks (tenant_id, lifted_at, lifted_by, lifted_reason)
                     SELECT id, $2, $3, $4 FROM tenants WHERE key = $1
                     ON CONFLICT (tenant_id) DO UPDATE
                     SET lifted_at = excluded.lifted_at, lifted_by = excluded.lifted_by,
                         lifted_reason = excluded.lifted_reason",
                )
                .bind(tenant.as_str())
                .bind(at.trunc_subsecs(6))
                .bind(by)
                .bind(reason)
                .execute(self.pool())
                .await?;
                if written.rows_affected() == 0 {
                    return Err(no_tenant(tenant));
                }
                Ok(())
            }

            async fn announce_quarantine(
                &self,
                tenant: &TenantKey,
                run: RunId,
            ) -> Result<bool, StoreError> {
                let announced: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO quarantine_marks (tenant_id, announced_run)
                     SELECT id, $2 FROM tenants WHERE key = $1
                     ON CONFLICT (tenant_id) DO UPDATE SET announced_run = excluded.announced_run
                     WHERE quarantine_marks.announced_run IS NULL
                        OR quarantine_marks.announced_run <> excluded.announced_run
                     RETURNING announced_run",
                )
                .bind(tenant.as_str())
                .bind(run)
                .fetch_optional(self.pool())
                .await?;
                Ok(announced.is_some())
            }
        }
    };
}

pause_store!(PgStore);
pause_store!(SqliteStore);
