//! Notifications (issue 14 item 3) and credential expiry warnings (item 6), end to end on both
//! store backends: signed webhooks to a listener on 127.0.0.1:0 (the signature verified as a
//! receiver would), retries after 5xx then success, none after a 4xx, giving up after the last
//! attempt, loopback refused unless allowed; email received by a real SMTP server (aiosmtpd);
//! run outcomes, the daily digest and expiry warnings at 31 and 29 days with a test clock; the
//! outbox surviving a restart; every delivery in the audit log. The API's webhook rule (only
//! operators set it) and the test-send route run against a live service.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Duration, TimeZone, Utc};
use dirsync::domain::{Email, SecretEnvPolicy, SecretSetting, TenantKey};
use dirsync::notify::settings::{EventKind, NotifySettings, SmtpSettings, SmtpTls, Webhook};
use dirsync::notify::webhook;
use dirsync::notify::{Event, Notifier, Payload, TenantNotifications};
use dirsync::plan::TenantPolicy;
use dirsync::schedule::Clock;
use dirsync::store::access::AuditFilter;
use dirsync::store::notify::{Channel, DeliveryStatus};
use dirsync::store::{AccessStore, RunStatus, RunSummary};
use dirsync::sync::{Finished, RunOutcome};
use dirsync::tenant::{Retention, TargetSettings, Tenant};
use support::backend::TestDb;
use support::smtp_sink::SmtpSink;

const KEY: &str = "s3cret-signing-key";

/// A clock the test moves.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn at(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(now)))
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// What the listener received.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A webhook receiver on 127.0.0.1:0 answering with the scripted statuses (then 200).
#[derive(Clone, Default)]
struct Receiver {
    answers: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Told of each arrival, for tests that wait for the worker.
    arrived: Arc<tokio::sync::Notify>,
}

