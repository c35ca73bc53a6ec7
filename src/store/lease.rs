//! A run's lease: the exclusivity of one tenant's run and the fence on everything it writes.
//!
//! In PostgreSQL the lease is a session advisory lock on the tenant, taken on a connection of its
//! own that the run keeps until it finishes. The lock dies with that session — the process killed,
//! its node lost (TCP keep-alives), the connection terminated — so the next run can start at once
//! instead of waiting for a heartbeat to go stale. Every write the run makes while applying (its
//! flushes, heartbeats and its finish) goes through that same connection, so a run that lost its
//! lease cannot write anything: its next flush fails, it stops applying and says why.

use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection};

use super::postgres::{tenant_id, write_entries, write_mirror_changes};
use super::{MirrorChanges, ReportEntry, RunFinish, RunId, RunProgress, StoreError};
use crate::domain::TenantKey;

/// What one flush of a run records, in one transaction: the mirror changes of the operations it
/// applied, their report lines, and how far the run has come.
#[derive(Debug, Clone, Copy)]
pub struct RunFlush<'a> {
    pub mirror: &'a MirrorChanges,
    pub entries: &'a [ReportEntry],
    pub progress: &'a RunProgress,
}

/// A run's hold on its tenant. Dropping it (the task cancelled, the process gone) releases it.
#[async_trait]
pub trait RunLease: Send + Sync {
    fn run_id(&self) -> RunId;
    /// Why the lease was lost, once it was: the run must stop applying.
    fn lost(&self) -> Option<String>;
    /// Records one flush atomically, only while the lease is held ([`StoreError::LeaseLost`]
    /// otherwise).
    async fn flush(&self, flush: RunFlush<'_>) -> Result<(), StoreError>;
    /// The run is alive and this far along (R21); fails once the lease is lost.
    async fn heartbeat(&self, progress: &RunProgress) -> Result<(), StoreError>;
    /// Records how the run ended, with its last report lines, and releases the lease. Only a run
    /// that still holds its lease can finish: a fenced-off run never overwrites the status.
    async fn finish(&self, finish: &RunFinish, entries: &[ReportEntry]) -> Result<(), StoreError>;
}

impl std::fmt::Debug for dyn RunLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLease")
            .field("run_id", &self.run_id())
            .field("lost", &self.lost())
            .finish()
    }
}

/// The advisory-lock key of a tenant's run lease: a namespace of dirsync's own in the high half,
/// so it cannot meet another application's locks (or dirsync's other locks) on the same database.
pub(super) fn run_lock_key(tenant_id: i64) -> i64 {
    const RUN_LEASES: i64 = 0x6473_7275; // "dsru"
    (RUN_LEASES << 32) | (tenant_id & 0xffff_ffff)
}

/// How long taking a lease waits for a holder that is going away: a killed process's session
/// ends a few milliseconds after the process, so a restart straight after a kill is not refused.
const LEASE_WAIT: &str = "1500ms";

/// A new connection for a run's lease, with keep-alives short enough that a lost node's session
/// (and its lock) ends within about a minute.
async fn lease_connection(
    options: &sqlx::postgres::PgConnectOptions,
) -> Result<PgConnection, StoreError> {
    let mut conn = PgConnection::connect_with(options).await?;
    sqlx::query(
        "SELECT set_config('tcp_keepalives_idle', '20', false),
                set_config('tcp_keepalives_interval', '10', false),
                set_config('tcp_keepalives_count', '3', false),
                set_config('application_name', 'dirsync run lease', false)",
    )
    .execute(&mut conn)
    .await?;
    Ok(conn)
}

