//! A tenant's notification settings (issue 14 item 3), a test notification, and its credentials'
//! expiry (item 6). Readers see the settings (the webhook key redacted) and what was sent; tenant
//! admins change them and send a test. Only an operator may set or change the webhook: it makes
//! dirsync post to a host of the caller's choosing, and a tenant admin must not be able to aim it
//! at internal hosts (deliveries to loopback and private addresses are refused as well, unless
//! `notify.webhook_allow_private`).

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::{AppState, Guard, Route};
use crate::audit::Action;
use crate::auth::caller::Caller;
use crate::auth::extract::{Operate, Read, TenantAccess};
use crate::domain::{AccessRole, TenantKey};
use crate::notify::expiry::{self, CredentialExpiry, ExpiryWarning};
use crate::notify::{Event, TenantNotifications};
use crate::store::notify::OutboxNotification;
use crate::tenant::Tenant;

/// The most recent notifications a view lists.
const RECENT: i64 = 20;

pub(super) fn routes() -> Vec<Route> {
    let read = Guard::Tenant(AccessRole::Viewer);
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/notifications",
            read,
            show,
        ),
        Route::api(
            Method::PUT,
            "/api/v1/tenants/{tenant}/notifications",
            operate,
            replace,
        ),
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/notifications/test",
            operate,
            test,
        ),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/credentials",
            read,
            credentials,
        ),
    ]
}

/// A tenant's notification settings and its latest notifications.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationsView {
    /// `webhook` (`url`, `secret` shown as `[redacted]`), `email_to`, `events`,
    /// `error_threshold`, `daily_digest`.
    #[schema(value_type = Object)]
    pub settings: TenantNotifications,
    pub updated_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The latest notifications, newest first.
    pub recent: Vec<SentView>,
}

