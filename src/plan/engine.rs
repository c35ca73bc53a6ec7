//! The planning algorithm: classify groups, validate users, derive roles, statuses and
//! memberships, then lay the operations out in an order the target can follow.

use std::collections::BTreeMap;

// Issue 13: foldhash rather than SipHash for the planner's maps of ids and emails (a no-change
// run of 100,000 users spent a tenth of its time hashing); still seeded per process.
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use std::cell::OnceCell;
use std::sync::Arc;

use super::fields::{
    DesiredFields, desired_fields, non_blank, unchanged_since, usable_email, visible,
};
use super::model::*;
use super::{MAX_GROUP_MEMBERS, SnapshotUser};
use crate::domain::{Email, EntraObjectId, Role, TargetUserId, UserStatus};

/// The emails whose target users the planner needs to know (R4 adoption, R7 collisions): those
/// of users not synced yet, and the new emails of synced users whose email changed.
pub fn emails_to_look_up(
    policy: &TenantPolicy,
    snapshot: &SourceSnapshot,
    mirror: &Mirror,
) -> Vec<Email> {
    emails_to_look_up_indexed(policy, snapshot, mirror, &MirrorIndex::new(mirror))
}

/// [`emails_to_look_up`] with the mirror's index built already (shared with [`plan_indexed`]).
pub fn emails_to_look_up_indexed(
    policy: &TenantPolicy,
    snapshot: &SourceSnapshot,
    mirror: &Mirror,
    index: &MirrorIndex,
) -> Vec<Email> {
    let selected: HashSet<&EntraObjectId> =
        policy.selected_groups.iter().map(|g| &g.entra_id).collect();
    // One look-up per identity, in Entra's spelling: a target that folds only ASCII case
    // still finds `Émile@` when asked for `Émile@`.
    let mut emails: BTreeMap<String, Email> = BTreeMap::new();
    for fetch in snapshot
        .groups
        .iter()
        .filter(|f| selected.contains(&f.entra_id))
    {
        let GroupOutcome::Found { members, .. } = &fetch.outcome else {
            continue;
        };
        if members.len() > MAX_GROUP_MEMBERS {
            continue;
        }
        for user in members {
            let synced = index.user(mirror, user.id());
            // Most synced users keep their address, spelled as the mirror has it: that
            // spelling parsed once already, so it is not parsed again (issue 13).
            if let Some(synced) = synced
                && non_blank(user.mail()) == Some(synced.state.fields.email.as_str())
            {
                continue;
            }
            let Ok(email) = usable_email(user) else {
                continue;
            };
            match synced {
                Some(synced) if synced.state.fields.email.same_spelling(&email) => {}
                _ => {
                    emails.entry(email.normalized()).or_insert(email);
                }
            }
        }
    }
    emails.into_values().collect()
}

/// A selected group whose members were read this run.
struct VisibleGroup<'a> {
    key: GroupKey,
    name: String,
    members: Vec<&'a SnapshotUser>,
    existing: Option<&'a MirrorGroup>,
}

/// A synced user as this run sees them, once validated.
struct Candidate<'a> {
    user: &'a SnapshotUser,
    /// The user as synced before, if they were: found once, when validated (issue 13: not
    /// looked up again for every pass over 100,000 candidates).
    synced: Option<&'a MirrorUser>,
    fields: CandidateFields<'a>,
    /// Boxed, as the label: a candidate is 56 bytes rather than 104, and a 500,000-user plan
    /// holds one for every user (issue 13).
    warnings: Box<[String]>,
    /// Made when first needed: a run that changes nobody names nobody.
    label: OnceCell<Box<UserLabel>>,
}

/// The valid users of a run in id order, found by binary search: a vector built in one pass from
/// the users seen, which are sorted already, rather than an ordered map (issue 13).
struct Candidates<'a>(Vec<(EntraObjectId, Candidate<'a>)>);

impl<'a> Candidates<'a> {
    fn get(&self, id: &EntraObjectId) -> Option<&Candidate<'a>> {
        self.0
            .binary_search_by(|(key, _)| key.cmp(id))
            .ok()
            .map(|at| &self.0[at].1)
    }

    fn contains_key(&self, id: &EntraObjectId) -> bool {
        self.get(id).is_some()
    }

    fn iter(&self) -> impl Iterator<Item = (&EntraObjectId, &Candidate<'a>)> {
        self.0.iter().map(|(id, candidate)| (id, candidate))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&EntraObjectId, &mut Candidate<'a>)> {
        self.0.iter_mut().map(|(id, candidate)| (&*id, candidate))
    }

    fn values(&self) -> impl Iterator<Item = &Candidate<'a>> {
        self.0.iter().map(|(_, candidate)| candidate)
    }
}

/// Where a candidate's fields are held: a large plan holds each user's fields once.
enum CandidateFields<'a> {
    /// New or changed since the mirror: held here until an operation takes them (boxed, so a
    /// candidate in the planner's map is small whichever way it holds its fields).
    Own(Box<UserFields>),
    /// Exactly as the mirror has them, spelling included: the mirror's, not a copy (a night
    /// with no change holds no second copy of 100,000 users' fields, issue 13).
    AsSynced(&'a UserFields),
    /// Moved into an operation.
    Taken,
}

