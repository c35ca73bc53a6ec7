//! Rule-by-rule tests of the planner (SPEC.md R1–R18) on plain data.

use chrono::{TimeZone, Utc};

use super::fields::desired_fields;
use super::*;
use crate::domain::{
    DeactivationStatus, EntraObjectId, Role, TargetGroupId, TargetUserId, UserStatus,
};

const SALES: u128 = 0x5a1e5;
const LEGAL: u128 = 0x1e9a1;
const GUESTS: u128 = 0x9e575;

fn id(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn entra_user(n: u128) -> EntraUser {
    EntraUser {
        id: id(n),
        given_name: Some(format!("First{n}")),
        surname: Some(format!("Last{n}")),
        display_name: Some(format!("First{n} Last{n}")),
        mail: Some(format!("user{n}@contoso.com")),
        user_principal_name: Some(format!("user{n}@contoso.com")),
        business_phones: vec![format!("+1 555 {n:04}")],
        job_title: Some("Associate".to_owned()),
        account_enabled: Some(true),
    }
}

fn users(ns: &[u128]) -> Vec<EntraUser> {
    ns.iter().map(|n| entra_user(*n)).collect()
}

fn policy(groups: &[(u128, Role)]) -> TenantPolicy {
    TenantPolicy {
        selected_groups: groups
            .iter()
            .map(|(g, role)| SelectedGroup {
                entra_id: id(*g),
                role: *role,
            })
            .collect(),
        deactivation_status: DeactivationStatus::Inactive,
        deletion_threshold: 500,
    }
}

fn found(group: u128, name: &str, members: Vec<EntraUser>) -> GroupFetch {
    GroupFetch {
        entra_id: id(group),
        outcome: GroupOutcome::Found {
            display_name: name.to_owned(),
            members: members
                .into_iter()
                .map(|user| std::sync::Arc::new(user.into()))
                .collect(),
        },
    }
}

fn fetch(group: u128, outcome: GroupOutcome) -> GroupFetch {
    GroupFetch {
        entra_id: id(group),
        outcome,
    }
}

fn snapshot(groups: Vec<GroupFetch>) -> SourceSnapshot {
    SourceSnapshot { groups }
}

fn synced_user(user: &EntraUser, role: Role, status: UserStatus) -> MirrorUser {
    MirrorUser {
        entra_id: user.id.clone(),
        target_id: TargetUserId::new(format!("t-{}", user.id)).unwrap(),
        state: UserState {
            fields: desired_fields(&SnapshotUser::from(user)).unwrap().fields,
            role,
            status,
        },
    }
}

fn synced_group(group: u128, role: Role, name: &str, members: &[u128]) -> MirrorGroup {
    MirrorGroup {
        key: GroupKey {
            entra_id: id(group),
            role,
        },
        target_id: TargetGroupId::new(format!("tg-{group:x}-{role}")).unwrap(),
        name: name.to_owned(),
        members: members.iter().map(|n| id(*n)).collect(),
    }
}

/// A mirror in which `groups` were synced with exactly these members, all active.
fn mirror_of(groups: &[(u128, Role, &str, &[u128])]) -> Mirror {
    let mut roles: std::collections::BTreeMap<u128, Role> = Default::default();
    for (_, role, _, members) in groups {
        for m in *members {
            let entry = roles.entry(*m).or_insert(*role);
            if *role == Role::Internal {
                *entry = Role::Internal;
            }
        }
    }
    Mirror {
        groups: groups
            .iter()
            .map(|(g, role, name, members)| synced_group(*g, *role, name, members))
            .collect(),
        users: roles
            .iter()
            .map(|(n, role)| synced_user(&entra_user(*n), *role, UserStatus::Active))
            .collect(),
        converted: Vec::new(),
    }
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 4, 22, 9, 23, 30).unwrap() + chrono::Duration::milliseconds(193)
}

fn run(policy: &TenantPolicy, snapshot: &SourceSnapshot, mirror: &Mirror) -> Plan {
    run_with(policy, snapshot, mirror, &TargetLookups::default())
}

fn run_with(
    policy: &TenantPolicy,
    snapshot: &SourceSnapshot,
    mirror: &Mirror,
    target: &TargetLookups,
) -> Plan {
    plan(PlanInput {
        policy,
        snapshot,
        mirror,
        target,
        now: now(),
        approved_deactivations: None,
    })
}

fn member_ids(users: &[UserLabel]) -> Vec<EntraObjectId> {
    users.iter().map(|u| u.entra_id.clone()).collect()
}

fn errors_for(plan: &Plan, user: u128) -> Vec<String> {
    notes_for(plan, user, Severity::Error)
}

fn notes_for(plan: &Plan, user: u128, severity: Severity) -> Vec<String> {
    plan.notes
        .iter()
        .filter(|n| {
            n.severity == severity
                && matches!(&n.subject, Subject::User(l) if l.entra_id == id(user))
        })
        .map(|n| n.message.clone())
        .collect()
}

fn adds(plan: &Plan) -> Vec<(GroupKey, Vec<EntraObjectId>)> {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            Op::AddMembers { group, users, .. } => Some((group.clone(), member_ids(users))),
            _ => None,
        })
        .collect()
}

fn removes(plan: &Plan) -> Vec<(GroupKey, Vec<EntraObjectId>)> {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            Op::RemoveMembers { group, users, .. } => Some((group.clone(), member_ids(users))),
            _ => None,
        })
        .collect()
}

fn key(group: u128, role: Role) -> GroupKey {
    GroupKey {
        entra_id: id(group),
        role,
    }
}

fn deactivated(plan: &Plan) -> Vec<(EntraObjectId, UserStatus)> {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            Op::DeactivateUser { user, to, .. } => Some((user.entra_id.clone(), *to)),
            Op::UpdateUser { user, state, .. } if op.deactivates() => {
                Some((user.entra_id.clone(), state.status))
            }
            _ => None,
        })
        .collect()
}

fn position(plan: &Plan, matches: impl Fn(&Op) -> bool) -> usize {
    plan.ops
        .iter()
        .position(matches)
        .expect("operation present")
}

// --- R1 -------------------------------------------------------------------------------------

#[test]
fn r01_groups_that_are_not_selected_are_ignored_even_when_read() {
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![
            found(SALES, "Sales", users(&[1])),
            found(LEGAL, "Legal", users(&[2])),
        ]),
        &Mirror::default(),
    );
    let created: Vec<_> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::CreateUser { user, .. } => Some(user.entra_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(created, vec![id(1)]);
    assert_eq!(plan.groups.len(), 1);
}

