//! Operators' service pages: access grants (who may use which tenant, with which role), API
//! tokens (issued, shown once, revoked) and the audit log (filtered, paged).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{PageResult, Shell};
use crate::audit::Action;
use crate::auth::extract::{Operator, Page};
use crate::domain::{AccessRole, TenantKey};
use crate::http::extract::ApiPath;
use crate::http::{ApiError, AppState, Guard, Route, access, tokens};
use crate::store::access::AuditFilter;

pub(super) fn routes() -> Vec<Route> {
    let op = Guard::Operator;
    vec![
        Route::page(Method::GET, "/operator/access", op, access_page),
        Route::page(Method::POST, "/operator/access", op, grant),
        Route::page(
            Method::POST,
            "/operator/access/{grant}/revoke",
            op,
            revoke_grant,
        ),
        Route::page(Method::GET, "/operator/tokens", op, tokens_page),
        Route::page(Method::POST, "/operator/tokens", op, create_token),
        Route::page(
            Method::POST,
            "/operator/tokens/{token}/revoke",
            op,
            revoke_token,
        ),
        Route::page(Method::GET, "/operator/audit", op, audit_page),
    ]
}

/// An instant on the operator's pages, which span tenants and zones: in UTC, with the offset
/// stated, "2026-11-23 01:05:32 UTC (UTC+00:00)".
fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    super::local_time(chrono_tz::UTC, at)
}

fn roles() -> Vec<(&'static str, &'static str)> {
    vec![
        ("viewer", "Viewer: reads a tenant's runs and reports"),
        (
            "tenant_admin",
            "Tenant admin: also forces syncs, approves held runs, previews",
        ),
        ("operator", "Operator: every tenant and the service"),
    ]
}

fn role(text: &str) -> Result<AccessRole, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("{text:?} is not a role")))
}

fn optional(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

struct GrantRow {
    id: i64,
    who: String,
    identity: String,
    role: &'static str,
    tenant: String,
    granted: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/access.html")]
struct AccessPage {
    shell: Shell,
    grants: Vec<GrantRow>,
    roles: Vec<(&'static str, &'static str)>,
    tenants: Vec<String>,
}

async fn access_page(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
) -> PageResult {
    let grants = state.auth.access().grants(None).await?;
    Ok(AccessPage {
        shell: Shell::of(&caller),
        grants: grants
            .into_iter()
            .map(|g| GrantRow {
                id: g.id,
                who: g.label.clone().unwrap_or_default(),
                identity: format!("{} / {}", g.identity.tenant_id, g.identity.object_id),
                role: g.role.as_str(),
                tenant: g
                    .tenant
                    .as_ref()
                    .map_or_else(|| "every tenant".to_owned(), ToString::to_string),
                granted: format!("{} by {}", when(g.granted_at), g.granted_by),
            })
            .collect(),
        roles: roles(),
        tenants: state
            .store()
            .tenants()
            .await?
            .into_iter()
            .map(|t| t.key.to_string())
            .collect(),
    }
    .into_response())
}

#[derive(Debug, Deserialize)]
struct GrantForm {
    entra_tenant_id: String,
    entra_object_id: String,
    role: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    label: String,
}

async fn grant(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
    Form(form): Form<GrantForm>,
) -> PageResult {
    let role = role(&form.role)?;
    access::grant_access(
        &state,
        &caller,
        form.entra_tenant_id.trim(),
        form.entra_object_id.trim(),
        role,
        optional(&form.tenant).filter(|_| role != AccessRole::Operator),
        optional(&form.label),
    )
    .await?;
    Ok(Redirect::to("/operator/access").into_response())
}

async fn revoke_grant(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
    ApiPath(id): ApiPath<i64>,
) -> PageResult {
    access::revoke_access(&state, &caller, id).await?;
    Ok(Redirect::to("/operator/access").into_response())
}

struct TokenRow {
    id: i64,
    prefix: String,
    name: String,
    role: &'static str,
    tenant: String,
    expires: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    shell: Shell,
    tokens: Vec<TokenRow>,
    roles: Vec<(&'static str, &'static str)>,
    tenants: Vec<String>,
    /// A token just issued: shown on this page only.
    issued: Option<(String, String)>,
}

async fn tokens_view(
    state: &AppState,
    shell: Shell,
    issued: Option<(String, String)>,
) -> PageResult<TokensPage> {
    let records = state.auth.access().tokens().await?;
    Ok(TokensPage {
        shell,
        tokens: records
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                prefix: t.prefix,
                name: t.name,
                role: t.role.as_str(),
                tenant: t
                    .tenant
                    .as_ref()
                    .map_or_else(|| "every tenant".to_owned(), ToString::to_string),
                expires: when(t.expires_at),
                last_used: t.last_used_at.map_or_else(|| "never".to_owned(), when),
                revoked: t
                    .revoked_at
                    .map(|at| format!("{} by {}", when(at), t.revoked_by.unwrap_or_default())),
            })
            .collect(),
        roles: roles(),
        tenants: state
            .store()
            .tenants()
            .await?
            .into_iter()
            .map(|t| t.key.to_string())
            .collect(),
        issued,
    })
}

