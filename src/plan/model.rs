//! The planner's vocabulary: its inputs (policy, source snapshot, mirror, target lookups) and its
//! output (an ordered list of operations with notes for the report).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::SnapshotUser;
use crate::domain::{
    DeactivationStatus, Email, EntraObjectId, Role, TargetGroupId, TargetUserId, UserStatus,
};

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// What a tenant's configuration tells the planner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPolicy {
    pub selected_groups: Vec<SelectedGroup>,
    pub deactivation_status: DeactivationStatus,
    /// R18: a run that would deactivate more users than this is held; 0 turns the guard off.
    pub deletion_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SelectedGroup {
    pub entra_id: EntraObjectId,
    pub role: Role,
}

/// Everything the source returned for one run: one entry per selected group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    pub groups: Vec<GroupFetch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFetch {
    pub entra_id: EntraObjectId,
    pub outcome: GroupOutcome,
}

/// What reading one selected group from the source came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GroupOutcome {
    /// The group and all its direct user members were read. A user in several groups is one
    /// shared allocation (the source hands out one `Arc` per user and read), so a snapshot holds
    /// each user once however many selected groups they are in, in compact form.
    Found {
        display_name: String,
        members: Vec<Arc<SnapshotUser>>,
    },
    /// The source said the group does not exist (Graph 404 `Request_ResourceNotFound`).
    Deleted,
    /// Anything else: the group could not be read completely and nothing in it may change (R17).
    Failed { reason: String },
}

/// A user as Graph returns it, unvalidated: the planner decides what is usable (R5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraUser {
    pub id: EntraObjectId,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
    pub business_phones: Vec<String>,
    pub job_title: Option<String>,
    /// `None` when Graph did not return it; the user's status is then left as it is.
    pub account_enabled: Option<bool>,
}

impl Default for EntraObjectId {
    fn default() -> Self {
        uuid::Uuid::nil().into()
    }
}

/// dirsync's record of what it applied before: the synced groups with their members, the
/// synced users with the state last sent, and the groups it converted to system groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    pub groups: Vec<MirrorGroup>,
    pub users: Vec<MirrorUser>,
    /// R12: the latest conversion of each Entra group that no longer has a synced group, so a
    /// group deleted in Entra but still selected is told apart from a wrong group ID.
    #[serde(default)]
    pub converted: Vec<ConvertedGroup>,
}

/// The mirror's users by Entra id, as positions in [`Mirror::users`]: built once a run and
/// shared by the look-ups and the planner (issue 13: each built its own, 100,000 entries).
#[derive(Debug, Default)]
pub struct MirrorIndex(foldhash::HashMap<EntraObjectId, u32>);

impl MirrorIndex {
    pub fn new(mirror: &Mirror) -> Self {
        Self(
            mirror
                .users
                .iter()
                .zip(0u32..)
                .map(|(user, position)| (user.entra_id.clone(), position))
                .collect(),
        )
    }

    /// The synced user with this id, if `mirror` (the one indexed) has one.
    pub fn user<'m>(&self, mirror: &'m Mirror, id: &EntraObjectId) -> Option<&'m MirrorUser> {
        let position = usize::try_from(*self.0.get(id)?).ok()?;
        // Checked, so an index of another mirror can only miss, never answer wrongly.
        mirror
            .users
            .get(position)
            .filter(|user| &user.entra_id == id)
    }
}

/// A former synced group that dirsync converted to a system group (R12, R13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertedGroup {
    pub key: GroupKey,
    /// The name it had as a synced group.
    pub name: String,
    /// The name it was renamed to, `{name}_{epoch ms}`.
    pub system_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorGroup {
    pub key: GroupKey,
    pub target_id: TargetGroupId,
    pub name: String,
    pub members: Vec<EntraObjectId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorUser {
    pub entra_id: EntraObjectId,
    pub target_id: TargetUserId,
    pub state: UserState,
}

/// The managed state of a synced user: the mirrored fields, the role and the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub fields: UserFields,
    pub role: Role,
    pub status: UserStatus,
}