// --- R2 -------------------------------------------------------------------------------------

#[test]
fn r02_a_new_selected_group_is_created_with_its_entra_name_and_role_before_members_join() {
    let plan = run(
        &policy(&[(SALES, Role::Internal), (GUESTS, Role::Basic)]),
        &snapshot(vec![
            found(SALES, "Sales", users(&[1, 2])),
            found(GUESTS, "Guests", users(&[3])),
        ]),
        &Mirror::default(),
    );
    assert!(plan.ops.contains(&Op::CreateGroup {
        group: key(SALES, Role::Internal),
        name: "Sales".to_owned()
    }));
    assert!(plan.ops.contains(&Op::CreateGroup {
        group: key(GUESTS, Role::Basic),
        name: "Guests".to_owned()
    }));
    assert_eq!(
        adds(&plan),
        vec![
            (key(SALES, Role::Internal), vec![id(1), id(2)]),
            (key(GUESTS, Role::Basic), vec![id(3)])
        ]
    );
    let created = position(
        &plan,
        |op| matches!(op, Op::CreateGroup { group, .. } if group.entra_id == id(SALES)),
    );
    let filled = position(
        &plan,
        |op| matches!(op, Op::AddMembers { group, .. } if group.entra_id == id(SALES)),
    );
    let user_created = position(
        &plan,
        |op| matches!(op, Op::CreateUser { user, .. } if user.entra_id == id(1)),
    );
    assert!(created < filled && user_created < filled);
    assert_eq!(plan.counts().users_created, 3);
}

// --- R3 -------------------------------------------------------------------------------------

#[test]
fn r03_a_renamed_entra_group_renames_its_synced_group() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales EMEA", users(&[1]))]),
        &mirror,
    );
    assert_eq!(
        plan.ops,
        vec![Op::RenameGroup {
            group: key(SALES, Role::Internal),
            target_id: mirror.groups[0].target_id.clone(),
            old_name: "Sales".to_owned(),
            new_name: "Sales EMEA".to_owned(),
        }]
    );
}

// --- R4 -------------------------------------------------------------------------------------

#[test]
fn r04_a_new_member_with_no_matching_target_user_is_created() {
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[1]))]),
        &mirror_of(&[(SALES, Role::Internal, "Sales", &[])]),
    );
    let expected_state = UserState {
        fields: desired_fields(&SnapshotUser::from(&entra_user(1)))
            .unwrap()
            .fields,
        role: Role::Internal,
        status: UserStatus::Active,
    };
    assert!(
        matches!(&plan.ops[0], Op::CreateUser { user, state } if user.entra_id == id(1) && **state == expected_state)
    );
    assert_eq!(adds(&plan), vec![(key(SALES, Role::Internal), vec![id(1)])]);
}

#[test]
fn r04_an_existing_target_user_is_adopted_by_email_case_insensitively() {
    let mut user = entra_user(1);
    user.mail = Some("Jane.Doe@Contoso.com".to_owned());
    let existing = TargetUser {
        id: TargetUserId::new("hq-77").unwrap(),
        fields: UserFields {
            email: crate::domain::Email::parse("jane.doe@CONTOSO.com").unwrap(),
            first_name: "Jane".into(),
            last_name: "Doe".into(),
            phone: None,
            job_title: None,
        },
        status: UserStatus::Inactive,
    };
    let policy = policy(&[(SALES, Role::Internal)]);
    let snapshot = snapshot(vec![found(SALES, "Sales", vec![user])]);
    let mirror = Mirror::default();
    assert_eq!(
        emails_to_look_up(&policy, &snapshot, &mirror),
        vec![existing.fields.email.clone()]
    );
    let plan = run_with(&policy, &snapshot, &mirror, &TargetLookups::new([existing]));
    let Op::AdoptUser {
        target_id,
        changes,
        state,
        ..
    } = &plan.ops[1]
    else {
        panic!("expected an adoption, got {:?}", plan.ops);
    };
    assert_eq!(target_id.as_str(), "hq-77");
    assert_eq!(state.status, UserStatus::Active);
    let changed: Vec<ManagedField> = changes.iter().map(|c| c.field).collect();
    assert_eq!(
        changed,
        vec![
            ManagedField::FirstName,
            ManagedField::LastName,
            ManagedField::Email,
            ManagedField::Phone,
            ManagedField::JobTitle,
            ManagedField::Status
        ]
    );
    assert_eq!(plan.counts().users_adopted, 1);
    assert_eq!(plan.counts().users_created, 0);
}

#[test]
fn r04_a_target_user_still_linked_to_another_entra_user_is_not_adopted_again() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[]),
        (LEGAL, Role::Internal, "Legal", &[1]),
    ]);
    let mut newcomer = entra_user(2);
    newcomer.mail = Some("user1@contoso.com".to_owned());
    let linked = TargetUser {
        id: mirror.users[0].target_id.clone(),
        fields: mirror.users[0].state.fields.clone(),
        status: UserStatus::Active,
    };
    // User 1 may still be in Legal, which could not be read: user 2 claims the address.
    let plan = run_with(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![newcomer]), failed(LEGAL)]),
        &mirror,
        &TargetLookups::new([linked]),
    );
    assert!(
        !plan
            .ops
            .iter()
            .any(|op| matches!(op, Op::AdoptUser { .. } | Op::CreateUser { .. }))
    );
    assert!(errors_for(&plan, 2)[0].contains("already linked to Entra user"));
}

#[test]
fn the_mirror_index_finds_each_synced_user_and_never_answers_for_another_mirror() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1, 2, 3])]);
    let index = MirrorIndex::new(&mirror);
    for n in [1, 2, 3] {
        let found = index.user(&mirror, &id(n)).expect("a synced user");
        assert_eq!(found.entra_id, id(n));
    }
    assert!(index.user(&mirror, &id(4)).is_none());
    // The same positions in another mirror hold other users: a miss, not a wrong answer.
    let other = mirror_of(&[(SALES, Role::Internal, "Sales", &[7, 8, 9])]);
    assert!(index.user(&other, &id(1)).is_none());
    assert!(MirrorIndex::new(&other).user(&other, &id(8)).is_some());
}

// --- R5 -------------------------------------------------------------------------------------

#[test]
fn r05_an_unchanged_user_produces_no_operation() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1, 2])]);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[1, 2]))]),
        &mirror,
    );
    assert!(plan.is_empty(), "{:?}", plan.ops);
    assert!(plan.notes.is_empty());
}

