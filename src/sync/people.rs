//! Issue 14, "sync people now" (Microsoft's "provision on demand"): up to five people, picked by
//! email (user principal name) or Entra object ID, are read from Entra on their own, planned by
//! the same planner, applied by the same applier under the same lease (R21), and recorded as a
//! small run with trigger `on_demand` whose report says, person by person, what happened.
//!
//! The planner only ever sees the picked people: the snapshot lists them as the only members of
//! each selected group, and the mirror lists only them as synced users and members. So the plan
//! cannot remove or deactivate anyone else; [`confine`] then drops anything that is not about them
//! (renames, conversions, groups nobody picked joins) as a second fence. A group that cannot be
//! read now, or that a full run must convert first (deleted in Entra, R12; role changed, R13), is
//! given to the planner as Failed, so R17 leaves the picked people's place in it as it is.

use std::collections::HashSet;

use chrono::Utc;
use serde::Serialize;

use super::{AbortOnDrop, ReadFailure, sign_in};
use crate::domain::{EntraObjectId, GroupKind};
use crate::plan::{
    GroupFetch, GroupOutcome, Mirror, Note, Op, Plan, PlanInput, Severity, SourceSnapshot, Subject,
    TargetLookups, TenantPolicy, UserLabel, emails_to_look_up, plan,
};
use crate::source::{
    DirectorySource, FetchStats, GroupCount, GroupCountOutcome, PersonFetch, PersonOutcome,
    SourceError,
};
use crate::store::{ReportEntry, Store, SubjectKind};
use crate::target::TargetAdapter;
use crate::tenant::Tenant;

/// The most people one on-demand run takes.
pub const MAX_PEOPLE: usize = 5;

/// Checks what an admin typed: one to five people, each an Entra object ID or an email (user
/// principal name). Repeats are dropped; object IDs are lower-cased.
pub fn parse_people(raw: &[String]) -> Result<Vec<String>, String> {
    let mut people: Vec<String> = Vec::new();
    for text in raw.iter().flat_map(|t| t.split([',', '\n'])) {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let person = if let Ok(id) = EntraObjectId::parse(text) {
            id.to_string()
        } else if text
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !text.chars().any(char::is_whitespace)
        {
            text.to_owned()
        } else {
            return Err(format!(
                "{text:?} is neither an email address (user principal name) nor an Entra object ID"
            ));
        };
        if !people.iter().any(|p| p.eq_ignore_ascii_case(&person)) {
            people.push(person);
        }
    }
    if people.is_empty() {
        return Err(
            "name at least one person to sync: an email address or an Entra object ID".into(),
        );
    }
    if people.len() > MAX_PEOPLE {
        return Err(format!(
            "at most {MAX_PEOPLE} people can be synced at once; {} were given (a force sync runs everyone)",
            people.len()
        ));
    }
    Ok(people)
}

/// The snapshot and mirror the planner sees for an on-demand run: only the picked people.
#[derive(Debug, Clone)]
pub struct Restricted {
    pub snapshot: SourceSnapshot,
    pub mirror: Mirror,
    /// The Entra users the run may touch: those found, and those not found that dirsync synced
    /// before (they left Entra, R11).
    pub picked: HashSet<EntraObjectId>,
}

/// The mirror user an asked-for person is, by object ID or by email.
fn mirror_match<'a>(mirror: &'a Mirror, asked: &str) -> Option<&'a crate::plan::MirrorUser> {
    mirror.users.iter().find(|u| {
        u.entra_id.to_string().eq_ignore_ascii_case(asked)
            || u.state.fields.email.as_str().eq_ignore_ascii_case(asked)
    })
}

