//! One tenant's run, end to end: read Entra, plan against the mirror, apply through the target,
//! record the mirror and the report. The scheduler, the API and the CLI all call [`run_sync`];
//! the service's API and scheduler start runs in the background through the [`Runner`].

mod apply;
mod approve;
mod confirm;
mod entries;
mod runner;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use tracing::{info, instrument, warn};

pub use apply::{Applier, phases};
pub use approve::{ApproveError, RejectError, approve_held_run, reject_held_run};
pub use entries::{note_entry, op_entries, run_entry};
pub use runner::{Finished, Launched, Runner};

use crate::domain::TenantKey;
use crate::plan::{
    DeactivationReason, GroupStatus, Mirror, Op, Plan, PlanInput, Severity, TargetLookups,
    emails_to_look_up, plan,
};
use crate::source::{DirectorySource, FetchStats, SourceFetch, UserPresence};
use crate::store::{
    ReportEntry, RunFinish, RunId, RunOptions, RunProgress, RunStart, RunStatus, RunSummary, Store,
    StoreError, Trigger,
};
use crate::target::TargetAdapter;
use crate::tenant::Tenant;

/// Builds the source and target connections for a tenant from its configuration.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn source(&self, tenant: &Tenant) -> Result<Arc<dyn DirectorySource>, String>;
    async fn target(&self, tenant: &Tenant) -> Result<Arc<dyn TargetAdapter>, String>;
    /// Connects the tenant's target for the first time with the authorization code an admin's
    /// consent produced (HighQ), keeping what it yields. Connectors with nowhere to keep it
    /// refuse.
    async fn connect_target(
        &self,
        tenant: &Tenant,
        _code: &secrecy::SecretString,
        _redirect_uri: &str,
    ) -> Result<(), String> {
        Err(format!(
            "tenant {}: this service cannot connect a target with an authorization code",
            tenant.key
        ))
    }
}

/// A connector that hands every tenant the same source and target: for tests and the demo.
pub struct FixedConnector {
    pub source: Arc<dyn DirectorySource>,
    pub target: Arc<dyn TargetAdapter>,
}

#[async_trait]
impl Connector for FixedConnector {
    async fn source(&self, _tenant: &Tenant) -> Result<Arc<dyn DirectorySource>, String> {
        Ok(self.source.clone())
    }
    async fn target(&self, _tenant: &Tenant) -> Result<Arc<dyn TargetAdapter>, String> {
        Ok(self.target.clone())
    }
}

/// Tuning for runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// Target calls in flight at once within a phase.
    pub target_concurrency: usize,
    /// R11: at most this many leavers are looked up in Entra to say why they left.
    pub max_presence_lookups: usize,
    /// Report lines and mirror changes are written at least every this many operations.
    pub flush_every: usize,
    /// How often a running run says it is alive.
    pub heartbeat_every: std::time::Duration,
    /// A running run not heard from for this long is taken to be dead (its process stopped).
    pub stale_after: chrono::Duration,
    /// This many target calls failing in a row as unavailable stop the run's calls (an outage).
    pub max_unavailable_in_a_row: usize,
    /// R18: a held run can be approved for this long after it was held.
    pub approval_window: chrono::Duration,
    /// R12/R17: a synced group that answers "deleted" is read again after this delay, in the same
    /// run, before it is converted; a single 404 may be Entra's replication catching up.
    pub deletion_confirm_delay: std::time::Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            target_concurrency: 8,
            max_presence_lookups: 200,
            flush_every: 500,
            heartbeat_every: std::time::Duration::from_secs(15),
            stale_after: chrono::Duration::minutes(2),
            max_unavailable_in_a_row: 20,
            approval_window: chrono::Duration::hours(24),
            deletion_confirm_delay: std::time::Duration::from_secs(30),
        }
    }
}

/// What a run needs from the service around it.
#[derive(Clone)]
pub struct SyncContext {
    pub store: Arc<dyn Store>,
    pub connector: Arc<dyn Connector>,
    pub settings: SyncSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no tenant with key {0:?}")]
    UnknownTenant(TenantKey),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Only for dry runs, which have no report to carry the failure.
    #[error("{0}")]
    Unreadable(String),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub run_id: RunId,
    pub status: RunStatus,
    pub summary: RunSummary,
    pub message: Option<String>,
    /// R21: the run was already in progress; this call started nothing.
    pub already_running: bool,
}

