//! API tokens for automation (operators): created with a role and scope and an expiry, shown
//! once, listed by their visible prefix with their last use, revoked at any time.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath};
use super::{AppState, Guard, Route};
use crate::audit::Action;
use crate::auth::caller::Caller;
use crate::auth::extract::Operator;
use crate::auth::manage::issue_token;
use crate::domain::AccessRole;
use crate::store::access::TokenRecord;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::api(Method::GET, "/api/v1/tokens", Guard::Operator, list),
        Route::api(Method::POST, "/api/v1/tokens", Guard::Operator, create),
        Route::api(
            Method::DELETE,
            "/api/v1/tokens/{token}",
            Guard::Operator,
            revoke,
        ),
    ]
}

/// Every token, with its prefix, scope, expiry, last use and state (never the token itself).
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "list_tokens", tag = "access",
    responses((status = 200, description = "Tokens: id, prefix, name, role, tenant, created_by, created_at, expires_at, last_used_at, revoked_at, revoked_by", body = Vec<Object>), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    Operator(_): Operator,
) -> ApiResult<Json<Vec<TokenRecord>>> {
    Ok(Json(state.auth.access().tokens().await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    name: String,
    /// `operator`, `tenant_admin` or `viewer`.
    #[schema(value_type = String)]
    role: AccessRole,
    tenant: Option<String>,
    expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Created {
    /// The token itself: shown this once, stored only as a hash.
    token: String,
    /// The token's record, as `GET /api/v1/tokens` lists it.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    record: TokenRecord,
}

/// Creates a token: the answer holds it, once.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "create_token", tag = "access",
    request_body = CreateBody,
    responses((status = 201, body = Created), (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = super::openapi::ErrorBody), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    Operator(caller): Operator,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let (token, record) = create_token(
        &state,
        &caller,
        &body.name,
        body.role,
        body.tenant.as_deref(),
        body.expires_in_days,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            token: token.expose_secret().to_owned(),
            record,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{token}", operation_id = "revoke_token", tag = "access",
    params(("token" = i64, Path, description = "The token's ID")),
    responses((status = 200, description = "The revoked token's record", body = Object), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    Operator(caller): Operator,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenRecord>> {
    Ok(Json(revoke_token(&state, &caller, id).await?))
}

/// Issues an API token (shown once) and records it in the audit log (the API and the console's
/// API tokens page).
pub(crate) async fn create_token(
    state: &AppState,
    caller: &Caller,
    name: &str,
    role: AccessRole,
    tenant: Option<&str>,
    expires_in_days: Option<u32>,
) -> ApiResult<(secrecy::SecretString, TokenRecord)> {
    let (token, record) = issue_token(
        state.auth.access().as_ref(),
        &state.auth.settings().tokens,
        name,
        role,
        tenant,
        expires_in_days,
        &caller.name,
        state.auth.now(),
    )
    .await?;
    state
        .audit(
            caller,
            Action::TokenCreate,
            record.tenant.as_ref(),
            serde_json::to_value(&record).unwrap_or_default(),
        )
        .await;
    Ok((token, record))
}

/// Revokes token `id` and records it in the audit log.
pub(crate) async fn revoke_token(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<TokenRecord> {
    let record = state
        .auth
        .access()
        .revoke_token(id, &caller.name, state.auth.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no token {id}")))?;
    state
        .audit(
            caller,
            Action::TokenRevoke,
            record.tenant.as_ref(),
            serde_json::to_value(&record).unwrap_or_default(),
        )
        .await;
    Ok(record)
}
