//! Notifications (issue 14, items 3 and 6): telling a tenant's admins, by signed webhook and by
//! email, when a run is held for approval, fails, completes with errors above a threshold, when a
//! credential is about to expire or the tenant is quarantined, and once a day what ran.
//!
//! [`Notifier::send`] is the one way in: it puts the event in the durable outbox (one row per
//! channel the tenant configured, only for events it chose), so a restart loses nothing. The
//! delivery worker ([`Notifier::run`]) drains the outbox: webhooks are retried with exponential
//! backoff and jitter on 5xx and timeouts, never on 4xx, up to `notify.max_attempts`; every
//! notification sent or finally given up is in the audit log. The same loop listens to finished
//! runs (`Runner::subscribe`), sends the daily digest and the credential expiry warnings.

pub mod email;
pub mod event;
pub mod expiry;
pub mod settings;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::broadcast;
use tracing::{error, warn};

pub use event::{DigestRun, Event, Payload, event_for_run};
pub use settings::{EventKind, NotifySettings, TenantNotifications, Webhook};

use crate::audit::{Action, Actor};
use crate::auth::caller::ClientInfo;
use crate::domain::{SecretEnvPolicy, TenantKey};
use crate::schedule::Clock;
use crate::store::access::AuditOutcome;
use crate::store::notify::{Channel, NewNotification, OutboxNotification, Settlement};
use crate::store::{AccessStore, RunFilter, Store, StoreError};
use crate::sync::{Connector, Finished};
use webhook::Attempt;

/// Enqueues notifications and delivers them.
#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn Store>,
    access: Arc<dyn AccessStore>,
    settings: NotifySettings,
    secrets: SecretEnvPolicy,
    clock: Arc<dyn Clock>,
    wake: Arc<tokio::sync::Notify>,
    /// Reads the app credential's expiry from Graph (item 6); without it, only configured ones.
    connector: Option<Arc<dyn Connector>>,
}

