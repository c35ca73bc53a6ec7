//! `dirsync store migrate`: copies every record from one database to another — SQLite up to
//! PostgreSQL when an installation outgrows one replica, or back — keeping every ID, so runs,
//! reports, approvals, grants, tokens and the audit log read exactly as before.
//!
//! Tables are copied parents first, rows in ID order, in one transaction on the destination: a
//! copy that fails leaves the destination as it was. A destination that already holds records
//! is refused unless the caller asks to replace them. Every column of the source must be one
//! this module knows (a migration that adds a column and forgets it here is refused, not lost).

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use secrecy::ExposeSecret;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{PgStore, SqliteStore, StoreError};
use crate::settings::DatabaseLocation;

/// How a column is read and written. PostgreSQL is strict about integer widths, so they are
/// told apart; a session's app roles are `text[]` in PostgreSQL and JSON in SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    I16,
    I32,
    I64,
    Text,
    Guid,
    Document,
    Time,
    Bytes,
    TextList,
}

use Kind::*;

/// Every table, parents before children, with every column.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "tenants",
        &[
            ("id", I64),
            ("key", Text),
            ("display_name", Text),
            ("entra_tenant_id", Guid),
            ("time_zone", Text),
            ("report_retention_months", I16),
            ("deactivation_status", Text),
            ("deletion_threshold", I64),
            ("source", Document),
            ("target", Document),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    ),
    (
        "selected_groups",
        &[
            ("tenant_id", I64),
            ("entra_group_id", Guid),
            ("role", Text),
            ("position", I32),
        ],
    ),
    (
        "synced_groups",
        &[
            ("id", I64),
            ("tenant_id", I64),
            ("entra_group_id", Guid),
            ("role", Text),
            ("target_group_id", Text),
            ("name", Text),
            ("kind", Text),
            ("system_name", Text),
            ("created_at", Time),
            ("converted_at", Time),
        ],
    ),
    (
        "synced_users",
        &[
            ("tenant_id", I64),
            ("entra_user_id", Guid),
            ("target_user_id", Text),
            ("email", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("phone", Text),
            ("job_title", Text),
            ("role", Text),
            ("status", Text),
            ("updated_at", Time),
        ],
    ),
    (
        "memberships",
        &[("synced_group_id", I64), ("entra_user_id", Guid)],
    ),
    (
        "runs",
        &[
            ("id", I64),
            ("tenant_id", I64),
            ("trigger_kind", Text),
            ("triggered_by", Text),
            ("status", Text),
            ("started_at", Time),
            ("finished_at", Time),
            ("summary", Document),
            ("message", Text),
            ("approves", I64),
            ("progress_done", I32),
            ("progress_total", I32),
            ("heartbeat_at", Time),
            ("progress_stage", Text),
            ("approved_deactivations", I64),
        ],
    ),
    (
        "run_rejections",
        &[
            ("run_id", I64),
            ("rejected_by", Text),
            ("rejected_at", Time),
            ("reason", Text),
        ],
    ),
    (
        "run_groups",
        &[
            ("run_id", I64),
            ("seq", I32),
            ("entra_group_id", Guid),
            ("name", Text),
            ("role", Text),
            ("members_seen", I64),
            ("status", Text),
            ("message", Text),
        ],
    ),
    (
        "report_entries",
        &[
            ("id", I64),
            ("run_id", I64),
            ("subject", Text),
            ("entra_id", Guid),
            ("email", Text),
            ("name", Text),
            ("action", Text),
            ("field", Text),
            ("old_value", Text),
            ("new_value", Text),
            ("severity", Text),
            ("message", Text),
        ],
    ),
    (
        "target_tokens",
        &[
            ("tenant_id", I64),
            ("target_kind", Text),
            ("refresh_token", Text),
            ("updated_at", Time),
            ("access_token", Text),
            ("access_expires_at", Time),
            ("refresh_expires_at", Time),
        ],
    ),
    (
        "scheduled_midnights",
        &[
            ("tenant_id", I64),
            ("midnight", Time),
            ("claimed_at", Time),
            ("run_id", I64),
        ],
    ),
    (
        "tenant_pauses",
        &[
            ("tenant_id", I64),
            ("paused_by", Text),
            ("paused_at", Time),
            ("reason", Text),
        ],
    ),
    (
        "service_pauses",
        &[
            ("id", I16),
            ("paused_by", Text),
            ("paused_at", Time),
            ("reason", Text),
        ],
    ),
    (
        "quarantine_marks",
        &[
            ("tenant_id", I64),
            ("lifted_at", Time),
            ("lifted_by", Text),
            ("lifted_reason", Text),
            ("announced_run", I64),
        ],
    ),
    (
        "access_grants",
        &[
            ("id", I64),
            ("entra_tenant_id", Guid),
            ("entra_object_id", Guid),
            ("role", Text),
            ("tenant_id", I64),
            ("label", Text),
            ("granted_by", Text),
            ("granted_at", Time),
        ],
    ),
    (
        "sign_in_attempts",
        &[
            ("id_hash", Bytes),
            ("state", Text),
            ("nonce", Text),
            ("pkce_verifier", Text),
            ("return_to", Text),
            ("created_at", Time),
            ("expires_at", Time),
        ],
    ),
    (
        "sessions",
        &[
            ("id_hash", Bytes),
            ("entra_tenant_id", Guid),
            ("entra_object_id", Guid),
            ("name", Text),
            ("username", Text),
            ("app_roles", TextList),
            ("csrf_token", Text),
            ("created_at", Time),
            ("last_seen_at", Time),
            ("expires_at", Time),
        ],
    ),
    (
        "api_tokens",
        &[
            ("id", I64),
            ("prefix", Text),
            ("secret_hash", Bytes),
            ("name", Text),
            ("role", Text),
            ("tenant_id", I64),
            ("created_by", Text),
            ("created_at", Time),
            ("expires_at", Time),
            ("last_used_at", Time),
            ("revoked_at", Time),
            ("revoked_by", Text),
        ],
    ),
    (
        "audit_events",
        &[
            ("id", I64),
            ("at", Time),
            ("tenant_id", I64),
            ("actor", Text),
            ("actor_id", Text),
            ("action", Text),
            ("outcome", Text),
            ("detail", Document),
            ("source_ip", Text),
            ("forwarded_for", Text),
            ("user_agent", Text),
        ],
    ),
    (
        "notification_settings",
        &[
            ("tenant_id", I64),
            ("webhook_url", Text),
            ("webhook_secret", Text),
            ("email_to", Document),
            ("events", Document),
            ("error_threshold", I64),
            ("daily_digest", I16),
            ("updated_by", Text),
            ("updated_at", Time),
        ],
    ),
    (
        "notification_outbox",
        &[
            ("id", I64),
            ("tenant_id", I64),
            ("channel", Text),
            ("event", Text),
            ("payload", Document),
            ("status", Text),
            ("attempts", I32),
            ("next_attempt_at", Time),
            ("last_error", Text),
            ("created_at", Time),
            ("finished_at", Time),
        ],
    ),
    (
        "notification_marks",
        &[("tenant_id", I64), ("mark", Text), ("created_at", Time)],
    ),
];

