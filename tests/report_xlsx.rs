//! The `.xlsx` report (R19), built in memory from a hand-made run and read back with calamine;
//! then streamed from each store backend's cursor across a lowered row limit, and the report's
//! lines paged through the API of a real `dirsync serve`. The 1,000,000-line download with the
//! service's peak RSS is an ignored test that prints its figures:
//! `cargo test --release --test report_xlsx -- --ignored --nocapture`.

mod support;

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
use support::backend::TestDb;

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

// ---------------------------------------------------------------------------------------------
// Streamed from the store
// ---------------------------------------------------------------------------------------------

/// Inserts `lines` report lines into `run` in one statement: line n is about group n when n is a
/// multiple of 50, otherwise about user n ("User n", "user{n}@acme.com"); a warning when n is a
/// multiple of 10, an error when a multiple of 25 (and not of 10), else info; the name of user 7
/// looks like a formula.
fn bulk_lines_sql(postgres: bool, run: i64, lines: u64) -> String {
    let numbers = if postgres {
        format!("generate_series(1, {lines}) AS s(n)")
    } else {
        format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {lines}) \
             SELECT n FROM s) AS s"
        )
    };
    format!(
        "INSERT INTO report_entries (run_id, subject, email, name, action, severity, message) \
         SELECT {run}, \
                CASE WHEN n % 50 = 0 THEN 'group' ELSE 'user' END, \
                'user' || n || '@acme.com', \
                CASE WHEN n = 7 THEN '=cmd|calc' ELSE 'User ' || n END, \
                'created', \
                CASE WHEN n % 10 = 0 THEN 'warning' WHEN n % 25 = 0 THEN 'error' ELSE 'info' END, \
                CASE WHEN n % 10 = 0 OR n % 25 = 0 THEN 'look at line ' || n END \
           FROM {numbers}"
    )
}

/// A tenant `acme` with one run (kept running) holding `lines` bulk lines.
async fn run_with_lines(
    db: &TestDb,
    lines: u64,
) -> (RunRecord, std::sync::Arc<dyn dirsync::store::RunLease>) {
    let store = &db.store;
    store.upsert_tenant(&tenant()).await.unwrap();
    let lease = match store
        .begin_run(
            &tenant().key,
            &Trigger::manual("admin@acme.com"),
            RunOptions::default(),
        )
        .await
        .unwrap()
    {
        dirsync::store::RunStart::Started(lease) => lease,
        other => panic!("expected a new run, got {other:?}"),
    };
    db.execute(&bulk_lines_sql(!db.is_sqlite(), lease.run_id(), lines))
        .await;
    let run = store.run(lease.run_id()).await.unwrap().unwrap();
    (run, lease)
}

