//! Starts runs in the background and keeps track of them, so the API can answer `202` at once,
//! the scheduler can fire many tenants, and a shutdown can wait for (or close) what is running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::JoinHandle;
use tracing::{error, warn};

use super::{
    ApproveError, PendingRun, RejectError, RunOutcome, RunStartOutcome, SyncContext, SyncError,
    approve_held_run, reject_held_run, start_run,
};
use crate::domain::TenantKey;
use crate::store::{Rejection, RunFinish, RunId, RunOptions, RunStatus, RunSummary, Trigger};

/// What asking the runner for a run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    pub run_id: RunId,
    /// R21: the tenant already had a run in progress; nothing new was started.
    pub already_running: bool,
}

/// A finished run, as announced to whoever listens (metrics, tests).
#[derive(Debug, Clone)]
pub struct Finished {
    pub tenant: TenantKey,
    pub outcome: Result<RunOutcome, String>,
}

#[derive(Clone)]
pub struct Runner {
    ctx: SyncContext,
    tasks: Arc<Mutex<HashMap<RunId, JoinHandle<()>>>>,
    finished: broadcast::Sender<Finished>,
    /// Item 3: one permit per run this replica carries out at once (`sync.max_runs_in_flight`).
    /// A run waits for one before it begins, so queued runs hold no database connection.
    slots: Arc<Semaphore>,
}

impl Runner {
    pub fn new(ctx: SyncContext) -> Self {
        let (finished, _) = broadcast::channel(1024);
        let slots = Arc::new(Semaphore::new(ctx.settings.max_runs_in_flight.max(1)));
        Self {
            ctx,
            tasks: Arc::default(),
            finished,
            slots,
        }
    }

    pub fn context(&self) -> &SyncContext {
        &self.ctx
    }

    /// Every run this runner finishes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Finished> {
        self.finished.subscribe()
    }

    /// Starts a run for `tenant` in the background, or reports the one in progress (R21). When
    /// `sync.max_runs_in_flight` runs are in progress here, waits for one of them to end first.
    pub async fn launch(
        &self,
        tenant: &TenantKey,
        trigger: Trigger,
        options: RunOptions,
    ) -> Result<Launched, SyncError> {
        let slot = self.slot().await;
        match start_run(&self.ctx, tenant, trigger, options).await? {
            RunStartOutcome::AlreadyRunning(run_id) => Ok(Launched {
                run_id,
                already_running: true,
            }),
            RunStartOutcome::Started(pending) => Ok(self.spawn(tenant, *pending, slot)),
        }
    }

    async fn slot(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the runner never closes its slots")
    }

    /// Runs that could begin now without waiting for a slot.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// R18: `approver` approves the tenant's held run `run`; the run that carries the approval
    /// out starts in the background.
    pub async fn approve(
        &self,
        tenant: &TenantKey,
        run: RunId,
        approver: &str,
    ) -> Result<Launched, ApproveError> {
        let slot = self.slot().await;
        let pending = approve_held_run(&self.ctx, tenant, run, approver).await?;
        Ok(self.spawn(tenant, pending, slot))
    }

    /// R18: `rejecter` rejects the tenant's held run `run`; it can no longer be approved.
    pub async fn reject(
        &self,
        tenant: &TenantKey,
        run: RunId,
        rejecter: &str,
        reason: Option<&str>,
    ) -> Result<Rejection, RejectError> {
        reject_held_run(&self.ctx, tenant, run, rejecter, reason).await
    }

    fn spawn(
        &self,
        tenant: &TenantKey,
        pending: PendingRun,
        slot: OwnedSemaphorePermit,
    ) -> Launched {
        let run_id = pending.id();
        let tasks = self.tasks.clone();
        let finished = self.finished.clone();
        let tenant = tenant.clone();
        // Hold the lock while spawning so the task cannot remove itself before it is added.
        let mut running = self.tasks.lock().expect("runner lock");
        let handle = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = pending.execute().await;
            drop(slot);
            metrics::histogram!("dirsync_run_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            if let Err(err) = &outcome {
                error!(tenant = %tenant, run_id, %err, "run could not be recorded");
            }
            record_metrics(&outcome);
            tasks.lock().expect("runner lock").remove(&run_id);
            let _ = finished.send(Finished {
                tenant,
                outcome: outcome.map_err(|e| e.to_string()),
            });
        });
        running.insert(run_id, handle);
        Launched {
            run_id,
            already_running: false,
        }
    }

    /// Runs in progress in this process.
    pub fn running(&self) -> Vec<RunId> {
        self.tasks
            .lock()
            .expect("runner lock")
            .keys()
            .copied()
            .collect()
    }

    /// Graceful shutdown: waits up to `grace` for the runs in progress to finish, then stops the
    /// rest and records them as interrupted, so none is left "running" for ever.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        let mut finished = self.finished.subscribe();
        while !self.running().is_empty() {
            match tokio::time::timeout_at(deadline, finished.recv()).await {
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        let stopped: Vec<(RunId, JoinHandle<()>)> =
            self.tasks.lock().expect("runner lock").drain().collect();
        for (run_id, handle) in stopped {
            handle.abort();
            let _ = handle.await;
            warn!(run_id, "run interrupted by shutdown");
            let finish = RunFinish {
                status: RunStatus::Interrupted,
                summary: RunSummary::default(),
                message: Some(
                    "interrupted: the service shut down before the run finished; what it recorded \
                     before stopping is kept and the next run picks up from there"
                        .to_owned(),
                ),
            };
            if let Err(err) = self.ctx.store.finish_run(run_id, &finish).await {
                error!(run_id, %err, "could not mark the interrupted run");
            }
        }
    }
}

fn record_metrics(outcome: &Result<RunOutcome, SyncError>) {
    let Ok(outcome) = outcome else {
        metrics::counter!("dirsync_runs_total", "status" => "error").increment(1);
        return;
    };
    metrics::counter!("dirsync_runs_total", "status" => outcome.status.as_str()).increment(1);
    let s = &outcome.summary;
    metrics::counter!("dirsync_graph_requests_total").increment(s.source.requests);
    metrics::counter!("dirsync_graph_throttled_total").increment(s.source.throttled);
    metrics::counter!("dirsync_graph_retry_wait_seconds_total")
        .increment(s.source.waited_ms / 1000);
    let planned = &s.planned;
    for (kind, n) in [
        ("user_created", planned.users_created),
        ("user_adopted", planned.users_adopted),
        ("user_updated", planned.users_updated),
        ("user_activated", planned.users_activated),
        ("user_deactivated", planned.users_deactivated),
        ("membership_added", planned.memberships_added),
        ("membership_removed", planned.memberships_removed),
        ("group_created", planned.groups_created),
        ("group_renamed", planned.groups_renamed),
        ("group_converted", planned.groups_converted),
    ] {
        metrics::counter!("dirsync_planned_operations_total", "kind" => kind).increment(n as u64);
    }
}