/// Bind parameters per statement: under both SQLite's (32,766) and PostgreSQL's (65,535) limits.
const MAX_BINDS: usize = 30_000;

/// One value read from a row, to be written to the other database.
#[derive(Debug, Clone)]
enum Value {
    I16(Option<i16>),
    I32(Option<i32>),
    I64(Option<i64>),
    Text(Option<String>),
    Uuid(Option<Uuid>),
    Json(Option<serde_json::Value>),
    Time(Option<DateTime<Utc>>),
    Bytes(Option<Vec<u8>>),
    TextList(Option<Vec<String>>),
}

/// An open database of either kind, migrated.
enum Side {
    Postgres(PgPool),
    Sqlite(SqliteStore),
}

/// What a copy moved: rows per table, in copy order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (table, rows) in &self.tables {
            writeln!(f, "{table:<20} {rows:>9} rows")?;
        }
        Ok(())
    }
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "the destination already holds records ({table}: {rows} rows); copy into an empty \
         database, or pass --replace to delete everything in the destination first"
    )]
    DestinationNotEmpty { table: &'static str, rows: i64 },
    #[error("the source and the destination are the same database")]
    SameDatabase,
    #[error(
        "the source's table {table} has a column {column} that this version of dirsync does not \
         copy; nothing was copied (use the dirsync version that wrote it)"
    )]
    UnknownColumn { table: &'static str, column: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// Copies every record from `from` to `to` (both migrated first). Refuses a destination that
/// holds records unless `replace`, which deletes them in the same transaction as the copy.
pub async fn copy_database(
    from: &DatabaseLocation,
    to: &DatabaseLocation,
    replace: bool,
) -> Result<CopyReport, CopyError> {
    if from == to {
        return Err(CopyError::SameDatabase);
    }
    let source = open(from).await?;
    let destination = open(to).await?;
    for (table, columns) in TABLES {
        let known: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        if let Some(column) = source
            .columns(table)
            .await?
            .into_iter()
            .find(|c| !known.contains(&c.as_str()))
        {
            return Err(CopyError::UnknownColumn { table, column });
        }
    }
    let mut writer = match &destination {
        Side::Postgres(pool) => Writer::Postgres(pool.begin().await?),
        Side::Sqlite(store) => Writer::Sqlite(store.write().await?),
    };
    for (table, _) in TABLES.iter().rev() {
        if replace {
            writer.execute(&format!("DELETE FROM {table}")).await?;
            continue;
        }
        let rows = writer
            .count(&format!("SELECT count(*) FROM {table}"))
            .await?;
        if rows > 0 {
            return Err(CopyError::DestinationNotEmpty { table, rows });
        }
    }
    let mut report = CopyReport::default();
    for (table, columns) in TABLES {
        let rows = source.copy_table(table, columns, &mut writer).await?;
        report.tables.push((*table, rows));
    }
    writer.finish().await?;
    Ok(report)
}

/// The destination's one transaction.
enum Writer {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

impl Writer {
    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Writer::Postgres(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop),
            Writer::Sqlite(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop),
        }
    }

    async fn count(&mut self, sql: &str) -> Result<i64, sqlx::Error> {
        match self {
            Writer::Postgres(tx) => sqlx::query_scalar(sql).fetch_one(&mut **tx).await,
            Writer::Sqlite(tx) => sqlx::query_scalar(sql).fetch_one(&mut **tx).await,
        }
    }

    async fn insert(
        &mut self,
        table: &str,
        columns: &[(&str, Kind)],
        batch: Vec<Vec<Value>>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Writer::Postgres(tx) => insert_postgres(tx, table, columns, batch).await,
            Writer::Sqlite(tx) => insert_sqlite(tx, table, columns, batch).await,
        }
    }

    /// Sets PostgreSQL's sequences past the copied IDs (SQLite's AUTOINCREMENT counters follow
    /// them by themselves) and commits.
    async fn finish(mut self) -> Result<(), sqlx::Error> {
        if let Writer::Postgres(_) = self {
            for (table, columns) in TABLES {
                if columns.first().is_some_and(|(name, _)| *name == "id") {
                    self.execute(&format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                       COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                    ))
                    .await?;
                }
            }
        }
        match self {
            Writer::Postgres(tx) => tx.commit().await,
            Writer::Sqlite(tx) => tx.commit().await,
        }
    }
}

