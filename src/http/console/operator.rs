//! Operators' pages: onboard and edit a tenant (time-zone picker, retention, deletion threshold,
//! deactivation status, target connection, selected groups with role — removing a group (R12) or
//! changing its role (R13) asks for confirmation first and says what it will do), and, for a
//! tenant's admins too, Test connection and Preview (R22) before the first sync.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{Value, json};

use super::tenant::{TenantSummary, count_rows};
use super::{PageResult, Shell};
use crate::auth::extract::{ConfigureTenant, Operate, Operator, Page, TenantAccess};
use crate::domain::{AccessRole, DeactivationStatus, EntraObjectId, Role, TenantKey};
use crate::http::people::proposed_groups;
use crate::http::tenants::{group_counts, save_spec};
use crate::http::{ApiError, AppState, Guard, Route};
use crate::sync::what_if::{WhatIf, what_if};
use crate::sync::{dry_run, probe_target};
use crate::tenant::{GroupSpec, Tenant, TenantSpec};

pub(super) fn routes() -> Vec<Route> {
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::page(Method::GET, "/operator/onboard", Guard::Operator, onboard),
        Route::page(
            Method::GET,
            "/tenants/{tenant}/settings",
            Guard::ConfigureTenant,
            settings_page,
        ),
        Route::page(
            Method::POST,
            "/tenants/{tenant}/settings",
            Guard::ConfigureTenant,
            save_settings,
        ),
        Route::page(Method::GET, "/tenants/{tenant}/check", operate, check),
        Route::page(Method::GET, "/tenants/{tenant}/preview", operate, preview),
    ]
}

#[derive(Debug, Deserialize)]
struct OnboardQuery {
    key: String,
}

/// The Tenants page's "Onboard" box: on to the new tenant's settings form.
async fn onboard(
    Page(Operator(_)): Page<Operator>,
    Query(query): Query<OnboardQuery>,
) -> PageResult {
    let key =
        TenantKey::parse(query.key.trim()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Redirect::to(&format!("/tenants/{key}/settings")).into_response())
}

/// The settings form's fields, as posted (and as first shown).
#[derive(Debug, Clone, Default, Deserialize)]
struct SettingsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    entra_tenant_id: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    retention: String,
    #[serde(default)]
    deletion_threshold: String,
    #[serde(default)]
    deactivation_status: String,
    /// One selected group a line: its Entra object ID and `internal` or `basic`.
    #[serde(default)]
    groups: String,
    #[serde(default)]
    target_kind: String,
    #[serde(default)]
    target_base_url: String,
    #[serde(default)]
    target_client_id: String,
    /// The HighQ client secret or the SCIM token; empty keeps the stored one.
    #[serde(default)]
    target_secret: String,
    /// Set by the confirmation page (R12, R13).
    #[serde(default)]
    confirmed: String,
}

