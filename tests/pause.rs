//! Issue 14: pause and resume (a tenant, and the global pause) and quarantine, against the real
//! store on both backends and the real scheduler driven by a test clock. Runs fail through the
//! memory directory's fault injection (every selected group's read fails, as a broken Graph
//! would), so a run ends `failed` exactly as it does in production.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dirsync::audit::Actor;
use dirsync::domain::{DeactivationStatus, EntraObjectId, Role, TenantKey};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::schedule::{self, Clock, Scheduler, SchedulerSettings, next_midnight};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::access::AuditFilter;
use dirsync::store::{
    Database, Pause, RunFilter, RunId, RunOptions, RunRecord, RunStatus, Trigger,
};
use dirsync::sync::{Finished, FixedConnector, Runner, SyncContext, SyncError, SyncSettings};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use support::backend::TestDb;
use tokio::sync::broadcast;

mod support;

/// A clock the test moves: the real time plus an offset.
struct TestClock(Mutex<chrono::Duration>);

impl TestClock {
    fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at - Utc::now();
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap()
    }
}

fn key() -> TenantKey {
    TenantKey::parse("acme").unwrap()
}

fn group() -> EntraObjectId {
    uuid::Uuid::from_u128(0x6900).into()
}

fn tenant() -> Tenant {
    Tenant {
        key: key(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: uuid::Uuid::from_u128(0xac3e).into(),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::SixMonths,
        policy: TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: group(),
                role: Role::Internal,
            }],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

/// One replica: a runner and a scheduler on the shared database and clock.
fn replica(
    store: Arc<dyn Database>,
    source: MemorySource,
    clock: Arc<TestClock>,
) -> (Runner, Scheduler) {
    let runner = Runner::new(SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(source),
            target: Arc::new(MemoryTarget::new()),
        }),
        settings: SyncSettings::default(),
    });
    let scheduler = Scheduler::new(runner.clone(), clock, SchedulerSettings::default())
        .with_access(store, chrono::Duration::minutes(30));
    (runner, scheduler)
}

struct Harness {
    db: TestDb,
    clock: Arc<TestClock>,
    source: MemorySource,
    runner: Runner,
    scheduler: Scheduler,
    finished: broadcast::Receiver<Finished>,
    /// The first midnight after the tenant was created: night 1.
    first: DateTime<Utc>,
}

async fn harness(db: TestDb) -> Harness {
    let mut directory = MemoryDirectory::default();
    let user = EntraUser {
        id: uuid::Uuid::from_u128(1).into(),
        given_name: Some("Ada".to_owned()),
        surname: Some("Lovelace".to_owned()),
        mail: Some("ada@contoso.com".to_owned()),
        account_enabled: Some(true),
        ..EntraUser::default()
    };
    directory
        .groups
        .insert(group(), ("Engineers".to_owned(), vec![user.id.clone()]));
    directory.users.insert(user.id.clone(), user);
    db.store.upsert_tenant(&tenant()).await.unwrap();
    let source = MemorySource::new(directory);
    let clock = Arc::new(TestClock(Mutex::new(chrono::Duration::zero())));
    let (runner, scheduler) = replica(db.store.clone(), source.clone(), clock.clone());
    let finished = runner.subscribe();
    Harness {
        first: next_midnight(chrono_tz::UTC, Utc::now()),
        db,
        clock,
        source,
        runner,
        scheduler,
        finished,
    }
}

impl Harness {
    fn store(&self) -> &dyn Database {
        self.db.store.as_ref()
    }

    /// Night `n` (from 1): its midnight.
    fn night(&self, n: i64) -> DateTime<Utc> {
        self.first + chrono::Duration::days(n - 1)
    }

    /// Entra's reads fail (or work again).
    fn entra_fails(&self, fails: bool) {
        self.source.edit(|d| {
            if fails {
                d.failing
                    .insert(group(), "Graph answered 503 three times".to_owned());
            } else {
                d.failing.clear();
            }
        });
    }

    async fn wait_for_run(&mut self) -> (RunId, RunStatus) {
        let event = tokio::time::timeout(Duration::from_secs(30), self.finished.recv())
            .await
            .unwrap()
            .unwrap();
        let outcome = event.outcome.unwrap();
        (outcome.run_id, outcome.status)
    }