/// The target fields that mirror Entra (R5). A tenant holds one per user in the mirror, and an
/// initial sync one more per user in its plan: a text of up to 24 bytes (most names, titles and
/// phone numbers) is held inline, without an allocation of its own (issue 13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFields {
    pub email: Email,
    pub first_name: CompactString,
    pub last_name: CompactString,
    pub phone: Option<CompactString>,
    pub job_title: Option<CompactString>,
}

/// A user that exists in the target, as the adapter found it by email (R4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetUser {
    pub id: TargetUserId,
    pub fields: UserFields,
    pub status: UserStatus,
}

/// Target users found by email for the addresses [`emails_to_look_up`](super::emails_to_look_up)
/// asked for. An address missing here does not exist in the target.
#[derive(Debug, Clone, Default)]
pub struct TargetLookups {
    pub users_by_email: HashMap<Email, TargetUser>,
}

impl TargetLookups {
    pub fn new(users: impl IntoIterator<Item = TargetUser>) -> Self {
        Self {
            users_by_email: users
                .into_iter()
                .map(|user| (user.fields.email.clone(), user))
                .collect(),
        }
    }
}

/// Everything one call of [`plan`](super::plan) looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub policy: &'a TenantPolicy,
    pub snapshot: &'a SourceSnapshot,
    pub mirror: &'a Mirror,
    pub target: &'a TargetLookups,
    pub now: DateTime<Utc>,
    /// R18: an admin approved a held run that would have deactivated this many users; this run
    /// may deactivate up to that many without being held. `None`: no approval, the guard applies.
    pub approved_deactivations: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// A synced group's identity: the Entra group and the role it was synced with. A role change
/// (R13) therefore means a different synced group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    pub entra_id: EntraObjectId,
    pub role: Role,
}

/// Who an operation or a note is about, as the report shows them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserLabel {
    pub entra_id: EntraObjectId,
    /// Shared, not copied: one user's label appears in each operation and membership batch
    /// that names them (issue 13, a 100,000-user plan held each address several times).
    pub email: Arc<str>,
    pub name: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedField {
    FirstName,
    LastName,
    Email,
    Phone,
    JobTitle,
    Role,
    Status,
}

impl ManagedField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstName => "first name",
            Self::LastName => "last name",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::JobTitle => "job title",
            Self::Role => "role",
            Self::Status => "status",
        }
    }
}

/// One field's old → new value, for the target call and the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: ManagedField,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversionReason {
    DeletedInEntra,
    Deselected,
    RoleChanged,
}

impl ConversionReason {
    pub fn describe(self) -> &'static str {
        match self {
            Self::DeletedInEntra => "the group was deleted in Entra",
            Self::Deselected => "the group is no longer selected for sync",
            Self::RoleChanged => "the group's role changed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeactivationReason {
    DisabledInEntra,
    RemovedFromSyncedGroups,
    /// Set by the shell when a look-up shows the user no longer exists (R11).
    DeletedInEntra,
}

impl DeactivationReason {
    pub fn describe(self) -> &'static str {
        match self {
            Self::DisabledInEntra => "disabled in Entra",
            Self::RemovedFromSyncedGroups => "removed from synced groups",
            Self::DeletedInEntra => "deleted in Entra",
        }
    }
}

