//! The PostgreSQL `Store`: set-based writes, migrations embedded and applied at start.
//!
//! Every write that carries many rows binds whole columns as arrays and expands them with
//! `UNNEST`, so a run that touches 100,000 users costs a handful of round trips, not 100,000.
//! Rows read back are parsed into domain types; a row that no longer parses is
//! [`StoreError::Corrupt`] naming the table and column.

use std::collections::HashMap;
use std::fmt::Display;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::{
    Approval, ApprovalError, ApprovedRun, EntryPage, EntryQuery, MirrorChanges, PersonEvent,
    PersonMatch, Rejection, RejectionError, ReportEntry, RunFilter, RunFinish, RunId, RunOptions,
    RunProgress, RunRecord, RunStart, RunStatus, RunSummary, Store, StoreError, SubjectKind,
    TenantSaved, Trigger, TriggerKind,
};
use crate::domain::expose_for_storage;
use crate::domain::{
    DeactivationStatus, Email, EntraObjectId, Role, TargetGroupId, TargetUserId, TenantKey,
    UserStatus,
};
use crate::plan::{
    ConvertedGroup, GroupKey, GroupStatus, GroupSummary, Mirror, MirrorGroup, MirrorUser,
    SelectedGroup, Severity, TenantPolicy, UserFields, UserState,
};
use crate::tenant::{Retention, TargetSettings, Tenant};

/// Rows per statement for bulk writes: large enough that a run is a few statements, small enough
/// that one statement's arrays stay a few megabytes.
pub(super) const CHUNK: usize = 10_000;