    /// Night `n`: the scheduler ticks a minute after its midnight; a run it starts is waited for
    /// and stamped with the test clock's time. Returns what the tick did: "ran <status>",
    /// "skipped" or "nothing".
    async fn night_passes(&mut self, n: i64) -> String {
        let at = self.night(n) + chrono::Duration::minutes(1);
        self.clock.set(at);
        let tick = self.scheduler.tick().await.unwrap();
        if !tick.started.is_empty() {
            let (run, status) = self.wait_for_run().await;
            self.db.stamp_run(run, at).await;
            return format!("ran {}", status.as_str());
        }
        if !tick.skipped.is_empty() {
            return "skipped".to_owned();
        }
        "nothing".to_owned()
    }

    async fn runs(&self) -> Vec<RunRecord> {
        self.store()
            .find_runs(
                &key(),
                &RunFilter {
                    limit: 100,
                    ..RunFilter::default()
                },
            )
            .await
            .unwrap()
    }

    async fn skipped_runs(&self) -> Vec<RunRecord> {
        self.store()
            .find_runs(
                &key(),
                &RunFilter {
                    status: Some(RunStatus::Skipped),
                    limit: 100,
                    ..RunFilter::default()
                },
            )
            .await
            .unwrap()
    }

    async fn audit_actions(&self, action: &str) -> Vec<serde_json::Value> {
        self.store()
            .audit_events(&AuditFilter {
                action: Some(action.to_owned()),
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let mut detail = r.event.detail;
                detail["actor"] = r.event.actor.into();
                detail
            })
            .collect()
    }

    async fn quarantine(&self) -> Option<schedule::Quarantine> {
        schedule::quarantine_of(self.store(), &SyncSettings::default().quarantine, &tenant())
            .await
            .unwrap()
    }

    fn actor(&self, name: &str) -> Actor {
        Actor {
            name: name.to_owned(),
            id: Some(format!("test:{name}")),
            client: Default::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

async fn a_tenant_pause_keeps_who_when_and_why_and_a_second_pause_keeps_the_first(db: TestDb) {
    let store = db.store.clone();
    store.upsert_tenant(&tenant()).await.unwrap();
    let at: DateTime<Utc> = "2026-01-15T09:30:00.123456Z".parse().unwrap();
    let first = Pause::new("Tess Admin", at, Some("  moving HighQ  ".to_owned()));

    assert!(store.pause_tenant(&key(), &first).await.unwrap());
    assert!(
        !store
            .pause_tenant(&key(), &Pause::new("Olga Ops", at, None))
            .await
            .unwrap()
    );

    let kept = store.tenant_pause(&key()).await.unwrap().unwrap();
    assert_eq!(kept, first);
    assert_eq!(kept.reason.as_deref(), Some("moving HighQ"));
    assert_eq!(store.resume_tenant(&key()).await.unwrap(), Some(first));
    assert_eq!(store.tenant_pause(&key()).await.unwrap(), None);
    assert_eq!(store.resume_tenant(&key()).await.unwrap(), None);
    let unknown = TenantKey::parse("nobody").unwrap();
    assert!(
        store
            .pause_tenant(&unknown, &Pause::new("x", at, None))
            .await
            .is_err()
    );
}

async fn the_global_pause_is_one_row_that_resuming_removes(db: TestDb) {
    let store = db.store.clone();
    let at: DateTime<Utc> = "2026-01-15T09:30:00Z".parse().unwrap();
    let pause = Pause::new("Olga Ops", at, Some("database upgrade".to_owned()));

    assert_eq!(store.service_pause().await.unwrap(), None);
    assert!(store.pause_service(&pause).await.unwrap());
    assert!(
        !store
            .pause_service(&Pause::new("Other", at, None))
            .await
            .unwrap()
    );
    assert_eq!(store.service_pause().await.unwrap(), Some(pause.clone()));
    assert_eq!(store.resume_service().await.unwrap(), Some(pause));
    assert_eq!(store.service_pause().await.unwrap(), None);
}

async fn a_skipped_midnight_is_a_finished_run_with_its_reason_and_one_report_line(db: TestDb) {
    let store = db.store.clone();
    store.upsert_tenant(&tenant()).await.unwrap();
    let midnight: DateTime<Utc> = "2026-01-16T00:00:00Z".parse().unwrap();
    let at = midnight + chrono::Duration::seconds(5);
    assert!(store.claim_midnight(&key(), midnight).await.unwrap());

    let run = store
        .record_skipped_run(&key(), midnight, at, "skipped: the tenant is paused")
        .await
        .unwrap();

    let record = store.run(run).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Skipped);
    assert_eq!(record.trigger, Trigger::automatic());
    assert_eq!(record.started_at, at);
    assert_eq!(record.finished_at, Some(at));
    assert_eq!(
        record.message.as_deref(),
        Some("skipped: the tenant is paused")
    );
    let lines = store.run_entries(run).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].action, "skipped");
    let linked: i64 = db.scalar("SELECT run_id FROM scheduled_midnights").await;
    assert_eq!(linked, run);
}