impl Receiver {
    async fn start(answers: &[u16]) -> (Self, String) {
        let receiver = Receiver::default();
        receiver.answers.lock().unwrap().extend(answers);
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver
        .received
        .lock()
        .unwrap()
        .push(Received { headers, body });
    let status = receiver.answers.lock().unwrap().pop_front().unwrap_or(200);
    receiver.arrived.notify_one();
    StatusCode::from_u16(status).unwrap()
}

fn key() -> TenantKey {
    TenantKey::parse("acme").unwrap()
}

fn tenant() -> Tenant {
    Tenant {
        key: key(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: uuid::Uuid::new_v4().into(),
        time_zone: chrono_tz::Europe::London,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups: vec![],
            deactivation_status: dirsync::domain::DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: TargetSettings::parse(&serde_json::json!({
            "kind": "highq", "base_url": "https://highq.example/acme", "client_id": "dirsync",
            "client_secret": "highq-client-secret"
        }))
        .unwrap(),
    }
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn delivery_settings() -> NotifySettings {
    NotifySettings {
        webhook_allow_private: true,
        max_attempts: 4,
        retry_base_ms: 1_000,
        retry_max_secs: 60,
        webhook_timeout_secs: 5,
        ..NotifySettings::default()
    }
}

fn webhook_to(url: &str) -> TenantNotifications {
    TenantNotifications {
        webhook: Some(Webhook {
            url: url.parse().unwrap(),
            secret: SecretSetting::from(KEY),
        }),
        events: EventKind::CHOOSABLE.to_vec(),
        ..TenantNotifications::default()
    }
}

async fn set_up(
    db: &TestDb,
    notifications: &TenantNotifications,
    settings: NotifySettings,
) -> (Notifier, Arc<TestClock>) {
    db.store.upsert_tenant(&tenant()).await.unwrap();
    db.store
        .save_notification_settings(&key(), notifications, "Olga Operator", start_time())
        .await
        .unwrap();
    let clock = TestClock::at(start_time());
    let notifier = Notifier::new(
        db.store.clone(),
        db.store.clone(),
        settings,
        SecretEnvPolicy::default(),
        clock.clone(),
    );
    (notifier, clock)
}

async fn notification_audits(store: &dyn AccessStore) -> Vec<serde_json::Value> {
    store
        .audit_events(&AuditFilter {
            action: Some("notification".to_owned()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|record| {
            let mut detail = record.event.detail.clone();
            detail["outcome"] = record.event.outcome.as_str().into();
            detail["tenant"] = record.event.tenant.map(|t| t.to_string()).into();
            detail
        })
        .collect()
}

async fn a_webhook_is_signed_so_the_receiver_can_verify_it(db: TestDb) {
    let (receiver, url) = Receiver::start(&[]).await;
    let (notifier, clock) = set_up(&db, &webhook_to(&url), delivery_settings()).await;

    let queued = notifier
        .send(
            &key(),
            Event::Test {
                requested_by: "Olga".to_owned(),
            },
        )
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "one channel, one notification");
    // A restart: another notifier (another process) delivers what the first one queued.
    let restarted = Notifier::new(
        db.store.clone(),
        db.store.clone(),
        delivery_settings(),
        SecretEnvPolicy::default(),
        clock.clone(),
    );
    assert_eq!(restarted.deliver_due().await.unwrap(), 1);

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let header = |name: &str| got[0].headers[name].to_str().unwrap().to_owned();
    let timestamp: i64 = header("x-dirsync-timestamp").parse().unwrap();
    assert_eq!(timestamp, clock.now().timestamp());
    assert!(webhook::verify(
        KEY.as_bytes(),
        timestamp,
        &got[0].body,
        &header("x-dirsync-signature"),
        clock.now().timestamp() + 10,
        300
    ));
    assert!(
        !webhook::verify(
            b"another key",
            timestamp,
            &got[0].body,
            &header("x-dirsync-signature"),
            timestamp,
            300
        ),
        "a wrong key does not verify"
    );
    assert_eq!(header("x-dirsync-event"), "test");
    let payload: Payload = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(payload.tenant, key());
    assert_eq!(header("x-dirsync-delivery"), payload.id.to_string());
    assert!(matches!(payload.event, Event::Test { .. }));
    assert!(
        !String::from_utf8_lossy(&got[0].body).contains(KEY),
        "the key is never in the body"
    );

    let sent = db.store.notifications(&key(), 10).await.unwrap();
    assert_eq!(sent[0].status, DeliveryStatus::Sent);
    assert_eq!(sent[0].attempts, 1);
    let audits = notification_audits(db.store.as_ref()).await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["outcome"], "ok");
    assert_eq!(audits[0]["status"], "sent");
    assert_eq!(audits[0]["channel"], "webhook");
    assert_eq!(audits[0]["tenant"], "acme");
}

async fn server_errors_are_retried_with_backoff_until_it_succeeds(db: TestDb) {
    let (receiver, url) = Receiver::start(&[500, 503]).await;
    let (notifier, clock) = set_up(&db, &webhook_to(&url), delivery_settings()).await;
    notifier
        .send(
            &key(),
            Event::Test {
                requested_by: "Olga".to_owned(),
            },
        )
        .await
        .unwrap();

    assert_eq!(
        notifier.deliver_due().await.unwrap(),
        1,
        "first attempt: 500"
    );
    let after_first = db.store.notifications(&key(), 1).await.unwrap().remove(0);
    assert_eq!(after_first.status, DeliveryStatus::Pending);
    assert_eq!(after_first.attempts, 1);
    let first_wait = after_first.next_attempt_at - clock.now();
    assert!(
        first_wait >= Duration::milliseconds(500) && first_wait <= Duration::seconds(1),
        "the first retry waits 0.5–1 s (base 1 s, jitter): {first_wait}"
    );
    assert!(after_first.last_error.unwrap().contains("500"));
    assert_eq!(
        notifier.deliver_due().await.unwrap(),
        0,
        "not due before its backoff"
    );

    clock.advance(Duration::seconds(1));
    assert_eq!(
        notifier.deliver_due().await.unwrap(),
        1,
        "second attempt: 503"
    );
    let after_second = db.store.notifications(&key(), 1).await.unwrap().remove(0);
    let second_wait = after_second.next_attempt_at - clock.now();
    assert!(
        second_wait >= Duration::seconds(1) && second_wait <= Duration::seconds(2),
        "the second retry waits twice as long: {second_wait}"
    );

    clock.advance(Duration::seconds(2));
    assert_eq!(
        notifier.deliver_due().await.unwrap(),
        1,
        "third attempt: 200"
    );
    let done = db.store.notifications(&key(), 1).await.unwrap().remove(0);
    assert_eq!(done.status, DeliveryStatus::Sent);
    assert_eq!(done.attempts, 3);
    assert_eq!(receiver.received().len(), 3);
    let audits = notification_audits(db.store.as_ref()).await;
    assert_eq!(audits.len(), 1, "one audit entry, when it was finally sent");
    assert_eq!(audits[0]["attempts"], 3);
}

async fn a_client_error_is_not_retried(db: TestDb) {
    let (receiver, url) = Receiver::start(&[400]).await;
    let (notifier, clock) = set_up(&db, &webhook_to(&url), delivery_settings()).await;
    notifier
        .send(
            &key(),
            Event::Test {
                requested_by: "Olga".to_owned(),
            },
        )
        .await
        .unwrap();

    assert_eq!(notifier.deliver_due().await.unwrap(), 1);
    clock.advance(Duration::hours(2));
    assert_eq!(
        notifier.deliver_due().await.unwrap(),
        0,
        "never tried again"
    );

    assert_eq!(receiver.received().len(), 1);
    let failed = db.store.notifications(&key(), 1).await.unwrap().remove(0);
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert!(failed.last_error.unwrap().contains("400"));
    let audits = notification_audits(db.store.as_ref()).await;
    assert_eq!(audits[0]["outcome"], "refused");
    assert_eq!(audits[0]["status"], "failed");
}

async fn a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(db: TestDb) {
    let (receiver, url) = Receiver::start(&[500, 500, 500, 500, 500]).await;
    let (notifier, clock) = set_up(&db, &webhook_to(&url), delivery_settings()).await;
    notifier
        .send(
            &key(),
            Event::Test {
                requested_by: "Olga".to_owned(),
            },
        )
        .await
        .unwrap();
    for _ in 0..4 {
        assert_eq!(notifier.deliver_due().await.unwrap(), 1);
        clock.advance(Duration::seconds(60));
    }
    assert_eq!(notifier.deliver_due().await.unwrap(), 0);
    assert_eq!(receiver.received().len(), 4, "notify.max_attempts = 4");
    let failed = db.store.notifications(&key(), 1).await.unwrap().remove(0);
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert!(
        failed
            .last_error
            .unwrap()
            .contains("gave up after 4 attempts")
    );
    assert_eq!(
        notification_audits(db.store.as_ref()).await[0]["outcome"],
        "refused"
    );
}

async fn a_webhook_to_a_loopback_address_is_refused_unless_allowed(db: TestDb) {
    let (receiver, url) = Receiver::start(&[]).await;
    let strict = NotifySettings {
        webhook_allow_private: false,
        ..delivery_settings()
    };
    let (notifier, _) = set_up(&db, &webhook_to(&url), strict).await;
    notifier
        .send(
            &key(),
            Event::Test {
                requested_by: "Mallory".to_owned(),
            },
        )
        .await
        .unwrap();
    assert_eq!(notifier.deliver_due().await.unwrap(), 1);
    assert!(
        receiver.received().is_empty(),
        "nothing reached the internal host"
    );
    let failed = db.store.notifications(&key(), 1).await.unwrap().remove(0);
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap()
            .contains("notify.webhook_allow_private"),
        "{:?}",
        failed.last_error
    );
}

async fn an_email_reaches_the_smtp_server(db: TestDb) {
    let sink = SmtpSink::start();
    let settings = NotifySettings {
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port: sink.port,
            from: "dirsync@ops.example".to_owned(),
            tls: SmtpTls::None,
            username: None,
            password: None,
        }),
        ..delivery_settings()
    };
    let notifications = TenantNotifications {
        email_to: vec![
            Email::parse("tess.admin@contoso-legal.com").unwrap(),
            Email::parse("ops@contoso-legal.com").unwrap(),
        ],
        events: vec![EventKind::RunFailed],
        ..TenantNotifications::default()
    };
    let (notifier, _) = set_up(&db, &notifications, settings).await;
    let outcome = RunOutcome {
        run_id: 42,
        status: RunStatus::Failed,
        summary: RunSummary::default(),
        message: Some("Graph refused the token".to_owned()),
        already_running: false,
        timings: Default::default(),
    };
    let queued = notifier
        .run_finished(&Finished {
            tenant: key(),
            outcome: Ok(outcome),
        })
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(notifier.deliver_due().await.unwrap(), 1);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one message for both recipients");
    let message = &messages[0];
    assert!(
        message.starts_with("X-Envelope-To: tess.admin@contoso-legal.com,ops@contoso-legal.com"),
        "{message}"
    );
    assert!(
        message.contains("From: dirsync <dirsync@ops.example>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: [dirsync] acme: run 42 failed: Graph refused the token"),
        "{message}"
    );
    assert!(message.contains("\"event\": \"run_failed\""), "{message}");
    let sent = db.store.notifications(&key(), 1).await.unwrap().remove(0);
    assert_eq!(
        (sent.channel, sent.status),
        (Channel::Email, DeliveryStatus::Sent)
    );
    assert_eq!(
        notification_audits(db.store.as_ref()).await[0]["channel"],
        "email"
    );
}

