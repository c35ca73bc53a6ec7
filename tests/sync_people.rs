//! Issue 14: "sync people now" and the what-if, against the Entra emulator read through the real
//! Graph client (`GET /users/{id | upn}`, `memberOf/microsoft.graph.group`), into the memory
//! target, on both store backends.
//!
//! Sync people: only the picked people are touched — a leaver and a changed user who were not
//! picked stay exactly as they were, a renamed group is not renamed — each person's steps are in
//! the run's report, the run is `on_demand`, and the full run afterwards finds the picked people
//! up to date. What-if: its counts and lists are exactly what the run after the saved change does.

#![cfg(feature = "emulators")]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use dirsync::domain::{DeactivationStatus, EntraObjectId, Role, TenantKey, UserStatus};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::source::memory::MemoryDirectory;
use dirsync::store::{Database, RunOptions, RunStart, RunStatus, Trigger, TriggerKind};
use dirsync::sync::people::{PersonSteps, SyncPeopleError, person_steps, sync_people};
use dirsync::sync::what_if::what_if;
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings, run_sync};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use support::backend::TestDb;
use support::world::{DirectoryDriver, EntraDriver, timestamp_free};

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

const LITIGATION: u128 = 0x6001;
const STAFF: u128 = 0x6002;
const ALUMNI_CLUB: u128 = 0x6003;

fn person(n: u128, name: &str) -> EntraUser {
    let email = format!("{}@contoso.com", name.to_lowercase());
    EntraUser {
        id: oid(n),
        given_name: Some(name.to_owned()),
        surname: Some("Doe".to_owned()),
        display_name: Some(format!("{name} Doe")),
        mail: Some(email.clone()),
        user_principal_name: Some(email),
        job_title: Some("Associate".to_owned()),
        account_enabled: Some(true),
        ..EntraUser::default()
    }
}

fn tenant(groups: Vec<SelectedGroup>, threshold: u32) -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: groups,
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: threshold,
        },
        source: Default::default(),
        target: None,
    }
}

fn selected() -> Vec<SelectedGroup> {
    vec![
        SelectedGroup {
            entra_id: oid(LITIGATION),
            role: Role::Internal,
        },
        SelectedGroup {
            entra_id: oid(STAFF),
            role: Role::Basic,
        },
    ]
}

/// Ada, Ben, Dee in Litigation; Cid and Dee in Staff; Eve only in an unselected club.
fn day_one() -> MemoryDirectory {
    let mut directory = MemoryDirectory::default();
    for (n, name) in [
        (1, "Ada"),
        (2, "Ben"),
        (3, "Cid"),
        (4, "Dee"),
        (5, "Eve"),
        (6, "Fay"),
    ] {
        directory.users.insert(oid(n), person(n, name));
    }
    directory.groups.insert(
        oid(LITIGATION),
        ("Litigation".to_owned(), vec![oid(1), oid(2), oid(4)]),
    );
    directory
        .groups
        .insert(oid(STAFF), ("Staff".to_owned(), vec![oid(3), oid(4)]));
    directory
        .groups
        .insert(oid(ALUMNI_CLUB), ("Alumni club".to_owned(), vec![oid(5)]));
    directory
}

struct World {
    _db: TestDb,
    driver: EntraDriver,
    target: MemoryTarget,
    ctx: SyncContext,
    key: TenantKey,
}

impl World {
    async fn new(db: TestDb, threshold: u32) -> Self {
        let tenant = tenant(selected(), threshold);
        let store: Arc<dyn Database> = db.store.clone();
        store.upsert_tenant(&tenant).await.unwrap();
        let driver = EntraDriver::start(&tenant).await;
        driver.publish(&day_one());
        let target = MemoryTarget::new();
        let ctx = SyncContext {
            store: store.clone(),
            connector: Arc::new(FixedConnector {
                source: driver.source(),
                target: Arc::new(target.clone()),
            }),
            settings: SyncSettings {
                deletion_confirm_delay: std::time::Duration::from_millis(1),
                ..SyncSettings::default()
            },
        };
        let world = Self {
            _db: db,
            driver,
            target,
            ctx,
            key: tenant.key,
        };
        let first = world.full_run().await;
        assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
        world
    }

    async fn full_run(&self) -> dirsync::sync::RunOutcome {
        run_sync(
            &self.ctx,
            &self.key,
            Trigger::manual("test"),
            RunOptions::default(),
        )
        .await
        .unwrap()
    }