impl<'a> Candidate<'a> {
    /// `synced`: the user in the mirror, if synced before.
    fn new(user: &'a SnapshotUser, desired: DesiredFields, synced: Option<&'a MirrorUser>) -> Self {
        let fields = match synced.map(|u| &u.state.fields) {
            Some(synced) if field_changes(synced, &desired.fields).is_empty() => {
                CandidateFields::AsSynced(synced)
            }
            _ => CandidateFields::Own(Box::new(desired.fields)),
        };
        Self {
            user,
            synced,
            fields,
            warnings: desired.warnings.into_boxed_slice(),
            label: OnceCell::new(),
        }
    }

    /// A synced user whose fields Entra still gives exactly as the mirror has them
    /// ([`unchanged_since`]).
    fn as_synced(user: &'a SnapshotUser, synced: &'a MirrorUser) -> Self {
        Self {
            user,
            synced: Some(synced),
            fields: CandidateFields::AsSynced(&synced.state.fields),
            warnings: Box::default(),
            label: OnceCell::new(),
        }
    }

    /// What changed since the mirror's `synced` fields: nothing when the candidate holds them.
    fn changes_since(&self, synced: &UserFields) -> Vec<FieldChange> {
        match &self.fields {
            CandidateFields::AsSynced(_) => Vec::new(),
            _ => field_changes(synced, self.fields()),
        }
    }

    fn fields(&self) -> &UserFields {
        match &self.fields {
            CandidateFields::Own(fields) => fields,
            CandidateFields::AsSynced(fields) => fields,
            CandidateFields::Taken => {
                panic!("a candidate's fields are read before an operation takes them")
            }
        }
    }

    /// The user as the report names them, with the email Entra has.
    fn label(&self) -> &UserLabel {
        self.label.get_or_init(|| {
            let fields = self.fields();
            Box::new(UserLabel {
                entra_id: self.user.id().clone(),
                email: fields.email.as_str().into(),
                name: full_name(&fields.first_name, &fields.last_name).into(),
            })
        })
    }

    /// Moves the fields into an operation (a copy of the mirror's when unchanged); the label is
    /// made first, as the membership operations planned later still name the user.
    fn take_fields(&mut self) -> UserFields {
        self.label();
        match std::mem::replace(&mut self.fields, CandidateFields::Taken) {
            CandidateFields::Own(fields) => *fields,
            CandidateFields::AsSynced(fields) => fields.clone(),
            CandidateFields::Taken => panic!("an operation takes a candidate's fields once"),
        }
    }
}

/// What planning decided about a user seen in a readable group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Valid, with this status after the run: may join groups when active.
    Managed(UserStatus),
    /// An error stops changes to this user; existing memberships stay (R8, R17).
    Frozen,
    /// Not in the target and not to be created this run (disabled, or an adoption conflict).
    Absent,
}

/// The pure planning function (see the module documentation for its contract).
pub fn plan(input: PlanInput<'_>) -> Plan {
    plan_indexed(input, &MirrorIndex::new(input.mirror))
}

/// [`plan`] with the mirror's index built already (`index` must be `input.mirror`'s).
pub fn plan_indexed(input: PlanInput<'_>, index: &MirrorIndex) -> Plan {
    Planner::new(input, index).run()
}

struct Planner<'a> {
    input: PlanInput<'a>,
    notes: Vec<Note>,
    groups: Vec<GroupSummary>,
    /// Keyed by the id's value, as are the planner's other maps of users: a look-up compares
    /// ids in the table rather than following a pointer to each (issue 13: at 100,000 users the
    /// pointers' cache misses were most of a no-change plan).
    mirror_index: &'a MirrorIndex,
    /// Built when first asked (an adoption, an email change): a run without either, such as
    /// a night with no change, never indexes the mirror a second and third time.
    email_owners: OnceCell<HashMap<&'a Email, &'a EntraObjectId>>,
    target_owners: OnceCell<HashMap<&'a TargetUserId, &'a EntraObjectId>>,
}

impl<'a> Planner<'a> {
    fn new(input: PlanInput<'a>, mirror_index: &'a MirrorIndex) -> Self {
        Self {
            input,
            notes: Vec::new(),
            groups: Vec::new(),
            mirror_index,
            email_owners: OnceCell::new(),
            target_owners: OnceCell::new(),
        }
    }