/// The migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The production store. Cheap to clone (the pool is shared), so every task may hold one.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool to `url` (`postgres://user@host:5432/db`). Migrations are not run: call
    /// [`migrate`](Self::migrate).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await?;
        Ok(Self::new(pool))
    }

    /// Connects with at most `max_connections` and applies the migrations: ready to use.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(url)
            .await?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the embedded migrations that this database has not seen yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn upsert_tenant(&self, tenant: &Tenant) -> Result<TenantSaved, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<(Uuid, serde_json::Value, serde_json::Value)> = sqlx::query_as(
            "SELECT entra_tenant_id, source, target FROM tenants WHERE key = $1 FOR UPDATE",
        )
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
                                  source, target)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (key) DO UPDATE SET
                 display_name = EXCLUDED.display_name,
                 entra_tenant_id = EXCLUDED.entra_tenant_id,
                 time_zone = EXCLUDED.time_zone,
                 report_retention_months = EXCLUDED.report_retention_months,
                 deactivation_status = EXCLUDED.deactivation_status,
                 deletion_threshold = EXCLUDED.deletion_threshold,
                 source = EXCLUDED.source,
                 target = EXCLUDED.target,
                 updated_at = now()
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
        let groups = &tenant.policy.selected_groups;
        let ids: Vec<Uuid> = groups.iter().map(|g| g.entra_id.as_uuid()).collect();
        let roles: Vec<&str> = groups.iter().map(|g| g.role.as_str()).collect();
        sqlx::query(
            "INSERT INTO selected_groups (tenant_id, entra_group_id, role, position)
             SELECT $1, c.entra_group_id, c.role, c.position::integer
             FROM UNNEST($2::uuid[], $3::text[]) WITH ORDINALITY AS c(entra_group_id, role, position)",
        )
        .bind(tenant_id)
        .bind(&ids)
        .bind(&roles)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TenantSaved {
            created: before.is_none(),
            connection_changed,
        })
    }

    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        let mut tx = read_snapshot(&self.pool).await?;
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
        let mut tx = read_snapshot(&self.pool).await?;
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
        let mut tx = read_snapshot(&self.pool).await?;
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
            "SELECT DISTINCT ON (g.entra_group_id) g.entra_group_id, g.role, g.name, g.system_name
             FROM synced_groups g
             WHERE g.tenant_id = $1 AND g.kind = 'system'
               AND NOT EXISTS (SELECT 1 FROM synced_groups s
                               WHERE s.tenant_id = $1 AND s.kind = 'synced'
                                 AND s.entra_group_id = g.entra_group_id)
             ORDER BY g.entra_group_id, g.converted_at DESC, g.id DESC",
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
                    TargetGroupId::new(target_id),
                )?,
                name,
                members: Vec::new(),
            });
        }
        for (group_id, user) in member_rows {
            // The join guarantees the group was loaded.
            if let Some(&at) = index.get(&group_id) {
                groups[at].members.push(user.into());
            }
        }
        for group in &mut groups {
            group.members.sort_unstable();
        }
        groups.sort_unstable_by(|a, b| a.key.cmp(&b.key));

        let converted = converted_rows
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
        let mut tx = self.pool.begin().await?;
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
        // The lease decides (a live run holds the tenant's lock); a run that finished between
        // our failed lock and our look-up simply lets us try again.
        for _ in 0..3 {
            if let Some(mut locked) =
                super::lease::LockedTenant::lock(&self.pool.connect_options(), tenant).await?
            {
                let approval = options.approval;
                let mut tx = locked.conn.begin().await?;
                let interrupted =
                    super::lease::interrupt_orphaned_runs(&mut tx, locked.tenant_id).await?;
                let run: RunId = sqlx::query_scalar(
                    "INSERT INTO runs (tenant_id, trigger_kind, triggered_by, approves,
                                       approved_deactivations)
                     VALUES ($1, $2, $3, $4, $5)
                     RETURNING id",
                )
                .bind(locked.tenant_id)
                .bind(trigger_kind_text(trigger.kind))
                .bind(trigger.by.as_deref())
                .bind(approval.map(|a| a.held_run))
                .bind(approval.map(|a| i64::try_from(a.deactivations).unwrap_or(i64::MAX)))
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                for old in interrupted {
                    tracing::warn!(tenant = %tenant, run = old, "closed a run whose process stopped as interrupted");
                }
                return Ok(RunStart::Started(std::sync::Arc::new(
                    locked.into_lease(run, tenant),
                )));
            }
            let running: Option<i64> = sqlx::query_scalar(
                "SELECT r.id FROM runs r JOIN tenants t ON t.id = r.tenant_id
                 WHERE t.key = $1 AND r.status = 'running'",
            )
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(id) = running {
                return Ok(RunStart::AlreadyRunning(id));
            }
        }
        Err(StoreError::NotFound(format!(
            "tenant {:?}: another process keeps taking and releasing its run lease without a              running run; try again",
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
        super::approval::approve_held_run(&self.pool, tenant, held, approver, window).await
    }

    async fn reject_held_run(
        &self,
        tenant: &TenantKey,
        held: RunId,
        rejecter: &str,
        reason: Option<&str>,
    ) -> Result<Rejection, RejectionError> {
        super::approval::reject_held_run(&self.pool, tenant, held, rejecter, reason).await
    }

    async fn run_rejection(&self, run: RunId) -> Result<Option<Rejection>, StoreError> {
        Ok(super::approval::rejection_of(&self.pool, run).await?)
    }

    async fn record_groups(&self, run: RunId, groups: &[GroupSummary]) -> Result<(), StoreError> {
        if groups.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in groups.chunks(CHUNK) {
            let ids: Vec<Uuid> = chunk.iter().map(|g| g.entra_id.as_uuid()).collect();
            let names: Vec<&str> = chunk.iter().map(|g| g.name.as_str()).collect();
            let roles: Vec<&str> = chunk.iter().map(|g| g.role.as_str()).collect();
            let seen: Vec<Option<i64>> = chunk
                .iter()
                .map(|g| g.members_seen.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                .collect();
            let statuses: Vec<&str> = chunk.iter().map(|g| g.status.as_str()).collect();
            let messages: Vec<Option<&str>> = chunk.iter().map(|g| g.message.as_deref()).collect();
            sqlx::query(
                "INSERT INTO run_groups (run_id, seq, entra_group_id, name, role, members_seen, status, message)
                 SELECT $1, (base.seq + c.ord)::integer, c.entra_group_id, c.name, c.role,
                        c.members_seen, c.status, c.message
                 FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM run_groups WHERE run_id = $1) AS base,
                      UNNEST($2::uuid[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[])
                      WITH ORDINALITY AS c(entra_group_id, name, role, members_seen, status, message, ord)
                 ORDER BY c.ord",
            )
            .bind(run)
            .bind(&ids)
            .bind(&names)
            .bind(&roles)
            .bind(&seen)
            .bind(&statuses)
            .bind(&messages)
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
        let mut tx = self.pool.begin().await?;
        write_entries(&mut tx, run, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_run(&self, run: RunId, finish: &RunFinish) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE runs
             SET status = $2,
                 finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END,
                 summary = $3,
                 message = $4
             WHERE id = $1 AND status = 'running'",
        )
        .bind(run)
        .bind(finish.status.as_str())
        .bind(Json(&finish.summary))
        .bind(finish.message.as_deref())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            // Never overwrite how a run ended (another process may have closed it already).
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
                    .bind(run)
                    .fetch_optional(&self.pool)
                    .await?;
            return Err(match status {
                None => StoreError::NotFound(format!("run {run} does not exist")),
                Some(status) => StoreError::LeaseLost(format!(
                    "run {run} has already ended ({status}); its status is kept"
                )),
            });
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
               AND ($2::text IS NULL OR r.trigger_kind = $2)
               AND ($3::text IS NULL OR r.status = $3)
               AND ($4::timestamptz IS NULL OR r.started_at >= $4)
               AND ($5::timestamptz IS NULL OR r.started_at < $5)
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
            "INSERT INTO scheduled_midnights (tenant_id, midnight)
             SELECT id, $2 FROM tenants WHERE key = $1
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(midnight)
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
            "DELETE FROM scheduled_midnights m USING tenants t
             WHERE t.id = m.tenant_id AND t.key = $1 AND m.midnight = $2",
        )
        .bind(tenant.as_str())
        .bind(midnight)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn schedule_baseline(&self, tenant: &TenantKey) -> Result<DateTime<Utc>, StoreError> {
        let baseline: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT GREATEST(t.created_at, (SELECT max(midnight) FROM scheduled_midnights m WHERE m.tenant_id = t.id))
             FROM tenants t WHERE t.key = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        baseline.ok_or_else(|| no_tenant(tenant))
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
        super::report_lines::pg_entries_after(&self.pool, run, filter, after, limit).await
    }

    async fn entry_tally(&self, run: RunId) -> Result<super::EntryTally, StoreError> {
        super::report_lines::pg_tally(&self.pool, run).await
    }

    fn entries_stream(
        &self,
        run: RunId,
        filter: super::EntryFilter,
    ) -> futures::stream::BoxStream<'_, Result<ReportEntry, StoreError>> {
        super::report_lines::pg_stream(&self.pool, run, filter)
    }

    async fn run_entries(&self, run: RunId) -> Result<Vec<ReportEntry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT subject, entra_id, email, name, action, field, old_value, new_value, severity, message
             FROM report_entries WHERE run_id = $1 ORDER BY id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(entry_from_row).collect()
    }

    async fn entries_page(&self, run: RunId, query: &EntryQuery) -> Result<EntryPage, StoreError> {
        super::search::entries_page(&self.pool, run, query).await
    }

    async fn find_people(
        &self,
        tenant: &TenantKey,
        text: &str,
        limit: i64,
    ) -> Result<Vec<PersonMatch>, StoreError> {
        super::search::find_people(&self.pool, tenant, text, limit).await
    }

    async fn person_history(
        &self,
        tenant: &TenantKey,
        person: &EntraObjectId,
        limit: i64,
    ) -> Result<Vec<PersonEvent>, StoreError> {
        super::search::person_history(&self.pool, tenant, person, limit).await
    }

    async fn purge_runs_before(
        &self,
        tenant: &TenantKey,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // A run still in progress keeps its report whatever its age: its writer still needs it.
        let purged = sqlx::query(
            "DELETE FROM runs r USING tenants t
             WHERE r.tenant_id = t.id AND t.key = $1 AND r.started_at < $2 AND r.status <> 'running'",
        )
        .bind(tenant.as_str())
        .bind(cutoff)
        .execute(&self.pool)
        .await?
        .rows_affected();
        // Claimed midnights older than the cutoff go too, except the latest: the schedule reads it.
        sqlx::query(
            "DELETE FROM scheduled_midnights m USING tenants t
             WHERE m.tenant_id = t.id AND t.key = $1 AND m.midnight < $2
               AND m.midnight < (SELECT max(midnight) FROM scheduled_midnights l WHERE l.tenant_id = t.id)",
        )
        .bind(tenant.as_str())
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(purged)
    }
}

// ---------------------------------------------------------------------------------------------
// Rows and their parsing
// ---------------------------------------------------------------------------------------------

pub(super) const TENANT_COLUMNS: &str = "SELECT id, key, display_name, entra_tenant_id, time_zone, \
     report_retention_months, deactivation_status, deletion_threshold, source, target FROM tenants";

pub(super) type TenantRow = (
    i64,
    String,
    String,
    Uuid,
    String,
    i16,
    String,
    i64,
    serde_json::Value,
    serde_json::Value,
);

pub(super) type UserRow = (
    Uuid,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

pub(super) const RUN_COLUMNS: &str = "SELECT r.id, t.key, r.trigger_kind, r.triggered_by, r.status, r.started_at, \
     r.finished_at, r.summary, r.message, r.approves, r.progress_stage, r.progress_done, \
     r.progress_total, r.heartbeat_at, r.approved_deactivations \
     FROM runs r JOIN tenants t ON t.id = r.tenant_id";

pub(super) type RunRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<serde_json::Value>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<DateTime<Utc>>,
    Option<i64>,
);

pub(super) type EntryRow = (
    String,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// Maps a value that did not parse to [`StoreError::Corrupt`], naming where it was stored.
pub(super) fn parse<T, E: Display>(column: &str, parsed: Result<T, E>) -> Result<T, StoreError> {
    parsed.map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A report line as stored.
pub(super) fn entry_from_row(row: EntryRow) -> Result<ReportEntry, StoreError> {
    let (subject, entra_id, email, name, action, field, old_value, new_value, severity, message) =
        row;
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
}

pub(super) fn tenant_from_row(
    row: TenantRow,
    groups: Vec<(i64, Uuid, String)>,
) -> Result<Tenant, StoreError> {
    let (
        _,
        key,
        display_name,
        entra_tenant_id,
        time_zone,
        retention,
        deactivation,
        threshold,
        source,
        target,
    ) = row;
    let selected_groups = groups
        .into_iter()
        .map(|(_, entra_id, role)| {
            Ok(SelectedGroup {
                entra_id: entra_id.into(),
                role: parse("selected_groups.role", role.parse::<Role>())?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Tenant {
        key: parse("tenants.key", TenantKey::parse(&key))?,
        display_name,
        entra_tenant_id: entra_tenant_id.into(),
        time_zone: parse("tenants.time_zone", time_zone.parse::<chrono_tz::Tz>())?,
        report_retention: parse(
            "tenants.report_retention_months",
            u8::try_from(retention)
                .map_err(|e| e.to_string())
                .and_then(Retention::try_from),
        )?,
        policy: TenantPolicy {
            selected_groups,
            deactivation_status: parse(
                "tenants.deactivation_status",
                deactivation.parse::<DeactivationStatus>(),
            )?,
            deletion_threshold: parse("tenants.deletion_threshold", u32::try_from(threshold))?,
        },
        source: parse("tenants.source", serde_json::from_value(source))?,
        target: parse("tenants.target", TargetSettings::from_stored(&target))?,
    })
}

/// A tenant's synced users, as [`mirror_users_from_rows`] reads them (`$1`: the tenant's row id).
pub(super) const MIRROR_USERS_SQL: &str =
    "SELECT entra_user_id, target_user_id, email, first_name, last_name, phone, job_title, role,
            status
     FROM synced_users WHERE tenant_id = $1";

/// A query's rows, each made into a `T` as it arrives, a tokio budget unit a row: rows already
/// received are handed over without waiting, so 100,000 of them in one poll would hold up the
/// Graph read sharing the worker (issue 13).
pub(super) async fn rows_cooperatively<R, T>(
    rows: impl futures::Stream<Item = Result<R, sqlx::Error>>,
    make: impl Fn(R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = std::pin::pin!(rows);
    let mut made = Vec::new();
    while let Some(row) = rows.try_next().await? {
        made.push(make(row)?);
        tokio::task::consume_budget().await;
    }
    Ok(made)
}

/// The mirror's users, sorted by Entra id, from a stream of [`MIRROR_USERS_SQL`] rows: each row
/// becomes a mirror user as it arrives, so a 500,000-user tenant's rows are never all held beside
/// the users made from them (issue 13).
pub(super) async fn mirror_users_from_rows(
    rows: impl futures::Stream<Item = Result<UserRow, sqlx::Error>>,
) -> Result<Vec<MirrorUser>, StoreError> {
    let mut users = rows_cooperatively(rows, mirror_user_from_row).await?;
    users.shrink_to_fit();
    users.sort_unstable_by(|a, b| a.entra_id.cmp(&b.entra_id));
    Ok(users)
}

fn mirror_user_from_row(row: UserRow) -> Result<MirrorUser, StoreError> {
    let (entra_id, target_id, email, first_name, last_name, phone, job_title, role, status) = row;
    Ok(MirrorUser {
        entra_id: entra_id.into(),
        target_id: parse("synced_users.target_user_id", TargetUserId::new(target_id))?,
        state: UserState {
            fields: UserFields {
                email: parse("synced_users.email", Email::parse(&email))?,
                first_name: first_name.into(),
                last_name: last_name.into(),
                phone: phone.map(Into::into),
                job_title: job_title.map(Into::into),
            },
            role: parse("synced_users.role", role.parse::<Role>())?,
            status: parse("synced_users.status", status.parse::<UserStatus>())?,
        },
    })
}

pub(super) fn run_from_row(row: RunRow) -> Result<RunRecord, StoreError> {
    let (
        id,
        key,
        kind,
        by,
        status,
        started_at,
        finished_at,
        summary,
        message,
        approves,
        stage,
        done,
        total,
        heartbeat_at,
        approved_deactivations,
    ) = row;
    let kind = match kind.as_str() {
        "automatic" => TriggerKind::Automatic,
        "manual" => TriggerKind::Manual,
        "on_demand" => TriggerKind::OnDemand,
        other => {
            return Err(StoreError::Corrupt(format!(
                "runs.trigger_kind: {other:?} is not \"automatic\", \"manual\" or \"on_demand\""
            )));
        }
    };
    Ok(RunRecord {
        id,
        tenant: parse("tenants.key", TenantKey::parse(&key))?,
        trigger: Trigger { kind, by },
        status: RunStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("runs.status: {status:?} is not a run status"))
        })?,
        started_at,
        finished_at,
        summary: summary
            .map(|value| parse("runs.summary", serde_json::from_value::<RunSummary>(value)))
            .transpose()?,
        message,
        // Runs that approved before approvals carried a count read as plain manual runs.
        options: RunOptions {
            approval: approves
                .zip(approved_deactivations)
                .map(|(held_run, deactivations)| Approval {
                    held_run,
                    deactivations: u64::try_from(deactivations).unwrap_or(0),
                }),
        },
        progress: stage.map(|stage| RunProgress {
            stage,
            done: done.unwrap_or(0).into(),
            total: total.unwrap_or(0).into(),
        }),
        heartbeat_at,
    })
}

pub(super) fn trigger_kind_text(kind: TriggerKind) -> &'static str {
    match kind {
        TriggerKind::Automatic => "automatic",
        TriggerKind::Manual => "manual",
        TriggerKind::OnDemand => "on_demand",
    }
}

pub(super) fn group_status(text: &str) -> Result<GroupStatus, String> {
    [
        GroupStatus::Found,
        GroupStatus::Deleted,
        GroupStatus::Failed,
        GroupStatus::Deselected,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
    .ok_or_else(|| format!("{text:?} is not a group status"))
}

pub(super) fn subject_kind(text: &str) -> Result<SubjectKind, String> {
    [SubjectKind::User, SubjectKind::Group, SubjectKind::Run]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not a report subject"))
}

pub(super) fn severity_level(text: &str) -> Result<Severity, String> {
    [Severity::Info, Severity::Warning, Severity::Error]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not a severity"))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A read-only transaction that sees one snapshot, so the queries that assemble one answer agree.
async fn read_snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

pub(super) async fn tenant_id(
    conn: &mut PgConnection,
    tenant: &TenantKey,
) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE key = $1")
        .bind(tenant.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| no_tenant(tenant))
}

pub(super) fn no_tenant(tenant: &TenantKey) -> StoreError {
    StoreError::NotFound(format!(
        "tenant {tenant:?} does not exist",
        tenant = tenant.as_str()
    ))
}

/// A report row for a run that is not there violates the foreign key; say so plainly.
pub(super) fn missing_run(error: sqlx::Error, run: RunId) -> StoreError {
    match &error {
        sqlx::Error::Database(e) if e.is_foreign_key_violation() => {
            StoreError::NotFound(format!("run {run} does not exist"))
        }
        _ => error.into(),
    }
}

fn membership_columns(
    chunk: &[(GroupKey, EntraObjectId)],
) -> (Vec<Uuid>, Vec<&'static str>, Vec<Uuid>) {
    let groups = chunk.iter().map(|(g, _)| g.entra_id.as_uuid()).collect();
    let roles = chunk.iter().map(|(g, _)| g.role.as_str()).collect();
    let users = chunk.iter().map(|(_, u)| u.as_uuid()).collect();
    (groups, roles, users)
}

fn renamed_columns(chunk: &[(GroupKey, String)]) -> (Vec<Uuid>, Vec<&'static str>, Vec<&str>) {
    let groups = chunk.iter().map(|(g, _)| g.entra_id.as_uuid()).collect();
    let roles = chunk.iter().map(|(g, _)| g.role.as_str()).collect();
    let names = chunk.iter().map(|(_, name)| name.as_str()).collect();
    (groups, roles, names)
}

/// One state per user, the last one given: an upsert may not touch the same row twice.
pub(super) fn last_state_per_user(users: &[MirrorUser]) -> Vec<&MirrorUser> {
    let mut at: HashMap<&EntraObjectId, usize> = HashMap::with_capacity(users.len());
    let mut unique: Vec<&MirrorUser> = Vec::with_capacity(users.len());
    for user in users {
        match at.get(&user.entra_id) {
            Some(&i) => unique[i] = user,
            None => {
                at.insert(&user.entra_id, unique.len());
                unique.push(user);
            }
        }
    }
    unique
}

async fn upsert_users(
    conn: &mut PgConnection,
    tenant_id: i64,
    users: &[&MirrorUser],
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = users.iter().map(|u| u.entra_id.as_uuid()).collect();
    let target_ids: Vec<&str> = users.iter().map(|u| u.target_id.as_str()).collect();
    let emails: Vec<&str> = users
        .iter()
        .map(|u| u.state.fields.email.as_str())
        .collect();
    let first: Vec<&str> = users
        .iter()
        .map(|u| u.state.fields.first_name.as_str())
        .collect();
    let last: Vec<&str> = users
        .iter()
        .map(|u| u.state.fields.last_name.as_str())
        .collect();
    let phones: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.state.fields.phone.as_deref())
        .collect();
    let titles: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.state.fields.job_title.as_deref())
        .collect();
    let roles: Vec<&str> = users.iter().map(|u| u.state.role.as_str()).collect();
    let statuses: Vec<&str> = users.iter().map(|u| u.state.status.as_str()).collect();
    sqlx::query(
        "INSERT INTO synced_users (tenant_id, entra_user_id, target_user_id, email, first_name,
                                   last_name, phone, job_title, role, status)
         SELECT $1, c.entra_user_id, c.target_user_id, c.email, c.first_name, c.last_name,
                c.phone, c.job_title, c.role, c.status
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::text[])
              AS c(entra_user_id, target_user_id, email, first_name, last_name, phone, job_title,
                   role, status)
         ON CONFLICT (tenant_id, entra_user_id) DO UPDATE SET
             target_user_id = EXCLUDED.target_user_id,
             email = EXCLUDED.email,
             first_name = EXCLUDED.first_name,
             last_name = EXCLUDED.last_name,
             phone = EXCLUDED.phone,
             job_title = EXCLUDED.job_title,
             role = EXCLUDED.role,
             status = EXCLUDED.status,
             updated_at = now()
         WHERE (synced_users.target_user_id, synced_users.email, synced_users.first_name,
                synced_users.last_name, synced_users.phone, synced_users.job_title,
                synced_users.role, synced_users.status)
               IS DISTINCT FROM
               (EXCLUDED.target_user_id, EXCLUDED.email, EXCLUDED.first_name, EXCLUDED.last_name,
                EXCLUDED.phone, EXCLUDED.job_title, EXCLUDED.role, EXCLUDED.status)",
    )
    .bind(tenant_id)
    .bind(&ids)
    .bind(&target_ids)
    .bind(&emails)
    .bind(&first)
    .bind(&last)
    .bind(&phones)
    .bind(&titles)
    .bind(&roles)
    .bind(&statuses)
    .execute(conn)
    .await?;
    Ok(())
}