#[test]
fn r05_only_the_fields_that_differ_from_the_mirror_are_sent() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let mut user = entra_user(1);
    user.job_title = Some("Partner".to_owned());
    user.business_phones = vec!["+44 20 7946 0958".to_owned(), "ignored".to_owned()];
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror,
    );
    let [Op::UpdateUser { changes, state, .. }] = &plan.ops[..] else {
        panic!("expected one update, got {:?}", plan.ops);
    };
    assert_eq!(
        changes,
        &vec![
            FieldChange {
                field: ManagedField::Phone,
                old: Some("+1 555 0001".to_owned()),
                new: Some("+44 20 7946 0958".to_owned())
            },
            FieldChange {
                field: ManagedField::JobTitle,
                old: Some("Associate".to_owned()),
                new: Some("Partner".to_owned())
            },
        ]
    );
    assert_eq!(
        state.status,
        UserStatus::Active,
        "the whole managed state goes with the update (R15)"
    );
}

#[test]
fn r05_mail_falls_back_to_an_email_shaped_user_principal_name() {
    let mut user = entra_user(1);
    user.mail = None;
    user.user_principal_name = Some("jane@contoso.com".to_owned());
    let fields = desired_fields(&SnapshotUser::from(&user)).unwrap().fields;
    assert_eq!(fields.email.as_str(), "jane@contoso.com");
}

#[test]
fn r05_a_user_with_no_usable_email_is_an_error_for_that_user_only() {
    let mut guest = entra_user(1);
    guest.mail = Some(" ".to_owned());
    guest.user_principal_name = Some("jane_gmail.com#EXT#@contoso.onmicrosoft.com".to_owned());
    let mut broken = entra_user(2);
    broken.mail = None;
    broken.user_principal_name = None;
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(
            SALES,
            "Sales",
            vec![guest, broken, entra_user(3)],
        )]),
        &Mirror::default(),
    );
    assert!(errors_for(&plan, 1)[0].contains("guest (#EXT#)"));
    assert!(errors_for(&plan, 2)[0].contains("both mail and userPrincipalName are empty"));
    assert_eq!(adds(&plan), vec![(key(SALES, Role::Internal), vec![id(3)])]);
    assert_eq!(plan.counts().users_created, 1);
}

#[test]
fn r05_long_fields_are_cut_at_512_characters_with_a_warning() {
    let mut user = entra_user(1);
    user.job_title = Some("ü".repeat(600));
    user.given_name = Some("N".repeat(513));
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &Mirror::default(),
    );
    let Op::CreateUser { state, .. } = &plan.ops[1] else {
        panic!("{:?}", plan.ops)
    };
    assert_eq!(
        state.fields.job_title.as_ref().unwrap().chars().count(),
        512
    );
    assert_eq!(state.fields.first_name.chars().count(), 512);
    let warnings = notes_for(&plan, 1, Severity::Warning);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("job title is 600 characters long"))
    );
}

#[test]
fn r05_empty_names_fall_back_to_the_display_name_with_a_warning() {
    let mut user = entra_user(1);
    user.given_name = None;
    user.surname = Some(String::new());
    user.display_name = Some("Jean Claude Van Damme".to_owned());
    let desired = desired_fields(&SnapshotUser::from(&user)).unwrap();
    assert_eq!(desired.fields.first_name, "Jean");
    assert_eq!(desired.fields.last_name, "Claude Van Damme");
    assert_eq!(desired.warnings.len(), 1);

    user.display_name = None;
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &Mirror::default(),
    );
    assert!(errors_for(&plan, 1)[0].contains("no usable name"));
    assert_eq!(plan.counts().users_created, 0);
}

// --- R7 -------------------------------------------------------------------------------------

#[test]
fn r07_a_change_before_the_at_sign_updates_the_email() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let mut user = entra_user(1);
    user.mail = Some("jane.smith@contoso.com".to_owned());
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror,
    );
    let [Op::UpdateUser { changes, state, .. }] = &plan.ops[..] else {
        panic!("{:?}", plan.ops)
    };
    assert_eq!(changes[0].field, ManagedField::Email);
    assert_eq!(state.fields.email.as_str(), "jane.smith@contoso.com");
    assert!(plan.notes.is_empty());
}

#[test]
fn r07_a_domain_change_keeps_the_old_email_updates_the_rest_and_is_an_error() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let mut user = entra_user(1);
    user.mail = Some("user1@fabrikam.com".to_owned());
    user.surname = Some("Married".to_owned());
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror,
    );
    let [Op::UpdateUser { changes, state, .. }] = &plan.ops[..] else {
        panic!("{:?}", plan.ops)
    };
    assert_eq!(
        changes.iter().map(|c| c.field).collect::<Vec<_>>(),
        vec![ManagedField::LastName]
    );
    assert_eq!(state.fields.email.as_str(), "user1@contoso.com");
    assert!(errors_for(&plan, 1)[0].contains("email domain change is not supported"));
}

#[test]
fn r07_an_email_that_collides_with_another_target_user_is_an_error_for_that_user_only() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1, 2])]);
    let mut user = entra_user(1);
    user.mail = Some("boss@contoso.com".to_owned());
    let manual = TargetUser {
        id: TargetUserId::new("hq-manual").unwrap(),
        fields: UserFields {
            email: crate::domain::Email::parse("Boss@contoso.com").unwrap(),
            first_name: "The".into(),
            last_name: "Boss".into(),
            phone: None,
            job_title: None,
        },
        status: UserStatus::Active,
    };
    let policy = policy(&[(SALES, Role::Internal)]);
    let snapshot = snapshot(vec![found(SALES, "Sales", vec![user, entra_user(2)])]);
    assert_eq!(
        emails_to_look_up(&policy, &snapshot, &mirror),
        vec![manual.fields.email.clone()]
    );
    let plan = run_with(&policy, &snapshot, &mirror, &TargetLookups::new([manual]));
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    assert!(errors_for(&plan, 1)[0].contains("would collide with another target user"));
    assert!(errors_for(&plan, 2).is_empty());

    // Taking an address another synced user still holds in the target collides too, even when
    // that user gives it up in the same run: the target would refuse the first of the two calls.
    let mut giver = entra_user(1);
    giver.mail = Some("user1.new@contoso.com".to_owned());
    let mut taker = entra_user(2);
    taker.mail = Some("user1@contoso.com".to_owned());
    let plan = run(&policy, &snapshot_of(vec![giver, taker]), &mirror);
    assert!(errors_for(&plan, 2)[0].contains("would collide"));
    assert!(errors_for(&plan, 1).is_empty());
    assert!(
        plan.ops
            .iter()
            .any(|op| matches!(op, Op::UpdateUser { user, .. } if user.entra_id == id(1)))
    );
}

