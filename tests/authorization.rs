//! The authorization matrix, generated from the route table itself (`dirsync::http::routes`,
//! the same table the router is built from): every route and method, asked by an anonymous
//! caller, a viewer of acme, a tenant admin of acme (signed in, and by API token) and an operator,
//! on acme and on beta, answers 401 (a page: a redirect to sign-in), 404, 403 or success exactly
//! as its guard says. A route added without an example request here fails the test, so none can
//! skip it. State-changing session requests without their CSRF token, or from another origin,
//! are refused; bearer-token requests need none.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dirsync::auth::settings::AuthSettings;
use dirsync::domain::{
    AccessRole, DeactivationStatus, EntraObjectId, Role, SecretEnvPolicy, TenantKey,
};
use dirsync::http::{Guard, RouteSpec, Surface, route_specs};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::schedule::{SchedulerSettings, SystemClock};
use dirsync::service::{Service, ServiceHandle, start};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::NotifyStore as _;
use dirsync::store::PauseStore;
use dirsync::store::access::{AccessStore, NewGrant};
use dirsync::store::{
    PgStore, RunFinish, RunId, RunOptions, RunStart, RunStatus, RunSummary, Store, Trigger,
};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::auth;

const TENANTS: [&str; 2] = ["acme", "beta"];

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn tenant(key: &str, n: u128) -> Tenant {
    Tenant {
        key: TenantKey::parse(key).unwrap(),
        display_name: format!("{key} LLP"),
        entra_tenant_id: oid(0xe17a_0000 + n),
        time_zone: chrono_tz::Europe::London,
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
    }
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    ViewerOfAcme,
    AdminOfAcme,
    /// The same role as `AdminOfAcme`, by API token.
    AdminTokenOfAcme,
    Operator,
}

const EVERYONE: [Who; 5] = [
    Who::Anonymous,
    Who::ViewerOfAcme,
    Who::AdminOfAcme,
    Who::AdminTokenOfAcme,
    Who::Operator,
];

impl Who {
    fn role_on(self, tenant: &str) -> Option<AccessRole> {
        match (self, tenant) {
            (Who::Operator, _) => Some(AccessRole::Operator),
            (Who::ViewerOfAcme, "acme") => Some(AccessRole::Viewer),
            (Who::AdminOfAcme | Who::AdminTokenOfAcme, "acme") => Some(AccessRole::TenantAdmin),
            _ => None,
        }
    }
}

fn rank(role: AccessRole) -> u8 {
    match role {
        AccessRole::Viewer => 1,
        AccessRole::TenantAdmin => 2,
        AccessRole::Operator => 3,
    }
}

/// What a request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    Unauthorized,
    NotFound,
    Forbidden,
}

/// The guard's promise, written out independently of the extractors that keep it.
fn expected(spec: &RouteSpec, who: Who, tenant: Option<&str>) -> Expect {
    if spec.guard == Guard::Public {
        return Expect::Allowed;
    }
    if who == Who::Anonymous {
        return Expect::Unauthorized;
    }
    let held = tenant.and_then(|t| who.role_on(t));
    match spec.guard {
        Guard::Public | Guard::Signed => Expect::Allowed,
        Guard::Operator => {
            if who == Who::Operator {
                Expect::Allowed
            } else {
                Expect::Forbidden
            }
        }
        Guard::ConfigureTenant => match held {
            Some(AccessRole::Operator) => Expect::Allowed,
            Some(_) => Expect::Forbidden,
            None => Expect::NotFound,
        },
        Guard::Tenant(needed) => match held {
            None => Expect::NotFound,
            Some(role) if rank(role) < rank(needed) => Expect::Forbidden,
            Some(_) => Expect::Allowed,
        },
    }
}