/// R9a: each departed user's memberships become its successor's, and the departed user is no
/// longer a synced user (its target user now belongs to the successor).
async fn release_users(
    conn: &mut PgConnection,
    tenant_id: i64,
    released: &[(EntraObjectId, EntraObjectId)],
) -> Result<(), StoreError> {
    let old: Vec<Uuid> = released.iter().map(|(o, _)| o.as_uuid()).collect();
    let new: Vec<Uuid> = released.iter().map(|(_, n)| n.as_uuid()).collect();
    sqlx::query(
        "INSERT INTO memberships (synced_group_id, entra_user_id)
         SELECT m.synced_group_id, c.new_user
         FROM UNNEST($2::uuid[], $3::uuid[]) AS c(old_user, new_user)
         JOIN memberships m ON m.entra_user_id = c.old_user
         JOIN synced_groups g ON g.id = m.synced_group_id AND g.tenant_id = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(&old)
    .bind(&new)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM memberships m USING synced_groups g
         WHERE g.id = m.synced_group_id AND g.tenant_id = $1 AND m.entra_user_id = ANY($2)",
    )
    .bind(tenant_id)
    .bind(&old)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM synced_users WHERE tenant_id = $1 AND entra_user_id = ANY($2)")
        .bind(tenant_id)
        .bind(&old)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A rename or conversion of a group the mirror does not hold means the caller's plan and the
/// mirror disagree; the rest of the run's changes are still worth keeping, so it is logged.
pub(super) fn warn_if_missed(tenant: &TenantKey, what: &str, expected: usize, done: usize) {
    if done < expected {
        tracing::warn!(
            tenant = tenant.as_str(),
            expected,
            done,
            "some groups to be {what} are not synced groups in the mirror"
        );
    }
}

/// Records what was applied successfully, set-based, inside the caller's transaction: the run's
/// flushes write it together with their report lines and progress (`lease.rs`).
pub(super) async fn write_mirror_changes(
    conn: &mut PgConnection,
    tenant: &TenantKey,
    tenant_id: i64,
    changes: &MirrorChanges,
) -> Result<(), StoreError> {
    // Item 11 first: what the target has lost is forgotten before the run records it again.
    if !changes.groups_forgotten.is_empty() {
        let groups: Vec<Uuid> = changes
            .groups_forgotten
            .iter()
            .map(|g| g.entra_id.as_uuid())
            .collect();
        let roles: Vec<&str> = changes
            .groups_forgotten
            .iter()
            .map(|g| g.role.as_str())
            .collect();
        sqlx::query(
            "DELETE FROM synced_groups g
         USING UNNEST($2::uuid[], $3::text[]) AS c(entra_group_id, role)
         WHERE g.tenant_id = $1 AND g.kind = 'synced'
           AND g.entra_group_id = c.entra_group_id AND g.role = c.role",
        )
        .bind(tenant_id)
        .bind(&groups)
        .bind(&roles)
        .execute(&mut *conn)
        .await?;
    }
    if !changes.users_forgotten.is_empty() {
        let users: Vec<Uuid> = changes
            .users_forgotten
            .iter()
            .map(EntraObjectId::as_uuid)
            .collect();
        sqlx::query(
            "DELETE FROM memberships m USING synced_groups g
         WHERE g.tenant_id = $1 AND m.synced_group_id = g.id
           AND m.entra_user_id = ANY($2)",
        )
        .bind(tenant_id)
        .bind(&users)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM synced_users WHERE tenant_id = $1 AND entra_user_id = ANY($2)")
            .bind(tenant_id)
            .bind(&users)
            .execute(&mut *conn)
            .await?;
    }

    // R9a first: a rehired user's link moves to the new user before anything else names it.
    for chunk in changes.users_released.chunks(CHUNK) {
        release_users(&mut *conn, tenant_id, chunk).await?;
    }

    // Memberships first: the plan removes members before it converts their group.
    for chunk in changes.members_removed.chunks(CHUNK) {
        let (groups, roles, users) = membership_columns(chunk);
        sqlx::query(
                "DELETE FROM memberships m
                 USING synced_groups g,
                       UNNEST($2::uuid[], $3::text[], $4::uuid[]) AS c(entra_group_id, role, entra_user_id)
                 WHERE g.tenant_id = $1 AND g.kind = 'synced'
                   AND g.entra_group_id = c.entra_group_id AND g.role = c.role
                   AND m.synced_group_id = g.id AND m.entra_user_id = c.entra_user_id",
            )
            .bind(tenant_id)
            .bind(&groups)
            .bind(&roles)
            .bind(&users)
            .execute(&mut *conn)
            .await?;
    }

    // Conversions before creations: R13 converts (group, old role) and creates (group, new
    // role), and only one synced group per Entra group may exist at a time.
    for chunk in changes.groups_converted.chunks(CHUNK) {
        let (groups, roles, names) = renamed_columns(chunk);
        let converted: Vec<i64> = sqlx::query_scalar(
                "UPDATE synced_groups g
                 SET kind = 'system', system_name = c.system_name, converted_at = now()
                 FROM UNNEST($2::uuid[], $3::text[], $4::text[]) AS c(entra_group_id, role, system_name)
                 WHERE g.tenant_id = $1 AND g.kind = 'synced'
                   AND g.entra_group_id = c.entra_group_id AND g.role = c.role
                 RETURNING g.id",
            )
            .bind(tenant_id)
            .bind(&groups)
            .bind(&roles)
            .bind(&names)
            .fetch_all(&mut *conn)
            .await?;
        warn_if_missed(tenant, "converted", chunk.len(), converted.len());
        // The mirror does not track the members of groups it no longer manages.
        sqlx::query("DELETE FROM memberships WHERE synced_group_id = ANY($1)")
            .bind(&converted)
            .execute(&mut *conn)
            .await?;
    }

    for chunk in changes.groups_created.chunks(CHUNK) {
        let groups: Vec<Uuid> = chunk.iter().map(|g| g.key.entra_id.as_uuid()).collect();
        let roles: Vec<&str> = chunk.iter().map(|g| g.key.role.as_str()).collect();
        let target_ids: Vec<&str> = chunk.iter().map(|g| g.target_id.as_str()).collect();
        let names: Vec<&str> = chunk.iter().map(|g| g.name.as_str()).collect();
        // The applier never creates a group whose Entra group still has a synced group (a
        // failed R13 conversion makes the creation wait); should one slip through, it is
        // skipped with a warning rather than rolling back the whole flush, and the next run
        // finds the group it created by its external ID (idempotent creates).
        let inserted = sqlx::query(
            "INSERT INTO synced_groups (tenant_id, entra_group_id, role, target_group_id, name)
                 SELECT $1, c.entra_group_id, c.role, c.target_group_id, c.name
                 FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[])
                      AS c(entra_group_id, role, target_group_id, name)
                 ON CONFLICT (tenant_id, entra_group_id) WHERE kind = 'synced' DO NOTHING",
        )
        .bind(tenant_id)
        .bind(&groups)
        .bind(&roles)
        .bind(&target_ids)
        .bind(&names)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        warn_if_missed(
            tenant,
            "created",
            chunk.len(),
            usize::try_from(inserted).unwrap_or(usize::MAX),
        );
    }

    for chunk in changes.groups_renamed.chunks(CHUNK) {
        let (groups, roles, names) = renamed_columns(chunk);
        let renamed = sqlx::query(
            "UPDATE synced_groups g SET name = c.name
                 FROM UNNEST($2::uuid[], $3::text[], $4::text[]) AS c(entra_group_id, role, name)
                 WHERE g.tenant_id = $1 AND g.kind = 'synced'
                   AND g.entra_group_id = c.entra_group_id AND g.role = c.role",
        )
        .bind(tenant_id)
        .bind(&groups)
        .bind(&roles)
        .bind(&names)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        warn_if_missed(
            tenant,
            "renamed",
            chunk.len(),
            usize::try_from(renamed).unwrap_or(usize::MAX),
        );
    }

    let users = last_state_per_user(&changes.users);
    for chunk in users.chunks(CHUNK) {
        upsert_users(&mut *conn, tenant_id, chunk).await?;
    }

    for chunk in changes.members_added.chunks(CHUNK) {
        let (groups, roles, users) = membership_columns(chunk);
        sqlx::query(
                "INSERT INTO memberships (synced_group_id, entra_user_id)
                 SELECT g.id, c.entra_user_id
                 FROM UNNEST($2::uuid[], $3::text[], $4::uuid[]) AS c(entra_group_id, role, entra_user_id)
                 JOIN synced_groups g
                   ON g.tenant_id = $1 AND g.kind = 'synced'
                  AND g.entra_group_id = c.entra_group_id AND g.role = c.role
                 ON CONFLICT DO NOTHING",
            )
            .bind(tenant_id)
            .bind(&groups)
            .bind(&roles)
            .bind(&users)
            .execute(&mut *conn)
            .await?;
    }

    Ok(())
}