    /// (last name, job title, role, status, groups by name) of the target user.
    fn user(&self, email: &str) -> Option<(String, String, Role, UserStatus, BTreeSet<String>)> {
        self.target.with(|s| {
            let (id, user) = s.user_by_email(email)?;
            let groups = s
                .groups
                .values()
                .filter(|g| g.members.contains(id))
                .map(|g| g.name.clone())
                .collect();
            Some((
                user.fields.last_name.to_string(),
                user.fields
                    .job_title
                    .as_deref()
                    .unwrap_or_default()
                    .to_owned(),
                user.role,
                user.status,
                groups,
            ))
        })
    }

    fn group_names(&self) -> BTreeSet<String> {
        self.target
            .with(|s| s.groups.values().map(|g| timestamp_free(&g.name)).collect())
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A person's steps as `action[ field]: old → new` lines (messages left out).
fn lines(person: &PersonSteps) -> Vec<String> {
    person
        .steps
        .iter()
        .map(|s| {
            let mut line = s.action.clone();
            if let Some(field) = &s.field {
                line.push_str(&format!(" {field}"));
            }
            match (&s.old_value, &s.new_value) {
                (Some(old), Some(new)) => line.push_str(&format!(": {old} → {new}")),
                (None, Some(new)) => line.push_str(&format!(": {new}")),
                (Some(old), None) => line.push_str(&format!(": {old}")),
                (None, None) => {}
            }
            line
        })
        .collect()
}

fn steps_of<'a>(people: &'a [PersonSteps], email: &str) -> &'a PersonSteps {
    people
        .iter()
        .find(|p| p.email.as_deref() == Some(email))
        .unwrap_or_else(|| panic!("no steps for {email}: {people:#?}"))
}

async fn syncing_people_touches_only_them_and_reports_each_step(db: TestDb) {
    let world = World::new(db, 500).await;
    // Overnight in Entra: Ada moves from Litigation to Staff with a new title; Ben leaves every
    // selected group; Cid's surname changes; Fay joins Litigation; Litigation is renamed.
    world.driver.publish(&{
        let mut d = day_one();
        d.users.get_mut(&oid(1)).unwrap().job_title = Some("Counsel".to_owned());
        d.users.get_mut(&oid(3)).unwrap().surname = Some("Changed".to_owned());
        d.groups.insert(
            oid(LITIGATION),
            ("Litigation LLP".to_owned(), vec![oid(4), oid(6)]),
        );
        d.groups.insert(
            oid(STAFF),
            ("Staff".to_owned(), vec![oid(1), oid(3), oid(4)]),
        );
        d
    });
    let asked = [
        "ADA@contoso.com".to_owned(),
        oid(6).to_string(),
        "ghost@contoso.com".to_owned(),
        "eve@contoso.com".to_owned(),
    ];

    let outcome = sync_people(&world.ctx, &world.key, "Tess Admin", &asked)
        .await
        .unwrap();

    assert_eq!(outcome.status, RunStatus::Succeeded, "{outcome:?}");
    let record = world.ctx.store.run(outcome.run_id).await.unwrap().unwrap();
    assert_eq!(record.trigger, Trigger::on_demand("Tess Admin"));
    assert_eq!(record.trigger.kind, TriggerKind::OnDemand);
    // Only the picked people changed: Ben is still active and in Litigation, Cid keeps his old
    // surname, and the group keeps its old name (the full run renames it).
    assert_eq!(
        world.user("ben@contoso.com").unwrap(),
        (
            "Doe".to_owned(),
            "Associate".to_owned(),
            Role::Internal,
            UserStatus::Active,
            set(&["Litigation"])
        )
    );
    assert_eq!(world.user("cid@contoso.com").unwrap().0, "Doe");
    assert_eq!(world.group_names(), set(&["Litigation", "Staff"]));
    // Ada moved, Fay was created; Eve (in no selected group) was not.
    assert_eq!(
        world.user("ada@contoso.com").unwrap(),
        (
            "Doe".to_owned(),
            "Counsel".to_owned(),
            Role::Basic,
            UserStatus::Active,
            set(&["Staff"])
        )
    );
    assert_eq!(
        world.user("fay@contoso.com").unwrap(),
        (
            "Doe".to_owned(),
            "Associate".to_owned(),
            Role::Internal,
            UserStatus::Active,
            set(&["Litigation"])
        )
    );
    assert!(world.user("eve@contoso.com").is_none());

    let entries = world.ctx.store.run_entries(outcome.run_id).await.unwrap();
    let people = person_steps(&entries);
    assert_eq!(people.len(), 4, "{people:#?}");
    assert_eq!(
        lines(steps_of(&people, "ada@contoso.com")),
        vec![
            "found in Entra",
            "in scope",
            "matched in the target",
            "updated job title: Associate → Counsel",
            "updated role: internal → basic",
            "added to group: Staff [Synced basic user group]",
            "removed from group: Litigation [Synced Group]",
        ]
    );
    assert_eq!(
        lines(steps_of(&people, "fay@contoso.com")),
        vec![
            "found in Entra",
            "in scope",
            "created in the target",
            "created role: internal",
            "added to group: Litigation [Synced Group]",
        ]
    );
    assert_eq!(
        lines(steps_of(&people, "eve@contoso.com")),
        vec!["found in Entra", "out of scope", "not in the target"]
    );
    assert_eq!(
        lines(steps_of(&people, "ghost@contoso.com")),
        vec!["warning"]
    );
    let ada = steps_of(&people, "ada@contoso.com");
    assert_eq!(
        ada.steps[1].message.as_deref(),
        Some("a direct member of Staff [Synced basic user group]")
    );
    let eve = steps_of(&people, "eve@contoso.com");
    assert_eq!(
        eve.steps[1].message.as_deref(),
        Some(
            "a direct member of none of the selected groups (Litigation LLP [Synced Group], \
             Staff [Synced basic user group])"
        )
    );
    assert!(
        steps_of(&people, "ghost@contoso.com").steps[0]
            .message
            .as_deref()
            .unwrap()
            .starts_with("not found in Entra"),
    );
    // Nobody else has a line in the report.
    assert!(
        entries.iter().filter_map(|e| e.email.as_deref()).all(|e| [
            "ada@contoso.com",
            "fay@contoso.com",
            "eve@contoso.com",
            "ghost@contoso.com"
        ]
        .contains(&e)),
        "{entries:#?}"
    );

    // Ben, picked on his own, leaves every synced group and is deactivated (R10).
    let ben = sync_people(&world.ctx, &world.key, "Tess Admin", &[oid(2).to_string()])
        .await
        .unwrap();
    assert_eq!(ben.status, RunStatus::Succeeded, "{ben:?}");
    assert_eq!(
        world.user("ben@contoso.com").unwrap(),
        (
            "Doe".to_owned(),
            "Associate".to_owned(),
            Role::Internal,
            UserStatus::Inactive,
            BTreeSet::new()
        )
    );
    let entries = world.ctx.store.run_entries(ben.run_id).await.unwrap();
    assert_eq!(
        lines(steps_of(&person_steps(&entries), "ben@contoso.com")),
        vec![
            "found in Entra",
            "out of scope",
            "matched in the target",
            "removed from group: Litigation [Synced Group]",
            "deactivated status: active → inactive",
        ]
    );
    assert_eq!(world.user("cid@contoso.com").unwrap().0, "Doe");

    // The full run afterwards has nothing left to do for the people synced on demand.
    let full = world.full_run().await;
    assert_eq!(full.status, RunStatus::Succeeded, "{full:?}");
    let touched: BTreeSet<String> = world
        .ctx
        .store
        .run_entries(full.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.email)
        .collect();
    assert_eq!(touched, set(&["cid@contoso.com"]));
}

