//! The engine's multi-day scenario (issues 2, 3 and 4): one five-day script through the real
//! store (PostgreSQL and SQLite) and applier, run in several worlds — the in-memory source or the Entra
//! emulator read by the real Graph client, and the in-memory target, the HighQ emulator through
//! the HighQ adapter, or scim2-server through the SCIM adapter. After every day the whole target
//! is compared with what the rules say it must be, and a second run with no change in Entra must
//! not write to the target at all.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

mod support;

use support::counting::CountingTarget;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dirsync::domain::{DeactivationStatus, EntraObjectId, GroupKind, Role, UserStatus};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::source::memory::MemoryDirectory;
use dirsync::store::Database;
use dirsync::store::{RunOptions, RunStatus, Trigger};
use dirsync::sync::{
    FixedConnector, RunOutcome, SyncContext, SyncSettings, approve_held_run, run_sync,
};
use dirsync::tenant::{Retention, Tenant};
use support::backend::TestDb;
use support::world::{
    DirectoryDriver, EntraDriver, HighQWorld, ManualUser, MemoryDriver, MemoryWorld, ScimWorld,
    TargetWorld, View,
};

const SALES: u128 = 0x5a1e5;
const LEGAL: u128 = 0x1e9a1;
const PORTAL: u128 = 0xc11e47;

fn id(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn person(n: u128, first: &str, last: &str) -> EntraUser {
    EntraUser {
        id: id(n),
        given_name: Some(first.to_owned()),
        surname: Some(last.to_owned()),
        display_name: Some(format!("{first} {last}")),
        mail: Some(format!("{}@contoso.com", first.to_lowercase())),
        user_principal_name: Some(format!("{}@contoso.com", first.to_lowercase())),
        business_phones: vec![format!("+44 20 7946 {n:04}")],
        job_title: Some("Associate".to_owned()),
        account_enabled: Some(true),
    }
}

const ALICE: u128 = 1;
const BOB: u128 = 2;
const CAROL: u128 = 3;
const DAN: u128 = 4;
const ERIN: u128 = 5;
const FRANK: u128 = 6;
const GRACE: u128 = 7;
const HEIDI: u128 = 8;
const IVAN: u128 = 9;
const CAROLINE: u128 = 10;
const ADA: u128 = 11;

fn day_one_directory() -> MemoryDirectory {
    let people = [
        person(ALICE, "Alice", "Archer"),
        person(BOB, "Bob", "Baker"),
        person(CAROL, "Carol", "Cooper"),
        person(DAN, "Dan", "Dyer"),
        person(ERIN, "Erin", "Evans"),
        person(FRANK, "Frank", "Fisher"),
        person(GRACE, "Grace", "Gardner"),
        person(HEIDI, "Heidi", "Hunter"),
        person(IVAN, "Ivan", "Ivers"),
    ];
    let mut directory = MemoryDirectory::default();
    for p in people {
        directory.users.insert(p.id.clone(), p);
    }
    directory.groups.insert(
        id(SALES),
        ("Sales".to_owned(), vec![id(ALICE), id(BOB), id(HEIDI)]),
    );
    directory.groups.insert(
        id(LEGAL),
        ("Legal".to_owned(), vec![id(ALICE), id(CAROL), id(GRACE)]),
    );
    directory.groups.insert(
        id(PORTAL),
        (
            "Client Portal".to_owned(),
            vec![id(DAN), id(ERIN), id(FRANK)],
        ),
    );
    directory
}

fn tenant(portal_role: Role, threshold: u32) -> Tenant {
    tenant_with(&[SALES, LEGAL], portal_role, threshold)
}

fn tenant_with(internal_groups: &[u128], portal_role: Role, threshold: u32) -> Tenant {
    let selected = |g: u128, role| SelectedGroup {
        entra_id: id(g),
        role,
    };
    let mut selected_groups: Vec<SelectedGroup> = internal_groups
        .iter()
        .map(|g| selected(*g, Role::Internal))
        .collect();
    selected_groups.push(selected(PORTAL, portal_role));
    Tenant {
        key: dirsync::domain::TenantKey::parse("acme").unwrap(),
        display_name: "Acme Legal".to_owned(),
        entra_tenant_id: id(0xac3e),
        time_zone: chrono_tz::Europe::London,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups,
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: threshold,
        },
        source: Default::default(),
        target: None,
    }
}