    /// The synced user with this id.
    fn mirrored(&self, id: &EntraObjectId) -> Option<&'a MirrorUser> {
        self.mirror_index.user(self.input.mirror, id)
    }

    /// R7: which synced user has each email in the target.
    fn email_owners(&self) -> &HashMap<&'a Email, &'a EntraObjectId> {
        let users = &self.input.mirror.users;
        self.email_owners.get_or_init(|| {
            users
                .iter()
                .map(|u| (&u.state.fields.email, &u.entra_id))
                .collect()
        })
    }

    /// R9a: which synced user each target user is linked to.
    fn target_owners(&self) -> &HashMap<&'a TargetUserId, &'a EntraObjectId> {
        let users = &self.input.mirror.users;
        self.target_owners
            .get_or_init(|| users.iter().map(|u| (&u.target_id, &u.entra_id)).collect())
    }

    fn user_note(&mut self, label: UserLabel, severity: Severity, message: String) {
        self.notes.push(Note {
            subject: Subject::User(label),
            severity,
            message,
        });
    }

    fn group_note(
        &mut self,
        selected: &SelectedGroup,
        name: &str,
        severity: Severity,
        message: String,
    ) {
        self.notes.push(Note {
            subject: Subject::Group {
                entra_id: selected.entra_id.clone(),
                role: selected.role,
                name: name.to_owned(),
            },
            severity,
            message,
        });
    }

    fn run(mut self) -> Plan {
        let input = self.input;
        if input.policy.selected_groups.is_empty() {
            self.notes.push(Note {
                subject: Subject::Run,
                severity: Severity::Warning,
                message:
                    "no group is selected for this tenant (its configuration confirms it), so \
                          this run syncs nobody; groups synced before become system groups"
                        .to_owned(),
            });
        }
        let (visible, frozen_groups, conversions) = self.classify_groups();

        // Every user seen in a readable group, once, by id; a user read twice with different
        // data is taken as the first group listed them. Sorted once rather than inserted into an
        // ordered map member by member (issue 13: 600,000 memberships at 500,000 users).
        let mut seen: Vec<&SnapshotUser> = visible
            .iter()
            .flat_map(|group| group.members.iter().copied())
            .collect();
        seen.sort_by(|a, b| a.id().cmp(b.id()));
        seen.dedup_by(|later, first| later.id() == first.id());
        seen.shrink_to_fit();

        // Memberships that cannot be read this run stand as the mirror has them (R17).
        let mut frozen_membership: HashMap<&EntraObjectId, Vec<Role>> = HashMap::new();
        for group in &frozen_groups {
            for member in &group.members {
                frozen_membership
                    .entry(member)
                    .or_default()
                    .push(group.key.role);
            }
        }

        // R14: internal wins over basic, counting memberships that could not be read this run.
        let mut roles: HashMap<EntraObjectId, Role> =
            HashMap::with_capacity(seen.len() + frozen_membership.len());
        roles.extend(
            frozen_membership
                .iter()
                .map(|(id, roles)| ((*id).clone(), strongest(roles.iter().copied()))),
        );
        for group in &visible {
            for user in &group.members {
                let role = roles.entry(user.id().clone()).or_insert(group.key.role);
                *role = strongest([*role, group.key.role]);
            }
        }

        let mut candidates = self.validate_users(&seen);

        // Every seen user has a standing, so it also tells by a hash look-up whether a user was
        // seen (`seen` is asked by binary search).
        let mut standing: HashMap<EntraObjectId, Standing> = seen
            .iter()
            .map(|user| (user.id().clone(), Standing::Frozen))
            .collect();
        // The user operations are most of a large plan, so the plan is built in their vector:
        // the group operations are rotated in front of them in place, never a second copy. Each
        // user new to dirsync makes one operation (a lower bound: an initial sync is sized
        // exactly; a run that plans nothing reserves nothing).
        let new_users = candidates
            .values()
            .filter(|candidate| candidate.synced.is_none())
            .count();
        let mut user_ops = Vec::with_capacity(new_users);
        let mut deactivations = Vec::new();

        // R9a: synced users who departed (in no readable group, and not held by an unreadable
        // one); a new user with the same email may take their target user over.
        let mut departed: HashSet<&EntraObjectId> = input
            .mirror
            .users
            .iter()
            .map(|u| &u.entra_id)
            .filter(|id| !standing.contains_key(id) && !frozen_membership.contains_key(id))
            .collect();
        // Departed user → the new user who took their target user over.
        let mut released: HashMap<EntraObjectId, EntraObjectId> = HashMap::new();

        for (id, candidate) in candidates.iter_mut() {
            let role = roles[id];
            let outcome = match candidate.synced {
                None => self.plan_new_user(candidate, role, &mut departed),
                Some(synced) => self.plan_synced_user(candidate, synced, role),
            };
            let (new_standing, op) = outcome;
            if let Some(Op::AdoptUser {
                releases: Some(old),
                ..
            }) = &op
            {
                released.insert(old.entra_id.clone(), id.clone());
            }
            standing.insert(id.clone(), new_standing);
            user_ops.extend(op);
        }

        // R9: status always applies, also to a synced user whose fields cannot be synced (R5, R8).
        // The cheap tests first: most users are enabled (issue 13, a no-change run of 100,000).
        for user in &seen {
            let id = user.id();
            if user.account_enabled() != Some(false) {
                continue;
            }
            let Some(synced) = self.mirrored(id) else {
                continue;
            };
            if synced.state.status == UserStatus::Active && !candidates.contains_key(id) {
                deactivations.push(Op::DeactivateUser {
                    user: mirror_label(synced),
                    target_id: synced.target_id.clone(),
                    to: input.policy.deactivation_status.into(),
                    reason: DeactivationReason::DisabledInEntra,
                });
            }
        }

        // R10/R11: synced users seen in no group, and not held by an unreadable group, leave;
        // unless a rehired user took their target user over (R9a).
        for synced in &input.mirror.users {
            if standing.contains_key(&synced.entra_id)
                || frozen_membership.contains_key(&synced.entra_id)
                || released.contains_key(&synced.entra_id)
            {
                continue;
            }
            if synced.state.status == UserStatus::Active {
                deactivations.push(Op::DeactivateUser {
                    user: mirror_label(synced),
                    target_id: synced.target_id.clone(),
                    to: input.policy.deactivation_status.into(),
                    reason: DeactivationReason::RemovedFromSyncedGroups,
                });
            }
        }

        let label_of = |id: &EntraObjectId| -> UserLabel {
            let seen_user = seen
                .binary_search_by(|user| user.id().cmp(id))
                .ok()
                .map(|at| seen[at]);
            match (candidates.get(id), seen_user, self.mirrored(id)) {
                (Some(candidate), _, _) => candidate.label().clone(),
                (None, Some(user), mirrored) => raw_label(user, mirrored),
                (None, None, Some(mirrored)) => mirror_label(mirrored),
                (None, None, None) => UserLabel {
                    entra_id: id.clone(),
                    email: "".into(),
                    name: "".into(),
                },
            }
        };

        let mut ops = user_ops;
        let user_op_count = ops.len();
        ops.reserve_exact(2 * conversions.len() + 3 * visible.len());

        // 1. Groups leaving management: members out first, then the conversion (R12, R13).
        for (group, reason) in &conversions {
            if !group.members.is_empty() {
                ops.push(Op::RemoveMembers {
                    group: group.key.clone(),
                    group_name: group.name.clone(),
                    users: sorted_labels(group.members.iter(), &label_of),
                });
            }
            ops.push(Op::ConvertToSystemGroup {
                group: group.key.clone(),
                target_id: group.target_id.clone(),
                old_name: group.name.clone(),
                new_name: format!("{}_{}", group.name, input.now.timestamp_millis()),
                reason: *reason,
            });
        }

        // 2. Groups created (R2) and renamed (R3).
        for group in &visible {
            match group.existing {
                None => ops.push(Op::CreateGroup {
                    group: group.key.clone(),
                    name: group.name.clone(),
                }),
                Some(existing) if existing.name != group.name => ops.push(Op::RenameGroup {
                    group: group.key.clone(),
                    target_id: existing.target_id.clone(),
                    old_name: existing.name.clone(),
                    new_name: group.name.clone(),
                }),
                Some(_) => {}
            }
        }

        // 3. Users created, adopted, updated, (re)activated: all before they join groups, after
        // the group operations 1 and 2, which were pushed behind them.
        let group_op_count = ops.len() - user_op_count;
        ops.rotate_right(group_op_count);

        // 4 and 5. Memberships of readable groups: additions, then removals (R10, R14).
        let mut removals = Vec::new();
        for group in &visible {
            // A released user's memberships are their successor's (R9a): the target user is one.
            let current: HashSet<&EntraObjectId> = group
                .existing
                .map(|g| {
                    g.members
                        .iter()
                        .map(|m| released.get(m).unwrap_or(m))
                        .collect()
                })
                .unwrap_or_default();
            let mut desired: HashSet<&EntraObjectId> = HashSet::with_capacity(group.members.len());
            for user in &group.members {
                let keep_if_present =
                    match standing.get(user.id()).copied().unwrap_or(Standing::Frozen) {
                        Standing::Managed(UserStatus::Active) => roles[user.id()] == group.key.role,
                        Standing::Managed(_) => {
                            // A deactivated user keeps the memberships it has but joins no group:
                            // the target refuses to add an archived user.
                            roles[user.id()] == group.key.role && current.contains(user.id())
                        }
                        Standing::Frozen | Standing::Absent => current.contains(user.id()),
                    };
                if keep_if_present {
                    desired.insert(user.id());
                }
            }
            // A user whose data could not be read keeps the membership it had (R8, R17).
            for member in &current {
                if standing.get(member) == Some(&Standing::Frozen) {
                    desired.insert(member);
                }
            }
            let added: Vec<&EntraObjectId> = desired.difference(&current).copied().collect();
            let removed: Vec<&EntraObjectId> = current.difference(&desired).copied().collect();
            if !added.is_empty() {
                ops.push(Op::AddMembers {
                    group: group.key.clone(),
                    group_name: group.name.clone(),
                    users: sorted_labels(added.into_iter(), &label_of),
                });
            }
            if !removed.is_empty() {
                removals.push(Op::RemoveMembers {
                    group: group.key.clone(),
                    group_name: group.name.clone(),
                    users: sorted_labels(removed.into_iter(), &label_of),
                });
            }
        }
        ops.reserve_exact(removals.len() + deactivations.len());
        ops.extend(removals);

        // 6. Deactivations last, once the users are out of every group they left.
        ops.extend(deactivations);

        let deactivating = ops.iter().filter(|op| op.deactivates()).count();
        let threshold = input.policy.deletion_threshold;
        let approved = input.approved_deactivations;
        let hold = (threshold > 0
            && deactivating > threshold as usize
            && approved.is_none_or(|approved| deactivating > approved))
        .then_some(Hold {
            deactivations: deactivating,
            threshold,
            approved,
        });

        // The plan is kept for the whole apply phase: without the growth slack.
        ops.shrink_to_fit();
        Plan {
            ops,
            notes: self.notes,
            groups: self.groups,
            hold,
        }
    }

    /// Sorts the selected and formerly synced groups into readable ones, unreadable ones whose
    /// mirror must stand, and synced groups to convert to system groups.
    #[allow(clippy::type_complexity)]
    fn classify_groups(
        &mut self,
    ) -> (
        Vec<VisibleGroup<'a>>,
        Vec<&'a MirrorGroup>,
        Vec<(&'a MirrorGroup, ConversionReason)>,
    ) {
        let input = self.input;
        let fetches: HashMap<&EntraObjectId, &GroupOutcome> = input
            .snapshot
            .groups
            .iter()
            .map(|f| (&f.entra_id, &f.outcome))
            .collect();
        let mut mirror_groups: HashMap<&EntraObjectId, &MirrorGroup> = HashMap::new();
        for group in &input.mirror.groups {
            mirror_groups.entry(&group.key.entra_id).or_insert(group);
        }
        let converted_groups: HashMap<&EntraObjectId, &ConvertedGroup> = input
            .mirror
            .converted
            .iter()
            .map(|g| (&g.key.entra_id, g))
            .collect();

        let mut visible = Vec::new();
        let mut frozen = Vec::new();
        let mut conversions = Vec::new();
        let mut selected_ids = HashSet::new();

        for selected in &input.policy.selected_groups {
            if !selected_ids.insert(&selected.entra_id) {
                continue;
            }
            let existing = mirror_groups.get(&selected.entra_id).copied();
            let known_name = existing.map(|g| g.name.clone()).unwrap_or_default();
            let failed = ShallowOutcome::Failed;
            let outcome = match fetches.get(&selected.entra_id) {
                Some(GroupOutcome::Found { members, .. }) if members.len() > MAX_GROUP_MEMBERS => {
                    failed(format!(
                        "the group has {} direct user members, more than the limit of {MAX_GROUP_MEMBERS}; \
                     nothing in it was changed",
                        members.len()
                    ))
                }
                Some(outcome) => (*outcome).clone_shallow(),
                None => failed("the group was not read from Entra in this run".to_owned()),
            };
            match outcome {
                ShallowOutcome::Found {
                    display_name,
                    members,
                } => {
                    let name = match (non_blank(Some(display_name)), existing) {
                        (Some(name), _) => name.to_owned(),
                        // A name Entra lost is not a rename (R3): the synced group keeps its own.
                        (None, Some(old)) => {
                            self.group_note(
                                selected,
                                &old.name,
                                Severity::Warning,
                                format!(
                                    "the group has no display name in Entra; it keeps its name {:?}",
                                    old.name
                                ),
                            );
                            old.name.clone()
                        }
                        (None, None) => {
                            let name = selected.entra_id.to_string();
                            self.group_note(
                                selected,
                                &name,
                                Severity::Warning,
                                "the group has no display name in Entra; its ID is used as its name"
                                    .to_owned(),
                            );
                            name
                        }
                    };
                    let mut unique = HashSet::new();
                    let members: Vec<&SnapshotUser> = members
                        .iter()
                        .map(|u| &**u)
                        .filter(|u| unique.insert(u.id()))
                        .collect();
                    let mut message = None;
                    let reuse = match existing {
                        Some(old) if old.key.role != selected.role => {
                            message = Some(format!(
                                "role changed from {} to {}: the old synced group becomes a system group",
                                old.key.role, selected.role
                            ));
                            conversions.push((old, ConversionReason::RoleChanged));
                            None
                        }
                        other => other,
                    };
                    self.groups.push(GroupSummary {
                        entra_id: selected.entra_id.clone(),
                        name: name.clone(),
                        role: selected.role,
                        members_seen: Some(members.len()),
                        status: GroupStatus::Found,
                        message,
                    });
                    visible.push(VisibleGroup {
                        key: GroupKey {
                            entra_id: selected.entra_id.clone(),
                            role: selected.role,
                        },
                        name,
                        members,
                        existing: reuse,
                    });
                }
                ShallowOutcome::Deleted => {
                    let converted = converted_groups.get(&selected.entra_id).copied();
                    let known_name = match (existing, converted) {
                        (None, Some(converted)) => converted.name.clone(),
                        _ => known_name,
                    };
                    let message = match (existing, converted) {
                        (Some(old), _) => {
                            conversions.push((old, ConversionReason::DeletedInEntra));
                            "deleted in Entra: the synced group becomes a system group".to_owned()
                        }
                        // R12: converted on an earlier run; nothing is left to do but deselect it.
                        (None, Some(converted)) => {
                            let message = format!(
                                "deleted in Entra; remove it from the selection (its synced group \
                                 was converted to the system group {:?})",
                                converted.system_name
                            );
                            self.group_note(
                                selected,
                                &known_name,
                                Severity::Warning,
                                message.clone(),
                            );
                            message
                        }
                        (None, None) => {
                            let message =
                                "the group does not exist in Entra (deleted, or a wrong ID): \
                                           remove it from the tenant's configuration or correct the ID"
                                    .to_owned();
                            self.group_note(
                                selected,
                                &known_name,
                                Severity::Error,
                                message.clone(),
                            );
                            message
                        }
                    };
                    self.groups.push(GroupSummary {
                        entra_id: selected.entra_id.clone(),
                        name: known_name,
                        role: selected.role,
                        members_seen: None,
                        status: GroupStatus::Deleted,
                        message: Some(message),
                    });
                }
                ShallowOutcome::Failed(reason) => {
                    let mut message =
                        format!("could not be read: {reason}; nothing in it was changed");
                    if let Some(old) = existing {
                        frozen.push(old);
                        if old.key.role != selected.role {
                            message.push_str(&format!(
                                " (its role change from {} to {} waits for a run that can read it)",
                                old.key.role, selected.role
                            ));
                        }
                    }
                    self.group_note(selected, &known_name, Severity::Error, message.clone());
                    self.groups.push(GroupSummary {
                        entra_id: selected.entra_id.clone(),
                        name: known_name,
                        role: selected.role,
                        members_seen: None,
                        status: GroupStatus::Failed,
                        message: Some(message),
                    });
                }
            }
        }

        for group in &input.mirror.groups {
            if !selected_ids.contains(&group.key.entra_id) {
                conversions.push((group, ConversionReason::Deselected));
                self.groups.push(GroupSummary {
                    entra_id: group.key.entra_id.clone(),
                    name: group.name.clone(),
                    role: group.key.role,
                    members_seen: None,
                    status: GroupStatus::Deselected,
                    message: Some(
                        "no longer selected: the synced group becomes a system group".to_owned(),
                    ),
                });
            }
        }
        (visible, frozen, conversions)
    }

    /// R5 and R8: the users whose data can be synced, with errors noted for the others.
    fn validate_users(&mut self, seen: &[&'a SnapshotUser]) -> Candidates<'a> {
        // `seen` is in id order, each id once: so are the candidates.
        let mut valid = Vec::with_capacity(seen.len());
        for &user in seen {
            let id = user.id();
            let mirrored = self.mirrored(id);
            if let Some(synced) = mirrored
                && unchanged_since(user, &synced.state.fields)
            {
                valid.push((id.clone(), Candidate::as_synced(user, synced)));
                continue;
            }
            match desired_fields(user) {
                Ok(desired) => {
                    valid.push((id.clone(), Candidate::new(user, desired, mirrored)));
                }
                Err(message) => {
                    let suffix = match mirrored {
                        Some(synced)
                            if user.account_enabled() == Some(false)
                                && synced.state.status == UserStatus::Active =>
                        {
                            "; the synced user's fields are left as they are, but it is \
                             deactivated: it is disabled in Entra"
                        }
                        Some(_) => "; the synced user is left as it is",
                        None => "; the user is not created",
                    };
                    self.user_note(
                        raw_label(user, mirrored),
                        Severity::Error,
                        format!("{message}{suffix}"),
                    );
                }
            }
        }
        let mut candidates = Candidates(valid);
        // Found by reference first: copying every email to find the few duplicates would hold
        // a second copy of each address for the whole check. One pass tells whether any email
        // is shared; only then are their users gathered (issue 13: a night without one does
        // not hash 100,000 emails twice).
        let mut emails: HashSet<&Email> = HashSet::with_capacity(candidates.0.len());
        let mut shared: HashSet<&Email> = HashSet::new();
        for candidate in candidates.values() {
            let email = &candidate.fields().email;
            if !emails.insert(email) {
                shared.insert(email);
            }
        }
        drop(emails);
        // Normalized email → (the first user's spelling, the users who share it), in id order.
        let mut duplicates: BTreeMap<String, (String, Vec<EntraObjectId>)> = BTreeMap::new();
        if !shared.is_empty() {
            for (id, candidate) in candidates.iter() {
                let email = &candidate.fields().email;
                if shared.contains(email) {
                    duplicates
                        .entry(email.normalized())
                        .or_insert_with(|| (email.to_string(), Vec::new()))
                        .1
                        .push(id.clone());
                }
            }
        }
        drop(shared);
        let mut refused: HashSet<EntraObjectId> = HashSet::new();
        for (email, ids) in duplicates.into_values() {
            for id in &ids {
                let candidate = candidates
                    .get(id)
                    .expect("every id in duplicates is a candidate");
                let others: Vec<String> = ids
                    .iter()
                    .filter(|o| *o != id)
                    .map(|o| o.to_string())
                    .collect();
                self.user_note(
                    candidate.label().clone(),
                    Severity::Error,
                    format!(
                        "duplicate email {email}: also used by Entra user {}; neither is created or \
                         adopted and synced users keep their current state (a disabled one is \
                         still deactivated)",
                        others.join(", ")
                    ),
                );
            }
            refused.extend(ids);
        }
        if !refused.is_empty() {
            candidates.0.retain(|(id, _)| !refused.contains(id));
        }
        candidates
    }

    /// R4: a user not synced yet is adopted by email or created; a disabled one is adopted
    /// deactivated when the target has them, and not created otherwise (R9). A target user
    /// linked to a departed synced user is taken over (R9a), which removes that user from
    /// `departed`.
    fn plan_new_user(
        &mut self,
        candidate: &mut Candidate<'a>,
        role: Role,
        departed: &mut HashSet<&'a EntraObjectId>,
    ) -> (Standing, Option<Op>) {
        let label = candidate.label().clone();
        for warning in &candidate.warnings {
            self.user_note(label.clone(), Severity::Warning, warning.clone());
        }
        let disabled = candidate.user.account_enabled() == Some(false);
        let not_created = |planner: &mut Self, label: UserLabel| {
            planner.user_note(
                label,
                Severity::Info,
                "not created: the account is disabled in Entra".to_owned(),
            );
            (Standing::Absent, None)
        };
        let Some(existing) = self
            .input
            .target
            .users_by_email
            .get(&candidate.fields().email)
        else {
            if disabled {
                return not_created(self, label);
            }
            let state = UserState {
                fields: candidate.take_fields(),
                role,
                status: UserStatus::Active,
            };
            return (
                Standing::Managed(UserStatus::Active),
                Some(Op::CreateUser {
                    user: label,
                    state: Box::new(state),
                }),
            );
        };
        let releases = match self.target_owners().get(&existing.id).copied() {
            None => None,
            Some(owner) if departed.remove(owner) => {
                let old = self
                    .mirrored(owner)
                    .expect("a departed user is a synced user");
                Some(Box::new(mirror_label(old)))
            }
            Some(_) if disabled => return not_created(self, label),
            Some(owner) => {
                let message = format!(
                    "the target user with email {} is already linked to Entra user {owner}; \
                     it is not adopted a second time",
                    existing.fields.email
                );
                self.user_note(label, Severity::Error, message);
                return (Standing::Absent, None);
            }
        };
        // R9: a disabled user's account is deactivated; one already deactivated stays as it is.
        let status = match (disabled, existing.status) {
            (false, _) => UserStatus::Active,
            (true, UserStatus::Active) => self.input.policy.deactivation_status.into(),
            (true, current) => current,
        };
        let mut changes = field_changes(&existing.fields, candidate.fields());
        if existing.status != status {
            changes.push(status_change(existing.status, status));
        }
        let op = Op::AdoptUser {
            user: label,
            target_id: existing.id.clone(),
            changes,
            state: Box::new(UserState {
                fields: candidate.take_fields(),
                role,
                status,
            }),
            releases,
        };
        (Standing::Managed(status), Some(op))
    }

    /// R5, R7, R9, R14, R15: a synced user's changes since the mirror. Nothing is copied for
    /// a user who has not changed, the common case of a nightly run.
    fn plan_synced_user(
        &mut self,
        candidate: &mut Candidate<'a>,
        synced: &'a MirrorUser,
        role: Role,
    ) -> (Standing, Option<Op>) {
        let old_email = &synced.state.fields.email;
        let mut refusal = None;
        let new_email = &candidate.fields().email;
        // A candidate holding the mirror's fields holds its email: not read again (issue 13).
        if !std::ptr::eq(old_email, new_email) && !old_email.same_spelling(new_email) {
            refusal = if old_email.domain_differs(new_email) {
                Some(format!(
                    "email domain change is not supported: Entra has {new_email}, the target keeps \
                     {old_email}; every other field is still updated"
                ))
            } else if old_email != new_email && self.email_taken(new_email, synced) {
                Some(format!(
                    "email change to {new_email} would collide with another target user: the target \
                     keeps {old_email}; every other field is still updated"
                ))
            } else {
                None
            };
        }
        // The user as the target will know them after this run: a refused email stays as it was.
        let keeps_old_email = refusal.is_some();
        let label = |candidate: &Candidate<'_>| {
            let label = candidate.label().clone();
            if keeps_old_email {
                UserLabel {
                    email: old_email.as_str().into(),
                    ..label
                }
            } else {
                label
            }
        };
        for warning in &candidate.warnings {
            self.user_note(label(candidate), Severity::Warning, warning.clone());
        }
        if let Some(message) = refusal {
            self.user_note(label(candidate), Severity::Error, message);
        }

        let status = match candidate.user.account_enabled() {
            Some(false) if synced.state.status == UserStatus::Active => {
                self.input.policy.deactivation_status.into()
            }
            Some(false) | None => synced.state.status,
            Some(true) => UserStatus::Active,
        };
        let mut changes = candidate.changes_since(&synced.state.fields);
        if keeps_old_email {
            changes.retain(|change| change.field != ManagedField::Email);
        }
        if synced.state.role != role {
            changes.push(FieldChange {
                field: ManagedField::Role,
                old: Some(synced.state.role.to_string()),
                new: Some(role.to_string()),
            });
        }
        let op = if !changes.is_empty() {
            if synced.state.status != status {
                changes.push(status_change(synced.state.status, status));
            }
            let user = label(candidate);
            let mut fields = candidate.take_fields();
            if keeps_old_email {
                fields.email = old_email.clone();
            }
            Some(Op::UpdateUser {
                user,
                target_id: synced.target_id.clone(),
                changes,
                state: Box::new(UserState {
                    fields,
                    role,
                    status,
                }),
            })
        } else if synced.state.status != status {
            let user = label(candidate);
            Some(if status == UserStatus::Active {
                Op::ActivateUser {
                    user,
                    target_id: synced.target_id.clone(),
                    from: synced.state.status,
                }
            } else {
                Op::DeactivateUser {
                    user,
                    target_id: synced.target_id.clone(),
                    to: status,
                    reason: DeactivationReason::DisabledInEntra,
                }
            })
        } else {
            None
        };
        (Standing::Managed(status), op)
    }

    /// R7: whether another target user already has `email`.
    fn email_taken(&self, email: &Email, synced: &MirrorUser) -> bool {
        let other_target_user = self
            .input
            .target
            .users_by_email
            .get(email)
            .is_some_and(|found| found.id != synced.target_id);
        let other_synced_user = self
            .email_owners()
            .get(email)
            .is_some_and(|owner| **owner != synced.entra_id);
        other_target_user || other_synced_user
    }
}

/// The outcome of a fetch, borrowed: lets `classify_groups` treat an over-limit group as Failed
/// without copying member lists.
enum ShallowOutcome<'a> {
    Found {
        display_name: &'a str,
        members: &'a [Arc<SnapshotUser>],
    },
    Deleted,
    Failed(String),
}

