//! `dirsync store migrate`: copies every record from one database to another, refusing while a
//! `dirsync serve` still uses the SQLite file it copies from.

use std::process::ExitCode;

use anyhow::Context;

use crate::settings::DatabaseLocation;
use crate::store::{copy_database, lock_sqlite_file};

pub(super) async fn migrate(from: &str, to: &str, replace: bool) -> anyhow::Result<ExitCode> {
    let source = DatabaseLocation::parse(from).map_err(|p| anyhow::anyhow!("--from {p}"))?;
    let destination = DatabaseLocation::parse(to).map_err(|p| anyhow::anyhow!("--to {p}"))?;
    if source == destination {
        anyhow::bail!("--from and --to name the same database: nothing to copy");
    }
    // Nothing may write to a SQLite file while it is copied: hold the lock `serve` holds.
    let mut locks = Vec::new();
    for location in [&source, &destination] {
        if let DatabaseLocation::Sqlite(path) = location {
            let lock = lock_sqlite_file(path)
                .await
                .context("stop dirsync serve before moving its records")?;
            locks.push(lock);
        }
    }
    let report = copy_database(&source, &destination, replace).await?;
    print!("{report}");
    println!(
        "copied {} rows; point dirsync at the new database (DIRSYNC__DATABASE__URL) before \
         starting it again",
        report.tables.iter().map(|(_, rows)| rows).sum::<u64>()
    );
    Ok(ExitCode::SUCCESS)
}