struct Expect {
    users: Vec<(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Role,
        UserStatus,
    )>,
    groups: Vec<(&'static str, GroupKind, Vec<&'static str>)>,
}

impl Expect {
    fn view(self) -> View {
        let mut users: BTreeMap<_, _> = self
            .users
            .into_iter()
            .map(|(email, first, last, job, role, status)| {
                (
                    email.to_owned(),
                    (
                        first.to_owned(),
                        last.to_owned(),
                        Some(job.to_owned()),
                        role,
                        status,
                        true,
                    ),
                )
            })
            .collect();
        // The admin made by hand in the target, never touched.
        users.insert(
            "admin@contoso.com".to_owned(),
            (
                "Ada".to_owned(),
                "Admin".to_owned(),
                None,
                Role::Internal,
                UserStatus::Active,
                false,
            ),
        );
        View {
            users,
            groups: self
                .groups
                .into_iter()
                .map(|(name, kind, members)| {
                    (
                        name.to_owned(),
                        (kind, members.into_iter().map(|m| m.to_owned()).collect()),
                    )
                })
                .collect(),
        }
    }
}

use GroupKind::{SyncedBasic, SyncedInternal, System};
use Role::{Basic, Internal};
use UserStatus::{Active, Inactive};

/// One world: a directory driver, a target, and the engine between them.
struct World {
    store: Arc<dyn Database>,
    /// The database behind `store`, kept for as long as the world.
    _db: TestDb,
    /// What Entra says today; the driver publishes it after every edit.
    directory: Mutex<MemoryDirectory>,
    driver: Box<dyn DirectoryDriver>,
    target: Box<dyn TargetWorld>,
    /// Every write call the engine makes to the target.
    writes: Arc<CountingTarget>,
    ctx: SyncContext,
}

impl World {
    async fn new(
        db: TestDb,
        driver: impl DirectoryDriver + 'static,
        target: impl TargetWorld + 'static,
    ) -> Self {
        let store = db.store.clone();
        store.upsert_tenant(&tenant(Basic, 500)).await.unwrap();
        let directory = day_one_directory();
        driver.publish(&directory);
        // Grace already has an account (made by hand, email in another case): she is adopted.
        target
            .add_manual_user(&ManualUser {
                email: "Grace@Contoso.com",
                first_name: "G.",
                last_name: "Gardner",
                job_title: Some("Old title"),
                status: Inactive,
            })
            .await;
        target
            .add_manual_user(&ManualUser {
                email: "admin@contoso.com",
                first_name: "Ada",
                last_name: "Admin",
                job_title: None,
                status: Active,
            })
            .await;
        target
            .add_manual_group("Partners", &["Grace@Contoso.com", "admin@contoso.com"])
            .await;
        let writes = Arc::new(CountingTarget::new(target.adapter()));
        let ctx = SyncContext {
            store: store.clone(),
            connector: Arc::new(FixedConnector {
                source: driver.source(),
                target: writes.clone(),
            }),
            settings: SyncSettings {
                flush_every: 3,
                deletion_confirm_delay: std::time::Duration::from_millis(1),
                ..SyncSettings::default()
            },
        };
        Self {
            store,
            _db: db,
            directory: Mutex::new(directory),
            driver: Box::new(driver),
            target: Box::new(target),
            writes,
            ctx,
        }
    }

    /// Changes Entra, as an admin would between runs.
    fn edit(&self, change: impl FnOnce(&mut MemoryDirectory)) {
        let mut directory = self.directory.lock().unwrap();
        change(&mut directory);
        self.driver.publish(&directory);
    }

    async fn view(&self) -> View {
        self.target.view().await
    }

