//! `dirsync demo`: both emulators in-process with a seeded, realistic directory, a demo tenant in
//! its own database (a fresh SQLite file by default, or a PostgreSQL database), connected the way
//! an operator connects a real one — ready to sync.
//!
//! [`Demo::start`] returns the running pieces (emulators, store, run context, tenant) so the CLI
//! can run and print a sync, and a server can keep serving them.

pub mod console;
pub mod directory;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::connect::ConfiguredConnector;
use crate::domain::{DeactivationStatus, EntraObjectId, TenantKey};
use crate::emulator::entra::{Directory, EntraEmulator};
use crate::emulator::highq::{HighQEmulator, HighQSeed};
use crate::plan::{SelectedGroup, TenantPolicy};
use crate::settings::DatabaseLocation;
use crate::source::graph::{CredentialSettings, GraphConnector, GraphSettings};
use crate::store::{Database, RunId, RunOptions, Trigger};
use crate::sync::{RunOutcome, SyncContext, SyncSettings, run_sync};
use crate::tenant::{Retention, SourceSettings, TargetSettings, Tenant};

/// The PostgreSQL database the demo uses when asked for one. Every PostgreSQL database the demo
/// is given must start with this, because the demo drops and recreates it.
pub const DEFAULT_DATABASE: &str = "dirsync_demo";
/// Every SQLite file the demo is given must be named so, because the demo deletes and recreates it.
pub const SQLITE_FILE_PREFIX: &str = "dirsync-demo";
pub const TENANT_KEY: &str = "demo";

/// Where the demo's database lives: dropped and created afresh on every start.
#[derive(Debug, Clone)]
pub enum DemoOptions {
    /// A SQLite file (the default: no database server needed).
    Sqlite(PathBuf),
    /// A database on a PostgreSQL server.
    Postgres {
        /// Any URL of the server (its database name is ignored), such as `database.url`.
        server_url: String,
        /// The demo's own database.
        database: String,
    },
}

impl DemoOptions {
    /// A `dirsync-demo.db` in the system's temporary directory.
    pub fn default_sqlite_file() -> PathBuf {
        std::env::temp_dir().join(format!("{SQLITE_FILE_PREFIX}/{SQLITE_FILE_PREFIX}.db"))
    }
}

/// A running demo: drop it to stop the emulators.
pub struct Demo {
    pub entra: EntraEmulator,
    pub highq: HighQEmulator,
    pub store: Arc<dyn Database>,
    pub ctx: SyncContext,
    pub tenant: Tenant,
    pub graph: GraphSettings,
    /// The demo database's URL (`sqlite://…` or `postgres://…`), for another dirsync process.
    pub database_url: String,
}

impl Demo {
    /// Creates the demo database afresh, starts both emulators and configures and connects the
    /// demo tenant.
    ///
    /// The database is recreated rather than reused because the emulators start empty every time:
    /// a mirror left from an earlier demo would describe HighQ users that no longer exist.
    pub async fn start(options: &DemoOptions) -> anyhow::Result<Self> {
        let (database_url, location) = match options {
            DemoOptions::Sqlite(path) => {
                fresh_sqlite_file(path)?;
                (
                    format!("sqlite://{}", path.display()),
                    DatabaseLocation::Sqlite(path.clone()),
                )
            }
            DemoOptions::Postgres {
                server_url,
                database,
            } => {
                let url = fresh_database(server_url, database).await?;
                (url.clone(), DatabaseLocation::Postgres(url.into()))
            }
        };
        let store = crate::store::open_location(&location, 5)
            .await
            .with_context(|| format!("could not open the demo database {database_url}"))?;

        let entra = EntraEmulator::start(Directory {
            tenants: vec![directory::entra_tenant()],
        })
        .await
        .context("could not start the Entra emulator")?;
        let highq = HighQEmulator::start(HighQSeed {
            manual_users: directory::manual_highq_users(),
            manual_groups: directory::manual_highq_groups(),
            ..HighQSeed::default()
        })
        .await
        .context("could not start the HighQ emulator")?;

        let tenant = demo_tenant(&highq);
        store.upsert_tenant(&tenant).await?;
        connect_highq(store.as_ref(), &tenant, &highq).await?;

        let graph = graph_settings(&entra);
        let connector = GraphConnector::new(graph.clone())?;
        let ctx = SyncContext {
            store: store.clone(),
            connector: Arc::new(ConfiguredConnector::new(
                store.clone(),
                Some(connector),
                crate::domain::SecretEnvPolicy::default(),
            )),
            settings: SyncSettings::default(),
        };
        Ok(Self {
            entra,
            highq,
            store,
            ctx,
            tenant,
            graph,
            database_url,
        })
    }