struct Fixture {
    handle: ServiceHandle,
    store: Arc<PgStore>,
    base: String,
    /// A finished run of each tenant.
    runs: BTreeMap<&'static str, RunId>,
    viewer: auth::Session,
    admin: auth::Session,
    admin_token: String,
    operator: auth::Session,
    operator_token: String,
    http: reqwest::Client,
}

async fn fixture(pool: PgPool) -> Fixture {
    let store = Arc::new(PgStore::new(pool));
    let mut directory = MemoryDirectory::default();
    let ada = EntraUser {
        id: oid(0x5e50),
        given_name: Some("Ada".to_owned()),
        surname: Some("Lovelace".to_owned()),
        mail: Some("ada@contoso.com".to_owned()),
        account_enabled: Some(true),
        ..EntraUser::default()
    };
    directory
        .groups
        .insert(oid(0x6900), ("Engineers".to_owned(), vec![ada.id.clone()]));
    directory.users.insert(ada.id.clone(), ada);
    let mut runs = BTreeMap::new();
    for (n, key) in TENANTS.iter().enumerate() {
        store.upsert_tenant(&tenant(key, n as u128)).await.unwrap();
        runs.insert(*key, finished_run(&store, key, RunStatus::Succeeded).await);
    }
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory)),
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
    let (viewer, admin, operator) = (auth::person(1), auth::person(2), auth::person(3));
    let access: &dyn AccessStore = store.as_ref();
    auth::grant(access, &viewer, AccessRole::Viewer, Some("acme")).await;
    auth::grant(access, &admin, AccessRole::TenantAdmin, Some("acme")).await;
    auth::grant(access, &operator, AccessRole::Operator, None).await;
    Fixture {
        base: format!("http://{}", handle.addr),
        handle,
        runs,
        viewer: auth::session(access, &viewer, "Vera Viewer").await,
        admin: auth::session(access, &admin, "Adam Admin").await,
        admin_token: auth::token(access, "ci", AccessRole::TenantAdmin, Some("acme")).await,
        operator: auth::session(access, &operator, "Olga Operator").await,
        operator_token: auth::token(access, "ops", AccessRole::Operator, None).await,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        store,
    }
}

/// A run of `tenant` that ended with `status`, recorded straight in the store; waits for a run
/// in progress (a forced one) to end first.
async fn finished_run(store: &PgStore, tenant: &str, status: RunStatus) -> RunId {
    let key = TenantKey::parse(tenant).unwrap();
    for _ in 0..600 {
        match store
            .begin_run(&key, &Trigger::manual("fixture"), RunOptions::default())
            .await
            .unwrap()
        {
            RunStart::Started(lease) => {
                lease
                    .finish(
                        &RunFinish {
                            status,
                            summary: RunSummary::default(),
                            message: None,
                        },
                        &[],
                    )
                    .await
                    .unwrap();
                return lease.run_id();
            }
            RunStart::AlreadyRunning(_) => tokio::task::yield_now().await,
        }
    }
    panic!("the run in progress for {tenant} did not end");
}

/// How a request is signed: as `who`, with or without the session's CSRF token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csrf {
    Sent,
    Missing,
    Wrong,
    CrossSite,
    OtherOrigin,
}

