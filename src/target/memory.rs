//! An in-memory `TargetAdapter` for tests: keeps users and groups, enforces the rules a real
//! target does (unique emails and group names, no archived users in groups), counts every write,
//! and can be told to fail chosen calls.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{MembershipOutcome, TargetAdapter, TargetError};
use crate::domain::{
    Email, EntraObjectId, GroupKind, Role, TargetGroupId, TargetUserId, UserStatus,
};
use crate::plan::{FieldChange, GroupKey, ManagedField, TargetUser, UserFields, UserState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryUser {
    pub fields: UserFields,
    pub role: Role,
    pub status: UserStatus,
    /// The Entra object ID the user is linked to, if dirsync manages it.
    pub external_id: Option<EntraObjectId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryGroup {
    pub name: String,
    pub kind: GroupKind,
    /// `None` for groups made by hand in the target.
    pub external_id: Option<EntraObjectId>,
    pub members: BTreeSet<TargetUserId>,
}

#[derive(Debug, Clone, Default)]
pub struct MemoryTargetState {
    pub users: BTreeMap<TargetUserId, MemoryUser>,
    pub groups: BTreeMap<TargetGroupId, MemoryGroup>,
    /// Every call that changed something (or tried to), in order.
    pub writes: Vec<String>,
    /// Emails whose create/update/adopt calls fail, to test partial failures.
    pub failing_emails: HashSet<Email>,
    /// When set, every write fails as if the target were down.
    pub outage: bool,
    /// When set, every write after this many fails: an outage that starts halfway.
    pub outage_after: Option<usize>,
    /// Item 2: every n-th create (user or group) is carried out but its answer is lost, as when a
    /// timeout strikes after the target did the work.
    pub lose_create_answer_every: Option<usize>,
    creates: usize,
    /// Item 12: when set, the credential is refused (every call answers 401 with this).
    pub refused_credential: Option<String>,
    /// Item 1: conversions to system groups (R12/R13) are refused.
    pub refuse_conversions: bool,
    next_id: u64,
}

impl MemoryTargetState {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn email_owner(&self, email: &Email) -> Option<&TargetUserId> {
        self.users
            .iter()
            .find(|(_, u)| &u.fields.email == email)
            .map(|(id, _)| id)
    }

    fn check_email_free(
        &self,
        email: &Email,
        except: Option<&TargetUserId>,
    ) -> Result<(), TargetError> {
        match self.email_owner(email) {
            Some(owner) if Some(owner) != except => Err(TargetError::Conflict(format!(
                "a user with email {email} already exists"
            ))),
            _ => Ok(()),
        }
    }

    fn write(&mut self, what: String) -> Result<(), TargetError> {
        if let Some(why) = &self.refused_credential {
            return Err(TargetError::Unauthorized(why.clone()));
        }
        self.writes.push(what);
        if self.outage || self.outage_after.is_some_and(|n| self.writes.len() > n) {
            Err(TargetError::Unavailable(
                "the target is unavailable (simulated outage)".to_owned(),
            ))
        } else {
            Ok(())
        }
    }

    /// Adds a user made by hand in the target (not managed by dirsync).
    pub fn add_manual_user(&mut self, fields: UserFields, status: UserStatus) -> TargetUserId {
        let id = TargetUserId::new(self.next_id("u")).expect("non-empty");
        self.users.insert(
            id.clone(),
            MemoryUser {
                fields,
                role: Role::Internal,
                status,
                external_id: None,
            },
        );
        id
    }

    /// Adds a group made by hand in the target, with these members.
    pub fn add_manual_group(
        &mut self,
        name: &str,
        members: impl IntoIterator<Item = TargetUserId>,
    ) -> TargetGroupId {
        let id = TargetGroupId::new(self.next_id("g")).expect("non-empty");
        self.groups.insert(
            id.clone(),
            MemoryGroup {
                name: name.to_owned(),
                kind: GroupKind::System,
                external_id: None,
                members: members.into_iter().collect(),
            },
        );
        id
    }

    pub fn user_by_email(&self, email: &str) -> Option<(&TargetUserId, &MemoryUser)> {
        let email = Email::parse(email).ok()?;
        self.users.iter().find(|(_, u)| u.fields.email == email)
    }

    /// A create's answer, unless this one is to be lost (the work done all the same).
    fn answer_create<T>(&mut self, created: T) -> Result<T, TargetError> {
        self.creates += 1;
        match self.lose_create_answer_every {
            Some(n) if n > 0 && self.creates % n == 0 => Err(TargetError::Unavailable(
                "the target did not answer in time (simulated lost answer; the create was done)"
                    .to_owned(),
            )),
            _ => Ok(created),
        }
    }

    pub fn group_by_name(&self, name: &str) -> Option<(&TargetGroupId, &MemoryGroup)> {
        self.groups.iter().find(|(_, g)| g.name == name)
    }
}

/// A shared handle: clones see the same state.
#[derive(Debug, Clone, Default)]
pub struct MemoryTarget {
    state: Arc<Mutex<MemoryTargetState>>,
}

impl MemoryTarget {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads or changes the target's state directly, as an admin (or a test) would.
    pub fn with<R>(&self, f: impl FnOnce(&mut MemoryTargetState) -> R) -> R {
        f(&mut self.state.lock().expect("target lock"))
    }

    pub fn write_count(&self) -> usize {
        self.with(|s| s.writes.len())
    }
}

fn user_not_found(id: &TargetUserId) -> TargetError {
    TargetError::NotFound(format!("no user with ID {id}"))
}

fn group_not_found(id: &TargetGroupId) -> TargetError {
    TargetError::NotFound(format!("no group with ID {id}"))
}

#[async_trait]
impl TargetAdapter for MemoryTarget {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn find_users_by_email(&self, emails: &[Email]) -> Result<Vec<TargetUser>, TargetError> {
        let wanted: HashSet<&Email> = emails.iter().collect();
        Ok(self.with(|s| {
            s.users
                .iter()
                .filter(|(_, u)| wanted.contains(&u.fields.email))
                .map(|(id, u)| TargetUser {
                    id: id.clone(),
                    fields: u.fields.clone(),
                    status: u.status,
                })
                .collect()
        }))
    }

    async fn create_user(
        &self,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<TargetUserId, TargetError> {
        self.with(|s| {
            s.write(format!("create user {}", state.fields.email))?;
            if s.failing_emails.contains(&state.fields.email) {
                return Err(TargetError::Rejected(format!(
                    "user {} was refused (simulated)",
                    state.fields.email
                )));
            }
            s.check_email_free(&state.fields.email, None)?;
            let id = TargetUserId::new(s.next_id("u")).expect("non-empty");
            s.users.insert(
                id.clone(),
                MemoryUser {
                    fields: state.fields.clone(),
                    role: state.role,
                    status: state.status,
                    external_id: Some(entra_id.clone()),
                },
            );
            s.answer_create(id)
        })
    }

    async fn adopt_user(
        &self,
        id: &TargetUserId,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<(), TargetError> {
        self.with(|s| {
            s.write(format!("adopt user {id} as {}", state.fields.email))?;
            if s.failing_emails.contains(&state.fields.email) {
                return Err(TargetError::Rejected(format!(
                    "user {} was refused (simulated)",
                    state.fields.email
                )));
            }
            s.check_email_free(&state.fields.email, Some(id))?;
            let user = s.users.get_mut(id).ok_or_else(|| user_not_found(id))?;
            *user = MemoryUser {
                fields: state.fields.clone(),
                role: state.role,
                status: state.status,
                external_id: Some(entra_id.clone()),
            };
            Ok(())
        })
    }

    async fn update_user(
        &self,
        id: &TargetUserId,
        changes: &[FieldChange],
        state: &UserState,
    ) -> Result<(), TargetError> {
        self.with(|s| {
            s.write(format!("update user {id}"))?;
            if s.failing_emails.contains(&state.fields.email) {
                return Err(TargetError::Rejected(format!(
                    "user {} was refused (simulated)",
                    state.fields.email
                )));
            }
            s.check_email_free(&state.fields.email, Some(id))?;
            let user = s.users.get_mut(id).ok_or_else(|| user_not_found(id))?;
            // Like the real adapters: only the changed fields, with the role and status (R5/R15).
            let wanted = &state.fields;
            for change in changes {
                let fields = &mut user.fields;
                match change.field {
                    ManagedField::FirstName => fields.first_name = wanted.first_name.clone(),
                    ManagedField::LastName => fields.last_name = wanted.last_name.clone(),
                    ManagedField::Email => fields.email = wanted.email.clone(),
                    ManagedField::Phone => fields.phone = wanted.phone.clone(),
                    ManagedField::JobTitle => fields.job_title = wanted.job_title.clone(),
                    ManagedField::Role | ManagedField::Status => {}
                }
            }
            user.role = state.role;
            user.status = state.status;
            Ok(())
        })
    }

    async fn set_user_status(
        &self,
        id: &TargetUserId,
        status: UserStatus,
    ) -> Result<(), TargetError> {
        self.with(|s| {
            s.write(format!("set status of {id} to {status}"))?;
            s.users
                .get_mut(id)
                .ok_or_else(|| user_not_found(id))?
                .status = status;
            Ok(())
        })
    }

    async fn verify_access(&self) -> Result<(), TargetError> {
        self.with(|s| match &s.refused_credential {
            Some(why) => Err(TargetError::Unauthorized(why.clone())),
            None => Ok(()),
        })
    }

    async fn group_members(
        &self,
        id: &TargetGroupId,
    ) -> Result<Option<Vec<TargetUserId>>, TargetError> {
        self.with(|s| {
            if s.outage {
                return Err(TargetError::Unavailable(
                    "the target is unavailable (simulated outage)".to_owned(),
                ));
            }
            Ok(s.groups
                .get(id)
                .map(|g| g.members.iter().cloned().collect()))
        })
    }

    async fn find_group(
        &self,
        key: &GroupKey,
        name: &str,
    ) -> Result<Option<TargetGroupId>, TargetError> {
        self.with(|s| {
            if s.outage {
                return Err(TargetError::Unavailable(
                    "the target is unavailable (simulated outage)".to_owned(),
                ));
            }
            Ok(s.groups
                .iter()
                .find(|(_, g)| {
                    g.name == name
                        && g.external_id.as_ref() == Some(&key.entra_id)
                        && g.kind == GroupKind::synced(key.role)
                })
                .map(|(id, _)| id.clone()))
        })
    }

    async fn create_group(&self, key: &GroupKey, name: &str) -> Result<TargetGroupId, TargetError> {
        self.with(|s| {
            s.write(format!("create group {name}"))?;
            if s.group_by_name(name).is_some() {
                return Err(TargetError::Conflict(format!(
                    "a group named {name:?} already exists"
                )));
            }
            let id = TargetGroupId::new(s.next_id("g")).expect("non-empty");
            s.groups.insert(
                id.clone(),
                MemoryGroup {
                    name: name.to_owned(),
                    kind: GroupKind::synced(key.role),
                    external_id: Some(key.entra_id.clone()),
                    members: BTreeSet::new(),
                },
            );
            s.answer_create(id)
        })
    }

    async fn rename_group(
        &self,
        id: &TargetGroupId,
        _key: &GroupKey,
        name: &str,
    ) -> Result<(), TargetError> {
        self.with(|s| {
            s.write(format!("rename group {id} to {name}"))?;
            if s.groups
                .iter()
                .any(|(other, g)| other != id && g.name == name)
            {
                return Err(TargetError::Conflict(format!(
                    "a group named {name:?} already exists"
                )));
            }
            s.groups
                .get_mut(id)
                .ok_or_else(|| group_not_found(id))?
                .name = name.to_owned();
            Ok(())
        })
    }

    async fn convert_to_system_group(
        &self,
        id: &TargetGroupId,
        new_name: &str,
    ) -> Result<(), TargetError> {
        self.with(|s| {
            s.write(format!("convert group {id} to system group {new_name}"))?;
            if s.refuse_conversions {
                return Err(TargetError::Rejected(format!(
                    "group {id} could not be made a system group (simulated)"
                )));
            }
            let group = s.groups.get_mut(id).ok_or_else(|| group_not_found(id))?;
            group.name = new_name.to_owned();
            group.kind = GroupKind::System;
            group.external_id = None;
            Ok(())
        })
    }

    async fn add_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        self.with(|s| {
            if let Err(err) = s.write(format!("add {} members to {group}", users.len())) {
                return MembershipOutcome {
                    failed: users.iter().map(|u| (u.clone(), err.clone())).collect(),
                };
            }
            let mut failed = Vec::new();
            for user in users {
                match s.users.get(user).map(|u| u.status) {
                    None => failed.push((user.clone(), user_not_found(user))),
                    Some(UserStatus::Archived) => failed.push((
                        user.clone(),
                        TargetError::Rejected(format!(
                            "archived user {user} cannot be added to a group"
                        )),
                    )),
                    Some(_) => match s.groups.get_mut(group) {
                        Some(g) => {
                            g.members.insert(user.clone());
                        }
                        None => failed.push((user.clone(), group_not_found(group))),
                    },
                }
            }
            MembershipOutcome { failed }
        })
    }

    async fn remove_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        self.with(|s| {
            if let Err(err) = s.write(format!("remove {} members from {group}", users.len())) {
                return MembershipOutcome {
                    failed: users.iter().map(|u| (u.clone(), err.clone())).collect(),
                };
            }
            match s.groups.get_mut(group) {
                Some(g) => {
                    for user in users {
                        g.members.remove(user);
                    }
                    MembershipOutcome::default()
                }
                None => MembershipOutcome {
                    failed: users
                        .iter()
                        .map(|u| (u.clone(), group_not_found(group)))
                        .collect(),
                },
            }
        })
    }
}
