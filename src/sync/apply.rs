//! The applier: carries out a plan through a target adapter, phase by phase, and reports what
//! happened. Only operations that succeeded reach the mirror, so a failed one is planned again
//! next run; one failure never stops the others.

use foldhash::{HashMap, HashSet, HashSetExt as _};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::entries::{failure_entry, op_entries};
use crate::domain::{EntraObjectId, TargetGroupId, TargetUserId};
use crate::plan::{GroupKey, Mirror, MirrorUser, Op, PlanCounts, UserLabel, UserState};
use crate::store::{CreatedGroup, MirrorChanges, ReportEntry};
use crate::target::{TargetAdapter, TargetError};

/// What applying one phase produced: report lines, mirror changes and tallies.
#[derive(Debug, Default)]
pub struct PhaseResult {
    pub entries: Vec<ReportEntry>,
    pub mirror: MirrorChanges,
    pub applied: usize,
    pub failed: usize,
    /// What the target confirmed, counted as the plan counts (memberships: the users added or
    /// removed).
    pub applied_counts: PlanCounts,
}

/// The operations of a plan that may run side by side: consecutive operations of one phase.
fn phase_of(op: &Op) -> u8 {
    match op {
        Op::RemoveMembers { .. } | Op::ConvertToSystemGroup { .. } => 0,
        Op::CreateGroup { .. } | Op::RenameGroup { .. } => 1,
        Op::CreateUser { .. }
        | Op::AdoptUser { .. }
        | Op::UpdateUser { .. }
        | Op::ActivateUser { .. } => 2,
        Op::AddMembers { .. } => 3,
        Op::DeactivateUser { .. } => 5,
    }
}

/// Splits a plan into phases that must run one after the other. Within a phase, operations are
/// independent. Removals before a conversion belong with it (phase 0 runs in plan order).
pub fn phases(ops: &[Op]) -> Vec<&[Op]> {
    let mut result = Vec::new();
    let mut start = 0;
    for i in 1..=ops.len() {
        let boundary = i == ops.len() || phase_of(&ops[i]) != phase_of(&ops[start]);
        if boundary {
            result.push(&ops[start..i]);
            start = i;
        }
    }
    result
}

/// Whether the operations of a phase must run strictly in order (removals then conversions).
fn sequential(phase: &[Op]) -> bool {
    phase
        .iter()
        .any(|op| matches!(op, Op::ConvertToSystemGroup { .. }))
}

/// How many operations from the start of `ops` one flush takes: at least one, and no more once
/// they make `max_changes` changes ([`Op::changes`]).
fn within_changes(ops: &[Op], max_changes: usize) -> usize {
    let mut changes = 0;
    ops.iter()
        .take_while(|op| {
            let admit = changes < max_changes;
            changes += op.changes();
            admit
        })
        .count()
        .max(ops.len().min(1))
}

/// Whether the target still answers: a refused credential, or too many calls in a row that found
/// it unavailable, stop the run's calls.
#[derive(Debug, Clone)]
struct TargetHealth {
    /// Set once the target refuses our credentials, or stops answering: the rest of the run is
    /// skipped (and planned again next run).
    stopped: Option<String>,
    /// Target calls that failed as unavailable in a row; reset by any success.
    unavailable_in_a_row: usize,
    max_unavailable_in_a_row: usize,
}

impl TargetHealth {
    /// Takes in one call's outcome; `true` when it stops the run's calls.
    fn observe(&mut self, outcome: &OpResult) -> bool {
        if let (Some(err), None) = (&outcome.fatal, &self.stopped) {
            self.stopped = Some(format!("the target refused dirsync's credentials ({err})"));
        }
        match &outcome.unavailable {
            Some(err) => {
                self.unavailable_in_a_row += 1;
                if self.unavailable_in_a_row >= self.max_unavailable_in_a_row
                    && self.stopped.is_none()
                {
                    self.stopped = Some(format!(
                        "the target stopped answering ({} calls in a row failed; the last: {err})",
                        self.unavailable_in_a_row
                    ));
                }
            }
            None if outcome.applied => self.unavailable_in_a_row = 0,
            None => {}
        }
        self.stopped.is_some()
    }
}

