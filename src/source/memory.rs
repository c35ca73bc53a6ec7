//! An in-memory `DirectorySource` for tests: a directory held in a mutex that a test edits
//! between runs to script "the next day".

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    DirectorySource, FetchStats, GroupCount, GroupCountOutcome, PersonFetch, PersonOutcome,
    SharedUsers, SourceError, SourceFetch, UserPresence,
};
use crate::domain::EntraObjectId;
use crate::plan::{EntraUser, GroupFetch, GroupOutcome, SourceSnapshot};

#[derive(Debug, Clone, Default)]
pub struct MemoryDirectory {
    pub users: BTreeMap<EntraObjectId, EntraUser>,
    /// Group ID → (display name, direct user member IDs).
    pub groups: BTreeMap<EntraObjectId, (String, Vec<EntraObjectId>)>,
    /// Groups whose read fails, with the reason, as a broken Graph page would.
    pub failing: HashMap<EntraObjectId, String>,
}

/// A shared handle: clones see the same directory.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    directory: Arc<Mutex<MemoryDirectory>>,
}

impl MemorySource {
    pub fn new(directory: MemoryDirectory) -> Self {
        Self {
            directory: Arc::new(Mutex::new(directory)),
        }
    }

    /// Changes the directory, as an Entra admin would between runs.
    pub fn edit<R>(&self, change: impl FnOnce(&mut MemoryDirectory) -> R) -> R {
        change(&mut self.directory.lock().expect("directory lock"))
    }
}

#[async_trait]
impl DirectorySource for MemorySource {
    async fn fetch_groups(&self, groups: &[EntraObjectId]) -> Result<SourceFetch, SourceError> {
        let directory = self.directory.lock().expect("directory lock");
        let shared = SharedUsers::default();
        let fetches = groups
            .iter()
            .map(|id| {
                let outcome = if let Some(reason) = directory.failing.get(id) {
                    GroupOutcome::Failed {
                        reason: reason.clone(),
                    }
                } else if let Some((name, members)) = directory.groups.get(id) {
                    GroupOutcome::Found {
                        display_name: name.clone(),
                        members: shared.share(
                            members
                                .iter()
                                .filter_map(|m| directory.users.get(m).cloned())
                                .collect(),
                        ),
                    }
                } else {
                    GroupOutcome::Deleted
                };
                GroupFetch {
                    entra_id: id.clone(),
                    outcome,
                }
            })
            .collect();
        Ok(SourceFetch {
            snapshot: SourceSnapshot { groups: fetches },
            stats: FetchStats {
                requests: groups.len() as u64,
                ..FetchStats::default()
            },
            notes: Vec::new(),
        })
    }

    async fn count_members(
        &self,
        groups: &[EntraObjectId],
    ) -> Result<Vec<GroupCount>, SourceError> {
        let directory = self.directory.lock().expect("directory lock");
        Ok(groups
            .iter()
            .map(|id| GroupCount {
                entra_id: id.clone(),
                outcome: match (directory.failing.get(id), directory.groups.get(id)) {
                    (Some(reason), _) => GroupCountOutcome::Failed {
                        reason: reason.clone(),
                    },
                    (None, Some((name, members))) => GroupCountOutcome::Found {
                        display_name: name.clone(),
                        direct_user_members: members
                            .iter()
                            .filter(|m| directory.users.contains_key(m))
                            .count() as u64,
                    },
                    (None, None) => GroupCountOutcome::Deleted,
                },
            })
            .collect())
    }

    async fn user_presence(&self, user: &EntraObjectId) -> Result<UserPresence, SourceError> {
        let directory = self.directory.lock().expect("directory lock");
        Ok(match directory.users.get(user) {
            None => UserPresence::Deleted,
            Some(u) if u.account_enabled == Some(false) => UserPresence::Disabled,
            Some(_) => UserPresence::Enabled,
        })
    }

    async fn fetch_people(
        &self,
        people: &[String],
        groups: &[EntraObjectId],
    ) -> Result<Vec<PersonFetch>, SourceError> {
        let directory = self.directory.lock().expect("directory lock");
        Ok(people
            .iter()
            .map(|asked| {
                let user = directory.users.values().find(|u| {
                    u.id.to_string().eq_ignore_ascii_case(asked)
                        || u.user_principal_name
                            .as_deref()
                            .is_some_and(|upn| upn.eq_ignore_ascii_case(asked))
                });
                let outcome = match user {
                    None => PersonOutcome::NotFound,
                    Some(user) => PersonOutcome::Found {
                        user: user.clone(),
                        member_of: groups
                            .iter()
                            .filter(|g| {
                                directory
                                    .groups
                                    .get(*g)
                                    .is_some_and(|(_, members)| members.contains(&user.id))
                            })
                            .cloned()
                            .collect(),
                    },
                };
                PersonFetch {
                    asked: asked.clone(),
                    outcome,
                }
            })
            .collect())
    }
}
