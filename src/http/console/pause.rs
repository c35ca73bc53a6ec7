//! Issue 14 in the console: the Pause and Resume forms of the Tenant page (tenant admins and
//! operators) and of the Tenants page (the operators' global pause), and the banners both pages
//! show — paused by whom, since when and why; quarantined after how many failed nights, why, and
//! when the next attempt is. Every action is a CSRF form POST through the same functions as the
//! API and the CLI, answered with a redirect.

use axum::Form;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::{PageResult, local_time};
use crate::audit::Actor;
use crate::auth::extract::{Operate, Operator, Page, TenantAccess};
use crate::domain::AccessRole;
use crate::http::{AppState, Guard, Route, pause::checked_reason};
use crate::schedule::{self, ScheduleStatus};
use crate::store::Pause;
use crate::tenant::Tenant;

pub(super) fn routes() -> Vec<Route> {
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::page(
            Method::POST,
            "/tenants/{tenant}/pause",
            operate,
            pause_tenant,
        ),
        Route::page(
            Method::POST,
            "/tenants/{tenant}/resume",
            operate,
            resume_tenant,
        ),
        Route::page(
            Method::POST,
            "/operator/pause",
            Guard::Operator,
            pause_service,
        ),
        Route::page(
            Method::POST,
            "/operator/resume",
            Guard::Operator,
            resume_service,
        ),
    ]
}

/// A pause as a banner shows it.
pub(super) struct PauseView {
    pub by: String,
    pub since: String,
    pub reason: Option<String>,
}

impl PauseView {
    pub fn of(zone: chrono_tz::Tz, pause: &Pause) -> Self {
        Self {
            by: pause.by.clone(),
            since: local_time(zone, pause.at),
            reason: pause.reason.clone(),
        }
    }
}

/// A quarantine as a banner shows it.
pub(super) struct QuarantineView {
    pub failed_nights: u32,
    pub after: u32,
    pub since: String,
    pub last_failure: String,
    pub last_failed_run: i64,
    pub next_attempt: String,
}

/// What the Tenant page says about the tenant's schedule.
pub(super) struct ScheduleView {
    pub service_pause: Option<PauseView>,
    pub pause: Option<PauseView>,
    pub quarantine: Option<QuarantineView>,
}

impl ScheduleView {
    pub fn of(tenant: &Tenant, status: &ScheduleStatus) -> Self {
        let zone = tenant.time_zone;
        Self {
            service_pause: status
                .service_pause
                .as_ref()
                .map(|p| PauseView::of(zone, p)),
            pause: status.pause.as_ref().map(|p| PauseView::of(zone, p)),
            quarantine: status.quarantine.as_ref().map(|q| QuarantineView {
                failed_nights: q.failed_nights,
                after: q.after_failed_nights,
                since: local_time(zone, q.since),
                last_failure: q.last_failure.clone(),
                last_failed_run: q.last_failed_run,
                next_attempt: local_time(zone, q.next_attempt),
            }),
        }
    }

    /// Whether no run may start now (a forced one would be refused).
    pub fn paused(&self) -> bool {
        self.service_pause.is_some() || self.pause.is_some()
    }
}

/// The schedule status of `tenant`, for a page.
pub(super) async fn schedule_view(state: &AppState, tenant: &Tenant) -> PageResultOf<ScheduleView> {
    let policy = state.runner.context().settings.quarantine;
    let status = ScheduleStatus::of(state.store().as_ref(), &policy, tenant).await?;
    Ok(ScheduleView::of(tenant, &status))
}

type PageResultOf<T> = Result<T, crate::http::ApiError>;

#[derive(Debug, Deserialize)]
struct PauseForm {
    #[serde(default)]
    reason: String,
}

fn reason_of(form: PauseForm) -> PageResultOf<Option<String>> {
    checked_reason(Some(form.reason).filter(|r| !r.trim().is_empty()))
}

async fn pause_tenant(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
    Form(form): Form<PauseForm>,
) -> PageResult {
    let reason = reason_of(form)?;
    schedule::pause_tenant(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&access.caller),
        &access.tenant.key,
        reason,
        state.auth.now(),
    )
    .await?;
    Ok(Redirect::to(&format!("/tenants/{}?notice=paused", access.tenant.key)).into_response())
}

async fn resume_tenant(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
) -> PageResult {
    schedule::resume_tenant(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&access.caller),
        &access.tenant.key,
        state.auth.now(),
    )
    .await?;
    Ok(Redirect::to(&format!("/tenants/{}?notice=resumed", access.tenant.key)).into_response())
}

async fn pause_service(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
    Form(form): Form<PauseForm>,
) -> PageResult {
    let reason = reason_of(form)?;
    schedule::pause_service(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&caller),
        reason,
        state.auth.now(),
    )
    .await?;
    Ok(Redirect::to("/").into_response())
}

async fn resume_service(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
) -> PageResult {
    schedule::resume_service(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &Actor::of(&caller),
        state.auth.now(),
    )
    .await?;
    Ok(Redirect::to("/").into_response())
}