pub struct Applier {
    target: Arc<dyn TargetAdapter>,
    concurrency: usize,
    group_ids: HashMap<GroupKey, TargetGroupId>,
    /// The target ids of the users the plan's membership changes name: the synced ones from
    /// the mirror, the new ones as they are created. Only theirs: a night with no change never
    /// copies every synced user's id (issue 13: 15 ms of a 100,000-user no-change run).
    user_ids: HashMap<EntraObjectId, TargetUserId>,
    /// The mirror rows of the users whose status the plan changes (written back with the new
    /// status), kept current as earlier phases update them. Only theirs: a copy of every synced
    /// user would double the mirror's memory.
    users: HashMap<EntraObjectId, MirrorUser>,
    status_changes: HashSet<EntraObjectId>,
    /// Groups some of whose members could not be removed: they are not converted this run.
    removal_failed: HashSet<GroupKey>,
    /// Item 1: Entra groups whose synced group could not be converted (R12/R13): the group for
    /// the new role waits, since one synced group per Entra group may exist at a time.
    conversion_failed: HashSet<EntraObjectId>,
    health: TargetHealth,
}

/// The result of one operation, before it is folded into the phase.
struct OpResult {
    entries: Vec<ReportEntry>,
    mirror: MirrorChanges,
    /// Whether the whole operation succeeded (for a membership batch: every user in it).
    applied: bool,
    fatal: Option<TargetError>,
    /// The call failed because the target could not be reached (or kept failing).
    unavailable: Option<TargetError>,
    created_user: Option<(EntraObjectId, TargetUserId)>,
    created_group: Option<(GroupKey, TargetGroupId)>,
    removal_failed: Option<GroupKey>,
    conversion_failed: Option<EntraObjectId>,
    counts: PlanCounts,
}

impl OpResult {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
            mirror: MirrorChanges::default(),
            applied: false,
            fatal: None,
            unavailable: None,
            created_user: None,
            created_group: None,
            removal_failed: None,
            conversion_failed: None,
            counts: PlanCounts::default(),
        }
    }
}

impl Applier {
    /// `max_unavailable_in_a_row` failed calls in a row with the target unavailable stop the run's
    /// calls: an outage then costs a few timeouts, not one per remaining operation. `concurrency`
    /// is the operations in flight at once, unless the target paces itself
    /// ([`TargetAdapter::max_in_flight`]): its own limit then applies.
    pub fn new(
        target: Arc<dyn TargetAdapter>,
        mirror: &Mirror,
        ops: &[Op],
        concurrency: usize,
        max_unavailable_in_a_row: usize,
    ) -> Self {
        let concurrency = target.max_in_flight().unwrap_or(concurrency).max(1);
        let status_changes: HashSet<EntraObjectId> = ops
            .iter()
            .filter_map(|op| match op {
                Op::ActivateUser { user, .. } | Op::DeactivateUser { user, .. } => {
                    Some(user.entra_id.clone())
                }
                _ => None,
            })
            .collect();
        // An initial sync's memberships name no synced user: its 100,000 are not gathered.
        let members: HashSet<&EntraObjectId> = if mirror.users.is_empty() {
            HashSet::new()
        } else {
            ops.iter()
                .flat_map(|op| match op {
                    Op::AddMembers { users, .. } | Op::RemoveMembers { users, .. } => {
                        users.as_slice()
                    }
                    _ => &[],
                })
                .map(|user| &user.entra_id)
                .collect()
        };
        let user_ids = mirror
            .users
            .iter()
            .filter(|u| members.contains(&u.entra_id))
            .map(|u| (u.entra_id.clone(), u.target_id.clone()))
            .collect();
        drop(members);
        Self {
            target,
            concurrency,
            group_ids: mirror
                .groups
                .iter()
                .map(|g| (g.key.clone(), g.target_id.clone()))
                .collect(),
            user_ids,
            users: mirror
                .users
                .iter()
                .filter(|u| status_changes.contains(&u.entra_id))
                .map(|u| (u.entra_id.clone(), u.clone()))
                .collect(),
            status_changes,
            removal_failed: HashSet::new(),
            conversion_failed: HashSet::new(),
            health: TargetHealth {
                stopped: None,
                unavailable_in_a_row: 0,
                max_unavailable_in_a_row: max_unavailable_in_a_row.max(1),
            },
        }
    }

