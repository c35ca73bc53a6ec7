//! Fault injection for the Graph endpoints: throttling, outages, slow answers and broken pages,
//! at a seeded rate or on the Nth matching request, so tests are reproducible.

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// Which faults to inject. Rules are tried in order; the first that fires wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    pub fn none() -> Self {
        Self::default()
    }

    /// One rule, seed 0.
    pub fn single(rule: FaultRule) -> Self {
        Self {
            seed: 0,
            rules: vec![rule],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    pub when: FaultTrigger,
    /// Only Graph requests whose path and query contain this text; all when absent.
    #[serde(default)]
    pub path_contains: Option<String>,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultTrigger {
    /// Each matching request with this probability, from the plan's seeded generator.
    Rate {
        probability: f64,
    },
    /// The Nth matching request (1-based), once.
    NthRequest {
        n: u64,
    },
    Always,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// 429 `TooManyRequests` with `Retry-After` in (possibly fractional) seconds.
    Throttle { retry_after_secs: f64 },
    /// 503 `ServiceUnavailable`, with `Retry-After` when given.
    Unavailable { retry_after_secs: Option<f64> },
    /// Any status with Graph's error envelope, such as 500 `InternalServerError` or 403.
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// The normal answer, after a delay.
    Latency { millis: u64 },
    /// The normal answer cut in the middle of its JSON.
    TruncatedPage,
    /// A 200 whose body is not JSON.
    MalformedPage,
    /// A 200 JSON page without its `value` list.
    MissingValue,
    /// The normal page with its `@odata.nextLink` pointing at `url` (another host, say).
    NextLinkTo { url: String },
    /// The normal answer's first half at once and the rest `millis` later, as a large page
    /// arrives over a slow network.
    StalledBody { millis: u64 },
    /// The normal answer's first half, then the connection breaks.
    BrokenBody,
}

/// The plan with its generator and counters, as the server holds it.
#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    rng: StdRng,
    seen: Vec<u64>,
    fired_nth: Vec<bool>,
}

impl FaultState {
    pub fn new(plan: FaultPlan) -> Self {
        let rules = plan.rules.len();
        Self {
            rng: StdRng::seed_from_u64(plan.seed),
            plan,
            seen: vec![0; rules],
            fired_nth: vec![false; rules],
        }
    }

    /// The fault for this request, if any rule fires.
    pub fn next(&mut self, path_and_query: &str) -> Option<Fault> {
        for (i, rule) in self.plan.rules.iter().enumerate() {
            if let Some(filter) = &rule.path_contains {
                if !path_and_query.contains(filter.as_str()) {
                    continue;
                }
            }
            self.seen[i] += 1;
            let fires = match rule.when {
                FaultTrigger::Always => true,
                FaultTrigger::Rate { probability } => self.rng.random::<f64>() < probability,
                FaultTrigger::NthRequest { n } => {
                    let fire = !self.fired_nth[i] && self.seen[i] == n;
                    if fire {
                        self.fired_nth[i] = true;
                    }
                    fire
                }
            };
            if fires {
                return Some(rule.fault.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_request_rule_fires_once_on_the_nth_matching_request() {
        let mut state = FaultState::new(FaultPlan::single(FaultRule {
            when: FaultTrigger::NthRequest { n: 2 },
            path_contains: Some("/members".into()),
            fault: Fault::MalformedPage,
        }));
        assert_eq!(state.next("/v1.0/groups/x"), None);
        assert_eq!(state.next("/v1.0/groups/x/members"), None);
        assert_eq!(
            state.next("/v1.0/groups/x/members"),
            Some(Fault::MalformedPage)
        );
        assert_eq!(state.next("/v1.0/groups/x/members"), None);
    }

    #[test]
    fn a_rate_rule_is_reproducible_from_its_seed() {
        let plan = FaultPlan {
            seed: 7,
            rules: vec![FaultRule {
                when: FaultTrigger::Rate { probability: 0.3 },
                path_contains: None,
                fault: Fault::Throttle {
                    retry_after_secs: 0.05,
                },
            }],
        };
        let run = |plan: &FaultPlan| {
            let mut state = FaultState::new(plan.clone());
            (0..100)
                .map(|_| state.next("/x").is_some())
                .collect::<Vec<_>>()
        };
        let first = run(&plan);
        assert_eq!(first, run(&plan));
        let fired = first.iter().filter(|f| **f).count();
        assert!((15..=45).contains(&fired), "{fired}");
    }
}