async fn syncing_people_is_refused_while_a_run_is_in_progress_and_for_bad_lists(db: TestDb) {
    let world = World::new(db, 500).await;
    for bad in [
        vec![],
        vec!["  ".to_owned()],
        vec!["not an address".to_owned()],
        (1..=6).map(|n| format!("p{n}@contoso.com")).collect(),
    ] {
        match sync_people(&world.ctx, &world.key, "Tess Admin", &bad).await {
            Err(SyncPeopleError::Invalid(_)) => {}
            other => panic!("{bad:?} was not refused: {other:?}"),
        }
    }
    let RunStart::Started(lease) = world
        .ctx
        .store
        .begin_run(&world.key, &Trigger::automatic(), RunOptions::default())
        .await
        .unwrap()
    else {
        panic!("no run was in progress");
    };
    match sync_people(
        &world.ctx,
        &world.key,
        "Tess Admin",
        &["ada@contoso.com".to_owned()],
    )
    .await
    {
        Err(SyncPeopleError::AlreadyRunning(id)) => assert_eq!(id, lease.run_id()),
        other => panic!(
            "not refused while run {} is in progress: {other:?}",
            lease.run_id()
        ),
    }
}

async fn the_deletion_guard_stops_an_on_demand_run_that_would_deactivate_too_many(db: TestDb) {
    let world = World::new(db, 1).await;
    world.driver.publish(&{
        let mut d = day_one();
        d.groups
            .insert(oid(LITIGATION), ("Litigation".to_owned(), vec![oid(4)]));
        d
    });

    let outcome = sync_people(
        &world.ctx,
        &world.key,
        "Tess Admin",
        &["ada@contoso.com".to_owned(), "ben@contoso.com".to_owned()],
    )
    .await
    .unwrap();

    assert_eq!(outcome.status, RunStatus::Failed);
    assert!(
        outcome
            .message
            .as_deref()
            .unwrap()
            .contains("deletion guard (R18)"),
        "{outcome:?}"
    );
    assert_eq!(world.user("ada@contoso.com").unwrap().3, UserStatus::Active);
    assert_eq!(world.user("ben@contoso.com").unwrap().3, UserStatus::Active);
}

