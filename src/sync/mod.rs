//! One tenant's run, end to end: read Entra, plan against the mirror, apply through the target,
//! record the mirror and the report. The scheduler, the API and the CLI all call [`run_sync`];
//! the service's API and scheduler start runs in the background through the [`Runner`].

mod apply;
mod approve;
mod confirm;
mod drift;
mod entries;
pub mod people;
mod runner;
pub mod what_if;

use std::pin::pin;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use futures::future::{self, Either};
use futures::stream::{self, StreamExt};
use tracing::{info, instrument, warn};

pub use apply::{Applier, phases};
pub use approve::{ApproveError, RejectError, approve_held_run, reject_held_run};
pub use entries::{note_entry, op_entries, run_entry};
pub use runner::{Finished, Launched, Runner};

use crate::domain::TenantKey;
use crate::plan::{
    DeactivationReason, GroupStatus, Mirror, MirrorIndex, Op, Plan, PlanInput, Severity,
    TargetLookups, emails_to_look_up_indexed, plan_indexed,
};
use crate::source::{DirectorySource, FetchStats, SourceError, SourceFetch, UserPresence};
use crate::store::{
    MirrorChanges, ReportEntry, RunFinish, RunFlush, RunId, RunLease, RunOptions, RunProgress,
    RunStart, RunStatus, RunSummary, Store, StoreError, Trigger,
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
    /// Item 2: applied operations are recorded (mirror changes, report lines and progress in one
    /// transaction) at least every this many changes (a membership batch counts each member,
    /// [`Op::changes`](crate::plan::Op::changes))…
    pub flush_every: usize,
    /// …and at least this often, so a killed run loses at most one small flush of bookkeeping
    /// (and the next run recognises what it did: creates are idempotent).
    pub flush_interval: std::time::Duration,
    /// How often a running run says it is alive (and checks that it still holds its lease).
    pub heartbeat_every: std::time::Duration,
    /// A run still going after this long stops and is recorded `failed: deadline`.
    pub run_deadline: std::time::Duration,
    /// Item 3: runs carried out at once by one replica; more wait for a slot before they begin
    /// (midnight for 500 tenants queues instead of opening 500 runs' worth of connections).
    pub max_runs_in_flight: usize,
    /// This many target calls failing in a row as unavailable stop the run's calls (an outage).
    pub max_unavailable_in_a_row: usize,
    /// R18: a held run can be approved for this long after it was held.
    pub approval_window: chrono::Duration,
    /// R12/R17: a synced group that answers "deleted" is read again after this delay, in the same
    /// run, before it is converted; a single 404 may be Entra's replication catching up.
    pub deletion_confirm_delay: std::time::Duration,
    /// Issue 14: when failing automatic runs quarantine a tenant, and how they back off.
    pub quarantine: crate::schedule::QuarantinePolicy,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            target_concurrency: 8,
            max_presence_lookups: 200,
            flush_every: 1000,
            flush_interval: std::time::Duration::from_secs(1),
            heartbeat_every: std::time::Duration::from_secs(15),
            run_deadline: std::time::Duration::from_secs(6 * 3600),
            max_runs_in_flight: 8,
            max_unavailable_in_a_row: 20,
            approval_window: chrono::Duration::hours(24),
            deletion_confirm_delay: std::time::Duration::from_secs(30),
            quarantine: crate::schedule::QuarantinePolicy::default(),
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
    /// Issue 14: the tenant, or the whole service, is paused: no run starts until it is resumed.
    #[error("{0}")]
    Paused(String),
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
    /// Where the run's time went (also logged when it finishes).
    pub timings: PhaseTimings,
}

/// Wall time a run spent in each phase, so a slow run says which part was slow (and the e2e
/// benchmark can set each against its bound). The phases follow one another, recording between
/// the apply phase's chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    /// Reading the selected groups from Entra (and confirming deletions, R12), with the mirror
    /// load and the target's drift check beside it.
    pub read: std::time::Duration,
    /// Looking up adoptable users and planning; `planner` of it in the pure planner.
    pub plan: std::time::Duration,
    pub planner: std::time::Duration,
    /// Carrying the operations out through the target adapter.
    pub apply: std::time::Duration,
    /// Writing the plan's groups, the mirror changes, report lines and progress.
    pub record: std::time::Duration,
}

