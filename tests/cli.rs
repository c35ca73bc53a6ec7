//! The `dirsync` binary end to end: `check`, `preview`, `sync`, `tenant apply|connect-highq` and
//! `demo`, run as a child process against emulators started in the test and a fresh database.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dirsync::domain::UserStatus;
use dirsync::emulator::entra::{AppRegistration, Directory, EntraEmulator, Group, TenantDirectory};
use dirsync::emulator::highq::{HighQEmulator, HighQSeed};
use serde_json::{Value, json};
use sqlx::PgPool;

const TENANT: &str = "6babcaad-604b-40ac-a9d7-9fd97c0b779f";
const APP: &str = "a1b2c3d4-0000-4000-8000-00000000c11e";
const SECRET: &str = "cli-test-secret";
const SALES: &str = "00006900-0000-4000-8000-000000000001";
const CLIENTS: &str = "00006900-0000-4000-8000-000000000002";
const EVERYONE: &str = "00006900-0000-4000-8000-000000000003";
const GONE: &str = "00006900-0000-4000-8000-0000000000ff";
const NESTED: &str = "00006900-0000-4000-8000-000000000009";
const DEVICE: &str = "0000de71-0000-4000-8000-000000000001";

fn user_id(n: u32) -> String {
    format!("00005e50-0000-4000-8000-{n:012x}")
}

fn email(n: u32) -> String {
    format!("user{n}@contoso.com")
}

fn user(n: u32, enabled: bool) -> Value {
    json!({
        "id": user_id(n),
        "displayName": format!("User {n}"),
        "givenName": "User",
        "surname": format!("{n}"),
        "mail": email(n),
        "userPrincipalName": email(n),
        "businessPhones": ["+44 20 7946 0000"],
        "jobTitle": "Analyst",
        "accountEnabled": enabled,
    })
}

fn group(id: &str, name: &str, members: Vec<String>) -> Group {
    Group {
        id: id.to_owned(),
        display_name: name.to_owned(),
        members,
    }
}

/// Sales holds users 1–4 and 6 (disabled), a nested group and a device; Clients holds user 5.
fn day_one() -> TenantDirectory {
    let mut tenant = TenantDirectory::new(TENANT);
    tenant.apps.push(AppRegistration::consented(APP, SECRET));
    for n in 1..=5 {
        tenant.put_user(user(n, true));
    }
    tenant.put_user(user(6, false));
    let mut sales: Vec<String> = [1, 2, 3, 4, 6].into_iter().map(user_id).collect();
    sales.extend([NESTED.to_owned(), DEVICE.to_owned()]);
    tenant.groups.push(group(SALES, "Sales", sales));
    tenant
        .groups
        .push(group(CLIENTS, "Clients", vec![user_id(5)]));
    tenant
        .groups
        .push(group(NESTED, "Nested", vec![user_id(9)]));
    tenant.put_user(user(9, true));
    let mut device = serde_json::Map::new();
    device.insert("id".into(), json!(DEVICE));
    device.insert("displayName".into(), json!("LAPTOP-01"));
    tenant.devices.push(device);
    tenant
}

/// A scratch directory for one test's files.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dirsync-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The server the tests' databases are on, as `sqlx::test` sees it.
fn server_url() -> url::Url {
    let text = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    url::Url::parse(&text).expect("DATABASE_URL is a URL")
}