fn number_in(text: &str) -> u64 {
    text.trim_start_matches(|c: char| !c.is_ascii_digit())
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn a_report_over_the_row_limit_continues_on_numbered_sheets_in_order(db: TestDb) {
    let (run, _lease) = run_with_lines(&db, 250).await;

    let file = tempfile::tempfile().unwrap();
    let mut file = report::write_report(db.store.as_ref(), &tenant(), &run, 100, file)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    use std::io::{Read, Seek};
    file.rewind().unwrap();
    file.read_to_end(&mut bytes).unwrap();
    let mut book = read_back(bytes);

    // 245 user lines: 99 + 99 + 47 under a header each; 35 problems fit on one Errors sheet.
    assert_eq!(
        book.sheet_names(),
        [
            "Summary",
            "Groups",
            "Users",
            "Users (2)",
            "Users (3)",
            "Errors"
        ]
    );
    let mut users = Vec::new();
    for name in ["Users", "Users (2)", "Users (3)"] {
        let rows = sheet(&mut book, name);
        assert_eq!(header(&rows), USER_HEADER, "{name}");
        assert!(rows.len() <= 100, "{name} has {} rows", rows.len());
        users.extend(rows.into_iter().skip(1));
    }
    let expected: Vec<u64> = (1..=250).filter(|n| n % 50 != 0).collect();
    let emails: Vec<u64> = users.iter().map(|row| number_in(text(&row[1]))).collect();
    assert_eq!(emails, expected, "every user line once, in order");
    // R19 holds on every sheet: the formula-like name is text.
    assert_eq!(text(&users[6][2]), "=cmd|calc");

    let errors = sheet(&mut book, "Errors");
    let problems: Vec<u64> = (1..=250).filter(|n| n % 10 == 0 || n % 25 == 0).collect();
    assert_eq!(errors.len(), problems.len() + 1);
    let summary = sheet(&mut book, "Summary");
    assert_eq!(summary_value(&summary, "Warnings"), &Data::Float(25.0));
    assert_eq!(summary_value(&summary, "Errors"), &Data::Float(5.0));
}

const USER_HEADER: [&str; 9] = [
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

async fn report_lines_are_read_in_keyset_pages_and_counted_in_the_database(db: TestDb) {
    use dirsync::store::EntryFilter;
    let (run, _lease) = run_with_lines(&db, 250).await;
    let store = &db.store;

    let warnings = EntryFilter {
        severity: Some(Severity::Warning),
        ..EntryFilter::default()
    };
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .entries_after(run.id, &warnings, after, 7)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.line;
        seen.extend(
            page.iter()
                .map(|e| number_in(e.entry.email.as_deref().unwrap())),
        );
    }
    assert_eq!(
        seen,
        (1..=250).filter(|n| n % 10 == 0).collect::<Vec<u64>>()
    );

    let tally = store.entry_tally(run.id).await.unwrap();
    assert_eq!(tally.total(), 250);
    assert_eq!(tally.matching(&warnings), 25);
    assert_eq!(tally.of_severity(Severity::Error), 5);
    let problems = EntryFilter {
        problems_only: true,
        subject: Some(SubjectKind::Group),
        ..EntryFilter::default()
    };
    // Groups are lines 50, 100, …, 250, all multiples of 10: warnings.
    assert_eq!(tally.matching(&problems), 5);

    // The console's search pages through the cursor on either backend alike.
    let page = store
        .entries_page(
            run.id,
            &dirsync::store::EntryQuery {
                search: Some("USER1".to_owned()),
                offset: 2,
                limit: 3,
            },
        )
        .await
        .unwrap();
    // user1, user10..user19, user100..user199 (the lines about groups 100 and 150 included).
    assert_eq!(page.total, 111);
    let emails: Vec<&str> = page
        .entries
        .iter()
        .filter_map(|e| e.email.as_deref())
        .collect();
    assert_eq!(
        emails,
        ["user11@acme.com", "user12@acme.com", "user13@acme.com"]
    );
}

on_both_backends!(
    a_report_over_the_row_limit_continues_on_numbered_sheets_in_order,
    report_lines_are_read_in_keyset_pages_and_counted_in_the_database,
);

// ---------------------------------------------------------------------------------------------
// Through a real `dirsync serve`
// ---------------------------------------------------------------------------------------------

/// A `dirsync serve` child process on the test's PostgreSQL database, killed when dropped.
struct Served {
    child: std::process::Child,
    base: String,
}

impl Served {
    fn start(pool: &sqlx::PgPool) -> Self {
        use std::io::{BufRead, BufReader};
        let mut url = url::Url::parse(
            &std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        )
        .unwrap();
        url.set_path(&format!(
            "/{}",
            pool.connect_options().get_database().unwrap()
        ));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dirsync"))
            .arg("serve")
            .env("DIRSYNC__DATABASE__URL", url.as_str())
            .env("DIRSYNC__SERVER__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("DIRSYNC_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dirsync serve started");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let line = lines
            .by_ref()
            .map(|l| l.expect("a log line"))
            .find(|l| l.contains("dirsync listening"))
            .expect("the service said where it listens");
        // Keep reading its log, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let at = line.find("127.0.0.1:").expect("an address in the line");
        let port: String = line[at + 10..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The process's peak resident set so far (`VmHWM`), in MB.
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .expect("VmHWM in /proc");
        kb / 1000.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn viewer_token(pool: &sqlx::PgPool) -> String {
    let store = dirsync::store::PgStore::new(pool.clone());
    support::auth::token(
        &store,
        "reader",
        dirsync::domain::AccessRole::Viewer,
        Some("acme"),
    )
    .await
}

#[sqlx::test(migrations = "./migrations")]
async fn the_api_pages_a_report_with_next_links_that_keep_the_filter(pool: sqlx::PgPool) {
    let db = TestDb::postgres(pool.clone());
    let (run, _lease) = run_with_lines(&db, 250).await;
    let token = viewer_token(&pool).await;
    let served = Served::start(&pool);
    let client = reqwest::Client::new();

    let mut url = format!(
        "{}/api/v1/tenants/acme/runs/{}/entries?subject=user&limit=60",
        served.base, run.id
    );
    let mut emails = Vec::new();
    let mut pages = 0;
    loop {
        let page: serde_json::Value = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        assert_eq!(
            page["total"], 245,
            "the total counts the whole filtered report"
        );
        for entry in page["entries"].as_array().unwrap() {
            assert_eq!(entry["subject"], "user");
            emails.push(number_in(entry["email"].as_str().unwrap()));
        }
        match page["next"].as_str() {
            Some(next) => {
                assert!(
                    next.contains("subject=user") && next.contains("limit=60"),
                    "{next}"
                );
                url = format!("{}{next}", served.base);
            }
            None => break,
        }
    }
    assert_eq!(
        pages, 5,
        "245 lines in pages of 60, and no empty page at the end"
    );
    assert_eq!(
        emails,
        (1..=250).filter(|n| n % 50 != 0).collect::<Vec<u64>>()
    );
}

/// Issue 13: a 1,000,000-line report downloads as `.xlsx` from a real `dirsync serve` with the
/// service's peak RSS under 200 MB. Prints the figures.
#[sqlx::test(migrations = "./migrations")]
#[ignore = "a figure, not a check: inserts a million lines; run with --ignored --nocapture"]
async fn a_million_line_report_downloads_as_xlsx_with_the_service_under_200_mb(pool: sqlx::PgPool) {
    const LINES: u64 = 1_000_000;
    let db = TestDb::postgres(pool.clone());
    let started = std::time::Instant::now();
    let (run, _lease) = run_with_lines(&db, LINES).await;
    println!(
        "inserted {LINES} report lines in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let token = viewer_token(&pool).await;
    let served = Served::start(&pool);
    let at_start = served.peak_rss_mb();

    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/tenants/acme/runs/{}/report.xlsx",
            served.base, run.id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let bytes = response.bytes().await.unwrap().to_vec();
    let elapsed = started.elapsed();
    let peak = served.peak_rss_mb();
    println!(
        "downloaded {:.1} MB of .xlsx in {:.1} s; service peak RSS {at_start:.0} MB at start, \
         {peak:.0} MB after the download",
        bytes.len() as f64 / 1e6,
        elapsed.as_secs_f64()
    );

    let mut book = read_back(bytes);
    let names = book.sheet_names();
    assert_eq!(names, ["Summary", "Groups", "Users", "Errors"]);
    let users = book.worksheet_range("Users").unwrap();
    assert_eq!(users.height() as u64, LINES - LINES / 50 + 1);
    assert!(peak < 200.0, "the service's peak RSS was {peak:.0} MB");
}