/// The name the audit log gives the worker.
pub const AUDIT_ACTOR: &str = "dirsync notifications";

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        access: Arc<dyn AccessStore>,
        settings: NotifySettings,
        secrets: SecretEnvPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            access,
            settings,
            secrets,
            clock,
            wake: Arc::default(),
            connector: None,
        }
    }

    /// Also asks Graph when the tenants' app credentials expire.
    pub fn with_connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = Some(connector);
        self
    }

    pub fn settings(&self) -> &NotifySettings {
        &self.settings
    }

    /// Notifies the tenant's admins of `event`, on every channel they configured, if they chose
    /// this kind of event (a test is always sent). Returns the outbox IDs (none: nobody asked).
    pub async fn send(&self, tenant: &TenantKey, event: Event) -> Result<Vec<i64>, StoreError> {
        let ids = send_to_tenant(self.store.as_ref(), tenant, &event, self.clock.now()).await?;
        if !ids.is_empty() {
            self.wake.notify_one();
        }
        Ok(ids)
    }

    /// Enqueues what a finished run calls for.
    pub async fn run_finished(&self, finished: &Finished) -> Result<Vec<i64>, StoreError> {
        let Ok(outcome) = &finished.outcome else {
            return Ok(Vec::new());
        };
        let Some(stored) = self.store.notification_settings(&finished.tenant).await? else {
            return Ok(Vec::new());
        };
        match event_for_run(outcome, &stored.settings) {
            Some(event) => self.send(&finished.tenant, event).await,
            None => Ok(Vec::new()),
        }
    }

    /// One delivery pass: every notification due now, attempted once. Returns how many were
    /// attempted.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        // Long enough for one attempt of each claimed notification.
        let hold = chrono::Duration::seconds(self.settings.webhook_timeout_secs as i64 * 4 + 60);
        let due = self.store.claim_notifications(now, now + hold, 50).await?;
        let count = due.len();
        for notification in due {
            let attempt = self.attempt(&notification).await;
            self.settle(&notification, attempt).await?;
        }
        Ok(count)
    }

    async fn attempt(&self, notification: &OutboxNotification) -> Attempt {
        let payload: Payload = match serde_json::from_value(notification.payload.clone()) {
            Ok(payload) => payload,
            Err(err) => return Attempt::Permanent(format!("unreadable payload: {err}")),
        };
        let settings = match self.store.notification_settings(&notification.tenant).await {
            Ok(Some(stored)) => stored.settings,
            Ok(None) => {
                return Attempt::Permanent("the tenant has no notification settings".into());
            }
            Err(err) => return Attempt::Transient(err.to_string()),
        };
        let timeout = Duration::from_secs(self.settings.webhook_timeout_secs);
        match notification.channel {
            Channel::Webhook => {
                let Some(webhook) = settings.webhook else {
                    return Attempt::Permanent("the webhook was removed".to_owned());
                };
                let key = match webhook.secret.resolve("webhook.secret", &self.secrets) {
                    Ok(key) => key,
                    Err(err) => return Attempt::Permanent(err),
                };
                let body = serde_json::to_vec(&notification.payload).unwrap_or_default();
                let id = payload.id.to_string();
                let delivery = webhook::Delivery {
                    url: &webhook.url,
                    key: &key,
                    body: &body,
                    event: notification.event.as_str(),
                    id: &id,
                    timestamp: self.clock.now().timestamp(),
                };
                webhook::deliver(delivery, self.settings.address_policy(), timeout).await
            }
            Channel::Email => {
                let Some(smtp) = &self.settings.smtp else {
                    return Attempt::Permanent(
                        "no mail relay is configured (notify.smtp)".to_owned(),
                    );
                };
                if settings.email_to.is_empty() {
                    return Attempt::Permanent("no email recipients are left".to_owned());
                }
                match email::message(&smtp.from, &settings.email_to, &payload) {
                    Ok(message) => email::send(smtp, message, timeout).await,
                    Err(err) => Attempt::Permanent(err),
                }
            }
        }
    }

    async fn settle(
        &self,
        notification: &OutboxNotification,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let attempts = notification.attempts + 1;
        let settlement = match attempt {
            Attempt::Delivered => Settlement::Sent,
            Attempt::Transient(error) if attempts < self.settings.max_attempts => {
                let delay = backoff(
                    attempts,
                    Duration::from_millis(self.settings.retry_base_ms),
                    Duration::from_secs(self.settings.retry_max_secs),
                    rand::random::<f64>(),
                );
                Settlement::Retry {
                    at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                    error,
                }
            }
            Attempt::Transient(error) => Settlement::Failed {
                error: format!("gave up after {attempts} attempts: {error}"),
            },
            Attempt::Permanent(error) => Settlement::Failed { error },
        };
        self.store
            .settle_notification(notification.id, &settlement, now)
            .await?;
        if let Settlement::Retry { error, .. } = &settlement {
            warn!(tenant = %notification.tenant, id = notification.id, attempts, %error, "notification will be retried");
            return Ok(());
        }
        let (outcome, error) = match &settlement {
            Settlement::Failed { error } => (AuditOutcome::Refused, Some(error.clone())),
            _ => (AuditOutcome::Ok, None),
        };
        if let Some(error) = &error {
            error!(tenant = %notification.tenant, id = notification.id, %error, "notification failed");
        }
        crate::audit::record(
            self.access.as_ref(),
            now,
            &Actor::anonymous(
                Some(AUDIT_ACTOR),
                Some("system:notify".to_owned()),
                ClientInfo::default(),
            ),
            Action::Notification,
            Some(&notification.tenant),
            outcome,
            json!({
                "notification": notification.id,
                "channel": notification.channel.as_str(),
                "event": notification.event.as_str(),
                "status": if error.is_some() { "failed" } else { "sent" },
                "attempts": attempts,
                "error": error,
            }),
        )
        .await;
        Ok(())
    }

    /// The daily digest and the credential warnings due now, for every tenant.
    pub async fn tick(&self) -> Result<(), StoreError> {
        self.tick_with(true).await
    }

    /// The digests due now and, when `expiries`, the credential warnings (which may ask Graph,
    /// so the worker does it hourly, not every minute).
    async fn tick_with(&self, expiries: bool) -> Result<(), StoreError> {
        for tenant in self.store.tenants().await? {
            let Some(stored) = self.store.notification_settings(&tenant.key).await? else {
                continue;
            };
            if stored.settings.daily_digest {
                self.digest(&tenant, &stored.settings).await?;
            }
            if expiries && stored.settings.wants(EventKind::CredentialExpiring) {
                let (found, _) = expiry::credential_expiries(
                    self.store.as_ref(),
                    self.connector.as_deref(),
                    &tenant,
                )
                .await?;
                self.expiry_warnings(&tenant.key, &found).await?;
            }
        }
        Ok(())
    }

    /// Sends a warning for each credential expiring within [`expiry::WARNING_DAYS`], once
    /// per credential and threshold (30, 14, 7, 1 days, expired).
    pub async fn expiry_warnings(
        &self,
        tenant: &TenantKey,
        expiries: &[expiry::CredentialExpiry],
    ) -> Result<Vec<i64>, StoreError> {
        let now = self.clock.now();
        let mut ids = Vec::new();
        for found in expiries {
            let Some(warning) = found.warning(now, expiry::WARNING_DAYS) else {
                continue;
            };
            if self
                .store
                .claim_notification_mark(tenant, &warning.mark(), now)
                .await?
            {
                ids.extend(
                    self.send(
                        tenant,
                        Event::CredentialExpiring {
                            credential: found.credential.to_owned(),
                            expires_at: found.expires_at,
                            days_left: warning.days_left,
                        },
                    )
                    .await?,
                );
            }
        }
        Ok(ids)
    }

    async fn digest(
        &self,
        tenant: &crate::tenant::Tenant,
        settings: &TenantNotifications,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let local = now.with_timezone(&tenant.time_zone);
        if local.time().hour() < self.settings.digest_hour {
            return Ok(());
        }
        let day = local.date_naive() - chrono::Days::new(1);
        let Some((from, to)) = day_bounds(day, tenant.time_zone) else {
            return Ok(());
        };
        if !settings.has_channel() {
            return Ok(());
        }
        if !self
            .store
            .claim_notification_mark(&tenant.key, &format!("digest:{day}"), now)
            .await?
        {
            return Ok(());
        }
        let filter = RunFilter {
            from: Some(from),
            to: Some(to),
            limit: 500,
            ..RunFilter::default()
        };
        let mut runs: Vec<DigestRun> = self
            .store
            .find_runs(&tenant.key, &filter)
            .await?
            .into_iter()
            .map(|run| {
                let counts = run
                    .summary
                    .as_ref()
                    .map(|s| s.applied.clone())
                    .unwrap_or_default();
                DigestRun {
                    run_id: run.id,
                    trigger: run.trigger.kind.as_str().to_owned(),
                    status: run.status.as_str().to_owned(),
                    started_at: run.started_at,
                    errors: counts.errors,
                    warnings: counts.warnings,
                }
            })
            .collect();
        runs.sort_by_key(|r| r.started_at);
        self.send(&tenant.key, Event::DailyDigest { day, runs })
            .await?;
        Ok(())
    }

    /// Delivers until `stop` resolves: wakes on every enqueue, every finished run and every
    /// `notify.poll_interval_ms`; looks for digests due once a minute, expiring credentials hourly.
    pub async fn run(
        self,
        mut runs: broadcast::Receiver<Finished>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut last_tick: Option<tokio::time::Instant> = None;
        let mut last_expiry_check: Option<tokio::time::Instant> = None;
        loop {
            if last_tick.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_tick = Some(tokio::time::Instant::now());
                let expiries =
                    last_expiry_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600));
                if expiries {
                    last_expiry_check = last_tick;
                }
                if let Err(err) = self.tick_with(expiries).await {
                    error!(%err, "could not look for digests and expiring credentials");
                }
            }
            match self.deliver_due().await {
                Ok(50..) => continue,
                Ok(_) => {}
                Err(err) => error!(%err, "could not deliver notifications"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                finished = runs.recv() => match finished {
                    Ok(finished) => {
                        if let Err(err) = self.run_finished(&finished).await {
                            error!(%err, tenant = %finished.tenant, "could not enqueue the run's notification");
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "notifications missed finished runs (too many at once)");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        runs = broadcast::channel(1).1;
                    }
                },
            }
        }
    }
}