fn snapshot_of(members: Vec<EntraUser>) -> SourceSnapshot {
    snapshot(vec![found(SALES, "Sales", members)])
}

// --- R8 -------------------------------------------------------------------------------------

#[test]
fn r08_two_users_with_one_email_are_both_errors_and_the_synced_one_keeps_its_state() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let mut synced = entra_user(1);
    synced.job_title = Some("Changed".to_owned());
    let mut newcomer = entra_user(2);
    newcomer.mail = Some("USER1@contoso.com".to_owned());
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(
            SALES,
            "Sales",
            vec![synced, newcomer, entra_user(3)],
        )]),
        &mirror,
    );
    assert!(errors_for(&plan, 1)[0].contains("duplicate email"));
    assert!(errors_for(&plan, 2)[0].contains("duplicate email"));
    let touched: Vec<&Op> = plan
        .ops
        .iter()
        .filter(|op| match op {
            Op::UpdateUser { user, .. }
            | Op::CreateUser { user, .. }
            | Op::DeactivateUser { user, .. } => user.entra_id != id(3),
            _ => false,
        })
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    assert_eq!(adds(&plan), vec![(key(SALES, Role::Internal), vec![id(3)])]);
    assert!(
        removes(&plan).is_empty(),
        "the synced duplicate stays in its group"
    );
}

// --- R9 -------------------------------------------------------------------------------------

#[test]
fn r09_a_disabled_user_is_deactivated_with_the_tenants_status_and_keeps_its_groups() {
    for status in [DeactivationStatus::Inactive, DeactivationStatus::Archived] {
        let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1, 2])]);
        let mut user = entra_user(1);
        user.account_enabled = Some(false);
        let mut policy = policy(&[(SALES, Role::Internal)]);
        policy.deactivation_status = status;
        let plan = run(
            &policy,
            &snapshot(vec![found(SALES, "Sales", vec![user, entra_user(2)])]),
            &mirror,
        );
        assert_eq!(
            plan.ops,
            vec![Op::DeactivateUser {
                user: UserLabel {
                    entra_id: id(1),
                    email: "user1@contoso.com".into(),
                    name: "First1 Last1".into()
                },
                target_id: mirror.users[0].target_id.clone(),
                to: status.into(),
                reason: DeactivationReason::DisabledInEntra,
            }]
        );
    }
}

#[test]
fn r09_a_re_enabled_member_is_reactivated_before_joining_groups() {
    let mut mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    mirror.users[0].state.status = UserStatus::Archived;
    mirror.groups[0].members.clear();
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[1]))]),
        &mirror,
    );
    assert!(matches!(
        &plan.ops[0],
        Op::ActivateUser {
            from: UserStatus::Archived,
            ..
        }
    ));
    assert!(matches!(&plan.ops[1], Op::AddMembers { .. }));
    assert_eq!(plan.counts().users_activated, 1);
}

#[test]
fn r09_a_disabled_user_not_yet_synced_is_not_created() {
    let mut user = entra_user(1);
    user.account_enabled = Some(false);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror_of(&[(SALES, Role::Internal, "Sales", &[])]),
    );
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    assert!(notes_for(&plan, 1, Severity::Info)[0].contains("disabled in Entra"));
}

/// The target user an admin made by hand for `user`, with this status.
fn target_user_for(user: &EntraUser, id: &str, status: UserStatus) -> TargetUser {
    TargetUser {
        id: TargetUserId::new(id).unwrap(),
        fields: desired_fields(&SnapshotUser::from(user)).unwrap().fields,
        status,
    }
}

#[test]
fn r09_a_disabled_member_new_to_dirsync_but_active_in_the_target_is_adopted_and_deactivated() {
    for status in [DeactivationStatus::Inactive, DeactivationStatus::Archived] {
        let mut user = entra_user(1);
        user.account_enabled = Some(false);
        let existing = target_user_for(&user, "hq-1", UserStatus::Active);
        let mut policy = policy(&[(SALES, Role::Internal)]);
        policy.deactivation_status = status;
        let plan = run_with(
            &policy,
            &snapshot(vec![found(SALES, "Sales", vec![user])]),
            &mirror_of(&[(SALES, Role::Internal, "Sales", &[])]),
            &TargetLookups::new([existing]),
        );
        let [
            Op::AdoptUser {
                target_id,
                changes,
                state,
                releases: None,
                ..
            },
        ] = &plan.ops[..]
        else {
            panic!("expected one adoption and nothing else, got {:?}", plan.ops);
        };
        assert_eq!(target_id.as_str(), "hq-1");
        assert_eq!(state.status, status.into());
        assert_eq!(
            changes,
            &vec![FieldChange {
                field: ManagedField::Status,
                old: Some("active".to_owned()),
                new: Some(status.as_str().to_owned()),
            }]
        );
        let counts = plan.counts();
        assert_eq!((counts.users_adopted, counts.users_deactivated), (1, 1));
        assert!(adds(&plan).is_empty(), "a deactivated user joins no group");
    }
}

#[test]
fn r09_a_disabled_member_already_inactive_in_the_target_is_adopted_as_it_is() {
    let mut user = entra_user(1);
    user.account_enabled = Some(false);
    let existing = target_user_for(&user, "hq-1", UserStatus::Archived);
    let plan = run_with(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror_of(&[(SALES, Role::Internal, "Sales", &[])]),
        &TargetLookups::new([existing]),
    );
    let [Op::AdoptUser { changes, state, .. }] = &plan.ops[..] else {
        panic!("expected one adoption, got {:?}", plan.ops);
    };
    assert_eq!(state.status, UserStatus::Archived);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(plan.counts().users_deactivated, 0);
}

#[test]
fn r09_a_synced_user_with_no_usable_email_who_is_disabled_is_still_deactivated() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1, 2])]);
    let mut user = entra_user(1);
    user.account_enabled = Some(false);
    user.mail = None;
    user.user_principal_name = Some("not an address".to_owned());
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user, entra_user(2)])]),
        &mirror,
    );
    assert_eq!(deactivated(&plan), vec![(id(1), UserStatus::Inactive)]);
    assert_eq!(plan.ops.len(), 1, "only the status: {:?}", plan.ops);
    assert!(
        removes(&plan).is_empty(),
        "the frozen user keeps its groups"
    );
    let error = &errors_for(&plan, 1)[0];
    assert!(
        error.contains("no usable email") && error.contains("it is deactivated"),
        "{error}"
    );
}

