//! Where changes are applied: the `TargetAdapter` trait (HighQ Collaborate, SCIM 2.0) and the
//! error every adapter maps its own failures into.

pub mod highq;
pub mod lenient;
pub mod memory;
pub mod scim;

use async_trait::async_trait;

use crate::domain::{Email, EntraObjectId, TargetGroupId, TargetUserId, UserStatus};
use crate::plan::{FieldChange, GroupKey, TargetUser, UserState};

/// Why a target call failed, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target refused the request as invalid (a validation error with its reference).
    #[error("{0}")]
    Rejected(String),
    /// The thing addressed does not exist in the target.
    #[error("{0}")]
    NotFound(String),
    /// A name or email is already taken.
    #[error("{0}")]
    Conflict(String),
    /// The target could not be reached, timed out, or kept answering 5xx / 429 past the retry cap.
    #[error("{0}")]
    Unavailable(String),
    /// The target refused our credentials; nothing else will work until an operator acts.
    #[error("{0}")]
    Unauthorized(String),
    /// The target answered something we could not understand.
    #[error("{0}")]
    Protocol(String),
}

impl TargetError {
    /// Whether later operations are bound to fail the same way, so the run stops calling.
    pub fn stops_the_run(&self) -> bool {
        matches!(self, Self::Unauthorized(_))
    }
}

/// The outcome of a batched membership change: which users could not be added or removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipOutcome {
    pub failed: Vec<(TargetUserId, TargetError)>,
}

/// A target application that dirsync provisions. Implementations batch and pace their calls
/// as the target's API requires; every method may be called concurrently for different objects.
#[async_trait]
pub trait TargetAdapter: Send + Sync {
    /// A short name for logs and reports ("highq", "scim").
    fn kind(&self) -> &'static str;

    /// Issue 13, item 3: how many operations the applier may keep going at once. `None`: the
    /// target does not pace itself, and the run's `sync.target_concurrency` applies (SCIM, whose
    /// servers announce no rate limit). An adapter that paces its own calls by the target's
    /// rate-limit headers answers with the most calls it lets be in flight.
    fn max_in_flight(&self) -> Option<usize> {
        None
    }

    /// R4: the existing users with these emails (matched case-insensitively). Missing ones are
    /// simply absent from the answer.
    async fn find_users_by_email(&self, emails: &[Email]) -> Result<Vec<TargetUser>, TargetError>;

    /// R4: a new user with the whole managed state, linked to `entra_id`.
    async fn create_user(
        &self,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<TargetUserId, TargetError>;

    /// R4: links an existing user to `entra_id` and sends the whole managed state.
    async fn adopt_user(
        &self,
        id: &TargetUserId,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<(), TargetError>;

    /// R5/R15: sends the changed fields together with the role and status in `state`.
    async fn update_user(
        &self,
        id: &TargetUserId,
        changes: &[FieldChange],
        state: &UserState,
    ) -> Result<(), TargetError>;

    /// R9: activates or deactivates a user.
    async fn set_user_status(
        &self,
        id: &TargetUserId,
        status: UserStatus,
    ) -> Result<(), TargetError>;

    /// Item 12: proves the credential with one cheap call at the start of every run, so a dead
    /// token fails the run ("reconnect …") instead of a run with nothing to do succeeding on it.
    async fn verify_access(&self) -> Result<(), TargetError>;

    /// Item 2: the synced group for `key` named `name` if the target already has it — created by
    /// an earlier attempt whose answer was lost, or by a run killed before recording it — so
    /// creating is idempotent. Only a group linked to the same Entra group (external ID), of the
    /// same kind and with exactly this name counts: never a group someone made by hand.
    async fn find_group(
        &self,
        key: &GroupKey,
        name: &str,
    ) -> Result<Option<TargetGroupId>, TargetError>;

    /// Item 11: the members of a synced group as the target has them now; `None` when the group
    /// is not there any more (deleted by hand, the target restored from an old backup).
    async fn group_members(
        &self,
        id: &TargetGroupId,
    ) -> Result<Option<Vec<TargetUserId>>, TargetError>;

    /// R2: a synced group named `name` with the role in `key`.
    async fn create_group(&self, key: &GroupKey, name: &str) -> Result<TargetGroupId, TargetError>;

    /// R3
    async fn rename_group(
        &self,
        id: &TargetGroupId,
        key: &GroupKey,
        name: &str,
    ) -> Result<(), TargetError>;

    /// R12/R13: renames the group and makes it a system group that dirsync no longer manages.
    async fn convert_to_system_group(
        &self,
        id: &TargetGroupId,
        new_name: &str,
    ) -> Result<(), TargetError>;

    async fn add_members(&self, group: &TargetGroupId, users: &[TargetUserId])
    -> MembershipOutcome;

    async fn remove_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome;
}
