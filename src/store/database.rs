//! The store the settings describe, opened: PostgreSQL for a `postgres://` URL, otherwise the
//! embedded SQLite file. Everything that needs dirsync's records (the service, the CLI, the
//! connectors' token stores) gets them from here as one [`Database`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

    fn sqlite_file(&self) -> Option<&Path> {
        Some(self.path())
    }
}

/// Why the database the settings describe could not be opened, in a sentence an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Settings(String),
    #[error(
        "could not open the PostgreSQL database (set DIRSYNC__DATABASE__URL or DATABASE_URL; \
         leave both unset to use a SQLite file): {0}"
    )]
    Postgres(StoreError),
    #[error("could not open the SQLite database file {path}: {source}")]
    Sqlite { path: PathBuf, source: StoreError },
    #[error(
        "another dirsync serve is already running on the SQLite database {path}: a SQLite file \
         serves one replica. Stop the other one, or move to PostgreSQL to run more \
         (dirsync store migrate --from sqlite://{path} --to postgres://…)",
        path = .0.display()
    )]
    AlreadyServed(PathBuf),
    #[error("could not lock {path}: {source}")]
    Lock { path: PathBuf, source: StoreError },
}

/// Opens the database `settings` describe and applies its migrations: ready to use.
pub async fn open(settings: &DatabaseSettings) -> Result<Arc<dyn Database>, OpenError> {
    let location = settings.location().map_err(OpenError::Settings)?;
    open_location(&location, settings.max_connections).await
}

/// Opens the database at `location` and applies its migrations.
pub async fn open_location(
    location: &DatabaseLocation,
    max_connections: u32,
) -> Result<Arc<dyn Database>, OpenError> {
    match location {
        DatabaseLocation::Postgres(url) => {
            let store = PgStore::open(url.expose_secret(), max_connections)
                .await
                .map_err(OpenError::Postgres)?;
            Ok(Arc::new(store))
        }
        DatabaseLocation::Sqlite(path) => {
            let store = SqliteStore::open(path, max_connections)
                .await
                .map_err(|source| OpenError::Sqlite {
                    path: path.clone(),
                    source,
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// While held, no other `dirsync serve` can start on the same SQLite file. The lock is SQLite's
/// own (an exclusive lock on a small file beside the database), so the operating system releases
/// it with the process however it ends.
#[derive(Debug)]
pub struct ServeLock {
    _holder: Option<sqlx::SqliteConnection>,
}

impl ServeLock {
    /// Gives the lock back now (dropping it gives it back soon after, on SQLite's own thread).
    pub async fn release(self) -> Result<(), StoreError> {
        if let Some(holder) = self._holder {
            sqlx::Connection::close(holder).await?;
        }
        Ok(())
    }
}

/// Claims `database` for this `dirsync serve`. PostgreSQL is shared by any number of replicas
/// (runs and midnights are claimed in the database); a SQLite file serves one, so a second
/// server on it is refused with a sentence saying what to do.
pub async fn claim_for_serving(database: &dyn Database) -> Result<ServeLock, OpenError> {
    match database.sqlite_file() {
        Some(path) => lock_sqlite_file(path).await,
        None => Ok(ServeLock { _holder: None }),
    }
}

/// Takes the SQLite file's serve lock (see [`claim_for_serving`]), for `serve` and for anything
/// that must not run beside it.
pub async fn lock_sqlite_file(path: &Path) -> Result<ServeLock, OpenError> {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteLockingMode};

    let lock_path = serve_lock_path(path);
    let failed = |source: StoreError| OpenError::Lock {
        path: lock_path.clone(),
        source,
    };
    super::sqlite::create_private_file(&lock_path)
        .map_err(|e| failed(StoreError::File(e.to_string())))?;
    let mut holder = SqliteConnectOptions::new()
        .filename(&lock_path)
        .create_if_missing(true)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(std::time::Duration::ZERO)
        .connect()
        .await
        .map_err(|e| failed(e.into()))?;
    // In exclusive locking mode, the first write keeps the file locked until the connection
    // closes; another process's write is refused at once.
    let claimed = sqlx::query(
        "CREATE TABLE IF NOT EXISTS serving (pid INTEGER NOT NULL);
         DELETE FROM serving;
         INSERT INTO serving (pid) VALUES ($1);",
    )
    .bind(i64::from(std::process::id()))
    .execute(&mut holder)
    .await;
    match claimed {
        Ok(_) => Ok(ServeLock {
            _holder: Some(holder),
        }),
        Err(sqlx::Error::Database(err))
            if err
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| code & 0xff == SQLITE_BUSY) =>
        {
            Err(OpenError::AlreadyServed(path.to_owned()))
        }
        Err(err) => Err(failed(err.into())),
    }
}

/// SQLite's primary result code for "another connection holds the lock".
const SQLITE_BUSY: i32 = 5;

/// `dirsync.db` → `dirsync.db-serve.lock`, beside SQLite's own `-wal` and `-shm` files. (Not
/// the database file itself: closing a second handle on it would drop SQLite's own locks.)
fn serve_lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-serve.lock");
    PathBuf::from(name)
}
