//! The SQLite `Store`: one file, no database server — the default for a laptop, the demo and a
//! single-replica service. Built like `postgres.rs`, statement for statement where SQLite allows;
//! rows are parsed by the same functions, so both backends read back the same records.
//!
//! SQLite has no arrays: where PostgreSQL binds columns and `UNNEST`s them, bulk writes here bind
//! one JSON array of rows and expand it with `json_each` (UUIDs travel as hex, `unhex`ed back),
//! so a run that touches 100,000 users is still a handful of statements. Every write transaction begins `IMMEDIATE`, taking
//! the file's write lock first, so a transaction that reads and then writes never fails half way
//! on a concurrent writer; readers are not blocked (WAL). Timestamps are written by dirsync, not
//! by SQLite's clock, all as RFC 3339 in UTC, so they compare in time order as text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use super::approval::{
    ApprovingRow, HeldRow, Rejection, RejectionError, RejectionRefused, decide, decide_rejection,
    rejection_request,
};
use super::lease_sqlite::{SqliteRunLease, interrupt_orphaned_runs, lock_tenant};
use super::postgres::{
    CHUNK, EntryRow, MIRROR_USERS_SQL, RUN_COLUMNS, RunRow, TENANT_COLUMNS, TenantRow, UserRow,
    group_status, last_state_per_user, mirror_users_from_rows, missing_run, no_tenant, parse,
    rows_cooperatively, run_from_row, severity_level, subject_kind, tenant_from_row,
    trigger_kind_text, warn_if_missed,
};
use super::{
    ApprovalError, ApprovalRefused, ApprovedRun, MirrorChanges, ReportEntry, RunFilter, RunFinish,
    RunId, RunOptions, RunRecord, RunStart, RunStatus, Store, StoreError, TenantSaved, Trigger,
};
use crate::domain::{EntraObjectId, TenantKey, expose_for_storage};
use crate::plan::{ConvertedGroup, GroupKey, GroupSummary, Mirror, MirrorGroup, MirrorUser};
use crate::tenant::{TargetSettings, Tenant};

