//! Notifications kept in the database (issue 14, items 3 and 6): each tenant's settings, the
//! durable outbox the delivery worker drains (a restart loses nothing: a notification is a row
//! before anything is sent), once-only marks (a day's digest, a credential's warning at a
//! threshold) and the HighQ refresh token's expiry. One SQL text serves both backends where it
//! can; claiming due notifications differs (PostgreSQL skips rows another replica holds).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::{PgStore, SqliteStore, StoreError};
use crate::domain::{Email, SecretSetting, TenantKey, expose_for_storage};
use crate::notify::settings::{EventKind, TenantNotifications, Webhook};

/// A tenant's settings as stored, with who saved them last and when.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotifications {
    pub settings: TenantNotifications,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// How a notification travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Webhook,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "webhook" => Ok(Self::Webhook),
            "email" => Ok(Self::Email),
            other => Err(StoreError::Corrupt(format!(
                "notification channel {other:?}"
            ))),
        }
    }
}

/// A notification to put in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub channel: Channel,
    pub event: EventKind,
    pub payload: Value,
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Sent,
    /// Given up: refused (4xx), not deliverable, or out of attempts.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "pending" => Ok(Self::Pending),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt(format!(
                "notification status {other:?}"
            ))),
        }
    }
}

/// A notification in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxNotification {
    pub id: i64,
    pub tenant: TenantKey,
    pub channel: Channel,
    pub event: EventKind,
    pub payload: Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Sent,
    /// Try again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Give up.
    Failed {
        error: String,
    },
}