async fn open(location: &DatabaseLocation) -> Result<Side, StoreError> {
    Ok(match location {
        DatabaseLocation::Postgres(url) => {
            Side::Postgres(PgStore::open(url.expose_secret(), 4).await?.pool().clone())
        }
        DatabaseLocation::Sqlite(path) => Side::Sqlite(SqliteStore::open(path, 4).await?),
    })
}

impl Side {
    /// The columns the table has in this database.
    async fn columns(&self, table: &str) -> Result<Vec<String>, sqlx::Error> {
        match self {
            Side::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(table)
                .fetch_all(pool)
                .await
            }
            Side::Sqlite(store) => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                    .bind(table)
                    .fetch_all(store.pool())
                    .await
            }
        }
    }

    /// Reads the table in key order and hands it to `write` in batches; returns the rows read.
    async fn copy_table(
        &self,
        table: &str,
        columns: &[(&str, Kind)],
        writer: &mut Writer,
    ) -> Result<u64, CopyError> {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let order: Vec<&str> = names.iter().take(2).copied().collect();
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {}",
            names.join(", "),
            order.join(", ")
        );
        let per_batch = (MAX_BINDS / columns.len()).max(1);
        let mut batch = Vec::with_capacity(per_batch);
        let mut copied = 0;
        match self {
            Side::Postgres(pool) => {
                let mut rows = sqlx::query(&sql).fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    batch.push(read_postgres(&row, columns)?);
                    if batch.len() == per_batch {
                        copied += batch.len() as u64;
                        writer
                            .insert(table, columns, std::mem::take(&mut batch))
                            .await?;
                    }
                }
            }
            Side::Sqlite(store) => {
                let mut rows = sqlx::query(&sql).fetch(store.pool());
                while let Some(row) = rows.try_next().await? {
                    batch.push(read_sqlite(&row, columns)?);
                    if batch.len() == per_batch {
                        copied += batch.len() as u64;
                        writer
                            .insert(table, columns, std::mem::take(&mut batch))
                            .await?;
                    }
                }
            }
        }
        if !batch.is_empty() {
            copied += batch.len() as u64;
            writer.insert(table, columns, batch).await?;
        }
        Ok(copied)
    }
}

