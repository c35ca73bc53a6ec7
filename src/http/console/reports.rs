//! Sync reports (every run, filtered by trigger, status and dates, paged), a run's Report
//! (summary, groups, every line with old → new values, searchable and paged in SQL), and the
//! Person page (every run that touched someone, and why).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::tenant::{RunRow, TenantSummary, count_rows};
use super::{PageResult, Shell, local_time, status_badge, trigger_text};
use crate::auth::extract::{Page, Read, TenantAccess};
use crate::domain::{AccessRole, EntraObjectId};
use crate::http::extract::ApiPath;
use crate::http::{ApiError, AppState, Guard, Route, runs};
use crate::plan::Severity;
use crate::schedule::start_of_day;
use crate::store::{EntryQuery, ReportEntry, RunFilter, RunId, RunStatus, TriggerKind};

pub(super) fn routes() -> Vec<Route> {
    let read = Guard::Tenant(AccessRole::Viewer);
    vec![
        Route::page(Method::GET, "/tenants/{tenant}/reports", read, reports),
        Route::page(Method::GET, "/tenants/{tenant}/reports/{run}", read, report),
        Route::page(Method::GET, "/tenants/{tenant}/people", read, people),
    ]
}

/// Runs on one page of Sync reports.
const RUNS_PER_PAGE: usize = 25;
/// Report lines on one page of a Report.
const LINES_PER_PAGE: i64 = 100;

#[derive(Debug, Default, Deserialize)]
struct ReportsQuery {
    trigger: Option<String>,
    status: Option<String>,
    /// First day, in the tenant's zone.
    from: Option<String>,
    /// Last day, in the tenant's zone (included).
    to: Option<String>,
    /// Runs that started before this instant (the next page).
    before: Option<DateTime<Utc>>,
}

fn empty_none(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse_day(value: &Option<String>, what: &str) -> Result<Option<NaiveDate>, ApiError> {
    empty_none(value)
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                ApiError::BadRequest(format!("the {what} date {v:?} is not a date (YYYY-MM-DD)"))
            })
        })
        .transpose()
}

#[derive(Template, WebTemplate)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    shell: Shell,
    tenant: TenantSummary,
    recent: Vec<RunRow>,
    trigger: String,
    status: String,
    from: String,
    to: String,
    statuses: Vec<(&'static str, &'static str)>,
    /// The query for the next (older) page, when there is one.
    older: Option<String>,
    /// Whether this is a later page (a link back to the newest).
    paged: bool,
}

async fn reports(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Read>>,
    Query(query): Query<ReportsQuery>,
) -> PageResult {
    let tenant = &access.tenant;
    let zone = tenant.time_zone;
    let trigger = match empty_none(&query.trigger) {
        None => None,
        Some("manual") => Some(TriggerKind::Manual),
        Some("automatic") => Some(TriggerKind::Automatic),
        Some("on_demand") => Some(TriggerKind::OnDemand),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "trigger {other:?} is not manual, automatic or on_demand"
            ))
            .into());
        }
    };
    let status = empty_none(&query.status)
        .map(|s| {
            RunStatus::parse(s).ok_or_else(|| ApiError::BadRequest(format!("no status {s:?}")))
        })
        .transpose()?;
    let from = parse_day(&query.from, "from")?.map(|d| start_of_day(zone, d));
    let to_day = parse_day(&query.to, "to")?;
    let mut to = to_day
        .and_then(|d| d.succ_opt())
        .map(|d| start_of_day(zone, d));
    if let Some(before) = query.before {
        to = Some(to.map_or(before, |t| t.min(before)));
    }
    let mut found = state
        .store()
        .find_runs(
            &tenant.key,
            &RunFilter {
                trigger,
                status,
                from,
                to,
                limit: RUNS_PER_PAGE as i64 + 1,
            },
        )
        .await?;
    let older = (found.len() > RUNS_PER_PAGE).then(|| {
        found.truncate(RUNS_PER_PAGE);
        let last = found.last().map(|r| r.started_at).unwrap_or_default();
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("trigger", &query.trigger),
            ("status", &query.status),
            ("from", &query.from),
            ("to", &query.to),
        ] {
            if let Some(v) = empty_none(value) {
                q.append_pair(name, v);
            }
        }
        q.append_pair("before", &last.to_rfc3339());
        q.finish()
    });
    let statuses = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::CompletedWithErrors,
        RunStatus::Failed,
        RunStatus::Held,
        RunStatus::Rejected,
        RunStatus::Skipped,
    ]
    .into_iter()
    .map(|s| (s.as_str(), status_badge(s).0))
    .collect();
    Ok(ReportsPage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        recent: found.iter().map(|r| RunRow::of(tenant, r)).collect(),
        trigger: empty_none(&query.trigger).unwrap_or_default().to_owned(),
        status: empty_none(&query.status).unwrap_or_default().to_owned(),
        from: empty_none(&query.from).unwrap_or_default().to_owned(),
        to: empty_none(&query.to).unwrap_or_default().to_owned(),
        statuses,
        older,
        paged: query.before.is_some(),
    }
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ReportQuery {
    q: Option<String>,
    page: Option<i64>,
}

