//! A run's report as an `.xlsx` workbook: sheets Summary, Groups, Users and Errors (R19).
//!
//! Text that came from Entra is only ever written as string cells, never through a call that
//! could turn it into a formula; text that Excel would read as a formula if someone re-entered the
//! cell (`=`, `+`, `-`, `@`, tab, carriage return first) also gets Excel's quote prefix.
//!
//! Times are real Excel date-times in the tenant's time zone, so they sort, filter and subtract in
//! Excel. An Excel date-time carries no zone, so the Summary names the zone and gives each time's
//! abbreviation and UTC offset beside it (which also tells the two 01:30s of a fall-back night
//! apart).

use chrono::{DateTime, Offset, Utc};
use chrono_tz::{OffsetName, Tz};
use futures::TryStreamExt;
use rust_xlsxwriter::{ColNum, Format, RowNum, Workbook, Worksheet};

use super::ReportError;
use crate::plan::{GroupSummary, PlanCounts, Severity};
use crate::store::{
    EntryFilter, ReportEntry, RunRecord, RunSummary, Store, SubjectKind, TriggerKind,
};
use crate::tenant::Tenant;

/// Excel's limits: characters in a cell and rows in a sheet.
const MAX_CELL_CHARS: usize = 32_767;
pub const MAX_ROWS: usize = 1_048_576;
/// Column widths in characters, chosen from the content within these bounds.
const MIN_WIDTH: usize = 8;
const MAX_WIDTH: usize = 60;
const DATETIME_FORMAT: &str = "yyyy-mm-dd hh:mm:ss";
const DURATION_FORMAT: &str = "[h]:mm:ss";

/// The file name a run's report downloads as, e.g. `dirsync-acme-run-42-2026-11-22.xlsx`; the date
/// is the day the run started in the tenant's time zone.
pub fn filename(tenant: &Tenant, run: &RunRecord) -> String {
    let day = run.started_at.with_timezone(&tenant.time_zone).date_naive();
    format!(
        "dirsync-{}-run-{}-{}.xlsx",
        tenant.key,
        run.id,
        day.format("%Y-%m-%d")
    )
}

/// The whole report of one run, already in memory, as the bytes of an `.xlsx` file (the demo
/// and tests; the service streams with [`write_report`]).
///
/// Works for a run still in progress or one whose process died: whatever the store holds is
/// written, and what is not known yet (the end, the counts) is left blank.
pub fn workbook(
    tenant: &Tenant,
    run: &RunRecord,
    groups: &[GroupSummary],
    entries: &[ReportEntry],
) -> Result<Vec<u8>, ReportError> {
    let mut book = ReportBook::new(groups, MAX_ROWS)?;
    for entry in entries {
        book.line(entry)?;
    }
    Ok(book.finish(tenant, run)?.save_to_buffer()?)
}

/// Writes the run's report into `out` as an `.xlsx` file, reading its lines from a database
/// cursor one by one into constant-memory sheets: memory stays bounded whatever the report's
/// size. A sheet that would pass `max_rows` rows (Excel's 1,048,576, header included) continues
/// on a sheet of its own, "Users (2)", "Users (3)", …
pub async fn write_report(
    store: &dyn Store,
    tenant: &Tenant,
    run: &RunRecord,
    max_rows: usize,
    out: std::fs::File,
) -> Result<std::fs::File, ReportError> {
    let groups = store.run_groups(run.id).await?;
    let mut book = ReportBook::new(&groups, max_rows)?;
    let mut lines = store.entries_stream(run.id, EntryFilter::default());
    while let Some(line) = lines.try_next().await? {
        book.line(&line)?;
    }
    drop(lines);
    let mut workbook = book.finish(tenant, run)?;
    // Compressing the sheets is the long part; it blocks, so off the async threads.
    tokio::task::spawn_blocking(move || {
        let mut out = out;
        workbook.save_to_writer(&mut out)?;
        Ok(out)
    })
    .await
    .map_err(|e| ReportError::Io(std::io::Error::other(e)))?
}

