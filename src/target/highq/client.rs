//! The HTTP side of the HighQ adapter: versioned URLs, JSON headers, OAuth2 with rotating
//! refresh tokens, waiting out 429s, retrying transient failures, and turning error bodies into
//! [`HighQError`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::error::HighQError;
use super::pacing::{Allowance, Pacer};
use super::token::{TokenStore, TokenStoreError};
use super::wire::{ApiErrorBody, field, flex_string, flex_u64};

/// Access tokens this close to expiry are refreshed before use.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// How long a 429 without a usable reset time makes us wait.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// The knobs of the HTTP layer.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub base_url: Url,
    pub api_version: u32,
    pub client_id: String,
    pub client_secret: SecretString,
    pub max_rate_limit_wait: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub request_timeout: Duration,
    /// Calls in flight at first, and at most (see [`Pacer`]).
    pub initial_in_flight: usize,
    pub max_in_flight: usize,
}

/// Counters worth showing in a run's report and asserting in tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HighQStats {
    /// Times a 429 was waited out.
    pub rate_limit_waits: u32,
    /// Requests sent again after a transient failure.
    pub retries: u32,
    /// Access tokens obtained with the refresh token.
    pub token_refreshes: u32,
    /// Calls held back until a rate-limit window reset, instead of being sent into a 429.
    pub paced_waits: u32,
}

#[derive(Default)]
struct Counters {
    rate_limit_waits: AtomicU32,
    retries: AtomicU32,
    token_refreshes: AtomicU32,
}

#[derive(Default)]
struct AuthState {
    access: Option<(SecretString, Instant)>,
    /// A rotated refresh token whose save failed: the old one no longer works, so this one is
    /// saved first on the next attempt.
    unsaved: Option<SecretString>,
    /// An access token HighQ refused: not taken again from the shared store.
    refused: Option<SecretString>,
}

/// One request to the versioned API.
pub(crate) struct Call {
    pub method: Method,
    pub path: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    /// Whether a 5xx may be retried: false for calls that create something, where a retry after
    /// a lost answer could create it twice.
    pub retry_server_errors: bool,
}