    /// Why the run stopped calling the target, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.health.stopped.as_deref()
    }

    /// Applies one phase (see [`phases`]) whole and returns what it produced.
    pub async fn apply_phase(&mut self, phase: &[Op]) -> PhaseResult {
        let (result, _) = self
            .apply_some(phase, usize::MAX, std::time::Duration::MAX, &|| false)
            .await;
        result
    }

    /// Applies the start of `ops` (operations of one phase, see [`phases`]) until operations
    /// making `max_changes` changes were taken ([`Op::changes`]: a membership batch counts each
    /// member) or `max_time` has passed (at least one is taken), so the caller can
    /// record them in a small flush, or `fenced` answers true (the run lost its lease: calls in
    /// flight finish, no new one starts). Returns what they produced and how many were taken.
    ///
    /// Independent operations run as one continuous stream with `concurrency` calls in flight:
    /// a slow call holds only its own slot, never a whole wave (issue 13). Their results are
    /// folded in plan order, so the report reads the same whatever order the answers came in.
    pub async fn apply_some(
        &mut self,
        ops: &[Op],
        max_changes: usize,
        max_time: std::time::Duration,
        fenced: &(dyn Fn() -> bool + Sync),
    ) -> (PhaseResult, usize) {
        let max_changes = max_changes.max(1);
        let mut result = PhaseResult::default();
        if let Some(reason) = &self.health.stopped {
            let taken = within_changes(ops, max_changes);
            for op in &ops[..taken] {
                result.failed += 1;
                result.entries.extend(skipped_entries(op, reason));
            }
            return (result, taken);
        }
        let taken = if sequential(ops) {
            self.apply_in_order(ops, max_changes, max_time, fenced, &mut result)
                .await
        } else {
            let (outcomes, health) = self
                .apply_streaming(ops, max_changes, max_time, fenced)
                .await;
            self.health = health;
            let taken = outcomes.len();
            for outcome in outcomes {
                self.fold(outcome, &mut result);
            }
            taken
        };
        (result, taken)
    }

    /// Removals then conversions, one call at a time: a conversion waits for its group's
    /// removals, and is not attempted if one failed.
    async fn apply_in_order(
        &mut self,
        ops: &[Op],
        max_changes: usize,
        max_time: std::time::Duration,
        fenced: &(dyn Fn() -> bool + Sync),
        result: &mut PhaseResult,
    ) -> usize {
        let started = std::time::Instant::now();
        let limit = within_changes(ops, max_changes);
        let mut taken = 0;
        while taken < limit && (taken == 0 || (started.elapsed() < max_time && !fenced())) {
            let op = &ops[taken];
            match self.health.stopped.clone() {
                Some(reason) => {
                    result.failed += 1;
                    result.entries.extend(skipped_entries(op, &reason));
                }
                None => {
                    let outcome = self.apply_op(op).await;
                    self.health.observe(&outcome);
                    self.fold(outcome, result);
                }
            }
            taken += 1;
        }
        taken
    }

    /// Runs independent operations from the start of `ops`, `concurrency` at a time, admitting
    /// new ones until they make `max_changes` changes, `max_time` or a stop; returns their
    /// results in plan order and the target's health after them. What was admitted is always a
    /// prefix of `ops`.
    async fn apply_streaming(
        &self,
        ops: &[Op],
        max_changes: usize,
        max_time: std::time::Duration,
        fenced: &(dyn Fn() -> bool + Sync),
    ) -> (Vec<OpResult>, TargetHealth) {
        let started = std::time::Instant::now();
        let mut health = self.health.clone();
        let mut outcomes: Vec<(usize, OpResult)> = Vec::new();
        // A plain loop over `FuturesUnordered` rather than stream combinators: closures that
        // return futures would tie their lifetimes too tightly for the run to be spawned.
        let mut in_flight = FuturesUnordered::new();
        let limit = within_changes(ops, max_changes);
        let mut admitted = 0;
        loop {
            while in_flight.len() < self.concurrency
                && admitted < limit
                && health.stopped.is_none()
                && (admitted == 0 || (started.elapsed() < max_time && !fenced()))
            {
                in_flight.push(self.apply_indexed(admitted, &ops[admitted]));
                admitted += 1;
            }
            // Calls in flight finish after a stop; no new one starts.
            let Some((i, outcome)) = in_flight.next().await else {
                break;
            };
            health.observe(&outcome);
            outcomes.push((i, outcome));
        }
        outcomes.sort_unstable_by_key(|(i, _)| *i);
        (outcomes.into_iter().map(|(_, o)| o).collect(), health)
    }

    /// Folds one operation's result into the applier's state and the phase's result.
    fn fold(&mut self, outcome: OpResult, result: &mut PhaseResult) {
        if outcome.applied {
            result.applied += 1;
        } else {
            result.failed += 1;
        }
        if let Some((entra_id, target_id)) = outcome.created_user {
            self.user_ids.insert(entra_id, target_id);
        }
        if let Some((key, target_id)) = outcome.created_group {
            self.group_ids.insert(key, target_id);
        }
        if let Some(key) = outcome.removal_failed {
            self.removal_failed.insert(key);
        }
        if let Some(entra_id) = outcome.conversion_failed {
            self.conversion_failed.insert(entra_id);
        }
        for user in &outcome.mirror.users {
            if self.status_changes.contains(&user.entra_id) {
                self.users.insert(user.entra_id.clone(), user.clone());
            }
        }
        result.applied_counts.add(&outcome.counts);
        result.entries.extend(outcome.entries);
        merge(&mut result.mirror, outcome.mirror);
    }

    fn resolve_users<'u>(
        &self,
        users: &'u [UserLabel],
    ) -> (Vec<(&'u UserLabel, TargetUserId)>, Vec<&'u UserLabel>) {
        let mut resolved = Vec::new();
        let mut missing = Vec::new();
        for user in users {
            match self.user_ids.get(&user.entra_id) {
                Some(id) => resolved.push((user, id.clone())),
                None => missing.push(user),
            }
        }
        (resolved, missing)
    }

    fn user_after(
        &self,
        entra_id: &EntraObjectId,
        target_id: &TargetUserId,
        state: UserState,
    ) -> MirrorUser {
        MirrorUser {
            entra_id: entra_id.clone(),
            target_id: target_id.clone(),
            state,
        }
    }

    fn status_changed(
        &self,
        entra_id: &EntraObjectId,
        status: crate::domain::UserStatus,
    ) -> Option<MirrorUser> {
        self.users.get(entra_id).map(|user| {
            let mut user = user.clone();
            user.state.status = status;
            user
        })
    }

    async fn apply_indexed(&self, index: usize, op: &Op) -> (usize, OpResult) {
        (index, self.apply_op(op).await)
    }

    async fn apply_op(&self, op: &Op) -> OpResult {
        let started = std::time::Instant::now();
        let out = self.call_target(op).await;
        let kind = op_kind(op);
        let outcome = if out.applied { "applied" } else { "failed" };
        metrics::counter!("dirsync_operations_total", "kind" => kind, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("dirsync_target_call_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        out
    }

    async fn call_target(&self, op: &Op) -> OpResult {
        let mut out = OpResult::new();
        let call: Result<(), TargetError> = match op {
            Op::ConvertToSystemGroup {
                group,
                target_id,
                new_name,
                ..
            } => {
                let converted = if self.removal_failed.contains(group) {
                    Err(TargetError::Rejected(
                        "some members could not be removed first; the conversion is retried next run".to_owned(),
                    ))
                } else {
                    self.target
                        .convert_to_system_group(target_id, new_name)
                        .await
                        .map(|()| {
                            out.mirror
                                .groups_converted
                                .push((group.clone(), new_name.clone()));
                        })
                };
                if converted.is_err() {
                    out.conversion_failed = Some(group.entra_id.clone());
                }
                converted
            }
            Op::CreateGroup { group, name } => {
                if self.conversion_failed.contains(&group.entra_id) {
                    Err(TargetError::Rejected(
                        "waits: the group synced for this Entra group's previous role could not \
                         be converted (see its line); this group is created once that \
                         conversion succeeds"
                            .to_owned(),
                    ))
                } else {
                    self.create_group_once(group, name)
                        .await
                        .map(|(target_id, found)| {
                            if found {
                                out.entries.push(found_entry(op, &target_id));
                            }
                            out.mirror.groups_created.push(CreatedGroup {
                                key: group.clone(),
                                target_id: target_id.clone(),
                                name: name.clone(),
                            });
                            out.created_group = Some((group.clone(), target_id));
                        })
                }
            }
            Op::RenameGroup {
                group,
                target_id,
                new_name,
                ..
            } => self
                .target
                .rename_group(target_id, group, new_name)
                .await
                .map(|()| {
                    out.mirror
                        .groups_renamed
                        .push((group.clone(), new_name.clone()));
                }),
            Op::CreateUser { user, state } => self
                .target
                .create_user(&user.entra_id, state)
                .await
                .map(|target_id| {
                    out.mirror.users.push(self.user_after(
                        &user.entra_id,
                        &target_id,
                        UserState::clone(state),
                    ));
                    out.created_user = Some((user.entra_id.clone(), target_id));
                }),
            Op::AdoptUser {
                user,
                target_id,
                state,
                releases,
                ..
            } => self
                .target
                .adopt_user(target_id, &user.entra_id, state)
                .await
                .map(|()| {
                    if let Some(old) = releases {
                        out.mirror
                            .users_released
                            .push((old.entra_id.clone(), user.entra_id.clone()));
                    }
                    out.mirror.users.push(self.user_after(
                        &user.entra_id,
                        target_id,
                        UserState::clone(state),
                    ));
                    out.created_user = Some((user.entra_id.clone(), target_id.clone()));
                }),
            Op::UpdateUser {
                user,
                target_id,
                changes,
                state,
            } => self
                .target
                .update_user(target_id, changes, state)
                .await
                .map(|()| {
                    out.mirror.users.push(self.user_after(
                        &user.entra_id,
                        target_id,
                        UserState::clone(state),
                    ));
                }),
            Op::ActivateUser {
                user, target_id, ..
            } => {
                let status = crate::domain::UserStatus::Active;
                self.target
                    .set_user_status(target_id, status)
                    .await
                    .map(|()| {
                        out.mirror
                            .users
                            .extend(self.status_changed(&user.entra_id, status));
                    })
            }
            Op::DeactivateUser {
                user,
                target_id,
                to,
                ..
            } => self.target.set_user_status(target_id, *to).await.map(|()| {
                out.mirror
                    .users
                    .extend(self.status_changed(&user.entra_id, *to));
            }),
            Op::AddMembers { group, users, .. } | Op::RemoveMembers { group, users, .. } => {
                return self.apply_membership(op, group, users).await;
            }
        };
        match call {
            Ok(()) => {
                out.applied = true;
                let notes = std::mem::take(&mut out.entries);
                out.entries = op_entries(op, "");
                out.entries.extend(notes);
                out.counts.add_op(op);
            }
            Err(err) => {
                if err.stops_the_run() {
                    out.fatal = Some(err.clone());
                }
                if matches!(err, TargetError::Unavailable(_)) {
                    out.unavailable = Some(err.clone());
                }
                out.entries.push(failure_entry(op, None, err.to_string()));
            }
        }
        out
    }

    /// Item 2: creates the group unless the target already has it (a create whose answer was
    /// lost, a run killed before recording it). `true`: it was found, not created.
    async fn create_group_once(
        &self,
        group: &GroupKey,
        name: &str,
    ) -> Result<(TargetGroupId, bool), TargetError> {
        if let Some(found) = self.target.find_group(group, name).await? {
            return Ok((found, true));
        }
        match self.target.create_group(group, name).await {
            Ok(created) => Ok((created, false)),
            // Created by a concurrent attempt, or a retry after an answer lost in transit.
            Err(TargetError::Conflict(why)) => match self.target.find_group(group, name).await? {
                Some(found) => Ok((found, true)),
                None => Err(TargetError::Conflict(why)),
            },
            Err(err) => Err(err),
        }
    }

    async fn apply_membership(&self, op: &Op, group: &GroupKey, users: &[UserLabel]) -> OpResult {
        let mut out = OpResult::new();
        let adding = matches!(op, Op::AddMembers { .. });
        let Some(group_id) = self.group_ids.get(group) else {
            for user in users {
                out.entries.push(failure_entry(
                    op,
                    Some(user),
                    "skipped: the synced group does not exist in the target (creating it failed)"
                        .to_owned(),
                ));
            }
            return out;
        };
        let (resolved, missing) = self.resolve_users(users);
        for user in &missing {
            out.entries.push(failure_entry(
                op,
                Some(user),
                "skipped: the user does not exist in the target (creating or adopting it failed)"
                    .to_owned(),
            ));
        }
        let ids: Vec<TargetUserId> = resolved.iter().map(|(_, id)| id.clone()).collect();
        let outcome = if ids.is_empty() {
            Default::default()
        } else if adding {
            self.target.add_members(group_id, &ids).await
        } else {
            self.target.remove_members(group_id, &ids).await
        };
        let failures: HashMap<&TargetUserId, &TargetError> =
            outcome.failed.iter().map(|(id, err)| (id, err)).collect();
        let mut succeeded = Vec::new();
        for (label, id) in &resolved {
            match failures.get(id) {
                Some(err) => {
                    if err.stops_the_run() {
                        out.fatal = Some((*err).clone());
                    }
                    if matches!(err, TargetError::Unavailable(_)) {
                        out.unavailable = Some((*err).clone());
                    }
                    out.entries
                        .push(failure_entry(op, Some(label), err.to_string()));
                }
                None => {
                    succeeded.push((*label).clone());
                    let change = (group.clone(), label.entra_id.clone());
                    if adding {
                        out.mirror.members_added.push(change);
                    } else {
                        out.mirror.members_removed.push(change);
                    }
                }
            }
        }
        let failed_count = missing.len() + failures.len();
        if !adding && failed_count > 0 {
            out.removal_failed = Some(group.clone());
        }
        out.applied = failed_count == 0;
        let done = match op {
            Op::AddMembers {
                group, group_name, ..
            } => Op::AddMembers {
                group: group.clone(),
                group_name: group_name.clone(),
                users: succeeded,
            },
            Op::RemoveMembers {
                group, group_name, ..
            } => Op::RemoveMembers {
                group: group.clone(),
                group_name: group_name.clone(),
                users: succeeded,
            },
            _ => unreachable!("apply_membership is only called for membership operations"),
        };
        out.counts.add_op(&done);
        let mut entries = op_entries(&done, "");
        entries.append(&mut out.entries);
        out.entries = entries;
        out
    }
}

/// The line that says a group to create was already in the target and is now linked.
fn found_entry(op: &Op, target_id: &TargetGroupId) -> ReportEntry {
    let mut entry = failure_entry(op, None, String::new());
    entry.action = "group found".to_owned();
    entry.severity = crate::plan::Severity::Info;
    entry.message = Some(format!(
        "already in the target as {target_id} (made by an earlier attempt whose answer was lost, \
         or by a run stopped before recording it): linked instead of created again"
    ));
    entry
}

/// The report lines for an operation that was not attempted: one per user for a membership batch.
fn skipped_entries(op: &Op, reason: &str) -> Vec<ReportEntry> {
    let message = format!("skipped: {reason}");
    match op {
        Op::AddMembers { users, .. } | Op::RemoveMembers { users, .. } => users
            .iter()
            .map(|user| failure_entry(op, Some(user), message.clone()))
            .collect(),
        _ => vec![failure_entry(op, None, message)],
    }
}

/// A short, stable name for an operation, for metrics.
pub fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::ConvertToSystemGroup { .. } => "convert_group",
        Op::CreateGroup { .. } => "create_group",
        Op::RenameGroup { .. } => "rename_group",
        Op::CreateUser { .. } => "create_user",
        Op::AdoptUser { .. } => "adopt_user",
        Op::UpdateUser { .. } => "update_user",
        Op::ActivateUser { .. } => "activate_user",
        Op::DeactivateUser { .. } => "deactivate_user",
        Op::AddMembers { .. } => "add_members",
        Op::RemoveMembers { .. } => "remove_members",
    }
}