impl Fixture {
    /// The concrete request for a route: path parameters filled in (a fresh held run, grant or
    /// token where the request consumes one) and a body where the route takes one.
    async fn example(&self, spec: &RouteSpec, tenant: Option<&str>) -> (String, Option<Value>) {
        let t = tenant.unwrap_or("-");
        let run = |key: &str| self.runs[key];
        let path = match spec.path {
            "/api/v1/tenants/{tenant}/runs/{run}/approve" => {
                let held = finished_run(&self.store, t, RunStatus::Held).await;
                format!("/api/v1/tenants/{t}/runs/{held}/approve")
            }
            "/tenants/{tenant}/reports/{run}/approve" => {
                let held = finished_run(&self.store, t, RunStatus::Held).await;
                format!("/tenants/{t}/reports/{held}/approve")
            }
            "/api/v1/tenants/{tenant}/runs/{run}/reject" => {
                let held = finished_run(&self.store, t, RunStatus::Held).await;
                format!("/api/v1/tenants/{t}/runs/{held}/reject")
            }
            "/tenants/{tenant}/reports/{run}/reject" => {
                let held = finished_run(&self.store, t, RunStatus::Held).await;
                format!("/tenants/{t}/reports/{held}/reject")
            }
            "/operator/access/{grant}/revoke" => {
                let grant = self
                    .store
                    .grant(&NewGrant {
                        identity: auth::person(0xdead),
                        role: AccessRole::Viewer,
                        tenant: Some(TenantKey::parse("beta").unwrap()),
                        label: None,
                        granted_by: "fixture".to_owned(),
                    })
                    .await
                    .unwrap();
                format!("/operator/access/{}/revoke", grant.id)
            }
            "/operator/tokens/{token}/revoke" => {
                let token = auth::token(
                    self.store.as_ref(),
                    "doomed page",
                    AccessRole::Viewer,
                    Some("beta"),
                )
                .await;
                let id = self
                    .store
                    .tokens()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|r| token.starts_with(&r.prefix))
                    .unwrap()
                    .id;
                format!("/operator/tokens/{id}/revoke")
            }
            "/operator/onboard" => "/operator/onboard?key=gamma".to_owned(),
            // Something to send a test to (a tenant the fixture does not have stays without).
            "/api/v1/tenants/{tenant}/notifications/test"
            | "/tenants/{tenant}/notifications/test" => {
                if let Ok(key) = TenantKey::parse(t) {
                    let recipients = dirsync::notify::TenantNotifications {
                        email_to: vec![dirsync::domain::Email::parse("ops@acme.example").unwrap()],
                        ..Default::default()
                    };
                    let _ = self
                        .store
                        .save_notification_settings(
                            &key,
                            &recipients,
                            "fixture",
                            chrono::Utc::now(),
                        )
                        .await;
                }
                spec.path.replace("{tenant}", t)
            }
            "/api/v1/access/grants/{grant}" => {
                let grant = self
                    .store
                    .grant(&NewGrant {
                        identity: auth::person(0xdead),
                        role: AccessRole::Viewer,
                        tenant: Some(TenantKey::parse("beta").unwrap()),
                        label: None,
                        granted_by: "fixture".to_owned(),
                    })
                    .await
                    .unwrap();
                format!("/api/v1/access/grants/{}", grant.id)
            }
            "/api/v1/tokens/{token}" => {
                let token = auth::token(
                    self.store.as_ref(),
                    "doomed",
                    AccessRole::Viewer,
                    Some("beta"),
                )
                .await;
                let id = self
                    .store
                    .tokens()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|r| token.starts_with(&r.prefix))
                    .unwrap()
                    .id;
                format!("/api/v1/tokens/{id}")
            }
            template if template.contains("{run}") => template
                .replace("{tenant}", t)
                .replace("{run}", &run(t).to_string()),
            template
                if [
                    "/",
                    "/healthz",
                    "/readyz",
                    "/sign-in",
                    "/auth/sign-in",
                    "/auth/callback",
                    "/sign-out",
                    "/api/v1/me",
                    "/api/v1/tenants",
                    "/api/v1/tenants/{tenant}",
                    "/api/v1/tenants/{tenant}/groups",
                    "/api/v1/tenants/{tenant}/preview",
                    "/api/v1/tenants/{tenant}/sync-people",
                    "/api/v1/tenants/{tenant}/what-if",
                    "/api/v1/tenants/{tenant}/runs",
                    "/api/v1/tenants/{tenant}/notifications",
                    "/api/v1/tenants/{tenant}/credentials",
                    "/tenants/{tenant}/notifications",
                    "/api/v1/access/grants",
                    "/api/v1/tokens",
                    "/api/v1/audit",
                    "/assets/console-1.css",
                    "/assets/console-1.js",
                    "/assets/htmx-2.0.11.min.js",
                    "/tenants/{tenant}",
                    "/tenants/{tenant}/force",
                    "/tenants/{tenant}/reports",
                    "/tenants/{tenant}/people",
                    "/tenants/{tenant}/settings",
                    "/tenants/{tenant}/check",
                    "/tenants/{tenant}/preview",
                    "/tenants/{tenant}/sync-people",
                    "/tenants/{tenant}/connect-highq",
                    "/tenants/{tenant}/connect-highq/callback",
                    "/operator/access",
                    "/operator/tokens",
                    "/operator/audit",
                    "/api/v1/openapi.json",
                    "/api/v1/tenants/{tenant}/status",
                    "/api/v1/tenants/{tenant}/pause",
                    "/api/v1/tenants/{tenant}/resume",
                    "/api/v1/pause",
                    "/api/v1/resume",
                    "/tenants/{tenant}/pause",
                    "/tenants/{tenant}/resume",
                    "/operator/pause",
                    "/operator/resume",
                ]
                .contains(&template) =>
            {
                template.replace("{tenant}", t)
            }
            other => panic!(
                "add an example request for {} {other} to tests/authorization.rs",
                spec.method
            ),
        };
        let body = match (spec.method.as_str(), spec.path) {
            ("PUT", "/api/v1/tenants/{tenant}") => Some(json!({
                "key": t, "entra_tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "time_zone": "Europe/London",
                "groups": [{"id": "00006900-0000-0000-0000-000000000000", "role": "internal"}]
            })),
            ("POST", "/api/v1/access/grants") => Some(json!({
                "entra_tenant_id": "00000000-0000-4000-8000-000000000001",
                "entra_object_id": "00000000-0000-4000-8000-000000000002",
                "role": "viewer", "tenant": "beta"
            })),
            ("POST", "/api/v1/tenants/{tenant}/sync-people") => {
                Some(json!({"people": ["ada@contoso.com"]}))
            }
            ("POST", "/api/v1/tenants/{tenant}/what-if") => Some(json!({
                "groups": [{"id": "00006900-0000-0000-0000-000000000000", "role": "basic"}]
            })),
            ("POST", "/tenants/{tenant}/sync-people") => Some(json!({"people": "ada@contoso.com"})),
            ("PUT", "/api/v1/tenants/{tenant}/notifications") => Some(json!({
                "email_to": ["ops@acme.example"], "events": ["run_failed", "run_held"],
                "error_threshold": 5, "daily_digest": true
            })),
            ("POST", "/tenants/{tenant}/notifications") => Some(json!({
                "email_to": "ops@acme.example", "ev_run_failed": "on", "error_threshold": "5"
            })),
            ("POST", "/api/v1/tokens") => {
                Some(json!({"name": "made in the matrix", "role": "viewer", "tenant": "beta"}))
            }
            // Page forms (sent form-encoded, see `with_body`).
            ("POST", "/tenants/{tenant}/settings") => Some(json!({
                "name": format!("{t} LLP"), "entra_tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "time_zone": "Europe/London", "retention": "3", "deletion_threshold": "500",
                "deactivation_status": "inactive",
                "groups": "00006900-0000-0000-0000-000000000000 internal", "target_kind": "none"
            })),
            ("POST", "/operator/access") => Some(json!({
                "entra_tenant_id": "00000000-0000-4000-8000-000000000001",
                "entra_object_id": "00000000-0000-4000-8000-000000000003",
                "role": "viewer", "tenant": "beta"
            })),
            ("POST", "/tenants/{tenant}/connect-highq") => {
                Some(json!({"code": "not-a-code-issued-by-highq"}))
            }
            ("POST", "/tenants/{tenant}/reports/{run}/reject") => {
                Some(json!({"reason": "rejected in the matrix"}))
            }
            ("POST", "/operator/tokens") => {
                Some(json!({"name": "made on the page", "role": "viewer", "tenant": "beta"}))
            }
            ("POST", "/tenants/{tenant}/pause" | "/operator/pause") => {
                Some(json!({"reason": "paused in the matrix"}))
            }
            ("POST", "/api/v1/tenants/{tenant}/pause" | "/api/v1/pause") => {
                Some(json!({"reason": "paused in the matrix"}))
            }
            _ => None,
        };
        (path, body)
    }

    /// Sends the route's example request as `who`.
    async fn send(
        &self,
        spec: &RouteSpec,
        who: Who,
        tenant: Option<&str>,
        csrf: Csrf,
    ) -> reqwest::Response {
        let (path, body) = self.example(spec, tenant).await;
        let method = Method::from_bytes(spec.method.as_str().as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        // Sign-out ends the session it is sent with, so it gets one of its own.
        let fresh;
        let session = match who {
            Who::Anonymous | Who::AdminTokenOfAcme => None,
            Who::ViewerOfAcme => Some(&self.viewer),
            Who::AdminOfAcme => Some(&self.admin),
            Who::Operator => Some(&self.operator),
        };
        let session = match session {
            Some(s) if spec.path == "/sign-out" => {
                fresh = auth::session(self.store.as_ref(), &s.identity, "Fresh Session").await;
                Some(&fresh)
            }
            other => other,
        };
        if let Some(session) = session {
            request = request.header("cookie", session.cookie_header());
            request = match csrf {
                Csrf::Sent => request.header("x-csrf-token", &session.csrf_token),
                Csrf::Missing => request,
                Csrf::Wrong => request.header("x-csrf-token", "not-the-token"),
                Csrf::CrossSite => request
                    .header("x-csrf-token", &session.csrf_token)
                    .header("sec-fetch-site", "cross-site"),
                Csrf::OtherOrigin => request
                    .header("x-csrf-token", &session.csrf_token)
                    .header("origin", "https://evil.example"),
            };
        }
        if who == Who::AdminTokenOfAcme {
            request = request.bearer_auth(&self.admin_token);
        }
        let response = with_body(request, spec, body).send().await.unwrap();
        self.undo_pauses(spec).await;
        response
    }

    /// Issue 14: a pause would refuse the runs forced by routes walked after it: undone at once.
    async fn undo_pauses(&self, spec: &RouteSpec) {
        if !spec.path.ends_with("/pause") {
            return;
        }
        self.store.resume_service().await.unwrap();
        for tenant in TENANTS {
            self.store
                .resume_tenant(&TenantKey::parse(tenant).unwrap())
                .await
                .unwrap();
        }
    }
}