async fn tokens_page(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
) -> PageResult {
    Ok(tokens_view(&state, Shell::of(&caller), None)
        .await?
        .into_response())
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    name: String,
    role: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Issues a token and shows it on the page this once (not a redirect: the token is never in a
/// URL and never stored anywhere it could be shown again).
async fn create_token(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
    Form(form): Form<TokenForm>,
) -> PageResult {
    let role = role(&form.role)?;
    let days = optional(&form.expires_in_days)
        .map(|d| {
            d.parse::<u32>()
                .map_err(|_| ApiError::BadRequest(format!("{d:?} is not a number of days")))
        })
        .transpose()?;
    let (token, record) = tokens::create_token(
        &state,
        &caller,
        form.name.trim(),
        role,
        optional(&form.tenant).filter(|_| role != AccessRole::Operator),
        days,
    )
    .await?;
    let issued = Some((record.name.clone(), token.expose_secret().to_owned()));
    Ok(tokens_view(&state, Shell::of(&caller), issued)
        .await?
        .into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
    ApiPath(id): ApiPath<i64>,
) -> PageResult {
    tokens::revoke_token(&state, &caller, id).await?;
    Ok(Redirect::to("/operator/tokens").into_response())
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    tenant: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

struct AuditRow {
    at: String,
    /// For an event about a tenant: the same instant in the tenant's zone, with its offset.
    tenant_time: Option<String>,
    actor: String,
    action: String,
    tenant: String,
    outcome: String,
    detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/audit.html")]
struct AuditPage {
    shell: Shell,
    events: Vec<AuditRow>,
    /// Every action, and whether it is the one filtered by.
    actions: Vec<(&'static str, bool)>,
    tenant: String,
    older: Option<String>,
}

/// Events on one page of the audit log.
const EVENTS_PER_PAGE: i64 = 100;

async fn audit_page(
    State(state): State<AppState>,
    Page(Operator(caller)): Page<Operator>,
    Query(query): Query<AuditQuery>,
) -> PageResult {
    let tenant_text = query
        .tenant
        .as_deref()
        .and_then(optional)
        .map(str::to_owned);
    let action_text = query
        .action
        .as_deref()
        .and_then(optional)
        .map(str::to_owned);
    let tenant = tenant_text
        .as_deref()
        .map(TenantKey::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("tenant: {e}")))?;
    if let Some(action) = action_text.as_deref()
        && Action::parse(action).is_none()
    {
        return Err(ApiError::BadRequest(format!("{action:?} is not an audit action")).into());
    }
    let events = state
        .auth
        .access()
        .audit_events(&AuditFilter {
            tenant,
            action: action_text.clone(),
            before_id: query.before,
            limit: EVENTS_PER_PAGE,
            ..AuditFilter::default()
        })
        .await?;
    let older = (events.len() as i64 == EVENTS_PER_PAGE)
        .then(|| events.last().map(|e| e.id))
        .flatten()
        .map(|before| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(t) = &tenant_text {
                q.append_pair("tenant", t);
            }
            if let Some(a) = &action_text {
                q.append_pair("action", a);
            }
            q.append_pair("before", &before.to_string());
            q.finish()
        });
    let zones: std::collections::HashMap<TenantKey, chrono_tz::Tz> = state
        .store()
        .tenants()
        .await?
        .into_iter()
        .map(|t| (t.key, t.time_zone))
        .collect();
    Ok(AuditPage {
        shell: Shell::of(&caller),
        events: events
            .into_iter()
            .map(|e| AuditRow {
                at: when(e.event.at),
                tenant_time: e
                    .event
                    .tenant
                    .as_ref()
                    .and_then(|t| zones.get(t))
                    .filter(|zone| **zone != chrono_tz::UTC)
                    .map(|zone| super::local_time(*zone, e.event.at)),
                actor: e.event.actor.clone(),
                action: e.event.action.clone(),
                tenant: e
                    .event
                    .tenant
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                outcome: format!("{:?}", e.event.outcome).to_lowercase(),
                detail: e.event.detail.to_string(),
            })
            .collect(),
        actions: Action::ALL
            .iter()
            .map(|a| (a.as_str(), action_text.as_deref() == Some(a.as_str())))
            .collect(),
        tenant: tenant_text.unwrap_or_default(),
        older,
    }
    .into_response())
}
