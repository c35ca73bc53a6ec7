//! How plan notes and applied (or failed) operations become lines of a run's report (R19).
//! Group names carry their R2 label (`Sales [Synced Group]`, `Legal_1745313810193 [System group]`).

use crate::domain::{EntraObjectId, GroupKind};
use crate::plan::{FieldChange, GroupKey, ManagedField, Note, Op, Severity, Subject, UserLabel};

/// A synced group's name with its R2 label; an unknown (empty) name stays empty.
fn synced_label(group: &GroupKey, name: &str) -> String {
    labelled(GroupKind::synced(group.role), name)
}

fn labelled(kind: GroupKind, name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        kind.label(name)
    }
}
use crate::store::{ReportEntry, SubjectKind};

fn user_entry(user: &UserLabel, action: &str, severity: Severity) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::User,
        entra_id: Some(user.entra_id.clone()),
        email: Some(user.email.to_string()),
        name: Some(user.name.to_string()),
        action: action.to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity,
        message: None,
    }
}

fn group_entry(
    entra_id: &EntraObjectId,
    name: &str,
    action: &str,
    severity: Severity,
) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::Group,
        entra_id: Some(entra_id.clone()),
        email: None,
        name: Some(name.to_owned()),
        action: action.to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity,
        message: None,
    }
}

/// A line about the run as a whole.
pub fn run_entry(action: &str, severity: Severity, message: String) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::Run,
        entra_id: None,
        email: None,
        name: None,
        action: action.to_owned(),
        field: None,
        old_value: None,
        new_value: None,
        severity,
        message: Some(message),
    }
}

pub fn note_entry(note: &Note) -> ReportEntry {
    let mut entry = match &note.subject {
        Subject::User(user) => user_entry(user, note.severity.as_str(), note.severity),
        Subject::Group {
            entra_id,
            role,
            name,
        } => group_entry(
            entra_id,
            &labelled(GroupKind::synced(*role), name),
            note.severity.as_str(),
            note.severity,
        ),
        Subject::Run => run_entry(note.severity.as_str(), note.severity, String::new()),
    };
    entry.message = Some(note.message.clone());
    entry
}

fn change_action(change: &FieldChange) -> &'static str {
    match (change.field, change.new.as_deref()) {
        (ManagedField::Status, Some("active")) => "activated",
        (ManagedField::Status, _) => "deactivated",
        _ => "updated",
    }
}

fn change_entries(user: &UserLabel, changes: &[FieldChange], prefix: &str) -> Vec<ReportEntry> {
    changes
        .iter()
        .map(|change| {
            let mut entry = user_entry(
                user,
                &format!("{prefix}{}", change_action(change)),
                Severity::Info,
            );
            entry.field = Some(change.field.as_str().to_owned());
            entry.old_value = change.old.clone();
            entry.new_value = change.new.clone();
            entry
        })
        .collect()
}