async fn a_what_if_matches_exactly_the_run_after_the_change_is_saved(db: TestDb) {
    let world = World::new(db, 500).await;
    // Proposed: Litigation is dropped, Staff becomes internal, the Alumni club is added.
    let proposed = vec![
        SelectedGroup {
            entra_id: oid(STAFF),
            role: Role::Internal,
        },
        SelectedGroup {
            entra_id: oid(ALUMNI_CLUB),
            role: Role::Basic,
        },
    ];

    let answer = what_if(&world.ctx, &world.key, proposed.clone())
        .await
        .unwrap();
    // Nothing was saved or applied.
    assert_eq!(
        world
            .ctx
            .store
            .tenant(&world.key)
            .await
            .unwrap()
            .unwrap()
            .policy
            .selected_groups,
        selected()
    );
    assert_eq!(world.group_names(), set(&["Litigation", "Staff"]));

    world
        .ctx
        .store
        .upsert_tenant(&tenant(proposed, 500))
        .await
        .unwrap();
    let run = world.full_run().await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");

    assert_eq!(answer.counts, run.summary.planned);
    let entries = world.ctx.store.run_entries(run.run_id).await.unwrap();
    let emails = |actions: &[&str]| -> BTreeSet<String> {
        entries
            .iter()
            .filter(|e| actions.contains(&e.action.as_str()))
            .filter_map(|e| e.email.clone())
            .collect()
    };
    let listed = |list: &dirsync::sync::what_if::WhatIfList| -> BTreeSet<String> {
        assert_eq!(list.total, list.people.len());
        list.people.iter().map(|p| p.email.clone()).collect()
    };
    assert_eq!(listed(&answer.created), emails(&["created", "adopted"]));
    assert_eq!(listed(&answer.created), set(&["eve@contoso.com"]));
    assert_eq!(listed(&answer.deactivated), emails(&["deactivated"]));
    assert_eq!(
        listed(&answer.deactivated),
        set(&["ada@contoso.com", "ben@contoso.com"])
    );
    let moved_in_run: BTreeSet<String> =
        &emails(&["added to group", "removed from group", "updated"])
            - &(&emails(&["created", "adopted"]) | &emails(&["deactivated"]));
    assert_eq!(listed(&answer.moved), moved_in_run);
    assert_eq!(
        listed(&answer.moved),
        set(&["cid@contoso.com", "dee@contoso.com"])
    );
    let converted_in_run: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.action == "converted to system group")
        .map(|e| {
            format!(
                "{} → {}",
                e.old_value.clone().unwrap(),
                timestamp_free(
                    e.new_value
                        .as_deref()
                        .unwrap()
                        .trim_end_matches(" [System group]")
                )
            )
        })
        .collect();
    let converted: BTreeSet<String> = answer
        .converted
        .iter()
        .map(|g| {
            format!(
                "{} → {}",
                g.name,
                timestamp_free(g.new_name.trim_end_matches(" [System group]"))
            )
        })
        .collect();
    assert_eq!(converted, converted_in_run);
    assert_eq!(
        converted,
        set(&[
            "Litigation [Synced Group] → Litigation_<ms>",
            "Staff [Synced basic user group] → Staff_<ms>",
        ])
    );
    let litigation = answer
        .converted
        .iter()
        .find(|g| g.name.starts_with("Litigation"))
        .unwrap();
    assert_eq!(
        (litigation.members_removed, litigation.members_deactivated),
        (3, 2)
    );
    assert!(
        answer.headlines.iter().any(|h| h
            == "removing Litigation [Synced Group] deactivates 2 people: 3 members leave it, and \
                it becomes a system group"),
        "{:#?}",
        answer.headlines
    );
}

on_both_backends!(
    syncing_people_touches_only_them_and_reports_each_step,
    syncing_people_is_refused_while_a_run_is_in_progress_and_for_bad_lists,
    the_deletion_guard_stops_an_on_demand_run_that_would_deactivate_too_many,
    a_what_if_matches_exactly_the_run_after_the_change_is_saved,
);
