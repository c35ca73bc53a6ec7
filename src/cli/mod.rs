//! The `dirsync` command line: run the service's jobs by hand and manage tenants.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::connect::ConfiguredConnector;
use crate::domain::TenantKey;
use crate::plan::Plan;
use crate::settings::Settings;
use crate::source::graph::GraphConnector;
use crate::store::postgres::PgStore;
use crate::store::{RunOptions, RunStatus, Store, Trigger};
use crate::sync::{RunOutcome, SyncContext, dry_run, run_sync};
use crate::tenant::parse_tenant_file;

#[derive(Debug, Parser)]
#[command(
    name = "dirsync",
    version,
    about = "Keeps a target application's users and groups in step with Microsoft Entra ID"
)]
pub struct Cli {
    /// Settings file (TOML); environment variables DIRSYNC__SECTION__KEY override it.
    #[arg(long, global = true, env = "DIRSYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Run one sync for a tenant now (a Manual run), or preview it with --dry-run.
    ///
    /// Exit codes: 0 succeeded, 2 completed with errors, 3 held by the deletion guard,
    /// 4 another run is in progress, 1 failed.
    Sync {
        #[arg(long)]
        tenant: String,
        /// Print what the run would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Who is forcing the run, for the report.
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create or update the tenants in a TOML file (see config/tenants.example.toml).
    Apply { file: PathBuf },
    /// List the configured tenants.
    List,
}

/// Exit codes shared by the commands that run a sync.
pub fn exit_code(status: RunStatus, already_running: bool) -> ExitCode {
    match (status, already_running) {
        (_, true) => ExitCode::from(4),
        (RunStatus::Succeeded, _) => ExitCode::SUCCESS,
        (RunStatus::CompletedWithErrors, _) => ExitCode::from(2),
        (RunStatus::Held, _) => ExitCode::from(3),
        (RunStatus::Failed | RunStatus::Running, _) => ExitCode::from(1),
    }
}

fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn graph_connector(settings: &Settings) -> anyhow::Result<Option<GraphConnector>> {
    settings
        .graph
        .clone()
        .map(GraphConnector::new)
        .transpose()
        .context("the [graph] settings are not valid")
}

async fn open_store(settings: &Settings) -> anyhow::Result<PgStore> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .connect(settings.database.url.expose_secret())
        .await
        .context(
            "could not connect to the database (set DIRSYNC__DATABASE__URL or DATABASE_URL)",
        )?;
    let store = PgStore::new(pool);
    store
        .migrate()
        .await
        .context("could not apply the database migrations")?;
    Ok(store)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref()).context("could not load the settings")?;
    init_tracing(&settings);
    match cli.command {
        Command::Migrate => {
            open_store(&settings).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant {
            command: TenantCommand::Apply { file },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("could not read {}", file.display()))?;
            let tenants = parse_tenant_file(&text)?;
            let store = open_store(&settings).await?;
            for tenant in &tenants {
                store.upsert_tenant(tenant).await?;
                println!(
                    "tenant {}: {} selected groups, time zone {}",
                    tenant.key,
                    tenant.policy.selected_groups.len(),
                    tenant.time_zone
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant {
            command: TenantCommand::List,
        } => {
            let store = open_store(&settings).await?;
            for tenant in store.tenants().await? {
                println!(
                    "{}\t{}\t{}\t{} groups",
                    tenant.key,
                    tenant.display_name,
                    tenant.time_zone,
                    tenant.policy.selected_groups.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync {
            tenant,
            dry_run: dry,
            by,
        } => {
            let key = TenantKey::parse(&tenant)?;
            let store = open_store(&settings).await?;
            let ctx = SyncContext {
                connector: Arc::new(ConfiguredConnector::new(
                    store.pool().clone(),
                    graph_connector(&settings)?,
                )),
                store: Arc::new(store),
                settings: settings.sync.into(),
            };
            if dry {
                let plan = dry_run(&ctx, &key).await?;
                print!("{}", describe_plan(&plan));
                return Ok(ExitCode::SUCCESS);
            }
            let outcome = run_sync(&ctx, &key, Trigger::manual(by), RunOptions::default()).await?;
            print!("{}", describe_outcome(&outcome));
            Ok(exit_code(outcome.status, outcome.already_running))
        }
    }
}

/// A dry run's plan as people read it: counts, then each group's outcome and each note.
pub fn describe_plan(plan: &Plan) -> String {
    let c = plan.counts();
    let mut out = format!(
        "dry run — nothing was changed\n\
         groups: {} to create, {} to rename, {} to convert to system groups\n\
         users: {} to create, {} to adopt, {} to update, {} to activate, {} to deactivate\n\
         memberships: {} to add, {} to remove\n\
         {} warnings, {} errors\n",
        c.groups_created,
        c.groups_renamed,
        c.groups_converted,
        c.users_created,
        c.users_adopted,
        c.users_updated,
        c.users_activated,
        c.users_deactivated,
        c.memberships_added,
        c.memberships_removed,
        c.warnings,
        c.errors
    );
    if let Some(hold) = &plan.hold {
        out.push_str(&format!("{}\n", hold.describe()));
    }
    for group in &plan.groups {
        out.push_str(&format!(
            "group {} {:?} ({}): {}{}\n",
            group.entra_id,
            group.name,
            group.role,
            group.status.as_str(),
            group
                .members_seen
                .map(|n| format!(", {n} direct user members"))
                .unwrap_or_default()
        ));
    }
    out
}

pub fn describe_outcome(outcome: &RunOutcome) -> String {
    if outcome.already_running {
        return format!(
            "run {} is already in progress; no new run was started\n",
            outcome.run_id
        );
    }
    let s = &outcome.summary;
    let p = &s.planned;
    let mut out = format!(
        "run {}: {}\n\
         users: {} created, {} adopted, {} updated, {} activated, {} deactivated\n\
         groups: {} created, {} renamed, {} converted; memberships: {} added, {} removed\n\
         operations: {} applied, {} failed; {} warnings, {} errors\n\
         Graph: {} requests, {} throttled, {} ms waited\n",
        outcome.run_id,
        outcome.status.as_str(),
        p.users_created,
        p.users_adopted,
        p.users_updated,
        p.users_activated,
        p.users_deactivated,
        p.groups_created,
        p.groups_renamed,
        p.groups_converted,
        p.memberships_added,
        p.memberships_removed,
        s.operations_applied,
        s.operations_failed,
        p.warnings,
        p.errors,
        s.source.requests,
        s.source.throttled,
        s.source.waited_ms
    );
    if let Some(message) = &outcome.message {
        out.push_str(message);
        out.push('\n');
    }
    out
}
