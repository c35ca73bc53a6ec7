//! `dirsync demo`: starts the demo (emulators, database, tenant), runs a sync and prints what it
//! did and where to look next.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use secrecy::ExposeSecret;

use super::sync::describe_outcome;
use crate::demo::{Demo, DemoOptions, directory};
use crate::plan::Severity;
use crate::settings::{DatabaseLocation, Settings};
use crate::source::graph::check_connection;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Use PostgreSQL instead of a SQLite file: the demo's own database on the configured server
    /// (`database.url`, or postgres://postgres@127.0.0.1:5432), dropped and created afresh each
    /// time. Must start with "dirsync_demo" (say `--database dirsync_demo`).
    #[arg(long)]
    database: Option<String>,
    /// The demo's SQLite file (when no --database is given), deleted and created afresh each
    /// time; its name must start with "dirsync-demo". Default: dirsync-demo/dirsync-demo.db in
    /// the system's temporary directory.
    #[arg(long, conflicts_with = "database")]
    sqlite_file: Option<PathBuf>,
    /// Where to write the run's report workbook.
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Keep the emulators running after the sync (until Ctrl-C), to try other commands on them.
    #[arg(long)]
    keep_running: bool,
    /// After the sync, serve the admin console (sign-in through the Entra emulator) until Ctrl-C.
    #[arg(long)]
    console: bool,
    /// Where the console listens (with --console).
    #[arg(long, default_value = "127.0.0.1:8420")]
    console_addr: std::net::SocketAddr,
}

/// The PostgreSQL server `--database` uses when the settings name none.
const DEFAULT_POSTGRES_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How many report lines of each severity are printed before "… and N more".
const SHOWN_NOTES: usize = 8;