async fn a_skipped_runs_xlsx_report_says_skipped_and_why(db: TestDb) {
    use calamine::{Reader, Xlsx, open_workbook_from_rs};
    let store = db.store.clone();
    store.upsert_tenant(&tenant()).await.unwrap();
    let midnight: DateTime<Utc> = "2026-01-16T00:00:00Z".parse().unwrap();
    assert!(store.claim_midnight(&key(), midnight).await.unwrap());
    let run = store
        .record_skipped_run(
            &key(),
            midnight,
            midnight,
            "skipped: the tenant is paused (by Tess)",
        )
        .await
        .unwrap();
    let record = store.run(run).await.unwrap().unwrap();
    let entries = store.run_entries(run).await.unwrap();

    let bytes = dirsync::report::workbook(&tenant(), &record, &[], &entries).unwrap();

    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let summary: Vec<String> = book
        .worksheet_range("Summary")
        .unwrap()
        .rows()
        .map(|row| {
            row.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    assert!(
        summary.iter().any(|r| r.starts_with("Status | skipped |")),
        "{summary:#?}"
    );
    assert!(
        summary
            .iter()
            .any(|r| r.starts_with("Message | skipped: the tenant is paused (by Tess) |")),
        "{summary:#?}"
    );
    assert!(
        summary.iter().any(|r| r == "Counts | what was applied | "),
        "nothing was planned: {summary:#?}"
    );
}

async fn a_quarantine_is_announced_once_and_a_lift_is_remembered(db: TestDb) {
    let store = db.store.clone();
    store.upsert_tenant(&tenant()).await.unwrap();
    assert_eq!(
        store.quarantine_mark(&key()).await.unwrap(),
        Default::default()
    );

    assert!(store.announce_quarantine(&key(), 7).await.unwrap());
    assert!(!store.announce_quarantine(&key(), 7).await.unwrap());
    let at: DateTime<Utc> = "2026-01-15T09:30:00Z".parse().unwrap();
    store
        .lift_quarantine(
            &key(),
            at,
            "Olga Ops",
            "the tenant's connection settings changed",
        )
        .await
        .unwrap();
    assert!(
        store.announce_quarantine(&key(), 9).await.unwrap(),
        "a later quarantine is announced again"
    );

    let mark = store.quarantine_mark(&key()).await.unwrap();
    assert_eq!(mark.lifted_at, Some(at));
    assert_eq!(mark.lifted_by.as_deref(), Some("Olga Ops"));
    assert_eq!(mark.announced_run, Some(9));
}

// ---------------------------------------------------------------------------------------------
// Pause and resume
// ---------------------------------------------------------------------------------------------

async fn a_paused_tenants_midnight_is_recorded_as_skipped_once_across_replicas_and_resuming_does_not_replay_it(
    db: TestDb,
) {
    let mut h = harness(db).await;
    let (_, second_replica) = replica(h.db.store.clone(), h.source.clone(), h.clock.clone());
    let tess = h.actor("Tess Admin");
    schedule::pause_tenant(
        h.store(),
        h.store(),
        &tess,
        &key(),
        Some("HighQ is being moved".to_owned()),
        Utc::now(),
    )
    .await
    .unwrap();

    h.clock.set(h.night(1) + chrono::Duration::minutes(1));
    let (one, two) = tokio::join!(h.scheduler.tick(), second_replica.tick());
    let (one, two) = (one.unwrap(), two.unwrap());

    assert_eq!(
        one.skipped.len() + two.skipped.len(),
        1,
        "one replica records it"
    );
    assert!(one.started.is_empty() && two.started.is_empty());
    let skipped = h.skipped_runs().await;
    assert_eq!(skipped.len(), 1);
    let message = skipped[0].message.clone().unwrap();
    assert!(
        message.starts_with("skipped: the tenant is paused (by Tess Admin since ")
            && message.contains(": HighQ is being moved)"),
        "{message}"
    );
    assert!(h.scheduler.tick().await.unwrap().skipped.is_empty(), "once");

    schedule::resume_tenant(h.store(), h.store(), &tess, &key(), Utc::now())
        .await
        .unwrap();
    let after_resume = h.scheduler.tick().await.unwrap();
    assert!(
        after_resume.started.is_empty() && after_resume.skipped.is_empty(),
        "resuming does not replay the skipped midnight"
    );
    assert_eq!(h.night_passes(2).await, "ran succeeded");
    let paused = h.audit_actions("tenant_pause").await;
    let resumed = h.audit_actions("tenant_resume").await;
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0]["actor"], "Tess Admin");
    assert_eq!(paused[0]["reason"], "HighQ is being moved");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["reason"], "HighQ is being moved");
}