/// A report workbook being filled line by line: the Users and Errors sheets in constant-memory
/// mode (each row goes to a temporary file as the next begins), the Summary written last, once
/// the lines are counted.
struct ReportBook {
    book: Workbook,
    formats: Formats,
    groups: Sheet,
    users: SheetSeries,
    problems: SheetSeries,
    warnings: u64,
    errors: u64,
}

impl ReportBook {
    fn new(groups: &[GroupSummary], max_rows: usize) -> Result<Self, ReportError> {
        let max_rows = max_rows.clamp(2, MAX_ROWS);
        let formats = Formats::new();
        let mut book = Workbook::new();
        let mut sheet = Sheet::add(Worksheet::new(), "Groups", &formats, &GROUP_HEADERS)?;
        check_rows("Groups", groups.len(), max_rows)?;
        for group in groups {
            sheet.text(0, &group.entra_id.to_string())?;
            sheet.text(1, &group.label())?;
            sheet.text(2, group.role.as_str())?;
            if let Some(members) = group.members_seen {
                sheet.number(3, members as f64)?;
            }
            sheet.text(4, group.status.as_str())?;
            sheet.optional_text(5, group.message.as_deref())?;
            sheet.next_row();
        }
        let users = SheetSeries::new(&mut book, "Users", &USER_HEADERS, &formats, max_rows)?;
        let problems = SheetSeries::new(&mut book, "Errors", &ERROR_HEADERS, &formats, max_rows)?;
        Ok(Self {
            book,
            formats,
            groups: sheet,
            users,
            problems,
            warnings: 0,
            errors: 0,
        })
    }

    /// One report line: a row of Users if it is about a user, of Errors if it is a problem.
    fn line(&mut self, entry: &ReportEntry) -> Result<(), ReportError> {
        if entry.subject == SubjectKind::User {
            let sheet = self.users.row(&mut self.book)?;
            sheet.optional_text(
                0,
                entry.entra_id.as_ref().map(|id| id.to_string()).as_deref(),
            )?;
            sheet.optional_text(1, entry.email.as_deref())?;
            sheet.optional_text(2, entry.name.as_deref())?;
            sheet.text(3, &entry.action)?;
            sheet.optional_text(4, entry.field.as_deref())?;
            sheet.optional_text(5, entry.old_value.as_deref())?;
            sheet.optional_text(6, entry.new_value.as_deref())?;
            sheet.text(7, entry.severity.as_str())?;
            sheet.optional_text(8, entry.message.as_deref())?;
            sheet.next_row();
        }
        match entry.severity {
            Severity::Info => return Ok(()),
            Severity::Warning => self.warnings += 1,
            Severity::Error => self.errors += 1,
        }
        let sheet = self.problems.row(&mut self.book)?;
        sheet.text(0, entry.severity.as_str())?;
        sheet.text(1, entry.subject.as_str())?;
        sheet.optional_text(
            2,
            entry.entra_id.as_ref().map(|id| id.to_string()).as_deref(),
        )?;
        sheet.optional_text(3, entry.email.as_deref())?;
        sheet.optional_text(4, entry.name.as_deref())?;
        sheet.text(5, &entry.action)?;
        sheet.optional_text(6, entry.message.as_deref())?;
        sheet.next_row();
        Ok(())
    }

    /// The workbook with its sheets in order: Summary, Groups, Users…, Errors…
    fn finish(self, tenant: &Tenant, run: &RunRecord) -> Result<Workbook, ReportError> {
        let Self {
            mut book,
            formats,
            groups,
            users,
            problems,
            warnings,
            errors,
        } = self;
        let mut summary = Sheet::add(Worksheet::new(), "Summary", &formats, &SUMMARY_HEADERS)?;
        write_summary(&mut summary, tenant, run, warnings, errors)?;
        book.push_worksheet(summary.finish()?);
        book.push_worksheet(groups.finish()?);
        for sheet in users.finish()?.into_iter().chain(problems.finish()?) {
            book.push_worksheet(sheet);
        }
        Ok(book)
    }
}

