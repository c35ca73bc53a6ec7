//! R18: approving a held run — once, by a named person, only while it is the tenant's latest run
//! and recent — or rejecting it, each decided in one transaction (PostgreSQL here; the SQLite
//! store shares the decisions).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool};

use super::{RunId, RunStatus, RunSummary, StoreError};
use crate::domain::TenantKey;

/// Why an approval was refused, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefused {
    #[error("an approval must name the person approving")]
    NoApprover,
    #[error("tenant {tenant} has no run {run}")]
    UnknownRun { tenant: TenantKey, run: RunId },
    #[error("run {run} is {}, not held: only a held run can be approved", status.as_str())]
    NotHeld { run: RunId, status: RunStatus },
    #[error(
        "run {run} was rejected by {} at {}: a rejected run cannot be approved; start a new run, \
         and approve it if it is held",
        rejection.by, rejection.at
    )]
    Rejected { run: RunId, rejection: Rejection },
    #[error(
        "run {run} was already approved by {} at {at} (run {approving_run} carried it out): \
         an approval is used once",
        by.as_deref().unwrap_or("someone")
    )]
    AlreadyApproved {
        run: RunId,
        approving_run: RunId,
        by: Option<String>,
        at: DateTime<Utc>,
    },
    #[error(
        "run {run} is not the tenant's latest held run: run {newer} was held after it; approve run \
         {newer} instead"
    )]
    NewerHeldRun { run: RunId, newer: RunId },
    #[error(
        "run {run} is out of date: run {newer} ({}) started after it, so its plan no longer says \
         what a run would do; if a new run is held, approve that one",
        newer_status.as_str()
    )]
    Superseded {
        run: RunId,
        newer: RunId,
        newer_status: RunStatus,
    },
    #[error(
        "run {run} was held at {held_at}, more than {} ago; a held run can be approved for {} \
         after it was held: start a new run, and approve it if it is held again",
        describe_window(*window), describe_window(*window)
    )]
    Expired {
        run: RunId,
        held_at: DateTime<Utc>,
        window: chrono::Duration,
    },
    #[error(
        "run {running} is in progress for this tenant; wait for it to finish, and approve it if it \
         is held"
    )]
    RunInProgress { running: RunId },
}

/// What asking the store to approve a held run came to.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Refused(#[from] ApprovalRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ApprovalError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// R18: who rejected a held run, when, and why (if they said).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// The longest reason a rejection keeps.
pub const MAX_REJECTION_REASON: usize = 500;

/// Why a rejection was refused, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectionRefused {
    #[error("a rejection must name the person rejecting")]
    NoRejecter,
    #[error("a rejection's reason is at most {MAX_REJECTION_REASON} characters")]
    ReasonTooLong,
    #[error("tenant {tenant} has no run {run}")]
    UnknownRun { tenant: TenantKey, run: RunId },
    #[error("run {run} is {}, not held: only a held run can be rejected", status.as_str())]
    NotHeld { run: RunId, status: RunStatus },
    #[error(
        "run {run} was already rejected by {} at {}", rejection.by, rejection.at
    )]
    AlreadyRejected { run: RunId, rejection: Rejection },
    #[error(
        "run {run} was already approved by {} at {at} (run {approving_run} carried it out): an \
         approved run cannot be rejected",
        by.as_deref().unwrap_or("someone")
    )]
    AlreadyApproved {
        run: RunId,
        approving_run: RunId,
        by: Option<String>,
        at: DateTime<Utc>,
    },
}