/// Builds the planner's inputs for `people` (pure).
pub fn restrict(
    policy: &TenantPolicy,
    people: &[PersonFetch],
    groups: &[GroupCount],
    mirror: &Mirror,
) -> Restricted {
    let mut picked = HashSet::new();
    for person in people {
        match &person.outcome {
            PersonOutcome::Found { user, .. } => {
                picked.insert(user.id.clone());
            }
            PersonOutcome::NotFound => {
                if let Some(user) = mirror_match(mirror, &person.asked) {
                    picked.insert(user.entra_id.clone());
                }
            }
            PersonOutcome::Failed { .. } => {}
        }
    }
    let snapshot = SourceSnapshot {
        groups: policy
            .selected_groups
            .iter()
            .map(|selected| {
                let count = groups.iter().find(|c| c.entra_id == selected.entra_id);
                let converts_first =
                    !mirror.groups.iter().any(|g| {
                        g.key.entra_id == selected.entra_id && g.key.role == selected.role
                    }) && mirror
                        .groups
                        .iter()
                        .any(|g| g.key.entra_id == selected.entra_id);
                let outcome = match count.map(|c| &c.outcome) {
                    Some(GroupCountOutcome::Found { .. }) if converts_first => {
                        GroupOutcome::Failed {
                            reason: format!(
                                "its role changed to {} since the last full run, which converts \
                                 the old synced group first (R13); left as it is now",
                                selected.role
                            ),
                        }
                    }
                    // A synced group keeps its name here: renaming it (R3) is the full run's.
                    Some(GroupCountOutcome::Found { display_name, .. }) => GroupOutcome::Found {
                        display_name: mirror
                            .groups
                            .iter()
                            .find(|g| {
                                g.key.entra_id == selected.entra_id && g.key.role == selected.role
                            })
                            .map_or_else(|| display_name.clone(), |g| g.name.clone()),
                        members: people
                            .iter()
                            .filter_map(|p| match &p.outcome {
                                PersonOutcome::Found { user, member_of }
                                    if member_of.contains(&selected.entra_id) =>
                                {
                                    Some(std::sync::Arc::new(user.into()))
                                }
                                _ => None,
                            })
                            .collect(),
                    },
                    Some(GroupCountOutcome::Deleted) => GroupOutcome::Failed {
                        reason: "deleted in Entra; the next full run converts its synced group \
                                 (R12); left as it is now"
                            .to_owned(),
                    },
                    Some(GroupCountOutcome::Failed { reason }) => GroupOutcome::Failed {
                        reason: reason.clone(),
                    },
                    None => GroupOutcome::Failed {
                        reason: "not read".to_owned(),
                    },
                };
                GroupFetch {
                    entra_id: selected.entra_id.clone(),
                    outcome,
                }
            })
            .collect(),
    };
    let selected_keys: Vec<_> = policy
        .selected_groups
        .iter()
        .map(|g| (&g.entra_id, g.role))
        .collect();
    let restricted_mirror = Mirror {
        groups: mirror
            .groups
            .iter()
            .filter(|g| selected_keys.contains(&(&g.key.entra_id, g.key.role)))
            .map(|g| {
                let mut g = g.clone();
                g.members.retain(|m| picked.contains(m));
                g
            })
            .collect(),
        users: mirror
            .users
            .iter()
            .filter(|u| picked.contains(&u.entra_id))
            .cloned()
            .collect(),
        converted: mirror.converted.clone(),
    };
    Restricted {
        snapshot,
        mirror: restricted_mirror,
        picked,
    }
}

fn user_of(op: &Op) -> Option<&UserLabel> {
    match op {
        Op::CreateUser { user, .. }
        | Op::AdoptUser { user, .. }
        | Op::UpdateUser { user, .. }
        | Op::ActivateUser { user, .. }
        | Op::DeactivateUser { user, .. } => Some(user),
        _ => None,
    }
}