impl SettingsForm {
    fn of(tenant: &Tenant) -> Self {
        let target = tenant
            .target
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Value::Null);
        let text = |name: &str| target.get(name).and_then(Value::as_str).unwrap_or_default();
        Self {
            name: tenant.display_name.clone(),
            entra_tenant_id: tenant.entra_tenant_id.to_string(),
            time_zone: tenant.time_zone.name().to_owned(),
            retention: tenant.report_retention.months().to_string(),
            deletion_threshold: tenant.policy.deletion_threshold.to_string(),
            deactivation_status: tenant.policy.deactivation_status.to_string(),
            groups: tenant
                .policy
                .selected_groups
                .iter()
                .map(|g| format!("{} {}\n", g.entra_id, g.role.as_str()))
                .collect(),
            target_kind: text("kind").to_owned(),
            target_base_url: text("base_url").to_owned(),
            target_client_id: text("client_id").to_owned(),
            target_secret: String::new(),
            confirmed: String::new(),
        }
    }

    fn new_tenant() -> Self {
        Self {
            time_zone: "Europe/London".to_owned(),
            retention: "3".to_owned(),
            deletion_threshold: "500".to_owned(),
            deactivation_status: DeactivationStatus::Inactive.to_string(),
            ..Self::default()
        }
    }

    fn selected_groups(&self) -> Result<Vec<GroupSpec>, ApiError> {
        self.groups
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(n, line)| {
                let mut words = line.split_whitespace();
                let (Some(id), role, None) = (words.next(), words.next(), words.next()) else {
                    return Err(ApiError::BadRequest(format!(
                        "selected groups, line {}: write the group's object ID and its role \
                         (internal or basic), not {line:?}",
                        n + 1
                    )));
                };
                let role = role.unwrap_or("internal");
                let parsed: Role = role.parse().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "selected groups, line {}: the role is internal or basic, not {role:?}",
                        n + 1
                    ))
                })?;
                Ok(GroupSpec {
                    id: id.to_owned(),
                    role: parsed.as_str().to_owned(),
                })
            })
            .collect()
    }

    /// The tenant spec the form describes; the target keeps what the form does not show (and the
    /// stored secret, as `"[redacted]"`, when none was typed).
    fn spec(&self, key: &TenantKey, current: Option<&Tenant>) -> Result<TenantSpec, ApiError> {
        let number = |what: &str, text: &str| -> Result<u64, ApiError> {
            text.trim()
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("{what} must be a number, not {text:?}")))
        };
        let target = match self.target_kind.as_str() {
            "" | "none" => None,
            kind @ ("highq" | "scim") => {
                let mut target = current
                    .and_then(|t| t.target.as_ref())
                    .and_then(|t| serde_json::to_value(t).ok())
                    .filter(|t| t.get("kind").and_then(Value::as_str) == Some(kind))
                    .unwrap_or_else(|| json!({"kind": kind}));
                let secret_field = if kind == "highq" {
                    "client_secret"
                } else {
                    "token"
                };
                target["base_url"] = json!(self.target_base_url.trim());
                if kind == "highq" {
                    target["client_id"] = json!(self.target_client_id.trim());
                }
                if !self.target_secret.is_empty() {
                    target[secret_field] = json!(self.target_secret);
                } else if target.get(secret_field).is_none() {
                    return Err(ApiError::BadRequest(format!(
                        "the target's {} is needed to connect",
                        secret_field.replace('_', " ")
                    )));
                }
                Some(target)
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "the target is HighQ, SCIM or none, not {other:?}"
                )));
            }
        };
        Ok(TenantSpec {
            key: key.to_string(),
            name: Some(self.name.trim().to_owned()).filter(|n| !n.is_empty()),
            entra_tenant_id: self.entra_tenant_id.trim().to_owned(),
            time_zone: self.time_zone.trim().to_owned(),
            report_retention_months: number("report retention", &self.retention)? as u8,
            deactivation_status: Some(self.deactivation_status.clone()),
            deletion_threshold: u32::try_from(number(
                "deletion threshold",
                &self.deletion_threshold,
            )?)
            .map_err(|_| ApiError::BadRequest("the deletion threshold is too large".to_owned()))?,
            groups: self.selected_groups()?,
            confirm_no_groups: false,
            source: current.and_then(|t| serde_json::to_value(&t.source).ok()),
            target,
        })
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    shell: Shell,
    key: String,
    exists: bool,
    form: SettingsForm,
    /// Every IANA zone, and whether it is the one chosen.
    zones: Vec<(&'static str, bool)>,
    retentions: Vec<(&'static str, &'static str, bool)>,
    problem: Option<String>,
}

fn settings_view(
    configure: &ConfigureTenant,
    form: SettingsForm,
    problem: Option<String>,
) -> SettingsPage {
    SettingsPage {
        shell: Shell::of(&configure.caller),
        key: configure.key.to_string(),
        exists: configure.current.is_some(),
        zones: chrono_tz::TZ_VARIANTS
            .iter()
            .map(|z| (z.name(), z.name() == form.time_zone))
            .collect(),
        retentions: [("1", "1 month"), ("3", "3 months"), ("6", "6 months")]
            .into_iter()
            .map(|(value, text)| (value, text, value == form.retention))
            .collect(),
        form,
        problem,
    }
}

async fn settings_page(Page(configure): Page<ConfigureTenant>) -> PageResult {
    let form = configure
        .current
        .as_ref()
        .map_or_else(SettingsForm::new_tenant, SettingsForm::of);
    Ok(settings_view(&configure, form, None).into_response())
}

