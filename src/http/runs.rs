//! Runs: force a sync (R21), list and inspect runs and their reports (R19), follow progress,
//! approve a held run (R18), and download a report as `.xlsx`.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::tenants::load_tenant;
use crate::plan::{GroupSummary, PlanCounts, Severity};
use crate::store::{
    ReportEntry, RunFilter, RunId, RunOptions, RunRecord, RunStatus, Trigger, TriggerKind,
};
use crate::tenant::Tenant;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tenant}/runs", get(list).post(force))
        .route("/api/v1/tenants/{tenant}/runs/{run}", get(detail))
        .route("/api/v1/tenants/{tenant}/runs/{run}/entries", get(entries))
        .route(
            "/api/v1/tenants/{tenant}/runs/{run}/progress",
            get(progress),
        )
        .route("/api/v1/tenants/{tenant}/runs/{run}/approve", post(approve))
        .route(
            "/api/v1/tenants/{tenant}/runs/{run}/report.xlsx",
            get(report),
        )
}

#[derive(Debug, Default, Deserialize)]
struct ForceBody {
    /// Who forces the run, for the report (R19).
    by: Option<String>,
}

#[derive(Serialize)]
struct Started {
    run: RunRecord,
    /// R21: the run was already in progress; no new one was started.
    already_running: bool,
}

/// Loads a run and checks that it belongs to the tenant in the URL.
async fn tenant_run(state: &AppState, tenant: &Tenant, run: RunId) -> ApiResult<RunRecord> {
    match state.store().run(run).await? {
        Some(record) if record.tenant == tenant.key => Ok(record),
        _ => Err(ApiError::NotFound(format!(
            "tenant {} has no run {run}",
            tenant.key
        ))),
    }
}

async fn start(
    state: &AppState,
    tenant: &Tenant,
    trigger: Trigger,
    options: RunOptions,
) -> ApiResult<Response> {
    let launched = state.runner.launch(&tenant.key, trigger, options).await?;
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

/// R21: starts a Manual run (`202`), or answers with the run in progress (`200`).
async fn force(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Option<Json<ForceBody>>,
) -> ApiResult<Response> {
    let tenant = load_tenant(&state, &key).await?;
    let by = body
        .and_then(|Json(b)| b.by)
        .unwrap_or_else(|| "api".to_owned());
    start(&state, &tenant, Trigger::manual(by), RunOptions::default()).await
}

#[derive(Debug, Default, Deserialize)]
struct ApproveBody {
    /// Who approves (R18: a named person).
    by: Option<String>,
}

/// R18: an admin approves a held run: `202` with the new run, which plans afresh and may
/// deactivate up to what was approved; `409` with the reason when the approval is refused.
async fn approve(
    State(state): State<AppState>,
    Path((key, run)): Path<(String, RunId)>,
    body: Option<Json<ApproveBody>>,
) -> ApiResult<Response> {
    let tenant = load_tenant(&state, &key).await?;
    let approver = body.and_then(|Json(b)| b.by).unwrap_or_default();
    let launched = state.runner.approve(&tenant.key, run, &approver).await?;
    let run = tenant_run(&state, &tenant, launched.run_id).await?;
    let location = format!("/api/v1/tenants/{}/runs/{}", tenant.key, run.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Started {
            run,
            already_running: false,
        }),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    trigger: Option<String>,
    status: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<RunRecord>>> {
    let tenant = load_tenant(&state, &key).await?;
    let trigger = match query
        .trigger
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some("automatic") => Some(TriggerKind::Automatic),
        Some("manual") => Some(TriggerKind::Manual),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "trigger {other:?} is not automatic or manual"
            )));
        }
    };
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(RunStatus::parse(&text.replace('_', " ")).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status {text:?} is not one of running, succeeded, completed_with_errors, failed, held"
            ))
        })?),
    };
    let filter = RunFilter {
        trigger,
        status,
        from: query.from,
        to: query.to,
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    };
    Ok(Json(state.store().find_runs(&tenant.key, &filter).await?))
}

#[derive(Serialize)]
struct RunDetail {
    run: RunRecord,
    /// What the run applied (R19).
    applied: Option<PlanCounts>,
    /// What it planned, for a held, failed, stopped or running run, with the label to show it by.
    planned: Option<PlannedView>,
    groups: Vec<GroupView>,
    entries: usize,
    warnings: usize,
    errors: usize,
}

#[derive(Serialize)]
struct PlannedView {
    label: &'static str,
    counts: PlanCounts,
}

/// A group of the run with its R2 label (`Sales [Synced Group]`).
#[derive(Serialize)]
struct GroupView {
    #[serde(flatten)]
    group: GroupSummary,
    label: String,
}

async fn detail(
    State(state): State<AppState>,
    Path((key, run)): Path<(String, RunId)>,
) -> ApiResult<Json<RunDetail>> {
    let tenant = load_tenant(&state, &key).await?;
    let run = tenant_run(&state, &tenant, run).await?;
    let groups = state.store().run_groups(run.id).await?;
    let entries = state.store().run_entries(run.id).await?;
    let count = |severity| entries.iter().filter(|e| e.severity == severity).count();
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
        entries: entries.len(),
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

#[derive(Debug, Deserialize)]
struct EntriesQuery {
    /// `user`, `group` or `run`.
    subject: Option<String>,
    /// `info`, `warning` or `error`.
    severity: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct EntriesPage {
    total: usize,
    offset: usize,
    entries: Vec<ReportEntry>,
}

/// The report's lines, filtered and paged.
async fn entries(
    State(state): State<AppState>,
    Path((key, run)): Path<(String, RunId)>,
    Query(query): Query<EntriesQuery>,
) -> ApiResult<Json<EntriesPage>> {
    let tenant = load_tenant(&state, &key).await?;
    let run = tenant_run(&state, &tenant, run).await?;
    let all = state.store().run_entries(run.id).await?;
    let matching: Vec<ReportEntry> = all
        .into_iter()
        .filter(|e| {
            query
                .subject
                .as_deref()
                .is_none_or(|s| e.subject.as_str() == s)
        })
        .filter(|e| {
            query
                .severity
                .as_deref()
                .is_none_or(|s| e.severity.as_str() == s)
        })
        .collect();
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(200).clamp(1, 5000);
    Ok(Json(EntriesPage {
        total: matching.len(),
        offset,
        entries: matching.into_iter().skip(offset).take(limit).collect(),
    }))
}

#[derive(Serialize)]
struct ProgressView {
    run_id: RunId,
    status: &'static str,
    stage: Option<String>,
    done: i64,
    total: i64,
    heartbeat_at: Option<DateTime<Utc>>,
}

/// R21: how far the run has come.
async fn progress(
    State(state): State<AppState>,
    Path((key, run)): Path<(String, RunId)>,
) -> ApiResult<Json<ProgressView>> {
    let tenant = load_tenant(&state, &key).await?;
    let run = tenant_run(&state, &tenant, run).await?;
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
async fn report(
    State(state): State<AppState>,
    Path((key, run)): Path<(String, RunId)>,
) -> ApiResult<impl IntoResponse> {
    let tenant = load_tenant(&state, &key).await?;
    let run = tenant_run(&state, &tenant, run).await?;
    let groups = state.store().run_groups(run.id).await?;
    let entries = state.store().run_entries(run.id).await?;
    let bytes = crate::report::workbook(&tenant, &run, &groups, &entries)
        .map_err(|e| ApiError::Internal(e.into()))?;
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
        ],
        bytes,
    ))
}
