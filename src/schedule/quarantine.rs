//! Issue 14: quarantine and pause, decided in one place, as pure functions of the tenant's runs
//! and pauses, so the scheduler, the API and the console say the same thing.
//!
//! A tenant whose automatic runs end `failed` N nights in a row (`sync.quarantine_after_failed_nights`,
//! default 3) is quarantined: its automatic runs back off — the next attempt a day later than it
//! would have been (the next midnight is skipped), then weekly — and the midnights in between are
//! recorded as `skipped` with why. Only `failed` counts: a run that `completed with errors` read
//! and applied what it could, so the tenant works. Manual runs that fail do not count (an admin
//! trying things should not quarantine a tenant), but any run that reads the tenant — succeeded,
//! completed with errors, held or rejected — ends the streak and so lifts a quarantine: a Force
//! sync that succeeds, or a backoff attempt that does. A fix (a change to the tenant's connection
//! settings or credentials) lifts it too: failed runs before the fix no longer count.

use chrono::{DateTime, Days, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::start_of_day;
use crate::store::{Pause, RunId, RunRecord, RunStatus, TriggerKind};

/// When a tenant is quarantined and how its automatic runs back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantinePolicy {
    /// Automatic runs failed in a row that quarantine a tenant; 0 never quarantines.
    pub after_failed_nights: u32,
    /// Days from the failure that quarantined the tenant to the first backoff attempt (2: one
    /// midnight skipped, the attempt "a day later" than the schedule).
    pub first_retry_days: u32,
    /// Days between later attempts while each fails.
    pub retry_days: u32,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        Self {
            after_failed_nights: 3,
            first_retry_days: 2,
            retry_days: 7,
        }
    }
}

/// A quarantined tenant: why, since when, and when it is tried next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantine {
    /// The limit that was reached (the policy's N).
    pub after_failed_nights: u32,
    /// Automatic runs failed in a row so far (N, plus the backoff attempts that failed).
    pub failed_nights: u32,
    /// The failed run that reached the limit; the quarantine is announced once, for it.
    pub started_by_run: RunId,
    pub since: DateTime<Utc>,
    pub last_failed_run: RunId,
    /// The last failure's message: why.
    pub last_failure: String,
    /// Backoff attempts made since (each failed).
    pub attempts: u32,
    /// The midnight of the next automatic attempt; earlier midnights are skipped.
    pub next_attempt: DateTime<Utc>,
}

impl Quarantine {
    /// "quarantined after 3 failed nights; next attempt 2026-01-17 00:00 GMT; last failure: …"
    pub fn reason(&self, zone: Tz) -> String {
        format!(
            "quarantined after {} failed nights; next attempt {}; last failure: {}",
            self.after_failed_nights,
            local_minute(zone, self.next_attempt),
            self.last_failure
        )
    }
}

/// Works out from the tenant's runs (newest first) whether it is quarantined. Failed runs that
/// started before `lifted_at` (a fix) do not count.
pub fn assess(
    policy: &QuarantinePolicy,
    zone: Tz,
    runs: &[RunRecord],
    lifted_at: Option<DateTime<Utc>>,
) -> Option<Quarantine> {
    if policy.after_failed_nights == 0 {
        return None;
    }
    let mut failed: Vec<&RunRecord> = Vec::new();
    for run in runs {
        if lifted_at.is_some_and(|lifted| run.started_at < lifted) {
            break;
        }
        match run.status {
            RunStatus::Running | RunStatus::Skipped | RunStatus::Interrupted => continue,
            RunStatus::Failed if run.trigger.kind == TriggerKind::Automatic => failed.push(run),
            RunStatus::Failed => continue,
            RunStatus::Succeeded
            | RunStatus::CompletedWithErrors
            | RunStatus::Held
            | RunStatus::Rejected => break,
        }
    }
    let limit = policy.after_failed_nights as usize;
    if failed.len() < limit {
        return None;
    }
    let started_by = failed[failed.len() - limit];
    let last = failed[0];
    let attempts = (failed.len() - limit) as u32;
    let wait = if attempts == 0 {
        policy.first_retry_days
    } else {
        policy.retry_days
    };
    let last_date = last.started_at.with_timezone(&zone).date_naive();
    let next_date = last_date
        .checked_add_days(Days::new(wait.max(1).into()))
        .unwrap_or(last_date);
    Some(Quarantine {
        after_failed_nights: policy.after_failed_nights,
        failed_nights: failed.len() as u32,
        started_by_run: started_by.id,
        since: started_by.finished_at.unwrap_or(started_by.started_at),
        last_failed_run: last.id,
        last_failure: last
            .message
            .clone()
            .unwrap_or_else(|| "the run failed".to_owned()),
        attempts,
        next_attempt: start_of_day(zone, next_date),
    })
}