impl PhaseTimings {
    fn log(&self) {
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        info!(
            read_ms = ms(self.read),
            plan_ms = ms(self.plan),
            planner_ms = ms(self.planner),
            apply_ms = ms(self.apply),
            record_ms = ms(self.record),
            "run phases"
        );
    }
}

/// Runs `work`, adding its wall time to `total`.
async fn timed<T>(total: &mut std::time::Duration, work: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = work.await;
    *total += started.elapsed();
    result
}

/// A run that has been recorded as started and is ready to execute.
pub struct PendingRun {
    ctx: SyncContext,
    tenant: Tenant,
    /// The run's hold on its tenant: every write of the run goes through it.
    lease: Arc<dyn RunLease>,
    options: RunOptions,
    scope: Scope,
    /// Entra, when connected to and signed in to while the lease was taken.
    entra: Option<EntraHeadStart>,
}

/// Issue 13: Entra connected to as the run's lease is taken, and signed in to meanwhile, so the
/// read's first request does not wait for a token. A failed connection or sign-in ends the run
/// where it would have, with the same words, and is not asked again.
struct EntraHeadStart {
    /// `Err`: why Entra could not be connected to.
    source: Result<Arc<dyn DirectorySource>, String>,
    /// The sign-in, a task of its own that neither waits for the lease nor holds it up.
    signing_in: Option<AbortOnDrop<Result<(), SourceError>>>,
}

/// Signs in to Entra through `source`, or waits for the sign-in already under way
/// ([`EntraHeadStart`]): either way one token request.
async fn sign_in(
    source: &dyn DirectorySource,
    signing_in: Option<AbortOnDrop<Result<(), SourceError>>>,
) -> Result<(), SourceError> {
    match signing_in {
        Some(mut task) => joined(&mut task.0).await,
        None => source.sign_in().await,
    }
}

impl EntraHeadStart {
    async fn start(connector: &dyn Connector, tenant: &Tenant) -> Self {
        match connector.source(tenant).await {
            Ok(source) => Self {
                signing_in: Some(AbortOnDrop(tokio::spawn({
                    let source = Arc::clone(&source);
                    async move { source.sign_in().await }
                }))),
                source: Ok(source),
            },
            Err(message) => Self {
                source: Err(message),
                signing_in: None,
            },
        }
    }
}

/// Whom a run syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every member of every selected group (automatic and forced runs).
    Tenant,
    /// Issue 14: only these people (object IDs or user principal names), see [`people`].
    People(Vec<String>),
}

/// What asking for a run got.
pub enum RunStartOutcome {
    Started(Box<PendingRun>),
    /// R21: a run is already in progress for the tenant; this is it.
    AlreadyRunning(RunId),
}

impl PendingRun {
    pub fn id(&self) -> RunId {
        self.lease.run_id()
    }
}

/// Records a new run for `tenant` unless one is in progress (R21). A run left running by a
/// process that is gone holds no lease any more: it is closed as interrupted and the new run
/// starts at once.
pub async fn start_run(
    ctx: &SyncContext,
    tenant: &TenantKey,
    trigger: Trigger,
    options: RunOptions,
) -> Result<RunStartOutcome, SyncError> {
    let config = tenant_ready_to_run(ctx, tenant).await?;
    // A run refused as already running (R21) has asked Entra for one token it does not use.
    let (started, entra) = tokio::join!(
        ctx.store.begin_run(tenant, &trigger, options),
        EntraHeadStart::start(ctx.connector.as_ref(), &config)
    );
    Ok(match started? {
        RunStart::Started(lease) => {
            info!(tenant = %tenant, run_id = lease.run_id(), trigger = trigger.kind.as_str(), "run started");
            RunStartOutcome::Started(Box::new(PendingRun {
                ctx: ctx.clone(),
                tenant: config,
                lease,
                options,
                scope: Scope::Tenant,
                entra: Some(entra),
            }))
        }
        RunStart::AlreadyRunning(id) => RunStartOutcome::AlreadyRunning(id),
    })
}

