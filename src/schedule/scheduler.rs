//! The scheduler loop: fires each tenant's automatic run at its midnight (R20) and purges old
//! reports (R19). It only *triggers* runs; claims in the database make every midnight run once
//! however many replicas tick at the same time.
//!
//! A plain loop rather than `tokio-cron-scheduler`: a cron expression cannot say "the first
//! instant of the local day" where DST removes 00:00, jobs would have to be rebuilt whenever a
//! tenant is added or changes zone, and catching up a midnight missed while down needs the
//! last fired midnight from the database anyway. The loop asks, per tenant, "is a midnight due
//! that nobody has claimed?" — pure arithmetic (`due_midnight`) plus one insert.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{due_midnight, next_midnight};
use crate::domain::TenantKey;
use crate::store::{AccessStore, RunOptions, StoreError, Trigger};
use crate::sync::Runner;

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
}

impl Scheduler {
    pub fn new(runner: Runner, clock: Arc<dyn Clock>, settings: SchedulerSettings) -> Self {
        Self {
            runner,
            clock,
            settings,
            ticks: watch::channel(0).0,
            access: None,
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

    /// One pass over every tenant: start the automatic run of each tenant whose midnight is due
    /// and that this replica claims first.
    pub async fn tick(&self) -> Result<Tick, StoreError> {
        let store = self.runner.context().store.clone();
        let now = self.clock.now();
        let mut tick = Tick::default();
        for tenant in store.tenants().await? {
            let zone = tenant.time_zone;
            let baseline = store.schedule_baseline(&tenant.key).await?;
            if let Some(midnight) = due_midnight(zone, Some(baseline), now)
                && store.claim_midnight(&tenant.key, midnight).await?
            {
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
                        warn!(tenant = %tenant.key, %err, "automatic run could not start");
                        store.release_midnight(&tenant.key, midnight).await?;
                    }
                }
            }
            let next = next_midnight(zone, now);
            tick.next_due = Some(tick.next_due.map_or(next, |soonest| soonest.min(next)));
        }
        self.ticks.send_modify(|n| *n += 1);
        Ok(tick)
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