async fn a_paused_tenant_refuses_forced_and_approved_runs_until_resumed(db: TestDb) {
    let mut h = harness(db).await;
    let tess = h.actor("Tess Admin");
    schedule::pause_tenant(h.store(), h.store(), &tess, &key(), None, Utc::now())
        .await
        .unwrap();

    let refused = h
        .runner
        .launch(&key(), Trigger::manual("Tess Admin"), RunOptions::default())
        .await;

    match refused {
        Err(SyncError::Paused(message)) => assert!(
            message.starts_with("tenant acme is paused (by Tess Admin since ")
                && message.ends_with("); resume it to run"),
            "{message}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let approval =
        dirsync::sync::approve_held_run(h.runner.context(), &key(), 1, "Tess Admin").await;
    assert!(matches!(
        approval,
        Err(dirsync::sync::ApproveError::Sync(SyncError::Paused(_)))
    ));
    assert!(h.runs().await.is_empty(), "nothing was started");

    schedule::resume_tenant(h.store(), h.store(), &tess, &key(), Utc::now())
        .await
        .unwrap();
    h.runner
        .launch(&key(), Trigger::manual("Tess Admin"), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait_for_run().await.1, RunStatus::Succeeded);
}

async fn the_global_pause_skips_every_tenants_midnight_and_refuses_forced_runs(db: TestDb) {
    let mut h = harness(db).await;
    // Globex syncs its own group and person: the two tenants' runs share the replica's target,
    // and two runs creating the same person there at once would race each other.
    let globex_group: EntraObjectId = uuid::Uuid::from_u128(0x6901).into();
    h.source.edit(|d| {
        let grace = EntraUser {
            id: uuid::Uuid::from_u128(2).into(),
            given_name: Some("Grace".to_owned()),
            surname: Some("Hopper".to_owned()),
            mail: Some("grace@globex.com".to_owned()),
            account_enabled: Some(true),
            ..EntraUser::default()
        };
        d.groups.insert(
            globex_group.clone(),
            ("Globex staff".to_owned(), vec![grace.id.clone()]),
        );
        d.users.insert(grace.id.clone(), grace);
    });
    let mut other = tenant();
    other.key = TenantKey::parse("globex").unwrap();
    other.policy.selected_groups = vec![SelectedGroup {
        entra_id: globex_group,
        role: Role::Internal,
    }];
    h.store().upsert_tenant(&other).await.unwrap();
    let olga = h.actor("Olga Ops");
    schedule::pause_service(
        h.store(),
        h.store(),
        &olga,
        Some("database upgrade".to_owned()),
        Utc::now(),
    )
    .await
    .unwrap();

    h.clock.set(h.night(1) + chrono::Duration::minutes(1));
    let tick = h.scheduler.tick().await.unwrap();

    assert_eq!(tick.skipped.len(), 2, "both tenants' midnights");
    assert!(tick.started.is_empty());
    let message = h.skipped_runs().await[0].message.clone().unwrap();
    assert!(
        message.starts_with("skipped: dirsync is paused for maintenance (by Olga Ops since ")
            && message.ends_with(": database upgrade)"),
        "{message}"
    );
    let refused = h
        .runner
        .launch(
            &other.key,
            Trigger::manual("Olga Ops"),
            RunOptions::default(),
        )
        .await;
    assert!(
        matches!(&refused, Err(SyncError::Paused(m)) if m.starts_with("dirsync is paused for maintenance")),
        "{refused:?}"
    );

    schedule::resume_service(h.store(), h.store(), &olga, Utc::now())
        .await
        .unwrap();
    assert_eq!(h.night_passes(2).await, "ran succeeded");
    assert_eq!(h.audit_actions("service_pause").await.len(), 1);
    assert_eq!(h.audit_actions("service_resume").await.len(), 1);
    assert_eq!(
        h.audit_actions("service_pause").await[0]["reason"],
        "database upgrade"
    );
}

// ---------------------------------------------------------------------------------------------
// Quarantine
// ---------------------------------------------------------------------------------------------

async fn quarantine_after_three_failed_nights_announced_once_and_lifted_by_a_forced_run(
    db: TestDb,
) {
    let mut h = harness(db).await;
    assert_eq!(h.night_passes(1).await, "ran succeeded");
    h.entra_fails(true);
    assert_eq!(h.night_passes(2).await, "ran failed");
    assert_eq!(h.night_passes(3).await, "ran failed");
    assert_eq!(
        h.quarantine().await,
        None,
        "two failed nights are not enough"
    );
    assert_eq!(h.night_passes(4).await, "ran failed");

    // The next pass notices the run that failed here, and announces the quarantine once.
    let tick = h.scheduler.tick().await.unwrap();
    assert_eq!(tick.quarantined, vec![key()]);
    assert!(h.scheduler.tick().await.unwrap().quarantined.is_empty());
    let quarantine = h.quarantine().await.unwrap();
    assert_eq!(quarantine.failed_nights, 3);
    assert_eq!(
        quarantine.last_failure,
        "no selected group could be read from Entra; nothing was changed"
    );
    assert_eq!(quarantine.next_attempt, h.night(6));
    let announced = h.audit_actions("tenant_quarantine").await;
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0]["actor"], "dirsync scheduler");
    assert_eq!(announced[0]["failed_nights"], 3);

    assert_eq!(h.night_passes(5).await, "skipped");
    let skipped = h.skipped_runs().await;
    assert_eq!(
        skipped[0].message.as_deref().unwrap(),
        format!(
            "skipped: quarantined after 3 failed nights; next attempt {} UTC; last failure: no \
             selected group could be read from Entra; nothing was changed",
            h.night(6).format("%Y-%m-%d %H:%M")
        )
    );

    // An admin fixes Entra and forces a sync: it succeeds, and the quarantine is lifted.
    h.entra_fails(false);
    h.clock.set(h.night(5) + chrono::Duration::hours(9));
    let forced = h
        .runner
        .launch(&key(), Trigger::manual("Tess Admin"), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait_for_run().await.1, RunStatus::Succeeded);
    h.db.stamp_run(forced.run_id, h.clock.now()).await;
    assert_eq!(h.quarantine().await, None);
    assert_eq!(h.night_passes(6).await, "ran succeeded");
}

