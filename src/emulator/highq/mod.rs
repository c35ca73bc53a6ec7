//! A HighQ Collaborate emulator: the REST endpoints dirsync uses, with HighQ's validation,
//! error refs and JSON quirks, OAuth2 with rotating refresh tokens, rate limiting and fault
//! injection. Runs in-process for tests ([`HighQEmulator::start`]) or as a server ([`serve`]).

mod faults;
mod rate_limit;
mod state;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use self::faults::{Fault, FaultAction, FaultTrigger, RateLimit};
pub use self::rate_limit::RateLimitLog;
pub use self::state::{ApiFailure, EmuGroup, EmuUser, HighQState, MAX_FIELD_CHARS, check_phone};
use crate::domain::UserStatus;
use crate::emulator::{Latency, counts_json};

/// The emulator's shared state.
pub type SharedHighQ = Arc<Mutex<HighQState>>;

/// How an emulator starts: its OAuth2 client, instance path and the users and groups an admin
/// made by hand before dirsync came along.
#[derive(Debug, Clone)]
pub struct HighQSeed {
    /// The path after the host: the base URL is `http://127.0.0.1:{port}/{instance}`.
    pub instance: String,
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the tenant was connected with; random when `None`.
    pub refresh_token: Option<String>,
    pub access_token_ttl: Duration,
    /// `(email, first name, last name, status)`, made by hand in HighQ.
    pub manual_users: Vec<(String, String, String, UserStatus)>,
    /// `(name, member emails)`, made by hand in HighQ.
    pub manual_groups: Vec<(String, Vec<String>)>,
    pub max_page_size: usize,
    /// Added to every request: none by default (tests); `emulate` and the benchmark set it.
    pub latency: Latency,
}

impl Default for HighQSeed {
    fn default() -> Self {
        Self {
            instance: "highq".to_owned(),
            client_id: "dirsync".to_owned(),
            client_secret: "emulator-secret".to_owned(),
            refresh_token: None,
            access_token_ttl: Duration::from_secs(3600),
            manual_users: Vec::new(),
            manual_groups: Vec::new(),
            max_page_size: 100,
            latency: Latency::NONE,
        }
    }
}

impl HighQSeed {
    pub fn into_state(self) -> HighQState {
        let mut state = HighQState::new(
            &self.client_id,
            &self.client_secret,
            self.refresh_token,
            self.access_token_ttl,
        );
        state.max_page_size = self.max_page_size.max(1);
        state.latency = self.latency;
        for (email, first, last, status) in &self.manual_users {
            state.add_manual_user(email, first, last, *status);
        }
        for (name, emails) in &self.manual_groups {
            let members: Vec<u64> = emails
                .iter()
                .filter_map(|e| state.user_by_email(e).map(|u| u.id))
                .collect();
            state.add_manual_group(name, members);
        }
        state
    }
}

/// A running in-process emulator. Dropping it stops the server.
pub struct HighQEmulator {
    base_url: String,
    addr: SocketAddr,
    state: SharedHighQ,
    shutdown: Option<oneshot::Sender<()>>,
}