/// A run that has been recorded as started and is ready to execute.
pub struct PendingRun {
    ctx: SyncContext,
    tenant: Tenant,
    run_id: RunId,
    options: RunOptions,
}

/// What asking for a run got.
pub enum RunStartOutcome {
    Started(Box<PendingRun>),
    /// R21: a run is already in progress for the tenant; this is it.
    AlreadyRunning(RunId),
}

impl PendingRun {
    pub fn id(&self) -> RunId {
        self.run_id
    }
}

/// Records a new run for `tenant` unless one is in progress. A running run whose process has
/// not been heard from for `stale_after` is closed as interrupted first, so it cannot block.
pub async fn start_run(
    ctx: &SyncContext,
    tenant: &TenantKey,
    trigger: Trigger,
    options: RunOptions,
) -> Result<RunStartOutcome, SyncError> {
    let config = tenant_ready_to_run(ctx, tenant).await?;
    Ok(
        match ctx.store.begin_run(tenant, &trigger, options).await? {
            RunStart::Started(run_id) => {
                info!(tenant = %tenant, run_id, trigger = trigger.kind.as_str(), "run started");
                RunStartOutcome::Started(Box::new(PendingRun {
                    ctx: ctx.clone(),
                    tenant: config,
                    run_id,
                    options,
                }))
            }
            RunStart::AlreadyRunning(id) => RunStartOutcome::AlreadyRunning(id),
        },
    )
}

/// The tenant's configuration, once any running run whose process stopped has been closed as
/// interrupted, so it cannot block the next one.
async fn tenant_ready_to_run(ctx: &SyncContext, tenant: &TenantKey) -> Result<Tenant, SyncError> {
    let config = ctx
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| SyncError::UnknownTenant(tenant.clone()))?;
    let silent = ctx.settings.stale_after;
    let interrupted = ctx
        .store
        .interrupt_stale_runs(
            tenant,
            silent,
            &format!(
                "interrupted: the process running it stopped (no sign of life for {} s); \
                 what it recorded before stopping is kept",
                silent.num_seconds()
            ),
        )
        .await?;
    for run in interrupted {
        warn!(tenant = %tenant, run, "closed a run whose process stopped");
    }
    Ok(config)
}

/// Runs one sync for `tenant` now (or returns the run already in progress, R21).
pub async fn run_sync(
    ctx: &SyncContext,
    tenant: &TenantKey,
    trigger: Trigger,
    options: RunOptions,
) -> Result<RunOutcome, SyncError> {
    match start_run(ctx, tenant, trigger, options).await? {
        RunStartOutcome::Started(pending) => pending.execute().await,
        RunStartOutcome::AlreadyRunning(id) => {
            let record = ctx.store.run(id).await?;
            Ok(RunOutcome {
                run_id: id,
                status: record.map_or(RunStatus::Running, |r| r.status),
                summary: RunSummary::default(),
                message: Some(format!("run {id} is already in progress for this tenant")),
                already_running: true,
            })
        }
    }
}

impl PendingRun {
    /// Carries the run out and records how it ended. Only a store failure is an `Err`; every
    /// other problem ends the run as `failed` or `completed with errors` with the reason.
    #[instrument(skip_all, fields(tenant = %self.tenant.key, run_id = self.run_id), err)]
    pub async fn execute(self) -> Result<RunOutcome, SyncError> {
        let ctx = &self.ctx;
        let run_id = self.run_id;
        let progress = Progress::new(ctx.store.clone(), run_id);
        let ticker = progress.keep_alive(ctx.settings.heartbeat_every);
        let mut run = Run {
            ctx,
            tenant: &self.tenant,
            run_id,
            summary: RunSummary::default(),
            progress: &progress,
        };
        let finish = match run.execute(self.options).await {
            Ok(finish) => finish,
            Err(err) => RunFinish {
                status: RunStatus::Failed,
                summary: run.summary.clone(),
                message: Some(format!("the run stopped: {err}")),
            },
        };
        ticker.abort();
        if let Some(message) = &finish.message {
            let severity = if finish.status == RunStatus::Failed {
                Severity::Error
            } else {
                Severity::Info
            };
            ctx.store
                .record_entries(
                    run_id,
                    &[run_entry(finish.status.as_str(), severity, message.clone())],
                )
                .await?;
        }
        ctx.store.finish_run(run_id, &finish).await?;
        info!(status = finish.status.as_str(), "run finished");
        Ok(RunOutcome {
            run_id,
            status: finish.status,
            summary: finish.summary,
            message: finish.message,
            already_running: false,
        })
    }
}

