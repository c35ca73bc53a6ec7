//! HighQ-style rate limiting for the emulator (SPEC.md "Target: HighQ"): a fixed window of
//! `max_requests` API requests per `window_secs` seconds, aligned to the epoch, for the instance's
//! one OAuth client (the emulator has one). While a limit is set, every API answer carries
//! `X-Ratelimit-Limit`, `X-Ratelimit-Remaining` and `X-Ratelimit-Reset` (the end of the window, in
//! epoch seconds), and a request over the limit is answered 429 with HighQ's error body and the
//! same headers. The requests let through are counted per window, so a test measures the rate a
//! client achieved from the emulator's side, not from its own clock.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::{HighQEmulator, SharedHighQ, epoch_secs, too_many_requests};

/// What the limiter saw: API requests let through, per window (keyed by the window's start in
/// epoch seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitLog {
    windows: BTreeMap<u64, u32>,
}

impl RateLimitLog {
    /// Requests let through per window, oldest first: `(window start, requests)`.
    pub fn per_window(&self) -> Vec<(u64, u32)> {
        self.windows.iter().map(|(start, n)| (*start, *n)).collect()
    }
}

/// The middleware in front of the API routes: counts the request in its window, answers 429 once
/// the window is spent, and labels every answer with what is left.
pub(super) async fn limit(
    State(state): State<SharedHighQ>,
    request: Request,
    next: Next,
) -> Response {
    let labels = {
        let mut s = state.lock().expect("emulator lock");
        match s.rate_limit {
            None => None,
            Some(limit) => {
                let window = limit.window_secs.max(1);
                let start = epoch_secs() as u64 / window * window;
                let reset = start + window;
                let used = s.rate_limit_log.windows.entry(start).or_default();
                if *used >= limit.max_requests {
                    let mut response = too_many_requests(&mut s, reset);
                    label(response.headers_mut(), limit.max_requests, 0, reset);
                    return response;
                }
                *used += 1;
                Some((limit.max_requests, limit.max_requests - *used, reset))
            }
        }
    };
    let mut response = next.run(request).await;
    if let Some((limit, remaining, reset)) = labels {
        label(response.headers_mut(), limit, remaining, reset);
    }
    response
}

fn label(headers: &mut HeaderMap, limit: u32, remaining: u32, reset: u64) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

impl HighQEmulator {
    /// 429 answers served so far: the window limit's and injected ones.
    pub fn rate_limited(&self) -> u64 {
        self.with(|s| s.rate_limited)
    }

    /// API requests the rate limit let through, per window (empty while no limit is set).
    pub fn rate_limit_log(&self) -> RateLimitLog {
        self.with(|s| s.rate_limit_log.clone())
    }
}