    async fn sync(&self) -> RunOutcome {
        run_sync(
            &self.ctx,
            &tenant(Basic, 0).key,
            Trigger::manual("scenario"),
            RunOptions::default(),
        )
        .await
        .unwrap()
    }

    /// An admin approves the held run `held` (R18) and the approving run is carried out.
    async fn approve(&self, held: i64) -> RunOutcome {
        approve_held_run(&self.ctx, &tenant(Basic, 0).key, held, "Ada Admin")
            .await
            .unwrap()
            .execute()
            .await
            .unwrap()
    }

    /// A second run with nothing changed in Entra must not write to the target: no write call
    /// through the adapter, and no change in the target's own log where it keeps one.
    async fn assert_quiet_rerun(&self) -> RunOutcome {
        let before = self.writes.count();
        let own_before = self.target.own_writes().map(|w| w.len());
        let outcome = self.sync().await;
        let writes = self.writes.writes()[before..].to_vec();
        assert!(
            writes.is_empty(),
            "{}: a run with no change in Entra wrote: {writes:?}",
            self.target.name()
        );
        if let (Some(before), Some(after)) = (own_before, self.target.own_writes()) {
            assert_eq!(
                after[before..].to_vec(),
                Vec::<String>::new(),
                "{}: the target changed on a quiet run",
                self.target.name()
            );
        }
        assert_eq!(outcome.summary.operations_applied, 0);
        outcome
    }

