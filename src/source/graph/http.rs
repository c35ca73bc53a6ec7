//! One Graph GET with the retry policy of SPEC "Source": 429/503 honour `Retry-After`, other 5xx
//! and timeouts back off exponentially with jitter, a cap on the total wait, and every wait
//! counted for the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng as _;
use reqwest::StatusCode;

use super::wire::{GraphErrorBody, parse_graph_error, truncate};
use crate::source::FetchStats;

/// The report's counters, shared by the concurrent reads of one call.
#[derive(Debug, Default)]
pub(crate) struct StatsCounter {
    requests: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    waited_ms: AtomicU64,
}

impl StatsCounter {
    pub fn snapshot(&self) -> FetchStats {
        FetchStats {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            waited_ms: self.waited_ms.load(Ordering::Relaxed),
        }
    }
}

/// How hard to try: from the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub max_retries: u32,
    pub max_wait: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// The wait spent so far by one unit of work (a group, a count, a look-up): the cap is per unit,
/// so one throttled group cannot starve the rest and a tenant's read stays bounded.
#[derive(Debug, Default)]
pub(crate) struct RetryBudget {
    pub waited: Duration,
}

/// Why a GET gave no usable answer.
#[derive(Debug, Clone)]
pub(crate) enum GetError {
    /// Graph answered with an error status, after any retries.
    Status {
        status: StatusCode,
        graph: Option<GraphErrorBody>,
        excerpt: String,
        gave_up_retrying: Option<String>,
    },
    /// No answer: timeouts, refused connections, broken bodies, after any retries.
    Transport(String),
    /// The credential could not produce a token.
    Token(crate::source::SourceError),
}

impl GetError {
    pub fn graph_code(&self) -> Option<&str> {
        match self {
            Self::Status { graph: Some(g), .. } => Some(g.code.as_str()),
            _ => None,
        }
    }

    /// A sentence for the report, without the raw body beyond a short excerpt.
    pub fn describe(&self) -> String {
        match self {
            Self::Status {
                status,
                graph,
                excerpt,
                gave_up_retrying,
            } => {
                let mut text = match graph {
                    Some(g) => {
                        let mut t = format!(
                            "Graph answered HTTP {} {}: {}",
                            status.as_u16(),
                            g.code,
                            g.message
                        );
                        if let Some(id) = g.request_id() {
                            t.push_str(&format!(" (request-id {id})"));
                        }
                        t
                    }
                    None if excerpt.is_empty() => {
                        format!("Graph answered HTTP {}", status.as_u16())
                    }
                    None => format!("Graph answered HTTP {} with {excerpt:?}", status.as_u16()),
                };
                if let Some(why) = gave_up_retrying {
                    text.push_str(&format!("; {why}"));
                }
                text
            }
            Self::Transport(text) => text.clone(),
            Self::Token(err) => err.to_string(),
        }
    }
}

/// Parses `Retry-After`: seconds, fractions allowed (`2.128`), or an HTTP date.
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The exponential back-off for retry number `attempt` (0-based), with "equal jitter".
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .backoff_base
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(policy.backoff_max);
    let jitter: f64 = rand::rng().random_range(0.5..=1.0);
    exp.mul_f64(jitter)
}

pub(crate) struct GetRequest<'a> {
    pub url: &'a str,
    pub token: &'a str,
    pub consistency_eventual: bool,
    /// A 2xx answer is handed over once its headers are in, its body still arriving (a page of
    /// members, whose next link is read from its start: issue 13); otherwise it is read whole.
    pub arriving: bool,
}

/// A 2xx answer.
pub(crate) enum Answer {
    Whole(bytes::Bytes),
    /// Its body still arriving (asked for with [`GetRequest::arriving`]).
    Arriving(reqwest::Response),
}

impl Answer {
    /// The whole body; one that breaks off is a transport failure.
    pub async fn whole(self) -> Result<bytes::Bytes, GetError> {
        match self {
            Self::Whole(body) => Ok(body),
            Self::Arriving(response) => {
                let status = response.status().as_u16();
                response
                    .bytes()
                    .await
                    .map_err(|e| GetError::Transport(broke_off(status, &e)))
            }
        }
    }
}

/// The sentence for a body that broke off.
pub(crate) fn broke_off(status: u16, err: &reqwest::Error) -> String {
    format!("reading Graph's answer (HTTP {status}) broke off: {err}")
}

/// How one attempt at a GET ended.
pub(crate) enum Attempt {
    /// A 2xx answer.
    Answered(Answer),
    /// Worth trying again once `wait` has passed since `answered_at` (SPEC's retry policy).
    Retry {
        failure: GetError,
        wait: Duration,
        answered_at: tokio::time::Instant,
    },
    /// Not worth trying again: the answer stands.
    Failed(GetError),
}