#[test]
fn r09_a_synced_user_with_a_duplicate_email_who_is_disabled_is_still_deactivated() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let mut synced = entra_user(1);
    synced.account_enabled = Some(false);
    let mut newcomer = entra_user(2);
    newcomer.mail = Some("user1@contoso.com".to_owned());
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![synced, newcomer])]),
        &mirror,
    );
    assert!(errors_for(&plan, 1)[0].contains("duplicate email"));
    assert_eq!(deactivated(&plan), vec![(id(1), UserStatus::Inactive)]);
    assert!(
        !plan
            .ops
            .iter()
            .any(|op| matches!(op, Op::CreateUser { .. } | Op::AdoptUser { .. }))
    );
}

#[test]
fn r09_a_synced_user_with_a_field_error_who_leaves_every_group_is_still_deactivated() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1, 2])]);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[2]))]),
        &mirror,
    );
    assert_eq!(deactivated(&plan), vec![(id(1), UserStatus::Inactive)]);
}

#[test]
fn r09_a_frozen_user_who_is_enabled_keeps_its_status() {
    let mut mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    mirror.users[0].state.status = UserStatus::Inactive;
    let mut user = entra_user(1);
    user.mail = None;
    user.user_principal_name = None;
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror,
    );
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    assert!(errors_for(&plan, 1)[0].contains("left as it is"));
}

// --- R9a ------------------------------------------------------------------------------------

/// User 1 was synced into Sales and has left it; user 3 arrives with user 1's email.
fn rehire(
    departed_status: UserStatus,
    groups: Vec<GroupFetch>,
    mirror: Mirror,
) -> (Plan, TargetUserId) {
    let mut mirror = mirror;
    let departed = mirror
        .users
        .iter_mut()
        .find(|u| u.entra_id == id(1))
        .expect("user 1 is synced");
    departed.state.status = departed_status;
    let taken = TargetUser {
        id: departed.target_id.clone(),
        fields: departed.state.fields.clone(),
        status: departed_status,
    };
    let target_id = taken.id.clone();
    let plan = run_with(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(groups),
        &mirror,
        &TargetLookups::new([taken]),
    );
    (plan, target_id)
}

fn newcomer_with_user1s_email() -> EntraUser {
    let mut newcomer = entra_user(3);
    newcomer.mail = Some("User1@contoso.com".to_owned());
    newcomer
}

#[test]
fn r09a_a_new_user_with_a_departed_users_email_takes_its_target_user_over_reactivated() {
    // User 1 left long ago: deactivated and out of every group.
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[2]),
        (LEGAL, Role::Internal, "Legal", &[]),
    ]);
    let mut mirror = mirror;
    mirror.users.push(synced_user(
        &entra_user(1),
        Role::Internal,
        UserStatus::Active,
    ));
    mirror.users.sort_by(|a, b| a.entra_id.cmp(&b.entra_id));
    let (plan, taken) = rehire(
        UserStatus::Inactive,
        vec![
            found(
                SALES,
                "Sales",
                vec![entra_user(2), newcomer_with_user1s_email()],
            ),
            found(LEGAL, "Legal", vec![]),
        ],
        mirror,
    );
    let adoptions: Vec<&Op> = plan
        .ops
        .iter()
        .filter(|op| matches!(op, Op::AdoptUser { .. }))
        .collect();
    let [
        Op::AdoptUser {
            user,
            target_id,
            changes,
            state,
            releases: Some(released),
        },
    ] = &adoptions[..]
    else {
        panic!("expected one rehire, got {:?}", plan.ops);
    };
    assert_eq!(user.entra_id, id(3));
    assert_eq!(target_id, &taken);
    assert_eq!(released.entra_id, id(1));
    assert_eq!(state.status, UserStatus::Active);
    assert!(
        changes
            .iter()
            .any(|c| c.field == ManagedField::Status && c.new.as_deref() == Some("active")),
        "reactivated: {changes:?}"
    );
    assert!(plan.notes.is_empty(), "no error: {:?}", plan.notes);
    assert_eq!(adds(&plan), vec![(key(SALES, Role::Internal), vec![id(3)])]);
    assert!(deactivated(&plan).is_empty());
}

#[test]
fn r09a_a_user_leaving_in_the_same_run_hands_over_its_memberships_instead_of_being_deactivated() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[1, 2]),
        (LEGAL, Role::Internal, "Legal", &[1]),
    ]);
    // The newcomer is in Legal only: the target user stays in Legal and leaves Sales.
    let (plan, taken) = rehire(
        UserStatus::Active,
        vec![
            found(SALES, "Sales", users(&[2])),
            found(LEGAL, "Legal", vec![newcomer_with_user1s_email()]),
        ],
        mirror,
    );
    assert!(plan.ops.iter().any(|op| matches!(
        op,
        Op::AdoptUser { target_id, releases: Some(old), changes, .. }
            if *target_id == taken
                && old.entra_id == id(1)
                && !changes.iter().any(|c| c.field == ManagedField::Status)
    )));
    assert!(adds(&plan).is_empty(), "already in Legal: {:?}", plan.ops);
    assert_eq!(
        removes(&plan),
        vec![(key(SALES, Role::Internal), vec![id(3)])]
    );
    assert!(deactivated(&plan).is_empty(), "{:?}", plan.ops);
    assert!(
        !plan.ops.iter().any(|op| matches!(
            op,
            Op::RemoveMembers { users, .. } | Op::AddMembers { users, .. }
                if users.iter().any(|u| u.entra_id == id(1))
        )),
        "the departed user's link is released, not used: {:?}",
        plan.ops
    );
}

#[test]
fn r09_a_disabled_user_with_field_changes_is_updated_and_deactivated_in_one_call() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let mut user = entra_user(1);
    user.account_enabled = Some(false);
    user.job_title = Some("Leaver".to_owned());
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror,
    );
    assert_eq!(deactivated(&plan), vec![(id(1), UserStatus::Inactive)]);
    assert_eq!(plan.ops.len(), 1);
    let counts = plan.counts();
    assert_eq!((counts.users_updated, counts.users_deactivated), (1, 1));
}