/// One change to the target. A plan's operations are ordered so that each one's prerequisites
/// come first: groups are converted before a same-named group is created, users exist and are
/// active before they are added to groups, members are removed before a group is converted and
/// before anyone is deactivated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// R12/R13: rename to `{name}_{epoch ms}` and stop managing the group.
    ConvertToSystemGroup {
        group: GroupKey,
        target_id: TargetGroupId,
        old_name: String,
        new_name: String,
        reason: ConversionReason,
    },
    /// R2
    CreateGroup { group: GroupKey, name: String },
    /// R3
    RenameGroup {
        group: GroupKey,
        target_id: TargetGroupId,
        old_name: String,
        new_name: String,
    },
    /// R4: no target user has the email.
    /// The state is boxed in each user operation that carries one, so an operation is small: an
    /// initial sync's plan is 100,000 of them (issue 13).
    CreateUser {
        user: UserLabel,
        state: Box<UserState>,
    },
    /// R4: an existing target user with the email is linked and its managed state sent (R9: a
    /// disabled user is adopted deactivated).
    AdoptUser {
        user: UserLabel,
        target_id: TargetUserId,
        changes: Vec<FieldChange>,
        state: Box<UserState>,
        /// R9a: the departed synced user this target user was linked to; the link moves to `user`
        /// with the memberships the mirror records for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        releases: Option<Box<UserLabel>>,
    },
    /// R5/R7/R14/R15: `changes` lists what differs from the mirror (it may include the role and
    /// status); `state` is the whole managed state after the change. The target is sent the
    /// changed fields together with the role and status of `state`, which dirsync always asserts
    /// for a synced user it updates.
    UpdateUser {
        user: UserLabel,
        target_id: TargetUserId,
        changes: Vec<FieldChange>,
        state: Box<UserState>,
    },
    /// R9: a status change alone.
    ActivateUser {
        user: UserLabel,
        target_id: TargetUserId,
        from: UserStatus,
    },
    /// R9/R10/R12: a status change alone.
    DeactivateUser {
        user: UserLabel,
        target_id: TargetUserId,
        to: UserStatus,
        reason: DeactivationReason,
    },
    AddMembers {
        group: GroupKey,
        group_name: String,
        users: Vec<UserLabel>,
    },
    RemoveMembers {
        group: GroupKey,
        group_name: String,
        users: Vec<UserLabel>,
    },
}

impl Op {
    /// How many changes the operation makes, and so how many report lines and mirror rows it
    /// records: one, but a membership batch one per member. A flush is sized by this (issue 13:
    /// an initial sync's membership batches would otherwise record 100,000 lines at once).
    pub fn changes(&self) -> usize {
        match self {
            Op::AddMembers { users, .. } | Op::RemoveMembers { users, .. } => users.len().max(1),
            _ => 1,
        }
    }

    /// Whether the operation deactivates a user, directly or as part of an update (R18 counts these).
    pub fn deactivates(&self) -> bool {
        match self {
            Op::DeactivateUser { .. } => true,
            Op::UpdateUser { changes, .. } | Op::AdoptUser { changes, .. } => {
                status_change(changes).is_some_and(|to| to != "active")
            }
            _ => false,
        }
    }

    /// Whether the operation activates a user, directly or as part of an update.
    pub fn activates(&self) -> bool {
        match self {
            Op::ActivateUser { .. } => true,
            Op::UpdateUser { changes, .. } | Op::AdoptUser { changes, .. } => {
                status_change(changes) == Some("active")
            }
            _ => false,
        }
    }
}

fn status_change(changes: &[FieldChange]) -> Option<&str> {
    changes
        .iter()
        .find(|c| c.field == ManagedField::Status)
        .and_then(|c| c.new.as_deref())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// What a note is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    User(UserLabel),
    Group {
        entra_id: EntraObjectId,
        /// The role it is selected with, for its R2 label.
        role: Role,
        name: String,
    },
    /// The run as a whole (a tenant that selects no group).
    Run,
}

/// A warning or error the planner found: it becomes a line in the run's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub subject: Subject,
    pub severity: Severity,
    pub message: String,
}

/// How a selected (or formerly selected) group came out of planning, for the report's Groups sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    Found,
    Deleted,
    Failed,
    Deselected,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
            Self::Deselected => "deselected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub entra_id: EntraObjectId,
    pub name: String,
    pub role: Role,
    /// Direct user members read from the source; `None` when the group could not be read.
    pub members_seen: Option<usize>,
    pub status: GroupStatus,
    pub message: Option<String>,
}