const SUMMARY_HEADERS: [&str; 3] = ["Item", "Value", "Detail"];
const GROUP_HEADERS: [&str; 6] = [
    "Entra ID",
    "Name",
    "Role",
    "Members seen",
    "Outcome",
    "Message",
];
const USER_HEADERS: [&str; 9] = [
    "Entra ID",
    "Email",
    "Name",
    "Action",
    "Field",
    "Old value",
    "New value",
    "Severity",
    "Message",
];
const ERROR_HEADERS: [&str; 7] = [
    "Severity", "About", "Entra ID", "Email", "Name", "Action", "Message",
];

/// One value of the Summary sheet.
enum Value {
    Text(String),
    Number(f64),
    Time(DateTime<Utc>),
    Duration(chrono::TimeDelta),
    Blank,
}

/// Reads one of a finished run's figures.
type Figure = fn(&RunSummary) -> u64;
/// Reads one change count of a tally (applied or planned).
type Counted = fn(&PlanCounts) -> usize;

fn write_summary(
    sheet: &mut Sheet,
    tenant: &Tenant,
    run: &RunRecord,
    warnings: u64,
    errors: u64,
) -> Result<(), ReportError> {
    let text = |t: &str| Value::Text(t.to_owned());
    let optional = |t: Option<&str>| t.map_or(Value::Blank, text);
    let forced_by = match run.trigger.kind {
        TriggerKind::Manual | TriggerKind::OnDemand => optional(run.trigger.by.as_deref()),
        TriggerKind::Automatic => Value::Blank,
    };
    let mut rows = vec![
        ("Tenant", text(&tenant.display_name)),
        ("Tenant key", text(tenant.key.as_str())),
        ("Run", Value::Number(run.id as f64)),
        ("Trigger", text(run.trigger.kind.as_str())),
        ("Forced by", forced_by),
        ("Time zone", text(tenant.time_zone.name())),
        ("Started", Value::Time(run.started_at)),
        (
            "Finished",
            run.finished_at.map_or(Value::Blank, Value::Time),
        ),
        (
            "Duration",
            run.finished_at
                .map_or(Value::Blank, |end| Value::Duration(end - run.started_at)),
        ),
        ("Status", text(run.status.as_str())),
        ("Message", optional(run.message.as_deref())),
    ];
    // The counts are what was applied; a held, failed, stopped or running run also shows what
    // was planned, in the Detail column.
    let planned_label = run
        .summary
        .as_ref()
        .and_then(|s| s.planned_label(run.status));
    rows.push((
        "Counts",
        match planned_label {
            Some(label) => Value::Text(format!(
                "what was applied; the Detail column: what was {label}"
            )),
            None => text("what was applied"),
        },
    ));
    let mut details = Vec::new();

    let changes: [(&str, Counted); 10] = [
        ("Users created", |c| c.users_created),
        ("Users adopted", |c| c.users_adopted),
        ("Users updated", |c| c.users_updated),
        ("Users activated", |c| c.users_activated),
        ("Users deactivated", |c| c.users_deactivated),
        ("Memberships added", |c| c.memberships_added),
        ("Memberships removed", |c| c.memberships_removed),
        ("Groups created", |c| c.groups_created),
        ("Groups renamed", |c| c.groups_renamed),
        ("Groups converted to system groups", |c| c.groups_converted),
    ];
    for (label, count) in changes {
        let value = run
            .summary
            .as_ref()
            .map_or(Value::Blank, |s| Value::Number(count(&s.applied) as f64));
        if let (Some(summary), Some(_)) = (&run.summary, planned_label) {
            details.push((label, format!("{} planned", count(&summary.planned))));
        }
        rows.push((label, value));
    }

    let counts: [(&str, Figure); 6] = [
        ("Operations applied", |s| s.operations_applied as u64),
        ("Operations failed", |s| s.operations_failed as u64),
        ("Graph requests", |s| s.source.requests),
        ("Graph requests throttled", |s| s.source.throttled),
        ("Graph retries", |s| s.source.retries),
        ("Seconds waited for Graph", |s| s.source.waited_ms / 1000),
    ];
    // A run still in progress (or whose process died) has no figures yet: those stay blank.
    rows.extend(counts.into_iter().map(|(label, count)| {
        let value = run
            .summary
            .as_ref()
            .map_or(Value::Blank, |s| Value::Number(count(s) as f64));
        (label, value)
    }));
    // Counted from the report lines, so they match the Errors sheet even for a partial report.
    rows.push(("Warnings", Value::Number(warnings as f64)));
    rows.push(("Errors", Value::Number(errors as f64)));

    for (label, value) in rows {
        sheet.text(0, label)?;
        match value {
            Value::Text(t) => sheet.text(1, &t)?,
            Value::Number(n) => sheet.number(1, n)?,
            Value::Time(at) => sheet.datetime(1, tenant.time_zone, at)?,
            Value::Duration(span) => sheet.duration(1, span)?,
            Value::Blank => {}
        }
        if let Some((_, detail)) = details.iter().find(|(l, _)| *l == label) {
            sheet.text(2, detail)?;
        }
        sheet.next_row();
    }
    Ok(())
}