/// What a change to the selected groups will do, one sentence a group (R12, R13, and groups
/// newly selected): any such change is confirmed after its what-if.
fn consequences(
    current: &Tenant,
    next: &[GroupSpec],
    names: &[(EntraObjectId, String)],
) -> Vec<String> {
    let name_of = |id: &EntraObjectId| {
        names
            .iter()
            .find(|(g, _)| g == id)
            .map_or_else(|| format!("group {id}"), |(_, n)| format!("{n} ({id})"))
    };
    let mut out = Vec::new();
    for old in &current.policy.selected_groups {
        let now = next
            .iter()
            .find(|g| EntraObjectId::parse(&g.id).ok().as_ref() == Some(&old.entra_id));
        match now {
            None => out.push(format!(
                "{} is no longer selected (R12): at the next run its synced group is converted to \
                 a system group (renamed with a timestamp and no longer managed), all its members \
                 are removed from it, and members who are in no other selected group are \
                 deactivated.",
                name_of(&old.entra_id)
            )),
            Some(g) if g.role.parse::<Role>().ok() != Some(old.role) => out.push(format!(
                "{} changes from {} to {} (R13): at the next run its synced group is converted to a \
                 system group as above and a new {} synced group is created and filled; each \
                 member's role then follows their groups.",
                name_of(&old.entra_id),
                old.role.as_str(),
                g.role,
                g.role
            )),
            Some(_) => {}
        }
    }
    for added in next {
        let Ok(id) = EntraObjectId::parse(&added.id) else {
            continue;
        };
        if !current
            .policy
            .selected_groups
            .iter()
            .any(|g| g.entra_id == id)
        {
            out.push(format!(
                "{} is newly selected as {}: at the next run its direct user members are created \
                 in the target (or adopted by email, R4), activated if inactive, and added to a \
                 new {} synced group.",
                name_of(&id),
                added.role,
                added.role
            ));
        }
    }
    out
}

#[derive(Template, WebTemplate)]
#[template(path = "console/confirm_settings.html")]
struct ConfirmPage {
    shell: Shell,
    key: String,
    form: SettingsForm,
    consequences: Vec<String>,
    /// Issue 14: what a run under the new groups would do, or why that could not be read.
    what_if: Result<WhatIf, String>,
}