/// The example body: JSON for the API, a form for a page.
fn with_body(
    request: reqwest::RequestBuilder,
    spec: &RouteSpec,
    body: Option<Value>,
) -> reqwest::RequestBuilder {
    match (body, spec.surface) {
        (None, _) => request,
        (Some(body), Surface::Api) => request.json(&body),
        (Some(body), Surface::Page) => {
            let fields: Vec<(String, String)> = body
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            request.form(&fields)
        }
    }
}

/// Checks a response against what was expected; returns a line describing a mismatch.
async fn check(
    spec: &RouteSpec,
    who: Who,
    tenant: Option<&str>,
    expect: Expect,
    response: reqwest::Response,
) -> Option<String> {
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let to_sign_in = status == StatusCode::SEE_OTHER
        && location
            .as_deref()
            .is_some_and(|l| l.starts_with("/sign-in?return_to="));
    let ok = match (expect, spec.surface) {
        (Expect::Allowed, Surface::Api) => status.is_success(),
        (Expect::Allowed, Surface::Page) => {
            status.is_success() || (status.is_redirection() && !to_sign_in)
        }
        (Expect::Unauthorized, Surface::Api) => status == StatusCode::UNAUTHORIZED,
        (Expect::Unauthorized, Surface::Page) => to_sign_in,
        (Expect::NotFound, _) => status == StatusCode::NOT_FOUND,
        (Expect::Forbidden, _) => status == StatusCode::FORBIDDEN,
    };
    let code = if expect != Expect::Allowed && !to_sign_in {
        let text = response.text().await.unwrap_or_default();
        // The API answers JSON; a page answers a page carrying the same code.
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            let code = text
                .split("data-error-code=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next());
            json!({"error": {"code": code}})
        });
        let want = match expect {
            Expect::Unauthorized => "unauthorized",
            Expect::NotFound => "not_found",
            Expect::Forbidden => "forbidden",
            Expect::Allowed => unreachable!(),
        };
        (body["error"]["code"] != want).then(|| format!(" body {body}"))
    } else {
        None
    };
    (!ok || code.is_some()).then(|| {
        format!(
            "{} {} as {who:?} on {}: expected {expect:?}, got {status}{}{}",
            spec.method,
            spec.path,
            tenant.unwrap_or("-"),
            location.map(|l| format!(" to {l}")).unwrap_or_default(),
            code.unwrap_or_default()
        )
    })
}

