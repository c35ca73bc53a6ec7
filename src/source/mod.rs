//! Where users and groups come from: the `DirectorySource` trait (Microsoft Graph in production)
//! and what reading a tenant's selected groups yields.

pub mod graph;
pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::EntraObjectId;
use crate::plan::{Note, SourceSnapshot};

/// A failure that stops the whole read, not one group: no token, unreachable authority.
/// Per-group problems are `GroupOutcome::Failed` in the snapshot instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Signing in to the tenant failed; the message says what to do about it.
    #[error("{0}")]
    Authentication(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

/// Counters for the report: how much the read cost and how long throttling held it up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchStats {
    pub requests: u64,
    pub throttled: u64,
    pub retries: u64,
    pub waited_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceFetch {
    pub snapshot: SourceSnapshot,
    pub stats: FetchStats,
    /// What the source ignored or had to clean while reading (an object that is not a user, a
    /// member listed twice, control characters): warnings for the run's report.
    pub notes: Vec<Note>,
}

/// R22: a selected group's name and direct user member count, as the preview shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCount {
    pub entra_id: EntraObjectId,
    pub outcome: GroupCountOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GroupCountOutcome {
    Found {
        display_name: String,
        direct_user_members: u64,
    },
    Deleted,
    Failed {
        reason: String,
    },
}

/// R11: what a look-up of a user who left every selected group found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserPresence {
    Enabled,
    Disabled,
    Deleted,
}

/// Reads a tenant's selected groups and their direct user members (R1).
#[async_trait]
pub trait DirectorySource: Send + Sync {
    /// One `GroupFetch` per requested group, in the requested order: Found, Deleted or Failed.
    /// Only a failure that makes every group unreadable is an `Err`.
    async fn fetch_groups(&self, groups: &[EntraObjectId]) -> Result<SourceFetch, SourceError>;

    /// [`fetch_groups`](Self::fetch_groups), calling `group_read` as each group is read, so a
    /// long read shows progress (R21). Sources that read all at once report at the end.
    async fn fetch_groups_with_progress(
        &self,
        groups: &[EntraObjectId],
        group_read: &(dyn Fn() + Send + Sync),
    ) -> Result<SourceFetch, SourceError> {
        let fetched = self.fetch_groups(groups).await;
        groups.iter().for_each(|_| group_read());
        fetched
    }

    /// R22: each group's name and direct user member count, without reading the members.
    async fn count_members(&self, groups: &[EntraObjectId])
    -> Result<Vec<GroupCount>, SourceError>;

    /// R11: whether a user still exists and is enabled, so a report can say why they left.
    async fn user_presence(&self, user: &EntraObjectId) -> Result<UserPresence, SourceError>;
}
