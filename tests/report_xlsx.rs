//! The `.xlsx` report (R19), built in memory from a hand-made run and read back with calamine.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use dirsync::domain::{DeactivationStatus, EntraObjectId, Role, TenantKey};
use dirsync::plan::{GroupStatus, GroupSummary, PlanCounts, Severity, TenantPolicy};
use dirsync::report;
use dirsync::source::FetchStats;
use dirsync::store::{
    ReportEntry, RunOptions, RunRecord, RunStatus, RunSummary, SubjectKind, Trigger,
};
use dirsync::tenant::{Retention, Tenant};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const EVIL_NAME: &str = r#"=HYPERLINK("http://evil","x")"#;

fn id(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn tenant() -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme Ltd".to_owned(),
        entra_tenant_id: id(0xac3e),
        time_zone: chrono_tz::Europe::London,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups: vec![],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

/// A forced run that started at 23:30 UTC on a summer night: 00:30 the next day in London.
fn run() -> RunRecord {
    RunRecord {
        id: 42,
        tenant: TenantKey::parse("acme").unwrap(),
        trigger: Trigger::manual("admin@acme.com"),
        status: RunStatus::CompletedWithErrors,
        started_at: utc("2026-07-21T23:30:00Z"),
        finished_at: Some(utc("2026-07-21T23:32:05Z")),
        summary: Some(RunSummary {
            // One user could not be created: the plan wanted one more user and membership.
            planned: PlanCounts {
                groups_created: 1,
                groups_renamed: 0,
                groups_converted: 0,
                users_created: 2,
                users_adopted: 0,
                users_updated: 1,
                users_activated: 1,
                users_deactivated: 1,
                memberships_added: 8,
                memberships_removed: 2,
                warnings: 1,
                errors: 1,
            },
            applied: PlanCounts {
                groups_created: 1,
                groups_renamed: 0,
                groups_converted: 0,
                users_created: 1,
                users_adopted: 0,
                users_updated: 1,
                users_activated: 1,
                users_deactivated: 1,
                memberships_added: 7,
                memberships_removed: 2,
                warnings: 1,
                errors: 2,
            },
            operations_applied: 12,
            operations_failed: 1,
            source: FetchStats {
                requests: 31,
                throttled: 3,
                retries: 3,
                waited_ms: 4500,
            },
        }),
        message: Some("1 operation failed; 1 group could not be read".to_owned()),
        options: RunOptions::default(),
        progress: None,
        heartbeat_at: None,
    }
}

fn groups() -> Vec<GroupSummary> {
    vec![
        GroupSummary {
            entra_id: id(0x1001),
            name: "Lawyers".to_owned(),
            role: Role::Internal,
            members_seen: Some(12),
            status: GroupStatus::Found,
            message: None,
        },
        GroupSummary {
            entra_id: id(0x1002),
            name: "-Paralegals".to_owned(),
            role: Role::Basic,
            members_seen: Some(3),
            status: GroupStatus::Found,
            message: None,
        },
        GroupSummary {
            entra_id: id(0x1003),
            name: "Contractors".to_owned(),
            role: Role::Basic,
            members_seen: None,
            status: GroupStatus::Failed,
            message: Some("Graph answered 503 three times; nothing in it changes".to_owned()),
        },
    ]
}

fn user_line(n: u128, email: &str, name: &str, action: &str, severity: Severity) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::User,
        entra_id: Some(id(n)),
        email: Some(email.to_owned()),
        name: Some(name.to_owned()),
        action: action.to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity,
        message: None,
    }
}

