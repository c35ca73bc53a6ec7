//! A run's lease on SQLite, which has no advisory locks: the tenant's lock is an exclusive SQLite
//! lock on a small file of its own beside the database (`dirsync.db-run-<tenant id>.lock`, the
//! trick the serve lock uses), held by a connection the run keeps. The operating system releases
//! it with the process however it ends, so the next run starts at once and closes the dead run as
//! interrupted. Every flush, heartbeat and finish is fenced in the database as well: a `BEGIN
//! IMMEDIATE` transaction whose first statement only touches the run while it is still `running`
//! (none: [`StoreError::LeaseLost`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{ConnectOptions, Connection, SqliteConnection, SqlitePool};

use super::lease::{RunFlush, RunLease};
use super::sqlite::{now, write_entries, write_mirror_changes};
use super::{ReportEntry, RunFinish, RunId, RunProgress, StoreError};
use crate::domain::TenantKey;

/// How long taking a lease waits for a holder that is going away (a lease dropped in this
/// process is closed on SQLite's own thread a moment later).
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// SQLite's primary result code for "another connection holds the lock".
const SQLITE_BUSY: i32 = 5;

/// `dirsync.db` → `dirsync.db-run-7.lock`: tenant 7's run lock.
fn run_lock_path(database: &Path, tenant_id: i64) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(format!("-run-{tenant_id}.lock"));
    PathBuf::from(name)
}

