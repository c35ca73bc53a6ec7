//! The two store backends as the store, access and scenario suites see them: a fresh PostgreSQL
//! database (from `#[sqlx::test]`) or a fresh SQLite file, each behind `Arc<dyn Database>`, with
//! the few raw statements the suites need to reach under the store. `on_both_backends!` turns
//! each `async fn case(db: TestDb)` into one test per backend.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dirsync::store::{Database, PgStore, SqliteStore};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, PgPool, SqlitePool};

/// A fresh, migrated database of one backend.
pub struct TestDb {
    pub store: Arc<dyn Database>,
    raw: Raw,
    /// The SQLite file's directory, deleted with the `TestDb`.
    dir: Option<PathBuf>,
}

enum Raw {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl TestDb {
    pub fn postgres(pool: PgPool) -> Self {
        Self {
            store: Arc::new(PgStore::new(pool.clone())),
            raw: Raw::Postgres(pool),
            dir: None,
        }
    }

    /// A new SQLite file in a directory of its own, migrated.
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("dirsync-test-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&dir.join("dirsync.db"), 5)
            .await
            .expect("a fresh SQLite database");
        Self {
            raw: Raw::Sqlite(store.pool().clone()),
            store: Arc::new(store),
            dir: Some(dir),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.raw, Raw::Sqlite(_))
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join("dirsync.db"))
    }

    /// Runs a statement that binds nothing (written in SQL both backends speak).
    pub async fn execute(&self, sql: &str) {
        match &self.raw {
            Raw::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every row of a query that binds nothing.
    pub async fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        match &self.raw {
            Raw::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            Raw::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A query's one value.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        (T,): for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let mut rows: Vec<(T,)> = self.rows(sql).await;
        assert_eq!(rows.len(), 1, "{sql}: one row expected");
        rows.remove(0).0
    }

    /// A JSON column's value (`jsonb` in PostgreSQL, text in SQLite).
    pub async fn json(&self, sql: &str) -> serde_json::Value {
        match &self.raw {
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Raw::Sqlite(pool) => sqlx::query_scalar::<_, sqlx::types::Json<serde_json::Value>>(sql)
                .fetch_one(pool)
                .await
                .map(|json| json.0),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Sets a run's start and end to `at`: a run a test's clock says happened then (the store
    /// stamps runs with the database's time).
    pub async fn stamp_run(&self, run: i64, at: DateTime<Utc>) {
        let sql = "UPDATE runs SET started_at = $1, finished_at = $1 WHERE id = $2";
        match &self.raw {
            Raw::Postgres(pool) => sqlx::query(sql)
                .bind(at)
                .bind(run)
                .execute(pool)
                .await
                .map(drop),
            Raw::Sqlite(pool) => sqlx::query(sql)
                .bind(at)
                .bind(run)
                .execute(pool)
                .await
                .map(drop),
        }
        .expect("the run stamped");
    }

    /// Moves the runs' start `days` into the past.
    pub async fn backdate_runs(&self, runs: &[i64], days: i64) {
        let started: DateTime<Utc> = Utc::now() - Duration::days(days);
        for run in runs {
            let sql = "UPDATE runs SET started_at = $1 WHERE id = $2";
            match &self.raw {
                Raw::Postgres(pool) => sqlx::query(sql)
                    .bind(started)
                    .bind(run)
                    .execute(pool)
                    .await
                    .map(drop),
                Raw::Sqlite(pool) => sqlx::query(sql)
                    .bind(started)
                    .bind(run)
                    .execute(pool)
                    .await
                    .map(drop),
            }
            .expect("the run backdated");
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// For each `async fn name(db: TestDb)` named, a test `postgres::name` on a fresh PostgreSQL
/// database and a test `sqlite::name` on a fresh SQLite file.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[sqlx::test(migrations = "./migrations")]
                async fn $case(pool: sqlx::PgPool) {
                    super::$case($crate::support::backend::TestDb::postgres(pool)).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::support::backend::TestDb::sqlite().await).await;
                }
            )*
        }
    };
}
