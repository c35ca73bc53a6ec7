//! Where users and groups come from: the `DirectorySource` trait (Microsoft Graph in production)
//! and what reading a tenant's selected groups yields.

pub mod graph;
pub mod memory;

use foldhash::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::EntraObjectId;
use crate::plan::{EntraUser, Note, SnapshotUser, SourceSnapshot};

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

/// Hands out one shared copy of each user a read meets, so a user who is in several selected
/// groups is held once in the snapshot, not once per group. A user read twice with different
/// data (changed between two pages) keeps both versions, as the planner expects.
#[derive(Debug, Default)]
pub struct SharedUsers {
    seen: Mutex<HashMap<EntraObjectId, Arc<SnapshotUser>>>,
}

impl SharedUsers {
    /// One group's members in the snapshot's compact form, each replaced by the copy already held
    /// when it is the same user.
    pub fn share(&self, members: Vec<EntraUser>) -> Vec<Arc<SnapshotUser>> {
        let mut sharing = self.sharing();
        // A vector of its own: collecting in place would keep the members' allocation, a user's
        // size for each 8-byte pointer.
        let mut shared = Vec::with_capacity(members.len());
        for user in members {
            shared.push(sharing.share(SnapshotUser::from(user)));
        }
        shared
    }

    /// Shares users one at a time, under one lock: a reader that makes each user compact as
    /// its page is decoded holds no more than a page of them in full (issue 13).
    pub fn sharing(&self) -> Sharing<'_> {
        Sharing {
            seen: self.seen.lock().expect("shared users lock"),
        }
    }
}

/// [`SharedUsers`] held for a batch of users (a page); not held across an await.
pub struct Sharing<'a> {
    seen: std::sync::MutexGuard<'a, HashMap<EntraObjectId, Arc<SnapshotUser>>>,
}

impl Sharing<'_> {
    /// `user`, or the copy already held when it is the same user.
    pub fn share(&mut self, user: SnapshotUser) -> Arc<SnapshotUser> {
        match self.seen.get(user.id()) {
            Some(held) if **held == user => Arc::clone(held),
            _ => {
                let user = Arc::new(user);
                self.seen.insert(user.id().clone(), Arc::clone(&user));
                user
            }
        }
    }
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

/// Issue 14 ("sync people now"): what Entra answered for one person an admin asked for, by
/// object ID or user principal name.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonFetch {
    /// What the admin typed.
    pub asked: String,
    pub outcome: PersonOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PersonOutcome {
    /// The user, and which of the asked groups they are a **direct** member of (R1).
    Found {
        user: EntraUser,
        member_of: Vec<EntraObjectId>,
    },
    /// Graph answered 404 `Request_ResourceNotFound`: no such user (deleted, or mistyped).
    NotFound,
    /// Anything else: the person could not be read, and nothing about them may change.
    Failed { reason: String },
}

/// Reads a tenant's selected groups and their direct user members (R1).
#[async_trait]
pub trait DirectorySource: Send + Sync {
    /// Signs in ahead of a read, so that the read's first request does not wait for a token
    /// (issue 13: a run signs in while it asks the database which groups to read first). An
    /// `Err` is the one the read would have ended with. A source without a sign-in does nothing.
    async fn sign_in(&self) -> Result<(), SourceError> {
        Ok(())
    }

    /// One `GroupFetch` per requested group, in the requested order: Found, Deleted or Failed.
    /// Only a failure that makes every group unreadable is an `Err`.
    async fn fetch_groups(&self, groups: &[EntraObjectId]) -> Result<SourceFetch, SourceError>;

    /// [`fetch_groups`](Self::fetch_groups), calling `group_read` as each group is read, so a
    /// long read shows progress (R21). Sources that read all at once report at the end.
    /// `expected_members` (one per group, 0 when unknown) is how many members the mirror last
    /// held: a source that reads groups side by side starts the largest first. The answer keeps
    /// the order of `groups`.
    async fn fetch_groups_with_progress(
        &self,
        groups: &[EntraObjectId],
        _expected_members: &[usize],
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

    /// Issue 14: reads just these people (object ID or user principal name) and which of
    /// `groups` each is a direct member of, without reading the groups' members.
    async fn fetch_people(
        &self,
        people: &[String],
        _groups: &[EntraObjectId],
    ) -> Result<Vec<PersonFetch>, SourceError> {
        Ok(people
            .iter()
            .map(|asked| PersonFetch {
                asked: asked.clone(),
                outcome: PersonOutcome::Failed {
                    reason: "this directory source cannot read single people".to_owned(),
                },
            })
            .collect())
    }

    /// Issue 14 item 6: when the app's credentials stop working, read from its own registration
    /// (the latest `endDateTime` of its secrets and certificates: until then one still works).
    /// `Ok(None)`: this source cannot tell; `Err`: it may not read the registration (the reason).
    async fn app_credential_expiry(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        Ok(None)
    }
}
