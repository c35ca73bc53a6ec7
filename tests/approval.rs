//! R18: approving a held run — once, by a named person, only while it is the tenant's latest run
//! and recent — or rejecting it, through the store, the run engine and the HTTP API. The approved
//! run plans afresh and may deactivate up to the number that was approved; more is held again. A
//! rejected run applies nothing and can no longer be approved.

use std::sync::Arc;
use std::time::Duration;

mod support;

use dirsync::auth::settings::AuthSettings;
use dirsync::domain::{
    AccessRole, DeactivationStatus, EntraObjectId, Role, SecretEnvPolicy, TenantKey, UserStatus,
};
use dirsync::plan::{EntraUser, PlanCounts, SelectedGroup, TenantPolicy};
use dirsync::schedule::{SchedulerSettings, SystemClock};
use dirsync::service::{Service, start};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{
    Approval, ApprovalError, ApprovalRefused, PgStore, RejectionError, RejectionRefused, RunFinish,
    RunOptions, RunStart, RunStatus, RunSummary, Store, Trigger,
};
use dirsync::sync::{
    ApproveError, FixedConnector, RejectError, RunOutcome, SyncContext, SyncSettings,
    approve_held_run, reject_held_run, run_sync,
};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::auth;

const STAFF: u128 = 0x6900;
const PEOPLE: u128 = 8;

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn tenant(threshold: u32) -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: oid(STAFF),
                role: Role::Internal,
            }],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: threshold,
        },
        source: Default::default(),
        target: None,
    }
}

fn key() -> TenantKey {
    tenant(0).key
}

/// Eight people in Staff, synced, with a deletion threshold of 2.
struct Tenancy {
    store: Arc<PgStore>,
    source: MemorySource,
    target: MemoryTarget,
    ctx: SyncContext,
}

impl Tenancy {
    async fn synced(pool: PgPool) -> Self {
        let store = Arc::new(PgStore::new(pool));
        store.upsert_tenant(&tenant(2)).await.unwrap();
        let mut directory = MemoryDirectory::default();
        for n in 1..=PEOPLE {
            directory.users.insert(
                oid(n),
                EntraUser {
                    id: oid(n),
                    given_name: Some(format!("Person{n}")),
                    surname: Some("Doe".to_owned()),
                    mail: Some(format!("person{n}@contoso.com")),
                    account_enabled: Some(true),
                    ..EntraUser::default()
                },
            );
        }
        directory.groups.insert(
            oid(STAFF),
            ("Staff".to_owned(), (1..=PEOPLE).map(oid).collect()),
        );
        let source = MemorySource::new(directory);
        let target = MemoryTarget::new();
        let ctx = SyncContext {
            store: store.clone(),
            connector: Arc::new(FixedConnector {
                source: Arc::new(source.clone()),
                target: Arc::new(target.clone()),
            }),
            settings: SyncSettings::default(),
        };
        let tenancy = Self {
            store,
            source,
            target,
            ctx,
        };
        assert_eq!(tenancy.sync().await.status, RunStatus::Succeeded);
        tenancy
    }

    async fn sync(&self) -> RunOutcome {
        run_sync(
            &self.ctx,
            &key(),
            Trigger::automatic(),
            RunOptions::default(),
        )
        .await
        .unwrap()
    }

    /// Staff keeps only its first `n` people.
    fn keep(&self, n: u128) {
        self.source.edit(|d| {
            d.groups.get_mut(&oid(STAFF)).unwrap().1 = (1..=n).map(oid).collect();
        });
    }