/// Takes the tenant's run lock on `conn`, waiting at most [`LEASE_WAIT`] for a holder that is
/// going away. `false`: another live run holds it.
async fn try_lock_tenant(conn: &mut PgConnection, tenant_id: i64) -> Result<bool, StoreError> {
    sqlx::query("SELECT set_config('lock_timeout', $1, false)")
        .bind(LEASE_WAIT)
        .execute(&mut *conn)
        .await?;
    let locked = sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(run_lock_key(tenant_id))
        .execute(&mut *conn)
        .await;
    sqlx::query("SELECT set_config('lock_timeout', '0', false)")
        .execute(&mut *conn)
        .await?;
    match locked {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Closes the tenant's runs still marked running: nobody holds their lease (the caller just took
/// it), so the process running them is gone. Their partial reports are kept, with a last line.
pub(super) async fn interrupt_orphaned_runs(
    conn: &mut PgConnection,
    tenant_id: i64,
) -> Result<Vec<RunId>, StoreError> {
    const MESSAGE: &str = "interrupted: the process running it stopped (killed, or its \
                           connection to the database was lost) before it finished; what it \
                           recorded before stopping is kept, and the next run picks up from there";
    let closed: Vec<RunId> = sqlx::query_scalar(
        "UPDATE runs SET status = 'interrupted', finished_at = now(), message = $2
         WHERE tenant_id = $1 AND status = 'running'
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(MESSAGE)
    .fetch_all(&mut *conn)
    .await?;
    if !closed.is_empty() {
        sqlx::query(
            "INSERT INTO report_entries (run_id, subject, action, severity, message)
             SELECT id, 'run', 'interrupted', 'error', $2 FROM UNNEST($1::bigint[]) AS id",
        )
        .bind(&closed)
        .bind(MESSAGE)
        .execute(&mut *conn)
        .await?;
    }
    Ok(closed)
}

/// A lease held in PostgreSQL: the locked connection, given up on the first sign it is gone.
pub struct PgRunLease {
    run_id: RunId,
    tenant: TenantKey,
    tenant_id: i64,
    conn: tokio::sync::Mutex<Option<PgConnection>>,
    lost: Mutex<Option<String>>,
}

impl PgRunLease {
    fn new(run_id: RunId, tenant: TenantKey, tenant_id: i64, conn: PgConnection) -> Self {
        Self {
            run_id,
            tenant,
            tenant_id,
            conn: tokio::sync::Mutex::new(Some(conn)),
            lost: Mutex::new(None),
        }
    }

    fn lose(&self, why: String) -> StoreError {
        let mut lost = self.lost.lock().expect("lease lock");
        let why = lost.get_or_insert(why).clone();
        tracing::warn!(run_id = self.run_id, tenant = %self.tenant, %why, "the run lost its lease");
        StoreError::LeaseLost(why)
    }

    /// The lease's connection, unless the lease was lost or the run finished.
    async fn connection(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<PgConnection>>, StoreError> {
        let guard = self.conn.lock().await;
        if guard.is_none() {
            return Err(StoreError::LeaseLost(
                self.lost()
                    .unwrap_or_else(|| "the run has finished".to_owned()),
            ));
        }
        Ok(guard)
    }

    /// A failure of the session itself (terminated, unreachable, the database restarting), or
    /// the run found closed by another process, loses the lease for good.
    fn settle<T>(
        &self,
        conn: &mut Option<PgConnection>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match result {
            Ok(value) => Ok(value),
            Err(StoreError::Database(err)) if session_is_gone(&err) => {
                *conn = None;
                Err(self.lose(format!(
                    "its connection to the database was lost ({err}); its lock on the tenant \
                     went with it, so it stopped applying changes"
                )))
            }
            Err(StoreError::LeaseLost(why)) => {
                *conn = None;
                Err(self.lose(why))
            }
            Err(other) => Err(other),
        }
    }
}

/// Whether an error means the session (and so the lock) is gone, rather than one statement failing.
fn session_is_gone(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 57P0x: terminated by an administrator, crash or shutdown; 08xxx: connection errors.
            code.starts_with("57P") || code.starts_with("08")
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

const NOT_RUNNING: &str = "the run is no longer recorded as running (another process closed it \
                           as interrupted and took over the tenant), so it stopped applying changes";

async fn record_progress(
    conn: &mut PgConnection,
    run: RunId,
    progress: &RunProgress,
) -> Result<(), StoreError> {
    let clamp = |n: i64| i32::try_from(n.max(0)).unwrap_or(i32::MAX);
    let updated = sqlx::query(
        "UPDATE runs SET heartbeat_at = now(), progress_stage = $2, progress_done = $3,
                         progress_total = $4
         WHERE id = $1 AND status = 'running'",
    )
    .bind(run)
    .bind(&progress.stage)
    .bind(clamp(progress.done))
    .bind(clamp(progress.total))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(StoreError::LeaseLost(NOT_RUNNING.to_owned()));
    }
    Ok(())
}

#[async_trait]
impl RunLease for PgRunLease {
    fn run_id(&self) -> RunId {
        self.run_id
    }

    fn lost(&self) -> Option<String> {
        self.lost.lock().expect("lease lock").clone()
    }

    async fn flush(&self, flush: RunFlush<'_>) -> Result<(), StoreError> {
        let mut guard = self.connection().await?;
        let conn = guard.as_mut().expect("checked by connection()");
        let result = write_flush(conn, self.run_id, &self.tenant, self.tenant_id, flush).await;
        self.settle(&mut guard, result)
    }

    async fn heartbeat(&self, progress: &RunProgress) -> Result<(), StoreError> {
        let mut guard = self.connection().await?;
        let conn = guard.as_mut().expect("checked by connection()");
        let result = record_progress(conn, self.run_id, progress).await;
        self.settle(&mut guard, result)
    }

    async fn finish(&self, finish: &RunFinish, entries: &[ReportEntry]) -> Result<(), StoreError> {
        let mut guard = self.connection().await?;
        let conn = guard.as_mut().expect("checked by connection()");
        let result = write_finish(conn, self.run_id, self.tenant_id, finish, entries).await;
        self.settle(&mut guard, result)?;
        // Finished: the session is closed, not kept (and not returned to any pool).
        if let Some(conn) = guard.take() {
            let _ = conn.close().await;
        }
        Ok(())
    }
}

async fn write_flush(
    conn: &mut PgConnection,
    run: RunId,
    tenant: &TenantKey,
    tenant_id: i64,
    flush: RunFlush<'_>,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    // Progress first: a run closed by another process writes nothing more.
    record_progress(&mut tx, run, flush.progress).await?;
    if !flush.mirror.is_empty() {
        write_mirror_changes(&mut tx, tenant, tenant_id, flush.mirror).await?;
    }
    if !flush.entries.is_empty() {
        write_entries(&mut tx, run, flush.entries).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn write_finish(
    conn: &mut PgConnection,
    run: RunId,
    tenant_id: i64,
    finish: &RunFinish,
    entries: &[ReportEntry],
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    let updated = sqlx::query(
        "UPDATE runs
         SET status = $2,
             finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END,
             summary = $3, message = $4
         WHERE id = $1 AND status = 'running'",
    )
    .bind(run)
    .bind(finish.status.as_str())
    .bind(Json(&finish.summary))
    .bind(finish.message.as_deref())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(StoreError::LeaseLost(NOT_RUNNING.to_owned()));
    }
    if !entries.is_empty() {
        write_entries(&mut tx, run, entries).await?;
    }
    tx.commit().await?;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(run_lock_key(tenant_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A connection holding a tenant's run lock, about to record the run it begins.
pub(super) struct LockedTenant {
    pub(super) conn: PgConnection,
    pub(super) tenant_id: i64,
}

impl LockedTenant {
    /// Takes the tenant's run lock on a connection of its own. `None`: another live run holds it.
    pub(super) async fn lock(
        options: &sqlx::postgres::PgConnectOptions,
        tenant: &TenantKey,
    ) -> Result<Option<Self>, StoreError> {
        let mut conn = lease_connection(options).await?;
        let tenant_id = tenant_id(&mut conn, tenant).await?;
        if !try_lock_tenant(&mut conn, tenant_id).await? {
            return Ok(None);
        }
        Ok(Some(Self { conn, tenant_id }))
    }

    /// The lease of the run recorded (committed) on this connection.
    pub(super) fn into_lease(self, run: RunId, tenant: &TenantKey) -> PgRunLease {
        PgRunLease::new(run, tenant.clone(), self.tenant_id, self.conn)
    }
}
