//! Item 11, drift repair: before planning, the run checks that the target still holds what the
//! mirror says it synced — each synced group and its members — and forgets what the target has
//! lost (a group or user deleted there by hand, the target restored from an old backup), so the
//! plan creates, adopts or adds it again in this same run, with a report line for each.

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use futures::stream::{self, StreamExt};

use crate::domain::{EntraObjectId, TargetUserId};
use crate::plan::{Mirror, Severity};
use crate::store::{MirrorChanges, ReportEntry, SubjectKind};
use crate::target::{TargetAdapter, TargetError};

/// What the check found and the mirror changes that forget it.
#[derive(Debug, Default)]
pub(super) struct Repair {
    pub changes: MirrorChanges,
    pub entries: Vec<ReportEntry>,
}

/// Compares the mirror with the target and gives it back without what the target has lost.
/// Best effort: a target that cannot be read now leaves the mirror as it is, with a warning.
pub(super) async fn repair_drift(
    target: &dyn TargetAdapter,
    mirror: Mirror,
    concurrency: usize,
) -> (Mirror, Repair) {
    let reads: Vec<_> = mirror
        .groups
        .iter()
        .enumerate()
        .map(|(i, group)| async move { (i, target.group_members(&group.target_id).await) })
        .collect();
    let mut answers: Vec<_> = stream::iter(reads)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    answers.sort_by_key(|(i, _)| *i);
    // The comparison is a pass over every synced membership (140,000 at 100,000 users): on the
    // blocking pool, so it does not hold up the Entra read sharing this run's workers (issue 13).
    let (mut mirror, mut repair, lost_groups, lost_members) = super::on_blocking_pool(move || {
        let (repair, lost_groups, lost_members) = compare(&mirror, answers);
        (mirror, repair, lost_groups, lost_members)
    })
    .await;
    if lost_groups.is_empty() && lost_members.is_empty() {
        return (mirror, repair);
    }
    forget_what_is_lost(target, &mut mirror, &mut repair, lost_groups, lost_members).await;
    (mirror, repair)
}

/// What the target answered for the mirror's group at this index: its members, or `None` when
/// it has no such group.
type MembersAnswer = (usize, Result<Option<Vec<TargetUserId>>, TargetError>);

/// The target's answers against the mirror: the report's lines so far, the groups the target
/// lost (by index) and the (group index, member) pairs it no longer has.
fn compare(
    mirror: &Mirror,
    answers: Vec<MembersAnswer>,
) -> (Repair, HashSet<usize>, Vec<(usize, EntraObjectId)>) {
    let mut repair = Repair::default();
    let target_ids: HashMap<&EntraObjectId, &TargetUserId> = mirror
        .users
        .iter()
        .map(|u| (&u.entra_id, &u.target_id))
        .collect();
    let mut lost_groups = HashSet::new();
    // (group index, member) pairs the target no longer has.
    let mut lost_members: Vec<(usize, EntraObjectId)> = Vec::new();
    for (i, answer) in answers {
        let group = &mirror.groups[i];
        match answer {
            Ok(None) => {
                lost_groups.insert(i);
                repair.entries.push(group_line(
                    group,
                    format!(
                        "the group {} was missing from the target (deleted there, or the target \
                         was restored from a backup); it is created again with its members",
                        group.target_id
                    ),
                ));
            }
            Ok(Some(members)) => {
                let present: HashSet<&TargetUserId> = members.iter().collect();
                for member in &group.members {
                    if target_ids
                        .get(member)
                        .is_some_and(|id| !present.contains(id))
                    {
                        lost_members.push((i, member.clone()));
                    }
                }
            }
            Err(err) => {
                repair.entries.push(ReportEntry {
                    action: "warning".to_owned(),
                    message: Some(format!(
                        "could not check that the target still holds group {}: {err}; it is \
                         assumed unchanged",
                        group.target_id
                    )),
                    ..group_line(group, String::new())
                });
            }
        }
    }
    (repair, lost_groups, lost_members)
}

