//! The Tenants page (status of each tenant the caller may see) and the Tenant page (selected
//! groups with their Entra names and member counts, Force sync now with its confirmation and live
//! progress, the held-run banner with Approve and Reject), and the progress fragment and its event stream.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect};
use futures::Stream;
use serde::Deserialize;

use super::pause::{PauseView, ScheduleView, schedule_view};
use super::{PageResult, Shell, local_time, status_badge, trigger_text};
use crate::auth::extract::{Operate, Page, Read, Signed, TenantAccess};
use crate::domain::AccessRole;
use crate::http::extract::ApiPath;
use crate::http::tenants::{GroupCountView, group_counts};
use crate::http::{ApiError, AppState, Guard, Route, runs};
use crate::plan::PlanCounts;
use crate::schedule::next_midnight;
use crate::store::{MAX_REJECTION_REASON, RunId, RunRecord, RunStatus};
use crate::tenant::Tenant;

pub(super) fn routes() -> Vec<Route> {
    let read = Guard::Tenant(AccessRole::Viewer);
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::page(Method::GET, "/tenants/{tenant}", read, tenant_page),
        Route::page(
            Method::GET,
            "/tenants/{tenant}/force",
            operate,
            confirm_force,
        ),
        Route::page(Method::POST, "/tenants/{tenant}/force", operate, force),
        Route::page(
            Method::GET,
            "/tenants/{tenant}/reports/{run}/progress",
            read,
            progress_fragment,
        ),
        Route::page(
            Method::GET,
            "/tenants/{tenant}/reports/{run}/events",
            read,
            progress_events,
        ),
        Route::page(
            Method::POST,
            "/tenants/{tenant}/reports/{run}/approve",
            operate,
            approve,
        ),
        Route::page(
            Method::GET,
            "/tenants/{tenant}/reports/{run}/reject",
            operate,
            confirm_reject,
        ),
        Route::page(
            Method::POST,
            "/tenants/{tenant}/reports/{run}/reject",
            operate,
            reject,
        ),
    ]
}