    async fn warnings(&self, run: i64) -> Vec<(String, String)> {
        self.store
            .run_entries(run)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.severity == dirsync::plan::Severity::Warning)
            .map(|e| (e.name.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    async fn error_messages(&self, run: i64) -> Vec<String> {
        self.store
            .run_entries(run)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.severity == dirsync::plan::Severity::Error)
            .map(|e| {
                format!(
                    "{}: {}",
                    e.email.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .collect()
    }
}

async fn five_days_of_directory_changes_leave_the_target_exactly_as_the_rules_say(db: TestDb) {
    let world = World::new(db, MemoryDriver::new(), MemoryWorld::new()).await;
    five_days(world).await;
}

async fn five_days_read_through_graph_from_the_entra_emulator_leave_the_same_target(db: TestDb) {
    let driver = EntraDriver::start(&tenant(Basic, 500)).await;
    let world = World::new(db, driver, MemoryWorld::new()).await;
    five_days(world).await;
}

async fn five_days_from_the_entra_emulator_into_the_highq_emulator_leave_highq_as_the_rules_say(
    db: TestDb,
) {
    let driver = EntraDriver::start(&tenant(Basic, 500)).await;
    let world = World::new(db, driver, HighQWorld::start().await).await;
    five_days(world).await;
}

async fn five_days_from_the_entra_emulator_into_scim2_server_leave_it_as_the_rules_say(db: TestDb) {
    let driver = EntraDriver::start(&tenant(Basic, 500)).await;
    let world = World::new(db, driver, ScimWorld::new("scenario")).await;
    five_days(world).await;
}

// Every world on both stores: the engine's promises do not depend on where it keeps its records.
on_both_backends!(
    five_days_of_directory_changes_leave_the_target_exactly_as_the_rules_say,
    five_days_read_through_graph_from_the_entra_emulator_leave_the_same_target,
    five_days_from_the_entra_emulator_into_the_highq_emulator_leave_highq_as_the_rules_say,
    five_days_from_the_entra_emulator_into_scim2_server_leave_it_as_the_rules_say,
);

/// The script: five days of changes in Entra and what the target must look like after each.
async fn five_days(world: World) {
    // Day 1: three groups (one basic) with overlapping members; Grace is adopted by email.
    let day1 = world.sync().await;
    assert_eq!(day1.status, RunStatus::Succeeded, "{day1:?}");
    let day1_expected = Expect {
        users: vec![
            (
                "alice@contoso.com",
                "Alice",
                "Archer",
                "Associate",
                Internal,
                Active,
            ),
            (
                "bob@contoso.com",
                "Bob",
                "Baker",
                "Associate",
                Internal,
                Active,
            ),
            (
                "carol@contoso.com",
                "Carol",
                "Cooper",
                "Associate",
                Internal,
                Active,
            ),
            ("dan@contoso.com", "Dan", "Dyer", "Associate", Basic, Active),
            (
                "erin@contoso.com",
                "Erin",
                "Evans",
                "Associate",
                Basic,
                Active,
            ),
            (
                "frank@contoso.com",
                "Frank",
                "Fisher",
                "Associate",
                Basic,
                Active,
            ),
            (
                "grace@contoso.com",
                "Grace",
                "Gardner",
                "Associate",
                Internal,
                Active,
            ),
            (
                "heidi@contoso.com",
                "Heidi",
                "Hunter",
                "Associate",
                Internal,
                Active,
            ),
        ],
        groups: vec![
            (
                "Sales",
                SyncedInternal,
                vec!["alice@contoso.com", "bob@contoso.com", "heidi@contoso.com"],
            ),
            (
                "Legal",
                SyncedInternal,
                vec![
                    "alice@contoso.com",
                    "carol@contoso.com",
                    "grace@contoso.com",
                ],
            ),
            (
                "Client Portal",
                SyncedBasic,
                vec!["dan@contoso.com", "erin@contoso.com", "frank@contoso.com"],
            ),
            (
                "Partners",
                System,
                vec!["admin@contoso.com", "grace@contoso.com"],
            ),
        ],
    };
    assert_eq!(world.view().await, day1_expected.view());
    assert_eq!(
        (
            day1.summary.planned.users_created,
            day1.summary.planned.users_adopted
        ),
        (7, 1)
    );
    // Only direct user members count (R1): the Entra emulator also nests a group, a device and
    // a service principal in every group.
    let seen: BTreeMap<String, Option<usize>> = world
        .store
        .run_groups(day1.run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.name, g.members_seen))
        .collect();
    assert_eq!(
        seen,
        BTreeMap::from(
            [
                ("Sales", Some(3)),
                ("Legal", Some(3)),
                ("Client Portal", Some(3))
            ]
            .map(|(name, seen)| (name.to_owned(), seen))
        )
    );
    world.assert_quiet_rerun().await;

    // Day 2: a rename, a disabled user, an email prefix change, an email domain change, a user
    // moved between groups, a user added to both a basic and an internal group.
    world.edit(|d| {
        d.groups.get_mut(&id(LEGAL)).unwrap().0 = "Legal & Compliance".to_owned();
        d.users.get_mut(&id(FRANK)).unwrap().account_enabled = Some(false);
        d.users.get_mut(&id(BOB)).unwrap().mail = Some("robert@contoso.com".to_owned());
        let carol = d.users.get_mut(&id(CAROL)).unwrap();
        carol.mail = Some("carol@fabrikam.com".to_owned());
        carol.job_title = Some("Counsel".to_owned());
        d.groups
            .get_mut(&id(SALES))
            .unwrap()
            .1
            .retain(|m| *m != id(HEIDI));
        d.groups.get_mut(&id(LEGAL)).unwrap().1.push(id(HEIDI));
        d.groups.get_mut(&id(SALES)).unwrap().1.push(id(IVAN));
        d.groups.get_mut(&id(PORTAL)).unwrap().1.push(id(IVAN));
    });
    let day2 = world.sync().await;
    assert_eq!(day2.status, RunStatus::CompletedWithErrors);
    let errors = world.error_messages(day2.run_id).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("carol@contoso.com: email domain change is not supported"),
        "{errors:?}"
    );
    let day2_expected = Expect {
        users: vec![
            (
                "alice@contoso.com",
                "Alice",
                "Archer",
                "Associate",
                Internal,
                Active,
            ),
            (
                "robert@contoso.com",
                "Bob",
                "Baker",
                "Associate",
                Internal,
                Active,
            ),
            (
                "carol@contoso.com",
                "Carol",
                "Cooper",
                "Counsel",
                Internal,
                Active,
            ),
            ("dan@contoso.com", "Dan", "Dyer", "Associate", Basic, Active),
            (
                "erin@contoso.com",
                "Erin",
                "Evans",
                "Associate",
                Basic,
                Active,
            ),
            (
                "frank@contoso.com",
                "Frank",
                "Fisher",
                "Associate",
                Basic,
                Inactive,
            ),
            (
                "grace@contoso.com",
                "Grace",
                "Gardner",
                "Associate",
                Internal,
                Active,
            ),
            (
                "heidi@contoso.com",
                "Heidi",
                "Hunter",
                "Associate",
                Internal,
                Active,
            ),
            (
                "ivan@contoso.com",
                "Ivan",
                "Ivers",
                "Associate",
                Internal,
                Active,
            ),
        ],
        groups: vec![
            (
                "Sales",
                SyncedInternal,
                vec![
                    "alice@contoso.com",
                    "robert@contoso.com",
                    "ivan@contoso.com",
                ],
            ),
            (
                "Legal & Compliance",
                SyncedInternal,
                vec![
                    "alice@contoso.com",
                    "carol@contoso.com",
                    "grace@contoso.com",
                    "heidi@contoso.com",
                ],
            ),
            (
                "Client Portal",
                SyncedBasic,
                vec!["dan@contoso.com", "erin@contoso.com", "frank@contoso.com"],
            ),
            (
                "Partners",
                System,
                vec!["admin@contoso.com", "grace@contoso.com"],
            ),
        ],
    };
    assert_eq!(world.view().await, day2_expected.view());
    world.assert_quiet_rerun().await;

    // Day 3: Legal is deleted in Entra; the Client Portal's role changes from basic to internal.
    world.edit(|d| {
        d.groups.remove(&id(LEGAL));
    });
    world
        .store
        .upsert_tenant(&tenant(Internal, 500))
        .await
        .unwrap();
    let day3 = world.sync().await;
    assert_eq!(
        day3.status,
        RunStatus::Succeeded,
        "Carol left every group: her email is no longer read"
    );
    let day3_expected = Expect {
        users: vec![
            (
                "alice@contoso.com",
                "Alice",
                "Archer",
                "Associate",
                Internal,
                Active,
            ),
            (
                "robert@contoso.com",
                "Bob",
                "Baker",
                "Associate",
                Internal,
                Active,
            ),
            (
                "carol@contoso.com",
                "Carol",
                "Cooper",
                "Counsel",
                Internal,
                Inactive,
            ),
            (
                "dan@contoso.com",
                "Dan",
                "Dyer",
                "Associate",
                Internal,
                Active,
            ),
            (
                "erin@contoso.com",
                "Erin",
                "Evans",
                "Associate",
                Internal,
                Active,
            ),
            (
                "frank@contoso.com",
                "Frank",
                "Fisher",
                "Associate",
                Internal,
                Inactive,
            ),
            (
                "grace@contoso.com",
                "Grace",
                "Gardner",
                "Associate",
                Internal,
                Inactive,
            ),
            (
                "heidi@contoso.com",
                "Heidi",
                "Hunter",
                "Associate",
                Internal,
                Inactive,
            ),
            (
                "ivan@contoso.com",
                "Ivan",
                "Ivers",
                "Associate",
                Internal,
                Active,
            ),
        ],
        groups: vec![
            (
                "Sales",
                SyncedInternal,
                vec![
                    "alice@contoso.com",
                    "robert@contoso.com",
                    "ivan@contoso.com",
                ],
            ),
            ("Legal & Compliance_<ms>", System, vec![]),
            ("Client Portal_<ms>", System, vec![]),
            // Ivan joined the portal on day 2 but, internal through Sales, stayed out of the basic
            // group (R14); now that the portal is internal he is a member. Frank is disabled.
            (
                "Client Portal",
                SyncedInternal,
                vec!["dan@contoso.com", "erin@contoso.com", "ivan@contoso.com"],
            ),
            (
                "Partners",
                System,
                vec!["admin@contoso.com", "grace@contoso.com"],
            ),
        ],
    };
    assert_eq!(world.view().await, day3_expected.view());
    // Legal is still selected: converted once, it is now a warning each night, not an error (R12).
    let rerun = world.assert_quiet_rerun().await;
    assert_eq!(rerun.status, RunStatus::Succeeded);
    let warnings = world.warnings(rerun.run_id).await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "Legal & Compliance [Synced Group]");
    assert!(
        warnings[0]
            .1
            .starts_with("deleted in Entra; remove it from the selection"),
        "{warnings:?}"
    );

    // Day 4, first run: Sales cannot be read. Nothing in it changes, nobody is deactivated for it.
    world.edit(|d| {
        d.failing
            .insert(id(SALES), "Graph answered 503 five times".to_owned());
        d.groups.get_mut(&id(SALES)).unwrap().1.clear();
        d.users.get_mut(&id(DAN)).unwrap().job_title = Some("Senior Associate".to_owned());
    });
    let failing = world.sync().await;
    assert_eq!(failing.status, RunStatus::CompletedWithErrors);
    let day4_expected = |dan_job, portal: Vec<&'static str>, dan_erin_status| Expect {
        users: vec![
            (
                "alice@contoso.com",
                "Alice",
                "Archer",
                "Associate",
                Internal,
                Active,
            ),
            (
                "robert@contoso.com",
                "Bob",
                "Baker",
                "Associate",
                Internal,
                Active,
            ),
            (
                "carol@contoso.com",
                "Carol",
                "Cooper",
                "Counsel",
                Internal,
                Inactive,
            ),
            (
                "dan@contoso.com",
                "Dan",
                "Dyer",
                dan_job,
                Internal,
                dan_erin_status,
            ),
            (
                "erin@contoso.com",
                "Erin",
                "Evans",
                "Associate",
                Internal,
                dan_erin_status,
            ),
            (
                "frank@contoso.com",
                "Frank",
                "Fisher",
                "Associate",
                Internal,
                Inactive,
            ),
            (
                "grace@contoso.com",
                "Grace",
                "Gardner",
                "Associate",
                Internal,
                Inactive,
            ),
            (
                "heidi@contoso.com",
                "Heidi",
                "Hunter",
                "Associate",
                Internal,
                Inactive,
            ),
            (
                "ivan@contoso.com",
                "Ivan",
                "Ivers",
                "Associate",
                Internal,
                Active,
            ),
        ],
        groups: vec![
            (
                "Sales",
                SyncedInternal,
                vec![
                    "alice@contoso.com",
                    "robert@contoso.com",
                    "ivan@contoso.com",
                ],
            ),
            ("Legal & Compliance_<ms>", System, vec![]),
            ("Client Portal_<ms>", System, vec![]),
            ("Client Portal", SyncedInternal, portal),
            (
                "Partners",
                System,
                vec!["admin@contoso.com", "grace@contoso.com"],
            ),
        ],
    };
    assert_eq!(
        world.view().await,
        day4_expected(
            "Senior Associate",
            vec!["dan@contoso.com", "erin@contoso.com", "ivan@contoso.com"],
            Active
        )
        .view()
    );
    let groups = world.store.run_groups(failing.run_id).await.unwrap();
    let failed: Vec<(&EntraObjectId, Option<usize>)> = groups
        .iter()
        .filter(|g| g.status == dirsync::plan::GroupStatus::Failed)
        .map(|g| (&g.entra_id, g.members_seen))
        .collect();
    assert_eq!(failed, vec![(&id(SALES), None)], "{groups:?}");
    let reason = groups
        .iter()
        .find_map(|g| g.message.as_deref().filter(|m| m.contains("503")));
    assert!(reason.is_some(), "the 503 is in the report: {groups:?}");