fn entries() -> Vec<ReportEntry> {
    let mut created = user_line(
        0x2001,
        "alice@acme.com",
        "Alice Smith",
        "created",
        Severity::Info,
    );
    created.field = Some("email".to_owned());
    created.new_value = Some("alice@acme.com".to_owned());
    let mut hostile = user_line(0x2002, "+1@x.com", EVIL_NAME, "updated", Severity::Info);
    hostile.field = Some("job title".to_owned());
    hostile.old_value = Some("-5".to_owned());
    hostile.new_value = Some("@SUM(A1)".to_owned());
    let mut deactivated = user_line(
        0x2003,
        "bob@acme.com",
        "Bob Jones",
        "deactivated",
        Severity::Info,
    );
    deactivated.field = Some("status".to_owned());
    deactivated.old_value = Some("active".to_owned());
    deactivated.new_value = Some("inactive".to_owned());
    let mut warned = user_line(
        0x2004,
        "carol@acme.com",
        "Carol White",
        "warning",
        Severity::Warning,
    );
    warned.message = Some("the phone number is not valid and was left out".to_owned());
    let mut failed = user_line(
        0x2005,
        "dave@acme.com",
        "Dave Brown",
        "error",
        Severity::Error,
    );
    failed.message = Some("=cmd|' /C calc'!A0".to_owned());

    let group_line =
        |n: u128, name: &str, action: &str, severity, message: Option<&str>| ReportEntry {
            subject: SubjectKind::Group,
            entra_id: Some(id(n)),
            email: None,
            name: Some(name.to_owned()),
            action: action.to_owned(),
            field: None,
            old_value: None,
            new_value: None,
            severity,
            message: message.map(str::to_owned),
        };
    vec![
        group_line(0x1001, "Lawyers", "group created", Severity::Info, None),
        created,
        hostile,
        deactivated,
        warned,
        failed,
        group_line(
            0x1003,
            "Contractors",
            "error",
            Severity::Error,
            Some("the group could not be read"),
        ),
        ReportEntry {
            subject: SubjectKind::Run,
            entra_id: None,
            email: None,
            name: None,
            action: "warning".to_owned(),
            field: None,
            old_value: None,
            new_value: None,
            severity: Severity::Warning,
            message: Some("Graph throttled 3 requests".to_owned()),
        },
    ]
}

type Book = Xlsx<Cursor<Vec<u8>>>;

fn read_back(bytes: Vec<u8>) -> Book {
    open_workbook_from_rs(Cursor::new(bytes)).expect("the report is a readable .xlsx")
}

fn sheet(book: &mut Book, name: &str) -> Vec<Vec<Data>> {
    book.worksheet_range(name)
        .unwrap()
        .rows()
        .map(|row| row.to_vec())
        .collect()
}

fn text(cell: &Data) -> &str {
    match cell {
        Data::String(text) => text,
        other => panic!("expected a string cell, found {other:?}"),
    }
}

fn header(rows: &[Vec<Data>]) -> Vec<&str> {
    rows[0].iter().map(text).collect()
}

/// The Summary's value cell for `label`.
fn summary_value<'a>(rows: &'a [Vec<Data>], label: &str) -> &'a Data {
    let row = rows
        .iter()
        .find(|row| matches!(&row[0], Data::String(t) if t == label))
        .unwrap_or_else(|| panic!("no Summary row {label:?}"));
    &row[1]
}

fn summary_detail<'a>(rows: &'a [Vec<Data>], label: &str) -> &'a Data {
    let row = rows
        .iter()
        .find(|row| matches!(&row[0], Data::String(t) if t == label))
        .unwrap_or_else(|| panic!("no Summary row {label:?}"));
    &row[2]
}

fn local_time(cell: &Data) -> NaiveDateTime {
    match cell {
        Data::DateTime(at) => at.as_datetime().expect("a date-time"),
        other => panic!("expected a date-time cell, found {other:?}"),
    }
}

