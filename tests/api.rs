//! The API as a hostile caller would try it (issue 8's three attacks), and its input handling:
//! private keys never returned, `env:` references outside `DIRSYNC_SECRET_` refused, a moved
//! HighQ `base_url` sent nothing stored; tokens, grants and query parameters.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use dirsync::auth::settings::AuthSettings;
use dirsync::connect::ConfiguredConnector;
use dirsync::domain::{AccessRole, SecretEnvPolicy, TenantKey};
use dirsync::emulator::highq::{HighQEmulator, HighQSeed};
use dirsync::plan::EntraUser;
use dirsync::schedule::{SchedulerSettings, SystemClock};
use dirsync::service::{Service, ServiceHandle, start};
use dirsync::source::DirectorySource;
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{PgStore, PgTokenStore, RunStatus, Store};
use dirsync::sync::Finished;
use dirsync::sync::{Connector, SyncContext, SyncSettings};
use dirsync::target::TargetAdapter;
use dirsync::target::highq::TokenStore;
use dirsync::tenant::Tenant;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::auth;
use tokio::sync::broadcast;

const ENTRA_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const GROUP: &str = "00006900-0000-4000-8000-000000000001";

/// The directory of Entra through memory, the target through the production connector (so the
/// real HighQ adapter, its settings and its stored refresh token are what a run uses).
struct MemorySourceRealTarget {
    source: Arc<MemorySource>,
    targets: ConfiguredConnector,
}

#[async_trait]
impl Connector for MemorySourceRealTarget {
    async fn source(&self, _tenant: &Tenant) -> Result<Arc<dyn DirectorySource>, String> {
        Ok(self.source.clone())
    }
    async fn target(&self, tenant: &Tenant) -> Result<Arc<dyn TargetAdapter>, String> {
        self.targets.target(tenant).await
    }
}

struct Api {
    handle: ServiceHandle,
    /// The Entra directory, to change between runs.
    source: MemorySource,
    store: Arc<PgStore>,
    base: String,
    http: reqwest::Client,
    operator: reqwest::Client,
}

