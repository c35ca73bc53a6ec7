//! Tenants and their configuration (operators change it; everyone with a grant reads their own),
//! selected groups with member counts, and the R22 preview (tenant admins).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::{AppState, Guard, Route};
use crate::audit::Action;
use crate::auth::extract::{ConfigureTenant, Operate, Read, Signed, TenantAccess};
use crate::domain::{AccessRole, EntraObjectId, Role};
use crate::plan::{GroupSummary, Hold, MAX_GROUP_MEMBERS, PlanCounts};
use crate::source::GroupCountOutcome;
use crate::sync::dry_run;
use crate::tenant::{SourceSettings, TargetSettings, Tenant, TenantSpec};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::api(Method::GET, "/api/v1/tenants", Guard::Signed, list),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}",
            Guard::Tenant(AccessRole::Viewer),
            show,
        ),
        Route::api(
            Method::PUT,
            "/api/v1/tenants/{tenant}",
            Guard::ConfigureTenant,
            replace,
        ),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/groups",
            Guard::Tenant(AccessRole::Viewer),
            groups,
        ),
        Route::api(
            Method::GET,
            "/api/v1/tenants/{tenant}/preview",
            Guard::Tenant(AccessRole::TenantAdmin),
            preview,
        ),
    ]
}

/// A tenant as the API shows it. Secret settings serialize as `"[redacted]"` (or their `env:`
/// reference) by construction: their type has no other way out.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantView {
    key: String,
    name: String,
    entra_tenant_id: String,
    time_zone: String,
    report_retention_months: u8,
    deactivation_status: String,
    deletion_threshold: u32,
    groups: Vec<GroupView>,
    /// The per-tenant Graph app registration, secrets redacted.
    #[schema(value_type = Object)]
    source: SourceSettings,
    /// The target connection (`kind` and its settings), secrets redacted.
    #[schema(value_type = Option<Object>)]
    target: Option<TargetSettings>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TenantGroupView)]
struct GroupView {
    #[schema(value_type = String)]
    id: EntraObjectId,
    /// `internal` or `basic`.
    #[schema(value_type = String)]
    role: Role,
    /// The label the UI and reports show (R2).
    #[schema(value_type = String)]
    label_kind: crate::domain::GroupKind,
}

fn view(tenant: &Tenant) -> TenantView {
    TenantView {
        key: tenant.key.to_string(),
        name: tenant.display_name.clone(),
        entra_tenant_id: tenant.entra_tenant_id.to_string(),
        time_zone: tenant.time_zone.name().to_owned(),
        report_retention_months: tenant.report_retention.months(),
        deactivation_status: tenant.policy.deactivation_status.to_string(),
        deletion_threshold: tenant.policy.deletion_threshold,
        groups: tenant
            .policy
            .selected_groups
            .iter()
            .map(|g| GroupView {
                id: g.entra_id.clone(),
                role: g.role,
                label_kind: crate::domain::GroupKind::synced(g.role),
            })
            .collect(),
        source: tenant.source.clone(),
        target: tenant.target.clone(),
    }
}

/// The tenants the caller may see: every one for an operator, their own for the others.
#[utoipa::path(get, path = "/api/v1/tenants", operation_id = "list_tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantView>), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    Signed(caller): Signed,
) -> ApiResult<Json<Vec<TenantView>>> {
    Ok(Json(
        state
            .store()
            .tenants()
            .await?
            .iter()
            .filter(|t| caller.access.role_on(&t.key).is_some())
            .map(view)
            .collect(),
    ))
}

/// One tenant's configuration, secret settings redacted.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", operation_id = "show_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 200, body = TenantView), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn show(access: TenantAccess<Read>) -> ApiResult<Json<TenantView>> {
    Ok(Json(view(&access.tenant)))
}

/// Creates or replaces a tenant's configuration (operators); the body is a tenant spec, as in the
/// tenant file. `"[redacted]"` for a secret keeps the stored one while the connection it was
/// given for is unchanged.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}", operation_id = "replace_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    request_body(content = Object, description = "The tenant-file fields as JSON (see the README's tenant file)"),
    responses((status = 200, body = TenantView), (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = super::openapi::ErrorBody), (status = 400, description = "A parameter or the body is not valid; the message names it", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody)))]
pub(super) async fn replace(
    State(state): State<AppState>,
    configure: ConfigureTenant,
    ApiJson(spec): ApiJson<TenantSpec>,
) -> ApiResult<Json<TenantView>> {
    let tenant = save_spec(&state, &configure, spec).await?;
    Ok(Json(view(&tenant)))
}

