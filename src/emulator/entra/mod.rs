//! An in-process Entra ID + Microsoft Graph emulator over HTTPS: the v2.0 token endpoint
//! (client secret and client assertion, per-tenant consent, Entra's error JSON with AADSTS codes),
//! the OpenID Connect sign-in endpoints (`oidc.rs`: discovery, authorize with a sign-in form,
//! ID tokens signed RS256, JWKS), and the Graph subset dirsync reads, with Graph's paging,
//! `$select`, `$count` and error rules, plus configurable fault injection.
//!
//! Tests call [`EntraEmulator::start`] (port 0) and edit the directory through the handle to
//! script "the next day"; `dirsync emulate entra` calls [`serve`].
//!
//! Client assertions are checked for their claims and certificate thumbprint (`x5t`), not for
//! their signature.

mod directory;
mod faults;
mod oidc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::Utc;
use futures::StreamExt as _;
use serde_json::{Map, Value, json};

pub use directory::{
    AppRegistration, AppRoleAssignment, ClientSecret, Directory, Group, TenantDirectory,
};
pub use faults::{Fault, FaultPlan, FaultRule, FaultTrigger};
pub use oidc::IdTokenFault;

use self::faults::FaultState;
use super::{EmulatorError, Latency, RequestCounts, counts_json, generate_tls};

/// How long an emulated access token lives.
const TOKEN_LIFETIME_SECS: i64 = 3599;
const DEFAULT_PAGE_SIZE: usize = 100;
const USER_DEFAULT_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// One request the emulator answered, for tests that check timing or counts.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// When the request reached the emulator's handler.
    pub asked: Instant,
    /// When it was answered.
    pub at: Instant,
    pub method: String,
    pub path_and_query: String,
    pub status: u16,
    pub retry_after: Option<f64>,
}

struct IssuedToken {
    tenant_id: String,
    permissions: Vec<String>,
    expires_at: chrono::DateTime<Utc>,
}

struct EmulatorState {
    base_url: String,
    directory: RwLock<Directory>,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    faults: Mutex<FaultState>,
    log: Mutex<Vec<LoggedRequest>>,
    oidc: oidc::OidcState,
    latency: Mutex<Latency>,
    requests: RequestCounts,
    /// Built from the directory at the start and at each change (`edit`), so every request
    /// costs the same whatever the directory's size.
    index: RwLock<Arc<DirectoryIndex>>,
}

/// Where to find things in the directory without scanning it.
#[derive(Debug, Default)]
struct DirectoryIndex {
    /// By lowercase tenant ID.
    tenants: HashMap<String, TenantIndex>,
}

#[derive(Debug, Default)]
struct TenantIndex {
    /// The tenant's place in `Directory::tenants`.
    position: usize,
    /// Lowercase group ID → the group's place in `TenantDirectory::groups` (the first of that
    /// ID, as `TenantDirectory::group` finds).
    groups: HashMap<String, usize>,
    /// Per group (by place): the places in its `members` that are users in this tenant.
    user_members: Vec<Vec<u32>>,
    /// Per group: the places in its `members` that are any known directory object.
    known_members: Vec<Vec<u32>>,
    /// Lowercase ID → `@odata.type`, for the objects that are not users.
    other_types: HashMap<String, &'static str>,
    /// Lowercase user principal name → the user's key in `TenantDirectory::users`.
    users_by_upn: HashMap<String, String>,
    /// Lowercase user ID → the places of the groups that list it as a member, in order, once.
    member_of: HashMap<String, Vec<u32>>,
}

impl TenantIndex {
    fn build(position: usize, tenant: &TenantDirectory) -> Self {
        let mut other_types = HashMap::new();
        for (list, kind) in [
            (
                &tenant.service_principals,
                "#microsoft.graph.servicePrincipal",
            ),
            (&tenant.devices, "#microsoft.graph.device"),
        ] {
            for object in list {
                if let Some(id) = object.get("id").and_then(Value::as_str) {
                    other_types.insert(id.to_ascii_lowercase(), kind);
                }
            }
        }
        let mut groups = HashMap::new();
        for (i, group) in tenant.groups.iter().enumerate().rev() {
            groups.insert(group.id.to_ascii_lowercase(), i);
        }
        for id in groups.keys() {
            other_types.insert(id.clone(), "#microsoft.graph.group");
        }
        let mut user_members = Vec::with_capacity(tenant.groups.len());
        let mut known_members = Vec::with_capacity(tenant.groups.len());
        let mut member_of: HashMap<String, Vec<u32>> = HashMap::new();
        for (place, group) in tenant.groups.iter().enumerate() {
            let (mut users, mut known) = (Vec::new(), Vec::new());
            for (i, member) in group.members.iter().enumerate() {
                let key = member.to_ascii_lowercase();
                if tenant.users.contains_key(&key) {
                    users.push(i as u32);
                    known.push(i as u32);
                } else if other_types.contains_key(&key) {
                    known.push(i as u32);
                }
                let groups_of_member = member_of.entry(key).or_default();
                if groups_of_member.last() != Some(&(place as u32)) {
                    groups_of_member.push(place as u32);
                }
            }
            user_members.push(users);
            known_members.push(known);
        }
        let mut users_by_upn = HashMap::new();
        for (key, user) in &tenant.users {
            if let Some(upn) = user.get("userPrincipalName").and_then(Value::as_str) {
                users_by_upn
                    .entry(upn.to_ascii_lowercase())
                    .or_insert_with(|| key.clone());
            }
        }
        Self {
            position,
            groups,
            user_members,
            known_members,
            other_types,
            users_by_upn,
            member_of,
        }
    }

