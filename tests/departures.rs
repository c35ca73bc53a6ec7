//! R11: when users leave every selected group, the report says why — deleted in Entra, disabled
//! in Entra, or removed from the synced groups — from a look-up of each user.

use std::sync::Arc;

use dirsync::domain::{DeactivationStatus, EntraObjectId, Role, TenantKey};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{PgStore, RunOptions, RunStatus, Store, Trigger};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings, run_sync};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use sqlx::PgPool;

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn person(n: u128, name: &str) -> EntraUser {
    EntraUser {
        id: oid(n),
        given_name: Some(name.to_owned()),
        surname: Some("Doe".to_owned()),
        mail: Some(format!("{}@contoso.com", name.to_lowercase())),
        account_enabled: Some(true),
        ..EntraUser::default()
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn r11_leavers_are_reported_as_deleted_disabled_or_removed_from_the_groups(pool: PgPool) {
    let group = oid(0x6900);
    let people = [
        person(1, "Dana"),
        person(2, "Drew"),
        person(3, "Remy"),
        person(4, "Stay"),
    ];
    let mut directory = MemoryDirectory::default();
    for p in &people {
        directory.users.insert(p.id.clone(), p.clone());
    }
    directory.groups.insert(
        group.clone(),
        (
            "Staff".to_owned(),
            people.iter().map(|p| p.id.clone()).collect(),
        ),
    );
    let tenant = Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: group.clone(),
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
    let source = MemorySource::new(directory);
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(source.clone()),
            target: Arc::new(MemoryTarget::new()),
        }),
        settings: SyncSettings::default(),
    };
    let first = run_sync(
        &ctx,
        &tenant.key,
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);

    // Dana is deleted (and so gone from the group); Drew is disabled and taken out of the group;
    // Remy is only taken out of the group.
    source.edit(|d| {
        d.users.remove(&oid(1));
        d.users.get_mut(&oid(2)).unwrap().account_enabled = Some(false);
        d.groups.get_mut(&group).unwrap().1 = vec![oid(4)];
    });
    let second = run_sync(
        &ctx,
        &tenant.key,
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(second.status, RunStatus::Succeeded);
    let mut reasons: Vec<(String, String)> = store
        .run_entries(second.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "deactivated")
        .map(|e| (e.email.unwrap(), e.message.unwrap()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("dana@contoso.com".to_owned(), "deleted in Entra".to_owned()),
            (
                "drew@contoso.com".to_owned(),
                "disabled in Entra".to_owned()
            ),
            (
                "remy@contoso.com".to_owned(),
                "removed from synced groups".to_owned()
            ),
        ]
    );
}
