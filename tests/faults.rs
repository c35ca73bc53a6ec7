//! Issue 10's fault suite, one test per item: failed conversions (1), lost create answers (2),
//! a run that lost its lease while another took over — the database connection terminated, as
//! a PostgreSQL restart does (3, 14), a run deadline (7), HighQ refresh-token rotation from two
//! replicas at once (8), a target restored empty (11) and a refused credential (12). The
//! SIGKILL suite is `tests/night.rs`; the table of figures is `docs/reliability.md`.

#![cfg(feature = "emulators")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use dirsync::domain::{DeactivationStatus, EntraObjectId, GroupKind, Role, TenantKey};
use dirsync::emulator::highq::{HighQEmulator, HighQSeed};
use dirsync::plan::{EntraUser, SelectedGroup, Severity, TenantPolicy};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{PgStore, PgTokenStore, RunOptions, RunStatus, Store, Trigger};
use dirsync::sync::{
    FixedConnector, RunStartOutcome, SyncContext, SyncSettings, run_sync, start_run,
};
use dirsync::target::TargetAdapter;
use dirsync::target::highq::{HighQAdapter, HighQConfig};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use sqlx::PgPool;
use support::counting::CountingTarget;
use support::world::{DirectoryDriver, EntraDriver};

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

const SALES: u128 = 0x6900_0001;
const LEGAL: u128 = 0x6900_0002;

/// Sales holds users 1–10, Legal users 11–20; both selected as internal.
fn directory() -> MemoryDirectory {
    let mut directory = MemoryDirectory::default();
    for n in 1..=20u128 {
        directory.users.insert(
            oid(n),
            EntraUser {
                id: oid(n),
                given_name: Some(format!("User{n}")),
                surname: Some("Doe".to_owned()),
                mail: Some(format!("user{n}@contoso.com")),
                account_enabled: Some(true),
                ..EntraUser::default()
            },
        );
    }
    directory.groups.insert(
        oid(SALES),
        ("Sales".to_owned(), (1..=10).map(oid).collect()),
    );
    directory.groups.insert(
        oid(LEGAL),
        ("Legal".to_owned(), (11..=20).map(oid).collect()),
    );
    directory
}

fn tenant(sales_role: Role) -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: vec![
                SelectedGroup {
                    entra_id: oid(SALES),
                    role: sales_role,
                },
                SelectedGroup {
                    entra_id: oid(LEGAL),
                    role: Role::Internal,
                },
            ],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

fn settings() -> SyncSettings {
    SyncSettings {
        target_concurrency: 2,
        flush_every: 4,
        deletion_confirm_delay: Duration::ZERO,
        ..SyncSettings::default()
    }
}

async fn world(pool: PgPool, target: Arc<dyn TargetAdapter>) -> (SyncContext, Arc<PgStore>) {
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenant(Role::Internal)).await.unwrap();
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory())),
            target,
        }),
        settings: settings(),
    };
    (ctx, store)
}

