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
use rust_xlsxwriter::{ColNum, Format, RowNum, Workbook, Worksheet};

use super::ReportError;
use crate::plan::{GroupSummary, PlanCounts, Severity};
use crate::store::{ReportEntry, RunRecord, RunSummary, SubjectKind, TriggerKind};
use crate::tenant::Tenant;

/// Excel's limits: characters in a cell and rows in a sheet.
const MAX_CELL_CHARS: usize = 32_767;
const MAX_ROWS: usize = 1_048_576;
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

/// The whole report of one run as the bytes of an `.xlsx` file.
///
/// Works for a run still in progress or one whose process died: whatever the store holds is
/// written, and what is not known yet (the end, the counts) is left blank.
pub fn workbook(
    tenant: &Tenant,
    run: &RunRecord,
    groups: &[GroupSummary],
    entries: &[ReportEntry],
) -> Result<Vec<u8>, ReportError> {
    let formats = Formats::new();
    let mut book = Workbook::new();

    let mut sheet = Sheet::add(&mut book, "Summary", &formats, &SUMMARY_HEADERS)?;
    write_summary(&mut sheet, tenant, run, entries)?;
    sheet.finish()?;

    let mut sheet = Sheet::add(&mut book, "Groups", &formats, &GROUP_HEADERS)?;
    check_rows("Groups", groups.len())?;
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
    sheet.finish()?;

    let users: Vec<_> = entries
        .iter()
        .filter(|e| e.subject == SubjectKind::User)
        .collect();
    let mut sheet = Sheet::add(&mut book, "Users", &formats, &USER_HEADERS)?;
    check_rows("Users", users.len())?;
    for entry in users {
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
    sheet.finish()?;

    let problems: Vec<_> = entries
        .iter()
        .filter(|e| e.severity >= Severity::Warning)
        .collect();
    let mut sheet = Sheet::add(&mut book, "Errors", &formats, &ERROR_HEADERS)?;
    check_rows("Errors", problems.len())?;
    for entry in problems {
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
    }
    sheet.finish()?;

    Ok(book.save_to_buffer()?)
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
    sheet: &mut Sheet<'_>,
    tenant: &Tenant,
    run: &RunRecord,
    entries: &[ReportEntry],
) -> Result<(), ReportError> {
    let text = |t: &str| Value::Text(t.to_owned());
    let optional = |t: Option<&str>| t.map_or(Value::Blank, text);
    let forced_by = match run.trigger.kind {
        TriggerKind::Manual => optional(run.trigger.by.as_deref()),
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
    let lines = |severity| entries.iter().filter(|e| e.severity == severity).count() as f64;
    rows.push(("Warnings", Value::Number(lines(Severity::Warning))));
    rows.push(("Errors", Value::Number(lines(Severity::Error))));

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

fn check_rows(sheet: &'static str, lines: usize) -> Result<(), ReportError> {
    let rows = lines + 1;
    if rows > MAX_ROWS {
        return Err(ReportError::TooManyRows {
            sheet,
            rows,
            max: MAX_ROWS,
        });
    }
    Ok(())
}

/// The formats every sheet shares.
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
struct Sheet<'a> {
    worksheet: &'a mut Worksheet,
    formats: &'a Formats,
    row: RowNum,
    widths: Vec<usize>,
}

impl<'a> Sheet<'a> {
    /// Adds a sheet with a bold header row that stays in view and carries the filter buttons.
    fn add(
        book: &'a mut Workbook,
        name: &str,
        formats: &'a Formats,
        headers: &[&str],
    ) -> Result<Self, ReportError> {
        let worksheet = book.add_worksheet();
        worksheet.set_name(name)?;
        let mut sheet = Sheet {
            worksheet,
            formats,
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
    fn finish(self) -> Result<(), ReportError> {
        for (col, width) in self.widths.iter().enumerate() {
            self.worksheet
                .set_column_width(col as ColNum, *width as f64 + 1.0)?;
        }
        let last_row = self.row.saturating_sub(1);
        let last_col = (self.widths.len() - 1) as ColNum;
        self.worksheet.autofilter(0, 0, last_row, last_col)?;
        Ok(())
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
