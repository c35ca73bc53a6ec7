//! The tenant's Notifications page (issue 14 items 3 and 6): what is sent where, the latest
//! notifications and how their delivery went, a Send test button, and the credentials' expiry
//! with a warning from 30 days before. Readers see it; tenant admins change recipients, events,
//! threshold and digest; only operators set the webhook (see `http::notifications`).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::tenant::TenantSummary;
use super::{PageResult, Shell, local_time};
use crate::auth::extract::{Operate, Page, Read, TenantAccess};
use crate::domain::{AccessRole, Email, SecretSetting};
use crate::http::notifications::{self as api, SentView};
use crate::http::{ApiError, AppState, Guard, Route};
use crate::notify::expiry::ExpiryWarning;
use crate::notify::{EventKind, TenantNotifications, Webhook};

pub(super) fn routes() -> Vec<Route> {
    let read = Guard::Tenant(AccessRole::Viewer);
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::page(Method::GET, "/tenants/{tenant}/notifications", read, page),
        Route::page(
            Method::POST,
            "/tenants/{tenant}/notifications",
            operate,
            save,
        ),
        Route::page(
            Method::POST,
            "/tenants/{tenant}/notifications/test",
            operate,
            test,
        ),
    ]
}

/// One event's checkbox.
struct EventChoice {
    name: &'static str,
    label: &'static str,
    checked: bool,
}

