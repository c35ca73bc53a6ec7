//! The scheduler loop's decisions against the real store (R19 retention, R20 schedule): tenants
//! added or changed while it runs, midnights missed while down, and the report purge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dirsync::domain::{DeactivationStatus, EntraObjectId, Role, TenantKey};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::schedule::{Clock, Scheduler, SchedulerSettings, next_midnight};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::access::{
    AccessStore, AuditEvent, AuditFilter, AuditOutcome, EntraIdentity, SecretHash, SessionRecord,
};
use dirsync::store::{PgStore, RunFilter, RunStatus, Store, TriggerKind};
use dirsync::sync::{Finished, Runner};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use sqlx::PgPool;
use tokio::sync::broadcast;

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

fn group() -> EntraObjectId {
    uuid::Uuid::from_u128(0x6900).into()
}

fn tenant(zone: chrono_tz::Tz, retention: Retention) -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: uuid::Uuid::from_u128(0xac3e).into(),
        time_zone: zone,
        report_retention: retention,
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

struct Harness {
    store: Arc<PgStore>,
    clock: Arc<TestClock>,
    scheduler: Scheduler,
    finished: broadcast::Receiver<Finished>,
}

async fn harness(pool: PgPool, tenant: &Tenant) -> Harness {
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
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(tenant).await.unwrap();
    let runner = Runner::new(SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory)),
            target: Arc::new(MemoryTarget::new()),
        }),
        settings: SyncSettings::default(),
    });
    let finished = runner.subscribe();
    let clock = Arc::new(TestClock(Mutex::new(chrono::Duration::zero())));
    let scheduler = Scheduler::new(runner, clock.clone(), SchedulerSettings::default())
        .with_access(store.clone(), chrono::Duration::minutes(30));
    Harness {
        store,
        clock,
        scheduler,
        finished,
    }
}

impl Harness {
    async fn automatic_runs(&self) -> usize {
        self.store
            .find_runs(
                &TenantKey::parse("acme").unwrap(),
                &RunFilter {
                    trigger: Some(TriggerKind::Automatic),
                    limit: 100,
                    ..RunFilter::default()
                },
            )
            .await
            .unwrap()
            .len()
    }