    /// A user by object ID or, as Graph also accepts in `/users/{id | userPrincipalName}`, by
    /// user principal name (case-insensitively).
    fn user<'a>(&self, tenant: &'a TenantDirectory, id: &str) -> Option<&'a Map<String, Value>> {
        let id = id.to_ascii_lowercase();
        if uuid::Uuid::parse_str(&id).is_ok() {
            return tenant.users.get(&id);
        }
        tenant.users.get(self.users_by_upn.get(&id)?)
    }

    /// `TenantDirectory::object_type` without the scan.
    fn object_type(&self, tenant: &TenantDirectory, id: &str) -> Option<&'static str> {
        let id = id.to_ascii_lowercase();
        if tenant.users.contains_key(&id) {
            Some("#microsoft.graph.user")
        } else {
            self.other_types.get(&id).copied()
        }
    }
}

impl DirectoryIndex {
    fn build(directory: &Directory) -> Self {
        let mut tenants = HashMap::new();
        for (i, tenant) in directory.tenants.iter().enumerate().rev() {
            tenants.insert(
                tenant.tenant_id.to_ascii_lowercase(),
                TenantIndex::build(i, tenant),
            );
        }
        Self { tenants }
    }
}

impl EmulatorState {
    fn latency(&self) -> Latency {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory and its index, under one read lock.
    fn indexed<R>(&self, f: impl FnOnce(&Directory, &DirectoryIndex) -> R) -> R {
        let directory = read_directory(self);
        let index = self.index.read().unwrap_or_else(|p| p.into_inner()).clone();
        f(&directory, &index)
    }

    fn log(&self, method: &str, path_and_query: String, status: u16, retry_after: Option<f64>) {
        self.log_asked_at(Instant::now(), method, path_and_query, status, retry_after);
    }

    /// Logs a request answered now that reached the handler at `asked`.
    fn log_asked_at(
        &self,
        asked: Instant,
        method: &str,
        path_and_query: String,
        status: u16,
        retry_after: Option<f64>,
    ) {
        if let Ok(mut log) = self.log.lock() {
            log.push(LoggedRequest {
                asked,
                at: Instant::now(),
                method: method.to_owned(),
                path_and_query,
                status,
                retry_after,
            });
        }
    }
}

/// A running emulator. Dropping it stops the server.
pub struct EntraEmulator {
    base_url: String,
    ca_pem: String,
    state: Arc<EmulatorState>,
    server: axum_server::Handle<SocketAddr>,
}

impl std::fmt::Debug for EntraEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraEmulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl EntraEmulator {
    /// Starts on `127.0.0.1`, a free port, without faults.
    pub async fn start(directory: Directory) -> Result<Self, EmulatorError> {
        Self::start_with(
            directory,
            FaultPlan::none(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
    }

    pub async fn start_with(
        directory: Directory,
        faults: FaultPlan,
        addr: SocketAddr,
    ) -> Result<Self, EmulatorError> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local.ip().to_string()
        };
        let base_url = format!("https://{host}:{}", local.port());
        let tls = generate_tls(&[host])?;
        let state = Arc::new(EmulatorState {
            base_url: base_url.clone(),
            index: RwLock::new(Arc::new(DirectoryIndex::build(&directory))),
            directory: RwLock::new(directory),
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(FaultState::new(faults)),
            log: Mutex::new(Vec::new()),
            oidc: oidc::OidcState::default(),
            latency: Mutex::new(Latency::NONE),
            requests: RequestCounts::default(),
        });
        let handle = axum_server::Handle::new();
        // TCP_NODELAY, as a real front end answers: without it a page's last segment waits for
        // the client's delayed ACK (up to 40 ms), more than the latency the bench adds.
        let server = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config),
        )?
        .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
        .handle(handle.clone());
        let app = app(state.clone());
        tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!(error = %e, "the Entra emulator stopped");
            }
        });
        Ok(Self {
            base_url,
            ca_pem: tls.ca_pem,
            state,
            server: handle,
        })
    }

    /// `https://127.0.0.1:PORT`: both the authority host and the Graph base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The PEM of the CA that signed the emulator's certificate: trust it to connect.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Changes the directory while the emulator runs ("the next day").
    pub fn edit<R>(&self, change: impl FnOnce(&mut Directory) -> R) -> R {
        let mut directory = match self.state.directory.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let result = change(&mut directory);
        // Indexed again now, while the directory is still locked, so no index of the old one
        // survives; not at the first request after the change, which the run it starts would
        // wait on (issue 13: in the e2e bench's (c), each of the run's first five requests built
        // the index of 100,000 users, and answered after 300-440 ms rather than 20).
        let index = Arc::new(DirectoryIndex::build(&directory));
        *self.state.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        result
    }

    /// Adds `latency` to every request from now on ([`Latency::NONE`] by default).
    pub fn set_latency(&self, latency: Latency) {
        *self.state.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
    }

    /// The latency added to every request now.
    pub fn latency(&self) -> Latency {
        self.state.latency()
    }

    /// Requests served so far, by kind (`graph.group`, `graph.members_page`, `entra.token` …),
    /// whatever their answer; also at `GET /_emulator/requests`.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.state.requests.snapshot()
    }

    pub fn reset_request_counts(&self) {
        self.state.requests.reset();
    }

    /// Replaces the fault plan (and resets its counters and generator).
    pub fn set_faults(&self, plan: FaultPlan) {
        if let Ok(mut faults) = self.state.faults.lock() {
            *faults = FaultState::new(plan);
        }
    }

    /// Makes the next ID token wrong in one way (`None`: right again).
    pub fn set_id_token_fault(&self, fault: Option<IdTokenFault>) {
        self.state.oidc.set_fault(fault);
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn clear_requests(&self) {
        if let Ok(mut log) = self.state.log.lock() {
            log.clear();
        }
    }
}

