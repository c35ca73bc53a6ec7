//! The scheduler loop: fires each tenant's automatic run at its midnight (R20) and purges old
//! reports (R19). It only *triggers* runs; claims in the database make every midnight run once
//! however many replicas tick at the same time.
//!
//! A plain loop rather than `tokio-cron-scheduler`: a cron expression cannot say "the first
//! instant of the local day" where DST removes 00:00, jobs would have to be rebuilt whenever a
//! tenant is added or changes zone, and catching up a midnight missed while down needs the
//! last fired midnight from the database anyway. The loop asks, per tenant, "is a midnight due
//! that nobody has claimed?" — pure arithmetic (`due_midnight`) plus one insert.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use tokio::sync::{broadcast, watch};
use tracing::{error, info, warn};

use super::{
    MidnightDecision, decide_midnight, due_midnight, next_midnight, on_quarantined, quarantine_of,
};
use crate::domain::TenantKey;
use crate::store::{AccessStore, Pause, RunOptions, RunStatus, StoreError, Trigger};
use crate::sync::{Finished, Runner};
use crate::tenant::Tenant;

/// Where the scheduler gets the time: the system clock, or a test's.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerSettings {
    pub enabled: bool,
    /// The longest the loop sleeps: tenants added or changed are picked up at least this often.
    pub poll_interval: Duration,
    /// How often old reports are purged.
    pub purge_interval: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_secs(30),
            purge_interval: Duration::from_secs(3600),
        }
    }
}

/// What one tick did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Tenants whose automatic run this replica started.
    pub started: Vec<TenantKey>,
    /// Tenants whose due midnight this replica recorded as skipped (paused or quarantined).
    pub skipped: Vec<TenantKey>,
    /// Tenants whose new quarantine this replica announced (`on_quarantined`).
    pub quarantined: Vec<TenantKey>,
    /// The soonest next midnight over all tenants.
    pub next_due: Option<DateTime<Utc>>,
}

pub struct Scheduler {
    runner: Runner,
    clock: Arc<dyn Clock>,
    settings: SchedulerSettings,
    ticks: watch::Sender<u64>,
    /// Audit events and sessions to purge beside the reports, with sessions' idle time.
    access: Option<(Arc<dyn AccessStore>, chrono::Duration)>,
    /// Runs this replica's runner finished since the last tick: a failed one may have just
    /// quarantined its tenant.
    finished: Mutex<broadcast::Receiver<Finished>>,
}

impl Scheduler {
    pub fn new(runner: Runner, clock: Arc<dyn Clock>, settings: SchedulerSettings) -> Self {
        let finished = Mutex::new(runner.subscribe());
        Self {
            runner,
            clock,
            settings,
            ticks: watch::channel(0).0,
            access: None,
            finished,
        }
    }

    /// Also purges audit events past their retention and expired sessions.
    pub fn with_access(
        mut self,
        access: Arc<dyn AccessStore>,
        session_idle: chrono::Duration,
    ) -> Self {
        self.access = Some((access, session_idle));
        self
    }

    /// Counts completed ticks, so a test can wait for "at least one more pass".
    pub fn ticks(&self) -> watch::Receiver<u64> {
        self.ticks.subscribe()
    }

    /// One pass over every tenant: announce the quarantines that runs finished here have just
    /// begun, then, for each tenant whose midnight is due and that this replica claims first,
    /// start its automatic run — or record the midnight as skipped, with why, when the tenant or
    /// the service is paused or the tenant is quarantined until a later midnight (issue 14). The
    /// claim makes each midnight run or be skipped once across replicas.
    pub async fn tick(&self) -> Result<Tick, StoreError> {
        let store = self.runner.context().store.clone();
        let now = self.clock.now();
        let mut tick = Tick::default();
        let failed = self.failed_runs_finished_here();
        let service_pause = store.service_pause().await?;
        for tenant in store.tenants().await? {
            if failed.contains(&tenant.key) && self.announce(&tenant, now).await? {
                tick.quarantined.push(tenant.key.clone());
            }
            let zone = tenant.time_zone;
            let baseline = store.schedule_baseline(&tenant.key).await?;
            if let Some(midnight) = due_midnight(zone, Some(baseline), now)
                && store.claim_midnight(&tenant.key, midnight).await?
            {
                match self
                    .decide(&tenant, midnight, service_pause.as_ref(), now)
                    .await
                {
                    Ok(MidnightDecision::Skip(message)) => {
                        match store
                            .record_skipped_run(&tenant.key, midnight, now, &message)
                            .await
                        {
                            Ok(run_id) => {
                                info!(tenant = %tenant.key, run_id, %midnight, %message, "midnight skipped");
                                tick.skipped.push(tenant.key.clone());
                            }
                            Err(err) => {
                                store.release_midnight(&tenant.key, midnight).await?;
                                return Err(err);
                            }
                        }
                    }
                    Ok(MidnightDecision::Run) => self.start(&tenant, midnight, &mut tick).await?,
                    Err(err) => {
                        store.release_midnight(&tenant.key, midnight).await?;
                        return Err(err);
                    }
                }
            }
            let next = next_midnight(zone, now);
            tick.next_due = Some(tick.next_due.map_or(next, |soonest| soonest.min(next)));
        }
        self.ticks.send_modify(|n| *n += 1);
        Ok(tick)
    }

