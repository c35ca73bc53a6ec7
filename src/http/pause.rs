//! Issue 14 in the API: pause and resume a tenant (its admins and operators), the global pause
//! (operators, for maintenance), and a tenant's schedule status — paused, quarantined, and why.
//! Who paused is taken from the sign-in or API token, never from the body.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::{AppState, Guard, Route};
use crate::audit::Actor;
use crate::auth::extract::{Operate, Operator, Read, TenantAccess};
use crate::domain::AccessRole;
use crate::schedule::{self, PauseChange, ScheduleStatus};

/// The longest reason kept with a pause.
pub const MAX_PAUSE_REASON: usize = 500;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/status",
            Guard::Tenant(AccessRole::Viewer),
            status,
        ),
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/pause",
            Guard::Tenant(AccessRole::TenantAdmin),
            pause_tenant,
        ),
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/resume",
            Guard::Tenant(AccessRole::TenantAdmin),
            resume_tenant,
        ),
        Route::api(
            Method::POST,
            "/api/v1/pause",
            Guard::Operator,
            pause_service,
        ),
        Route::api(
            Method::POST,
            "/api/v1/resume",
            Guard::Operator,
            resume_service,
        ),
    ]
}

/// The body of a pause: only the reason, if any.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: Option<String>,
}

/// An empty body, or `{"reason": "…"}`; anything else is refused, naming why.
fn pause_reason(body: &Bytes) -> ApiResult<Option<String>> {
    let body: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
        PauseBody::default()
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ApiError::BadRequest(format!(
                "the body is a JSON object with at most a \"reason\"; who pauses is taken from \
                 the sign-in or API token: {err}"
            ))
        })?
    };
    checked_reason(body.reason)
}

/// A reason of at most [`MAX_PAUSE_REASON`] characters.
pub(crate) fn checked_reason(reason: Option<String>) -> ApiResult<Option<String>> {
    match reason {
        Some(reason) if reason.chars().count() > MAX_PAUSE_REASON => Err(ApiError::BadRequest(
            format!("the reason is longer than {MAX_PAUSE_REASON} characters"),
        )),
        other => Ok(other),
    }
}

/// A tenant's schedule status as the API shows it.
#[derive(Serialize, ToSchema)]
pub(super) struct StatusView {
    tenant: String,
    /// `running` (automatic runs at midnight), `paused`, `service_paused` or `quarantined`.
    #[schema(value_type = String)]
    state: &'static str,
    /// One sentence: why midnights are skipped, or that they run.
    message: String,
    /// The global pause: `by`, `at`, `reason`.
    #[schema(value_type = Option<Object>)]
    service_pause: Option<crate::store::Pause>,
    /// The tenant's pause: `by`, `at`, `reason`.
    #[schema(value_type = Option<Object>)]
    pause: Option<crate::store::Pause>,
    /// The quarantine: failed nights, the last failure's message, the next attempt.
    #[schema(value_type = Option<Object>)]
    quarantine: Option<schedule::Quarantine>,
}

pub(super) fn status_view(tenant: &crate::tenant::Tenant, status: ScheduleStatus) -> StatusView {
    let zone = tenant.time_zone;
    let (state, message) = if let Some(pause) = &status.service_pause {
        (
            "service_paused",
            format!(
                "dirsync is paused for maintenance ({}): midnights are skipped and no run starts",
                schedule::paused_by(zone, pause)
            ),
        )
    } else if let Some(pause) = &status.pause {
        (
            "paused",
            format!(
                "paused ({}): midnights are skipped and no run starts until it is resumed",
                schedule::paused_by(zone, pause)
            ),
        )
    } else if let Some(quarantine) = &status.quarantine {
        ("quarantined", quarantine.reason(zone))
    } else {
        (
            "running",
            "runs every midnight in the tenant's time zone".to_owned(),
        )
    };
    StatusView {
        tenant: tenant.key.to_string(),
        state,
        message,
        service_pause: status.service_pause,
        pause: status.pause,
        quarantine: status.quarantine,
    }
}