impl Drop for EntraEmulator {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}

/// Runs the emulator standalone until `shutdown` completes (for `dirsync emulate entra`).
/// Writes the CA certificate to `ca_pem_out` so dirsync can be configured to trust it.
pub async fn serve(
    directory: Directory,
    faults: FaultPlan,
    addr: SocketAddr,
    ca_pem_out: Option<&Path>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), EmulatorError> {
    let emulator = EntraEmulator::start_with(directory, faults, addr).await?;
    if let Some(path) = ca_pem_out {
        std::fs::write(path, emulator.ca_pem())?;
    }
    tracing::info!(base_url = emulator.base_url(), "Entra emulator listening");
    shutdown.await;
    emulator
        .server
        .graceful_shutdown(Some(Duration::from_secs(5)));
    Ok(())
}

fn app(state: Arc<EmulatorState>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(oidc::discovery),
        )
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(oidc::authorize_form).post(oidc::authorize_submit),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(oidc::jwks))
        .route("/v1.0/groups/{id}", get(get_group))
        .route("/v1.0/groups/{id}/members", get(list_members))
        .route(
            "/v1.0/groups/{id}/members/microsoft.graph.user",
            get(list_user_members),
        )
        .route(
            "/v1.0/groups/{id}/members/microsoft.graph.user/$count",
            get(count_user_members),
        )
        .route("/v1.0/users/{id}", get(get_user))
        .route(
            "/v1.0/users/{id}/memberOf/microsoft.graph.group",
            get(list_member_of_groups),
        )
        .route("/v1.0/applications(appId={key}", get(get_application))
        .route(
            "/_emulator/requests",
            get(|State(state): State<Arc<EmulatorState>>| async move {
                counts_json(&state.requests)
            }),
        )
        .fallback(not_found_route)
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// The token endpoint
// ---------------------------------------------------------------------------------------------

fn token_error(
    state: &EmulatorState,
    status: StatusCode,
    error: &str,
    code: u64,
    description: String,
) -> Response {
    let trace_id = uuid::Uuid::new_v4();
    let correlation_id = uuid::Uuid::new_v4();
    let now = Utc::now().format("%Y-%m-%d %H:%M:%SZ");
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {now}"
        ),
        "error_codes": [code],
        "timestamp": now.to_string(),
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("{}/error?code={code}", state.base_url),
    });
    (status, axum::Json(body)).into_response()
}

fn b64url_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn token(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(tenant_id): UrlPath<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state.requests.count("entra.token");
    state.latency().wait().await;
    let response = if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
        oidc::exchange_code(&state, &headers, &form)
    } else {
        issue_token(&state, &tenant_id, &form)
    };
    state.log(
        "POST",
        format!("/{tenant_id}/oauth2/v2.0/token"),
        response.status().as_u16(),
        None,
    );
    response
}

