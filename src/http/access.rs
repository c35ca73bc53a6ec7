//! Access grants (operators): who may use which tenant, with which role. A person is their
//! Entra directory and object IDs (`tid`, `oid` in their ID token); the label is for reading.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Deserialize;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only the grants that hold on this tenant (operators included).
    tenant: Option<String>,
}

async fn list(
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    entra_tenant_id: String,
    entra_object_id: String,
    role: AccessRole,
    tenant: Option<String>,
    label: Option<String>,
}

/// Grants a role (or changes the role already granted on that scope).
async fn grant(
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

async fn revoke(
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
