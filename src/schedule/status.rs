//! Issue 14's actions and readings, shared by the API, the console, the CLI and the scheduler:
//! pause and resume (a tenant, or the service), each audited with who and why; whether a tenant is
//! paused or quarantined; lifting a quarantine after a fix; and [`on_quarantined`], the one place
//! a new quarantine is announced.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use super::quarantine::{Quarantine, QuarantinePolicy, assess, paused_by};
use crate::audit::{self, Action, Actor};
use crate::domain::TenantKey;
use crate::notify;
use crate::store::access::{AccessStore, AuditOutcome};
use crate::store::{Pause, RunFilter, Store, StoreError};
use crate::tenant::Tenant;

/// How many of a tenant's latest runs the quarantine is worked out from: half a year of nightly
/// skipped and weekly failed runs, with room for manual runs.
const HISTORY: i64 = 400;

/// What holds a tenant's automatic runs back, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScheduleStatus {
    /// The global pause (maintenance).
    pub service_pause: Option<Pause>,
    pub pause: Option<Pause>,
    pub quarantine: Option<Quarantine>,
}

impl ScheduleStatus {
    pub async fn of(
        store: &dyn Store,
        policy: &QuarantinePolicy,
        tenant: &Tenant,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            service_pause: store.service_pause().await?,
            pause: store.tenant_pause(&tenant.key).await?,
            quarantine: quarantine_of(store, policy, tenant).await?,
        })
    }
}

/// Whether the tenant is quarantined, from its runs since the last fix.
pub async fn quarantine_of(
    store: &dyn Store,
    policy: &QuarantinePolicy,
    tenant: &Tenant,
) -> Result<Option<Quarantine>, StoreError> {
    if policy.after_failed_nights == 0 {
        return Ok(None);
    }
    let mark = store.quarantine_mark(&tenant.key).await?;
    let runs = store
        .find_runs(
            &tenant.key,
            &RunFilter {
                from: mark.lifted_at,
                limit: HISTORY,
                ..RunFilter::default()
            },
        )
        .await?;
    Ok(assess(policy, tenant.time_zone, &runs, mark.lifted_at))
}

/// Why no run may start for the tenant now, if it or the service is paused: a forced run or an
/// approval is refused with this sentence (409 in the API).
pub async fn pause_refusal(
    store: &dyn Store,
    tenant: &Tenant,
) -> Result<Option<String>, StoreError> {
    let zone = tenant.time_zone;
    if let Some(pause) = store.service_pause().await? {
        return Ok(Some(format!(
            "dirsync is paused for maintenance ({}); no run starts until an operator resumes it",
            paused_by(zone, &pause)
        )));
    }
    if let Some(pause) = store.tenant_pause(&tenant.key).await? {
        return Ok(Some(format!(
            "tenant {} is paused ({}); resume it to run",
            tenant.key,
            paused_by(zone, &pause)
        )));
    }
    Ok(None)
}

/// What a pause or resume did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseChange {
    /// `false` when it was already in that state (nothing changed, nothing audited).
    pub changed: bool,
    /// The pause in force now (after pausing), or the one that was ended (after resuming).
    pub pause: Option<Pause>,
}

