//! The store contract: every case runs against both backends, a fresh PostgreSQL database and a
//! fresh SQLite file (`on_both_backends!` at the end), so they keep the same promises.

use std::time::Instant;

use chrono::{Duration, Utc};
use dirsync::domain::{
    DeactivationStatus, Email, EntraObjectId, Role, TargetGroupId, TargetUserId, TenantKey,
    UserStatus,
};
use dirsync::plan::{
    ConvertedGroup, GroupKey, GroupStatus, GroupSummary, Mirror, MirrorGroup, MirrorUser,
    PlanCounts, SelectedGroup, Severity, TenantPolicy, UserFields, UserState,
};
use dirsync::store::{
    Approval, CreatedGroup, MirrorChanges, ReportEntry, RunFinish, RunFlush, RunLease, RunOptions,
    RunProgress, RunStart, RunStatus, RunSummary, StoreError, SubjectKind, Trigger, TriggerKind,
};
use dirsync::tenant::{Retention, SourceSettings, TargetSettings, Tenant};
use std::sync::Arc;

use dirsync::store::Database;
use support::backend::TestDb;

mod support;

type Db = Arc<dyn Database>;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn new_id() -> EntraObjectId {
    uuid::Uuid::new_v4().into()
}

fn key(text: &str) -> TenantKey {
    TenantKey::parse(text).unwrap()
}

fn tenant(name: &str, groups: Vec<SelectedGroup>) -> Tenant {
    Tenant {
        key: key(name),
        display_name: format!("{name} Ltd"),
        entra_tenant_id: new_id(),
        time_zone: chrono_tz::Europe::London,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups: groups,
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: TargetSettings::parse(&serde_json::json!({
            "kind": "highq", "base_url": "https://highq.example/acme", "client_id": "dirsync",
            "client_secret": "highq-client-secret"
        }))
        .unwrap(),
    }
}

async fn store_with_tenant(db: &TestDb, name: &str) -> (Db, TenantKey) {
    let store = db.store.clone();
    store.upsert_tenant(&tenant(name, vec![])).await.unwrap();
    (store, key(name))
}

fn group_key(entra_id: &EntraObjectId, role: Role) -> GroupKey {
    GroupKey {
        entra_id: entra_id.clone(),
        role,
    }
}

fn user(entra_id: &EntraObjectId, n: usize) -> MirrorUser {
    MirrorUser {
        entra_id: entra_id.clone(),
        target_id: TargetUserId::new(format!("u{n}")).unwrap(),
        state: UserState {
            fields: UserFields {
                email: Email::parse(&format!("User.{n}@Contoso.com")).unwrap(),
                first_name: format!("First{n}").into(),
                last_name: format!("Last{n}").into(),
                phone: (n % 2 == 0).then(|| format!("+44$20${n}").into()),
                job_title: (n % 3 == 0).then(|| "Engineer".into()),
            },
            role: Role::Internal,
            status: UserStatus::Active,
        },
    }
}

fn created(key: &GroupKey, target_id: &str, name: &str) -> CreatedGroup {
    CreatedGroup {
        key: key.clone(),
        target_id: TargetGroupId::new(target_id).unwrap(),
        name: name.to_owned(),
    }
}

fn sorted(mut ids: Vec<EntraObjectId>) -> Vec<EntraObjectId> {
    ids.sort();
    ids
}

fn entry(action: &str, n: usize) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::User,
        entra_id: Some(new_id()),
        email: Some(format!("user{n}@contoso.com")),
        name: Some(format!("User {n}")),
        action: action.to_owned(),
        field: (n % 2 == 0).then(|| "job title".to_owned()),
        old_value: (n % 2 == 0).then(|| "Old".to_owned()),
        new_value: (n % 2 == 0).then(|| "New".to_owned()),
        severity: Severity::Info,
        message: None,
    }
}

fn finish(status: RunStatus) -> RunFinish {
    RunFinish {
        status,
        summary: RunSummary {
            planned: PlanCounts {
                users_created: 3,
                memberships_added: 4,
                ..PlanCounts::default()
            },
            operations_applied: 7,
            operations_failed: 0,
            ..RunSummary::default()
        },
        message: None,
    }
}

/// A new run whose lease is dropped at once, as if its process died: enough for tests of what
/// is recorded about runs.
async fn started(store: &Db, tenant: &TenantKey) -> i64 {
    leased(store, tenant).await.run_id()
}

