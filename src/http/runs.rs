//! Runs: force a sync (R21), list and inspect runs and their reports (R19), follow progress,
//! approve or reject a held run (R18), and download a report as `.xlsx`. Readers of a tenant (viewers and
//! up) see its runs and reports; tenant admins and operators force and approve, and the run
//! records who did, from their sign-in or API token — never from the request.

use std::io::{Seek, SeekFrom};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::io::ReaderStream;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, Limit};
use super::{AppState, Guard, Route};
use crate::audit::Action;
use crate::auth::caller::Caller;
use crate::auth::extract::{Operate, Read, TenantAccess};
use crate::domain::AccessRole;
use crate::plan::{GroupSummary, PlanCounts, Severity};
use crate::store::{
    EntryFilter, NumberedEntry, Rejection, RunFilter, RunId, RunOptions, RunRecord, RunStatus,
    SubjectKind, Trigger, TriggerKind,
};
use crate::sync::Launched;
use crate::tenant::Tenant;

/// The most runs one list returns.
pub const MAX_RUNS: usize = 500;
/// The most report lines one page returns.
pub const MAX_ENTRIES: usize = 5000;

pub(super) fn routes() -> Vec<Route> {
    let read = Guard::Tenant(AccessRole::Viewer);
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::api(Method::GET, "/api/v1/tenants/{tenant}/runs", read, list),
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/runs",
            operate,
            force,
        ),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/runs/{run}",
            read,
            detail,
        ),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/runs/{run}/entries",
            read,
            entries,
        ),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/runs/{run}/progress",
            read,
            progress,
        ),
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/runs/{run}/approve",
            operate,
            approve,
        ),
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/runs/{run}/reject",
            operate,
            reject,
        ),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/runs/{run}/report.xlsx",
            read,
            report,
        ),
    ]
}

#[derive(Serialize, ToSchema)]
pub(super) struct Started {
    /// The run: id, tenant, trigger, status, times, summary, progress.
    #[schema(value_type = Object)]
    run: RunRecord,
    /// R21: the run was already in progress; no new one was started.
    already_running: bool,
}

/// Loads a run and checks that it belongs to the tenant in the URL.
pub(crate) async fn tenant_run(
    state: &AppState,
    tenant: &Tenant,
    run: RunId,
) -> ApiResult<RunRecord> {
    match state.store().run(run).await? {
        Some(record) if record.tenant == tenant.key => Ok(record),
        _ => Err(ApiError::NotFound(format!(
            "tenant {} has no run {run}",
            tenant.key
        ))),
    }
}

/// Launches the run and records in the audit log who forced it.
async fn launch(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
    trigger: Trigger,
    options: RunOptions,
) -> ApiResult<Launched> {
    let launched = state.runner.launch(&tenant.key, trigger, options).await?;
    state
        .audit(
            caller,
            Action::RunForce,
            Some(&tenant.key),
            json!({
                "run": launched.run_id,
                "already_running": launched.already_running,
            }),
        )
        .await;
    Ok(launched)
}

/// Answers a launch: `202` with the new run, or `200` with the one already in progress.
async fn started(state: &AppState, tenant: &Tenant, launched: Launched) -> ApiResult<Response> {
    let run = tenant_run(state, tenant, launched.run_id).await?;
    let status = if launched.already_running {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let location = format!("/api/v1/tenants/{}/runs/{}", tenant.key, run.id);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(Started {
            run,
            already_running: launched.already_running,
        }),
    )
        .into_response())
}

/// A request body where none is taken: anything in it is refused, naming it. In particular a
/// run's "forced by" and "approved by" cannot be written by the caller.
fn no_body(body: &Bytes) -> ApiResult<()> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(fields) if fields.is_empty() => Ok(()),
        Ok(fields) => Err(ApiError::BadRequest(format!(
            "this request takes no body fields, not {}; who forced or approved a run is taken \
             from the sign-in or API token",
            fields
                .keys()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Err(err) => Err(ApiError::BadRequest(format!(
            "the body is not a JSON object: {err}"
        ))),
    }
}

/// R21: starts a Manual run (`202`), or answers with the run in progress (`200`).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/runs", operation_id = "force_run", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses(
        (status = 202, description = "A new run was started", body = Started),
        (status = 200, description = "A run was already in progress (R21)", body = Started),
        (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 409, description = "The tenant or the service is paused; the message says by whom and why", body = super::openapi::ErrorBody)))]