/// Issue 14: records a run of `people` only (trigger `on_demand`, by `by`), unless a run is in
/// progress (R21: the caller is told which, and nothing starts). `people` must have passed
/// [`people::parse_people`].
pub async fn start_people_run(
    ctx: &SyncContext,
    tenant: &TenantKey,
    by: &str,
    people: Vec<String>,
) -> Result<RunStartOutcome, SyncError> {
    let config = tenant_ready_to_run(ctx, tenant).await?;
    let trigger = Trigger::on_demand(by);
    let (started, entra) = tokio::join!(
        ctx.store.begin_run(tenant, &trigger, RunOptions::default()),
        EntraHeadStart::start(ctx.connector.as_ref(), &config)
    );
    Ok(match started? {
        RunStart::Started(lease) => {
            info!(tenant = %tenant, run_id = lease.run_id(), people = people.len(), "on-demand run started");
            RunStartOutcome::Started(Box::new(PendingRun {
                ctx: ctx.clone(),
                tenant: config,
                lease,
                options: RunOptions::default(),
                scope: Scope::People(people),
                entra: Some(entra),
            }))
        }
        RunStart::AlreadyRunning(id) => RunStartOutcome::AlreadyRunning(id),
    })
}

/// The tenant's configuration, unless it (or the whole service) is paused: a paused tenant runs
/// nothing, forced or approved, until it is resumed (issue 14).
async fn tenant_ready_to_run(ctx: &SyncContext, tenant: &TenantKey) -> Result<Tenant, SyncError> {
    let config = ctx
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| SyncError::UnknownTenant(tenant.clone()))?;
    if let Some(refusal) = crate::schedule::pause_refusal(ctx.store.as_ref(), &config).await? {
        return Err(SyncError::Paused(refusal));
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
                timings: PhaseTimings::default(),
            })
        }
    }
}

impl PendingRun {
    /// Carries the run out and records how it ended. Only a store failure is an `Err`; every
    /// other problem ends the run as `failed` or `completed with errors` with the reason. A run
    /// that lost its lease stops applying at once, says why in its report, and leaves its status
    /// to whoever took the tenant over.
    #[instrument(skip_all, fields(tenant = %self.tenant.key, run_id = self.lease.run_id()), err)]
    pub async fn execute(mut self) -> Result<RunOutcome, SyncError> {
        let ctx = &self.ctx;
        let run_id = self.lease.run_id();
        let progress = Progress::new(self.lease.clone());
        let ticker = progress.keep_alive(ctx.settings.heartbeat_every);
        let mut run = Run {
            ctx,
            tenant: &self.tenant,
            run_id,
            summary: RunSummary::default(),
            progress: &progress,
            lease: self.lease.as_ref(),
            scope: &self.scope,
            timings: PhaseTimings::default(),
        };
        let deadline = ctx.settings.run_deadline;
        let ended =
            tokio::time::timeout(deadline, run.execute(self.options, self.entra.take())).await;
        drop(ticker);
        let failed = |message: String| RunFinish {
            status: RunStatus::Failed,
            summary: run.summary.clone(),
            message: Some(message),
        };
        let finish = match ended {
            Ok(Ok(finish)) => finish,
            Ok(Err(StoreError::LeaseLost(why))) => return self.fenced_off(run.summary, why).await,
            Ok(Err(err)) => failed(format!("the run stopped: {err}")),
            Err(_) => failed(format!(
                "deadline: the run was still going after {}, so it stopped; what it applied is \
                 recorded and the next run continues from there",
                humantime_secs(deadline)
            )),
        };
        let entries: Vec<ReportEntry> = finish
            .message
            .iter()
            .map(|message| {
                let severity = if finish.status == RunStatus::Failed {
                    Severity::Error
                } else {
                    Severity::Info
                };
                run_entry(finish.status.as_str(), severity, message.clone())
            })
            .collect();
        match timed(
            &mut run.timings.record,
            self.lease.finish(&finish, &entries),
        )
        .await
        {
            Ok(()) => {}
            Err(StoreError::LeaseLost(why)) => {
                return self.fenced_off(finish.summary, why).await;
            }
            Err(err) => return Err(err.into()),
        }
        info!(status = finish.status.as_str(), "run finished");
        run.timings.log();
        Ok(RunOutcome {
            run_id,
            status: finish.status,
            summary: finish.summary,
            message: finish.message,
            already_running: false,
            timings: run.timings,
        })
    }

