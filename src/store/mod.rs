//! dirsync's own records: tenants, the mirror of what was synced, runs and their reports —
//! the `Store` trait with its PostgreSQL and SQLite implementations; who may use dirsync, the
//! `AccessStore` (`access.rs`); and `open`, which opens the one the settings describe.

pub mod access;
mod access_postgres;
mod access_sqlite;
mod approval;
mod copy;
mod database;
pub mod lease;
mod lease_sqlite;
mod model;
pub mod notify;
pub mod pause;
pub mod postgres;
mod report_lines;
mod search;
pub mod sqlite;
mod target_tokens;

pub use access::AccessStore;
pub use copy::{CopyError, CopyReport, copied_columns, copy_database};
pub use database::{Database, ServeLock, claim_for_serving, lock_sqlite_file, open, open_location};
pub use notify::NotifyStore;
pub use pause::{Pause, PauseStore, QuarantineMark};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use target_tokens::{PgTokenStore, SqliteTokenStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

pub use approval::{
    ApprovalError, ApprovalRefused, ApprovedRun, MAX_REJECTION_REASON, Rejection, RejectionError,
    RejectionRefused,
};
pub use lease::{RunFlush, RunLease};
pub use model::*;
pub use report_lines::{EntryFilter, EntryTally, NumberedEntry};
pub use search::{EntryPage, EntryQuery, PersonEvent, PersonMatch};

use crate::domain::{EntraObjectId, TenantKey};
use crate::plan::{GroupSummary, Mirror};
use crate::tenant::Tenant;

/// Members per synced group, both backends (see [`Store::synced_group_sizes`]). Each group is
/// counted on the memberships' primary key: a run waits on this before it reads Entra, and a
/// join of every membership took 24 ms at 120,000 (issue 13), this 8 ms.
const SYNCED_GROUP_SIZES: &str = "SELECT g.entra_group_id,
            (SELECT count(*) FROM memberships m WHERE m.synced_group_id = g.id)
     FROM synced_groups g
     WHERE g.tenant_id = $1 AND g.kind = 'synced'";

/// Folds `(Entra group, members)` rows into the largest count per Entra group.
fn largest_per_group(
    rows: Vec<(uuid::Uuid, i64)>,
) -> std::collections::HashMap<EntraObjectId, usize> {
    let mut sizes = std::collections::HashMap::new();
    for (group, members) in rows {
        let size = sizes.entry(EntraObjectId::from(group)).or_insert(0);
        *size = (*size).max(usize::try_from(members).unwrap_or(0));
    }
    sizes
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not apply database migrations: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    NotFound(String),
    /// A stored row no longer parses (edited by hand, or written by a newer version).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The database's file or directory could not be made (SQLite).
    #[error("{0}")]
    File(String),
    /// The run no longer holds its tenant (`lease.rs`): it must stop applying changes.
    #[error("the run lost its lease: {0}")]
    LeaseLost(String),
}

/// What saving a tenant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantSaved {
    pub created: bool,
    /// The tenant connects somewhere else now; the stored target tokens were dropped.
    pub connection_changed: bool,
}

/// Persistence for everything dirsync remembers. Each method is atomic on its own.
#[async_trait]
pub trait Store: PauseStore + notify::NotifyStore + Send + Sync {
    /// Ready to serve: the database answers and every migration this build knows is applied.
    async fn ready(&self) -> Result<(), StoreError>;

    /// Creates the tenant or replaces its configuration (selected groups included). When the
    /// tenant now connects elsewhere (`Tenant::connection_changed_from`), its stored target
    /// tokens are dropped in the same transaction.
    async fn upsert_tenant(&self, tenant: &Tenant) -> Result<TenantSaved, StoreError>;
    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError>;
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;

    /// The synced groups (not system groups) with their members, and the synced users.
    async fn load_mirror(&self, tenant: &TenantKey) -> Result<Mirror, StoreError>;

