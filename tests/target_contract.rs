//! One contract every `TargetAdapter` keeps (issue 4), run against the in-memory target (the
//! reference), the HighQ emulator through the HighQ adapter, and scim2-server through the SCIM
//! adapter. Each case drives the adapter the way the applier does and then compares the whole
//! target, read through the target's own API or state, with what the rules say.
//!
//! SCIM has no archived state: the archived half of a case is skipped there (and says so).
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use dirsync::domain::{Email, EntraObjectId, GroupKind, Role, UserStatus};
use dirsync::plan::{FieldChange, GroupKey, ManagedField, UserFields, UserState};
use dirsync::target::TargetError;
use support::world::{ManualUser, TargetWorld, View};

use GroupKind::{SyncedBasic, SyncedInternal, System};
use Role::{Basic, Internal};
use UserStatus::{Active, Archived, Inactive};

fn entra_id(n: u8) -> EntraObjectId {
    EntraObjectId::parse(&format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
}

fn state(email: &str, first: &str, last: &str, job: Option<&str>, role: Role) -> UserState {
    UserState {
        fields: UserFields {
            email: Email::parse(email).unwrap(),
            first_name: first.into(),
            last_name: last.into(),
            phone: Some("+44 20 7946 0958".into()),
            job_title: job.map(Into::into),
        },
        role,
        status: Active,
    }
}

fn key(n: u8, role: Role) -> GroupKey {
    GroupKey {
        entra_id: entra_id(n),
        role,
    }
}

fn change(field: ManagedField, old: &str, new: &str) -> FieldChange {
    FieldChange {
        field,
        old: Some(old.to_owned()),
        new: Some(new.to_owned()),
    }
}

/// `(email, first, last, job, role, status, managed)`.
type UserRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Role,
    UserStatus,
    bool,
);

fn view(users: &[UserRow<'_>], groups: &[(&str, GroupKind, &[&str])]) -> View {
    View {
        users: users
            .iter()
            .map(|(email, first, last, job, role, status, managed)| {
                (
                    email.to_string(),
                    (
                        first.to_string(),
                        last.to_string(),
                        job.map(str::to_owned),
                        *role,
                        *status,
                        *managed,
                    ),
                )
            })
            .collect::<BTreeMap<_, _>>(),
        groups: groups
            .iter()
            .map(|(name, kind, members)| {
                (
                    name.to_string(),
                    (
                        *kind,
                        members
                            .iter()
                            .map(|m| m.to_string())
                            .collect::<BTreeSet<_>>(),
                    ),
                )
            })
            .collect(),
    }
}

const BOSS: ManualUser = ManualUser {
    email: "boss@contoso.com",
    first_name: "The",
    last_name: "Boss",
    job_title: Some("Managing Partner"),
    status: Active,
};

const BOSS_ROW: UserRow<'static> = (
    "boss@contoso.com",
    "The",
    "Boss",
    Some("Managing Partner"),
    Internal,
    Active,
    false,
);

/// The cases, each a function of the target under test.
mod cases {
    use super::*;

