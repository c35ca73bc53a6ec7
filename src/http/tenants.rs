//! Tenants and their configuration (operators), selected groups with member counts, and the
//! R22 preview.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::domain::{EntraObjectId, Role, TenantKey};
use crate::plan::{GroupSummary, Hold, MAX_GROUP_MEMBERS, PlanCounts};
use crate::source::GroupCountOutcome;
use crate::sync::dry_run;
use crate::tenant::{Tenant, TenantSpec};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants", get(list))
        .route("/api/v1/tenants/{tenant}", get(show).put(replace))
        .route("/api/v1/tenants/{tenant}/groups", get(groups))
        .route("/api/v1/tenants/{tenant}/preview", get(preview))
}

pub(super) fn tenant_key(text: &str) -> ApiResult<TenantKey> {
    TenantKey::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub(super) async fn load_tenant(state: &AppState, key: &str) -> ApiResult<Tenant> {
    let key = tenant_key(key)?;
    state
        .store()
        .tenant(&key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant with key {key:?}")))
}

/// A tenant as the API shows it: secrets in the target and source settings are redacted.
#[derive(Serialize)]
struct TenantView {
    key: String,
    name: String,
    entra_tenant_id: String,
    time_zone: String,
    report_retention_months: u8,
    deactivation_status: String,
    deletion_threshold: u32,
    groups: Vec<GroupView>,
    source: Value,
    target: Value,
}

#[derive(Serialize)]
struct GroupView {
    id: EntraObjectId,
    role: Role,
    /// The label the UI and reports show (R2).
    label_kind: crate::domain::GroupKind,
}

fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let secret = ["secret", "token", "password", "key"]
                        .iter()
                        .any(|s| lower.contains(s));
                    (
                        k.clone(),
                        if secret {
                            Value::String("[redacted]".to_owned())
                        } else {
                            redact(v)
                        },
                    )
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
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
        source: redact(&tenant.source),
        target: redact(&tenant.target),
    }
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<TenantView>>> {
    Ok(Json(
        state.store().tenants().await?.iter().map(view).collect(),
    ))
}

async fn show(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<TenantView>> {
    Ok(Json(view(&load_tenant(&state, &key).await?)))
}

/// Creates or replaces a tenant's configuration; the body is a tenant spec (as in the tenant file).
async fn replace(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(mut spec): Json<TenantSpec>,
) -> ApiResult<Json<TenantView>> {
    if spec.key.is_empty() {
        spec.key = key.clone();
    }
    if spec.key != key {
        return Err(ApiError::BadRequest(format!(
            "the body's key {:?} differs from the URL's {key:?}",
            spec.key
        )));
    }
    let tenant = spec
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state.store().upsert_tenant(&tenant).await?;
    Ok(Json(view(&tenant)))
}

#[derive(Serialize)]
struct GroupCountView {
    id: EntraObjectId,
    role: Role,
    name: Option<String>,
    direct_user_members: Option<u64>,
    /// R16: too many members to sync.
    over_limit: bool,
    outcome: &'static str,
    message: Option<String>,
}

/// The selected groups with their Entra names and direct user member counts (R22).
async fn groups(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<Vec<GroupCountView>>> {
    let tenant = load_tenant(&state, &key).await?;
    Ok(Json(group_counts(&state, &tenant).await?))
}

async fn group_counts(state: &AppState, tenant: &Tenant) -> ApiResult<Vec<GroupCountView>> {
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

#[derive(Serialize)]
struct PreviewView {
    groups: Vec<GroupCountView>,
    /// What a run now would do (a dry run: nothing is written).
    plan: PlanCounts,
    plan_groups: Vec<GroupSummary>,
    hold: Option<Hold>,
}

/// R22: per group its name, member count and over-limit flag, and the dry run's counts.
async fn preview(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<PreviewView>> {
    let tenant = load_tenant(&state, &key).await?;
    let groups = group_counts(&state, &tenant).await?;
    let plan = dry_run(state.runner.context(), &tenant.key).await?;
    Ok(Json(PreviewView {
        groups,
        plan: plan.counts(),
        plan_groups: plan.groups,
        hold: plan.hold,
    }))
}