async fn sync(ctx: &SyncContext) -> dirsync::sync::RunOutcome {
    run_sync(
        ctx,
        &TenantKey::parse("acme").unwrap(),
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap()
}

/// The target holds exactly the directory: 20 users, one synced group per selected group with
/// its ten members, and no name twice.
fn assert_target_equals_directory(target: &MemoryTarget, sales_role: Role) {
    target.with(|s| {
        assert_eq!(s.users.len(), 20, "no user twice, none missing");
        let synced: Vec<_> = s
            .groups
            .values()
            .filter(|g| g.kind != GroupKind::System)
            .collect();
        assert_eq!(synced.len(), 2, "{synced:?}");
        let mut names: Vec<&str> = s.groups.values().map(|g| g.name.as_str()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "no group name twice");
        for (entra, role) in [(oid(SALES), sales_role), (oid(LEGAL), Role::Internal)] {
            let group = synced
                .iter()
                .find(|g| {
                    g.external_id.as_ref() == Some(&entra) && g.kind == GroupKind::synced(role)
                })
                .unwrap_or_else(|| panic!("the synced group of {entra} as {role:?}"));
            assert_eq!(group.members.len(), 10);
        }
    });
}

#[sqlx::test(migrations = "./migrations")]
async fn item1_a_failed_role_change_conversion_is_one_line_the_new_group_waits_and_the_rest_applies(
    pool: PgPool,
) {
    let target = MemoryTarget::new();
    let (ctx, store) = world(pool, Arc::new(target.clone())).await;
    assert_eq!(sync(&ctx).await.status, RunStatus::Succeeded);

    // Sales becomes basic (R13), but HighQ refuses the conversion; a new Legal member arrives.
    store.upsert_tenant(&tenant(Role::Basic)).await.unwrap();
    target.with(|s| s.refuse_conversions = true);
    let failed = sync(&ctx).await;

    assert_eq!(failed.status, RunStatus::CompletedWithErrors, "{failed:?}");
    let entries = store.run_entries(failed.run_id).await.unwrap();
    let errors: Vec<&str> = entries
        .iter()
        .filter(|e| e.severity == Severity::Error)
        .filter_map(|e| e.message.as_deref())
        .collect();
    assert!(
        errors
            .iter()
            .any(|m| m.contains("converting to a system group failed")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|m| m.contains("waits: the group synced for this Entra group's previous role")),
        "{errors:?}"
    );
    target.with(|s| {
        let sales: Vec<_> = s
            .groups
            .values()
            .filter(|g| g.external_id == Some(oid(SALES)))
            .collect();
        assert_eq!(sales.len(), 1, "no basic Sales group yet: {sales:?}");
    });

    // The next night HighQ accepts: the change completes, nothing twice.
    target.with(|s| s.refuse_conversions = false);
    let next = sync(&ctx).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_target_equals_directory(&target, Role::Basic);
    assert_eq!(sync(&ctx).await.summary.operations_applied, 0, "converged");
}

#[sqlx::test(migrations = "./migrations")]
async fn item2_creates_whose_answers_were_lost_are_recognised_next_run_with_no_duplicate(
    pool: PgPool,
) {
    let target = MemoryTarget::new();
    // Every create is carried out, and its answer lost.
    target.with(|s| s.lose_create_answer_every = Some(1));
    let (mut ctx, store) = world(pool, Arc::new(target.clone())).await;
    ctx.settings.max_unavailable_in_a_row = 1_000;
    let lost = sync(&ctx).await;
    assert_ne!(lost.status, RunStatus::Succeeded);
    assert_eq!(
        target.with(|s| s.users.len()),
        20,
        "the target did the work"
    );

    target.with(|s| s.lose_create_answer_every = None);
    let next = sync(&ctx).await;

    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_target_equals_directory(&target, Role::Internal);
    let actions: Vec<String> = store
        .run_entries(next.run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "group found").count(),
        2,
        "both groups are found, not created again: {actions:?}"
    );
    assert_eq!(next.summary.applied.users_created, 0);
    assert_eq!(next.summary.applied.users_adopted, 20);
}

/// Issue 13: a slow call holds only its own slot. While the first user's create hangs, the other
/// calls of its flush go on beside it (waves would wait for it); and the report still lists the
/// creates in the order they were planned, not the order the target answered.
#[sqlx::test(migrations = "./migrations")]
async fn a_slow_call_holds_only_its_own_slot_and_the_report_keeps_plan_order(pool: PgPool) {
    let memory = MemoryTarget::new();
    // Writes 0 and 1 create the two groups; write 2 is the first user's create.
    let target = Arc::new(CountingTarget::new(Arc::new(memory.clone())).stalling_only(2));
    let (ctx, store) = world(pool, target.clone()).await;
    let stalled = target.stalled();
    let run = tokio::spawn({
        let ctx = ctx.clone();
        async move { sync(&ctx).await }
    });
    stalled.await;
    // A flush covers 4 operations, 2 calls in flight: the chunk's 3 other creates go on.
    tokio::time::timeout(Duration::from_secs(60), target.writes_reached(6))
        .await
        .expect("the other creates of the chunk went on while the first one hung");
    target.release();
    let outcome = run.await.unwrap();
    assert_eq!(outcome.status, RunStatus::Succeeded, "{outcome:?}");
    assert_target_equals_directory(&memory, Role::Internal);

    let issued: Vec<String> = target
        .writes()
        .iter()
        .filter_map(|w| w.strip_prefix("create user ").map(str::to_owned))
        .collect();
    assert_eq!(issued.len(), 20);
    let reported: Vec<String> = store
        .run_entries(outcome.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "created")
        .filter_map(|e| e.email)
        .collect();
    assert_eq!(
        reported, issued,
        "the report follows the plan, not the answers"
    );
}