/// Appends report lines inside the caller's transaction, in order.
pub(super) async fn write_entries(
    conn: &mut PgConnection,
    run: RunId,
    entries: &[ReportEntry],
) -> Result<(), StoreError> {
    for chunk in entries.chunks(CHUNK) {
        let subjects: Vec<&str> = chunk.iter().map(|e| e.subject.as_str()).collect();
        let ids: Vec<Option<Uuid>> = chunk
            .iter()
            .map(|e| e.entra_id.as_ref().map(EntraObjectId::as_uuid))
            .collect();
        let emails: Vec<Option<&str>> = chunk.iter().map(|e| e.email.as_deref()).collect();
        let names: Vec<Option<&str>> = chunk.iter().map(|e| e.name.as_deref()).collect();
        let actions: Vec<&str> = chunk.iter().map(|e| e.action.as_str()).collect();
        let fields: Vec<Option<&str>> = chunk.iter().map(|e| e.field.as_deref()).collect();
        let olds: Vec<Option<&str>> = chunk.iter().map(|e| e.old_value.as_deref()).collect();
        let news: Vec<Option<&str>> = chunk.iter().map(|e| e.new_value.as_deref()).collect();
        let severities: Vec<&str> = chunk.iter().map(|e| e.severity.as_str()).collect();
        let messages: Vec<Option<&str>> = chunk.iter().map(|e| e.message.as_deref()).collect();
        // Ids are drawn in ordinality order, so reading by id returns the lines as written.
        sqlx::query(
            "INSERT INTO report_entries (run_id, subject, entra_id, email, name, action, field,
                                             old_value, new_value, severity, message)
                 SELECT $1, c.subject, c.entra_id, c.email, c.name, c.action, c.field,
                        c.old_value, c.new_value, c.severity, c.message
                 FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::text[])
                      WITH ORDINALITY AS c(subject, entra_id, email, name, action, field,
                                           old_value, new_value, severity, message, ord)
                 ORDER BY c.ord",
        )
        .bind(run)
        .bind(&subjects)
        .bind(&ids)
        .bind(&emails)
        .bind(&names)
        .bind(&actions)
        .bind(&fields)
        .bind(&olds)
        .bind(&news)
        .bind(&severities)
        .bind(&messages)
        .execute(&mut *conn)
        .await
        .map_err(|e| missing_run(e, run))?;
    }
    Ok(())
}