    /// The run lost its lease: it changed nothing after that. It says why in its report (best
    /// effort: the database may be what it lost) and leaves the run's status to the run that
    /// took the tenant over, which closes it as interrupted.
    async fn fenced_off(&self, summary: RunSummary, why: String) -> Result<RunOutcome, SyncError> {
        let run_id = self.lease.run_id();
        let message = format!(
            "stopped: the run lost its hold on the tenant ({why}); it applied nothing after \
             that, and the next run picks up from there"
        );
        warn!(run_id, %why, "run fenced off");
        if let Err(err) = self
            .ctx
            .store
            .record_entries(
                run_id,
                &[run_entry("stopped", Severity::Error, message.clone())],
            )
            .await
        {
            warn!(run_id, %err, "could not record why the run stopped");
        }
        Ok(RunOutcome {
            run_id,
            status: RunStatus::Interrupted,
            summary,
            message: Some(message),
            already_running: false,
            timings: PhaseTimings::default(),
        })
    }
}

/// "6 h", "90 s".
fn humantime_secs(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// A run's progress, written through its lease at each flush and by a keep-alive ticker in
/// between, so that a silent run can be told from a slow one and a fenced-off run learns it.
struct Progress {
    lease: Arc<dyn RunLease>,
    current: Arc<std::sync::Mutex<RunProgress>>,
}

impl Progress {
    fn new(lease: Arc<dyn RunLease>) -> Self {
        Self {
            lease,
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

    /// The progress to record with the next flush.
    fn at(&self, stage: &str, done: usize, total: usize) -> RunProgress {
        let progress = RunProgress {
            stage: stage.to_owned(),
            done: done as i64,
            total: total as i64,
        };
        *self.current.lock().expect("progress lock") = progress.clone();
        progress
    }

    async fn set(&self, stage: &str, done: usize, total: usize) -> Result<(), StoreError> {
        let progress = self.at(stage, done, total);
        self.lease.heartbeat(&progress).await
    }

    /// The ticker stops when the returned guard is dropped: with the run, even when the run's
    /// task is cancelled, so the lease it shares is not kept alive by the ticker.
    fn keep_alive(&self, every: std::time::Duration) -> AbortOnDrop {
        let (lease, current) = (self.lease.clone(), self.current.clone());
        AbortOnDrop(tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                let progress = current.lock().expect("progress lock").clone();
                match lease.heartbeat(&progress).await {
                    Ok(()) => {}
                    // The run sees it at its next flush and stops.
                    Err(StoreError::LeaseLost(_)) => return,
                    Err(err) => {
                        warn!(run_id = lease.run_id(), %err, "could not record the run's heartbeat")
                    }
                }
            }
        }))
    }
}

/// A spawned task that stops when its owner is dropped.
struct AbortOnDrop<T = ()>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
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
    dry_run_tenant(ctx, &config).await
}