fn issue_token(state: &EmulatorState, tenant_id: &str, form: &HashMap<String, String>) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return token_error(
            state,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{}'.",
                field("grant_type")
            ),
        );
    }
    let client_id = field("client_id");
    let scope = field("scope");
    if !scope.ends_with("/.default") {
        return token_error(
            state,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let directory = match state.directory.read() {
        Ok(d) => d,
        Err(poisoned) => poisoned.into_inner(),
    };
    let Some(tenant) = directory.tenant(tenant_id) else {
        return token_error(
            state,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    };
    let Some(app) = tenant.app(client_id) else {
        return token_error(
            state,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    if let Some(secret) = form.get("client_secret") {
        let now = Utc::now();
        match app.secrets.iter().find(|s| &s.value == secret) {
            None => {
                return token_error(
                    state,
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                );
            }
            Some(s) if s.expires.is_some_and(|e| e <= now) => {
                return token_error(
                    state,
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000222,
                    format!(
                        "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
                    ),
                );
            }
            Some(_) => {}
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if let Err(response) = check_assertion(state, tenant_id, app, assertion) {
            return response;
        }
    } else {
        return token_error(
            state,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
        );
    }
    let access_token = format!(
        "emu.{}.{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    if let Ok(mut tokens) = state.tokens.lock() {
        tokens.insert(
            access_token.clone(),
            IssuedToken {
                tenant_id: tenant.tenant_id.to_ascii_lowercase(),
                permissions: app.permissions.clone(),
                expires_at: Utc::now() + chrono::Duration::seconds(TOKEN_LIFETIME_SECS),
            },
        );
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": access_token,
    }))
    .into_response()
}

/// Checks a client assertion's claims: a certificate's (`x5t` registered, `iss` = `sub` = client)
/// or a federated token's (`sub` registered). The signature is not verified.
#[allow(clippy::result_large_err)]
fn check_assertion(
    state: &EmulatorState,
    tenant_id: &str,
    app: &AppRegistration,
    assertion: &str,
) -> Result<(), Response> {
    let invalid = |code: u64, text: String| {
        Err(token_error(
            state,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            text,
        ))
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let (Some(header), Some(claims)) = (
        parts.first().and_then(|p| b64url_json(p)),
        parts.get(1).and_then(|p| b64url_json(p)),
    ) else {
        return invalid(50027, "JWT token is invalid or malformed.".into());
    };
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        if exp < Utc::now().timestamp() {
            return invalid(
                700024,
                "Client assertion is not within its valid time range.".into(),
            );
        }
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if let Some(x5t) = header.get("x5t").and_then(Value::as_str) {
        let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x5t.trim_end_matches('='))
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
            .unwrap_or_default();
        let known = app
            .certificate_thumbprints
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&thumbprint));
        if !known {
            return invalid(
                700027,
                format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                    thumbprint.to_ascii_uppercase(),
                    app.client_id
                ),
            );
        }
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if !iss.eq_ignore_ascii_case(&app.client_id) || !sub.eq_ignore_ascii_case(&app.client_id) {
            return invalid(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter."
                    .into(),
            );
        }
        let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
        if !aud.contains(tenant_id) {
            return invalid(
                700212,
                format!(
                    "No matching federated identity record found for presented assertion audience '{aud}'."
                ),
            );
        }
        return Ok(());
    }
    if app.federated_subjects.iter().any(|s| s == sub) {
        Ok(())
    } else {
        invalid(
            70021,
            format!(
                "No matching federated identity record found for presented assertion subject '{sub}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

/// Graph's error envelope.
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": uuid::Uuid::new_v4(),
                "client-request-id": uuid::Uuid::new_v4(),
            }
        }
    });
    (status, axum::Json(body)).into_response()
}

fn not_found_route(uri: Uri) -> std::future::Ready<Response> {
    std::future::ready(graph_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!(
            "Resource not found for the segment '{}'.",
            uri.path().rsplit('/').next().unwrap_or("")
        ),
    ))
}

/// Authenticates a Graph call and returns the caller's tenant and permissions.
#[allow(clippy::result_large_err)]
fn authorize(
    state: &EmulatorState,
    headers: &HeaderMap,
) -> Result<(String, Vec<String>), Response> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    };
    let token = value.strip_prefix("Bearer ").unwrap_or("");
    let tokens = match state.tokens.lock() {
        Ok(t) => t,
        Err(poisoned) => poisoned.into_inner(),
    };
    match tokens.get(token) {
        None => Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "IDX14100: JWT is not well formed, there are no dots (.).",
        )),
        Some(t) if t.expires_at <= Utc::now() => Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        )),
        Some(t) => Ok((t.tenant_id.clone(), t.permissions.clone())),
    }
}