impl GroupOutcome {
    fn clone_shallow(&self) -> ShallowOutcome<'_> {
        match self {
            GroupOutcome::Found {
                display_name,
                members,
            } => ShallowOutcome::Found {
                display_name,
                members,
            },
            GroupOutcome::Deleted => ShallowOutcome::Deleted,
            GroupOutcome::Failed { reason } => ShallowOutcome::Failed(reason.clone()),
        }
    }
}

fn strongest(roles: impl IntoIterator<Item = Role>) -> Role {
    if roles.into_iter().any(|r| r == Role::Internal) {
        Role::Internal
    } else {
        Role::Basic
    }
}

fn status_change(old: UserStatus, new: UserStatus) -> FieldChange {
    FieldChange {
        field: ManagedField::Status,
        old: Some(old.to_string()),
        new: Some(new.to_string()),
    }
}

/// R5: the fields that differ, old → new. Email compares by spelling so a change of case is sent.
fn field_changes(old: &UserFields, new: &UserFields) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut compare = |field, old: Option<&str>, new: Option<&str>| {
        if old != new {
            changes.push(FieldChange {
                field,
                old: old.map(str::to_owned),
                new: new.map(str::to_owned),
            });
        }
    };
    compare(
        ManagedField::FirstName,
        Some(&old.first_name),
        Some(&new.first_name),
    );
    compare(
        ManagedField::LastName,
        Some(&old.last_name),
        Some(&new.last_name),
    );
    compare(
        ManagedField::Email,
        Some(old.email.as_str()),
        Some(new.email.as_str()),
    );
    compare(
        ManagedField::Phone,
        old.phone.as_deref(),
        new.phone.as_deref(),
    );
    compare(
        ManagedField::JobTitle,
        old.job_title.as_deref(),
        new.job_title.as_deref(),
    );
    changes
}