/// A run's progress, written to the store at each step and by a keep-alive ticker in between,
/// so that a silent run can be told from a slow one.
struct Progress {
    store: Arc<dyn Store>,
    run_id: RunId,
    current: Arc<std::sync::Mutex<RunProgress>>,
}

impl Progress {
    fn new(store: Arc<dyn Store>, run_id: RunId) -> Self {
        Self {
            store,
            run_id,
            current: Arc::new(std::sync::Mutex::new(RunProgress {
                stage: "starting".to_owned(),
                done: 0,
                total: 0,
            })),
        }
    }

    /// One more group read from Entra; the keep-alive ticker records it.
    fn group_read(&self) {
        self.current.lock().expect("progress lock").done += 1;
    }

    async fn set(&self, stage: &str, done: usize, total: usize) -> Result<(), StoreError> {
        let progress = RunProgress {
            stage: stage.to_owned(),
            done: done as i64,
            total: total as i64,
        };
        *self.current.lock().expect("progress lock") = progress.clone();
        self.store.heartbeat(self.run_id, &progress).await
    }

    fn keep_alive(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let (store, run_id, current) = (self.store.clone(), self.run_id, self.current.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                let progress = current.lock().expect("progress lock").clone();
                if let Err(err) = store.heartbeat(run_id, &progress).await {
                    warn!(run_id, %err, "could not record the run's heartbeat");
                }
            }
        })
    }
}

/// Connects to the tenant's target and looks up one address that cannot exist: the target's kind
/// when the sign-in and the API answer, or the sentence saying why not. Changes nothing (the
/// CLI's `check` and the console's Test connection).
pub async fn probe_target(ctx: &SyncContext, tenant: &Tenant) -> Result<&'static str, String> {
    let probe = crate::domain::Email::parse("dirsync-connection-check@invalid.example")
        .expect("a valid address");
    let target = ctx.connector.target(tenant).await?;
    target
        .find_users_by_email(std::slice::from_ref(&probe))
        .await
        .map(|_| target.kind())
        .map_err(|err| format!("{} answered: {err}", target.kind()))
}

/// R22 dry run: the plan a run would carry out now, without writing anything anywhere.
pub async fn dry_run(ctx: &SyncContext, tenant: &TenantKey) -> Result<Plan, SyncError> {
    let config = ctx
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| SyncError::UnknownTenant(tenant.clone()))?;
    let source = ctx
        .connector
        .source(&config)
        .await
        .map_err(SyncError::Unreadable)?;
    let target = ctx
        .connector
        .target(&config)
        .await
        .map_err(SyncError::Unreadable)?;
    let (plan, _, _) = read_and_plan(
        &ctx.settings,
        ctx.store.as_ref(),
        &config,
        source.as_ref(),
        target.as_ref(),
        None,
        &|| {},
    )
    .await
    .map_err(|failure| match failure {
        ReadFailure::Store(err) => SyncError::Store(err),
        ReadFailure::Unreadable(message) => SyncError::Unreadable(message),
    })?;
    Ok(plan)
}

enum ReadFailure {
    Store(StoreError),
    Unreadable(String),
}

