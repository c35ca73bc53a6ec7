//! The console's pages over plain HTTP, where a browser is not needed: the live-progress event
//! stream follows a run from its first heartbeat to its end; a 100,000-line report is searched
//! and paged in SQL (the figures are printed, not asserted); the store's person look-up and its
//! in-memory default agree; the assets are served with long cache lifetimes; the audit log states
//! its times in UTC with the offset, and a tenant's event also in the tenant's zone.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dirsync::auth::settings::AuthSettings;
use dirsync::domain::{
    AccessRole, DeactivationStatus, EntraObjectId, Role, SecretEnvPolicy, TenantKey,
};
use dirsync::plan::{SelectedGroup, Severity, TenantPolicy};
use dirsync::schedule::{SchedulerSettings, SystemClock};
use dirsync::service::{Service, ServiceHandle, start};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{
    EntryQuery, PgStore, ReportEntry, RunFinish, RunId, RunLease, RunOptions, RunProgress,
    RunStart, RunStatus, RunSummary, Store, SubjectKind, Trigger,
};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use sqlx::PgPool;
use support::auth;

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

struct Fixture {
    handle: ServiceHandle,
    store: Arc<PgStore>,
    base: String,
    admin: auth::Session,
    http: reqwest::Client,
}

async fn fixture(pool: PgPool) -> Fixture {
    let store = Arc::new(PgStore::new(pool));
    store
        .upsert_tenant(&Tenant {
            key: TenantKey::parse("acme").unwrap(),
            display_name: "Acme LLP".to_owned(),
            entra_tenant_id: oid(0xe17a),
            time_zone: chrono_tz::Australia::Sydney,
            report_retention: Retention::ThreeMonths,
            policy: TenantPolicy {
                selected_groups: vec![SelectedGroup {
                    entra_id: oid(0x6900),
                    role: Role::Internal,
                }],
                deactivation_status: DeactivationStatus::Inactive,
                deletion_threshold: 500,
            },
            source: Default::default(),
            target: None,
        })
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(
        Service {
            ctx: SyncContext {
                store: store.clone(),
                connector: Arc::new(FixedConnector {
                    source: Arc::new(MemorySource::new(MemoryDirectory::default())),
                    target: Arc::new(MemoryTarget::new()),
                }),
                settings: SyncSettings::default(),
            },
            access: store.clone(),
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
    let admin = auth::person(2);
    auth::grant(
        store.as_ref(),
        &admin,
        AccessRole::TenantAdmin,
        Some("acme"),
    )
    .await;
    Fixture {
        base: format!("http://{}", handle.addr),
        handle,
        admin: auth::session(store.as_ref(), &admin, "Adam Admin").await,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        store,
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.admin.cookie_header())
            .send()
            .await
            .unwrap()
    }

    async fn begin(&self) -> Arc<dyn RunLease> {
        match self
            .store
            .begin_run(
                &TenantKey::parse("acme").unwrap(),
                &Trigger::manual("Adam Admin"),
                RunOptions::default(),
            )
            .await
            .unwrap()
        {
            RunStart::Started(lease) => lease,
            RunStart::AlreadyRunning(id) => panic!("run {id} is in progress"),
        }
    }
}

/// Reads the event stream until an event whose data contains `wanted`; returns that event.
async fn next_event_with(
    stream: &mut reqwest::Response,
    seen: &mut String,
    wanted: &str,
) -> String {
    loop {
        if let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            if event.contains(wanted) {
                return event;
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {wanted:?}; left: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn the_progress_stream_follows_a_run_from_its_heartbeats_to_its_end(pool: PgPool) {
    let fx = fixture(pool).await;
    let lease = fx.begin().await;
    let run = lease.run_id();
    lease
        .heartbeat(&RunProgress {
            stage: "applying changes".to_owned(),
            done: 10,
            total: 40,
        })
        .await
        .unwrap();
    let mut stream = fx.get(&format!("/tenants/acme/reports/{run}/events")).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let first = next_event_with(&mut stream, &mut seen, "event: progress").await;
    assert!(first.contains("10 of 40 operations applied"), "{first}");
    assert!(first.contains("25%"), "{first}");
    assert!(first.contains("data-run-state=\"running\""), "{first}");

    // Each change is sent as it is recorded …
    lease
        .heartbeat(&RunProgress {
            stage: "applying changes".to_owned(),
            done: 30,
            total: 40,
        })
        .await
        .unwrap();
    let later = next_event_with(&mut stream, &mut seen, "30 of 40").await;
    assert!(later.contains("75%"), "{later}");

    // … and the end of the run is the last event, after which the stream closes.
    fx.store
        .finish_run(
            run,
            &RunFinish {
                status: RunStatus::Succeeded,
                summary: RunSummary::default(),
                message: None,
            },
        )
        .await
        .unwrap();
    let last = next_event_with(&mut stream, &mut seen, "data-run-state=\"done\"").await;
    assert!(
        last.contains("100%") && last.contains("Succeeded"),
        "{last}"
    );
    let end = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
        .await
        .expect("the stream closes");
    assert!(matches!(end, Ok(None)), "{end:?}");

    // The polling fallback serves the same fragment.
    let polled = fx
        .get(&format!("/tenants/acme/reports/{run}/progress"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        polled.contains("100%") && polled.contains("Succeeded"),
        "{polled}"
    );
    fx.handle.stop().await.unwrap();
}

fn line(n: usize) -> ReportEntry {
    ReportEntry {
        subject: SubjectKind::User,
        entra_id: Some(oid(0x1_0000 + n as u128)),
        email: Some(format!("person{n:06}@contoso.com")),
        name: Some(format!("Person {n:06}")),
        action: "created".to_owned(),
        field: Some("role".to_owned()),
        old_value: None,
        new_value: Some("internal".to_owned()),
        severity: if n % 1000 == 0 {
            Severity::Warning
        } else {
            Severity::Info
        },
        message: None,
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn a_100000_line_report_is_searched_and_paged_in_sql(pool: PgPool) {
    let fx = fixture(pool).await;
    let run = fx.begin().await.run_id();
    let lines: Vec<ReportEntry> = (0..100_000).map(line).collect();
    fx.store.record_entries(run, &lines).await.unwrap();
    fx.store
        .finish_run(
            run,
            &RunFinish {
                status: RunStatus::Succeeded,
                summary: RunSummary::default(),
                message: None,
            },
        )
        .await
        .unwrap();

    let started = Instant::now();
    let page = fx
        .get(&format!("/tenants/acme/reports/{run}?page=734"))
        .await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let first_page = started.elapsed();
    assert!(
        page.contains("Lines 73301–73400 of 100000"),
        "page 734 of 1000"
    );
    // Line 73,301 is the 73,301st written: person 73,300 counting from 0.
    assert!(page.contains("person073300@contoso.com") && page.contains("person073399@contoso.com"));
    assert!(
        !page.contains("person073299@contoso.com") && !page.contains("person073400@contoso.com")
    );
    assert!(page.contains("Page 734 of 1000"));

    let started = Instant::now();
    let found = fx
        .get(&format!("/tenants/acme/reports/{run}?q=PERSON04200"))
        .await
        .text()
        .await
        .unwrap();
    let search = started.elapsed();
    assert!(
        found.contains("Lines 1–10 of 10 matching “PERSON04200”"),
        "a search by email or name, in any case"
    );
    assert!(found.contains("person042009@contoso.com"));

    // A search with LIKE's own characters finds them literally.
    let literal = fx
        .get(&format!("/tenants/acme/reports/{run}?q=%25_"))
        .await
        .text()
        .await
        .unwrap();
    assert!(literal.contains("No line matches."), "{literal}");

    // The same page from the store, and from the trait's in-memory default, agree.
    let query = EntryQuery {
        search: Some("son0999".to_owned()),
        offset: 20,
        limit: 30,
    };
    let in_sql = fx.store.entries_page(run, &query).await.unwrap();
    let all = fx.store.run_entries(run).await.unwrap();
    let matching: Vec<&ReportEntry> = all.iter().filter(|e| query.matches(e)).collect();
    assert_eq!(in_sql.total, matching.len() as u64);
    assert_eq!(in_sql.total, 100);
    assert_eq!(
        in_sql.entries,
        matching
            .into_iter()
            .skip(20)
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
    );
    println!(
        "100,000-line report: page 734 rendered in {first_page:?}, a search in {search:?} \
         (debug build, through HTTP)"
    );
    fx.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn the_person_look_up_finds_someone_across_runs_newest_first(pool: PgPool) {
    let fx = fixture(pool).await;
    let key = TenantKey::parse("acme").unwrap();
    let mut runs = Vec::new();
    for action in ["created", "removed from group", "deactivated"] {
        let run = fx.begin().await.run_id();
        let mut entry = line(7);
        entry.action = action.to_owned();
        fx.store
            .record_entries(run, &[entry, line(8)])
            .await
            .unwrap();
        fx.store
            .finish_run(
                run,
                &RunFinish {
                    status: RunStatus::Succeeded,
                    summary: RunSummary::default(),
                    message: None,
                },
            )
            .await
            .unwrap();
        runs.push(run);
    }
    let people = fx
        .store
        .find_people(&key, "PERSON000007", 10)
        .await
        .unwrap();
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].runs, 3);
    assert_eq!(people[0].email.as_deref(), Some("person000007@contoso.com"));
    let history = fx
        .store
        .person_history(&key, &people[0].entra_id, 10)
        .await
        .unwrap();
    let seen: Vec<(RunId, &str)> = history
        .iter()
        .map(|e| (e.run.id, e.entry.action.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (runs[2], "deactivated"),
            (runs[1], "removed from group"),
            (runs[0], "created")
        ]
    );
    let page = fx
        .get(&format!(
            "/tenants/acme/people?q=person000007&id={}",
            people[0].entra_id
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("deactivated") && (page.contains("AEDT") || page.contains("AEST")),
        "times in the tenant's zone: {page}"
    );
    fx.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn assets_are_served_by_the_binary_with_long_cache_lifetimes(pool: PgPool) {
    let fx = fixture(pool).await;
    for (path, kind, needle) in [
        ("/assets/htmx-2.0.11.min.js", "text/javascript", "htmx"),
        ("/assets/console-1.js", "text/javascript", "EventSource"),
        ("/assets/console-1.css", "text/css", "--accent"),
    ] {
        let response = fx
            .http
            .get(format!("{}{path}", fx.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    // Pages allow only this service's own scripts and styles.
    let page = fx.get("/tenants/acme").await;
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    fx.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn the_audit_log_states_each_time_in_utc_with_its_offset_and_a_tenants_event_in_its_zone(
    pool: PgPool,
) {
    let fx = fixture(pool).await;
    let operator = auth::person(9);
    auth::grant(fx.store.as_ref(), &operator, AccessRole::Operator, None).await;
    let session = auth::session(fx.store.as_ref(), &operator, "Olga Operator").await;
    // Sydney keeps daylight saving time in January: 00:30 UTC is 11:30 there.
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-15T00:30:00Z")
        .unwrap()
        .to_utc();
    let acme = TenantKey::parse("acme").unwrap();
    dirsync::audit::record(
        fx.store.as_ref(),
        at,
        &dirsync::audit::Actor::cli(),
        dirsync::audit::Action::RunReject,
        Some(&acme),
        dirsync::store::access::AuditOutcome::Ok,
        serde_json::json!({"rejected_run": 1}),
    )
    .await;
    dirsync::audit::record(
        fx.store.as_ref(),
        at + chrono::Duration::hours(1),
        &dirsync::audit::Actor::cli(),
        dirsync::audit::Action::TokenCreate,
        None,
        dirsync::store::access::AuditOutcome::Ok,
        serde_json::json!({}),
    )
    .await;

    let page = fx
        .http
        .get(format!("{}/operator/audit", fx.base))
        .header("cookie", session.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let rows: Vec<&str> = page
        .split("<tr>")
        .filter(|r| r.contains("<td class=\"when\">"))
        .collect();
    assert_eq!(rows.len(), 2, "{page}");
    let [token, reject] = [rows[0], rows[1]];
    assert!(
        reject.contains("2026-01-15 00:30:00 UTC (UTC+00:00)")
            && reject.contains("2026-01-15 11:30:00 AEDT (UTC+11:00)")
            && reject.contains("run_reject"),
        "{reject}"
    );
    assert!(
        token.contains("2026-01-15 01:30:00 UTC (UTC+00:00)") && !token.contains("<small>"),
        "an event about no tenant is in UTC only: {token}"
    );
    fx.handle.stop().await.unwrap();
}