pub(super) async fn force(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    body: Bytes,
) -> ApiResult<Response> {
    no_body(&body)?;
    let launched = launch_manual(&state, &access.caller, &access.tenant).await?;
    started(&state, &access.tenant, launched).await
}

/// R21: a Manual run in `caller`'s name (or the one in progress), recorded in the audit log; the
/// API and the console both force a sync through here.
pub(crate) async fn launch_manual(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
) -> ApiResult<Launched> {
    launch(
        state,
        caller,
        tenant,
        Trigger::manual(caller.name.clone()),
        RunOptions::default(),
    )
    .await
}

/// R18: `caller` approves the tenant's held run `run`, carried out at once by a new run; the
/// API and the console both approve through here.
pub(crate) async fn approve_held(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
    run: RunId,
) -> ApiResult<Launched> {
    // The held run must be this tenant's; who may approve is the extractor's to say, and
    // whether this approval stands (once, latest, recent) the runner's.
    tenant_run(state, tenant, run).await?;
    let launched = state.runner.approve(&tenant.key, run, &caller.name).await?;
    state
        .audit(
            caller,
            Action::RunApprove,
            Some(&tenant.key),
            json!({"approved_run": run, "run": launched.run_id}),
        )
        .await;
    Ok(launched)
}

/// R18: an admin approves a held run: `202` with the new run, which plans afresh and may
/// deactivate up to what was approved; `409` with the reason when the approval is refused.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/runs/{run}/approve", operation_id = "approve_run", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme"), ("run" = i64, Path, description = "The run's number", example = 1)),
    responses(
        (status = 202, description = "Approved: the new run", body = Started),
        (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 409, description = "Refused in the current state; the message says why", body = super::openapi::ErrorBody)))]
pub(super) async fn approve(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
    body: Bytes,
) -> ApiResult<Response> {
    no_body(&body)?;
    let tenant = &access.tenant;
    let launched = approve_held(&state, &access.caller, tenant, run).await?;
    let record = tenant_run(&state, tenant, launched.run_id).await?;
    let location = format!("/api/v1/tenants/{}/runs/{}", tenant.key, record.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Started {
            run: record,
            already_running: false,
        }),
    )
        .into_response())
}

/// R18: `caller` rejects the tenant's held run `run`, with an optional reason; the API and the
/// console both reject through here.
pub(crate) async fn reject_held(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
    run: RunId,
    reason: Option<&str>,
) -> ApiResult<Rejection> {
    tenant_run(state, tenant, run).await?;
    let rejection = state
        .runner
        .reject(&tenant.key, run, &caller.name, reason)
        .await?;
    state
        .audit(
            caller,
            Action::RunReject,
            Some(&tenant.key),
            json!({"rejected_run": run, "reason": rejection.reason}),
        )
        .await;
    Ok(rejection)
}

/// The body of a rejection: only the reason, if any; who rejects comes from the sign-in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: Option<String>,
}

#[derive(Serialize)]
pub(super) struct Rejected {
    run: RunRecord,
    rejection: Rejection,
}

/// R18: an admin rejects a held run: `200` with the run, now `rejected`, and who rejected it;
/// `409` with the reason when it is not held or was approved or rejected already.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/runs/{run}/reject", operation_id = "reject_run", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme"), ("run" = i64, Path, description = "The run's number", example = 1)),
    request_body(content = Object, description = "Empty, or {\"reason\": \"…\"} (at most 500 characters); who rejects is taken from the sign-in or API token", content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected: the run, now `rejected`, and who rejected it, when and why", body = Object),
        (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 409, description = "Refused in the current state; the message says why", body = super::openapi::ErrorBody)))]
