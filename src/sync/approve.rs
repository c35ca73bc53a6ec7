//! R18: approving a held run. The one function the API and the CLI call: the store decides and
//! records the approval in one transaction, and the run that carries it out plans afresh.

use tracing::info;

use super::{PendingRun, SyncContext, SyncError, tenant_ready_to_run};
use crate::domain::TenantKey;
use crate::store::{Approval, ApprovalError, ApprovalRefused, RunId, RunOptions};

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
    })
}