/// A report line as the Report and Person pages show it.
struct LineView {
    subject: &'static str,
    who: String,
    email: String,
    action: String,
    field: String,
    old_value: String,
    new_value: String,
    severity: (&'static str, &'static str),
    message: String,
}

impl LineView {
    fn of(entry: &ReportEntry) -> Self {
        Self {
            subject: entry.subject.as_str(),
            who: entry.name.clone().unwrap_or_default(),
            email: entry.email.clone().unwrap_or_default(),
            action: entry.action.clone(),
            field: entry.field.clone().unwrap_or_default(),
            old_value: entry.old_value.clone().unwrap_or_default(),
            new_value: entry.new_value.clone().unwrap_or_default(),
            severity: match entry.severity {
                Severity::Info => ("info", "badge none"),
                Severity::Warning => ("warning", "badge warn"),
                Severity::Error => ("error", "badge bad"),
            },
            message: entry.message.clone().unwrap_or_default(),
        }
    }
}

struct GroupLine {
    label: String,
    id: String,
    role: &'static str,
    members: String,
    status: &'static str,
    message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/report.html")]
struct ReportPage {
    shell: Shell,
    tenant: TenantSummary,
    run: RunId,
    trigger: String,
    started: String,
    finished: String,
    badge: (&'static str, &'static str),
    message: Option<String>,
    /// R18: "Ada Lovelace at 2026-… (UTC+01:00): reason", for a rejected run.
    rejection: Option<String>,
    applied: Vec<(&'static str, usize)>,
    planned: Option<(&'static str, Vec<(&'static str, usize)>)>,
    groups: Vec<GroupLine>,
    lines: Vec<LineView>,
    search: String,
    total: u64,
    first_line: i64,
    last_line: i64,
    page: i64,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
}

fn report_link(search: &str, page: i64) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if !search.is_empty() {
        q.append_pair("q", search);
    }
    q.append_pair("page", &page.to_string());
    format!("?{}", q.finish())
}