/// The Groups sheet never continues on another: a tenant selects at most 1,000 groups.
fn check_rows(sheet: &'static str, lines: usize, max: usize) -> Result<(), ReportError> {
    let rows = lines + 1;
    if rows > max {
        return Err(ReportError::TooManyRows { sheet, rows, max });
    }
    Ok(())
}

/// A sheet that continues on sheets of its own when full: "Users", "Users (2)", …
struct SheetSeries {
    name: &'static str,
    headers: &'static [&'static str],
    formats: Formats,
    max_rows: usize,
    full: Vec<Sheet>,
    current: Sheet,
}

impl SheetSeries {
    fn new(
        book: &mut Workbook,
        name: &'static str,
        headers: &'static [&'static str],
        formats: &Formats,
        max_rows: usize,
    ) -> Result<Self, ReportError> {
        let current = Sheet::add(
            book.new_worksheet_with_constant_memory(),
            name,
            formats,
            headers,
        )?;
        Ok(Self {
            name,
            headers,
            formats: formats.clone(),
            max_rows,
            full: Vec::new(),
            current,
        })
    }

    /// The sheet the next row goes on, begun when the current one is full.
    fn row(&mut self, book: &mut Workbook) -> Result<&mut Sheet, ReportError> {
        if self.current.row as usize >= self.max_rows {
            let name = format!("{} ({})", self.name, self.full.len() + 2);
            let next = Sheet::add(
                book.new_worksheet_with_constant_memory(),
                &name,
                &self.formats,
                self.headers,
            )?;
            self.full.push(std::mem::replace(&mut self.current, next));
        }
        Ok(&mut self.current)
    }

    fn finish(self) -> Result<Vec<Worksheet>, ReportError> {
        self.full
            .into_iter()
            .chain([self.current])
            .map(Sheet::finish)
            .collect()
    }
}

/// The formats every sheet shares.
#[derive(Clone)]
struct Formats {
    header: Format,
    datetime: Format,
    duration: Format,
    /// For text Excel would take for a formula if the cell were re-entered.
    quoted: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold(),
            datetime: Format::new().set_num_format(DATETIME_FORMAT),
            duration: Format::new().set_num_format(DURATION_FORMAT),
            quoted: Format::new().set_quote_prefix(),
        }
    }
}

/// One worksheet being filled row by row, remembering how wide each column's content is.
struct Sheet {
    worksheet: Worksheet,
    formats: Formats,
    row: RowNum,
    widths: Vec<usize>,
}