/// Keeps only what the plan does to the picked people (pure): their own operations and their
/// memberships, and a synced group's creation when one of them joins it and the Entra group has
/// no synced group yet. A person whose email belongs to a target user linked to someone else is
/// left out, with an error. The deletion guard (R18) is weighed on what is left.
pub fn confine(
    mut planned: Plan,
    policy: &TenantPolicy,
    picked: &HashSet<EntraObjectId>,
    full_mirror: &Mirror,
) -> Plan {
    let mut blocked: HashSet<EntraObjectId> = HashSet::new();
    for op in &planned.ops {
        if let Op::AdoptUser {
            user, target_id, ..
        } = op
            && let Some(owner) = full_mirror
                .users
                .iter()
                .find(|u| &u.target_id == target_id && !picked.contains(&u.entra_id))
        {
            blocked.insert(user.entra_id.clone());
            planned.notes.push(Note {
                subject: Subject::User(user.clone()),
                severity: Severity::Error,
                message: format!(
                    "the target user with this email ({target_id}) is synced for another Entra \
                     user ({}); nothing was changed for this person: a full run settles it (R9a)",
                    owner.entra_id
                ),
            });
        }
    }
    let allowed = |id: &EntraObjectId| picked.contains(id) && !blocked.contains(id);
    let mut ops: Vec<Op> = Vec::new();
    for op in planned.ops {
        match op {
            Op::ConvertToSystemGroup { .. } | Op::RenameGroup { .. } => {}
            Op::AddMembers {
                group,
                group_name,
                mut users,
            } => {
                users.retain(|u| allowed(&u.entra_id));
                if !users.is_empty() {
                    ops.push(Op::AddMembers {
                        group,
                        group_name,
                        users,
                    });
                }
            }
            Op::RemoveMembers {
                group,
                group_name,
                mut users,
            } => {
                users.retain(|u| allowed(&u.entra_id));
                if !users.is_empty() {
                    ops.push(Op::RemoveMembers {
                        group,
                        group_name,
                        users,
                    });
                }
            }
            op @ Op::CreateGroup { .. } => ops.push(op),
            op => {
                if user_of(&op).is_some_and(|u| allowed(&u.entra_id)) {
                    ops.push(op);
                }
            }
        }
    }
    // A group is created only for a picked person who joins it, and only when its Entra group
    // has no synced group (of either role) that a full run would convert first.
    let joined: HashSet<_> = ops
        .iter()
        .filter_map(|op| match op {
            Op::AddMembers { group, .. } => Some(group.clone()),
            _ => None,
        })
        .collect();
    let created: HashSet<_> = ops
        .iter()
        .filter_map(|op| match op {
            Op::CreateGroup { group, .. }
                if joined.contains(group)
                    && !full_mirror
                        .groups
                        .iter()
                        .any(|g| g.key.entra_id == group.entra_id) =>
            {
                Some(group.clone())
            }
            _ => None,
        })
        .collect();
    let has_group = |group: &crate::plan::GroupKey| {
        created.contains(group) || full_mirror.groups.iter().any(|g| &g.key == group)
    };
    ops.retain(|op| match op {
        Op::CreateGroup { group, .. } => created.contains(group),
        Op::AddMembers { group, .. } => has_group(group),
        _ => true,
    });
    planned.ops = ops;
    planned.notes.retain(|note| match &note.subject {
        Subject::User(user) => picked.contains(&user.entra_id),
        Subject::Group { .. } => true,
        Subject::Run => false,
    });
    let deactivations = planned.ops.iter().filter(|op| op.deactivates()).count();
    planned.hold = planned.hold.and_then(|mut hold| {
        let threshold = policy.deletion_threshold as usize;
        (threshold > 0 && deactivations > threshold).then(|| {
            hold.deactivations = deactivations;
            hold
        })
    });
    planned
}

fn step(
    entra_id: Option<&EntraObjectId>,
    email: &str,
    name: &str,
    action: &str,
    message: String,
) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::User,
        entra_id: entra_id.cloned(),
        email: Some(email.to_owned()),
        name: Some(name.to_owned()),
        action: action.to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity: Severity::Info,
        message: Some(message),
    }
}

