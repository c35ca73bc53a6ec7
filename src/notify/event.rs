//! What is notified, as data: the events, their JSON payload (the webhook body, and the text of
//! an email), and which run outcomes make which event. Pure: no IO, no clock.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::settings::{EventKind, TenantNotifications};
use crate::domain::TenantKey;
use crate::store::{RunId, RunStatus};
use crate::sync::RunOutcome;

/// One thing worth telling a tenant's admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// R18: the run applied nothing and waits for an admin's approval.
    RunHeld {
        run_id: RunId,
        would_deactivate: usize,
    },
    RunFailed {
        run_id: RunId,
        message: Option<String>,
    },
    /// The run completed with more errors than the tenant's threshold.
    RunErrors {
        run_id: RunId,
        errors: usize,
        threshold: u64,
    },
    /// A credential stops working at `expires_at` (item 6).
    CredentialExpiring {
        /// `graph_app` (the Entra app registration's secret or certificate) or
        /// `highq_refresh_token`.
        credential: String,
        expires_at: DateTime<Utc>,
        days_left: i64,
    },
    /// Runs failed `failed_nights` nights in a row: automatic runs back off until `next_attempt`.
    Quarantined {
        failed_nights: u32,
        next_attempt: DateTime<Utc>,
        /// The last failed run's message: why.
        last_failure: String,
    },
    /// The runs of one day in the tenant's time zone.
    DailyDigest {
        day: NaiveDate,
        runs: Vec<DigestRun>,
    },
    /// Asked for by someone checking the settings.
    Test { requested_by: String },
}

/// One run in a daily digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRun {
    pub run_id: RunId,
    pub trigger: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub errors: usize,
    pub warnings: usize,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Self::RunHeld { .. } => EventKind::RunHeld,
            Self::RunFailed { .. } => EventKind::RunFailed,
            Self::RunErrors { .. } => EventKind::RunErrors,
            Self::CredentialExpiring { .. } => EventKind::CredentialExpiring,
            Self::Quarantined { .. } => EventKind::Quarantined,
            Self::DailyDigest { .. } => EventKind::DailyDigest,
            Self::Test { .. } => EventKind::Test,
        }
    }

    /// One sentence for people: an email's subject, the payload's `summary`.
    pub fn summary(&self, tenant: &TenantKey) -> String {
        match self {
            Self::RunHeld {
                run_id,
                would_deactivate,
            } => format!(
                "{tenant}: run {run_id} is held for approval: it would deactivate {would_deactivate} people"
            ),
            Self::RunFailed { run_id, message } => match message {
                Some(message) => format!("{tenant}: run {run_id} failed: {message}"),
                None => format!("{tenant}: run {run_id} failed"),
            },
            Self::RunErrors {
                run_id,
                errors,
                threshold,
            } => format!(
                "{tenant}: run {run_id} completed with {errors} errors (threshold {threshold})"
            ),
            Self::CredentialExpiring {
                credential,
                expires_at,
                days_left,
            } => format!(
                "{tenant}: the {} expires in {days_left} days ({})",
                credential_label(credential),
                expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
            Self::Quarantined {
                failed_nights,
                next_attempt,
                last_failure,
            } => format!(
                "{tenant}: quarantined after {failed_nights} failed nights; the next automatic run is at {} (last failure: {last_failure})",
                next_attempt.format("%Y-%m-%d %H:%M UTC")
            ),
            Self::DailyDigest { day, runs } => {
                let failed = runs.iter().filter(|r| r.status == "failed").count();
                format!("{tenant}: {} runs on {day} ({failed} failed)", runs.len())
            }
            Self::Test { requested_by } => {
                format!("{tenant}: test notification, asked for by {requested_by}")
            }
        }
    }

    /// The webhook body (and the basis of an email): `id` lets a receiver drop a repeat.
    pub fn payload(&self, id: uuid::Uuid, tenant: &TenantKey, at: DateTime<Utc>) -> Payload {
        Payload {
            id,
            tenant: tenant.clone(),
            at,
            summary: self.summary(tenant),
            event: self.clone(),
        }
    }
}