/// What asking the store to reject a held run came to.
#[derive(Debug, thiserror::Error)]
pub enum RejectionError {
    #[error(transparent)]
    Refused(#[from] RejectionRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RejectionError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// The approved run that was begun: it plans afresh and may deactivate up to `deactivations`.
#[derive(Debug, Clone)]
pub struct ApprovedRun {
    pub run: RunId,
    pub deactivations: u64,
    /// The new run's lease on the tenant ([`super::RunLease`]).
    pub lease: std::sync::Arc<dyn super::RunLease>,
}

/// "24 hours", "90 minutes", "45 seconds".
fn describe_window(window: chrono::Duration) -> String {
    let seconds = window.num_seconds();
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// The name of the partial unique index that lets one run carry out a held run's approval.
pub(super) const APPROVE_ONCE: &str = "runs_approve_a_held_run_once";
const ONE_RUNNING_RUN: &str = "runs_one_running_per_tenant";

#[derive(sqlx::FromRow)]
pub(super) struct HeldRow {
    pub(super) tenant_id: i64,
    pub(super) status: String,
    pub(super) finished_at: Option<DateTime<Utc>>,
    pub(super) summary: Option<Json<RunSummary>>,
    pub(super) now: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ApprovingRow {
    id: RunId,
    triggered_by: Option<String>,
    started_at: DateTime<Utc>,
}

impl ApprovingRow {
    /// The refusal of a second approval of `held`, which this run already carries out.
    pub(super) fn refusal(self, held: RunId) -> ApprovalRefused {
        ApprovalRefused::AlreadyApproved {
            run: held,
            approving_run: self.id,
            by: self.triggered_by,
            at: self.started_at,
        }
    }
}

/// Checks every condition of R18 and begins the approving run, in one transaction. The held
/// run's row is locked first, so concurrent approvals of one run are decided one after the other;
/// the unique index is the last word should two ever get past the checks.
pub(super) async fn approve_held_run(
    pool: &PgPool,
    tenant: &TenantKey,
    held: RunId,
    approver: &str,
    window: chrono::Duration,
) -> Result<ApprovedRun, ApprovalError> {
    if approver.trim().is_empty() {
        return Err(ApprovalRefused::NoApprover.into());
    }
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT r.id FROM runs r JOIN tenants t ON t.id = r.tenant_id WHERE r.id = $1 AND t.key = $2",
    )
    .bind(held)
    .bind(tenant.as_str())
    .fetch_optional(pool)
    .await?;
    if exists.is_none() {
        return Err(ApprovalRefused::UnknownRun {
            tenant: tenant.clone(),
            run: held,
        }
        .into());
    }
    let Some(mut locked) =
        super::lease::LockedTenant::lock(&pool.connect_options(), tenant).await?
    else {
        // Another run holds the tenant: perhaps the one carrying out this very approval.
        let approving: Option<ApprovingRow> = sqlx::query_as(
            "SELECT id, triggered_by, started_at FROM runs
             WHERE approves = $1 AND approved_deactivations IS NOT NULL",
        )
        .bind(held)
        .fetch_optional(pool)
        .await?;
        if let Some(approving) = approving {
            return Err(ApprovalRefused::AlreadyApproved {
                run: held,
                approving_run: approving.id,
                by: approving.triggered_by,
                at: approving.started_at,
            }
            .into());
        }
        let running: Option<RunId> = sqlx::query_scalar(
            "SELECT r.id FROM runs r JOIN tenants t ON t.id = r.tenant_id
             WHERE t.key = $1 AND r.status = 'running'",
        )
        .bind(tenant.as_str())
        .fetch_optional(pool)
        .await?;
        return Err(ApprovalRefused::RunInProgress {
            running: running.unwrap_or_default(),
        }
        .into());
    };
    let mut tx = locked.conn.begin().await?;
    super::lease::interrupt_orphaned_runs(&mut tx, locked.tenant_id).await?;
    let (run, deactivations) = decide_and_begin(&mut tx, tenant, held, approver, window).await?;
    tx.commit().await?;
    Ok(ApprovedRun {
        run,
        deactivations,
        lease: std::sync::Arc::new(locked.into_lease(run, tenant)),
    })
}

/// The checks of R18 and the approving run's row, inside the transaction that holds the lease.
async fn decide_and_begin(
    tx: &mut PgConnection,
    tenant: &TenantKey,
    held: RunId,
    approver: &str,
    window: chrono::Duration,
) -> Result<(RunId, u64), ApprovalError> {
    let row: Option<HeldRow> = sqlx::query_as(
        "SELECT r.tenant_id, r.status, r.finished_at, r.summary, now() AS now
         FROM runs r JOIN tenants t ON t.id = r.tenant_id
         WHERE r.id = $1 AND t.key = $2
         FOR UPDATE OF r",
    )
    .bind(held)
    .bind(tenant.as_str())
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

    let inserted = sqlx::query_scalar::<_, RunId>(
        "INSERT INTO runs (tenant_id, trigger_kind, triggered_by, approves, approved_deactivations)
         VALUES ($1, 'manual', $2, $3, $4)
         RETURNING id",
    )
    .bind(row.tenant_id)
    .bind(approver)
    .bind(held)
    .bind(i64::try_from(deactivations).unwrap_or(i64::MAX))
    .fetch_one(&mut *tx)
    .await;
    let run = match inserted {
        Ok(run) => run,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(ONE_RUNNING_RUN) => {
            return Err(ApprovalRefused::RunInProgress { running: 0 }.into());
        }
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(APPROVE_ONCE) => {
            return Err(ApprovalRefused::AlreadyApproved {
                run: held,
                approving_run: 0,
                by: None,
                at: row.now,
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok((run, deactivations))
}

/// Every condition of R18, decided on what the transaction read: the held run, the run that
/// carried out an earlier approval of it (if any) and the tenant's runs begun after it, newest
/// first. Returns how many deactivations the approval allows.
pub(super) fn decide(
    held: RunId,
    row: &HeldRow,
    approving: Option<ApprovingRow>,
    rejection: Option<Rejection>,
    newer: &[(RunId, String)],
    window: chrono::Duration,
) -> Result<u64, ApprovalError> {
    let status = RunStatus::parse(&row.status).ok_or_else(|| {
        StoreError::Corrupt(format!("runs.status: {:?} is not a run status", row.status))
    })?;
    if let Some(approving) = approving {
        return Err(ApprovalRefused::AlreadyApproved {
            run: held,
            approving_run: approving.id,
            by: approving.triggered_by,
            at: approving.started_at,
        }
        .into());
    }
    if status == RunStatus::Rejected {
        let rejection = rejection.ok_or_else(|| {
            StoreError::Corrupt(format!("run_rejections: rejected run {held} has no row"))
        })?;
        return Err(ApprovalRefused::Rejected {
            run: held,
            rejection,
        }
        .into());
    }
    if status != RunStatus::Held {
        return Err(ApprovalRefused::NotHeld { run: held, status }.into());
    }
    if let Some((running, _)) = newer.iter().find(|(_, s)| s == "running") {
        return Err(ApprovalRefused::RunInProgress { running: *running }.into());
    }
    if let Some((newer, _)) = newer.iter().find(|(_, s)| s == "held") {
        return Err(ApprovalRefused::NewerHeldRun {
            run: held,
            newer: *newer,
        }
        .into());
    }
    if let Some((newer, newer_status)) = newer.first() {
        return Err(ApprovalRefused::Superseded {
            run: held,
            newer: *newer,
            newer_status: RunStatus::parse(newer_status).unwrap_or(RunStatus::Failed),
        }
        .into());
    }
    let held_at = row.finished_at.unwrap_or(row.now);
    if row.now - held_at > window {
        return Err(ApprovalRefused::Expired {
            run: held,
            held_at,
            window,
        }
        .into());
    }
    let summary = row
        .summary
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt(format!("runs.summary: held run {held} has none")))?;
    Ok(summary.0.planned.users_deactivated as u64)
}

/// Rejects the tenant's held run `held` in `rejecter`'s name: refused unless it is held and was
/// neither approved nor rejected before. The held run's row is locked first, so a rejection and
/// an approval of one run are decided one after the other; whichever comes second is refused.
pub(super) async fn reject_held_run(
    pool: &PgPool,
    tenant: &TenantKey,
    held: RunId,
    rejecter: &str,
    reason: Option<&str>,
) -> Result<Rejection, RejectionError> {
    let (rejecter, reason) = rejection_request(rejecter, reason)?;
    let mut tx = pool.begin().await?;
    let status: Option<String> = sqlx::query_scalar(
        "SELECT r.status FROM runs r JOIN tenants t ON t.id = r.tenant_id
         WHERE r.id = $1 AND t.key = $2
         FOR UPDATE OF r",
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
    sqlx::query("UPDATE runs SET status = 'rejected' WHERE id = $1")
        .bind(held)
        .execute(&mut *tx)
        .await?;
    let at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO run_rejections (run_id, rejected_by, reason) VALUES ($1, $2, $3)
         RETURNING rejected_at",
    )
    .bind(held)
    .bind(rejecter)
    .bind(reason)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Rejection {
        by: rejecter.to_owned(),
        at,
        reason: reason.map(str::to_owned),
    })
}

/// Who rejected run `run`, when and why; `None` when it was not rejected.
pub(super) async fn rejection_of<'e, E>(
    executor: E,
    run: RunId,
) -> Result<Option<Rejection>, sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    let row: Option<(String, DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT rejected_by, rejected_at, reason FROM run_rejections WHERE run_id = $1",
    )
    .bind(run)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|(by, at, reason)| Rejection { by, at, reason }))
}

/// Who rejects and why, trimmed: refused without a name or with a reason over
/// [`MAX_REJECTION_REASON`] characters; an empty reason is none. Both stores check here first.
pub(super) fn rejection_request<'a>(
    rejecter: &'a str,
    reason: Option<&'a str>,
) -> Result<(&'a str, Option<&'a str>), RejectionError> {
    let rejecter = rejecter.trim();
    if rejecter.is_empty() {
        return Err(RejectionRefused::NoRejecter.into());
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REJECTION_REASON) {
        return Err(RejectionRefused::ReasonTooLong.into());
    }
    Ok((rejecter, reason))
}

/// Every condition of a rejection, decided on what the transaction read: the run's status, its
/// rejection and the run that carried out its approval, if any.
pub(super) fn decide_rejection(
    held: RunId,
    status: RunStatus,
    rejection: Option<Rejection>,
    approving: Option<ApprovingRow>,
) -> Result<(), RejectionError> {
    if let Some(rejection) = rejection {
        return Err(RejectionRefused::AlreadyRejected {
            run: held,
            rejection,
        }
        .into());
    }
    if let Some(approving) = approving {
        return Err(RejectionRefused::AlreadyApproved {
            run: held,
            approving_run: approving.id,
            by: approving.triggered_by,
            at: approving.started_at,
        }
        .into());
    }
    if status != RunStatus::Held {
        return Err(RejectionRefused::NotHeld { run: held, status }.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_described_in_the_largest_whole_unit() {
        assert_eq!(describe_window(chrono::Duration::hours(24)), "24 hours");
        assert_eq!(describe_window(chrono::Duration::minutes(90)), "90 minutes");
        assert_eq!(describe_window(chrono::Duration::seconds(45)), "45 seconds");
    }
}
