//! The `dirsync` command line: run the service's jobs by hand, manage tenants, test a tenant's
//! connection, and (with the `emulators` feature, on by default) run the local emulators and the
//! demo.
//!
//! This file holds the argument types and the dispatch; each command's work lives in its own
//! file (`tenant.rs`, `sync.rs`, `emulate.rs`, `demo.rs`, `access.rs`, `token.rs`, `audit.rs`,
//! `store.rs`),
//! so a new command is one variant, one match arm and one file.

mod access;
mod audit;
mod config;
#[cfg(feature = "emulators")]
mod demo;
#[cfg(feature = "emulators")]
mod emulate;
mod health;
mod notify;
mod pause;
mod people;
mod store;
mod sync;
mod tenant;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::domain::AccessRole;
use crate::settings::Settings;
use crate::source::graph::GraphConnector;
use crate::store::Database;
use crate::store::RunStatus;
use crate::sync::SyncContext;

#[cfg(feature = "emulators")]
pub use self::demo::DemoArgs;
#[cfg(feature = "emulators")]
pub use self::emulate::EmulateCommand;
pub use self::sync::{describe_outcome, describe_plan, describe_plan_counts};

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
    },
    /// Sync up to five people now (an `on_demand` run): each read from Entra on their own by
    /// email (user principal name) or object ID, planned by the same rules, applied; only they
    /// are touched. Prints each person's steps.
    ///
    /// Exit codes as `sync`: 0 succeeded, 2 completed with errors, 4 another run is in
    /// progress, 1 failed; 5 when the people given are not one to five emails or object IDs.
    SyncPeople {
        #[arg(long)]
        tenant: String,
        /// Emails (user principal names) or Entra object IDs, one to five.
        #[arg(required = true)]
        people: Vec<String>,
    },
    /// Approve a run the deletion guard held (R18), in your name, and carry it out now: a new
    /// run plans afresh and may deactivate up to the number of users the held run would have.
    ///
    /// Refused (exit code 5, with the reason) when the run is not held, was approved already, is
    /// not the tenant's latest run, or was held too long ago. Otherwise the exit codes of `sync`.
    Approve {
        #[arg(long)]
        tenant: String,
        /// The held run's number.
        #[arg(long)]
        run: i64,
        /// Who approves, for the report.
        #[arg(long)]
        by: String,
    },
    /// Reject a run the deletion guard held (R18), in your name: nothing it planned is applied,
    /// and it can no longer be approved. The next run plans afresh.
    ///
    /// Exit code 0 when rejected; 5 (with the reason) when the run is not held or was approved or
    /// rejected already.
    Reject {
        #[arg(long)]
        tenant: String,
        /// The held run's number.
        #[arg(long)]
        run: i64,
        /// Who rejects, for the report.
        #[arg(long)]
        by: String,
        /// Why, for the report and the audit log (up to 500 characters).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Test a tenant's Entra connection: sign in, then find and count each selected group.
    ///
    /// Exit code 0 when the token works and every group is found within the 50,000-member
    /// limit (R16), 1 otherwise.
    Check {
        #[arg(long)]
        tenant: String,
    },
    /// Before a sync (R22): each selected group's name and direct user members, and how many
    /// users a run would create, adopt, update, activate and deactivate. Changes nothing.
    ///
    /// Exit code 0 when everything could be read, 1 otherwise.
    Preview {
        #[arg(long)]
        tenant: String,
    },
    #[cfg(feature = "emulators")]
    /// Run a local emulator standalone (Entra + Graph, or HighQ) until Ctrl-C.
    Emulate {
        #[command(subcommand)]
        command: EmulateCommand,
    },
    #[cfg(feature = "emulators")]
    /// Start both emulators with a realistic directory, configure a demo tenant in PostgreSQL,
    /// sync it and print the report summary.
    Demo(DemoArgs),
    /// Run the service: the HTTP API, the midnight scheduler and forced runs, until SIGTERM.
    Serve,
    /// Ask the running service whether it is alive (`GET /healthz` on `server.listen`, or
    /// --url): the container's HEALTHCHECK. Exit code 0 when it answers 200, 1 otherwise.
    Healthcheck {
        /// Another address to ask (default: `http://127.0.0.1:{port of server.listen}/healthz`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Who may use dirsync: grant, revoke and list roles.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// API tokens for automation: create (shown once), list, revoke.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Pause every tenant for maintenance (operators): midnights are recorded as skipped and no
    /// run starts, forced or approved, until `dirsync resume`. Audited with who and why.
    Pause {
        /// Why, for the console's banner and the audit log (up to 500 characters).
        #[arg(long)]
        reason: Option<String>,
    },
    /// End the maintenance pause; skipped midnights are not run again, the next ones are.
    Resume,
    /// A tenant's notifications: webhook, email recipients, events, daily digest.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Inspect the service settings.
    /// Move dirsync's records between databases.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AccessCommand {
    /// Give a person a role: operator (every tenant), or tenant_admin / viewer of one tenant.
    /// A person is their Entra directory and object IDs (`tid`, `oid`).
    Grant {
        /// The person's Entra directory (tenant) ID.
        #[arg(long)]
        tid: String,
        /// The person's Entra object ID.
        #[arg(long)]
        oid: String,
        /// operator, tenant_admin or viewer.
        #[arg(long)]
        role: AccessRole,
        /// The dirsync tenant (not for operators).
        #[arg(long)]
        tenant: Option<String>,
        /// Who this is, for people reading the list.
        #[arg(long)]
        label: Option<String>,
    },
    /// Take a grant away (its ID from `access list`).
    Revoke { id: i64 },
    /// Every grant, or those that hold on one tenant.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token: printed once on standard output, never shown again.
    Create {
        #[arg(long)]
        name: String,
        /// operator, tenant_admin or viewer.
        #[arg(long)]
        role: AccessRole,
        /// The dirsync tenant (not for operators).
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime (default and maximum from the [auth.tokens] settings).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Every token, with its prefix, scope, expiry, last use and state.
    List,
    /// Revoke a token (its ID from `token list`).
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// The settings (the webhook key redacted) and the latest notifications.
    Show {
        #[arg(long)]
        tenant: String,
    },
    /// Replace the settings with a JSON file's: {"webhook": {"url", "secret"}, "email_to": [...],
    /// "events": ["run_held", "run_failed", "run_errors", "credential_expiring", "quarantined"],
    /// "error_threshold": 0, "daily_digest": false}.
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Queue a test notification on every channel; the service delivers it.
    Test {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// The newest events first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// sign_in, grant, token_create, tenant_update, run_force, report_download, …
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy every record (tenants, mirror, runs, reports, grants, tokens, audit log) from one
    /// database to another, keeping their IDs: say from the SQLite file up to PostgreSQL, to run
    /// more than one replica. Stop `dirsync serve` first.
    ///
    /// Refused when the destination already holds records, unless --replace.
    Migrate {
        /// The database to copy from: sqlite://FILE or postgres://…
        #[arg(long)]
        from: String,
        /// The database to copy to (migrated first): postgres://… or sqlite://FILE
        #[arg(long)]
        to: String,
        /// Delete everything the destination holds first (in the same transaction as the copy).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check the settings (defaults, then --config FILE, then DIRSYNC__… variables) and print
    /// every effective value with where it came from; secrets are redacted.
    ///
    /// Exit code 0 when the settings are valid, 1 otherwise (each problem is printed).
    Check,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create or update the tenants in a TOML file (see config/tenants.example.toml).
    ///
    /// Exit code 0 when every tenant is valid and stored (and, with --check-connection, every
    /// check passed), 1 otherwise; an invalid file stores nothing.
    Apply {
        file: PathBuf,
        /// Then test each tenant's connections at once, as `dirsync check` does.
        #[arg(long)]
        check_connection: bool,
    },
    /// List the configured tenants.
    List,
    /// What a run would do if the tenant selected these groups instead (each `GROUP_ID=role`,
    /// role `internal` or `basic`): counts, and the people it would create, move, deactivate
    /// and the groups it would convert. Saves and changes nothing.
    WhatIf {
        #[arg(long)]
        tenant: String,
        /// The whole proposed selection, `GROUP_ID=internal` or `GROUP_ID=basic`, each once.
        groups: Vec<String>,
    },
    /// Print the admin-consent URL to send a customer: their Entra administrator opens it once to
    /// grant the app registration Group.Read.All, GroupMember.Read.All and User.Read.All in
    /// their directory (see docs/onboarding.md).
    ConsentUrl {
        /// A stored tenant (uses its own app registration when it has one).
        #[arg(
            long,
            conflicts_with = "entra_tenant_id",
            required_unless_present = "entra_tenant_id"
        )]
        tenant: Option<String>,
        /// The customer's Entra directory (tenant) ID, before the tenant is configured.
        #[arg(long)]
        entra_tenant_id: Option<String>,
        /// Where Entra sends the administrator afterwards (must be a redirect URI of the app).
        #[arg(long)]
        redirect_uri: Option<String>,
    },
    /// Connect a tenant to HighQ: exchange the authorization code an admin's consent produced
    /// for the first refresh token, and store it.
    ConnectHighq {
        #[arg(long)]
        tenant: String,
        #[arg(long, env = "DIRSYNC_HIGHQ_CODE")]
        code: String,
        /// The redirect URI the code was issued for.
        #[arg(long, default_value = "http://localhost/dirsync/highq/callback")]
        redirect_uri: String,
    },
    /// Pause a tenant: its midnights are recorded as skipped and no run starts, forced or
    /// approved, until it is resumed. Audited with who and why.
    Pause {
        #[arg(long)]
        tenant: String,
        /// Why, for the console's banner and the audit log (up to 500 characters).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused tenant; skipped midnights are not run again, the next one is.
    Resume {
        #[arg(long)]
        tenant: String,
    },
    /// Whether the tenant's midnights run, or why not (paused, quarantined).
    ///
    /// Exit code 0 when they run, 3 when paused or quarantined.
    Status {
        #[arg(long)]
        tenant: String,
    },
}

impl Command {
    /// Commands whose output is for people to read (the demo), so logs stay quiet.
    fn is_for_people(&self) -> bool {
        #[cfg(feature = "emulators")]
        if matches!(self, Command::Demo(_)) {
            return true;
        }
        false
    }
}

/// Exit codes shared by the commands that run a sync.
pub fn exit_code(status: RunStatus, already_running: bool) -> ExitCode {
    match (status, already_running) {
        (_, true) => ExitCode::from(4),
        (RunStatus::Succeeded, _) => ExitCode::SUCCESS,
        (RunStatus::CompletedWithErrors, _) => ExitCode::from(2),
        (RunStatus::Held, _) => ExitCode::from(3),
        (
            RunStatus::Failed
            | RunStatus::Interrupted
            | RunStatus::Running
            | RunStatus::Rejected
            | RunStatus::Skipped,
            _,
        ) => ExitCode::from(1),
    }
}

/// `quiet`: only warnings unless `RUST_LOG` says otherwise, for commands whose output is for
/// people to read (the demo).
fn init_tracing(settings: &Settings, quiet: bool) {
    let default = if quiet { "warn" } else { &settings.log.filter };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log.format == crate::settings::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn graph_connector(settings: &Settings) -> anyhow::Result<Option<GraphConnector>> {
    crate::connect::graph_connector(settings)
}

/// A pause's reason, at most as long as the API allows.
fn checked_reason(reason: Option<String>) -> anyhow::Result<Option<String>> {
    crate::http::pause::checked_reason(reason).map_err(|err| anyhow::anyhow!("--reason: {err}"))
}

/// The database the settings describe, migrated.
async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Database>> {
    Ok(crate::store::open(&settings.database).await?)
}

/// The run context the service's settings describe: the database and the production connector.
fn sync_context(
    settings: &Settings,
    store: Arc<dyn Database>,
    graph: Option<GraphConnector>,
) -> SyncContext {
    crate::connect::production_context(settings, store, graph)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        return Ok(config::check(cli.config.as_deref()));
    }
    let settings = Settings::load(cli.config.as_deref()).context("could not load the settings")?;
    init_tracing(&settings, cli.command.is_for_people());
    match cli.command {
        Command::Migrate => {
            let store = open_store(&settings).await?;
            println!("migrations applied ({})", store.describe());
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant {
            command:
                TenantCommand::Apply {
                    file,
                    check_connection,
                },
        } => tenant::apply(&settings, &file, check_connection).await,
        Command::Tenant {
            command: TenantCommand::List,
        } => tenant::list(&settings).await,
        Command::Tenant {
            command: TenantCommand::WhatIf { tenant, groups },
        } => people::what_if(&settings, &tenant, &groups).await,
        Command::SyncPeople { tenant, people } => {
            people::sync_people(&settings, &tenant, &people).await
        }
        Command::Tenant {
            command:
                TenantCommand::ConsentUrl {
                    tenant,
                    entra_tenant_id,
                    redirect_uri,
                },
        } => {
            tenant::consent_url(
                &settings,
                tenant.as_deref(),
                entra_tenant_id.as_deref(),
                redirect_uri.as_deref(),
            )
            .await
        }
        Command::Healthcheck { url } => health::check(&settings, url.as_deref()).await,
        Command::Tenant {
            command: TenantCommand::Pause { tenant, reason },
        } => pause::pause_tenant(&settings, &tenant, checked_reason(reason)?).await,
        Command::Tenant {
            command: TenantCommand::Resume { tenant },
        } => pause::resume_tenant(&settings, &tenant).await,
        Command::Tenant {
            command: TenantCommand::Status { tenant },
        } => pause::status(&settings, &tenant).await,
        Command::Pause { reason } => pause::pause_service(&settings, checked_reason(reason)?).await,
        Command::Resume => pause::resume_service(&settings).await,
        Command::Tenant {
            command:
                TenantCommand::ConnectHighq {
                    tenant,
                    code,
                    redirect_uri,
                },
        } => tenant::connect_highq(&settings, &tenant, code, &redirect_uri).await,
        Command::Sync { tenant, dry_run } => sync::sync(&settings, &tenant, dry_run).await,
        Command::Approve { tenant, run, by } => sync::approve(&settings, &tenant, run, &by).await,
        Command::Reject {
            tenant,
            run,
            by,
            reason,
        } => sync::reject(&settings, &tenant, run, &by, reason.as_deref()).await,
        Command::Check { tenant } => sync::check(&settings, &tenant).await,
        Command::Preview { tenant } => sync::preview(&settings, &tenant).await,
        #[cfg(feature = "emulators")]
        Command::Emulate { command } => emulate::run(command).await,
        #[cfg(feature = "emulators")]
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Serve => crate::service::serve(&settings)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Access { command } => match command {
            AccessCommand::Grant {
                tid,
                oid,
                role,
                tenant,
                label,
            } => {
                access::grant(
                    &settings,
                    &tid,
                    &oid,
                    role,
                    tenant.as_deref(),
                    label.as_deref(),
                )
                .await
            }
            AccessCommand::Revoke { id } => access::revoke(&settings, id).await,
            AccessCommand::List { tenant } => access::list(&settings, tenant.as_deref()).await,
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                name,
                role,
                tenant,
                expires_in_days,
            } => token::create(&settings, &name, role, tenant.as_deref(), expires_in_days).await,
            TokenCommand::List => token::list(&settings).await,
            TokenCommand::Revoke { id } => token::revoke(&settings, id).await,
        },
        Command::Audit {
            command:
                AuditCommand::List {
                    tenant,
                    action,
                    limit,
                },
        } => audit::list(&settings, tenant.as_deref(), action.as_deref(), limit).await,
        Command::Notify { command } => match command {
            NotifyCommand::Show { tenant } => notify::show(&settings, &tenant).await,
            NotifyCommand::Set { tenant, file } => notify::set(&settings, &tenant, &file).await,
            NotifyCommand::Test { tenant } => notify::test(&settings, &tenant).await,
        },
        Command::Store {
            command: StoreCommand::Migrate { from, to, replace },
        } => store::migrate(&from, &to, replace).await,
        Command::Config { .. } => unreachable!("handled before the settings are loaded"),
    }
}
