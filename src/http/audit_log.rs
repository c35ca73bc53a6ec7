//! `GET /api/v1/audit` (operators): the audit log, newest first, filtered by tenant, action,
//! actor and time, paged by `before` (the last event ID of the previous page).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiQuery, Limit};
use super::{AppState, Guard, Route};
use crate::audit::Action;
use crate::auth::extract::Operator;
use crate::domain::TenantKey;
use crate::store::access::{AuditFilter, AuditRecord};

/// The most events one page returns.
pub const MAX_EVENTS: usize = 1000;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::api(
        Method::GET,
        "/api/v1/audit",
        Guard::Operator,
        list,
    )]
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    tenant: Option<String>,
    action: Option<String>,
    /// `entra:{tid}/{oid}`, `token:{id}` or `cli:{user}@{host}`.
    actor: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    /// id, at, tenant, actor, actor_id, action, outcome, detail, source_ip, forwarded_for, user_agent.
    #[schema(value_type = Vec<Object>)]
    events: Vec<AuditRecord>,
    /// Pass as `before` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
    #[serde(flatten)]
    limit: Limit,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "audit_log", tag = "access",
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    Operator(_): Operator,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let tenant = query
        .tenant
        .as_deref()
        .map(TenantKey::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("query parameter tenant: {e}")))?;
    if let Some(action) = query.action.as_deref() {
        if Action::parse(action).is_none() {
            let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            return Err(ApiError::BadRequest(format!(
                "query parameter action: {action:?} is not one of {}",
                known.join(", ")
            )));
        }
    }
    let limit = Limit::clamp(query.limit, 100, MAX_EVENTS);
    let events = state
        .auth
        .access()
        .audit_events(&AuditFilter {
            tenant,
            action: query.action,
            actor_id: query.actor,
            since: query.since,
            until: query.until,
            before_id: query.before,
            limit: limit.limit as i64,
        })
        .await?;
    let next_before = (events.len() == limit.limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        events,
        next_before,
        limit,
    }))
}