impl From<StoreError> for ReadFailure {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// Reads Entra (confirming deletions, R12), the mirror and the target users the plan needs,
/// then plans. `approved_deactivations`: the approval this run carries out (R18).
async fn read_and_plan(
    settings: &SyncSettings,
    store: &dyn Store,
    tenant: &Tenant,
    source: &dyn DirectorySource,
    target: &dyn TargetAdapter,
    approved_deactivations: Option<usize>,
    group_read: &(dyn Fn() + Send + Sync),
) -> Result<(Plan, FetchStats, Mirror), ReadFailure> {
    let group_ids: Vec<_> = tenant
        .policy
        .selected_groups
        .iter()
        .map(|g| g.entra_id.clone())
        .collect();
    let SourceFetch {
        mut snapshot,
        mut stats,
        notes: source_notes,
    } = source
        .fetch_groups_with_progress(&group_ids, group_read)
        .await
        .map_err(|err| ReadFailure::Unreadable(format!("could not read Entra: {err}")))?;
    let mirror = store.load_mirror(&tenant.key).await?;
    let again = confirm::confirm_deletions(
        source,
        &mut snapshot,
        &mirror,
        settings.deletion_confirm_delay,
    )
    .await;
    stats.requests += again.requests;
    stats.throttled += again.throttled;
    stats.retries += again.retries;
    stats.waited_ms += again.waited_ms;
    let wanted = emails_to_look_up(&tenant.policy, &snapshot, &mirror);
    let found = if wanted.is_empty() {
        Vec::new()
    } else {
        target.find_users_by_email(&wanted).await.map_err(|err| {
            ReadFailure::Unreadable(format!(
                "could not look up existing {} users: {err}",
                target.kind()
            ))
        })?
    };
    let mut plan = plan(PlanInput {
        policy: &tenant.policy,
        snapshot: &snapshot,
        mirror: &mirror,
        target: &TargetLookups::new(found),
        now: Utc::now(),
        approved_deactivations,
    });
    plan.notes.extend(source_notes.into_iter().map(|mut note| {
        if let crate::plan::Subject::Group { entra_id, role, .. } = &mut note.subject
            && let Some(selected) = tenant
                .policy
                .selected_groups
                .iter()
                .find(|g| &g.entra_id == entra_id)
        {
            *role = selected.role;
        }
        note
    }));
    Ok((plan, stats, mirror))
}

struct Run<'a> {
    ctx: &'a SyncContext,
    tenant: &'a Tenant,
    run_id: RunId,
    summary: RunSummary,
    progress: &'a Progress,
}

