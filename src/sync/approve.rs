//! R18: approving or rejecting a held run. The functions the API, the console and the CLI call:
//! the store decides and records the approval or rejection in one transaction, and the run that
//! carries an approval out plans afresh.

use tracing::info;

use super::{PendingRun, SyncContext, SyncError, tenant_ready_to_run};
use crate::domain::TenantKey;
use crate::store::{
    Approval, ApprovalError, ApprovalRefused, Rejection, RejectionError, RejectionRefused, RunId,
    RunOptions,
};

/// Why approving did not start a run.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// R18 refuses this approval; the reason says why and what to do.
    #[error(transparent)]
    Refused(#[from] ApprovalRefused),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<ApprovalError> for ApproveError {
    fn from(err: ApprovalError) -> Self {
        match err {
            ApprovalError::Refused(refused) => Self::Refused(refused),
            ApprovalError::Store(err) => Self::Sync(err.into()),
        }
    }
}

/// R18: `approver` approves the tenant's held run `run`: once, only while it is the tenant's
/// latest run and held less than the approval window ago. Returns the new run, recorded as
/// started, that plans afresh and may deactivate up to the number of users the held run would
/// have; the caller executes it (in the background for the API, at once for the CLI).
pub async fn approve_held_run(
    ctx: &SyncContext,
    tenant: &TenantKey,
    run: RunId,
    approver: &str,
) -> Result<PendingRun, ApproveError> {
    let approver = approver.trim();
    if approver.is_empty() {
        return Err(ApprovalRefused::NoApprover.into());
    }
    let config = tenant_ready_to_run(ctx, tenant).await?;
    let approved = ctx
        .store
        .approve_held_run(tenant, run, approver, ctx.settings.approval_window)
        .await?;
    info!(
        tenant = %tenant,
        held_run = run,
        run_id = approved.run,
        approver,
        deactivations = approved.deactivations,
        "held run approved"
    );
    Ok(PendingRun {
        ctx: ctx.clone(),
        tenant: config,
        lease: approved.lease,
        options: RunOptions {
            approval: Some(Approval {
                held_run: run,
                deactivations: approved.deactivations,
            }),
        },
        scope: super::Scope::Tenant,
        entra: None,
    })
}

/// Why rejecting a held run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RejectError {
    /// R18 refuses this rejection; the reason says why.
    #[error(transparent)]
    Refused(#[from] RejectionRefused),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<RejectionError> for RejectError {
    fn from(err: RejectionError) -> Self {
        match err {
            RejectionError::Refused(refused) => Self::Refused(refused),
            RejectionError::Store(err) => Self::Sync(err.into()),
        }
    }
}

/// R18: `rejecter` rejects the tenant's held run `run`, saying why if they wish: nothing it
/// planned is applied, and it can no longer be approved. The next run (at midnight or forced)
/// plans afresh and is held again if it still deactivates too many.
pub async fn reject_held_run(
    ctx: &SyncContext,
    tenant: &TenantKey,
    run: RunId,
    rejecter: &str,
    reason: Option<&str>,
) -> Result<Rejection, RejectError> {
    let rejection = ctx
        .store
        .reject_held_run(tenant, run, rejecter, reason)
        .await?;
    info!(
        tenant = %tenant,
        held_run = run,
        rejecter = %rejection.by,
        "held run rejected"
    );
    Ok(rejection)
}