async fn run_outcomes_are_notified_only_as_the_tenant_chose(db: TestDb) {
    let (_receiver, url) = Receiver::start(&[]).await;
    let mut chosen = webhook_to(&url);
    chosen.events = vec![EventKind::RunHeld, EventKind::RunErrors];
    chosen.error_threshold = 10;
    let (notifier, _) = set_up(&db, &chosen, delivery_settings()).await;
    let finished = |status, errors| {
        let mut summary = RunSummary::default();
        summary.applied.errors = errors;
        summary.planned.users_deactivated = 612;
        Finished {
            tenant: key(),
            outcome: Ok(RunOutcome {
                run_id: 7,
                status,
                summary,
                message: None,
                already_running: false,
                timings: Default::default(),
            }),
        }
    };
    assert_eq!(
        notifier
            .run_finished(&finished(RunStatus::Held, 0))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        notifier
            .run_finished(&finished(RunStatus::Failed, 0))
            .await
            .unwrap()
            .is_empty(),
        "not chosen"
    );
    assert!(
        notifier
            .run_finished(&finished(RunStatus::CompletedWithErrors, 10))
            .await
            .unwrap()
            .is_empty(),
        "10 errors is not above the threshold"
    );
    assert_eq!(
        notifier
            .run_finished(&finished(RunStatus::CompletedWithErrors, 11))
            .await
            .unwrap()
            .len(),
        1
    );
    let queued = db.store.notifications(&key(), 10).await.unwrap();
    let events: Vec<&str> = queued.iter().rev().map(|n| n.event.as_str()).collect();
    assert_eq!(events, ["run_held", "run_errors"]);
    assert!(
        queued[1].payload["summary"]
            .as_str()
            .unwrap()
            .contains("would deactivate 612 people")
    );
}