async fn a_quarantined_tenant_is_tried_a_day_later_then_weekly_and_a_successful_attempt_lifts_it(
    db: TestDb,
) {
    let mut h = harness(db).await;
    h.entra_fails(true);
    let mut nights = Vec::new();
    for n in 1..=13 {
        nights.push((n, h.night_passes(n).await));
    }
    h.entra_fails(false);
    for n in 14..=20 {
        nights.push((n, h.night_passes(n).await));
    }

    let ran = |status: &str| format!("ran {status}");
    let expected: Vec<(i64, String)> = vec![
        (1, ran("failed")),
        (2, ran("failed")),
        (3, ran("failed")), // quarantined
        (4, "skipped".into()),
        (5, ran("failed")), // a day later than the schedule
        (6, "skipped".into()),
        (7, "skipped".into()),
        (8, "skipped".into()),
        (9, "skipped".into()),
        (10, "skipped".into()),
        (11, "skipped".into()),
        (12, ran("failed")), // a week after the last attempt
        (13, "skipped".into()),
        (14, "skipped".into()),
        (15, "skipped".into()),
        (16, "skipped".into()),
        (17, "skipped".into()),
        (18, "skipped".into()),
        (19, ran("succeeded")), // the next weekly attempt works: lifted
        (20, ran("succeeded")),
    ];
    assert_eq!(nights, expected);
    assert_eq!(h.quarantine().await, None);
    assert_eq!(
        h.audit_actions("tenant_quarantine").await.len(),
        1,
        "announced once, not at every failed attempt"
    );
    let skipped = h.skipped_runs().await;
    let newest = skipped[0].message.clone().unwrap();
    assert!(
        newest.contains(&format!(
            "next attempt {} UTC",
            h.night(19).format("%Y-%m-%d %H:%M")
        )),
        "{newest}"
    );
}

