//! Access grants (operators): who may use which tenant, with which role. A person is their
//! Entra directory and object IDs (`tid`, `oid` in their ID token); the label is for reading.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, Guard, Route};
use crate::audit::Action;
use crate::auth::caller::Caller;
use crate::auth::extract::Operator;
use crate::auth::manage::{ManageError, new_grant};
use crate::domain::{AccessRole, TenantKey};
use crate::store::access::GrantRecord;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::api(Method::GET, "/api/v1/access/grants", Guard::Operator, list),
        Route::api(
            Method::POST,
            "/api/v1/access/grants",
            Guard::Operator,
            grant,
        ),
        Route::api(
            Method::DELETE,
            "/api/v1/access/grants/{grant}",
            Guard::Operator,
            revoke,
        ),
    ]
}

impl From<ManageError> for ApiError {
    fn from(err: ManageError) -> Self {
        match err {
            ManageError::Invalid(message) => Self::BadRequest(message),
            ManageError::Store(err) => err.into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only the grants that hold on this tenant (operators included).
    tenant: Option<String>,
}

/// Every grant, or those that hold on one tenant (operators included).
#[utoipa::path(get, path = "/api/v1/access/grants", operation_id = "list_grants", tag = "access",
    params(ListQuery),
    responses((status = 200, description = "Grants: id, identity (tid, oid), role, tenant, label, granted_by, granted_at", body = Vec<Object>), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    Operator(_): Operator,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<GrantRecord>>> {
    let tenant = query
        .tenant
        .as_deref()
        .map(TenantKey::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("query parameter tenant: {e}")))?;
    Ok(Json(state.auth.access().grants(tenant.as_ref()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantBody {
    entra_tenant_id: String,
    entra_object_id: String,
    /// `operator`, `tenant_admin` or `viewer`.
    #[schema(value_type = String)]
    role: AccessRole,
    /// The dirsync tenant (not for operators).
    tenant: Option<String>,
    label: Option<String>,
}

/// Grants a role (or changes the role already granted on that scope).
#[utoipa::path(post, path = "/api/v1/access/grants", operation_id = "create_grant", tag = "access",
    request_body = GrantBody,
    responses((status = 201, description = "The grant", body = Object), (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = super::openapi::ErrorBody), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody)))]
pub(super) async fn grant(
    State(state): State<AppState>,
    Operator(caller): Operator,
    ApiJson(body): ApiJson<GrantBody>,
) -> ApiResult<(StatusCode, Json<GrantRecord>)> {
    let record = grant_access(
        &state,
        &caller,
        &body.entra_tenant_id,
        &body.entra_object_id,
        body.role,
        body.tenant.as_deref(),
        body.label.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

#[utoipa::path(delete, path = "/api/v1/access/grants/{grant}", operation_id = "revoke_grant", tag = "access",
    params(("grant" = i64, Path, description = "The grant's ID")),
    responses((status = 200, description = "The grant taken away", body = Object), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    Operator(caller): Operator,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<GrantRecord>> {
    Ok(Json(revoke_access(&state, &caller, id).await?))
}

/// Grants a role and records it in the audit log (the API and the console's Access page).
pub(crate) async fn grant_access(
    state: &AppState,
    caller: &Caller,
    entra_tenant_id: &str,
    entra_object_id: &str,
    role: AccessRole,
    tenant: Option<&str>,
    label: Option<&str>,
) -> ApiResult<GrantRecord> {
    let grant = new_grant(
        entra_tenant_id,
        entra_object_id,
        role,
        tenant,
        label,
        &caller.name,
    )?;
    let record = state.auth.access().grant(&grant).await?;
    state
        .audit(
            caller,
            Action::Grant,
            record.tenant.as_ref(),
            serde_json::to_value(&record).unwrap_or_default(),
        )
        .await;
    Ok(record)
}

/// Revokes grant `id` and records it in the audit log.
pub(crate) async fn revoke_access(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<GrantRecord> {
    let record = state
        .auth
        .access()
        .revoke_grant(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no grant {id}")))?;
    state
        .audit(
            caller,
            Action::GrantRevoke,
            record.tenant.as_ref(),
            serde_json::to_value(&record).unwrap_or_default(),
        )
        .await;
    Ok(record)
}
