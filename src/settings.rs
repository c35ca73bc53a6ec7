//! Service settings: defaults, then a TOML file, then `DIRSYNC__…` environment variables — read
//! strictly (unknown sections and keys, numbers out of range and unknown enum values are refused
//! at start, each named with where it came from) and shown back by `dirsync config check` with
//! every value's origin and the secrets redacted.

mod strict;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::schedule::SchedulerSettings;
use secrecy::ExposeSecret;

use crate::source::graph::GraphSettings;
use crate::sync::SyncSettings;

pub(crate) use strict::closest as closest_name;
pub use strict::{LoadedSettings, Origin, SettingProblem, SettingsError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub scheduler: SchedulerTuning,
    /// The Microsoft Graph app registration; absent until configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSettings>,
    pub sync: SyncTuning,
    pub log: LogSettings,
    /// Which environment variables tenant settings may name in `env:` references.
    #[serde(default)]
    pub secrets: crate::domain::SecretEnvPolicy,
    /// Sign-in, sessions and API tokens.
    #[serde(default)]
    pub auth: crate::auth::settings::AuthSettings,
    /// Notifications: delivery tuning, the webhook address policy, the mail relay.
    #[serde(default)]
    pub notify: crate::notify::NotifySettings,
}

/// Where dirsync keeps its records. With no `url`, a SQLite file at `path` (no database server
/// needed: one replica). `url` = `postgres://…` selects PostgreSQL (any number of replicas);
/// `sqlite://FILE` names a SQLite file. The URL may carry a password, so it is a secret;
/// `config check` shows it with the password and query replaced.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(
        default,
        serialize_with = "redacted_database_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<SecretString>,
    /// The SQLite database file used when no `url` is set (its directory is created).
    pub path: PathBuf,
    pub max_connections: u32,
}

/// The database the settings describe; `store::open` connects to it.
#[derive(Debug, Clone)]
pub enum DatabaseLocation {
    /// A `postgres://` or `postgresql://` URL (kept secret: it may carry a password).
    Postgres(SecretString),
    /// A SQLite database file.
    Sqlite(PathBuf),
}

impl DatabaseSettings {
    /// Which database, and where: the URL's scheme decides, and no URL means the SQLite file at
    /// `path`.
    pub fn location(&self) -> Result<DatabaseLocation, String> {
        let Some(url) = &self.url else {
            return Ok(DatabaseLocation::Sqlite(self.path.clone()));
        };
        DatabaseLocation::parse(url.expose_secret())
            .map_err(|problem| format!("database.url {problem}"))
    }
}

impl DatabaseLocation {
    /// `postgres://…` (or `postgresql://…`) for PostgreSQL, `sqlite://FILE` for a SQLite file.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(SecretString::from(url)));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let file = rest
                .trim_start_matches("//")
                .split('?')
                .next()
                .unwrap_or_default();
            if file.is_empty() || file == ":memory:" {
                return Err(
                    "must name a file when it is a sqlite: URL, such as sqlite://./dirsync-data/dirsync.db"
                        .to_owned(),
                );
            }
            return Ok(Self::Sqlite(PathBuf::from(file)));
        }
        Err(
            "must start with postgres:// (PostgreSQL) or sqlite:// (a SQLite file); leave \
             database.url unset to use the SQLite file at database.path"
                .to_owned(),
        )
    }
}

impl PartialEq for DatabaseLocation {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Postgres(a), Self::Postgres(b)) => a.expose_secret() == b.expose_secret(),
            (Self::Sqlite(a), Self::Sqlite(b)) => a == b,
            _ => false,
        }
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.url.as_ref().map(|_| "[redacted]"))
            .field("path", &self.path)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `postgres://user:[redacted]@host/db`: what an operator needs to recognise the database,
