//! Reading reports the way the console asks: one page of a run's lines, searched by name or
//! email, counted in SQL (a 100,000-line report is never loaded whole), and the people a tenant's
//! reports mention, with every line about one person across its runs ("why did Ada leave?").

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::postgres::{EntryRow, RUN_COLUMNS, RunRow, entry_from_row, run_from_row};
use super::{ReportEntry, RunId, RunRecord, StoreError};
use crate::domain::{EntraObjectId, TenantKey};

/// Which lines of a run's report to show: those whose name or email contains `search`
/// (case-insensitive), from `offset`, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryQuery {
    pub search: Option<String>,
    pub offset: i64,
    pub limit: i64,
}

impl EntryQuery {
    /// Whether `entry` matches the search (the in-memory form of the SQL below).
    pub fn matches(&self, entry: &ReportEntry) -> bool {
        let Some(search) = self.search.as_deref().filter(|s| !s.is_empty()) else {
            return true;
        };
        let needle = search.to_lowercase();
        [&entry.name, &entry.email]
            .into_iter()
            .flatten()
            .any(|text| text.to_lowercase().contains(&needle))
    }
}

/// One page of a report and how many lines matched in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EntryPage {
    pub total: u64,
    pub entries: Vec<ReportEntry>,
}

/// A person the tenant's reports mention, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonMatch {
    pub entra_id: EntraObjectId,
    pub email: Option<String>,
    pub name: Option<String>,
    /// How many runs have a line about them.
    pub runs: u64,
    pub last_seen: DateTime<Utc>,
}

/// One line about a person, with the run it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonEvent {
    pub run: RunRecord,
    pub entry: ReportEntry,
}

/// `%text%` for `ILIKE`, with the pattern characters in `text` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A person found: Entra ID, email, name, runs, last seen.
type PersonRow = (Uuid, Option<String>, Option<String>, i64, DateTime<Utc>);

/// A report line with its run's ID in front.
type RunEntryRow = (
    i64,
    String,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

const ENTRY_COLUMNS: &str = "e.subject, e.entra_id, e.email, e.name, e.action, e.field, e.old_value, e.new_value, \
     e.severity, e.message";

pub(super) async fn entries_page(
    pool: &PgPool,
    run: RunId,
    query: &EntryQuery,
) -> Result<EntryPage, StoreError> {
    let pattern = query
        .search
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(contains_pattern);
    let filter = "e.run_id = $1 AND ($2::text IS NULL OR e.name ILIKE $2 OR e.email ILIKE $2)";
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM report_entries e WHERE {filter}"
    ))
    .bind(run)
    .bind(pattern.as_deref())
    .fetch_one(pool)
    .await?;
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM report_entries e WHERE {filter} ORDER BY e.id OFFSET $3 LIMIT $4"
    ))
    .bind(run)
    .bind(pattern.as_deref())
    .bind(query.offset.max(0))
    .bind(query.limit.max(0))
    .fetch_all(pool)
    .await?;
    Ok(EntryPage {
        total: total.max(0) as u64,
        entries: rows
            .into_iter()
            .map(entry_from_row)
            .collect::<Result<_, _>>()?,
    })
}

pub(super) async fn find_people(
    pool: &PgPool,
    tenant: &TenantKey,
    text: &str,
    limit: i64,
) -> Result<Vec<PersonMatch>, StoreError> {
    let rows: Vec<PersonRow> = sqlx::query_as(
        "WITH hits AS (
             SELECT e.entra_id, e.email, e.name, e.run_id, e.id, r.started_at
               FROM report_entries e
               JOIN runs r ON r.id = e.run_id
               JOIN tenants t ON t.id = r.tenant_id
              WHERE t.key = $1 AND e.subject = 'user' AND e.entra_id IS NOT NULL
                AND (e.name ILIKE $2 OR e.email ILIKE $2)
         ), people AS (
             SELECT entra_id, count(DISTINCT run_id) AS runs, max(started_at) AS last_seen
               FROM hits GROUP BY entra_id
         ), latest AS (
             SELECT DISTINCT ON (h.entra_id) h.entra_id, h.email, h.name
               FROM hits h ORDER BY h.entra_id, h.started_at DESC, h.id DESC
         )
         SELECT l.entra_id, l.email, l.name, p.runs, p.last_seen
           FROM latest l JOIN people p USING (entra_id)
          ORDER BY p.last_seen DESC, l.email
          LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(contains_pattern(text))
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(entra_id, email, name, runs, last_seen)| PersonMatch {
            entra_id: entra_id.into(),
            email,
            name,
            runs: runs.max(0) as u64,
            last_seen,
        })
        .collect())
}

pub(super) async fn person_history(
    pool: &PgPool,
    tenant: &TenantKey,
    person: &EntraObjectId,
    limit: i64,
) -> Result<Vec<PersonEvent>, StoreError> {
    let person = person.as_uuid();
    let runs: Vec<RunRow> = sqlx::query_as(&format!(
        "{RUN_COLUMNS} WHERE t.key = $1 AND r.id IN
            (SELECT run_id FROM report_entries WHERE entra_id = $2)
         ORDER BY r.started_at DESC, r.id DESC LIMIT $3"
    ))
    .bind(tenant.as_str())
    .bind(person)
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?;
    let runs: Vec<RunRecord> = runs
        .into_iter()
        .map(run_from_row)
        .collect::<Result<_, _>>()?;
    let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
    let rows: Vec<RunEntryRow> = sqlx::query_as(&format!(
        "SELECT e.run_id, {ENTRY_COLUMNS} FROM report_entries e
              WHERE e.entra_id = $1 AND e.run_id = ANY($2) ORDER BY e.run_id DESC, e.id"
    ))
    .bind(person)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for (run_id, s, id, email, name, action, field, old, new, severity, message) in rows {
        let Some(run) = runs.iter().find(|r| r.id == run_id) else {
            continue;
        };
        events.push(PersonEvent {
            run: run.clone(),
            entry: entry_from_row((
                s, id, email, name, action, field, old, new, severity, message,
            ))?,
        });
    }
    events.sort_by(|a, b| {
        b.run
            .started_at
            .cmp(&a.run.started_at)
            .then(b.run.id.cmp(&a.run.id))
    });
    Ok(events)
}