fn has_any(permissions: &[String], wanted: &[&str]) -> bool {
    permissions
        .iter()
        .any(|p| wanted.iter().any(|w| p.eq_ignore_ascii_case(w)))
}

fn forbidden() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn resource_not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn bad_id(id: &str) -> Option<Response> {
    uuid::Uuid::parse_str(id).is_err().then(|| {
        graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("Invalid object identifier '{id}'."),
        )
    })
}

fn selected(query: &HashMap<String, String>) -> Option<Vec<String>> {
    query.get("$select").map(|s| {
        s.split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    })
}

/// A user as Graph returns it: the default properties, or the `$select`ed ones (`id` always,
/// and any `@odata.*` annotation stored on the object, such as a derived `@odata.type`).
/// `accountEnabled` is not a default property, so it appears only when selected.
fn project_user(user: &Map<String, Value>, select: Option<&[String]>) -> Map<String, Value> {
    let projected = ProjectedUser {
        user,
        select,
        listed_with_other_types: false,
    };
    match serde_json::to_value(projected) {
        Ok(Value::Object(out)) => out,
        _ => Map::new(),
    }
}

/// Runs a Graph handler under the fault plan and logs it.
async fn graph_call(
    state: &EmulatorState,
    kind: &'static str,
    uri: &Uri,
    answer: impl FnOnce() -> Response,
) -> Response {
    let asked = Instant::now();
    state.requests.count(kind);
    // The latency is the time to the answer, the emulator's own work on it included, as a
    // remote service's is: building a page of 999 members does not add to it.
    let answer_at = tokio::time::Instant::now() + state.latency().draw();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let fault = state
        .faults
        .lock()
        .ok()
        .and_then(|mut f| f.next(&path_and_query));
    let mut retry_after = None;
    let response = match fault {
        None => answer(),
        Some(Fault::Latency { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            answer()
        }
        Some(Fault::Throttle { retry_after_secs }) => {
            retry_after = Some(retry_after_secs);
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests. Please try again later.",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Some(Fault::Unavailable { retry_after_secs }) => {
            retry_after = retry_after_secs;
            let mut r = graph_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry later.",
            );
            if let Some(secs) = retry_after_secs {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            r
        }
        Some(Fault::Status {
            status,
            code,
            message,
        }) => graph_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &code,
            &message,
        ),
        Some(Fault::TruncatedPage) => {
            let response = answer();
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let cut = bytes.slice(..bytes.len() / 2);
            let mut parts = parts;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(cut))
        }
        Some(Fault::MalformedPage) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"@odata.context\":\"<html>Service Unavailable</html>\",\"value\":[{\"id\":}",
        )
            .into_response(),
        Some(Fault::NextLinkTo { url }) => {
            let response = answer();
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(mut page)) => {
                    page.insert("@odata.nextLink".into(), Value::String(url));
                    let mut parts = parts;
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Response::from_parts(
                        parts,
                        axum::body::Body::from(Value::Object(page).to_string()),
                    )
                }
                _ => Response::from_parts(parts, axum::body::Body::from(bytes)),
            }
        }
        Some(fault @ (Fault::StalledBody { .. } | Fault::BrokenBody)) => {
            let (mut parts, body) = answer().into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let (start, rest) = (
                bytes.slice(..bytes.len() / 2),
                bytes.slice(bytes.len() / 2..),
            );
            let rest = async move {
                match fault {
                    Fault::StalledBody { millis } => {
                        tokio::time::sleep(Duration::from_millis(millis)).await;
                        Ok(rest)
                    }
                    _ => Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "the emulator broke the answer off",
                    )),
                }
            };
            let body = futures::stream::once(async { Ok::<_, std::io::Error>(start) })
                .chain(futures::stream::once(rest));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from_stream(body))
        }
        Some(Fault::MissingValue) => axum::Json(json!({
            "@odata.context": format!("{}/v1.0/$metadata#users", state.base_url),
        }))
        .into_response(),
    };
    super::sleep_until_precisely(answer_at).await;
    state.log_asked_at(
        asked,
        "GET",
        path_and_query,
        response.status().as_u16(),
        retry_after,
    );
    response
}

fn read_directory(state: &EmulatorState) -> std::sync::RwLockReadGuard<'_, Directory> {
    match state.directory.read() {
        Ok(d) => d,
        Err(poisoned) => poisoned.into_inner(),
    }
}