/// One row of the Tenants page.
struct TenantRow {
    key: String,
    name: String,
    badge: (&'static str, &'static str),
    last_run: String,
    next_midnight: String,
    zone: String,
    /// Issue 14: "Paused" or "Quarantined", beside the status.
    mark: Option<(&'static str, &'static str, String)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    shell: Shell,
    tenants: Vec<TenantRow>,
    /// The caller's grants, for a person without an operator's view.
    grants: Vec<(String, &'static str)>,
    /// Issue 14: the global pause, if on (times in UTC: it spans tenants).
    service_pause: Option<PauseView>,
    max_reason: usize,
}

/// A tenant's state at a glance, from its latest run.
fn tenant_badge(latest: Option<&RunRecord>) -> (&'static str, &'static str) {
    match latest.map(|r| r.status) {
        None => ("No runs yet", "badge none"),
        Some(RunStatus::Running) => ("Running", "badge running"),
        Some(RunStatus::Held) => ("Held for approval", "badge held"),
        Some(RunStatus::Rejected) => ("Held run rejected", "badge held"),
        Some(RunStatus::Failed) => ("Failing", "badge bad"),
        Some(RunStatus::Interrupted) => ("Interrupted", "badge bad"),
        Some(RunStatus::CompletedWithErrors) => ("Healthy, with errors", "badge warn"),
        Some(RunStatus::Succeeded) => ("Healthy", "badge ok"),
        Some(RunStatus::Skipped) => ("Skipped its midnight", "badge none"),
    }
}

/// Issue 14: the mark beside a tenant's status: paused, or quarantined (worked out only when its
/// latest run failed or was skipped, so the list stays cheap).
async fn tenant_mark(
    state: &AppState,
    tenant: &Tenant,
    latest: Option<&RunRecord>,
) -> Result<Option<(&'static str, &'static str, String)>, crate::store::StoreError> {
    if let Some(pause) = state.store().tenant_pause(&tenant.key).await? {
        return Ok(Some((
            "Paused",
            "badge held",
            crate::schedule::paused_by(tenant.time_zone, &pause),
        )));
    }
    if !latest.is_some_and(|r| matches!(r.status, RunStatus::Failed | RunStatus::Skipped)) {
        return Ok(None);
    }
    let policy = state.runner.context().settings.quarantine;
    let quarantine =
        crate::schedule::quarantine_of(state.store().as_ref(), &policy, tenant).await?;
    Ok(quarantine.map(|q| ("Quarantined", "badge bad", q.reason(tenant.time_zone))))
}

/// The Tenants page, the console's start: every tenant for an operator, one's own otherwise.
pub async fn tenants_page(
    State(state): State<AppState>,
    Page(Signed(caller)): Page<Signed>,
) -> PageResult {
    let now = state.auth.now();
    let mut tenants = Vec::new();
    for tenant in state.store().tenants().await? {
        if caller.access.role_on(&tenant.key).is_none() {
            continue;
        }
        let latest = state.store().runs(&tenant.key, 1).await?.into_iter().next();
        let mark = tenant_mark(&state, &tenant, latest.as_ref()).await?;
        tenants.push(TenantRow {
            mark,
            key: tenant.key.to_string(),
            name: tenant.display_name.clone(),
            badge: tenant_badge(latest.as_ref()),
            last_run: latest.as_ref().map_or_else(
                || "never".to_owned(),
                |run| {
                    format!(
                        "{}, {}",
                        status_badge(run.status).0,
                        local_time(tenant.time_zone, run.started_at)
                    )
                },
            ),
            next_midnight: local_time(tenant.time_zone, next_midnight(tenant.time_zone, now)),
            zone: tenant.time_zone.name().to_owned(),
        });
    }
    let grants = caller
        .access
        .tenants
        .iter()
        .map(|(key, role)| (key.to_string(), role.as_str()))
        .collect();
    let service_pause = state
        .store()
        .service_pause()
        .await?
        .map(|p| PauseView::of(chrono_tz::UTC, &p));
    Ok(TenantsPage {
        shell: Shell::of(&caller),
        tenants,
        grants,
        service_pause,
        max_reason: crate::http::pause::MAX_PAUSE_REASON,
    }
    .into_response())
}

/// What a notice in the Tenant page's query says (fixed sentences: the URL cannot put words on
/// the page).
#[derive(Debug, Default, Deserialize)]
struct TenantQuery {
    notice: Option<String>,
    run: Option<RunId>,
}

fn notice_text(query: &TenantQuery) -> Option<(String, &'static str)> {
    let run = query.run.map(|r| format!("run {r}")).unwrap_or_default();
    let text = match query.notice.as_deref()? {
        "forced" => format!("Sync started ({run}). Its progress is shown below."),
        "already_running" => {
            format!("A sync was already in progress ({run}); it was not started twice.")
        }
        "approved" => format!(
            "Approved. The held run is being carried out as {run}, which plans afresh and may \
             deactivate up to what was approved."
        ),
        "rejected" => format!(
            "Rejected: {run} applies nothing and can no longer be approved. The next run (at \
             midnight, or forced) plans afresh and is held again if it still deactivates too many."
        ),
        "saved" => "The tenant's configuration was saved.".to_owned(),
        "paused" => "Paused: midnights are skipped (and recorded as skipped) and no run starts \
                     until the tenant is resumed."
            .to_owned(),
        "resumed" => "Resumed: the next midnight runs. Skipped midnights are not run again; force \
                      a sync to run now."
            .to_owned(),
        _ => return None,
    };
    Some((text, "notice ok"))
}

/// The Tenant page's view of a run that is held (R18).
struct HeldView {
    run: RunId,
    held_at: String,
    message: String,
    planned: Vec<(&'static str, usize)>,
}

impl HeldView {
    fn of(tenant: &Tenant, run: &RunRecord) -> Self {
        Self {
            run: run.id,
            held_at: local_time(tenant.time_zone, run.started_at),
            message: run.message.clone().unwrap_or_default(),
            planned: run
                .summary
                .as_ref()
                .map(|s| {
                    count_rows(&s.planned)
                        .into_iter()
                        .filter(|(_, n)| *n > 0)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The Tenant page's view of a run in progress.
struct RunningView {
    run: RunId,
    fragment: ProgressFragment,
}

struct GroupRow {
    id: String,
    role: &'static str,
    name: String,
    label: String,
    members: String,
    over_limit: bool,
    problem: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant.html")]
struct TenantPage {
    shell: Shell,
    tenant: TenantSummary,
    notice: Option<(String, &'static str)>,
    can_operate: bool,
    groups: Vec<GroupRow>,
    groups_problem: Option<String>,
    held: Option<HeldView>,
    running: Option<RunningView>,
    recent: Vec<RunRow>,
    /// Issue 14: paused or quarantined, by whom, since when, why.
    schedule: ScheduleView,
    max_reason: usize,
}

/// A tenant's settings as the console shows them.
pub(super) struct TenantSummary {
    pub key: String,
    pub name: String,
    pub entra_tenant_id: String,
    pub zone: String,
    pub retention: u8,
    pub threshold: u32,
    pub deactivation: String,
    pub target: String,
    pub next_midnight: String,
}

impl TenantSummary {
    pub fn of(tenant: &Tenant, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            key: tenant.key.to_string(),
            name: tenant.display_name.clone(),
            entra_tenant_id: tenant.entra_tenant_id.to_string(),
            zone: tenant.time_zone.name().to_owned(),
            retention: tenant.report_retention.months(),
            threshold: tenant.policy.deletion_threshold,
            deactivation: tenant.policy.deactivation_status.to_string(),
            target: tenant.target.as_ref().map_or_else(
                || "not connected".to_owned(),
                |t| {
                    serde_json::to_value(t)
                        .ok()
                        .and_then(|v| {
                            Some(format!(
                                "{} at {}",
                                v.get("kind")?.as_str()?,
                                v.get("base_url")?.as_str()?
                            ))
                        })
                        .unwrap_or_else(|| "configured".to_owned())
                },
            ),
            next_midnight: local_time(tenant.time_zone, next_midnight(tenant.time_zone, now)),
        }
    }
}

/// A run as a row of a runs table.
pub(super) struct RunRow {
    pub id: RunId,
    pub trigger: String,
    pub started: String,
    pub finished: String,
    pub badge: (&'static str, &'static str),
    pub counts: String,
}

impl RunRow {
    pub fn of(tenant: &Tenant, run: &RunRecord) -> Self {
        Self {
            id: run.id,
            trigger: trigger_text(run),
            started: local_time(tenant.time_zone, run.started_at),
            finished: run
                .finished_at
                .map_or_else(|| "—".to_owned(), |at| local_time(tenant.time_zone, at)),
            badge: status_badge(run.status),
            counts: run
                .summary
                .as_ref()
                .map(|s| short_counts(&s.applied))
                .unwrap_or_default(),
        }
    }
}

/// "12 created, 3 updated, 1 deactivated, 40 memberships" — the non-zero counts.
pub(super) fn short_counts(counts: &PlanCounts) -> String {
    let parts: Vec<String> = count_rows(counts)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Every count of a plan with its words.
pub(super) fn count_rows(c: &PlanCounts) -> Vec<(&'static str, usize)> {
    vec![
        ("users created", c.users_created),
        ("users adopted", c.users_adopted),
        ("users updated", c.users_updated),
        ("users activated", c.users_activated),
        ("users deactivated", c.users_deactivated),
        ("groups created", c.groups_created),
        ("groups renamed", c.groups_renamed),
        ("groups converted to system groups", c.groups_converted),
        ("memberships added", c.memberships_added),
        ("memberships removed", c.memberships_removed),
        ("warnings", c.warnings),
        ("errors", c.errors),
    ]
}

fn group_rows(groups: Vec<GroupCountView>) -> Vec<GroupRow> {
    groups
        .into_iter()
        .map(|g| {
            let name = g.name.clone().unwrap_or_else(|| "—".to_owned());
            GroupRow {
                id: g.id.to_string(),
                role: g.role.as_str(),
                label: g.name.as_deref().map_or_else(
                    || "—".to_owned(),
                    |n| crate::domain::GroupKind::synced(g.role).label(n),
                ),
                name,
                members: g
                    .direct_user_members
                    .map_or_else(|| "—".to_owned(), |n| n.to_string()),
                over_limit: g.over_limit,
                problem: g.message,
            }
        })
        .collect()
}

async fn tenant_page(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Read>>,
    Query(query): Query<TenantQuery>,
) -> PageResult {
    let tenant = &access.tenant;
    let now = state.auth.now();
    let recent = state.store().runs(&tenant.key, 5).await?;
    let (groups, groups_problem) = match group_counts(&state, tenant).await {
        Ok(groups) => (group_rows(groups), None),
        Err(err) => (
            tenant
                .policy
                .selected_groups
                .iter()
                .map(|g| GroupRow {
                    id: g.entra_id.to_string(),
                    role: g.role.as_str(),
                    name: "—".to_owned(),
                    label: "—".to_owned(),
                    members: "—".to_owned(),
                    over_limit: false,
                    problem: None,
                })
                .collect(),
            Some(format!("Entra could not be read: {err}")),
        ),
    };
    let latest = recent.first();
    let held = latest
        .filter(|r| r.status == RunStatus::Held)
        .map(|run| HeldView::of(tenant, run));
    // The run in progress, or the one just forced or approved (to show how it ended).
    let followed = match query.run {
        Some(id) => runs::tenant_run(&state, tenant, id).await.ok(),
        None => None,
    };
    let running = latest
        .filter(|r| r.status == RunStatus::Running)
        .cloned()
        .or(followed)
        .map(|run| RunningView {
            run: run.id,
            fragment: ProgressFragment::of(tenant, &run),
        });
    let schedule = schedule_view(&state, tenant).await?;
    Ok(TenantPage {
        schedule,
        max_reason: crate::http::pause::MAX_PAUSE_REASON,
        shell: Shell::of(&access.caller),
        notice: notice_text(&query),
        can_operate: access.role != AccessRole::Viewer,
        tenant: TenantSummary::of(tenant, now),
        groups,
        groups_problem,
        held,
        running,
        recent: recent.iter().map(|r| RunRow::of(tenant, r)).collect(),
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "console/force.html")]
struct ForcePage {
    shell: Shell,
    tenant: TenantSummary,
    groups: usize,
}

/// Force sync now, step one: what it will do, and the button that does it.
async fn confirm_force(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
) -> PageResult {
    Ok(ForcePage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(&access.tenant, state.auth.now()),
        groups: access.tenant.policy.selected_groups.len(),
    }
    .into_response())
}

/// Force sync now (R21): a Manual run in the signed-in person's name, through the API's own
/// launcher; back to the Tenant page, which follows its progress.
async fn force(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
) -> PageResult {
    let launched = runs::launch_manual(&state, &access.caller, &access.tenant).await?;
    let notice = if launched.already_running {
        "already_running"
    } else {
        "forced"
    };
    Ok(Redirect::to(&format!(
        "/tenants/{}?notice={notice}&run={}",
        access.tenant.key, launched.run_id
    ))
    .into_response())
}

/// R18: approve a held run from its banner, through the API's own approval; back to the Tenant
/// page, which follows the new run.
async fn approve(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
) -> PageResult {
    let launched = runs::approve_held(&state, &access.caller, &access.tenant, run).await?;
    Ok(Redirect::to(&format!(
        "/tenants/{}?notice=approved&run={}",
        access.tenant.key, launched.run_id
    ))
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "console/reject.html")]
struct RejectPage {
    shell: Shell,
    tenant: TenantSummary,
    held: HeldView,
    max_reason: usize,
}

/// Reject a held run, step one: what rejecting does, a reason, and the button that does it.
/// Only a run that is still held gets the form; otherwise the page says why not.
async fn confirm_reject(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
) -> PageResult {
    let tenant = &access.tenant;
    let record = runs::tenant_run(&state, tenant, run).await?;
    if record.status != RunStatus::Held {
        return Err(ApiError::Conflict(format!(
            "run {run} is {}, not held: only a held run can be rejected",
            record.status.as_str()
        ))
        .into());
    }
    Ok(RejectPage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        held: HeldView::of(tenant, &record),
        max_reason: MAX_REJECTION_REASON,
    }
    .into_response())
}

#[derive(Debug, Deserialize)]
struct RejectForm {
    #[serde(default)]
    reason: String,
}

/// R18: reject a held run, through the API's own rejection; back to the Tenant page, where the
/// banner is gone.
async fn reject(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
    Form(form): Form<RejectForm>,
) -> PageResult {
    let reason = Some(form.reason.as_str()).filter(|r| !r.trim().is_empty());
    runs::reject_held(&state, &access.caller, &access.tenant, run, reason).await?;
    Ok(Redirect::to(&format!(
        "/tenants/{}?notice=rejected&run={run}",
        access.tenant.key
    ))
    .into_response())
}

/// How far a run has come, as the Tenant page shows it and the event stream sends it.
#[derive(Template, WebTemplate, Clone, PartialEq, Eq)]
#[template(path = "console/progress.html")]
pub(super) struct ProgressFragment {
    tenant: String,
    run: RunId,
    done_state: bool,
    stage: String,
    /// "3 of 6 groups read", "120 of 300 operations applied".
    detail: String,
    value: i64,
    max: i64,
    percent: i64,
    outcome: Option<(&'static str, &'static str)>,
    held: bool,
    message: Option<String>,
}

impl ProgressFragment {
    fn of(tenant: &Tenant, run: &RunRecord) -> Self {
        let finished = run.status != RunStatus::Running;
        let (stage, done, total) = match &run.progress {
            Some(p) => (p.stage.clone(), p.done.max(0), p.total.max(0)),
            None => ("starting".to_owned(), 0, 0),
        };
        let detail = match stage.as_str() {
            "reading Entra" => format!("{done} of {total} groups read"),
            "applying changes" => format!("{done} of {total} operations applied"),
            _ if total > 0 => format!("{done} of {total}"),
            _ => String::new(),
        };
        let (value, max, percent) = if finished {
            (1, 1, 100)
        } else if total > 0 {
            (done.min(total), total, (done.min(total) * 100) / total)
        } else {
            (0, 1, 0)
        };
        Self {
            tenant: tenant.key.to_string(),
            run: run.id,
            done_state: finished,
            stage: if finished {
                "finished".to_owned()
            } else {
                stage
            },
            detail,
            value,
            max,
            percent,
            outcome: finished.then(|| status_badge(run.status)),
            held: run.status == RunStatus::Held,
            message: run.message.clone(),
        }
    }
}

async fn load_progress(
    state: &AppState,
    tenant: &Tenant,
    run: RunId,
) -> Result<ProgressFragment, ApiError> {
    let record = runs::tenant_run(state, tenant, run).await?;
    Ok(ProgressFragment::of(tenant, &record))
}

/// The progress fragment alone (the polling fallback).
async fn progress_fragment(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Read>>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
) -> PageResult {
    Ok(load_progress(&state, &access.tenant, run)
        .await?
        .into_response())
}

/// How often the event stream looks at the run's progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(400);

/// The progress fragment as server-sent events: one `progress` event whenever it changes, the
/// last when the run has ended.
async fn progress_events(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Read>>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
) -> PageResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let tenant = access.tenant;
    let first = load_progress(&state, &tenant, run).await?;
    let stream = futures::stream::unfold(
        (Some(first), None::<ProgressFragment>, state, tenant),
        move |(next, last, state, tenant)| async move {
            let mut current = next;
            loop {
                let fragment = match current.take() {
                    Some(fragment) => fragment,
                    None => {
                        if last.as_ref().is_some_and(|l| l.done_state) {
                            return None;
                        }
                        tokio::time::sleep(PROGRESS_EVERY).await;
                        match load_progress(&state, &tenant, run).await {
                            Ok(fragment) => fragment,
                            Err(_) => return None,
                        }
                    }
                };
                if last.as_ref() == Some(&fragment) {
                    continue;
                }
                let html = fragment.render().unwrap_or_default();
                let event = Event::default().event("progress").data(html);
                return Some((Ok(event), (None, Some(fragment), state, tenant)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