// --- R10 / R11 ------------------------------------------------------------------------------

#[test]
fn r10_a_user_who_leaves_one_group_is_removed_from_that_group_only() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[1, 2]),
        (LEGAL, Role::Internal, "Legal", &[1]),
    ]);
    let plan = run(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(vec![
            found(SALES, "Sales", users(&[2])),
            found(LEGAL, "Legal", users(&[1])),
        ]),
        &mirror,
    );
    assert_eq!(
        removes(&plan),
        vec![(key(SALES, Role::Internal), vec![id(1)])]
    );
    assert!(deactivated(&plan).is_empty());
    assert_eq!(plan.ops.len(), 1);
}

#[test]
fn r10_a_user_in_no_selected_group_is_removed_everywhere_then_deactivated() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[1, 2]),
        (LEGAL, Role::Internal, "Legal", &[1]),
    ]);
    let plan = run(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(vec![
            found(SALES, "Sales", users(&[2])),
            found(LEGAL, "Legal", vec![]),
        ]),
        &mirror,
    );
    assert_eq!(
        removes(&plan),
        vec![
            (key(SALES, Role::Internal), vec![id(1)]),
            (key(LEGAL, Role::Internal), vec![id(1)])
        ]
    );
    assert_eq!(deactivated(&plan), vec![(id(1), UserStatus::Inactive)]);
    let deactivation = position(&plan, |op| matches!(op, Op::DeactivateUser { .. }));
    let last_removal = plan
        .ops
        .iter()
        .rposition(|op| matches!(op, Op::RemoveMembers { .. }))
        .unwrap();
    assert!(last_removal < deactivation);
}

#[test]
fn r10_only_managed_groups_appear_in_the_plan() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![])]),
        &mirror,
    );
    for op in &plan.ops {
        if let Op::AddMembers { group, .. } | Op::RemoveMembers { group, .. } = op {
            assert_eq!(group, &key(SALES, Role::Internal));
        }
    }
    assert_eq!(deactivated(&plan), vec![(id(1), UserStatus::Inactive)]);
}

#[test]
fn r11_a_user_deleted_in_entra_is_deactivated_as_removed_from_synced_groups() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1, 2])]);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[2]))]),
        &mirror,
    );
    assert!(plan.ops.iter().any(|op| matches!(
        op,
        Op::DeactivateUser { user, reason: DeactivationReason::RemovedFromSyncedGroups, .. } if user.entra_id == id(1)
    )));
}

#[test]
fn r11_an_already_deactivated_leaver_is_not_deactivated_again() {
    let mut mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[2])]);
    let mut leaver = synced_user(&entra_user(1), Role::Internal, UserStatus::Inactive);
    leaver.state.status = UserStatus::Inactive;
    mirror.users.push(leaver);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[2]))]),
        &mirror,
    );
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
}

// --- R12 ------------------------------------------------------------------------------------

#[test]
fn r12_a_group_deleted_in_entra_is_emptied_then_converted_with_a_timestamped_name() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "abtest3", &[1, 2]),
        (LEGAL, Role::Internal, "Legal", &[2]),
    ]);
    let plan = run(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(vec![
            fetch(SALES, GroupOutcome::Deleted),
            found(LEGAL, "Legal", users(&[2])),
        ]),
        &mirror,
    );
    assert_eq!(
        removes(&plan),
        vec![(key(SALES, Role::Internal), vec![id(1), id(2)])]
    );
    let convert = position(&plan, |op| matches!(op, Op::ConvertToSystemGroup { .. }));
    assert!(position(&plan, |op| matches!(op, Op::RemoveMembers { .. })) < convert);
    assert!(matches!(
        &plan.ops[convert],
        Op::ConvertToSystemGroup { new_name, reason: ConversionReason::DeletedInEntra, .. }
            if new_name == "abtest3_1745313810193"
    ));
    assert_eq!(
        deactivated(&plan),
        vec![(id(1), UserStatus::Inactive)],
        "user 2 is still in Legal"
    );
    assert_eq!(plan.groups[0].status, GroupStatus::Deleted);
}

#[test]
fn r12_a_deselected_group_is_converted_and_its_members_in_other_groups_stay_active() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[1, 2]),
        (LEGAL, Role::Internal, "Legal", &[2]),
    ]);
    let plan = run(
        &policy(&[(LEGAL, Role::Internal)]),
        &snapshot(vec![found(LEGAL, "Legal", users(&[2]))]),
        &mirror,
    );
    assert!(plan.ops.iter().any(|op| matches!(
        op,
        Op::ConvertToSystemGroup { reason: ConversionReason::Deselected, group, .. } if *group == key(SALES, Role::Internal)
    )));
    assert_eq!(deactivated(&plan), vec![(id(1), UserStatus::Inactive)]);
    assert!(
        plan.groups
            .iter()
            .any(|g| g.status == GroupStatus::Deselected)
    );
}

#[test]
fn r12_a_selected_group_missing_from_entra_and_never_synced_is_an_error() {
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![fetch(SALES, GroupOutcome::Deleted)]),
        &Mirror::default(),
    );
    assert!(plan.ops.is_empty());
    assert!(plan.has_errors());
}

#[test]
fn r12_a_group_deleted_in_entra_and_converted_before_is_a_warning_to_remove_it_from_the_selection()
{
    let mut mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    mirror.converted.push(ConvertedGroup {
        key: key(LEGAL, Role::Internal),
        name: "Legal".to_owned(),
        system_name: "Legal_1745313810193".to_owned(),
    });
    let plan = run(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(vec![
            found(SALES, "Sales", users(&[1])),
            fetch(LEGAL, GroupOutcome::Deleted),
        ]),
        &mirror,
    );
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    assert!(!plan.has_errors(), "{:?}", plan.notes);
    let [note] = &plan.notes[..] else {
        panic!("expected one note, got {:?}", plan.notes);
    };
    assert_eq!(note.severity, Severity::Warning);
    assert!(
        note.message
            .starts_with("deleted in Entra; remove it from the selection"),
        "{}",
        note.message
    );
    assert!(matches!(&note.subject, Subject::Group { name, .. } if name == "Legal"));
    let legal = plan
        .groups
        .iter()
        .find(|g| g.entra_id == id(LEGAL))
        .unwrap();
    assert_eq!(
        (legal.status, legal.name.as_str()),
        (GroupStatus::Deleted, "Legal")
    );
}

// --- R13 ------------------------------------------------------------------------------------