async fn get_group(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    graph_call(&state, "graph.group", &uri, || {
        let (tenant_id, permissions) = match authorize(&state, &headers) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !has_any(
            &permissions,
            &[
                "Group.Read.All",
                "GroupMember.Read.All",
                "Directory.Read.All",
            ],
        ) {
            return forbidden();
        }
        if let Some(r) = bad_id(&id) {
            return r;
        }
        let found = state.indexed(|directory, index| {
            let tenant = index.tenants.get(&tenant_id)?;
            let place = *tenant.groups.get(&id.to_ascii_lowercase())?;
            let group = &directory.tenants[tenant.position].groups[place];
            Some((group.id.clone(), group.display_name.clone()))
        });
        let Some((group_id, display_name)) = found else {
            return resource_not_found(&id);
        };
        let select = selected(&query).unwrap_or_else(|| vec!["id".into(), "displayName".into()]);
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#groups({})/$entity",
                state.base_url,
                select.join(",")
            )),
        );
        body.insert("id".into(), json!(group_id));
        if select.iter().any(|s| s == "displayName") {
            body.insert("displayName".into(), json!(display_name));
        }
        axum::Json(Value::Object(body)).into_response()
    })
    .await
}

/// Parses `$top` (1–999, Graph's error outside) and `$skiptoken` (our opaque offset).
#[allow(clippy::result_large_err)]
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), Response> {
    let top = match query.get("$top") {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=999).contains(&n) => n as usize,
            _ => {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_UnsupportedQuery",
                    &format!(
                        "Invalid page size specified: '{text}'. Must be between 1 and 999 inclusive."
                    ),
                ));
            }
        },
    };
    let offset = match query.get("$skiptoken") {
        None => 0,
        Some(token) => match decode_skiptoken(token) {
            Some(offset) => offset,
            None => {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "The specified page token value has expired and can no longer be included in your request.",
                ));
            }
        },
    };
    Ok((top, offset))
}

fn encode_skiptoken(offset: usize) -> String {
    let raw = format!("RFNwdAIAAQAAAB{offset:08x}:dirsync-emulator");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let hex = raw.strip_prefix("RFNwdAIAAQAAAB")?.split(':').next()?;
    usize::from_str_radix(hex, 16).ok()
}

/// The page's `@odata.nextLink`: the same request with `$skiptoken` (the old one removed).
fn next_link(state: &EmulatorState, uri: &Uri, offset: usize) -> String {
    let mut query: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| {
            !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken=")
        })
        .map(str::to_owned)
        .collect();
    query.push(format!("$skiptoken={}", encode_skiptoken(offset)));
    format!("{}{}?{}", state.base_url, uri.path(), query.join("&"))
}

enum MemberView {
    All,
    UsersOnly,
}

fn list_page(
    state: &EmulatorState,
    id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    uri: &Uri,
    view: MemberView,
) -> Response {
    let (tenant_id, permissions) = match authorize(state, headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !has_any(
        &permissions,
        &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
        ],
    ) {
        return forbidden();
    }
    if let Some(r) = bad_id(id) {
        return r;
    }
    let (top, offset) = match paging(query) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let select = selected(query);
    let found = state.indexed(|directory, index| {
        let tenant_index = index.tenants.get(&tenant_id)?;
        let place = *tenant_index.groups.get(&id.to_ascii_lowercase())?;
        let tenant = &directory.tenants[tenant_index.position];
        let group = &tenant.groups[place];
        let places = match view {
            MemberView::UsersOnly => &tenant_index.user_members[place],
            MemberView::All => &tenant_index.known_members[place],
        };
        let context = match (&view, &select) {
            (MemberView::UsersOnly, Some(s)) => {
                format!("{}/v1.0/$metadata#users({})", state.base_url, s.join(","))
            }
            (MemberView::UsersOnly, None) => format!("{}/v1.0/$metadata#users", state.base_url),
            (MemberView::All, _) => format!("{}/v1.0/$metadata#directoryObjects", state.base_url),
        };
        let members = places.len();
        let value: Vec<PageMember<'_>> = places
            .iter()
            .skip(offset)
            .take(top)
            .map(|&at| {
                let member_id = &group.members[at as usize];
                let key = member_id.to_ascii_lowercase();
                match tenant.users.get(&key) {
                    Some(user) => PageMember::User(ProjectedUser {
                        user,
                        select: select.as_deref(),
                        listed_with_other_types: matches!(view, MemberView::All),
                    }),
                    None => PageMember::Other(json!({
                        "@odata.type": tenant_index
                            .object_type(tenant, member_id)
                            .unwrap_or("#microsoft.graph.directoryObject"),
                        "id": member_id,
                    })),
                }
            })
            .collect();
        let page = MemberPage {
            context,
            next_link: (offset + top < members).then(|| next_link(state, uri, offset + top)),
            value,
        };
        // Written straight from the stored users, as a server streams its answer: no copy of
        // each user is built first (issue 13: the emulator shares the bench's two cores).
        Some(serde_json::to_vec(&page))
    });
    match found {
        None => resource_not_found(id),
        Some(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Some(Err(err)) => graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            &format!("the emulator could not write the page: {err}"),
        ),
    }
}