/// The report lines for an operation that succeeded — or, with `prefix = "planned: "`, that a
/// held run would have carried out.
pub fn op_entries(op: &Op, prefix: &str) -> Vec<ReportEntry> {
    let action = |what: &str| format!("{prefix}{what}");
    match op {
        Op::ConvertToSystemGroup {
            group,
            old_name,
            new_name,
            reason,
            ..
        } => {
            let old_label = synced_label(group, old_name);
            let mut entry = group_entry(
                &group.entra_id,
                &old_label,
                &action("converted to system group"),
                Severity::Info,
            );
            entry.field = Some("name".to_owned());
            entry.old_value = Some(old_label);
            entry.new_value = Some(labelled(GroupKind::System, new_name));
            entry.message = Some(reason.describe().to_owned());
            vec![entry]
        }
        Op::CreateGroup { group, name } => {
            let mut entry = group_entry(
                &group.entra_id,
                &synced_label(group, name),
                &action("group created"),
                Severity::Info,
            );
            entry.field = Some("role".to_owned());
            entry.new_value = Some(group.role.to_string());
            vec![entry]
        }
        Op::RenameGroup {
            group,
            old_name,
            new_name,
            ..
        } => {
            let new_label = synced_label(group, new_name);
            let mut entry = group_entry(
                &group.entra_id,
                &new_label,
                &action("group renamed"),
                Severity::Info,
            );
            entry.field = Some("name".to_owned());
            entry.old_value = Some(synced_label(group, old_name));
            entry.new_value = Some(new_label);
            vec![entry]
        }
        Op::CreateUser { user, state } => {
            let mut entry = user_entry(user, &action("created"), Severity::Info);
            entry.field = Some("role".to_owned());
            entry.new_value = Some(state.role.to_string());
            vec![entry]
        }
        Op::AdoptUser {
            user,
            changes,
            releases,
            ..
        } => {
            let mut entries = vec![user_entry(user, &action("adopted"), Severity::Info)];
            entries[0].message = Some(match releases {
                None => {
                    "an existing target user with this email is now managed by dirsync".to_owned()
                }
                Some(old) => format!(
                    "rehire: the target user with this email was linked to Entra user {} ({}), \
                     who left; that link is released and this user takes the target user over",
                    old.entra_id, old.name
                ),
            });
            entries.extend(change_entries(user, changes, prefix));
            entries
        }
        Op::UpdateUser { user, changes, .. } => change_entries(user, changes, prefix),
        Op::ActivateUser { user, from, .. } => {
            let mut entry = user_entry(user, &action("activated"), Severity::Info);
            entry.field = Some("status".to_owned());
            entry.old_value = Some(from.to_string());
            entry.new_value = Some("active".to_owned());
            vec![entry]
        }
        Op::DeactivateUser {
            user, to, reason, ..
        } => {
            let mut entry = user_entry(user, &action("deactivated"), Severity::Info);
            entry.field = Some("status".to_owned());
            entry.old_value = Some("active".to_owned());
            entry.new_value = Some(to.to_string());
            entry.message = Some(reason.describe().to_owned());
            vec![entry]
        }
        Op::AddMembers {
            group,
            group_name,
            users,
        } => users
            .iter()
            .map(|user| {
                let mut entry = user_entry(user, &action("added to group"), Severity::Info);
                entry.new_value = Some(synced_label(group, group_name));
                entry
            })
            .collect(),
        Op::RemoveMembers {
            group,
            group_name,
            users,
        } => users
            .iter()
            .map(|user| {
                let mut entry = user_entry(user, &action("removed from group"), Severity::Info);
                entry.old_value = Some(synced_label(group, group_name));
                entry
            })
            .collect(),
    }
}

/// The error line for an operation (or one user of a membership batch) the target refused.
pub fn failure_entry(op: &Op, user: Option<&UserLabel>, message: String) -> ReportEntry {
    let (mut entry, what) = match (op, user) {
        (
            Op::ConvertToSystemGroup {
                group, old_name, ..
            },
            _,
        ) => (
            group_entry(
                &group.entra_id,
                &synced_label(group, old_name),
                "",
                Severity::Error,
            ),
            "converting to a system group",
        ),
        (Op::CreateGroup { group, name }, _) => (
            group_entry(
                &group.entra_id,
                &synced_label(group, name),
                "",
                Severity::Error,
            ),
            "creating the group",
        ),
        (
            Op::RenameGroup {
                group, new_name, ..
            },
            _,
        ) => (
            group_entry(
                &group.entra_id,
                &synced_label(group, new_name),
                "",
                Severity::Error,
            ),
            "renaming the group",
        ),
        (Op::CreateUser { user, .. }, _) => {
            (user_entry(user, "", Severity::Error), "creating the user")
        }
        (Op::AdoptUser { user, .. }, _) => {
            (user_entry(user, "", Severity::Error), "adopting the user")
        }
        (Op::UpdateUser { user, .. }, _) => {
            (user_entry(user, "", Severity::Error), "updating the user")
        }
        (Op::ActivateUser { user, .. }, _) => {
            (user_entry(user, "", Severity::Error), "activating the user")
        }
        (Op::DeactivateUser { user, .. }, _) => (
            user_entry(user, "", Severity::Error),
            "deactivating the user",
        ),
        (Op::AddMembers { users, .. }, one) => (
            user_entry(one.unwrap_or(&users[0]), "", Severity::Error),
            "adding to group",
        ),
        (Op::RemoveMembers { users, .. }, one) => (
            user_entry(one.unwrap_or(&users[0]), "", Severity::Error),
            "removing from group",
        ),
    };
    entry.action = "error".to_owned();
    entry.message = Some(match op {
        Op::AddMembers {
            group, group_name, ..
        }
        | Op::RemoveMembers {
            group, group_name, ..
        } => {
            format!(
                "{what} {:?} failed: {message}",
                synced_label(group, group_name)
            )
        }
        _ => format!("{what} failed: {message}"),
    });
    entry
}