impl Run<'_> {
    async fn execute(&mut self, options: RunOptions) -> Result<RunFinish, StoreError> {
        let store = self.ctx.store.as_ref();
        let failed = |summary: &RunSummary, message: String| RunFinish {
            status: RunStatus::Failed,
            summary: summary.clone(),
            message: Some(message),
        };
        let source = match self.ctx.connector.source(self.tenant).await {
            Ok(source) => source,
            Err(message) => {
                return Ok(failed(
                    &self.summary,
                    format!("could not connect to Entra: {message}"),
                ));
            }
        };
        let target = match self.ctx.connector.target(self.tenant).await {
            Ok(target) => target,
            Err(message) => {
                return Ok(failed(
                    &self.summary,
                    format!("could not connect to the target: {message}"),
                ));
            }
        };
        let approved_deactivations = options
            .approval
            .map(|a| usize::try_from(a.deactivations).unwrap_or(usize::MAX));
        let groups = self.tenant.policy.selected_groups.len();
        self.progress.set("reading Entra", 0, groups).await?;
        let (mut plan, stats, mirror) = match read_and_plan(
            &self.ctx.settings,
            store,
            self.tenant,
            source.as_ref(),
            target.as_ref(),
            approved_deactivations,
            &|| self.progress.group_read(),
        )
        .await
        {
            Ok(read) => read,
            Err(ReadFailure::Store(err)) => return Err(err),
            Err(ReadFailure::Unreadable(message)) => return Ok(failed(&self.summary, message)),
        };
        self.summary.source = stats;
        self.summary.planned = plan.counts();
        // The plan's warnings and errors are in the report whatever is applied.
        self.summary.applied.warnings = self.summary.planned.warnings;
        self.summary.applied.errors = self.summary.planned.errors;
        self.progress
            .set("recording the plan", groups, groups)
            .await?;
        store.record_groups(self.run_id, &plan.groups).await?;
        let notes: Vec<ReportEntry> = plan.notes.iter().map(note_entry).collect();
        store.record_entries(self.run_id, &notes).await?;

        let readable = plan.groups.iter().any(|g| g.status != GroupStatus::Failed);
        if !readable && !plan.groups.is_empty() {
            return Ok(failed(
                &self.summary,
                "no selected group could be read from Entra; nothing was changed".to_owned(),
            ));
        }

        if let Some(hold) = plan.hold {
            let planned: Vec<ReportEntry> = plan
                .ops
                .iter()
                .flat_map(|op| op_entries(op, "planned: "))
                .collect();
            store.record_entries(self.run_id, &planned).await?;
            warn!(
                deactivations = hold.deactivations,
                "run held by the deletion guard"
            );
            return Ok(RunFinish {
                status: RunStatus::Held,
                summary: self.summary.clone(),
                message: Some(hold.describe()),
            });
        }

        explain_departures(
            &mut plan,
            source.as_ref(),
            self.ctx.settings.max_presence_lookups,
        )
        .await;

        let mut applier = Applier::new(
            target,
            &mirror,
            self.ctx.settings.target_concurrency,
            self.ctx.settings.max_unavailable_in_a_row,
        );
        let total = plan.ops.len();
        let mut done = 0;
        self.progress.set("applying changes", done, total).await?;
        for phase in phases(&plan.ops) {
            for chunk in phase.chunks(self.ctx.settings.flush_every.max(1)) {
                let result = applier.apply_phase(chunk).await;
                done += chunk.len();
                self.summary.operations_applied += result.applied;
                self.summary.operations_failed += result.failed;
                self.summary.applied.add(&result.applied_counts);
                self.summary.applied.errors += result
                    .entries
                    .iter()
                    .filter(|e| e.severity == Severity::Error)
                    .count();
                if !result.mirror.is_empty() {
                    store
                        .apply_mirror_changes(&self.tenant.key, &result.mirror)
                        .await?;
                }
                store.record_entries(self.run_id, &result.entries).await?;
                self.progress.set("applying changes", done, total).await?;
            }
        }

        let status = if plan.has_errors() || self.summary.operations_failed > 0 {
            RunStatus::CompletedWithErrors
        } else {
            RunStatus::Succeeded
        };
        let message = applier
            .stopped()
            .map(|reason| format!("stopped applying changes: {reason}"));
        let status = if message.is_some() && self.summary.operations_applied == 0 {
            RunStatus::Failed
        } else {
            status
        };
        Ok(RunFinish {
            status,
            summary: self.summary.clone(),
            message,
        })
    }
}

/// R11: for users leaving every synced group, ask Entra whether they were deleted or disabled,
/// so the report can say so. Best effort and bounded: a failed look-up keeps the general reason.
async fn explain_departures(plan: &mut Plan, source: &dyn DirectorySource, limit: usize) {
    let leavers: Vec<usize> = plan
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            matches!(
                op,
                Op::DeactivateUser {
                    reason: DeactivationReason::RemovedFromSyncedGroups,
                    ..
                }
            )
        })
        .map(|(i, _)| i)
        .take(limit)
        .collect();
    let lookups: Vec<_> = leavers
        .into_iter()
        .map(|i| {
            let user = match &plan.ops[i] {
                Op::DeactivateUser { user, .. } => user.entra_id.clone(),
                _ => unreachable!("filtered above"),
            };
            async move { (i, source.user_presence(&user).await.ok()) }
        })
        .collect();
    let presences: Vec<(usize, Option<UserPresence>)> =
        stream::iter(lookups).buffer_unordered(8).collect().await;
    for (i, presence) in presences {
        if let Op::DeactivateUser { reason, .. } = &mut plan.ops[i] {
            match presence {
                Some(UserPresence::Deleted) => *reason = DeactivationReason::DeletedInEntra,
                Some(UserPresence::Disabled) => *reason = DeactivationReason::DisabledInEntra,
                _ => {}
            }
        }
    }
}