impl HighQEmulator {
    /// Starts an emulator on `127.0.0.1:0`.
    pub async fn start(seed: HighQSeed) -> std::io::Result<Self> {
        let instance = seed.instance.trim_matches('/').to_owned();
        let state: SharedHighQ = Arc::new(Mutex::new(seed.into_state()));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let served = state.clone();
        let base_url = format!("http://{addr}/{instance}")
            .trim_end_matches('/')
            .to_owned();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(err) = serve(listener, &instance, served, shutdown).await {
                tracing::error!(%err, "the HighQ emulator stopped");
            }
        });
        Ok(Self {
            base_url,
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// Everything before `/api/…`, as a tenant's `base_url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads or changes the emulator's state directly, as a HighQ admin (or a test) would. The
    /// look-up indexes are rebuilt at the next API request, in case `users` or `groups` changed.
    pub fn with<R>(&self, f: impl FnOnce(&mut HighQState) -> R) -> R {
        let mut state = self.state.lock().expect("emulator lock");
        let result = f(&mut state);
        state.mark_changed();
        result
    }

    /// Reads the state without changing it (the indexes stay as they are).
    fn read<R>(&self, f: impl FnOnce(&HighQState) -> R) -> R {
        f(&self.state.lock().expect("emulator lock"))
    }

    /// Requests served so far, by kind (`highq.create_user`, `highq.add_members`,
    /// `highq.token` …), whatever their answer; also at `GET /_emulator/requests`.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.read(|s| s.requests.snapshot())
    }

    pub fn reset_request_counts(&self) {
        self.read(|s| s.requests.reset());
    }

    pub fn set_latency(&self, latency: Latency) {
        self.state.lock().expect("emulator lock").latency = latency;
    }

    pub fn client_id(&self) -> String {
        self.read(|s| s.oauth.client_id.clone())
    }

    pub fn client_secret(&self) -> String {
        self.read(|s| s.oauth.client_secret.clone())
    }

    /// The one refresh token that works now.
    pub fn refresh_token(&self) -> String {
        self.read(|s| s.oauth.refresh_token.clone())
    }

    pub fn users(&self) -> Vec<EmuUser> {
        self.read(|s| s.users.values().cloned().collect())
    }

    pub fn groups(&self) -> Vec<EmuGroup> {
        self.read(|s| s.groups.values().cloned().collect())
    }

    pub fn user_by_email(&self, email: &str) -> Option<EmuUser> {
        self.read(|s| s.user_by_email(email).cloned())
    }

    pub fn group_by_name(&self, name: &str) -> Option<EmuGroup> {
        self.read(|s| s.group_by_name(name).cloned())
    }

    pub fn inject(&self, fault: Fault) {
        self.with(|s| s.faults.push(fault));
    }

    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.with(|s| s.rate_limit = limit);
    }

    /// Every successful change, in order.
    pub fn writes(&self) -> Vec<String> {
        self.read(|s| s.writes.clone())
    }
}

impl Drop for HighQEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves the emulator on `listener` under `/{instance}` until `shutdown` completes; for
/// `dirsync emulate highq`.
pub async fn serve(
    listener: TcpListener,
    instance: &str,
    state: SharedHighQ,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener.tap_io(no_delay), app(instance, state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Sets TCP_NODELAY on an accepted connection, as a real front end does: without it an
/// answer's last segment can wait for the client's delayed ACK (up to 40 ms).
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "could not set TCP_NODELAY");
    }
}

/// The emulator's routes under `/{instance}`.
pub fn app(instance: &str, state: SharedHighQ) -> Router {
    let api = Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{key}", get(get_user).put(update_user))
        .route("/groups", get(list_groups).post(create_group))
        .route("/groups/{id}", put(update_group))
        .route("/groups/{id}/users", get(list_members).post(add_members))
        .route("/groups/{id}/users/{userid}", delete(remove_member))
        .route_layer(middleware::from_fn_with_state(state.clone(), gate))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        .with_state(state.clone());
    let inner = Router::new()
        .route("/api/oauth2/token", post(token))
        .route(
            "/authorize.action",
            get(authorize_form).post(authorize_submit),
        )
        .with_state(state.clone())
        .nest("/api/{version}", api);
    let instance = instance.trim_matches('/');
    let served = if instance.is_empty() {
        inner
    } else {
        Router::new().nest(&format!("/{instance}"), inner)
    };
    served.route(
        "/_emulator/requests",
        get(move || {
            let state = state.clone();
            async move { counts_json(&state.lock().expect("emulator lock").requests) }
        }),
    )
}