/// One page of a member listing, in Graph's shape.
#[derive(serde::Serialize)]
struct MemberPage<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Vec<PageMember<'a>>,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum PageMember<'a> {
    User(ProjectedUser<'a>),
    Other(Value),
}

/// A user as Graph returns it, serialized straight from the stored object: the default
/// properties, or the `$select`ed ones (`id` always, and any `@odata.*` annotation stored on the
/// object, such as a derived `@odata.type`), in sorted order. `accountEnabled` is not a default
/// property, so it appears only when selected. In a listing of mixed object types a user
/// without a stored `@odata.type` is typed `#microsoft.graph.user`.
struct ProjectedUser<'a> {
    user: &'a Map<String, Value>,
    select: Option<&'a [String]>,
    listed_with_other_types: bool,
}

impl serde::Serialize for ProjectedUser<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        static NO_PHONES: Value = Value::Array(Vec::new());
        static USER_TYPE: std::sync::LazyLock<Value> =
            std::sync::LazyLock::new(|| json!("#microsoft.graph.user"));
        let mut entries: Vec<(&str, &Value)> = self
            .user
            .iter()
            .filter(|(name, _)| name.starts_with("@odata."))
            .map(|(name, value)| (name.as_str(), value))
            .collect();
        if self.listed_with_other_types && !self.user.contains_key("@odata.type") {
            entries.push(("@odata.type", &USER_TYPE));
        }
        entries.push(("id", self.user.get("id").unwrap_or(&Value::Null)));
        let names: Vec<&str> = match self.select {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => USER_DEFAULT_PROPERTIES.to_vec(),
        };
        for name in names {
            if entries.iter().any(|(present, _)| *present == name) {
                continue;
            }
            let value = self.user.get(name).unwrap_or(match name {
                "businessPhones" => &NO_PHONES,
                _ => &Value::Null,
            });
            entries.push((name, value));
        }
        entries.sort_unstable_by_key(|(name, _)| *name);
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (name, value) in entries {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

async fn list_members(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    graph_call(&state, "graph.all_members_page", &uri, || {
        list_page(&state, &id, &query, &headers, &uri, MemberView::All)
    })
    .await
}

async fn list_user_members(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    graph_call(&state, "graph.members_page", &uri, || {
        list_page(&state, &id, &query, &headers, &uri, MemberView::UsersOnly)
    })
    .await
}

async fn count_user_members(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    graph_call(&state, "graph.members_count", &uri, || {
        let (tenant_id, permissions) = match authorize(&state, &headers) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !has_any(&permissions, &["GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"]) {
            return forbidden();
        }
        let eventual = headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
        if !eventual {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Raw count (/$count) is not supported because the 'ConsistencyLevel:eventual' header is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
            );
        }
        if let Some(r) = bad_id(&id) {
            return r;
        }
        let count = state.indexed(|_, index| {
            let tenant = index.tenants.get(&tenant_id)?;
            let place = *tenant.groups.get(&id.to_ascii_lowercase())?;
            Some(tenant.user_members[place].len())
        });
        let Some(count) = count else {
            return resource_not_found(&id);
        };
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("\u{feff}{count}"),
        )
            .into_response()
    })
    .await
}

async fn get_user(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    graph_call(&state, "graph.user", &uri, || {
        let (tenant_id, permissions) = match authorize(&state, &headers) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !has_any(&permissions, &["User.Read.All", "Directory.Read.All"]) {
            return forbidden();
        }
        let select = selected(&query);
        let found = state.indexed(|directory, index| {
            let tenant_index = index.tenants.get(&tenant_id)?;
            let tenant = &directory.tenants[tenant_index.position];
            Some(project_user(
                tenant_index.user(tenant, &id)?,
                select.as_deref(),
            ))
        });
        let Some(user) = found else {
            return resource_not_found(&id);
        };
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(format!("{}/v1.0/$metadata#users/$entity", state.base_url)),
        );
        body.extend(user);
        axum::Json(Value::Object(body)).into_response()
    })
    .await
}

