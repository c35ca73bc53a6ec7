//! Trouble on demand for the HighQ emulator: injected failures, latency and rate limiting.

use std::time::Duration;

/// When an injected fault fires, counting API requests (not token requests) from 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultTrigger {
    /// Exactly the Nth API request.
    OnRequest(u64),
    /// Each API request with this probability (0.0–1.0).
    AtRate(f64),
    /// Every API request.
    Always,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status (and a generic error body) instead of handling the request.
    Status(u16),
    /// Answer 429 with `X-Ratelimit-Reset` at least `reset_after` from now; every request before
    /// that moment gets 429 too, as a real limiter would.
    RateLimit { reset_after: Duration },
    /// Handle the request normally, but only after this delay.
    Latency(Duration),
    /// The request is carried out, then answered with a 504 as if the answer were lost on the
    /// way back (a timeout after HighQ did the work).
    LoseAnswer,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub trigger: FaultTrigger,
    pub action: FaultAction,
    /// How many more times it may fire; `None` for no limit.
    pub remaining: Option<u32>,
}

impl Fault {
    pub fn on_request(n: u64, action: FaultAction) -> Self {
        Self {
            trigger: FaultTrigger::OnRequest(n),
            action,
            remaining: Some(1),
        }
    }

    pub fn at_rate(probability: f64, action: FaultAction) -> Self {
        Self {
            trigger: FaultTrigger::AtRate(probability),
            action,
            remaining: None,
        }
    }

    pub fn always(action: FaultAction) -> Self {
        Self {
            trigger: FaultTrigger::Always,
            action,
            remaining: None,
        }
    }

    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Whether the fault fires for API request number `n`; uses up one firing when it does.
    pub(super) fn fires(&mut self, n: u64) -> bool {
        if self.remaining == Some(0) {
            return false;
        }
        let fires = match self.trigger {
            FaultTrigger::OnRequest(k) => k == n,
            FaultTrigger::AtRate(p) => rand::random_bool(p.clamp(0.0, 1.0)),
            FaultTrigger::Always => true,
        };
        if fires {
            if let Some(left) = &mut self.remaining {
                *left -= 1;
            }
        }
        fires
    }
}

/// A fixed-window request limit, like HighQ's: at most `max_requests` API requests per
/// `window_secs`-second window aligned to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max_requests: u32,
    pub window_secs: u64,
}
