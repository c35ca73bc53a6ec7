//! Issue 14, what-if: before a change to a tenant's selected groups or roles is saved, the plan
//! a run would carry out under the *proposed* configuration (a dry run: nothing is written),
//! summed up as counts and the people it would create, move (role or synced groups), deactivate,
//! and the groups it would convert — "removing Litigation deactivates 48 people".

use std::collections::BTreeMap;

use serde::Serialize;

use super::{SyncContext, SyncError, dry_run_tenant};
use crate::domain::{EntraObjectId, GroupKind, TenantKey};
use crate::plan::{
    ConversionReason, GroupSummary, Hold, ManagedField, Op, Plan, PlanCounts, SelectedGroup,
    UserLabel,
};

/// The most people one list of a what-if carries; its `total` says how many there are.
pub const WHAT_IF_LIST_CAP: usize = 200;

/// One person in a what-if list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WhatIfPerson {
    #[schema(value_type = String)]
    pub entra_id: EntraObjectId,
    pub email: String,
    pub name: String,
    /// What happens to them, in a few words ("created, internal", "internal → basic; joins …").
    pub detail: String,
}

/// A capped list and its full length.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WhatIfList {
    pub total: usize,
    pub people: Vec<WhatIfPerson>,
}

impl WhatIfList {
    fn push(&mut self, person: WhatIfPerson) {
        self.total += 1;
        if self.people.len() < WHAT_IF_LIST_CAP {
            self.people.push(person);
        }
    }
}

/// A synced group the change would convert to a system group (R12, R13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WhatIfGroup {
    #[schema(value_type = String)]
    pub entra_id: EntraObjectId,
    /// The synced group's label, `Litigation [Synced Group]`.
    pub name: String,
    /// Its new name, `Litigation_1745313810193 [System group]`.
    pub new_name: String,
    pub reason: String,
    /// Members removed from it.
    pub members_removed: usize,
    /// Of those, the ones the run deactivates (in no other selected group, R12).
    pub members_deactivated: usize,
}

/// What a run would do under the proposed configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WhatIf {
    /// The same counts a run's report shows as planned.
    #[schema(value_type = Object)]
    pub counts: PlanCounts,
    /// Set when the deletion guard would hold the run (R18).
    #[schema(value_type = Option<Object>)]
    pub hold: Option<Hold>,
    /// New to dirsync: created in the target, or adopted by email (R4).
    pub created: WhatIfList,
    /// Already synced, with a new role (R14) or joining or leaving synced groups.
    pub moved: WhatIfList,
    pub deactivated: WhatIfList,
    pub converted: Vec<WhatIfGroup>,
    #[schema(value_type = Vec<Object>)]
    pub groups: Vec<GroupSummary>,
    /// One sentence per converted group and for the totals: "removing Litigation [Synced
    /// Group] deactivates 48 people".
    pub headlines: Vec<String>,
}

#[derive(Default)]
struct Movement {
    user: Option<UserLabel>,
    role: Option<(String, String)>,
    joins: Vec<String>,
    leaves: Vec<String>,
}