/// Pauses the tenant in `actor`'s name, audited; pausing a paused tenant keeps the first pause.
pub async fn pause_tenant(
    store: &dyn Store,
    access: &dyn AccessStore,
    actor: &Actor,
    tenant: &TenantKey,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<PauseChange, StoreError> {
    let pause = Pause::new(&actor.name, now, reason);
    let changed = store.pause_tenant(tenant, &pause).await?;
    if changed {
        info!(tenant = %tenant, by = %actor.name, "tenant paused");
        audit::record(
            access,
            now,
            actor,
            Action::TenantPause,
            Some(tenant),
            AuditOutcome::Ok,
            json!({"reason": pause.reason}),
        )
        .await;
    }
    Ok(PauseChange {
        changed,
        pause: store.tenant_pause(tenant).await?,
    })
}

/// Resumes the tenant in `actor`'s name, audited with how long it was paused. Skipped midnights
/// are not run again: the next midnight is.
pub async fn resume_tenant(
    store: &dyn Store,
    access: &dyn AccessStore,
    actor: &Actor,
    tenant: &TenantKey,
    now: DateTime<Utc>,
) -> Result<PauseChange, StoreError> {
    if store.tenant(tenant).await?.is_none() {
        return Err(StoreError::NotFound(format!(
            "tenant {:?} does not exist",
            tenant.as_str()
        )));
    }
    let ended = store.resume_tenant(tenant).await?;
    if let Some(pause) = &ended {
        info!(tenant = %tenant, by = %actor.name, "tenant resumed");
        audit::record(
            access,
            now,
            actor,
            Action::TenantResume,
            Some(tenant),
            AuditOutcome::Ok,
            json!({"paused_by": pause.by, "paused_at": pause.at, "reason": pause.reason}),
        )
        .await;
    }
    Ok(PauseChange {
        changed: ended.is_some(),
        pause: ended,
    })
}

/// The global pause (operators, for maintenance), audited.
pub async fn pause_service(
    store: &dyn Store,
    access: &dyn AccessStore,
    actor: &Actor,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<PauseChange, StoreError> {
    let pause = Pause::new(&actor.name, now, reason);
    let changed = store.pause_service(&pause).await?;
    if changed {
        warn!(by = %actor.name, "dirsync paused for maintenance: no tenant runs until resumed");
        audit::record(
            access,
            now,
            actor,
            Action::ServicePause,
            None,
            AuditOutcome::Ok,
            json!({"reason": pause.reason}),
        )
        .await;
    }
    Ok(PauseChange {
        changed,
        pause: store.service_pause().await?,
    })
}

/// Ends the global pause, audited.
pub async fn resume_service(
    store: &dyn Store,
    access: &dyn AccessStore,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<PauseChange, StoreError> {
    let ended = store.resume_service().await?;
    if let Some(pause) = &ended {
        info!(by = %actor.name, "dirsync resumed");
        audit::record(
            access,
            now,
            actor,
            Action::ServiceResume,
            None,
            AuditOutcome::Ok,
            json!({"paused_by": pause.by, "paused_at": pause.at, "reason": pause.reason}),
        )
        .await;
    }
    Ok(PauseChange {
        changed: ended.is_some(),
        pause: ended,
    })
}

/// A fix lifts a quarantine: when the tenant's connection settings or credentials changed
/// (`before` → `after`, or `credentials` for a new HighQ grant), failed runs up to now no longer
/// count. Audited when the tenant was quarantined; returns whether it was.
#[allow(clippy::too_many_arguments)]
pub async fn lift_quarantine_after_fix(
    store: &dyn Store,
    access: &dyn AccessStore,
    policy: &QuarantinePolicy,
    actor: &Actor,
    before: Option<&Tenant>,
    after: &Tenant,
    credentials: bool,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let settings_changed =
        before.is_some_and(|before| before.source != after.source || before.target != after.target);
    if !(settings_changed || credentials) {
        return Ok(false);
    }
    let quarantine = quarantine_of(store, policy, after).await?;
    let why = if credentials {
        "the target's credentials were renewed"
    } else {
        "the tenant's connection settings changed"
    };
    store
        .lift_quarantine(&after.key, now, &actor.name, why)
        .await?;
    let Some(quarantine) = quarantine else {
        return Ok(false);
    };
    info!(tenant = %after.key, by = %actor.name, why, "quarantine lifted by a fix");
    audit::record(
        access,
        now,
        actor,
        Action::QuarantineLift,
        Some(&after.key),
        AuditOutcome::Ok,
        json!({
            "why": why,
            "failed_nights": quarantine.failed_nights,
            "last_failure": quarantine.last_failure,
        }),
    )
    .await;
    Ok(true)
}

/// The scheduler, as the audit log names it.
pub fn scheduler_actor() -> Actor {
    Actor {
        name: "dirsync scheduler".to_owned(),
        id: Some("scheduler".to_owned()),
        client: Default::default(),
    }
}

/// Issue 14: a tenant has just been quarantined. The one call site where a quarantine is
/// announced, once per quarantine whichever replica notices (the caller won
/// `announce_quarantine`): a log line, the tenant's `quarantined` notification (if its admins
/// chose it) and the audit entry.
pub async fn on_quarantined(
    store: &dyn Store,
    access: Option<&dyn AccessStore>,
    tenant: &Tenant,
    quarantine: &Quarantine,
    now: DateTime<Utc>,
) {
    let reason = quarantine.reason(tenant.time_zone);
    warn!(tenant = %tenant.key, run_id = quarantine.started_by_run, %reason, "tenant quarantined");
    let event = notify::Event::Quarantined {
        failed_nights: quarantine.failed_nights,
        next_attempt: quarantine.next_attempt,
        last_failure: quarantine.last_failure.clone(),
    };
    if let Err(err) = notify::send_to_tenant(store, &tenant.key, &event, now).await {
        warn!(tenant = %tenant.key, error = %err, "the quarantine notification could not be queued");
    }
    if let Some(access) = access {
        audit::record(
            access,
            now,
            &scheduler_actor(),
            Action::TenantQuarantine,
            Some(&tenant.key),
            AuditOutcome::Ok,
            json!({
                "reason": reason,
                "failed_nights": quarantine.failed_nights,
                "last_failed_run": quarantine.last_failed_run,
                "last_failure": quarantine.last_failure,
                "next_attempt": quarantine.next_attempt,
            }),
        )
        .await;
    }
}