/// Sends one GET, retrying what SPEC says to retry, and returns the body of a 2xx answer.
pub(crate) async fn get_with_retries(
    http: &reqwest::Client,
    request: GetRequest<'_>,
    policy: &RetryPolicy,
    budget: &mut RetryBudget,
    stats: &StatsCounter,
) -> Result<bytes::Bytes, GetError> {
    let first = attempt(http, &request, policy, 0, stats).await;
    keep_trying(http, request, first, policy, budget, stats)
        .await?
        .whole()
        .await
}

/// Sends GET attempt number `number` (0-based; it sets the back-off) once.
pub(crate) async fn attempt(
    http: &reqwest::Client,
    request: &GetRequest<'_>,
    policy: &RetryPolicy,
    number: u32,
    stats: &StatsCounter,
) -> Attempt {
    let mut builder = http
        .get(request.url)
        .bearer_auth(request.token)
        .header(reqwest::header::ACCEPT, "application/json");
    if request.consistency_eventual {
        builder = builder.header("ConsistencyLevel", "eventual");
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let outcome = match builder.send().await {
        Ok(response) if request.arriving && response.status().is_success() => {
            return Attempt::Answered(Answer::Arriving(response));
        }
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
            match response.bytes().await {
                Ok(body) if status.is_success() => return Attempt::Answered(Answer::Whole(body)),
                Ok(body) => Err((status, retry_after, body)),
                Err(e) => Ok(broke_off(status.as_u16(), &e)),
            }
        }
        Err(e) if e.is_timeout() => Ok(format!(
            "Graph did not answer within the request timeout ({e})"
        )),
        Err(e) => Ok(format!("Graph could not be reached: {e}")),
    };
    let answered_at = tokio::time::Instant::now();
    // Ok(text) is a transport failure, Err(..) an error status.
    let (wait, failure) = match outcome {
        Ok(transport) => (backoff(policy, number), GetError::Transport(transport)),
        Err((status, retry_after, body)) => {
            let graph = parse_graph_error(&body);
            let excerpt = truncate(String::from_utf8_lossy(&body).trim(), 200);
            let throttled = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            let failure = GetError::Status {
                status,
                graph,
                excerpt,
                gave_up_retrying: None,
            };
            if throttled {
                stats.throttled.fetch_add(1, Ordering::Relaxed);
                (
                    retry_after.unwrap_or_else(|| backoff(policy, number)),
                    failure,
                )
            } else if status.is_server_error() {
                (backoff(policy, number), failure)
            } else {
                return Attempt::Failed(failure);
            }
        }
    };
    Attempt::Retry {
        failure,
        wait,
        answered_at,
    }
}

/// Carries on from a first attempt (number 0) until an answer stands, the retries run out or
/// the next wait would exceed the unit's budget. A wait runs from when the attempt before was
/// answered, so a first attempt taken in advance is not retried sooner than `Retry-After`.
pub(crate) async fn keep_trying(
    http: &reqwest::Client,
    request: GetRequest<'_>,
    first: Attempt,
    policy: &RetryPolicy,
    budget: &mut RetryBudget,
    stats: &StatsCounter,
) -> Result<Answer, GetError> {
    let mut number: u32 = 0;
    let mut outcome = first;
    loop {
        let (failure, wait, answered_at) = match outcome {
            Attempt::Answered(answer) => return Ok(answer),
            Attempt::Failed(failure) => return Err(failure),
            Attempt::Retry {
                failure,
                wait,
                answered_at,
            } => (failure, wait, answered_at),
        };
        if number >= policy.max_retries {
            return Err(gave_up(failure, format!("gave up after {number} retries")));
        }
        if budget.waited + wait > policy.max_wait {
            return Err(gave_up(
                failure,
                format!(
                    "gave up after {number} retries: waiting another {:.1} s would exceed the {:.0} s retry budget",
                    wait.as_secs_f64(),
                    policy.max_wait.as_secs_f64()
                ),
            ));
        }
        tokio::time::sleep_until(answered_at + wait).await;
        budget.waited += wait;
        number += 1;
        stats.retries.fetch_add(1, Ordering::Relaxed);
        stats.waited_ms.fetch_add(
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        outcome = attempt(http, &request, policy, number, stats).await;
    }
}

fn gave_up(failure: GetError, why: String) -> GetError {
    match failure {
        GetError::Status {
            status,
            graph,
            excerpt,
            ..
        } => GetError::Status {
            status,
            graph,
            excerpt,
            gave_up_retrying: Some(why),
        },
        GetError::Transport(text) => GetError::Transport(format!("{text}; {why}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_fractional_seconds_and_http_dates() {
        let now = chrono::Utc::now();
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("-1", now), None);
        let later = (now + chrono::Duration::seconds(10)).to_rfc2822();
        let waited = parse_retry_after(&later, now).expect("an HTTP date");
        assert!(waited <= Duration::from_secs(10) && waited >= Duration::from_secs(9));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_retries: 5,
            max_wait: Duration::from_secs(60),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
        };
        let first = backoff(&policy, 0);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let third = backoff(&policy, 2);
        assert!(third >= Duration::from_millis(175) && third <= Duration::from_millis(350));
    }
}
