//! The store the settings describe, opened: PostgreSQL for a `postgres://` URL, otherwise the
//! embedded SQLite file. Everything that needs dirsync's records (the service, the CLI, the
//! connectors' token stores) gets them from here as one [`Database`].

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::target_tokens::{PgTokenStore, SqliteTokenStore};
use super::{AccessStore, PgStore, SqliteStore, Store, StoreError};
use crate::domain::TenantKey;
use crate::settings::{DatabaseLocation, DatabaseSettings};
use crate::target::highq::TokenStore;

/// One database holding all of dirsync's records.
#[async_trait]
pub trait Database: Store + AccessStore {
    /// Applies the embedded migrations this database has not seen yet.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Where a tenant's rotating target refresh token is kept.
    fn target_tokens(&self, tenant: TenantKey, target_kind: &'static str) -> Arc<dyn TokenStore>;
    /// "PostgreSQL" or "SQLite file ./dirsync-data/dirsync.db", for people.
    fn describe(&self) -> String;
    /// Whether more than one `dirsync serve` may share this database.
    fn serves_many_replicas(&self) -> bool;
    /// The SQLite file, when it is one.
    fn sqlite_file(&self) -> Option<&Path> {
        None
    }
}

#[async_trait]
impl Database for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        PgStore::migrate(self).await
    }

    fn target_tokens(&self, tenant: TenantKey, target_kind: &'static str) -> Arc<dyn TokenStore> {
        Arc::new(PgTokenStore::new(self.pool().clone(), tenant, target_kind))
    }

    fn describe(&self) -> String {
        "PostgreSQL".to_owned()
    }

    fn serves_many_replicas(&self) -> bool {
        true
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        SqliteStore::migrate(self).await
    }

    fn target_tokens(&self, tenant: TenantKey, target_kind: &'static str) -> Arc<dyn TokenStore> {
        Arc::new(SqliteTokenStore::new(
            self.pool().clone(),
            tenant,
            target_kind,
        ))
    }

    fn describe(&self) -> String {
        format!("SQLite file {}", self.path().display())
    }

    fn serves_many_replicas(&self) -> bool {
        false
    }

    fn sqlite_file(&self) -> Option<&Path> {
        Some(self.path())
    }
}

/// Opens the database `settings` describe and applies its migrations: ready to use.
pub async fn open(settings: &DatabaseSettings) -> anyhow::Result<Arc<dyn Database>> {
    let location = settings
        .location()
        .map_err(|problem| anyhow::anyhow!(problem))?;
    open_location(&location, settings.max_connections).await
}

/// Opens the database at `location` and applies its migrations.
pub async fn open_location(
    location: &DatabaseLocation,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn Database>> {
    match location {
        DatabaseLocation::Postgres(url) => {
            let store = PgStore::open(url.expose_secret(), max_connections)
                .await
                .context(
                    "could not open the PostgreSQL database (set DIRSYNC__DATABASE__URL or \
                 DATABASE_URL; leave both unset to use a SQLite file)",
                )?;
            Ok(Arc::new(store))
        }
        DatabaseLocation::Sqlite(path) => {
            let store = SqliteStore::open(path, max_connections)
                .await
                .with_context(|| {
                    format!("could not open the SQLite database file {}", path.display())
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// While held, no other `dirsync serve` can start on the same SQLite file (the lock is the
/// operating system's, so it goes with the process however it ends).
#[derive(Debug)]
pub struct ServeLock {
    _file: Option<File>,
}

/// Claims `database` for this `dirsync serve`. PostgreSQL is shared by any number of replicas
/// (runs and midnights are claimed in the database); a SQLite file serves one, so a second
/// server on it is refused with a sentence saying what to do.
pub fn claim_for_serving(database: &dyn Database) -> anyhow::Result<ServeLock> {
    match database.sqlite_file() {
        Some(path) => lock_sqlite_file(path),
        None => Ok(ServeLock { _file: None }),
    }
}

/// Takes the SQLite file's serve lock (see [`claim_for_serving`]), for `serve` and for anything
/// that must not run beside it.
pub fn lock_sqlite_file(path: &Path) -> anyhow::Result<ServeLock> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create the data directory {}", dir.display()))?;
    }
    let lock_path = serve_lock_path(path);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("could not open the lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(ServeLock { _file: Some(file) }),
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "another dirsync serve is already running on the SQLite database {}: a SQLite file \
             serves one replica. Stop the other one, or move to PostgreSQL to run more \
             (dirsync store migrate --from sqlite://{} --to postgres://…)",
            path.display(),
            path.display()
        ),
        Err(TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("could not lock {}", lock_path.display()))
        }
    }
}

/// `dirsync.db` → `dirsync.db-serve.lock`, beside SQLite's own `-wal` and `-shm` files. (Not
/// the database file itself: closing a second handle on it would drop SQLite's own locks.)
fn serve_lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-serve.lock");
    PathBuf::from(name)
}