    // Day 4, second run: Sales is back, but the portal is emptied and the guard is set to 1.
    world.edit(|d| {
        d.failing.clear();
        d.groups.get_mut(&id(SALES)).unwrap().1 = vec![id(ALICE), id(BOB), id(IVAN)];
        d.groups.get_mut(&id(PORTAL)).unwrap().1 = vec![id(FRANK), id(IVAN)];
    });
    // The operator also deselects Legal, which no longer exists in Entra.
    world
        .store
        .upsert_tenant(&tenant_with(&[SALES], Internal, 1))
        .await
        .unwrap();
    let before_held = world.writes.count();
    let held = world.sync().await;
    assert_eq!(held.status, RunStatus::Held);
    assert_eq!(
        world.writes.count(),
        before_held,
        "a held run applies nothing"
    );
    let planned: Vec<String> = world
        .store
        .run_entries(held.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "planned: deactivated")
        .map(|e| e.email.unwrap_or_default())
        .collect();
    assert_eq!(planned, vec!["dan@contoso.com", "erin@contoso.com"]);

    // An admin approves: the run plans afresh and applies with the guard lifted.
    let approved = world.approve(held.run_id).await;
    assert_eq!(
        approved.status,
        RunStatus::Succeeded,
        "{:?}",
        world.error_messages(approved.run_id).await
    );
    assert_eq!(approved.summary.planned.users_deactivated, 2);
    let day4_view = day4_expected("Senior Associate", vec!["ivan@contoso.com"], Inactive).view();
    assert_eq!(world.view().await, day4_view);
    world.assert_quiet_rerun().await;

