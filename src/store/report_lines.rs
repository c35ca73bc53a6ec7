//! Reading a run's report lines without loading the report: keyset pages for the API, a tally
//! counted in SQL, and a database cursor for the `.xlsx` export, on both backends.
//!
//! A page is "the lines after line N", served by the `(run_id, id)` index, so page 5,000 costs
//! what page 1 costs; the cursor is sqlx's `fetch` stream, so a 1,000,000-line report flows
//! through in constant memory.

use futures::stream::{BoxStream, StreamExt};
use serde::Serialize;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

use super::postgres::{EntryRow, entry_from_row, severity_level, subject_kind};
use super::{ReportEntry, RunId, StoreError, SubjectKind};
use crate::plan::Severity;

/// Which of a run's lines to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Only lines about this kind of subject.
    pub subject: Option<SubjectKind>,
    /// Only lines of this severity.
    pub severity: Option<Severity>,
    /// Only warnings and errors (the workbook's Errors sheet).
    pub problems_only: bool,
}

impl EntryFilter {
    /// Whether a line of this subject and severity is one the filter reads.
    pub fn admits(&self, subject: SubjectKind, severity: Severity) -> bool {
        self.subject.is_none_or(|s| s == subject)
            && self.severity.is_none_or(|s| s == severity)
            && (!self.problems_only || severity >= Severity::Warning)
    }
}

/// A report line with its line number: the position to ask for the next page after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberedEntry {
    /// Increases through the report; not contiguous (other runs' lines are interleaved).
    pub line: i64,
    #[serde(flatten)]
    pub entry: ReportEntry,
}

/// How many lines a run's report has, by subject and severity: every count a page or a summary
/// shows, in one grouped query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryTally {
    counts: Vec<(SubjectKind, Severity, u64)>,
}

impl EntryTally {
    /// The lines `filter` reads.
    pub fn matching(&self, filter: &EntryFilter) -> u64 {
        self.counts
            .iter()
            .filter(|(subject, severity, _)| filter.admits(*subject, *severity))
            .map(|(_, _, n)| n)
            .sum()
    }

    /// The lines of this severity, whatever they are about.
    pub fn of_severity(&self, severity: Severity) -> u64 {
        self.matching(&EntryFilter {
            severity: Some(severity),
            ..EntryFilter::default()
        })
    }

    /// Every line.
    pub fn total(&self) -> u64 {
        self.matching(&EntryFilter::default())
    }

    /// The tally of lines already in memory (the default implementation and tests).
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a ReportEntry>) -> Self {
        let mut tally = Self::default();
        for entry in entries {
            tally.add(entry.subject, entry.severity, 1);
        }
        tally
    }

    fn add(&mut self, subject: SubjectKind, severity: Severity, n: u64) {
        match self
            .counts
            .iter_mut()
            .find(|(s, v, _)| *s == subject && *v == severity)
        {
            Some((_, _, count)) => *count += n,
            None => self.counts.push((subject, severity, n)),
        }
    }
}

/// A report line as read for a page: its `id` with the usual columns.
#[derive(sqlx::FromRow)]
struct LineRow {
    id: i64,
    subject: String,
    entra_id: Option<Uuid>,
    email: Option<String>,
    name: Option<String>,
    action: String,
    field: Option<String>,
    old_value: Option<String>,
    new_value: Option<String>,
    severity: String,
    message: Option<String>,
}

impl LineRow {
    fn into_entry(self) -> Result<NumberedEntry, StoreError> {
        let row: EntryRow = (
            self.subject,
            self.entra_id,
            self.email,
            self.name,
            self.action,
            self.field,
            self.old_value,
            self.new_value,
            self.severity,
            self.message,
        );
        Ok(NumberedEntry {
            line: self.id,
            entry: entry_from_row(row)?,
        })
    }
}

/// The columns and the filter, the same text on both backends (`$n` is a positional parameter
/// in SQLite too): run, after line, subject, severity, problems only.
macro_rules! lines_where {
    () => {
        "SELECT id, subject, entra_id, email, name, action, field, old_value, new_value, \
         severity, message FROM report_entries \
         WHERE run_id = $1 AND id > $2 \
           AND ($3 IS NULL OR subject = $3) \
           AND ($4 IS NULL OR severity = $4) \
           AND (NOT $5 OR severity <> 'info') \
         ORDER BY id"
    };
}