    async fn wait_for_run(&mut self) -> RunStatus {
        let event = tokio::time::timeout(Duration::from_secs(30), self.finished.recv())
            .await
            .unwrap()
            .unwrap();
        event.outcome.unwrap().status
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn r20_a_new_tenant_waits_for_its_first_midnight_then_runs_once(pool: PgPool) {
    let zone = chrono_tz::Asia::Kolkata;
    let mut h = harness(pool, &tenant(zone, Retention::ThreeMonths)).await;
    assert!(
        h.scheduler.tick().await.unwrap().started.is_empty(),
        "no run for a midnight before the tenant existed"
    );

    let midnight = next_midnight(zone, Utc::now());
    h.clock.set(midnight - chrono::Duration::seconds(1));
    assert!(
        h.scheduler.tick().await.unwrap().started.is_empty(),
        "one second before midnight"
    );
    h.clock.set(midnight + chrono::Duration::seconds(1));
    assert_eq!(h.scheduler.tick().await.unwrap().started.len(), 1);
    assert_eq!(h.wait_for_run().await, RunStatus::Succeeded);
    assert!(
        h.scheduler.tick().await.unwrap().started.is_empty(),
        "each midnight once"
    );
    assert_eq!(h.automatic_runs().await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn r20_midnights_missed_while_the_service_was_down_run_once_when_it_comes_back(pool: PgPool) {
    let zone = chrono_tz::Europe::London;
    let mut h = harness(pool, &tenant(zone, Retention::ThreeMonths)).await;
    // The service comes back three and a half days later.
    h.clock.set(Utc::now() + chrono::Duration::hours(84));
    assert_eq!(h.scheduler.tick().await.unwrap().started.len(), 1);
    h.wait_for_run().await;
    assert!(h.scheduler.tick().await.unwrap().started.is_empty());
    assert_eq!(h.automatic_runs().await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn r20_a_tenant_whose_zone_changes_runs_at_the_new_zones_midnight(pool: PgPool) {
    // Two zones whose next midnights are hours apart, whatever the time the test runs.
    let now = Utc::now();
    let zones = [
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Europe::London,
        chrono_tz::America::New_York,
        chrono_tz::Pacific::Honolulu,
    ];
    let mut by_midnight: Vec<(DateTime<Utc>, chrono_tz::Tz)> =
        zones.iter().map(|z| (next_midnight(*z, now), *z)).collect();
    by_midnight.sort_by_key(|(midnight, _)| *midnight);
    let (sooner, early_zone) = by_midnight[0];
    let (later, late_zone) = by_midnight[by_midnight.len() - 1];
    assert!(later - sooner >= chrono::Duration::hours(2));

    let mut h = harness(pool.clone(), &tenant(late_zone, Retention::ThreeMonths)).await;
    h.clock.set(sooner + chrono::Duration::minutes(30));
    assert!(
        h.scheduler.tick().await.unwrap().started.is_empty(),
        "not yet midnight in {late_zone}"
    );

    h.store
        .upsert_tenant(&tenant(early_zone, Retention::ThreeMonths))
        .await
        .unwrap();
    assert_eq!(
        h.scheduler.tick().await.unwrap().started.len(),
        1,
        "midnight has passed in {early_zone}"
    );
    h.wait_for_run().await;
    assert_eq!(h.automatic_runs().await, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn r19_reports_older_than_the_tenants_retention_are_purged(pool: PgPool) {
    let mut h = harness(pool, &tenant(chrono_tz::UTC, Retention::OneMonth)).await;
    h.clock.set(Utc::now() + chrono::Duration::days(1));
    h.scheduler.tick().await.unwrap();
    h.wait_for_run().await;
    assert_eq!(h.automatic_runs().await, 1);

    h.clock.set(Utc::now() + chrono::Duration::days(20));
    assert_eq!(
        h.scheduler.purge().await.unwrap(),
        0,
        "twenty days is within one month"
    );
    h.clock.set(Utc::now() + chrono::Duration::days(33));
    assert_eq!(h.scheduler.purge().await.unwrap(), 1);
    assert_eq!(h.automatic_runs().await, 0);
}

#[sqlx::test(migrations = "./migrations")]
async fn audit_events_past_their_retention_and_ended_sessions_are_purged_beside_the_reports(
    pool: PgPool,
) {
    let h = harness(pool, &tenant(chrono_tz::UTC, Retention::OneMonth)).await;
    let now = Utc::now();
    let event = |days_ago: i64, tenant: Option<&str>, action: &str| AuditEvent {
        at: now - chrono::Duration::days(days_ago),
        tenant: tenant.map(|t| TenantKey::parse(t).unwrap()),
        actor: "Ada".to_owned(),
        actor_id: None,
        action: action.to_owned(),
        outcome: AuditOutcome::Ok,
        detail: serde_json::json!({}),
        source_ip: None,
        forwarded_for: None,
        user_agent: None,
    };
    for e in [
        event(40, Some("acme"), "report_download"),
        event(40, Some("acme"), "tenant_update"),
        event(400, None, "sign_in"),
    ] {
        h.store.record_audit(&e).await.unwrap();
    }
    let session = |n: u8, created: chrono::DateTime<Utc>| SessionRecord {
        id_hash: SecretHash([n; 32]),
        identity: EntraIdentity {
            tenant_id: group(),
            object_id: group(),
        },
        name: "Ada".to_owned(),
        username: None,
        app_roles: vec![],
        csrf_token: "t".to_owned(),
        created_at: created,
        last_seen_at: created,
        expires_at: created + chrono::Duration::hours(12),
    };
    h.store.create_session(&session(1, now)).await.unwrap();
    h.store
        .create_session(&session(2, now - chrono::Duration::hours(2)))
        .await
        .unwrap();

    h.scheduler.purge().await.unwrap();

    let left: Vec<String> = h
        .store
        .audit_events(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.action)
        .collect();
    assert_eq!(
        left,
        vec!["tenant_update"],
        "a month for the report download, a year for the rest"
    );
    let idle = chrono::Duration::minutes(30);
    assert!(
        h.store
            .session(&SecretHash([1; 32]), now, idle)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        h.store.purge_expired_sessions(now, idle).await.unwrap(),
        0,
        "the idle session was purged already"
    );
}