fn mirror_label(user: &MirrorUser) -> UserLabel {
    let fields = &user.state.fields;
    UserLabel {
        entra_id: user.entra_id.clone(),
        email: fields.email.as_str().into(),
        name: full_name(&fields.first_name, &fields.last_name).into(),
    }
}

/// A label for a user whose data may be unusable: whatever Entra and the mirror can tell.
fn raw_label(user: &SnapshotUser, mirrored: Option<&MirrorUser>) -> UserLabel {
    let email = user
        .mail()
        .filter(|m| !m.trim().is_empty())
        .or_else(|| user.user_principal_name())
        .or_else(|| mirrored.map(|m| m.state.fields.email.as_str()))
        .unwrap_or_default();
    let name = match user.display_name().filter(|d| !d.trim().is_empty()) {
        Some(display) => display.to_owned(),
        None => full_name(
            user.given_name().unwrap_or_default(),
            user.surname().unwrap_or_default(),
        ),
    };
    UserLabel {
        entra_id: user.id().clone(),
        email: visible(email).into(),
        name: visible(&name).into(),
    }
}

fn full_name(first: &str, last: &str) -> String {
    format!("{first} {last}").trim().to_owned()
}

fn sorted_labels<'i>(
    ids: impl Iterator<Item = &'i EntraObjectId>,
    label_of: &impl Fn(&EntraObjectId) -> UserLabel,
) -> Vec<UserLabel> {
    let mut ids: Vec<&EntraObjectId> = ids.collect();
    ids.sort();
    ids.into_iter().map(label_of).collect()
}

#[cfg(test)]
mod size_tests {
    /// Issue 13: the planner holds a candidate for every user it sees, 500,000 in a large tenant
    /// (56 bytes since it keeps its synced user, 4 MB more at 500,000 than looking it up again).
    #[test]
    fn a_candidate_is_small() {
        let size = std::mem::size_of::<super::Candidate<'_>>();
        assert!(size <= 56, "a candidate takes {size} bytes");
    }
}