/// Asks the target which of the users behind `lost_members` and `lost_groups` it still holds,
/// and forgets in `mirror` (and in `repair.changes`, for the database) what it lost.
async fn forget_what_is_lost(
    target: &dyn TargetAdapter,
    mirror: &mut Mirror,
    repair: &mut Repair,
    lost_groups: HashSet<usize>,
    lost_members: Vec<(usize, EntraObjectId)>,
) {
    // The users whose memberships are gone may be gone themselves: ask the target by email.
    let suspects: HashSet<EntraObjectId> = lost_members
        .iter()
        .map(|(_, user)| user.clone())
        .chain(
            lost_groups
                .iter()
                .flat_map(|&i| mirror.groups[i].members.iter().cloned()),
        )
        .collect();
    let emails: Vec<_> = mirror
        .users
        .iter()
        .filter(|u| suspects.contains(&u.entra_id))
        .map(|u| u.state.fields.email.clone())
        .collect();
    let found = match target.find_users_by_email(&emails).await {
        Ok(found) => found,
        Err(err) => {
            repair.entries.push(run_line(format!(
                "could not check which synced users the target still holds: {err}; they are \
                 assumed unchanged"
            )));
            return;
        }
    };
    let still_there: HashSet<&TargetUserId> = found.iter().map(|u| &u.id).collect();
    let lost_users: HashSet<EntraObjectId> = mirror
        .users
        .iter()
        .filter(|u| suspects.contains(&u.entra_id) && !still_there.contains(&u.target_id))
        .map(|u| u.entra_id.clone())
        .collect();

    for user in mirror
        .users
        .iter()
        .filter(|u| lost_users.contains(&u.entra_id))
    {
        repair.entries.push(ReportEntry {
            subject: SubjectKind::User,
            entra_id: Some(user.entra_id.clone()),
            email: Some(user.state.fields.email.to_string()),
            name: None,
            action: "missing from the target".to_owned(),
            field: None,
            old_value: Some(user.target_id.to_string()),
            new_value: None,
            severity: Severity::Warning,
            message: Some(
                "the user was missing from the target (deleted there, or the target was restored \
                 from a backup); it is created again, or adopted if found by email"
                    .to_owned(),
            ),
        });
    }
    let mut readded: HashMap<usize, usize> = HashMap::new();
    for (i, user) in &lost_members {
        if !lost_users.contains(user) && !lost_groups.contains(i) {
            *readded.entry(*i).or_default() += 1;
            repair
                .changes
                .members_removed
                .push((mirror.groups[*i].key.clone(), user.clone()));
        }
    }
    for (i, count) in &readded {
        let group = &mirror.groups[*i];
        repair.entries.push(group_line(
            group,
            format!(
                "{count} member(s) were missing from the group in the target; they are added again"
            ),
        ));
    }

    // Forget it all in the mirror the plan reads, as the flush does in the database.
    let lost_members: HashSet<(usize, EntraObjectId)> = lost_members.into_iter().collect();
    for (i, group) in mirror.groups.iter_mut().enumerate() {
        group.members.retain(|member| {
            !lost_users.contains(member) && !lost_members.contains(&(i, member.clone()))
        });
    }
    let mut index = 0;
    mirror.groups.retain(|group| {
        let keep = !lost_groups.contains(&index);
        if !keep {
            repair.changes.groups_forgotten.push(group.key.clone());
        }
        index += 1;
        keep
    });
    mirror
        .users
        .retain(|user| !lost_users.contains(&user.entra_id));
    repair.changes.users_forgotten = lost_users.into_iter().collect();
    repair.changes.users_forgotten.sort();
}

fn group_line(group: &crate::plan::MirrorGroup, message: String) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::Group,
        entra_id: Some(group.key.entra_id.clone()),
        email: None,
        name: Some(crate::domain::GroupKind::synced(group.key.role).label(&group.name)),
        action: "missing from the target".to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity: Severity::Warning,
        message: Some(message),
    }
}

fn run_line(message: String) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::Run,
        entra_id: None,
        email: None,
        name: None,
        action: "warning".to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity: Severity::Warning,
        message: Some(message),
    }
}