/// The connections holding run leases in this test's database, as PostgreSQL sees them.
async fn terminate_run_leases(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'dirsync run lease' AND datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn item3_a_run_whose_connection_died_stops_applying_and_never_overwrites_the_run_that_took_over(
    pool: PgPool,
) {
    let memory = MemoryTarget::new();
    let stalling = Arc::new(CountingTarget::new(Arc::new(memory.clone())).stalling_after(3));
    let (ctx, store) = world(pool.clone(), stalling.clone()).await;
    let key = TenantKey::parse("acme").unwrap();
    let RunStartOutcome::Started(pending) =
        start_run(&ctx, &key, Trigger::manual("first"), RunOptions::default())
            .await
            .unwrap()
    else {
        panic!("a run should start");
    };
    let first = pending.id();
    let stalled = stalling.stalled();
    let task = tokio::spawn(pending.execute());
    stalled.await;

    // The database drops the first run's session (a restart, a network cut): its lock is gone.
    assert_eq!(terminate_run_leases(&pool).await, 1);
    // Another process's run starts at once and does the whole job.
    let other = SyncContext {
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory())),
            target: Arc::new(memory.clone()),
        }),
        ..ctx.clone()
    };
    let second = sync(&other).await;
    assert!(!second.already_running);
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let writes_after_takeover = stalling.writes().len();

    // The first run wakes up, finds its lease gone at its next flush and stops.
    stalling.release();
    let first_outcome = task.await.unwrap().unwrap();
    assert_eq!(first_outcome.status, RunStatus::Interrupted);
    assert!(
        first_outcome
            .message
            .as_deref()
            .unwrap()
            .contains("lost its hold on the tenant"),
        "{first_outcome:?}"
    );
    assert!(
        stalling.writes().len() <= writes_after_takeover + 1,
        "only the call in flight completes"
    );
    let first_record = store.run(first).await.unwrap().unwrap();
    assert_eq!(first_record.status, RunStatus::Interrupted);
    let second_record = store.run(second.run_id).await.unwrap().unwrap();
    assert_eq!(
        second_record.status,
        RunStatus::Succeeded,
        "not overwritten"
    );
    let first_lines = store.run_entries(first).await.unwrap();
    assert!(
        first_lines.iter().any(|e| e.action == "stopped"),
        "the fenced run says why it stopped"
    );
    assert_target_equals_directory(&memory, Role::Internal);
}