impl Call {
    pub fn new(method: Method, path: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let retry_server_errors = method != Method::POST;
        Self {
            method,
            path: path.into_iter().map(Into::into).collect(),
            query: Vec::new(),
            body: None,
            retry_server_errors,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Marks a POST that is safe to repeat (adding members).
    pub fn idempotent(mut self) -> Self {
        self.retry_server_errors = true;
        self
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    settings: ClientSettings,
    store: Arc<dyn TokenStore>,
    auth: Mutex<AuthState>,
    counters: Counters,
    pacer: Pacer,
}

impl Client {
    pub fn new(settings: ClientSettings, store: Arc<dyn TokenStore>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(settings.request_timeout))
            .timeout(settings.request_timeout)
            .user_agent(concat!("dirsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("the HTTP client could not be built: {err}"))?;
        let pacer = Pacer::new(settings.initial_in_flight, settings.max_in_flight);
        Ok(Self {
            http,
            pacer,
            settings,
            store,
            auth: Mutex::default(),
            counters: Counters::default(),
        })
    }

    pub fn stats(&self) -> HighQStats {
        HighQStats {
            rate_limit_waits: self.counters.rate_limit_waits.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            token_refreshes: self.counters.token_refreshes.load(Ordering::Relaxed),
            paced_waits: self.pacer.held(),
        }
    }

    /// Calls the pacer lets be in flight at most: what callers may keep busy.
    pub fn max_in_flight(&self) -> usize {
        self.pacer.max_in_flight()
    }

    fn url(&self, segments: &[String], query: &[(&'static str, String)]) -> Url {
        let mut url = self.settings.base_url.clone();
        {
            // `base_url` was checked to be a base (http/https) URL when the adapter was built.
            let mut path = url.path_segments_mut().expect("base URL can have a path");
            path.pop_if_empty()
                .push("api")
                .push(&self.settings.api_version.to_string());
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    fn token_url(&self) -> Url {
        let mut url = self.settings.base_url.clone();
        url.path_segments_mut()
            .expect("base URL can have a path")
            .pop_if_empty()
            .extend(["api", "oauth2", "token"]);
        url
    }

    /// Sends `call` when the pacer lets it out, waiting out 429s, refreshing the access token once on 401 and retrying
    /// transient failures; returns the JSON body (`Null` when empty).
    pub async fn send(&self, call: Call) -> Result<Value, HighQError> {
        let url = self.url(&call.path, &call.query);
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            let token = self.access_token(false).await?;
            let mut request = self
                .http
                .request(call.method.clone(), url.clone())
                .bearer_auth(token.expose_secret())
                .header(header::ACCEPT, "application/json");
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let permit = self.pacer.acquire().await;
            let response = match request.send().await {
                Ok(response) => {
                    let throttled = response.status() == StatusCode::TOO_MANY_REQUESTS;
                    self.pacer
                        .answered(Allowance::from_headers(response.headers()), throttled);
                    drop(permit);
                    response
                }
                Err(err) => {
                    drop(permit);
                    let failure = HighQError::Unavailable(describe_transport(&err));
                    // A refused connection never reached HighQ, so even a create can be resent.
                    if (call.retry_server_errors || err.is_connect())
                        && attempt < self.settings.max_retries
                    {
                        attempt += 1;
                        self.back_off(attempt).await;
                        continue;
                    }
                    return Err(failure);
                }
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = rate_limit_wait(response.headers());
                if waited + wait > self.settings.max_rate_limit_wait {
                    return Err(HighQError::RateLimited {
                        asked: waited + wait,
                        cap: self.settings.max_rate_limit_wait,
                    });
                }
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "HighQ rate limit reached, waiting"
                );
                self.counters
                    .rate_limit_waits
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                waited += wait;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                reauthenticated = true;
                // Not this token again, neither cached nor shared by another process.
                let mut auth = self.auth.lock().await;
                auth.access = None;
                auth.refused = Some(token);
                continue;
            }
            let text = response
                .text()
                .await
                .map_err(|err| HighQError::Unavailable(describe_transport(&err)))?;
            if status.is_success() {
                // Issue 13: a large answer (a group's 40,000 members) is parsed on the blocking
                // pool, so the run's task keeps its other requests moving meanwhile.
                if text.len() < LARGE_BODY_BYTES {
                    return parse_body(&text);
                }
                return tokio::task::spawn_blocking(move || parse_body(&text))
                    .await
                    .map_err(|err| {
                        HighQError::Unavailable(format!("reading the answer failed ({err})"))
                    })?;
            }
            let failure = api_error(status, &text);
            if failure.is_transient()
                && call.retry_server_errors
                && attempt < self.settings.max_retries
            {
                attempt += 1;
                self.back_off(attempt).await;
                continue;
            }
            return Err(failure);
        }
    }

    async fn back_off(&self, attempt: u32) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        let base = self.settings.retry_base.saturating_mul(1 << attempt.min(6));
        let jitter = rand::random_range(0.5..1.0);
        tokio::time::sleep(base.mul_f64(jitter)).await;
    }

    /// Gets a new access token with the stored refresh token now, whatever is cached or shared.
    pub async fn refresh_now(&self) -> Result<(), HighQError> {
        self.auth.lock().await.access = None;
        self.access_token(true).await.map(drop)
    }

    /// A valid access token: the cached one, one another process shared through the token store
    /// (item 8), or a new one from the refresh token, obtained while holding the store's lock on
    /// the tenant's token so that no two processes spend one refresh token. The rotated refresh
    /// token is saved before the new access token is used or even cached. `fresh`: the cached
    /// and shared tokens were refused, get a new one.
    async fn access_token(&self, fresh: bool) -> Result<SecretString, HighQError> {
        let mut auth = self.auth.lock().await;
        if let Some((token, expires)) = &auth.access {
            if !fresh && Instant::now() + EXPIRY_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        let store_failed = |action: &'static str| {
            move |err: TokenStoreError| HighQError::TokenStore {
                action,
                detail: err.to_string(),
            }
        };
        let mut reread = false;
        let (grant, refresh_token, refresh, now) = loop {
            let refresh = self
                .store
                .begin_refresh()
                .await
                .map_err(store_failed("loaded"))?;
            let now = chrono::Utc::now();
            if let Some((token, expires_at)) = refresh.shared_access() {
                let left = (expires_at - now).to_std().unwrap_or_default();
                let refused_here = auth
                    .refused
                    .as_ref()
                    .is_some_and(|refused| refused.expose_secret() == token.expose_secret());
                if !refused_here && left > EXPIRY_MARGIN {
                    drop(refresh);
                    auth.access = Some((token.clone(), Instant::now() + left));
                    return Ok(token);
                }
            }
            // A rotated token whose save failed last time is newer than the stored one.
            let (refresh_token, from_store) = match auth.unsaved.take() {
                Some(unsaved) => (unsaved, false),
                None => (
                    refresh.refresh_token().ok_or(HighQError::NotConnected)?,
                    true,
                ),
            };
            match self
                .request_token(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose_secret()),
                ])
                .await
            {
                Ok(grant) => break (grant, refresh_token, refresh, now),
                // The stored token was refused as already used: a store that does not lock across
                // processes (or a connection that read it just before another rotated it) may
                // have handed out a token another connection spent. Its rotated token (or the
                // access token it shared) is in the store by now: read the store again, once.
                Err(HighQError::TokenRejected(_)) if from_store && !reread => {
                    drop(refresh);
                    reread = true;
                }
                Err(err) => return Err(err),
            }
        };
        let expires_at = now
            + chrono::Duration::from_std(grant.expires_in).unwrap_or(chrono::Duration::minutes(5));
        if let Err(err) = refresh
            .commit(
                Some(grant.refresh_token.as_ref().unwrap_or(&refresh_token)),
                &grant.access_token,
                expires_at,
            )
            .await
        {
            auth.unsaved = Some(grant.refresh_token.unwrap_or(refresh_token));
            return Err(store_failed("saved")(err));
        }
        self.record_refresh_expiry(grant.refresh_expires_in).await;
        self.counters
            .token_refreshes
            .fetch_add(1, Ordering::Relaxed);
        auth.refused = None;
        auth.access = Some((
            grant.access_token.clone(),
            Instant::now() + grant.expires_in,
        ));
        Ok(grant.access_token)
    }

    /// Exchanges an authorization code (the first grant, after an admin consents) and saves the
    /// refresh token it yields.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<(), HighQError> {
        let grant = self
            .request_token(&[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", redirect_uri),
            ])
            .await?;
        let refresh = grant.refresh_token.ok_or_else(|| {
            HighQError::Protocol("the token response has no refresh_token".to_owned())
        })?;
        self.store
            .save(&refresh)
            .await
            .map_err(|err| HighQError::TokenStore {
                action: "saved",
                detail: err.to_string(),
            })?;
        self.record_refresh_expiry(grant.refresh_expires_in).await;
        self.auth.lock().await.access =
            Some((grant.access_token, Instant::now() + grant.expires_in));
        Ok(())
    }

    /// Issue 14 item 6: keeps when the refresh token expires, for the expiry warnings. Not
    /// keeping it costs only a warning, so a failure is logged, never returned.
    async fn record_refresh_expiry(&self, expires_in: Option<Duration>) {
        let Some(expires_in) = expires_in else {
            return;
        };
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::zero());
        if let Err(err) = self.store.record_refresh_expiry(expires_at).await {
            tracing::warn!(%err, "could not keep the HighQ refresh token's expiry");
        }
    }

    async fn request_token(&self, grant: &[(&str, &str)]) -> Result<Grant, HighQError> {
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.push(("client_id", &self.settings.client_id));
        form.push(("client_secret", self.settings.client_secret.expose_secret()));
        let response = self
            .http
            .post(self.token_url())
            .header(header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|err| {
                HighQError::Unavailable(format!("token endpoint: {}", describe_transport(&err)))
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|err| {
            HighQError::Unavailable(format!("token endpoint: {}", describe_transport(&err)))
        })?;
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(HighQError::Unavailable(format!(
                "the token endpoint answered HTTP {status}"
            )));
        }
        let body: Value = serde_json::from_str(&text).map_err(|_| {
            HighQError::Protocol(format!(
                "the token endpoint answered HTTP {status} without JSON"
            ))
        })?;
        if !status.is_success() {
            let code =
                flex_string(field(&body, "error")).unwrap_or_else(|| format!("HTTP {status}"));
            let description = flex_string(field(&body, "error_description")).unwrap_or_default();
            return Err(HighQError::TokenRejected(
                format!("{code}: {description}")
                    .trim_end_matches(": ")
                    .to_owned(),
            ));
        }
        let access_token = flex_string(field(&body, "access_token")).ok_or_else(|| {
            HighQError::Protocol("the token response has no access_token".to_owned())
        })?;
        Ok(Grant {
            access_token: SecretString::from(access_token),
            expires_in: Duration::from_secs(flex_u64(field(&body, "expires_in")).unwrap_or(300)),
            refresh_token: flex_string(field(&body, "refresh_token")).map(SecretString::from),
            refresh_expires_in: flex_u64(field(&body, "refresh_token_expires_in"))
                .map(Duration::from_secs),
        })
    }
}

struct Grant {
    access_token: SecretString,
    expires_in: Duration,
    refresh_token: Option<SecretString>,
    /// How long the refresh token works (`refresh_token_expires_in`), when HighQ says.
    refresh_expires_in: Option<Duration>,
}

fn describe_transport(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "the request timed out".to_owned()
    } else if err.is_connect() {
        format!("could not connect ({err})")
    } else {
        err.to_string()
    }
}

/// How long a 429 asks us to wait: until `X-Ratelimit-Reset` (epoch seconds), else `Retry-After`.
fn rate_limit_wait(headers: &header::HeaderMap) -> Duration {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(reset) = number("x-ratelimit-reset") {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // At least a moment, so a reset already past (clock skew) does not become a busy loop.
        return Duration::from_secs_f64((reset - now).max(0.1));
    }
    number("retry-after")
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
}

/// Answers at least this large are parsed off the run's task.
const LARGE_BODY_BYTES: usize = 256 * 1024;

fn parse_body(text: &str) -> Result<Value, HighQError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|_| {
        let start: String = text.chars().take(80).collect();
        HighQError::Protocol(format!("expected JSON, got {start:?}"))
    })
}

fn api_error(status: StatusCode, text: &str) -> HighQError {
    let body = ApiErrorBody::parse(text).unwrap_or_default();
    HighQError::Api {
        status: status.as_u16(),
        code: body.code,
        summary: body
            .summary
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        link: body.link,
    }
}