/// Sums up a plan as a what-if (pure).
pub fn summarize(plan: &Plan) -> WhatIf {
    let mut created = WhatIfList::default();
    let mut deactivated = WhatIfList::default();
    let mut converted = Vec::new();
    let mut new_people: Vec<&EntraObjectId> = Vec::new();
    let mut gone: Vec<&EntraObjectId> = Vec::new();
    let mut moves: BTreeMap<String, Movement> = BTreeMap::new();
    let person = |user: &UserLabel, detail: String| WhatIfPerson {
        entra_id: user.entra_id.clone(),
        email: user.email.to_string(),
        name: user.name.to_string(),
        detail,
    };
    let mut removed_by_group: BTreeMap<(String, String), Vec<EntraObjectId>> = BTreeMap::new();
    for op in &plan.ops {
        match op {
            Op::CreateUser { user, state } => {
                new_people.push(&user.entra_id);
                created.push(person(user, format!("created, {}", state.role)));
            }
            Op::AdoptUser {
                user,
                target_id,
                state,
                ..
            } => {
                new_people.push(&user.entra_id);
                created.push(person(
                    user,
                    format!("adopted (target user {target_id}), {}", state.role),
                ));
            }
            Op::DeactivateUser {
                user, to, reason, ..
            } => {
                gone.push(&user.entra_id);
                deactivated.push(person(user, format!("{to}: {}", reason.describe())));
            }
            Op::UpdateUser { user, changes, .. } => {
                if op.deactivates() {
                    gone.push(&user.entra_id);
                    deactivated.push(person(user, "deactivated with an update".to_owned()));
                }
                if let Some(change) = changes.iter().find(|c| c.field == ManagedField::Role) {
                    let movement = moves.entry(user.entra_id.to_string()).or_default();
                    movement.user = Some(user.clone());
                    movement.role = Some((
                        change.old.clone().unwrap_or_default(),
                        change.new.clone().unwrap_or_default(),
                    ));
                }
            }
            Op::AddMembers {
                group,
                group_name,
                users,
            } => {
                for user in users {
                    let movement = moves.entry(user.entra_id.to_string()).or_default();
                    movement.user = Some(user.clone());
                    movement
                        .joins
                        .push(GroupKind::synced(group.role).label(group_name));
                }
            }
            Op::RemoveMembers {
                group,
                group_name,
                users,
            } => {
                removed_by_group
                    .entry((group.entra_id.to_string(), group.role.to_string()))
                    .or_default()
                    .extend(users.iter().map(|u| u.entra_id.clone()));
                for user in users {
                    let movement = moves.entry(user.entra_id.to_string()).or_default();
                    movement.user = Some(user.clone());
                    movement
                        .leaves
                        .push(GroupKind::synced(group.role).label(group_name));
                }
            }
            Op::ConvertToSystemGroup {
                group,
                old_name,
                new_name,
                reason,
                ..
            } => converted.push(WhatIfGroup {
                entra_id: group.entra_id.clone(),
                name: GroupKind::synced(group.role).label(old_name),
                new_name: GroupKind::System.label(new_name),
                reason: reason.describe().to_owned(),
                members_removed: removed_by_group
                    .get(&(group.entra_id.to_string(), group.role.to_string()))
                    .map_or(0, Vec::len),
                members_deactivated: 0,
            }),
            Op::CreateGroup { .. } | Op::RenameGroup { .. } | Op::ActivateUser { .. } => {}
        }
    }
    // Deactivations come after conversions in a plan: count them per converted group now.
    for group in &mut converted {
        let role = plan
            .ops
            .iter()
            .find_map(|op| match op {
                Op::ConvertToSystemGroup { group: key, .. } if key.entra_id == group.entra_id => {
                    Some(key.role.to_string())
                }
                _ => None,
            })
            .unwrap_or_default();
        group.members_deactivated = removed_by_group
            .get(&(group.entra_id.to_string(), role))
            .map_or(0, |removed| {
                removed.iter().filter(|id| gone.contains(id)).count()
            });
    }
    // Moved: people already synced who stay, with a new role or other synced groups.
    let mut moved = WhatIfList::default();
    for movement in moves.values() {
        let Some(user) = &movement.user else { continue };
        if new_people.contains(&&user.entra_id) || gone.contains(&&user.entra_id) {
            continue;
        }
        let mut parts = Vec::new();
        if let Some((old, new)) = &movement.role {
            parts.push(format!("{old} → {new}"));
        }
        if !movement.joins.is_empty() {
            parts.push(format!("joins {}", movement.joins.join(", ")));
        }
        if !movement.leaves.is_empty() {
            parts.push(format!("leaves {}", movement.leaves.join(", ")));
        }
        moved.push(person(user, parts.join("; ")));
    }
    let counts = plan.counts();
    let mut headlines: Vec<String> = converted
        .iter()
        .map(|g| {
            let what = if g.reason == ConversionReason::Deselected.describe() {
                format!("removing {}", g.name)
            } else if g.reason == ConversionReason::RoleChanged.describe() {
                format!("changing the role of {}", g.name)
            } else {
                format!("{} (deleted in Entra)", g.name)
            };
            format!(
                "{what} deactivates {} people: {} members leave it, and it becomes a system group",
                g.members_deactivated, g.members_removed
            )
        })
        .collect();
    headlines.push(format!(
        "{} people created or adopted, {} moved, {} deactivated",
        created.total, moved.total, deactivated.total
    ));
    if let Some(hold) = &plan.hold {
        headlines.push(hold.describe());
    }
    WhatIf {
        counts,
        hold: plan.hold,
        created,
        moved,
        deactivated,
        converted,
        groups: plan.groups.clone(),
        headlines,
    }
}

/// What a run now would do if the tenant selected `groups` instead (nothing is saved or
/// written).
pub async fn what_if(
    ctx: &SyncContext,
    tenant: &TenantKey,
    groups: Vec<SelectedGroup>,
) -> Result<WhatIf, SyncError> {
    let mut config = ctx
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| SyncError::UnknownTenant(tenant.clone()))?;
    config.policy.selected_groups = groups;
    let plan = dry_run_tenant(ctx, &config).await?;
    Ok(summarize(&plan))
}
