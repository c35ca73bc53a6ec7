//! Issue 14 in the console: "Sync people now" — a form for up to five emails or object IDs on
//! the tenant's own page; the run happens at once, and the page then shows each person's steps.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::tenant::TenantSummary;
use super::{PageResult, Shell, status_badge};
use crate::auth::extract::{Operate, Page, TenantAccess};
use crate::domain::AccessRole;
use crate::http::people::sync_people_as;
use crate::http::runs::tenant_run;
use crate::http::{ApiError, AppState, Guard, Route};
use crate::store::RunId;
use crate::sync::people::{MAX_PEOPLE, PersonSteps, person_steps};

pub(super) fn routes() -> Vec<Route> {
    let operate = Guard::Tenant(AccessRole::TenantAdmin);
    vec![
        Route::page(
            Method::GET,
            "/tenants/{tenant}/sync-people",
            operate,
            sync_people_page,
        ),
        Route::page(
            Method::POST,
            "/tenants/{tenant}/sync-people",
            operate,
            sync_people_now,
        ),
    ]
}

/// One line of a person's steps, as the page shows it.
struct StepRow {
    action: String,
    change: String,
    message: String,
    severity: &'static str,
}

struct PersonView {
    title: String,
    steps: Vec<StepRow>,
}

impl PersonView {
    fn of(person: &PersonSteps) -> Self {
        let name = person.name.clone().unwrap_or_default();
        let email = person.email.clone().unwrap_or_default();
        Self {
            title: if name.trim().is_empty() {
                email
            } else {
                format!("{name} <{email}>")
            },
            steps: person
                .steps
                .iter()
                .map(|s| StepRow {
                    action: match &s.field {
                        Some(field) => format!("{} {field}", s.action),
                        None => s.action.clone(),
                    },
                    change: match (&s.old_value, &s.new_value) {
                        (Some(old), Some(new)) => format!("{old} → {new}"),
                        (None, Some(new)) => new.clone(),
                        (Some(old), None) => old.clone(),
                        (None, None) => String::new(),
                    },
                    message: s.message.clone().unwrap_or_default(),
                    severity: s.severity.as_str(),
                })
                .collect(),
        }
    }
}

/// The run just made, with its steps.
struct DoneView {
    run: RunId,
    status: (&'static str, &'static str),
    message: String,
    people: Vec<PersonView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/sync_people.html")]
struct SyncPeoplePage {
    shell: Shell,
    tenant: TenantSummary,
    max: usize,
    people: String,
    problem: Option<String>,
    done: Option<DoneView>,
}

#[derive(Debug, Default, Deserialize)]
struct SyncPeopleQuery {
    run: Option<RunId>,
}

#[derive(Debug, Deserialize)]
struct SyncPeopleForm {
    #[serde(default)]
    people: String,
}

async fn page(
    state: &AppState,
    access: &TenantAccess<Operate>,
    people: String,
    problem: Option<String>,
    run: Option<RunId>,
) -> PageResult {
    let done = match run {
        None => None,
        Some(run) => {
            let record = tenant_run(state, &access.tenant, run).await?;
            let entries = state.store().run_entries(record.id).await?;
            Some(DoneView {
                run: record.id,
                status: status_badge(record.status),
                message: record.message.clone().unwrap_or_default(),
                people: person_steps(&entries).iter().map(PersonView::of).collect(),
            })
        }
    };
    Ok(SyncPeoplePage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(&access.tenant, state.auth.now()),
        max: MAX_PEOPLE,
        people,
        problem,
        done,
    }
    .into_response())
}

/// The form, and after a run (`?run=N`) each person's steps.
async fn sync_people_page(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
    Query(query): Query<SyncPeopleQuery>,
) -> PageResult {
    page(&state, &access, String::new(), None, query.run).await
}

/// Syncs the people now, through the API's own path, and shows the steps; a bad list or a run
/// in progress (R21) is shown on the form.
async fn sync_people_now(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Operate>>,
    Form(form): Form<SyncPeopleForm>,
) -> PageResult {
    let people: Vec<String> = vec![form.people.clone()];
    match sync_people_as(&state, &access.caller, &access.tenant, &people).await {
        Ok((run, _)) => Ok(Redirect::to(&format!(
            "/tenants/{}/sync-people?run={}",
            access.tenant.key, run.id
        ))
        .into_response()),
        Err(ApiError::BadRequest(problem) | ApiError::Conflict(problem)) => {
            page(&state, &access, form.people, Some(problem), None).await
        }
        Err(other) => Err(other.into()),
    }
}