/// Takes tenant `tenant_id`'s run lock: the connection holding it, or `None` while another live
/// run (in this process or another) holds it.
pub(super) async fn lock_tenant(
    database: &Path,
    tenant_id: i64,
) -> Result<Option<SqliteConnection>, StoreError> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteLockingMode};

    let path = run_lock_path(database, tenant_id);
    super::sqlite::create_private_file(&path).map_err(|e| {
        StoreError::File(format!(
            "could not create the run lock file {}: {e}",
            path.display()
        ))
    })?;
    let mut holder = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(LEASE_WAIT)
        .connect()
        .await?;
    // In exclusive locking mode, the first write keeps the file locked until the connection
    // closes; another connection's write waits LEASE_WAIT, then is refused.
    let claimed = sqlx::query(
        "CREATE TABLE IF NOT EXISTS run_lease (pid INTEGER NOT NULL);
         DELETE FROM run_lease;
         INSERT INTO run_lease (pid) VALUES ($1);",
    )
    .bind(i64::from(std::process::id()))
    .execute(&mut holder)
    .await;
    match claimed {
        Ok(_) => Ok(Some(holder)),
        Err(sqlx::Error::Database(err))
            if err
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| code & 0xff == SQLITE_BUSY) =>
        {
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

const INTERRUPTED: &str = "interrupted: the process running it stopped (killed, or it lost its \
                           database) before it finished; what it recorded before stopping is \
                           kept, and the next run picks up from there";

/// Closes the tenant's runs still marked running: nobody holds their lease (the caller just took
/// it), so the process running them is gone. Their partial reports are kept, with a last line.
pub(super) async fn interrupt_orphaned_runs(
    conn: &mut SqliteConnection,
    tenant_id: i64,
) -> Result<Vec<RunId>, StoreError> {
    let closed: Vec<RunId> = sqlx::query_scalar(
        "UPDATE runs SET status = 'interrupted', finished_at = $3, message = $2
         WHERE tenant_id = $1 AND status = 'running'
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(INTERRUPTED)
    .bind(now())
    .fetch_all(&mut *conn)
    .await?;
    for run in &closed {
        sqlx::query(
            "INSERT INTO report_entries (run_id, subject, action, severity, message)
             VALUES ($1, 'run', 'interrupted', 'error', $2)",
        )
        .bind(run)
        .bind(INTERRUPTED)
        .execute(&mut *conn)
        .await?;
    }
    Ok(closed)
}

const NOT_RUNNING: &str = "the run is no longer recorded as running (another process closed it), \
                           so it stopped applying changes";

/// A lease held on SQLite: the connection holding the tenant's lock file, and the pool its
/// fenced writes go through.
pub struct SqliteRunLease {
    run_id: RunId,
    tenant: TenantKey,
    tenant_id: i64,
    pool: SqlitePool,
    holder: tokio::sync::Mutex<Option<SqliteConnection>>,
    lost: Mutex<Option<String>>,
}

impl SqliteRunLease {
    pub(super) fn new(
        run_id: RunId,
        tenant: TenantKey,
        tenant_id: i64,
        pool: SqlitePool,
        holder: SqliteConnection,
    ) -> Self {
        Self {
            run_id,
            tenant,
            tenant_id,
            pool,
            holder: tokio::sync::Mutex::new(Some(holder)),
            lost: Mutex::new(None),
        }
    }

    fn lose(&self, why: String) -> StoreError {
        let mut lost = self.lost.lock().expect("lease lock");
        let why = lost.get_or_insert(why).clone();
        tracing::warn!(run_id = self.run_id, tenant = %self.tenant, %why, "the run lost its lease");
        StoreError::LeaseLost(why)
    }

    /// The lock's connection, unless the lease was lost or the run finished.
    async fn held(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<SqliteConnection>>, StoreError> {
        let guard = self.holder.lock().await;
        if guard.is_none() {
            return Err(StoreError::LeaseLost(
                self.lost()
                    .unwrap_or_else(|| "the run has finished".to_owned()),
            ));
        }
        Ok(guard)
    }

    /// A fence that found the run closed gives the lock up for good.
    fn settle(
        &self,
        holder: &mut Option<SqliteConnection>,
        result: Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match result {
            Err(StoreError::LeaseLost(why)) => {
                *holder = None;
                Err(self.lose(why))
            }
            other => other,
        }
    }
}

/// Records the run's progress, only while it is still running: the fence.
async fn record_progress(
    conn: &mut SqliteConnection,
    run: RunId,
    progress: &RunProgress,
) -> Result<(), StoreError> {
    let clamp = |n: i64| i32::try_from(n.max(0)).unwrap_or(i32::MAX);
    let updated = sqlx::query(
        "UPDATE runs SET heartbeat_at = $5, progress_stage = $2, progress_done = $3,
                         progress_total = $4
         WHERE id = $1 AND status = 'running'",
    )
    .bind(run)
    .bind(&progress.stage)
    .bind(clamp(progress.done))
    .bind(clamp(progress.total))
    .bind(now())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(StoreError::LeaseLost(NOT_RUNNING.to_owned()));
    }
    Ok(())
}

#[async_trait]
impl RunLease for SqliteRunLease {
    fn run_id(&self) -> RunId {
        self.run_id
    }

    fn lost(&self) -> Option<String> {
        self.lost.lock().expect("lease lock").clone()
    }

    async fn flush(&self, flush: RunFlush<'_>) -> Result<(), StoreError> {
        let mut holder = self.held().await?;
        let result = async {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            // Progress first: a run closed by another process writes nothing more.
            record_progress(&mut tx, self.run_id, flush.progress).await?;
            if !flush.mirror.is_empty() {
                write_mirror_changes(&mut tx, &self.tenant, self.tenant_id, flush.mirror).await?;
            }
            if !flush.entries.is_empty() {
                write_entries(&mut tx, self.run_id, flush.entries).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.settle(&mut holder, result)
    }

    async fn heartbeat(&self, progress: &RunProgress) -> Result<(), StoreError> {
        let mut holder = self.held().await?;
        let result = async {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            record_progress(&mut tx, self.run_id, progress).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.settle(&mut holder, result)
    }

    async fn finish(&self, finish: &RunFinish, entries: &[ReportEntry]) -> Result<(), StoreError> {
        let mut holder = self.held().await?;
        let result = async {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let updated = sqlx::query(
                "UPDATE runs
                 SET status = $2,
                     finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE $5 END,
                     summary = $3, message = $4
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(self.run_id)
            .bind(finish.status.as_str())
            .bind(Json(&finish.summary))
            .bind(finish.message.as_deref())
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::LeaseLost(NOT_RUNNING.to_owned()));
            }
            if !entries.is_empty() {
                write_entries(&mut tx, self.run_id, entries).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.settle(&mut holder, result)?;
        // Finished: the lock is given back now.
        if let Some(conn) = holder.take() {
            let _ = conn.close().await;
        }
        Ok(())
    }
}