    /// Issue 13: how many members each synced group held after the last run, by Entra group
    /// (the largest, if one is synced under two roles), without loading the mirror: the read
    /// starts with the largest groups while the mirror loads beside it.
    async fn synced_group_sizes(
        &self,
        tenant: &TenantKey,
    ) -> Result<std::collections::HashMap<EntraObjectId, usize>, StoreError>;
    /// Records what was applied successfully, in one transaction, set-based.
    async fn apply_mirror_changes(
        &self,
        tenant: &TenantKey,
        changes: &MirrorChanges,
    ) -> Result<(), StoreError>;

    /// Starts a run unless one is already running for the tenant, under a lease that makes it the
    /// tenant's only run while its process lives (`lease.rs`); runs left running by a process
    /// that is gone are closed as interrupted first. Holds across replicas.
    async fn begin_run(
        &self,
        tenant: &TenantKey,
        trigger: &Trigger,
        options: RunOptions,
    ) -> Result<RunStart, StoreError>;
    /// R18: approves the tenant's held run `held` in `approver`'s name and begins the run that
    /// carries the approval out, in one transaction. Refused unless the run is held, not approved
    /// before, the tenant's latest run, and held less than `window` ago; the database lets one
    /// run carry out each approval, whichever replica asks.
    async fn approve_held_run(
        &self,
        tenant: &TenantKey,
        held: RunId,
        approver: &str,
        window: chrono::Duration,
    ) -> Result<ApprovedRun, ApprovalError>;
    /// R18: rejects the tenant's held run `held` in `rejecter`'s name, with an optional reason:
    /// its status becomes `rejected` and it can no longer be approved. Refused unless the run is
    /// held and was neither approved nor rejected before.
    async fn reject_held_run(
        &self,
        tenant: &TenantKey,
        held: RunId,
        rejecter: &str,
        reason: Option<&str>,
    ) -> Result<Rejection, RejectionError>;
    /// R18: who rejected the run, when and why; `None` unless it was rejected.
    async fn run_rejection(&self, run: RunId) -> Result<Option<Rejection>, StoreError>;
    async fn record_groups(&self, run: RunId, groups: &[GroupSummary]) -> Result<(), StoreError>;
    /// Appends report lines; they are readable as soon as this returns.
    async fn record_entries(&self, run: RunId, entries: &[ReportEntry]) -> Result<(), StoreError>;
    /// Records how a run ended, whoever holds its lease: for a process closing the runs it can
    /// no longer carry out (a shutdown past its grace). A run ends itself through its lease.
    async fn finish_run(&self, run: RunId, finish: &RunFinish) -> Result<(), StoreError>;