#[test]
fn r13_a_role_change_converts_the_old_group_then_creates_and_fills_a_new_one() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "abtest3", &[1, 2])]);
    let plan = run(
        &policy(&[(SALES, Role::Basic)]),
        &snapshot(vec![found(SALES, "abtest3", users(&[1, 2]))]),
        &mirror,
    );
    let kinds: Vec<&str> = plan
        .ops
        .iter()
        .map(|op| match op {
            Op::RemoveMembers { .. } => "remove",
            Op::ConvertToSystemGroup { .. } => "convert",
            Op::CreateGroup { .. } => "create group",
            Op::UpdateUser { .. } => "update user",
            Op::AddMembers { .. } => "add",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "remove",
            "convert",
            "create group",
            "update user",
            "update user",
            "add"
        ]
    );
    assert_eq!(
        adds(&plan),
        vec![(key(SALES, Role::Basic), vec![id(1), id(2)])]
    );
    assert!(plan.ops.iter().any(|op| matches!(
        op,
        Op::UpdateUser { changes, state, .. } if state.role == Role::Basic && changes[0].field == ManagedField::Role
    )));
    assert!(deactivated(&plan).is_empty());
}

// --- R14 ------------------------------------------------------------------------------------

#[test]
fn r14_a_user_in_an_internal_and_a_basic_group_is_internal_and_only_in_the_internal_group() {
    let plan = run(
        &policy(&[(SALES, Role::Internal), (GUESTS, Role::Basic)]),
        &snapshot(vec![
            found(SALES, "Sales", users(&[1])),
            found(GUESTS, "Guests", users(&[1, 2])),
        ]),
        &Mirror::default(),
    );
    assert_eq!(
        adds(&plan),
        vec![
            (key(SALES, Role::Internal), vec![id(1)]),
            (key(GUESTS, Role::Basic), vec![id(2)])
        ]
    );
    let roles: Vec<(EntraObjectId, Role)> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::CreateUser { user, state } => Some((user.entra_id.clone(), state.role)),
            _ => None,
        })
        .collect();
    assert_eq!(roles, vec![(id(1), Role::Internal), (id(2), Role::Basic)]);
}

#[test]
fn r14_a_basic_user_added_to_an_internal_group_leaves_the_basic_group_and_becomes_internal() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[]),
        (GUESTS, Role::Basic, "Guests", &[2]),
    ]);
    let plan = run(
        &policy(&[(SALES, Role::Internal), (GUESTS, Role::Basic)]),
        &snapshot(vec![
            found(SALES, "Sales", users(&[2])),
            found(GUESTS, "Guests", users(&[2])),
        ]),
        &mirror,
    );
    assert_eq!(adds(&plan), vec![(key(SALES, Role::Internal), vec![id(2)])]);
    assert_eq!(
        removes(&plan),
        vec![(key(GUESTS, Role::Basic), vec![id(2)])]
    );
    assert!(
        plan.ops
            .iter()
            .any(|op| matches!(op, Op::UpdateUser { state, .. } if state.role == Role::Internal))
    );
    assert!(deactivated(&plan).is_empty());
}

// --- R15 ------------------------------------------------------------------------------------

#[test]
fn r15_without_a_change_in_entra_nothing_is_sent_whatever_the_target_holds() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    // An admin archived user 1 in the target; the lookups show it, the mirror does not.
    let archived = TargetUser {
        id: mirror.users[0].target_id.clone(),
        fields: mirror.users[0].state.fields.clone(),
        status: UserStatus::Archived,
    };
    let plan = run_with(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[1]))]),
        &mirror,
        &TargetLookups::new([archived]),
    );
    assert!(plan.ops.is_empty());
}

#[test]
fn r15_an_update_sends_the_changed_fields_with_the_role_and_status_dirsync_asserts() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    // An admin archived user 1 by hand; now its job title changes in Entra.
    let archived = TargetUser {
        id: mirror.users[0].target_id.clone(),
        fields: mirror.users[0].state.fields.clone(),
        status: UserStatus::Archived,
    };
    let mut user = entra_user(1);
    user.job_title = Some("Partner".to_owned());
    let plan = run_with(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", vec![user])]),
        &mirror,
        &TargetLookups::new([archived]),
    );
    let [Op::UpdateUser { changes, state, .. }] = &plan.ops[..] else {
        panic!("expected one update, got {:?}", plan.ops);
    };
    let fields: Vec<ManagedField> = changes.iter().map(|c| c.field).collect();
    assert_eq!(fields, vec![ManagedField::JobTitle], "only what changed");
    assert_eq!(
        (state.role, state.status),
        (Role::Internal, UserStatus::Active),
        "role and status are asserted with it"
    );
}

// --- R16 ------------------------------------------------------------------------------------

#[test]
fn r16_a_group_over_50000_members_is_failed_and_nothing_in_it_changes() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let members: Vec<EntraUser> = (1..=(MAX_GROUP_MEMBERS as u128 + 1))
        .map(entra_user)
        .collect();
    let policy = policy(&[(SALES, Role::Internal)]);
    let snapshot = snapshot(vec![found(SALES, "Sales", members)]);
    assert!(emails_to_look_up(&policy, &snapshot, &mirror).is_empty());
    let plan = run(&policy, &snapshot, &mirror);
    assert!(plan.ops.is_empty(), "{} ops", plan.ops.len());
    assert_eq!(plan.groups[0].status, GroupStatus::Failed);
    assert!(
        plan.groups[0]
            .message
            .as_ref()
            .unwrap()
            .contains("50001 direct user members")
    );
}

// --- R17 ------------------------------------------------------------------------------------

fn failed(group: u128) -> GroupFetch {
    fetch(
        group,
        GroupOutcome::Failed {
            reason: "Graph answered 503 Service Unavailable after 5 attempts".to_owned(),
        },
    )
}

#[test]
fn r17_a_failed_group_keeps_its_synced_group_memberships_and_member_status() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[1, 2]),
        (LEGAL, Role::Internal, "Legal", &[3]),
    ]);
    let plan = run(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(vec![failed(SALES), found(LEGAL, "Legal", users(&[3]))]),
        &mirror,
    );
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    assert!(plan.has_errors());
    assert_eq!(plan.groups[0].status, GroupStatus::Failed);
}