    async fn start(
        &self,
        tenant: &Tenant,
        midnight: DateTime<Utc>,
        tick: &mut Tick,
    ) -> Result<(), StoreError> {
        let store = &self.runner.context().store;
        match self
            .runner
            .launch(&tenant.key, Trigger::automatic(), RunOptions::default())
            .await
        {
            Ok(launched) if !launched.already_running => {
                info!(tenant = %tenant.key, run_id = launched.run_id, %midnight, "automatic run started");
                tick.started.push(tenant.key.clone());
            }
            Ok(launched) => {
                // A forced run is in progress: give the midnight back and try again later.
                info!(tenant = %tenant.key, run_id = launched.run_id, "automatic run waits for the run in progress");
                store.release_midnight(&tenant.key, midnight).await?;
            }
            Err(err) => {
                // Paused since the decision, say: the next tick records the midnight as skipped.
                warn!(tenant = %tenant.key, %err, "automatic run could not start");
                store.release_midnight(&tenant.key, midnight).await?;
            }
        }
        Ok(())
    }

    /// Issue 14: run the claimed midnight, or skip it and say why. A quarantine not announced
    /// yet (its run finished on a replica that stopped) is announced here at the latest.
    async fn decide(
        &self,
        tenant: &Tenant,
        midnight: DateTime<Utc>,
        service_pause: Option<&Pause>,
        now: DateTime<Utc>,
    ) -> Result<MidnightDecision, StoreError> {
        let store = self.runner.context().store.as_ref();
        let policy = &self.runner.context().settings.quarantine;
        let pause = store.tenant_pause(&tenant.key).await?;
        let quarantine = quarantine_of(store, policy, tenant).await?;
        if quarantine.is_some() {
            self.announce(tenant, now).await?;
        }
        Ok(decide_midnight(
            tenant.time_zone,
            midnight,
            service_pause,
            pause.as_ref(),
            quarantine.as_ref(),
        ))
    }

    /// Announces the tenant's quarantine if it has one that nobody announced yet.
    async fn announce(&self, tenant: &Tenant, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let store = self.runner.context().store.as_ref();
        let policy = &self.runner.context().settings.quarantine;
        let Some(quarantine) = quarantine_of(store, policy, tenant).await? else {
            return Ok(false);
        };
        if !store
            .announce_quarantine(&tenant.key, quarantine.started_by_run)
            .await?
        {
            return Ok(false);
        }
        let access = self.access.as_ref().map(|(access, _)| access.as_ref());
        on_quarantined(store, access, tenant, &quarantine, now).await;
        Ok(true)
    }

    /// The tenants whose runs this replica finished as failed since the last tick.
    fn failed_runs_finished_here(&self) -> Vec<TenantKey> {
        let mut finished = self.finished.lock().expect("scheduler lock");
        let mut failed = Vec::new();
        loop {
            match finished.try_recv() {
                Ok(Finished {
                    tenant,
                    outcome: Ok(outcome),
                }) if outcome.status == RunStatus::Failed => failed.push(tenant),
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        failed
    }

    /// R19: deletes each tenant's runs older than its retention; and audit events past theirs
    /// (the tenant's retention, a year for service-wide events) and ended sessions.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let store = self.runner.context().store.clone();
        let now = self.clock.now();
        let mut purged = 0;
        for tenant in store.tenants().await? {
            let months = Months::new(tenant.report_retention.months().into());
            if let Some(cutoff) = now.checked_sub_months(months) {
                purged += store.purge_runs_before(&tenant.key, cutoff).await?;
            }
        }
        if let Some((access, idle)) = &self.access {
            let events = access.purge_audit(now).await?;
            let sessions = access.purge_expired_sessions(now, *idle).await?;
            if events + sessions > 0 {
                info!(
                    events,
                    sessions, "purged audit events past their retention and ended sessions"
                );
            }
        }
        Ok(purged)
    }

    /// Ticks until `shutdown` resolves: at each tenant's midnight, and at least every poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        if !self.settings.enabled {
            shutdown.await;
            return;
        }
        tokio::pin!(shutdown);
        let mut last_purge: Option<tokio::time::Instant> = None;
        loop {
            let wait = match self.tick().await {
                Ok(tick) => tick
                    .next_due
                    .and_then(|due| (due - self.clock.now()).to_std().ok())
                    .map_or(self.settings.poll_interval, |until| {
                        until.min(self.settings.poll_interval)
                    }),
                Err(err) => {
                    error!(%err, "scheduler pass failed; retrying");
                    self.settings.poll_interval
                }
            };
            if last_purge.is_none_or(|at| at.elapsed() >= self.settings.purge_interval) {
                match self.purge().await {
                    Ok(0) => {}
                    Ok(n) => info!(runs = n, "purged reports past their retention"),
                    Err(err) => error!(%err, "report purge failed"),
                }
                last_purge = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            }
        }
    }
}