    pub async fn a_new_user_is_created_with_its_whole_managed_state_and_linked_to_entra(
        target: &dyn TargetWorld,
    ) {
        let adapter = target.adapter();

        let id = adapter
            .create_user(
                &entra_id(1),
                &state(
                    "New.User@contoso.com",
                    "New",
                    "User",
                    Some("Partner"),
                    Basic,
                ),
            )
            .await
            .unwrap();

        assert_eq!(
            target.view().await,
            view(
                &[(
                    "new.user@contoso.com",
                    "New",
                    "User",
                    Some("Partner"),
                    Basic,
                    Active,
                    true
                )],
                &[]
            )
        );
        let found = adapter
            .find_users_by_email(&[Email::parse("new.user@contoso.com").unwrap()])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, id);
        assert_eq!(found[0].fields.first_name, "New");
    }

    pub async fn an_existing_user_is_found_by_email_case_insensitively_and_adopted(
        target: &dyn TargetWorld,
    ) {
        target
            .add_manual_user(&ManualUser {
                email: "Jane.Doe@Contoso.com",
                first_name: "J.",
                last_name: "D.",
                job_title: Some("Old title"),
                status: Inactive,
            })
            .await;
        target.add_manual_user(&BOSS).await;
        let adapter = target.adapter();

        let found = adapter
            .find_users_by_email(&[
                Email::parse("jane.doe@CONTOSO.com").unwrap(),
                Email::parse("nobody@contoso.com").unwrap(),
            ])
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .fields
                .email
                .as_str()
                .eq_ignore_ascii_case("jane.doe@contoso.com")
        );
        assert_eq!(found[0].status, Inactive);
        assert_eq!(found[0].fields.job_title.as_deref(), Some("Old title"));
        adapter
            .adopt_user(
                &found[0].id,
                &entra_id(7),
                &state(
                    "jane.doe@contoso.com",
                    "Jane",
                    "Doe",
                    Some("Associate"),
                    Internal,
                ),
            )
            .await
            .unwrap();

        assert_eq!(
            target.view().await,
            view(
                &[
                    BOSS_ROW,
                    (
                        "jane.doe@contoso.com",
                        "Jane",
                        "Doe",
                        Some("Associate"),
                        Internal,
                        Active,
                        true
                    ),
                ],
                &[]
            )
        );
    }

    pub async fn an_update_sends_only_the_changed_fields_with_the_role_and_status(
        target: &dyn TargetWorld,
    ) {
        let adapter = target.adapter();
        let before = state(
            "ann@contoso.com",
            "Ann",
            "Smith",
            Some("Associate"),
            Internal,
        );
        let id = adapter.create_user(&entra_id(1), &before).await.unwrap();
        // An admin renames her by hand: that stands until her first name changes in Entra (R15).
        target
            .set_first_name_by_hand("ann@contoso.com", "Annie")
            .await;
        let mut after = before.clone();
        after.fields.last_name = "Jones".into();
        after.role = Basic;

        adapter
            .update_user(
                &id,
                &[
                    change(ManagedField::LastName, "Smith", "Jones"),
                    change(ManagedField::Role, "internal", "basic"),
                ],
                &after,
            )
            .await
            .unwrap();

        assert_eq!(
            target.view().await,
            view(
                &[(
                    "ann@contoso.com",
                    "Annie",
                    "Jones",
                    Some("Associate"),
                    Basic,
                    Active,
                    true
                )],
                &[]
            )
        );
    }

    pub async fn a_user_is_deactivated_and_reactivated(target: &dyn TargetWorld) {
        let adapter = target.adapter();
        let email = Email::parse("a@contoso.com").unwrap();
        let id = adapter
            .create_user(
                &entra_id(1),
                &state("a@contoso.com", "A", "B", None, Internal),
            )
            .await
            .unwrap();
        let status = || async {
            let found = adapter
                .find_users_by_email(std::slice::from_ref(&email))
                .await
                .unwrap();
            let seen = target.view().await.users["a@contoso.com"].4;
            assert_eq!(
                found[0].status, seen,
                "the lookup reads what the target holds"
            );
            seen
        };

        adapter.set_user_status(&id, Inactive).await.unwrap();
        assert_eq!(status().await, Inactive);
        adapter.set_user_status(&id, Active).await.unwrap();
        assert_eq!(status().await, Active);

        if target.has_archived() {
            adapter.set_user_status(&id, Archived).await.unwrap();
            assert_eq!(status().await, Archived);
            adapter.set_user_status(&id, Active).await.unwrap();
            assert_eq!(status().await, Active);
        }
    }

    pub async fn members_are_added_and_removed_in_batches(target: &dyn TargetWorld) {
        let adapter = target.adapter();
        let mut users = Vec::new();
        for n in 0..7u8 {
            let email = format!("u{n}@contoso.com");
            users.push(
                adapter
                    .create_user(&entra_id(n), &state(&email, "U", "N", None, Internal))
                    .await
                    .unwrap(),
            );
        }
        let group = adapter
            .create_group(&key(50, Internal), "Sales")
            .await
            .unwrap();

        let added = adapter.add_members(&group, &users).await;
        assert_eq!(added.failed, vec![]);
        let removed = adapter.remove_members(&group, &users[..3]).await;
        assert_eq!(removed.failed, vec![]);

        let seen = target.view().await;
        assert_eq!(
            seen.groups["Sales"],
            (
                SyncedInternal,
                (3..7).map(|n| format!("u{n}@contoso.com")).collect()
            )
        );
        assert_eq!(seen.users.len(), 7);
    }

    pub async fn a_member_the_target_refuses_fails_alone(target: &dyn TargetWorld) {
        if !target.has_archived() {
            eprintln!("{}: no archived users, nothing to refuse", target.name());
            return;
        }
        let adapter = target.adapter();
        let mut users = Vec::new();
        for n in 0..5u8 {
            let email = format!("u{n}@contoso.com");
            users.push(
                adapter
                    .create_user(&entra_id(n), &state(&email, "U", "N", None, Internal))
                    .await
                    .unwrap(),
            );
        }
        adapter.set_user_status(&users[2], Archived).await.unwrap();
        let group = adapter
            .create_group(&key(50, Internal), "Sales")
            .await
            .unwrap();

        let outcome = adapter.add_members(&group, &users).await;

        assert_eq!(outcome.failed.len(), 1, "{:?}", outcome.failed);
        assert_eq!(outcome.failed[0].0, users[2]);
        assert!(matches!(outcome.failed[0].1, TargetError::Rejected(_)));
        assert_eq!(
            target.view().await.groups["Sales"].1,
            [0, 1, 3, 4]
                .iter()
                .map(|n| format!("u{n}@contoso.com"))
                .collect()
        );
    }

    pub async fn r02_r03_a_synced_group_is_created_with_its_role_and_renamed_with_its_members(
        target: &dyn TargetWorld,
    ) {
        let adapter = target.adapter();
        let user = adapter
            .create_user(
                &entra_id(1),
                &state("a@contoso.com", "A", "B", None, Internal),
            )
            .await
            .unwrap();
        let sales = adapter
            .create_group(&key(50, Internal), "Sales")
            .await
            .unwrap();
        adapter
            .create_group(&key(51, Basic), "Client Portal")
            .await
            .unwrap();
        assert_eq!(adapter.add_members(&sales, &[user]).await.failed, vec![]);

        adapter
            .rename_group(&sales, &key(50, Internal), "Sales EMEA")
            .await
            .unwrap();

        assert_eq!(
            target.view().await,
            view(
                &[("a@contoso.com", "A", "B", None, Internal, Active, true)],
                &[
                    ("Sales EMEA", SyncedInternal, &["a@contoso.com"]),
                    ("Client Portal", SyncedBasic, &[]),
                ]
            )
        );
    }

    pub async fn r12_a_group_is_emptied_and_converted_to_a_system_group_that_frees_its_name(
        target: &dyn TargetWorld,
    ) {
        let adapter = target.adapter();
        let mut users = Vec::new();
        for (n, email) in [(1, "a@contoso.com"), (2, "b@contoso.com")] {
            users.push(
                adapter
                    .create_user(&entra_id(n), &state(email, "A", "B", None, Internal))
                    .await
                    .unwrap(),
            );
        }
        let legal = adapter
            .create_group(&key(50, Internal), "Legal")
            .await
            .unwrap();
        assert_eq!(adapter.add_members(&legal, &users).await.failed, vec![]);

        assert_eq!(adapter.remove_members(&legal, &users).await.failed, vec![]);
        adapter
            .convert_to_system_group(&legal, "Legal_1745313810193")
            .await
            .unwrap();
        adapter
            .create_group(&key(50, Internal), "Legal")
            .await
            .expect("the old name is free again");

        assert_eq!(
            target.view().await.groups,
            view(
                &[],
                &[("Legal_<ms>", System, &[]), ("Legal", SyncedInternal, &[]),]
            )
            .groups
        );
    }

    pub async fn r13_a_role_change_converts_the_old_group_and_fills_a_new_one_with_the_new_role(
        target: &dyn TargetWorld,
    ) {
        let adapter = target.adapter();
        let dan_basic = state("dan@contoso.com", "Dan", "Dyer", None, Basic);
        let dan = adapter.create_user(&entra_id(4), &dan_basic).await.unwrap();
        let old = adapter
            .create_group(&key(50, Basic), "Client Portal")
            .await
            .unwrap();
        assert_eq!(
            adapter
                .add_members(&old, std::slice::from_ref(&dan))
                .await
                .failed,
            vec![]
        );

        // The applier's order for R13: empty and convert the old group, then create and fill
        // the new one, then update the user's role (R14).
        assert_eq!(
            adapter
                .remove_members(&old, std::slice::from_ref(&dan))
                .await
                .failed,
            vec![]
        );
        adapter
            .convert_to_system_group(&old, "Client Portal_1745313810193")
            .await
            .unwrap();
        let new = adapter
            .create_group(&key(50, Internal), "Client Portal")
            .await
            .unwrap();
        assert_eq!(
            adapter
                .add_members(&new, std::slice::from_ref(&dan))
                .await
                .failed,
            vec![]
        );
        let mut dan_internal = dan_basic.clone();
        dan_internal.role = Internal;
        adapter
            .update_user(
                &dan,
                &[change(ManagedField::Role, "basic", "internal")],
                &dan_internal,
            )
            .await
            .unwrap();

        assert_eq!(
            target.view().await,
            view(
                &[(
                    "dan@contoso.com",
                    "Dan",
                    "Dyer",
                    None,
                    Internal,
                    Active,
                    true
                )],
                &[
                    ("Client Portal_<ms>", System, &[]),
                    ("Client Portal", SyncedInternal, &["dan@contoso.com"]),
                ]
            )
        );
    }

    pub async fn manual_users_and_groups_are_left_untouched(target: &dyn TargetWorld) {
        target.add_manual_user(&BOSS).await;
        target
            .add_manual_user(&ManualUser {
                email: "grace@contoso.com",
                first_name: "G.",
                last_name: "Gardner",
                job_title: None,
                status: Active,
            })
            .await;
        target
            .add_manual_group("Partners", &["boss@contoso.com", "grace@contoso.com"])
            .await;
        let adapter = target.adapter();

        // Grace is adopted, synced into a group, removed from it, deactivated; the group is
        // converted. None of it touches the boss or the Partners group.
        let grace = adapter
            .find_users_by_email(&[
                Email::parse("grace@contoso.com").unwrap(),
                Email::parse("boss@contoso.com").unwrap(),
            ])
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.fields.email.as_str() == "grace@contoso.com")
            .unwrap()
            .id;
        adapter
            .adopt_user(
                &grace,
                &entra_id(7),
                &state("grace@contoso.com", "Grace", "Gardner", None, Internal),
            )
            .await
            .unwrap();
        let legal = adapter
            .create_group(&key(50, Internal), "Legal")
            .await
            .unwrap();
        let grace = [grace];
        assert_eq!(adapter.add_members(&legal, &grace).await.failed, vec![]);
        assert_eq!(adapter.remove_members(&legal, &grace).await.failed, vec![]);
        adapter.set_user_status(&grace[0], Inactive).await.unwrap();
        adapter
            .convert_to_system_group(&legal, "Legal_1745313810193")
            .await
            .unwrap();

        assert_eq!(
            target.view().await,
            view(
                &[
                    BOSS_ROW,
                    (
                        "grace@contoso.com",
                        "Grace",
                        "Gardner",
                        None,
                        Internal,
                        Inactive,
                        true
                    ),
                ],
                &[
                    (
                        "Partners",
                        System,
                        &["boss@contoso.com", "grace@contoso.com"]
                    ),
                    ("Legal_<ms>", System, &[]),
                ]
            )
        );
    }
}