/// Validates `spec` for the tenant being configured, keeps stored secrets where the spec says
/// `"[redacted]"`, saves it and records it in the audit log; the API's `PUT` and the console's
/// settings form both save through here.
pub(crate) async fn save_spec(
    state: &AppState,
    configure: &ConfigureTenant,
    mut spec: TenantSpec,
) -> ApiResult<Tenant> {
    let key = configure.key.as_str();
    if spec.key.is_empty() {
        spec.key = key.to_owned();
    }
    if spec.key != key {
        return Err(ApiError::BadRequest(format!(
            "the body's key {:?} differs from the URL's {key:?}",
            spec.key
        )));
    }
    let mut tenant = spec
        .validate_with(&state.secrets)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tenant
        .keep_stored_secrets(configure.current.as_ref())
        .map_err(|problem| ApiError::BadRequest(format!("tenant {key:?}: {problem}")))?;
    let saved = state.store().upsert_tenant(&tenant).await?;
    // Issue 14: a change to the connection settings is a fix: it lifts a quarantine.
    crate::schedule::lift_quarantine_after_fix(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &state.runner.context().settings.quarantine,
        &crate::audit::Actor::of(&configure.caller),
        configure.current.as_ref(),
        &tenant,
        false,
        state.auth.now(),
    )
    .await?;
    let shown = view(&tenant);
    state
        .audit(
            &configure.caller,
            if saved.created {
                Action::TenantCreate
            } else {
                Action::TenantUpdate
            },
            Some(&tenant.key),
            json!({
                "connection_changed": saved.connection_changed,
                "tenant": serde_json::to_value(&shown).unwrap_or_default(),
            }),
        )
        .await;
    Ok(tenant)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct GroupCountView {
    #[schema(value_type = String)]
    pub id: EntraObjectId,
    /// `internal` or `basic`.
    #[schema(value_type = String)]
    pub role: Role,
    pub name: Option<String>,
    pub direct_user_members: Option<u64>,
    /// R16: too many members to sync.
    pub over_limit: bool,
    /// `found`, `deleted` or `failed`.
    pub outcome: &'static str,
    pub message: Option<String>,
}

/// The selected groups with their Entra names and direct user member counts (R22).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/groups", operation_id = "tenant_groups", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 200, body = Vec<GroupCountView>), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 502, description = "Entra or the target could not be reached", body = super::openapi::ErrorBody)))]
pub(super) async fn groups(
    State(state): State<AppState>,
    access: TenantAccess<Read>,
) -> ApiResult<Json<Vec<GroupCountView>>> {
    Ok(Json(group_counts(&state, &access.tenant).await?))
}

/// Each selected group's Entra name and direct user member count, read now (R22).
pub(crate) async fn group_counts(
    state: &AppState,
    tenant: &Tenant,
) -> ApiResult<Vec<GroupCountView>> {
    let source = state
        .runner
        .context()
        .connector
        .source(tenant)
        .await
        .map_err(ApiError::Upstream)?;
    let ids: Vec<EntraObjectId> = tenant
        .policy
        .selected_groups
        .iter()
        .map(|g| g.entra_id.clone())
        .collect();
    let counts = source
        .count_members(&ids)
        .await
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    Ok(tenant
        .policy
        .selected_groups
        .iter()
        .zip(counts)
        .map(|(selected, count)| match count.outcome {
            GroupCountOutcome::Found {
                display_name,
                direct_user_members,
            } => GroupCountView {
                id: selected.entra_id.clone(),
                role: selected.role,
                name: Some(display_name),
                direct_user_members: Some(direct_user_members),
                over_limit: direct_user_members > MAX_GROUP_MEMBERS as u64,
                outcome: "found",
                message: None,
            },
            GroupCountOutcome::Deleted => GroupCountView {
                id: selected.entra_id.clone(),
                role: selected.role,
                name: None,
                direct_user_members: None,
                over_limit: false,
                outcome: "deleted",
                message: Some("the group does not exist in Entra".to_owned()),
            },
            GroupCountOutcome::Failed { reason } => GroupCountView {
                id: selected.entra_id.clone(),
                role: selected.role,
                name: None,
                direct_user_members: None,
                over_limit: false,
                outcome: "failed",
                message: Some(reason),
            },
        })
        .collect())
}

#[derive(Serialize, ToSchema)]
pub(super) struct PreviewView {
    groups: Vec<GroupCountView>,
    /// What a run now would do (a dry run: nothing is written).
    #[schema(value_type = Object)]
    plan: PlanCounts,
    #[schema(value_type = Vec<Object>)]
    plan_groups: Vec<GroupSummary>,
    /// Set when the deletion guard would hold the run (R18).
    #[schema(value_type = Option<Object>)]
    hold: Option<Hold>,
}

/// R22: per group its name, member count and over-limit flag, and the dry run's counts.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/preview", operation_id = "tenant_preview", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's key", example = "acme")),
    responses((status = 200, body = PreviewView), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "The caller's role does not allow it", body = super::openapi::ErrorBody), (status = 404, description = "No such tenant (or none the caller may see), or no such item", body = super::openapi::ErrorBody), (status = 502, description = "Entra or the target could not be reached", body = super::openapi::ErrorBody)))]
pub(super) async fn preview(
    State(state): State<AppState>,
    access: TenantAccess<Operate>,
) -> ApiResult<Json<PreviewView>> {
    let tenant = access.tenant;
    let groups = group_counts(&state, &tenant).await?;
    let plan = dry_run(state.runner.context(), &tenant.key).await?;
    Ok(Json(PreviewView {
        groups,
        plan: plan.counts(),
        plan_groups: plan.groups,
        hold: plan.hold,
    }))
}