fn display_name(user: &crate::plan::EntraUser) -> String {
    user.display_name
        .clone()
        .or_else(|| {
            let name = format!(
                "{} {}",
                user.given_name.as_deref().unwrap_or(""),
                user.surname.as_deref().unwrap_or("")
            );
            (!name.trim().is_empty()).then(|| name.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The report's step lines for each asked-for person (pure): found in Entra or not, in scope
/// or why not (which selected groups), and matched, adopted or created in the target. What
/// changed (fields old → new, groups joined and left) are the applied operations' own lines.
/// Problems are notes (warnings and errors), so they count in the run's status.
pub fn steps(
    policy: &TenantPolicy,
    people: &[PersonFetch],
    groups: &[GroupCount],
    full_mirror: &Mirror,
    planned: &mut Plan,
) -> Vec<ReportEntry> {
    let group_label = |id: &EntraObjectId| {
        let role = policy
            .selected_groups
            .iter()
            .find(|g| &g.entra_id == id)
            .map(|g| g.role)
            .unwrap_or(crate::domain::Role::Internal);
        match groups
            .iter()
            .find(|c| &c.entra_id == id)
            .map(|c| &c.outcome)
        {
            Some(GroupCountOutcome::Found { display_name, .. }) => {
                GroupKind::synced(role).label(display_name)
            }
            _ => id.to_string(),
        }
    };
    let unreadable: Vec<(&EntraObjectId, String)> = planned
        .groups
        .iter()
        .filter(|g| g.status != crate::plan::GroupStatus::Found)
        .map(|g| (&g.entra_id, g.message.clone().unwrap_or_default()))
        .collect();
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for person in people {
        match &person.outcome {
            PersonOutcome::Found { user, member_of } => {
                let name = display_name(user);
                let email = user
                    .mail
                    .clone()
                    .or_else(|| user.user_principal_name.clone())
                    .unwrap_or_else(|| person.asked.clone());
                let id = Some(&user.id);
                let account = match user.account_enabled {
                    Some(true) => "account enabled",
                    Some(false) => "account disabled",
                    None => "account status not returned",
                };
                entries.push(step(
                    id,
                    &email,
                    &name,
                    "found in Entra",
                    format!(
                        "asked for {}: {name} ({}), {account}",
                        person.asked,
                        user.user_principal_name.as_deref().unwrap_or("no UPN")
                    ),
                ));
                let (readable, unread): (Vec<&EntraObjectId>, Vec<&EntraObjectId>) = member_of
                    .iter()
                    .partition(|g| !unreadable.iter().any(|(u, _)| u == g));
                let mut scope = if readable.is_empty() && unread.is_empty() {
                    let all: Vec<String> = policy
                        .selected_groups
                        .iter()
                        .map(|g| group_label(&g.entra_id))
                        .collect();
                    (
                        "out of scope",
                        format!(
                            "a direct member of none of the selected groups ({})",
                            all.join(", ")
                        ),
                    )
                } else {
                    (
                        "in scope",
                        format!(
                            "a direct member of {}",
                            member_of
                                .iter()
                                .map(&group_label)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                };
                for g in &unread {
                    if let Some((_, why)) = unreadable.iter().find(|(u, _)| u == g) {
                        scope
                            .1
                            .push_str(&format!("; {} is not changed now: {why}", group_label(g)));
                    }
                }
                entries.push(step(id, &email, &name, scope.0, scope.1));
                let own: Vec<&Op> = planned
                    .ops
                    .iter()
                    .filter(|op| user_of(op).is_some_and(|u| u.entra_id == user.id))
                    .collect();
                let synced = full_mirror.users.iter().find(|u| u.entra_id == user.id);
                let target = if let Some(Op::CreateUser { .. }) =
                    own.iter().find(|op| matches!(op, Op::CreateUser { .. }))
                {
                    Some((
                        "created in the target",
                        format!("no target user has {email}: created"),
                    ))
                } else if let Some(Op::AdoptUser { target_id, .. }) =
                    own.iter().find(|op| matches!(op, Op::AdoptUser { .. }))
                {
                    Some((
                        "matched in the target",
                        format!("target user {target_id} has the email {email}: adopted (R4)"),
                    ))
                } else if let Some(synced) = synced {
                    Some((
                        "matched in the target",
                        format!("already synced as target user {}", synced.target_id),
                    ))
                } else if readable.is_empty() && unread.is_empty() {
                    Some((
                        "not in the target",
                        "never synced and in no selected group: nothing to do".to_owned(),
                    ))
                } else {
                    None
                };
                if let Some((action, message)) = target {
                    entries.push(step(id, &email, &name, action, message));
                }
                let touched = planned.ops.iter().any(|op| match op {
                    Op::AddMembers { users, .. } | Op::RemoveMembers { users, .. } => {
                        users.iter().any(|u| u.entra_id == user.id)
                    }
                    op => user_of(op).is_some_and(|u| u.entra_id == user.id),
                });
                if !touched && synced.is_some() {
                    entries.push(step(
                        id,
                        &email,
                        &name,
                        "up to date",
                        "nothing differs from what dirsync last synced for them (R15)".to_owned(),
                    ));
                }
            }
            PersonOutcome::NotFound => {
                let synced = mirror_match(full_mirror, &person.asked);
                let (id, email, name) = match synced {
                    Some(u) => (
                        Some(u.entra_id.clone()),
                        u.state.fields.email.to_string(),
                        format!("{} {}", u.state.fields.first_name, u.state.fields.last_name),
                    ),
                    None => (None, person.asked.clone(), String::new()),
                };
                let message = match synced {
                    Some(u) => format!(
                        "not found in Entra: Graph has no user {}; dirsync synced them before \
                         (target user {}), so they leave every synced group and are deactivated \
                         if the rules say so (R10, R11)",
                        person.asked, u.target_id
                    ),
                    None => format!(
                        "not found in Entra: Graph has no user with the object ID or user \
                         principal name {} (deleted, or mistyped), and dirsync never synced \
                         them: nothing to do",
                        person.asked
                    ),
                };
                notes.push(Note {
                    subject: Subject::User(UserLabel {
                        entra_id: id.unwrap_or_default(),
                        email: email.into(),
                        name: name.into(),
                    }),
                    severity: Severity::Warning,
                    message,
                });
            }
            PersonOutcome::Failed { reason } => notes.push(Note {
                subject: Subject::User(UserLabel {
                    entra_id: EntraObjectId::default(),
                    email: person.asked.as_str().into(),
                    name: "".into(),
                }),
                severity: Severity::Error,
                message: format!(
                    "could not read {} from Entra: {reason}; nothing was changed for them",
                    person.asked
                ),
            }),
        }
    }
    planned.notes.extend(notes);
    entries
}

/// What reading and planning an on-demand run produced.
pub(super) struct PeopleRead {
    pub plan: Plan,
    pub stats: FetchStats,
    pub mirror: Mirror,
    pub steps: Vec<ReportEntry>,
}

/// Reads the picked people and the selected groups' names from Entra, the mirror and the target
/// users the plan needs, then plans for the picked people only.
pub(super) async fn read_and_plan_people(
    store: &dyn Store,
    tenant: &Tenant,
    source: &dyn DirectorySource,
    signing_in: Option<AbortOnDrop<Result<(), SourceError>>>,
    target: &dyn TargetAdapter,
    people: &[String],
) -> Result<PeopleRead, ReadFailure> {
    let group_ids: Vec<_> = tenant
        .policy
        .selected_groups
        .iter()
        .map(|g| g.entra_id.clone())
        .collect();
    // The mirror loads while Entra is read (issue 13: 100,000 synced users took 180–190 ms to
    // load in the bench's no-change run); an Entra that cannot be read is still what the run
    // says.
    let reading_entra = async {
        sign_in(source, signing_in)
            .await
            .map_err(ReadFailure::entra)?;
        let groups = source
            .count_members(&group_ids)
            .await
            .map_err(ReadFailure::entra)?;
        let fetched = source
            .fetch_people(people, &group_ids)
            .await
            .map_err(ReadFailure::entra)?;
        Ok::<_, ReadFailure>((groups, fetched))
    };
    let (read, mirror) = tokio::join!(reading_entra, store.load_mirror(&tenant.key));
    let (groups, fetched) = read?;
    let mirror = mirror?;
    let restricted = restrict(&tenant.policy, &fetched, &groups, &mirror);
    let wanted = emails_to_look_up(&tenant.policy, &restricted.snapshot, &restricted.mirror);
    let found = if wanted.is_empty() {
        Vec::new()
    } else {
        target.find_users_by_email(&wanted).await.map_err(|err| {
            ReadFailure::Unreadable(format!(
                "could not look up existing {} users: {err}",
                target.kind()
            ))
        })?
    };
    let planned = plan(PlanInput {
        policy: &tenant.policy,
        snapshot: &restricted.snapshot,
        mirror: &restricted.mirror,
        target: &TargetLookups::new(found),
        now: Utc::now(),
        approved_deactivations: None,
    });
    let mut planned = confine(planned, &tenant.policy, &restricted.picked, &mirror);
    for summary in &mut planned.groups {
        if let Some(GroupCountOutcome::Found {
            direct_user_members,
            ..
        }) = groups
            .iter()
            .find(|c| c.entra_id == summary.entra_id)
            .map(|c| &c.outcome)
        {
            summary.members_seen = Some(*direct_user_members as usize);
        }
    }
    let steps = steps(&tenant.policy, &fetched, &groups, &mirror, &mut planned);
    Ok(PeopleRead {
        plan: planned,
        stats: FetchStats {
            requests: (group_ids.len() * 2 + people.len() * 2) as u64,
            ..FetchStats::default()
        },
        mirror,
        steps,
    })
}

/// Why an on-demand run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncPeopleError {
    /// What was asked for is not one to five people.
    #[error("{0}")]
    Invalid(String),
    /// R21: a run is in progress for the tenant; nothing was started.
    #[error("run {0} is in progress for this tenant; sync these people when it has finished (R21)")]
    AlreadyRunning(crate::store::RunId),
    #[error(transparent)]
    Sync(#[from] super::SyncError),
}

/// Issue 14: syncs `people` (as typed: emails or object IDs) now, in `by`'s name, and waits for
/// the small run to finish. The API, the console and the CLI all sync people through here.
pub async fn sync_people(
    ctx: &super::SyncContext,
    tenant: &crate::domain::TenantKey,
    by: &str,
    people: &[String],
) -> Result<super::RunOutcome, SyncPeopleError> {
    let people = parse_people(people).map_err(SyncPeopleError::Invalid)?;
    match super::start_people_run(ctx, tenant, by, people).await? {
        super::RunStartOutcome::Started(pending) => Ok(pending.execute().await?),
        super::RunStartOutcome::AlreadyRunning(id) => Err(SyncPeopleError::AlreadyRunning(id)),
    }
}

/// One person's lines of an on-demand run's report, in order: the steps, then what changed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PersonSteps {
    #[schema(value_type = Option<String>)]
    pub entra_id: Option<EntraObjectId>,
    pub email: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<ReportEntry>,
}

/// Groups a run's user lines by person (by Entra object ID, or by email when there is none), in
/// the order they first appear.
pub fn person_steps(entries: &[ReportEntry]) -> Vec<PersonSteps> {
    let mut people: Vec<PersonSteps> = Vec::new();
    for entry in entries.iter().filter(|e| e.subject == SubjectKind::User) {
        let id = entry
            .entra_id
            .clone()
            .filter(|id| *id != EntraObjectId::default());
        let found = people.iter_mut().find(|p| match (&p.entra_id, &id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => p.email == entry.email,
            _ => false,
        });
        match found {
            Some(person) => person.steps.push(entry.clone()),
            None => people.push(PersonSteps {
                entra_id: id,
                email: entry.email.clone(),
                name: entry.name.clone(),
                steps: vec![entry.clone()],
            }),
        }
    }
    people
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeactivationStatus, Email, Role, TargetGroupId, TargetUserId, UserStatus};
    use crate::plan::{
        DeactivationReason, GroupKey, MirrorGroup, MirrorUser, SelectedGroup, UserFields, UserState,
    };

    fn oid(n: u128) -> EntraObjectId {
        uuid::Uuid::from_u128(n).into()
    }

    fn label(n: u128) -> UserLabel {
        UserLabel {
            entra_id: oid(n),
            email: format!("u{n}@contoso.com").into(),
            name: format!("User {n}").into(),
        }
    }

    fn mirror_user(n: u128) -> MirrorUser {
        MirrorUser {
            entra_id: oid(n),
            target_id: TargetUserId::new(format!("t{n}")).unwrap(),
            state: UserState {
                fields: UserFields {
                    email: Email::parse(&format!("u{n}@contoso.com")).unwrap(),
                    first_name: "User".into(),
                    last_name: n.to_string().into(),
                    phone: None,
                    job_title: None,
                },
                role: Role::Internal,
                status: UserStatus::Active,
            },
        }
    }

    fn policy(threshold: u32) -> TenantPolicy {
        TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: oid(0x100),
                role: Role::Internal,
            }],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: threshold,
        }
    }

    #[test]
    fn people_are_one_to_five_emails_or_object_ids_without_repeats() {
        let id = "0B6F1A52-9D3C-4C43-9C1E-2F1F7D6A0E11";
        assert_eq!(
            parse_people(&[
                format!(" ada@contoso.com , {id}\nADA@contoso.com"),
                String::new()
            ]),
            Ok(vec!["ada@contoso.com".to_owned(), id.to_ascii_lowercase()])
        );
        assert!(parse_people(&[]).unwrap_err().contains("at least one"));
        assert!(
            parse_people(&["ada".into()])
                .unwrap_err()
                .contains("neither")
        );
        assert!(parse_people(&["a b@c.com".into()]).is_err());
        let six: Vec<String> = (1..=6).map(|n| format!("p{n}@contoso.com")).collect();
        assert!(parse_people(&six).unwrap_err().contains("at most 5"));
        assert_eq!(parse_people(&six[..5]).unwrap().len(), 5);
    }

    #[test]
    fn confine_keeps_only_what_concerns_the_picked_people() {
        let group = GroupKey {
            entra_id: oid(0x100),
            role: Role::Internal,
        };
        let mirror = Mirror {
            groups: vec![MirrorGroup {
                key: group.clone(),
                target_id: TargetGroupId::new("g1").unwrap(),
                name: "Staff".into(),
                members: vec![oid(1), oid(2), oid(3)],
            }],
            users: vec![mirror_user(1), mirror_user(2), mirror_user(3)],
            converted: Vec::new(),
        };
        let deactivate = |n| Op::DeactivateUser {
            user: label(n),
            target_id: TargetUserId::new(format!("t{n}")).unwrap(),
            to: UserStatus::Inactive,
            reason: DeactivationReason::RemovedFromSyncedGroups,
        };
        let planned = Plan {
            ops: vec![
                Op::RemoveMembers {
                    group: group.clone(),
                    group_name: "Staff".into(),
                    users: vec![label(1), label(2)],
                },
                Op::RenameGroup {
                    group: group.clone(),
                    target_id: TargetGroupId::new("g1").unwrap(),
                    old_name: "Staff".into(),
                    new_name: "Staff LLP".into(),
                },
                // Adopting user 3's target user for user 4 would take it from someone not picked.
                Op::AdoptUser {
                    user: label(4),
                    target_id: TargetUserId::new("t3").unwrap(),
                    changes: Vec::new(),
                    state: Box::new(mirror_user(3).state),
                    releases: None,
                },
                deactivate(1),
                deactivate(2),
            ],
            ..Plan::default()
        };
        let picked: HashSet<EntraObjectId> = [oid(1), oid(4)].into();

        let confined = confine(planned, &policy(500), &picked, &mirror);

        assert_eq!(
            confined.ops,
            vec![
                Op::RemoveMembers {
                    group,
                    group_name: "Staff".into(),
                    users: vec![label(1)],
                },
                deactivate(1),
            ]
        );
        assert_eq!(confined.notes.len(), 1);
        assert_eq!(confined.notes[0].severity, Severity::Error);
        assert!(
            confined.notes[0]
                .message
                .contains("synced for another Entra user")
        );
        assert_eq!(confined.hold, None);
    }
}