/// What the credential names mean to people.
pub fn credential_label(credential: &str) -> &str {
    match credential {
        "graph_app" => "Entra app credential (client secret or certificate)",
        "highq_refresh_token" => "HighQ refresh token",
        other => other,
    }
}

/// A notification as sent: the webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub id: uuid::Uuid,
    pub tenant: TenantKey,
    pub at: DateTime<Utc>,
    pub summary: String,
    #[serde(flatten)]
    pub event: Event,
}

/// The event a finished run makes for a tenant with these settings, if any: held, failed, or
/// completed with more errors than the threshold, each only when the tenant asked for it.
pub fn event_for_run(outcome: &RunOutcome, settings: &TenantNotifications) -> Option<Event> {
    if outcome.already_running {
        return None;
    }
    let errors = outcome
        .summary
        .applied
        .errors
        .max(outcome.summary.planned.errors);
    let event = match outcome.status {
        RunStatus::Held => Event::RunHeld {
            run_id: outcome.run_id,
            would_deactivate: outcome.summary.planned.users_deactivated,
        },
        RunStatus::Failed => Event::RunFailed {
            run_id: outcome.run_id,
            message: outcome.message.clone(),
        },
        RunStatus::CompletedWithErrors if errors as u64 > settings.error_threshold => {
            Event::RunErrors {
                run_id: outcome.run_id,
                errors,
                threshold: settings.error_threshold,
            }
        }
        _ => return None,
    };
    settings.wants(event.kind()).then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunSummary;

    fn outcome(status: RunStatus, errors: usize) -> RunOutcome {
        let mut summary = RunSummary::default();
        summary.applied.errors = errors;
        summary.planned.users_deactivated = 600;
        RunOutcome {
            run_id: 7,
            status,
            summary,
            message: Some("Graph said 403".to_owned()),
            already_running: false,
            timings: Default::default(),
        }
    }

    fn wanting(events: &[EventKind], threshold: u64) -> TenantNotifications {
        TenantNotifications {
            events: events.to_vec(),
            error_threshold: threshold,
            ..TenantNotifications::default()
        }
    }

    #[test]
    fn a_held_or_failed_run_is_notified_only_when_asked_for() {
        let all = wanting(EventKind::CHOOSABLE, 0);
        assert_eq!(
            event_for_run(&outcome(RunStatus::Held, 0), &all),
            Some(Event::RunHeld {
                run_id: 7,
                would_deactivate: 600
            })
        );
        assert!(matches!(
            event_for_run(&outcome(RunStatus::Failed, 0), &all),
            Some(Event::RunFailed { .. })
        ));
        assert_eq!(
            event_for_run(&outcome(RunStatus::Held, 0), &wanting(&[], 0)),
            None
        );
        assert_eq!(event_for_run(&outcome(RunStatus::Succeeded, 0), &all), None);
    }

    #[test]
    fn errors_are_notified_above_the_threshold_only() {
        let settings = wanting(&[EventKind::RunErrors], 5);
        assert_eq!(
            event_for_run(&outcome(RunStatus::CompletedWithErrors, 5), &settings),
            None
        );
        assert_eq!(
            event_for_run(&outcome(RunStatus::CompletedWithErrors, 6), &settings),
            Some(Event::RunErrors {
                run_id: 7,
                errors: 6,
                threshold: 5
            })
        );
    }

    #[test]
    fn the_payload_names_the_event_and_tenant() {
        let tenant = TenantKey::parse("acme").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-01-15T00:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let payload = Event::Quarantined {
            failed_nights: 3,
            next_attempt: at,
            last_failure: "HighQ refused the credential".to_owned(),
        }
        .payload(uuid::Uuid::nil(), &tenant, at);
        let json = serde_json::to_value(&payload).unwrap();
        assert_eq!(json["event"], "quarantined");
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["failed_nights"], 3);
        assert!(
            json["summary"]
                .as_str()
                .unwrap()
                .contains("3 failed nights")
        );
        let back: Payload = serde_json::from_value(json).unwrap();
        assert_eq!(back, payload);
    }
}
