//! `dirsync serve` as a whole: the HTTP API against the Entra and HighQ emulators, two replicas
//! at a simulated midnight, a killed run, and a graceful shutdown.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

mod support;

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, Utc};
use dirsync::auth::settings::AuthSettings;
use dirsync::domain::{
    AccessRole, DeactivationStatus, EntraObjectId, Role, SecretEnvPolicy, TenantKey,
};
use dirsync::emulator::entra::{AppRegistration, Directory, EntraEmulator, Group, TenantDirectory};
use dirsync::emulator::highq::{HighQEmulator, HighQSeed};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::schedule::{Clock, SchedulerSettings};
use dirsync::service::{Service, ServiceHandle, start};
use dirsync::source::graph::{CredentialSettings, GraphConnector, GraphSettings};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::source::{DirectorySource, GroupCount, SourceError, SourceFetch, UserPresence};
use dirsync::store::{
    AccessStore, PgStore, RunFilter, RunOptions, RunStatus, Store, Trigger, TriggerKind,
};
use dirsync::sync::Finished;
use dirsync::sync::{
    FixedConnector, RunStartOutcome, SyncContext, SyncSettings, run_sync, start_run,
};
use dirsync::target::TargetAdapter;
use dirsync::target::highq::{HighQAdapter, MemoryTokenStore};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::auth;
use support::counting::CountingTarget;
use tokio::sync::{broadcast, watch};

const ENTRA_TENANT: &str = "6babcaad-604b-40ac-a9d7-9fd97c0b779f";
const APP: &str = "a1b2c3d4-0000-4000-8000-00000000c11e";
const SECRET: &str = "emulator-secret-value";

fn guid(kind: u32, n: u32) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

fn oid(text: &str) -> EntraObjectId {
    EntraObjectId::parse(text).unwrap()
}