    fn inactive(&self) -> usize {
        self.target.with(|s| {
            s.users
                .values()
                .filter(|u| u.status != UserStatus::Active)
                .count()
        })
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_an_approved_run_deactivates_up_to_what_was_approved_and_more_is_held_again(
    pool: PgPool,
) {
    let tenancy = Tenancy::synced(pool).await;
    tenancy.keep(4);
    let held = tenancy.sync().await;
    assert_eq!(held.status, RunStatus::Held);
    assert_eq!(held.summary.planned.users_deactivated, 4);

    // One more person leaves before the admin approves: the fresh plan wants five, not four.
    tenancy.keep(3);
    let again = approve_held_run(&tenancy.ctx, &key(), held.run_id, "Ada Admin")
        .await
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Held, "{again:?}");
    assert!(
        again.message.as_deref().unwrap().starts_with(
            "held again: the run would deactivate 5 users, more than the 4 that were approved"
        ),
        "{again:?}"
    );
    assert_eq!(tenancy.inactive(), 0, "a held run applies nothing");

    // The run held again is now the tenant's latest held run: approving it applies the five.
    let approved = approve_held_run(&tenancy.ctx, &key(), again.run_id, "Ada Admin")
        .await
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(approved.status, RunStatus::Succeeded, "{approved:?}");
    assert_eq!(approved.summary.applied.users_deactivated, 5);
    assert_eq!(tenancy.inactive(), 5);
    let record = tenancy.store.run(approved.run_id).await.unwrap().unwrap();
    assert_eq!(record.trigger, Trigger::manual("Ada Admin"));
    assert_eq!(
        record.options.approval,
        Some(Approval {
            held_run: again.run_id,
            deactivations: 5
        })
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_approving_over_http_starts_the_run_once_and_a_second_approval_is_a_409_with_the_reason(
    pool: PgPool,
) {
    let tenancy = Tenancy::synced(pool).await;
    tenancy.keep(4);
    let held = tenancy.sync().await;
    assert_eq!(held.status, RunStatus::Held);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(
        Service {
            ctx: tenancy.ctx.clone(),
            access: tenancy.store.clone(),
            auth: AuthSettings::default(),
            secrets: SecretEnvPolicy::default(),
            clock: Arc::new(SystemClock),
            scheduler: SchedulerSettings {
                enabled: false,
                ..SchedulerSettings::default()
            },
            shutdown_grace: Duration::from_secs(5),
            metrics_listener: None,
        },
        listener,
    )
    .unwrap();
    let mut finished = handle.runner.subscribe();
    let approve = format!(
        "http://{}/api/v1/tenants/acme/runs/{}/approve",
        handle.addr, held.run_id
    );
    // Two tenant admins of acme, signed in; the approver is who is signed in, never a name
    // the request gives.
    let admin = |n: u128, name: &'static str| {
        let store = tenancy.store.clone();
        let approve = approve.clone();
        async move {
            let person = auth::person(n);
            auth::grant(
                store.as_ref(),
                &person,
                AccessRole::TenantAdmin,
                Some("acme"),
            )
            .await;
            let session = auth::session(store.as_ref(), &person, name).await;
            reqwest::Client::new()
                .post(&approve)
                .header("cookie", session.cookie_header())
                .header("x-csrf-token", &session.csrf_token)
        }
    };

    let anonymous = reqwest::Client::new().post(&approve).send().await.unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "an approval is made by someone signed in"
    );
    let named = admin(1, "Ada Admin")
        .await
        .json(&json!({"by": "Somebody Else"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        named.status(),
        400,
        "the approver cannot be named by the request"
    );

    let accepted = admin(1, "Ada Admin").await.send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(
        accepted["run"]["trigger"]["by"],
        "Ada Admin (ada@contoso.com)"
    );
    assert_eq!(
        accepted["run"]["options"]["approval"],
        json!({"held_run": held.run_id, "deactivations": 4})
    );
    let done = tokio::time::timeout(Duration::from_secs(60), finished.recv())
        .await
        .expect("the approved run finishes")
        .unwrap();
    assert_eq!(done.outcome.unwrap().status, RunStatus::Succeeded);
    assert_eq!(tenancy.inactive(), 4);

    let twice = admin(2, "Bob Boss").await.send().await.unwrap();
    assert_eq!(twice.status(), 409);
    let refusal: Value = twice.json().await.unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("was already approved by Ada Admin (ada@contoso.com)")
            && message.ends_with("an approval is used once"),
        "{message}"
    );
    handle.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The store's decision
// ---------------------------------------------------------------------------------------------

async fn finished_run(store: &PgStore, status: RunStatus) -> i64 {
    let RunStart::Started(run) = store
        .begin_run(&key(), &Trigger::automatic(), RunOptions::default())
        .await
        .unwrap()
    else {
        panic!("no run in progress");
    };
    let finish = RunFinish {
        status,
        summary: RunSummary {
            planned: PlanCounts {
                users_deactivated: 600,
                ..PlanCounts::default()
            },
            ..RunSummary::default()
        },
        message: None,
    };
    run.finish(&finish, &[]).await.unwrap();
    run.run_id()
}

async fn store_with_tenant(pool: PgPool) -> PgStore {
    let store = PgStore::new(pool);
    store.upsert_tenant(&tenant(500)).await.unwrap();
    store
}

fn refusal(result: Result<impl std::fmt::Debug, ApprovalError>) -> ApprovalRefused {
    match result {
        Err(ApprovalError::Refused(refused)) => refused,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const DAY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[sqlx::test(migrations = "./migrations")]
async fn r18_concurrent_approvals_of_one_held_run_start_exactly_one_run(pool: PgPool) {
    let store = Arc::new(store_with_tenant(pool).await);
    let held = finished_run(&store, RunStatus::Held).await;

    let attempts: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .approve_held_run(&key(), held, &format!("admin {n}"), DAY)
                    .await
            })
        })
        .collect();
    let mut started = Vec::new();
    let mut refused = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(approved) => started.push(approved),
            Err(ApprovalError::Refused(reason)) => refused.push(reason),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(started.len(), 1, "{started:?} {refused:?}");
    assert_eq!(started[0].deactivations, 600);
    assert!(
        refused
            .iter()
            .all(|r| matches!(r, ApprovalRefused::AlreadyApproved { approving_run, .. } if *approving_run == started[0].run)),
        "{refused:?}"
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE approves = $1")
        .bind(held)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(runs, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_an_older_held_run_or_one_followed_by_a_newer_run_cannot_be_approved(pool: PgPool) {
    let store = store_with_tenant(pool).await;
    let older = finished_run(&store, RunStatus::Held).await;
    let newer = finished_run(&store, RunStatus::Held).await;
    let refused = refusal(store.approve_held_run(&key(), older, "Ada", DAY).await);
    assert_eq!(refused, ApprovalRefused::NewerHeldRun { run: older, newer });
    assert!(
        refused
            .to_string()
            .ends_with(&format!("approve run {newer} instead")),
        "{refused}"
    );

    let succeeded = finished_run(&store, RunStatus::Succeeded).await;
    let refused = refusal(store.approve_held_run(&key(), newer, "Ada", DAY).await);
    assert_eq!(
        refused,
        ApprovalRefused::Superseded {
            run: newer,
            newer: succeeded,
            newer_status: RunStatus::Succeeded
        }
    );
    assert!(refused.to_string().contains("is out of date"), "{refused}");
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_a_run_held_longer_ago_than_the_approval_window_cannot_be_approved(pool: PgPool) {
    let store = store_with_tenant(pool).await;
    let held = finished_run(&store, RunStatus::Held).await;
    sqlx::query("UPDATE runs SET finished_at = now() - interval '25 hours' WHERE id = $1")
        .bind(held)
        .execute(store.pool())
        .await
        .unwrap();
    let refused = refusal(store.approve_held_run(&key(), held, "Ada", DAY).await);
    assert!(
        matches!(refused, ApprovalRefused::Expired { run, window, .. } if run == held && window == DAY),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("more than 24 hours ago"),
        "{refused}"
    );
    // Within a longer window the same run is still approvable.
    let approved = store
        .approve_held_run(&key(), held, "Ada", chrono::TimeDelta::hours(48))
        .await
        .unwrap();
    assert_eq!(approved.deactivations, 600);
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_only_a_held_run_of_the_tenant_can_be_approved_and_only_by_a_named_person(
    pool: PgPool,
) {
    let store = store_with_tenant(pool).await;
    let succeeded = finished_run(&store, RunStatus::Succeeded).await;
    assert_eq!(
        refusal(store.approve_held_run(&key(), succeeded, "Ada", DAY).await),
        ApprovalRefused::NotHeld {
            run: succeeded,
            status: RunStatus::Succeeded
        }
    );
    let held = finished_run(&store, RunStatus::Held).await;
    assert_eq!(
        refusal(store.approve_held_run(&key(), held, "  ", DAY).await),
        ApprovalRefused::NoApprover
    );
    let other = TenantKey::parse("globex").unwrap();
    let mut globex = tenant(500);
    globex.key = other.clone();
    store.upsert_tenant(&globex).await.unwrap();
    assert_eq!(
        refusal(store.approve_held_run(&other, held, "Ada", DAY).await),
        ApprovalRefused::UnknownRun {
            tenant: other,
            run: held
        }
    );
    let refused = refusal(store.approve_held_run(&key(), held + 100, "Ada", DAY).await);
    assert!(matches!(refused, ApprovalRefused::UnknownRun { .. }));
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_the_engine_refuses_an_approval_without_a_name_before_touching_the_store(pool: PgPool) {
    let tenancy = Tenancy::synced(pool).await;
    tenancy.keep(4);
    let held = tenancy.sync().await;
    let refused = approve_held_run(&tenancy.ctx, &key(), held.run_id, "")
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(refused, ApproveError::Refused(ApprovalRefused::NoApprover)),
        "{refused}"
    );
    let approvals: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE approves IS NOT NULL")
        .fetch_one(tenancy.store.pool())
        .await
        .unwrap();
    assert_eq!(approvals, 0);
}

// ---------------------------------------------------------------------------------------------
// Rejecting a held run
// ---------------------------------------------------------------------------------------------

fn rejection_refusal(result: Result<impl std::fmt::Debug, RejectionError>) -> RejectionRefused {
    match result {
        Err(RejectionError::Refused(refused)) => refused,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_a_rejected_run_applies_nothing_can_no_longer_be_approved_and_the_next_run_is_held_again(
    pool: PgPool,
) {
    let tenancy = Tenancy::synced(pool).await;
    tenancy.keep(4);
    let held = tenancy.sync().await;
    assert_eq!(held.status, RunStatus::Held);

    let rejection = reject_held_run(
        &tenancy.ctx,
        &key(),
        held.run_id,
        "  Ada Admin ",
        Some(" a migration, not departures "),
    )
    .await
    .unwrap();
    assert_eq!(rejection.by, "Ada Admin");
    assert_eq!(
        rejection.reason.as_deref(),
        Some("a migration, not departures")
    );
    let run = tenancy.store.run(held.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Rejected);
    assert_eq!(
        tenancy.store.run_rejection(held.run_id).await.unwrap(),
        Some(rejection.clone())
    );
    assert_eq!(tenancy.inactive(), 0, "rejecting applies nothing");

    let refused = approve_held_run(&tenancy.ctx, &key(), held.run_id, "Bob Boss")
        .await
        .err()
        .expect("a rejected run cannot be approved");
    let ApproveError::Refused(refused) = refused else {
        panic!("{refused}")
    };
    assert_eq!(
        refused,
        ApprovalRefused::Rejected {
            run: held.run_id,
            rejection: rejection.clone()
        }
    );
    assert!(
        refused
            .to_string()
            .contains(&format!("run {} was rejected by Ada Admin at", held.run_id))
            && refused
                .to_string()
                .contains("a rejected run cannot be approved"),
        "{refused}"
    );
    let again = reject_held_run(&tenancy.ctx, &key(), held.run_id, "Bob Boss", None)
        .await
        .expect_err("rejected once");
    assert!(
        matches!(again, RejectError::Refused(RejectionRefused::AlreadyRejected { ref rejection, .. }) if rejection.by == "Ada Admin"),
        "{again}"
    );
    let approvals: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE approves IS NOT NULL")
        .fetch_one(tenancy.store.pool())
        .await
        .unwrap();
    assert_eq!(approvals, 0);

    // The directory still says four people left: the next run plans afresh and is held again,
    // and that run can be approved.
    let next = tenancy.sync().await;
    assert_eq!(next.status, RunStatus::Held);
    approve_held_run(&tenancy.ctx, &key(), next.run_id, "Bob Boss")
        .await
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(tenancy.inactive(), 4);
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_only_an_unapproved_held_run_of_the_tenant_can_be_rejected_by_a_named_person(
    pool: PgPool,
) {
    let store = store_with_tenant(pool).await;
    let succeeded = finished_run(&store, RunStatus::Succeeded).await;
    assert_eq!(
        rejection_refusal(store.reject_held_run(&key(), succeeded, "Ada", None).await),
        RejectionRefused::NotHeld {
            run: succeeded,
            status: RunStatus::Succeeded
        }
    );
    let held = finished_run(&store, RunStatus::Held).await;
    assert_eq!(
        rejection_refusal(store.reject_held_run(&key(), held, " ", None).await),
        RejectionRefused::NoRejecter
    );
    assert_eq!(
        rejection_refusal(
            store
                .reject_held_run(&key(), held, "Ada", Some(&"x".repeat(501)))
                .await
        ),
        RejectionRefused::ReasonTooLong
    );
    let other = TenantKey::parse("globex").unwrap();
    let mut globex = tenant(500);
    globex.key = other.clone();
    store.upsert_tenant(&globex).await.unwrap();
    assert_eq!(
        rejection_refusal(store.reject_held_run(&other, held, "Ada", None).await),
        RejectionRefused::UnknownRun {
            tenant: other,
            run: held
        }
    );

    let approved = store
        .approve_held_run(&key(), held, "Ada", DAY)
        .await
        .unwrap();
    let refused = rejection_refusal(store.reject_held_run(&key(), held, "Bob", None).await);
    assert!(
        matches!(refused, RejectionRefused::AlreadyApproved { approving_run, .. } if approving_run == approved.run),
        "{refused:?}"
    );
    assert_eq!(
        store.run(held).await.unwrap().unwrap().status,
        RunStatus::Held
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_an_approval_and_a_rejection_of_one_held_run_at_once_one_wins_and_the_other_is_refused(
    pool: PgPool,
) {
    let store = Arc::new(store_with_tenant(pool).await);
    for _ in 0..4 {
        let held = finished_run(&store, RunStatus::Held).await;
        let approve = {
            let store = store.clone();
            tokio::spawn(async move { store.approve_held_run(&key(), held, "Ada", DAY).await })
        };
        let reject = {
            let store = store.clone();
            tokio::spawn(async move { store.reject_held_run(&key(), held, "Bob", None).await })
        };
        let (approved, rejected) = (approve.await.unwrap(), reject.await.unwrap());
        let status = store.run(held).await.unwrap().unwrap().status;
        match (approved, rejected) {
            (
                Ok(approved),
                Err(RejectionError::Refused(RejectionRefused::AlreadyApproved { .. })),
            ) => {
                assert_eq!(status, RunStatus::Held);
                // Let the approving run end so the next held run is the tenant's latest.
                store
                    .finish_run(
                        approved.run,
                        &RunFinish {
                            status: RunStatus::Succeeded,
                            summary: RunSummary::default(),
                            message: None,
                        },
                    )
                    .await
                    .unwrap();
            }
            (Err(ApprovalError::Refused(ApprovalRefused::Rejected { .. })), Ok(rejection)) => {
                assert_eq!(status, RunStatus::Rejected);
                assert_eq!(rejection.by, "Bob");
            }
            (approved, rejected) => panic!("{approved:?} {rejected:?}"),
        }
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn r18_rejecting_over_http_takes_the_name_from_the_sign_in_is_audited_and_approval_is_refused_after(
    pool: PgPool,
) {
    let tenancy = Tenancy::synced(pool).await;
    tenancy.keep(4);
    let held = tenancy.sync().await;
    assert_eq!(held.status, RunStatus::Held);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(
        Service {
            ctx: tenancy.ctx.clone(),
            access: tenancy.store.clone(),
            auth: AuthSettings::default(),
            secrets: SecretEnvPolicy::default(),
            clock: Arc::new(SystemClock),
            scheduler: SchedulerSettings {
                enabled: false,
                ..SchedulerSettings::default()
            },
            shutdown_grace: Duration::from_secs(5),
            metrics_listener: None,
        },
        listener,
    )
    .unwrap();
    let base = format!(
        "http://{}/api/v1/tenants/acme/runs/{}",
        handle.addr, held.run_id
    );
    let person = auth::person(1);
    auth::grant(
        tenancy.store.as_ref(),
        &person,
        AccessRole::TenantAdmin,
        Some("acme"),
    )
    .await;
    let session = auth::session(tenancy.store.as_ref(), &person, "Ada Admin").await;
    let post = |path: &str| {
        reqwest::Client::new()
            .post(format!("{base}/{path}"))
            .header("cookie", session.cookie_header())
            .header("x-csrf-token", &session.csrf_token)
    };

    let named = post("reject")
        .json(&json!({"by": "Somebody Else"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        named.status(),
        400,
        "the rejecter cannot be named by the request"
    );
    let rejected = post("reject")
        .json(&json!({"reason": "expected: a migration"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 200);
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["run"]["status"], "rejected");
    assert_eq!(rejected["rejection"]["by"], "Ada Admin (ada@contoso.com)");
    assert_eq!(rejected["rejection"]["reason"], "expected: a migration");

    let approve = post("approve").send().await.unwrap();
    assert_eq!(approve.status(), 409);
    let refusal: Value = approve.json().await.unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("was rejected by Ada Admin (ada@contoso.com)"),
        "{message}"
    );
    let twice = post("reject").send().await.unwrap();
    assert_eq!(twice.status(), 409);

    let audited: Vec<(String, Value)> =
        sqlx::query_as("SELECT actor, detail FROM audit_events WHERE action = 'run_reject'")
            .fetch_all(tenancy.store.pool())
            .await
            .unwrap();
    assert_eq!(
        audited,
        vec![(
            "Ada Admin (ada@contoso.com)".to_owned(),
            json!({"rejected_run": held.run_id, "reason": "expected: a migration"})
        )]
    );
    assert_eq!(tenancy.inactive(), 0);
    handle.stop().await.unwrap();
}