#[sqlx::test(migrations = "./migrations")]
async fn item7_a_run_past_its_deadline_fails_with_deadline_and_the_next_run_is_not_blocked(
    pool: PgPool,
) {
    let memory = MemoryTarget::new();
    let stalling = Arc::new(CountingTarget::new(Arc::new(memory.clone())).stalling_after(2));
    let (mut ctx, store) = world(pool, stalling.clone()).await;
    ctx.settings.run_deadline = Duration::from_millis(500);

    let stuck = sync(&ctx).await;

    assert_eq!(stuck.status, RunStatus::Failed);
    let message = stuck.message.clone().unwrap();
    assert!(message.starts_with("deadline:"), "{message}");
    let record = store.run(stuck.run_id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    stalling.release();
    ctx.settings.run_deadline = Duration::from_secs(60);
    let next = sync(&ctx).await;
    assert!(!next.already_running);
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_target_equals_directory(&memory, Role::Internal);
}

#[sqlx::test(migrations = "./migrations")]
async fn item11_a_target_restored_empty_is_restored_completely_by_the_next_run(pool: PgPool) {
    let target = MemoryTarget::new();
    let (ctx, store) = world(pool, Arc::new(target.clone())).await;
    assert_eq!(sync(&ctx).await.status, RunStatus::Succeeded);

    // The target is restored from a backup taken before dirsync's first run.
    target.with(|s| {
        s.users.clear();
        s.groups.clear();
    });
    let repaired = sync(&ctx).await;

    assert_eq!(repaired.status, RunStatus::Succeeded, "{repaired:?}");
    assert_target_equals_directory(&target, Role::Internal);
    let lines = store.run_entries(repaired.run_id).await.unwrap();
    let missing = lines
        .iter()
        .filter(|e| e.action == "missing from the target")
        .count();
    assert_eq!(missing, 2 + 20, "one line per lost group and user");
    assert_eq!(sync(&ctx).await.summary.operations_applied, 0, "converged");
}

#[sqlx::test(migrations = "./migrations")]
async fn item12_a_refused_credential_fails_the_run_even_with_nothing_to_do(pool: PgPool) {
    let target = MemoryTarget::new();
    let (ctx, _store) = world(pool, Arc::new(target.clone())).await;
    assert_eq!(sync(&ctx).await.status, RunStatus::Succeeded);

    target.with(|s| s.refused_credential = Some("invalid_grant".to_owned()));
    let refused = sync(&ctx).await;

    assert_eq!(refused.status, RunStatus::Failed);
    assert!(
        refused
            .message
            .as_deref()
            .unwrap()
            .contains("reconnect the target"),
        "{refused:?}"
    );
}

fn highq_config(emulator: &HighQEmulator) -> HighQConfig {
    serde_json::from_value(serde_json::json!({
        "base_url": emulator.base_url(),
        "api_version": 16,
        "client_id": emulator.client_id(),
        "client_secret": emulator.client_secret(),
    }))
    .unwrap()
}

/// A replica: its own pool (its own connections, as another process has) and adapter.
async fn replica(pool: &PgPool, emulator: &HighQEmulator) -> HighQAdapter {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let tokens = PgTokenStore::new(own, TenantKey::parse("acme").unwrap(), "highq");
    HighQAdapter::new(highq_config(emulator), Arc::new(tokens)).unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn item8_fifty_refreshes_at_once_from_two_replicas_keep_the_tenant_signed_in(pool: PgPool) {
    let store = PgStore::new(pool.clone());
    store.upsert_tenant(&tenant(Role::Internal)).await.unwrap();
    let emulator = HighQEmulator::start(HighQSeed::default()).await.unwrap();
    let (a, b) = (
        replica(&pool, &emulator).await,
        replica(&pool, &emulator).await,
    );
    let code = emulator.with(|s| s.issue_authorization_code());
    a.connect_with_authorization_code(&secrecy::SecretString::from(code), "http://localhost/cb")
        .await
        .unwrap();

    let refreshes = (0..50).map(|n| {
        let replica = if n % 2 == 0 { &a } else { &b };
        replica.refresh_access_token()
    });
    let results = futures::future::join_all(refreshes).await;

    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(a.verify_access().await.is_ok());
    assert!(b.verify_access().await.is_ok());
    // A fresh process (nothing cached) signs in with what the database holds.
    let fresh = replica(&pool, &emulator).await;
    assert!(fresh.verify_access().await.is_ok());
    let shared: i64 =
        sqlx::query_scalar("SELECT count(*) FROM target_tokens WHERE access_token IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(shared, 1, "the access token is shared through the database");
}

#[sqlx::test(migrations = "./migrations")]
async fn item12_a_refresh_whose_answer_was_lost_fails_the_next_run_with_reconnect_highq(
    pool: PgPool,
) {
    let store = Arc::new(PgStore::new(pool.clone()));
    store.upsert_tenant(&tenant(Role::Internal)).await.unwrap();
    let emulator = HighQEmulator::start(HighQSeed::default()).await.unwrap();
    let adapter = replica(&pool, &emulator).await;
    let code = emulator.with(|s| s.issue_authorization_code());
    adapter
        .connect_with_authorization_code(&secrecy::SecretString::from(code), "http://localhost/cb")
        .await
        .unwrap();
    // A process was killed while HighQ answered its refresh: HighQ rotated the token, the answer
    // (and the new token) died with the process, and the stored token is spent.
    emulator.with(|s| s.oauth.refresh_token = "rotated-by-a-dead-process".to_owned());
    sqlx::query("UPDATE target_tokens SET access_token = NULL, access_expires_at = NULL")
        .execute(&pool)
        .await
        .unwrap();
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory())),
            target: Arc::new(replica(&pool, &emulator).await),
        }),
        settings: settings(),
    };

    let run = sync(&ctx).await;

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(
        run.message
            .as_deref()
            .unwrap()
            .starts_with("reconnect HighQ"),
        "{run:?}"
    );
    assert!(emulator.users().is_empty(), "nothing was changed");
}