async fn a_fix_to_the_connection_settings_lifts_the_quarantine_and_is_audited(db: TestDb) {
    let mut h = harness(db).await;
    h.entra_fails(true);
    for n in 1..=3 {
        h.night_passes(n).await;
    }
    assert!(h.quarantine().await.is_some());
    let before = tenant();
    let mut after = tenant();
    after.source.client_id = Some("another-app".to_owned());
    h.store().upsert_tenant(&after).await.unwrap();
    let olga = h.actor("Olga Ops");
    let same = schedule::lift_quarantine_after_fix(
        h.store(),
        h.store(),
        &SyncSettings::default().quarantine,
        &olga,
        Some(&after),
        &after,
        false,
        h.clock.now(),
    )
    .await
    .unwrap();
    assert!(!same, "no change, no fix");
    assert!(h.quarantine().await.is_some());

    let lifted = schedule::lift_quarantine_after_fix(
        h.store(),
        h.store(),
        &SyncSettings::default().quarantine,
        &olga,
        Some(&before),
        &after,
        false,
        h.clock.now(),
    )
    .await
    .unwrap();

    assert!(lifted);
    assert_eq!(h.quarantine().await, None);
    let audited = h.audit_actions("quarantine_lift").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["actor"], "Olga Ops");
    assert_eq!(
        audited[0]["why"],
        "the tenant's connection settings changed"
    );
    assert_eq!(audited[0]["failed_nights"], 3);
    assert_eq!(
        h.night_passes(4).await,
        "ran failed",
        "the next midnight runs"
    );
}