/// without its password (or any query, which may carry one).
fn redacted_database_url<S: serde::Serializer>(
    url: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let Some(url) = url else {
        return serializer.serialize_none();
    };
    let shown = match url::Url::parse(url.expose_secret()) {
        Ok(mut parsed) => {
            let had_password = parsed.password().is_some();
            let had_query = parsed.query().is_some();
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            let mut shown = parsed.to_string();
            if had_password {
                let user = format!("{}@", parsed.username());
                shown = shown.replacen(&user, &format!("{}:[redacted]@", parsed.username()), 1);
            }
            if had_query {
                shown.push_str("?[redacted]");
            }
            shown
        }
        Err(_) => "[redacted: not a URL]".to_owned(),
    };
    serializer.serialize_str(&shown)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Where `dirsync serve` listens.
    pub listen: String,
    /// How long a shutdown waits for runs in progress before recording them as interrupted.
    pub shutdown_grace_secs: u64,
    /// Where Prometheus metrics are served (`127.0.0.1:9090`); not at all when unset. Never on
    /// the API's port, which may face the internet.
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
            poll_interval: Duration::from_secs(t.poll_interval_secs),
            purge_interval: Duration::from_secs(t.purge_interval_secs),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncTuning {
    pub target_concurrency: usize,
    pub max_presence_lookups: usize,
    pub flush_every: usize,
    pub flush_interval_ms: u64,
    pub heartbeat_every_secs: u64,
    pub run_deadline_secs: u64,
    pub max_runs_in_flight: usize,
    pub max_unavailable_in_a_row: usize,
    pub approval_window_secs: u64,
    pub deletion_confirm_delay_ms: u64,
    /// Issue 14: automatic runs failed in a row that quarantine a tenant (0: never).
    pub quarantine_after_failed_nights: u32,
    /// Days from the failure that quarantined a tenant to its first backoff attempt.
    pub quarantine_first_retry_days: u32,
    /// Days between later backoff attempts.
    pub quarantine_retry_days: u32,
}

impl From<SyncTuning> for SyncSettings {
    fn from(t: SyncTuning) -> Self {
        SyncSettings {
            target_concurrency: t.target_concurrency,
            max_presence_lookups: t.max_presence_lookups,
            flush_every: t.flush_every,
            flush_interval: std::time::Duration::from_millis(t.flush_interval_ms),
            heartbeat_every: std::time::Duration::from_secs(t.heartbeat_every_secs),
            run_deadline: std::time::Duration::from_secs(t.run_deadline_secs),
            max_runs_in_flight: t.max_runs_in_flight,
            max_unavailable_in_a_row: t.max_unavailable_in_a_row,
            approval_window: chrono::Duration::seconds(
                i64::try_from(t.approval_window_secs).unwrap_or(i64::MAX / 1000),
            ),
            deletion_confirm_delay: std::time::Duration::from_millis(t.deletion_confirm_delay_ms),
            quarantine: crate::schedule::QuarantinePolicy {
                after_failed_nights: t.quarantine_after_failed_nights,
                first_retry_days: t.quarantine_first_retry_days,
                retry_days: t.quarantine_retry_days,
            },
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    Text,
    /// For log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
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
    path: String,
    max_connections: u32,
}

/// Where the SQLite database lives when no database URL is set.
pub const DEFAULT_SQLITE_PATH: &str = "./dirsync-data/dirsync.db";

fn defaults() -> Defaults {
    let sync = SyncSettings::default();
    let scheduler = SchedulerSettings::default();
    Defaults {
        server: ServerSettings {
            listen: "127.0.0.1:8080".to_owned(),
            shutdown_grace_secs: 30,
            metrics_listen: None,
        },
        scheduler: SchedulerTuning {
            enabled: scheduler.enabled,
            poll_interval_secs: scheduler.poll_interval.as_secs(),
            purge_interval_secs: scheduler.purge_interval.as_secs(),
        },
        database: DefaultDatabase {
            path: DEFAULT_SQLITE_PATH.to_owned(),
            max_connections: 10,
        },
        sync: SyncTuning {
            target_concurrency: sync.target_concurrency,
            max_presence_lookups: sync.max_presence_lookups,
            flush_every: sync.flush_every,
            flush_interval_ms: sync.flush_interval.as_millis() as u64,
            heartbeat_every_secs: sync.heartbeat_every.as_secs(),
            run_deadline_secs: sync.run_deadline.as_secs(),
            max_runs_in_flight: sync.max_runs_in_flight,
            max_unavailable_in_a_row: sync.max_unavailable_in_a_row,
            approval_window_secs: sync.approval_window.num_seconds() as u64,
            deletion_confirm_delay_ms: sync.deletion_confirm_delay.as_millis() as u64,
            quarantine_after_failed_nights: sync.quarantine.after_failed_nights,
            quarantine_first_retry_days: sync.quarantine.first_retry_days,
            quarantine_retry_days: sync.quarantine.retry_days,
        },
        log: LogSettings {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        },
    }
}

impl Settings {
    /// Loads settings: built-in defaults (`DATABASE_URL` is honoured), then `file` if given,
    /// then environment variables such as `DIRSYNC__DATABASE__URL`. Every problem is refused
    /// here, before anything connects, and all of them are named at once.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_origins(file).map(|loaded| loaded.settings)
    }

    /// [`load`](Self::load), keeping where each value came from (for `dirsync config check`).
    pub fn load_with_origins(file: Option<&Path>) -> Result<LoadedSettings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(defaults()));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(strict::DatabaseUrlVariable(url));
        }
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment.merge(Env::prefixed(strict::ENV_PREFIX).split("__"));
        LoadedSettings::extract(figment)
    }

    /// Every number outside its range, and every value that parses but cannot work, as
    /// `(key, problem)`.
    fn range_problems(&self) -> Vec<(String, String)> {
        // Where each number may range: below the minimum a pool, a concurrency or a batch would
        // be empty (a panic, or a run that never ends); above the maximum the value is a typo
        // that would exhaust the database or the target.
        let (db, server, scheduler, sync) =
            (&self.database, &self.server, self.scheduler, self.sync);
        let numbers: [(&str, u64, u64, u64, &str); 17] = [
            (
                "database.max_connections",
                db.max_connections.into(),
                1,
                1_000,
                "the pool needs at least one connection",
            ),
            (
                "server.shutdown_grace_secs",
                server.shutdown_grace_secs,
                1,
                3_600,
                "runs in progress need time to stop",
            ),
            (
                "scheduler.poll_interval_secs",
                scheduler.poll_interval_secs,
                1,
                86_400,
                "seconds between looks at the tenants",
            ),
            (
                "scheduler.purge_interval_secs",
                scheduler.purge_interval_secs,
                60,
                604_800,
                "seconds between purges of old reports",
            ),
            (
                "sync.target_concurrency",
                sync.target_concurrency as u64,
                1,
                256,
                "target calls in flight at once; 0 would never send one",
            ),
            (
                "sync.max_presence_lookups",
                sync.max_presence_lookups as u64,
                0,
                100_000,
                "leavers looked up in Entra per run; 0 turns the look-ups off",
            ),
            (
                "sync.flush_every",
                sync.flush_every as u64,
                1,
                100_000,
                "applied operations per flush of mirror changes, report lines and progress",
            ),
            (
                "sync.heartbeat_every_secs",
                sync.heartbeat_every_secs,
                1,
                3_600,
                "seconds between a running run's signs of life",
            ),
            (
                "sync.flush_interval_ms",
                sync.flush_interval_ms,
                10,
                60_000,
                "milliseconds at most between a run's flushes of applied operations",
            ),
            (
                "sync.run_deadline_secs",
                sync.run_deadline_secs,
                60,
                604_800,
                "seconds after which a run still going stops as failed: deadline",
            ),
            (
                "sync.max_runs_in_flight",
                sync.max_runs_in_flight as u64,
                1,
                1_000,
                "runs carried out at once by one replica; more wait for a free slot",
            ),
            (
                "sync.max_unavailable_in_a_row",
                sync.max_unavailable_in_a_row as u64,
                1,
                10_000,
                "target calls failing in a row before a run stops calling",
            ),
            (
                "sync.approval_window_secs",
                sync.approval_window_secs,
                60,
                2_592_000,
                "seconds after a run was held during which it can be approved (R18)",
            ),
            (
                "sync.deletion_confirm_delay_ms",
                sync.deletion_confirm_delay_ms,
                0,
                600_000,
                "milliseconds before a group that answered \"deleted\" is read again (R12)",
            ),
            (
                "sync.quarantine_after_failed_nights",
                sync.quarantine_after_failed_nights.into(),
                0,
                365,
                "failed automatic runs in a row that quarantine a tenant; 0 never quarantines",
            ),
            (
                "sync.quarantine_first_retry_days",
                sync.quarantine_first_retry_days.into(),
                1,
                90,
                "days from the failure that quarantined a tenant to its first backoff attempt",
            ),
            (
                "sync.quarantine_retry_days",
                sync.quarantine_retry_days.into(),
                1,
                90,
                "days between a quarantined tenant's later backoff attempts",
            ),
        ];
        let mut problems = Vec::new();
        for (key, value, min, max, meaning) in numbers {
            if !(min..=max).contains(&value) {
                problems.push((
                    key.to_owned(),
                    format!("{key} = {value} is out of range: it must be from {min} to {max} ({meaning})"),
                ));
            }
        }
        if let Err(problem) = self.database.location() {
            problems.push(("database.url".to_owned(), problem));
        }
        if let Err(problem) = listen_address(&self.server.listen) {
            problems.push(("server.listen".to_owned(), problem));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            problems.push((
                "log.filter".to_owned(),
                format!(
                    "log.filter = {:?} is not a tracing filter (such as \"info,dirsync=debug\"): {err}",
                    self.log.filter
                ),
            ));
        }
        if let Some(graph) = &self.graph {
            for problem in graph.problems() {
                let crate::source::graph::SettingsError::Invalid { field, problem } = problem
                else {
                    continue;
                };
                problems.push((format!("graph.{field}"), format!("graph.{field} {problem}")));
            }
        }
        if let Err(problem) = self.auth.validate() {
            problems.push(("auth".to_owned(), problem));
        }
        if let Err(problem) = self.notify.validate() {
            problems.push(("notify".to_owned(), problem));
        }
        problems
    }
}