async fn quarantine_is_sent_through_the_one_entry_point(db: TestDb) {
    let (receiver, url) = Receiver::start(&[]).await;
    let (notifier, clock) = set_up(&db, &webhook_to(&url), delivery_settings()).await;
    let next_attempt = clock.now() + Duration::days(7);
    notifier
        .send(
            &key(),
            Event::Quarantined {
                failed_nights: 3,
                next_attempt,
                last_failure: "HighQ refused dirsync's credential".to_owned(),
            },
        )
        .await
        .unwrap();
    notifier.deliver_due().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&receiver.received()[0].body).unwrap();
    assert_eq!(body["event"], "quarantined");
    assert_eq!(body["failed_nights"], 3);
    assert_eq!(body["last_failure"], "HighQ refused dirsync's credential");
}

async fn expiry_warnings_at_29_days_not_31_once_per_threshold(db: TestDb) {
    let (_receiver, url) = Receiver::start(&[]).await;
    let (notifier, clock) = set_up(&db, &webhook_to(&url), delivery_settings()).await;
    // The app credential expires 31 days from now (configured: the app may not read itself).
    let mut configured = tenant();
    configured.source.credential_expires_at = Some(clock.now() + Duration::days(31));
    db.store.upsert_tenant(&configured).await.unwrap();

    notifier.tick().await.unwrap();
    assert!(
        db.store.notifications(&key(), 10).await.unwrap().is_empty(),
        "no warning at 31 days"
    );

    clock.advance(Duration::days(2));
    notifier.tick().await.unwrap();
    let warned = db.store.notifications(&key(), 10).await.unwrap();
    assert_eq!(warned.len(), 1, "a warning at 29 days");
    assert_eq!(warned[0].event, EventKind::CredentialExpiring);
    assert_eq!(warned[0].payload["days_left"], 29);
    assert_eq!(warned[0].payload["credential"], "graph_app");

    clock.advance(Duration::hours(12));
    notifier.tick().await.unwrap();
    assert_eq!(
        db.store.notifications(&key(), 10).await.unwrap().len(),
        1,
        "not again at the same threshold (not every night)"
    );

    clock.advance(Duration::days(23));
    notifier.tick().await.unwrap();
    let again = db.store.notifications(&key(), 10).await.unwrap();
    assert_eq!(again.len(), 2, "again at the 7-day threshold");
    assert_eq!(again[0].payload["days_left"], 5);
}