fn workbook() -> Book {
    let bytes = report::workbook(&tenant(), &run(), &groups(), &entries()).unwrap();
    read_back(bytes)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn the_workbook_has_summary_groups_users_and_errors_sheets_in_that_order() {
    let book = workbook();

    assert_eq!(book.sheet_names(), ["Summary", "Groups", "Users", "Errors"]);
}

#[test]
fn every_sheet_starts_with_its_header_row() {
    let mut book = workbook();

    assert_eq!(
        header(&sheet(&mut book, "Summary")),
        ["Item", "Value", "Detail"]
    );
    assert_eq!(
        header(&sheet(&mut book, "Groups")),
        [
            "Entra ID",
            "Name",
            "Role",
            "Members seen",
            "Outcome",
            "Message"
        ]
    );
    assert_eq!(
        header(&sheet(&mut book, "Users")),
        [
            "Entra ID",
            "Email",
            "Name",
            "Action",
            "Field",
            "Old value",
            "New value",
            "Severity",
            "Message"
        ]
    );
    assert_eq!(
        header(&sheet(&mut book, "Errors")),
        [
            "Severity", "About", "Entra ID", "Email", "Name", "Action", "Message"
        ]
    );
}

#[test]
fn each_sheet_has_one_row_per_group_user_line_or_problem() {
    let mut book = workbook();

    assert_eq!(sheet(&mut book, "Groups").len(), 1 + 3);
    assert_eq!(sheet(&mut book, "Users").len(), 1 + 5, "every user line");
    assert_eq!(
        sheet(&mut book, "Errors").len(),
        1 + 4,
        "the user warning and error, the group error and the run warning"
    );
    assert_eq!(sheet(&mut book, "Summary").len(), 1 + 30);
}

#[test]
fn the_summary_names_the_tenant_trigger_status_and_counts() {
    let mut book = workbook();
    let rows = sheet(&mut book, "Summary");
    let value = |label| summary_value(&rows, label);

    assert_eq!(value("Tenant"), &Data::String("Acme Ltd".into()));
    assert_eq!(value("Tenant key"), &Data::String("acme".into()));
    assert_eq!(value("Run"), &Data::Float(42.0));
    assert_eq!(value("Trigger"), &Data::String("Manual".into()));
    assert_eq!(value("Forced by"), &Data::String("admin@acme.com".into()));
    assert_eq!(
        value("Status"),
        &Data::String("completed with errors".into())
    );
    assert_eq!(
        value("Message"),
        &Data::String("1 operation failed; 1 group could not be read".into())
    );
    let counts = [
        ("Users created", 1.0),
        ("Users adopted", 0.0),
        ("Users updated", 1.0),
        ("Users activated", 1.0),
        ("Users deactivated", 1.0),
        ("Memberships added", 7.0),
        ("Memberships removed", 2.0),
        ("Groups created", 1.0),
        ("Groups renamed", 0.0),
        ("Groups converted to system groups", 0.0),
        ("Operations applied", 12.0),
        ("Operations failed", 1.0),
        ("Graph requests", 31.0),
        ("Graph requests throttled", 3.0),
        ("Graph retries", 3.0),
        ("Seconds waited for Graph", 4.0),
        ("Warnings", 2.0),
        ("Errors", 2.0),
    ];
    for (label, expected) in counts {
        assert_eq!(value(label), &Data::Float(expected), "{label}");
    }
}

#[test]
fn the_summary_counts_what_was_applied_and_beside_it_what_was_planned_for_a_run_that_did_not_apply_everything()
 {
    let mut book = workbook();
    let rows = sheet(&mut book, "Summary");
    assert_eq!(
        summary_value(&rows, "Counts"),
        &Data::String(
            "what was applied; the Detail column: what was planned (not all of it was applied)"
                .into()
        )
    );
    assert_eq!(summary_value(&rows, "Users created"), &Data::Float(1.0));
    assert_eq!(
        summary_detail(&rows, "Users created"),
        &Data::String("2 planned".into())
    );
    assert_eq!(
        summary_detail(&rows, "Memberships added"),
        &Data::String("8 planned".into())
    );

    // A run that applied everything it planned shows the applied counts alone.
    let mut clean = run();
    clean.status = RunStatus::Succeeded;
    let summary = clean.summary.as_mut().unwrap();
    summary.operations_failed = 0;
    summary.planned = summary.applied.clone();
    let bytes = report::workbook(&tenant(), &clean, &groups(), &entries()).unwrap();
    let rows = sheet(&mut read_back(bytes), "Summary");
    assert_eq!(
        summary_value(&rows, "Counts"),
        &Data::String("what was applied".into())
    );
    assert_eq!(summary_detail(&rows, "Users created"), &Data::Empty);

    // A held run applied nothing: zeros, with what it would have done beside them.
    let mut held = run();
    held.status = RunStatus::Held;
    held.summary.as_mut().unwrap().applied = PlanCounts::default();
    let bytes = report::workbook(&tenant(), &held, &groups(), &entries()).unwrap();
    let rows = sheet(&mut read_back(bytes), "Summary");
    assert_eq!(summary_value(&rows, "Users deactivated"), &Data::Float(0.0));
    assert_eq!(
        summary_detail(&rows, "Users deactivated"),
        &Data::String("1 planned".into())
    );
    assert!(
        matches!(summary_value(&rows, "Counts"), Data::String(text) if text.ends_with("planned (held: nothing was applied)"))
    );
}

#[test]
fn times_are_shown_in_the_tenants_zone_so_a_summer_run_at_half_past_eleven_utc_is_the_next_day() {
    let mut book = workbook();
    let rows = sheet(&mut book, "Summary");

    let started = local_time(summary_value(&rows, "Started"));
    let finished = local_time(summary_value(&rows, "Finished"));

    let next_day = NaiveDate::from_ymd_opt(2026, 7, 22).unwrap();
    assert_eq!(started, next_day.and_hms_opt(0, 30, 0).unwrap());
    assert_eq!(finished, next_day.and_hms_opt(0, 32, 5).unwrap());
    assert_eq!(
        summary_value(&rows, "Time zone"),
        &Data::String("Europe/London".into())
    );
    assert_eq!(
        summary_detail(&rows, "Started"),
        &Data::String("BST, UTC+01:00".into())
    );
    match summary_value(&rows, "Duration") {
        Data::DateTime(span) => assert!(
            (span.as_f64() * 86_400.0 - 125.0).abs() < 0.001,
            "{span:?} is not 2 min 5 s"
        ),
        other => panic!("expected a duration, found {other:?}"),
    }
}

#[test]
fn the_file_is_named_after_the_tenant_run_and_local_start_date() {
    assert_eq!(
        report::filename(&tenant(), &run()),
        "dirsync-acme-run-42-2026-07-22.xlsx"
    );
}

#[test]
fn groups_show_role_members_seen_and_outcome_with_a_failed_group_left_blank() {
    let mut book = workbook();
    let rows = sheet(&mut book, "Groups");

    assert_eq!(
        rows[1],
        [
            Data::String(id(0x1001).to_string()),
            Data::String("Lawyers [Synced Group]".into()),
            Data::String("internal".into()),
            Data::Float(12.0),
            Data::String("found".into()),
            Data::Empty,
        ]
    );
    assert_eq!(text(&rows[3][1]), "Contractors [Synced basic user group]");
    assert_eq!(rows[3][3], Data::Empty, "members seen is unknown");
    assert_eq!(text(&rows[3][4]), "failed");
    assert_eq!(
        text(&rows[3][5]),
        "Graph answered 503 three times; nothing in it changes"
    );
}

#[test]
fn users_show_every_action_with_old_and_new_values() {
    let mut book = workbook();
    let rows = sheet(&mut book, "Users");

    assert_eq!(
        rows[3],
        [
            Data::String(id(0x2003).to_string()),
            Data::String("bob@acme.com".into()),
            Data::String("Bob Jones".into()),
            Data::String("deactivated".into()),
            Data::String("status".into()),
            Data::String("active".into()),
            Data::String("inactive".into()),
            Data::String("info".into()),
            Data::Empty,
        ]
    );
    let actions: Vec<_> = rows[1..].iter().map(|row| text(&row[3])).collect();
    assert_eq!(
        actions,
        ["created", "updated", "deactivated", "warning", "error"]
    );
}

#[test]
fn errors_list_every_warning_and_error_about_users_groups_and_the_run() {
    let mut book = workbook();
    let rows = sheet(&mut book, "Errors");

    let lines: Vec<_> = rows[1..]
        .iter()
        .map(|row| (text(&row[0]), text(&row[1])))
        .collect();
    assert_eq!(
        lines,
        [
            ("warning", "user"),
            ("error", "user"),
            ("error", "group"),
            ("warning", "run")
        ]
    );
    assert_eq!(text(&rows[3][4]), "Contractors");
    assert_eq!(rows[4][2], Data::Empty, "the run has no Entra ID");
    assert_eq!(text(&rows[4][6]), "Graph throttled 3 requests");
}

#[test]
fn r19_text_from_entra_that_looks_like_a_formula_comes_back_as_plain_text() {
    let mut book = workbook();
    let users = sheet(&mut book, "Users");
    let groups = sheet(&mut book, "Groups");
    let errors = sheet(&mut book, "Errors");

    let hostile = &users[2];
    assert_eq!(hostile[1], Data::String("+1@x.com".into()));
    assert_eq!(hostile[2], Data::String(EVIL_NAME.into()));
    assert_eq!(hostile[5], Data::String("-5".into()));
    assert_eq!(hostile[6], Data::String("@SUM(A1)".into()));
    assert_eq!(
        groups[2][1],
        Data::String("-Paralegals [Synced basic user group]".into())
    );
    assert_eq!(errors[2][6], Data::String("=cmd|' /C calc'!A0".into()));
}

#[test]
fn r19_no_cell_in_any_sheet_is_a_formula() {
    let mut book = workbook();

    for name in ["Summary", "Groups", "Users", "Errors"] {
        let formulas = book.worksheet_formula(name).unwrap();
        assert!(
            formulas
                .used_cells()
                .all(|(_, _, formula)| formula.is_empty()),
            "{name} has formulas: {formulas:?}"
        );
    }
}

#[test]
fn the_formula_check_would_notice_a_formula() {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet
        .write_formula(0, 0, rust_xlsxwriter::Formula::new("=SUM(1,2)"))
        .unwrap();
    let mut book = read_back(workbook.save_to_buffer().unwrap());

    let formulas = book.worksheet_formula("Sheet1").unwrap();

    assert!(formulas.used_cells().any(|(_, _, f)| f == "SUM(1,2)"));
}

#[test]
fn a_run_still_in_progress_gives_a_partial_report_with_blank_end_and_counts() {
    let mut running = run();
    running.status = RunStatus::Running;
    running.finished_at = None;
    running.summary = None;
    running.trigger = Trigger::automatic();
    let bytes = report::workbook(&tenant(), &running, &groups()[..1], &entries()[..3]).unwrap();
    let mut book = read_back(bytes);
    let rows = sheet(&mut book, "Summary");
    let value = |label| summary_value(&rows, label);

    assert_eq!(value("Trigger"), &Data::String("Automatic".into()));
    assert_eq!(value("Forced by"), &Data::Empty);
    assert_eq!(value("Status"), &Data::String("running".into()));
    assert_eq!(value("Finished"), &Data::Empty);
    assert_eq!(value("Duration"), &Data::Empty);
    assert_eq!(value("Users created"), &Data::Empty);
    assert_eq!(value("Errors"), &Data::Float(0.0));
    assert_eq!(sheet(&mut book, "Users").len(), 1 + 2);
    assert_eq!(sheet(&mut book, "Errors").len(), 1, "only the header");
}
