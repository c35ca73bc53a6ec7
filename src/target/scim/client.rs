//! The HTTP side of the SCIM adapter: bearer token, `application/scim+json`, bounded
//! concurrency, `If-Match`, retries of 429 / 5xx / lost connections honouring `Retry-After`,
//! and error bodies turned into [`ScimError`]s.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use super::error::ScimError;
use super::wire::{field, flex_string};

const SCIM_JSON: &str = "application/scim+json";

/// The knobs of the HTTP layer.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub base_url: Url,
    pub token: SecretString,
    pub concurrency: usize,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub max_retry_wait: Duration,
}

/// Counters worth showing in a run's report and asserting in tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScimStats {
    /// Requests sent in total, retries included.
    pub requests: u32,
    /// Requests sent again after a 429, a 5xx or a lost connection.
    pub retries: u32,
}

/// One request, relative to the base URL.
pub(crate) struct Call {
    pub method: Method,
    pub path: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    pub if_match: Option<String>,
    /// Whether a 5xx or a timeout may be retried: false for creates, where a retry after a lost
    /// answer could create the resource twice.
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
            if_match: None,
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

    pub fn if_match(mut self, etag: Option<String>) -> Self {
        self.if_match = etag;
        self
    }
}

/// A successful answer: the JSON body (`Null` when there is none, as with 204) and the version
/// the server gave the resource, from the `ETag` header or `meta.version`.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub body: Value,
    pub etag: Option<String>,
    pub location: Option<String>,
}

pub(crate) struct Client {
    http: reqwest::Client,
    settings: ClientSettings,
    permits: Semaphore,
    requests: AtomicU32,
    retries: AtomicU32,
}

impl Client {
    pub fn new(settings: ClientSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout.min(settings.request_timeout))
            .timeout(settings.request_timeout)
            .user_agent(concat!("dirsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("the HTTP client could not be built: {err}"))?;
        Ok(Self {
            http,
            permits: Semaphore::new(settings.concurrency.max(1)),
            settings,
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        })
    }

    pub fn stats(&self) -> ScimStats {
        ScimStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    pub fn url(&self, segments: &[String], query: &[(&'static str, String)]) -> Url {
        let mut url = self.settings.base_url.clone();
        {
            // `base_url` was checked to be an http(s) URL when the adapter was built.
            let mut path = url.path_segments_mut().expect("base URL can have a path");
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends `call`, retrying 429s, 5xx (when the call allows it) and lost connections with the
    /// server's `Retry-After` or an exponential back-off, within the retry count and wait cap.
    pub async fn send(&self, call: Call) -> Result<Answer, ScimError> {
        let url = self.url(&call.path, &call.query);
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        loop {
            let outcome = self.send_once(&call, &url).await;
            let (retryable, asked, failure) = match outcome {
                Ok(answer) => return Ok(answer),
                Err(Failure::Transport { err, connect }) => {
                    (call.retry_server_errors || connect, None, err)
                }
                Err(Failure::Answer { err, retry_after }) => {
                    let status = err.status().unwrap_or(0);
                    // 429 and 503 mean the request was not processed, so even a create is resent.
                    let retryable = status == 429
                        || status == 503
                        || (status >= 500 && call.retry_server_errors);
                    (retryable, retry_after, err)
                }
            };
            if !retryable || attempt >= self.settings.max_retries {
                return Err(exhausted(failure, attempt));
            }
            attempt += 1;
            let wait = asked.unwrap_or_else(|| self.back_off(attempt));
            if waited + wait > self.settings.max_retry_wait {
                return Err(ScimError::Unavailable(format!(
                    "{failure}; waiting {wait:?} more would exceed the {:?} allowed",
                    self.settings.max_retry_wait
                )));
            }
            tracing::info!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "SCIM call failed ({failure}), retrying"
            );
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    async fn send_once(&self, call: &Call, url: &Url) -> Result<Answer, Failure> {
        let _permit = self.permits.acquire().await.expect("never closed");
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .bearer_auth(self.settings.token.expose_secret())
            .header(header::ACCEPT, format!("{SCIM_JSON}, application/json"));
        if let Some(body) = &call.body {
            request = request
                .header(header::CONTENT_TYPE, SCIM_JSON)
                .body(body.to_string());
        }
        if let Some(etag) = &call.if_match {
            request = request.header(header::IF_MATCH, etag);
        }
        let transport = |err: reqwest::Error| Failure::Transport {
            connect: err.is_connect(),
            err: ScimError::Unavailable(describe_transport(&err)),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(Failure::Answer {
                err: ScimError::from_answer(status.as_u16(), &text),
                retry_after: retry_after(&headers),
            });
        }
        let body = parse_body(status, &text).map_err(|err| Failure::Answer {
            err,
            retry_after: None,
        })?;
        let header_text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header_text(header::ETAG)
            .or_else(|| flex_string(field(field(&body, "meta"), "version")));
        Ok(Answer {
            body,
            etag,
            location: header_text(header::LOCATION),
        })
    }

    fn back_off(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_base.saturating_mul(1 << attempt.min(6));
        base.mul_f64(rand::random_range(0.5..1.0))
    }
}

enum Failure {
    Transport {
        err: ScimError,
        connect: bool,
    },
    Answer {
        err: ScimError,
        retry_after: Option<Duration>,
    },
}

/// The error reported once retries are spent: throttling and server errors become
/// "unavailable", with how often we tried.
fn exhausted(failure: ScimError, attempts: u32) -> ScimError {
    match failure {
        ScimError::Api { status, .. } if attempts > 0 && (status == 429 || status >= 500) => {
            ScimError::Unavailable(format!("{failure} (after {} attempts)", attempts + 1))
        }
        ScimError::Unavailable(detail) if attempts > 0 => {
            ScimError::Unavailable(format!("{detail} (after {} attempts)", attempts + 1))
        }
        other => other,
    }
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

/// `Retry-After` as seconds (possibly fractional) or an HTTP date.
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let left = when.signed_duration_since(chrono::Utc::now());
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

fn parse_body(status: StatusCode, text: &str) -> Result<Value, ScimError> {
    if status == StatusCode::NO_CONTENT || text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|_| {
        let start: String = text.chars().take(80).collect();
        ScimError::Protocol(format!("expected JSON, got {start:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "2.5".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(2500)));
        headers.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn an_empty_success_is_no_body_and_garbage_is_a_protocol_error() {
        assert_eq!(parse_body(StatusCode::NO_CONTENT, ""), Ok(Value::Null));
        assert_eq!(parse_body(StatusCode::OK, " "), Ok(Value::Null));
        assert!(matches!(
            parse_body(StatusCode::OK, "<html>"),
            Err(ScimError::Protocol(_))
        ));
    }
}