impl GroupSummary {
    /// The group's name with its R2 label (`Sales [Synced Group]`), as reports show it.
    pub fn label(&self) -> String {
        crate::domain::GroupKind::synced(self.role).label(&self.name)
    }
}

/// R18: why a run is held instead of applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub deactivations: usize,
    pub threshold: u32,
    /// The deactivations an admin approved for this run, when the fresh plan wants more.
    #[serde(default)]
    pub approved: Option<usize>,
}

impl Hold {
    pub fn describe(&self) -> String {
        match self.approved {
            None => format!(
                "held: the run would deactivate {} users, more than the tenant's threshold of {}; \
                 an admin must approve it before anything is applied",
                self.deactivations, self.threshold
            ),
            Some(approved) => format!(
                "held again: the run would deactivate {} users, more than the {approved} that were \
                 approved; an admin must approve this run before anything is applied",
                self.deactivations
            ),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCounts {
    pub groups_created: usize,
    pub groups_renamed: usize,
    pub groups_converted: usize,
    pub users_created: usize,
    pub users_adopted: usize,
    pub users_updated: usize,
    pub users_activated: usize,
    pub users_deactivated: usize,
    pub memberships_added: usize,
    pub memberships_removed: usize,
    pub warnings: usize,
    pub errors: usize,
}

/// The planner's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub notes: Vec<Note>,
    pub groups: Vec<GroupSummary>,
    /// Set when the deletion guard holds the run: `ops` then lists what would have happened.
    pub hold: Option<Hold>,
}

impl PlanCounts {
    /// Counts one operation: planned, or (by the shell) applied.
    pub fn add_op(&mut self, op: &Op) {
        match op {
            Op::ConvertToSystemGroup { .. } => self.groups_converted += 1,
            Op::CreateGroup { .. } => self.groups_created += 1,
            Op::RenameGroup { .. } => self.groups_renamed += 1,
            Op::CreateUser { .. } => self.users_created += 1,
            Op::AdoptUser { .. } => self.users_adopted += 1,
            Op::UpdateUser { changes, .. } => {
                if changes.iter().any(|c| c.field != ManagedField::Status) {
                    self.users_updated += 1;
                }
            }
            Op::AddMembers { users, .. } => self.memberships_added += users.len(),
            Op::RemoveMembers { users, .. } => self.memberships_removed += users.len(),
            Op::ActivateUser { .. } | Op::DeactivateUser { .. } => {}
        }
        if op.activates() && !matches!(op, Op::AdoptUser { .. }) {
            self.users_activated += 1;
        }
        if op.deactivates() {
            self.users_deactivated += 1;
        }
    }

    /// Adds another tally to this one.
    pub fn add(&mut self, other: &PlanCounts) {
        self.groups_created += other.groups_created;
        self.groups_renamed += other.groups_renamed;
        self.groups_converted += other.groups_converted;
        self.users_created += other.users_created;
        self.users_adopted += other.users_adopted;
        self.users_updated += other.users_updated;
        self.users_activated += other.users_activated;
        self.users_deactivated += other.users_deactivated;
        self.memberships_added += other.memberships_added;
        self.memberships_removed += other.memberships_removed;
        self.warnings += other.warnings;
        self.errors += other.errors;
    }
}

impl Plan {
    pub fn counts(&self) -> PlanCounts {
        let mut counts = PlanCounts::default();
        for op in &self.ops {
            counts.add_op(op);
        }
        for note in &self.notes {
            match note.severity {
                Severity::Warning => counts.warnings += 1,
                Severity::Error => counts.errors += 1,
                Severity::Info => {}
            }
        }
        counts
    }

    pub fn has_errors(&self) -> bool {
        self.notes.iter().any(|n| n.severity == Severity::Error)
    }

    /// Whether applying the plan would write anything to the target.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