/// What to do with a tenant's due midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MidnightDecision {
    Run,
    /// Record the midnight as a skipped run with this message.
    Skip(String),
}

/// The one decision: a global pause, then the tenant's pause, then a quarantine whose next
/// attempt is later than `midnight`, each skips it and says why; otherwise it runs.
pub fn decide_midnight(
    zone: Tz,
    midnight: DateTime<Utc>,
    service: Option<&Pause>,
    tenant: Option<&Pause>,
    quarantine: Option<&Quarantine>,
) -> MidnightDecision {
    if let Some(pause) = service {
        return MidnightDecision::Skip(format!(
            "skipped: dirsync is paused for maintenance ({})",
            paused_by(zone, pause)
        ));
    }
    if let Some(pause) = tenant {
        return MidnightDecision::Skip(format!(
            "skipped: the tenant is paused ({}); resuming does not run the skipped midnights",
            paused_by(zone, pause)
        ));
    }
    match quarantine {
        Some(q) if midnight < q.next_attempt => {
            MidnightDecision::Skip(format!("skipped: {}", q.reason(zone)))
        }
        _ => MidnightDecision::Run,
    }
}

/// "by Ada Admin since 2026-01-15 09:30 GMT: moving HighQ to a new host"
pub fn paused_by(zone: Tz, pause: &Pause) -> String {
    let mut text = format!("by {} since {}", pause.by, local_minute(zone, pause.at));
    if let Some(reason) = &pause.reason {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

fn local_minute(zone: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantKey;
    use crate::store::{RunOptions, Trigger};

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// Runs newest first, one per night from `first` (UTC midnights), with these statuses oldest
    /// first.
    fn nights(first: &str, statuses: &[(RunStatus, TriggerKind)]) -> Vec<RunRecord> {
        let start = utc(first);
        let mut runs: Vec<RunRecord> = statuses
            .iter()
            .enumerate()
            .map(|(i, (status, kind))| RunRecord {
                id: i as RunId + 1,
                tenant: TenantKey::parse("acme").unwrap(),
                trigger: Trigger {
                    kind: *kind,
                    by: None,
                },
                status: *status,
                started_at: start + chrono::Duration::days(i as i64),
                finished_at: Some(start + chrono::Duration::days(i as i64)),
                summary: None,
                message: Some(format!("night {}", i + 1)),
                options: RunOptions::default(),
                progress: None,
                heartbeat_at: None,
            })
            .collect();
        runs.reverse();
        runs
    }

    use RunStatus::*;
    use TriggerKind::*;

    #[test]
    fn three_failed_nights_quarantine_and_the_next_attempt_skips_one_midnight() {
        let runs = nights(
            "2026-01-01T00:00:00Z",
            &[
                (Succeeded, Automatic),
                (Failed, Automatic),
                (Failed, Automatic),
                (Failed, Automatic),
            ],
        );
        let q = assess(&QuarantinePolicy::default(), Tz::UTC, &runs, None).unwrap();
        assert_eq!(q.started_by_run, 4);
        assert_eq!(q.failed_nights, 3);
        assert_eq!(q.last_failure, "night 4");
        assert_eq!(q.next_attempt, utc("2026-01-06T00:00:00Z"));
        assert_eq!(
            q.reason(Tz::UTC),
            "quarantined after 3 failed nights; next attempt 2026-01-06 00:00 UTC; last failure: night 4"
        );
    }

    #[test]
    fn two_failed_nights_are_not_a_quarantine() {
        let runs = nights(
            "2026-01-01T00:00:00Z",
            &[
                (Failed, Automatic),
                (CompletedWithErrors, Automatic),
                (Failed, Automatic),
                (Failed, Automatic),
            ],
        );
        assert_eq!(
            assess(&QuarantinePolicy::default(), Tz::UTC, &runs, None),
            None
        );
    }

    #[test]
    fn failed_backoff_attempts_move_the_next_attempt_a_week_on() {
        let mut runs = nights(
            "2026-01-01T00:00:00Z",
            &[
                (Failed, Automatic),
                (Failed, Automatic),
                (Failed, Automatic),
            ],
        );
        let mut attempt = runs[0].clone();
        attempt.id = 10;
        attempt.started_at = utc("2026-01-05T00:00:05Z");
        attempt.message = Some("attempt".to_owned());
        runs.insert(0, attempt);
        let q = assess(&QuarantinePolicy::default(), Tz::UTC, &runs, None).unwrap();
        assert_eq!(q.attempts, 1);
        assert_eq!(
            q.started_by_run, 3,
            "the quarantine began with the third night"
        );
        assert_eq!(q.next_attempt, utc("2026-01-12T00:00:00Z"));
    }

    #[test]
    fn skipped_interrupted_and_failed_manual_runs_neither_count_nor_lift() {
        let runs = nights(
            "2026-01-01T00:00:00Z",
            &[
                (Failed, Automatic),
                (Skipped, Automatic),
                (Failed, Manual),
                (Failed, Automatic),
                (Interrupted, Automatic),
                (Failed, Automatic),
            ],
        );
        let q = assess(&QuarantinePolicy::default(), Tz::UTC, &runs, None).unwrap();
        assert_eq!(q.failed_nights, 3);
    }

    #[test]
    fn a_manual_run_that_succeeds_or_a_fix_lifts_it() {
        let failing = [
            (Failed, Automatic),
            (Failed, Automatic),
            (Failed, Automatic),
        ];
        let mut with_manual = failing.to_vec();
        with_manual.push((Succeeded, Manual));
        let runs = nights("2026-01-01T00:00:00Z", &with_manual);
        assert_eq!(
            assess(&QuarantinePolicy::default(), Tz::UTC, &runs, None),
            None
        );

        let runs = nights("2026-01-01T00:00:00Z", &failing);
        let fixed = Some(utc("2026-01-03T12:00:00Z"));
        assert_eq!(
            assess(&QuarantinePolicy::default(), Tz::UTC, &runs, fixed),
            None
        );
    }

    #[test]
    fn a_limit_of_zero_never_quarantines() {
        let runs = nights("2026-01-01T00:00:00Z", &[(Failed, Automatic); 10]);
        let policy = QuarantinePolicy {
            after_failed_nights: 0,
            ..QuarantinePolicy::default()
        };
        assert_eq!(assess(&policy, Tz::UTC, &runs, None), None);
    }

    #[test]
    fn the_global_pause_comes_first_then_the_tenants_then_the_quarantine() {
        let at = utc("2026-01-05T09:30:00Z");
        let ops = Pause::new("Olga Ops", at, Some("database upgrade".to_owned()));
        let tess = Pause::new("Tess Admin", at, None);
        let runs = nights("2026-01-01T00:00:00Z", &[(Failed, Automatic); 3]);
        let q = assess(&QuarantinePolicy::default(), Tz::UTC, &runs, None).unwrap();
        let midnight = utc("2026-01-05T00:00:00Z");

        assert_eq!(
            decide_midnight(Tz::UTC, midnight, Some(&ops), Some(&tess), Some(&q)),
            MidnightDecision::Skip(
                "skipped: dirsync is paused for maintenance (by Olga Ops since 2026-01-05 09:30 UTC: database upgrade)"
                    .to_owned()
            )
        );
        assert!(matches!(
            decide_midnight(Tz::UTC, midnight, None, Some(&tess), Some(&q)),
            MidnightDecision::Skip(m) if m.starts_with("skipped: the tenant is paused (by Tess Admin since")
        ));
        assert_eq!(
            decide_midnight(Tz::UTC, q.next_attempt, None, None, Some(&q)),
            MidnightDecision::Run
        );
        assert!(matches!(
            decide_midnight(Tz::UTC, utc("2026-01-04T00:00:00Z"), None, None, Some(&q)),
            MidnightDecision::Skip(m) if m.starts_with("skipped: quarantined after 3 failed nights; next attempt 2026-01-05 00:00 UTC")
        ));
        assert_eq!(
            decide_midnight(Tz::UTC, midnight, None, None, None),
            MidnightDecision::Run
        );
    }
}