async fn the_daily_digest_is_sent_once_a_day(db: TestDb) {
    let (receiver, url) = Receiver::start(&[]).await;
    let mut digest = webhook_to(&url);
    digest.daily_digest = true;
    let (notifier, clock) = set_up(&db, &digest, delivery_settings()).await;
    // 12:00 in London on 1 March: yesterday's digest is due (after 07:00).
    notifier.tick().await.unwrap();
    notifier.tick().await.unwrap();
    notifier.deliver_due().await.unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 1, "once for the day");
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event"], "daily_digest");
    assert_eq!(body["day"], "2026-02-28");
    clock.advance(Duration::days(1));
    notifier.tick().await.unwrap();
    notifier.deliver_due().await.unwrap();
    assert_eq!(receiver.received().len(), 2, "the next day's");
}

async fn the_worker_hears_a_finished_run_and_delivers_its_notification(db: TestDb) {
    let (receiver, url) = Receiver::start(&[]).await;
    let (notifier, _) = set_up(&db, &webhook_to(&url), delivery_settings()).await;
    let (runs, heard) = tokio::sync::broadcast::channel(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(notifier.run(heard, async move {
        let _ = stopped.await;
    }));

    let arrived = receiver.arrived.notified();
    runs.send(Finished {
        tenant: key(),
        outcome: Ok(RunOutcome {
            run_id: 9,
            status: RunStatus::Failed,
            summary: RunSummary::default(),
            message: Some("the target refused the token".to_owned()),
            already_running: false,
            timings: Default::default(),
        }),
    })
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), arrived)
        .await
        .expect("the worker delivered the run's notification");

    let _ = stop.send(());
    worker.await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&receiver.received()[0].body).unwrap();
    assert_eq!(body["event"], "run_failed");
    assert_eq!(body["run_id"], 9);
}

on_both_backends!(
    the_worker_hears_a_finished_run_and_delivers_its_notification,
    a_webhook_is_signed_so_the_receiver_can_verify_it,
    server_errors_are_retried_with_backoff_until_it_succeeds,
    a_client_error_is_not_retried,
    a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt,
    a_webhook_to_a_loopback_address_is_refused_unless_allowed,
    an_email_reaches_the_smtp_server,
    run_outcomes_are_notified_only_as_the_tenant_chose,
    quarantine_is_sent_through_the_one_entry_point,
    expiry_warnings_at_29_days_not_31_once_per_threshold,
    the_daily_digest_is_sent_once_a_day,
);

// ---------------------------------------------------------------------------------------------
// The API: only operators aim dirsync at a host; the key never comes back; a test is queued.
// ---------------------------------------------------------------------------------------------