/// Whether the tenant's automatic runs are paused (by its admins or for maintenance) or
/// quarantined after failed nights, since when and why.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/status", operation_id = "tenant_status", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 200, body = StatusView), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn status(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
) -> ApiResult<Json<StatusView>> {
    let policy = state.runner.context().settings.quarantine;
    let status = ScheduleStatus::of(state.store().as_ref(), &policy, &access.tenant).await?;
    Ok(Json(status_view(&access.tenant, status)))
}

/// What a pause or resume did.
#[derive(Serialize, ToSchema)]
pub(super) struct PauseAnswer {
    /// `false` when it was already so (nothing changed, nothing audited).
    changed: bool,
    /// The pause now in force (after pausing), or the one that ended (after resuming).
    #[schema(value_type = Option<Object>)]
    pause: Option<crate::store::Pause>,
}

impl From<PauseChange> for PauseAnswer {
    fn from(change: PauseChange) -> Self {
        Self {
            changed: change.changed,
            pause: change.pause,
        }
    }
}

/// Pauses the tenant: its midnights are recorded as skipped and forced runs are refused (`409`)
/// until it is resumed. Pausing a paused tenant keeps the first pause.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/pause", operation_id = "pause_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    request_body(content = Object, description = "Empty, or {\"reason\": \"…\"} (at most 500 characters); who pauses is taken from the sign-in or API token", content_type = "application/json"),
    responses((status = 200, body = PauseAnswer), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn pause_tenant(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    body: Bytes,
) -> ApiResult<Json<PauseAnswer>> {
    let reason = pause_reason(&body)?;
    let change = schedule::pause_tenant(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&access.caller),
        &access.tenant.key,
        reason,
        state.auth.now(),
    )
    .await?;
    Ok(Json(change.into()))
}

/// Resumes the tenant: its next midnight runs (skipped midnights are not run again).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/resume", operation_id = "resume_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 200, body = PauseAnswer), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn resume_tenant(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    body: Bytes,
) -> ApiResult<Json<PauseAnswer>> {
    no_reason(&body)?;
    let change = schedule::resume_tenant(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&access.caller),
        &access.tenant.key,
        state.auth.now(),
    )
    .await?;
    Ok(Json(change.into()))
}

/// The global pause (operators, for maintenance): every tenant's midnights are recorded as
/// skipped and forced runs are refused (`409`) until an operator resumes.
#[utoipa::path(post, path = "/api/v1/pause", operation_id = "pause_service", tag = "service",
    request_body(content = Object, description = "Empty, or {\"reason\": \"…\"} (at most 500 characters)", content_type = "application/json"),
    responses((status = 200, body = PauseAnswer), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody)))]
pub(super) async fn pause_service(
    State(state): State<AppState>,
    Operator(caller): Operator,
    body: Bytes,
) -> ApiResult<Json<PauseAnswer>> {
    let reason = pause_reason(&body)?;
    let change = schedule::pause_service(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&caller),
        reason,
        state.auth.now(),
    )
    .await?;
    Ok(Json(change.into()))
}

/// Ends the global pause.
#[utoipa::path(post, path = "/api/v1/resume", operation_id = "resume_service", tag = "service",
    responses((status = 200, body = PauseAnswer), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody)))]
pub(super) async fn resume_service(
    State(state): State<AppState>,
    Operator(caller): Operator,
    body: Bytes,
) -> ApiResult<Json<PauseAnswer>> {
    no_reason(&body)?;
    let change = schedule::resume_service(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&caller),
        state.auth.now(),
    )
    .await?;
    Ok(Json(change.into()))
}

/// Resuming takes no body (an empty object is fine).
fn no_reason(body: &Bytes) -> ApiResult<()> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(fields) if fields.is_empty() => Ok(()),
        _ => Err(ApiError::BadRequest(
            "resuming takes no body; who resumes is taken from the sign-in or API token".to_owned(),
        )),
    }
}