use chrono::Timelike as _;

/// Puts `event` in the outbox for each channel `settings` configure, if they want this kind of
/// event; the worker delivers it. Returns the outbox IDs.
/// Queues `event` for the tenant's admins, on every channel they configured, if they chose this
/// kind of event: what [`Notifier::send`] does, for code that has the store but no notifier (the
/// scheduler announcing a quarantine). The worker delivers it on its next look at the outbox.
pub async fn send_to_tenant(
    store: &dyn Store,
    tenant: &TenantKey,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let Some(stored) = store.notification_settings(tenant).await? else {
        return Ok(Vec::new());
    };
    enqueue(store, tenant, &stored.settings, event, now).await
}

pub async fn enqueue(
    store: &dyn Store,
    tenant: &TenantKey,
    settings: &TenantNotifications,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    if !settings.wants(event.kind()) {
        return Ok(Vec::new());
    }
    let mut channels = Vec::new();
    if settings.webhook.is_some() {
        channels.push(Channel::Webhook);
    }
    if !settings.email_to.is_empty() {
        channels.push(Channel::Email);
    }
    let items: Vec<NewNotification> = channels
        .into_iter()
        .map(|channel| NewNotification {
            channel,
            event: event.kind(),
            payload: serde_json::to_value(event.payload(uuid::Uuid::new_v4(), tenant, now))
                .unwrap_or_default(),
        })
        .collect();
    if items.is_empty() {
        return Ok(Vec::new());
    }
    store.enqueue_notifications(tenant, &items, now).await
}

/// The UTC instants a day in `zone` starts and ends (a DST gap at midnight starts it at the first
/// instant after).
fn day_bounds(
    day: chrono::NaiveDate,
    zone: chrono_tz::Tz,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = |d| crate::schedule::start_of_day(zone, d);
    Some((start(day), start(day.succ_opt()?)))
}

/// How long the `attempts`-th retry waits: `base · 2^(attempts-1)`, at most `max`, scaled by a
/// jitter in [0.5, 1) (`jitter` in [0, 1)), so receivers coming back are not hit all at once.
pub fn backoff(attempts: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exponent).min(max);
    full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(2, base, max, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(3, base, max, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(20, base, max, 1.0), max);
        assert_eq!(backoff(200, base, max, 0.0), max / 2);
    }
}