const PAGE_SQL: &str = concat!(lines_where!(), " LIMIT $6");
const CURSOR_SQL: &str = lines_where!();
const PG_PAGE_SQL: &str = "SELECT id, subject, entra_id, email, name, action, field, old_value, \
     new_value, severity, message FROM report_entries \
     WHERE run_id = $1 AND id > $2 \
       AND ($3::text IS NULL OR subject = $3) \
       AND ($4::text IS NULL OR severity = $4) \
       AND (NOT $5 OR severity <> 'info') \
     ORDER BY id LIMIT $6";
const PG_CURSOR_SQL: &str = "SELECT id, subject, entra_id, email, name, action, field, old_value, \
     new_value, severity, message FROM report_entries \
     WHERE run_id = $1 AND id > $2 \
       AND ($3::text IS NULL OR subject = $3) \
       AND ($4::text IS NULL OR severity = $4) \
       AND (NOT $5 OR severity <> 'info') \
     ORDER BY id";
const TALLY_SQL: &str = "SELECT subject, severity, count(*) FROM report_entries WHERE run_id = $1 GROUP BY subject, severity";

fn binds(filter: &EntryFilter) -> (Option<&'static str>, Option<&'static str>, bool) {
    (
        filter.subject.map(SubjectKind::as_str),
        filter.severity.map(Severity::as_str),
        filter.problems_only,
    )
}

fn tally_from_rows(rows: Vec<(String, String, i64)>) -> Result<EntryTally, StoreError> {
    let mut tally = EntryTally::default();
    for (subject, severity, n) in rows {
        tally.add(
            super::postgres::parse("report_entries.subject", subject_kind(&subject))?,
            super::postgres::parse("report_entries.severity", severity_level(&severity))?,
            n.max(0) as u64,
        );
    }
    Ok(tally)
}

/// The page, tally and stream queries for one backend: the same code over its pool type and
/// its SQL, so the two backends cannot drift apart.
macro_rules! line_queries {
    ($pool:ty, $page_sql:expr, $cursor_sql:expr, $entries_after:ident, $tally:ident, $stream:ident) => {
        pub(super) async fn $entries_after(
            pool: &$pool,
            run: RunId,
            filter: &EntryFilter,
            after: i64,
            limit: i64,
        ) -> Result<Vec<NumberedEntry>, StoreError> {
            let (subject, severity, problems) = binds(filter);
            let rows: Vec<LineRow> = sqlx::query_as($page_sql)
                .bind(run)
                .bind(after)
                .bind(subject)
                .bind(severity)
                .bind(problems)
                .bind(limit.max(0))
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(LineRow::into_entry).collect()
        }

        pub(super) async fn $tally(pool: &$pool, run: RunId) -> Result<EntryTally, StoreError> {
            let rows: Vec<(String, String, i64)> =
                sqlx::query_as(TALLY_SQL).bind(run).fetch_all(pool).await?;
            tally_from_rows(rows)
        }

        pub(super) fn $stream(
            pool: &$pool,
            run: RunId,
            filter: EntryFilter,
        ) -> BoxStream<'_, Result<ReportEntry, StoreError>> {
            let (subject, severity, problems) = binds(&filter);
            sqlx::query_as::<_, LineRow>($cursor_sql)
                .bind(run)
                .bind(0_i64)
                .bind(subject)
                .bind(severity)
                .bind(problems)
                .fetch(pool)
                .map(|row| Ok(row?.into_entry()?.entry))
                .boxed()
        }
    };
}

line_queries!(
    PgPool,
    PG_PAGE_SQL,
    PG_CURSOR_SQL,
    pg_entries_after,
    pg_tally,
    pg_stream
);
line_queries!(
    SqlitePool,
    PAGE_SQL,
    CURSOR_SQL,
    sqlite_entries_after,
    sqlite_tally,
    sqlite_stream
);