/// One notification as listed.
struct SentRow {
    id: i64,
    when: String,
    channel: &'static str,
    event: &'static str,
    status: (&'static str, &'static str),
    attempts: u32,
    summary: String,
    error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/notifications.html")]
struct NotificationsPage {
    shell: Shell,
    tenant: TenantSummary,
    can_edit: bool,
    can_edit_webhook: bool,
    webhook_url: String,
    has_webhook_key: bool,
    email_to: String,
    events: Vec<EventChoice>,
    error_threshold: u64,
    daily_digest: bool,
    updated: Option<String>,
    recent: Vec<SentRow>,
    warnings: Vec<ExpiryWarning>,
    expiries: Vec<(String, String, &'static str)>,
    graph_note: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct Notice {
    notice: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Read>>,
    Query(notice): Query<Notice>,
) -> PageResult {
    let tenant = &access.tenant;
    let zone = tenant.time_zone;
    let view = api::load_view(&state, &tenant.key).await?;
    let credentials = api::credential_view(&state, tenant).await?;
    let settings = &view.settings;
    let page = NotificationsPage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        can_edit: matches!(access.role, AccessRole::TenantAdmin | AccessRole::Operator),
        can_edit_webhook: access.role == AccessRole::Operator,
        webhook_url: settings
            .webhook
            .as_ref()
            .map(|w| w.url.to_string())
            .unwrap_or_default(),
        has_webhook_key: settings.webhook.is_some(),
        email_to: settings
            .email_to
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        events: EventKind::CHOOSABLE
            .iter()
            .map(|kind| EventChoice {
                name: kind.as_str(),
                label: kind.label(),
                checked: settings.events.contains(kind),
            })
            .collect(),
        error_threshold: settings.error_threshold,
        daily_digest: settings.daily_digest,
        updated: view.updated_at.map(|at| {
            format!(
                "{} by {}",
                local_time(zone, at),
                view.updated_by.clone().unwrap_or_default()
            )
        }),
        recent: view
            .recent
            .into_iter()
            .map(|n: SentView| SentRow {
                id: n.id,
                when: local_time(zone, n.created_at),
                channel: n.channel,
                event: n.event,
                status: match n.status {
                    "sent" => ("Sent", "badge ok"),
                    "failed" => ("Failed", "badge bad"),
                    _ => ("Pending", "badge running"),
                },
                attempts: n.attempts,
                summary: n.summary.unwrap_or_default(),
                error: n.last_error.unwrap_or_default(),
            })
            .collect(),
        expiries: credentials
            .expiries
            .iter()
            .map(|e| {
                (
                    crate::notify::event::credential_label(e.credential).to_owned(),
                    local_time(zone, e.expires_at),
                    match e.source {
                        crate::notify::expiry::ExpirySource::Graph => "read from Entra",
                        crate::notify::expiry::ExpirySource::Configured => "configured",
                        crate::notify::expiry::ExpirySource::TokenResponse => "from HighQ",
                    },
                )
            })
            .collect(),
        warnings: credentials.warnings,
        graph_note: credentials.graph_note,
        notice: match notice.notice.as_deref() {
            Some("saved") => Some("Saved."),
            Some("test") => Some("A test notification is on its way; it is listed below."),
            _ => None,
        },
    };
    Ok(page.into_response())
}

/// The form: checkboxes arrive as `ev_{event}=on`, the recipients one a line (or comma-separated).
#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    webhook_secret: Option<String>,
    #[serde(default)]
    email_to: String,
    #[serde(default)]
    error_threshold: Option<String>,
    #[serde(default)]
    daily_digest: Option<String>,
    #[serde(default)]
    ev_run_held: Option<String>,
    #[serde(default)]
    ev_run_failed: Option<String>,
    #[serde(default)]
    ev_run_errors: Option<String>,
    #[serde(default)]
    ev_credential_expiring: Option<String>,
    #[serde(default)]
    ev_quarantined: Option<String>,
}

impl SettingsForm {
    /// The settings the form asks for; `stored`'s webhook stays as it is when the caller may not
    /// change it (the fields are not shown to them).
    fn settings(
        self,
        stored: Option<&TenantNotifications>,
        webhook_editable: bool,
    ) -> Result<TenantNotifications, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let email_to = self
            .email_to
            .split([',', '\n', ';'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Email::parse(t).map_err(|e| bad(format!("email_to: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let webhook = if webhook_editable {
            match self.webhook_url.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(url) => Some(Webhook {
                    url: url
                        .parse()
                        .map_err(|e| bad(format!("webhook.url {url:?}: {e}")))?,
                    secret: match self.webhook_secret.as_deref().map(str::trim) {
                        None | Some("") => SecretSetting::Keep,
                        Some(key) => SecretSetting::from(key),
                    },
                }),
            }
        } else {
            stored.and_then(|s| s.webhook.clone())
        };
        let chosen = [
            (EventKind::RunHeld, self.ev_run_held.is_some()),
            (EventKind::RunFailed, self.ev_run_failed.is_some()),
            (EventKind::RunErrors, self.ev_run_errors.is_some()),
            (
                EventKind::CredentialExpiring,
                self.ev_credential_expiring.is_some(),
            ),
            (EventKind::Quarantined, self.ev_quarantined.is_some()),
        ];
        Ok(TenantNotifications {
            webhook,
            email_to,
            events: chosen
                .into_iter()
                .filter_map(|(kind, on)| on.then_some(kind))
                .collect(),
            error_threshold: match self.error_threshold.as_deref().map(str::trim) {
                None | Some("") => 0,
                Some(n) => n
                    .parse()
                    .map_err(|_| bad(format!("error_threshold {n:?} is not a whole number")))?,
            },
            daily_digest: self.daily_digest.is_some(),
        })
    }
}

async fn save(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
    Form(form): Form<SettingsForm>,
) -> PageResult {
    let stored = state
        .store()
        .notification_settings(&access.tenant.key)
        .await?
        .map(|s| s.settings);
    let wanted = form.settings(stored.as_ref(), access.role == AccessRole::Operator)?;
    api::save(&state, &access.caller, access.role, &access.tenant, wanted).await?;
    Ok(Redirect::to(&format!(
        "/tenants/{}/notifications?notice=saved",
        access.tenant.key
    ))
    .into_response())
}

async fn test(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
) -> PageResult {
    api::queue_test(&state, &access.caller, &access.tenant.key).await?;
    Ok(Redirect::to(&format!(
        "/tenants/{}/notifications?notice=test",
        access.tenant.key
    ))
    .into_response())
}