#[test]
fn r17_a_member_of_a_failed_group_who_left_a_readable_group_is_not_deactivated() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[1]),
        (LEGAL, Role::Internal, "Legal", &[1]),
    ]);
    let plan = run(
        &policy(&[(SALES, Role::Internal), (LEGAL, Role::Internal)]),
        &snapshot(vec![failed(SALES), found(LEGAL, "Legal", vec![])]),
        &mirror,
    );
    assert_eq!(
        removes(&plan),
        vec![(key(LEGAL, Role::Internal), vec![id(1)])]
    );
    assert!(deactivated(&plan).is_empty());
}

#[test]
fn r17_a_failed_internal_group_keeps_its_members_internal() {
    let mirror = mirror_of(&[
        (SALES, Role::Internal, "Sales", &[1]),
        (GUESTS, Role::Basic, "Guests", &[]),
    ]);
    let plan = run(
        &policy(&[(SALES, Role::Internal), (GUESTS, Role::Basic)]),
        &snapshot(vec![failed(SALES), found(GUESTS, "Guests", users(&[1]))]),
        &mirror,
    );
    assert!(
        plan.ops.is_empty(),
        "user 1 stays internal and out of the basic group: {:?}",
        plan.ops
    );
}

#[test]
fn r17_a_failed_group_postpones_its_role_change() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let plan = run(
        &policy(&[(SALES, Role::Basic)]),
        &snapshot(vec![failed(SALES)]),
        &mirror,
    );
    assert!(plan.ops.is_empty());
    assert!(
        plan.groups[0]
            .message
            .as_ref()
            .unwrap()
            .contains("waits for a run that can read it")
    );
}

#[test]
fn r17_a_group_missing_from_the_snapshot_counts_as_failed() {
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[1])]);
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![]),
        &mirror,
    );
    assert!(plan.ops.is_empty());
    assert_eq!(plan.groups[0].status, GroupStatus::Failed);
}

#[test]
fn r17_one_users_error_does_not_stop_the_others() {
    let mut broken = entra_user(2);
    broken.mail = Some("not-an-email".to_owned());
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(
            SALES,
            "Sales",
            vec![entra_user(1), broken, entra_user(3)],
        )]),
        &Mirror::default(),
    );
    assert_eq!(plan.counts().users_created, 2);
    assert_eq!(plan.counts().errors, 1);
}

// --- R18 ------------------------------------------------------------------------------------

fn mass_leaving(threshold: u32, leavers: u128) -> (TenantPolicy, SourceSnapshot, Mirror) {
    let everyone: Vec<u128> = (1..=leavers + 1).collect();
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &everyone)]);
    let mut policy = policy(&[(SALES, Role::Internal)]);
    policy.deletion_threshold = threshold;
    (
        policy,
        snapshot(vec![found(SALES, "Sales", users(&[leavers + 1]))]),
        mirror,
    )
}

#[test]
fn r18_a_run_deactivating_more_users_than_the_threshold_is_held_with_its_plan() {
    let (policy, snapshot, mirror) = mass_leaving(5, 6);
    let plan = run(&policy, &snapshot, &mirror);
    assert_eq!(
        plan.hold,
        Some(Hold {
            deactivations: 6,
            threshold: 5,
            approved: None,
        })
    );
    assert_eq!(
        deactivated(&plan).len(),
        6,
        "the held plan still lists what would have happened"
    );
}

#[test]
fn r18_a_run_at_the_threshold_is_not_held() {
    let (policy, snapshot, mirror) = mass_leaving(5, 5);
    assert_eq!(run(&policy, &snapshot, &mirror).hold, None);
}

#[test]
fn r18_a_threshold_of_zero_turns_the_guard_off() {
    let (policy, snapshot, mirror) = mass_leaving(0, 600);
    assert_eq!(run(&policy, &snapshot, &mirror).hold, None);
}

fn approved(
    policy: &TenantPolicy,
    snapshot: &SourceSnapshot,
    mirror: &Mirror,
    deactivations: usize,
) -> Plan {
    plan(PlanInput {
        policy,
        snapshot,
        mirror,
        target: &TargetLookups::default(),
        now: now(),
        approved_deactivations: Some(deactivations),
    })
}

#[test]
fn r18_an_approved_run_may_deactivate_up_to_the_approved_number() {
    let (policy, snapshot, mirror) = mass_leaving(5, 6);
    let plan = approved(&policy, &snapshot, &mirror, 6);
    assert_eq!(plan.hold, None);
    assert_eq!(deactivated(&plan).len(), 6);
    let fewer = approved(&policy, &snapshot, &mirror, 8);
    assert_eq!(fewer.hold, None, "fewer than approved is fine");
}

#[test]
fn r18_an_approved_run_whose_fresh_plan_deactivates_more_than_approved_is_held_again() {
    let (policy, snapshot, mirror) = mass_leaving(5, 9);
    let plan = approved(&policy, &snapshot, &mirror, 6);
    assert_eq!(
        plan.hold,
        Some(Hold {
            deactivations: 9,
            threshold: 5,
            approved: Some(6),
        })
    );
    let reason = plan.hold.unwrap().describe();
    assert!(
        reason.starts_with("held again: the run would deactivate 9 users, more than the 6"),
        "{reason}"
    );
}

// --- Planning as a whole --------------------------------------------------------------------

#[test]
fn planning_is_deterministic_whatever_the_member_order() {
    let policy = policy(&[(SALES, Role::Internal)]);
    let mirror = mirror_of(&[(SALES, Role::Internal, "Sales", &[5, 6])]);
    let forward = run(
        &policy,
        &snapshot(vec![found(SALES, "Sales", users(&[1, 2, 3, 4]))]),
        &mirror,
    );
    let backward = run(
        &policy,
        &snapshot(vec![found(SALES, "Sales", users(&[4, 3, 2, 1]))]),
        &mirror,
    );
    assert_eq!(forward, backward);
}

#[test]
fn a_user_listed_twice_in_a_group_is_planned_once() {
    let plan = run(
        &policy(&[(SALES, Role::Internal)]),
        &snapshot(vec![found(SALES, "Sales", users(&[1, 1]))]),
        &Mirror::default(),
    );
    assert_eq!(plan.counts().users_created, 1);
    assert_eq!(plan.counts().memberships_added, 1);
}

/// Issue 13: an initial sync's plan holds 100,000 user operations, so a user's fields live in
/// a box, not inline in every operation (an operation was 312 bytes, now 112).
#[test]
fn an_operation_is_small_whatever_its_kind() {
    let size = std::mem::size_of::<Op>();
    assert!(size <= 112, "an operation takes {size} bytes");
}
