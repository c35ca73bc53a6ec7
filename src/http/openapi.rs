//! The OpenAPI 3.1 description of `/api/v1`, generated with `utoipa` from the handlers' own
//! request, query and response types and their `#[utoipa::path]` annotations, and served at
//! `GET /api/v1/openapi.json` to any signed-in caller (person or API token).
//!
//! `tests/openapi.rs` checks that the document and the route table name the same operations, so
//! a route cannot be added without being described; `scripts/test` runs schemathesis against a
//! live `dirsync serve` with it.

use axum::Json;
use axum::http::Method;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{Guard, Route};
use crate::auth::extract::Signed;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::api(
        Method::GET,
        "/api/v1/openapi.json",
        Guard::Signed,
        openapi_json,
    )]
}

/// Every error the API answers with: a stable code and one sentence.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `not_found`, `bad_request`, `conflict`,
    /// `method_not_allowed`, `unsupported_media_type`, `payload_too_large`,
    /// `upstream_unavailable` or `internal`.
    code: String,
    message: String,
}

/// Adds the two ways to authenticate: an API token (`Authorization: Bearer dsy_…`) and the
/// session cookie a browser gets at sign-in.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("dsy_…")
                    .description(Some("An API token from `dirsync token create`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-dirsync_session",
                "The session cookie set at sign-in (`dirsync_session` on plain HTTP); \
                 state-changing requests also need the X-CSRF-Token header from GET /api/v1/me.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dirsync",
        description = "Keeps a target application's users and groups in step with Microsoft \
                       Entra ID. Every operation needs a signed-in person or an API token; a \
                       caller without a role on a tenant gets 404 for it, as for a tenant that \
                       does not exist."
    ),
    paths(
        openapi_json,
        super::me::me,
        super::tenants::list,
        super::tenants::show,
        super::tenants::replace,
        super::tenants::groups,
        super::tenants::preview,
        super::runs::force,
        super::runs::list,
        super::runs::detail,
        super::runs::entries,
        super::runs::progress,
        super::runs::approve,
        super::runs::reject,
        super::runs::report,
        super::pause::status,
        super::pause::pause_tenant,
        super::pause::resume_tenant,
        super::pause::pause_service,
        super::pause::resume_service,
        super::notifications::show,
        super::notifications::replace,
        super::notifications::test,
        super::notifications::credentials,
        super::access::list,
        super::access::grant,
        super::access::revoke,
        super::tokens::list,
        super::tokens::create,
        super::tokens::revoke,
        super::audit_log::list,
        super::people::sync_people_now,
        super::people::what_if_groups,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Credentials),
    security(("api_token" = []), ("session" = [])),
    tags(
        (name = "tenants", description = "Tenants, their selected groups and the R22 preview"),
        (name = "runs", description = "Runs: force, approve, list, report"),
        (name = "notifications", description = "A tenant's notifications (webhook, email, digest) and its credentials' expiry"),
        (name = "access", description = "Grants, API tokens and the audit log (operators)"),
        (name = "service", description = "Who you are and this document"),
    )
)]
struct ApiDoc;

/// The document, built once per call (it is small and only read by tools).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document: `/api/v1`'s operations, parameters and response schemas (it holds no data,
/// but like the rest of the API it is only for signed-in callers).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "service",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
async fn openapi_json(Signed(_): Signed) -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
