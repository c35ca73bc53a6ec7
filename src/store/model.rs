//! The records the store keeps about runs and reports, and the mirror changes a run hands it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{EntraObjectId, TargetGroupId, TenantKey};
use crate::plan::{GroupKey, MirrorUser, PlanCounts, Severity};
use crate::source::FetchStats;

pub type RunId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Automatic,
    Manual,
    /// Issue 14: a few people synced now by an admin ("sync people now"); only they are touched.
    OnDemand,
}

impl TriggerKind {
    /// As the report shows it (R19).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "Automatic",
            Self::Manual => "Manual",
            Self::OnDemand => "On demand",
        }
    }
}

/// What started a run, and who, for a forced one (R19, R21).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub by: Option<String>,
}

impl Trigger {
    pub fn automatic() -> Self {
        Self {
            kind: TriggerKind::Automatic,
            by: None,
        }
    }

    pub fn manual(by: impl Into<String>) -> Self {
        Self {
            kind: TriggerKind::Manual,
            by: Some(by.into()),
        }
    }

    /// Issue 14: a run of a few people picked by `by`.
    pub fn on_demand(by: impl Into<String>) -> Self {
        Self {
            kind: TriggerKind::OnDemand,
            by: Some(by.into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    CompletedWithErrors,
    Failed,
    Held,
    /// R18: a held run an admin rejected: nothing was applied, and it can no longer be approved.
    Rejected,
    /// The process running it stopped (killed, lost its node, shut down past its grace) or lost
    /// its lease; what it recorded before is kept, and the next run picks up from there.
    Interrupted,
    /// Issue 14: a midnight the tenant did not run (paused, the service paused, or quarantined);
    /// the run's message says why. Nothing was read or applied.
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::CompletedWithErrors => "completed with errors",
            Self::Failed => "failed",
            Self::Held => "held",
            Self::Rejected => "rejected",
            Self::Interrupted => "interrupted",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Succeeded,
            Self::CompletedWithErrors,
            Self::Failed,
            Self::Held,
            Self::Rejected,
            Self::Interrupted,
            Self::Skipped,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// How a run is to be carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// R18: the approval of a held run that this run carries out.
    pub approval: Option<Approval>,
}

/// R18: an admin's approval of a held run, carried out by one new run that plans afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub held_run: RunId,
    /// The deactivations the held run would have made: the new run may make up to this many.
    pub deactivations: u64,
}

#[derive(Debug, Clone)]
pub enum RunStart {
    /// The new run, with its lease on the tenant: keep it until the run finishes.
    Started(std::sync::Arc<dyn super::RunLease>),
    /// R21: a run is already in progress for the tenant; this is it.
    AlreadyRunning(RunId),
}

impl RunStart {
    /// The run started, or the one already in progress.
    pub fn run_id(&self) -> RunId {
        match self {
            Self::Started(lease) => lease.run_id(),
            Self::AlreadyRunning(id) => *id,
        }
    }
}

impl PartialEq for RunStart {
    fn eq(&self, other: &Self) -> bool {
        matches!(
            (self, other),
            (Self::Started(_), Self::Started(_))
                | (Self::AlreadyRunning(_), Self::AlreadyRunning(_))
        ) && self.run_id() == other.run_id()
    }
}

/// The figures a finished run leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// What the plan intended (for a held run: what it would have done).
    pub planned: PlanCounts,
    /// What the target confirmed; its warnings and errors are the report's warning and error
    /// lines (the plan's, and every operation that failed or was skipped).
    #[serde(default)]
    pub applied: PlanCounts,
    pub operations_applied: usize,
    pub operations_failed: usize,
    pub source: FetchStats,
}

impl RunSummary {
    /// How the planned counts are labelled where they are shown beside the applied ones: for a
    /// run that was held, failed, stopped or is still running; `None` when everything planned was
    /// applied, so the applied counts say it all (R19).
    pub fn planned_label(&self, status: RunStatus) -> Option<&'static str> {
        match status {
            RunStatus::Held => Some("planned (held: nothing was applied)"),
            RunStatus::Rejected => Some("planned (held, then rejected: nothing was applied)"),
            RunStatus::Failed => Some("planned (the run failed: not all of it was applied)"),
            RunStatus::Interrupted => {
                Some("planned (the run was interrupted: not all of it was applied)")
            }
            RunStatus::Running => Some("planned (the run is in progress)"),
            // Nothing was read or planned: the message says why.
            RunStatus::Skipped => None,
            RunStatus::Succeeded | RunStatus::CompletedWithErrors if self.operations_failed > 0 => {
                Some("planned (not all of it was applied)")
            }
            RunStatus::Succeeded | RunStatus::CompletedWithErrors => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFinish {
    pub status: RunStatus,
    pub summary: RunSummary,
    /// One sentence for the run as a whole, e.g. why it failed or was held.
    pub message: Option<String>,
}

/// R21: how far a run in progress has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    /// "reading Entra", "planning", "applying", …
    pub stage: String,
    pub done: i64,
    pub total: i64,
}

/// Which of a tenant's runs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    pub trigger: Option<TriggerKind>,
    pub status: Option<RunStatus>,
    /// Runs that started at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Runs that started before this instant.
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub tenant: TenantKey,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub summary: Option<RunSummary>,
    pub message: Option<String>,
    pub options: RunOptions,
    pub progress: Option<RunProgress>,
    /// When the process running it last said it was alive.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// What a report line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    User,
    Group,
    Run,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Run => "run",
        }
    }
}

/// One line of a run's report (R19): an action taken with old → new values, a warning or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEntry {
    pub subject: SubjectKind,
    pub entra_id: Option<EntraObjectId>,
    /// The user's email or the group's name.
    pub email: Option<String>,
    pub name: Option<String>,
    /// "created", "updated", "added to group", "error", …
    pub action: String,
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub severity: Severity,
    pub message: Option<String>,
}

/// What a run applied successfully, for the mirror. Users are recorded whole (their state after
/// the run); memberships and groups as changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorChanges {
    pub groups_created: Vec<CreatedGroup>,
    pub groups_renamed: Vec<(GroupKey, String)>,
    /// The synced groups converted to system groups, with their new names (R12, R13).
    pub groups_converted: Vec<(GroupKey, String)>,
    pub users: Vec<MirrorUser>,
    pub members_added: Vec<(GroupKey, EntraObjectId)>,
    pub members_removed: Vec<(GroupKey, EntraObjectId)>,
    /// R9a: (departed user, new user) — the departed user's link to its target user is released
    /// and its memberships become the new user's.
    pub users_released: Vec<(EntraObjectId, EntraObjectId)>,
    /// Item 11: synced groups the target has lost (deleted by hand, restored from a backup):
    /// forgotten, with their memberships, so the run creates them again.
    pub groups_forgotten: Vec<GroupKey>,
    /// Item 11: synced users the target has lost: forgotten, so the run creates or adopts them.
    pub users_forgotten: Vec<EntraObjectId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedGroup {
    pub key: GroupKey,
    pub target_id: TargetGroupId,
    pub name: String,
}

impl MirrorChanges {
    pub fn is_empty(&self) -> bool {
        self.groups_created.is_empty()
            && self.groups_renamed.is_empty()
            && self.groups_converted.is_empty()
            && self.users.is_empty()
            && self.members_added.is_empty()
            && self.members_removed.is_empty()
            && self.users_released.is_empty()
            && self.groups_forgotten.is_empty()
            && self.users_forgotten.is_empty()
    }
}
