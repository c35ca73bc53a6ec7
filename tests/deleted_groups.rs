//! R12 and R17 against the Entra emulator read through the real Graph client: a synced group is
//! converted only when a second read, a short delay later in the same run, confirms that Entra
//! deleted it. A single 404 is not a deletion; until a second read agrees, the group is Failed.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use dirsync::domain::{DeactivationStatus, EntraObjectId, GroupKind, Role, TenantKey, UserStatus};
use dirsync::emulator::entra::{Fault, FaultPlan, FaultRule, FaultTrigger};
use dirsync::plan::{EntraUser, GroupStatus, SelectedGroup, Severity, TenantPolicy};
use dirsync::source::memory::MemoryDirectory;
use dirsync::store::{PgStore, RunOptions, RunStatus, Store, Trigger};
use dirsync::sync::{FixedConnector, RunOutcome, SyncContext, SyncSettings, run_sync};
use dirsync::tenant::{Retention, Tenant};
use sqlx::PgPool;
use support::world::{DirectoryDriver, EntraDriver, MemoryWorld, TargetWorld, View};

const SALES: u128 = 0x5a1e5;

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn person(n: u128, name: &str) -> EntraUser {
    EntraUser {
        id: oid(n),
        given_name: Some(name.to_owned()),
        surname: Some("Doe".to_owned()),
        display_name: Some(format!("{name} Doe")),
        mail: Some(format!("{}@contoso.com", name.to_lowercase())),
        user_principal_name: Some(format!("{}@contoso.com", name.to_lowercase())),
        account_enabled: Some(true),
        ..EntraUser::default()
    }
}

fn tenant() -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: oid(SALES),
                role: Role::Internal,
            }],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

/// Sales with two people, synced once into the memory target.
struct Night {
    driver: EntraDriver,
    target: MemoryWorld,
    directory: MemoryDirectory,
    ctx: SyncContext,
}

impl Night {
    async fn after_a_first_sync(pool: PgPool) -> Self {
        let store = Arc::new(PgStore::new(pool));
        store.upsert_tenant(&tenant()).await.unwrap();
        let driver = EntraDriver::start(&tenant()).await;
        let mut directory = MemoryDirectory::default();
        let people = [person(1, "Ann"), person(2, "Bo")];
        directory.groups.insert(
            oid(SALES),
            (
                "Sales".to_owned(),
                people.iter().map(|p| p.id.clone()).collect(),
            ),
        );
        for p in people {
            directory.users.insert(p.id.clone(), p);
        }
        driver.publish(&directory);
        let target = MemoryWorld::new();
        let ctx = SyncContext {
            store,
            connector: Arc::new(FixedConnector {
                source: driver.source(),
                target: target.adapter(),
            }),
            settings: SyncSettings {
                deletion_confirm_delay: Duration::from_millis(5),
                ..SyncSettings::default()
            },
        };
        let night = Self {
            driver,
            target,
            directory,
            ctx,
        };
        let first = night.sync().await;
        assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
        night
    }

    async fn sync(&self) -> RunOutcome {
        run_sync(
            &self.ctx,
            &tenant().key,
            Trigger::automatic(),
            RunOptions::default(),
        )
        .await
        .unwrap()
    }

    /// The group read (not its members) answers as `faults` say, in order.
    fn group_read_answers(&self, faults: Vec<(FaultTrigger, Fault)>) {
        let emulator = self.driver.emulator();
        emulator.set_faults(FaultPlan {
            seed: 0,
            rules: faults
                .into_iter()
                .map(|(when, fault)| FaultRule {
                    when,
                    path_contains: Some(format!("/groups/{}?", oid(SALES))),
                    fault,
                })
                .collect(),
        });
        emulator.clear_requests();
    }

    fn group_reads(&self) -> Vec<u16> {
        let path = format!("/v1.0/groups/{}?", oid(SALES));
        self.driver
            .emulator()
            .requests()
            .into_iter()
            .filter(|r| r.path_and_query.starts_with(&path))
            .map(|r| r.status)
            .collect()
    }