/// One notification and how its delivery went.
#[derive(Serialize, ToSchema)]
pub(crate) struct SentView {
    pub id: i64,
    /// `webhook` or `email`.
    pub channel: &'static str,
    pub event: &'static str,
    /// `pending`, `sent` or `failed`.
    pub status: &'static str,
    pub attempts: u32,
    pub summary: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<OutboxNotification> for SentView {
    fn from(n: OutboxNotification) -> Self {
        Self {
            id: n.id,
            channel: n.channel.as_str(),
            event: n.event.as_str(),
            status: n.status.as_str(),
            attempts: n.attempts,
            summary: n
                .payload
                .get("summary")
                .and_then(Value::as_str)
                .map(str::to_owned),
            last_error: n.last_error,
            created_at: n.created_at,
            finished_at: n.finished_at,
        }
    }
}

/// The settings and recent notifications of `tenant`.
pub(crate) async fn load_view(
    state: &AppState,
    tenant: &TenantKey,
) -> ApiResult<NotificationsView> {
    let stored = state.store().notification_settings(tenant).await?;
    let recent = state
        .store()
        .notifications(tenant, RECENT)
        .await?
        .into_iter()
        .map(SentView::from)
        .collect();
    Ok(match stored {
        Some(stored) => NotificationsView {
            settings: stored.settings,
            updated_by: Some(stored.updated_by),
            updated_at: Some(stored.updated_at),
            recent,
        },
        None => NotificationsView {
            settings: TenantNotifications::default(),
            updated_by: None,
            updated_at: None,
            recent,
        },
    })
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/notifications", operation_id = "tenant_notifications", tag = "notifications",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 200, body = NotificationsView), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn show(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
) -> ApiResult<Json<NotificationsView>> {
    Ok(Json(load_view(&state, &access.tenant.key).await?))
}

/// Checks and saves `wanted` as the tenant's settings in `caller`'s name, and audits it: the
/// API's `PUT`, the console's form and the CLI save through here.
pub(crate) async fn save(
    state: &AppState,
    caller: &Caller,
    role: AccessRole,
    tenant: &Tenant,
    wanted: TenantNotifications,
) -> ApiResult<TenantNotifications> {
    let stored = state
        .store()
        .notification_settings(&tenant.key)
        .await?
        .map(|s| s.settings);
    let settings = wanted
        .validated(stored.as_ref(), &state.secrets)
        .map_err(|problems| ApiError::BadRequest(problems.join("; ")))?;
    let old_webhook = stored.as_ref().and_then(|s| s.webhook.as_ref());
    let webhook_changed = match (&settings.webhook, old_webhook) {
        (None, _) => false,
        (Some(new), Some(old)) => new != old,
        (Some(_), None) => true,
    };
    if webhook_changed && role != AccessRole::Operator {
        return Err(ApiError::Forbidden(
            "only an operator may set or change the webhook: it makes dirsync post to a host of \
             the caller's choosing (tenant admins may remove it, and change everything else)"
                .to_owned(),
        ));
    }
    state
        .store()
        .save_notification_settings(&tenant.key, &settings, &caller.name, state.auth.now())
        .await?;
    state
        .audit(
            caller,
            Action::NotificationSettings,
            Some(&tenant.key),
            json!({
                "webhook_host": settings.webhook.as_ref().and_then(|w| w.url.host_str().map(str::to_owned)),
                "webhook_changed": webhook_changed,
                "email_recipients": settings.email_to.len(),
                "events": settings.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "error_threshold": settings.error_threshold,
                "daily_digest": settings.daily_digest,
            }),
        )
        .await;
    Ok(settings)
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/notifications", operation_id = "set_tenant_notifications", tag = "notifications",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    request_body(content = Object, description = "`webhook` (`url`, `secret`; `\"[redacted]\"` keeps the stored key while the URL is unchanged; operators only), `email_to`, `events` (`run_held`, `run_failed`, `run_errors`, `credential_expiring`, `quarantined`), `error_threshold`, `daily_digest`"),
    responses((status = 200, body = NotificationsView), (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = super::openapi::ErrorBody), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn replace(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    ApiJson(wanted): ApiJson<TenantNotifications>,
) -> ApiResult<Json<NotificationsView>> {
    save(&state, &access.caller, access.role, &access.tenant, wanted).await?;
    Ok(Json(load_view(&state, &access.tenant.key).await?))
}

/// What asking for a test notification did.
#[derive(Serialize, ToSchema)]
pub(crate) struct TestSent {
    /// The notifications queued (one per channel configured); the worker delivers them.
    pub queued: Vec<i64>,
}

/// Queues a test notification on every channel the tenant configured.
pub(crate) async fn queue_test(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantKey,
) -> ApiResult<Vec<i64>> {
    let Some(stored) = state.store().notification_settings(tenant).await? else {
        return Err(ApiError::Conflict(
            "the tenant has no notification settings yet: add a webhook or an email recipient"
                .to_owned(),
        ));
    };
    if !stored.settings.has_channel() {
        return Err(ApiError::Conflict(
            "the tenant has neither a webhook nor an email recipient to send a test to".to_owned(),
        ));
    }
    let event = Event::Test {
        requested_by: caller.name.clone(),
    };
    Ok(crate::notify::enqueue(
        state.store().as_ref(),
        tenant,
        &stored.settings,
        &event,
        state.auth.now(),
    )
    .await?)
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/notifications/test", operation_id = "test_tenant_notifications", tag = "notifications",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 202, description = "Queued; the delivery worker sends it", body = TestSent), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 409, description = "Nothing to send to: no webhook and no email recipient", body = super::openapi::ErrorBody)))]
pub(super) async fn test(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
) -> ApiResult<(StatusCode, Json<TestSent>)> {
    let queued = queue_test(&state, &access.caller, &access.tenant.key).await?;
    Ok((StatusCode::ACCEPTED, Json(TestSent { queued })))
}

/// When the tenant's credentials expire, and the warnings due.
#[derive(Serialize, ToSchema)]
pub(crate) struct CredentialsView {
    /// Each credential: `credential` (`graph_app`, `highq_refresh_token`), `expires_at`, `source`
    /// (`graph`, `configured`, `token_response`).
    #[schema(value_type = Vec<Object>)]
    pub expiries: Vec<CredentialExpiry>,
    /// Credentials expiring within 30 days (or expired), with a sentence each.
    #[schema(value_type = Vec<Object>)]
    pub warnings: Vec<ExpiryWarning>,
    /// Why Graph could not tell the app credential's expiry, when it could not.
    pub graph_note: Option<String>,
}

/// The tenant's credential expiries and warnings as of now.
pub(crate) async fn credential_view(
    state: &AppState,
    tenant: &Tenant,
) -> ApiResult<CredentialsView> {
    let connector = state.runner.context().connector.clone();
    let (expiries, graph_note) =
        expiry::credential_expiries(state.store().as_ref(), Some(connector.as_ref()), tenant)
            .await?;
    let warnings = expiry::warnings(&expiries, state.auth.now(), expiry::WARNING_DAYS);
    Ok(CredentialsView {
        expiries,
        warnings,
        graph_note,
    })
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/credentials", operation_id = "tenant_credentials", tag = "notifications",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 200, body = CredentialsView), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn credentials(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
) -> ApiResult<Json<CredentialsView>> {
    Ok(Json(credential_view(&state, &access.tenant).await?))
}