/// The dry run of `config`, which may be a configuration not saved yet (what-if).
pub async fn dry_run_tenant(ctx: &SyncContext, config: &Tenant) -> Result<Plan, SyncError> {
    let source = ctx
        .connector
        .source(config)
        .await
        .map_err(SyncError::Unreadable)?;
    let target = ctx
        .connector
        .target(config)
        .await
        .map_err(SyncError::Unreadable)?;
    let (plan, _, _, _, _) =
        read_and_plan(ctx, config, source.as_ref(), None, &target, None, &|| {})
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

impl ReadFailure {
    /// Entra could not be read: what the run then says.
    fn entra(err: SourceError) -> Self {
        Self::Unreadable(format!("could not read Entra: {err}"))
    }
}

impl From<StoreError> for ReadFailure {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// Reads Entra (confirming deletions, R12), the mirror and the target users the plan needs,
/// then plans. `approved_deactivations`: the approval this run carries out (R18).
/// `signing_in`: the sign-in to Entra if started already ([`EntraHeadStart`]); if not, it is
/// done beside the first question to the database.
async fn read_and_plan(
    ctx: &SyncContext,
    tenant: &Tenant,
    source: &dyn DirectorySource,
    signing_in: Option<AbortOnDrop<Result<(), SourceError>>>,
    target: &Arc<dyn TargetAdapter>,
    approved_deactivations: Option<usize>,
    group_read: &(dyn Fn() + Send + Sync),
) -> Result<(Plan, FetchStats, Mirror, drift::Repair, PhaseTimings), ReadFailure> {
    let mut timings = PhaseTimings::default();
    let started = std::time::Instant::now();
    let group_ids: Vec<_> = tenant
        .policy
        .selected_groups
        .iter()
        .map(|g| g.entra_id.clone())
        .collect();
    // Issue 13: the groups the mirror last saw largest are read first, so the longest chain
    // of pages starts at once rather than behind the small groups; the mirror loads, and the
    // target's drift check (item 11) reads the target, while Entra is read. An Entra that
    // cannot be read ends all three.
    // Entra is signed in to meanwhile: the first group is asked for with a token at hand.
    let (settings, store) = (&ctx.settings, &ctx.store);
    let (last_seen, signed_in) = tokio::join!(
        store.synced_group_sizes(&tenant.key),
        sign_in(source, signing_in)
    );
    let last_seen = last_seen?;
    signed_in.map_err(ReadFailure::entra)?;
    let expected_members: Vec<usize> = group_ids
        .iter()
        .map(|id| last_seen.get(id).copied().unwrap_or(0))
        .collect();
    let read_entra = async {
        source
            .fetch_groups_with_progress(&group_ids, &expected_members, group_read)
            .await
            .map_err(ReadFailure::entra)
    };
    // A task of its own, so decoding the mirror's rows and the target's member lists runs on
    // another worker while this one follows Entra's pages; dropped with the read, it stops.
    let mut loading = AbortOnDrop(tokio::spawn({
        let (store, target) = (Arc::clone(store), Arc::clone(target));
        let (tenant, concurrency) = (tenant.key.clone(), settings.target_concurrency);
        async move {
            let mirror = store.load_mirror(&tenant).await?;
            let (mirror, repair) = drift::repair_drift(target.as_ref(), mirror, concurrency).await;
            // The mirror's users are indexed by id once, for the email look-ups and the plan,
            // while Entra is still being read.
            let (mirror, index) = on_blocking_pool(move || {
                let index = MirrorIndex::new(&mirror);
                (mirror, index)
            })
            .await;
            Ok::<_, StoreError>((mirror, index, repair))
        }
    }));
    let load_and_check = async { joined(&mut loading.0).await.map_err(ReadFailure::from) };
    let (
        SourceFetch {
            mut snapshot,
            mut stats,
            notes: source_notes,
        },
        (mirror, index, repair),
    ) = tokio::try_join!(read_entra, load_and_check)?;
    timings.read += started.elapsed();
    let started = std::time::Instant::now();
    let confirming = std::time::Instant::now();
    let again = confirm::confirm_deletions(
        source,
        &mut snapshot,
        &mirror,
        settings.deletion_confirm_delay,
    )
    .await;
    let confirming = confirming.elapsed();
    timings.read += confirming;
    stats.requests += again.requests;
    stats.throttled += again.throttled;
    stats.retries += again.retries;
    stats.waited_ms += again.waited_ms;
    // Issue 13: the planner's work is for the CPU (1.7 s at 500,000 users), so it runs on the
    // blocking pool rather than hold a worker that other tenants' runs share: first the pass
    // over every member that finds the emails to look up, then the plan itself. The snapshot and
    // mirror are moved there and back, and the snapshot is let go once planned.
    let policy = Arc::new(tenant.policy.clone());
    let (wanted, index, snapshot, mirror) = on_blocking_pool({
        let policy = Arc::clone(&policy);
        move || {
            let wanted = emails_to_look_up_indexed(&policy, &snapshot, &mirror, &index);
            (wanted, index, snapshot, mirror)
        }
    })
    .await;
    // The emails are dropped once looked up: an initial sync asks for every user's.
    let found = match wanted {
        wanted if wanted.is_empty() => Vec::new(),
        wanted => target.find_users_by_email(&wanted).await.map_err(|err| {
            ReadFailure::Unreadable(format!(
                "could not look up existing {} users: {err}",
                target.kind()
            ))
        })?,
    };
    let planning = std::time::Instant::now();
    let now = Utc::now();
    let (mut plan, mirror) = on_blocking_pool(move || {
        let input = PlanInput {
            policy: &policy,
            snapshot: &snapshot,
            mirror: &mirror,
            target: &TargetLookups::new(found),
            now,
            approved_deactivations,
        };
        let plan = plan_indexed(input, &index);
        free_beside((index, snapshot));
        (plan, mirror)
    })
    .await;
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
    timings.planner += planning.elapsed();
    timings.plan += started.elapsed() - confirming;
    Ok((plan, stats, mirror, repair, timings))
}

/// Frees `value` on the blocking pool while the run goes on, rather than before it does (issue
/// 13: a snapshot or mirror of 100,000 users is as many allocations freed one by one).
fn free_beside<T: Send + 'static>(value: T) {
    tokio::task::spawn_blocking(move || drop(value));
}

/// Runs work for the CPU on the blocking pool; a panic there goes on here.
async fn on_blocking_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    joined(&mut tokio::task::spawn_blocking(work)).await
}