    // Day 5: status always applies, and a rehire.
    world
        .store
        .upsert_tenant(&tenant_with(&[SALES], Internal, 500))
        .await
        .unwrap();
    world.edit(|d| {
        // Caroline joins with the address of Carol, who left on day 3 (R9a).
        let mut caroline = person(CAROLINE, "Caroline", "Cooper");
        caroline.mail = Some("carol@contoso.com".to_owned());
        // Ada, whom an admin made by hand in the target, joins disabled (R9: adopted, deactivated).
        let mut ada = person(ADA, "Ada", "Admin");
        ada.mail = Some("admin@contoso.com".to_owned());
        ada.account_enabled = Some(false);
        // Bob loses every usable address and is disabled: his fields stay, his status does not.
        let bob = d.users.get_mut(&id(BOB)).unwrap();
        bob.mail = None;
        bob.user_principal_name = Some("bob.baker".to_owned());
        bob.account_enabled = Some(false);
        for user in [caroline, ada] {
            d.groups
                .get_mut(&id(SALES))
                .unwrap()
                .1
                .push(user.id.clone());
            d.users.insert(user.id.clone(), user);
        }
    });
    let day5 = world.sync().await;
    assert_eq!(day5.status, RunStatus::CompletedWithErrors, "Bob's address");
    let errors = world.error_messages(day5.run_id).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("no usable email"), "{errors:?}");
    let applied = &day5.summary.applied;
    assert_eq!(
        (
            applied.users_adopted,
            applied.users_deactivated,
            applied.memberships_added
        ),
        (2, 2, 1)
    );
    let mut day5_view = day4_view;
    day5_view.users.insert(
        "carol@contoso.com".to_owned(),
        (
            "Caroline".to_owned(),
            "Cooper".to_owned(),
            Some("Associate".to_owned()),
            Internal,
            Active,
            true,
        ),
    );
    day5_view.users.insert(
        "admin@contoso.com".to_owned(),
        (
            "Ada".to_owned(),
            "Admin".to_owned(),
            Some("Associate".to_owned()),
            Internal,
            Inactive,
            true,
        ),
    );
    day5_view.users.get_mut("robert@contoso.com").unwrap().4 = Inactive;
    day5_view
        .groups
        .get_mut("Sales")
        .unwrap()
        .1
        .insert("carol@contoso.com".to_owned());
    assert_eq!(world.view().await, day5_view);
    let rehired = world
        .store
        .run_entries(day5.run_id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "adopted" && e.email.as_deref() == Some("carol@contoso.com"))
        .expect("the rehire is in the report");
    assert!(
        rehired.message.as_deref().unwrap().starts_with("rehire:"),
        "{rehired:?}"
    );
    world.assert_quiet_rerun().await;
}