/// A source whose reads wait until the test opens the gate: a run stays "in progress" for as
/// long as the test needs, without timing assumptions.
struct GatedSource {
    inner: Arc<dyn DirectorySource>,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl DirectorySource for GatedSource {
    async fn fetch_groups(&self, groups: &[EntraObjectId]) -> Result<SourceFetch, SourceError> {
        let _ = self.open.clone().wait_for(|open| *open).await;
        self.inner.fetch_groups(groups).await
    }
    async fn count_members(
        &self,
        groups: &[EntraObjectId],
    ) -> Result<Vec<GroupCount>, SourceError> {
        self.inner.count_members(groups).await
    }
    async fn user_presence(&self, user: &EntraObjectId) -> Result<UserPresence, SourceError> {
        self.inner.user_presence(user).await
    }
}

fn tenant(
    key: &str,
    entra_tenant: &str,
    groups: Vec<SelectedGroup>,
    zone: chrono_tz::Tz,
) -> Tenant {
    Tenant {
        key: TenantKey::parse(key).unwrap(),
        display_name: format!("{key} LLP"),
        entra_tenant_id: oid(entra_tenant),
        time_zone: zone,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups: groups,
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

struct FixedClock(Mutex<chrono::Duration>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap()
    }
}

fn tcp_listener() -> tokio::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(listener).unwrap()
}

fn service(
    ctx: SyncContext,
    access: Arc<dyn AccessStore>,
    clock: Arc<dyn Clock>,
    scheduler: SchedulerSettings,
    metrics_listener: Option<tokio::net::TcpListener>,
) -> ServiceHandle {
    start(
        Service {
            ctx,
            access,
            auth: AuthSettings::default(),
            secrets: SecretEnvPolicy::default(),
            clock,
            scheduler,
            shutdown_grace: Duration::from_secs(5),
            metrics_listener,
        },
        tcp_listener(),
    )
    .unwrap()
}

/// An HTTP client signed in as Alice, tenant admin of acme: her session cookie and CSRF token
/// go with every request.
async fn alice(store: &PgStore) -> reqwest::Client {
    let alice = auth::person(0xa11ce);
    auth::grant(store, &alice, AccessRole::TenantAdmin, Some("acme")).await;
    let session = auth::session(store, &alice, "Alice Example").await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        session.cookie_header().parse().unwrap(),
    );
    headers.insert("x-csrf-token", session.csrf_token.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

fn no_scheduler() -> SchedulerSettings {
    SchedulerSettings {
        enabled: false,
        ..SchedulerSettings::default()
    }
}

async fn next_finished(events: &mut broadcast::Receiver<Finished>) -> Finished {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("a run finishes within a minute")
        .expect("the runner is alive")
}

#[sqlx::test(migrations = "./migrations")]
async fn force_sync_returns_the_run_in_progress_and_its_report_matches_the_directory(pool: PgPool) {
    // Entra: 30 users in two groups (5 in both); one name starts with "=".
    let mut directory = TenantDirectory::new(ENTRA_TENANT);
    directory.apps.push(AppRegistration::consented(APP, SECRET));
    for n in 0..30u32 {
        let given = if n == 7 {
            "=1+2".to_owned()
        } else {
            format!("User{n}")
        };
        directory.put_user(json!({
            "id": guid(0x5e50, n), "displayName": format!("{given} Doe"), "givenName": given,
            "surname": "Doe", "mail": format!("user{n}@contoso.com"),
            "userPrincipalName": format!("user{n}@contoso.com"), "businessPhones": ["+1 425 555 0109"],
            "jobTitle": "Analyst", "accountEnabled": true,
        }));
    }
    directory.groups = vec![
        Group {
            id: guid(0x6900, 1),
            display_name: "Partners".to_owned(),
            members: (0..20).map(|n| guid(0x5e50, n)).collect(),
        },
        Group {
            id: guid(0x6900, 2),
            display_name: "Clients".to_owned(),
            members: (15..30).map(|n| guid(0x5e50, n)).collect(),
        },
    ];
    let entra = EntraEmulator::start(Directory {
        tenants: vec![directory],
    })
    .await
    .unwrap();
    let mut settings = GraphSettings::new(
        APP,
        CredentialSettings::ClientSecret {
            client_secret: SECRET.to_owned().into(),
        },
    );
    settings.graph_base_url = entra.base_url().parse().unwrap();
    settings.authority_host = entra.base_url().parse().unwrap();
    settings.extra_root_certificates_pem = vec![entra.ca_pem().to_owned()];
    let acme = tenant(
        "acme",
        ENTRA_TENANT,
        vec![
            SelectedGroup {
                entra_id: oid(&guid(0x6900, 1)),
                role: Role::Internal,
            },
            SelectedGroup {
                entra_id: oid(&guid(0x6900, 2)),
                role: Role::Basic,
            },
        ],
        chrono_tz::Europe::London,
    );
    let graph = GraphConnector::new(settings)
        .unwrap()
        .source_for(&acme)
        .unwrap();
    let highq = HighQEmulator::start(HighQSeed::default()).await.unwrap();
    let tokens = MemoryTokenStore::new(Some(SecretString::from(highq.refresh_token())));
    let target = HighQAdapter::new(
        serde_json::from_value(json!({
            "base_url": highq.base_url(), "client_id": highq.client_id(),
            "client_secret": highq.client_secret(),
        }))
        .unwrap(),
        Arc::new(tokens),
    )
    .unwrap();
    let (gate, open) = watch::channel(false);
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&acme).await.unwrap();
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(GatedSource {
                inner: Arc::new(graph),
                open,
            }),
            target: Arc::new(target) as Arc<dyn TargetAdapter>,
        }),
        settings: SyncSettings::default(),
    };
    let metrics_listener = tcp_listener();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let handle = service(
        ctx,
        store.clone(),
        Arc::new(FixedClock(Mutex::new(chrono::Duration::zero()))),
        no_scheduler(),
        Some(metrics_listener),
    );
    let base = format!("http://{}", handle.addr);
    let http = alice(&store).await;
    let mut finished = handle.runner.subscribe();

    // Force: 202 with the run, forced by the signed-in person. Force again while it runs: 200
    // with the same run.
    let first = http
        .post(format!("{base}/api/v1/tenants/acme/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let run_id = first["run"]["id"].as_i64().unwrap();
    assert_eq!(first["run"]["status"], "running");
    assert_eq!(
        first["run"]["trigger"]["by"],
        "Alice Example (alice@contoso.com)"
    );
    let again = http
        .post(format!("{base}/api/v1/tenants/acme/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (
            again["run"]["id"].as_i64(),
            again["already_running"].as_bool()
        ),
        (Some(run_id), Some(true))
    );
    let progress: Value = http
        .get(format!("{base}/api/v1/tenants/acme/runs/{run_id}/progress"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (progress["status"].as_str(), progress["stage"].as_str()),
        (Some("running"), Some("reading Entra"))
    );

    gate.send(true).unwrap();
    let done = next_finished(&mut finished).await;
    assert_eq!(done.outcome.unwrap().status, RunStatus::Succeeded);

    let progress: Value = http
        .get(format!("{base}/api/v1/tenants/acme/runs/{run_id}/progress"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress["status"], "succeeded");
    assert!(progress["total"].as_i64().unwrap() > 0);
    assert_eq!(
        progress["done"], progress["total"],
        "progress reached the end: {progress}"
    );

    // The report matches the directory: both groups with their member counts, 30 users created,
    // 20 + 10 memberships (the five in both groups are internal, so only in Partners: R14).
    let detail: Value = http
        .get(format!("{base}/api/v1/tenants/acme/runs/{run_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups: Vec<(String, i64, String)> = detail["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_owned(),
                g["members_seen"].as_i64().unwrap(),
                g["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("Partners".to_owned(), 20, "found".to_owned()),
            ("Clients".to_owned(), 15, "found".to_owned())
        ]
    );
    let labels: Vec<&str> = detail["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        vec![
            "Partners [Synced Group]",
            "Clients [Synced basic user group]"
        ]
    );
    assert_eq!(detail["applied"]["users_created"], 30);
    assert!(
        detail["planned"].is_null(),
        "everything planned was applied: {detail}"
    );
    let planned = &detail["run"]["summary"]["planned"];
    assert_eq!(
        (
            planned["users_created"].as_i64(),
            planned["memberships_added"].as_i64()
        ),
        (Some(30), Some(30))
    );
    let created: Value = http
        .get(format!(
            "{base}/api/v1/tenants/acme/runs/{run_id}/entries?subject=user&limit=1000"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created_emails: std::collections::BTreeSet<&str> = created["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "created")
        .map(|e| e["email"].as_str().unwrap())
        .collect();
    assert_eq!(created_emails.len(), 30);
    assert_eq!(
        highq.users().len(),
        30,
        "the HighQ emulator holds the 30 users"
    );

    // The .xlsx: four sheets, the right rows, and the "=" name is text, not a formula.
    let xlsx = http
        .get(format!(
            "{base}/api/v1/tenants/acme/runs/{run_id}/report.xlsx"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(xlsx.status(), 200);
    assert!(
        xlsx.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".xlsx")
    );
    let bytes = xlsx.bytes().await.unwrap();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(
        book.sheet_names(),
        vec!["Summary", "Groups", "Users", "Errors"]
    );
    let groups_sheet = book.worksheet_range("Groups").unwrap();
    assert_eq!(groups_sheet.height(), 3, "a header and two groups");
    let users = book.worksheet_range("Users").unwrap();
    let user_rows = created["total"].as_u64().unwrap() as usize;
    assert_eq!(users.height(), 1 + user_rows);
    assert!(
        users
            .rows()
            .any(|row| row.contains(&Data::String("=1+2 Doe".to_owned())))
    );
    assert!(
        book.worksheet_formula("Users")
            .unwrap()
            .used_cells()
            .next()
            .is_none()
    );

    // Operational endpoints and errors.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let missing = http
        .get(format!("{base}/api/v1/tenants/nobody/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let approve = http
        .post(format!("{base}/api/v1/tenants/acme/runs/{run_id}/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 409, "only a held run can be approved");
    let refusal = approve.json::<Value>().await.unwrap();
    assert_eq!(refusal["error"]["code"], "conflict");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("not held: only a held run can be approved"),
        "{refusal}"
    );
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "metrics are not served on the API's port"
    );
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("dirsync_runs_total"), "{metrics}");
    handle.stop().await.unwrap();
}

fn memory_tenants(count: u32) -> (MemoryDirectory, Vec<Tenant>) {
    let zones = [
        chrono_tz::Europe::London,
        chrono_tz::America::Sao_Paulo,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Pacific::Chatham,
        chrono_tz::America::Havana,
    ];
    let mut directory = MemoryDirectory::default();
    let mut tenants = Vec::new();
    for t in 0..count {
        let group = oid(&guid(0x6900, 1000 + t));
        let members: Vec<EntraObjectId> = (0..3)
            .map(|u| {
                let id = oid(&guid(0x5e50, t * 10 + u));
                directory.users.insert(
                    id.clone(),
                    EntraUser {
                        id: id.clone(),
                        given_name: Some(format!("T{t}")),
                        surname: Some(format!("U{u}")),
                        mail: Some(format!("t{t}u{u}@contoso.com")),
                        account_enabled: Some(true),
                        ..EntraUser::default()
                    },
                );
                id
            })
            .collect();
        directory
            .groups
            .insert(group.clone(), (format!("Group {t}"), members));
        tenants.push(tenant(
            &format!("tenant-{t}"),
            &guid(0xac3e, t),
            vec![SelectedGroup {
                entra_id: group,
                role: Role::Internal,
            }],
            zones[t as usize % zones.len()],
        ));
    }
    (directory, tenants)
}

#[sqlx::test(migrations = "./migrations")]
async fn r20_two_replicas_at_a_simulated_midnight_run_each_of_20_tenants_exactly_once(
    pool: PgPool,
) {
    let (directory, tenants) = memory_tenants(20);
    let store = Arc::new(PgStore::new(pool));
    for tenant in &tenants {
        store.upsert_tenant(tenant).await.unwrap();
    }
    let clock = Arc::new(FixedClock(Mutex::new(chrono::Duration::zero())));
    let connector = Arc::new(FixedConnector {
        source: Arc::new(MemorySource::new(directory)),
        target: Arc::new(MemoryTarget::new()),
    });
    let scheduler = SchedulerSettings {
        enabled: true,
        poll_interval: Duration::from_millis(20),
        purge_interval: Duration::from_secs(3600),
    };
    let replicas: Vec<ServiceHandle> = (0..2)
        .map(|_| {
            let ctx = SyncContext {
                store: store.clone(),
                connector: connector.clone(),
                settings: SyncSettings::default(),
            };
            service(ctx, store.clone(), clock.clone(), scheduler, None)
        })
        .collect();
    let mut events: Vec<_> = replicas.iter().map(|r| r.runner.subscribe()).collect();

    // Both replicas tick with nothing due: the tenants were created after their last midnight.
    for replica in &replicas {
        let mut ticks = replica.ticks.clone();
        let seen = *ticks.borrow_and_update();
        ticks.wait_for(|n| *n >= seen + 2).await.unwrap();
    }
    assert!(
        store
            .find_runs(
                &tenants[0].key,
                &RunFilter {
                    limit: 10,
                    ..RunFilter::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );

    // A day passes: every tenant's midnight is now due, on both replicas at once.
    *clock.0.lock().unwrap() = chrono::Duration::hours(25);
    let mut finished = 0;
    while finished < 20 {
        let (a, b) = events.split_at_mut(1);
        let event = tokio::select! {
            e = next_finished(&mut a[0]) => e,
            e = next_finished(&mut b[0]) => e,
        };
        assert_eq!(event.outcome.unwrap().status, RunStatus::Succeeded);
        finished += 1;
    }
    // Let both replicas make a few more passes: nothing more may start.
    for replica in &replicas {
        let mut ticks = replica.ticks.clone();
        let seen = *ticks.borrow_and_update();
        ticks.wait_for(|n| *n >= seen + 3).await.unwrap();
    }
    for tenant in &tenants {
        let runs = store
            .find_runs(
                &tenant.key,
                &RunFilter {
                    limit: 10,
                    ..RunFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            runs.len(),
            1,
            "tenant {} ran {} times",
            tenant.key,
            runs.len()
        );
        assert_eq!(runs[0].trigger.kind, TriggerKind::Automatic);
    }
    for replica in replicas {
        replica.stop().await.unwrap();
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn a_run_killed_midway_does_not_block_the_next_and_its_partial_report_stays_readable(
    pool: PgPool,
) {
    let (directory, tenants) = memory_tenants(1);
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenants[0]).await.unwrap();
    let key = tenants[0].key.clone();
    let stalling = Arc::new(CountingTarget::new(Arc::new(MemoryTarget::new())).stalling_after(2));
    let settings = SyncSettings {
        flush_every: 1,
        target_concurrency: 1,
        heartbeat_every: Duration::from_secs(3600),
        ..SyncSettings::default()
    };
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory)),
            target: stalling.clone(),
        }),
        settings,
    };

    // The run creates the group and a user, then stalls; the task running it is killed.
    let RunStartOutcome::Started(pending) =
        start_run(&ctx, &key, Trigger::manual("test"), RunOptions::default())
            .await
            .unwrap()
    else {
        panic!("a run should start");
    };
    let killed = pending.id();
    let stalled = stalling.stalled();
    let task = tokio::spawn(pending.execute());
    stalled.await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        store.run(killed).await.unwrap().unwrap().status,
        RunStatus::Running
    );

    // The next run is not blocked: the dead one's lease died with it (no waiting for a
    // heartbeat to go stale), and it is closed as interrupted first.
    stalling.release();
    let next = run_sync(&ctx, &key, Trigger::manual("test"), RunOptions::default())
        .await
        .unwrap();
    assert!(!next.already_running);
    assert_eq!(next.status, RunStatus::Succeeded);

    let interrupted = store.run(killed).await.unwrap().unwrap();
    assert_eq!(interrupted.status, RunStatus::Interrupted);
    assert!(
        interrupted
            .message
            .as_deref()
            .unwrap()
            .starts_with("interrupted"),
        "{interrupted:?}"
    );
    let entries = store.run_entries(killed).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"group created"),
        "what it did before dying is in its report: {actions:?}"
    );
    assert_eq!(actions.last(), Some(&"interrupted"));
}

#[sqlx::test(migrations = "./migrations")]
async fn a_shutdown_records_the_run_in_progress_as_interrupted(pool: PgPool) {
    let (directory, tenants) = memory_tenants(1);
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenants[0]).await.unwrap();
    let (_gate, open) = watch::channel(false);
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(GatedSource {
                inner: Arc::new(MemorySource::new(directory)),
                open,
            }),
            target: Arc::new(MemoryTarget::new()),
        }),
        settings: SyncSettings::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(
        Service {
            ctx,
            access: store.clone(),
            auth: AuthSettings::default(),
            secrets: SecretEnvPolicy::default(),
            clock: Arc::new(FixedClock(Mutex::new(chrono::Duration::zero()))),
            scheduler: no_scheduler(),
            shutdown_grace: Duration::ZERO,
            metrics_listener: None,
        },
        listener,
    )
    .unwrap();
    let launched = handle
        .runner
        .launch(
            &tenants[0].key,
            Trigger::manual("test"),
            RunOptions::default(),
        )
        .await
        .unwrap();
    handle.stop().await.unwrap();
    let run = store.run(launched.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(run.message.unwrap().contains("the service shut down"));
}

/// Issue 10 item 3: midnight for many tenants queues behind `sync.max_runs_in_flight` instead of
/// opening every run (and its database connection) at once.
#[sqlx::test(migrations = "./migrations")]
async fn a_replica_carries_out_at_most_max_runs_in_flight_and_queues_the_rest(pool: PgPool) {
    use futures::FutureExt;
    let (directory, tenants) = memory_tenants(3);
    let store = Arc::new(PgStore::new(pool));
    for tenant in &tenants {
        store.upsert_tenant(tenant).await.unwrap();
    }
    let stalling = Arc::new(CountingTarget::new(Arc::new(MemoryTarget::new())).stalling_after(0));
    let runner = dirsync::sync::Runner::new(SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory)),
            target: stalling.clone(),
        }),
        settings: SyncSettings {
            max_runs_in_flight: 2,
            deletion_confirm_delay: Duration::ZERO,
            ..SyncSettings::default()
        },
    });
    let mut finished = runner.subscribe();
    for tenant in &tenants[..2] {
        let launched = runner
            .launch(&tenant.key, Trigger::automatic(), RunOptions::default())
            .await
            .unwrap();
        assert!(!launched.already_running);
    }
    assert_eq!(runner.free_slots(), 0);

    // The third waits for a slot: nothing of it is begun while two runs are in flight.
    let third_key = tenants[2].key.clone();
    let mut third =
        Box::pin(runner.launch(&third_key, Trigger::automatic(), RunOptions::default()));
    assert!((&mut third).now_or_never().is_none());
    assert!(store.runs(&third_key, 10).await.unwrap().is_empty());

    stalling.release();
    finished.recv().await.unwrap();
    let launched = third.await.unwrap();
    assert!(!launched.already_running);
    finished.recv().await.unwrap();
    finished.recv().await.unwrap();
    assert_eq!(runner.free_slots(), 2);
}