/// The target side of the fault suite: HighQ answering 10% of calls with 503, 5% with 500, and
/// losing 5% of its answers after doing the work. Failed operations are listed; the next
/// (fault-free) run converges with no user or group twice.
#[sqlx::test(migrations = "./migrations")]
async fn target_5xx_and_lost_answers_are_listed_and_the_next_run_converges_with_no_duplicate(
    pool: PgPool,
) {
    use dirsync::emulator::highq::{Fault, FaultAction};
    let store = Arc::new(PgStore::new(pool.clone()));
    store.upsert_tenant(&tenant(Role::Internal)).await.unwrap();
    let emulator = HighQEmulator::start(HighQSeed::default()).await.unwrap();
    let adapter = replica(&pool, &emulator).await;
    let code = emulator.with(|s| s.issue_authorization_code());
    adapter
        .connect_with_authorization_code(&secrecy::SecretString::from(code), "http://localhost/cb")
        .await
        .unwrap();
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory())),
            target: Arc::new(adapter),
        }),
        settings: SyncSettings {
            max_unavailable_in_a_row: 1_000,
            ..settings()
        },
    };
    emulator.inject(Fault::at_rate(0.10, FaultAction::Status(503)));
    emulator.inject(Fault::at_rate(0.05, FaultAction::Status(500)));
    emulator.inject(Fault::at_rate(0.05, FaultAction::LoseAnswer));

    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(sync(&ctx).await);
    }
    emulator.with(|s| s.faults.clear());
    let clean = sync(&ctx).await;

    let failed_listed: usize = runs.iter().map(|r| r.summary.operations_failed).sum();
    let users = emulator.users();
    let emails: std::collections::HashSet<String> =
        users.iter().map(|u| u.email.to_lowercase()).collect();
    let groups = emulator.groups();
    let names: std::collections::HashSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    println!(
        "target faults: {} runs under faults ({failed_listed} operations failed and listed), then a \
         clean run: {:?}; HighQ holds {} users ({} distinct), {} groups ({} distinct names)",
        runs.len(),
        clean.status,
        users.len(),
        emails.len(),
        groups.len(),
        names.len()
    );
    assert!(matches!(
        clean.status,
        RunStatus::Succeeded | RunStatus::CompletedWithErrors
    ));
    assert_eq!(users.len(), 20);
    assert_eq!(emails.len(), 20, "no user twice");
    assert_eq!(names.len(), groups.len(), "no group twice");
    assert_eq!(groups.iter().filter(|g| g.guid.is_some()).count(), 2);
    for group in groups.iter().filter(|g| g.guid.is_some()) {
        assert_eq!(group.members.len(), 10, "{group:?}");
    }
    assert_eq!(sync(&ctx).await.summary.operations_applied, 0, "converged");
}

/// Acme's world read from the Entra emulator through the real Graph client, whose first run
/// signs in afresh.
async fn entra_world(pool: PgPool) -> (SyncContext, EntraDriver, MemoryTarget) {
    let driver = EntraDriver::start(&tenant(Role::Internal)).await;
    driver.publish(&directory());
    let target = MemoryTarget::new();
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenant(Role::Internal)).await.unwrap();
    let ctx = SyncContext {
        store,
        connector: Arc::new(FixedConnector {
            source: driver.source(),
            target: Arc::new(target.clone()),
        }),
        settings: settings(),
    };
    (ctx, driver, target)
}

/// Issue 13: a run signs in to Entra while it takes its lease rather than after, and does not
/// ask for a second token once it has the lease. The lease is held up here by a transaction
/// that locks the table of runs, so the order is certain.
#[sqlx::test(migrations = "./migrations")]
async fn entra_is_signed_in_to_while_the_run_waits_for_its_lease_and_not_asked_again(pool: PgPool) {
    let (ctx, driver, target) = entra_world(pool.clone()).await;
    let mut holding = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE runs IN EXCLUSIVE MODE")
        .execute(&mut *holding)
        .await
        .unwrap();
    let run = tokio::spawn(async move { sync(&ctx).await });

    let tokens = || {
        driver
            .emulator()
            .request_counts()
            .get("entra.token")
            .copied()
            .unwrap_or(0)
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        while tokens() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("Entra is asked for a token while the run waits for its lease");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        runs, 0,
        "the run has not been recorded yet: its lease is held up"
    );
    assert!(!run.is_finished());

    holding.rollback().await.unwrap();
    let outcome = run.await.unwrap();
    assert_eq!(outcome.status, RunStatus::Succeeded, "{outcome:?}");
    assert_eq!(
        tokens(),
        1,
        "the token asked for beside the lease is the run's"
    );
    assert_eq!(
        outcome.summary.source.requests, 4,
        "two groups, each read with its page"
    );
    assert_target_equals_directory(&target, Role::Internal);
}

/// Item 12 on Entra's side: a refused sign-in, asked for beside the lease (issue 13), fails the
/// run with the refusal's sentence after one token request, with no group read and nothing
/// changed.
#[sqlx::test(migrations = "./migrations")]
async fn item12_a_refused_entra_sign_in_fails_the_run_asked_once_with_nothing_read(pool: PgPool) {
    let (ctx, driver, target) = entra_world(pool).await;
    driver.emulator().edit(|d| {
        d.tenants[0].apps[0].secrets[0].value = "not the secret dirsync holds".into();
    });

    let refused = sync(&ctx).await;

    assert_eq!(refused.status, RunStatus::Failed);
    let message = refused.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("could not read Entra: ") && message.contains("AADSTS7000215"),
        "{message}"
    );
    let asked = driver.emulator().request_counts();
    assert_eq!(
        asked
            .iter()
            .map(|(kind, n)| (kind.as_str(), *n))
            .collect::<Vec<_>>(),
        [("entra.token", 1)],
        "one token request and nothing read"
    );
    assert!(target.with(|s| s.users.is_empty()), "nothing changed");
}