/// The kind a request is counted as: `highq.` and what the call does.
fn request_kind(method: &axum::http::Method, path: &str) -> &'static str {
    use axum::http::Method;
    // Inside the router nested at `/api/{version}` the path starts after it.
    let after_version = match path.split_once("/api/") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, rest)| rest),
        None => path,
    };
    let parts: Vec<&str> = after_version.split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        (&Method::GET, ["users"]) => "highq.list_users",
        (&Method::POST, ["users"]) => "highq.create_user",
        (&Method::GET, ["users", _]) => "highq.get_user",
        (&Method::PUT, ["users", _]) => "highq.update_user",
        (&Method::GET, ["groups"]) => "highq.list_groups",
        (&Method::POST, ["groups"]) => "highq.create_group",
        (&Method::PUT, ["groups", _]) => "highq.update_group",
        (&Method::GET, ["groups", _, "users"]) => "highq.list_members",
        (&Method::POST, ["groups", _, "users"]) => "highq.add_members",
        (&Method::DELETE, ["groups", _, "users", _]) => "highq.remove_member",
        _ => "highq.other",
    }
}

fn failure(err: ApiFailure) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut error = json!({ "summary": err.summary });
    if let Some(code) = err.code {
        // HighQ sends refs as strings.
        error["ref"] = json!(code.to_string());
        error["link"] = json!(format!("https://developer.highq.example/errors/{code}"));
    }
    (status, Json(json!({ "error": error }))).into_response()
}

fn answer(result: Result<Value, ApiFailure>, success: StatusCode) -> Response {
    match result {
        Ok(Value::Null) => StatusCode::NO_CONTENT.into_response(),
        Ok(body) => (success, Json(body)).into_response(),
        Err(err) => failure(err),
    }
}

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn too_many_requests(state: &mut HighQState, reset: u64) -> Response {
    state.rate_limited += 1;
    let mut response = failure(ApiFailure {
        status: 429,
        code: None,
        summary: "Too many requests".to_owned(),
    });
    response
        .headers_mut()
        .insert("x-ratelimit-reset", HeaderValue::from(reset));
    response
}

