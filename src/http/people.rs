//! Issue 14 in the API: sync up to five people now (`POST …/sync-people`, tenant admins), and
//! the what-if of a proposed change to the selected groups (`POST …/what-if`).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::runs::tenant_run;
use super::{AppState, Guard, Route};
use crate::audit::Action;
use crate::auth::caller::Caller;
use crate::auth::extract::{Operate, TenantAccess};
use crate::domain::{AccessRole, EntraObjectId, Role};
use crate::plan::SelectedGroup;
use crate::store::RunRecord;
use crate::sync::people::{PersonSteps, SyncPeopleError, person_steps, sync_people};
use crate::sync::what_if::{WhatIf, what_if};
use crate::tenant::{GroupSpec, Tenant};

pub(super) fn routes() -> Vec<Route> {
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/sync-people",
            operate,
            sync_people_now,
        ),
        Route::api(
            Method::POST,
            "/api/v1/tenants/{tenant}/what-if",
            operate,
            what_if_groups,
        ),
    ]
}

/// Whom to sync: one to five emails (user principal names) or Entra object IDs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncPeopleBody {
    #[schema(example = json!(["ada@contoso.com", "0b6f1a52-9d3c-4c43-9c1e-2f1f7d6a0e11"]))]
    people: Vec<String>,
}

/// An on-demand run and what it did, person by person.
#[derive(Serialize, ToSchema)]
pub(super) struct PeopleSynced {
    /// The run (trigger `on_demand`): id, status, times, summary.
    #[schema(value_type = Object)]
    run: RunRecord,
    /// Each person's steps: found in Entra, in scope, matched or created in the target, fields
    /// changed old → new, groups joined and left; warnings and errors.
    people: Vec<PersonSteps>,
}

/// Syncs `people` for `tenant` in `caller`'s name and records it in the audit log; the API and
/// the console both sync people through here.
pub(crate) async fn sync_people_as(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
    people: &[String],
) -> ApiResult<(RunRecord, Vec<PersonSteps>)> {
    let outcome = sync_people(state.runner.context(), &tenant.key, &caller.name, people)
        .await
        .map_err(|err| match err {
            SyncPeopleError::Invalid(message) => ApiError::BadRequest(message),
            already @ SyncPeopleError::AlreadyRunning(_) => ApiError::Conflict(already.to_string()),
            SyncPeopleError::Sync(err) => err.into(),
        })?;
    state
        .audit(
            caller,
            Action::RunForce,
            Some(&tenant.key),
            json!({"run": outcome.run_id, "on_demand": true, "people": people}),
        )
        .await;
    let run = tenant_run(state, tenant, outcome.run_id).await?;
    let entries = state.store().run_entries(run.id).await?;
    Ok((run, person_steps(&entries)))
}

/// Issue 14: syncs up to five people now — read from Entra on their own, planned by the same
/// rules, applied, and recorded as a small run with its own report (`200` when it has finished).
/// Only they are touched. `409` while another run is in progress (R21).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/sync-people", operation_id = "sync_people", tag = "runs",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    request_body = SyncPeopleBody,
    responses(
        (status = 200, description = "The on-demand run finished: the run and each person's steps", body = PeopleSynced),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = super::openapi::ErrorBody), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 409, description = "Refused in the current state; the message says why", body = super::openapi::ErrorBody)))]
pub(super) async fn sync_people_now(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    ApiJson(body): ApiJson<SyncPeopleBody>,
) -> ApiResult<Json<PeopleSynced>> {
    let (run, people) =
        sync_people_as(&state, &access.caller, &access.tenant, &body.people).await?;
    Ok(Json(PeopleSynced { run, people }))
}

/// The proposed selected groups, in the shape of the tenant update's `groups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WhatIfBody {
    #[schema(value_type = Vec<Object>, example = json!([{"id": "0b6f1a52-9d3c-4c43-9c1e-2f1f7d6a0e11", "role": "internal"}]))]
    groups: Vec<GroupSpec>,
}

/// Checks proposed groups as the tenant file does: each a GUID with a role, no GUID twice.
pub(crate) fn proposed_groups(groups: &[GroupSpec]) -> ApiResult<Vec<SelectedGroup>> {
    let mut selected: Vec<SelectedGroup> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let entra_id = EntraObjectId::parse(group.id.trim()).map_err(|_| {
            ApiError::BadRequest(format!(
                "groups[{i}].id {:?} is not an Entra group object ID (a GUID)",
                group.id
            ))
        })?;
        let role: Role = group
            .role
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("groups[{i}].role: {e}")))?;
        if selected.iter().any(|g| g.entra_id == entra_id) {
            return Err(ApiError::BadRequest(format!(
                "groups[{i}]: group {entra_id} is listed twice"
            )));
        }
        selected.push(SelectedGroup { entra_id, role });
    }
    Ok(selected)
}

/// Issue 14: what a run would do if the tenant selected these groups with these roles instead —
/// counts, and the people it would create, move, deactivate and the groups it would convert
/// (lists capped at 200, with totals). Nothing is saved or written.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/what-if", operation_id = "tenant_what_if", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    request_body = WhatIfBody,
    responses(
        (status = 200, description = "What a run under the proposed groups would do", body = WhatIf),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = super::openapi::ErrorBody), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 502, description = "Entra or the target could not be reached", body = super::openapi::ErrorBody)))]
pub(super) async fn what_if_groups(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
    ApiJson(body): ApiJson<WhatIfBody>,
) -> ApiResult<Json<WhatIf>> {
    let groups = proposed_groups(&body.groups)?;
    Ok(Json(
        what_if(state.runner.context(), &access.tenant.key, groups).await?,
    ))
}