pub(super) async fn reject(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
    body: Bytes,
) -> ApiResult<Json<Rejected>> {
    let body: RejectBody = if body.iter().all(u8::is_ascii_whitespace) {
        RejectBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::BadRequest(format!(
                "the body is a JSON object with at most a \"reason\"; who rejects is taken from \
                 the sign-in or API token: {err}"
            ))
        })?
    };
    let tenant = &access.tenant;
    let rejection =
        reject_held(&state, &access.caller, tenant, run, body.reason.as_deref()).await?;
    let run = tenant_run(&state, tenant, run).await?;
    Ok(Json(Rejected { run, rejection }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// `automatic` or `manual`.
    #[param(value_type = Option<String>)]
    trigger: Option<TriggerKind>,
    /// `running`, `succeeded`, `completed_with_errors`, `failed`, `held`, `rejected`,
    /// `interrupted` or `skipped`.
    #[param(value_type = Option<String>)]
    status: Option<RunStatus>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// At most 500; more is lowered to it.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RunsPage {
    #[schema(value_type = Vec<Object>)]
    runs: Vec<RunRecord>,
    #[serde(flatten)]
    limit: Limit,
}

/// The tenant's runs, newest first, filtered by trigger, status and start time.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/runs", operation_id = "list_runs", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme"), ListQuery),
    responses((status = 200, body = RunsPage), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<RunsPage>> {
    let limit = Limit::clamp(query.limit, 50, MAX_RUNS);
    let filter = RunFilter {
        trigger: query.trigger,
        status: query.status,
        from: query.from,
        to: query.to,
        limit: limit.limit as i64,
    };
    let runs = state.store().find_runs(&access.tenant.key, &filter).await?;
    Ok(Json(RunsPage { runs, limit }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct RunDetail {
    #[schema(value_type = Object)]
    run: RunRecord,
    /// What the run applied (R19).
    #[schema(value_type = Option<Object>)]
    applied: Option<PlanCounts>,
    /// What it planned, for a held, failed, stopped or running run, with the label to show it by.
    planned: Option<PlannedView>,
    groups: Vec<GroupView>,
    entries: usize,
    warnings: usize,
    errors: usize,
}

#[derive(Serialize, ToSchema)]
struct PlannedView {
    label: &'static str,
    #[schema(value_type = Object)]
    counts: PlanCounts,
}

/// A group of the run with its R2 label (`Sales [Synced Group]`).
#[derive(Serialize, ToSchema)]
#[schema(as = RunGroupView)]
struct GroupView {
    /// `entra_id`, `name`, `role`, `members_seen`, `status`, `message`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    group: GroupSummary,
    label: String,
}

/// A run with its per-group rows and counts.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/runs/{run}", operation_id = "show_run", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme"), ("run" = i64, Path, description = "The run's number", example = 1)),
    responses((status = 200, body = RunDetail), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn detail(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
) -> ApiResult<Json<RunDetail>> {
    let run = tenant_run(&state, &access.tenant, run).await?;
    let groups = state.store().run_groups(run.id).await?;
    let tally = state.store().entry_tally(run.id).await?;
    let count = |severity| tally.of_severity(severity) as usize;
    let summary = run.summary.as_ref();
    Ok(Json(RunDetail {
        applied: summary.map(|s| s.applied.clone()),
        planned: summary.and_then(|s| {
            s.planned_label(run.status).map(|label| PlannedView {
                label,
                counts: s.planned.clone(),
            })
        }),
        warnings: count(Severity::Warning),
        errors: count(Severity::Error),
        entries: tally.total() as usize,
        run,
        groups: groups
            .into_iter()
            .map(|group| GroupView {
                label: group.label(),
                group,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EntriesQuery {
    /// What a line is about: `run`, `group` or `user`.
    #[param(value_type = Option<String>)]
    subject: Option<SubjectKind>,
    /// `info`, `warning` or `error`.
    #[param(value_type = Option<String>)]
    severity: Option<Severity>,
    /// The lines after this line number: the `line` of the last line of the page before (the
    /// `next` link carries it). Absent: from the start.
    after: Option<i64>,
    /// At most 5,000; more is lowered to it.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct EntriesPage {
    /// How many lines match the filter in the whole report.
    total: u64,
    /// The line number this page starts after (0: the start).
    after: i64,
    #[serde(flatten)]
    limit: Limit,
    /// Each line with its `line` number.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<NumberedEntry>,
    /// The URL of the next page (same filter, `after` the last line here); absent on the last.
    next: Option<String>,
}

/// The report's lines, filtered, a page at a time: each page is read with a keyset query
/// (`after` a line number), never by loading the report.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/runs/{run}/entries", operation_id = "run_entries", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme"), ("run" = i64, Path, description = "The run's number", example = 1), EntriesQuery),
    responses((status = 200, body = EntriesPage), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn entries(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
    ApiQuery(query): ApiQuery<EntriesQuery>,
) -> ApiResult<Json<EntriesPage>> {
    let run = tenant_run(&state, &access.tenant, run).await?;
    let filter = EntryFilter {
        subject: query.subject,
        severity: query.severity,
        problems_only: false,
    };
    let after = query.after.unwrap_or(0).max(0);
    let limit = Limit::clamp(query.limit, 200, MAX_ENTRIES);
    // One line more than the page tells whether there is a next page.
    let mut entries = state
        .store()
        .entries_after(run.id, &filter, after, limit.limit as i64 + 1)
        .await?;
    let more = entries.len() > limit.limit;
    entries.truncate(limit.limit);
    let next = match entries.last() {
        Some(last) if more => Some(next_entries_url(
            &access.tenant,
            run.id,
            &query,
            last.line,
            &limit,
        )),
        _ => None,
    };
    let total = state.store().entry_tally(run.id).await?.matching(&filter);
    Ok(Json(EntriesPage {
        total,
        after,
        limit,
        entries,
        next,
    }))
}

/// `/api/v1/tenants/{tenant}/runs/{run}/entries?…&after={line}&limit=…`, the filter kept.
fn next_entries_url(
    tenant: &Tenant,
    run: RunId,
    query: &EntriesQuery,
    after: i64,
    limit: &Limit,
) -> String {
    let mut params = form_urlencoded::Serializer::new(String::new());
    if let Some(subject) = query.subject {
        params.append_pair("subject", subject.as_str());
    }
    if let Some(severity) = query.severity {
        params.append_pair("severity", severity.as_str());
    }
    params.append_pair("after", &after.to_string());
    params.append_pair("limit", &limit.limit.to_string());
    format!(
        "/api/v1/tenants/{}/runs/{run}/entries?{}",
        tenant.key,
        params.finish()
    )
}

#[derive(Serialize, ToSchema)]
pub(super) struct ProgressView {
    run_id: RunId,
    status: &'static str,
    stage: Option<String>,
    done: i64,
    total: i64,
    heartbeat_at: Option<DateTime<Utc>>,
}

/// R21: how far the run has come.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/runs/{run}/progress", operation_id = "run_progress", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme"), ("run" = i64, Path, description = "The run's number", example = 1)),
    responses((status = 200, body = ProgressView), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn progress(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
) -> ApiResult<Json<ProgressView>> {
    let run = tenant_run(&state, &access.tenant, run).await?;
    let (stage, done, total) = match run.progress {
        Some(p) => (Some(p.stage), p.done, p.total),
        None => (None, 0, 0),
    };
    Ok(Json(ProgressView {
        run_id: run.id,
        status: run.status.as_str(),
        stage,
        done,
        total,
        heartbeat_at: run.heartbeat_at,
    }))
}

/// R19: the run's report as an Excel workbook (Summary, Groups, Users, Errors).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/runs/{run}/report.xlsx", operation_id = "run_report", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme"), ("run" = i64, Path, description = "The run's number", example = 1)),
    responses(
        (status = 200, description = "The workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn report(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
) -> ApiResult<impl IntoResponse> {
    let tenant = access.tenant;
    let run = tenant_run(&state, &tenant, run).await?;
    state
        .audit(
            &access.caller,
            Action::ReportDownload,
            Some(&tenant.key),
            json!({"run": run.id}),
        )
        .await;
    // Written to an unnamed temporary file (the library needs a seekable writer; the file
    // vanishes when closed), then streamed: memory stays bounded whatever the report's size.
    let internal = |e: crate::report::ReportError| ApiError::Internal(e.into());
    let file = tempfile::tempfile().map_err(|e| internal(e.into()))?;
    let mut file = crate::report::write_report(
        state.store().as_ref(),
        &tenant,
        &run,
        crate::report::MAX_ROWS,
        file,
    )
    .await
    .map_err(internal)?;
    let length = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.metadata())
        .map_err(|e| internal(e.into()))?
        .len();
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(file)));
    let filename = crate::report::filename(&tenant, &run);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    ))
}