/// Everything in front of the API handlers (behind the window limit, `rate_limit.rs`): request
/// counting, injected faults and rate limits,
/// `Accept: application/json` and the bearer token.
async fn gate(State(state): State<SharedHighQ>, request: Request, next: Next) -> Response {
    let mut latency = Duration::ZERO;
    let mut lose_answer = false;
    {
        let mut s = state.lock().expect("emulator lock");
        s.requests
            .count(request_kind(request.method(), request.uri().path()));
        latency += s.latency.draw();
        s.api_requests += 1;
        let n = s.api_requests;
        let now = epoch_secs();
        if let Some(until) = s.limited_until {
            if now < until as f64 {
                return too_many_requests(&mut s, until);
            }
            s.limited_until = None;
        }
        let mut fired = Vec::new();
        for fault in &mut s.faults {
            if fault.fires(n) {
                fired.push(fault.action);
            }
        }
        for action in fired {
            match action {
                FaultAction::Latency(delay) => latency += delay,
                FaultAction::LoseAnswer => lose_answer = true,
                FaultAction::Status(code) => {
                    return failure(ApiFailure {
                        status: code,
                        code: None,
                        summary: "Injected failure".to_owned(),
                    });
                }
                FaultAction::RateLimit { reset_after } => {
                    let reset = (now + reset_after.as_secs_f64()).ceil() as u64;
                    s.limited_until = Some(reset);
                    return too_many_requests(&mut s, reset);
                }
            }
        }
        let accepts_json =
            header_text(request.headers(), header::ACCEPT).contains("application/json");
        if !accepts_json {
            return (
                StatusCode::NOT_ACCEPTABLE,
                [(header::CONTENT_TYPE, "application/xml")],
                "<error><summary>Send Accept: application/json for JSON</summary></error>",
            )
                .into_response();
        }
        let bearer = header_text(request.headers(), header::AUTHORIZATION);
        let token = bearer.strip_prefix("Bearer ").unwrap_or_default();
        if !s.access_token_valid(token) {
            return failure(ApiFailure {
                status: 401,
                code: None,
                summary: "The access token is missing, invalid or expired".to_owned(),
            });
        }
    }
    if !latency.is_zero() {
        crate::emulator::sleep_until_precisely(tokio::time::Instant::now() + latency).await;
    }
    let answer = next.run(request).await;
    if lose_answer {
        return failure(ApiFailure {
            status: 504,
            code: None,
            summary: "Injected: the answer was lost after the request was carried out".to_owned(),
        });
    }
    answer
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn token(
    State(state): State<SharedHighQ>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let latency = {
        let s = state.lock().expect("emulator lock");
        s.requests.count("highq.token");
        s.latency
    };
    latency.wait().await;
    match state.lock().expect("emulator lock").token(&form) {
        Ok(body) => Json(body).into_response(),
        Err((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(body),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
}

impl AuthorizeQuery {
    /// The redirect URI to send the browser back to, when the request is one HighQ would
    /// serve; otherwise why not (answered as a `400`).
    fn checked(&self, client_id: &str) -> Result<url::Url, &'static str> {
        if self.response_type.as_deref() != Some("code") {
            return Err("response_type must be \"code\"");
        }
        if self.client_id.as_deref() != Some(client_id) {
            return Err("unknown client_id");
        }
        self.redirect_uri
            .as_deref()
            .and_then(|uri| url::Url::parse(uri).ok())
            .ok_or("redirect_uri must be an absolute URL")
    }
}

fn refuse_authorize(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("HighQ emulator: {message}"),
    )
        .into_response()
}

/// `GET /authorize.action`: the consent page a HighQ site admin sees (already signed in).
async fn authorize_form(
    State(state): State<SharedHighQ>,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let client_id = state.lock().expect("emulator lock").oauth.client_id.clone();
    if let Err(refused) = query.checked(&client_id) {
        return refuse_authorize(refused);
    }
    axum::response::Html(
        "<!doctype html><html><head><title>Authorise application</title></head><body>\
         <h1>Authorise application</h1><p>An application wants to use HighQ on your behalf.</p>\
         <form method=\"post\"><button type=\"submit\" name=\"decision\" value=\"allow\" \
         id=\"highq-allow\">Allow</button> <button type=\"submit\" name=\"decision\" \
         value=\"deny\" id=\"highq-deny\">Deny</button></form></body></html>"
            .to_owned(),
    )
    .into_response()
}

#[derive(Deserialize)]
struct Decision {
    decision: String,
}

/// `POST /authorize.action`: back to the redirect URI with a one-time code (or `access_denied`)
/// and the state it was given.
async fn authorize_submit(
    State(state): State<SharedHighQ>,
    Query(query): Query<AuthorizeQuery>,
    Form(decision): Form<Decision>,
) -> Response {
    let mut emulator = state.lock().expect("emulator lock");
    let client_id = emulator.oauth.client_id.clone();
    let mut back = match query.checked(&client_id) {
        Ok(url) => url,
        Err(refused) => return refuse_authorize(refused),
    };
    {
        let mut pairs = back.query_pairs_mut();
        if decision.decision == "allow" {
            pairs.append_pair("code", &emulator.issue_authorization_code());
        } else {
            pairs.append_pair("error", "access_denied");
        }
        if let Some(state) = &query.state {
            pairs.append_pair("state", state);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

#[derive(Deserialize)]
struct UserQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn get_user(
    State(state): State<SharedHighQ>,
    Path((_version, key)): Path<(String, String)>,
    Query(query): Query<UserQuery>,
) -> Response {
    let by_email = query.kind.is_some_and(|k| k.eq_ignore_ascii_case("email"));
    let mut s = state.lock().expect("emulator lock");
    s.refresh_indexes();
    answer(s.get_user(&key, by_email), StatusCode::OK)
}

#[derive(Deserialize)]
struct ListUsersQuery {
    status: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn list_users(
    State(state): State<SharedHighQ>,
    Query(query): Query<ListUsersQuery>,
) -> Response {
    let mut s = state.lock().expect("emulator lock");
    answer(
        s.list_users(
            query.status.as_deref(),
            query.limit,
            query.offset.unwrap_or(0),
        ),
        StatusCode::OK,
    )
}

async fn create_user(State(state): State<SharedHighQ>, Json(body): Json<Value>) -> Response {
    answer(
        state.lock().expect("emulator lock").create_user(&body),
        StatusCode::CREATED,
    )
}

async fn update_user(
    State(state): State<SharedHighQ>,
    Path((_version, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    answer(
        state
            .lock()
            .expect("emulator lock")
            .update_user(&key, &body),
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct GroupQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn list_groups(
    State(state): State<SharedHighQ>,
    Query(query): Query<GroupQuery>,
) -> Response {
    answer(
        state
            .lock()
            .expect("emulator lock")
            .list_groups(query.kind.as_deref()),
        StatusCode::OK,
    )
}

async fn create_group(State(state): State<SharedHighQ>, Json(body): Json<Value>) -> Response {
    answer(
        state.lock().expect("emulator lock").create_group(&body),
        StatusCode::CREATED,
    )
}

fn group_id(raw: &str) -> Result<u64, ApiFailure> {
    raw.parse().map_err(|_| ApiFailure {
        status: 404,
        code: Some(120),
        summary: format!("Group {raw} not found"),
    })
}

async fn update_group(
    State(state): State<SharedHighQ>,
    Path((_version, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let result =
        group_id(&id).and_then(|id| state.lock().expect("emulator lock").update_group(id, &body));
    answer(result, StatusCode::OK)
}

/// The most users one `POST /groups/{id}/users` may list. HighQ documents no maximum; the adapter's
/// `member_batch_size` defaults to this, and a larger batch is refused with a clear error.
pub const MAX_USERS_PER_ADD: usize = 500;

async fn add_members(
    State(state): State<SharedHighQ>,
    Path((_version, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let listed = body
        .get("userid")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if listed > MAX_USERS_PER_ADD {
        return failure(ApiFailure {
            status: 400,
            code: Some(306),
            summary: format!(
                "At most {MAX_USERS_PER_ADD} users can be added to a group in one request; this one lists {listed}"
            ),
        });
    }
    let result =
        group_id(&id).and_then(|id| state.lock().expect("emulator lock").add_members(id, &body));
    answer(result, StatusCode::OK)
}

async fn list_members(
    State(state): State<SharedHighQ>,
    Path((_version, id)): Path<(String, String)>,
) -> Response {
    let listing =
        group_id(&id).and_then(|id| state.lock().expect("emulator lock").list_members(id));
    match listing {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(err) => failure(err),
    }
}

async fn remove_member(
    State(state): State<SharedHighQ>,
    Path((_version, id, user)): Path<(String, String, String)>,
) -> Response {
    let result = group_id(&id).and_then(|id| {
        state
            .lock()
            .expect("emulator lock")
            .remove_member(id, &user)
    });
    answer(result, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::request_kind;

    #[test]
    fn requests_are_counted_by_what_they_do_with_or_without_the_nesting_prefix() {
        for (method, path, kind) in [
            (Method::POST, "/highq/api/16/users", "highq.create_user"),
            (Method::POST, "/users", "highq.create_user"),
            (Method::GET, "/users", "highq.list_users"),
            (Method::GET, "/users/a@b.com", "highq.get_user"),
            (Method::PUT, "/users/12", "highq.update_user"),
            (Method::GET, "/groups", "highq.list_groups"),
            (Method::POST, "/groups", "highq.create_group"),
            (Method::PUT, "/groups/3", "highq.update_group"),
            (Method::GET, "/groups/3/users", "highq.list_members"),
            (
                Method::POST,
                "/highq/api/16/groups/3/users",
                "highq.add_members",
            ),
            (Method::DELETE, "/groups/3/users/12", "highq.remove_member"),
            (Method::PATCH, "/groups/3", "highq.other"),
        ] {
            assert_eq!(request_kind(&method, path), kind, "{method} {path}");
        }
    }
}