impl Sheet {
    /// Names a sheet and gives it a bold header row that stays in view and carries the filter
    /// buttons.
    fn add(
        mut worksheet: Worksheet,
        name: &str,
        formats: &Formats,
        headers: &[&str],
    ) -> Result<Self, ReportError> {
        worksheet.set_name(name)?;
        let mut sheet = Sheet {
            worksheet,
            formats: formats.clone(),
            row: 0,
            widths: vec![MIN_WIDTH; headers.len()],
        };
        for (col, header) in headers.iter().enumerate() {
            sheet.worksheet.write_string_with_format(
                0,
                col as ColNum,
                *header,
                &sheet.formats.header,
            )?;
            sheet.widen(col as ColNum, header.chars().count() + 2);
        }
        sheet.worksheet.set_freeze_panes(1, 0)?;
        sheet.row = 1;
        Ok(sheet)
    }

    fn next_row(&mut self) {
        self.row += 1;
    }

    /// Any text, whether dirsync's own or from Entra: always a string cell, never a formula.
    fn text(&mut self, col: ColNum, text: &str) -> Result<(), ReportError> {
        let text = match text.char_indices().nth(MAX_CELL_CHARS) {
            Some((cut, _)) => &text[..cut],
            None => text,
        };
        if looks_like_formula(text) {
            self.worksheet
                .write_string_with_format(self.row, col, text, &self.formats.quoted)?;
        } else {
            self.worksheet.write_string(self.row, col, text)?;
        }
        self.widen(col, text.chars().count());
        Ok(())
    }

    fn optional_text(&mut self, col: ColNum, text: Option<&str>) -> Result<(), ReportError> {
        match text {
            Some(text) => self.text(col, text),
            None => Ok(()),
        }
    }

    fn number(&mut self, col: ColNum, value: f64) -> Result<(), ReportError> {
        self.worksheet.write_number(self.row, col, value)?;
        self.widen(col, value.to_string().len());
        Ok(())
    }

    /// A local date-time in `zone`, with the zone's abbreviation and offset in the next column.
    fn datetime(&mut self, col: ColNum, zone: Tz, at: DateTime<Utc>) -> Result<(), ReportError> {
        let local = at.with_timezone(&zone);
        self.worksheet.write_datetime_with_format(
            self.row,
            col,
            local.naive_local(),
            &self.formats.datetime,
        )?;
        self.widen(col, DATETIME_FORMAT.len() + 1);
        self.text(col + 1, &zone_detail(&local))
    }

    fn duration(&mut self, col: ColNum, span: chrono::TimeDelta) -> Result<(), ReportError> {
        let days = span.num_milliseconds().max(0) as f64 / 86_400_000.0;
        self.worksheet
            .write_number_with_format(self.row, col, days, &self.formats.duration)?;
        Ok(())
    }

    fn widen(&mut self, col: ColNum, chars: usize) {
        let width = &mut self.widths[usize::from(col)];
        *width = (*width).max(chars.min(MAX_WIDTH));
    }

    /// Sets the column widths and the filter over everything written.
    fn finish(mut self) -> Result<Worksheet, ReportError> {
        for (col, width) in self.widths.iter().enumerate() {
            self.worksheet
                .set_column_width(col as ColNum, *width as f64 + 1.0)?;
        }
        let last_row = self.row.saturating_sub(1);
        let last_col = (self.widths.len() - 1) as ColNum;
        self.worksheet.autofilter(0, 0, last_row, last_col)?;
        Ok(self.worksheet)
    }
}

/// e.g. "BST, UTC+01:00"; zones whose abbreviation is only a number get just the offset.
fn zone_detail(local: &DateTime<Tz>) -> String {
    let utc = format!("UTC{}", local.offset().fix());
    match local.offset().abbreviation() {
        Some(abbreviation) if !abbreviation.starts_with(['+', '-']) => {
            format!("{abbreviation}, {utc}")
        }
        _ => utc,
    }
}

/// Whether Excel would read `text` as a formula if it were typed in (OWASP's CSV-injection list).
fn looks_like_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}