    /// A Manual run of the demo tenant, as "Force sync now" starts one.
    pub async fn sync(&self, by: &str) -> anyhow::Result<RunOutcome> {
        Ok(run_sync(
            &self.ctx,
            &self.tenant.key,
            Trigger::manual(by),
            RunOptions::default(),
        )
        .await?)
    }

    /// Writes `run`'s report workbook into `dir` and returns its path.
    pub async fn write_report(&self, run: RunId, dir: &Path) -> anyhow::Result<PathBuf> {
        let record = self
            .store
            .run(run)
            .await?
            .with_context(|| format!("run {run} is not in the database"))?;
        let groups = self.store.run_groups(run).await?;
        let entries = self.store.run_entries(run).await?;
        let bytes = crate::report::workbook(&self.tenant, &record, &groups, &entries)?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let path = dir.join(crate::report::filename(&self.tenant, &record));
        std::fs::write(&path, bytes)
            .with_context(|| format!("could not write {}", path.display()))?;
        Ok(path)
    }

    /// Service settings (TOML) that point another dirsync process at this demo's database and
    /// Entra emulator, e.g. for `dirsync --config FILE preview --tenant demo`.
    pub fn settings_toml(&self) -> String {
        let mut text = graph_settings_toml(
            self.entra.base_url(),
            self.entra.ca_pem(),
            directory::CLIENT_ID,
            directory::CLIENT_SECRET,
        );
        text.push_str(&format!(
            "\n[database]\nurl = {}\n",
            toml::Value::String(self.database_url.clone())
        ));
        text
    }
}

impl Demo {
    /// What the seeded quirks came to in HighQ, one sentence each, read from the HighQ
    /// emulator as it is now (so they describe what really happened, not what should have).
    pub fn highlights(&self) -> Vec<String> {
        use directory::*;
        let highq = &self.highq;
        let in_highq = |n: usize| highq.user_by_email(&email(n));
        let name = |n: usize| {
            let user = &self.entra.edit(|d| {
                d.tenant(TENANT_ID)
                    .and_then(|t| t.users.get(&user_id(n)).cloned())
                    .unwrap_or_default()
            });
            user.get("displayName")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let mut lines = Vec::new();
        if let Some(user) = in_highq(NO_MAIL_USER) {
            lines.push(format!(
                "{} has no mail in Entra: synced with the UPN as email, {}",
                name(NO_MAIL_USER),
                user.email
            ));
        }
        if let Some(user) = in_highq(LONDON_PHONE_USER) {
            lines.push(format!(
                "{}'s phone +44 (20) 7946 0958 reached HighQ as {} (R6)",
                name(LONDON_PHONE_USER),
                user.phone
            ));
        }
        if let Some(user) = in_highq(LONG_TITLE_USER) {
            lines.push(format!(
                "{}'s job title is cut to {} characters, with a warning (R5)",
                name(LONG_TITLE_USER),
                user.job_title.chars().count()
            ));
        }
        if let Some(user) = in_highq(NO_NAME_PARTS_USER) {
            lines.push(format!(
                "{} has no givenName/surname in Entra: HighQ has first name {:?}, last name {:?}",
                name(NO_NAME_PARTS_USER),
                user.first_name,
                user.last_name
            ));
        }
        lines.push(format!(
            "{} is disabled in Entra: {}",
            name(DISABLED_USER),
            if in_highq(DISABLED_USER).is_some() {
                "in HighQ"
            } else {
                "not created in HighQ (R9)"
            }
        ));
        let synced_trainees = trainees().filter(|n| in_highq(*n).is_some()).count();
        lines.push(format!(
            "Associates also holds the nested group \"Trainee Solicitors\" and a laptop: \
             {synced_trainees} of the {} trainees are in HighQ (R1)",
            trainees().count()
        ));
        let basic = highq.group_by_name(CLIENT_PORTAL.name);
        let partners_in_basic = (0..3)
            .filter_map(in_highq)
            .filter(|u| basic.as_ref().is_some_and(|g| g.members.contains(&u.id)))
            .count();
        lines.push(format!(
            "3 partners are in the basic client group too: {partners_in_basic} of them are in \
             its HighQ group, since an internal group wins (R14)"
        ));
        for (manual, _, _, before) in manual_highq_users() {
            if let Some(user) = highq.user_by_email(&manual) {
                let adopted = !user.is_manual();
                lines.push(if adopted {
                    format!(
                        "{} was made by hand in HighQ ({}): adopted by email, now {} and managed \
                         by dirsync (R4)",
                        user.email,
                        before.as_str(),
                        user.status.as_str()
                    )
                } else {
                    format!(
                        "{} was made by hand in HighQ and is not in Entra: left alone",
                        user.email
                    )
                });
            }
        }
        lines
    }
}

/// Graph settings for the Entra emulator at `base_url`, trusting its CA.
fn graph_settings(entra: &EntraEmulator) -> GraphSettings {
    let mut settings = GraphSettings::new(
        directory::CLIENT_ID,
        CredentialSettings::ClientSecret {
            client_secret: SecretString::from(directory::CLIENT_SECRET),
        },
    );
    settings.graph_base_url = entra.base_url().parse().expect("the emulator's URL");
    settings.authority_host = settings.graph_base_url.clone();
    settings.extra_root_certificates_pem = vec![entra.ca_pem().to_owned()];
    settings
}

/// The `[graph]` section of dirsync's settings for an Entra emulator: both URLs at the emulator,
/// its CA trusted, and a client-secret app registration.
pub fn graph_settings_toml(base_url: &str, ca_pem: &str, client_id: &str, secret: &str) -> String {
    let mut credential = toml::Table::new();
    credential.insert("kind".into(), "client_secret".into());
    credential.insert("client_secret".into(), secret.into());
    let mut graph = toml::Table::new();
    graph.insert("graph_base_url".into(), base_url.into());
    graph.insert("authority_host".into(), base_url.into());
    graph.insert("client_id".into(), client_id.into());
    graph.insert(
        "extra_root_certificates_pem".into(),
        toml::Value::Array(vec![ca_pem.into()]),
    );
    graph.insert("credential".into(), credential.into());
    let mut root = toml::Table::new();
    root.insert("graph".into(), graph.into());
    format!(
        "# dirsync settings for a local Entra emulator (generated; its CA changes every start)\n{}",
        toml::to_string(&root).expect("TOML from a table")
    )
}

fn demo_tenant(highq: &HighQEmulator) -> Tenant {
    Tenant {
        key: TenantKey::parse(TENANT_KEY).expect("a valid key"),
        display_name: "Contoso Legal LLP (demo)".to_owned(),
        entra_tenant_id: EntraObjectId::parse(directory::TENANT_ID).expect("a GUID"),
        time_zone: chrono_tz::Europe::London,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups: directory::SELECTED_GROUPS
                .iter()
                .map(|g| SelectedGroup {
                    entra_id: EntraObjectId::parse(g.id).expect("a GUID"),
                    role: g.role,
                })
                .collect(),
            deactivation_status: DeactivationStatus::default(),
            deletion_threshold: 500,
        },
        source: SourceSettings::default(),
        target: TargetSettings::parse(&json!({
            "kind": "highq",
            "base_url": highq.base_url(),
            "api_version": 16,
            "client_id": highq.client_id(),
            "client_secret": highq.client_secret(),
        }))
        .expect("the demo's HighQ settings are valid"),
    }
}