/// What a spawned task gave back; a panic there goes on here.
async fn joined<T>(task: &mut tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(done) => done,
        Err(stopped) => std::panic::resume_unwind(stopped.into_panic()),
    }
}

struct Run<'a> {
    ctx: &'a SyncContext,
    tenant: &'a Tenant,
    run_id: RunId,
    summary: RunSummary,
    progress: &'a Progress,
    lease: &'a dyn RunLease,
    scope: &'a Scope,
    timings: PhaseTimings,
}

impl Run<'_> {
    /// Records one flush through the lease: mirror changes, report lines and progress together.
    async fn flush(
        &mut self,
        mirror: &MirrorChanges,
        entries: &[ReportEntry],
        stage: &str,
        done: usize,
        total: usize,
    ) -> Result<(), StoreError> {
        let progress = self.progress.at(stage, done, total);
        let flush = self.lease.flush(RunFlush {
            mirror,
            entries,
            progress: &progress,
        });
        timed(&mut self.timings.record, flush).await
    }

    async fn execute(
        &mut self,
        options: RunOptions,
        entra: Option<EntraHeadStart>,
    ) -> Result<RunFinish, StoreError> {
        let store = self.ctx.store.as_ref();
        let failed = |summary: &RunSummary, message: String| RunFinish {
            status: RunStatus::Failed,
            summary: summary.clone(),
            message: Some(message),
        };
        let (source, signing_in) = match entra {
            Some(EntraHeadStart { source, signing_in }) => (source, signing_in),
            None => (self.ctx.connector.source(self.tenant).await, None),
        };
        let source = match source {
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
        // Item 12: a dead credential is never a success, even for a run with nothing to do. It is
        // checked beside the read, which only reads (issue 13: a run is two answers shorter); a
        // refused check ends the run, and the read with it, before anything is planned.
        let verifying = async {
            target.verify_access().await.map_err(|err| {
                let reconnect = match target.kind() {
                    "highq" => "reconnect HighQ (dirsync tenant connect-highq)",
                    _ => "reconnect the target (check its token)",
                };
                match err {
                    crate::target::TargetError::Unauthorized(why) => {
                        format!(
                            "{reconnect}: the target refused dirsync's credential ({why}); nothing was changed"
                        )
                    }
                    other => format!(
                        "could not reach the target to check dirsync's access: {other}; nothing was changed"
                    ),
                }
            })
        };
        let approved_deactivations = options
            .approval
            .map(|a| usize::try_from(a.deactivations).unwrap_or(usize::MAX));
        let groups = self.tenant.policy.selected_groups.len();
        self.progress.set("reading Entra", 0, groups).await?;
        let progress = self.progress;
        let reading = async {
            match self.scope {
                Scope::Tenant => read_and_plan(
                    self.ctx,
                    self.tenant,
                    source.as_ref(),
                    signing_in,
                    &target,
                    approved_deactivations,
                    &|| progress.group_read(),
                )
                .await
                .map(|(plan, stats, mirror, repair, timings)| {
                    (plan, stats, mirror, repair, Vec::new(), timings)
                }),
                Scope::People(people) => {
                    let started = std::time::Instant::now();
                    people::read_and_plan_people(
                        store,
                        self.tenant,
                        source.as_ref(),
                        signing_in,
                        target.as_ref(),
                        people,
                    )
                    .await
                    .map(|read| {
                        let timings = PhaseTimings {
                            read: started.elapsed(),
                            ..PhaseTimings::default()
                        };
                        (
                            read.plan,
                            read.stats,
                            read.mirror,
                            drift::Repair::default(),
                            read.steps,
                            timings,
                        )
                    })
                }
            }
        };
        let read = match future::select(pin!(verifying), pin!(reading)).await {
            Either::Left((Err(message), _)) => return Ok(failed(&self.summary, message)),
            Either::Left((Ok(()), reading)) => reading.await,
            Either::Right((read, verifying)) => match verifying.await {
                Err(message) => return Ok(failed(&self.summary, message)),
                Ok(()) => read,
            },
        };
        let (mut plan, stats, mirror, repair, steps, timings) = match read {
            Ok(read) => read,
            Err(ReadFailure::Store(err)) => return Err(err),
            Err(ReadFailure::Unreadable(message)) => return Ok(failed(&self.summary, message)),
        };
        self.summary.source = stats;
        self.timings.read += timings.read;
        self.timings.plan += timings.plan;
        self.timings.planner += timings.planner;
        self.summary.planned = plan.counts();
        // The plan's warnings and errors are in the report whatever is applied.
        self.summary.applied.warnings = self.summary.planned.warnings;
        self.summary.applied.errors = self.summary.planned.errors;
        // The groups' lines are recorded beside the plan's, on a connection of their own
        // (issue 13: a run with nothing to apply waits for one write the less).
        let recording_groups = store.record_groups(self.run_id, &plan.groups);
        let recording_plan = async {
            self.progress
                .set("recording the plan", groups, groups)
                .await?;
            let mut notes: Vec<ReportEntry> = steps;
            notes.extend(plan.notes.iter().map(note_entry));
            self.summary.applied.warnings += repair.entries.len();
            notes.extend(repair.entries);
            // What the target has lost is forgotten together with the plan's lines (item 11).
            self.flush(
                &repair.changes,
                &notes,
                "recording the plan",
                groups,
                groups,
            )
            .await
        };
        let (groups_recorded, plan_recorded) = tokio::join!(recording_groups, recording_plan);
        groups_recorded?;
        plan_recorded?;

        let readable = plan.groups.iter().any(|g| g.status != GroupStatus::Failed);
        if !readable && !plan.groups.is_empty() {
            return Ok(failed(
                &self.summary,
                "no selected group could be read from Entra; nothing was changed".to_owned(),
            ));
        }

        if let (Some(hold), Scope::People(_)) = (plan.hold, self.scope) {
            return Ok(failed(
                &self.summary,
                format!(
                    "the deletion guard (R18) stopped this on-demand run: it would deactivate {} \
                     people, more than the tenant's threshold of {}; nothing was applied (a \
                     force sync can be held and approved instead)",
                    hold.deactivations, hold.threshold
                ),
            ));
        }
        if let Some(hold) = plan.hold {
            // What would have happened, a thousand operations a flush: a held plan of 100,000
            // operations never becomes 100,000 report lines in memory at once.
            for ops in plan.ops.chunks(1000) {
                let planned: Vec<ReportEntry> = ops
                    .iter()
                    .flat_map(|op| op_entries(op, "planned: "))
                    .collect();
                self.flush(&MirrorChanges::default(), &planned, "held", 0, 0)
                    .await?;
            }
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

        timed(
            &mut self.timings.read,
            explain_departures(
                &mut plan,
                source.as_ref(),
                self.ctx.settings.max_presence_lookups,
            ),
        )
        .await;

        let mut applier = Applier::new(
            target,
            &mirror,
            &plan.ops,
            self.ctx.settings.target_concurrency,
            self.ctx.settings.max_unavailable_in_a_row,
        );
        let total = plan.ops.len();
        let mut done = 0;
        self.progress.set("applying changes", done, total).await?;
        let (flush_changes, flush_interval) = (
            self.ctx.settings.flush_every.max(1),
            self.ctx.settings.flush_interval,
        );
        // A chunk is recorded before the next one starts: a run whose lease was lost (found by
        // the flush, or by the heartbeat while the chunk ran) makes no call after that.
        let lease = self.lease;
        let fenced = move || lease.lost().is_some();
        for phase in phases(&plan.ops) {
            let mut rest = phase;
            while !rest.is_empty() {
                // Fenced: a run that lost its lease applies nothing more.
                if let Some(why) = self.lease.lost() {
                    return Err(StoreError::LeaseLost(why));
                }
                let (result, consumed) = timed(
                    &mut self.timings.apply,
                    applier.apply_some(rest, flush_changes, flush_interval, &fenced),
                )
                .await;
                rest = &rest[consumed..];
                done += consumed;
                self.summary.operations_applied += result.applied;
                self.summary.operations_failed += result.failed;
                self.summary.applied.add(&result.applied_counts);
                self.summary.applied.errors += result
                    .entries
                    .iter()
                    .filter(|e| e.severity == Severity::Error)
                    .count();
                self.flush(
                    &result.mirror,
                    &result.entries,
                    "applying changes",
                    done,
                    total,
                )
                .await?;
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
        drop(applier);
        free_beside((plan, mirror));
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