/// `host:port` with a port number, as `dirsync serve` binds it.
fn listen_address(text: &str) -> Result<(), String> {
    let port = text
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(_))) if !host.is_empty() => Ok(()),
        _ => Err(format!(
            "server.listen = {text:?} is not an address to listen on (such as \"127.0.0.1:8080\" or \"0.0.0.0:8080\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A settings file with `text`, in a directory of its own.
    fn settings_file(text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dirsync-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dirsync.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn problems(text: &str) -> String {
        Settings::load(Some(&settings_file(text)))
            .expect_err("the settings should be refused")
            .to_string()
    }

    #[test]
    fn sign_in_without_the_services_public_url_is_refused_at_start() {
        let err = problems("[auth.oidc]\nclient_id = \"app\"\nclient_secret = \"s\"\n");
        assert!(err.contains("auth.oidc needs auth.public_url"), "{err}");
        let err = problems("[auth.session]\nidle_minutes = 0\n");
        assert!(err.contains("idle_minutes"), "{err}");
    }

    #[test]
    fn settings_layer_file_over_defaults_and_hide_the_database_url() {
        let file = settings_file(
            "[database]\nurl = \"postgres://u:hunter2@db/x\"\n[sync]\ntarget_concurrency = 3\n",
        );
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.sync.target_concurrency, 3);
        assert_eq!(
            settings.sync.flush_every,
            SyncSettings::default().flush_every
        );
        assert_eq!(
            settings.database.location(),
            Ok(DatabaseLocation::Postgres(
                "postgres://u:hunter2@db/x".into()
            ))
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(Settings::load(Some(&file.with_file_name("missing.toml"))).is_err());
    }

    #[test]
    fn without_a_url_the_database_is_a_sqlite_file_and_the_url_scheme_picks_the_backend() {
        let settings = Settings::load(Some(&settings_file(""))).unwrap();
        assert_eq!(settings.database.path, PathBuf::from(DEFAULT_SQLITE_PATH));
        let no_url = DatabaseSettings {
            url: None,
            ..settings.database.clone()
        };
        assert_eq!(
            no_url.location(),
            Ok(DatabaseLocation::Sqlite(PathBuf::from(DEFAULT_SQLITE_PATH)))
        );
        let file = settings_file("[database]\nurl = \"sqlite://./data/x.db?mode=rwc\"\n");
        assert_eq!(
            Settings::load(Some(&file)).unwrap().database.location(),
            Ok(DatabaseLocation::Sqlite(PathBuf::from("./data/x.db")))
        );
        let err = problems("[database]\nurl = \"mysql://db/x\"\n");
        assert!(
            err.contains("database.url must start with postgres:// (PostgreSQL) or sqlite://"),
            "{err}"
        );
        let err = problems("[database]\nurl = \"sqlite::memory:\"\n");
        assert!(err.contains("must name a file"), "{err}");
    }

    #[test]
    fn the_example_settings_file_loads_with_its_sections() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dirsync.example.toml");
        let settings = Settings::load(Some(&example)).unwrap();
        assert_eq!(settings.server.listen, "127.0.0.1:8080");
        assert!(settings.scheduler.enabled);
        assert_eq!(
            SyncSettings::from(settings.sync).run_deadline,
            Duration::from_secs(6 * 3600)
        );
        assert!(settings.graph.is_none());
    }

    #[test]
    fn a_misspelt_section_is_refused_naming_it_and_the_closest_section() {
        let err = problems("[databse]\nurl = \"postgres://db/prod\"\n");
        assert!(
            err.contains("unknown section `databse`; did you mean `database`?"),
            "{err}"
        );
        assert!(err.contains("dirsync.toml"), "{err}");
    }

    #[test]
    fn a_misspelt_key_is_refused_naming_it_and_the_closest_key() {
        let err = problems("[database]\nmax_conections = 5\n");
        assert!(
            err.contains(
                "unknown key `max_conections` in section `database`; did you mean `max_connections`?"
            ),
            "{err}"
        );
    }

    #[test]
    fn every_unknown_key_is_named_at_once() {
        let err =
            problems("[databse]\nurl = \"x\"\n[sync]\nflush_evry = 3\nnonsense_entirely = 1\n");
        for expected in [
            "unknown section `databse`",
            "unknown key `flush_evry` in section `sync`; did you mean `flush_every`?",
            "unknown key `nonsense_entirely` in section `sync` (known keys:",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from {err}");
        }
    }

    #[test]
    fn an_unknown_log_format_is_refused_listing_the_formats() {
        let err = problems("[log]\nformat = \"yaml\"\n");
        assert!(
            err.contains("log.format = \"yaml\" is not one of: text, json"),
            "{err}"
        );
    }

    #[test]
    fn a_pool_of_no_connections_is_refused_at_start() {
        let err = problems("[database]\nmax_connections = 0\n");
        assert!(
            err.contains("database.max_connections = 0 is out of range: it must be from 1 to 1000"),
            "{err}"
        );
    }

    #[test]
    fn a_target_concurrency_of_zero_is_refused_at_start() {
        let err = problems("[sync]\ntarget_concurrency = 0\n");
        assert!(
            err.contains("sync.target_concurrency = 0 is out of range: it must be from 1 to 256"),
            "{err}"
        );
    }

    #[test]
    fn batch_sizes_timeouts_and_intervals_have_ranges() {
        let err = problems(
            "[sync]\nflush_every = 0\nheartbeat_every_secs = 0\nmax_unavailable_in_a_row = 0\n\
             [scheduler]\npoll_interval_secs = 0\n[server]\nshutdown_grace_secs = 0\n",
        );
        for key in [
            "sync.flush_every = 0",
            "sync.heartbeat_every_secs = 0",
            "sync.max_unavailable_in_a_row = 0",
            "scheduler.poll_interval_secs = 0",
            "server.shutdown_grace_secs = 0",
        ] {
            assert!(err.contains(key), "{key:?} missing from {err}");
        }
        let err = problems(
            "[sync]\nflush_interval_ms = 0\nrun_deadline_secs = 0\nmax_runs_in_flight = 0\n",
        );
        for key in [
            "sync.flush_interval_ms = 0",
            "sync.run_deadline_secs = 0",
            "sync.max_runs_in_flight = 0",
        ] {
            assert!(err.contains(key), "{key:?} missing from {err}");
        }
        // The lease replaced the heartbeat timeout: the old key is refused by name.
        let err = problems("[sync]\nstale_after_secs = 150\n");
        assert!(err.contains("stale_after_secs"), "{err}");
        let err = problems("[sync]\nflush_every = -1\n");
        assert!(err.contains("sync.flush_every"), "{err}");
    }

    #[test]
    fn graph_timeouts_and_concurrency_are_checked_with_the_rest() {
        let err = problems(
            "[graph]\nclient_id = \"app\"\nconcurrency = 0\nrequest_timeout = 0\n\
             [graph.credential]\nkind = \"client_secret\"\nclient_secret = \"s\"\n",
        );
        assert!(err.contains("graph.concurrency"), "{err}");
        assert!(err.contains("graph.request_timeout"), "{err}");
        let err = problems(
            "[graph]\nclient_id = \"app\"\n[graph.credential]\nkind = \"client_secert\"\n",
        );
        assert!(err.contains("client_secert"), "{err}");
        assert!(err.contains("client_secret"), "{err}");
    }

    #[test]
    fn a_listen_address_and_a_log_filter_that_cannot_work_are_refused() {
        let err = problems("[server]\nlisten = \"8080\"\n[log]\nfilter = \"info,[\"\n");
        assert!(err.contains("server.listen = \"8080\""), "{err}");
        assert!(err.contains("log.filter"), "{err}");
    }
}