/// A new run and its lease, held by the caller.
async fn leased(store: &Db, tenant: &TenantKey) -> Arc<dyn RunLease> {
    match store
        .begin_run(tenant, &Trigger::automatic(), RunOptions::default())
        .await
        .unwrap()
    {
        RunStart::Started(lease) => lease,
        other => panic!("expected a new run, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------------

async fn a_tenant_round_trips_and_a_second_upsert_replaces_its_selected_groups(db: TestDb) {
    let store = db.store.clone();
    let (a, b, c) = (new_id(), new_id(), new_id());
    let mut acme = tenant(
        "acme",
        vec![
            SelectedGroup {
                entra_id: b.clone(),
                role: Role::Internal,
            },
            SelectedGroup {
                entra_id: a.clone(),
                role: Role::Basic,
            },
        ],
    );
    acme.report_retention = Retention::SixMonths;
    acme.policy.deletion_threshold = 0;
    acme.source = SourceSettings::parse(&serde_json::json!({
        "client_id": "11111111-2222-3333-4444-555555555555",
        "credential": {"kind": "client_certificate", "pkcs12_base64": "MIIKprivate", "password": "env:DIRSYNC_SECRET_PFX"}
    }))
    .unwrap();

    store.upsert_tenant(&acme).await.unwrap();
    assert_eq!(store.tenant(&acme.key).await.unwrap(), Some(acme.clone()));

    acme.display_name = "Acme Renamed".into();
    acme.time_zone = chrono_tz::America::New_York;
    acme.policy.deactivation_status = DeactivationStatus::Archived;
    acme.policy.selected_groups = vec![
        SelectedGroup {
            entra_id: c.clone(),
            role: Role::Basic,
        },
        SelectedGroup {
            entra_id: a.clone(),
            role: Role::Internal,
        },
    ];
    store.upsert_tenant(&acme).await.unwrap();
    let beta = tenant(
        "beta",
        vec![SelectedGroup {
            entra_id: b,
            role: Role::Basic,
        }],
    );
    store.upsert_tenant(&beta).await.unwrap();

    assert_eq!(store.tenant(&acme.key).await.unwrap(), Some(acme.clone()));
    assert_eq!(store.tenants().await.unwrap(), vec![acme, beta]);
    assert_eq!(store.tenant(&key("nobody")).await.unwrap(), None);
}

async fn secret_settings_are_stored_for_connecting_and_read_back_intact(db: TestDb) {
    let store = db.store.clone();
    let acme = tenant("acme", vec![]);
    store.upsert_tenant(&acme).await.unwrap();
    let stored = db
        .json("SELECT target FROM tenants WHERE key = 'acme'")
        .await;
    assert_eq!(stored["client_secret"], "highq-client-secret");
    assert_eq!(store.tenant(&acme.key).await.unwrap(), Some(acme));
}

async fn a_tenant_that_connects_elsewhere_loses_its_stored_target_token(db: TestDb) {
    use secrecy::{ExposeSecret, SecretString};

    let store = db.store.clone();
    let mut acme = tenant("acme", vec![]);
    let saved = store.upsert_tenant(&acme).await.unwrap();
    assert!(saved.created && !saved.connection_changed);
    let tokens = store.target_tokens(acme.key.clone(), "highq");
    tokens.save(&SecretString::from("rt-live")).await.unwrap();

    // Same connection, other fields changed: the token stays.
    acme.display_name = "Acme Renamed".into();
    acme.policy.deletion_threshold = 3;
    let saved = store.upsert_tenant(&acme).await.unwrap();
    assert!(!saved.created && !saved.connection_changed);
    assert_eq!(
        tokens.load().await.unwrap().unwrap().expose_secret(),
        "rt-live"
    );

    // Another host: the token is gone.
    let mut moved = acme.clone();
    moved.target = TargetSettings::parse(&serde_json::json!({
        "kind": "highq", "base_url": "https://elsewhere.example/acme", "client_id": "dirsync",
        "client_secret": "highq-client-secret"
    }))
    .unwrap();
    assert!(
        store
            .upsert_tenant(&moved)
            .await
            .unwrap()
            .connection_changed
    );
    assert!(tokens.load().await.unwrap().is_none());

    // Another Entra directory (same target): a token given since is dropped as well.
    tokens.save(&SecretString::from("rt-2")).await.unwrap();
    moved.entra_tenant_id = new_id();
    assert!(
        store
            .upsert_tenant(&moved)
            .await
            .unwrap()
            .connection_changed
    );
    assert!(tokens.load().await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Mirror
// ---------------------------------------------------------------------------------------------

async fn the_mirror_round_trips_through_applied_changes_renames_and_removals(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let (sales, legal) = (new_id(), new_id());
    let (u1, u2, u3) = (new_id(), new_id(), new_id());
    let sales_key = group_key(&sales, Role::Internal);
    let legal_key = group_key(&legal, Role::Basic);
    let mut users = vec![user(&u1, 1), user(&u2, 2), user(&u3, 3)];
    users[2].state.role = Role::Basic;

    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                groups_created: vec![
                    created(&sales_key, "g1", "Sales"),
                    created(&legal_key, "g2", "Legal"),
                ],
                users: users.clone(),
                members_added: vec![
                    (sales_key.clone(), u1.clone()),
                    (sales_key.clone(), u2.clone()),
                    (legal_key.clone(), u3.clone()),
                ],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    let mut expected_groups = vec![
        MirrorGroup {
            key: sales_key.clone(),
            target_id: TargetGroupId::new("g1").unwrap(),
            name: "Sales".into(),
            members: sorted(vec![u1.clone(), u2.clone()]),
        },
        MirrorGroup {
            key: legal_key.clone(),
            target_id: TargetGroupId::new("g2").unwrap(),
            name: "Legal".into(),
            members: vec![u3.clone()],
        },
    ];
    expected_groups.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected_users = users.clone();
    expected_users.sort_by(|a, b| a.entra_id.cmp(&b.entra_id));
    let mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(
        mirror,
        Mirror {
            groups: expected_groups.clone(),
            users: expected_users.clone(),
            converted: vec![],
        }
    );
    // Issue 13: the sizes the read orders its groups by, without loading the mirror.
    assert_eq!(
        store.synced_group_sizes(&acme).await.unwrap(),
        [(sales.clone(), 2), (legal.clone(), 1)]
            .into_iter()
            .collect()
    );

    // Day 2: Sales is renamed, u2 leaves it and is deactivated, u1 changes email local part.
    let mut u1_after = user(&u1, 1);
    u1_after.state.fields.email = Email::parse("renamed.1@Contoso.com").unwrap();
    let mut u2_after = user(&u2, 2);
    u2_after.state.status = UserStatus::Inactive;
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                groups_renamed: vec![(sales_key.clone(), "Sales EMEA".into())],
                users: vec![u1_after.clone(), u2_after.clone()],
                members_removed: vec![(sales_key.clone(), u2.clone())],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    for group in &mut expected_groups {
        if group.key == sales_key {
            group.name = "Sales EMEA".into();
            group.members = vec![u1.clone()];
        }
    }
    for user in &mut expected_users {
        if user.entra_id == u1 {
            *user = u1_after.clone();
        } else if user.entra_id == u2 {
            *user = u2_after.clone();
        }
    }
    let mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(mirror.groups, expected_groups);
    assert_eq!(mirror.users, expected_users);
    assert!(
        mirror
            .users
            .iter()
            .any(|u| u.state.fields.email.as_str() == "renamed.1@Contoso.com"),
        "the email keeps its spelling"
    );
}

async fn r09a_a_released_user_hands_its_target_user_and_memberships_to_its_successor(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let (sales, legal) = (
        group_key(&new_id(), Role::Internal),
        group_key(&new_id(), Role::Internal),
    );
    let (departed, stays, successor) = (new_id(), new_id(), new_id());
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                groups_created: vec![
                    created(&sales, "g1", "Sales"),
                    created(&legal, "g2", "Legal"),
                ],
                users: vec![user(&departed, 1), user(&stays, 2)],
                members_added: vec![
                    (sales.clone(), departed.clone()),
                    (legal.clone(), departed.clone()),
                    (sales.clone(), stays.clone()),
                ],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    // The successor adopts the departed user's target user "u1" and leaves Legal, in one flush.
    let mut adopted = user(&successor, 1);
    adopted.state.fields.first_name = "Successor".into();
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                users_released: vec![(departed.clone(), successor.clone())],
                users: vec![adopted.clone()],
                members_removed: vec![(legal.clone(), successor.clone())],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    let mirror = store.load_mirror(&acme).await.unwrap();
    let mut expected_users = vec![adopted, user(&stays, 2)];
    expected_users.sort_by(|a, b| a.entra_id.cmp(&b.entra_id));
    assert_eq!(mirror.users, expected_users, "the departed user is gone");
    let members: std::collections::BTreeMap<String, Vec<EntraObjectId>> = mirror
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.members.clone()))
        .collect();
    assert_eq!(
        members["Sales"],
        sorted(vec![successor.clone(), stays.clone()])
    );
    assert_eq!(members["Legal"], vec![], "the successor left Legal");
}

async fn r12_a_converted_group_without_a_successor_is_remembered_for_the_planner(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let (deleted, recreated) = (new_id(), new_id());
    let (gone, old_role, new_role) = (
        group_key(&deleted, Role::Internal),
        group_key(&recreated, Role::Internal),
        group_key(&recreated, Role::Basic),
    );
    for changes in [
        MirrorChanges {
            groups_created: vec![
                created(&gone, "g1", "Legal"),
                created(&old_role, "g2", "Sales"),
            ],
            ..MirrorChanges::default()
        },
        // Legal is deleted in Entra; Sales changes role (R13) and lives on as a basic group.
        MirrorChanges {
            groups_converted: vec![
                (gone.clone(), "Legal_1745313810193".into()),
                (old_role.clone(), "Sales_1745313810193".into()),
            ],
            groups_created: vec![created(&new_role, "g3", "Sales")],
            ..MirrorChanges::default()
        },
    ] {
        store.apply_mirror_changes(&acme, &changes).await.unwrap();
    }

    let mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(
        mirror.converted,
        vec![ConvertedGroup {
            key: gone,
            name: "Legal".into(),
            system_name: "Legal_1745313810193".into(),
        }]
    );
}

async fn a_converted_group_is_kept_as_history_and_its_entra_group_can_be_synced_again_with_the_other_role(
    db: TestDb,
) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let group = new_id();
    let (u1, u2) = (new_id(), new_id());
    let internal = group_key(&group, Role::Internal);
    let basic = group_key(&group, Role::Basic);
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                groups_created: vec![created(&internal, "g1", "Sales")],
                users: vec![user(&u1, 1), user(&u2, 2)],
                members_added: vec![
                    (internal.clone(), u1.clone()),
                    (internal.clone(), u2.clone()),
                ],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    // R13: the role changes; the plan removes the members, converts, creates and fills anew.
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                members_removed: vec![(internal.clone(), u1.clone())],
                groups_converted: vec![(internal.clone(), "Sales_1745313810193".into())],
                groups_created: vec![created(&basic, "g2", "Sales")],
                members_added: vec![(basic.clone(), u2.clone())],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    let mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(
        mirror.groups,
        vec![MirrorGroup {
            key: basic.clone(),
            target_id: TargetGroupId::new("g2").unwrap(),
            name: "Sales".into(),
            members: vec![u2.clone()],
        }]
    );
    let history: Vec<(String, String, String, Option<String>, bool, i64)> = db
        .rows(
            "SELECT g.role, g.kind, g.target_group_id, g.system_name, g.converted_at IS NOT NULL,
                    (SELECT count(*) FROM memberships m WHERE m.synced_group_id = g.id)
             FROM synced_groups g ORDER BY g.id",
        )
        .await;
    assert_eq!(
        history,
        vec![
            (
                "internal".into(),
                "system".into(),
                "g1".into(),
                Some("Sales_1745313810193".into()),
                true,
                0
            ),
            ("basic".into(), "synced".into(), "g2".into(), None, false, 1),
        ]
    );

    // And back again (R13 twice): history accumulates, one synced group at a time.
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                groups_converted: vec![(basic.clone(), "Sales_1745313899999".into())],
                groups_created: vec![created(&internal, "g3", "Sales")],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();
    let mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(mirror.groups.len(), 1);
    assert_eq!(mirror.groups[0].key, internal);
    assert_eq!(mirror.groups[0].target_id.as_str(), "g3");
    assert!(mirror.groups[0].members.is_empty());
    let system_groups: i64 = db
        .scalar("SELECT count(*) FROM synced_groups WHERE kind = 'system'")
        .await;
    assert_eq!(system_groups, 2);
}

/// Issue 10 item 1: a unique-constraint clash must not roll back a flush (the groups created in
/// it would exist in the target but not in the mirror, and be created again every night).
async fn a_second_synced_group_for_the_same_entra_group_is_skipped_and_the_rest_of_the_flush_is_kept(
    db: TestDb,
) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let group = new_id();
    let internal = group_key(&group, Role::Internal);
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                groups_created: vec![created(&internal, "g1", "Sales")],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    let u1 = new_id();
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                groups_created: vec![created(&group_key(&group, Role::Basic), "g2", "Sales")],
                users: vec![user(&u1, 1)],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    let mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(mirror.groups.len(), 1);
    assert_eq!(
        mirror.groups[0].key, internal,
        "the first synced group stays"
    );
    assert_eq!(mirror.users.len(), 1, "the rest of the flush is recorded");
}

async fn each_tenant_has_its_own_mirror_even_for_the_same_entra_ids(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    store.upsert_tenant(&tenant("beta", vec![])).await.unwrap();
    let beta = key("beta");
    let (group, u1) = (new_id(), new_id());
    let sales = group_key(&group, Role::Internal);
    let changes = MirrorChanges {
        groups_created: vec![created(&sales, "g1", "Sales")],
        users: vec![user(&u1, 1)],
        members_added: vec![(sales.clone(), u1.clone())],
        ..MirrorChanges::default()
    };
    store.apply_mirror_changes(&acme, &changes).await.unwrap();
    store.apply_mirror_changes(&beta, &changes).await.unwrap();

    store
        .apply_mirror_changes(
            &beta,
            &MirrorChanges {
                groups_converted: vec![(sales.clone(), "Sales_1".into())],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();

    let acme_mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(acme_mirror.groups.len(), 1);
    assert_eq!(acme_mirror.groups[0].members, vec![u1.clone()]);
    let beta_mirror = store.load_mirror(&beta).await.unwrap();
    assert!(beta_mirror.groups.is_empty());
    assert_eq!(beta_mirror.users, acme_mirror.users);
}

async fn the_mirror_of_an_unknown_tenant_is_not_found(db: TestDb) {
    let store = db.store.clone();

    let loaded = store.load_mirror(&key("ghost")).await;
    let applied = store
        .apply_mirror_changes(&key("ghost"), &MirrorChanges::default())
        .await;

    assert!(
        matches!(loaded, Err(StoreError::NotFound(ref m)) if m.contains("ghost")),
        "{loaded:?}"
    );
    assert!(
        matches!(applied, Err(StoreError::NotFound(_))),
        "{applied:?}"
    );
}

async fn a_stored_row_that_no_longer_parses_is_reported_as_corrupt_naming_its_column(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let u1 = new_id();
    store
        .apply_mirror_changes(
            &acme,
            &MirrorChanges {
                users: vec![user(&u1, 1)],
                ..MirrorChanges::default()
            },
        )
        .await
        .unwrap();
    db.execute("UPDATE synced_users SET email = 'not an email'")
        .await;

    let loaded = store.load_mirror(&acme).await;

    assert!(
        matches!(loaded, Err(StoreError::Corrupt(ref m)) if m.starts_with("synced_users.email:")),
        "{loaded:?}"
    );
}

async fn twenty_thousand_users_and_memberships_are_written_in_one_call_and_load_back(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let everyone = group_key(&new_id(), Role::Internal);
    let ids: Vec<EntraObjectId> = (0..20_000).map(|_| new_id()).collect();
    let users: Vec<MirrorUser> = ids.iter().enumerate().map(|(n, id)| user(id, n)).collect();
    let changes = MirrorChanges {
        groups_created: vec![created(&everyone, "g1", "Everyone")],
        users: users.clone(),
        members_added: ids
            .iter()
            .map(|id| (everyone.clone(), id.clone()))
            .collect(),
        ..MirrorChanges::default()
    };

    let written = Instant::now();
    store.apply_mirror_changes(&acme, &changes).await.unwrap();
    let write_time = written.elapsed();
    let loaded = Instant::now();
    let mirror = store.load_mirror(&acme).await.unwrap();
    let load_time = loaded.elapsed();
    eprintln!(
        "20,000 users + 20,000 memberships: written in {write_time:?}, loaded in {load_time:?}"
    );

    let mut expected_users = users;
    expected_users.sort_by(|a, b| a.entra_id.cmp(&b.entra_id));
    assert_eq!(mirror.users, expected_users);
    assert_eq!(mirror.groups.len(), 1);
    assert_eq!(mirror.groups[0].members, sorted(ids));

    // Writing the same users and memberships again changes nothing and still succeeds.
    let again = MirrorChanges {
        groups_created: vec![],
        ..changes
    };
    store.apply_mirror_changes(&acme, &again).await.unwrap();
    assert_eq!(store.load_mirror(&acme).await.unwrap(), mirror);
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

async fn begin_run_refuses_a_second_running_run_for_the_same_tenant_but_not_for_another(
    db: TestDb,
) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    store.upsert_tenant(&tenant("beta", vec![])).await.unwrap();

    let first_lease = leased(&store, &acme).await;
    let first = first_lease.run_id();
    let second = store
        .begin_run(
            &acme,
            &Trigger::manual("admin@acme.com"),
            RunOptions::default(),
        )
        .await
        .unwrap();
    let other_tenant = store
        .begin_run(&key("beta"), &Trigger::automatic(), RunOptions::default())
        .await
        .unwrap();

    assert_eq!(second, RunStart::AlreadyRunning(first));
    assert!(
        matches!(&other_tenant, RunStart::Started(lease) if lease.run_id() != first),
        "{other_tenant:?}"
    );
}

async fn concurrent_begin_runs_for_one_tenant_start_exactly_one(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;

    let attempts = (0..8).map(|_| {
        let (store, acme) = (store.clone(), acme.clone());
        tokio::spawn(async move {
            store
                .begin_run(&acme, &Trigger::automatic(), RunOptions::default())
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<RunStart> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let winners: Vec<i64> = outcomes
        .iter()
        .filter_map(|o| match o {
            RunStart::Started(lease) => Some(lease.run_id()),
            RunStart::AlreadyRunning(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.run_id() == winners[0]));
}

async fn a_finished_run_keeps_its_outcome_and_a_new_run_may_begin(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let held = started(&store, &acme).await;
    let mut held_finish = finish(RunStatus::Held);
    held_finish.message = Some("held: the run would deactivate 600 users".into());
    store.finish_run(held, &held_finish).await.unwrap();

    let approved = store
        .begin_run(
            &acme,
            &Trigger::manual("admin@acme.com"),
            RunOptions {
                approval: Some(Approval {
                    held_run: held,
                    deactivations: 600,
                }),
            },
        )
        .await
        .unwrap();
    let RunStart::Started(approved) = approved else {
        panic!("a run may begin once the previous one finished: {approved:?}");
    };
    let approved = approved.run_id();

    let held_record = store.run(held).await.unwrap().unwrap();
    assert_eq!(held_record.status, RunStatus::Held);
    assert_eq!(held_record.tenant, acme);
    assert_eq!(held_record.trigger, Trigger::automatic());
    assert_eq!(held_record.summary, Some(held_finish.summary.clone()));
    assert_eq!(held_record.message, held_finish.message);
    assert!(
        held_record
            .finished_at
            .is_some_and(|end| end >= held_record.started_at)
    );

    let approved_record = store.run(approved).await.unwrap().unwrap();
    assert_eq!(approved_record.status, RunStatus::Running);
    assert_eq!(approved_record.trigger.kind, TriggerKind::Manual);
    assert_eq!(
        approved_record.trigger.by.as_deref(),
        Some("admin@acme.com")
    );
    assert_eq!(
        approved_record.options.approval,
        Some(Approval {
            held_run: held,
            deactivations: 600
        })
    );
    assert_eq!(approved_record.finished_at, None);
    assert_eq!(approved_record.summary, None);

    assert_eq!(store.run(approved + 1000).await.unwrap(), None);
    assert!(matches!(
        store
            .finish_run(approved + 1000, &finish(RunStatus::Failed))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_run_for_an_unknown_tenant_does_not_begin(db: TestDb) {
    let store = db.store.clone();

    let result = store
        .begin_run(&key("ghost"), &Trigger::automatic(), RunOptions::default())
        .await;

    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
}

async fn report_entries_and_groups_read_back_in_the_order_they_were_written(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let run = started(&store, &acme).await;
    let first: Vec<ReportEntry> = (0..5).map(|n| entry("created", n)).collect();
    let mut second: Vec<ReportEntry> = (5..12_000).map(|n| entry("updated", n)).collect();
    second[0] = ReportEntry {
        subject: SubjectKind::Run,
        entra_id: None,
        email: None,
        name: None,
        action: "error".into(),
        field: None,
        old_value: None,
        new_value: None,
        severity: Severity::Error,
        message: Some("=cmd|' /C calc'!A0".into()),
    };
    let groups = vec![
        GroupSummary {
            entra_id: new_id(),
            name: "Sales".into(),
            role: Role::Internal,
            members_seen: Some(42),
            status: GroupStatus::Found,
            message: None,
        },
        GroupSummary {
            entra_id: new_id(),
            name: "Legal".into(),
            role: Role::Basic,
            members_seen: None,
            status: GroupStatus::Failed,
            message: Some("Graph returned 503 after 5 retries".into()),
        },
    ];
    let late_group = GroupSummary {
        entra_id: new_id(),
        name: "Archive".into(),
        role: Role::Internal,
        members_seen: Some(0),
        status: GroupStatus::Deselected,
        message: None,
    };

    store.record_entries(run, &first).await.unwrap();
    store.record_groups(run, &groups).await.unwrap();
    store.record_entries(run, &second).await.unwrap();
    store
        .record_groups(run, std::slice::from_ref(&late_group))
        .await
        .unwrap();
    store.record_entries(run, &[]).await.unwrap();

    let expected_entries: Vec<ReportEntry> = first.into_iter().chain(second).collect();
    assert_eq!(store.run_entries(run).await.unwrap(), expected_entries);
    let expected_groups: Vec<GroupSummary> = groups.into_iter().chain([late_group]).collect();
    assert_eq!(store.run_groups(run).await.unwrap(), expected_groups);
}

async fn report_lines_for_a_run_that_does_not_exist_are_refused(db: TestDb) {
    let store = db.store.clone();

    let result = store.record_entries(12345, &[entry("created", 1)]).await;

    assert!(
        matches!(result, Err(StoreError::NotFound(ref m)) if m.contains("12345")),
        "{result:?}"
    );
}

async fn runs_are_listed_newest_first_and_only_for_their_tenant(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    store.upsert_tenant(&tenant("beta", vec![])).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = started(&store, &acme).await;
        store
            .finish_run(id, &finish(RunStatus::Succeeded))
            .await
            .unwrap();
        ids.push(id);
    }
    let beta_run = started(&store, &key("beta")).await;

    let listed: Vec<i64> = store
        .runs(&acme, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let limited: Vec<i64> = store
        .runs(&acme, 2)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();

    ids.reverse();
    assert_eq!(listed, ids);
    assert_eq!(limited, ids[..2]);
    assert!(!listed.contains(&beta_run));
}

async fn purging_deletes_runs_started_before_the_cutoff_with_their_reports_and_keeps_newer_ones(
    db: TestDb,
) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    store.upsert_tenant(&tenant("beta", vec![])).await.unwrap();
    let old = started(&store, &acme).await;
    store
        .record_entries(old, &[entry("created", 1), entry("updated", 2)])
        .await
        .unwrap();
    store
        .record_groups(
            old,
            &[GroupSummary {
                entra_id: new_id(),
                name: "Sales".into(),
                role: Role::Internal,
                members_seen: Some(1),
                status: GroupStatus::Found,
                message: None,
            }],
        )
        .await
        .unwrap();
    store
        .finish_run(old, &finish(RunStatus::Succeeded))
        .await
        .unwrap();
    let recent = started(&store, &acme).await;
    store
        .record_entries(recent, &[entry("created", 3)])
        .await
        .unwrap();
    store
        .finish_run(recent, &finish(RunStatus::Succeeded))
        .await
        .unwrap();
    let still_running_old = started(&store, &acme).await;
    let other_tenant_old = started(&store, &key("beta")).await;
    store
        .finish_run(other_tenant_old, &finish(RunStatus::Succeeded))
        .await
        .unwrap();
    db.backdate_runs(&[old, still_running_old, other_tenant_old], 100)
        .await;

    let purged = store
        .purge_runs_before(&acme, Utc::now() - Duration::days(90))
        .await
        .unwrap();

    assert_eq!(purged, 1);
    assert_eq!(store.run(old).await.unwrap(), None);
    assert!(store.run_entries(old).await.unwrap().is_empty());
    assert!(store.run_groups(old).await.unwrap().is_empty());
    assert!(store.run(recent).await.unwrap().is_some());
    assert_eq!(store.run_entries(recent).await.unwrap().len(), 1);
    assert!(
        store.run(still_running_old).await.unwrap().is_some(),
        "a run in progress is kept whatever its age"
    );
    assert!(
        store.run(other_tenant_old).await.unwrap().is_some(),
        "other tenants keep theirs"
    );
    let orphans: i64 = db
        .scalar(&format!(
            "SELECT (SELECT count(*) FROM report_entries WHERE run_id = {old})
                  + (SELECT count(*) FROM run_groups WHERE run_id = {old})"
        ))
        .await;
    assert_eq!(orphans, 0);
}

async fn migrations_apply_through_the_store_and_are_idempotent(db: TestDb) {
    let store = db.store.clone();

    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    assert!(store.tenants().await.unwrap().is_empty());
}

async fn a_saved_refresh_token_replaces_the_last_one_and_is_kept_per_tenant(db: TestDb) {
    use secrecy::{ExposeSecret, SecretString};

    let (store, acme) = store_with_tenant(&db, "acme").await;
    store
        .upsert_tenant(&tenant("globex", vec![]))
        .await
        .unwrap();
    let tokens = store.target_tokens(acme.clone(), "highq");
    assert!(tokens.load().await.unwrap().is_none());

    tokens.save(&SecretString::from("first")).await.unwrap();
    tokens.save(&SecretString::from("second")).await.unwrap();
    // A new store object, as after a restart, reads what the last save committed.
    let reopened = store.target_tokens(acme, "highq");
    assert_eq!(
        reopened.load().await.unwrap().unwrap().expose_secret(),
        "second"
    );
    let other = store.target_tokens(key("globex"), "highq");
    assert!(other.load().await.unwrap().is_none());

    let unknown = store.target_tokens(key("nobody"), "highq");
    let err = unknown.save(&SecretString::from("x")).await.unwrap_err();
    assert!(err.to_string().contains("no tenant nobody"), "{err}");
}

async fn purging_drops_old_claimed_midnights_but_keeps_the_latest_the_schedule_reads(db: TestDb) {
    use chrono::{Duration, TimeZone, Utc};

    let (store, acme) = store_with_tenant(&db, "acme").await;
    let first = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    for day in 0..3 {
        assert!(
            store
                .claim_midnight(&acme, first + Duration::days(day))
                .await
                .unwrap()
        );
    }
    assert!(
        !store.claim_midnight(&acme, first).await.unwrap(),
        "a midnight is claimed once"
    );
    let latest = first + Duration::days(2);
    let baseline = store.schedule_baseline(&acme).await.unwrap();

    store
        .purge_runs_before(&acme, latest + Duration::days(30))
        .await
        .unwrap();
    let left: Vec<chrono::DateTime<Utc>> = db
        .rows::<(chrono::DateTime<Utc>,)>("SELECT midnight FROM scheduled_midnights")
        .await
        .into_iter()
        .map(|(midnight,)| midnight)
        .collect();
    assert_eq!(left, vec![latest]);
    assert_eq!(store.schedule_baseline(&acme).await.unwrap(), baseline);
}

// ---------------------------------------------------------------------------------------------
// Run leases (issue 10): PostgreSQL's advisory lock, SQLite's lock file per tenant
// ---------------------------------------------------------------------------------------------

fn progress(done: i64) -> RunProgress {
    RunProgress {
        stage: "applying".to_owned(),
        done,
        total: 10,
    }
}

async fn a_run_whose_lease_is_dropped_is_closed_as_interrupted_by_the_next_run_with_its_flushes_kept(
    db: TestDb,
) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let dead = leased(&store, &acme).await;
    let dead_run = dead.run_id();
    let someone = new_id();
    dead.flush(RunFlush {
        mirror: &MirrorChanges {
            users: vec![user(&someone, 1)],
            ..MirrorChanges::default()
        },
        entries: &[entry("created", 1)],
        progress: &progress(1),
    })
    .await
    .unwrap();
    // The process dies: its lock goes with it.
    drop(dead);

    let next = leased(&store, &acme).await;

    assert_ne!(next.run_id(), dead_run);
    let closed = store.run(dead_run).await.unwrap().unwrap();
    assert_eq!(closed.status, RunStatus::Interrupted);
    assert!(closed.finished_at.is_some());
    let lines = store.run_entries(dead_run).await.unwrap();
    assert_eq!(
        lines.len(),
        2,
        "the flushed line and the closing line: {lines:?}"
    );
    assert_eq!(lines[0].action, "created");
    assert_eq!(lines[1].action, "interrupted");
    let mirror = store.load_mirror(&acme).await.unwrap();
    assert_eq!(mirror.users.len(), 1, "what the dead run flushed is kept");
    next.finish(&finish(RunStatus::Succeeded), &[])
        .await
        .unwrap();
    assert_eq!(
        store.run(next.run_id()).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
}

async fn a_run_closed_by_another_process_is_fenced_off_and_never_overwrites_the_status(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let lease = leased(&store, &acme).await;
    let run = lease.run_id();
    lease.heartbeat(&progress(3)).await.unwrap();
    // Another process records the run as ended (a shutdown past its grace).
    let mut closed = finish(RunStatus::Interrupted);
    closed.message = Some("closed elsewhere".into());
    store.finish_run(run, &closed).await.unwrap();

    let flushed = lease
        .flush(RunFlush {
            mirror: &MirrorChanges {
                users: vec![user(&new_id(), 2)],
                ..MirrorChanges::default()
            },
            entries: &[entry("created", 2)],
            progress: &progress(4),
        })
        .await;
    let finished = lease.finish(&finish(RunStatus::Succeeded), &[]).await;

    assert!(
        matches!(flushed, Err(StoreError::LeaseLost(_))),
        "{flushed:?}"
    );
    assert!(
        matches!(finished, Err(StoreError::LeaseLost(_))),
        "{finished:?}"
    );
    assert!(lease.lost().is_some());
    let record = store.run(run).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert_eq!(record.message.as_deref(), Some("closed elsewhere"));
    assert!(
        store.run_entries(run).await.unwrap().is_empty(),
        "nothing of the fenced flush"
    );
    assert!(store.load_mirror(&acme).await.unwrap().users.is_empty());
}

async fn a_held_lease_refuses_other_runs_until_it_finishes_then_lets_the_next_begin(db: TestDb) {
    let (store, acme) = store_with_tenant(&db, "acme").await;
    let lease = leased(&store, &acme).await;
    let again = store
        .begin_run(&acme, &Trigger::automatic(), RunOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(again, RunStart::AlreadyRunning(id) if id == lease.run_id()),
        "{again:?}"
    );
    lease
        .finish(&finish(RunStatus::Succeeded), &[])
        .await
        .unwrap();
    let after = lease.heartbeat(&progress(9)).await;
    assert!(matches!(after, Err(StoreError::LeaseLost(_))), "{after:?}");

    let next = leased(&store, &acme).await;
    assert_eq!(
        store.run(lease.run_id()).await.unwrap().unwrap().status,
        RunStatus::Succeeded,
        "a finished run is not closed as interrupted"
    );
    assert_ne!(next.run_id(), lease.run_id());
}

async fn token_refreshes_are_made_one_at_a_time_and_the_second_sees_what_the_first_committed(
    db: TestDb,
) {
    use secrecy::{ExposeSecret, SecretString};

    let (store, acme) = store_with_tenant(&db, "acme").await;
    let tokens = store.target_tokens(acme.clone(), "highq");
    tokens.save(&SecretString::from("rt-1")).await.unwrap();
    let first = tokens.begin_refresh().await.unwrap();
    assert_eq!(first.refresh_token().unwrap().expose_secret(), "rt-1");
    assert!(first.shared_access().is_none());

    let other = store.target_tokens(acme, "highq");
    let second = tokio::spawn(async move {
        let refresh = other.begin_refresh().await.unwrap();
        (
            refresh.refresh_token().unwrap().expose_secret().to_owned(),
            refresh
                .shared_access()
                .map(|(token, _)| token.expose_secret().to_owned()),
        )
    });
    // The second refresh waits for the first (it would read rt-1 otherwise).
    let mut second = second;
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), &mut second).await;
    assert!(
        early.is_err(),
        "a second refresh began while the first held the token"
    );
    let expires = Utc::now() + Duration::minutes(30);
    first
        .commit(
            Some(&SecretString::from("rt-2")),
            &SecretString::from("access-2"),
            expires,
        )
        .await
        .unwrap();

    let (refresh_token, shared) = second.await.unwrap();
    assert_eq!(refresh_token, "rt-2");
    assert_eq!(shared.as_deref(), Some("access-2"));
}

on_both_backends!(
    a_tenant_round_trips_and_a_second_upsert_replaces_its_selected_groups,
    secret_settings_are_stored_for_connecting_and_read_back_intact,
    a_tenant_that_connects_elsewhere_loses_its_stored_target_token,
    the_mirror_round_trips_through_applied_changes_renames_and_removals,
    r09a_a_released_user_hands_its_target_user_and_memberships_to_its_successor,
    r12_a_converted_group_without_a_successor_is_remembered_for_the_planner,
    a_converted_group_is_kept_as_history_and_its_entra_group_can_be_synced_again_with_the_other_role,
    a_second_synced_group_for_the_same_entra_group_is_skipped_and_the_rest_of_the_flush_is_kept,
    each_tenant_has_its_own_mirror_even_for_the_same_entra_ids,
    the_mirror_of_an_unknown_tenant_is_not_found,
    a_stored_row_that_no_longer_parses_is_reported_as_corrupt_naming_its_column,
    twenty_thousand_users_and_memberships_are_written_in_one_call_and_load_back,
    begin_run_refuses_a_second_running_run_for_the_same_tenant_but_not_for_another,
    concurrent_begin_runs_for_one_tenant_start_exactly_one,
    a_finished_run_keeps_its_outcome_and_a_new_run_may_begin,
    a_run_for_an_unknown_tenant_does_not_begin,
    report_entries_and_groups_read_back_in_the_order_they_were_written,
    report_lines_for_a_run_that_does_not_exist_are_refused,
    runs_are_listed_newest_first_and_only_for_their_tenant,
    purging_deletes_runs_started_before_the_cutoff_with_their_reports_and_keeps_newer_ones,
    migrations_apply_through_the_store_and_are_idempotent,
    a_saved_refresh_token_replaces_the_last_one_and_is_kept_per_tenant,
    purging_drops_old_claimed_midnights_but_keeps_the_latest_the_schedule_reads,
    a_run_whose_lease_is_dropped_is_closed_as_interrupted_by_the_next_run_with_its_flushes_kept,
    a_run_closed_by_another_process_is_fenced_off_and_never_overwrites_the_status,
    a_held_lease_refuses_other_runs_until_it_finishes_then_lets_the_next_begin,
    token_refreshes_are_made_one_at_a_time_and_the_second_sees_what_the_first_committed,
);