mod api {
    use std::sync::Arc;
    use std::time::Duration;

    use dirsync::auth::settings::AuthSettings;
    use dirsync::domain::{AccessRole, SecretEnvPolicy};
    use dirsync::schedule::{SchedulerSettings, SystemClock};
    use dirsync::service::{Service, start};
    use dirsync::source::memory::{MemoryDirectory, MemorySource};
    use dirsync::store::{NotifyStore as _, PgStore, Store};
    use dirsync::sync::{FixedConnector, SyncContext, SyncSettings};
    use dirsync::target::memory::MemoryTarget;
    use serde_json::{Value, json};

    use super::support::auth;

    fn client(session: &auth::Session) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("cookie", session.cookie_header().parse().unwrap());
        headers.insert("x-csrf-token", session.csrf_token.parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }

    #[sqlx::test(migrations = "./migrations")]
    async fn only_an_operator_sets_the_webhook_and_its_key_is_never_shown(pool: sqlx::PgPool) {
        let store = Arc::new(PgStore::new(pool));
        store.upsert_tenant(&super::tenant()).await.unwrap();
        let ctx = SyncContext {
            store: store.clone(),
            connector: Arc::new(FixedConnector {
                source: Arc::new(MemorySource::new(MemoryDirectory::default())),
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
        let (admin, operator) = (auth::person(2), auth::person(3));
        auth::grant(
            store.as_ref(),
            &admin,
            AccessRole::TenantAdmin,
            Some("acme"),
        )
        .await;
        auth::grant(store.as_ref(), &operator, AccessRole::Operator, None).await;
        let admin = client(&auth::session(store.as_ref(), &admin, "Adam Admin").await);
        let operator = client(&auth::session(store.as_ref(), &operator, "Olga Operator").await);
        let url = format!("http://{}/api/v1/tenants/acme/notifications", handle.addr);
        let with_webhook = json!({
            "webhook": {"url": "https://hooks.example.com/dirsync", "secret": "k-123"},
            "email_to": ["ops@acme.example"], "events": ["run_failed"]
        });

        let refused = admin.put(&url).json(&with_webhook).send().await.unwrap();
        assert_eq!(
            refused.status(),
            403,
            "a tenant admin may not aim dirsync at a host"
        );
        let saved = operator.put(&url).json(&with_webhook).send().await.unwrap();
        assert_eq!(saved.status(), 200);
        let shown: Value = saved.json().await.unwrap();
        assert_eq!(shown["settings"]["webhook"]["secret"], "[redacted]");
        assert!(!shown.to_string().contains("k-123"));

        // The admin keeps the webhook by sending it back redacted, and changes the rest.
        let kept = json!({
            "webhook": {"url": "https://hooks.example.com/dirsync", "secret": "[redacted]"},
            "email_to": ["ops@acme.example", "tess@acme.example"], "events": ["run_failed", "run_held"]
        });
        let changed = admin.put(&url).json(&kept).send().await.unwrap();
        assert_eq!(changed.status(), 200);
        // …but cannot move it elsewhere with the stored key.
        let moved = json!({
            "webhook": {"url": "https://attacker.example.net/", "secret": "[redacted]"},
            "events": []
        });
        assert_eq!(
            operator
                .put(&url)
                .json(&moved)
                .send()
                .await
                .unwrap()
                .status(),
            400
        );
        let stored = store
            .notification_settings(&super::key())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.settings.email_to.len(), 2);
        assert_eq!(
            stored.settings.webhook.unwrap().secret,
            dirsync::domain::SecretSetting::from("k-123"),
            "the key was kept"
        );

        let test = admin.post(format!("{url}/test")).send().await.unwrap();
        assert_eq!(test.status(), 202);
        let queued: Value = test.json().await.unwrap();
        assert_eq!(
            queued["queued"].as_array().unwrap().len(),
            2,
            "webhook and email"
        );

        let credentials: Value = admin
            .get(format!(
                "http://{}/api/v1/tenants/acme/credentials",
                handle.addr
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(credentials["warnings"], json!([]));
        handle.stop().await.unwrap();
    }
}