/// `GET /users/{id | userPrincipalName}/memberOf/microsoft.graph.group`: the groups the user is a
/// **direct** member of (Graph's `memberOf` is not transitive), paged like other collections,
/// with `$select` of `id` and `displayName`.
async fn list_member_of_groups(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    graph_call(&state, "graph.member_of_page", &uri, || {
        let (tenant_id, permissions) = match authorize(&state, &headers) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !has_any(&permissions, &["User.Read.All", "Directory.Read.All"]) {
            return forbidden();
        }
        let (top, offset) = match paging(&query) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let select = selected(&query).unwrap_or_else(|| vec!["id".into(), "displayName".into()]);
        let found = state.indexed(|directory, index| {
            let tenant_index = index.tenants.get(&tenant_id)?;
            let tenant = &directory.tenants[tenant_index.position];
            let user_id = tenant_index
                .user(tenant, &id)?
                .get("id")
                .and_then(Value::as_str)?
                .to_ascii_lowercase();
            let places = tenant_index
                .member_of
                .get(&user_id)
                .map_or(&[][..], Vec::as_slice);
            let page: Vec<Value> = places
                .iter()
                .skip(offset)
                .take(top)
                .map(|&place| {
                    let g = &tenant.groups[place as usize];
                    let mut out = Map::new();
                    out.insert("@odata.type".into(), json!("#microsoft.graph.group"));
                    out.insert("id".into(), json!(g.id));
                    if select.iter().any(|s| s == "displayName") {
                        out.insert("displayName".into(), json!(g.display_name));
                    }
                    Value::Object(out)
                })
                .collect();
            Some((places.len(), page))
        });
        let Some((total, page)) = found else {
            return resource_not_found(&id);
        };
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#groups({})",
                state.base_url,
                select.join(",")
            )),
        );
        if offset + top < total {
            body.insert(
                "@odata.nextLink".into(),
                json!(next_link(&state, &uri, offset + top)),
            );
        }
        body.insert("value".into(), Value::Array(page));
        axum::Json(Value::Object(body)).into_response()
    })
    .await
}

/// `GET /v1.0/applications(appId='{appId}')`: an app registration of the caller's directory,
/// with its credentials' expiry (`passwordCredentials`, `keyCredentials`). As in Graph, reading
/// registrations needs `Application.Read.All` (or `Directory.Read.All`): without it, 403
/// `Authorization_RequestDenied`. An app registered in another directory (a multi-tenant app seen
/// from a customer's) is 404 `Request_ResourceNotFound`.
async fn get_application(
    State(state): State<Arc<EmulatorState>>,
    UrlPath(key): UrlPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    graph_call(&state, "graph.application", &uri, || {
        let (tenant_id, permissions) = match authorize(&state, &headers) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let Some(app_id) = key
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix("')"))
        else {
            return not_found_route(uri.clone()).into_inner();
        };
        if !has_any(
            &permissions,
            &["Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All"],
        ) {
            return forbidden();
        }
        let directory = read_directory(&state);
        let Some(app) = directory.tenant(&tenant_id).and_then(|t| t.app(app_id)) else {
            return resource_not_found(app_id);
        };
        let password_credentials: Vec<Value> = app
            .secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                json!({
                    "keyId": uuid::Uuid::from_u128(i as u128 + 1),
                    "displayName": format!("secret {}", i + 1),
                    "hint": secret.value.chars().take(3).collect::<String>(),
                    "startDateTime": "2024-01-01T00:00:00Z",
                    "endDateTime": secret.expires.map(|e| e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                })
            })
            .collect();
        let key_credentials: Vec<Value> = app
            .certificate_thumbprints
            .iter()
            .enumerate()
            .map(|(i, thumbprint)| {
                json!({
                    "keyId": uuid::Uuid::from_u128(i as u128 + 1001),
                    "customKeyIdentifier": thumbprint.to_ascii_uppercase(),
                    "type": "AsymmetricX509Cert",
                    "usage": "Verify",
                    "endDateTime": app.certificates_expire.map(|e| e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                })
            })
            .collect();
        axum::Json(json!({
            "@odata.context": format!("{}/v1.0/$metadata#applications/$entity", state.base_url),
            "id": uuid::Uuid::new_v4(),
            "appId": app.client_id,
            "passwordCredentials": password_credentials,
            "keyCredentials": key_credentials,
        }))
        .into_response()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(1998)), Some(1998));
        assert_eq!(decode_skiptoken("not-a-token"), None);
    }

    #[test]
    fn account_enabled_is_returned_only_when_selected() {
        let user = json!({"id": "u", "displayName": "A", "accountEnabled": false});
        let Value::Object(user) = user else {
            unreachable!()
        };
        assert!(!project_user(&user, None).contains_key("accountEnabled"));
        let select = vec!["id".to_owned(), "accountEnabled".to_owned()];
        assert_eq!(
            project_user(&user, Some(&select)).get("accountEnabled"),
            Some(&json!(false))
        );
    }
}