fn tenants_of(spec: &RouteSpec) -> Vec<Option<&'static str>> {
    if spec.path.contains("{tenant}") {
        TENANTS.iter().copied().map(Some).collect()
    } else {
        vec![None]
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn every_route_answers_each_kind_of_caller_on_each_tenant_as_its_guard_says(pool: PgPool) {
    let fx = fixture(pool).await;
    let specs = route_specs();
    assert!(specs.len() >= 20, "the table holds every route: {specs:?}");
    let mut failures = Vec::new();
    let mut asked = 0;
    for spec in &specs {
        for tenant in tenants_of(spec) {
            for who in EVERYONE {
                let expect = expected(spec, who, tenant);
                let response = fx.send(spec, who, tenant, Csrf::Sent).await;
                asked += 1;
                if let Some(failure) = check(spec, who, tenant, expect, response).await {
                    failures.push(failure);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {asked} requests:\n{}",
        failures.len(),
        failures.join("\n")
    );
    fx.handle.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn state_changing_session_requests_without_their_csrf_token_or_from_elsewhere_are_forbidden(
    pool: PgPool,
) {
    let fx = fixture(pool).await;
    let changing: Vec<RouteSpec> = route_specs()
        .into_iter()
        .filter(|s| s.guard != Guard::Public && !matches!(s.method.as_str(), "GET" | "HEAD"))
        .collect();
    assert!(changing.len() >= 8, "{changing:?}");
    let mut failures = Vec::new();
    for spec in &changing {
        let tenant = tenants_of(spec)[0];
        // Even an operator, allowed everything, is refused without the token …
        for csrf in [
            Csrf::Missing,
            Csrf::Wrong,
            Csrf::CrossSite,
            Csrf::OtherOrigin,
        ] {
            for who in [Who::Operator, Who::ViewerOfAcme] {
                let response = fx.send(spec, who, tenant, csrf).await;
                if let Some(failure) = check(spec, who, tenant, Expect::Forbidden, response).await {
                    failures.push(format!("{csrf:?}: {failure}"));
                }
            }
        }
        // … while a bearer token needs none.
        let (path, body) = fx.example(spec, tenant).await;
        let mut request = fx
            .http
            .request(
                Method::from_bytes(spec.method.as_str().as_bytes()).unwrap(),
                format!("{}{path}", fx.base),
            )
            .bearer_auth(&fx.operator_token);
        request = with_body(request, spec, body);
        let response = request.send().await.unwrap();
        fx.undo_pauses(spec).await;
        if let Some(failure) = check(spec, Who::Operator, tenant, Expect::Allowed, response).await {
            failures.push(format!("bearer: {failure}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    fx.handle.stop().await.unwrap();
}