on_both_backends!(
    a_tenant_pause_keeps_who_when_and_why_and_a_second_pause_keeps_the_first,
    the_global_pause_is_one_row_that_resuming_removes,
    a_skipped_midnight_is_a_finished_run_with_its_reason_and_one_report_line,
    a_quarantine_is_announced_once_and_a_lift_is_remembered,
    a_skipped_runs_xlsx_report_says_skipped_and_why,
    a_paused_tenants_midnight_is_recorded_as_skipped_once_across_replicas_and_resuming_does_not_replay_it,
    a_paused_tenant_refuses_forced_and_approved_runs_until_resumed,
    the_global_pause_skips_every_tenants_midnight_and_refuses_forced_runs,
    quarantine_after_three_failed_nights_announced_once_and_lifted_by_a_forced_run,
    a_quarantined_tenant_is_tried_a_day_later_then_weekly_and_a_successful_attempt_lifts_it,
    a_fix_to_the_connection_settings_lifts_the_quarantine_and_is_audited,
);

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "./migrations")]
async fn the_api_pauses_and_resumes_a_tenant_and_dirsync_and_a_forced_run_meanwhile_is_a_409(
    pool: sqlx::PgPool,
) {
    use dirsync::domain::{AccessRole, SecretEnvPolicy};
    use dirsync::service::{Service, start};
    use serde_json::{Value, json};

    let db = TestDb::postgres(pool);
    let h = harness(db).await;
    let store = h.db.store.clone();
    let handle = start(
        Service {
            ctx: h.runner.context().clone(),
            access: store.clone(),
            auth: dirsync::auth::settings::AuthSettings::default(),
            secrets: SecretEnvPolicy::default(),
            clock: Arc::new(schedule::SystemClock),
            scheduler: SchedulerSettings {
                enabled: false,
                ..SchedulerSettings::default()
            },
            shutdown_grace: Duration::from_secs(5),
            metrics_listener: None,
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .unwrap();
    let base = format!("http://{}/api/v1", handle.addr);
    let admin = support::auth::token(
        store.as_ref(),
        "tess",
        AccessRole::TenantAdmin,
        Some("acme"),
    )
    .await;
    let operator = support::auth::token(store.as_ref(), "olga", AccessRole::Operator, None).await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let status = |token: String| {
        let call = &call;
        async move {
            let answer = call(reqwest::Method::GET, "/tenants/acme/status", &token, None)
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
            answer.json::<Value>().await.unwrap()
        }
    };
    use reqwest::Method as M;

    assert_eq!(status(admin.clone()).await["state"], "running");
    let paused = call(
        M::POST,
        "/tenants/acme/pause",
        &admin,
        Some(json!({"reason": "HighQ moves"})),
    )
    .await
    .unwrap();
    assert_eq!(paused.status(), 200);
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["changed"], true);
    let by = paused["pause"]["by"].as_str().unwrap().to_owned();
    assert!(
        by.starts_with("token dsy_") && by.ends_with(" (tess)"),
        "{by}"
    );
    assert_eq!(paused["pause"]["reason"], "HighQ moves");

    let forced = call(M::POST, "/tenants/acme/runs", &admin, None)
        .await
        .unwrap();
    assert_eq!(forced.status(), 409);
    let refusal: Value = forced.json().await.unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("tenant acme is paused (by {by} since "))
            && message.contains("HighQ moves"),
        "{message}"
    );
    let now = status(admin.clone()).await;
    assert_eq!(now["state"], "paused");
    assert_eq!(now["pause"]["reason"], "HighQ moves");
    let by_body = call(
        M::POST,
        "/tenants/acme/pause",
        &admin,
        Some(json!({"by": "someone else"})),
    )
    .await
    .unwrap();
    assert_eq!(by_body.status(), 400, "who pauses comes from the token");
    let too_long = call(
        M::POST,
        "/tenants/acme/pause",
        &admin,
        Some(json!({"reason": "x".repeat(501)})),
    )
    .await
    .unwrap();
    assert_eq!(too_long.status(), 400);

    let resumed = call(M::POST, "/tenants/acme/resume", &admin, None)
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    assert_eq!(resumed.json::<Value>().await.unwrap()["changed"], true);
    assert_eq!(status(admin.clone()).await["state"], "running");

    assert_eq!(
        call(M::POST, "/pause", &admin, None)
            .await
            .unwrap()
            .status(),
        403,
        "the global pause is for operators"
    );
    let global = call(
        M::POST,
        "/pause",
        &operator,
        Some(json!({"reason": "database upgrade"})),
    )
    .await
    .unwrap();
    assert_eq!(global.status(), 200);
    let now = status(admin.clone()).await;
    assert_eq!(now["state"], "service_paused");
    assert!(
        now["message"]
            .as_str()
            .unwrap()
            .contains("database upgrade"),
        "{now}"
    );
    assert_eq!(
        call(M::POST, "/tenants/acme/runs", &admin, None)
            .await
            .unwrap()
            .status(),
        409
    );
    assert_eq!(
        call(M::POST, "/resume", &operator, None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call(M::POST, "/tenants/acme/runs", &admin, None)
            .await
            .unwrap()
            .status(),
        202
    );
    handle.stop().await.unwrap();
}
