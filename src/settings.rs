//! Service settings: defaults, then a TOML file, then `DIRSYNC__…` environment variables.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::schedule::SchedulerSettings;
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::source::graph::{GraphConnector, GraphSettings};
use crate::store::PgStore;
use crate::sync::SyncSettings;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub scheduler: SchedulerTuning,
    /// The Microsoft Graph app registration; absent until configured.
    #[serde(default)]
    pub graph: Option<GraphSettings>,
    pub sync: SyncTuning,
    pub log: LogSettings,
}

/// The database connection. The URL may carry a password, so it is a secret.
#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"[redacted]")
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Where `dirsync serve` listens.
    pub listen: String,
    /// How long a shutdown waits for runs in progress before recording them as interrupted.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SchedulerTuning {
    /// Turn off on replicas that should only serve the API.
    pub enabled: bool,
    pub poll_interval_secs: u64,
    pub purge_interval_secs: u64,
}

impl From<SchedulerTuning> for SchedulerSettings {
    fn from(t: SchedulerTuning) -> Self {
        SchedulerSettings {
            enabled: t.enabled,
            poll_interval: Duration::from_secs(t.poll_interval_secs.max(1)),
            purge_interval: Duration::from_secs(t.purge_interval_secs.max(60)),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SyncTuning {
    pub target_concurrency: usize,
    pub max_presence_lookups: usize,
    pub flush_every: usize,
    pub heartbeat_every_secs: u64,
    pub stale_after_secs: u64,
    pub max_unavailable_in_a_row: usize,
    pub approval_window_secs: u64,
    pub deletion_confirm_delay_ms: u64,
}

impl From<SyncTuning> for SyncSettings {
    fn from(t: SyncTuning) -> Self {
        SyncSettings {
            target_concurrency: t.target_concurrency,
            max_presence_lookups: t.max_presence_lookups,
            flush_every: t.flush_every,
            heartbeat_every: std::time::Duration::from_secs(t.heartbeat_every_secs.max(1)),
            stale_after: chrono::Duration::seconds(
                t.stale_after_secs.max(t.heartbeat_every_secs * 2) as i64,
            ),
            max_unavailable_in_a_row: t.max_unavailable_in_a_row,
            approval_window: chrono::Duration::seconds(
                i64::try_from(t.approval_window_secs).unwrap_or(i64::MAX / 1000),
            ),
            deletion_confirm_delay: std::time::Duration::from_millis(t.deletion_confirm_delay_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: String,
    /// A `tracing` filter such as `info,dirsync=debug`.
    pub filter: String,
}

#[derive(Serialize)]
struct Defaults {
    database: DefaultDatabase,
    server: ServerSettings,
    scheduler: SchedulerTuning,
    sync: SyncTuning,
    log: LogSettings,
}

#[derive(Serialize)]
struct DefaultDatabase {
    url: String,
    max_connections: u32,
}

fn defaults() -> Defaults {
    let sync = SyncSettings::default();
    let scheduler = SchedulerSettings::default();
    Defaults {
        server: ServerSettings {
            listen: "127.0.0.1:8080".to_owned(),
            shutdown_grace_secs: 30,
        },
        scheduler: SchedulerTuning {
            enabled: scheduler.enabled,
            poll_interval_secs: scheduler.poll_interval.as_secs(),
            purge_interval_secs: scheduler.purge_interval.as_secs(),
        },
        database: DefaultDatabase {
            url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/dirsync".to_owned()),
            max_connections: 10,
        },
        sync: SyncTuning {
            target_concurrency: sync.target_concurrency,
            max_presence_lookups: sync.max_presence_lookups,
            flush_every: sync.flush_every,
            heartbeat_every_secs: sync.heartbeat_every.as_secs(),
            stale_after_secs: sync.stale_after.num_seconds() as u64,
            max_unavailable_in_a_row: sync.max_unavailable_in_a_row,
            approval_window_secs: sync.approval_window.num_seconds() as u64,
            deletion_confirm_delay_ms: sync.deletion_confirm_delay.as_millis() as u64,
        },
        log: LogSettings {
            format: "text".to_owned(),
            filter: "info".to_owned(),
        },
    }
}

impl Settings {
    /// The Graph connector the `[graph]` section describes, if there is one.
    pub fn graph_connector(&self) -> anyhow::Result<Option<GraphConnector>> {
        self.graph
            .clone()
            .map(GraphConnector::new)
            .transpose()
            .context("the [graph] settings are not valid")
    }

    /// Connects to the database and applies the migrations.
    pub async fn open_store(&self) -> anyhow::Result<PgStore> {
        PgStore::open(
            self.database.url.expose_secret(),
            self.database.max_connections,
        )
        .await
        .context("could not open the database (set DIRSYNC__DATABASE__URL or DATABASE_URL)")
    }

    /// Loads settings: built-in defaults (`DATABASE_URL` is honoured), then `file` if given,
    /// then environment variables such as `DIRSYNC__DATABASE__URL`.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(defaults()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("DIRSYNC__").split("__"))
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_layer_file_over_defaults_and_hide_the_database_url() {
        let dir = std::env::temp_dir().join(format!("dirsync-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dirsync.toml");
        std::fs::write(
            &file,
            "[database]\nurl = \"postgres://u:hunter2@db/x\"\n[sync]\ntarget_concurrency = 3\n",
        )
        .unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.sync.target_concurrency, 3);
        assert_eq!(
            settings.sync.flush_every,
            SyncSettings::default().flush_every
        );
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://u:hunter2@db/x"
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(Settings::load(Some(&dir.join("missing.toml"))).is_err());
    }

    #[test]
    fn the_example_settings_file_loads_with_its_sections() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dirsync.example.toml");
        let settings = Settings::load(Some(&example)).unwrap();
        assert_eq!(settings.server.listen, "127.0.0.1:8080");
        assert!(settings.scheduler.enabled);
        assert_eq!(
            SyncSettings::from(settings.sync).stale_after,
            chrono::Duration::seconds(120)
        );
        assert!(settings.graph.is_none());
    }
}