    /// R20: claims the tenant's `midnight` for this replica. Only the first claim succeeds.
    async fn claim_midnight(
        &self,
        tenant: &TenantKey,
        midnight: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives a claimed midnight back (the run could not start), so it is tried again.
    async fn release_midnight(
        &self,
        tenant: &TenantKey,
        midnight: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The instant after which the tenant's next midnight is due: its latest claimed midnight,
    /// or when the tenant was created (a new tenant does not run for midnights before it existed).
    async fn schedule_baseline(&self, tenant: &TenantKey) -> Result<DateTime<Utc>, StoreError>;

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>, StoreError>;
    /// The tenant's runs, newest first.
    async fn runs(&self, tenant: &TenantKey, limit: i64) -> Result<Vec<RunRecord>, StoreError>;
    /// The tenant's runs matching `filter`, newest first.
    async fn find_runs(
        &self,
        tenant: &TenantKey,
        filter: &RunFilter,
    ) -> Result<Vec<RunRecord>, StoreError>;
    async fn run_groups(&self, run: RunId) -> Result<Vec<GroupSummary>, StoreError>;
    /// The whole report of a run, for small reports and tests; the API, the console and the
    /// `.xlsx` export read pages, tallies and cursors (below) instead.
    async fn run_entries(&self, run: RunId) -> Result<Vec<ReportEntry>, StoreError>;
    /// Up to `limit` of the run's lines that `filter` reads, after line `after` (0: from the
    /// start), in order: one keyset page, never the whole report.
    async fn entries_after(
        &self,
        run: RunId,
        filter: &EntryFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<NumberedEntry>, StoreError>;
    /// How many lines the run's report has, by subject and severity, counted in the database.
    async fn entry_tally(&self, run: RunId) -> Result<EntryTally, StoreError>;
    /// Every line of the run that `filter` reads, in order, from a database cursor as the
    /// stream is polled: memory stays bounded whatever the report's size.
    fn entries_stream(
        &self,
        run: RunId,
        filter: EntryFilter,
    ) -> BoxStream<'_, Result<ReportEntry, StoreError>>;

    /// One page of a run's report, searched by name or email. A backend should page in its
    /// query; this default reads the report through its cursor, keeping only the page.
    async fn entries_page(&self, run: RunId, query: &EntryQuery) -> Result<EntryPage, StoreError> {
        use futures::TryStreamExt;
        let skip = query.offset.max(0) as u64;
        let take = query.limit.max(0) as usize;
        let mut page = EntryPage::default();
        let mut lines = self.entries_stream(run, EntryFilter::default());
        while let Some(entry) = lines.try_next().await? {
            if !query.matches(&entry) {
                continue;
            }
            if page.total >= skip && page.entries.len() < take {
                page.entries.push(entry);
            }
            page.total += 1;
        }
        Ok(page)
    }

    /// The people the tenant's reports mention whose name or email contains `text`, most
    /// recently seen first. This default reads every report of the tenant.
    async fn find_people(
        &self,
        tenant: &TenantKey,
        text: &str,
        limit: i64,
    ) -> Result<Vec<PersonMatch>, StoreError> {
        let query = EntryQuery {
            search: Some(text.to_owned()),
            ..EntryQuery::default()
        };
        let mut people: Vec<PersonMatch> = Vec::new();
        for run in self.runs(tenant, i64::MAX).await? {
            let mut seen_here = std::collections::HashSet::new();
            for entry in self.run_entries(run.id).await? {
                let Some(id) = entry.entra_id.clone() else {
                    continue;
                };
                if entry.subject != SubjectKind::User || !query.matches(&entry) {
                    continue;
                }
                match people.iter_mut().find(|p| p.entra_id == id) {
                    Some(person) if seen_here.insert(id.clone()) => person.runs += 1,
                    Some(_) => {}
                    None => {
                        seen_here.insert(id.clone());
                        people.push(PersonMatch {
                            entra_id: id,
                            email: entry.email.clone(),
                            name: entry.name.clone(),
                            runs: 1,
                            last_seen: run.started_at,
                        });
                    }
                }
            }
        }
        people.truncate(limit.max(0) as usize);
        Ok(people)
    }

    /// Every report line about `person` in the tenant's runs (the newest `limit` runs that
    /// mention them), newest run first. This default reads every report of the tenant.
    async fn person_history(
        &self,
        tenant: &TenantKey,
        person: &EntraObjectId,
        limit: i64,
    ) -> Result<Vec<PersonEvent>, StoreError> {
        let mut events = Vec::new();
        let mut runs = 0;
        for run in self.runs(tenant, i64::MAX).await? {
            let lines: Vec<ReportEntry> = self
                .run_entries(run.id)
                .await?
                .into_iter()
                .filter(|e| e.entra_id.as_ref() == Some(person))
                .collect();
            if lines.is_empty() {
                continue;
            }
            runs += 1;
            if runs > limit {
                break;
            }
            events.extend(lines.into_iter().map(|entry| PersonEvent {
                run: run.clone(),
                entry,
            }));
        }
        Ok(events)
    }

    /// R19: deletes the tenant's runs (and their reports) that started before `cutoff`.
    async fn purge_runs_before(
        &self,
        tenant: &TenantKey,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