async fn report(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Read>>,
    ApiPath((_, run)): ApiPath<(String, RunId)>,
    Query(query): Query<ReportQuery>,
) -> PageResult {
    let tenant = &access.tenant;
    let run = runs::tenant_run(&state, tenant, run).await?;
    let groups = state.store().run_groups(run.id).await?;
    let search = empty_none(&query.q).unwrap_or_default().to_owned();
    let page = query.page.unwrap_or(1).max(1);
    let found = state
        .store()
        .entries_page(
            run.id,
            &EntryQuery {
                search: (!search.is_empty()).then(|| search.clone()),
                offset: (page - 1) * LINES_PER_PAGE,
                limit: LINES_PER_PAGE,
            },
        )
        .await?;
    let total = found.total as i64;
    let pages = ((total + LINES_PER_PAGE - 1) / LINES_PER_PAGE).max(1);
    let first_line = if total == 0 {
        0
    } else {
        (page - 1) * LINES_PER_PAGE + 1
    };
    let rejection = match run.status {
        RunStatus::Rejected => state.store().run_rejection(run.id).await?.map(|r| {
            let at = local_time(tenant.time_zone, r.at);
            match r.reason {
                Some(reason) => format!("by {} at {at}: {reason}", r.by),
                None => format!("by {} at {at} (no reason given)", r.by),
            }
        }),
        _ => None,
    };
    let summary = run.summary.as_ref();
    Ok(ReportPage {
        rejection,
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        run: run.id,
        trigger: trigger_text(&run),
        started: local_time(tenant.time_zone, run.started_at),
        finished: run
            .finished_at
            .map_or_else(|| "—".to_owned(), |at| local_time(tenant.time_zone, at)),
        badge: status_badge(run.status),
        message: run.message.clone(),
        applied: summary.map(|s| count_rows(&s.applied)).unwrap_or_default(),
        planned: summary.and_then(|s| {
            s.planned_label(run.status)
                .map(|label| (label, count_rows(&s.planned)))
        }),
        groups: groups
            .iter()
            .map(|g| GroupLine {
                label: g.label(),
                id: g.entra_id.to_string(),
                role: g.role.as_str(),
                members: g
                    .members_seen
                    .map_or_else(|| "—".to_owned(), |n| n.to_string()),
                status: g.status.as_str(),
                message: g.message.clone().unwrap_or_default(),
            })
            .collect(),
        lines: found.entries.iter().map(LineView::of).collect(),
        total: found.total,
        first_line,
        last_line: first_line + found.entries.len() as i64 - i64::from(total > 0),
        prev: (page > 1).then(|| report_link(&search, page - 1)),
        next: (page < pages).then(|| report_link(&search, page + 1)),
        search,
        page,
        pages,
    }
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
struct PeopleQuery {
    q: Option<String>,
    /// The person's Entra object ID, once picked.
    id: Option<String>,
}

/// The most people a search lists, and the most runs a person's history shows.
const PEOPLE_LIMIT: i64 = 50;
const HISTORY_RUNS: i64 = 200;

struct PersonRow {
    id: String,
    name: String,
    email: String,
    runs: u64,
    last_seen: String,
}

/// One run in a person's history, with its lines about them.
struct HistoryRun {
    run: RunId,
    started: String,
    trigger: String,
    badge: (&'static str, &'static str),
    why: String,
    lines: Vec<LineView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/people.html")]
struct PeoplePage {
    shell: Shell,
    tenant: TenantSummary,
    search: String,
    searched: bool,
    people: Vec<PersonRow>,
    person: Option<(String, String, String)>,
    history: Vec<HistoryRun>,
}

/// One sentence for what a run did to a person, from its lines.
fn why(lines: &[ReportEntry]) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for entry in lines {
        let (planned, action) = match entry.action.strip_prefix("planned: ") {
            Some(action) => (" (planned, not carried out)", action),
            None => ("", entry.action.as_str()),
        };
        let reason = match (action, entry.severity) {
            (_, Severity::Error) => format!(
                "error: {}",
                entry.message.as_deref().unwrap_or(&entry.action)
            ),
            ("added to group", _) => format!(
                "joined {}",
                entry
                    .new_value
                    .as_deref()
                    .or(entry.field.as_deref())
                    .unwrap_or("a group")
            ),
            ("removed from group", _) => format!(
                "left {}",
                entry
                    .old_value
                    .as_deref()
                    .or(entry.field.as_deref())
                    .unwrap_or("a group")
            ),
            ("deactivated", _) => format!(
                "deactivated{}",
                entry
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            ("updated", _) => format!(
                "{} changed{}",
                entry.field.as_deref().unwrap_or("a field"),
                match (&entry.old_value, &entry.new_value) {
                    (Some(old), Some(new)) => format!(" from {old} to {new}"),
                    _ => String::new(),
                }
            ),
            (action, Severity::Warning) => format!(
                "{action}: {}",
                entry.message.as_deref().unwrap_or("warning")
            ),
            (action, _) => action.to_owned(),
        } + planned;
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    reasons.join("; ")
}

async fn people(
    State(state): State<AppState>,
    Page(access): Page<TenantAccess<Read>>,
    Query(query): Query<PeopleQuery>,
) -> PageResult {
    let tenant = &access.tenant;
    let search = empty_none(&query.q).unwrap_or_default().to_owned();
    let people = if search.is_empty() {
        Vec::new()
    } else {
        state
            .store()
            .find_people(&tenant.key, &search, PEOPLE_LIMIT)
            .await?
    };
    let picked = empty_none(&query.id)
        .map(|id| {
            EntraObjectId::parse(id)
                .map_err(|_| ApiError::BadRequest(format!("{id:?} is not an Entra object ID")))
        })
        .transpose()?;
    let mut person = None;
    let mut history: Vec<HistoryRun> = Vec::new();
    if let Some(id) = &picked {
        let events = state
            .store()
            .person_history(&tenant.key, id, HISTORY_RUNS)
            .await?;
        if let Some(first) = events.first() {
            person = Some((
                first.entry.name.clone().unwrap_or_default(),
                first.entry.email.clone().unwrap_or_default(),
                id.to_string(),
            ));
        }
        let mut i = 0;
        while i < events.len() {
            let run = &events[i].run;
            let lines: Vec<ReportEntry> = events[i..]
                .iter()
                .take_while(|e| e.run.id == run.id)
                .map(|e| e.entry.clone())
                .collect();
            i += lines.len();
            history.push(HistoryRun {
                run: run.id,
                started: local_time(tenant.time_zone, run.started_at),
                trigger: trigger_text(run),
                badge: status_badge(run.status),
                why: why(&lines),
                lines: lines.iter().map(LineView::of).collect(),
            });
        }
        if person.is_none() {
            return Err(ApiError::NotFound(format!(
                "no report of tenant {} mentions {id}",
                tenant.key
            ))
            .into());
        }
    }
    Ok(PeoplePage {
        shell: Shell::of(&access.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        searched: !search.is_empty(),
        search,
        people: people
            .into_iter()
            .map(|p| PersonRow {
                id: p.entra_id.to_string(),
                name: p.name.unwrap_or_default(),
                email: p.email.unwrap_or_default(),
                runs: p.runs,
                last_seen: local_time(tenant.time_zone, p.last_seen),
            })
            .collect(),
        person,
        history,
    }
    .into_response())
}