/// Persistence for notifications. Each method is atomic on its own.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    async fn notification_settings(
        &self,
        tenant: &TenantKey,
    ) -> Result<Option<StoredNotifications>, StoreError>;
    /// Replaces the tenant's settings (already validated: no `[redacted]` left in them).
    async fn save_notification_settings(
        &self,
        tenant: &TenantKey,
        settings: &TenantNotifications,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Puts notifications in the outbox, due at once; returns their IDs.
    async fn enqueue_notifications(
        &self,
        tenant: &TenantKey,
        items: &[NewNotification],
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError>;
    /// Takes up to `limit` pending notifications due at `now` for delivery: each is hidden from
    /// other claims until `hold_until` (a worker that dies mid-delivery lets it come back then).
    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxNotification>, StoreError>;
    /// Records how an attempt ended (counting it).
    async fn settle_notification(
        &self,
        id: i64,
        settlement: &Settlement,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The tenant's notifications, newest first.
    async fn notifications(
        &self,
        tenant: &TenantKey,
        limit: i64,
    ) -> Result<Vec<OutboxNotification>, StoreError>;
    /// Claims `mark` (`digest:2026-01-15`, `expiry:graph_app:…:30`) for the tenant: only the first
    /// claim succeeds, so a once-only notification is sent once whichever replica asks.
    async fn claim_notification_mark(
        &self,
        tenant: &TenantKey,
        mark: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The stored target refresh token's age and expiry: when it was saved last, and when
    /// HighQ said it expires (`refresh_token_expires_in`), if it said.
    async fn target_token_dates(
        &self,
        tenant: &TenantKey,
        target_kind: &str,
    ) -> Result<Option<(DateTime<Utc>, Option<DateTime<Utc>>)>, StoreError>;
}

type SettingsRow = (
    Option<String>,
    Option<String>,
    Json<Vec<String>>,
    Json<Vec<String>>,
    i64,
    i16,
    String,
    DateTime<Utc>,
);

const SELECT_SETTINGS: &str = "SELECT s.webhook_url, s.webhook_secret, s.email_to, s.events,
        s.error_threshold, s.daily_digest, s.updated_by, s.updated_at
     FROM notification_settings s JOIN tenants t ON t.id = s.tenant_id WHERE t.key = $1";

const UPSERT_SETTINGS: &str = "INSERT INTO notification_settings (tenant_id, webhook_url,
        webhook_secret, email_to, events, error_threshold, daily_digest, updated_by, updated_at)
     SELECT id, $2, $3, $4, $5, $6, $7, $8, $9 FROM tenants WHERE key = $1
     ON CONFLICT (tenant_id) DO UPDATE SET webhook_url = EXCLUDED.webhook_url,
        webhook_secret = EXCLUDED.webhook_secret, email_to = EXCLUDED.email_to,
        events = EXCLUDED.events, error_threshold = EXCLUDED.error_threshold,
        daily_digest = EXCLUDED.daily_digest, updated_by = EXCLUDED.updated_by,
        updated_at = EXCLUDED.updated_at";

const OUTBOX_COLUMNS: &str = "o.id, t.key, o.channel, o.event, o.payload, o.status, o.attempts,
        o.next_attempt_at, o.last_error, o.created_at, o.finished_at";

type OutboxRow = (
    i64,
    String,
    String,
    String,
    Json<Value>,
    String,
    i32,
    DateTime<Utc>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn settings_from_row(row: SettingsRow) -> Result<StoredNotifications, StoreError> {
    let (url, secret, email_to, events, threshold, digest, updated_by, updated_at) = row;
    let corrupt = |what: String| StoreError::Corrupt(format!("notification settings: {what}"));
    let webhook = match (url, secret) {
        (Some(url), Some(secret)) => Some(Webhook {
            url: url::Url::parse(&url).map_err(|e| corrupt(format!("webhook_url: {e}")))?,
            secret: SecretSetting::from(secret),
        }),
        _ => None,
    };
    let email_to = email_to
        .0
        .iter()
        .map(|e| Email::parse(e).map_err(|err| corrupt(err.to_string())))
        .collect::<Result<_, _>>()?;
    let events = events
        .0
        .iter()
        .map(|e| EventKind::parse(e).ok_or_else(|| corrupt(format!("event {e:?}"))))
        .collect::<Result<_, _>>()?;
    Ok(StoredNotifications {
        settings: TenantNotifications {
            webhook,
            email_to,
            events,
            error_threshold: u64::try_from(threshold).unwrap_or(0),
            daily_digest: digest != 0,
        },
        updated_by,
        updated_at,
    })
}

/// The columns written for `settings`: the webhook key as itself (or its `env:` reference).
#[allow(clippy::type_complexity)]
fn settings_columns(
    settings: &TenantNotifications,
) -> (
    Option<String>,
    Option<String>,
    Json<Vec<String>>,
    Json<Vec<String>>,
    i64,
    i16,
) {
    let secret = settings.webhook.as_ref().map(|w| {
        expose_for_storage(|| match serde_json::to_value(&w.secret) {
            Ok(Value::String(text)) => text,
            _ => String::new(),
        })
    });
    (
        settings.webhook.as_ref().map(|w| w.url.to_string()),
        secret,
        Json(settings.email_to.iter().map(|e| e.to_string()).collect()),
        Json(
            settings
                .events
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
        ),
        i64::try_from(settings.error_threshold).unwrap_or(i64::MAX),
        i16::from(settings.daily_digest),
    )
}

fn outbox_from_row(row: OutboxRow) -> Result<OutboxNotification, StoreError> {
    let (id, key, channel, event, payload, status, attempts, next, error, created, finished) = row;
    Ok(OutboxNotification {
        id,
        tenant: TenantKey::parse(&key).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        channel: Channel::parse(&channel)?,
        event: EventKind::parse(&event)
            .ok_or_else(|| StoreError::Corrupt(format!("notification event {event:?}")))?,
        payload: payload.0,
        status: DeliveryStatus::parse(&status)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: next,
        last_error: error,
        created_at: created,
        finished_at: finished,
    })
}

fn settle_columns(settlement: &Settlement) -> (&'static str, Option<DateTime<Utc>>, Option<&str>) {
    match settlement {
        Settlement::Sent => ("sent", None, None),
        Settlement::Retry { at, error } => ("pending", Some(*at), Some(error.as_str())),
        Settlement::Failed { error } => ("failed", None, Some(error.as_str())),
    }
}

const SETTLE: &str = "UPDATE notification_outbox SET status = $2, attempts = attempts + 1,
        next_attempt_at = COALESCE($3, next_attempt_at), last_error = $4,
        finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $5 END
     WHERE id = $1";

const LIST: &str = "FROM notification_outbox o JOIN tenants t ON t.id = o.tenant_id
     WHERE t.key = $1 ORDER BY o.id DESC LIMIT $2";

const CLAIM_MARK: &str = "INSERT INTO notification_marks (tenant_id, mark, created_at)
     SELECT id, $2, $3 FROM tenants WHERE key = $1 ON CONFLICT DO NOTHING";

const TOKEN_DATES: &str = "SELECT k.updated_at, k.refresh_expires_at FROM target_tokens k
     JOIN tenants t ON t.id = k.tenant_id WHERE t.key = $1 AND k.target_kind = $2";

/// Implements the trait for one backend; `$claim` is its claiming statement.
macro_rules! notify_store {
    ($store:ty, $claim:expr) => {
        #[async_trait]
        impl NotifyStore for $store {
            async fn notification_settings(
                &self,
                tenant: &TenantKey,
            ) -> Result<Option<StoredNotifications>, StoreError> {
                let row: Option<SettingsRow> = sqlx::query_as(SELECT_SETTINGS)
                    .bind(tenant.as_str())
                    .fetch_optional(self.pool())
                    .await?;
                row.map(settings_from_row).transpose()
            }

            async fn save_notification_settings(
                &self,
                tenant: &TenantKey,
                settings: &TenantNotifications,
                by: &str,
                at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let (url, secret, email_to, events, threshold, digest) = settings_columns(settings);
                let saved = sqlx::query(UPSERT_SETTINGS)
                    .bind(tenant.as_str())
                    .bind(url)
                    .bind(secret)
                    .bind(email_to)
                    .bind(events)
                    .bind(threshold)
                    .bind(digest)
                    .bind(by)
                    .bind(at)
                    .execute(self.pool())
                    .await?;
                if saved.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!(
                        "tenant {tenant:?} does not exist",
                        tenant = tenant.as_str()
                    )));
                }
                Ok(())
            }

            async fn enqueue_notifications(
                &self,
                tenant: &TenantKey,
                items: &[NewNotification],
                at: DateTime<Utc>,
            ) -> Result<Vec<i64>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let mut ids = Vec::with_capacity(items.len());
                for item in items {
                    let id: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO notification_outbox (tenant_id, channel, event, payload,
                                next_attempt_at, created_at)
                         SELECT id, $2, $3, $4, $5, $5 FROM tenants WHERE key = $1
                         RETURNING id",
                    )
                    .bind(tenant.as_str())
                    .bind(item.channel.as_str())
                    .bind(item.event.as_str())
                    .bind(Json(&item.payload))
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await?;
                    ids.push(id.ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "tenant {tenant:?} does not exist",
                            tenant = tenant.as_str()
                        ))
                    })?);
                }
                tx.commit().await?;
                Ok(ids)
            }

            async fn claim_notifications(
                &self,
                now: DateTime<Utc>,
                hold_until: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<OutboxNotification>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let ids: Vec<i64> = sqlx::query_scalar($claim)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut claimed = Vec::with_capacity(ids.len());
                for id in ids {
                    sqlx::query(
                        "UPDATE notification_outbox SET next_attempt_at = $2 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(hold_until)
                    .execute(&mut *tx)
                    .await?;
                    let row: OutboxRow = sqlx::query_as(&format!(
                        "SELECT {OUTBOX_COLUMNS} FROM notification_outbox o
                         JOIN tenants t ON t.id = o.tenant_id WHERE o.id = $1"
                    ))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                    claimed.push(outbox_from_row(row)?);
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn settle_notification(
                &self,
                id: i64,
                settlement: &Settlement,
                at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let (status, next, error) = settle_columns(settlement);
                sqlx::query(SETTLE)
                    .bind(id)
                    .bind(status)
                    .bind(next)
                    .bind(error)
                    .bind(at)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn notifications(
                &self,
                tenant: &TenantKey,
                limit: i64,
            ) -> Result<Vec<OutboxNotification>, StoreError> {
                let rows: Vec<OutboxRow> =
                    sqlx::query_as(&format!("SELECT {OUTBOX_COLUMNS} {LIST}"))
                        .bind(tenant.as_str())
                        .bind(limit)
                        .fetch_all(self.pool())
                        .await?;
                rows.into_iter().map(outbox_from_row).collect()
            }

            async fn claim_notification_mark(
                &self,
                tenant: &TenantKey,
                mark: &str,
                at: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let claimed = sqlx::query(CLAIM_MARK)
                    .bind(tenant.as_str())
                    .bind(mark)
                    .bind(at)
                    .execute(self.pool())
                    .await?;
                Ok(claimed.rows_affected() == 1)
            }

            async fn target_token_dates(
                &self,
                tenant: &TenantKey,
                target_kind: &str,
            ) -> Result<Option<(DateTime<Utc>, Option<DateTime<Utc>>)>, StoreError> {
                Ok(sqlx::query_as(TOKEN_DATES)
                    .bind(tenant.as_str())
                    .bind(target_kind)
                    .fetch_optional(self.pool())
                    .await?)
            }
        }
    };
}

notify_store!(
    PgStore,
    "SELECT id FROM notification_outbox WHERE status = 'pending' AND next_attempt_at <= $1
     ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
);

// One SQLite file serves one replica; the claim's transaction is enough.
notify_store!(
    SqliteStore,
    "SELECT id FROM notification_outbox WHERE status = 'pending' AND next_attempt_at <= $1
     ORDER BY next_attempt_at, id LIMIT $2"
);