async fn save_settings(
    State(state): State<AppState>,
    Page(configure): Page<ConfigureTenant>,
    Form(form): Form<SettingsForm>,
) -> PageResult {
    let spec = match form.spec(&configure.key, configure.current.as_ref()) {
        Ok(spec) => spec,
        Err(problem) => {
            return Ok(settings_view(&configure, form, Some(problem.to_string())).into_response());
        }
    };
    if let Some(current) = &configure.current
        && form.confirmed != "yes"
    {
        let names: Vec<(EntraObjectId, String)> = match state.store().runs(&current.key, 1).await? {
            runs if !runs.is_empty() => state
                .store()
                .run_groups(runs[0].id)
                .await?
                .into_iter()
                .map(|g| (g.entra_id, g.name))
                .collect(),
            _ => Vec::new(),
        };
        let consequences = consequences(current, &spec.groups, &names);
        if !consequences.is_empty() {
            let what_if = match proposed_groups(&spec.groups) {
                Ok(groups) => what_if(state.runner.context(), &current.key, groups)
                    .await
                    .map_err(|err| err.to_string()),
                Err(err) => Err(err.to_string()),
            };
            return Ok(ConfirmPage {
                shell: Shell::of(&configure.caller),
                key: configure.key.to_string(),
                form,
                consequences,
                what_if,
            }
            .into_response());
        }
    }
    match save_spec(&state, &configure, spec).await {
        Ok(tenant) => {
            Ok(Redirect::to(&format!("/tenants/{}?notice=saved", tenant.key)).into_response())
        }
        Err(ApiError::BadRequest(problem)) => {
            Ok(settings_view(&configure, form, Some(problem)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

struct CheckRow {
    id: String,
    role: &'static str,
    name: String,
    members: String,
    outcome: (&'static str, &'static str),
    message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/check.html")]
struct CheckPage {
    shell: Shell,
    tenant: TenantSummary,
    preview: bool,
    entra: Result<Vec<CheckRow>, String>,
    target: Option<Result<&'static str, String>>,
    plan: Option<Result<PlanView, String>>,
}

struct PlanView {
    counts: Vec<(&'static str, usize)>,
    hold: Option<String>,
}

async fn entra_rows(state: &AppState, tenant: &Tenant) -> Result<Vec<CheckRow>, String> {
    let groups = group_counts(state, tenant)
        .await
        .map_err(|e| e.to_string())?;
    Ok(groups
        .into_iter()
        .map(|g| CheckRow {
            id: g.id.to_string(),
            role: g.role.as_str(),
            name: g.name.unwrap_or_else(|| "—".to_owned()),
            members: g
                .direct_user_members
                .map_or_else(|| "—".to_owned(), |n| n.to_string()),
            outcome: match (g.outcome, g.over_limit) {
                ("found", false) => ("found", "badge ok"),
                ("found", true) => ("over 50,000 members: not synced (R16)", "badge bad"),
                ("deleted", _) => ("not in Entra", "badge bad"),
                _ => ("could not be read", "badge bad"),
            },
            message: g.message.unwrap_or_default(),
        })
        .collect())
}

/// Test connection: sign in to Entra and count each selected group, then one harmless look-up
/// in the target. Changes nothing.
async fn check(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
) -> PageResult {
    let tenant = &access.tenant;
    let entra = entra_rows(&state, tenant).await;
    let target = probe_target(state.runner.context(), tenant).await;
    Ok(CheckPage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        preview: false,
        entra,
        target: Some(target),
        plan: None,
    }
    .into_response())
}

/// Preview (R22): per group its name, member count and over-limit flag, and what a sync now
/// would do (a dry run: nothing is written anywhere).
async fn preview(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
) -> PageResult {
    let tenant = &access.tenant;
    let entra = entra_rows(&state, tenant).await;
    let plan = dry_run(state.runner.context(), &tenant.key)
        .await
        .map(|plan| PlanView {
            counts: count_rows(&plan.counts()),
            hold: plan.hold.map(|h| {
                format!(
                    "The run would be held: it would deactivate {} users, more than the threshold \
                     of {}.",
                    h.deactivations, h.threshold
                )
            }),
        })
        .map_err(|e| ApiError::from(e).to_string());
    Ok(CheckPage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        preview: true,
        entra,
        target: None,
        plan: Some(plan),
    }
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LITIGATION: &str = "00000000-0000-0000-0000-0000000000a1";
    const PARTNERS: &str = "00000000-0000-0000-0000-0000000000a2";

    fn tenant_selecting_litigation() -> Tenant {
        serde_json::from_value(serde_json::json!({
            "key": "acme",
            "display_name": "Acme",
            "entra_tenant_id": "00000000-0000-0000-0000-00000000000e",
            "time_zone": "Europe/London",
            "report_retention": 3,
            "policy": {
                "selected_groups": [{"entra_id": LITIGATION, "role": "internal"}],
                "deactivation_status": "inactive",
                "deletion_threshold": 500
            }
        }))
        .unwrap()
    }

    fn spec(id: &str, role: &str) -> GroupSpec {
        GroupSpec {
            id: id.to_owned(),
            role: role.to_owned(),
        }
    }

    #[test]
    fn a_newly_selected_group_is_a_consequence_so_its_what_if_is_shown_before_saving() {
        let current = tenant_selecting_litigation();
        let names = vec![(
            EntraObjectId::parse(PARTNERS).unwrap(),
            "Partners".to_owned(),
        )];
        let added = consequences(
            &current,
            &[spec(LITIGATION, "internal"), spec(PARTNERS, "basic")],
            &names,
        );
        assert_eq!(added.len(), 1, "{added:?}");
        assert!(
            added[0].starts_with(&format!("Partners ({PARTNERS}) is newly selected as basic")),
            "{added:?}"
        );
        let unchanged = consequences(&current, &[spec(LITIGATION, "internal")], &names);
        assert!(unchanged.is_empty(), "{unchanged:?}");
    }
}
