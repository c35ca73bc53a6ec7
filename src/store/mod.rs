//! dirsync's own records: tenants, the mirror of what was synced, runs and their reports —
//! the `Store` trait and its PostgreSQL implementation; and who may use dirsync, the
//! `AccessStore` (`access.rs`).

pub mod access;
mod access_postgres;
mod approval;
pub mod lease;
mod model;
pub mod postgres;
mod target_tokens;

pub use access::AccessStore;
pub use postgres::PgStore;
pub use target_tokens::PgTokenStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use approval::{ApprovalError, ApprovalRefused, ApprovedRun};
pub use lease::{RunFlush, RunLease};
pub use model::*;

use crate::domain::TenantKey;
use crate::plan::{GroupSummary, Mirror};
use crate::tenant::Tenant;

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
pub trait Store: Send + Sync {
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
    async fn run_entries(&self, run: RunId) -> Result<Vec<ReportEntry>, StoreError>;

    /// R19: deletes the tenant's runs (and their reports) that started before `cutoff`.
    async fn purge_runs_before(
        &self,
        tenant: &TenantKey,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
