//! A target outage halfway through a run: a few failed calls, then the run stops calling; every
//! operation not applied is a line in the report, nothing is deactivated because of it, and the
//! next run finishes the job without redoing what was done.

use std::sync::Arc;

use dirsync::cli::describe_outcome;
use dirsync::domain::{DeactivationStatus, EntraObjectId, Role, TenantKey, UserStatus};
use dirsync::plan::{EntraUser, SelectedGroup, Severity, TenantPolicy};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{PgStore, RunOptions, RunStatus, Store, Trigger};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings, run_sync};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use sqlx::PgPool;

const USERS: u128 = 60;

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

#[sqlx::test(migrations = "./migrations")]
async fn a_target_outage_halfway_stops_the_calls_loses_nothing_and_the_next_run_completes(
    pool: PgPool,
) {
    let group = oid(0x6900);
    let mut directory = MemoryDirectory::default();
    let members: Vec<EntraObjectId> = (1..=USERS).map(oid).collect();
    for id in &members {
        let n = id.as_uuid().as_u128();
        directory.users.insert(
            id.clone(),
            EntraUser {
                id: id.clone(),
                given_name: Some(format!("User{n}")),
                surname: Some("Doe".to_owned()),
                mail: Some(format!("user{n}@contoso.com")),
                account_enabled: Some(true),
                ..EntraUser::default()
            },
        );
    }
    directory
        .groups
        .insert(group.clone(), ("Everyone".to_owned(), members));
    let tenant = Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: group,
                role: Role::Internal,
            }],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    };
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenant).await.unwrap();
    let target = MemoryTarget::new();
    // The group and nine users get through; then the target goes down.
    target.with(|s| s.outage_after = Some(10));
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory)),
            target: Arc::new(target.clone()),
        }),
        settings: SyncSettings {
            target_concurrency: 1,
            max_unavailable_in_a_row: 5,
            flush_every: 10,
            ..SyncSettings::default()
        },
    };

    let first = run_sync(
        &ctx,
        &tenant.key,
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(first.status, RunStatus::CompletedWithErrors);
    assert!(
        first
            .message
            .as_deref()
            .unwrap()
            .contains("the target stopped answering (5 calls in a row failed"),
        "{first:?}"
    );
    assert_eq!(
        target.write_count(),
        15,
        "ten writes, then five failed calls, then none"
    );
    assert_eq!(first.summary.operations_applied, 10);
    // The summary counts what was applied, and beside it, labelled, what was planned.
    assert_eq!(
        (
            first.summary.applied.groups_created,
            first.summary.applied.users_created,
            first.summary.applied.memberships_added
        ),
        (1, 9, 0)
    );
    assert_eq!(first.summary.planned.users_created, 60);
    let printed = describe_outcome(&first);
    for expected in [
        "run 1: completed with errors\nusers: 9 created, 0 adopted",
        "groups: 1 created, 0 renamed, 0 converted; memberships: 0 added, 0 removed\n",
        "planned (not all of it was applied):\n  users: 60 created, 0 adopted",
        "  groups: 1 created, 0 renamed, 0 converted; memberships: 60 added, 0 removed\n",
        "operations: 10 applied, 52 failed; 0 warnings, 111 errors\n",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} not in:\n{printed}"
        );
    }
    // Every operation not applied is an error line: 5 users failed, 46 users skipped, and the
    // skipped membership batch has a line for each of its 60 users.
    let entries = store.run_entries(first.run_id).await.unwrap();
    let errors: Vec<&str> = entries
        .iter()
        .filter(|e| e.severity == Severity::Error && e.email.is_some())
        .filter_map(|e| e.message.as_deref())
        .collect();
    assert_eq!(
        errors
            .iter()
            .filter(|m| m.starts_with("creating the user failed: the target is unavailable"))
            .count(),
        5
    );
    assert_eq!(
        errors
            .iter()
            .filter(|m| m.contains("skipped: the target stopped answering"))
            .count(),
        46 + 60
    );
    let mirror = store.load_mirror(&tenant.key).await.unwrap();
    assert_eq!(
        mirror.users.len(),
        9,
        "only what the target confirmed is in the mirror"
    );
    assert!(
        mirror
            .users
            .iter()
            .all(|u| u.state.status == UserStatus::Active)
    );

    // The target is back: the next run creates the 51 missing users and fills the group.
    target.with(|s| s.outage_after = None);
    let before = target.write_count();
    let second = run_sync(
        &ctx,
        &tenant.key,
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(second.summary.planned.users_created, 51);
    assert_eq!(
        target.write_count() - before,
        51 + 1,
        "51 creates and one membership batch"
    );
    target.with(|s| {
        assert_eq!(s.users.len(), USERS as usize);
        let (_, everyone) = s.group_by_name("Everyone").unwrap();
        assert_eq!(everyone.members.len(), USERS as usize);
    });
}