/// Connects the tenant to HighQ as an operator does: an admin's consent yields an authorization
/// code, which is exchanged for the first refresh token, stored in the database.
async fn connect_highq(
    database: &dyn Database,
    tenant: &Tenant,
    highq: &HighQEmulator,
) -> anyhow::Result<()> {
    let code = SecretString::from(highq.with(|s| s.issue_authorization_code()));
    let Some(TargetSettings::Highq(config)) = &tenant.target else {
        bail!("the demo tenant connects to HighQ");
    };
    let adapter =
        crate::connect::highq_adapter(database, tenant, config).map_err(anyhow::Error::msg)?;
    adapter
        .connect_with_authorization_code(&code, "http://localhost/dirsync/highq/callback")
        .await?;
    Ok(())
}

/// Deletes the demo's SQLite file (and SQLite's `-wal` and `-shm` beside it) so the demo starts
/// afresh; refuses a file not named as a demo's.
fn fresh_sqlite_file(path: &Path) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !name.starts_with(SQLITE_FILE_PREFIX) {
        bail!(
            "the demo's SQLite file {} must be named {SQLITE_FILE_PREFIX}… (the demo deletes and \
             recreates it)",
            path.display()
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("could not delete the old demo database {}", path.display())
                });
            }
        }
    }
    Ok(())
}

/// Drops and creates `name` on the server of `server_url`; returns the new database's URL.
async fn fresh_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    if !name.starts_with(DEFAULT_DATABASE)
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!(
            "the demo database {name:?} must start with {DEFAULT_DATABASE:?} and hold only \
             lowercase letters, digits and _ (the demo drops and recreates it)"
        );
    }
    let mut url = url::Url::parse(server_url)
        .with_context(|| "the database URL is not a URL (set DATABASE_URL)".to_owned())?;
    url.set_path("/postgres");
    let mut admin = PgConnection::connect(url.as_str()).await.with_context(|| {
        format!(
            "could not connect to PostgreSQL at {}:{} (is it running? set DATABASE_URL)",
            url.host_str().unwrap_or("?"),
            url.port().unwrap_or(5432)
        )
    })?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .with_context(|| {
            format!(
                "could not drop the old demo database {name} (is another demo still running? \
                 stop it first)"
            )
        })?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .with_context(|| format!("could not create the demo database {name}"))?;
    admin.close().await.ok();
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}