/// The URL of the database behind `pool`, for the child process.
fn database_url(pool: &PgPool) -> String {
    let mut url = server_url();
    let name = pool
        .connect_options()
        .get_database()
        .expect("the test database has a name")
        .to_owned();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Settings for the child: the Entra emulator's [graph] section.
fn write_settings(dir: &Path, entra: &EntraEmulator) -> PathBuf {
    let path = dir.join("dirsync.toml");
    let text = dirsync::demo::graph_settings_toml(entra.base_url(), entra.ca_pem(), APP, SECRET);
    std::fs::write(&path, text).expect("settings written");
    path
}

/// One tenant "acme" selecting `groups`, with HighQ as its target.
fn write_tenant_file(
    dir: &Path,
    groups: &[(&str, &str)],
    highq: Option<&HighQEmulator>,
) -> PathBuf {
    let mut text = format!(
        "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"{TENANT}\"\ntime_zone = \"Europe/London\"\n"
    );
    for (id, role) in groups {
        text.push_str(&format!(
            "[[tenant.groups]]\nid = \"{id}\"\nrole = \"{role}\"\n"
        ));
    }
    if let Some(highq) = highq {
        text.push_str(&format!(
            "[tenant.target]\nkind = \"highq\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            highq.base_url(),
            highq.client_id(),
            highq.client_secret()
        ));
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).expect("tenant file written");
    path
}

/// Runs the binary off the async runtime, so emulators in this process keep answering it.
async fn dirsync(database_url: &str, config: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dirsync"));
    command
        .args(args)
        .env("DIRSYNC__DATABASE__URL", database_url)
        .env("RUST_LOG", "warn")
        .env_remove("DIRSYNC_CONFIG");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the child ran")
        .expect("the binary started")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The printed table row of one group, split on whitespace.
fn row(text: &str, group_id: &str) -> Vec<String> {
    text.lines()
        .find(|line| line.starts_with(group_id))
        .unwrap_or_else(|| panic!("no row for {group_id} in:\n{text}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[sqlx::test(migrations = "./migrations")]
async fn check_prints_each_groups_name_direct_user_count_and_flags_a_deleted_and_an_over_limit_group(
    pool: PgPool,
) {
    let mut tenant = day_one();
    let everyone: Vec<String> = (100_000..150_001).map(user_id).collect();
    for id in &everyone {
        tenant.put_user(json!({ "id": id }));
    }
    tenant.groups.push(group(EVERYONE, "Everyone", everyone));
    let entra = EntraEmulator::start(Directory {
        tenants: vec![tenant],
    })
    .await
    .expect("emulator");
    let dir = scratch();
    let settings = write_settings(&dir, &entra);
    let url = database_url(&pool);
    let tenants = write_tenant_file(
        &dir,
        &[
            (SALES, "internal"),
            (CLIENTS, "basic"),
            (EVERYONE, "internal"),
            (GONE, "internal"),
        ],
        None,
    );
    let applied = dirsync(&url, None, &["tenant", "apply", tenants.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));

    let output = dirsync(&url, Some(&settings), &["check", "--tenant", "acme"]).await;

    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    assert!(text.contains("token     ok"), "{text}");
    assert_eq!(row(&text, SALES), [SALES, "found", "Sales", "5"], "{text}");
    assert_eq!(
        row(&text, CLIENTS),
        [CLIENTS, "found", "Clients", "1"],
        "{text}"
    );
    assert_eq!(
        row(&text, EVERYONE),
        [
            EVERYONE, "OVER", "LIMIT", "Everyone", "50001", "(>", "50000,", "R16)"
        ],
        "{text}"
    );
    assert_eq!(row(&text, GONE), [GONE, "deleted"], "{text}");
    assert!(
        text.contains(
            "target    FAILED: tenant acme has no target connection: set [tenant.target]"
        ),
        "the tenant has no target configured: {text}"
    );
    let counts: Vec<_> = entra
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.contains("$count") || r.path_and_query.contains("%24count"))
        .collect();
    assert_eq!(counts.len(), 3, "one $count per group found: {counts:?}");
}

#[sqlx::test(migrations = "./migrations")]
async fn tenant_apply_with_check_connection_stores_the_tenant_then_tests_entra_and_the_target(
    pool: PgPool,
) {
    let entra = EntraEmulator::start(Directory {
        tenants: vec![day_one()],
    })
    .await
    .expect("emulator");
    let highq = HighQEmulator::start(HighQSeed::default())
        .await
        .expect("HighQ emulator");
    let dir = scratch();
    let settings = write_settings(&dir, &entra);
    let url = database_url(&pool);
    let tenants = write_tenant_file(&dir, &[(SALES, "internal"), (GONE, "basic")], Some(&highq));

    let output = dirsync(
        &url,
        Some(&settings),
        &[
            "tenant",
            "apply",
            tenants.to_str().unwrap(),
            "--check-connection",
        ],
    )
    .await;

    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    assert!(
        text.starts_with("tenant acme: 2 selected groups, time zone Europe/London\n"),
        "{text}"
    );
    assert!(text.contains("token     ok"), "{text}");
    assert_eq!(row(&text, SALES), [SALES, "found", "Sales", "5"], "{text}");
    assert_eq!(row(&text, GONE), [GONE, "deleted"], "{text}");
    assert!(
        text.contains(
            "target    FAILED: highq answered: no HighQ refresh token is stored for this tenant; \
             an operator must connect the tenant to HighQ first"
        ),
        "{text}"
    );
    assert!(
        text.contains("the tenants are stored, but a connection check failed"),
        "{text}"
    );
    let listed = dirsync(&url, None, &["tenant", "list"]).await;
    assert!(stdout(&listed).starts_with("acme\t"), "{}", stdout(&listed));
}

#[sqlx::test(migrations = "./migrations")]
async fn tenant_pause_refuses_a_sync_says_why_in_status_and_resume_and_the_global_pause_are_audited(
    pool: PgPool,
) {
    let dir = scratch();
    let url = database_url(&pool);
    let tenants = write_tenant_file(&dir, &[(SALES, "internal")], None);
    dirsync(&url, None, &["tenant", "apply", tenants.to_str().unwrap()]).await;

    let paused = dirsync(
        &url,
        None,
        &[
            "tenant",
            "pause",
            "--tenant",
            "acme",
            "--reason",
            "HighQ moves",
        ],
    )
    .await;
    assert!(paused.status.success(), "{}", stderr(&paused));
    assert!(
        stdout(&paused).starts_with("tenant acme paused"),
        "{}",
        stdout(&paused)
    );
    let status = dirsync(&url, None, &["tenant", "status", "--tenant", "acme"]).await;
    assert_eq!(status.status.code(), Some(3), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("HighQ moves"),
        "{}",
        stdout(&status)
    );
    let sync = dirsync(&url, None, &["sync", "--tenant", "acme"]).await;
    assert!(!sync.status.success());
    assert!(
        stderr(&sync).contains("tenant acme is paused (by dirsync CLI ("),
        "{}",
        stderr(&sync)
    );

    let resumed = dirsync(&url, None, &["tenant", "resume", "--tenant", "acme"]).await;
    assert!(
        stdout(&resumed).starts_with("tenant acme resumed"),
        "{}",
        stdout(&resumed)
    );
    let status = dirsync(&url, None, &["tenant", "status", "--tenant", "acme"]).await;
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let global = dirsync(&url, None, &["pause", "--reason", "database upgrade"]).await;
    assert!(
        stdout(&global).starts_with("dirsync paused for maintenance"),
        "{}",
        stdout(&global)
    );
    let status = dirsync(&url, None, &["tenant", "status", "--tenant", "acme"]).await;
    assert!(
        stdout(&status).contains("database upgrade"),
        "{}",
        stdout(&status)
    );
    dirsync(&url, None, &["resume"]).await;
    let audit = dirsync(&url, None, &["audit", "list"]).await;
    for action in [
        "tenant_pause",
        "tenant_resume",
        "service_pause",
        "service_resume",
    ] {
        assert!(
            stdout(&audit).contains(action),
            "{action}: {}",
            stdout(&audit)
        );
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn check_names_a_wrong_client_secret_and_exits_with_1(pool: PgPool) {
    let entra = EntraEmulator::start(Directory {
        tenants: vec![day_one()],
    })
    .await
    .expect("emulator");
    let dir = scratch();
    let settings = dir.join("dirsync.toml");
    std::fs::write(
        &settings,
        dirsync::demo::graph_settings_toml(entra.base_url(), entra.ca_pem(), APP, "wrong"),
    )
    .unwrap();
    let url = database_url(&pool);
    let tenants = write_tenant_file(&dir, &[(SALES, "internal")], None);
    dirsync(&url, None, &["tenant", "apply", tenants.to_str().unwrap()]).await;

    let output = dirsync(&url, Some(&settings), &["check", "--tenant", "acme"]).await;

    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("token     FAILED"), "{text}");
    assert!(
        !text.contains(SALES),
        "no group is read without a token: {text}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn preview_prints_group_counts_and_how_many_users_a_sync_would_create_adopt_update_activate_and_deactivate(
    pool: PgPool,
) {
    // Arrange: two syncs through the CLI leave users 1–5 synced, user 4 deactivated.
    let entra = EntraEmulator::start(Directory {
        tenants: vec![day_one()],
    })
    .await
    .expect("emulator");
    let highq = HighQEmulator::start(HighQSeed {
        manual_users: vec![(
            email(7).to_uppercase(),
            "User".into(),
            "7".into(),
            UserStatus::Active,
        )],
        ..HighQSeed::default()
    })
    .await
    .expect("HighQ emulator");
    let dir = scratch();
    let settings = write_settings(&dir, &entra);
    let url = database_url(&pool);
    let tenants = write_tenant_file(
        &dir,
        &[(SALES, "internal"), (CLIENTS, "basic")],
        Some(&highq),
    );
    let applied = dirsync(&url, None, &["tenant", "apply", tenants.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let code = highq.with(|s| s.issue_authorization_code());
    let connected = dirsync(
        &url,
        None,
        &[
            "tenant",
            "connect-highq",
            "--tenant",
            "acme",
            "--code",
            &code,
        ],
    )
    .await;
    assert!(connected.status.success(), "{}", stderr(&connected));
    let checked = dirsync(&url, Some(&settings), &["check", "--tenant", "acme"]).await;
    assert!(
        stdout(&checked).contains("target    highq ok"),
        "{}{}",
        stdout(&checked),
        stderr(&checked)
    );
    assert_eq!(
        checked.status.code(),
        Some(0),
        "Entra and HighQ both answer"
    );
    let first = dirsync(&url, Some(&settings), &["sync", "--tenant", "acme"]).await;
    assert!(
        stdout(&first)
            .contains("users: 5 created, 0 adopted, 0 updated, 0 activated, 0 deactivated"),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    entra.edit(|d| d.tenant_mut(TENANT).unwrap().put_user(user(4, false)));
    let second = dirsync(&url, Some(&settings), &["sync", "--tenant", "acme"]).await;
    assert!(
        stdout(&second)
            .contains("users: 0 created, 0 adopted, 0 updated, 0 activated, 1 deactivated"),
        "{}",
        stdout(&second)
    );
    // The next day: 4 and 6 enabled, 1's title changed, 2 disabled, 3 gone from Sales, 7 (known
    // to HighQ by hand) joins Clients, 8 joins Sales.
    entra.edit(|d| {
        let t = d.tenant_mut(TENANT).unwrap();
        t.put_user(user(4, true));
        t.put_user(user(6, true));
        let mut one = user(1, true);
        one["jobTitle"] = json!("Head of Sales");
        t.put_user(one);
        t.put_user(user(2, false));
        t.put_user(user(7, true));
        t.put_user(user(8, true));
        let sales = t.group_mut(SALES).unwrap();
        sales.members.retain(|m| *m != user_id(3));
        sales.members.push(user_id(8));
        t.group_mut(CLIENTS).unwrap().members.push(user_id(7));
    });
    let users_before = highq.users();

    // Act
    let output = dirsync(&url, Some(&settings), &["preview", "--tenant", "acme"]).await;

    // Assert
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert_eq!(row(&text, SALES), [SALES, "found", "Sales", "5"], "{text}");
    assert_eq!(
        row(&text, CLIENTS),
        [CLIENTS, "found", "Clients", "2"],
        "{text}"
    );
    assert!(
        text.contains(
            "users: 2 to create, 1 to adopt, 1 to update, 1 to activate, 2 to deactivate\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("memberships: 3 to add, 1 to remove\n"),
        "{text}"
    );
    assert_eq!(highq.users(), users_before, "a preview changes nothing");
}

#[test]
fn tenant_apply_names_the_tenant_and_the_field_that_is_wrong() {
    let dir = scratch();
    let file = dir.join("tenants.toml");
    std::fs::write(
        &file,
        format!(
            "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"{TENANT}\"\ntime_zone = \"Mars/Olympus\"\n"
        ),
    )
    .unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_dirsync"))
        .args(["tenant", "apply", file.to_str().unwrap()])
        .env(
            "DIRSYNC__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .expect("the binary ran");

    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tenant \"acme\": time_zone \"Mars/Olympus\" is not an IANA time zone"),
        "{err}"
    );

    std::fs::write(
        &file,
        format!(
            "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"{TENANT}\"\ntime_zone = \"UTC\"\n\
             [[tenant.groups]]\nid = \"{SALES}\"\nrole = \"guest\"\n"
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dirsync"))
        .args(["tenant", "apply", file.to_str().unwrap()])
        .env(
            "DIRSYNC__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .expect("the binary ran");
    let err = stderr(&output);
    assert!(
        err.contains("tenant \"acme\": group") && err.contains(SALES) && err.contains("guest"),
        "{err}"
    );
}

#[tokio::test]
async fn demo_syncs_the_seeded_firm_into_highq_prints_the_summary_and_runs_again() {
    let database = format!("dirsync_demo_test_{}", uuid::Uuid::new_v4().simple());
    let dir = scratch();
    let server = server_url().to_string();
    let args = [
        "demo",
        "--database",
        &database,
        "--report-dir",
        dir.to_str().unwrap(),
    ];

    let first = dirsync(&server, None, &args).await;
    let second = dirsync(&server, None, &args).await;

    let mut admin = server_url();
    admin.set_path("/postgres");
    let pool = PgPool::connect(admin.as_str()).await.expect("the server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute(&pool)
        .await
        .expect("the demo database dropped");
    for output in [first, second] {
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
        for expected in [
            "run 1: succeeded\n",
            "users: 297 created, 2 adopted, 0 updated, 0 activated, 0 deactivated\n",
            "groups: 6 created, 0 renamed, 0 converted; memberships: 415 added, 0 removed\n",
            "2 warnings, 0 errors\n",
            "Client Portal - Northwind Traders [Synced basic user group]  basic      43 members  found",
            "reached HighQ as +44$20$7946$0958 (R6)",
            "0 of the 10 trainees are in HighQ (R1)",
            "HighQ now: 301 users (299 synced by dirsync, 2 made by hand and left alone), 8 groups \
             (6 synced, 2 made by hand and left alone)",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let report = text
            .lines()
            .find_map(|l| l.strip_prefix("Report workbook: "))
            .expect("the report's path");
        assert!(Path::new(report).is_file(), "{report}");
    }
}

/// What every demo prints, whichever database it keeps its records in.
const DEMO_SUMMARY: &[&str] = &[
    "run 1: succeeded\n",
    "users: 297 created, 2 adopted, 0 updated, 0 activated, 0 deactivated\n",
    "groups: 6 created, 0 renamed, 0 converted; memberships: 415 added, 0 removed\n",
    "2 warnings, 0 errors\n",
    "reached HighQ as +44$20$7946$0958 (R6)",
    "HighQ now: 301 users (299 synced by dirsync, 2 made by hand and left alone), 8 groups \
     (6 synced, 2 made by hand and left alone)",
];

#[tokio::test]
async fn demo_needs_no_database_server_it_keeps_its_records_in_a_fresh_sqlite_file() {
    let dir = scratch();
    let file = dir.join("dirsync-demo.db");
    let args = [
        "demo",
        "--sqlite-file",
        file.to_str().unwrap(),
        "--report-dir",
        dir.to_str().unwrap(),
    ];
    // The settings name a PostgreSQL server that is not there: the demo must not need it.
    let nowhere = "postgres://nobody@127.0.0.1:1/nowhere";
    let run = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dirsync"));
        command
            .args(args)
            .env("DIRSYNC__DATABASE__URL", nowhere)
            .env("DATABASE_URL", nowhere)
            .env("RUST_LOG", "warn")
            .env_remove("DIRSYNC_CONFIG");
        tokio::task::spawn_blocking(move || command.output())
    };

    let first = run().await.unwrap().expect("the binary ran");
    let second = run().await.unwrap().expect("the binary ran");

    for output in [first, second] {
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
        for expected in DEMO_SUMMARY {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let shown = format!("database        sqlite://{}", file.display());
        assert!(text.contains(&shown), "missing {shown:?} in:\n{text}");
    }
    assert!(file.is_file(), "the demo's SQLite file {}", file.display());

    // A file not named as a demo's is never deleted.
    let precious = dir.join("dirsync.db");
    std::fs::write(&precious, "keep me").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dirsync"))
        .args(["demo", "--sqlite-file", precious.to_str().unwrap()])
        .env_remove("DIRSYNC_CONFIG")
        .output()
        .expect("the binary ran");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("must be named dirsync-demo"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}

#[test]
fn a_second_serve_on_the_same_sqlite_file_refuses_to_start_saying_why() {
    use std::io::{BufRead, BufReader};
    let dir = scratch();
    let file = dir.join("data").join("dirsync.db");
    let serve = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dirsync"));
        command
            .arg("serve")
            .env("DIRSYNC__DATABASE__PATH", &file)
            .env("DIRSYNC__SERVER__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("DIRSYNC__DATABASE__URL")
            .env_remove("DIRSYNC_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command
    };
    let mut first = serve().spawn().expect("the first server started");
    // It has the file once it says where its records are kept.
    let mut log = BufReader::new(first.stderr.take().expect("stderr")).lines();
    let said = log
        .by_ref()
        .map(|line| line.expect("a log line"))
        .find(|line| line.contains("records kept in SQLite file"));

    let second = serve().output().expect("the second server ran");
    first.kill().expect("the first server stopped");
    first.wait().expect("the first server exited");

    assert!(said.is_some(), "the first server never said it was serving");
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "another dirsync serve is already running on the SQLite database {}",
            file.display()
        )) && err.contains("move to PostgreSQL"),
        "{err}"
    );
    // Once the first has stopped, the file is free again.
    let mut third = serve().spawn().expect("a new server started");
    let found = BufReader::new(third.stderr.take().expect("stderr"))
        .lines()
        .map(|line| line.expect("a log line"))
        .find(|line| line.contains("records kept in SQLite file") || line.contains("Error"));
    third.kill().expect("the new server stopped");
    third.wait().expect("the new server exited");
    assert!(
        found.is_some_and(|line| line.contains("records kept in")),
        "the file was not freed"
    );
}

/// Starts `dirsync ARGS` and reads its stdout up to "Press Ctrl-C to stop.", then stops it.
fn banner_of(args: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_dirsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the binary started");
    let mut banner = String::new();
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("a line");
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    child.kill().expect("the emulator stopped");
    child.wait().expect("the emulator exited");
    banner
}

#[test]
fn emulate_entra_prints_its_url_and_writes_the_ca_and_settings_that_trust_it() {
    let dir = scratch();
    let ca = dir.join("ca.pem");
    let settings = dir.join("settings.toml");

    let banner = banner_of(&[
        "emulate",
        "entra",
        "--fixture",
        "tests/fixtures/entra/demo_directory.json",
        "--port",
        "0",
        "--ca-pem",
        ca.to_str().unwrap(),
        "--settings-out",
        settings.to_str().unwrap(),
    ]);

    let url = banner
        .lines()
        .find_map(|l| l.strip_prefix("Entra emulator listening at "))
        .unwrap_or_else(|| panic!("{banner}"));
    assert!(url.starts_with("https://127.0.0.1:"), "{banner}");
    assert!(banner.contains(&format!("CA certificate (PEM) written to {}", ca.display())));
    assert!(
        banner.contains(&format!("tenant {TENANT}: 2 users, 2 groups, 1 apps")),
        "{banner}"
    );
    let pem = std::fs::read_to_string(&ca).expect("the CA");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let written = std::fs::read_to_string(&settings).expect("the settings");
    assert!(
        written.contains(&format!("authority_host = \"{url}\"")),
        "{written}"
    );
    assert!(written.contains(pem.trim()), "{written}");
}

#[test]
fn emulate_highq_prints_its_base_url_client_and_a_code_to_connect_with() {
    let banner = banner_of(&["emulate", "highq", "--port", "0", "--instance", "acme"]);

    assert!(
        banner.lines().any(
            |l| l.starts_with("HighQ emulator listening at http://127.0.0.1:")
                && l.ends_with("/acme")
        ),
        "{banner}"
    );
    assert!(banner.contains("  client_id     dirsync\n"), "{banner}");
    assert!(banner.contains("authorization code "), "{banner}");
}

#[sqlx::test(migrations = "./migrations")]
async fn access_token_and_audit_commands_manage_who_may_use_dirsync(pool: PgPool) {
    let dir = scratch();
    let url = database_url(&pool);
    let tenants = write_tenant_file(&dir, &[(SALES, "internal")], None);
    let applied = dirsync(&url, None, &["tenant", "apply", tenants.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let ada = "00000000-0000-4000-8000-0000000000ad";

    let granted = dirsync(
        &url,
        None,
        &[
            "access",
            "grant",
            "--tid",
            TENANT,
            "--oid",
            ada,
            "--role",
            "tenant_admin",
            "--tenant",
            "acme",
            "--label",
            "Ada Lovelace",
        ],
    )
    .await;
    assert!(granted.status.success(), "{}", stderr(&granted));
    let granted = stdout(&granted);
    assert!(granted.contains("\ttenant_admin\tacme\t"), "{granted}");
    let grant_id = granted
        .trim_start_matches("granted: ")
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    let refused = dirsync(
        &url,
        None,
        &[
            "access", "grant", "--tid", TENANT, "--oid", ada, "--role", "operator", "--tenant",
            "acme",
        ],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("an operator holds on every tenant"));
    let listed = stdout(&dirsync(&url, None, &["access", "list", "--tenant", "acme"]).await);
    assert!(listed.contains("Ada Lovelace"), "{listed}");

    let created = dirsync(
        &url,
        None,
        &[
            "token", "create", "--name", "nightly", "--role", "viewer", "--tenant", "acme",
        ],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("dsy_") && token.len() == 47, "{token}");
    assert!(stderr(&created).contains("shown this once"));
    let tokens = stdout(&dirsync(&url, None, &["token", "list"]).await);
    assert!(
        tokens.contains(&token[..12]) && tokens.contains("active"),
        "{tokens}"
    );
    assert!(!tokens.contains(&token), "the token is never listed");
    let token_id = tokens
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    let revoked = dirsync(&url, None, &["token", "revoke", &token_id]).await;
    assert!(stdout(&revoked).contains("revoked"), "{}", stderr(&revoked));
    let revoked_grant = dirsync(&url, None, &["access", "revoke", &grant_id]).await;
    assert!(revoked_grant.status.success(), "{}", stderr(&revoked_grant));

    let audit = stdout(&dirsync(&url, None, &["audit", "list", "--tenant", "acme"]).await);
    let actions: Vec<&str> = audit
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "grant_revoke",
            "token_revoke",
            "token_create",
            "grant",
            "tenant_create"
        ],
        "{audit}"
    );
    assert!(
        audit.lines().skip(1).all(|l| l.contains("dirsync CLI (")),
        "{audit}"
    );
    assert!(!audit.contains(&token), "{audit}");
}

/// A tenant synced once through the CLI whose second run (run 2) is held: it would deactivate two
/// users, one more than its threshold.
struct HeldRun {
    /// Kept running until the test ends.
    _entra: EntraEmulator,
    highq: HighQEmulator,
    settings: PathBuf,
    url: String,
}

async fn tenant_with_held_run_2(pool: &PgPool) -> HeldRun {
    let entra = EntraEmulator::start(Directory {
        tenants: vec![day_one()],
    })
    .await
    .expect("emulator");
    let highq = HighQEmulator::start(HighQSeed::default())
        .await
        .expect("HighQ emulator");
    let dir = scratch();
    let settings = write_settings(&dir, &entra);
    let url = database_url(pool);
    let tenants = write_tenant_file(&dir, &[(SALES, "internal")], Some(&highq));
    let text = std::fs::read_to_string(&tenants).unwrap().replace(
        "time_zone = \"Europe/London\"\n",
        "time_zone = \"Europe/London\"\ndeletion_threshold = 1\n",
    );
    std::fs::write(&tenants, text).unwrap();
    let applied = dirsync(&url, None, &["tenant", "apply", tenants.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let code = highq.with(|s| s.issue_authorization_code());
    let connect = [
        "tenant",
        "connect-highq",
        "--tenant",
        "acme",
        "--code",
        &code,
    ];
    assert!(dirsync(&url, None, &connect).await.status.success());
    let first = dirsync(&url, Some(&settings), &["sync", "--tenant", "acme"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    // Users 1 and 2 leave Sales: two deactivations, one more than the threshold.
    entra.edit(|d| {
        let sales = d
            .tenant_mut(TENANT)
            .unwrap()
            .groups
            .iter_mut()
            .find(|g| g.id == SALES)
            .unwrap();
        sales
            .members
            .retain(|m| *m != user_id(1) && *m != user_id(2));
    });
    let held = dirsync(&url, Some(&settings), &["sync", "--tenant", "acme"]).await;
    assert_eq!(held.status.code(), Some(3), "{}", stdout(&held));
    assert!(
        stdout(&held).starts_with("run 2: held\n"),
        "{}",
        stdout(&held)
    );
    HeldRun {
        _entra: entra,
        highq,
        settings,
        url,
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_approve_carries_out_a_held_run_once_in_the_approvers_name(pool: PgPool) {
    // Every field is bound, so the emulators run until the test ends.
    let HeldRun {
        _entra,
        highq,
        settings,
        url,
    } = tenant_with_held_run_2(&pool).await;
    let approve = [
        "approve",
        "--tenant",
        "acme",
        "--run",
        "2",
        "--by",
        "Ada Admin",
    ];
    let approved = dirsync(&url, Some(&settings), &approve).await;

    let text = stdout(&approved);
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{text}{}",
        stderr(&approved)
    );
    assert!(
        text.starts_with("run 2 approved by Ada Admin; run 3 carries it out\nrun 3: succeeded\n"),
        "{text}"
    );
    assert!(
        text.contains("users: 0 created, 0 adopted, 0 updated, 0 activated, 2 deactivated\n"),
        "{text}"
    );
    let deactivated = highq.with(|s| {
        [1, 2]
            .iter()
            .filter(|n| s.user_by_email(&email(**n)).unwrap().status == UserStatus::Inactive)
            .count()
    });
    assert_eq!(deactivated, 2);

    let again = dirsync(&url, Some(&settings), &approve).await;
    assert_eq!(again.status.code(), Some(5), "{}", stdout(&again));
    assert!(
        stdout(&again).starts_with("approval refused: run 2 was already approved by Ada Admin"),
        "{}",
        stdout(&again)
    );
}

#[sqlx::test]
async fn tenant_consent_url_names_the_customers_directory_and_the_graph_app(pool: PgPool) {
    let entra = EntraEmulator::start(Directory {
        tenants: vec![day_one()],
    })
    .await
    .expect("emulator");
    let dir = scratch();
    let settings = write_settings(&dir, &entra);
    let url = database_url(&pool);
    let tenants = write_tenant_file(&dir, &[(SALES, "internal")], None);
    let applied = dirsync(&url, None, &["tenant", "apply", tenants.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));

    let expected = format!(
        "{}/{TENANT}/adminconsent?client_id={APP}\n",
        entra.base_url().trim_end_matches('/')
    );
    let stored = dirsync(
        &url,
        Some(&settings),
        &["tenant", "consent-url", "--tenant", "acme"],
    )
    .await;
    assert_eq!(stdout(&stored), expected, "{}", stderr(&stored));
    let by_id = dirsync(
        &url,
        Some(&settings),
        &["tenant", "consent-url", "--entra-tenant-id", TENANT],
    )
    .await;
    assert_eq!(stdout(&by_id), expected, "{}", stderr(&by_id));

    // Without an app registration there is nothing to consent to, and it says so.
    let none = dirsync(&url, None, &["tenant", "consent-url", "--tenant", "acme"]).await;
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("no app registration to consent to"),
        "{}",
        stderr(&none)
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_reject_closes_a_held_run_in_the_rejecters_name_and_approve_is_refused_after(
    pool: PgPool,
) {
    // Every field is bound, so the emulators run until the test ends.
    let HeldRun {
        _entra,
        highq,
        settings,
        url,
    } = tenant_with_held_run_2(&pool).await;
    let reject = [
        "reject",
        "--tenant",
        "acme",
        "--run",
        "2",
        "--by",
        "Ada Admin",
        "--reason",
        "a reorganisation, not departures",
    ];
    let rejected = dirsync(&url, Some(&settings), &reject).await;
    assert_eq!(
        rejected.status.code(),
        Some(0),
        "{}{}",
        stdout(&rejected),
        stderr(&rejected)
    );
    assert_eq!(
        stdout(&rejected),
        "run 2 rejected by Ada Admin; it applies nothing and can no longer be approved\n"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE id = 2")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "rejected");
    let audited: (String, serde_json::Value) =
        sqlx::query_as("SELECT actor, detail FROM audit_events WHERE action = 'run_reject'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        audited.1,
        serde_json::json!({"rejected_run": 2, "by": "Ada Admin", "reason": "a reorganisation, not departures"})
    );

    let approve = ["approve", "--tenant", "acme", "--run", "2", "--by", "Bob"];
    let refused = dirsync(&url, Some(&settings), &approve).await;
    assert_eq!(refused.status.code(), Some(5), "{}", stdout(&refused));
    assert!(
        stdout(&refused).starts_with("approval refused: run 2 was rejected by Ada Admin at "),
        "{}",
        stdout(&refused)
    );
    let again = dirsync(&url, Some(&settings), &reject).await;
    assert_eq!(again.status.code(), Some(5), "{}", stdout(&again));
    assert!(
        stdout(&again).starts_with("rejection refused: run 2 was already rejected by Ada Admin"),
        "{}",
        stdout(&again)
    );
    let active = highq.with(|s| {
        [1, 2]
            .iter()
            .filter(|n| s.user_by_email(&email(**n)).unwrap().status == UserStatus::Active)
            .count()
    });
    assert_eq!(active, 2, "a rejected run deactivates nobody");
}

/// A child process killed when dropped, whose stdout lines arrive on a channel as it prints them.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    fn start(command: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the binary started");
        let stdout = child.stdout.take().expect("stdout piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The lines printed up to and including the first that starts with `last`, read within
    /// `deadline`.
    fn lines_until(&self, last: &str, deadline: std::time::Duration) -> String {
        let until = std::time::Instant::now() + deadline;
        let mut text = String::new();
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                    if line.starts_with(last) {
                        return text;
                    }
                }
                Err(err) => {
                    panic!("no line starting {last:?} within {deadline:?} ({err}):\n{text}")
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_console_serves_the_console_prints_its_url_and_sign_ins_and_signs_one_in_through_the_emulator()
 {
    let database = format!("dirsync_demo_console_cli_{}", uuid::Uuid::new_v4().simple());
    let dir = scratch();
    let demo = Running::start(
        Command::new(env!("CARGO_BIN_EXE_dirsync"))
            .args([
                "demo",
                "--console",
                "--console-addr",
                "127.0.0.1:0",
                "--database",
                &database,
                "--report-dir",
                dir.to_str().unwrap(),
            ])
            .env("DIRSYNC__DATABASE__URL", server_url().as_str())
            .env("RUST_LOG", "warn")
            .env_remove("DIRSYNC_CONFIG"),
    );
    let text = tokio::task::block_in_place(|| {
        demo.lines_until("Press Ctrl-C to stop.", std::time::Duration::from_secs(180))
    });

    let base = text
        .lines()
        .find_map(|l| l.strip_prefix("The admin console: "))
        .unwrap_or_else(|| panic!("the console's URL in:\n{text}"))
        .trim_end_matches('/')
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
        "the port it listens on: {base}"
    );
    let ca = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("(the emulator's TLS certificate authority: ")
        })
        .and_then(|l| l.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the emulator's CA in:\n{text}"));
    let sign_ins: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Sign in through the Entra emulator"))
        .filter(|l| l.starts_with("  ") && l.contains('@'))
        .collect();
    assert_eq!(
        sign_ins.len(),
        3,
        "an operator, a tenant admin, a viewer:\n{text}"
    );
    let admin = sign_ins
        .iter()
        .find(|l| l.contains("tenant admin of \"demo\""))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("a tenant admin's sign-in in:\n{text}"));

    // Sign in as a browser would: the console sends us to the emulator's form, the form sends
    // us back with a code, and the session cookie lands in the jar.
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let form = http
        .get(format!("{base}/auth/sign-in?return_to=%2Ftenants%2Fdemo"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let authorize = form.url().clone();
    assert!(
        authorize.path().ends_with("/oauth2/v2.0/authorize"),
        "{authorize}"
    );
    assert!(form.text().await.unwrap().contains("name=\"username\""));
    let tenant_page = http
        .post(authorize)
        .form(&[("username", admin)])
        .send()
        .await
        .unwrap();
    assert_eq!(tenant_page.url().path(), "/tenants/demo");
    assert_eq!(tenant_page.status(), 200);
    let page = tenant_page.text().await.unwrap();
    assert!(
        page.contains("Tess Admin") && page.contains("id=\"force-sync\""),
        "the demo tenant's page, to its admin: {page}"
    );
    assert!(page.contains("Succeeded"), "the demo's run: {page}");

    drop(demo);
    let mut admin_db = server_url();
    admin_db.set_path("/postgres");
    let pool = PgPool::connect(admin_db.as_str())
        .await
        .expect("the server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&pool)
        .await
        .expect("the demo database dropped");
}