/// One test per case for a target; `$world` builds a fresh target from the case's name.
macro_rules! contract {
    ($world:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let world = ($world)(stringify!($case)).await;
                super::cases::$case(&world).await;
            }
        )*
    };
}

macro_rules! contract_for {
    ($target:ident, $world:expr) => {
        mod $target {
            #[allow(unused_imports)]
            use super::support::world::{HighQWorld, MemoryWorld, ScimWorld};

            contract!(
                $world;
                a_new_user_is_created_with_its_whole_managed_state_and_linked_to_entra,
                an_existing_user_is_found_by_email_case_insensitively_and_adopted,
                an_update_sends_only_the_changed_fields_with_the_role_and_status,
                a_user_is_deactivated_and_reactivated,
                members_are_added_and_removed_in_batches,
                a_member_the_target_refuses_fails_alone,
                r02_r03_a_synced_group_is_created_with_its_role_and_renamed_with_its_members,
                r12_a_group_is_emptied_and_converted_to_a_system_group_that_frees_its_name,
                r13_a_role_change_converts_the_old_group_and_fills_a_new_one_with_the_new_role,
                manual_users_and_groups_are_left_untouched,
            );
        }
    };
}

contract_for!(memory, |_case: &'static str| async { MemoryWorld::new() });
contract_for!(highq, |_case: &'static str| HighQWorld::start());
contract_for!(scim, |case: &'static str| async move {
    ScimWorld::new(&format!("contract-{case}"))
});