pub(super) async fn run(settings: &Settings, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let options = match args.database {
        Some(database) => DemoOptions::Postgres {
            server_url: match settings.database.location() {
                Ok(DatabaseLocation::Postgres(url)) => url.expose_secret().to_owned(),
                _ => DEFAULT_POSTGRES_SERVER.to_owned(),
            },
            database,
        },
        None => DemoOptions::Sqlite(
            args.sqlite_file
                .unwrap_or_else(DemoOptions::default_sqlite_file),
        ),
    };
    let demo = Demo::start(&options).await?;
    let (manual_users, manual_groups) = (
        directory::manual_highq_users().len(),
        directory::manual_highq_groups().len(),
    );
    println!("dirsync demo");
    println!(
        "  Entra emulator  {}  (tenant {}: a law firm's directory)",
        demo.entra.base_url(),
        directory::TENANT_ID
    );
    println!(
        "  HighQ emulator  {}  ({manual_users} users and {manual_groups} groups made by hand)",
        demo.highq.base_url()
    );
    println!(
        "  database        {}  (tenant \"{}\", created afresh)",
        demo.database_url, demo.tenant.key
    );

    println!("\n== Connection check (dirsync check --tenant demo) ==");
    let groups: Vec<_> = demo
        .tenant
        .policy
        .selected_groups
        .iter()
        .map(|g| g.entra_id.clone())
        .collect();
    let connector = crate::source::graph::GraphConnector::new(demo.graph.clone())?;
    print!(
        "{}",
        check_connection(&connector, &demo.tenant, &groups).await
    );

    println!("\n== Sync (a Manual run, as \"Force sync now\" starts) ==");
    let outcome = demo.sync("demo").await?;
    print!("{}", describe_outcome(&outcome));

    println!("\nGroups:");
    for group in demo.store.run_groups(outcome.run_id).await? {
        println!(
            "  {:<60} {:<8} {:>4} members  {}",
            crate::domain::GroupKind::synced(group.role).label(&group.name),
            group.role.as_str(),
            group.members_seen.map_or("-".into(), |n| n.to_string()),
            group.status.as_str()
        );
    }
    let entries = demo.store.run_entries(outcome.run_id).await?;
    for (severity, title) in [
        (Severity::Error, "Errors"),
        (Severity::Warning, "Warnings"),
        (Severity::Info, "Notes"),
    ] {
        let lines: Vec<_> = entries
            .iter()
            .filter(|e| e.severity == severity && e.message.is_some())
            .collect();
        if lines.is_empty() {
            continue;
        }
        println!("\n{title} ({}):", lines.len());
        for entry in lines.iter().take(SHOWN_NOTES) {
            let who = entry
                .email
                .as_deref()
                .or(entry.name.as_deref())
                .unwrap_or("");
            let message = entry.message.as_deref().unwrap_or_default();
            let short: String = message.chars().take(110).collect();
            let ellipsis = if short.len() < message.len() {
                "…"
            } else {
                ""
            };
            println!("  {who}: {short}{ellipsis}");
        }
        if lines.len() > SHOWN_NOTES {
            println!("  … and {} more", lines.len() - SHOWN_NOTES);
        }
    }

    println!("\nWhat to notice:");
    for line in demo.highlights() {
        println!("  - {line}");
    }

    let users = demo.highq.users();
    let synced = users.iter().filter(|u| !u.is_manual()).count();
    let untouched = users.iter().filter(|u| u.is_manual()).count();
    let highq_groups = demo.highq.groups();
    println!(
        "\nHighQ now: {} users ({synced} synced by dirsync, {untouched} made by hand and left \
         alone), {} groups ({} synced, {} made by hand and left alone)",
        users.len(),
        highq_groups.len(),
        highq_groups.iter().filter(|g| !g.is_manual()).count(),
        highq_groups.iter().filter(|g| g.is_manual()).count(),
    );

    let report_dir = args
        .report_dir
        .unwrap_or_else(|| std::env::temp_dir().join("dirsync-demo"));
    let report = demo.write_report(outcome.run_id, &report_dir).await?;
    println!("\nReport workbook: {}", report.display());

    println!("\nWhere to look next:");
    println!(
        "  - the workbook above: sheets Summary, Groups, Users (every action, old -> new) and Errors"
    );
    println!(
        "  - the database: {} 'select action, count(*) from report_entries group by 1'",
        match demo.database_url.strip_prefix("sqlite://") {
            Some(file) => format!("sqlite3 {file}"),
            None => format!("psql {} -c", demo.database_url),
        }
    );
    println!("  - README.md, sections \"Demo\" and \"CLI\": check, preview, sync, emulate");
    println!("  - run `cargo run --release -- demo --keep-running` to keep the emulators up and");
    println!("    try `dirsync check` and `dirsync preview` against them from another terminal");
    println!("  - run `cargo run --release -- demo --console` to look at it all in the browser");
    println!("  - run it again: it starts over with a fresh database");

    if args.console {
        let listener = tokio::net::TcpListener::bind(args.console_addr)
            .await
            .map_err(|e| anyhow::anyhow!("could not listen on {}: {e}", args.console_addr))?;
        let handle = crate::demo::console::serve(&demo, listener).await?;
        // The Entra emulator's TLS certificate is its own: a browser warns once; a script can
        // trust this file instead.
        let ca = report_dir.join("entra-emulator-ca.pem");
        std::fs::write(&ca, demo.entra.ca_pem())?;
        println!("\nThe admin console: http://{}/", handle.addr);
        println!("Sign in through the Entra emulator's sign-in form (a username, no password):");
        println!(
            "  (the emulator's TLS certificate authority: {})",
            ca.display()
        );
        for person in crate::demo::console::PEOPLE {
            println!("  {:<30} {}", person.username, person.role);
        }
        println!("Press Ctrl-C to stop.");
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        handle.stop().await?;
    } else if args.keep_running {
        let settings_path = report_dir.join("dirsync-demo.toml");
        std::fs::write(&settings_path, demo.settings_toml())?;
        println!("\nThe emulators keep running. From another terminal:");
        println!(
            "  dirsync --config {} preview --tenant demo",
            settings_path.display()
        );
        println!(
            "  dirsync --config {} sync --tenant demo",
            settings_path.display()
        );
        println!("Press Ctrl-C to stop.");
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    Ok(super::exit_code(outcome.status, outcome.already_running))
}