    async fn group_status(&self, run: i64) -> (GroupStatus, Option<String>) {
        let groups = self.ctx.store.run_groups(run).await.unwrap();
        let sales = groups.iter().find(|g| g.entra_id == oid(SALES)).unwrap();
        (sales.status, sales.message.clone())
    }

    /// Sales as a synced group with both people, both active: nothing was lost.
    async fn assert_untouched(&self) {
        let view: View = self.target.view().await;
        let (kind, members) = &view.groups["Sales"];
        assert_eq!(*kind, GroupKind::SyncedInternal);
        assert_eq!(members.len(), 2, "{view:?}");
        assert!(
            view.users.values().all(|u| u.4 == UserStatus::Active),
            "{view:?}"
        );
    }
}

fn not_found() -> Fault {
    Fault::Status {
        status: 404,
        code: "Request_ResourceNotFound".to_owned(),
        message: "Resource 'x' does not exist or one of its queried reference-property objects \
                  are not present."
            .to_owned(),
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn r12_a_synced_group_that_answers_404_once_is_read_again_and_not_converted(pool: PgPool) {
    let night = Night::after_a_first_sync(pool).await;
    night.group_read_answers(vec![(FaultTrigger::NthRequest { n: 1 }, not_found())]);

    let run = night.sync().await;

    assert_eq!(
        night.group_reads(),
        vec![404, 200],
        "read again after the 404"
    );
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.summary.applied.groups_converted, 0);
    assert_eq!(night.group_status(run.run_id).await.0, GroupStatus::Found);
    night.assert_untouched().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn r17_a_404_that_a_second_read_cannot_confirm_leaves_the_group_failed_and_unchanged(
    pool: PgPool,
) {
    let night = Night::after_a_first_sync(pool).await;
    night.group_read_answers(vec![
        (FaultTrigger::NthRequest { n: 1 }, not_found()),
        (
            FaultTrigger::Always,
            Fault::Status {
                status: 500,
                code: "InternalServerError".to_owned(),
                message: "Something went wrong".to_owned(),
            },
        ),
    ]);

    let run = night.sync().await;

    assert_eq!(night.group_reads()[..2], [404, 500]);
    // Sales is the only selected group: with it unreadable, the run read nothing (R17).
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let (status, message) = night.group_status(run.run_id).await;
    assert_eq!(status, GroupStatus::Failed);
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("reading it again to confirm failed")),
        "{message:?}"
    );
    assert_eq!(run.summary.applied.users_deactivated, 0);
    assert_eq!(run.summary.operations_applied, 0);
    night.assert_untouched().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn r12_a_group_deleted_in_entra_is_converted_once_a_second_read_confirms_it_then_warned_about(
    pool: PgPool,
) {
    let mut night = Night::after_a_first_sync(pool).await;
    night.directory.groups.remove(&oid(SALES));
    night.driver.publish(&night.directory);
    night.group_read_answers(vec![]);

    let converting = night.sync().await;

    assert_eq!(night.group_reads(), vec![404, 404]);
    assert_eq!(converting.status, RunStatus::Succeeded, "{converting:?}");
    assert_eq!(converting.summary.applied.groups_converted, 1);
    assert_eq!(converting.summary.applied.users_deactivated, 2);
    let view = night.target.view().await;
    assert_eq!(view.groups["Sales_<ms>"].0, GroupKind::System);

    // The group is still selected: from now on a warning each night, and no second look.
    night.driver.emulator().clear_requests();
    let later = night.sync().await;
    assert_eq!(later.status, RunStatus::Succeeded, "{later:?}");
    assert_eq!(night.group_reads(), vec![404], "nothing left to confirm");
    let warnings: Vec<_> = night
        .ctx
        .store
        .run_entries(later.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.severity == Severity::Warning)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].name.as_deref(), Some("Sales [Synced Group]"));
    assert!(
        warnings[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("deleted in Entra; remove it from the selection"),
        "{warnings:?}"
    );
}