fn read_postgres(row: &PgRow, columns: &[(&str, Kind)]) -> Result<Vec<Value>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                I16 => Value::I16(row.try_get(i)?),
                I32 => Value::I32(row.try_get(i)?),
                I64 => Value::I64(row.try_get(i)?),
                Text => Value::Text(row.try_get(i)?),
                Guid => Value::Uuid(row.try_get(i)?),
                Document => Value::Json(row.try_get(i)?),
                Time => Value::Time(row.try_get(i)?),
                Bytes => Value::Bytes(row.try_get(i)?),
                TextList => Value::TextList(row.try_get(i)?),
            })
        })
        .collect()
}

fn read_sqlite(row: &SqliteRow, columns: &[(&str, Kind)]) -> Result<Vec<Value>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                I16 => Value::I16(row.try_get(i)?),
                I32 => Value::I32(row.try_get(i)?),
                I64 => Value::I64(row.try_get(i)?),
                Text => Value::Text(row.try_get(i)?),
                Guid => Value::Uuid(row.try_get(i)?),
                Document => Value::Json(row.try_get(i)?),
                Time => Value::Time(row.try_get(i)?),
                Bytes => Value::Bytes(row.try_get(i)?),
                TextList => Value::TextList(
                    row.try_get::<Option<Json<Vec<String>>>, _>(i)?
                        .map(|list| list.0),
                ),
            })
        })
        .collect()
}

fn insert_head(table: &str, columns: &[(&str, Kind)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    format!("INSERT INTO {table} ({}) ", names.join(", "))
}

async fn insert_postgres(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    table: &str,
    columns: &[(&str, Kind)],
    batch: Vec<Vec<Value>>,
) -> Result<(), sqlx::Error> {
    let mut insert = QueryBuilder::<Postgres>::new(insert_head(table, columns));
    insert.push_values(batch, |mut row, values| {
        for value in values {
            match value {
                Value::I16(v) => row.push_bind(v),
                Value::I32(v) => row.push_bind(v),
                Value::I64(v) => row.push_bind(v),
                Value::Text(v) => row.push_bind(v),
                Value::Uuid(v) => row.push_bind(v),
                Value::Json(v) => row.push_bind(v.map(Json)),
                Value::Time(v) => row.push_bind(v),
                Value::Bytes(v) => row.push_bind(v),
                Value::TextList(v) => row.push_bind(v),
            };
        }
    });
    insert.build().execute(&mut **tx).await?;
    Ok(())
}

async fn insert_sqlite(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    table: &str,
    columns: &[(&str, Kind)],
    batch: Vec<Vec<Value>>,
) -> Result<(), sqlx::Error> {
    let mut insert = QueryBuilder::<Sqlite>::new(insert_head(table, columns));
    insert.push_values(batch, |mut row, values| {
        for value in values {
            match value {
                Value::I16(v) => row.push_bind(v),
                Value::I32(v) => row.push_bind(v),
                Value::I64(v) => row.push_bind(v),
                Value::Text(v) => row.push_bind(v),
                Value::Uuid(v) => row.push_bind(v),
                Value::Json(v) => row.push_bind(v.map(Json)),
                Value::Time(v) => row.push_bind(v),
                Value::Bytes(v) => row.push_bind(v),
                Value::TextList(v) => row.push_bind(v.map(Json)),
            };
        }
    });
    insert.build().execute(&mut **tx).await?;
    Ok(())
}

/// The tables and columns copied, for the test that keeps them in step with the migrations.
pub fn copied_columns() -> Vec<(&'static str, Vec<&'static str>)> {
    TABLES
        .iter()
        .map(|(table, columns)| (*table, columns.iter().map(|(name, _)| *name).collect()))
        .collect()
}