/// The migrations in `migrations/sqlite/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded store. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating it and its directory if need be) the database file at `path`, in WAL
    /// mode with foreign keys on and a busy timeout, and applies the migrations: ready to use.
    pub async fn open(path: &Path, max_connections: u32) -> Result<Self, StoreError> {
        create_private_file(path).map_err(|e| {
            StoreError::File(format!(
                "could not create the SQLite database file {}: {e}",
                path.display()
            ))
        })?;
        let options = SqliteConnectOptions::new().filename(path);
        let store = Self::connect_with(options, path, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    async fn connect_with(
        options: SqliteConnectOptions,
        path: &Path,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // A commit is on disk when it returns: a saved refresh token survives a power cut.
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            path: path.to_owned(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies the embedded migrations that this database has not seen yet. They run with
    /// foreign keys off, as SQLite's procedure for rebuilding a table requires (SQLite cannot
    /// alter a constraint: `0030_interrupted_runs.sql` rebuilds `runs`, whose reports must
    /// neither cascade away nor lose their references), and the references are checked after.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await?;
        let migrated = MIGRATOR.run_direct(&mut *conn).await;
        if let Err(err) = sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await
        {
            // Never hand a connection without foreign keys back to the pool.
            drop(conn.detach());
            return Err(err.into());
        }
        migrated?;
        let broken: Vec<(String, i64)> =
            sqlx::query_as(r#"SELECT "table", rowid FROM pragma_foreign_key_check"#)
                .fetch_all(&mut *conn)
                .await?;
        if let Some((table, row)) = broken.first() {
            return Err(StoreError::Corrupt(format!(
                "after the migrations, row {row} of {table} (and {} more) refers to a row that \
                 does not exist",
                broken.len() - 1
            )));
        }
        Ok(())
    }

    /// A write transaction holding the file's write lock from its first statement.
    pub(super) async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Creates `path` (and its directory) readable by its owner only, unless it exists: the database
/// holds tenants' secrets and refresh tokens. SQLite gives its `-wal` and `-shm` files the same
/// permissions.
pub(super) fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut dir = std::fs::DirBuilder::new();
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        dir.mode(0o700);
        file.mode(0o600);
    }
    if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        dir.recursive(true).create(parent)?;
    }
    match file.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// The time now, to the microsecond as PostgreSQL keeps it, so both stores read back the same.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_tenant(&self, tenant: &Tenant) -> Result<TenantSaved, StoreError> {
        let mut tx = self.write().await?;
        let now = now();
        let before: Option<(Uuid, serde_json::Value, serde_json::Value)> =
            sqlx::query_as("SELECT entra_tenant_id, source, target FROM tenants WHERE key = $1")
                .bind(tenant.key.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let connection_changed = match &before {
            None => false,
            Some((entra_tenant_id, source, target)) => {
                let mut previous = tenant.clone();
                previous.entra_tenant_id = (*entra_tenant_id).into();
                previous.source = parse("tenants.source", serde_json::from_value(source.clone()))?;
                previous.target = parse("tenants.target", TargetSettings::from_stored(target))?;
                tenant.connection_changed_from(&previous)
            }
        };
        // The only place secret values are written out: everywhere else they are redacted.
        let (source, target) = expose_for_storage(|| {
            (
                serde_json::to_value(&tenant.source),
                serde_json::to_value(&tenant.target),
            )
        });
        let source = source.map_err(|e| StoreError::Corrupt(format!("tenants.source: {e}")))?;
        let target =
            match target.map_err(|e| StoreError::Corrupt(format!("tenants.target: {e}")))? {
                serde_json::Value::Null => serde_json::json!({}),
                value => value,
            };
        let tenant_id: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (key, display_name, entra_tenant_id, time_zone,
                                  report_retention_months, deactivation_status, deletion_threshold,
                                  source, target, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
             ON CONFLICT (key) DO UPDATE SET
                 display_name = excluded.display_name,
                 entra_tenant_id = excluded.entra_tenant_id,
                 time_zone = excluded.time_zone,
                 report_retention_months = excluded.report_retention_months,
                 deactivation_status = excluded.deactivation_status,
                 deletion_threshold = excluded.deletion_threshold,
                 source = excluded.source,
                 target = excluded.target,
                 updated_at = excluded.updated_at
             RETURNING id",
        )
        .bind(tenant.key.as_str())
        .bind(&tenant.display_name)
        .bind(tenant.entra_tenant_id.as_uuid())
        .bind(tenant.time_zone.name())
        .bind(i16::from(tenant.report_retention.months()))
        .bind(tenant.policy.deactivation_status.as_str())
        .bind(i64::from(tenant.policy.deletion_threshold))
        .bind(Json(&source))
        .bind(Json(&target))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if connection_changed {
            // A refresh token belongs to the connection it was issued for: it must never be
            // sent to a new host. The target has to be connected again.
            sqlx::query("DELETE FROM target_tokens WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }

        sqlx::query("DELETE FROM selected_groups WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        for (position, group) in tenant.policy.selected_groups.iter().enumerate() {
            sqlx::query(
                "INSERT INTO selected_groups (tenant_id, entra_group_id, role, position)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant_id)
            .bind(group.entra_id.as_uuid())
            .bind(group.role.as_str())
            .bind(i64::try_from(position).unwrap_or(i64::MAX) + 1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(TenantSaved {
            created: before.is_none(),
            connection_changed,
        })
    }

    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<TenantRow> = sqlx::query_as(&format!("{TENANT_COLUMNS} WHERE key = $1"))
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let groups: Vec<(i64, Uuid, String)> = sqlx::query_as(
            "SELECT tenant_id, entra_group_id, role FROM selected_groups
             WHERE tenant_id = $1 ORDER BY position",
        )
        .bind(row.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        tenant_from_row(row, groups).map(Some)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<TenantRow> = sqlx::query_as(&format!("{TENANT_COLUMNS} ORDER BY key"))
            .fetch_all(&mut *tx)
            .await?;
        let groups: Vec<(i64, Uuid, String)> = sqlx::query_as(
            "SELECT tenant_id, entra_group_id, role FROM selected_groups
             ORDER BY tenant_id, position",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut by_tenant: HashMap<i64, Vec<(i64, Uuid, String)>> = HashMap::new();
        for group in groups {
            by_tenant.entry(group.0).or_default().push(group);
        }
        rows.into_iter()
            .map(|row| {
                let groups = by_tenant.remove(&row.0).unwrap_or_default();
                tenant_from_row(row, groups)
            })
            .collect()
    }

    async fn synced_group_sizes(
        &self,
        tenant: &TenantKey,
    ) -> Result<std::collections::HashMap<EntraObjectId, usize>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let tenant_id = tenant_id(&mut conn, tenant).await?;
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(super::SYNCED_GROUP_SIZES)
            .bind(tenant_id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(super::largest_per_group(rows))
    }

    async fn load_mirror(&self, tenant: &TenantKey) -> Result<Mirror, StoreError> {
        // A read transaction in WAL mode sees one snapshot, so the queries agree.
        let mut tx = self.pool.begin().await?;
        let tenant_id = tenant_id(&mut tx, tenant).await?;

        let group_rows: Vec<(i64, Uuid, String, String, String)> = sqlx::query_as(
            "SELECT id, entra_group_id, role, target_group_id, name FROM synced_groups
             WHERE tenant_id = $1 AND kind = 'synced'",
        )
        .bind(tenant_id)
        .fetch_all(&mut *tx)
        .await?;
        let member_rows: Vec<(i64, Uuid)> = rows_cooperatively(
            sqlx::query_as(
                "SELECT m.synced_group_id, m.entra_user_id
             FROM memberships m JOIN synced_groups g ON g.id = m.synced_group_id
             WHERE g.tenant_id = $1 AND g.kind = 'synced'",
            )
            .bind(tenant_id)
            .fetch(&mut *tx),
            Ok,
        )
        .await?;
        // R12: the latest conversion of each Entra group left without a synced group.
        let converted_rows: Vec<(Uuid, String, String, Option<String>)> = sqlx::query_as(
            "SELECT entra_group_id, role, name, system_name FROM (
                 SELECT g.entra_group_id, g.role, g.name, g.system_name,
                        ROW_NUMBER() OVER (PARTITION BY g.entra_group_id
                                           ORDER BY g.converted_at DESC, g.id DESC) AS latest
                 FROM synced_groups g
                 WHERE g.tenant_id = $1 AND g.kind = 'system'
                   AND NOT EXISTS (SELECT 1 FROM synced_groups s
                                   WHERE s.tenant_id = $1 AND s.kind = 'synced'
                                     AND s.entra_group_id = g.entra_group_id))
             WHERE latest = 1",
        )
        .bind(tenant_id)
        .fetch_all(&mut *tx)
        .await?;
        let users = mirror_users_from_rows(
            sqlx::query_as::<_, UserRow>(MIRROR_USERS_SQL)
                .bind(tenant_id)
                .fetch(&mut *tx),
        )
        .await?;
        tx.commit().await?;

        let mut index: HashMap<i64, usize> = HashMap::with_capacity(group_rows.len());
        let mut groups = Vec::with_capacity(group_rows.len());
        for (id, entra_id, role, target_id, name) in group_rows {
            index.insert(id, groups.len());
            groups.push(MirrorGroup {
                key: GroupKey {
                    entra_id: entra_id.into(),
                    role: parse("synced_groups.role", role.parse())?,
                },
                target_id: parse(
                    "synced_groups.target_group_id",
                    crate::domain::TargetGroupId::new(target_id),
                )?,
                name,
                members: Vec::new(),
            });
        }
        for (group_id, user) in member_rows {
            if let Some(&at) = index.get(&group_id) {
                groups[at].members.push(user.into());
            }
        }
        for group in &mut groups {
            group.members.sort_unstable();
        }
        groups.sort_unstable_by(|a, b| a.key.cmp(&b.key));

        let mut converted = converted_rows
            .into_iter()
            .map(|(entra_id, role, name, system_name)| {
                Ok(ConvertedGroup {
                    key: GroupKey {
                        entra_id: entra_id.into(),
                        role: parse("synced_groups.role", role.parse())?,
                    },
                    system_name: system_name.unwrap_or_else(|| name.clone()),
                    name,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // PostgreSQL's DISTINCT ON returns them by Entra group ID; so do we.
        converted.sort_by(|a, b| a.key.entra_id.cmp(&b.key.entra_id));
        Ok(Mirror {
            groups,
            users,
            converted,
        })
    }

    async fn apply_mirror_changes(
        &self,
        tenant: &TenantKey,
        changes: &MirrorChanges,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let tenant_id = tenant_id(&mut tx, tenant).await?;
        write_mirror_changes(&mut tx, tenant, tenant_id, changes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn begin_run(
        &self,
        tenant: &TenantKey,
        trigger: &Trigger,
        options: RunOptions,
    ) -> Result<RunStart, StoreError> {
        let tenant_id = tenant_id(&mut *self.pool.acquire().await?, tenant).await?;
        // The lease decides (a live run holds the tenant's lock file); a run that finished
        // between our failed lock and our look-up simply lets us try again.
        for _ in 0..3 {
            if let Some(holder) = lock_tenant(&self.path, tenant_id).await? {
                let approval = options.approval;
                let mut tx = self.write().await?;
                let interrupted = interrupt_orphaned_runs(&mut tx, tenant_id).await?;
                let run: RunId = sqlx::query_scalar(
                    "INSERT INTO runs (tenant_id, trigger_kind, triggered_by, approves,
                                       approved_deactivations, started_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     RETURNING id",
                )
                .bind(tenant_id)
                .bind(trigger_kind_text(trigger.kind))
                .bind(trigger.by.as_deref())
                .bind(approval.map(|a| a.held_run))
                .bind(approval.map(|a| i64::try_from(a.deactivations).unwrap_or(i64::MAX)))
                .bind(now())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                for old in interrupted {
                    tracing::warn!(tenant = %tenant, run = old, "closed a run whose process stopped as interrupted");
                }
                return Ok(RunStart::Started(Arc::new(SqliteRunLease::new(
                    run,
                    tenant.clone(),
                    tenant_id,
                    self.pool.clone(),
                    holder,
                ))));
            }
            let running: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM runs WHERE tenant_id = $1 AND status = 'running'",
            )
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(id) = running {
                return Ok(RunStart::AlreadyRunning(id));
            }
        }
        Err(StoreError::NotFound(format!(
            "tenant {:?}: another process keeps taking and releasing its run lease without a \
             running run; try again",
            tenant.as_str()
        )))
    }

    async fn approve_held_run(
        &self,
        tenant: &TenantKey,
        held: RunId,
        approver: &str,
        window: chrono::Duration,
    ) -> Result<ApprovedRun, ApprovalError> {
        if approver.trim().is_empty() {
            return Err(ApprovalRefused::NoApprover.into());
        }
        let tenant_id: Option<i64> = sqlx::query_scalar(
            "SELECT r.tenant_id FROM runs r JOIN tenants t ON t.id = r.tenant_id
             WHERE r.id = $1 AND t.key = $2",
        )
        .bind(held)
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(tenant_id) = tenant_id else {
            return Err(ApprovalRefused::UnknownRun {
                tenant: tenant.clone(),
                run: held,
            }
            .into());
        };
        let Some(holder) = lock_tenant(&self.path, tenant_id).await? else {
            // Another run holds the tenant: perhaps the one carrying out this very approval.
            let approving: Option<ApprovingRow> = sqlx::query_as(
                "SELECT id, triggered_by, started_at FROM runs
                 WHERE approves = $1 AND approved_deactivations IS NOT NULL",
            )
            .bind(held)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(approving) = approving {
                return Err(approving.refusal(held).into());
            }
            let running: Option<RunId> = sqlx::query_scalar(
                "SELECT id FROM runs WHERE tenant_id = $1 AND status = 'running'",
            )
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
            return Err(ApprovalRefused::RunInProgress {
                running: running.unwrap_or_default(),
            }
            .into());
        };
        // The lease is held and the write lock orders the rest, as `FOR UPDATE` does in
        // PostgreSQL.
        let mut tx = self.write().await?;
        interrupt_orphaned_runs(&mut tx, tenant_id).await?;
        let row: Option<HeldRow> = sqlx::query_as(
            "SELECT r.tenant_id, r.status, r.finished_at, r.summary, $3 AS now
             FROM runs r JOIN tenants t ON t.id = r.tenant_id
             WHERE r.id = $1 AND t.key = $2",
        )
        .bind(held)
        .bind(tenant.as_str())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(ApprovalRefused::UnknownRun {
                tenant: tenant.clone(),
                run: held,
            }
            .into());
        };
        let approving: Option<ApprovingRow> = sqlx::query_as(
            "SELECT id, triggered_by, started_at FROM runs
             WHERE approves = $1 AND approved_deactivations IS NOT NULL",
        )
        .bind(held)
        .fetch_optional(&mut *tx)
        .await?;
        let newer: Vec<(RunId, String)> = sqlx::query_as(
            "SELECT id, status FROM runs WHERE tenant_id = $1 AND id > $2 ORDER BY id DESC",
        )
        .bind(row.tenant_id)
        .bind(held)
        .fetch_all(&mut *tx)
        .await?;
        let rejection = rejection_of(&mut *tx, held).await?;
        let deactivations = decide(held, &row, approving, rejection, &newer, window)?;
        let run: RunId = sqlx::query_scalar(
            "INSERT INTO runs (tenant_id, trigger_kind, triggered_by, approves,
                               approved_deactivations, started_at)
             VALUES ($1, 'manual', $2, $3, $4, $5)
             RETURNING id",
        )
        .bind(row.tenant_id)
        .bind(approver)
        .bind(held)
        .bind(i64::try_from(deactivations).unwrap_or(i64::MAX))
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ApprovedRun {
            run,
            deactivations,
            lease: Arc::new(SqliteRunLease::new(
                run,
                tenant.clone(),
                tenant_id,
                self.pool.clone(),
                holder,
            )),
        })
    }

    async fn reject_held_run(
        &self,
        tenant: &TenantKey,
        held: RunId,
        rejecter: &str,
        reason: Option<&str>,
    ) -> Result<Rejection, RejectionError> {
        let (rejecter, reason) = rejection_request(rejecter, reason)?;
        // The write lock orders a rejection and an approval of one run, as `FOR UPDATE` does.
        let mut tx = self.write().await?;
        let status: Option<String> = sqlx::query_scalar(
            "SELECT r.status FROM runs r JOIN tenants t ON t.id = r.tenant_id
             WHERE r.id = $1 AND t.key = $2",
        )
        .bind(held)
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(status) = status else {
            return Err(RejectionRefused::UnknownRun {
                tenant: tenant.clone(),
                run: held,
            }
            .into());
        };
        let status = RunStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("runs.status: {status:?} is not a run status"))
        })?;
        let rejection = rejection_of(&mut *tx, held).await?;
        let approving: Option<ApprovingRow> = sqlx::query_as(
            "SELECT id, triggered_by, started_at FROM runs
             WHERE approves = $1 AND approved_deactivations IS NOT NULL",
        )
        .bind(held)
        .fetch_optional(&mut *tx)
        .await?;
        decide_rejection(held, status, rejection, approving)?;
        let at = now();
        sqlx::query("UPDATE runs SET status = 'rejected' WHERE id = $1")
            .bind(held)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO run_rejections (run_id, rejected_by, rejected_at, reason)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(held)
        .bind(rejecter)
        .bind(at)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Rejection {
            by: rejecter.to_owned(),
            at,
            reason: reason.map(str::to_owned),
        })
    }

    async fn run_rejection(&self, run: RunId) -> Result<Option<Rejection>, StoreError> {
        Ok(rejection_of(&self.pool, run).await?)
    }

    async fn record_groups(&self, run: RunId, groups: &[GroupSummary]) -> Result<(), StoreError> {
        if groups.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let base: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM run_groups WHERE run_id = $1")
                .bind(run)
                .fetch_one(&mut *tx)
                .await?;
        for (n, group) in (base + 1..).zip(groups) {
            sqlx::query(
                "INSERT INTO run_groups (run_id, seq, entra_group_id, name, role, members_seen,
                                         status, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(run)
            .bind(n)
            .bind(group.entra_id.as_uuid())
            .bind(&group.name)
            .bind(group.role.as_str())
            .bind(
                group
                    .members_seen
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            )
            .bind(group.status.as_str())
            .bind(group.message.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(|e| missing_run(e, run))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_entries(&self, run: RunId, entries: &[ReportEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        write_entries(&mut tx, run, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_run(&self, run: RunId, finish: &RunFinish) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE runs
             SET status = $2,
                 finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE $5 END,
                 summary = $3,
                 message = $4
             WHERE id = $1",
        )
        .bind(run)
        .bind(finish.status.as_str())
        .bind(Json(&finish.summary))
        .bind(finish.message.as_deref())
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!("run {run} does not exist")));
        }
        Ok(())
    }

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<RunRow> = sqlx::query_as(&format!("{RUN_COLUMNS} WHERE r.id = $1"))
            .bind(run)
            .fetch_optional(&self.pool)
            .await?;
        row.map(run_from_row).transpose()
    }

    async fn runs(&self, tenant: &TenantKey, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "{RUN_COLUMNS} WHERE t.key = $1 ORDER BY r.started_at DESC, r.id DESC LIMIT $2"
        ))
        .bind(tenant.as_str())
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(run_from_row).collect()
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        let known = MIGRATOR.iter().count() as i64;
        if applied < known {
            return Err(StoreError::NotFound(format!(
                "{applied} of {known} database migrations are applied; run `dirsync migrate`"
            )));
        }
        Ok(())
    }

    async fn find_runs(
        &self,
        tenant: &TenantKey,
        filter: &RunFilter,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "{RUN_COLUMNS} WHERE t.key = $1
               AND ($2 IS NULL OR r.trigger_kind = $2)
               AND ($3 IS NULL OR r.status = $3)
               AND ($4 IS NULL OR r.started_at >= $4)
               AND ($5 IS NULL OR r.started_at < $5)
             ORDER BY r.started_at DESC, r.id DESC LIMIT $6"
        ))
        .bind(tenant.as_str())
        .bind(filter.trigger.map(trigger_kind_text))
        .bind(filter.status.map(RunStatus::as_str))
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(run_from_row).collect()
    }

    async fn claim_midnight(
        &self,
        tenant: &TenantKey,
        midnight: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "INSERT INTO scheduled_midnights (tenant_id, midnight, claimed_at)
             SELECT id, $2, $3 FROM tenants WHERE key = $1
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(midnight)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn release_midnight(
        &self,
        tenant: &TenantKey,
        midnight: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM scheduled_midnights
             WHERE tenant_id = (SELECT id FROM tenants WHERE key = $1) AND midnight = $2",
        )
        .bind(tenant.as_str())
        .bind(midnight)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn schedule_baseline(&self, tenant: &TenantKey) -> Result<DateTime<Utc>, StoreError> {
        let row: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT t.created_at,
                    (SELECT max(midnight) FROM scheduled_midnights m WHERE m.tenant_id = t.id)
             FROM tenants t WHERE t.key = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let (created, latest) = row.ok_or_else(|| no_tenant(tenant))?;
        Ok(latest.map_or(created, |latest| latest.max(created)))
    }

    async fn run_groups(&self, run: RunId) -> Result<Vec<GroupSummary>, StoreError> {
        let rows: Vec<(Uuid, String, String, Option<i64>, String, Option<String>)> =
            sqlx::query_as(
                "SELECT entra_group_id, name, role, members_seen, status, message
             FROM run_groups WHERE run_id = $1 ORDER BY seq",
            )
            .bind(run)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(entra_id, name, role, members_seen, status, message)| {
                Ok(GroupSummary {
                    entra_id: entra_id.into(),
                    name,
                    role: parse("run_groups.role", role.parse())?,
                    members_seen: members_seen
                        .map(|n| parse("run_groups.members_seen", usize::try_from(n)))
                        .transpose()?,
                    status: parse("run_groups.status", group_status(&status))?,
                    message,
                })
            })
            .collect()
    }

    async fn entries_after(
        &self,
        run: RunId,
        filter: &super::EntryFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<super::NumberedEntry>, StoreError> {
        super::report_lines::sqlite_entries_after(&self.pool, run, filter, after, limit).await
    }

    async fn entry_tally(&self, run: RunId) -> Result<super::EntryTally, StoreError> {
        super::report_lines::sqlite_tally(&self.pool, run).await
    }

    fn entries_stream(
        &self,
        run: RunId,
        filter: super::EntryFilter,
    ) -> futures::stream::BoxStream<'_, Result<ReportEntry, StoreError>> {
        super::report_lines::sqlite_stream(&self.pool, run, filter)
    }

    async fn run_entries(&self, run: RunId) -> Result<Vec<ReportEntry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT subject, entra_id, email, name, action, field, old_value, new_value, severity,
                    message
             FROM report_entries WHERE run_id = $1 ORDER BY id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(
                    subject,
                    entra_id,
                    email,
                    name,
                    action,
                    field,
                    old_value,
                    new_value,
                    severity,
                    message,
                )| {
                    Ok(ReportEntry {
                        subject: parse("report_entries.subject", subject_kind(&subject))?,
                        entra_id: entra_id.map(EntraObjectId::from),
                        email,
                        name,
                        action,
                        field,
                        old_value,
                        new_value,
                        severity: parse("report_entries.severity", severity_level(&severity))?,
                        message,
                    })
                },
            )
            .collect()
    }

    async fn purge_runs_before(
        &self,
        tenant: &TenantKey,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        // A run still in progress keeps its report whatever its age: its writer still needs it.
        let purged = sqlx::query(
            "DELETE FROM runs
             WHERE tenant_id = (SELECT id FROM tenants WHERE key = $1)
               AND started_at < $2 AND status <> 'running'",
        )
        .bind(tenant.as_str())
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Claimed midnights older than the cutoff go too, except the latest: the schedule reads it.
        sqlx::query(
            "DELETE FROM scheduled_midnights
             WHERE tenant_id = (SELECT id FROM tenants WHERE key = $1) AND midnight < $2
               AND midnight < (SELECT max(midnight) FROM scheduled_midnights l
                               WHERE l.tenant_id = scheduled_midnights.tenant_id)",
        )
        .bind(tenant.as_str())
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(purged)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A run's mirror changes, inside the caller's write transaction (a flush, or
/// [`Store::apply_mirror_changes`]).
pub(super) async fn write_mirror_changes(
    conn: &mut SqliteConnection,
    tenant: &TenantKey,
    tenant_id: i64,
    changes: &MirrorChanges,
) -> Result<(), StoreError> {
    let now = now();

    // R9a first: a rehired user's link moves to the new user before anything else names it.
    release_users(&mut *conn, tenant_id, &changes.users_released).await?;

    // Memberships first: the plan removes members before it converts their group.
    for chunk in changes.members_removed.chunks(CHUNK) {
        sqlx::query(
            "DELETE FROM memberships
             WHERE (synced_group_id, entra_user_id) IN (
                 SELECT g.id, unhex(c.value ->> 2)
                 FROM json_each($2) AS c
                 JOIN synced_groups g
                   ON g.tenant_id = $1 AND g.kind = 'synced'
                  AND g.entra_group_id = unhex(c.value ->> 0) AND g.role = c.value ->> 1)",
        )
        .bind(tenant_id)
        .bind(Json(membership_rows(chunk)))
        .execute(&mut *conn)
        .await?;
    }

    // Conversions before creations: R13 converts (group, old role) and creates (group, new
    // role), and only one synced group per Entra group may exist at a time.
    let mut converted_count = 0;
    for (group, system_name) in &changes.groups_converted {
        let converted: Option<i64> = sqlx::query_scalar(
            "UPDATE synced_groups
             SET kind = 'system', system_name = $4, converted_at = $5
             WHERE tenant_id = $1 AND kind = 'synced' AND entra_group_id = $2 AND role = $3
             RETURNING id",
        )
        .bind(tenant_id)
        .bind(group.entra_id.as_uuid())
        .bind(group.role.as_str())
        .bind(system_name)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(id) = converted {
            converted_count += 1;
            // The mirror does not track the members of groups it no longer manages.
            sqlx::query("DELETE FROM memberships WHERE synced_group_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
    }
    warn_if_missed(
        tenant,
        "converted",
        changes.groups_converted.len(),
        converted_count,
    );

    // The applier never creates a group whose Entra group still has a synced group (a failed
    // R13 conversion makes the creation wait); should one slip through, it is skipped with a
    // warning rather than rolling back the whole flush, as in PostgreSQL.
    let mut created_count = 0;
    for group in &changes.groups_created {
        let created = sqlx::query(
            "INSERT INTO synced_groups (tenant_id, entra_group_id, role, target_group_id, name,
                                        created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, entra_group_id) WHERE kind = 'synced' DO NOTHING",
        )
        .bind(tenant_id)
        .bind(group.key.entra_id.as_uuid())
        .bind(group.key.role.as_str())
        .bind(group.target_id.as_str())
        .bind(&group.name)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        created_count += usize::try_from(created).unwrap_or(usize::MAX);
    }
    warn_if_missed(
        tenant,
        "created",
        changes.groups_created.len(),
        created_count,
    );

    let mut renamed_count = 0;
    for (group, name) in &changes.groups_renamed {
        let renamed = sqlx::query(
            "UPDATE synced_groups SET name = $4
             WHERE tenant_id = $1 AND kind = 'synced' AND entra_group_id = $2 AND role = $3",
        )
        .bind(tenant_id)
        .bind(group.entra_id.as_uuid())
        .bind(group.role.as_str())
        .bind(name)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        renamed_count += usize::try_from(renamed).unwrap_or(usize::MAX);
    }
    warn_if_missed(
        tenant,
        "renamed",
        changes.groups_renamed.len(),
        renamed_count,
    );

    let users = last_state_per_user(&changes.users);
    for chunk in users.chunks(CHUNK) {
        upsert_users(&mut *conn, tenant_id, chunk, now).await?;
    }

    for chunk in changes.members_added.chunks(CHUNK) {
        sqlx::query(
            "INSERT INTO memberships (synced_group_id, entra_user_id)
             SELECT g.id, unhex(c.value ->> 2)
             FROM json_each($2) AS c
             JOIN synced_groups g
               ON g.tenant_id = $1 AND g.kind = 'synced'
              AND g.entra_group_id = unhex(c.value ->> 0) AND g.role = c.value ->> 1
             WHERE true
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(Json(membership_rows(chunk)))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Appends report lines inside the caller's write transaction.
pub(super) async fn write_entries(
    conn: &mut SqliteConnection,
    run: RunId,
    entries: &[ReportEntry],
) -> Result<(), StoreError> {
    // Ids are drawn in the order written, so reading by id returns the lines as written.
    for chunk in entries.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|e| {
                (
                    e.subject.as_str(),
                    e.entra_id.as_ref().map(|id| hex(id.as_uuid())),
                    e.email.as_deref(),
                    e.name.as_deref(),
                    e.action.as_str(),
                    e.field.as_deref(),
                    e.old_value.as_deref(),
                    e.new_value.as_deref(),
                    e.severity.as_str(),
                    e.message.as_deref(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO report_entries (run_id, subject, entra_id, email, name, action, field,
                                         old_value, new_value, severity, message)
             SELECT $1, c.value ->> 0, unhex(c.value ->> 1), c.value ->> 2, c.value ->> 3,
                    c.value ->> 4, c.value ->> 5, c.value ->> 6, c.value ->> 7, c.value ->> 8,
                    c.value ->> 9
             FROM json_each($2) AS c ORDER BY c.key",
        )
        .bind(run)
        .bind(Json(rows))
        .execute(&mut *conn)
        .await
        .map_err(|e| missing_run(e, run))?;
    }
    Ok(())
}

pub(super) async fn tenant_id(
    conn: &mut SqliteConnection,
    tenant: &TenantKey,
) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE key = $1")
        .bind(tenant.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| no_tenant(tenant))
}

/// A UUID as the 32 hex digits SQLite's `unhex` turns back into its 16 bytes.
fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// `[group, role, user]` per membership, for `json_each`.
fn membership_rows(chunk: &[(GroupKey, EntraObjectId)]) -> Vec<(String, &'static str, String)> {
    chunk
        .iter()
        .map(|(g, u)| (hex(g.entra_id.as_uuid()), g.role.as_str(), hex(u.as_uuid())))
        .collect()
}

async fn upsert_users(
    conn: &mut SqliteConnection,
    tenant_id: i64,
    users: &[&MirrorUser],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rows: Vec<_> = users
        .iter()
        .map(|u| {
            let fields = &u.state.fields;
            (
                hex(u.entra_id.as_uuid()),
                u.target_id.as_str(),
                fields.email.as_str(),
                fields.first_name.as_str(),
                fields.last_name.as_str(),
                fields.phone.as_deref(),
                fields.job_title.as_deref(),
                u.state.role.as_str(),
                u.state.status.as_str(),
            )
        })
        .collect();
    sqlx::query(
        "INSERT INTO synced_users (tenant_id, entra_user_id, target_user_id, email, first_name,
                                   last_name, phone, job_title, role, status, updated_at)
         SELECT $1, unhex(c.value ->> 0), c.value ->> 1, c.value ->> 2, c.value ->> 3,
                c.value ->> 4, c.value ->> 5, c.value ->> 6, c.value ->> 7, c.value ->> 8, $3
         FROM json_each($2) AS c
         WHERE true
         ON CONFLICT (tenant_id, entra_user_id) DO UPDATE SET
             target_user_id = excluded.target_user_id,
             email = excluded.email,
             first_name = excluded.first_name,
             last_name = excluded.last_name,
             phone = excluded.phone,
             job_title = excluded.job_title,
             role = excluded.role,
             status = excluded.status,
             updated_at = excluded.updated_at
         WHERE (synced_users.target_user_id, synced_users.email, synced_users.first_name,
                synced_users.last_name, synced_users.phone, synced_users.job_title,
                synced_users.role, synced_users.status)
               IS NOT
               (excluded.target_user_id, excluded.email, excluded.first_name, excluded.last_name,
                excluded.phone, excluded.job_title, excluded.role, excluded.status)",
    )
    .bind(tenant_id)
    .bind(Json(rows))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// R9a: each departed user's memberships become its successor's, and the departed user is no
/// longer a synced user (its target user now belongs to the successor).
async fn release_users(
    conn: &mut SqliteConnection,
    tenant_id: i64,
    released: &[(EntraObjectId, EntraObjectId)],
) -> Result<(), StoreError> {
    for (old, new) in released {
        sqlx::query(
            "INSERT INTO memberships (synced_group_id, entra_user_id)
             SELECT m.synced_group_id, $3
             FROM memberships m JOIN synced_groups g ON g.id = m.synced_group_id AND g.tenant_id = $1
             WHERE m.entra_user_id = $2
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(old.as_uuid())
        .bind(new.as_uuid())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "DELETE FROM memberships
             WHERE entra_user_id = $2
               AND synced_group_id IN (SELECT id FROM synced_groups WHERE tenant_id = $1)",
        )
        .bind(tenant_id)
        .bind(old.as_uuid())
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM synced_users WHERE tenant_id = $1 AND entra_user_id = $2")
            .bind(tenant_id)
            .bind(old.as_uuid())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Who rejected run `run`, when and why; `None` when it was not rejected.
async fn rejection_of<'e, E>(executor: E, run: RunId) -> Result<Option<Rejection>, sqlx::Error>
where
    E: sqlx::SqliteExecutor<'e>,
{
    let row: Option<(String, DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT rejected_by, rejected_at, reason FROM run_rejections WHERE run_id = $1",
    )
    .bind(run)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|(by, at, reason)| Rejection { by, at, reason }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_and_its_directory_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dirsync-private-{}", Uuid::new_v4()));
        let path = dir.join("data").join("dirsync.db");
        let store = SqliteStore::open(&path, 1).await.unwrap();
        store.ready().await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        assert_eq!(mode(Path::new(&wal)), 0o600);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
