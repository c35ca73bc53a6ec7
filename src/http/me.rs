//! `GET /api/v1/me`: who the caller is, what they may do, and (for a session) the CSRF token its
//! state-changing requests must carry.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::Method;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Guard, Route};
use crate::auth::caller::Credential;
use crate::auth::extract::Signed;
use crate::domain::{AccessRole, TenantKey};

pub(super) fn routes() -> Vec<Route> {
    vec![Route::api(Method::GET, "/api/v1/me", Guard::Signed, me)]
}

#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    name: String,
    actor_id: String,
    /// `session` or `token`.
    signed_in_with: &'static str,
    operator: bool,
    /// Tenant key → `viewer` or `tenant_admin` (operators: every tenant).
    #[schema(value_type = std::collections::HashMap<String, String>)]
    tenants: BTreeMap<TenantKey, AccessRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// Who the caller is, their roles per tenant, and (for a session) the CSRF token.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "me", tag = "service",
    responses((status = 200, body = Me), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub(super) async fn me(Signed(caller): Signed) -> Json<Me> {
    Json(Me {
        name: caller.name.clone(),
        actor_id: caller.actor_id.clone(),
        signed_in_with: match caller.credential {
            Credential::Session { .. } => "session",
            Credential::Token { .. } => "token",
        },
        operator: caller.access.operator,
        tenants: caller.access.tenants.clone(),
        csrf_token: caller.csrf_token().map(str::to_owned),
    })
}