fn merge(into: &mut MirrorChanges, from: MirrorChanges) {
    into.groups_created.extend(from.groups_created);
    into.groups_renamed.extend(from.groups_renamed);
    into.groups_converted.extend(from.groups_converted);
    into.users.extend(from.users);
    into.members_added.extend(from.members_added);
    into.members_removed.extend(from.members_removed);
    into.users_released.extend(from.users_released);
    into.groups_forgotten.extend(from.groups_forgotten);
    into.users_forgotten.extend(from.users_forgotten);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn batch(members: u128) -> Op {
        let user = |n: u128| UserLabel {
            entra_id: EntraObjectId::from(uuid::Uuid::from_u128(n)),
            email: format!("user{n}@contoso.example").into(),
            name: format!("User {n}").into(),
        };
        Op::AddMembers {
            group: GroupKey {
                entra_id: EntraObjectId::from(uuid::Uuid::from_u128(u128::MAX)),
                role: Role::Internal,
            },
            group_name: "Staff".to_owned(),
            users: (0..members).map(user).collect(),
        }
    }

    #[test]
    fn a_flush_counts_each_member_of_a_batch_as_a_change() {
        let batches: Vec<Op> = (0..10).map(|_| batch(500)).collect();
        // 1,000 changes are two batches of 500, not 1,000 batches (issue 13).
        assert_eq!(within_changes(&batches, 1000), 2);
        assert_eq!(within_changes(&batches, 1001), 3);
        // A batch larger than a flush is still taken whole, and alone.
        assert_eq!(within_changes(&batches, 10), 1);
        assert_eq!(within_changes(&[], 10), 0);
        let groups: Vec<Op> = (0..5)
            .map(|n| Op::CreateGroup {
                group: GroupKey {
                    entra_id: EntraObjectId::from(uuid::Uuid::from_u128(n)),
                    role: Role::Basic,
                },
                name: format!("Group {n}"),
            })
            .collect();
        assert_eq!(within_changes(&groups, 3), 3);
    }
}