async fn api(pool: PgPool) -> Api {
    let store = Arc::new(PgStore::new(pool.clone()));
    let mut directory = MemoryDirectory::default();
    let ada = EntraUser {
        id: uuid::Uuid::from_u128(0x5e50).into(),
        given_name: Some("Ada".to_owned()),
        surname: Some("Lovelace".to_owned()),
        mail: Some("ada@contoso.com".to_owned()),
        account_enabled: Some(true),
        ..EntraUser::default()
    };
    directory.groups.insert(
        dirsync::domain::EntraObjectId::parse(GROUP).unwrap(),
        ("Engineers".to_owned(), vec![ada.id.clone()]),
    );
    directory.users.insert(ada.id.clone(), ada);
    let source = MemorySource::new(directory);
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(MemorySourceRealTarget {
            source: Arc::new(source.clone()),
            targets: ConfiguredConnector::new(store.clone(), None, SecretEnvPolicy::default()),
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
    let olga = auth::person(3);
    auth::grant(store.as_ref(), &olga, AccessRole::Operator, None).await;
    let session = auth::session(store.as_ref(), &olga, "Olga Operator").await;
    Api {
        base: format!("http://{}", handle.addr),
        handle,
        source,
        store,
        http: reqwest::Client::new(),
        operator: signed_in(&session),
    }
}

fn signed_in(session: &auth::Session) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", session.cookie_header().parse().unwrap());
    headers.insert("x-csrf-token", session.csrf_token.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

fn highq_tenant(base_url: &str, client_id: &str, client_secret: &str) -> Value {
    json!({
        "entra_tenant_id": ENTRA_TENANT, "time_zone": "Europe/London",
        "groups": [{"id": GROUP, "role": "internal"}],
        "target": {"kind": "highq", "base_url": base_url, "client_id": client_id,
                   "client_secret": client_secret}
    })
}

async fn put(api: &Api, key: &str, body: &Value) -> (u16, Value) {
    let response = api
        .operator
        .put(format!("{}/api/v1/tenants/{key}", api.base))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = "./migrations")]
async fn a_tenants_private_key_and_secrets_are_never_returned(pool: PgPool) {
    let api = api(pool).await;
    let private_key = "MIIKpQIBAzCCCl8GCSqGSIb3DQEHAaCCClAEggpMMIIKSDCCBf8GCSqGSIb3DQEHBqCCBfAw";
    let mut body = highq_tenant(
        "https://acme.highq.com/acme",
        "dirsync",
        "highq-s3cret-value",
    );
    body["source"] = json!({
        "client_id": "11111111-2222-3333-4444-555555555555",
        "credential": {"kind": "client_certificate", "pkcs12_base64": private_key,
                       "password": "pfx-passw0rd"}
    });
    let (status, shown) = put(&api, "acme", &body).await;
    assert_eq!(status, 200, "{shown}");

    let (_, one) = get(&api.operator, format!("{}/api/v1/tenants/acme", api.base)).await;
    let (_, all) = get(&api.operator, format!("{}/api/v1/tenants", api.base)).await;
    let (_, audit) = get(&api.operator, format!("{}/api/v1/audit", api.base)).await;
    assert_eq!(audit["events"][0]["action"], "tenant_create", "{audit}");
    for text in [
        shown.to_string(),
        one.to_string(),
        all.to_string(),
        audit.to_string(),
    ] {
        for secret in [private_key, "pfx-passw0rd", "highq-s3cret-value"] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
    }
    assert_eq!(one["source"]["credential"]["pkcs12_base64"], "[redacted]");
    assert_eq!(one["source"]["credential"]["password"], "[redacted]");
    assert_eq!(one["target"]["client_secret"], "[redacted]");
    assert_eq!(
        one["source"]["client_id"],
        "11111111-2222-3333-4444-555555555555"
    );

    // What the API shows can be sent back as it is: the secrets stay.
    let mut round_trip = one.clone();
    round_trip["groups"] = json!([{"id": GROUP, "role": "internal"}]);
    let (status, again) = put(&api, "acme", &round_trip).await;
    assert_eq!(status, 200, "{again}");
    let stored = api
        .store
        .tenant(&TenantKey::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let stored = format!(
        "{}",
        dirsync::domain::expose_for_storage(|| serde_json::to_value(&stored).unwrap())
    );
    assert!(stored.contains(private_key) && stored.contains("highq-s3cret-value"));
    api.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn an_env_reference_outside_the_secret_prefix_is_refused_naming_the_setting(pool: PgPool) {
    let api = api(pool).await;
    let mut scim = highq_tenant("https://unused.example", "x", "y");
    scim["target"] = json!({"kind": "scim", "base_url": "https://attacker.example/scim",
                            "token": "env:DIRSYNC__DATABASE__URL"});
    let (status, body) = put(&api, "acme", &scim).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("target.token")
            && message.contains("DIRSYNC__DATABASE__URL")
            && message.contains("DIRSYNC_SECRET_"),
        "{message}"
    );
    let (status, _) = get(&api.operator, format!("{}/api/v1/tenants/acme", api.base)).await;
    assert_eq!(status, 404, "nothing was stored");

    scim["target"]["token"] = json!("env:DIRSYNC_SECRET_ACME_SCIM");
    let (status, body) = put(&api, "acme", &scim).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["target"]["token"], "env:DIRSYNC_SECRET_ACME_SCIM");
    api.handle.stop().await.unwrap();
}

/// Every request a stand-in host receives: path, headers and body, as text.
#[derive(Clone, Default)]
struct Listener(Arc<Mutex<Vec<String>>>);

impl Listener {
    async fn start(&self) -> String {
        let seen = self.0.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(format!(
                    "{uri} {headers:?} {}",
                    String::from_utf8_lossy(&body)
                ));
                (axum::http::StatusCode::UNAUTHORIZED, "who are you?")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/acme")
    }

    fn requests(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn next_finished(events: &mut broadcast::Receiver<Finished>) -> Finished {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("a run finishes within a minute")
        .expect("the runner is alive")
}

#[sqlx::test(migrations = "./migrations")]
async fn moving_a_highq_base_url_sends_nothing_stored_to_the_new_host_until_an_operator_reconnects(
    pool: PgPool,
) {
    let api = api(pool.clone()).await;
    let highq = HighQEmulator::start(HighQSeed::default()).await.unwrap();
    let secret = highq.client_secret();
    let (status, body) = put(
        &api,
        "acme",
        &highq_tenant(highq.base_url(), &highq.client_id(), &secret),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let key = TenantKey::parse("acme").unwrap();
    let tokens = PgTokenStore::new(pool.clone(), key.clone(), "highq");
    tokens
        .save(&SecretString::from(highq.refresh_token()))
        .await
        .unwrap();
    let mut finished = api.handle.runner.subscribe();

    // Connected, a run syncs into HighQ with the stored refresh token (which rotates).
    let run = api
        .operator
        .post(format!("{}/api/v1/tenants/acme/runs", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 202);
    let done = next_finished(&mut finished).await.outcome.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    let live = tokens.load().await.unwrap().unwrap();
    let live = live.expose_secret().to_owned();

    // Moving base_url while keeping the stored secret ("[redacted]") is refused outright.
    let stranger = Listener::default();
    let elsewhere = stranger.start().await;
    let (status, body) = put(
        &api,
        "acme",
        &highq_tenant(&elsewhere, &highq.client_id(), "[redacted]"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("target.client_secret"),
        "{body}"
    );
    assert_eq!(
        tokens.load().await.unwrap().unwrap().expose_secret(),
        live,
        "a refused change keeps the connection"
    );

    // Moved with a secret for the new host: the stored refresh token is dropped, and a forced
    // run with a new member to create reaches the new host with nothing at all.
    api.source.edit(|directory| {
        let grace = EntraUser {
            id: uuid::Uuid::from_u128(0x5e51).into(),
            given_name: Some("Grace".to_owned()),
            surname: Some("Hopper".to_owned()),
            mail: Some("grace@contoso.com".to_owned()),
            account_enabled: Some(true),
            ..EntraUser::default()
        };
        let group = dirsync::domain::EntraObjectId::parse(GROUP).unwrap();
        directory
            .groups
            .get_mut(&group)
            .unwrap()
            .1
            .push(grace.id.clone());
        directory.users.insert(grace.id.clone(), grace);
    });
    let (status, body) = put(
        &api,
        "acme",
        &highq_tenant(&elsewhere, &highq.client_id(), "a-secret-for-the-new-host"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(tokens.load().await.unwrap().is_none());
    let run = api
        .operator
        .post(format!("{}/api/v1/tenants/acme/runs", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 202);
    let done = next_finished(&mut finished).await.outcome.unwrap();
    assert_ne!(done.status, RunStatus::Succeeded, "{done:?}");
    assert!(
        stranger.requests().is_empty(),
        "the new host was sent {:?}",
        stranger.requests()
    );

    // An operator reconnects (an authorization code for the new host): only then does the new
    // host hear from dirsync, and never the old secret or refresh token.
    let moved = api.store.tenant(&key).await.unwrap().unwrap();
    let Some(dirsync::tenant::TargetSettings::Highq(config)) = &moved.target else {
        panic!("{moved:?}");
    };
    let connect = dirsync::connect::highq_adapter(api.store.as_ref(), &moved, config).unwrap();
    let refused = connect
        .connect_with_authorization_code(&SecretString::from("code-1"), "http://localhost/cb")
        .await;
    assert!(refused.is_err(), "the stand-in host refuses every code");
    let seen = stranger.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        !seen[0].contains(&live) && !seen[0].contains(&secret),
        "{seen:?}"
    );
    api.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn an_api_token_is_shown_once_works_for_its_scope_and_stops_when_revoked(pool: PgPool) {
    let api = api(pool).await;
    let (status, _) = put(&api, "acme", &highq_tenant("https://a.example/x", "c", "s")).await;
    assert_eq!(status, 200);
    let (status, _) = put(&api, "beta", &highq_tenant("https://b.example/x", "c", "s")).await;
    assert_eq!(status, 200);
    let created = api
        .operator
        .post(format!("{}/api/v1/tokens", api.base))
        .json(
            &json!({"name": "nightly report", "role": "viewer", "tenant": "acme",
                      "expires_in_days": 30}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(created.headers()[name], value, "{name}");
    }
    let created: Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with(created["prefix"].as_str().unwrap()));
    let bearer = |url: String| api.http.get(url).bearer_auth(&token).send();

    assert_eq!(
        bearer(format!("{}/api/v1/tenants/acme/runs", api.base))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        bearer(format!("{}/api/v1/tenants/beta/runs", api.base))
            .await
            .unwrap()
            .status(),
        404
    );
    let (_, listed) = get(&api.operator, format!("{}/api/v1/tokens", api.base)).await;
    let listed = &listed.as_array().unwrap()[0];
    assert_eq!(listed["name"], "nightly report");
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert!(
        !listed.to_string().contains(&token[12..]),
        "the token is never listed"
    );
    let forced = api
        .http
        .post(format!("{}/api/v1/tenants/acme/runs", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 403, "a viewer token cannot force");

    let revoked = api
        .operator
        .delete(format!("{}/api/v1/tokens/{}", api.base, created["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let after = bearer(format!("{}/api/v1/tenants/acme/runs", api.base))
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert_eq!(
        after.headers()["www-authenticate"],
        "Bearer realm=\"dirsync\""
    );

    let too_long = api
        .operator
        .post(format!("{}/api/v1/tokens", api.base))
        .json(&json!({"name": "x", "role": "operator", "expires_in_days": 5000}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 400);
    api.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn a_grant_takes_effect_at_the_next_request_and_so_does_its_revocation(pool: PgPool) {
    let api = api(pool).await;
    let (status, _) = put(&api, "acme", &highq_tenant("https://a.example/x", "c", "s")).await;
    assert_eq!(status, 200);
    let vera = auth::person(0x7e4a);
    let session = auth::session(api.store.as_ref(), &vera, "Vera Viewer").await;
    let vera_http = signed_in(&session);
    let runs = format!("{}/api/v1/tenants/acme/runs", api.base);
    assert_eq!(get(&vera_http, runs.clone()).await.0, 404);
    let (_, me) = get(&vera_http, format!("{}/api/v1/me", api.base)).await;
    assert_eq!(me["tenants"], json!({}));
    assert_eq!(me["csrf_token"], session.csrf_token);

    let granted = api
        .operator
        .post(format!("{}/api/v1/access/grants", api.base))
        .json(
            &json!({"entra_tenant_id": vera.tenant_id, "entra_object_id": vera.object_id,
                      "role": "viewer", "tenant": "acme", "label": "Vera"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 201);
    let granted: Value = granted.json().await.unwrap();
    assert_eq!(granted["granted_by"], "Olga Operator (olga@contoso.com)");
    assert_eq!(get(&vera_http, runs.clone()).await.0, 200);
    let (_, me) = get(&vera_http, format!("{}/api/v1/me", api.base)).await;
    assert_eq!(me["tenants"], json!({"acme": "viewer"}));

    let bad = api
        .operator
        .post(format!("{}/api/v1/access/grants", api.base))
        .json(
            &json!({"entra_tenant_id": vera.tenant_id, "entra_object_id": vera.object_id,
                      "role": "operator", "tenant": "acme"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let revoked = api
        .operator
        .delete(format!(
            "{}/api/v1/access/grants/{}",
            api.base, granted["id"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(get(&vera_http, runs).await.0, 404);
    api.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn bad_input_is_answered_in_the_house_error_shape_naming_what_is_wrong(pool: PgPool) {
    let api = api(pool).await;
    let (status, _) = put(&api, "acme", &highq_tenant("https://a.example/x", "c", "s")).await;
    assert_eq!(status, 200);
    let runs = format!("{}/api/v1/tenants/acme/runs", api.base);
    let forced: Value = api
        .operator
        .post(&runs)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = forced["run"]["id"].as_i64().unwrap();

    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            api.operator
                .get(format!("{runs}/{run}/entries?severity=bogus")),
            400,
            "bad_request",
            "severity: unknown variant bogus, expected one of info, warning, error",
        ),
        (
            api.operator.get(format!("{runs}?status=done")),
            400,
            "bad_request",
            "status: unknown variant done",
        ),
        (
            api.operator.get(format!("{runs}?limt=3")),
            400,
            "bad_request",
            "unknown field limt",
        ),
        (
            api.operator.get(format!("{runs}/abc")),
            400,
            "bad_request",
            "the URL is not valid",
        ),
        (
            api.operator.post(&runs).json(&json!({"by": "Mallory"})),
            400,
            "bad_request",
            "\"by\"",
        ),
        (
            api.operator
                .put(format!("{}/api/v1/tenants/acme", api.base))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "bad_request",
            "",
        ),
        (
            api.operator
                .put(format!("{}/api/v1/tenants/acme", api.base))
                .body("key=acme"),
            415,
            "unsupported_media_type",
            "JSON",
        ),
        (
            api.operator.get(format!("{}/api/v1/nothing", api.base)),
            404,
            "not_found",
            "/api/v1/nothing",
        ),
        (
            api.operator.delete(&runs),
            405,
            "method_not_allowed",
            "DELETE",
        ),
    ];
    for (request, status, code, words) in cases {
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message:?} lacks {words:?}");
    }

    let (_, clamped) = get(&api.operator, format!("{runs}/{run}/entries?limit=9000")).await;
    assert_eq!(clamped["limit"], 5000);
    assert!(
        clamped["limit_note"]
            .as_str()
            .unwrap()
            .contains("maximum of 5000"),
        "{clamped}"
    );
    let (_, listed) = get(&api.operator, format!("{runs}?limit=100000")).await;
    assert_eq!(
        (listed["limit"].as_i64(), listed["max_limit"].as_i64()),
        (Some(500), Some(500))
    );
    assert_eq!(listed["runs"][0]["id"], run);
    assert_eq!(
        listed["runs"][0]["trigger"]["by"],
        "Olga Operator (olga@contoso.com)"
    );
    api.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn changes_forced_runs_and_report_downloads_are_audited_with_who_when_and_from_where(
    pool: PgPool,
) {
    let api = api(pool).await;
    let (status, _) = put(&api, "acme", &highq_tenant("https://a.example/x", "c", "s")).await;
    assert_eq!(status, 200);
    let mut finished = api.handle.runner.subscribe();
    let forced: Value = api
        .operator
        .post(format!("{}/api/v1/tenants/acme/runs", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = forced["run"]["id"].as_i64().unwrap();
    next_finished(&mut finished).await;
    let report = api
        .operator
        .get(format!(
            "{}/api/v1/tenants/acme/runs/{run}/report.xlsx",
            api.base
        ))
        .header("user-agent", "audit-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    let created: Value = api
        .operator
        .post(format!("{}/api/v1/tokens", api.base))
        .json(&json!({"name": "ci", "role": "viewer", "tenant": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    api.operator
        .delete(format!("{}/api/v1/tokens/{}", api.base, created["id"]))
        .send()
        .await
        .unwrap();

    let (status, page) = get(
        &api.operator,
        format!("{}/api/v1/audit?tenant=acme", api.base),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "token_revoke",
            "token_create",
            "report_download",
            "run_force",
            "tenant_create"
        ]
    );
    for event in events {
        assert_eq!(
            event["actor"], "Olga Operator (olga@contoso.com)",
            "{event}"
        );
        assert_eq!(event["actor_id"], format!("entra:{}", auth::person(3)));
        assert_eq!(event["source_ip"], "127.0.0.1", "{event}");
        assert_eq!(event["tenant"], "acme");
        assert!(event["at"].is_string());
    }
    assert_eq!(events[2]["user_agent"], "audit-test/1.0");
    assert_eq!(events[2]["detail"]["run"], run);
    assert_eq!(events[3]["detail"]["run"], run);
    assert!(
        !page.to_string().contains(&token[12..]),
        "no token in the audit log"
    );

    let (status, body) = get(
        &api.operator,
        format!("{}/api/v1/audit?action=bogus", api.base),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("run_force"),
        "{body}"
    );
    let (_, one) = get(&api.operator, format!("{}/api/v1/audit?limit=1", api.base)).await;
    let next = one["next_before"].as_i64().expect("more pages");
    let (_, two) = get(
        &api.operator,
        format!("{}/api/v1/audit?limit=1&before={next}", api.base),
    )
    .await;
    assert_eq!(two["events"][0]["action"], "token_create");
    api.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn sync_people_takes_one_to_five_people_and_not_while_a_run_is_in_progress(pool: PgPool) {
    let api = api(pool).await;
    let (status, _) = put(
        &api,
        "acme",
        &json!({"entra_tenant_id": ENTRA_TENANT, "time_zone": "Europe/London",
                "groups": [{"id": GROUP, "role": "internal"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let url = format!("{}/api/v1/tenants/acme/sync-people", api.base);
    let six: Vec<String> = (1..=6).map(|n| format!("p{n}@contoso.com")).collect();
    for (body, says) in [
        (json!({"people": []}), "name at least one person"),
        (json!({"people": six}), "at most 5 people"),
        (
            json!({"people": ["not an address"]}),
            "neither an email address",
        ),
        (json!({"persons": ["ada@contoso.com"]}), "unknown field"),
    ] {
        let response = api.operator.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error.to_string().contains(says), "{body}: {error}");
    }

    let dirsync::store::RunStart::Started(lease) = api
        .store
        .begin_run(
            &TenantKey::parse("acme").unwrap(),
            &dirsync::store::Trigger::automatic(),
            dirsync::store::RunOptions::default(),
        )
        .await
        .unwrap()
    else {
        panic!("a run was in progress already");
    };
    let body = json!({"people": ["ada@contoso.com"]});
    let response = api.operator.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 409);
    let error: Value = response.json().await.unwrap();
    assert!(
        error.to_string().contains(&format!(
            "run {} is in progress for this tenant",
            lease.run_id()
        )),
        "{error}"
    );
    lease
        .finish(
            &dirsync::store::RunFinish {
                status: RunStatus::Succeeded,
                summary: Default::default(),
                message: None,
            },
            &[],
        )
        .await
        .unwrap();

    let response = api.operator.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["run"]["trigger"]["kind"], "on_demand");
    assert_eq!(
        answer["run"]["trigger"]["by"],
        "Olga Operator (olga@contoso.com)"
    );
    assert!(answer["people"].is_array(), "{answer}");
}
